//! Start-up: fail closed until keys load, refuse a broken policy, and `scopegate check`.

use crate::harness::*;

#[test]
fn protected_routes_answer_503_until_the_first_keys_load_then_recover() {
    let jwks = JwksServer::unstarted(&[&TestKey::rsa()]);
    let upstream = Upstream::start();
    let policy = timesheets_policy();
    let gw = Gateway::start(&GatewaySpec::new(&jwks, &upstream, &policy));
    let token = TestKey::rsa().sign(&claims("read:timesheets"));

    let r = gw.call("GET", "/timesheets", &token);
    assert_eq!(r.status, 503, "{r:?}");
    assert_eq!(r.header("retry-after"), Some("5"));
    assert_eq!(gw.admin_get("/readyz").0, 503);
    assert_eq!(
        gw.request("GET", "/healthz", &[]).status,
        200,
        "public routes already work"
    );
    assert_eq!(upstream.count(), 1, "only the public request got through");
    assert_eq!(gw.metric("scopegate_ready"), 0.0);

    jwks.up();
    gw.wait_ready();
    assert_eq!(gw.call("GET", "/timesheets", &token).status, 200);
    assert_eq!(gw.metric("scopegate_ready"), 1.0);
}

#[test]
fn check_accepts_the_example_config_and_reports_every_problem_with_its_location() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/scopegate.yaml");
    let (code, out) = scopegate(&["check", "--config", example]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("ok:"), "{out}");

    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("bad.yaml");
    std::fs::write(
        &policy,
        "version: 1\nroutes:\n  - id: a\n    methods: [FETCH]\n    path: /a\n    scopes: [x]\n  - id: b\n    methods: [GET]\n    path: b\n    public: true\n",
    )
    .unwrap();
    let (code, out) = scopegate(&[
        "check",
        "--config",
        example,
        "--policy",
        policy.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("bad.yaml:4:15: routes[0].methods[0] (route \"a\"): unknown method \"FETCH\""),
        "{out}"
    );
    assert!(
        out.contains("bad.yaml:9:11: routes[1].path (route \"b\")"),
        "{out}"
    );
    assert!(out.contains("2 problem(s) found"), "{out}");
}

#[test]
fn a_broken_policy_is_a_start_up_error_naming_its_location() {
    let dir = tempfile::tempdir().unwrap();
    let [admin_port, listen_port] = free_ports::<2>();
    std::fs::write(
        dir.path().join("p.yaml"),
        "version: 1\nroutes:\n  - id: x\n    methods: [GET]\n    path: /x\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("c.yaml"),
        format!("version: 1\nupstream: http://127.0.0.1:1\npolicy: p.yaml\nadmin_listen: 127.0.0.1:{}\nlisten: 127.0.0.1:{}\nissuers:\n  - issuer: x\n    audiences: [y]\n    jwks_uri: http://127.0.0.1:1/\n", admin_port, listen_port),
    )
    .unwrap();
    let (code, out) = scopegate(&[
        "run",
        "--config",
        dir.path().join("c.yaml").to_str().unwrap(),
    ]);
    assert_ne!(code, 0);
    assert!(out.contains("p.yaml:3:"), "{out}");
    assert!(out.contains("any_of: [...] or public: true"), "{out}");
}
