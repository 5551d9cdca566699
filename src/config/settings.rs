//! The gateway's settings as the code uses them: checked, with defaults applied, durations
//! as `Duration`, header names parsed and secrets read. Built only by [`super::compile`],
//! so `scopegate check` and `scopegate run` can never disagree about a file.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderName;
use jsonwebtoken::Algorithm;

pub use super::file::{ClientAuthMethod, LogFormat};
pub use crate::auth::dpop::{DpopMode, DpopSettings};
use crate::auth::token::TokenRules;
use crate::proxy::host::HostRules;
use crate::proxy::path::PathRules;
use crate::proxy::query::QueryRules;
use crate::proxy::upstream::UpstreamTimeouts;

/// Everything `scopegate run` needs, checked.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Plain-HTTP proxy listener.
    pub listen: SocketAddr,
    /// The TLS listener, if any.
    pub listen_tls: Option<TlsListener>,
    /// `/metrics`, `/healthz`, `/readyz`.
    pub admin_listen: SocketAddr,
    /// The one upstream, not yet resolved.
    pub upstream: UpstreamUrl,
    /// PEM bundle trusted for an `https` upstream; `None`: the system's roots.
    pub upstream_ca_file: Option<PathBuf>,
    /// The policy file.
    pub policy: PathBuf,
    /// Proxy worker threads.
    pub threads: Threads,
    /// Time requests in flight get after SIGTERM.
    pub grace_period: Duration,
    /// Time blocking work gets after the grace period.
    pub graceful_shutdown_timeout: Duration,
    /// Listener handover socket of an upgrade.
    pub upgrade_socket: PathBuf,
    /// `WWW-Authenticate` realm.
    pub realm: String,
    /// Log format.
    pub log_format: LogFormat,
    /// Whether each request gets an access-log line.
    pub access_log: bool,
    /// Trusted issuers, in file order.
    pub issuers: Vec<IssuerSettings>,
    /// The upstream header rewrite.
    pub headers: HeaderSettings,
    /// Where tokens may come from.
    pub token: TokenRules,
    /// Most tokens the verified-token cache keeps; `None`: the cache is off.
    pub token_cache_entries: Option<usize>,
    /// RFC 9728 metadata, when configured.
    pub protected_resource: Option<ProtectedResource>,
    /// DPoP proof checks.
    pub dpop: DpopSettings,
    /// The header a TLS-terminating proxy puts the client certificate in, if trusted.
    pub client_cert_header: Option<HeaderName>,
    /// About how many bytes the verified-token cache may hold.
    pub token_cache_max_bytes: u64,
    /// Path readings allowed beyond the defaults.
    pub paths: PathRules,
    /// The hosts served and absolute-form targets.
    pub hosts: HostRules,
    /// Query parameters refused or removed.
    pub query: QueryRules,
    /// How long the upstream is waited for.
    pub upstream_timeouts: UpstreamTimeouts,
    /// Longest a client may take to send a whole request header.
    pub client_header_timeout: Duration,
    /// Most client connections open at once.
    pub max_connections: usize,
    /// Largest request body forwarded, in bytes (413 beyond).
    pub max_request_body_bytes: u64,
}

/// RFC 9728 protected-resource metadata settings.
#[derive(Debug, Clone)]
pub struct ProtectedResource {
    /// The resource identifier.
    pub resource: String,
    /// Its path, `""` for an origin: the routes a challenge's metadata covers for clients
    /// that accept a resource identifier that is a path prefix of the URL they called.
    pub resource_path: String,
    /// The authorization servers listed.
    pub authorization_servers: Vec<String>,
    /// Human-readable name.
    pub resource_name: Option<String>,
    /// Documentation link.
    pub resource_documentation: Option<String>,
    /// Where the metadata is served on the gateway: `/.well-known/oauth-protected-resource`
    /// followed by the resource identifier's path (RFC 9728 §3.1).
    pub path: String,
    /// The metadata's URL, as named in challenges (`resource_metadata`).
    pub url: String,
}

/// How many proxy worker threads to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Threads {
    /// This many.
    Fixed(usize),
    /// As many as the container's CPU limit allows (`crate::ops::cpus`), decided at start-up.
    Auto,
}

/// A TLS listener.
#[derive(Debug, Clone)]
pub struct TlsListener {
    /// Address.
    pub address: SocketAddr,
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
    /// Authorities client certificates are verified against; `None`: none is asked for.
    pub client_ca: Option<PathBuf>,
    /// Longest a TLS handshake may take, from the accept.
    pub handshake_timeout: Duration,
}

/// The upstream's URL, checked for shape only: a configuration can be checked where its
/// upstream's name does not resolve (a Kubernetes Service name outside the cluster).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamUrl {
    /// As written.
    pub url: String,
    /// Host name (without brackets for IPv6).
    pub host: String,
    /// Port.
    pub port: u16,
    /// Whether to speak TLS.
    pub tls: bool,
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

impl UpstreamUrl {
    /// Resolves the host once, at start-up.
    pub fn resolve(&self) -> Result<Upstream, String> {
        let address = (self.host.as_str(), self.port)
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve \"{}\": {e}", self.host))?
            .next()
            .ok_or_else(|| format!("\"{}\" resolves to no address", self.host))?;
        Ok(Upstream {
            address,
            tls: self.tls,
            host: self.host.clone(),
        })
    }
}

