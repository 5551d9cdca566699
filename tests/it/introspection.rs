//! Opaque tokens by introspection (RFC 7662): decided by the answer's scopes, cached,
//! one call for many concurrent requests, revocation within the cache maximum, and an
//! authorization server outage answered with 503 while cached tokens keep working.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use crate::authserver::{AuthServer, CLIENT_SECRET, active};
use crate::harness::*;

struct Setup {
    gw: Gateway,
    auth: AuthServer,
    upstream: Upstream,
    _jwks: JwksServer,
    _secret: tempfile::TempDir,
}

/// A gateway whose issuer is `auth`, introspecting at its configured endpoint.
fn start(introspection_extra: Value, policy: &str) -> Setup {
    let jwks = JwksServer::start(&[&TestKey::rsa()]);
    let upstream = Upstream::start();
    let auth = AuthServer::start(&jwks.uri());
    let secret = tempfile::tempdir().unwrap();
    let file = secret.path().join("client-secret");
    std::fs::write(&file, format!("{CLIENT_SECRET}\n")).unwrap();
    let mut spec = GatewaySpec::new(&jwks, &upstream, policy);
    spec.issuer_option("introspection", auth.introspection(&file))
        .issuer_option(
            "introspection",
            json!({"endpoint": auth.introspection_endpoint()}),
        )
        .issuer_option("introspection", introspection_extra);
    let gw = Gateway::start_with_issuer(&spec, &auth.issuer());
    gw.wait_ready();
    Setup {
        gw,
        auth,
        upstream,
        _jwks: jwks,
        _secret: secret,
    }
}

