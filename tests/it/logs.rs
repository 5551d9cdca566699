//! Logs for log stacks: one JSON object per line when configured, one line per request,
//! none lost at shutdown, none with `access_log: false`; the start-up line on threads.

use crate::harness::*;

#[test]
fn json_logs_carry_one_object_per_request_with_route_decision_and_subject() {
    let (gw, _jwks, _upstream) = Gateway::with_extra("log_format: json");
    let token = TestKey::rsa().sign(&claims("read:timesheets"));
    assert_eq!(gw.call("GET", "/timesheets", &token).status, 200);
    assert_eq!(gw.call("DELETE", "/timesheets/3", &token).status, 403);

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

/// The access lines of a text log.
fn text_request_lines(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| l.contains(" scopegate::access: request "))
        .collect()
}

#[test]
fn every_request_has_its_access_line_after_a_graceful_shutdown() {
    let (mut gw, _jwks, _upstream) = Gateway::standard();
    let token = TestKey::rsa().sign(&claims("read:timesheets"));
    const N: usize = 60;
    let mut conn = Connection::open(gw.addr).unwrap();
    for i in 0..N {
        // Allowed, denied and unmatched requests alike, on one keep-alive connection.
        let (path, want) = match i % 3 {
            0 => ("/timesheets", 200),
            1 => ("/approvals/1", 403),
            _ => ("/nowhere", 403),
        };
        let method = if i % 3 == 1 { "PUT" } else { "GET" };
        let r = conn
            .send(&format!(
                "{method} {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Length: 0\r\n\r\n"
            ))
            .unwrap();
        assert_eq!(r.status, want, "{path}");
    }
    drop(conn);
    gw.signal("TERM");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while gw.alive() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(!gw.alive(), "scopegate exits:\n{}", gw.log());
    let log = gw.log();
    let lines = text_request_lines(&log);
    assert_eq!(lines.len(), N, "{log}");
    assert!(
        lines[0].contains(r#"method=GET path="/timesheets" route="list-timesheets" decision="allow" reason="authorized" status=200 latency_ms="#)
            && lines[0].contains(" protocol=HTTP/1.1 ")
            && lines[0].ends_with(r#" subject="auth0|alice""#),
        "{}",
        lines[0]
    );
    assert!(lines[1].contains(r#"status=403"#), "{}", lines[1]);
    assert!(!log.contains(&token), "a token reached the log");
}

#[test]
fn access_log_false_writes_no_request_line_while_metrics_still_count() {
    let (gw, _jwks, _upstream) = Gateway::with_extra("access_log: false");
    let token = TestKey::rsa().sign(&claims("read:timesheets"));
    for _ in 0..5 {
        assert_eq!(gw.call("GET", "/timesheets", &token).status, 200);
    }
    gw.wait_metric(
        r#"scopegate_requests_total{decision="allow",reason="authorized",route="list-timesheets"}"#,
        5.0,
    );
    let log = gw.log();
    assert!(log.contains("scopegate starting"), "{log}");
    assert!(text_request_lines(&log).is_empty(), "{log}");
    assert!(!log.contains("method=GET"), "{log}");
}

#[test]
fn threads_auto_says_at_start_up_how_many_it_chose_and_why() {
    let (gw, _jwks, _upstream) = Gateway::with_extra("threads: auto");
    let token = TestKey::rsa().sign(&claims("read:timesheets"));
    assert_eq!(gw.call("GET", "/timesheets", &token).status, 200);
    let log = gw.log();
    let line = log
        .lines()
        .find(|l| l.contains("proxy worker threads"))
        .unwrap_or_else(|| panic!("no threads line:\n{log}"));
    // Either a cgroup quota or the CPU count, named.
    assert!(
        line.contains("threads=")
            && (line.contains("cgroup") || line.contains("CPUs this process may run on")),
        "{line}"
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
    // Crashed, not dropped: a crash closes the connections pingora keeps alive too, which
    // dropping the server's accept loop alone may leave serving. The crash reaches a
    // kept-alive connection a moment later, so the first request may still be answered.
    upstream.crash();
    gw.wait_for(
        || gw.request("GET", &query, &[]).status == 502,
        "a 502 from the crashed upstream",
    );
    gw.wait_for(
        || gw.log().contains("upstream_error"),
        "the failed request's line",
    );
    let log = gw.log();
    assert!(log.contains("DEBUG"), "not running at debug");
    let signature = token.rsplit('.').next().unwrap();
    assert!(!log.contains(signature), "a token reached the log:\n{log}");
}
