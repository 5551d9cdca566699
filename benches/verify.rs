//! Token verification per algorithm, with the verified-token cache warm (the same token
//! again) and off (every call a full signature and claims check); the header rewrite; and
//! the whole per-request decision (`decision::decide`: path, route, token, verify, scopes;
//! the gateway runs the same steps, split where a token must be waited for).
//!
//! Everything is built through the constructor `server::build` uses
//! (`Authenticator::from_settings` on parsed settings), with the key store filled from a
//! JWKS document.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use scopegate::auth::dpop::DpopRequest;
use scopegate::auth::{Authenticator, Sender};
use scopegate::config::Settings;
use scopegate::decision;
use scopegate::ground::path::PathRules;
use scopegate::ops::metrics::Metrics;
use scopegate::proxy::headers::HeaderPlan;

const ISSUER: &str = "https://exampleco.test/";
const AUDIENCE: &str = "https://api.exampleco.com/timesheets";

const CONFIG: &str = r#"version: 1
upstream: http://127.0.0.1:1
policy: bench.yaml
issuers:
  - issuer: https://exampleco.test/
    audiences: [https://api.exampleco.com/timesheets]
    jwks_uri: http://127.0.0.1:1/.well-known/jwks.json
    algorithms: [RS256, ES256, EdDSA]
identity_headers:
  claims: {"https://api.exampleco.com/email": X-Auth-Email}
"#;

const KEYS: [(&str, &str, Algorithm); 3] = [
    ("rsa-1.pem", "rsa-1", Algorithm::RS256),
    ("ec-p256.pem", "ec-1", Algorithm::ES256),
    ("ed25519.pem", "ed-1", Algorithm::EdDSA),
];

struct Fixture {
    settings: Settings,
    plan: HeaderPlan,
    /// The JWK Set of `KEYS`.
    jwks: Vec<u8>,
    /// One token per entry of `KEYS`.
    tokens: Vec<String>,
    /// An RS256 token that also carries roles, a tenant and a recent MFA sign-in.
    rich: String,
}

impl Fixture {
    fn new() -> Fixture {
        scopegate::install_crypto_provider();
        let settings = Settings::parse(CONFIG, "bench.yaml", std::path::Path::new("."))
            .expect("bench config parses");
        let plan = HeaderPlan::new(&settings.headers);
        let mut jwks = JwkSet { keys: Vec::new() };
        let mut tokens = Vec::new();
        let mut rich = String::new();
        let now = jsonwebtoken::get_current_timestamp();
        for (file, kid, alg) in KEYS {
            let path = format!("{}/tests/fixtures/{file}", env!("CARGO_MANIFEST_DIR"));
            let pem = std::fs::read(&path).expect("fixture key");
            let encoding = match alg {
                Algorithm::RS256 => EncodingKey::from_rsa_pem(&pem),
                Algorithm::ES256 => EncodingKey::from_ec_pem(&pem),
                _ => EncodingKey::from_ed_pem(&pem),
            }
            .expect("fixture key parses");
            let mut jwk = Jwk::from_encoding_key(&encoding, alg).expect("public JWK");
            jwk.common.key_id = Some(kid.into());
            jwks.keys.push(jwk);
            let mut header = Header::new(alg);
            header.kid = Some(kid.into());
            header.typ = Some("at+jwt".into());
            let claims = serde_json::json!({
                "iss": ISSUER,
                "aud": [AUDIENCE, "https://exampleco.test/userinfo"],
                "sub": "auth0|5f7c8ec7c33c6c004bbafe82",
                "azp": "timesheets-mobile",
                "iat": now,
                "exp": now + 24 * 3600,
                "scope": "openid profile read:timesheets create:timesheets",
                "https://api.exampleco.com/email": "alice@exampleco.com",
            });
            if alg == Algorithm::RS256 {
                let mut more = claims.clone();
                more["https://api.exampleco.com/roles"] =
                    serde_json::json!(["Employee", "Manager"]);
                more["org"] = serde_json::json!({"id": "exampleco", "region": "eu"});
                more["acr"] = serde_json::json!("mfa");
                more["auth_time"] = serde_json::json!(now);
                rich = jsonwebtoken::encode(&header, &more, &encoding).expect("signs");
            }
            tokens.push(jsonwebtoken::encode(&header, &claims, &encoding).expect("signs"));
        }
        Fixture {
            settings,
            plan,
            jwks: serde_json::to_vec(&jwks).expect("JWKS serializes"),
            tokens,
            rich,
        }
    }

    /// An authenticator built as the server builds it, its keys loaded, the cache of
    /// `cache` entries (or off).
    fn authenticator(&self, cache: Option<usize>) -> Authenticator {
        let mut settings = self.settings.clone();
        settings.token_cache_entries = cache;
        let (auth, stores) = Authenticator::from_settings(&settings, &Metrics::new());
        let n = stores[0].install_jwks(&self.jwks).expect("JWKS installs");
        assert_eq!(n, 3);
        auth
    }
}

fn quick(c: &mut Criterion) -> criterion::BenchmarkGroup<'_, criterion::measurement::WallTime> {
    let mut g = c.benchmark_group("verify");
    g.warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(40);
    g
}

