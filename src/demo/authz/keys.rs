//! Signing keys: RSA-2048 generated in memory at start-up and on rotation, never written to
//! disk; the newest signs, and up to [`MAX_PUBLISHED`] keys stay in the JWKS so tokens signed
//! just before a rotation keep verifying.

use std::collections::VecDeque;
use std::sync::Arc;

use aws_lc_rs::encoding::AsDer as _;
use base64::Engine as _;
use jsonwebtoken::jwk::{Jwk, JwkSet, PublicKeyUse, ThumbprintHash};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};

/// Keys kept in the JWKS: the signing key and the two before it. Rotating more often than
/// that without `retire` drops the oldest.
pub const MAX_PUBLISHED: usize = 3;

/// Why a key could not be made or used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// aws-lc could not generate or encode the RSA key.
    #[error("cannot generate an RSA key")]
    Generate,
    /// jsonwebtoken refused the key or the claims.
    #[error("cannot sign with the RSA key: {0}")]
    Sign(jsonwebtoken::errors::Error),
}

// By hand rather than `#[from]`, which would also make it the `source`: this error is logged
// with its Display, which names the cause already.
impl From<jsonwebtoken::errors::Error> for KeyError {
    fn from(e: jsonwebtoken::errors::Error) -> KeyError {
        KeyError::Sign(e)
    }
}

/// One RSA key pair, ready to sign and to publish.
pub struct SigningKey {
    kid: String,
    encoding: EncodingKey,
    public: Jwk,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Generates a fresh RSA-2048 key; takes tens of milliseconds, so async callers run it on
    /// a blocking thread.
    pub fn generate() -> Result<SigningKey, KeyError> {
        let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
            .map_err(|_| KeyError::Generate)?;
        let pkcs8 = pair.as_der().map_err(|_| KeyError::Generate)?;
        // jsonwebtoken takes RSA private keys as PKCS#1 DER or as PEM; aws-lc exports PKCS#8,
        // which PEM carries as it is.
        let encoding = EncodingKey::from_rsa_pem(pkcs8_pem(pkcs8.as_ref()).as_bytes())?;
        let mut public = Jwk::from_encoding_key(&encoding, Algorithm::RS256)?;
        // The RFC 7638 thumbprint: a kid that names the key material itself.
        let kid = public.thumbprint(ThumbprintHash::SHA256)?;
        public.common.key_id = Some(kid.clone());
        public.common.public_key_use = Some(PublicKeyUse::Signature);
        Ok(SigningKey {
            kid,
            encoding,
            public,
        })
    }

    /// The key's `kid`.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// Signs `claims` as an RS256 JWT access token (`typ: at+jwt`, RFC 9068 §2.1).
    pub fn sign<T: Serialize>(&self, claims: &T) -> Result<String, KeyError> {
        let mut header = Header::new(Algorithm::RS256);
        header.typ = Some("at+jwt".into());
        header.kid = Some(self.kid.clone());
        Ok(jsonwebtoken::encode(&header, claims, &self.encoding)?)
    }
}

fn pkcs8_pem(der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
    for line in b64.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str("-----END PRIVATE KEY-----\n");
    pem
}

/// The published keys; the front one signs.
#[derive(Debug)]
pub struct KeyRing {
    keys: VecDeque<Arc<SigningKey>>,
}

/// What a rotation did.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Rotation {
    /// The new signing key's `kid`.
    pub kid: String,
    /// Every `kid` now in the JWKS, newest first.
    pub published: Vec<String>,
    /// `kid`s removed from the JWKS by this rotation.
    pub retired: Vec<String>,
}

impl KeyRing {
    /// A ring holding one key.
    pub fn new(first: SigningKey) -> KeyRing {
        KeyRing {
            keys: VecDeque::from([Arc::new(first)]),
        }
    }

    /// The key that signs new tokens.
    pub fn current(&self) -> Arc<SigningKey> {
        self.keys[0].clone()
    }

    /// The public keys, newest first.
    pub fn jwks(&self) -> JwkSet {
        JwkSet {
            keys: self.keys.iter().map(|k| k.public.clone()).collect(),
        }
    }

    /// Makes `next` the signing key. With `retire`, every older key leaves the JWKS, so tokens
    /// they signed stop verifying once verifiers refresh; otherwise they stay published.
    pub fn rotate(&mut self, next: SigningKey, retire: bool) -> Rotation {
        self.keys.push_front(Arc::new(next));
        let keep = if retire { 1 } else { MAX_PUBLISHED };
        let retired = self
            .keys
            .drain(keep.min(self.keys.len())..)
            .map(|k| k.kid.clone())
            .collect();
        Rotation {
            kid: self.keys[0].kid.clone(),
            published: self.keys.iter().map(|k| k.kid.clone()).collect(),
            retired,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_token_verifies_with_the_published_key() {
        crate::install_crypto_provider();
        let key = SigningKey::generate().unwrap();
        let ring = KeyRing::new(key);
        let token = ring
            .current()
            .sign(&serde_json::json!({"sub": "auth0|alice", "exp": 4_000_000_000u64}))
            .unwrap();
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.typ.as_deref(), Some("at+jwt"));
        let jwks = ring.jwks();
        let jwk = jwks.find(header.kid.as_deref().unwrap()).unwrap();
        let mut validation = jsonwebtoken::Validation::new(Algorithm::RS256);
        validation.required_spec_claims.clear();
        let decoded = jsonwebtoken::decode::<serde_json::Value>(
            &token,
            &jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap(),
            &validation,
        )
        .unwrap();
        assert_eq!(decoded.claims["sub"], "auth0|alice");
    }

    #[test]
    fn rotation_publishes_old_and_new_and_retire_drops_the_old() {
        crate::install_crypto_provider();
        let first = SigningKey::generate().unwrap();
        let first_kid = first.kid().to_owned();
        let mut ring = KeyRing::new(first);
        let r = ring.rotate(SigningKey::generate().unwrap(), false);
        assert_eq!(r.published, [r.kid.clone(), first_kid.clone()]);
        assert!(r.retired.is_empty());
        assert_eq!(ring.current().kid(), r.kid);

        let r = ring.rotate(SigningKey::generate().unwrap(), true);
        assert_eq!(r.published, std::slice::from_ref(&r.kid));
        assert_eq!(r.retired.len(), 2);
        assert!(r.retired.contains(&first_kid));
        assert_eq!(ring.jwks().keys.len(), 1);
    }
}
