//! The policy for real APIs, through the gateway: roles in claims, alternatives, step-up
//! authentication (RFC 9470), dry-run routes, and a policy drawn from OpenAPI.

use serde_json::{Value, json};

use crate::harness::*;

const ROLES: &str = "https://api.exampleco.com/roles";

/// A token for `scope` with `roles` in the namespaced roles claim.
fn with_roles(scope: &str, roles: &[&str]) -> Value {
    let mut c = claims(scope);
    c[ROLES] = json!(roles);
    c
}

/// The same, signed in with MFA `age` seconds ago.
fn signed_in_with_mfa(scope: &str, roles: &[&str], age: u64) -> Value {
    let mut c = with_roles(scope, roles);
    c["acr"] = json!("mfa");
    c["auth_time"] = json!(now() - age);
    c
}

#[test]
fn a_manager_only_route_admits_bob_and_refuses_alice_by_her_roles_though_her_scopes_match() {
    let (gw, _jwks, upstream) = Gateway::standard();
    let rsa = TestKey::rsa();
    let alice = rsa.sign(&with_roles("approve:timesheets", &["Employee"]));
    let bob = rsa.sign(&with_roles("approve:timesheets", &["Manager"]));

    let r = gw.call("GET", "/approvals", &alice);
    assert_eq!(r.status, 403, "{r:?}");
    let challenge = r.header("www-authenticate").unwrap();
    assert_eq!(
        challenge,
        "Bearer realm=\"scopegate\", error=\"insufficient_scope\", error_description=\"The access token's claim https://api.exampleco.com/roles does not allow this request\""
    );
    assert!(
        !r.body.contains("Employee"),
        "the claim's value is not echoed: {}",
        r.body
    );
    assert_eq!(upstream.count(), 0);

    assert_eq!(gw.call("GET", "/approvals", &bob).status, 200);
    assert_eq!(upstream.last().target, "/approvals");
    // No roles claim at all is refused the same way.
    let none = rsa.sign(&claims("approve:timesheets"));
    assert_eq!(gw.call("GET", "/approvals", &none).status, 403);
    gw.wait_metric(
        r#"scopegate_requests_total{decision="deny",reason="claim_mismatch",route="list-approvals"}"#,
        2.0,
    );
}

#[test]
fn approving_asks_for_a_step_up_until_the_user_signs_in_again_with_mfa() {
    let (gw, _jwks, upstream) = Gateway::standard();
    let rsa = TestKey::rsa();
    let mut password_only = with_roles("approve:timesheets", &["Manager"]);
    password_only["auth_time"] = json!(now() - 30);
    let r = gw.call("PUT", "/approvals/7", &rsa.sign(&password_only));
    assert_eq!(r.status, 401, "{r:?}");
    assert_eq!(
        r.header("www-authenticate").unwrap(),
        "Bearer realm=\"scopegate\", error=\"insufficient_user_authentication\", error_description=\"A stronger or more recent authentication is required\", acr_values=\"mfa\", max_age=\"900\""
    );
    assert_eq!(r.json()["acr_values"], "mfa");
    let stale = rsa.sign(&signed_in_with_mfa(
        "approve:timesheets",
        &["Manager"],
        3600,
    ));
    assert_eq!(gw.call("PUT", "/approvals/7", &stale).status, 401);
    assert_eq!(upstream.count(), 0);

    let fresh = rsa.sign(&signed_in_with_mfa("approve:timesheets", &["Manager"], 30));
    assert_eq!(gw.call("PUT", "/approvals/7", &fresh).status, 200);
    assert_eq!(upstream.last().method, "PUT");
    gw.wait_metric(
        r#"scopegate_requests_total{decision="deny",reason="insufficient_user_authentication",route="approve-timesheet"}"#,
        2.0,
    );
}

const ALTERNATIVES: &str = r#"version: 1
routes:
  - id: reports
    methods: [GET]
    path: /reports
    any_of:
      - scopes: [read:reports]
        claims:
          - claim: [org, id]
            equals: acme
      - scopes: [admin:reports]
"#;

#[test]
fn a_route_with_alternatives_takes_either_set_and_names_the_one_that_would_help() {
    let jwks = JwksServer::start(&[&TestKey::rsa()]);
    let upstream = Upstream::start();
    let gw = Gateway::start(&GatewaySpec::new(&jwks, &upstream, ALTERNATIVES));
    gw.wait_ready();
    let rsa = TestKey::rsa();
    let in_org = |scope: &str, org: &str| {
        let mut c = claims(scope);
        c["org"] = json!({"id": org});
        rsa.sign(&c)
    };
    assert_eq!(
        gw.call("GET", "/reports", &in_org("read:reports", "acme"))
            .status,
        200
    );
    assert_eq!(
        gw.call("GET", "/reports", &rsa.sign(&claims("admin:reports")))
            .status,
        200
    );

    // The first set fails on the claim, so only the second one's scope would help.
    let r = gw.call("GET", "/reports", &in_org("read:reports", "globex"));
    assert_eq!(r.status, 403);
    assert!(
        r.header("www-authenticate")
            .unwrap()
            .ends_with(", scope=\"admin:reports\""),
        "{r:?}"
    );
    // In the organisation without a scope: the first set is the closest.
    let r = gw.call("GET", "/reports", &in_org("other", "acme"));
    assert_eq!(r.json()["scope"], "read:reports");
    assert_eq!(upstream.count(), 2);
}

