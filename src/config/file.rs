//! `scopegate.yaml` as written: plain serde types, strict (unknown keys are errors with
//! their line and column), with the positions of every value a later check may refuse.
//!
//! These types never leave `config/`: [`super::compile`] turns them into
//! [`super::Settings`], the only form the rest of the gateway reads. Defaults are applied
//! there, so a field here is `None` exactly when the file does not set it.

use std::collections::BTreeMap;
use std::path::PathBuf;

use jsonwebtoken::Algorithm;
use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::config::AbsoluteForm;
use crate::ground::path::SegmentParameters;
use crate::ground::query::MethodOverride;

/// The whole configuration file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// Schema version. Required; only `1` exists.
    pub version: Spanned<u32>,
    /// Plain-HTTP proxy listener. Default `0.0.0.0:8080`.
    pub listen: Option<Spanned<String>>,
    /// Optional TLS listener terminated by scopegate itself. Default: none.
    pub listen_tls: Option<Spanned<TlsListenerFile>>,
    /// Listener for `/metrics`, `/healthz` and `/readyz`. Default `0.0.0.0:9090`.
    pub admin_listen: Option<Spanned<String>>,
    /// The one upstream, `http://host:port` or `https://host[:port]`. Required.
    pub upstream: Spanned<String>,
    /// PEM bundle of the authorities trusted for an `https` upstream. Default: system roots.
    pub upstream_ca_file: Option<PathBuf>,
    /// The protocol spoken to the upstream: `http1`, or `h2` (by ALPN over `https`, with
    /// prior knowledge (h2c) over `http`; what a gRPC backend needs). Default `http1`.
    pub upstream_protocol: Option<UpstreamProtocol>,
    /// How header names are written to an HTTP/1.1 upstream: `lowercase`, or `preserve`
    /// (each name as the client spelled it). Default `lowercase`.
    pub upstream_header_case: Option<UpstreamHeaderCase>,
    /// HTTP/2 from clients. Default: offered by ALPN on `listen_tls`, h2c off.
    #[serde(default)]
    pub http2: Http2File,
    /// Policy file, relative to this file's folder. Required.
    pub policy: PathBuf,
    /// Worker threads of the proxy: a number, or `auto` (the container's CPU limit).
    /// Default `1` (a sidecar shares its pod's cores).
    pub threads: Option<Spanned<ThreadsFile>>,
    /// Seconds requests in flight get to finish after SIGTERM. Default `20`.
    pub grace_period_seconds: Option<u64>,
    /// Seconds blocking work gets after the grace period. Default `5`.
    pub graceful_shutdown_timeout_seconds: Option<u64>,
    /// Socket for the listener handover of an upgrade. Default
    /// `$XDG_RUNTIME_DIR/scopegate/upgrade.sock`, else `/tmp/scopegate-<uid>/upgrade.sock`.
    pub upgrade_socket: Option<PathBuf>,
    /// Realm in `WWW-Authenticate` challenges. Default `scopegate`.
    pub realm: Option<String>,
    /// Log format: `text` or `json`. Default `text`.
    pub log_format: Option<LogFormat>,
    /// One log line per request. Default `true`.
    pub access_log: Option<bool>,
    /// Trusted token issuers. At least one is required.
    pub issuers: Spanned<Vec<Spanned<IssuerFile>>>,
    /// Names of the headers that carry the verified identity upstream.
    #[serde(default)]
    pub identity_headers: IdentityHeadersFile,
    /// Forward the client's `Authorization` header upstream. Default `true`.
    pub forward_authorization: Option<bool>,
    /// Where tokens are read from and how large they may be.
    #[serde(default)]
    pub token: TokenFile,
    /// The verified-token cache.
    #[serde(default)]
    pub token_cache: TokenCacheFile,
    /// Further request headers removed before forwarding. Default: none.
    #[serde(default)]
    pub strip_headers: Vec<Spanned<String>>,
    /// Serve RFC 9728 protected-resource metadata and point challenges at it. Default: off.
    pub protected_resource: Option<Spanned<ProtectedResourceFile>>,
    /// DPoP (RFC 9449) proof checks.
    #[serde(default)]
    pub dpop: DpopFile,
    /// A request header a TLS-terminating proxy sets to the client certificate
    /// (URL-encoded PEM), trusted from any peer. Default: none.
    pub insecure_client_cert_header: Option<Spanned<String>>,
    /// Drop every request header with `_` in its name. Default `false` (only names that
    /// read as a stripped header with `_` for `-` are dropped).
    pub drop_underscore_headers: Option<bool>,
    /// Path readings some backends need.
    #[serde(default)]
    pub paths: PathsFile,
    /// The hosts served and absolute-form targets.
    #[serde(default)]
    pub hosts: HostsFile,
    /// The `_method` query parameter: `reject` or `strip`. Default `reject`.
    pub method_override_parameter: Option<MethodOverride>,
    /// Longest a client may take to send a whole request header, in seconds. Default `10`.
    pub client_header_timeout_seconds: Option<Spanned<u64>>,
    /// Most client connections open at once; more are closed at once. Default `10000`.
    pub max_connections: Option<Spanned<usize>>,
    /// Largest request body forwarded, in bytes. Default `10485760` (10 MiB).
    pub max_request_body_bytes: Option<u64>,
    /// How long the upstream is waited for, in seconds.
    pub upstream_timeouts: Option<Spanned<UpstreamTimeoutsFile>>,
    /// A Valkey/Redis store the replicas share, for single-use DPoP proofs and
    /// introspection answers across the fleet. Default: none (each replica alone).
    pub shared_store: Option<Spanned<SharedStoreFile>>,
    /// OpenTelemetry traces exported over OTLP. Default: off, unless
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set.
    #[serde(default)]
    pub tracing: TracingFile,
}

