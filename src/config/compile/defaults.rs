//! Every default of `scopegate.yaml` the compiler applies, named once; README's
//! configuration reference lists the same values.

use std::time::Duration;

/// `listen`.
pub const LISTEN: &str = "0.0.0.0:8080";
/// `admin_listen`.
pub const ADMIN_LISTEN: &str = "0.0.0.0:9090";
/// `token.max_bytes`: longer than any real access token, far shorter than a header limit.
pub const TOKEN_MAX_BYTES: usize = 8192;
/// `token_cache.max_entries`.
pub const TOKEN_CACHE_ENTRIES: u64 = 100_000;
/// `token_cache.max_bytes`: a quarter of a 256 MiB sidecar.
pub const TOKEN_CACHE_BYTES: u64 = 64 * 1024 * 1024;
/// `client_header_timeout_seconds`.
pub const CLIENT_HEADER_TIMEOUT_SECONDS: u64 = 10;
/// `max_connections`.
pub const MAX_CONNECTIONS: usize = 10_000;
/// `max_request_body_bytes`.
pub const MAX_REQUEST_BODY_BYTES: u64 = 10 * 1024 * 1024;
/// `grace_period_seconds`: long enough for a load balancer to see `/readyz` fail.
pub const GRACE_PERIOD: Duration = Duration::from_secs(20);
/// `graceful_shutdown_timeout_seconds`.
pub const GRACEFUL_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);
/// `realm`.
pub const REALM: &str = "scopegate";
/// `threads`.
pub const THREADS: usize = 1;
/// `http2.max_concurrent_streams`: pingora's own bound.
pub const H2_MAX_CONCURRENT_STREAMS: u32 = 100;
/// `http2.max_header_list_bytes`: pingora's own bound.
pub const H2_MAX_HEADER_LIST_BYTES: u32 = 64 * 1024;
/// `http2.idle_timeout_seconds`.
pub const H2_IDLE_TIMEOUT_SECONDS: u64 = 60;
/// `listen_tls.handshake_timeout_seconds`.
pub const TLS_HANDSHAKE_TIMEOUT_SECONDS: u64 = 10;
/// Shortest HMAC secret accepted: as long as the SHA-256 output (RFC 7518 §3.2).
pub const MIN_HMAC_SECRET: usize = 32;
/// `dpop.iat_future_skew_seconds`: clock skew, not a second window.
pub const DPOP_IAT_FUTURE_SKEW_SECONDS: u64 = 5;
/// `shared_store.connect_timeout_ms`.
pub const STORE_CONNECT_TIMEOUT_MS: u64 = 500;
/// `shared_store.command_timeout_ms`: a loopback or in-zone round trip is well under 1 ms.
pub const STORE_COMMAND_TIMEOUT_MS: u64 = 250;
/// `shared_store.key_prefix`.
pub const STORE_KEY_PREFIX: &str = "scopegate:";
