//! Keys and tokens: the fixture keys (RSA, EC, Ed25519) and the tokens they sign.

use super::*;

/// A fixture signing key and its public JWK.
#[derive(Clone)]
pub struct TestKey {
    pub kid: String,
    pub alg: Algorithm,
    pub encoding: EncodingKey,
    pub jwk: Jwk,
}

impl TestKey {
    fn load(file: &str, kid: &str, alg: Algorithm) -> TestKey {
        rt();
        let pem = std::fs::read(fixture(file)).expect("fixture key");
        let encoding = match alg {
            Algorithm::RS256 => EncodingKey::from_rsa_pem(&pem),
            Algorithm::ES256 => EncodingKey::from_ec_pem(&pem),
            Algorithm::EdDSA => EncodingKey::from_ed_pem(&pem),
            other => panic!("no fixture for {other:?}"),
        }
        .expect("fixture key parses");
        let mut jwk = Jwk::from_encoding_key(&encoding, alg).expect("public JWK");
        jwk.common.key_id = Some(kid.to_owned());
        TestKey {
            kid: kid.to_owned(),
            alg,
            encoding,
            jwk,
        }
    }

    pub fn rsa() -> TestKey {
        TestKey::load("rsa-1.pem", "rsa-1", Algorithm::RS256)
    }
    pub fn rsa2() -> TestKey {
        TestKey::load("rsa-2.pem", "rsa-2", Algorithm::RS256)
    }
    pub fn ec() -> TestKey {
        TestKey::load("ec-p256.pem", "ec-1", Algorithm::ES256)
    }
    pub fn ed() -> TestKey {
        TestKey::load("ed25519.pem", "ed-1", Algorithm::EdDSA)
    }

    /// The key's public JWK as JSON.
    pub fn public(&self) -> Value {
        serde_json::to_value(&self.jwk).expect("JWK serializes")
    }

    /// A token signed with this key.
    pub fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.clone());
        header.typ = Some("at+jwt".into());
        self.sign_with(header, claims)
    }

    /// A token with a hand-made header (any `alg` name, e.g. RFC 9864's `Ed25519`),
    /// signed with this key's algorithm.
    pub fn sign_raw(&self, header: &Value, claims: &Value) -> String {
        let message = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let signature = jsonwebtoken::crypto::sign(message.as_bytes(), &self.encoding, self.alg)
            .expect("signing works");
        format!("{message}.{signature}")
    }

    /// A token with a header of the test's choosing.
    pub fn sign_with(&self, header: Header, claims: &Value) -> String {
        jsonwebtoken::encode(&header, claims, &self.encoding).expect("signing works")
    }
}

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

pub fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

/// The claims of a valid token for `scope`.
pub fn claims(scope: &str) -> Value {
    json!({
        "iss": ISSUER,
        "aud": [AUDIENCE, "https://exampleco.test/userinfo"],
        "sub": "auth0|alice",
        "azp": "timesheets-mobile",
        "iat": now(),
        "exp": now() + 3600,
        "scope": scope,
        EMAIL_CLAIM: "alice@exampleco.com",
    })
}

/// Base64url (no padding) of raw bytes; for hand-made tokens.
pub fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}
