//! RFC 6750 answers: the right status and challenge, a JSON body, an open connection, and
//! never the token itself.

use crate::harness::*;

#[test]
fn no_token_gets_401_with_a_bare_challenge() {
    let (gw, _jwks, upstream) = Gateway::standard();
    let r = gw.request("GET", "/timesheets", &[]);
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer realm=\"scopegate\"")
    );
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.json()["error"], "unauthorized");
    // Another scheme is no bearer credential either.
    let r = gw.request(
        "GET",
        "/timesheets",
        &[("Authorization", "Basic YWxpY2U6cHc=")],
    );
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer realm=\"scopegate\"")
    );
    assert_eq!(upstream.count(), 0);
}

#[test]
fn the_scheme_is_case_insensitive() {
    let (gw, _jwks, _upstream) = Gateway::standard();
    let token = TestKey::rsa().sign(&claims("read:timesheets"));
    for scheme in ["bearer", "BEARER", "BeArEr"] {
        let r = gw.request(
            "GET",
            "/timesheets",
            &[("Authorization", &format!("{scheme} {token}"))],
        );
        assert_eq!(r.status, 200, "{scheme}");
    }
}

#[test]
fn two_authorization_headers_are_a_bad_request() {
    let (gw, _jwks, upstream) = Gateway::standard();
    let token = TestKey::rsa().sign(&claims("read:timesheets"));
    let auth = format!("Bearer {token}");
    let r = gw.request(
        "GET",
        "/timesheets",
        &[("Authorization", &auth), ("Authorization", &auth)],
    );
    assert_eq!(r.status, 400);
    assert!(
        r.header("www-authenticate")
            .unwrap()
            .contains("error=\"invalid_request\"")
    );
    assert_eq!(upstream.count(), 0);
}

#[test]
fn tokens_in_the_query_string_are_refused_unless_enabled() {
    let (gw, _jwks, upstream) = Gateway::standard();
    let token = TestKey::rsa().sign(&claims("read:timesheets"));
    // Not a token source, and never forwarded unchecked next to a verified one.
    let r = gw.request("GET", &format!("/timesheets?access_token={token}"), &[]);
    assert_eq!(r.status, 400);
    assert_eq!(upstream.count(), 0);

    let jwks = JwksServer::start(&[&TestKey::rsa()]);
    let policy = timesheets_policy();
    let mut spec = GatewaySpec::new(&jwks, &upstream, &policy);
    spec.extra = "token:\n  insecure_allow_query_parameter: true";
    let gw = Gateway::start(&spec);
    gw.wait_ready();
    let r = gw.request("GET", &format!("/timesheets?access_token={token}"), &[]);
    assert_eq!(r.status, 200);
}

#[test]
fn oversized_authorization_headers_get_a_4xx_and_the_gateway_lives_on() {
    let (mut gw, _jwks, upstream) = Gateway::standard();
    for size in [9_000, 70_000, 1_000_000] {
        let huge = format!("Bearer {}", "a".repeat(size));
        let mut req =
            format!("GET /timesheets HTTP/1.1\r\nHost: x\r\nAuthorization: {huge}\r\n\r\n");
        req.shrink_to_fit();
        match raw(gw.addr, &req) {
            Ok(r) => assert!((400..500).contains(&r.status), "{size}: {}", r.status),
            // pingora may close the connection on a header block it refuses to read.
            Err(e) => assert!(
                matches!(
                    e.kind(),
                    std::io::ErrorKind::UnexpectedEof
                        | std::io::ErrorKind::ConnectionReset
                        | std::io::ErrorKind::BrokenPipe
                ),
                "{size}: {e}"
            ),
        }
    }
    assert!(gw.alive());
    assert_eq!(gw.request("GET", "/healthz", &[]).status, 200);
    assert_eq!(upstream.count(), 1);
}

#[test]
fn the_connection_stays_open_after_401_and_403() {
    let (gw, _jwks, upstream) = Gateway::standard();
    let token = TestKey::rsa().sign(&claims("read:timesheets"));
    let mut conn = Connection::open(gw.addr).unwrap();
    let host = "Host: api.exampleco.test\r\n";
    let r = conn
        .send(&format!("GET /timesheets HTTP/1.1\r\n{host}\r\n"))
        .unwrap();
    assert_eq!(r.status, 401);
    let r = conn
        .send(&format!("POST /approvals/7 HTTP/1.1\r\n{host}Authorization: Bearer {token}\r\nContent-Length: 11\r\n\r\n{{\"ok\":true}}"))
        .unwrap();
    assert_eq!(r.status, 403);
    let r = conn
        .send(&format!(
            "GET /timesheets HTTP/1.1\r\n{host}Authorization: Bearer {token}\r\n\r\n"
        ))
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(upstream.count(), 1);
}

#[test]
fn no_response_or_log_line_contains_the_token() {
    let (gw, _jwks, _upstream) = Gateway::standard();
    let rsa = TestKey::rsa();
    let mut expired = claims("read:timesheets");
    expired["exp"] = serde_json::json!(now() - 3600);
    let tokens = [
        rsa.sign(&claims("read:timesheets")),
        rsa.sign(&expired),
        rsa.sign(&claims("nothing:useful")),
        "not.a.jwt".to_owned(),
    ];
    for token in &tokens {
        for (method, path) in [
            ("GET", "/timesheets"),
            ("PUT", "/approvals/1"),
            ("GET", "/nowhere"),
        ] {
            let r = gw.call(method, path, token);
            assert!(!r.body.contains(token.as_str()), "{r:?}");
            assert!(r.headers.iter().all(|(_, v)| !v.contains(token.as_str())));
        }
    }
    // Access lines are written by a thread of their own, just after the responses.
    let lines = |log: &str| log.matches(" scopegate::access: request ").count();
    gw.wait_for(|| lines(&gw.log()) == 12, "twelve access lines");
    let log = gw.log();
    assert!(
        log.contains("route=\"list-timesheets\""),
        "the log has request lines:\n{log}"
    );
    assert!(
        log.lines()
            .any(|l| l.contains("reason=\"insufficient_scope\"")
                && l.contains("subject=\"auth0|alice\"")),
        "a denial names who was denied:\n{log}"
    );
    for token in &tokens {
        let signature = token.rsplit('.').next().unwrap();
        assert!(!log.contains(signature), "token in the log:\n{log}");
    }
}