/// The store replicas share (Valkey or Redis).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SharedStoreFile {
    /// `redis://host[:port]` or `rediss://host[:port]` (TLS), without credentials or
    /// database. Required.
    pub url: Spanned<String>,
    /// PEM bundle trusted for `rediss://`. Default: the system's roots.
    pub ca_file: Option<Spanned<PathBuf>>,
    /// ACL user name. Default: none (the `default` user).
    pub username: Option<String>,
    /// File holding the password. Default: none.
    pub password_file: Option<Spanned<PathBuf>>,
    /// Database number. Default `0`.
    pub database: Option<u32>,
    /// Timeout of one connection attempt, in milliseconds. Default `500`.
    pub connect_timeout_ms: Option<Spanned<u64>>,
    /// Timeout of one command, in milliseconds: the longest a request waits on the store.
    /// Default `250`.
    pub command_timeout_ms: Option<Spanned<u64>>,
    /// Prefix of every key written. Default `scopegate:`.
    pub key_prefix: Option<String>,
    /// What a DPoP proof gets while the store does not answer: `deny` (503 with
    /// `Retry-After`) or `local` (the replica's own replay cache, and nonces). Default
    /// `deny`.
    pub on_error: Option<StoreErrorMode>,
}

/// What DPoP proofs get while the shared store does not answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreErrorMode {
    /// Refused with 503 and `Retry-After`: a proof is never accepted twice in the fleet.
    #[default]
    Deny,
    /// Checked against the replica's own replay cache only: available, but a proof may be
    /// accepted once per replica during the outage.
    Local,
}

/// OpenTelemetry traces. Every key falls back to its `OTEL_*` variable, then its default.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TracingFile {
    /// The collector's OTLP base URL, e.g. `http://otel-collector:4318` (`/v1/traces` is
    /// appended for `http/protobuf`). Default `OTEL_EXPORTER_OTLP_ENDPOINT`; neither: off.
    pub endpoint: Option<Spanned<String>>,
    /// `http/protobuf` or `grpc`. Default `OTEL_EXPORTER_OTLP_PROTOCOL`, else
    /// `http/protobuf`.
    pub protocol: Option<Spanned<String>>,
    /// File of headers sent with every export (`name=value`, one a line or comma-separated,
    /// values percent-encoded as in `OTEL_EXPORTER_OTLP_HEADERS`): where an API key goes.
    /// Default: `OTEL_EXPORTER_OTLP_HEADERS`, else none.
    pub headers_file: Option<Spanned<PathBuf>>,
    /// Share of new traces recorded, 0.0 to 1.0; a request that continues a client's trace
    /// follows the client's sampled flag (parent-based). Default `1.0`.
    pub sampling_ratio: Option<Spanned<f64>>,
    /// `service.name`. Default `OTEL_SERVICE_NAME`, else `scopegate`.
    pub service_name: Option<String>,
    /// Most finished spans waiting for export; more are dropped and counted. Default `2048`.
    pub queue_size: Option<Spanned<usize>>,
    /// Longest one export may take, in milliseconds. Default `10000`.
    pub export_timeout_ms: Option<Spanned<u64>>,
    /// Milliseconds between exports (sooner when 512 spans are waiting). Default `5000`.
    pub export_interval_ms: Option<Spanned<u64>>,
}

