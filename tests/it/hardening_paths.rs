//! Paths a backend could read differently from the gateway: `;` parameters and
//! double-encoded separators.

use crate::harness::*;

const STATIC_POLICY: &str = "version: 1
routes:
  - id: static
    methods: [GET]
    path: /static/{*rest}
    public: true
  - id: admin
    methods: [GET]
    path: /admin
    scopes: [admin]
";

fn gateway(extra: &str) -> (Gateway, JwksServer, Upstream) {
    let jwks = JwksServer::start(&[&TestKey::rsa()]);
    let upstream = Upstream::start();
    let mut spec = GatewaySpec::new(&jwks, &upstream, STATIC_POLICY);
    spec.extra = extra;
    let gw = Gateway::start(&spec);
    gw.wait_ready();
    (gw, jwks, upstream)
}

#[test]
fn dot_segments_with_parameters_and_double_encoded_separators_never_reach_the_upstream() {
    let (gw, _jwks, upstream) = gateway("");
    for path in [
        "/static/..;/admin",
        "/static/.;x/../admin",
        "/static/%2e%2e;/admin",
        "/static/%252e%252e/admin",
        "/static/a%252fb",
        "/static/a%255cb",
        "/static/a%25252fb",
        // `%32` is an escaped `2`: decoded, this is `%252F`.
        "/static/a%25%32fb",
    ] {
        let r = gw.request("GET", path, &[]);
        assert_eq!(r.status, 400, "{path}: {r:?}");
        assert_eq!(r.json()["error"], "invalid_request", "{path}");
    }
    assert_eq!(upstream.count(), 0);
    gw.wait_metric(
        "scopegate_requests_total{decision=\"deny\",reason=\"ambiguous_path\",route=\"none\"}",
        8.0,
    );
    // Other parameters are data, kept as they were sent.
    assert_eq!(gw.request("GET", "/static/app.js;v=2", &[]).status, 200);
    assert_eq!(upstream.last().target, "/static/app.js;v=2");
}

#[test]
fn stripped_parameters_are_decided_on_what_a_servlet_container_sees() {
    let (gw, _jwks, upstream) = gateway("paths:\n  segment_parameters: strip");
    // Tomcat reads /static/..;/admin as /admin: so does the policy, which protects it.
    assert_eq!(gw.request("GET", "/static/..;/admin", &[]).status, 401);
    assert_eq!(
        gw.request("GET", "/static/app.js;jsessionid=1", &[]).status,
        200
    );
    assert_eq!(upstream.last().target, "/static/app.js");
}

#[test]
fn double_encoding_can_be_allowed_for_a_backend_that_needs_it() {
    let (gw, _jwks, upstream) = gateway("paths:\n  insecure_allow_double_encoding: true");
    assert_eq!(gw.request("GET", "/static/a%252fb", &[]).status, 200);
    assert_eq!(upstream.last().target, "/static/a%252fb");
}
