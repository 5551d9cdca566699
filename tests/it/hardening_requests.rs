//! The target, the host and the query: nothing a backend could read as another request.

use crate::harness::*;

fn send(gw: &Gateway, text: &str) -> RawResponse {
    raw(gw.addr, text).unwrap_or_else(|e| panic!("{e}\n{}", gw.log()))
}

#[test]
fn absolute_form_targets_are_forwarded_in_origin_form_with_their_authority_as_host() {
    let jwks = JwksServer::start(&[&TestKey::rsa()]);
    let (addr, heads) = raw_upstream();
    let policy = timesheets_policy();
    let spec = GatewaySpec {
        jwks_uri: jwks.uri(),
        upstream: addr,
        policy: &policy,
        issuer: default_issuer_options(),
        extra: "",
    };
    let gw = Gateway::start(&spec);
    gw.wait_ready();
    let r = send(
        &gw,
        "GET http://api.exampleco.test/healthz?x=1 HTTP/1.1\r\nHost: api.exampleco.test\r\n\r\n",
    );
    assert_eq!(r.status, 200, "{r:?}");
    let head = heads
        .recv_timeout(std::time::Duration::from_secs(10))
        .unwrap();
    assert!(head.starts_with("GET /healthz?x=1 HTTP/1.1\r\n"), "{head}");
    let hosts: Vec<&str> = head
        .lines()
        .filter(|l| l.to_ascii_lowercase().starts_with("host:"))
        .collect();
    assert_eq!(hosts, ["Host: api.exampleco.test"], "{head}");
    // A Host that names another authority than the target is refused (pingora's check).
    let other = send(
        &gw,
        "GET http://api.exampleco.test/healthz HTTP/1.1\r\nHost: other.test\r\n\r\n",
    );
    assert_eq!(other.status, 400);
}

#[test]
fn absolute_form_can_be_refused_and_hosts_limited() {
    let (gw, _jwks, upstream) =
        Gateway::with_extra("hosts:\n  absolute_form: reject\n  allowed: [api.exampleco.test]");
    let absolute = send(
        &gw,
        "GET http://api.exampleco.test/healthz HTTP/1.1\r\nHost: api.exampleco.test\r\n\r\n",
    );
    assert_eq!(absolute.status, 400, "{absolute:?}");
    let other = send(&gw, "GET /healthz HTTP/1.1\r\nHost: evil.test\r\n\r\n");
    assert_eq!(other.status, 421, "{other:?}");
    assert_eq!(other.json()["error"], "misdirected_request");
    assert_eq!(gw.request("GET", "/healthz", &[]).status, 200);
    assert_eq!(upstream.count(), 1);
    gw.wait_metric(
        "scopegate_requests_total{decision=\"deny\",reason=\"unknown_host\",route=\"none\"}",
        1.0,
    );
}

#[test]
fn a_missing_or_repeated_host_is_a_bad_request() {
    let (gw, _jwks, upstream) = Gateway::with_extra("");
    let none = send(&gw, "GET /healthz HTTP/1.1\r\n\r\n");
    assert_eq!(none.status, 400, "{none:?}");
    let two = send(
        &gw,
        "GET /healthz HTTP/1.1\r\nHost: api.exampleco.test\r\nHost: evil.test\r\n\r\n",
    );
    assert_eq!(two.status, 400, "{two:?}");
    // HTTP/1.0 may omit it.
    assert_eq!(send(&gw, "GET /healthz HTTP/1.0\r\n\r\n").status, 200);
    assert_eq!(upstream.count(), 1);
}

#[test]
fn a_target_that_is_not_a_path_is_a_bad_request() {
    // pingora keeps such a target for the wire as it came while the policy would read `/`:
    // the backend would act on a path and query nobody decided on.
    let (gw, _jwks, upstream) = Gateway::with_extra("upstream_header_case: preserve");
    for target in ["healthz", "healthz?access_token=x", "*"] {
        let r = send(
            &gw,
            &format!("GET {target} HTTP/1.1\r\nHost: api.exampleco.test\r\n\r\n"),
        );
        assert_eq!(r.status, 400, "{target}: {r:?}");
        assert!(r.body.contains("invalid_request"), "{target}: {r:?}");
    }
    assert_eq!(upstream.count(), 0);
}

#[test]
fn a_method_override_parameter_is_refused_or_stripped() {
    let (gw, _jwks, upstream) = Gateway::with_extra("");
    let token = TestKey::rsa().sign(&claims("create:timesheets"));
    // PHP (Laravel, Symfony) reads `.`, space and `[` in a name as `_`.
    for target in [
        "/timesheets?_method=DELETE",
        "/timesheets?a=1&%5Fmethod=DELETE",
        "/timesheets?.method=DELETE",
        "/timesheets?%2Emethod=DELETE",
        "/timesheets?_method[]=DELETE",
    ] {
        let r = gw.call("POST", target, &token);
        assert_eq!(r.status, 400, "{target}");
    }
    assert_eq!(upstream.count(), 0);
    let (gw, _jwks, upstream) = Gateway::with_extra("method_override_parameter: strip");
    let r = gw.call(
        "POST",
        "/timesheets?a=1&_method=DELETE&.method=PUT&b=2",
        &token,
    );
    assert_eq!(r.status, 200);
    assert_eq!(upstream.last().target, "/timesheets?a=1&b=2");
    assert_eq!(upstream.last().method, "POST");
}

#[test]
fn one_token_per_request_whatever_the_encoding() {
    let (gw, _jwks, upstream) = Gateway::with_extra("");
    let token = TestKey::rsa().sign(&claims("read:timesheets"));
    // The query is no token source: a token there never rides along unchecked.
    for target in [
        "/timesheets?access_token=x",
        "/healthz?access%5Ftoken=x",
        "/timesheets?access.token=x",
        "/timesheets?access+token=x",
    ] {
        assert_eq!(gw.call("GET", target, &token).status, 400, "{target}");
    }
    assert_eq!(upstream.count(), 0);
    let (gw, _jwks, _upstream) =
        Gateway::with_extra("token:\n  insecure_allow_query_parameter: true");
    let r = gw.call(
        "GET",
        &format!("/timesheets?access%5Ftoken={token}"),
        &token,
    );
    assert_eq!(r.status, 400);
    assert!(r.body.contains("more than one way"), "{}", r.body);
    let r = gw.call("GET", &format!("/timesheets?access.token={token}"), &token);
    assert_eq!(r.status, 400);
    assert!(r.body.contains("more than one way"), "{}", r.body);
}

#[test]
fn an_empty_query_token_and_an_empty_bearer_get_the_same_400() {
    let (gw, _jwks, upstream) =
        Gateway::with_extra("token:\n  insecure_allow_query_parameter: true");
    let query = gw.request("GET", "/timesheets?access_token=", &[]);
    let bearer = gw.request("GET", "/timesheets", &[("Authorization", "Bearer")]);
    for r in [&query, &bearer] {
        assert_eq!(r.status, 400);
        assert_eq!(r.json()["error"], "invalid_request");
        assert!(
            r.header("www-authenticate")
                .unwrap()
                .contains(r#"error="invalid_request""#)
        );
    }
    assert_eq!(upstream.count(), 0);
}