const DRY_RUN: &str = r#"version: 1
routes:
  - id: timesheets
    methods: [GET]
    path: /timesheets
    scopes: [read:timesheets]
  - id: beta
    dry_run: true
    methods: [GET]
    path: /beta
    scopes: [beta:use]
    claims:
      - {claim: https://api.exampleco.com/roles, contains_any: [Tester]}
"#;

#[test]
fn a_dry_run_route_forwards_what_it_would_refuse_and_counts_it() {
    let jwks = JwksServer::start(&[&TestKey::rsa()]);
    let upstream = Upstream::start();
    let gw = Gateway::start(&GatewaySpec::new(&jwks, &upstream, DRY_RUN));
    gw.wait_ready();
    let token = TestKey::rsa().sign(&claims("read:timesheets"));

    // A client cannot pass its request off as a dry-run refusal, or as an allowed one.
    let forged = [("X-Scopegate-Dry-Run", "authorized")];
    let r = gw.request(
        "GET",
        "/beta",
        &[forged[0], ("Authorization", &format!("Bearer {token}"))],
    );
    assert_eq!(r.status, 200, "forwarded: {r:?}");
    assert_eq!(upstream.last().target, "/beta");
    assert_eq!(
        upstream.last().header("x-auth-subject"),
        Some("auth0|alice")
    );
    // The backend learns the request would have been refused, and why.
    assert_eq!(
        upstream.last().header("x-scopegate-dry-run"),
        Some("claim_mismatch")
    );
    assert_eq!(upstream.last().header_count("x-scopegate-dry-run"), 1);
    assert_eq!(gw.request("GET", "/beta", &[]).status, 200);
    assert_eq!(
        upstream.last().header("x-scopegate-dry-run"),
        Some("missing_token")
    );
    assert_eq!(upstream.count(), 2);
    let tester = TestKey::rsa().sign(&with_roles("beta:use", &["Tester"]));
    let r = gw.request(
        "GET",
        "/beta",
        &[forged[0], ("Authorization", &format!("Bearer {tester}"))],
    );
    assert_eq!(r.status, 200);
    // An allowed request carries no mark, whatever the client sent.
    assert_eq!(upstream.last().header("x-scopegate-dry-run"), None);
    // Routes without dry_run still refuse.
    assert_eq!(gw.request("GET", "/timesheets", &[]).status, 401);
    assert_eq!(upstream.count(), 3);

    for (labels, n) in [
        (
            r#"decision="dry_run_deny",reason="claim_mismatch",route="beta""#,
            1.0,
        ),
        (
            r#"decision="dry_run_deny",reason="missing_token",route="beta""#,
            1.0,
        ),
        (r#"decision="allow",reason="authorized",route="beta""#, 1.0),
        (
            r#"decision="deny",reason="missing_token",route="timesheets""#,
            1.0,
        ),
    ] {
        gw.wait_metric(&format!("scopegate_requests_total{{{labels}}}"), n);
    }
    // The access line is written by the log's own thread, a moment after the counters.
    gw.wait_for(
        || {
            gw.log().lines().any(|l| {
                l.contains("decision=\"dry_run_deny\"") && l.contains("reason=\"claim_mismatch\"")
            })
        },
        "the dry-run refusal's access line",
    );
}

#[test]
fn a_policy_wide_dry_run_forwards_unlisted_paths_but_never_ambiguous_ones() {
    let jwks = JwksServer::start(&[&TestKey::rsa()]);
    let upstream = Upstream::start();
    let policy = format!("dry_run: true\n{DRY_RUN}");
    let gw = Gateway::start(&GatewaySpec::new(&jwks, &upstream, &policy));
    gw.wait_ready();
    assert_eq!(gw.request("GET", "/admin", &[]).status, 200);
    assert_eq!(gw.request("GET", "/timesheets", &[]).status, 200);
    assert_eq!(gw.request("GET", "/a%2Fb", &[]).status, 400);
    assert_eq!(upstream.count(), 2);
    gw.wait_metric(
        r#"scopegate_requests_total{decision="dry_run_deny",reason="no_route",route="none"}"#,
        1.0,
    );
}

#[test]
fn a_reload_that_reads_new_claims_verifies_cached_tokens_again() {
    let jwks = JwksServer::start(&[&TestKey::rsa()]);
    let upstream = Upstream::start();
    let scope_only = DRY_RUN.replace("    dry_run: true\n", "").replace(
        "    claims:\n      - {claim: https://api.exampleco.com/roles, contains_any: [Tester]}\n",
        "",
    );
    let gw = Gateway::start(&GatewaySpec::new(&jwks, &upstream, &scope_only));
    gw.wait_ready();
    let tester = TestKey::rsa().sign(&with_roles("beta:use", &["Tester"]));
    assert_eq!(
        gw.call("GET", "/beta", &tester).status,
        200,
        "cached without its roles"
    );
    std::fs::write(gw.policy_path(), DRY_RUN.replace("    dry_run: true\n", "")).unwrap();
    // The cached identity kept no roles: were it served as it is, the role check would fail.
    gw.wait_for(
        || gw.metric(r#"scopegate_policy_reloads_total{result="success"}"#) >= 2.0,
        "the reload",
    );
    assert_eq!(gw.call("GET", "/beta", &tester).status, 200);
    let employee = TestKey::rsa().sign(&with_roles("beta:use", &["Employee"]));
    assert_eq!(gw.call("GET", "/beta", &employee).status, 403);
}

#[test]
fn the_policy_drawn_from_openapi_passes_the_timesheets_decision_tests_and_serves_the_same() {
    let root = env!("CARGO_MANIFEST_DIR");
    let openapi = format!("{root}/policies/timesheets.openapi.yaml");
    let cases = format!("{root}/policies/timesheets.test.yaml");
    let dir = tempfile::tempdir().unwrap();
    let generated = dir.path().join("generated.yaml");
    let (code, out) = scopegate(&[
        "policy",
        "from-openapi",
        &openapi,
        "--output",
        generated.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = scopegate(&["test", &cases, "--policy", generated.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(" passed, 0 failed"), "{out}");
    // The document and the hand-written policy cover each other.
    let (code, out) = scopegate(&[
        "check",
        "--policy",
        &format!("{root}/policies/timesheets.yaml"),
        "--openapi",
        &openapi,
    ]);
    assert_eq!(code, 0, "{out}");

    // And the gateway serves it.
    let jwks = JwksServer::start(&[&TestKey::rsa()]);
    let upstream = Upstream::start();
    let policy = std::fs::read_to_string(&generated).unwrap();
    let gw = Gateway::start(&GatewaySpec::new(&jwks, &upstream, &policy));
    gw.wait_ready();
    let rsa = TestKey::rsa();
    let bob = rsa.sign(&signed_in_with_mfa("approve:timesheets", &["Manager"], 10));
    let alice = rsa.sign(&signed_in_with_mfa("approve:timesheets", &["Employee"], 10));
    assert_eq!(gw.call("PUT", "/approvals/7", &bob).status, 200);
    assert_eq!(gw.call("PUT", "/approvals/7", &alice).status, 403);
    assert_eq!(gw.request("HEAD", "/healthz", &[]).status, 200);
}

#[test]
fn check_reports_operations_the_policy_misses_and_routes_no_operation_has() {
    let root = env!("CARGO_MANIFEST_DIR");
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("p.yaml");
    std::fs::write(
        &policy,
        "version: 1\nroutes:\n  - {id: list-timesheets, methods: [GET], path: /timesheets, scopes: [read:timesheets]}\n  - {id: admin, methods: [GET], path: /admin, scopes: [admin]}\n",
    )
    .unwrap();
    let (code, out) = scopegate(&[
        "check",
        "--policy",
        policy.to_str().unwrap(),
        "--openapi",
        &format!("{root}/policies/timesheets.openapi.yaml"),
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(
            "operation PUT /approvals/{id} (approve-timesheet) is not covered by the policy"
        ),
        "{out}"
    );
    assert!(
        out.contains("route \"admin\" (GET /admin) matches no operation of the document"),
        "{out}"
    );
    assert!(out.contains("10 problem(s) found"), "{out}");
}

#[test]
fn the_offline_tools_read_paths_as_the_configured_gateway_does() {
    let dir = tempfile::tempdir().unwrap();
    let policy = fixture("../../policies/timesheets.yaml");
    let config = dir.path().join("scopegate.yaml");
    std::fs::write(
        &config,
        format!(
            "version: 1
upstream: http://127.0.0.1:3000
policy: {}
issuers:
  - issuer: {ISSUER}
    audiences: [{AUDIENCE}]
    jwks_uri: https://exampleco.test/.well-known/jwks.json
paths:
  insecure_allow_double_encoding: true
",
            policy.display()
        ),
    )
    .unwrap();
    let cases = dir.path().join("encoded.test.yaml");
    std::fs::write(
        &cases,
        format!(
            "version: 1
policy: {}
cases:
  - name: a double-encoded slash, forwarded by this gateway
    request: GET /timesheets/a%252fb
    scopes: [read:timesheets]
    expect: allow
    route: read-timesheet
",
            policy.display()
        ),
    )
    .unwrap();
    let (policy, config, cases) = (
        policy.to_str().unwrap(),
        config.to_str().unwrap(),
        cases.to_str().unwrap(),
    );
    // By default the path is refused, as a default gateway refuses it.
    let (code, out) = scopegate(&["test", cases]);
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("ambiguous_path"), "{out}");
    let (code, out) = scopegate(&["test", cases, "--config", config]);
    assert_eq!(code, 0, "{out}");
    let (_, out) = scopegate(&[
        "explain",
        "--policy",
        policy,
        "GET",
        "/timesheets/a%252fb",
        "--scopes",
        "read:timesheets",
        "--config",
        config,
    ]);
    assert!(out.contains("allow (authorized, HTTP 200)"), "{out}");
}
