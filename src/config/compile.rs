//! `scopegate.yaml` → [`Settings`]: defaults applied, every value checked, files it names
//! read (the HMAC secret), and every problem reported at once with `file:line:column`.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderName;
use jsonwebtoken::Algorithm;
use serde_saphyr::Spanned;

use super::file::{
    ConfigFile, DpopFile, IdentityHeadersFile, IntrospectionFile, IssuerFile, JwksFile,
    ProtectedResourceFile, ThreadsFile,
};
use super::settings::{
    DpopMode, DpopSettings, HeaderSettings, IntrospectionSettings, IssuerSettings, JwksTiming,
    KeySource, ProtectedResource, Settings, Threads, TlsListener, UpstreamUrl,
};
use super::yaml::Pos;
use super::{ConfigError, is_hmac};
use crate::auth::discovery::{fetch_url_problem, is_loopback_url};
use crate::auth::identity::DEFAULT_SCOPE_CLAIMS;
use crate::auth::token::TokenRules;
use crate::proxy::host::HostRules;
use crate::proxy::path::PathRules;
use crate::proxy::query::QueryRules;
use crate::proxy::upstream::UpstreamTimeouts;

/// Default bound of the verified-token cache: a quarter of a 256 MiB sidecar.
const DEFAULT_TOKEN_CACHE_BYTES: u64 = 64 * 1024 * 1024;

/// Shortest HMAC secret accepted: as long as the SHA-256 output (RFC 7518 §3.2).
const MIN_HMAC_SECRET: usize = 32;

/// Collects problems, each at the position of the value it is about.
struct Problems<'a> {
    file: &'a str,
    found: Vec<ConfigError>,
}

impl Problems<'_> {
    fn at<T>(&mut self, spanned: &Spanned<T>, message: impl Into<String>) {
        let pos = Pos::of(spanned);
        self.found.push(ConfigError {
            file: format!("{}:{}:{}", self.file, pos.line, pos.column),
            message: message.into(),
        });
    }

    fn whole(&mut self, message: impl Into<String>) {
        self.found.push(ConfigError {
            file: self.file.to_owned(),
            message: message.into(),
        });
    }
}