/// RFC 9728 protected-resource metadata.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProtectedResourceFile {
    /// The resource identifier: the API's https URL as clients know it. Required.
    pub resource: Spanned<String>,
    /// Authorization servers to list. Default: every configured issuer.
    pub authorization_servers: Option<Vec<String>>,
    /// Human-readable name. Default: none.
    pub resource_name: Option<String>,
    /// A link to the API's documentation. Default: none.
    pub resource_documentation: Option<String>,
}

/// Token introspection (RFC 7662) for one issuer.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntrospectionFile {
    /// The introspection endpoint. Default: `introspection_endpoint` from discovery.
    pub endpoint: Option<Spanned<String>>,
    /// The gateway's client id at the authorization server. Required.
    pub client_id: String,
    /// File holding the client secret. Required.
    pub client_secret_file: Spanned<PathBuf>,
    /// `client_secret_basic` or `client_secret_post`. Default `client_secret_basic`.
    pub auth_method: Option<ClientAuthMethod>,
    /// Timeout of one introspection call, in milliseconds. Default `2000`.
    pub timeout_ms: Option<Spanned<u64>>,
    /// Longest an active result is cached, in seconds: revocation takes effect within it.
    /// Default `120`.
    pub cache_max_seconds: Option<u64>,
    /// How long an inactive result is cached, in seconds. Default `10`.
    pub inactive_cache_seconds: Option<u64>,
    /// Bytes of cached results, at most. Default `33554432` (32 MiB).
    pub cache_max_bytes: Option<Spanned<u64>>,
}

/// How the gateway authenticates to the introspection endpoint (RFC 7591 names).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuthMethod {
    /// HTTP Basic with the client id and secret.
    #[default]
    ClientSecretBasic,
    /// `client_id` and `client_secret` in the form body.
    ClientSecretPost,
}

/// DPoP proof checks.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DpopFile {
    /// Scheme and authority clients address the API with. Required for DPoP.
    pub public_url: Option<Spanned<String>>,
    /// Algorithms a proof may be signed with (`Ed25519` and `EdDSA` name one algorithm).
    /// Default `[ES256, ES384, EdDSA, PS256, RS256]`, advertised as
    /// `ES256 ES384 Ed25519 EdDSA PS256 RS256`.
    pub algorithms: Option<Spanned<Vec<AlgorithmName>>>,
    /// Seconds a proof's `iat` may differ from now. Default `60`.
    pub iat_window_seconds: Option<Spanned<u64>>,
    /// Most proofs the replay cache remembers. Default `100000`.
    pub replay_cache_entries: Option<Spanned<u64>>,
    /// Seconds a proof's `iat` may lie in the future (clock skew). Default `5`.
    pub iat_future_skew_seconds: Option<u64>,
    /// Server-provided nonces. Default: none.
    pub nonce: Option<Spanned<NonceFile>>,
}

/// Server-provided DPoP nonces.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NonceFile {
    /// File holding the secret (≥ 32 bytes) every replica shares. Required.
    pub secret_file: Spanned<PathBuf>,
    /// Seconds per nonce window. Default `60`.
    pub window_seconds: Option<Spanned<u64>>,
}

/// HTTP/2 from clients.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Http2File {
    /// The plain listener accepts HTTP/2 with prior knowledge (h2c), as meshes and gRPC
    /// clients inside a cluster send it. Default `false`.
    pub h2c: Option<bool>,
    /// `listen_tls` offers `h2` beside `http/1.1` by ALPN. Default `true`.
    pub tls: Option<bool>,
    /// Streams one connection may have open at once. Default `100`.
    pub max_concurrent_streams: Option<Spanned<u32>>,
    /// Largest decoded header list of one request, in bytes. Default `65536`.
    pub max_header_list_bytes: Option<Spanned<u32>>,
    /// An HTTP/2 connection with no stream open for this long is closed. Default `60`.
    pub idle_timeout_seconds: Option<Spanned<u64>>,
}

