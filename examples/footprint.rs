//! Resident memory with a large policy and a full token cache: compiles a 10 000-route
//! policy (the shapes of `benches/policy.rs`), then verifies 100 000 distinct tokens
//! through a `Verifier` with the default 100 000-entry cache, printing `VmRSS` after each
//! step. Target (DESIGN.md / issue #6): under 256 MiB.
//!
//! The tokens are EdDSA, padded with a `jti` claim to the length of the load test's RS256
//! tokens: the cache keys on the whole token, so the length is what matters for memory, and
//! Ed25519 signs 100 000 tokens in seconds where RSA-2048 would take a minute.
//!
//! ```text
//! cargo run --release --example footprint [-- ROUTES TOKENS]
//! ```

use std::time::Instant;

use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use scopegate::auth::Authenticator;
use scopegate::config::Settings;
use scopegate::ops::metrics::Metrics;

#[path = "../benches/support/routes.rs"]
mod routes;

const CONFIG: &str = r#"version: 1
upstream: http://127.0.0.1:1
policy: bench.yaml
issuers:
  - issuer: https://exampleco.test/
    audiences: [https://api.exampleco.com/timesheets]
    jwks_uri: http://127.0.0.1:1/.well-known/jwks.json
    algorithms: [RS256, EdDSA]
"#;

/// The same allocator as `scopegate`, whose footprint this measures.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn status(field: &str) -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .map(|l| l[field.len()..].trim().to_owned())
        })
        .unwrap_or_else(|| "?".into())
}

fn rss_kib() -> u64 {
    status("VmRSS:")
        .trim_end_matches(" kB")
        .parse()
        .unwrap_or(0)
}

fn report(step: &str) -> u64 {
    let kib = rss_kib();
    println!("{step:<44} VmRSS {:>8.1} MiB", kib as f64 / 1024.0);
    kib
}

fn key(file: &str, kid: &str, alg: Algorithm) -> (EncodingKey, Jwk) {
    let path = format!("{}/tests/fixtures/{file}", env!("CARGO_MANIFEST_DIR"));
    let pem = std::fs::read(path).expect("fixture key");
    let encoding = match alg {
        Algorithm::RS256 => EncodingKey::from_rsa_pem(&pem),
        _ => EncodingKey::from_ed_pem(&pem),
    }
    .expect("fixture key parses");
    let mut jwk = Jwk::from_encoding_key(&encoding, alg).expect("public JWK");
    jwk.common.key_id = Some(kid.into());
    (encoding, jwk)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n_routes: usize = args.next().map_or(10_000, |a| a.parse().expect("ROUTES"));
    let n_tokens: usize = args.next().map_or(100_000, |a| a.parse().expect("TOKENS"));
    scopegate::install_crypto_provider();
    let start = report("start");

    let specs = routes::routes(n_routes);
    let yaml = routes::policy_yaml(&specs);
    drop(specs);
    let t = Instant::now();
    let policy = scopegate::policy::compile(yaml.as_bytes(), "footprint.yaml").expect("compiles");
    let compile_ms = t.elapsed().as_secs_f64() * 1e3;
    drop(yaml);
    let after_policy = report(&format!("policy compiled ({n_routes} routes)"));
    println!("  compile time {compile_ms:.0} ms");

    let settings = Settings::parse(CONFIG, "footprint.yaml", std::path::Path::new("."))
        .expect("config parses");
    let metrics = Metrics::new();
    let (auth, stores) = Authenticator::from_settings(&settings, &metrics);
    let verifier = &auth.verifier;
    let (rsa, rsa_jwk) = key("rsa-1.pem", "rsa-1", Algorithm::RS256);
    let (ed, ed_jwk) = key("ed25519.pem", "ed-1", Algorithm::EdDSA);
    stores[0]
        .install_jwks(
            &serde_json::to_vec(&JwkSet {
                keys: vec![rsa_jwk, ed_jwk],
            })
            .unwrap(),
        )
        .expect("JWKS installs");

    let now = jsonwebtoken::get_current_timestamp();
    let claims = |i: usize, jti: &str| {
        serde_json::json!({
            "iss": "https://exampleco.test/",
            "aud": "https://api.exampleco.com/timesheets",
            "sub": format!("auth0|bench-user-{i:06}"),
            "azp": "timesheets-load-test",
            "jti": jti,
            "iat": now,
            "exp": now + 2 * 3600,
            "scope": "read:timesheets create:timesheets",
        })
    };
    let header = |alg, kid: &str| {
        let mut h = Header::new(alg);
        h.kid = Some(kid.into());
        h.typ = Some("at+jwt".into());
        h
    };
    // The length of a load-test RS256 token; EdDSA tokens are padded to it through `jti`.
    let rs_len = jsonwebtoken::encode(
        &header(Algorithm::RS256, "rsa-1"),
        &claims(0, &format!("bench-{now}-0")),
        &rsa,
    )
    .unwrap()
    .len();
    let ed_len = |jti: &str| {
        jsonwebtoken::encode(&header(Algorithm::EdDSA, "ed-1"), &claims(0, jti), &ed)
            .unwrap()
            .len()
    };
    let base_jti = format!("bench-{now}-000000-");
    let pad = ((rs_len.saturating_sub(ed_len(&base_jti))) * 3 / 4).saturating_sub(1);
    let jti_of = |i: usize| format!("bench-{now}-{i:06}-{}", "x".repeat(pad));
    let token_len = ed_len(&jti_of(0));
    println!("  tokens: EdDSA padded to {token_len} bytes (RS256 load-test token: {rs_len} bytes)");

    let t = Instant::now();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let samples: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|th| {
                let (verifier, ed, jti_of, claims) = (verifier, &ed, &jti_of, &claims);
                s.spawn(move || {
                    let h = header(Algorithm::EdDSA, "ed-1");
                    let mut keep = Vec::new();
                    for i in (th..n_tokens).step_by(threads) {
                        let token = jsonwebtoken::encode(&h, &claims(i, &jti_of(i)), ed).unwrap();
                        verifier.verify(&token).expect("token verifies");
                        if i % 100 == 0 {
                            keep.push(token);
                        }
                    }
                    keep
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("worker"))
            .collect()
    });
    let fill_s = t.elapsed().as_secs_f64();
    let after_cache = report(&format!("token cache filled ({n_tokens} tokens)"));
    println!("  minted and verified in {fill_s:.1} s");
    let hits_before = metrics.token_cache_hit_count();
    for token in &samples {
        verifier.verify(token).expect("cached token verifies");
    }
    let hits = metrics.token_cache_hit_count() - hits_before;
    println!(
        "  sample re-check: {hits} of {} sampled tokens served from the cache",
        samples.len()
    );
    println!(
        "  policy:      {:>6.1} MiB",
        (after_policy - start) as f64 / 1024.0
    );
    println!(
        "  token cache: {:>6.1} MiB ({:.0} bytes per token)",
        (after_cache - after_policy) as f64 / 1024.0,
        (after_cache - after_policy) as f64 * 1024.0 / n_tokens as f64
    );
    println!("  peak (VmHWM): {}", status("VmHWM:"));
    let total_mib = after_cache as f64 / 1024.0;
    println!(
        "footprint: VmRSS {total_mib:.1} MiB with {n_routes} routes and {n_tokens} cached tokens (target < 256 MiB): {}",
        if total_mib < 256.0 { "ok" } else { "OVER" }
    );
    std::hint::black_box(&policy);
}
