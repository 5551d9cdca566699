//! What the upstream sees: the verified identity, never a client's claim to one.

use crate::harness::*;

#[test]
fn client_sent_identity_headers_never_reach_the_upstream() {
    let (gw, _jwks, upstream) = Gateway::standard();
    let token = TestKey::rsa().sign(&claims("read:timesheets"));
    let auth = format!("Bearer {token}");
    let forged = [
        ("Authorization", auth.as_str()),
        ("X-Auth-Subject", "auth0|bob"),
        ("x-auth-subject", "auth0|root"),
        ("X-Auth-Scopes", "approve:timesheets"),
        ("X-Auth-Issuer", "https://evil.test/"),
        ("X-Auth-Client-Id", "admin-console"),
        ("X-Auth-Email", "ceo@exampleco.com"),
        ("X-HTTP-Method-Override", "DELETE"),
        ("X-Original-URL", "/approvals/7"),
    ];
    assert_eq!(gw.request("GET", "/timesheets", &forged).status, 200);
    let seen = upstream.last();
    assert_eq!(seen.header("x-auth-subject"), Some("auth0|alice"));
    assert_eq!(seen.header_count("x-auth-subject"), 1);
    assert_eq!(seen.header("x-auth-scopes"), Some("read:timesheets"));
    assert_eq!(seen.header("x-auth-issuer"), Some(ISSUER));
    assert_eq!(seen.header("x-auth-client-id"), Some("timesheets-mobile"));
    assert_eq!(seen.header("x-auth-email"), Some("alice@exampleco.com"));
    assert_eq!(seen.header("x-http-method-override"), None);
    assert_eq!(seen.header("x-original-url"), None);
    assert_eq!(seen.method, "GET");
    // Forwarded unchanged by default, for backends that re-validate.
    assert_eq!(seen.header("authorization"), Some(auth.as_str()));
}

#[test]
fn public_routes_strip_identity_headers_too() {
    let (gw, _jwks, upstream) = Gateway::standard();
    let r = gw.request(
        "GET",
        "/healthz",
        &[
            ("X-Auth-Subject", "auth0|root"),
            ("X-Auth-Email", "ceo@exampleco.com"),
        ],
    );
    assert_eq!(r.status, 200);
    let seen = upstream.last();
    assert_eq!(seen.header("x-auth-subject"), None);
    assert_eq!(seen.header("x-auth-email"), None);
}

#[test]
fn authorization_can_be_kept_from_the_upstream() {
    let (gw, _jwks, upstream) = Gateway::with_extra("forward_authorization: false");
    let r = gw.call(
        "GET",
        "/timesheets",
        &TestKey::rsa().sign(&claims("read:timesheets")),
    );
    assert_eq!(r.status, 200);
    assert_eq!(upstream.last().header("authorization"), None);
    assert_eq!(
        upstream.last().header("x-auth-subject"),
        Some("auth0|alice")
    );
}

#[test]
fn underscore_spellings_of_identity_and_override_headers_are_dropped() {
    let (gw, _jwks, upstream) = Gateway::standard();
    let token = TestKey::rsa().sign(&claims("read:timesheets"));
    let auth = format!("Bearer {token}");
    let forged = [
        ("Authorization", auth.as_str()),
        ("X_Auth_Subject", "auth0|root"),
        ("X-Auth_Scopes", "approve:timesheets"),
        ("X_Auth_Email", "ceo@exampleco.com"),
        ("X_HTTP_Method_Override", "DELETE"),
        ("X_Trace_Id", "kept"),
    ];
    for path in ["/timesheets", "/healthz"] {
        let headers: &[(&str, &str)] = if path == "/healthz" {
            &forged[1..]
        } else {
            &forged
        };
        assert_eq!(gw.request("GET", path, headers).status, 200, "{path}");
        let seen = upstream.last();
        for name in [
            "x_auth_subject",
            "x-auth_scopes",
            "x_auth_email",
            "x_http_method_override",
        ] {
            assert_eq!(seen.header(name), None, "{path}: {name}");
        }
        assert_eq!(seen.header("x_trace_id"), Some("kept"), "{path}");
    }
}

#[test]
fn every_underscore_header_can_be_dropped() {
    let (gw, _jwks, upstream) = Gateway::with_extra("drop_underscore_headers: true");
    let r = gw.request("GET", "/healthz", &[("X_Trace_Id", "x"), ("X-Trace", "y")]);
    assert_eq!(r.status, 200);
    assert_eq!(upstream.last().header("x_trace_id"), None);
    assert_eq!(upstream.last().header("x-trace"), Some("y"));
}

/// The head the upstream received for one allowed request through a gateway with `extra`.
fn head_upstream_reads(extra: &str) -> String {
    let jwks = JwksServer::start(&[&TestKey::rsa()]);
    let echo = Upstream::start();
    let policy = timesheets_policy();
    let mut spec = GatewaySpec::new(&jwks, &echo, &policy);
    spec.extra = extra;
    let (address, heads) = raw_upstream();
    let gw = Gateway::start_with_upstream(&spec, &format!("http://{address}"));
    gw.wait_ready();
    let token = TestKey::rsa().sign(&claims("read:timesheets"));
    let auth = format!("Bearer {token}");
    let sent = [
        ("Authorization", auth.as_str()),
        ("X-Request-Id", "r-1"),
        ("X-Auth-Subject", "auth0|bob"),
    ];
    assert_eq!(gw.request("GET", "/timesheets", &sent).status, 200);
    heads
        .recv_timeout(std::time::Duration::from_secs(5))
        .expect("the upstream read a request")
}

#[test]
fn header_names_reach_the_upstream_in_lower_case_by_default() {
    let head = head_upstream_reads("");
    assert!(head.starts_with("GET /timesheets HTTP/1.1\r\n"), "{head}");
    assert!(head.contains("\r\nx-request-id: r-1\r\n"), "{head}");
    assert!(
        head.contains("\r\nx-auth-subject: auth0|alice\r\n"),
        "{head}"
    );
    assert!(!head.contains("auth0|bob"), "{head}");
    // Names only (a token may hold capitals); `Host` is pingora's own, written after the
    // gateway's rewrite.
    let capitalized: Vec<&str> = head
        .lines()
        .skip(1)
        .filter_map(|line| line.split_once(':').map(|(name, _)| name))
        .filter(|name| *name != "Host" && name.bytes().any(|b| b.is_ascii_uppercase()))
        .collect();
    assert!(
        capitalized.is_empty(),
        "names keep capitals: {capitalized:?}"
    );
}

#[test]
fn header_names_keep_the_clients_spelling_when_asked() {
    let head = head_upstream_reads("upstream_header_case: preserve");
    assert!(head.contains("\r\nX-Request-Id: r-1\r\n"), "{head}");
    assert!(head.contains("\r\nAuthorization: Bearer "), "{head}");
    // The gateway's own headers are written as it holds their names, in lower case.
    assert!(
        head.contains("\r\nx-auth-subject: auth0|alice\r\n"),
        "{head}"
    );
    assert!(!head.contains("auth0|bob"), "{head}");
}
