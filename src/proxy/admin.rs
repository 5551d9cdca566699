//! The admin listener: `/metrics`, `/healthz` and `/readyz`, apart from proxied traffic.

use std::sync::Arc;

use async_trait::async_trait;
use http::Response;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;

use crate::auth::jwks::KeyStore;
use crate::ops::metrics::Metrics;

/// The admin HTTP app.
pub struct Admin {
    metrics: Metrics,
    issuers: Vec<Arc<KeyStore>>,
}

impl Admin {
    /// An admin app reporting on `issuers`' keys. The policy is loaded before any listener
    /// opens, so readiness only waits for keys.
    pub fn new(metrics: Metrics, issuers: Vec<Arc<KeyStore>>) -> Admin {
        Admin { metrics, issuers }
    }

    /// Whether every issuer has usable keys, and the names of those that do not.
    pub fn readiness(&self) -> (bool, Vec<&str>) {
        let waiting: Vec<&str> = self
            .issuers
            .iter()
            .filter(|s| !s.is_ready())
            .map(|s| s.label.as_str())
            .collect();
        let ready = waiting.is_empty();
        self.metrics.set_ready(ready);
        for store in &self.issuers {
            let (keys, stale) = store.state();
            self.metrics.key_state(&store.label, keys, stale);
        }
        (ready, waiting)
    }
}

fn respond(status: u16, content_type: &str, body: Vec<u8>) -> Response<Vec<u8>> {
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, content_type)
        .header(http::header::CONTENT_LENGTH, body.len())
        .header(http::header::CACHE_CONTROL, "no-store")
        .body(body)
        .expect("static parts are valid")
}

#[async_trait]
impl ServeHttp for Admin {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        match session.req_header().uri.path() {
            "/metrics" => {
                self.readiness();
                respond(200, "text/plain; version=0.0.4", self.metrics.render())
            }
            "/healthz" => respond(200, "text/plain", b"ok\n".to_vec()),
            "/readyz" => {
                let (ready, waiting) = self.readiness();
                let body = serde_json::json!({
                    "ready": ready,
                    "issuers_without_keys": waiting,
                });
                respond(
                    if ready { 200 } else { 503 },
                    "application/json",
                    body.to_string().into_bytes(),
                )
            }
            _ => respond(404, "text/plain", b"not found\n".to_vec()),
        }
    }
}
