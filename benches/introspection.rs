//! The introspection cache hit (an opaque token seen before) beside the verified-token
//! cache hit (a JWT seen before), through the same `Verifier::authenticate` the gateway
//! runs. A local introspection endpoint answers the first call; every timed call is a hit
//! and never leaves the process. With a Valkey/Redis on loopback (`SCOPEGATE_BENCH_STORE`,
//! default `redis://127.0.0.1:6379`; skipped with a message when nothing answers there), a
//! shared-store hit beside them: a second replica, whose own cache keeps nothing, finds the
//! answer the first one shared (one round trip, decryption, the claims judged again).

#[path = "support/store.rs"]
mod store;
use scopegate::ground::clock::unix_now;
use std::hint::black_box;
use std::time::Duration;
use store::bench_store;

use criterion::{Criterion, criterion_group, criterion_main};
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use scopegate::auth::Authenticator;
use scopegate::auth::identity::ConditionClaims;
use scopegate::config::Settings;
use scopegate::decision;
use scopegate::ops::metrics::Metrics;

const ISSUER: &str = "https://exampleco.test/";
const AUDIENCE: &str = "https://api.exampleco.com/timesheets";
const OPAQUE: &str = "2YotnFZFEjr1zCsicMWpAA-opaque-reference-token-of-a-usual-length";

/// Calls the endpoint answered.
static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// An introspection endpoint that calls every token active.
async fn serve(listener: tokio::net::TcpListener) {
    let answer = serde_json::json!({
        "active": true,
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "alice@exampleco.com",
        "client_id": "timesheets-mobile",
        "scope": "read:timesheets create:timesheets",
        "token_type": "Bearer",
        "exp": jsonwebtoken::get_current_timestamp() + 24 * 3600,
    });
    let app = axum::Router::new().route(
        "/introspect",
        axum::routing::post(move || {
            let answer = answer.clone();
            CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            async move { axum::Json(answer) }
        }),
    );
    let _ = axum::serve(listener, app).await;
}

fn introspection(c: &mut Criterion) {
    scopegate::install_crypto_provider();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    runtime.spawn(serve(listener));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("secret"), "bench-secret").unwrap();
    let config = format!(
        "version: 1
upstream: http://127.0.0.1:1
policy: bench.yaml
issuers:
  - issuer: {ISSUER}
    audiences: [{AUDIENCE}]
    jwks_uri: http://127.0.0.1:1/.well-known/jwks.json
    introspection:
      endpoint: http://127.0.0.1:{port}/introspect
      client_id: scopegate
      client_secret_file: secret
"
    );
    let settings = Settings::parse(&config, "bench.yaml", dir.path()).expect("config parses");
    let (auth, stores) = Authenticator::from_settings(&settings, &Metrics::new());

    let pem = std::fs::read(format!(
        "{}/tests/fixtures/rsa-1.pem",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let key = EncodingKey::from_rsa_pem(&pem).unwrap();
    let mut jwk = Jwk::from_encoding_key(&key, Algorithm::RS256).unwrap();
    jwk.common.key_id = Some("rsa-1".into());
    stores[0]
        .install_jwks(&serde_json::to_vec(&JwkSet { keys: vec![jwk] }).unwrap())
        .unwrap();
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("rsa-1".into());
    let now = jsonwebtoken::get_current_timestamp();
    let jwt = jsonwebtoken::encode(
        &header,
        &serde_json::json!({
            "iss": ISSUER, "aud": AUDIENCE, "sub": "alice@exampleco.com",
            "client_id": "timesheets-mobile", "scope": "read:timesheets create:timesheets",
            "iat": now, "exp": now + 24 * 3600,
        }),
        &key,
    )
    .unwrap();

    let conditions = ConditionClaims::default();
    let verifier = auth.verifier.clone();
    // The first call of each goes to the endpoint (or verifies the signature); then hits.
    for token in [OPAQUE, jwt.as_str()] {
        runtime
            .block_on(verifier.authenticate(token, false, &conditions, unix_now()))
            .expect("the token is accepted");
    }
    let mut group = c.benchmark_group("cache_hit");
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(40);
    // A hit is ready at once: no runtime is involved in the timed part.
    group.bench_function("opaque_token_introspection_cache", |b| {
        b.iter(|| {
            decision::now(verifier.authenticate(black_box(OPAQUE), false, &conditions, unix_now()))
                .is_ok()
        })
    });
    group.bench_function("jwt_verified_token_cache", |b| {
        b.iter(|| {
            decision::now(verifier.authenticate(black_box(&jwt), false, &conditions, unix_now()))
                .is_ok()
        })
    });
    group.finish();
    shared_hit(c, &runtime, &config, dir.path());
}

/// Tokens replica A shares before replica B is timed reading them from the store.
const SHARED_POOL: usize = 30_000;

/// Replica A introspects and shares; replica B reads each token from the store, once.
fn shared_hit(
    c: &mut Criterion,
    runtime: &tokio::runtime::Runtime,
    config: &str,
    dir: &std::path::Path,
) {
    let Some(url) = bench_store() else {
        return;
    };
    let store = format!(
        "shared_store:\n  url: \"{url}\"\n  key_prefix: \"bench{}:\"\n",
        std::process::id()
    );
    let a = format!("{config}{store}");
    let b = a.clone();
    let replica = |text: &str| {
        let settings = Settings::parse(text, "bench.yaml", dir).expect("config parses");
        Authenticator::from_settings(&settings, &Metrics::new()).0
    };
    let (a, b) = (replica(&a), replica(&b));
    let conditions = ConditionClaims::default();
    // Replica A introspects and shares a pool of tokens; replica B then meets each for the
    // first time, so each of its lookups misses its own cache and is answered by the store.
    // The pool outlasts the iterations criterion makes here (about 10 000 at ~150 µs).
    let tokens: Vec<String> = (0..SHARED_POOL)
        .map(|i| format!("{OPAQUE}-shared-{i}"))
        .collect();
    for token in &tokens {
        runtime
            .block_on(
                a.verifier
                    .authenticate(token, false, &conditions, unix_now()),
            )
            .expect("the token is accepted");
    }
    let calls = CALLS.load(std::sync::atomic::Ordering::Relaxed);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let verifier = b.verifier.clone();
    let mut group = c.benchmark_group("cache_hit");
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(40);
    group.bench_function("opaque_token_shared_store", |bench| {
        bench.iter(|| {
            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let token = &tokens[i % SHARED_POOL];
            runtime
                .block_on(verifier.authenticate(black_box(token), false, &conditions, unix_now()))
                .is_ok()
        })
    });
    group.finish();
    assert_eq!(
        CALLS.load(std::sync::atomic::Ordering::Relaxed),
        calls,
        "every timed call was answered by the store, none by the endpoint"
    );
    let used = next.load(std::sync::atomic::Ordering::Relaxed);
    eprintln!(
        "opaque_token_shared_store: {used} lookups over a pool of {SHARED_POOL}{}",
        if used > SHARED_POOL {
            " (the pool wrapped: later lookups were local hits and the figure is low)"
        } else {
            ""
        }
    );
}

criterion_group!(benches, introspection);
criterion_main!(benches);