/// Compiles a parsed file; relative paths are taken from `base`, the file's folder.
pub fn compile(file: ConfigFile, shown: &str, base: &Path) -> Result<Settings, Vec<ConfigError>> {
    let mut p = Problems {
        file: shown,
        found: Vec::new(),
    };
    if file.version.value != 1 {
        p.at(
            &file.version,
            format!(
                "version: unsupported version {} (expected 1)",
                file.version.value
            ),
        );
    }
    let listen = address(&mut p, "listen", file.listen.as_ref(), "0.0.0.0:8080");
    let admin_listen = address(
        &mut p,
        "admin_listen",
        file.admin_listen.as_ref(),
        "0.0.0.0:9090",
    );
    let listen_tls = file.listen_tls.as_ref().and_then(|tls| {
        let address = address(&mut p, "listen_tls.address", Some(&tls.value.address), "")?;
        let handshake = tls.value.handshake_timeout_seconds.as_ref();
        if let Some(t) = handshake
            && t.value == 0
        {
            p.at(
                t,
                "listen_tls.handshake_timeout_seconds: must be at least 1",
            );
        }
        Some(TlsListener {
            address,
            cert: base.join(&tls.value.cert),
            key: base.join(&tls.value.key),
            client_ca: tls.value.client_ca_file.as_ref().map(|f| base.join(f)),
            handshake_timeout: Duration::from_secs(handshake.map_or(10, |t| t.value)),
        })
    });
    // The TLS listener's connections are told apart from the plain one's by the address
    // they were accepted on (`proxy::tls::TlsHandshake`): the two may not share a port.
    if let (Some(plain), Some(tls), Some(spanned)) = (listen, &listen_tls, &file.listen_tls)
        && plain.port() == tls.address.port()
    {
        p.at(
            &spanned.value.address,
            format!(
                "listen_tls.address: \"{}\" shares its port with listen ({plain}); give it another",
                tls.address
            ),
        );
    }
    let upstream = match split_upstream_url(&file.upstream.value) {
        Ok(u) => Some(u),
        Err(e) => {
            p.at(&file.upstream, format!("upstream: {e}"));
            None
        }
    };
    let threads = compile_threads(&mut p, file.threads.as_ref());
    if file.issuers.value.is_empty() {
        p.at(&file.issuers, "issuers: at least one issuer is required");
    }
    let mut issuers = Vec::new();
    for (i, issuer) in file.issuers.value.iter().enumerate() {
        let duplicate = file.issuers.value[..i]
            .iter()
            .any(|other| other.value.issuer.value == issuer.value.issuer.value);
        if duplicate {
            p.at(
                &issuer.value.issuer,
                format!(
                    "issuers[{i}].issuer: \"{}\" is configured twice",
                    issuer.value.issuer.value
                ),
            );
        }
        if let Some(settings) = compile_issuer(&mut p, i, issuer, base) {
            issuers.push(settings);
        }
    }
    let headers = compile_headers(
        &mut p,
        &file.identity_headers,
        &file.strip_headers,
        file.forward_authorization.unwrap_or(true),
    )
    .map(|h| HeaderSettings {
        drop_underscore_headers: file.drop_underscore_headers.unwrap_or(false),
        ..h
    });
    let max_bytes = file.token.max_bytes.as_ref().map_or(8192, |m| m.value);
    if let Some(m) = &file.token.max_bytes
        && m.value == 0
    {
        p.at(m, "token.max_bytes: must be at least 1");
    }
    let dpop = compile_dpop(&mut p, &file.dpop, base);
    if file.dpop.public_url.is_none() {
        for (i, issuer) in file.issuers.value.iter().enumerate() {
            if let Some(mode) = &issuer.value.dpop
                && mode.value != DpopMode::Off
            {
                p.at(
                    mode,
                    format!("issuers[{i}].dpop: DPoP needs dpop.public_url (the URL clients address the API with)"),
                );
            }
        }
    }
    let client_cert_header =
        file.insecure_client_cert_header
            .as_ref()
            .and_then(|h| match identity_header(&h.value) {
                Ok(n) => Some(n),
                Err(why) => {
                    p.at(
                        h,
                        format!("insecure_client_cert_header: \"{}\" {why}", h.value),
                    );
                    None
                }
            });
    let cache_entries = file
        .token_cache
        .max_entries
        .as_ref()
        .map_or(100_000, |m| m.value);
    let protected_resource = file
        .protected_resource
        .as_ref()
        .and_then(|r| compile_protected_resource(&mut p, r, &issuers));
    let mut allowed_hosts = Vec::new();
    for host in &file.hosts.allowed {
        let name = host.value.to_ascii_lowercase();
        if name.is_empty()
            || http::uri::Authority::try_from(name.as_str()).is_err()
            || name.contains('@')
        {
            p.at(host, format!("hosts.allowed: \"{}\" is not a host name (expected e.g. api.exampleco.com or api.exampleco.com:8443)", host.value));
        } else {
            allowed_hosts.push(name);
        }
    }
    let defaults = UpstreamTimeouts::default();
    let mut upstream_timeouts = defaults;
    if let Some(t) = &file.upstream_timeouts {
        let secs = |v: Option<u64>, d: Duration| v.map_or(d, Duration::from_secs);
        upstream_timeouts = UpstreamTimeouts {
            connect: secs(t.value.connect_seconds, defaults.connect),
            read: secs(t.value.read_seconds, defaults.read),
            write: secs(t.value.write_seconds, defaults.write),
            idle: secs(t.value.idle_seconds, defaults.idle),
        };
        let u = &upstream_timeouts;
        if [u.connect, u.read, u.write, u.idle]
            .iter()
            .any(Duration::is_zero)
        {
            p.at(
                t,
                "upstream_timeouts: every timeout must be at least 1 second",
            );
        }
    }
    let client_header_timeout = Duration::from_secs(
        file.client_header_timeout_seconds
            .as_ref()
            .map_or(10, |t| t.value),
    );
    if let Some(t) = &file.client_header_timeout_seconds
        && t.value == 0
    {
        p.at(t, "client_header_timeout_seconds: must be at least 1");
    }
    let max_connections = file.max_connections.as_ref().map_or(10_000, |m| m.value);
    if let Some(m) = &file.max_connections
        && m.value == 0
    {
        p.at(m, "max_connections: must be at least 1");
    }
    let cache_bytes = file
        .token_cache
        .max_bytes
        .as_ref()
        .map_or(DEFAULT_TOKEN_CACHE_BYTES, |m| m.value);
    for bound in [&file.token_cache.max_bytes, &file.token_cache.max_entries]
        .into_iter()
        .flatten()
    {
        if bound.value == 0 {
            p.at(
                bound,
                "token_cache: bounds must be at least 1 (use enabled: false to turn the cache off)",
            );
        }
    }
    if !p.found.is_empty() {
        return Err(p.found);
    }
    let (Some(listen), Some(admin_listen), Some(upstream), Some(headers), Some(dpop)) =
        (listen, admin_listen, upstream, headers, dpop)
    else {
        p.whole("invalid configuration");
        return Err(p.found);
    };
    let allow_query = file.token.insecure_allow_query_parameter.unwrap_or(false);
    Ok(Settings {
        listen,
        listen_tls,
        admin_listen,
        upstream,
        upstream_ca_file: file.upstream_ca_file.map(|f| base.join(f)),
        policy: base.join(&file.policy),
        threads,
        grace_period: Duration::from_secs(file.grace_period_seconds.unwrap_or(20)),
        graceful_shutdown_timeout: Duration::from_secs(
            file.graceful_shutdown_timeout_seconds.unwrap_or(5),
        ),
        upgrade_socket: file
            .upgrade_socket
            .unwrap_or_else(crate::ops::runtime_dir::default_upgrade_socket),
        realm: file.realm.unwrap_or_else(|| "scopegate".into()),
        log_format: file.log_format.unwrap_or_default(),
        access_log: file.access_log.unwrap_or(true),
        issuers,
        headers,
        token: TokenRules {
            allow_query,
            max_bytes,
            accept_dpop: dpop.public_url.is_some(),
        },
        dpop,
        client_cert_header,
        token_cache_entries: file
            .token_cache
            .enabled
            .unwrap_or(true)
            .then_some(cache_entries as usize),
        protected_resource,
        token_cache_max_bytes: cache_bytes,
        upstream_timeouts,
        client_header_timeout,
        max_connections,
        max_request_body_bytes: file.max_request_body_bytes.unwrap_or(10 * 1024 * 1024),
        paths: PathRules {
            segment_parameters: file.paths.segment_parameters.unwrap_or_default(),
            allow_double_encoding: file.paths.insecure_allow_double_encoding.unwrap_or(false),
        },
        hosts: HostRules {
            absolute_form: file.hosts.absolute_form.unwrap_or_default(),
            allowed: allowed_hosts,
        },
        query: QueryRules {
            method_override: file.method_override_parameter.unwrap_or_default(),
            token_parameter: allow_query,
        },
    })
}

