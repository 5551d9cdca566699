//! A cap on concurrent client connections: past `max_connections`, a new connection is
//! closed at once instead of taking memory and a task. The open count is a gauge.
//!
//! The cap is taken by the application wrapper that every connection already passes
//! through ([`crate::proxy::header_clock::HeaderDeadline`]), not by a wrapper of its own:
//! each wrapper is one more future that every wake-up of every connection polls through.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::ops::metrics::Metrics;

/// The connection cap.
pub struct ConnectionCap {
    permits: Arc<Semaphore>,
    metrics: Metrics,
}

/// A connection's place under the cap, given back (and counted closed) when dropped.
pub struct Admitted {
    _permit: OwnedSemaphorePermit,
    metrics: Metrics,
}

impl ConnectionCap {
    /// At most `max` connections at a time.
    pub fn new(max: usize, metrics: Metrics) -> ConnectionCap {
        ConnectionCap {
            permits: Arc::new(Semaphore::new(max)),
            metrics,
        }
    }

    /// A place for a new connection, or `None` (counted as refused) when all are taken:
    /// dropping the stream then closes it, the cheapest answer to a flood.
    pub fn admit(&self) -> Option<Admitted> {
        let Ok(permit) = self.permits.clone().try_acquire_owned() else {
            self.metrics.connection_refused();
            return None;
        };
        self.metrics.connection_opened();
        Some(Admitted {
            _permit: permit,
            metrics: self.metrics.clone(),
        })
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.metrics.connection_closed();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_place_is_given_back_when_its_connection_ends() {
        let cap = ConnectionCap::new(1, Metrics::new());
        let first = cap.admit().expect("a free place");
        assert!(cap.admit().is_none(), "the cap holds");
        drop(first);
        assert!(cap.admit().is_some(), "the place came back");
    }
}
