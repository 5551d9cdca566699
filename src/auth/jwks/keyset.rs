//! A JWK Set document → the keys an issuer may verify with: encryption keys, HMAC keys,
//! weak RSA keys and algorithms outside the allowlist are skipped, never trusted.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{
    AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, KeyOperations, PublicKeyUse,
};
use jsonwebtoken::{Algorithm, DecodingKey};

use crate::auth::fetch::FetchError;
use crate::auth::jws::SignatureKey;

/// One key that may verify signatures, with the algorithms it may be used with.
pub struct VerifyKey {
    /// The key's `kid`, if it has one.
    pub kid: Option<String>,
    /// Algorithms allowed for this key: its own `alg`, or its type's, within the allowlist.
    pub algorithms: Vec<Algorithm>,
    /// The key material, parsed for signature checks.
    pub signature: SignatureKey,
    /// The JWK's public parameters and declared `alg`, to keep the same `Arc` across
    /// refreshes that do not change the key.
    pub(super) fingerprint: String,
}

impl std::fmt::Debug for VerifyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyKey")
            .field("kid", &self.kid)
            .field("algorithms", &self.algorithms)
            .finish_non_exhaustive()
    }
}

/// A loaded key set.
#[derive(Debug)]
pub struct KeySet {
    by_kid: HashMap<String, Arc<VerifyKey>>,
    pub(super) all: Vec<Arc<VerifyKey>>,
    /// The last instant its keys may be used (when it was loaded, plus the maximum
    /// staleness); `None` when that lies past what an `Instant` can hold.
    fresh_until: Option<Instant>,
}

impl KeySet {
    /// Builds a set from keys, usable for `max_staleness` from now; keys without a `kid`
    /// are only found by [`KeySet::without_kid`].
    pub fn new(keys: Vec<Arc<VerifyKey>>, max_staleness: Duration) -> KeySet {
        let by_kid = keys
            .iter()
            .filter_map(|k| k.kid.clone().map(|kid| (kid, k.clone())))
            .collect();
        KeySet {
            by_kid,
            all: keys,
            fresh_until: Instant::now().checked_add(max_staleness),
        }
    }

    /// Whether its keys may still be used `at` that instant.
    pub fn fresh_at(&self, at: Instant) -> bool {
        self.fresh_until.is_none_or(|until| at <= until)
    }

    /// The key with this `kid`.
    pub fn get(&self, kid: &str) -> Option<&Arc<VerifyKey>> {
        self.by_kid.get(kid)
    }

    /// For a token without `kid`: the one key that allows `alg`, if exactly one does.
    pub fn without_kid(&self, alg: Algorithm) -> Option<&Arc<VerifyKey>> {
        let mut candidates = self.all.iter().filter(|k| k.algorithms.contains(&alg));
        match (candidates.next(), candidates.next()) {
            (Some(k), None) => Some(k),
            _ => None,
        }
    }

    /// Whether `key` (by identity) is still part of this set.
    pub fn contains(&self, key: &Arc<VerifyKey>) -> bool {
        self.all.iter().any(|k| Arc::ptr_eq(k, key))
    }

    /// Number of usable keys.
    pub fn len(&self) -> usize {
        self.all.len()
    }

    /// Whether the set has no usable key.
    pub fn is_empty(&self) -> bool {
        self.all.is_empty()
    }
}

/// Largest JWKS document read; a key set of a hundred RSA keys is about 50 KB.
pub const MAX_JWKS_BYTES: usize = 512 * 1024;

/// Smallest RSA modulus used, in bits (NIST SP 800-131A; aws-lc verifies 2048 and up).
const MIN_RSA_BITS: usize = 2048;

/// Turns a JWKS document into the keys this issuer may use; returns them and how many were
/// skipped (encryption keys, HMAC keys, algorithms outside the allowlist, broken entries).
pub fn parse_jwks(
    body: &[u8],
    allowed: &[Algorithm],
) -> Result<(Vec<VerifyKey>, usize), FetchError> {
    #[derive(serde::Deserialize)]
    struct RawSet {
        keys: Vec<serde_json::Value>,
    }
    let raw: RawSet =
        serde_json::from_slice(body).map_err(|e| FetchError::Invalid(e.to_string()))?;
    let mut keys = Vec::new();
    let mut skipped = 0;
    for value in raw.keys {
        match serde_json::from_value::<Jwk>(crate::auth::jws::jwk_with_known_alg(value))
            .ok()
            .and_then(|jwk| usable_key(&jwk, allowed))
        {
            Some(key) => keys.push(key),
            None => skipped += 1,
        }
    }
    if keys.is_empty() {
        return Err(FetchError::NoUsableKey(skipped));
    }
    Ok((keys, skipped))
}