fn compile_threads(p: &mut Problems, value: Option<&Spanned<ThreadsFile>>) -> Threads {
    let Some(value) = value else {
        return Threads::Fixed(1);
    };
    match &value.value {
        ThreadsFile::Count(0) => p.at(value, "threads: must be at least 1"),
        ThreadsFile::Count(n) => return Threads::Fixed(*n),
        ThreadsFile::Word(w) if w == "auto" => return Threads::Auto,
        ThreadsFile::Word(w) => p.at(
            value,
            format!("threads: \"{w}\" is neither a number nor auto"),
        ),
    }
    Threads::Fixed(1)
}

fn address(
    p: &mut Problems,
    key: &str,
    value: Option<&Spanned<String>>,
    default: &str,
) -> Option<SocketAddr> {
    let Some(value) = value else {
        return default.parse().ok();
    };
    match value.value.parse() {
        Ok(addr) => Some(addr),
        Err(_) => {
            p.at(
                value,
                format!(
                    "{key}: \"{}\" is not an address (expected e.g. 0.0.0.0:8080)",
                    value.value
                ),
            );
            None
        }
    }
}

fn compile_issuer(
    p: &mut Problems,
    i: usize,
    spanned: &Spanned<IssuerFile>,
    base: &Path,
) -> Option<IssuerSettings> {
    let at = format!("issuers[{i}]");
    let issuer = &spanned.value;
    let mut ok = true;
    if issuer.audiences.value.is_empty() {
        p.at(
            &issuer.audiences,
            format!("{at}.audiences: at least one audience is required"),
        );
        ok = false;
    }
    let algorithms = issuer.algorithms.as_ref().map_or_else(
        || vec![Algorithm::RS256],
        |a| a.value.iter().map(|n| n.0).collect(),
    );
    if let Some(a) = &issuer.algorithms
        && a.value.is_empty()
    {
        p.at(
            a,
            format!("{at}.algorithms: at least one algorithm is required"),
        );
        ok = false;
    }
    let hmac = algorithms.iter().any(|a| is_hmac(*a));
    let insecure_http = issuer.insecure_allow_http.unwrap_or(false);
    if let Some(old) = &issuer.insecure_allow_http_jwks_uri {
        p.at(
            old,
            format!("{at}.insecure_allow_http_jwks_uri: renamed insecure_allow_http, which covers every URL fetched for the issuer (metadata, jwks_uri, introspection endpoint)"),
        );
        ok = false;
    }
    // One rule for every URL the gateway fetches from for this issuer.
    let fetch_url = |p: &mut Problems, key: &str, url: &Spanned<String>| match fetch_url_problem(
        &url.value,
        insecure_http,
    ) {
        None => true,
        Some(why) => {
            p.at(url, format!("{at}.{key}: {why}"));
            false
        }
    };
    let keys = match (&issuer.hmac_secret_file, hmac, &issuer.jwks_uri) {
        (None, true, _) => {
            let where_ = issuer.algorithms.as_ref();
            let message = format!(
                "{at}.algorithms: HS256/HS384/HS512 need hmac_secret_file (a JWKS never supplies HMAC secrets)"
            );
            match where_ {
                Some(a) => p.at(a, message),
                None => p.at(spanned, message),
            }
            None
        }
        (Some(file), false, _) => {
            p.at(
                file,
                format!("{at}.hmac_secret_file: set, but no HS* algorithm is allowed"),
            );
            None
        }
        (Some(file), true, _) => read_secret(p, &format!("{at}.hmac_secret_file"), file, base),
        (None, false, None) => Some(KeySource::Jwks { uri: None }),
        (None, false, Some(uri)) => fetch_url(p, "jwks_uri", uri).then(|| KeySource::Jwks {
            uri: Some(uri.value.clone()),
        }),
    };
    let scope_claims = issuer.scope_claims.as_ref().map_or_else(
        || DEFAULT_SCOPE_CLAIMS.map(String::from).to_vec(),
        |c| c.value.clone(),
    );
    if let Some(c) = &issuer.scope_claims
        && c.value.is_empty()
    {
        p.at(c, format!("{at}.scope_claims: name at least one claim"));
        ok = false;
    }
    let jwks = compile_jwks(p, &at, issuer.jwks.as_ref());
    if let Some(endpoint) = issuer
        .introspection
        .as_ref()
        .and_then(|i| i.value.endpoint.as_ref())
        && is_url(&endpoint.value)
        && !fetch_url(p, "introspection.endpoint", endpoint)
    {
        ok = false;
    }
    let introspection = issuer
        .introspection
        .as_ref()
        .map(|i| compile_introspection(p, &at, i, base));
    if let Some(None) = introspection {
        ok = false;
    }
    let introspection = introspection.flatten();
    // Metadata is discovered by the key set's refresher; a shared-secret issuer has none, so
    // its introspection endpoint would never be found.
    if let (Some(KeySource::Hmac { .. }), Some(i), Some(file)) =
        (&keys, &introspection, &issuer.introspection)
        && i.endpoint.is_none()
    {
        p.at(
            file,
            format!("{at}.introspection.endpoint: required with hmac_secret_file (an HMAC issuer's metadata is not discovered)"),
        );
        ok = false;
    }
    let discovery = matches!(keys, Some(KeySource::Jwks { uri: None }))
        || introspection.as_ref().is_some_and(|i| i.endpoint.is_none());
    if discovery && !is_url(&issuer.issuer.value) {
        p.at(
            &issuer.issuer,
            format!(
                "{at}.issuer: \"{}\" is not an http(s) URL, so its metadata cannot be discovered; set jwks_uri (and introspection.endpoint)",
                issuer.issuer.value
            ),
        );
        ok = false;
    } else if discovery && !fetch_url(p, "issuer", &issuer.issuer) {
        // Its metadata is read from the issuer's own URL.
        ok = false;
    }
    let (Some(keys), Some(jwks), true) = (keys, jwks, ok) else {
        return None;
    };
    Some(IssuerSettings {
        issuer: Arc::from(issuer.issuer.value.as_str()),
        label: issuer
            .name
            .clone()
            .unwrap_or_else(|| issuer.issuer.value.clone()),
        audiences: issuer.audiences.value.clone(),
        keys,
        discovery,
        introspection,
        algorithms,
        leeway: Duration::from_secs(issuer.leeway_seconds.unwrap_or(30)),
        scope_claims,
        jwks,
        dpop: issuer.dpop.as_ref().map_or(DpopMode::Off, |d| d.value),
        insecure_allow_http: insecure_http,
    })
}

