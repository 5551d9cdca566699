//! Every metric scopegate exposes, in one place, and written only through the named methods
//! below: a value is set in exactly one place. What can be read off the live state at scrape
//! time (keys loaded, staleness, readiness) is computed then, not tracked.
//!
//! Labels come from closed sets only: route ids and issuer names from configuration,
//! decisions and reasons from [`crate::ground::Outcome`] and [`crate::ground::Reason`]. Never a raw path, subject,
//! token or URL. Each gateway owns its registry, so several can live in one process.

pub use super::labels::{IntrospectionResult, StoreFallback, StoreOp, StoreResult};
use std::sync::Arc;
use std::time::Duration;

use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::ground::UpstreamFault;
use crate::ground::{Outcome, Reason};

/// The gateway's metrics.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// This registry's number, for the per-thread request counters ([`super::resolved`]).
    registry_id: u64,
    /// `scopegate_requests_total{route, decision, reason}`.
    requests: IntCounterVec,
    /// `scopegate_auth_duration_seconds{decision="allow"}`: time to decide, not to proxy.
    /// (Both children are resolved once: a label lookup per request costs more than the
    /// observation.)
    auth_duration_allow: Histogram,
    /// `scopegate_auth_duration_seconds{decision="deny"}`.
    auth_duration_deny: Histogram,
    /// `scopegate_upstream_errors_total{kind}`: allowed requests the upstream failed.
    upstream_errors: IntCounterVec,
    /// `scopegate_jwks_refreshes_total{issuer, result}`.
    jwks_refreshes: IntCounterVec,
    /// `scopegate_jwks_keys{issuer}`: usable keys loaded.
    jwks_keys: IntGaugeVec,
    /// `scopegate_jwks_last_success_timestamp_seconds{issuer}`.
    jwks_last_success: prometheus::GaugeVec,
    /// `scopegate_jwks_unknown_kid_refetches_total{issuer}`.
    jwks_unknown_kid_refetches: IntCounterVec,
    /// `scopegate_jwks_stale{issuer}`: 1 when keys passed the maximum staleness.
    jwks_stale: IntGaugeVec,
    /// `scopegate_policy_reloads_total{result}`.
    policy_reloads: IntCounterVec,
    /// `scopegate_policy_routes`.
    policy_routes: IntGauge,
    /// `scopegate_policy_last_reload_success_timestamp_seconds`.
    policy_last_success: Gauge,
    /// `scopegate_policy_info{hash}`: 1 for the live policy's SHA-256.
    policy_info: IntGaugeVec,
    /// `scopegate_token_cache_requests_total{result="hit"}`.
    token_cache_hits: IntCounter,
    /// `scopegate_token_cache_requests_total{result="miss"}`.
    token_cache_misses: IntCounter,
    /// `scopegate_token_cache_evictions_total`: entries pushed out by the byte or entry
    /// bound.
    token_cache_evictions: IntCounter,
    /// `scopegate_ready`: 1 when `/readyz` would say ready.
    ready: IntGauge,
    /// `scopegate_introspection_requests_total{issuer, result}`.
    introspection_calls: IntCounterVec,
    /// `scopegate_introspection_duration_seconds{issuer}`.
    introspection_duration: HistogramVec,
    /// `scopegate_introspection_cache_requests_total{issuer, result}`.
    introspection_cache: IntCounterVec,
    /// `scopegate_access_log_dropped_lines_total`: access lines the writer could not keep
    /// up with.
    access_log_dropped: IntCounter,
    /// `scopegate_trace_spans_dropped_total{reason="queue_full"}`: spans the export queue
    /// had no room for.
    spans_dropped_queue: IntCounter,
    /// `scopegate_trace_spans_dropped_total{reason="export_failed"}`: spans in batches the
    /// collector did not take.
    spans_dropped_export: IntCounter,
    /// `scopegate_trace_spans_exported_total`: spans the collector took.
    spans_exported: IntCounter,
    /// `scopegate_requests_by_protocol_total{protocol="http1"}`.
    requests_http1: IntCounter,
    /// `scopegate_requests_by_protocol_total{protocol="h2"}`.
    requests_h2: IntCounter,
    /// `scopegate_connections`: client connections open on the proxy listeners.
    connections: IntGauge,
    /// `scopegate_connections_refused_total`: connections closed at `max_connections`.
    connections_refused: IntCounter,
    /// `scopegate_client_header_timeouts_total`: connections closed for a slow header.
    header_timeouts: IntCounter,
    /// `scopegate_tls_handshake_timeouts_total`: connections closed for a slow handshake.
    handshake_timeouts: IntCounter,
    /// `scopegate_shared_store_requests_total{op, result}`.
    store_calls: IntCounterVec,
    /// `scopegate_shared_store_duration_seconds{op}`.
    store_duration: HistogramVec,
    /// `scopegate_shared_store_fallbacks_total{use}`: requests answered without the store
    /// because it did not answer.
    store_fallbacks: IntCounterVec,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let reg = |c: Box<dyn prometheus::core::Collector>| {
            registry.register(c).expect("metric names are unique");
        };
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            let m = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            reg(Box::new(m.clone()));
            m
        };
        let gauge_vec = |name: &str, help: &str, labels: &[&str]| {
            let m = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
            reg(Box::new(m.clone()));
            m
        };
        let requests = counter_vec(
            "scopegate_requests_total",
            "Requests by policy route, decision (allow, deny, error) and reason.",
            &["route", "decision", "reason"],
        );
        let auth_duration = HistogramVec::new(
            HistogramOpts::new(
                "scopegate_auth_duration_seconds",
                "Time from request headers to the authorization decision.",
            )
            .buckets(vec![
                0.000_005, 0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001,
                0.002_5, 0.005, 0.01,
            ]),
            &["decision"],
        )
        .expect("valid metric");
        reg(Box::new(auth_duration.clone()));
        let auth_duration_allow = auth_duration.with_label_values(&["allow"]);
        let auth_duration_deny = auth_duration.with_label_values(&["deny"]);
        let upstream_errors = counter_vec(
            "scopegate_upstream_errors_total",
            "Allowed requests that failed at the upstream, by kind (connect, timeout, reset, protocol).",
            &["kind"],
        );
        for kind in UpstreamFault::ALL {
            upstream_errors.with_label_values(&[kind.as_str()]);
        }
        let jwks_refreshes = counter_vec(
            "scopegate_jwks_refreshes_total",
            "JWKS fetches by issuer and result (success, failure).",
            &["issuer", "result"],
        );
        let jwks_keys = gauge_vec(
            "scopegate_jwks_keys",
            "Usable signing keys loaded per issuer.",
            &["issuer"],
        );
        let jwks_last_success = prometheus::GaugeVec::new(
            Opts::new(
                "scopegate_jwks_last_success_timestamp_seconds",
                "Unix time of the issuer's last successful JWKS fetch.",
            ),
            &["issuer"],
        )
        .expect("valid metric");
        reg(Box::new(jwks_last_success.clone()));
        let jwks_unknown_kid_refetches = counter_vec(
            "scopegate_jwks_unknown_kid_refetches_total",
            "JWKS fetches triggered by tokens with an unknown key id.",
            &["issuer"],
        );
        let jwks_stale = gauge_vec(
            "scopegate_jwks_stale",
            "1 when the issuer's keys passed the maximum staleness and are not used.",
            &["issuer"],
        );
        let policy_reloads = counter_vec(
            "scopegate_policy_reloads_total",
            "Policy loads by result (success, failure).",
            &["result"],
        );
        let policy_routes = IntGauge::new("scopegate_policy_routes", "Routes in the live policy.")
            .expect("valid metric");
        reg(Box::new(policy_routes.clone()));
        let policy_last_success = Gauge::new(
            "scopegate_policy_last_reload_success_timestamp_seconds",
            "Unix time the live policy was loaded.",
        )
        .expect("valid metric");
        reg(Box::new(policy_last_success.clone()));
        let policy_info = gauge_vec(
            "scopegate_policy_info",
            "1, labelled with the SHA-256 of the live policy file.",
            &["hash"],
        );
        let cache = counter_vec(
            "scopegate_token_cache_requests_total",
            "Verified-token cache lookups by result (hit, miss).",
            &["result"],
        );
        let token_cache_evictions = IntCounter::new(
            "scopegate_token_cache_evictions_total",
            "Verified tokens evicted from the cache to stay within its byte and entry bounds.",
        )
        .expect("valid metric");
        reg(Box::new(token_cache_evictions.clone()));
        let connections = IntGauge::new(
            "scopegate_connections",
            "Client connections open on the proxy listeners.",
        )
        .expect("valid metric");
        reg(Box::new(connections.clone()));
        let connections_refused = IntCounter::new(
            "scopegate_connections_refused_total",
            "Client connections closed at once because max_connections were open.",
        )
        .expect("valid metric");
        reg(Box::new(connections_refused.clone()));
        let header_timeouts = IntCounter::new(
            "scopegate_client_header_timeouts_total",
            "Client connections closed because a request header took longer than client_header_timeout_seconds.",
        )
        .expect("valid metric");
        reg(Box::new(header_timeouts.clone()));
        let handshake_timeouts = IntCounter::new(
            "scopegate_tls_handshake_timeouts_total",
            "Client connections closed because their TLS handshake took longer than listen_tls.handshake_timeout_seconds.",
        )
        .expect("valid metric");
        reg(Box::new(handshake_timeouts.clone()));
        let ready = IntGauge::new(
            "scopegate_ready",
            "1 when the policy is loaded and every issuer has usable keys.",
        )
        .expect("valid metric");
        reg(Box::new(ready.clone()));
        let introspection_calls = counter_vec(
            "scopegate_introspection_requests_total",
            "Calls to an issuer's introspection endpoint by result (active, inactive, error, no_endpoint).",
            &["issuer", "result"],
        );
        let introspection_duration = HistogramVec::new(
            HistogramOpts::new(
                "scopegate_introspection_duration_seconds",
                "Time of one call to an introspection endpoint.",
            )
            .buckets(vec![
                0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ]),
            &["issuer"],
        )
        .expect("valid metric");
        reg(Box::new(introspection_duration.clone()));
        let introspection_cache = counter_vec(
            "scopegate_introspection_cache_requests_total",
            "Introspection cache lookups by issuer and result (hit, miss).",
            &["issuer", "result"],
        );
        let access_log_dropped = IntCounter::new(
            "scopegate_access_log_dropped_lines_total",
            "Access-log lines dropped because the log writer fell behind (requests are never delayed).",
        )
        .expect("valid metric");
        reg(Box::new(access_log_dropped.clone()));
        let spans_dropped = counter_vec(
            "scopegate_trace_spans_dropped_total",
            "Trace spans dropped (queue_full: the export queue was full; export_failed: the collector did not take the batch). Requests are never delayed.",
            &["reason"],
        );
        let spans_exported = IntCounter::new(
            "scopegate_trace_spans_exported_total",
            "Trace spans the collector accepted.",
        )
        .expect("valid metric");
        reg(Box::new(spans_exported.clone()));
        let by_protocol = counter_vec(
            "scopegate_requests_by_protocol_total",
            "Requests by the client's protocol (http1, h2).",
            &["protocol"],
        );
        let store_calls = counter_vec(
            "scopegate_shared_store_requests_total",
            "Commands sent to the shared store by operation (claim, get, set) and result (ok, error, timeout).",
            &["op", "result"],
        );
        let store_duration = HistogramVec::new(
            HistogramOpts::new(
                "scopegate_shared_store_duration_seconds",
                "Time of one shared-store command, failures included.",
            )
            .buckets(vec![
                0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                0.5,
            ]),
            &["op"],
        )
        .expect("valid metric");
        reg(Box::new(store_duration.clone()));
        let store_fallbacks = counter_vec(
            "scopegate_shared_store_fallbacks_total",
            "Requests the shared store failed, by what the gateway did instead (dpop_denied, dpop_local, introspection_called).",
            &["use"],
        );
        Metrics {
            registry_id: super::resolved::registry_id(),
            spans_dropped_queue: spans_dropped.with_label_values(&["queue_full"]),
            spans_dropped_export: spans_dropped.with_label_values(&["export_failed"]),
            spans_exported,
            requests_http1: by_protocol.with_label_values(&["http1"]),
            requests_h2: by_protocol.with_label_values(&["h2"]),
            store_calls,
            store_duration,
            store_fallbacks,
            introspection_calls,
            introspection_duration,
            introspection_cache,
            token_cache_hits: cache.with_label_values(&["hit"]),
            token_cache_misses: cache.with_label_values(&["miss"]),
            token_cache_evictions,
            connections,
            connections_refused,
            header_timeouts,
            handshake_timeouts,
            registry,
            requests,
            auth_duration_allow,
            auth_duration_deny,
            upstream_errors,
            jwks_refreshes,
            jwks_keys,
            jwks_last_success,
            jwks_unknown_kid_refetches,
            jwks_stale,
            policy_reloads,
            policy_routes,
            policy_last_success,
            policy_info,
            ready,
            access_log_dropped,
        }
    }

    /// Pre-seeds an issuer's series, so dashboards see zeros rather than gaps.
    pub fn issuer(&self, label: &str) {
        for result in ["success", "failure"] {
            self.jwks_refreshes.with_label_values(&[label, result]);
        }
        self.jwks_unknown_kid_refetches.with_label_values(&[label]);
        self.key_state(label, 0, false);
    }

    /// Pre-seeds an introspecting issuer's series.
    pub fn introspecting_issuer(&self, label: &str) {
        for result in IntrospectionResult::ALL {
            self.introspection_calls
                .with_label_values(&[label, result.as_str()]);
        }
        for result in ["hit", "miss"] {
            self.introspection_cache.with_label_values(&[label, result]);
        }
    }

    /// One call to an introspection endpoint ended with `result` after `elapsed`.
    pub fn introspection_call(&self, label: &str, result: IntrospectionResult, elapsed: Duration) {
        self.introspection_calls
            .with_label_values(&[label, result.as_str()])
            .inc();
        self.introspection_duration
            .with_label_values(&[label])
            .observe(elapsed.as_secs_f64());
    }

    /// The introspection cache held a live answer for the token.
    pub fn introspection_cache_hit(&self, label: &str) {
        self.introspection_cache
            .with_label_values(&[label, "hit"])
            .inc();
    }

    /// The introspection cache held no live answer for the token.
    pub fn introspection_cache_miss(&self, label: &str) {
        self.introspection_cache
            .with_label_values(&[label, "miss"])
            .inc();
    }

    /// After a miss in its own cache, the replica found the answer in the shared store
    /// (`shared_hit`) or not (`shared_miss`).
    pub fn introspection_shared_lookup(&self, label: &str, hit: bool) {
        let result = if hit { "shared_hit" } else { "shared_miss" };
        self.introspection_cache
            .with_label_values(&[label, result])
            .inc();
    }

    /// Pre-seeds the shared store's series.
    pub fn shared_store(&self) {
        for op in StoreOp::ALL {
            for result in StoreResult::ALL {
                self.store_calls
                    .with_label_values(&[op.as_str(), result.as_str()]);
            }
            self.store_duration.with_label_values(&[op.as_str()]);
        }
        for fallback in StoreFallback::ALL {
            self.store_fallbacks.with_label_values(&[fallback.as_str()]);
        }
    }

    /// One shared-store command `op` ended with `result` after `elapsed`.
    pub fn store_call(&self, op: StoreOp, result: StoreResult, elapsed: Duration) {
        self.store_calls
            .with_label_values(&[op.as_str(), result.as_str()])
            .inc();
        self.store_duration
            .with_label_values(&[op.as_str()])
            .observe(elapsed.as_secs_f64());
    }

    /// A request went on without the store, as `fallback` says.
    pub fn store_fallback(&self, fallback: StoreFallback) {
        self.store_fallbacks
            .with_label_values(&[fallback.as_str()])
            .inc();
    }

    /// A JWKS fetch succeeded.
    pub fn jwks_refreshed(&self, label: &str) {
        self.jwks_refreshes
            .with_label_values(&[label, "success"])
            .inc();
        self.jwks_last_success
            .with_label_values(&[label])
            .set(unix_now());
    }

    /// A JWKS fetch failed (the old keys stay, as long as they are fresh enough).
    pub fn jwks_failed(&self, label: &str) {
        self.jwks_refreshes
            .with_label_values(&[label, "failure"])
            .inc();
    }

    /// A token with an unknown `kid` caused a JWKS fetch.
    pub fn jwks_unknown_kid_refetch(&self, label: &str) {
        self.jwks_unknown_kid_refetches
            .with_label_values(&[label])
            .inc();
    }

    /// An issuer's key set as it stands: usable keys, and whether keys it had went stale.
    /// Read off the key store when metrics are scraped.
    pub fn key_state(&self, label: &str, usable_keys: usize, stale: bool) {
        self.jwks_keys
            .with_label_values(&[label])
            .set(usable_keys as i64);
        self.jwks_stale
            .with_label_values(&[label])
            .set(i64::from(stale));
    }

    /// Whether `/readyz` says ready.
    pub fn set_ready(&self, ready: bool) {
        self.ready.set(i64::from(ready));
    }

    /// A policy went live.
    pub fn policy_loaded(&self, routes: usize, hash: &str) {
        self.policy_reloads.with_label_values(&["success"]).inc();
        self.policy_routes.set(routes as i64);
        self.policy_last_success.set(unix_now());
        self.policy_info.reset();
        self.policy_info.with_label_values(&[hash]).set(1);
    }

    /// A policy edit was refused; the live policy stays.
    pub fn policy_failed(&self) {
        self.policy_reloads.with_label_values(&["failure"]).inc();
    }

    /// The verified-token cache held the token.
    pub fn token_cache_hit(&self) {
        self.token_cache_hits.inc();
    }

    /// Cache hits counted so far (the footprint example checks its requests were hits).
    pub fn token_cache_hit_count(&self) -> u64 {
        self.token_cache_hits.get()
    }

    /// The verified-token cache did not hold the token.
    pub fn token_cache_miss(&self) {
        self.token_cache_misses.inc();
    }

    /// A client connection opened.
    pub fn connection_opened(&self) {
        self.connections.inc();
    }

    /// A client connection closed.
    pub fn connection_closed(&self) {
        self.connections.dec();
    }

    /// A client connection was closed at once: `max_connections` were open.
    pub fn connection_refused(&self) {
        self.connections_refused.inc();
    }

    /// A client connection was closed: its request header took too long.
    pub fn client_header_timed_out(&self) {
        self.header_timeouts.inc();
    }

    /// A client connection was closed: its TLS handshake took too long.
    pub fn tls_handshake_timed_out(&self) {
        self.handshake_timeouts.inc();
    }

    /// The upstream failed an allowed request.
    pub fn upstream_failed(&self, kind: UpstreamFault) {
        self.upstream_errors
            .with_label_values(&[kind.as_str()])
            .inc();
    }

    /// The verified-token cache evicted an entry to stay within its bounds.
    pub fn token_cache_evicted(&self) {
        self.token_cache_evictions.inc();
    }

    /// The authorization decision took `elapsed`.
    pub fn decided(&self, outcome: Outcome, elapsed: Duration) {
        let histogram = match outcome {
            Outcome::Allow | Outcome::Served => &self.auth_duration_allow,
            // A dry-run refusal was decided as a denial; only its enforcement was skipped.
            Outcome::Deny | Outcome::Error | Outcome::DryRunDeny => &self.auth_duration_deny,
        };
        histogram.observe(elapsed.as_secs_f64());
    }

    /// A request is done: one count by route (`None`: none matched, the label `none`),
    /// outcome and reason.
    pub fn request_done(&self, route: Option<&Arc<str>>, outcome: Outcome, reason: Reason) {
        super::resolved::count(&self.requests, self.registry_id, route, outcome, reason);
    }

    /// A request arrived over HTTP/2 (`h2`) or HTTP/1.x.
    pub fn request_protocol(&self, h2: bool) {
        if h2 {
            self.requests_h2.inc();
        } else {
            self.requests_http1.inc();
        }
    }

    /// `lines` access-log lines were dropped: the queue to the log writer was full.
    pub fn access_lines_dropped(&self, lines: u64) {
        self.access_log_dropped.inc_by(lines);
    }

    /// One span found the export queue full and was dropped.
    pub fn span_dropped_queue_full(&self) {
        self.spans_dropped_queue.inc();
    }

    /// A batch of `spans` spans was exported (`ok`) or refused by the collector.
    pub fn spans_exported(&self, spans: u64, ok: bool) {
        if ok {
            self.spans_exported.inc_by(spans);
        } else {
            self.spans_dropped_export.inc_by(spans);
        }
    }

    /// The Prometheus text exposition of this gateway's metrics and pingora's own.
    pub fn render(&self) -> Vec<u8> {
        let mut families = self.registry.gather();
        families.extend(prometheus::gather());
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&families, &mut out)
            .expect("text encoding to a Vec cannot fail");
        out
    }
}

/// Seconds since the Unix epoch, as a float.
pub fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}
