//! Several replicas sharing one Valkey/Redis store (a real `redis-server` on a free
//! loopback port, started and stopped by the test): a DPoP proof is single-use across the
//! fleet, a token is introspected once for the fleet, and a store outage gives the
//! documented answers (proofs: 503 with `Retry-After` under `on_error: deny`, the
//! replica's own cache under `local`; introspection: the authorization server is asked)
//! and ends when the store comes back.

use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::authserver::{AuthServer, active};
use crate::dpop::{Holder, PUBLIC_URL, assert_dpop_error, dpop_call};
use crate::harness::*;

/// A `redis-server` of the test's own: no persistence, loopback only, a port kept across
/// restarts.
pub struct Redis {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Mutex<Option<Child>>,
}

impl Redis {
    pub fn start() -> Redis {
        let redis = Redis {
            port: free_port(),
            dir: tempfile::tempdir().unwrap(),
            child: Mutex::new(None),
        };
        redis.up();
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts the server (again) on its port and waits until it answers.
    pub fn up(&self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--dir", &self.dir.path().display().to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server runs (scripts/setup --test installs it)");
        *self.child.lock().unwrap() = Some(child);
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(addr).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the server: its connections close, its port refuses.
    pub fn down(&self) {
        if let Some(mut child) = self.child.lock().unwrap().take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.down();
    }
}

/// The `shared_store` section for `redis`, with `on_error`.
fn store_section(redis: &Redis, on_error: &str) -> String {
    format!(
        "shared_store:\n  url: \"{}\"\n  command_timeout_ms: 300\n  key_prefix: \"t{}:\"\n  on_error: {on_error}\n",
        redis.url(),
        std::process::id()
    )
}

/// A gateway requiring DPoP-capable tokens, with the shared store.
fn dpop_gateway(jwks: &JwksServer, upstream: &Upstream, store: &str) -> Gateway {
    let policy = timesheets_policy();
    let mut spec = GatewaySpec::new(jwks, upstream, &policy);
    spec.issuer_option("dpop", json!("allowed"));
    let extra = format!("dpop:\n  public_url: {PUBLIC_URL}\n{store}");
    spec.extra = &extra;
    let gw = Gateway::start(&spec);
    gw.wait_ready();
    gw
}

fn bound_token(holder: &Holder) -> String {
    let mut c = claims("read:timesheets");
    c["cnf"] = json!({"jkt": holder.jkt});
    TestKey::rsa().sign(&c)
}

#[test]
fn a_proof_used_at_one_replica_is_refused_at_the_other() {
    let redis = Redis::start();
    let jwks = JwksServer::start(&[&TestKey::rsa()]);
    let upstream = Upstream::start();
    let store = store_section(&redis, "deny");
    let (a, b) = (
        dpop_gateway(&jwks, &upstream, &store),
        dpop_gateway(&jwks, &upstream, &store),
    );
    let app = Holder::new(TestKey::ec());
    let token = bound_token(&app);

    let proof = app.proof("GET", "/timesheets", &token);
    let first = dpop_call(&a, "GET", "/timesheets", &token, &proof);
    assert_eq!(first.status, 200, "{first:?}\n{}", a.log());
    // The same proof at the other replica: a replay, whatever replica it reaches.
    let replayed = dpop_call(&b, "GET", "/timesheets", &token, &proof);
    assert_dpop_error(&replayed, "invalid_dpop_proof");
    assert!(replayed.body.contains("already used"), "{}", replayed.body);
    b.wait_metric(
        r#"scopegate_requests_total{decision="deny",reason="dpop_replayed",route="list-timesheets"}"#,
        1.0,
    );
    // A fresh proof passes at either.
    for gw in [&a, &b] {
        let fresh = app.proof("GET", "/timesheets", &token);
        assert_eq!(
            dpop_call(gw, "GET", "/timesheets", &token, &fresh).status,
            200
        );
    }
    assert_eq!(upstream.count(), 3);
    assert_eq!(
        b.metric(r#"scopegate_shared_store_requests_total{op="claim",result="ok"}"#),
        2.0
    );
}

#[test]
fn a_store_outage_refuses_proofs_with_503_and_ends_when_the_store_is_back() {
    let redis = Redis::start();
    let jwks = JwksServer::start(&[&TestKey::rsa()]);
    let upstream = Upstream::start();
    let store = store_section(&redis, "deny");
    let (a, b) = (
        dpop_gateway(&jwks, &upstream, &store),
        dpop_gateway(&jwks, &upstream, &store),
    );
    let app = Holder::new(TestKey::ec());
    let token = bound_token(&app);
    let warm = app.proof("GET", "/timesheets", &token);
    assert_eq!(
        dpop_call(&a, "GET", "/timesheets", &token, &warm).status,
        200
    );

    redis.down();
    let started = Instant::now();
    let proof = app.proof("GET", "/timesheets", &token);
    let refused = dpop_call(&a, "GET", "/timesheets", &token, &proof);
    assert_eq!(refused.status, 503, "{refused:?}\n{}", a.log());
    assert_eq!(refused.header("retry-after"), Some("5"));
    assert_eq!(refused.json()["error"], "temporarily_unavailable");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "bounded by the command timeout: {:?}",
        started.elapsed()
    );
    // A bad proof is still 401, store or no store.
    let stale = dpop_call(&a, "GET", "/timesheets", &token, &warm);
    assert_eq!(stale.status, 401, "{stale:?}");
    // Readiness does not depend on the store.
    assert_eq!(a.admin_get("/readyz").0, 200);
    a.wait_metric(
        r#"scopegate_shared_store_fallbacks_total{use="dpop_denied"}"#,
        1.0,
    );
    a.wait_metric(
        r#"scopegate_requests_total{decision="deny",reason="shared_store_unavailable",route="list-timesheets"}"#,
        1.0,
    );

    redis.up();
    // Back: the next proofs pass, once in the fleet.
    let deadline = Instant::now() + Duration::from_secs(10);
    let proof = loop {
        let proof = app.proof("GET", "/timesheets", &token);
        let r = dpop_call(&a, "GET", "/timesheets", &token, &proof);
        if r.status == 200 {
            break proof;
        }
        assert_eq!(r.status, 503, "{r:?}");
        assert!(Instant::now() < deadline, "the store never came back");
        std::thread::sleep(Duration::from_millis(100));
    };
    let replayed = dpop_call(&b, "GET", "/timesheets", &token, &proof);
    assert_dpop_error(&replayed, "invalid_dpop_proof");
}

#[test]
fn under_on_error_local_an_outage_leaves_each_replica_its_own_replay_cache() {
    // The store is down from the start: the gateway starts and is ready all the same.
    let redis = Redis::start();
    redis.down();
    let jwks = JwksServer::start(&[&TestKey::rsa()]);
    let upstream = Upstream::start();
    let gw = dpop_gateway(&jwks, &upstream, &store_section(&redis, "local"));
    let app = Holder::new(TestKey::ec());
    let token = bound_token(&app);
    let proof = app.proof("GET", "/timesheets", &token);
    let ok = dpop_call(&gw, "GET", "/timesheets", &token, &proof);
    assert_eq!(ok.status, 200, "{ok:?}\n{}", gw.log());
    assert_dpop_error(
        &dpop_call(&gw, "GET", "/timesheets", &token, &proof),
        "invalid_dpop_proof",
    );
    gw.wait_metric(
        r#"scopegate_shared_store_fallbacks_total{use="dpop_local"}"#,
        1.0,
    );
}

struct Introspecting {
    gws: Vec<Gateway>,
    auth: AuthServer,
    _jwks: JwksServer,
    _upstream: Upstream,
    _secret: tempfile::TempDir,
}

/// Two replicas introspecting at one authorization server, sharing `redis`.
fn introspecting(redis: &Redis) -> Introspecting {
    let jwks = JwksServer::start(&[&TestKey::rsa()]);
    let upstream = Upstream::start();
    let auth = AuthServer::start(&jwks.uri());
    let secret = tempfile::tempdir().unwrap();
    let introspection = auth.introspection_in(secret.path());
    let policy = timesheets_policy();
    let store = store_section(redis, "deny");
    let gws = (0..2)
        .map(|_| {
            let mut spec = GatewaySpec::new(&jwks, &upstream, &policy);
            spec.issuer_option("introspection", introspection.clone());
            spec.extra = &store;
            let gw = Gateway::start_with_issuer(&spec, &auth.issuer());
            gw.wait_ready();
            gw
        })
        .collect();
    Introspecting {
        gws,
        auth,
        _jwks: jwks,
        _upstream: upstream,
        _secret: secret,
    }
}

#[test]
fn a_token_introspected_by_one_replica_is_served_by_the_other_without_a_call() {
    let redis = Redis::start();
    let s = introspecting(&redis);
    let (a, b) = (&s.gws[0], &s.gws[1]);
    s.auth
        .activate("opaque-alice", active(&s.auth.issuer(), "read:timesheets"));

    assert_eq!(a.call("GET", "/timesheets", "opaque-alice").status, 200);
    assert_eq!(s.auth.calls(), 1);
    let r = b.call("GET", "/timesheets", "opaque-alice");
    assert_eq!(r.status, 200, "{r:?}\n{}", b.log());
    assert_eq!(
        s.auth.calls(),
        1,
        "the second replica asked the store, not the server"
    );
    // Decided by its own rules on the shared answer: the scope is still checked.
    assert_eq!(
        b.call("DELETE", "/timesheets/7", "opaque-alice").status,
        403
    );
    assert_eq!(
        b.metric(
            r#"scopegate_introspection_cache_requests_total{issuer="exampleco",result="shared_hit"}"#
        ),
        1.0
    );
    // An inactive answer is shared too (briefly).
    assert_eq!(a.call("GET", "/timesheets", "opaque-nobody").status, 401);
    assert_eq!(b.call("GET", "/timesheets", "opaque-nobody").status, 401);
    assert_eq!(s.auth.calls(), 2);
}

#[test]
fn introspection_asks_the_server_while_the_store_is_down_and_shares_again_after() {
    let redis = Redis::start();
    let s = introspecting(&redis);
    let (a, b) = (&s.gws[0], &s.gws[1]);
    s.auth
        .activate("opaque-1", active(&s.auth.issuer(), "read:timesheets"));
    redis.down();
    assert_eq!(a.call("GET", "/timesheets", "opaque-1").status, 200);
    assert_eq!(b.call("GET", "/timesheets", "opaque-1").status, 200);
    assert_eq!(s.auth.calls(), 2, "each replica asked the server itself");
    a.wait_metric(
        r#"scopegate_shared_store_fallbacks_total{use="introspection_called"}"#,
        1.0,
    );

    redis.up();
    // The first tries after the restart may still find the store unreachable: a new token
    // each time, so that neither replica's own cache answers.
    let deadline = Instant::now() + Duration::from_secs(10);
    for n in 0.. {
        let t = format!("opaque-2-{n}");
        s.auth
            .activate(&t, active(&s.auth.issuer(), "read:timesheets"));
        assert_eq!(a.call("GET", "/timesheets", &t).status, 200);
        let before = s.auth.calls();
        assert_eq!(b.call("GET", "/timesheets", &t).status, 200);
        if s.auth.calls() == before {
            break;
        }
        assert!(Instant::now() < deadline, "sharing never resumed");
        std::thread::sleep(Duration::from_millis(200));
    }
}