fn verify(c: &mut Criterion) {
    let f = Fixture::new();
    let cached = f.authenticator(Some(100_000)).verifier;
    let uncached = f.authenticator(None).verifier;
    let mut group = quick(c);
    for ((_, _, alg), token) in KEYS.iter().zip(&f.tokens) {
        cached.verify(token).expect("valid token");
        uncached.verify(token).expect("valid token");
        group.bench_function(format!("{alg:?}/cache_hit"), |b| {
            b.iter(|| cached.verify(black_box(token)).is_ok())
        });
        group.bench_function(format!("{alg:?}/cache_miss"), |b| {
            b.iter(|| uncached.verify(black_box(token)).is_ok())
        });
    }
    group.finish();
}

/// The request headers of a typical API call from a browser app behind a load balancer,
/// including one identity header the client tried to set itself.
fn typical_headers(token: &str) -> http::HeaderMap {
    let mut h = http::HeaderMap::new();
    for (name, value) in [
        ("host", "api.exampleco.com".to_owned()),
        (
            "user-agent",
            "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0".into(),
        ),
        ("accept", "application/json".into()),
        ("accept-encoding", "gzip, deflate, br".into()),
        ("accept-language", "en-GB,en;q=0.9".into()),
        ("authorization", format!("Bearer {token}")),
        ("origin", "https://app.exampleco.com".into()),
        ("referer", "https://app.exampleco.com/timesheets".into()),
        (
            "x-request-id",
            "5f0c9a3e-1b7e-4d0a-9b8e-2a6f7f1c9d10".into(),
        ),
        ("x-forwarded-for", "203.0.113.7".into()),
        ("x-forwarded-proto", "https".into()),
        ("x-auth-subject", "admin".into()),
    ] {
        h.insert(name, value.parse().expect("valid header"));
    }
    h
}

