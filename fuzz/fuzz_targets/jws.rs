//! Compact JWS parsing and verification: any input is refused as a 401 `invalid_token`
//! (nothing here is signed by the key set), never a panic or another answer.
#![no_main]

use std::sync::OnceLock;

use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey};
use libfuzzer_sys::fuzz_target;
use scopegate::auth::Authenticator;
use scopegate::auth::verify::Verifier;
use scopegate::config::Settings;
use scopegate::decision::Rejection;
use scopegate::ops::metrics::Metrics;

const CONFIG: &str = "version: 1
upstream: http://127.0.0.1:1
policy: p.yaml
issuers:
  - issuer: https://exampleco.test/
    audiences: [https://api.exampleco.com/timesheets]
    jwks_uri: http://127.0.0.1:1/.well-known/jwks.json
    algorithms: [RS256, ES256]
";

/// The verifier the gateway builds, with the fixture RSA and P-256 keys (`rsa-1`, `ec-1`).
fn verifier() -> &'static Verifier {
    static VERIFIER: OnceLock<std::sync::Arc<Verifier>> = OnceLock::new();
    VERIFIER.get_or_init(|| {
        scopegate::install_crypto_provider();
        let settings = Settings::parse(CONFIG, "c.yaml", std::path::Path::new("."))
            .expect("a valid configuration");
        let (auth, stores) = Authenticator::from_settings(&settings, &Metrics::new());
        let jwk = |pem: &str, kid: &str, alg: Algorithm| {
            let key = match alg {
                Algorithm::RS256 => EncodingKey::from_rsa_pem(pem.as_bytes()),
                _ => EncodingKey::from_ec_pem(pem.as_bytes()),
            }
            .expect("fixture key");
            let mut jwk = Jwk::from_encoding_key(&key, alg).expect("public JWK");
            jwk.common.key_id = Some(kid.into());
            jwk
        };
        let set = JwkSet {
            keys: vec![
                jwk(
                    include_str!("../../tests/fixtures/rsa-1.pem"),
                    "rsa-1",
                    Algorithm::RS256,
                ),
                jwk(
                    include_str!("../../tests/fixtures/ec-p256.pem"),
                    "ec-1",
                    Algorithm::ES256,
                ),
            ],
        };
        let body = serde_json::to_vec(&set).expect("JWKS serializes");
        assert_eq!(stores[0].install_jwks(&body).expect("keys install"), 2);
        auth.verifier
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    let verifier = verifier();
    match verifier.verify(token) {
        Err(Rejection::InvalidToken(_)) => {}
        other => panic!("{token:?}: {other:?}"),
    }
    let _ = scopegate::auth::claims::decode(token);
});
