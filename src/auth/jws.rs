//! The JWS signature check (RFC 7515), with public keys parsed once per JWKS load.
//!
//! `jsonwebtoken::decode` rebuilds the public key from the JWK's bytes on every call, and
//! for RSA aws-lc then recomputes the modulus' Montgomery constants: 18.5 µs per RS256
//! check on the benchmark machine (`benches/README.md`), against 16.0 µs with a key parsed
//! once (aws-lc-rs `ParsedPublicKey`). Every first-seen token pays that, and with the token cache off every
//! request, so asymmetric keys are parsed here when a key set is loaded. jsonwebtoken still
//! turns JWKs into keys, parses token headers and checks HMAC signatures.

use aws_lc_rs::signature::{self, ParsedPublicKey, RsaParameters, VerificationAlgorithm};
use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, DecodingKeyKind};

use crate::ground::rejection::TokenError;

pub use crate::ground::alg::{ED25519, advertised_names, algorithm_named};

#[cfg(test)]
mod names {
    use super::*;

    #[test]
    fn ed25519_is_eddsa_and_both_names_are_advertised() {
        assert_eq!(algorithm_named("Ed25519"), Some(Algorithm::EdDSA));
        assert_eq!(algorithm_named("EdDSA"), Some(Algorithm::EdDSA));
        assert_eq!(algorithm_named("ed25519"), None);
        assert_eq!(algorithm_named("none"), None);
        assert_eq!(
            advertised_names(&[Algorithm::ES256, Algorithm::EdDSA, Algorithm::RS256]),
            ["ES256", "Ed25519", "EdDSA", "RS256"]
        );
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let token = format!(
            "{}.{}.c2ln",
            b64(r#"{"alg":"Ed25519","kid":"k"}"#),
            b64("{}")
        );
        let header = decode_header(&token).unwrap();
        assert_eq!(
            (header.alg, header.kid.as_deref()),
            (Algorithm::EdDSA, Some("k"))
        );
        let unknown = format!("{}.{}.c2ln", b64(r#"{"alg":"Ed448"}"#), b64("{}"));
        assert!(decode_header(&unknown).is_err());
    }
}

/// jsonwebtoken's reading of a compact JWS's header, with an `alg` of [`ED25519`] read as
/// `EdDSA` (jsonwebtoken does not know the name). Only a header jsonwebtoken refuses
/// pays for the second reading.
pub fn decode_header(token: &str) -> jsonwebtoken::errors::Result<jsonwebtoken::Header> {
    let refused = match jsonwebtoken::decode_header(token) {
        Ok(header) => return Ok(header),
        Err(e) => e,
    };
    let head = token.split('.').next().unwrap_or_default();
    let Ok(bytes) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(head) else {
        return Err(refused);
    };
    match serde_json::from_slice::<serde_json::Value>(&bytes) {
        Ok(mut header) if header.get("alg").and_then(|a| a.as_str()) == Some(ED25519) => {
            header["alg"] = "EdDSA".into();
            serde_json::from_value(header).map_err(|_| refused)
        }
        _ => Err(refused),
    }
}

/// A JWK (of a key set, or a DPoP proof's header) with `alg: Ed25519` renamed `EdDSA`,
/// which jsonwebtoken's JWK type reads (it would take the new name for an unknown one).
pub fn jwk_with_known_alg(mut jwk: serde_json::Value) -> serde_json::Value {
    if jwk.get("alg").and_then(|a| a.as_str()) == Some(ED25519) {
        jwk["alg"] = "EdDSA".into();
    }
    jwk
}

/// A key ready to check signatures with, for the algorithms it may be used with.
pub struct SignatureKey {
    decoding: DecodingKey,
    /// A shared secret: only HMAC algorithms, through jsonwebtoken.
    hmac: bool,
    /// One parsed public key per allowed asymmetric algorithm (aws-lc binds a parsed key
    /// to its algorithm); HMAC algorithms have none and go through jsonwebtoken.
    parsed: Vec<(Algorithm, ParsedPublicKey)>,
}

impl SignatureKey {
    /// Parses `decoding` for each of `algorithms`; `None` when aws-lc rejects the key for
    /// one of them (an RSA modulus under 2048 bits, a point not on the curve): such a key
    /// could never verify a signature and is left out of the key set.
    pub fn new(decoding: DecodingKey, algorithms: &[Algorithm]) -> Option<SignatureKey> {
        let mut parsed = Vec::new();
        for &alg in algorithms {
            let key = match (decoding.kind(), rsa_parameters(alg), parameters(alg)) {
                (DecodingKeyKind::RsaModulusExponent { n, e }, Some(params), _) => {
                    signature::RsaPublicKeyComponents { n, e }.to_parsed_public_key(params)
                }
                (DecodingKeyKind::SecretOrDer(bytes), None, Some(params)) => {
                    ParsedPublicKey::new(params, bytes)
                }
                (_, None, None) => continue,
                _ => return None,
            };
            parsed.push((alg, key.ok()?));
        }
        Some(SignatureKey {
            decoding,
            hmac: false,
            parsed,
        })
    }

    /// A key for HMAC algorithms only (a configured shared secret).
    pub fn hmac(secret: &[u8]) -> SignatureKey {
        SignatureKey {
            decoding: DecodingKey::from_secret(secret),
            hmac: true,
            parsed: Vec::new(),
        }
    }

    /// Checks the signature of the compact JWS `token` under `alg`. An algorithm the key
    /// was not prepared for is refused here too, whatever the caller checked before.
    pub fn verify(&self, token: &str, alg: Algorithm) -> Result<(), TokenError> {
        let (message, encoded) = token.rsplit_once('.').ok_or(TokenError::Malformed)?;
        let signature = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(encoded)
            .map_err(|_| TokenError::Malformed)?;
        if let Some((_, key)) = self.parsed.iter().find(|(a, _)| *a == alg) {
            return key
                .verify_sig(message.as_bytes(), &signature)
                .map_err(|_| TokenError::BadSignature);
        }
        if !(self.hmac && crate::ground::alg::is_hmac(alg)) {
            return Err(TokenError::DisallowedAlgorithm);
        }
        match jsonwebtoken::crypto::verify(encoded, message.as_bytes(), &self.decoding, alg) {
            Ok(true) => Ok(()),
            Ok(false) | Err(_) => Err(TokenError::BadSignature),
        }
    }
}

/// aws-lc's parameters for the RSA algorithms (moduli of 2048 to 8192 bits).
fn rsa_parameters(alg: Algorithm) -> Option<&'static RsaParameters> {
    Some(match alg {
        Algorithm::RS256 => &signature::RSA_PKCS1_2048_8192_SHA256,
        Algorithm::RS384 => &signature::RSA_PKCS1_2048_8192_SHA384,
        Algorithm::RS512 => &signature::RSA_PKCS1_2048_8192_SHA512,
        Algorithm::PS256 => &signature::RSA_PSS_2048_8192_SHA256,
        Algorithm::PS384 => &signature::RSA_PSS_2048_8192_SHA384,
        Algorithm::PS512 => &signature::RSA_PSS_2048_8192_SHA512,
        _ => return None,
    })
}

/// aws-lc's parameters for the elliptic-curve algorithms; JWS signatures are the fixed
/// `r || s` form (RFC 7518 §3.4), not DER.
fn parameters(alg: Algorithm) -> Option<&'static dyn VerificationAlgorithm> {
    Some(match alg {
        Algorithm::ES256 => &signature::ECDSA_P256_SHA256_FIXED,
        Algorithm::ES384 => &signature::ECDSA_P384_SHA384_FIXED,
        Algorithm::EdDSA => &signature::ED25519,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header};

    const RSA: &str = include_str!("../../tests/fixtures/rsa-1.pem");
    const RSA_2: &str = include_str!("../../tests/fixtures/rsa-2.pem");
    const EC: &str = include_str!("../../tests/fixtures/ec-p256.pem");
    const ED: &str = include_str!("../../tests/fixtures/ed25519.pem");

    fn sign(alg: Algorithm, key: &EncodingKey) -> String {
        jsonwebtoken::encode(&Header::new(alg), &serde_json::json!({"sub": "alice"}), key).unwrap()
    }

    /// The public half of a fixture, as the JWKS path builds it (JWK → DecodingKey).
    fn public(alg: Algorithm, encoding: &EncodingKey) -> SignatureKey {
        crate::install_crypto_provider();
        let jwk = jsonwebtoken::jwk::Jwk::from_encoding_key(encoding, alg).unwrap();
        SignatureKey::new(DecodingKey::from_jwk(&jwk).unwrap(), &[alg]).unwrap()
    }

    #[test]
    fn each_algorithm_verifies_its_own_signatures_only() {
        let rsa = EncodingKey::from_rsa_pem(RSA.as_bytes()).unwrap();
        let cases = [
            (Algorithm::RS256, rsa.clone()),
            (Algorithm::PS256, rsa),
            (
                Algorithm::ES256,
                EncodingKey::from_ec_pem(EC.as_bytes()).unwrap(),
            ),
            (
                Algorithm::EdDSA,
                EncodingKey::from_ed_pem(ED.as_bytes()).unwrap(),
            ),
        ];
        for (alg, encoding) in cases {
            let key = public(alg, &encoding);
            let token = sign(alg, &encoding);
            assert_eq!(key.verify(&token, alg), Ok(()), "{alg:?}");
            // One flipped signature character: refused.
            let mut forged = token.clone().into_bytes();
            let last = forged.len() - 3;
            forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
            let forged = String::from_utf8(forged).unwrap();
            assert_eq!(key.verify(&forged, alg), Err(TokenError::BadSignature));
            // The payload changed under the same signature: refused.
            let (head, rest) = token.split_once('.').unwrap();
            let (_, signature) = rest.split_once('.').unwrap();
            let swapped = format!("{head}.eyJzdWIiOiJib2IifQ.{signature}");
            assert_eq!(key.verify(&swapped, alg), Err(TokenError::BadSignature));
        }
    }

    #[test]
    fn another_keys_signature_and_garbage_are_refused() {
        let one = EncodingKey::from_rsa_pem(RSA.as_bytes()).unwrap();
        let two = EncodingKey::from_rsa_pem(RSA_2.as_bytes()).unwrap();
        let key = public(Algorithm::RS256, &one);
        let token = sign(Algorithm::RS256, &two);
        assert_eq!(
            key.verify(&token, Algorithm::RS256),
            Err(TokenError::BadSignature)
        );
        assert_eq!(
            key.verify("no-dots", Algorithm::RS256),
            Err(TokenError::Malformed)
        );
        assert_eq!(
            key.verify("a.b.!!!", Algorithm::RS256),
            Err(TokenError::Malformed)
        );
        // Valid RS384 signature, but the key was prepared for RS256 only.
        let rs384 = sign(Algorithm::RS384, &one);
        assert_eq!(
            key.verify(&rs384, Algorithm::RS384),
            Err(TokenError::DisallowedAlgorithm)
        );
        assert_eq!(
            key.verify(&rs384, Algorithm::HS256),
            Err(TokenError::DisallowedAlgorithm)
        );
    }

    #[test]
    fn hmac_goes_through_jsonwebtoken() {
        crate::install_crypto_provider();
        let secret = b"0123456789abcdef0123456789abcdef";
        let key = SignatureKey::hmac(secret);
        let token = sign(Algorithm::HS256, &EncodingKey::from_secret(secret));
        assert_eq!(key.verify(&token, Algorithm::HS256), Ok(()));
        let other = sign(
            Algorithm::HS256,
            &EncodingKey::from_secret(b"another secret"),
        );
        assert_eq!(
            key.verify(&other, Algorithm::HS256),
            Err(TokenError::BadSignature)
        );
        assert_eq!(
            key.verify(&token, Algorithm::RS256),
            Err(TokenError::DisallowedAlgorithm)
        );
        let (head, _) = token.rsplit_once('.').unwrap();
        assert_eq!(
            key.verify(&format!("{head}.a+b/"), Algorithm::HS256),
            Err(TokenError::Malformed)
        );
    }
}