fn headers(c: &mut Criterion) {
    let f = Fixture::new();
    let verifier = f.authenticator(Some(100_000)).verifier;
    let identity = verifier.verify(&f.tokens[0]).expect("valid token");
    let request = typical_headers(&f.tokens[0]);
    let mut group = c.benchmark_group("headers");
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(40);
    // The map is cloned outside the timed part; `harness_floor` is what that costs anyway.
    group.bench_function("harness_floor", |b| {
        b.iter_batched(|| request.clone(), |h| h, BatchSize::SmallInput)
    });
    group.bench_function("apply_http_headermap", |b| {
        b.iter_batched(
            || request.clone(),
            |mut h| {
                f.plan.apply(&mut h, Some(&identity));
                h
            },
            BatchSize::SmallInput,
        )
    });
    // What the proxy does: pingora's request header, which keeps a second, case-preserving
    // map and grows both when the identity headers are added.
    let mut pingora_request =
        pingora::http::RequestHeader::build("GET", b"/timesheets/4711", Some(request.len()))
            .expect("request header");
    for (name, value) in &request {
        pingora_request
            .append_header(name.as_str().to_owned(), value.clone())
            .expect("valid header");
    }
    group.bench_function("apply_pingora_request_header", |b| {
        b.iter_batched(
            || pingora_request.clone(),
            |mut h| {
                f.plan.apply(&mut h, Some(&identity));
                h
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

/// The seed policy plus a route with three conditions besides its scope: a role
/// (`contains_any` on a namespaced claim), a tenant in a nested claim (`equals`) and a
/// step-up rule (`acr`, `max_age`).
const CONDITIONS: &str = r#"
  - id: conditions
    methods: [GET]
    path: /reports/{id}
    scopes: [read:timesheets]
    claims:
      - {claim: https://api.exampleco.com/roles, contains_any: [Manager]}
      - {claim: [org, id], equals: exampleco}
    authentication: {acr: [mfa], max_age: 86400}
"#;

fn decide(c: &mut Criterion) {
    let f = Fixture::new();
    let yaml = format!(
        "{}{CONDITIONS}",
        include_str!("../policies/timesheets.yaml")
    );
    let policy = scopegate::policy::compile(yaml.as_bytes(), "timesheets.yaml")
        .expect("seed policy compiles");
    let cached = f.authenticator(Some(100_000));
    let uncached = f.authenticator(None);
    let plain = format!("Bearer {}", f.tokens[0]);
    let rich = format!("Bearer {}", f.rich);
    let no_headers = http::HeaderMap::new();
    let run = |auth: &Authenticator, path: &str, authorization: &str| {
        let sender = Sender {
            dpop: DpopRequest {
                method: "GET",
                path,
                headers: &no_headers,
            },
            client_cert: None,
        };
        let credential = auth.credential([authorization.as_bytes()], None);
        let now = scopegate::ground::clock::unix_now();
        // A verified token (cached or not) needs no network: the decision is ready at once.
        let d = decision::now(decision::decide(
            &PathRules::default(),
            "GET",
            black_box(path),
            &policy,
            now,
            |route| {
                let conditions = policy.condition_claims();
                auth.authenticate(&credential, route, conditions, sender, now, Instant::now())
            },
        ));
        assert!(d.verdict.rejection().is_none(), "{path}: {:?}", d.verdict);
        d
    };
    run(&cached, "/timesheets/4711", &plain);
    run(&cached, "/reports/4711", &rich);
    let mut group = c.benchmark_group("decide");
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(40);
    group.bench_function("RS256/cache_hit", |b| {
        b.iter(|| run(&cached, "/timesheets/4711", &plain))
    });
    // The same token shape on both routes, so only the route's requirement differs.
    group.bench_function("RS256/cache_hit/scope_only_route", |b| {
        b.iter(|| run(&cached, "/timesheets/4711", &rich))
    });
    group.bench_function("RS256/cache_hit/three_condition_route", |b| {
        b.iter(|| run(&cached, "/reports/4711", &rich))
    });
    group.bench_function("RS256/cache_miss", |b| {
        b.iter(|| run(&uncached, "/timesheets/4711", &plain))
    });
    group.finish();
}

/// Cache hits as the working set grows: the same token again versus 20 000 distinct cached
/// tokens in turn (as `benches/load.sh` sends them). Each token is first copied into a
/// request buffer, as the proxy receives it. The difference is memory, not instructions:
/// with 20 000 tokens every hit reads cache entries, keys and identities that are no
/// longer in the CPU caches.
fn working_set(c: &mut Criterion) {
    let f = Fixture::new();
    let verifier = f.authenticator(Some(100_000)).verifier;
    let (ed, _, _) = KEYS[2];
    let pem = std::fs::read(format!(
        "{}/tests/fixtures/{ed}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let key = EncodingKey::from_ed_pem(&pem).unwrap();
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some("ed-1".into());
    header.typ = Some("at+jwt".into());
    let now = jsonwebtoken::get_current_timestamp();
    // EdDSA signs and verifies 20 000 tokens in about a second; a `jti` pads them to the
    // length of the RS256 tokens of the load test (the cache keys on the token).
    let tokens: Vec<String> = (0..20_000)
        .map(|i| {
            let claims = serde_json::json!({
                "iss": ISSUER,
                "aud": AUDIENCE,
                "sub": format!("auth0|bench-user-{i:06}"),
                "azp": "timesheets-load-test",
                "jti": format!("{i:06}-{}", "x".repeat(190)),
                "iat": now,
                "exp": now + 24 * 3600,
                "scope": "read:timesheets create:timesheets",
            });
            let t = jsonwebtoken::encode(&header, &claims, &key).unwrap();
            verifier.verify(&t).expect("valid token");
            t
        })
        .collect();
    eprintln!(
        "cache_working_set: {} tokens of {} bytes",
        tokens.len(),
        tokens[0].len()
    );
    let mut group = c.benchmark_group("cache_working_set");
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(40);
    let mut request = String::with_capacity(2048);
    for n in [1usize, 20_000] {
        let mut i = 0;
        group.bench_function(format!("{n}_tokens"), |b| {
            b.iter(|| {
                i = if i + 1 == n { 0 } else { i + 1 };
                request.clear();
                request.push_str(&tokens[i]);
                verifier.verify(black_box(&request)).is_ok()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, verify, headers, decide, working_set);
criterion_main!(benches);