/// The DPoP proof algorithms accepted unless configured: every asymmetric one the common
/// issuers' clients sign with (`EdDSA` under both its names, see
/// [`crate::auth::jws::ED25519`]). The demo's token endpoint accepts the same.
pub const DEFAULT_DPOP_ALGORITHMS: [Algorithm; 5] = [
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
    Algorithm::PS256,
    Algorithm::RS256,
];

fn compile_dpop(p: &mut Problems, d: &DpopFile, base: &Path) -> Option<DpopSettings> {
    let mut ok = true;
    let public_url = match &d.public_url {
        None => None,
        Some(url) => match split_upstream_url(&url.value) {
            Ok(_) => Some(url.value.trim_end_matches('/').to_owned()),
            Err(e) => {
                p.at(
                    url,
                    format!(
                        "dpop.public_url: {}",
                        e.replace(
                            "requests keep the path they were checked on",
                            "scheme and authority only"
                        )
                    ),
                );
                ok = false;
                None
            }
        },
    };
    let algorithms = d.algorithms.as_ref().map_or_else(
        || DEFAULT_DPOP_ALGORITHMS.to_vec(),
        |a| a.value.iter().map(|n| n.0).collect(),
    );
    if let Some(a) = &d.algorithms
        && (a.value.is_empty() || a.value.iter().any(|alg| is_hmac(alg.0)))
    {
        p.at(
            a,
            "dpop.algorithms: name at least one, and only asymmetric ones (a proof is signed with the client's private key)",
        );
        ok = false;
    }
    let iat_window = d.iat_window_seconds.as_ref().map_or(60, |w| w.value);
    if let Some(w) = &d.iat_window_seconds
        && w.value == 0
    {
        p.at(w, "dpop.iat_window_seconds: must be at least 1");
        ok = false;
    }
    let replay_cache_entries = d.replay_cache_entries.as_ref().map_or(100_000, |e| e.value);
    if let Some(e) = &d.replay_cache_entries
        && e.value == 0
    {
        p.at(e, "dpop.replay_cache_entries: must be at least 1");
        ok = false;
    }
    let nonce = match &d.nonce {
        None => None,
        Some(n) => {
            let window = n.value.window_seconds.as_ref().map_or(60, |w| w.value);
            if let Some(w) = &n.value.window_seconds
                && w.value == 0
            {
                p.at(w, "dpop.nonce.window_seconds: must be at least 1");
                ok = false;
            }
            match read_secret(p, "dpop.nonce.secret_file", &n.value.secret_file, base) {
                Some(KeySource::Hmac { secret }) => Some((secret, window)),
                _ => {
                    ok = false;
                    None
                }
            }
        }
    };
    ok.then_some(DpopSettings {
        public_url,
        algorithms,
        iat_window,
        replay_cache_entries: replay_cache_entries as usize,
        nonce,
    })
}

