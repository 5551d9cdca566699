//! The gateway's settings as the code uses them: checked, with defaults applied, durations
//! as `Duration`, header names parsed and secrets read. Built only by [`super::compile`],
//! so `scopegate check` and `scopegate run` can never disagree about a file.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderName;
use jsonwebtoken::Algorithm;

pub use super::file::{
    ClientAuthMethod, LogFormat, StoreErrorMode, UpstreamHeaderCase, UpstreamProtocol,
};
use serde::Deserialize;

use crate::ground::Secret;
use crate::ground::path::PathRules;
use crate::ground::query::QueryRules;

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
    /// The protocol spoken to the upstream.
    pub upstream_protocol: UpstreamProtocol,
    /// How header names are written to an HTTP/1.1 upstream.
    pub upstream_header_case: UpstreamHeaderCase,
    /// HTTP/2 from clients.
    pub http2: Http2Settings,
    /// Longest a client may take to send a whole request header.
    pub client_header_timeout: Duration,
    /// Most client connections open at once.
    pub max_connections: usize,
    /// Largest request body forwarded, in bytes (413 beyond).
    pub max_request_body_bytes: u64,
    /// The store replicas share; `None`: every replica keeps its own state.
    pub shared_store: Option<SharedStoreSettings>,
    /// OpenTelemetry export; `None`: tracing is off and costs nothing.
    pub tracing: Option<TracingSettings>,
}

/// The Valkey/Redis store replicas share, checked.
#[derive(Debug, Clone)]
pub struct SharedStoreSettings {
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Whether to speak TLS (`rediss://`).
    pub tls: bool,
    /// PEM bundle trusted for TLS, read at start-up; `None`: the system's roots.
    pub ca_pem: Option<Vec<u8>>,
    /// ACL user name.
    pub username: Option<String>,
    /// The password, read from its file.
    pub password: Option<Secret>,
    /// Database number.
    pub database: u32,
    /// Timeout of one connection attempt.
    pub connect_timeout: Duration,
    /// Timeout of one command: the longest a request waits on the store.
    pub command_timeout: Duration,
    /// Prefix of every key.
    pub key_prefix: String,
    /// What DPoP proofs get while the store does not answer.
    pub on_error: StoreErrorMode,
}

