//! `scopegate.yaml`: the gateway's own settings.
//!
//! Parsed strictly (unknown keys are errors, with their line and column), then checked as a
//! whole so that `scopegate check` can report every problem at once. Every field's doc
//! comment ends with its default; switches that weaken security say `insecure` in their name.

pub(crate) mod yaml;

use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

use jsonwebtoken::Algorithm;
use serde::Deserialize;

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Schema version. Required; only `1` exists.
    pub version: u32,
    /// Plain-HTTP proxy listener. Default `0.0.0.0:8080`.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Optional TLS listener terminated by scopegate itself. Default: none.
    #[serde(default)]
    pub listen_tls: Option<TlsListener>,
    /// Listener for `/metrics`, `/healthz` and `/readyz`. Default `0.0.0.0:9090`.
    #[serde(default = "default_admin_listen")]
    pub admin_listen: String,
    /// The one upstream, `http://host:port` or `https://host[:port]`. Required.
    pub upstream: String,
    /// PEM bundle of the certificate authorities trusted for an `https` upstream, instead of
    /// the system's. Default: the system's roots.
    #[serde(default)]
    pub upstream_ca_file: Option<PathBuf>,
    /// Policy file, relative to this file's folder. Required.
    pub policy: PathBuf,
    /// Worker threads of the proxy. Default `1` (a sidecar shares its pod's cores).
    #[serde(default = "default_threads")]
    pub threads: usize,
    /// Seconds requests in flight get to finish after SIGTERM; listeners close at once.
    /// Default `20`.
    #[serde(default = "default_grace")]
    pub grace_period_seconds: u64,
    /// Seconds blocking work gets after the grace period before the process exits.
    /// Default `5`. The two together (25 s) fit inside Kubernetes' default 30 s
    /// `terminationGracePeriodSeconds`.
    #[serde(default = "default_shutdown_timeout")]
    pub graceful_shutdown_timeout_seconds: u64,
    /// Socket the old and new process use to hand over listeners during an upgrade.
    /// Default `/tmp/scopegate_upgrade.sock`.
    #[serde(default = "default_upgrade_socket")]
    pub upgrade_socket: PathBuf,
    /// Realm in `WWW-Authenticate` challenges. Default `scopegate`.
    #[serde(default = "default_realm")]
    pub realm: String,
    /// Log format: `text` or `json`. Default `text`.
    #[serde(default)]
    pub log_format: LogFormat,
    /// Trusted token issuers. At least one is required.
    pub issuers: Vec<IssuerConfig>,
    /// Names of the headers that carry the verified identity upstream.
    #[serde(default)]
    pub identity_headers: IdentityHeaderNames,
    /// Forward the client's `Authorization` header upstream. Default `true` (a backend that
    /// re-validates the token still can).
    #[serde(default = "yes")]
    pub forward_authorization: bool,
    /// Where tokens are read from and how large they may be.
    #[serde(default)]
    pub token: TokenSettings,
    /// The verified-token cache.
    #[serde(default)]
    pub token_cache: TokenCacheSettings,
    /// Further request headers removed before forwarding, beyond the identity headers and
    /// the method/path override headers that are always removed. Default: none.
    #[serde(default)]
    pub strip_headers: Vec<String>,
}

/// A TLS listener (certificate and key are PEM files, re-read when they change).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsListener {
    /// Address to listen on, e.g. `0.0.0.0:8443`. Required.
    pub address: String,
    /// PEM certificate chain. Required.
    pub cert: PathBuf,
    /// PEM private key. Required.
    pub key: PathBuf,
}

