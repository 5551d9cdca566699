//! Running the gateway: what it records and what it watches.
//!
//! | file | job |
//! |---|---|
//! | [`metrics`] | every Prometheus metric, written through named methods |
//! | [`runtime_dir`] | the default upgrade socket's private folder |
//! | [`watch`] | one folder watcher (events, debounce, poll) for policy and certificates |

pub mod metrics;
pub mod runtime_dir;
pub mod watch;
