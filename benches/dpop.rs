//! What a DPoP proof costs per request (RFC 9449): the proof's signature check can never
//! be cached (each proof is new), so a DPoP request pays an ES256 verification on top of
//! the verified-token cache hit a bearer request gets. Measured on the same authenticator
//! the server builds: a bearer token, a DPoP-bound token with a fresh proof per request, and
//! the proof check alone. With a Valkey/Redis on loopback (`SCOPEGATE_BENCH_STORE`, default
//! `redis://127.0.0.1:6379`; skipped with a message when nothing answers there), the same
//! DPoP request with the proof claimed in the shared store: one round trip more.

#[path = "support/store.rs"]
mod store;
use std::hint::black_box;
use std::time::Duration;
use store::bench_store;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use jsonwebtoken::jwk::{Jwk, JwkSet, ThumbprintHash};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use scopegate::auth::dpop::proof::{self, ProofRules, ProofTarget};
use scopegate::auth::dpop::{DPOP, DpopRequest};
use scopegate::auth::{Authenticator, Sender};
use scopegate::config::Settings;
use scopegate::ops::metrics::Metrics;
use scopegate::policy::Policy;
use serde_json::{Value, json};

const CONFIG: &str = r#"version: 1
upstream: http://127.0.0.1:1
policy: bench.yaml
issuers:
  - issuer: https://exampleco.test/
    audiences: [https://api.exampleco.com/timesheets]
    jwks_uri: http://127.0.0.1:1/.well-known/jwks.json
    algorithms: [RS256]
    dpop: allowed
dpop:
  public_url: https://api.exampleco.com
  replay_cache_entries: 1000000
"#;

const URL: &str = "https://api.exampleco.com/timesheets/4711";

fn key(file: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/fixtures/{file}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

struct Fixture {
    auth: Authenticator,
    /// A runtime for the shared store's round trips; `None`: nothing waits.
    rt: Option<tokio::runtime::Runtime>,
    /// One route, DPoP left to the issuer's setting.
    policy: Policy,
    ec: EncodingKey,
    jwk: Jwk,
    bearer: String,
    bound: String,
}

impl Fixture {
    fn new() -> Fixture {
        Fixture::with(CONFIG, None)
    }

    /// The fixture with the config `text`, run on `rt` when given.
    fn with(text: &str, rt: Option<tokio::runtime::Runtime>) -> Fixture {
        scopegate::install_crypto_provider();
        let settings = Settings::parse(text, "bench.yaml", std::path::Path::new("."))
            .expect("bench config parses");
        let (auth, stores) = Authenticator::from_settings(&settings, &Metrics::new());
        let rsa = EncodingKey::from_rsa_pem(&key("rsa-1.pem")).unwrap();
        let mut rsa_jwk = Jwk::from_encoding_key(&rsa, Algorithm::RS256).unwrap();
        rsa_jwk.common.key_id = Some("rsa-1".into());
        let jwks = serde_json::to_vec(&JwkSet {
            keys: vec![rsa_jwk],
        })
        .unwrap();
        stores[0].install_jwks(&jwks).expect("JWKS installs");
        let ec = EncodingKey::from_ec_pem(&key("ec-p256.pem")).unwrap();
        let jwk = Jwk::from_encoding_key(&ec, Algorithm::ES256).unwrap();
        let jkt = jwk.thumbprint(ThumbprintHash::SHA256).unwrap();
        let now = jsonwebtoken::get_current_timestamp();
        let token = |cnf: Option<Value>| {
            let mut claims = json!({
                "iss": "https://exampleco.test/",
                "aud": "https://api.exampleco.com/timesheets",
                "sub": "auth0|5f7c8ec7c33c6c004bbafe82",
                "iat": now,
                "exp": now + 24 * 3600,
                "scope": "read:timesheets",
            });
            if let Some(cnf) = cnf {
                claims["cnf"] = cnf;
            }
            let mut header = Header::new(Algorithm::RS256);
            header.kid = Some("rsa-1".into());
            jsonwebtoken::encode(&header, &claims, &rsa).unwrap()
        };
        let policy = scopegate::policy::compile(
            b"version: 1\nroutes:\n  - {id: read, methods: [GET], path: \"/timesheets/{id}\", scopes: [read:timesheets]}\n",
            "bench-policy.yaml",
        )
        .expect("the bench policy compiles");
        Fixture {
            auth,
            rt,
            policy,
            ec,
            jwk,
            bearer: token(None),
            bound: token(Some(json!({ "jkt": jkt }))),
        }
    }

    /// A fresh ES256 proof for `GET URL` and the bound token (a new `jti` each time).
    fn proof(&self) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.typ = Some("dpop+jwt".into());
        header.jwk = Some(self.jwk.clone());
        let claims = json!({
            "jti": format!("{:032x}", rand_jti()),
            "htm": "GET",
            "htu": URL,
            "iat": jsonwebtoken::get_current_timestamp(),
            "ath": proof::token_hash(&self.bound),
        });
        jsonwebtoken::encode(&header, &claims, &self.ec).unwrap()
    }

    fn call(&self, authorization: &str, proof: Option<&str>) -> bool {
        let mut headers = http::HeaderMap::new();
        if let Some(proof) = proof {
            headers.insert(&DPOP, proof.parse().expect("a proof is a header value"));
        }
        let sender = Sender {
            dpop: DpopRequest {
                method: "GET",
                path: "/timesheets/4711",
                headers: &headers,
            },
            client_cert: None,
        };
        let route = self
            .policy
            .route("GET", "/timesheets/4711")
            .expect("the route matches");
        // Nothing here waits on the network: the authentication is ready at once.
        let credential = self.auth.credential([authorization.as_bytes()], None);
        let authenticated = self.auth.authenticate(
            &credential,
            route.auth,
            self.policy.condition_claims(),
            sender,
            scopegate::ground::clock::unix_now(),
            std::time::Instant::now(),
        );
        match &self.rt {
            Some(rt) => rt.block_on(authenticated).is_ok(),
            None => scopegate::decision::now(authenticated).is_ok(),
        }
    }
}

/// A process-unique counter is enough for distinct `jti`s.
fn rand_jti() -> u128 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    u128::from(N.fetch_add(1, Ordering::Relaxed)) | (u128::from(std::process::id()) << 64)
}

