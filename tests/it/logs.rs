//! Logs for log stacks: one JSON object per line when configured, one line per request.

use crate::harness::*;

#[test]
fn json_logs_carry_one_object_per_request_with_route_decision_and_subject() {
    let jwks = JwksServer::start(&[&TestKey::rsa()]);
    let upstream = Upstream::start();
    let policy = timesheets_policy();
    let mut spec = GatewaySpec::new(&jwks, &upstream, &policy);
    spec.extra = "log_format: json";
    let gw = Gateway::start(&spec);
    gw.wait_ready();
    let token = TestKey::rsa().sign(&claims("read:timesheets"));
    assert_eq!(gw.call("GET", "/timesheets", &token).status, 200);
    assert_eq!(gw.call("PUT", "/approvals/3", &token).status, 403);

    let requests = || -> Vec<serde_json::Value> {
        gw.log()
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l)
                    .unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))
            })
            .filter(|v| v["message"] == "request")
            .collect()
    };
    gw.wait_for(|| requests().len() == 2, "two request lines");
    let lines = requests();
    assert_eq!(lines[0]["route"], "list-timesheets");
    assert_eq!(lines[0]["decision"], "allow");
    assert_eq!(lines[0]["status"], 200);
    assert_eq!(lines[0]["subject"], "auth0|alice");
    assert_eq!(lines[1]["reason"], "insufficient_scope");
    assert_eq!(lines[1]["status"], 403);
    assert!(!gw.log().contains(&token), "a token reached the log");
    assert!(
        gw.log().lines().any(|l| l.contains("JWKS refreshed")),
        "refresh outcomes are logged"
    );
}

#[test]
fn no_token_reaches_the_log_even_at_debug() {
    let jwks = JwksServer::start(&[&TestKey::rsa()]);
    let upstream = Upstream::start();
    let policy = timesheets_policy();
    let mut spec = GatewaySpec::new(&jwks, &upstream, &policy);
    spec.extra = "token:\n  insecure_allow_query_parameter: true";
    let gw = Gateway::start_logging(&spec, "debug");
    gw.wait_ready();
    let token = TestKey::rsa().sign(&claims("read:timesheets"));
    assert_eq!(gw.call("GET", "/timesheets", &token).status, 200);
    let query = format!("/timesheets?access_token={token}");
    assert_eq!(gw.request("GET", &query, &[]).status, 200);
    // pingora's own error line for a request it fails names the request.
    drop(upstream);
    assert_eq!(gw.request("GET", &query, &[]).status, 502);
    gw.wait_for(
        || gw.log().contains("upstream_error"),
        "the failed request's line",
    );
    let log = gw.log();
    assert!(log.contains("DEBUG"), "not running at debug");
    let signature = token.rsplit('.').next().unwrap();
    assert!(!log.contains(signature), "a token reached the log:\n{log}");
}
