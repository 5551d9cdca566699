//! Running the gateway: what it records and what it watches.
//!
//! | file | job |
//! |---|---|
//! | [`metrics`] | every Prometheus metric, written through named methods |
//! | [`watch`] | one folder watcher (events, debounce, poll) for policy and certificates |

pub mod metrics;
pub mod watch;