/// OpenTelemetry trace export (OTLP).
#[derive(Debug, Clone)]
pub struct TracingSettings {
    /// Where spans go: the full traces URL for `http/protobuf`, the base for `grpc`.
    pub endpoint: String,
    /// The OTLP transport.
    pub protocol: OtlpProtocol,
    /// Headers sent with every export; values are secrets (API keys).
    pub headers: Vec<(String, Secret)>,
    /// Share of new traces recorded (parent-based: a client's sampled flag wins).
    pub sampling_ratio: f64,
    /// Most finished spans waiting for export.
    pub queue_size: usize,
    /// Longest one export may take.
    pub export_timeout: Duration,
    /// Time between exports of what has queued (sooner when a batch is full).
    pub export_interval: Duration,
    /// `service.name`, `service.version`, `k8s.pod.name`, `k8s.namespace.name`: the
    /// resource every span carries.
    pub resource: Vec<(&'static str, String)>,
}

/// The OTLP transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpProtocol {
    /// Protobuf over HTTP (`http/protobuf`), port 4318 by convention.
    HttpProtobuf,
    /// gRPC (`grpc`), port 4317 by convention.
    Grpc,
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
    /// As many as the container's CPU limit allows (`crate::config::cpus`), decided at start-up.
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
#[derive(Debug, Clone)]
pub enum KeySource {
    /// Its JWK Set, fetched and refreshed.
    Jwks {
        /// The set's URL; `None`: from discovery.
        uri: Option<String>,
    },
    /// A shared secret for its HS* algorithms, read from a file.
    Hmac {
        /// The secret (at least 32 bytes).
        secret: Secret,
    },
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
#[derive(Debug, Clone)]
pub struct IntrospectionSettings {
    /// The endpoint; `None`: from discovery.
    pub endpoint: Option<String>,
    /// The gateway's client id.
    pub client_id: String,
    /// The client secret.
    pub client_secret: Secret,
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

/// Whether DPoP is accepted or required, for an issuer or a route. Ordered: where an
/// issuer and a route both say something, the stricter applies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DpopMode {
    /// The `DPoP` scheme is not accepted; bearer tokens are.
    #[default]
    Off,
    /// DPoP-bound tokens with proofs and plain bearer tokens are both accepted.
    Allowed,
    /// Only DPoP-bound tokens with proofs are accepted.
    Required,
}

/// DPoP's settings, checked.
#[derive(Debug, Clone)]
pub struct DpopSettings {
    /// Scheme and authority clients address the API with, e.g. `https://api.exampleco.com`;
    /// `None`: DPoP is off everywhere.
    pub public_url: Option<String>,
    /// Algorithms a proof may be signed with.
    pub algorithms: Vec<Algorithm>,
    /// Seconds `iat` may lie before now.
    pub iat_window: u64,
    /// Seconds `iat` may lie after now (clock skew).
    pub iat_future_skew: u64,
    /// Most proofs the replay cache remembers.
    pub replay_cache_entries: usize,
    /// Server nonces: the shared secret and the window length in seconds.
    pub nonce: Option<(Secret, u64)>,
}

/// Where a token may come from, and how large it may be.
#[derive(Debug, Clone)]
pub struct TokenRules {
    /// Accept `?access_token=` as well as the header.
    pub allow_query: bool,
    /// Longest token accepted, in bytes.
    pub max_bytes: usize,
    /// Read `Authorization: DPoP <token>` too (RFC 9449 §7.1); otherwise that scheme counts
    /// as no credentials, like any other.
    pub accept_dpop: bool,
}

/// What to do with an absolute-form request target.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AbsoluteForm {
    /// Forward in origin-form with the target's authority as `Host`.
    #[default]
    Rewrite,
    /// Refuse with 400.
    Reject,
}

/// The operator's host rules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostRules {
    /// Absolute-form targets.
    pub absolute_form: AbsoluteForm,
    /// Hosts served, lower-case: `name` (any port) or `name:port`. Empty: any host.
    pub allowed: Vec<String>,
}

/// How long the gateway waits on the upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpstreamTimeouts {
    /// To establish a connection (TCP, and TLS for an `https` upstream).
    pub connect: Duration,
    /// For each read of the answer: a silent upstream is given up after this.
    pub read: Duration,
    /// For each write of the request.
    pub write: Duration,
    /// A pooled (kept-alive) connection unused for this long is closed.
    pub idle: Duration,
}

impl Default for UpstreamTimeouts {
    fn default() -> Self {
        UpstreamTimeouts {
            connect: Duration::from_secs(5),
            read: Duration::from_secs(60),
            write: Duration::from_secs(60),
            idle: Duration::from_secs(60),
        }
    }
}

/// The claims whose union makes a token's scopes unless an issuer names others: OAuth's
/// `scope` (RFC 8693 §4.2), `scp` (Okta, Entra ID) and `permissions` (Auth0 RBAC).
pub const DEFAULT_SCOPE_CLAIMS: [&str; 3] = ["scope", "scp", "permissions"];

/// HTTP/2 from clients, checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Http2Settings {
    /// The plain listener accepts h2c with prior knowledge.
    pub h2c: bool,
    /// The TLS listener offers `h2` by ALPN.
    pub tls: bool,
    /// Streams open at once per connection.
    pub max_concurrent_streams: u32,
    /// Largest decoded header list of one request, in bytes.
    pub max_header_list_bytes: u32,
    /// An idle HTTP/2 connection is closed after this long.
    pub idle_timeout: Duration,
}
