//! A cap on concurrent client connections: past `max_connections`, a new connection is
//! closed at once instead of taking memory and a task. The open count is a gauge.

use std::sync::Arc;

use async_trait::async_trait;
use pingora::apps::ServerApp;
use pingora::protocols::Stream;
use pingora::server::ShutdownWatch;
use tokio::sync::Semaphore;

use crate::ops::metrics::Metrics;

/// Wraps the proxy application with the connection cap.
pub struct ConnectionLimit<A> {
    inner: Arc<A>,
    permits: Arc<Semaphore>,
    metrics: Metrics,
}

impl<A> ConnectionLimit<A> {
    /// `inner`, serving at most `max` connections at a time.
    pub fn new(inner: A, max: usize, metrics: Metrics) -> ConnectionLimit<A> {
        ConnectionLimit {
            inner: Arc::new(inner),
            permits: Arc::new(Semaphore::new(max)),
            metrics,
        }
    }
}

#[async_trait]
impl<A: ServerApp + Send + Sync + 'static> ServerApp for ConnectionLimit<A> {
    async fn process_new(
        self: &Arc<Self>,
        session: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let Ok(permit) = self.permits.clone().try_acquire_owned() else {
            // Dropping the stream closes it: the cheapest answer to a flood.
            self.metrics.connection_refused();
            return None;
        };
        self.metrics.connection_opened();
        let reuse = self.inner.process_new(session, shutdown).await;
        self.metrics.connection_closed();
        drop(permit);
        reuse
    }

    async fn cleanup(&self) {
        self.inner.cleanup().await;
    }
}