fn read_secret(
    p: &mut Problems,
    at: &str,
    file: &Spanned<std::path::PathBuf>,
    base: &Path,
) -> Option<KeySource> {
    let path = base.join(&file.value);
    let secret = match std::fs::read(&path) {
        Ok(s) => s,
        Err(e) => {
            p.at(file, format!("{at}: cannot read {}: {e}", path.display()));
            return None;
        }
    };
    let secret = trim_newline(&secret);
    if secret.len() < MIN_HMAC_SECRET {
        p.at(
            file,
            format!(
                "{at}: {} holds {} bytes; a secret needs at least {MIN_HMAC_SECRET}",
                path.display(),
                secret.len()
            ),
        );
        return None;
    }
    Some(KeySource::Hmac {
        secret: secret.to_vec(),
    })
}

fn trim_newline(secret: &[u8]) -> &[u8] {
    let end = secret
        .iter()
        .rposition(|b| !b"\r\n".contains(b))
        .map_or(0, |i| i + 1);
    &secret[..end]
}

fn compile_jwks(
    p: &mut Problems,
    at: &str,
    jwks: Option<&Spanned<JwksFile>>,
) -> Option<JwksTiming> {
    let defaults = JwksTiming::default();
    let Some(spanned) = jwks else {
        return Some(defaults);
    };
    let j = &spanned.value;
    let secs = |v: Option<u64>, d: Duration| v.map_or(d, Duration::from_secs);
    let timing = JwksTiming {
        refresh: secs(j.refresh_seconds, defaults.refresh),
        min_refresh: secs(j.min_refresh_seconds, defaults.min_refresh),
        max_refresh: secs(j.max_refresh_seconds, defaults.max_refresh),
        unknown_kid_refetch: secs(j.unknown_kid_refetch_seconds, defaults.unknown_kid_refetch),
        max_staleness: secs(j.max_staleness_seconds, defaults.max_staleness),
        fetch_timeout: secs(j.fetch_timeout_seconds, defaults.fetch_timeout),
        unknown_kid_wait: j
            .unknown_kid_wait_ms
            .map_or(defaults.unknown_kid_wait, Duration::from_millis),
    };
    let mut ok = true;
    if timing.min_refresh.is_zero() || timing.min_refresh > timing.max_refresh {
        p.at(
            spanned,
            format!("{at}.jwks: need 0 < min_refresh_seconds <= max_refresh_seconds"),
        );
        ok = false;
    }
    if timing.fetch_timeout.is_zero() {
        p.at(
            spanned,
            format!("{at}.jwks.fetch_timeout_seconds: must be at least 1"),
        );
        ok = false;
    }
    ok.then_some(timing)
}

