//! `scopegate.yaml`, the gateway's own settings: parsed, then compiled.
//!
//! | file | job |
//! |---|---|
//! | [`file`](mod@file) | the YAML as written: strict serde types with positions |
//! | [`compile`] | file → [`Settings`]: defaults, checks, secrets read; every error at once |
//! | [`settings`] | what the gateway reads: durations, parsed names, resolved sources |
//! | [`runtime_dir`] | the default upgrade socket's private folder |
//! | [`cpus`] | how many worker threads `threads: auto` means in this container |
//!
//! `scopegate check` and `scopegate run` both call [`Settings::load`], so a file one
//! accepts the other accepts too. Switches that weaken security say `insecure` in their
//! name; every key's default is in README's configuration reference.

pub mod compile;
pub mod cpus;
pub mod file;
pub mod runtime_dir;
pub mod settings;

use std::path::Path;

pub use settings::{
    AbsoluteForm, ClientAuthMethod, DEFAULT_SCOPE_CLAIMS, DpopMode, DpopSettings, HeaderSettings,
    HostRules, Http2Settings, IntrospectionSettings, IssuerSettings, JwksTiming, KeySource,
    LogFormat, OtlpProtocol, ProtectedResource, Settings, SharedStoreSettings, StoreErrorMode,
    Threads, TokenRules, TracingSettings, Upstream, UpstreamHeaderCase, UpstreamProtocol,
    UpstreamTimeouts, UpstreamUrl,
};

/// A problem found in the configuration: where, and what to do about it.
pub type ConfigError = crate::ground::Located;

impl Settings {
    /// Reads, parses and compiles a configuration file; returns every problem found.
    /// Relative paths in it are relative to its folder.
    pub fn load(path: &Path) -> Result<Settings, Vec<ConfigError>> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| {
            vec![ConfigError::whole(
                &shown,
                format!("cannot read the file: {e}"),
            )]
        })?;
        Settings::parse(&text, &shown, path.parent().unwrap_or(Path::new(".")))
    }

    /// Parses and compiles configuration text; `shown` names it in messages and `base`
    /// is the folder relative paths start from.
    pub fn parse(text: &str, shown: &str, base: &Path) -> Result<Settings, Vec<ConfigError>> {
        let file: file::ConfigFile =
            serde_saphyr::from_str(text).map_err(|e| vec![ConfigError::parse(shown, &e)])?;
        compile::compile(file, shown, base)
    }
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::Algorithm;
    use std::net::SocketAddr;
    use std::time::Duration;

    use super::*;

    const MINIMAL: &str = "version: 1
upstream: http://127.0.0.1:3000
policy: p.yaml
issuers:
  - issuer: https://tenant.example/
    audiences: [api]
    jwks_uri: https://tenant.example/.well-known/jwks.json
