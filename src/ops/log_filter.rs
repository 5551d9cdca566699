//! What pingora may log. At `debug`, pingora prints whole request headers (an
//! `Authorization` header, a query-string token); so pingora's own targets are held at
//! `info` whatever `RUST_LOG` asks for, and its request summaries (in error lines) are the
//! gateway's, without the query (see `phases.rs`). No log line carries a token.

use tracing_subscriber::EnvFilter;

/// pingora's crates, each capped at `info` (a directive for the exact target replaces one
/// from `RUST_LOG`; `pingora` covers the rest by prefix).
const PINGORA_TARGETS: [&str; 12] = [
    "pingora",
    "pingora_core",
    "pingora_proxy",
    "pingora_http",
    "pingora_pool",
    "pingora_error",
    "pingora_runtime",
    "pingora_timeout",
    "pingora_rustls",
    "pingora_cache",
    "pingora_header_serde",
    "pingora_load_balancing",
];

/// `filter` with pingora's targets capped at `info`.
pub fn cap_pingora(mut filter: EnvFilter) -> EnvFilter {
    for target in PINGORA_TARGETS {
        if let Ok(directive) = format!("{target}=info").parse() {
            filter = filter.add_directive(directive);
        }
    }
    filter
}