fn is_url(value: &str) -> bool {
    value.starts_with("http://") || value.starts_with("https://")
}

fn compile_introspection(
    p: &mut Problems,
    at: &str,
    spanned: &Spanned<IntrospectionFile>,
    base: &Path,
) -> Option<IntrospectionSettings> {
    let i = &spanned.value;
    let mut ok = true;
    if let Some(endpoint) = &i.endpoint
        && !is_url(&endpoint.value)
    {
        p.at(
            endpoint,
            format!(
                "{at}.introspection.endpoint: \"{}\" is not an http(s) URL",
                endpoint.value
            ),
        );
        ok = false;
    }
    let timeout = i.timeout_ms.as_ref().map_or(2000, |t| t.value);
    if let Some(t) = &i.timeout_ms
        && t.value == 0
    {
        p.at(
            t,
            format!("{at}.introspection.timeout_ms: must be at least 1"),
        );
        ok = false;
    }
    let path = base.join(&i.client_secret_file.value);
    let secret = match std::fs::read_to_string(&path) {
        Ok(s) if !s.trim().is_empty() => Some(s.trim_end_matches(['\r', '\n']).to_owned()),
        Ok(_) => {
            p.at(
                &i.client_secret_file,
                format!(
                    "{at}.introspection.client_secret_file: {} is empty",
                    path.display()
                ),
            );
            None
        }
        Err(e) => {
            p.at(
                &i.client_secret_file,
                format!(
                    "{at}.introspection.client_secret_file: cannot read {}: {e}",
                    path.display()
                ),
            );
            None
        }
    };
    let cache_max_bytes = i.cache_max_bytes.as_ref().map_or(32 << 20, |b| b.value);
    if let Some(b) = &i.cache_max_bytes
        && b.value < 64 << 10
    {
        p.at(
            b,
            format!("{at}.introspection.cache_max_bytes: at least 65536 (64 KiB)"),
        );
        ok = false;
    }
    let (Some(client_secret), true) = (secret, ok) else {
        return None;
    };
    Some(IntrospectionSettings {
        endpoint: i.endpoint.as_ref().map(|e| e.value.clone()),
        client_id: i.client_id.clone(),
        client_secret,
        auth_method: i.auth_method.unwrap_or_default(),
        timeout: Duration::from_millis(timeout),
        cache_max: Duration::from_secs(i.cache_max_seconds.unwrap_or(120)),
        inactive_cache: Duration::from_secs(i.inactive_cache_seconds.unwrap_or(10)),
        cache_max_bytes,
    })
}