/// Log output format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// One trusted issuer.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerConfig {
    /// Exact `iss` value, e.g. `https://exampleco.eu.auth0.com/`. Required.
    pub issuer: String,
    /// Short name used as the metric label. Default: the issuer URL.
    #[serde(default)]
    pub name: Option<String>,
    /// Accepted `aud` values, compared exactly. At least one is required.
    pub audiences: Vec<String>,
    /// Where the issuer publishes its JSON Web Key Set. Required unless an HMAC secret is set.
    #[serde(default)]
    pub jwks_uri: Option<String>,
    /// Algorithms accepted from this issuer. Default `[RS256]`.
    #[serde(default = "default_algorithms")]
    pub algorithms: Vec<Algorithm>,
    /// Clock skew tolerated on `exp`, `nbf` and `iat`, in seconds. Default `30`.
    #[serde(default = "default_leeway")]
    pub leeway_seconds: u64,
    /// Claims whose union makes the token's scopes. Default `[scope, scp, permissions]`.
    #[serde(default = "default_scope_claims")]
    pub scope_claims: Vec<String>,
    /// File holding a shared secret for HS256/384/512. HMAC is accepted only with a secret
    /// configured here. Default: none.
    #[serde(default)]
    pub hmac_secret_file: Option<PathBuf>,
    /// Key set refresh and fetch bounds.
    #[serde(default)]
    pub jwks: JwksSettings,
}

/// Bounds of an issuer's key set lifecycle.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwksSettings {
    /// Refresh interval when the server sends no `Cache-Control: max-age`. Default `300`.
    #[serde(default = "default_refresh")]
    pub refresh_seconds: u64,
    /// Shortest refresh interval, whatever `max-age` says. Default `60`.
    #[serde(default = "default_refresh_floor")]
    pub min_refresh_seconds: u64,
    /// Longest refresh interval, whatever `max-age` says. Default `3600`.
    #[serde(default = "default_refresh_ceiling")]
    pub max_refresh_seconds: u64,
    /// Least time between two fetches caused by unknown `kid`s. Default `30`.
    #[serde(default = "default_unknown_kid_interval")]
    pub unknown_kid_refetch_seconds: u64,
    /// Keys older than this (since the last good fetch) are dropped: fail closed. Default
    /// `86400` (a day of identity-provider outage is ridden out).
    #[serde(default = "default_max_staleness")]
    pub max_staleness_seconds: u64,
    /// Timeout of one fetch. Default `5`.
    #[serde(default = "default_fetch_timeout")]
    pub fetch_timeout_seconds: u64,
}

impl Default for JwksSettings {
    fn default() -> Self {
        JwksSettings {
            refresh_seconds: default_refresh(),
            min_refresh_seconds: default_refresh_floor(),
            max_refresh_seconds: default_refresh_ceiling(),
            unknown_kid_refetch_seconds: default_unknown_kid_interval(),
            max_staleness_seconds: default_max_staleness(),
            fetch_timeout_seconds: default_fetch_timeout(),
        }
    }
}

/// Header names for the verified identity. All are removed from client requests first.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityHeaderNames {
    /// Default `X-Auth-Subject`.
    #[serde(default = "h_subject")]
    pub subject: String,
    /// Default `X-Auth-Issuer`.
    #[serde(default = "h_issuer")]
    pub issuer: String,
    /// Space-separated scopes. Default `X-Auth-Scopes`.
    #[serde(default = "h_scopes")]
    pub scopes: String,
    /// Default `X-Auth-Client-Id`.
    #[serde(default = "h_client")]
    pub client_id: String,
    /// Claim name → header name, e.g. `https://api.exampleco.com/email: X-Auth-Email`.
    /// Default: none.
    #[serde(default)]
    pub claims: BTreeMap<String, String>,
}

impl Default for IdentityHeaderNames {
    fn default() -> Self {
        IdentityHeaderNames {
            subject: h_subject(),
            issuer: h_issuer(),
            scopes: h_scopes(),
            client_id: h_client(),
            claims: BTreeMap::new(),
        }
    }
}

/// Where tokens come from.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenSettings {
    /// Also accept `?access_token=` (RFC 6750 §2.3; tokens then land in access logs and
    /// `Referer` headers). Default `false`.
    #[serde(default)]
    pub insecure_allow_query_parameter: bool,
    /// Longest token accepted, in bytes. Default `8192`.
    #[serde(default = "default_max_token")]
    pub max_bytes: usize,
}

