//! Operators watch scopegate through `/metrics`; these stories scrape it like Prometheus.

use crate::harness::*;

#[test]
fn requests_are_counted_by_route_decision_and_reason_with_closed_label_sets() {
    let (gw, _jwks, _upstream) = Gateway::standard();
    let rsa = TestKey::rsa();
    let token = rsa.sign(&claims("read:timesheets"));
    for _ in 0..3 {
        gw.call("GET", "/timesheets", &token);
    }
    gw.call("DELETE", "/timesheets/7", &token);
    gw.request("GET", "/timesheets", &[]);
    gw.call("GET", "/secret/admin/users", &token);
    gw.request("GET", "/healthz", &[]);

    // Counted in the logging phase, which may finish just after the client's response.
    for (series, value) in [
        (
            r#"{decision="allow",reason="authorized",route="list-timesheets"}"#,
            3.0,
        ),
        (
            r#"{decision="deny",reason="insufficient_scope",route="delete-timesheet"}"#,
            1.0,
        ),
        (
            r#"{decision="deny",reason="missing_token",route="list-timesheets"}"#,
            1.0,
        ),
        (r#"{decision="deny",reason="no_route",route="none"}"#, 1.0),
        (r#"{decision="allow",reason="public",route="health"}"#, 1.0),
    ] {
        gw.wait_metric(&format!("scopegate_requests_total{series}"), value);
    }
    let m = |s: &str| gw.metric(s);
    assert!(m(r#"scopegate_auth_duration_seconds_count{decision="allow"}"#) >= 4.0);
    // The verified-token cache: the first use misses, the repeats hit.
    assert_eq!(
        m(r#"scopegate_token_cache_requests_total{result="miss"}"#),
        1.0
    );
    assert!(m(r#"scopegate_token_cache_requests_total{result="hit"}"#) >= 3.0);

    let (_, body) = gw.admin_get("/metrics");
    assert!(
        !body.contains("/secret/admin/users"),
        "a raw path became a label"
    );
    assert!(!body.contains("auth0|alice"), "a subject became a label");
    assert!(!body.contains(&token[..40]), "a token reached the metrics");
}

#[test]
fn jwks_policy_and_readiness_series_are_exposed() {
    let (gw, _jwks, _upstream) = Gateway::standard();
    let m = |s: &str| gw.metric(s);
    assert_eq!(m(r#"scopegate_jwks_keys{issuer="exampleco"}"#), 3.0);
    assert!(m(r#"scopegate_jwks_refreshes_total{issuer="exampleco",result="success"}"#) >= 1.0);
    assert!(m(r#"scopegate_jwks_last_success_timestamp_seconds{issuer="exampleco"}"#) > 1.7e9);
    assert_eq!(m("scopegate_policy_routes"), 9.0);
    assert_eq!(
        m(r#"scopegate_policy_reloads_total{result="success"}"#),
        1.0
    );
    assert_eq!(
        m(r#"scopegate_policy_reloads_total{result="failure"}"#),
        0.0
    );
    assert_eq!(m("scopegate_ready"), 1.0);
    let (_, body) = gw.admin_get("/metrics");
    assert!(body.contains("scopegate_policy_info{hash=\""), "{body}");
    assert_eq!(gw.admin_get("/healthz").0, 200);
    let (status, ready) = gw.admin_get("/readyz");
    assert_eq!(status, 200, "{ready}");
}