fn usable_key(jwk: &Jwk, allowed: &[Algorithm]) -> Option<VerifyKey> {
    let common = &jwk.common;
    if matches!(
        common.public_key_use,
        Some(PublicKeyUse::Encryption | PublicKeyUse::Other(_))
    ) {
        return None;
    }
    if let Some(ops) = &common.key_operations
        && !ops.contains(&KeyOperations::Verify)
    {
        return None;
    }
    // What the key type permits; HMAC secrets never come from a JWKS.
    let by_type: &[Algorithm] = match &jwk.algorithm {
        AlgorithmParameters::RSA(p) if rsa_bits(&p.n) < MIN_RSA_BITS => return None,
        AlgorithmParameters::RSA(_) => &[
            Algorithm::RS256,
            Algorithm::RS384,
            Algorithm::RS512,
            Algorithm::PS256,
            Algorithm::PS384,
            Algorithm::PS512,
        ],
        AlgorithmParameters::EllipticCurve(p) => match p.curve {
            EllipticCurve::P256 => &[Algorithm::ES256],
            EllipticCurve::P384 => &[Algorithm::ES384],
            _ => &[],
        },
        AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
            &[Algorithm::EdDSA]
        }
        _ => &[],
    };
    let algorithms: Vec<Algorithm> = match common.key_algorithm {
        None => by_type
            .iter()
            .copied()
            .filter(|a| allowed.contains(a))
            .collect(),
        Some(KeyAlgorithm::UNKNOWN_ALGORITHM) => return None,
        Some(declared) => {
            let alg = Algorithm::try_from(declared).ok()?;
            if by_type.contains(&alg) && allowed.contains(&alg) {
                vec![alg]
            } else {
                vec![]
            }
        }
    };
    if algorithms.is_empty() {
        return None;
    }
    let signature = SignatureKey::new(DecodingKey::from_jwk(jwk).ok()?, &algorithms)?;
    Some(VerifyKey {
        kid: common.key_id.clone(),
        algorithms,
        signature,
        // The declared `alg` too: a key whose `alg` changes must not keep its old algorithms.
        fingerprint: serde_json::to_string(&(&jwk.algorithm, &common.key_algorithm))
            .unwrap_or_default(),
    })
}

/// Bits of a base64url RSA modulus (0 when it does not decode).
pub(crate) fn rsa_bits(n: &str) -> usize {
    use base64::Engine as _;
    let Ok(bytes) =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(n.trim_end_matches('='))
    else {
        return 0;
    };
    let Some(first) = bytes.iter().position(|&b| b != 0) else {
        return 0;
    };
    (bytes.len() - first) * 8 - bytes[first].leading_zeros() as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    const RSA_N: &str = "u1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gunVTLw7onLRnrq0_IzW7yWR7QkrmBL7jTKEn5u-qKhbwKfBstIs-bMY2Zkp18gnTxKLxoS2tFczGkPLPgizskuemMghRniWaoLcyehkd3qqGElvW_VDL5AaWTg0nLVkjRo9z-40RQzuVaE8AkAFmxZzow3x-VJYKdjykkJ0iT9wCS0DRTXu269V264Vf_3jvredZiKRkgwlL9xNAwxXFg0x_XFw005UWVRIkdgcKWTjpBP2dPwVZ4WWC-9aGVd-Gyn1o0CLelf4rEjGoXbAAEgAqeGUxrcIlbjXfbcmw";

    fn rsa_jwk(extra: serde_json::Value) -> serde_json::Value {
        let mut k = serde_json::json!({"kty": "RSA", "kid": "k1", "n": RSA_N, "e": "AQAB"});
        for (name, v) in extra.as_object().unwrap() {
            k[name] = v.clone();
        }
        k
    }

    fn parse(
        keys: Vec<serde_json::Value>,
        allowed: &[Algorithm],
    ) -> Result<(Vec<VerifyKey>, usize), FetchError> {
        parse_jwks(
            &serde_json::to_vec(&serde_json::json!({ "keys": keys })).unwrap(),
            allowed,
        )
    }

    #[test]
    fn encryption_keys_never_verify() {
        let r = parse(
            vec![rsa_jwk(serde_json::json!({"use": "enc"}))],
            &[Algorithm::RS256],
        );
        assert!(matches!(r, Err(FetchError::NoUsableKey(1))));
    }

    #[test]
    fn hmac_keys_in_a_jwks_are_ignored() {
        let oct = serde_json::json!({"kty": "oct", "kid": "h", "k": "c2VjcmV0"});
        let (keys, skipped) = parse(
            vec![oct, rsa_jwk(serde_json::json!({}))],
            &[Algorithm::RS256, Algorithm::HS256],
        )
        .unwrap();
        assert_eq!((keys.len(), skipped), (1, 1));
        assert_eq!(keys[0].algorithms, [Algorithm::RS256]);
    }

    #[test]
    fn declared_alg_outside_the_allowlist_is_skipped() {
        let r = parse(
            vec![rsa_jwk(serde_json::json!({"alg": "PS256"}))],
            &[Algorithm::RS256],
        );
        assert!(r.is_err());
    }

    #[test]
    fn algorithms_come_from_key_type_and_allowlist() {
        let (keys, _) = parse(
            vec![rsa_jwk(serde_json::json!({}))],
            &[Algorithm::RS256, Algorithm::ES256],
        )
        .unwrap();
        assert_eq!(keys[0].algorithms, [Algorithm::RS256]);
    }

    #[test]
    fn garbage_is_an_invalid_document() {
        assert!(matches!(
            parse_jwks(b"<html>", &[Algorithm::RS256]),
            Err(FetchError::Invalid(_))
        ));
        assert!(matches!(
            parse_jwks(b"{\"keys\": []}", &[Algorithm::RS256]),
            Err(FetchError::NoUsableKey(0))
        ));
    }

    #[test]
    fn rsa_keys_under_2048_bits_are_left_out() {
        use base64::Engine as _;
        let short = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([0xc5u8; 128]);
        assert_eq!(rsa_bits(&short), 1024);
        assert_eq!(rsa_bits(RSA_N), 2048);
        let r = parse(
            vec![rsa_jwk(serde_json::json!({"n": short}))],
            &[Algorithm::RS256],
        );
        assert!(matches!(r, Err(FetchError::NoUsableKey(1))));
    }
}