impl Default for TokenSettings {
    fn default() -> Self {
        TokenSettings {
            insecure_allow_query_parameter: false,
            max_bytes: default_max_token(),
        }
    }
}

/// The verified-token cache.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenCacheSettings {
    /// Default `true`.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Most tokens kept. Default `100000`.
    #[serde(default = "default_cache_entries")]
    pub max_entries: u64,
}

impl Default for TokenCacheSettings {
    fn default() -> Self {
        TokenCacheSettings {
            enabled: true,
            max_entries: default_cache_entries(),
        }
    }
}

/// The upstream, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    /// Socket address connected to.
    pub address: SocketAddr,
    /// Whether to speak TLS to it.
    pub tls: bool,
    /// Host name for SNI and certificate checks.
    pub host: String,
}

/// A problem found in the configuration.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {message}")]
pub struct ConfigError {
    /// `path[:line:column]` of the problem.
    pub file: String,
    /// What is wrong, and a hint.
    pub message: String,
}

impl Config {
    /// Reads, parses and checks a configuration file; returns every problem found.
    pub fn load(path: &Path) -> Result<Config, Vec<ConfigError>> {
        let display = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| {
            vec![ConfigError {
                file: display.clone(),
                message: format!("cannot read the file: {e}"),
            }]
        })?;
        let mut config = Config::parse(&text, &display)?;
        // Relative paths are relative to the configuration file, not the working directory.
        let base = path.parent().unwrap_or(Path::new("."));
        config.policy = base.join(&config.policy);
        if let Some(ca) = &mut config.upstream_ca_file {
            *ca = base.join(&*ca);
        }
        if let Some(tls) = &mut config.listen_tls {
            tls.cert = base.join(&tls.cert);
            tls.key = base.join(&tls.key);
        }
        for issuer in &mut config.issuers {
            if let Some(secret) = &mut issuer.hmac_secret_file {
                *secret = base.join(&*secret);
            }
        }
        Ok(config)
    }

    /// Parses and checks configuration text; `file` names it in messages.
    pub fn parse(text: &str, file: &str) -> Result<Config, Vec<ConfigError>> {
        let config: Config = serde_saphyr::from_str(text).map_err(|e| {
            vec![ConfigError {
                file: crate::config::yaml::located(file, &e),
                message: crate::config::yaml::message(&e),
            }]
        })?;
        let problems = config.problems();
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(problems
                .into_iter()
                .map(|message| ConfigError {
                    file: file.to_owned(),
                    message,
                })
                .collect())
        }
    }

    fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.version != 1 {
            out.push(format!(
                "version: unsupported version {} (expected 1)",
                self.version
            ));
        }
        for (key, addr) in [
            ("listen", &self.listen),
            ("admin_listen", &self.admin_listen),
        ] {
            if addr.parse::<SocketAddr>().is_err() {
                out.push(format!(
                    "{key}: \"{addr}\" is not an address (expected e.g. 0.0.0.0:8080)"
                ));
            }
        }
        if let Some(tls) = &self.listen_tls
            && tls.address.parse::<SocketAddr>().is_err()
        {
            out.push(format!(
                "listen_tls.address: \"{}\" is not an address",
                tls.address
            ));
        }
        if let Err(e) = split_upstream_url(&self.upstream) {
            out.push(format!("upstream: {e}"));
        }
        if self.threads == 0 {
            out.push("threads: must be at least 1".into());
        }
        if self.issuers.is_empty() {
            out.push("issuers: at least one issuer is required".into());
        }
        let mut seen = std::collections::HashSet::new();
        for (i, issuer) in self.issuers.iter().enumerate() {
            let at = format!("issuers[{i}]");
            if !seen.insert(&issuer.issuer) {
                out.push(format!(
                    "{at}.issuer: \"{}\" is configured twice",
                    issuer.issuer
                ));
            }
            if issuer.audiences.is_empty() {
                out.push(format!("{at}.audiences: at least one audience is required"));
            }
            if issuer.algorithms.is_empty() {
                out.push(format!(
                    "{at}.algorithms: at least one algorithm is required"
                ));
            }
            let hmac = issuer.algorithms.iter().any(|a| is_hmac(*a));
            match (&issuer.hmac_secret_file, hmac) {
                (None, true) => out.push(format!(
                    "{at}.algorithms: HS256/HS384/HS512 need hmac_secret_file (a JWKS never supplies HMAC secrets)"
                )),
                (Some(_), false) => out.push(format!(
                    "{at}.hmac_secret_file: set, but no HS* algorithm is allowed"
                )),
                _ => {}
            }
            match &issuer.jwks_uri {
                None if !hmac => out.push(format!("{at}.jwks_uri: required")),
                Some(uri) if !(uri.starts_with("http://") || uri.starts_with("https://")) => {
                    out.push(format!("{at}.jwks_uri: \"{uri}\" is not an http(s) URL"))
                }
                _ => {}
            }
            if issuer.scope_claims.is_empty() {
                out.push(format!("{at}.scope_claims: name at least one claim"));
            }
            let j = &issuer.jwks;
            if j.min_refresh_seconds == 0 || j.min_refresh_seconds > j.max_refresh_seconds {
                out.push(format!(
                    "{at}.jwks: need 0 < min_refresh_seconds <= max_refresh_seconds"
                ));
            }
            if j.fetch_timeout_seconds == 0 {
                out.push(format!(
                    "{at}.jwks.fetch_timeout_seconds: must be at least 1"
                ));
            }
        }
        let h = &self.identity_headers;
        let names = [&h.subject, &h.issuer, &h.scopes, &h.client_id]
            .into_iter()
            .chain(h.claims.values())
            .chain(self.strip_headers.iter());
        for name in names {
            if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                out.push(format!("identity_headers: \"{name}\" is not a header name"));
            }
            if name.eq_ignore_ascii_case("authorization") || name.eq_ignore_ascii_case("host") {
                out.push(format!(
                    "identity_headers: \"{name}\" cannot carry identity"
                ));
            }
        }
        out
    }

    /// The upstream, resolved once at start-up. [`Config::parse`] checks only the URL's
    /// shape, so a configuration can be checked where its upstream's name does not resolve
    /// (a Kubernetes Service name outside the cluster).
    pub fn upstream(&self) -> Result<Upstream, String> {
        let (host, port, tls) = split_upstream_url(&self.upstream)?;
        let address = (host.as_str(), port)
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve \"{host}\": {e}"))?
            .next()
            .ok_or_else(|| format!("\"{host}\" resolves to no address"))?;
        Ok(Upstream { address, tls, host })
    }

    /// Metric label of the issuer at `index`.
    pub fn issuer_label(issuer: &IssuerConfig) -> &str {
        issuer.name.as_deref().unwrap_or(&issuer.issuer)
    }
}

