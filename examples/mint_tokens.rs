//! Mints distinct, valid RS256 access tokens for the load test, one per line, and writes
//! the matching public JWKS. Test keys only (`tests/fixtures`): they protect nothing.
//!
//! ```text
//! cargo run --release --example mint_tokens -- COUNT TOKENS_FILE JWKS_FILE [--dpop-bound FILE]
//! ```
//!
//! Tokens: issuer `https://exampleco.test/`, audience
//! `https://api.exampleco.com/timesheets`, scope `read:timesheets create:timesheets`,
//! a distinct `sub` and `jti` each, valid for two hours.
//!
//! With `--dpop-bound FILE` it also writes one more such token, bound (`cnf.jkt`, RFC 9449)
//! to the public key of `tests/fixtures/ec-p256.pem`, the key `examples/bench_client.rs
//! --dpop` signs its proofs with.

use std::io::Write as _;

use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};

/// The issuer and audience `benches/load.sh` configures.
pub const ISSUER: &str = "https://exampleco.test/";
/// See [`ISSUER`].
pub const AUDIENCE: &str = "https://api.exampleco.com/timesheets";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (count, tokens_file, jwks_file, dpop_bound) = match args.as_slice() {
        [c, t, j] => (c, t, j, None),
        [c, t, j, flag, f] if flag == "--dpop-bound" => (c, t, j, Some(f)),
        _ => {
            eprintln!("usage: mint_tokens COUNT TOKENS_FILE JWKS_FILE [--dpop-bound FILE]");
            std::process::exit(2);
        }
    };
    let count: usize = count.parse().expect("COUNT is a number");
    let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
    let pem_path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/rsa-1.pem");
    let pem = std::fs::read(pem_path).expect("fixture key");
    let key = EncodingKey::from_rsa_pem(&pem).expect("fixture key parses");
    let mut jwk = Jwk::from_encoding_key(&key, Algorithm::RS256).expect("public JWK");
    jwk.common.key_id = Some("rsa-1".into());
    std::fs::write(
        jwks_file,
        serde_json::to_vec(&JwkSet { keys: vec![jwk] }).expect("JWKS serializes"),
    )
    .expect("JWKS file written");

    let started = std::time::Instant::now();
    let now = jsonwebtoken::get_current_timestamp();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per = count.div_ceil(threads);
    let chunks: Vec<Vec<String>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let key = &key;
                s.spawn(move || {
                    let mut header = Header::new(Algorithm::RS256);
                    header.kid = Some("rsa-1".into());
                    header.typ = Some("at+jwt".into());
                    (t * per..((t + 1) * per).min(count))
                        .map(|i| {
                            let claims = serde_json::json!({
                                "iss": ISSUER,
                                "aud": AUDIENCE,
                                "sub": format!("auth0|bench-user-{i:06}"),
                                "azp": "timesheets-load-test",
                                "jti": format!("bench-{now}-{i}"),
                                "iat": now,
                                "exp": now + 2 * 3600,
                                "scope": "read:timesheets create:timesheets",
                            });
                            jsonwebtoken::encode(&header, &claims, key).expect("signs")
                        })
                        .collect()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("signer"))
            .collect()
    });
    let mut out = std::io::BufWriter::new(std::fs::File::create(tokens_file).expect("tokens file"));
    for token in chunks.iter().flatten() {
        writeln!(out, "{token}").expect("write token");
    }
    out.flush().expect("write tokens");
    if let Some(file) = dpop_bound {
        let pem_path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/ec-p256.pem");
        let pem = std::fs::read(pem_path).expect("fixture key");
        let ec = EncodingKey::from_ec_pem(&pem).expect("fixture key parses");
        let ec_jwk = Jwk::from_encoding_key(&ec, Algorithm::ES256).expect("public JWK");
        let jkt = ec_jwk
            .thumbprint(jsonwebtoken::jwk::ThumbprintHash::SHA256)
            .expect("thumbprint");
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some("rsa-1".into());
        header.typ = Some("at+jwt".into());
        let claims = serde_json::json!({
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": "auth0|bench-dpop-user",
            "azp": "timesheets-load-test",
            "jti": format!("bench-{now}-dpop"),
            "iat": now,
            "exp": now + 2 * 3600,
            "scope": "read:timesheets create:timesheets",
            "cnf": { "jkt": jkt },
        });
        let token = jsonwebtoken::encode(&header, &claims, &key).expect("signs");
        std::fs::write(file, format!("{token}\n")).expect("DPoP-bound token written");
    }
    eprintln!(
        "mint_tokens: {count} RS256 tokens ({} bytes each) in {:.1} s on {threads} threads",
        chunks.iter().flatten().next().map_or(0, String::len),
        started.elapsed().as_secs_f64()
    );
}
