//! Every metric scopegate exposes, in one place.
//!
//! Labels come from closed sets only: route ids and issuer names from configuration,
//! decisions and reasons from [`crate::error::Rejection`]. Never a raw path, subject,
//! token or URL. Each gateway owns its registry, so several can live in one process.

use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// The gateway's metrics.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// `scopegate_requests_total{route, decision, reason}`.
    pub requests: IntCounterVec,
    /// `scopegate_auth_duration_seconds{decision="allow"}`: time to decide, not to proxy.
    /// (Both children are resolved once: a label lookup per request costs more than the
    /// observation.)
    pub auth_duration_allow: Histogram,
    /// `scopegate_auth_duration_seconds{decision="deny"}`.
    pub auth_duration_deny: Histogram,
    /// `scopegate_upstream_errors_total`: allowed requests the upstream failed.
    pub upstream_errors: IntCounter,
    /// `scopegate_jwks_refreshes_total{issuer, result}`.
    pub jwks_refreshes: IntCounterVec,
    /// `scopegate_jwks_keys{issuer}`: usable keys loaded.
    pub jwks_keys: IntGaugeVec,
    /// `scopegate_jwks_last_success_timestamp_seconds{issuer}`.
    pub jwks_last_success: prometheus::GaugeVec,
    /// `scopegate_jwks_unknown_kid_refetches_total{issuer}`.
    pub jwks_unknown_kid_refetches: IntCounterVec,
    /// `scopegate_jwks_stale{issuer}`: 1 when keys passed the maximum staleness.
    pub jwks_stale: IntGaugeVec,
    /// `scopegate_policy_reloads_total{result}`.
    pub policy_reloads: IntCounterVec,
    /// `scopegate_policy_routes`.
    pub policy_routes: IntGauge,
    /// `scopegate_policy_last_reload_success_timestamp_seconds`.
    pub policy_last_success: Gauge,
    /// `scopegate_policy_info{hash}`: 1 for the live policy's SHA-256.
    pub policy_info: IntGaugeVec,
    /// `scopegate_token_cache_requests_total{result="hit"}`.
    pub token_cache_hits: IntCounter,
    /// `scopegate_token_cache_requests_total{result="miss"}`.
    pub token_cache_misses: IntCounter,
    /// `scopegate_ready`: 1 when `/readyz` would say ready.
    pub ready: IntGauge,
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
        let upstream_errors = IntCounter::new(
            "scopegate_upstream_errors_total",
            "Allowed requests that failed at the upstream (connect, timeout, reset).",
        )
        .expect("valid metric");
        reg(Box::new(upstream_errors.clone()));
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
        let ready = IntGauge::new(
            "scopegate_ready",
            "1 when the policy is loaded and every issuer has usable keys.",
        )
        .expect("valid metric");
        reg(Box::new(ready.clone()));
        Metrics {
            token_cache_hits: cache.with_label_values(&["hit"]),
            token_cache_misses: cache.with_label_values(&["miss"]),
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
        }
    }

    /// Records a policy that went live.
    pub fn policy_loaded(&self, routes: usize, hash: &str) {
        self.policy_reloads.with_label_values(&["success"]).inc();
        self.policy_routes.set(routes as i64);
        self.policy_last_success.set(unix_now());
        self.policy_info.reset();
        self.policy_info.with_label_values(&[hash]).set(1);
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