/// Host, port and TLS of an upstream URL, checked for shape only (nothing is resolved).
fn split_upstream_url(url: &str) -> Result<(String, u16, bool), String> {
    let uri: http::Uri = url
        .parse()
        .map_err(|_| format!("\"{url}\" is not a URL (expected http://host:port)"))?;
    let tls = match uri.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        _ => return Err(format!("\"{url}\" must start with http:// or https://")),
    };
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err(format!(
            "\"{url}\" must not have a path: requests keep the path they were checked on"
        ));
    }
    let host = uri.host().ok_or_else(|| format!("\"{url}\" has no host"))?;
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
    Ok((host, port, tls))
}

/// Whether `alg` is one of the HMAC algorithms.
pub fn is_hmac(alg: Algorithm) -> bool {
    matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512)
}

fn default_listen() -> String {
    "0.0.0.0:8080".into()
}
fn default_admin_listen() -> String {
    "0.0.0.0:9090".into()
}
fn default_threads() -> usize {
    1
}
fn default_grace() -> u64 {
    20
}
fn default_shutdown_timeout() -> u64 {
    5
}
fn default_upgrade_socket() -> PathBuf {
    "/tmp/scopegate_upgrade.sock".into()
}
fn default_realm() -> String {
    "scopegate".into()
}
fn yes() -> bool {
    true
}
fn default_algorithms() -> Vec<Algorithm> {
    vec![Algorithm::RS256]
}
fn default_leeway() -> u64 {
    30
}
fn default_scope_claims() -> Vec<String> {
    crate::auth::identity::DEFAULT_SCOPE_CLAIMS
        .map(String::from)
        .to_vec()
}
fn default_refresh() -> u64 {
    300
}
fn default_refresh_floor() -> u64 {
    60
}
fn default_refresh_ceiling() -> u64 {
    3600
}
fn default_unknown_kid_interval() -> u64 {
    30
}
fn default_max_staleness() -> u64 {
    86_400
}
fn default_fetch_timeout() -> u64 {
    5
}
fn default_max_token() -> usize {
    8192
}
fn default_cache_entries() -> u64 {
    100_000
}
fn h_subject() -> String {
    "X-Auth-Subject".into()
}
fn h_issuer() -> String {
    "X-Auth-Issuer".into()
}
fn h_scopes() -> String {
    "X-Auth-Scopes".into()
}
fn h_client() -> String {
    "X-Auth-Client-Id".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "version: 1
upstream: http://127.0.0.1:3000
policy: p.yaml
issuers:
  - issuer: https://tenant.example/
    audiences: [api]
    jwks_uri: https://tenant.example/.well-known/jwks.json
";

    #[test]
    fn minimal_config_takes_documented_defaults() {
        let c = Config::parse(MINIMAL, "c.yaml").unwrap();
        assert_eq!(c.listen, "0.0.0.0:8080");
        assert_eq!(c.issuers[0].algorithms, [Algorithm::RS256]);
        assert!(c.forward_authorization);
        assert!(!c.token.insecure_allow_query_parameter);
        assert_eq!(
            c.grace_period_seconds + c.graceful_shutdown_timeout_seconds,
            25
        );
    }

    #[test]
    fn unknown_keys_are_errors_with_a_location() {
        let text = format!("{MINIMAL}lisen: 0.0.0.0:1\n");
        let errs = Config::parse(&text, "c.yaml").unwrap_err();
        assert!(errs[0].file.starts_with("c.yaml:8:1"), "{}", errs[0]);
        assert!(errs[0].message.contains("lisen"), "{}", errs[0]);
    }

    #[test]
    fn hmac_needs_an_explicit_secret() {
        let text = MINIMAL.replace(
            "audiences: [api]",
            "audiences: [api]\n    algorithms: [HS256]",
        );
        let errs = Config::parse(&text, "c.yaml").unwrap_err();
        assert!(errs.iter().any(|e| e.message.contains("hmac_secret_file")));
    }

    #[test]
    fn the_upstream_is_checked_for_shape_and_resolved_only_at_start_up() {
        let text = MINIMAL.replace("127.0.0.1:3000", "timesheets.svc.invalid:80");
        let c = Config::parse(&text, "c.yaml").unwrap();
        let err = c.upstream().unwrap_err();
        assert!(err.contains("cannot resolve"), "{err}");
        let c = Config::parse(MINIMAL, "c.yaml").unwrap();
        assert_eq!(
            c.upstream().unwrap().address,
            "127.0.0.1:3000".parse().unwrap()
        );
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let text = MINIMAL
            .replace("version: 1", "version: 2")
            .replace("http://127.0.0.1:3000", "ftp://x")
            .replace("audiences: [api]", "audiences: []");
        let errs = Config::parse(&text, "c.yaml").unwrap_err();
        assert_eq!(errs.len(), 3, "{errs:?}");
    }
}