/// One trusted issuer.
#[derive(Debug, Clone)]
pub struct IssuerSettings {
    /// Exact `iss`.
    pub issuer: Arc<str>,
    /// Metric label: the configured name, else the issuer URL.
    pub label: String,
    /// Accepted `aud` values.
    pub audiences: Vec<String>,
    /// Where its keys come from.
    pub keys: KeySource,
    /// Read the issuer's metadata (RFC 8414 / OpenID Connect Discovery) for the key set
    /// URL and the introspection endpoint that are not configured.
    pub discovery: bool,
    /// Token introspection, when configured.
    pub introspection: Option<IntrospectionSettings>,
    /// Algorithms accepted from it.
    pub algorithms: Vec<Algorithm>,
    /// Clock skew tolerated on `exp`, `nbf` and `iat`.
    pub leeway: Duration,
    /// Claims whose union makes a token's scopes.
    pub scope_claims: Vec<String>,
    /// Key set refresh and fetch bounds.
    pub jwks: JwksTiming,
    /// DPoP for its tokens.
    pub dpop: DpopMode,
    /// Plain `http://` is allowed off loopback for every URL fetched for it (metadata, key
    /// set, introspection).
    pub insecure_allow_http: bool,
}

/// Where an issuer's verification keys come from.
#[derive(Clone)]
pub enum KeySource {
    /// Its JWK Set, fetched and refreshed.
    Jwks {
        /// The set's URL; `None`: from discovery.
        uri: Option<String>,
    },
    /// A shared secret for its HS* algorithms, read from a file.
    Hmac {
        /// The secret (at least 32 bytes).
        secret: Vec<u8>,
    },
}

impl std::fmt::Debug for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeySource::Jwks { uri } => f.debug_struct("Jwks").field("uri", uri).finish(),
            // A secret never reaches a log line, not even through `{:?}`.
            KeySource::Hmac { .. } => f.write_str("Hmac { secret: <redacted> }"),
        }
    }
}

/// Bounds of an issuer's key set lifecycle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwksTiming {
    /// Refresh interval when the server sends no `Cache-Control: max-age`.
    pub refresh: Duration,
    /// Shortest refresh interval.
    pub min_refresh: Duration,
    /// Longest refresh interval.
    pub max_refresh: Duration,
    /// Least time between two fetches caused by unknown `kid`s.
    pub unknown_kid_refetch: Duration,
    /// Keys not refreshed for this long are dropped.
    pub max_staleness: Duration,
    /// Timeout of one fetch.
    pub fetch_timeout: Duration,
    /// Longest a request with an unknown `kid` waits for the refetch it caused.
    pub unknown_kid_wait: Duration,
}

/// Token introspection (RFC 7662) for one issuer.
#[derive(Clone)]
pub struct IntrospectionSettings {
    /// The endpoint; `None`: from discovery.
    pub endpoint: Option<String>,
    /// The gateway's client id.
    pub client_id: String,
    /// The client secret.
    pub client_secret: String,
    /// How the client authenticates.
    pub auth_method: ClientAuthMethod,
    /// Timeout of one call.
    pub timeout: Duration,
    /// Longest an active result is cached.
    pub cache_max: Duration,
    /// How long an inactive result is cached.
    pub inactive_cache: Duration,
    /// Bytes of cached results, at most.
    pub cache_max_bytes: u64,
}

impl std::fmt::Debug for IntrospectionSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secret never reaches a log line, not even through `{:?}`.
        f.debug_struct("IntrospectionSettings")
            .field("endpoint", &self.endpoint)
            .field("client_id", &self.client_id)
            .field("auth_method", &self.auth_method)
            .field("timeout", &self.timeout)
            .field("cache_max", &self.cache_max)
            .finish_non_exhaustive()
    }
}

impl Default for JwksTiming {
    fn default() -> Self {
        JwksTiming {
            refresh: Duration::from_secs(300),
            min_refresh: Duration::from_secs(60),
            max_refresh: Duration::from_secs(3600),
            unknown_kid_refetch: Duration::from_secs(30),
            max_staleness: Duration::from_secs(86_400),
            fetch_timeout: Duration::from_secs(5),
            unknown_kid_wait: Duration::from_millis(1000),
        }
    }
}

/// The upstream header rewrite, with every name parsed.
#[derive(Debug, Clone)]
pub struct HeaderSettings {
    /// Header for `sub`.
    pub subject: HeaderName,
    /// Header for `iss`.
    pub issuer: HeaderName,
    /// Header for the scopes.
    pub scopes: HeaderName,
    /// Header for `client_id` / `azp`.
    pub client_id: HeaderName,
    /// Header for the DPoP key thumbprint.
    pub key_thumbprint: HeaderName,
    /// Header for the client certificate thumbprint.
    pub cert_thumbprint: HeaderName,
    /// Header marking a dry-run refusal that is forwarded, with its reason.
    pub dry_run: HeaderName,
    /// Claim → header, in claim-name order.
    pub claims: Vec<(String, HeaderName)>,
    /// Further headers removed before forwarding.
    pub strip: Vec<HeaderName>,
    /// Whether the client's `Authorization` goes upstream.
    pub forward_authorization: bool,
    /// Drop every request header whose name has an underscore (lookalikes of stripped
    /// names are always dropped).
    pub drop_underscore_headers: bool,
}
