//! The background service that keeps an issuer's key set fresh: discovery first when the
//! key set's URL is discovered, then the key set, on the server's `max-age` within bounds,
//! and at once when a token names an unknown `kid`.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use super::{KeyStore, MAX_JWKS_BYTES, VerifyKey, parse_jwks};
use crate::auth::fetch::{self, FetchError};
use crate::ops::metrics::Metrics;
use crate::ops::trace::{FutureExt as _, Tracing, names};

/// `Cache-Control: max-age`, if present.
fn max_age(headers: &reqwest::header::HeaderMap) -> Option<u64> {
    let value = headers.get(reqwest::header::CACHE_CONTROL)?.to_str().ok()?;
    value.split(',').find_map(|d| {
        let (name, v) = d.trim().split_once('=')?;
        name.eq_ignore_ascii_case("max-age")
            .then(|| v.trim().trim_matches('"').parse().ok())
            .flatten()
    })
}

/// The background task that keeps one issuer's [`KeyStore`] fresh.
pub struct JwksRefresher {
    store: Arc<KeyStore>,
    /// The configured key set URL; `None`: discovery's.
    uri: Option<String>,
    /// The issuer whose metadata is read before each fetch, when it is discovered.
    discover: Option<String>,
    /// The issuer's `insecure_allow_http`: what discovered endpoints may be.
    insecure_allow_http: bool,
    client: reqwest::Client,
    metrics: Metrics,
    /// Each refresh a trace of its own, when tracing is on.
    tracing: Option<Tracing>,
}

impl JwksRefresher {
    /// A refresher for `store`, fetching from `uri`, or from the `jwks_uri` of issuer
    /// `discover`'s metadata, read again before each fetch; with `insecure_allow_http` the
    /// metadata may name plain-http endpoints on other hosts.
    pub fn new(
        store: Arc<KeyStore>,
        uri: Option<String>,
        discover: Option<String>,
        insecure_allow_http: bool,
        metrics: Metrics,
    ) -> JwksRefresher {
        let client = fetch::client(store.timing.fetch_timeout);
        JwksRefresher {
            store,
            uri,
            discover,
            insecure_allow_http,
            client,
            metrics,
            tracing: None,
        }
    }

    /// Records each refresh as a span (with its discovery and key-set fetches inside).
    pub fn with_tracing(mut self, tracing: Option<Tracing>) -> JwksRefresher {
        self.tracing = tracing;
        self
    }

    /// Fetches once (the metadata first, when discovered) and installs the keys on
    /// success; returns the server's `max-age`. Requests waiting for a refetch are woken
    /// when it ends, whatever its result.
    pub async fn refresh(&self) -> Result<Option<u64>, FetchError> {
        let result = match &self.tracing {
            None => self.refresh_once().await,
            Some(tracing) => {
                let span = tracing.background(
                    names::JWKS_REFRESH,
                    &[("scopegate.issuer", &self.store.label)],
                );
                let result = self.refresh_once().with_context(span.context()).await;
                span.end(result.as_ref().err().map(|_| "refresh failed"));
                result
            }
        };
        self.store.fetch_ended();
        result
    }

    async fn refresh_once(&self) -> Result<Option<u64>, FetchError> {
        let label = self.store.label.as_str();
        let uri = match self.key_set_url().await {
            Ok(uri) => uri,
            Err(e) => {
                self.metrics.jwks_failed(label);
                tracing::warn!(issuer = %label, error = %e, "issuer discovery failed");
                return Err(e);
            }
        };
        match self.fetch(&uri).await {
            Ok((keys, skipped, age)) => {
                let n = self.store.install(keys);
                self.metrics.jwks_refreshed(label);
                tracing::info!(issuer = %label, keys = n, skipped, max_age = ?age, "JWKS refreshed");
                Ok(age)
            }
            Err(e) => {
                self.metrics.jwks_failed(label);
                let usable = self.store.is_ready();
                tracing::warn!(issuer = %label, error = %e, keeping_keys = usable, "JWKS refresh failed");
                Err(e)
            }
        }
    }

    /// The configured key set URL, or the one of the issuer's metadata (read now; if that
    /// fails, the last one read keeps serving).
    async fn key_set_url(&self) -> Result<Arc<String>, FetchError> {
        if let Some(issuer) = &self.discover {
            let endpoints = &self.store.endpoints;
            match crate::auth::discovery::discover(&self.client, issuer, self.insecure_allow_http)
                .await
            {
                Ok(metadata) => {
                    endpoints.jwks_uri.store(metadata.jwks_uri.map(Arc::new));
                    endpoints
                        .introspection
                        .store(metadata.introspection_endpoint.map(Arc::new));
                }
                Err(e) if self.uri.is_none() && endpoints.jwks_uri.load().is_none() => {
                    return Err(e);
                }
                Err(e) => {
                    tracing::warn!(issuer = %self.store.label, error = %e, "issuer discovery failed; keeping the endpoints found before");
                }
            }
        }
        match &self.uri {
            Some(uri) => Ok(Arc::new(uri.clone())),
            None => self.store.endpoints.jwks_uri.load_full().ok_or_else(|| {
                FetchError::Invalid("the issuer's metadata names no jwks_uri".into())
            }),
        }
    }

    async fn fetch(&self, uri: &str) -> Result<(Vec<VerifyKey>, usize, Option<u64>), FetchError> {
        let request = self.client.get(uri).header(
            reqwest::header::ACCEPT,
            "application/jwk-set+json, application/json",
        );
        let fetched = fetch::bounded(request, MAX_JWKS_BYTES).await?;
        let age = max_age(&fetched.headers);
        let (keys, skipped) = parse_jwks(&fetched.body, &self.store.allowed)?;
        Ok((keys, skipped, age))
    }

    /// The next regular refresh, from the server's `max-age` clamped to the bounds.
    fn next_interval(&self, max_age: Option<u64>) -> Duration {
        let t = &self.store.timing;
        max_age
            .map_or(t.refresh, Duration::from_secs)
            .clamp(t.min_refresh, t.max_refresh)
    }
}

#[async_trait]
impl BackgroundService for JwksRefresher {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        // Retry quickly at start-up and after failures, doubling up to the regular interval.
        let first_backoff = Duration::from_millis(250);
        let mut backoff = first_backoff;
        loop {
            let wait = match self.refresh().await {
                Ok(age) => {
                    backoff = first_backoff;
                    self.next_interval(age)
                }
                Err(_) => {
                    let wait = backoff;
                    backoff =
                        (backoff * 2).min(self.next_interval(None).min(Duration::from_secs(30)));
                    wait
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.store.refetch.notified() => {
                    if self.store.refetch_pending.swap(false, Ordering::AcqRel) {
                        self.metrics.jwks_unknown_kid_refetch(&self.store.label);
                        tracing::info!(issuer = %self.store.label, "unknown key id: refetching JWKS");
                    }
                }
                _ = shutdown.changed() => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_age_is_read_from_cache_control() {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert(
            "cache-control",
            "public, max-age=600, must-revalidate".parse().unwrap(),
        );
        assert_eq!(max_age(&h), Some(600));
    }
}
