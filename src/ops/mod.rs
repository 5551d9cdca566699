//! Running the gateway: what it records and what it watches.
//!
//! | file | job |
//! |---|---|
//! | [`metrics`] | every Prometheus metric, written through named methods |
//! | [`log_filter`] | pingora's log lines held at `info`: no headers, no tokens |
//! | [`runtime_dir`] | the default upgrade socket's private folder |
//! | [`watch`] | one folder watcher (events, debounce, poll) for policy and certificates |

pub mod log_filter;
pub mod metrics;
pub mod runtime_dir;
pub mod watch;
