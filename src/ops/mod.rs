//! Running the gateway: what it records and what it watches.
//!
//! | file | job |
//! |---|---|
//! | [`access_log`] | the per-request line, buffered per worker thread, written by a thread of its own |
//! | [`access_line`] | that line formatted by hand, text or JSON |
//! | [`metrics`] | every Prometheus metric, written through named methods |
//! | [`resolved`] | request counters resolved once per worker thread, not per request |
//! | [`labels`] | the closed label sets of introspection and shared-store metrics |
//! | [`log_filter`] | pingora's log lines held at `info`: no headers, no tokens |
//! | [`trace`] | OpenTelemetry spans and their OTLP export; off means no work |
//! | [`watch`] | one folder watcher (events, debounce, poll) for policy and certificates |

pub mod access_line;
pub mod access_log;
pub mod labels;
pub mod log_filter;
pub mod metrics;
pub mod resolved;
pub mod trace;
pub mod watch;