/// The protocol spoken to the upstream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UpstreamProtocol {
    /// HTTP/1.1.
    #[default]
    Http1,
    /// HTTP/2: ALPN `h2` over TLS, prior knowledge (h2c) over plain TCP.
    H2,
}

/// How header names are written to an HTTP/1.1 upstream. Names are case-insensitive (RFC
/// 9110 §5.1) and HTTP/2 has only lower case: only a backend that reads them by their exact
/// spelling needs `preserve`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UpstreamHeaderCase {
    /// Every name in lower case, as HTTP/2 writes them (and Envoy does by default): the
    /// request is rewritten in one header map.
    #[default]
    Lowercase,
    /// Each name as the client spelled it (the gateway's own in lower case). pingora
    /// keeps a second, case-preserving map in step for this, about 5k instructions more
    /// per request.
    Preserve,
}

/// Upstream timeouts in seconds; each at least 1.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamTimeoutsFile {
    /// Connection (and TLS handshake). Default `5`.
    pub connect_seconds: Option<u64>,
    /// Each read of the answer. Default `60`.
    pub read_seconds: Option<u64>,
    /// Each write of the request. Default `60`.
    pub write_seconds: Option<u64>,
    /// Unused pooled connections are closed after this. Default `60`.
    pub idle_seconds: Option<u64>,
}

/// The hosts served.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostsFile {
    /// Accepted `Host` values, `name` (any port) or `name:port`. Default: any host.
    #[serde(default)]
    pub allowed: Vec<Spanned<String>>,
    /// Absolute-form targets: `rewrite` (origin-form, its authority as `Host`) or
    /// `reject`. Default `rewrite`.
    pub absolute_form: Option<AbsoluteForm>,
}

/// Path readings some backends need; the defaults refuse what a backend could read
/// differently from the gateway.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PathsFile {
    /// `;` parameters: `reject_dot_segments`, `strip` or `reject`. Default
    /// `reject_dot_segments`.
    pub segment_parameters: Option<SegmentParameters>,
    /// Forward `%252e`, `%252f`, `%255c`. Default `false`.
    pub insecure_allow_double_encoding: Option<bool>,
}

/// A TLS listener (PEM files, re-read when they change).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsListenerFile {
    /// Address to listen on, e.g. `0.0.0.0:8443`. Required.
    pub address: Spanned<String>,
    /// PEM certificate chain. Required.
    pub cert: PathBuf,
    /// PEM private key. Required.
    pub key: PathBuf,
    /// PEM authorities client certificates are verified against; set, the listener asks
    /// for a client certificate (optional for the client). Default: none.
    pub client_ca_file: Option<PathBuf>,
    /// Longest a client may take to complete the TLS handshake, from the accept.
    /// Default `10`.
    pub handshake_timeout_seconds: Option<Spanned<u64>>,
}

/// `threads:` as written: a count, or a word (only `auto` is accepted).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum ThreadsFile {
    /// A fixed count.
    Count(usize),
    /// `auto`.
    Word(String),
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
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerFile {
    /// Exact `iss` value, e.g. `https://exampleco.eu.auth0.com/`. Required.
    pub issuer: Spanned<String>,
    /// Short name used as the metric label. Default: the issuer URL.
    pub name: Option<String>,
    /// Accepted `aud` values, compared exactly. At least one is required.
    pub audiences: Spanned<Vec<String>>,
    /// Where the issuer publishes its JSON Web Key Set. Default: `jwks_uri` from the
    /// issuer's discovery metadata (unless an HMAC secret is set).
    pub jwks_uri: Option<Spanned<String>>,
    /// Opaque tokens (and routes with `introspect: always`) checked by introspection.
    /// Default: none.
    pub introspection: Option<Spanned<IntrospectionFile>>,
    /// Algorithms accepted from this issuer (`Ed25519` and `EdDSA` name one algorithm).
    /// Default `[RS256]`.
    pub algorithms: Option<Spanned<Vec<AlgorithmName>>>,
    /// Clock skew tolerated on `exp`, `nbf` and `iat`, in seconds. Default `30`.
    pub leeway_seconds: Option<u64>,
    /// Claims whose union makes the token's scopes. Default `[scope, scp, permissions]`.
    pub scope_claims: Option<Spanned<Vec<String>>>,
    /// File holding a shared secret for HS256/384/512. Default: none.
    pub hmac_secret_file: Option<Spanned<PathBuf>>,
    /// Key set refresh and fetch bounds.
    pub jwks: Option<Spanned<JwksFile>>,
    /// DPoP for this issuer's tokens: `off`, `allowed` or `required`. Default `off`.
    pub dpop: Option<Spanned<crate::config::DpopMode>>,
    /// Fetch this issuer's metadata, key set and introspection endpoint over plain
    /// `http://` on a host other than loopback. Default `false`.
    pub insecure_allow_http: Option<bool>,
    /// Renamed `insecure_allow_http` (which covers every URL fetched for the issuer);
    /// refused with a hint.
    pub insecure_allow_http_jwks_uri: Option<Spanned<bool>>,
}

