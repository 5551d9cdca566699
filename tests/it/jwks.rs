//! The JWKS lifecycle: rotation without restart, outages ridden out, floods of unknown
//! key ids bounded, and stale keys dropped.

use std::time::{Duration, Instant};

use crate::harness::*;

fn start(jwks: &JwksServer, jwks_options: Value) -> (Gateway, Upstream) {
    let upstream = Upstream::start();
    let policy = timesheets_policy();
    let mut spec = GatewaySpec::new(jwks, &upstream, &policy);
    spec.issuer_option("jwks", jwks_options);
    let gw = Gateway::start(&spec);
    gw.wait_ready();
    (gw, upstream)
}

fn eventually(gw: &Gateway, what: &str, mut ok: impl FnMut() -> bool) {
    gw.wait_for(&mut ok, what);
}

#[test]
fn a_rotated_key_is_accepted_without_restart_and_a_removed_key_stops_verifying() {
    let (old, new) = (TestKey::rsa(), TestKey::rsa2());
    let jwks = JwksServer::start(&[&old]);
    jwks.set_cache_control("max-age=1");
    let (gw, _upstream) = start(&jwks, json!({}));
    let old_token = old.sign(&claims("read:timesheets"));
    assert_eq!(gw.call("GET", "/timesheets", &old_token).status, 200);

    // The identity provider publishes a new key and starts signing with it.
    jwks.set_keys(&[&old, &new]);
    let new_token = new.sign(&claims("read:timesheets"));
    eventually(&gw, "the new key to verify", || {
        gw.call("GET", "/timesheets", &new_token).status == 200
    });

    // Then retires the old key: its tokens stop verifying, cached or not.
    jwks.set_keys(&[&new]);
    eventually(&gw, "the old key to stop verifying", || {
        gw.call("GET", "/timesheets", &old_token).status == 401
    });
    assert_eq!(gw.call("GET", "/timesheets", &new_token).status, 200);
}

#[test]
fn an_outage_after_warm_up_keeps_valid_tokens_passing_and_shows_in_the_metrics() {
    let key = TestKey::rsa();
    let jwks = JwksServer::start(&[&key]);
    jwks.set_cache_control("max-age=1");
    let (gw, _upstream) = start(&jwks, json!({}));
    let failures = r#"scopegate_jwks_refreshes_total{issuer="exampleco",result="failure"}"#;
    assert_eq!(gw.metric(failures), 0.0);

    for (i, mode) in [
        JwksMode::Status(503),
        JwksMode::Garbage,
        JwksMode::Status(200),
    ]
    .into_iter()
    .enumerate()
    {
        if i == 2 {
            // A 200 with an empty set is no better than an error.
            jwks.set_raw_keys(vec![]);
        } else {
            jwks.set_mode(mode);
        }
        let before = gw.metric(failures);
        eventually(&gw, "a failed refresh", || gw.metric(failures) > before);
        // Fresh tokens (not cached) still verify with the last good keys.
        let mut c = claims("read:timesheets");
        c["jti"] = serde_json::json!(format!("t{i}"));
        assert_eq!(gw.call("GET", "/timesheets", &key.sign(&c)).status, 200);
    }
    jwks.down();
    let before = gw.metric(failures);
    eventually(&gw, "a refused connection to count", || {
        gw.metric(failures) > before
    });
    assert_eq!(
        gw.call("GET", "/timesheets", &key.sign(&claims("read:timesheets")))
            .status,
        200
    );
    assert_eq!(gw.metric(r#"scopegate_jwks_keys{issuer="exampleco"}"#), 1.0);
    assert_eq!(gw.admin_get("/readyz").0, 200);
    // The failure is counted just before it is logged.
    gw.wait_for(
        || gw.log().contains("JWKS refresh failed"),
        "the failed refresh's log line",
    );
}

#[test]
fn the_first_token_signed_with_a_newly_published_key_is_allowed_on_its_first_request() {
    let (old, new) = (TestKey::rsa(), TestKey::rsa2());
    let jwks = JwksServer::start(&[&old]);
    // No max-age: the regular refresh is minutes away, so only the unknown kid's refetch
    // can bring the new key in.
    let (gw, upstream) = start(&jwks, json!({}));
    assert_eq!(
        gw.call("GET", "/timesheets", &old.sign(&claims("read:timesheets")))
            .status,
        200
    );
    let before = jwks.fetches();
    jwks.set_keys(&[&old, &new]);
    let r = gw.call("GET", "/timesheets", &new.sign(&claims("read:timesheets")));
    assert_eq!(
        r.status, 200,
        "the request waited for the refetch it caused"
    );
    assert_eq!(jwks.fetches(), before + 1);
    assert_eq!(upstream.count(), 2);
}

#[test]
fn a_flood_of_unknown_key_ids_costs_at_most_one_fetch_per_interval() {
    let key = TestKey::rsa();
    let jwks = JwksServer::start(&[&key]);
    let (gw, upstream) = start(&jwks, json!({}));
    let before = jwks.fetches();
    let started = Instant::now();
    let mut forged = TestKey::rsa2();
    for i in 0..400 {
        forged.kid = format!("random-{i}-{}", now());
        assert_eq!(
            gw.call(
                "GET",
                "/timesheets",
                &forged.sign(&claims("read:timesheets"))
            )
            .status,
            401
        );
    }
    let elapsed = started.elapsed().as_secs();
    // unknown_kid_refetch_seconds is 1: one fetch per started second at most.
    let fetched = jwks.fetches() - before;
    assert!(
        fetched as u64 <= elapsed + 1,
        "{fetched} fetches in {elapsed} s"
    );
    assert!(fetched >= 1, "an unknown kid triggers a refetch");
    assert!(gw.metric(r#"scopegate_jwks_unknown_kid_refetches_total{issuer="exampleco"}"#) >= 1.0);
    assert_eq!(upstream.count(), 0);
}

#[test]
fn keys_past_the_maximum_staleness_fail_closed_until_the_server_returns() {
    let key = TestKey::rsa();
    let jwks = JwksServer::start(&[&key]);
    jwks.set_cache_control("max-age=1");
    let (gw, upstream) = start(&jwks, json!({"max_staleness_seconds": 2}));
    assert_eq!(
        gw.call("GET", "/timesheets", &key.sign(&claims("read:timesheets")))
            .status,
        200
    );

    jwks.down();
    std::thread::sleep(Duration::from_secs(3));
    let r = gw.call("GET", "/timesheets", &key.sign(&claims("read:timesheets")));
    assert_eq!(r.status, 503, "{r:?}");
    assert_eq!(gw.admin_get("/readyz").0, 503);
    assert_eq!(
        gw.metric(r#"scopegate_jwks_stale{issuer="exampleco"}"#),
        1.0
    );
    assert_eq!(upstream.count(), 1);

    jwks.up();
    gw.wait_ready();
    assert_eq!(
        gw.call("GET", "/timesheets", &key.sign(&claims("read:timesheets")))
            .status,
        200
    );
    assert_eq!(
        gw.metric(r#"scopegate_jwks_stale{issuer="exampleco"}"#),
        0.0
    );
}