/// RFC 9728 §3.1: the metadata lives at the resource's origin, under
/// `/.well-known/oauth-protected-resource` followed by the resource's path, with only a
/// slash right after the host removed (`https://h/` → `…/oauth-protected-resource`,
/// `https://h/a/` → `…/oauth-protected-resource/a/`: RFC 8414's rule of dropping every
/// trailing slash is not this one).
fn compile_protected_resource(
    p: &mut Problems,
    spanned: &Spanned<ProtectedResourceFile>,
    issuers: &[IssuerSettings],
) -> Option<ProtectedResource> {
    let r = &spanned.value;
    let uri: http::Uri = match r.resource.value.parse() {
        Ok(u) => u,
        Err(_) => {
            p.at(
                &r.resource,
                format!(
                    "protected_resource.resource: \"{}\" is not a URL",
                    r.resource.value
                ),
            );
            return None;
        }
    };
    let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
        p.at(
            &r.resource,
            "protected_resource.resource: must be an absolute https URL (RFC 9728 §2)",
        );
        return None;
    };
    if scheme != "https" && !(scheme == "http" && is_loopback_url(&r.resource.value)) {
        p.at(
            &r.resource,
            format!(
                "protected_resource.resource: \"{}\" must be an https URL (RFC 9728 §1.2); plain http only on loopback",
                r.resource.value
            ),
        );
        return None;
    }
    if uri.query().is_some() || r.resource.value.contains('#') {
        p.at(
            &r.resource,
            "protected_resource.resource: must have no query or fragment (RFC 9728 §1.2)",
        );
        return None;
    }
    let suffix = match uri.path() {
        "/" => "",
        path => path,
    };
    let path = format!("/.well-known/oauth-protected-resource{suffix}");
    Some(ProtectedResource {
        resource: r.resource.value.clone(),
        resource_path: suffix.to_owned(),
        authorization_servers: r
            .authorization_servers
            .clone()
            .unwrap_or_else(|| issuers.iter().map(|i| i.issuer.to_string()).collect()),
        resource_name: r.resource_name.clone(),
        resource_documentation: r.resource_documentation.clone(),
        url: format!("{scheme}://{authority}{path}"),
        path,
    })
}