/// Bounds of an issuer's key set lifecycle, in seconds.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwksFile {
    /// Refresh interval when the server sends no `Cache-Control: max-age`. Default `300`.
    pub refresh_seconds: Option<u64>,
    /// Shortest refresh interval, whatever `max-age` says. Default `60`.
    pub min_refresh_seconds: Option<u64>,
    /// Longest refresh interval, whatever `max-age` says. Default `3600`.
    pub max_refresh_seconds: Option<u64>,
    /// Least time between two fetches caused by unknown `kid`s. Default `30`.
    pub unknown_kid_refetch_seconds: Option<u64>,
    /// Keys not refreshed for this long are dropped: fail closed. Default `86400`.
    pub max_staleness_seconds: Option<u64>,
    /// Timeout of one fetch. Default `5`.
    pub fetch_timeout_seconds: Option<u64>,
    /// Longest a request with an unknown `kid` waits for the refetch it caused, in
    /// milliseconds. Default `1000`.
    pub unknown_kid_wait_ms: Option<u64>,
}

/// Header names for the verified identity. All are removed from client requests first.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityHeadersFile {
    /// Default `X-Auth-Subject`.
    pub subject: Option<Spanned<String>>,
    /// Default `X-Auth-Issuer`.
    pub issuer: Option<Spanned<String>>,
    /// Space-separated scopes. Default `X-Auth-Scopes`.
    pub scopes: Option<Spanned<String>>,
    /// Default `X-Auth-Client-Id`.
    pub client_id: Option<Spanned<String>>,
    /// The DPoP key thumbprint (`cnf.jkt`). Default `X-Auth-Key-Thumbprint`.
    pub key_thumbprint: Option<Spanned<String>>,
    /// The client certificate thumbprint (`cnf.x5t#S256`). Default `X-Auth-Cert-Thumbprint`.
    pub cert_thumbprint: Option<Spanned<String>>,
    /// Set only on a request a dry-run route forwards although it would refuse it, to the
    /// refusal's reason. Default `X-Scopegate-Dry-Run`.
    pub dry_run: Option<Spanned<String>>,
    /// Claim name → header name, e.g. `https://api.exampleco.com/email: X-Auth-Email`.
    /// Default: none.
    #[serde(default)]
    pub claims: BTreeMap<String, Spanned<String>>,
}

/// Where tokens come from.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenFile {
    /// Also accept `?access_token=` (RFC 6750 §2.3). Default `false`.
    pub insecure_allow_query_parameter: Option<bool>,
    /// Longest token accepted, in bytes. Default `8192`.
    pub max_bytes: Option<Spanned<usize>>,
}

/// The verified-token cache.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenCacheFile {
    /// Default `true`.
    pub enabled: Option<bool>,
    /// Most tokens kept. Default `100000`.
    pub max_entries: Option<Spanned<u64>>,
    /// Most bytes the cached tokens and identities take. Default `67108864` (64 MiB).
    pub max_bytes: Option<Spanned<u64>>,
}

/// A JOSE algorithm name as the configuration writes it: jsonwebtoken's names, and
/// `Ed25519` (RFC 9864) for EdDSA on Ed25519 keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlgorithmName(pub Algorithm);

impl<'de> Deserialize<'de> for AlgorithmName {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        crate::ground::alg::algorithm_named(&name)
            .map(AlgorithmName)
            .ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "unknown algorithm \"{name}\" (expected one of RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, Ed25519, EdDSA, HS256, HS384, HS512)"
                ))
            })
    }
}