";

    fn parse(text: &str) -> Result<Settings, Vec<ConfigError>> {
        Settings::parse(text, "c.yaml", Path::new("/etc/scopegate"))
    }

    #[test]
    fn minimal_config_takes_documented_defaults() {
        let c = parse(MINIMAL).unwrap();
        assert_eq!(c.listen, "0.0.0.0:8080".parse::<SocketAddr>().unwrap());
        assert_eq!(c.issuers[0].algorithms, [Algorithm::RS256]);
        assert_eq!(c.issuers[0].label, "https://tenant.example/");
        assert_eq!(c.issuers[0].leeway, Duration::from_secs(30));
        assert_eq!(c.issuers[0].jwks, JwksTiming::default());
        assert!(c.headers.forward_authorization);
        assert_eq!(c.headers.subject.as_str(), "x-auth-subject");
        assert!(!c.token.allow_query);
        assert_eq!(c.token_cache_entries, Some(100_000));
        assert_eq!(c.threads, Threads::Fixed(1));
        assert_eq!(c.client_header_timeout, Duration::from_secs(10));
        assert!(c.access_log);
        assert_eq!(c.policy, Path::new("/etc/scopegate/p.yaml"));
        assert_eq!(
            c.grace_period + c.graceful_shutdown_timeout,
            Duration::from_secs(25)
        );
    }

    #[test]
    fn every_url_fetched_for_an_issuer_follows_one_rule() {
        let secret = tempfile_secret();
        // Discovered from a plain-http issuer on another host: its metadata, and so its
        // keys, would come in clear.
        let discovered = "version: 1\nupstream: http://127.0.0.1:1\npolicy: p.yaml\nissuers:\n  - issuer: http://idp.internal.example/realms/x\n    audiences: [api]\n";
        let errs = parse(discovered).unwrap_err();
        assert!(
            errs[0].message.contains("issuers[0].issuer")
                && errs[0].message.contains("insecure_allow_http"),
            "{}",
            errs[0]
        );
        let opted_in = discovered.replace(
            "    audiences: [api]\n",
            "    audiences: [api]\n    insecure_allow_http: true\n",
        );
        assert!(parse(&opted_in).is_ok());
        // An introspection endpoint in clear would carry the client secret and the tokens.
        let introspecting = format!(
            "{MINIMAL}    introspection:\n      endpoint: http://as.internal.example/introspect\n      client_id: gw\n      client_secret_file: {}\n",
            secret.display()
        );
        let errs = parse(&introspecting).unwrap_err();
        assert!(
            errs[0].message.contains("introspection.endpoint"),
            "{}",
            errs[0]
        );
        let local = introspecting.replace("http://as.internal.example", "http://127.0.0.1:9");
        assert!(parse(&local).is_ok(), "{:?}", parse(&local).err());
        // The resource identifier is https, or http on loopback only.
        let resource = |url: &str| {
            parse(&format!(
                "{MINIMAL}protected_resource:\n  resource: {url}\n"
            ))
        };
        let errs = resource("http://api.exampleco.com/timesheets").unwrap_err();
        assert!(
            errs[0].message.contains("must be an https URL"),
            "{}",
            errs[0]
        );
        assert!(resource("https://api.exampleco.com/timesheets").is_ok());
        assert!(resource("http://127.0.0.1:8080/timesheets").is_ok());
    }

    #[test]
    fn the_metadata_location_removes_only_a_slash_right_after_the_host() {
        let at = |resource: &str| {
            let r = parse(&format!(
                "{MINIMAL}protected_resource:\n  resource: {resource}\n"
            ))
            .unwrap()
            .protected_resource
            .unwrap();
            (r.path, r.url)
        };
        let wk = "/.well-known/oauth-protected-resource";
        for (resource, path) in [
            ("https://h.example", wk.to_owned()),
            ("https://h.example/", wk.to_owned()),
            ("https://h.example/a", format!("{wk}/a")),
            ("https://h.example/a/", format!("{wk}/a/")),
            ("https://h.example/a/b/", format!("{wk}/a/b/")),
        ] {
            let (served, url) = at(resource);
            assert_eq!(served, path, "{resource}");
            assert_eq!(url, format!("https://h.example{path}"), "{resource}");
        }
    }

    /// A client secret file, removed when the test drops it.
    fn tempfile_secret() -> tempfile::TempPath {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), "a-client-secret\n").unwrap();
        file.into_temp_path()
    }

    #[test]
    fn plain_http_key_urls_need_loopback_or_an_insecure_switch() {
        let remote = MINIMAL.replace(
            "https://tenant.example/.well",
            "http://tenant.example/.well",
        );
        let errs = parse(&remote).unwrap_err();
        assert!(
            errs[0].message.contains("insecure_allow_http: true"),
            "{}",
            errs[0]
        );
        let allowed = remote.replace(
            "    audiences: [api]\n",
            "    audiences: [api]\n    insecure_allow_http: true\n",
        );
        assert!(parse(&allowed).is_ok());
        // The old name says where the switch went instead of widening silently.
        let old = remote.replace(
            "    audiences: [api]\n",
            "    audiences: [api]\n    insecure_allow_http_jwks_uri: true\n",
        );
        let errs = parse(&old).unwrap_err();
        assert!(
            errs[0].message.contains("renamed insecure_allow_http"),
            "{}",
            errs[0]
        );
        for local in ["http://127.0.0.1:8", "http://localhost:8", "http://[::1]:8"] {
            let text = MINIMAL.replace("https://tenant.example", local);
            assert!(parse(&text).is_ok(), "{local}");
        }
    }

    #[test]
    fn a_zero_header_timeout_is_an_error_at_its_value() {
        let text = format!("{MINIMAL}client_header_timeout_seconds: 0\n");
        let errs = parse(&text).unwrap_err();
        assert!(errs[0].location().starts_with("c.yaml:8:32"), "{}", errs[0]);
        assert!(errs[0].message.contains("at least 1"), "{}", errs[0]);
    }

    #[test]
    fn unknown_keys_are_errors_with_a_location() {
        let text = format!("{MINIMAL}lisen: 0.0.0.0:1\n");
        let errs = parse(&text).unwrap_err();
        assert!(errs[0].location().starts_with("c.yaml:8:1"), "{}", errs[0]);
        assert!(errs[0].message.contains("lisen"), "{}", errs[0]);
    }

    #[test]
    fn problems_found_after_parsing_carry_their_line_and_column() {
        let text = MINIMAL.replace("audiences: [api]", "audiences: []");
        let errs = parse(&text).unwrap_err();
        assert_eq!(errs[0].location(), "c.yaml:6:16", "{}", errs[0]);
        let text = MINIMAL.replace("http://127.0.0.1:3000", "ftp://x");
        let errs = parse(&text).unwrap_err();
        assert_eq!(errs[0].location(), "c.yaml:2:11", "{}", errs[0]);
    }

    #[test]
    fn hmac_needs_an_explicit_secret_that_is_long_enough() {
        let text = MINIMAL.replace(
            "audiences: [api]",
            "audiences: [api]\n    algorithms: [HS256]",
        );
        let errs = parse(&text).unwrap_err();
        assert!(errs.iter().any(|e| e.message.contains("hmac_secret_file")));

        // The secret is read and checked while compiling, so `check` refuses what `run`
        // would refuse.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("short"), "too short\n").unwrap();
        let text = MINIMAL.replace(
            "    jwks_uri: https://tenant.example/.well-known/jwks.json\n",
            "    algorithms: [HS256]\n    hmac_secret_file: short\n",
        );
        let errs = Settings::parse(&text, "c.yaml", dir.path()).unwrap_err();
        assert!(errs[0].message.contains("at least 32"), "{}", errs[0]);
        assert_eq!(errs[0].location(), "c.yaml:8:23", "{}", errs[0]);
        std::fs::write(dir.path().join("short"), [b'k'; 32]).unwrap();
        let ok = Settings::parse(&text, "c.yaml", dir.path()).unwrap();
        assert!(matches!(ok.issuers[0].keys, KeySource::Hmac { .. }));
        assert!(!format!("{:?}", ok.issuers[0].keys).contains("kkkk"));

        // Only a key set's refresher discovers metadata: an HMAC issuer names its
        // introspection endpoint, or the configuration is refused.
        std::fs::write(dir.path().join("secret"), "s").unwrap();
        let introspecting = format!(
            "{text}    introspection:\n      client_id: gw\n      client_secret_file: secret\n"
        );
        let errs = Settings::parse(&introspecting, "c.yaml", dir.path()).unwrap_err();
        assert!(
            errs[0].message.contains("introspection.endpoint: required"),
            "{}",
            errs[0]
        );
        let named = introspecting.replace(
            "      client_id: gw\n",
            "      endpoint: https://tenant.example/introspect\n      client_id: gw\n",
        );
        assert!(Settings::parse(&named, "c.yaml", dir.path()).is_ok());
    }

    #[test]
    fn the_upstream_is_checked_for_shape_and_resolved_only_at_start_up() {
        let text = MINIMAL.replace("127.0.0.1:3000", "timesheets.svc.invalid:80");
        let c = parse(&text).unwrap();
        let err = c.upstream.resolve().unwrap_err();
        assert!(err.contains("cannot resolve"), "{err}");
        let c = parse(MINIMAL).unwrap();
        assert_eq!(
            c.upstream.resolve().unwrap().address,
            "127.0.0.1:3000".parse().unwrap()
        );
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let text = MINIMAL
            .replace("version: 1", "version: 2")
            .replace("http://127.0.0.1:3000", "ftp://x")
            .replace("audiences: [api]", "audiences: []");
        let errs = parse(&text).unwrap_err();
        assert_eq!(errs.len(), 3, "{errs:?}");
    }

    #[test]
    fn threads_is_a_count_or_auto_and_the_access_log_can_be_turned_off() {
        let with = |extra: &str| parse(&format!("{MINIMAL}{extra}\n"));
        assert_eq!(with("threads: 3").unwrap().threads, Threads::Fixed(3));
        assert_eq!(with("threads: auto").unwrap().threads, Threads::Auto);
        let errs = with("threads: many").unwrap_err();
        assert_eq!(errs[0].location(), "c.yaml:8:10", "{}", errs[0]);
        assert!(errs[0].message.contains("neither a number nor auto"));
        let errs = with("threads: 0").unwrap_err();
        assert!(errs[0].message.contains("at least 1"), "{}", errs[0]);
        assert!(!with("access_log: false").unwrap().access_log);
    }

    #[test]
    fn a_whole_settings_value_formatted_with_debug_holds_no_secret_byte() {
        let dir = tempfile::tempdir().unwrap();
        let hmac = "Zq8Xv1Lw3Rt7Yp5Nm2Kc9Hd4Fg6Js0Aa1";
        let client = "Qe4Wr6Ty8Ui0Op2As4Df6Gh8Jk0Lz2Xc";
        let nonce = "Mn3Bv5Cx7Zl9Kj1Hg3Fd5Sa7Po9Iu1Yt3";
        std::fs::write(dir.path().join("hmac"), hmac).unwrap();
        std::fs::write(dir.path().join("client"), client).unwrap();
        std::fs::write(dir.path().join("nonce"), nonce).unwrap();
        let text = format!(
            "{MINIMAL}  - issuer: https://hmac.example/
    audiences: [api]
    algorithms: [HS256]
    hmac_secret_file: hmac
    introspection:
      endpoint: https://hmac.example/introspect
      client_id: gw
      client_secret_file: client
dpop:
  public_url: https://api.example
  nonce:
    secret_file: nonce
"
        );
        let settings = Settings::parse(&text, "c.yaml", dir.path()).unwrap();
        let shown = format!("{settings:?} {settings:#?}");
        for secret in [hmac, client, nonce] {
            // Any 8-byte run of a secret would be a leak.
            for window in secret.as_bytes().windows(8) {
                let piece = std::str::from_utf8(window).unwrap();
                assert!(!shown.contains(piece), "{piece:?} of a secret in {shown}");
                // Bytes held as `Vec<u8>` would print as numbers.
                let numbers = format!("{window:?}");
                let numbers = numbers.trim_matches(|c| c == '[' || c == ']');
                assert!(!shown.contains(numbers), "{numbers} of a secret in {shown}");
            }
        }
        assert!(shown.contains("<redacted>"));
    }
}