fn compile_headers(
    p: &mut Problems,
    h: &IdentityHeadersFile,
    strip: &[Spanned<String>],
    forward_authorization: bool,
) -> Option<HeaderSettings> {
    let mut ok = true;
    let mut name = |key: &str, value: Option<&Spanned<String>>, default: &str| {
        let Some(value) = value else {
            return HeaderName::from_bytes(default.as_bytes()).ok();
        };
        match identity_header(&value.value) {
            Ok(n) => Some(n),
            Err(why) => {
                p.at(value, format!("{key}: \"{}\" {why}", value.value));
                ok = false;
                None
            }
        }
    };
    let [
        subject,
        issuer,
        scopes,
        client_id,
        key_thumbprint,
        cert_thumbprint,
        dry_run,
    ] = [
        ("subject", &h.subject, "x-auth-subject"),
        ("issuer", &h.issuer, "x-auth-issuer"),
        ("scopes", &h.scopes, "x-auth-scopes"),
        ("client_id", &h.client_id, "x-auth-client-id"),
        ("key_thumbprint", &h.key_thumbprint, "x-auth-key-thumbprint"),
        (
            "cert_thumbprint",
            &h.cert_thumbprint,
            "x-auth-cert-thumbprint",
        ),
        ("dry_run", &h.dry_run, "x-scopegate-dry-run"),
    ]
    .map(|(key, value, default)| name(&format!("identity_headers.{key}"), value.as_ref(), default));
    let mut claims = Vec::new();
    for (claim, header) in &h.claims {
        if let Some(n) = name("identity_headers.claims", Some(header), "") {
            claims.push((claim.clone(), n));
        }
    }
    let mut stripped = Vec::new();
    for header in strip {
        if let Some(n) = name("strip_headers", Some(header), "") {
            stripped.push(n);
        }
    }
    let (
        Some(subject),
        Some(issuer),
        Some(scopes),
        Some(client_id),
        Some(key_thumbprint),
        Some(cert_thumbprint),
        Some(dry_run),
        true,
    ) = (
        subject,
        issuer,
        scopes,
        client_id,
        key_thumbprint,
        cert_thumbprint,
        dry_run,
        ok,
    )
    else {
        return None;
    };
    Some(HeaderSettings {
        subject,
        issuer,
        scopes,
        client_id,
        key_thumbprint,
        cert_thumbprint,
        dry_run,
        claims,
        strip: stripped,
        forward_authorization,
        drop_underscore_headers: false,
    })
}

/// A header name that may carry identity (or be stripped): a valid name, and not one the
/// request needs to be what it is.
fn identity_header(name: &str) -> Result<HeaderName, &'static str> {
    let parsed = HeaderName::from_bytes(name.as_bytes()).map_err(|_| "is not a header name")?;
    if parsed == http::header::AUTHORIZATION || parsed == http::header::HOST {
        return Err("cannot carry identity");
    }
    Ok(parsed)
}

/// Host, port and TLS of an upstream URL, checked for shape only (nothing is resolved).
fn split_upstream_url(url: &str) -> Result<UpstreamUrl, String> {
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
    Ok(UpstreamUrl {
        url: url.to_owned(),
        host,
        port,
        tls,
    })
}