fn dpop(c: &mut Criterion) {
    let f = Fixture::new();
    let bearer = format!("Bearer {}", f.bearer);
    let bound = format!("DPoP {}", f.bound);
    assert!(f.call(&bearer, None));
    assert!(f.call(&bound, Some(&f.proof())));
    let mut group = c.benchmark_group("dpop");
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .sample_size(40);
    group.bench_function("bearer/cache_hit", |b| {
        b.iter(|| f.call(black_box(&bearer), None))
    });
    group.bench_function("ES256_proof/cache_hit", |b| {
        b.iter_batched(
            || f.proof(),
            |proof| assert!(f.call(black_box(&bound), Some(&proof))),
            BatchSize::SmallInput,
        )
    });
    let one = f.proof();
    let rules = ProofRules {
        algorithms: vec![Algorithm::ES256],
        iat_window: 60,
        iat_future_skew: 5,
    };
    let target = ProofTarget {
        method: "GET",
        htu: URL,
        token: Some(&f.bound),
    };
    group.bench_function("ES256_proof/check_alone", |b| {
        b.iter(|| {
            let now = jsonwebtoken::get_current_timestamp();
            proof::check(black_box(&one), &target, &rules, now).is_ok()
        })
    });
    group.finish();
    with_store(c);
}

fn with_store(c: &mut Criterion) {
    let Some(url) = bench_store() else {
        return;
    };
    let config = format!(
        "{CONFIG}shared_store:\n  url: \"{url}\"\n  key_prefix: \"bench{}:\"\n",
        std::process::id()
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let f = Fixture::with(&config, Some(rt));
    let bound = format!("DPoP {}", f.bound);
    assert!(f.call(&bound, Some(&f.proof())), "the store answers");
    let mut group = c.benchmark_group("dpop");
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .sample_size(40);
    group.bench_function("ES256_proof/shared_store_claim", |b| {
        b.iter_batched(
            || f.proof(),
            |proof| assert!(f.call(black_box(&bound), Some(&proof))),
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, dpop);
criterion_main!(benches);