#[test]
fn an_opaque_token_is_introspected_and_decided_by_its_scopes_like_a_jwt() {
    let s = start(json!({}), &timesheets_policy());
    s.auth
        .activate("opaque-alice", active(&s.auth.issuer(), "read:timesheets"));

    let r = s.gw.call("GET", "/timesheets", "opaque-alice");
    assert_eq!(r.status, 200, "{}", s.gw.log());
    let seen = s.upstream.last();
    assert_eq!(seen.header("x-auth-subject"), Some("alice@exampleco.com"));
    assert_eq!(seen.header("x-auth-scopes"), Some("read:timesheets"));
    assert_eq!(seen.header("x-auth-client-id"), Some("timesheets-mobile"));

    let r = s.gw.call("DELETE", "/timesheets/7", "opaque-alice");
    assert_eq!(r.status, 403);
    assert!(
        r.header("www-authenticate")
            .unwrap()
            .contains(r#"scope="delete:timesheets""#)
    );
    // Both requests were answered from one call: the second found the cached answer.
    assert_eq!(s.auth.calls(), 1);

    // An unknown token is inactive: 401 invalid_token, and nothing forwarded.
    let before = s.upstream.count();
    let r = s.gw.call("GET", "/timesheets", "opaque-nobody");
    assert_eq!(r.status, 401);
    assert!(
        r.header("www-authenticate")
            .unwrap()
            .contains(r#"error="invalid_token""#)
    );
    assert_eq!(
        r.json()["error_description"],
        "The access token is not active"
    );
    assert_eq!(s.upstream.count(), before);
    s.gw.wait_metric(
        r#"scopegate_requests_total{decision="deny",reason="token_inactive",route="list-timesheets"}"#,
        1.0,
    );
    assert_eq!(
        s.gw.metric(
            r#"scopegate_introspection_requests_total{issuer="exampleco",result="active"}"#
        ),
        1.0
    );
    assert_eq!(
        s.gw.metric(
            r#"scopegate_introspection_cache_requests_total{issuer="exampleco",result="hit"}"#
        ),
        1.0
    );
}

#[test]
fn answers_for_another_audience_or_a_refresh_token_are_refused() {
    let s = start(json!({}), &timesheets_policy());
    let mut other = active(&s.auth.issuer(), "read:timesheets");
    other["aud"] = json!("https://api.exampleco.com/payroll");
    s.auth.activate("opaque-payroll", other);
    assert_eq!(
        s.gw.call("GET", "/timesheets", "opaque-payroll").status,
        401
    );
    let mut refresh = active(&s.auth.issuer(), "read:timesheets");
    refresh["token_type"] = json!("refresh_token");
    s.auth.activate("opaque-refresh", refresh);
    assert_eq!(
        s.gw.call("GET", "/timesheets", "opaque-refresh").status,
        401
    );
    assert_eq!(s.upstream.count(), 0);
}

#[test]
fn thirty_two_concurrent_requests_with_one_new_token_make_one_introspection_call() {
    let s = Arc::new(start(json!({}), &timesheets_policy()));
    s.auth
        .activate("opaque-burst", active(&s.auth.issuer(), "read:timesheets"));
    // Slow enough that every request arrives while the first call is in flight.
    s.auth.set_delay_ms(400);
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..32)
            .map(|_| {
                let s = s.clone();
                scope.spawn(move || s.gw.call("GET", "/timesheets", "opaque-burst").status)
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(statuses.iter().all(|&s| s == 200), "{statuses:?}");
    assert_eq!(s.auth.calls(), 1);
}

#[test]
fn with_the_authorization_server_down_cached_tokens_pass_and_new_ones_get_503() {
    let s = start(json!({}), &timesheets_policy());
    s.auth
        .activate("opaque-known", active(&s.auth.issuer(), "read:timesheets"));
    s.auth
        .activate("opaque-new", active(&s.auth.issuer(), "read:timesheets"));
    assert_eq!(s.gw.call("GET", "/timesheets", "opaque-known").status, 200);

    s.auth.down();
    assert_eq!(s.gw.call("GET", "/timesheets", "opaque-known").status, 200);
    let before = s.upstream.count();
    let r = s.gw.call("GET", "/timesheets", "opaque-new");
    assert_eq!(r.status, 503);
    assert_eq!(r.header("retry-after"), Some("5"));
    assert_eq!(r.json()["error"], "temporarily_unavailable");
    assert_eq!(
        s.upstream.count(),
        before,
        "nothing unverified is forwarded"
    );

    // Back up: the new token is checked and allowed.
    s.auth.up();
    assert_eq!(s.gw.call("GET", "/timesheets", "opaque-new").status, 200);
}

#[test]
fn a_slow_authorization_server_is_a_503_after_the_timeout_not_a_hang() {
    let s = start(json!({"timeout_ms": 300}), &timesheets_policy());
    s.auth
        .activate("opaque-slow", active(&s.auth.issuer(), "read:timesheets"));
    s.auth.set_delay_ms(3_000);
    let r = s.gw.call("GET", "/timesheets", "opaque-slow");
    assert_eq!(r.status, 503);
    assert_eq!(s.upstream.count(), 0);
}

#[test]
fn a_revoked_token_is_refused_once_the_cache_maximum_has_passed() {
    let s = start(json!({"cache_max_seconds": 1}), &timesheets_policy());
    s.auth.activate(
        "opaque-revoked",
        active(&s.auth.issuer(), "read:timesheets"),
    );
    assert_eq!(
        s.gw.call("GET", "/timesheets", "opaque-revoked").status,
        200
    );
    s.auth.revoke("opaque-revoked");
    // Within the maximum the cached answer still stands; after it, the server's.
    s.gw.wait_for(
        || s.gw.call("GET", "/timesheets", "opaque-revoked").status == 401,
        "the revocation to take effect",
    );
    assert!(s.auth.calls() >= 2);
}

#[test]
fn a_route_that_introspects_always_refuses_a_revoked_jwt_at_once() {
    let policy = timesheets_policy().replace(
        "    path: /timesheets/{id}\n    scopes: [delete:timesheets]\n",
        "    path: /timesheets/{id}\n    scopes: [delete:timesheets]\n    introspect: always\n",
    );
    assert_eq!(policy.matches("introspect: always").count(), 1);
    let s = start(json!({}), &policy);
    let mut claims = claims("delete:timesheets read:timesheets");
    claims["iss"] = json!(s.auth.issuer());
    let jwt = TestKey::rsa().sign(&claims);
    // The JWT verifies locally; the delete route also asks the server, every time.
    s.auth
        .activate(&jwt, active(&s.auth.issuer(), "delete:timesheets"));
    assert_eq!(s.gw.call("DELETE", "/timesheets/7", &jwt).status, 200);
    assert_eq!(s.gw.call("DELETE", "/timesheets/7", &jwt).status, 200);
    assert_eq!(s.auth.calls(), 2);
    s.auth.revoke(&jwt);
    assert_eq!(s.gw.call("DELETE", "/timesheets/7", &jwt).status, 401);
    // Other routes verify the JWT locally and are not slowed by introspection.
    assert_eq!(s.gw.call("GET", "/timesheets/7", &jwt).status, 200);
    assert_eq!(s.auth.calls(), 3);
}

#[test]
fn a_route_that_introspects_always_refuses_a_revoked_opaque_token_at_once() {
    let policy = timesheets_policy().replace(
        "    path: /timesheets/{id}\n    scopes: [delete:timesheets]\n",
        "    path: /timesheets/{id}\n    scopes: [delete:timesheets]\n    introspect: always\n",
    );
    let s = start(json!({}), &policy);
    s.auth.activate(
        "opaque-approver",
        active(&s.auth.issuer(), "delete:timesheets read:timesheets"),
    );
    // Every request on the route asks the server: no answer is served from the cache.
    assert_eq!(
        s.gw.call("DELETE", "/timesheets/7", "opaque-approver")
            .status,
        200
    );
    assert_eq!(
        s.gw.call("DELETE", "/timesheets/7", "opaque-approver")
            .status,
        200
    );
    assert_eq!(s.auth.calls(), 2);
    s.auth.revoke("opaque-approver");
    let r = s.gw.call("DELETE", "/timesheets/7", "opaque-approver");
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"], "invalid_token");
    assert_eq!(s.auth.calls(), 3);
}

#[test]
fn an_introspection_answer_signed_in_in_the_future_is_refused() {
    let s = start(json!({}), &timesheets_policy());
    let mut answer = active(&s.auth.issuer(), "read:timesheets");
    // Milliseconds where seconds belong: a sign-in far in the future.
    answer["auth_time"] = json!(jsonwebtoken::get_current_timestamp() * 1000);
    s.auth.activate("opaque-future", answer);
    let r = s.gw.call("GET", "/timesheets", "opaque-future");
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"], "invalid_token");
    assert_eq!(s.upstream.count(), 0);
}

#[test]
fn wrong_client_credentials_fail_closed() {
    let jwks = JwksServer::start(&[&TestKey::rsa()]);
    let upstream = Upstream::start();
    let auth = AuthServer::start(&jwks.uri());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("client-secret");
    std::fs::write(&file, "not-the-secret").unwrap();
    let policy = timesheets_policy();
    let mut spec = GatewaySpec::new(&jwks, &upstream, &policy);
    spec.issuer_option("introspection", auth.introspection(&file))
        .issuer_option(
            "introspection",
            json!({"endpoint": auth.introspection_endpoint()}),
        );
    let gw = Gateway::start_with_issuer(&spec, &auth.issuer());
    gw.wait_ready();
    auth.activate("opaque-x", active(&auth.issuer(), "read:timesheets"));
    assert_eq!(gw.call("GET", "/timesheets", "opaque-x").status, 503);
    assert_eq!(upstream.count(), 0);
    // The secret never reaches the log.
    assert!(!gw.log().contains("not-the-secret"));
}

#[test]
fn opaque_tokens_never_reach_the_log() {
    let s = start(json!({}), &timesheets_policy());
    let token = "opaque-secret-token-do-not-log";
    s.auth
        .activate(token, active(&s.auth.issuer(), "read:timesheets"));
    assert_eq!(s.gw.call("GET", "/timesheets", token).status, 200);
    assert_eq!(
        s.gw.call("GET", "/timesheets", "opaque-unknown-also-secret")
            .status,
        401
    );
    std::thread::sleep(Duration::from_millis(200));
    let log = s.gw.log();
    assert!(!log.contains(token) && !log.contains("opaque-unknown-also-secret"));
}
