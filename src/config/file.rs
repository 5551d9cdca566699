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

use crate::proxy::host::AbsoluteForm;
use crate::proxy::path::SegmentParameters;
use crate::proxy::query::MethodOverride;

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
    /// Policy file, relative to this file's folder. Required.
    pub policy: PathBuf,
    /// Worker threads of the proxy. Default `1` (a sidecar shares its pod's cores).
    pub threads: Option<Spanned<usize>>,
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
    /// Most client connections open at once; more are closed at once. Default `10000`.
    pub max_connections: Option<Spanned<usize>>,
    /// Largest request body forwarded, in bytes. Default `10485760` (10 MiB).
    pub max_request_body_bytes: Option<u64>,
    /// How long the upstream is waited for, in seconds.
    pub upstream_timeouts: Option<Spanned<UpstreamTimeoutsFile>>,
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
    /// Where the issuer publishes its JSON Web Key Set. Required unless an HMAC secret is set.
    pub jwks_uri: Option<Spanned<String>>,
    /// Algorithms accepted from this issuer. Default `[RS256]`.
    pub algorithms: Option<Spanned<Vec<Algorithm>>>,
    /// Clock skew tolerated on `exp`, `nbf` and `iat`, in seconds. Default `30`.
    pub leeway_seconds: Option<u64>,
    /// Claims whose union makes the token's scopes. Default `[scope, scp, permissions]`.
    pub scope_claims: Option<Spanned<Vec<String>>>,
    /// File holding a shared secret for HS256/384/512. Default: none.
    pub hmac_secret_file: Option<Spanned<PathBuf>>,
    /// Key set refresh and fetch bounds.
    pub jwks: Option<Spanned<JwksFile>>,
    /// Accept an `http://` `jwks_uri` on a host other than loopback. Default `false`.
    pub insecure_allow_http_jwks_uri: Option<bool>,
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
