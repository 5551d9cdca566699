//! HTTP/2 from clients: h2c with prior knowledge on the plain listener when configured
//! (ALPN `h2` on the TLS listener is set where the listener is built), and the bounds every
//! HTTP/2 connection gets.
//!
//! What pingora and the `h2` crate already bound, and what is set here:
//!
//! - concurrent streams per connection and the decoded header list: set here from
//!   `http2.*` (pingora's own defaults are 100 and 64 KiB);
//! - the rapid-reset pattern (CVE-2023-44487): `h2` caps streams reset by the client
//!   before they were accepted (20 pending) and answers more with `GOAWAY`;
//! - CONTINUATION floods (CVE-2024-27316): `h2` stops reading a header block beyond the
//!   header-list bound and resets the connection;
//! - an idle connection (no stream open): closed after `http2.idle_timeout_seconds`;
//! - `max_connections` counts an HTTP/2 connection once, whatever its streams.

use pingora::apps::HttpServerOptions;
use pingora::protocols::http::v2::server::H2Options;

use crate::config::Http2Settings;

/// pingora's server options: h2c and the idle timeout of HTTP/2 connections.
pub fn server_options(settings: &Http2Settings) -> HttpServerOptions {
    let mut options = HttpServerOptions::default();
    options.h2c = settings.h2c;
    options.h2_idle_timeout = Some(settings.idle_timeout);
    options
}

/// The `h2` server's settings.
pub fn h2_options(settings: &Http2Settings) -> H2Options {
    let mut options = pingora::protocols::http::v2::server::default_h2_options();
    options.max_concurrent_streams(settings.max_concurrent_streams);
    options.max_header_list_size(settings.max_header_list_bytes);
    options
}
