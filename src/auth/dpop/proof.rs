//! One DPoP proof (RFC 9449 §4.2), checked as §4.3 says: a JWS of type `dpop+jwt`, signed
//! with an allowed asymmetric algorithm by the public key in its own header, whose claims
//! name this request (`htm`, `htu`), this moment (`iat`) and this access token (`ath`).
//!
//! Pure: the replay cache, the nonces and the token's binding are checked by the caller
//! with what this returns.

use base64::Engine as _;
use jsonwebtoken::jwk::{Jwk, ThumbprintHash};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::htu;
use crate::auth::jws::SignatureKey;
use crate::ground::rejection::ProofError;

/// Longest proof accepted, in bytes: an RSA-4096 key in the header and a nonce fit in 2 KiB.
pub const MAX_PROOF_BYTES: usize = 4096;

/// Longest `jti` accepted, in bytes (the replay cache keeps a hash, never the value).
const MAX_JTI_BYTES: usize = 256;

/// JWK members that only a private or symmetric key has (RFC 7518 §6.2.2, §6.3.2, §6.4.1):
/// a proof carrying one has leaked its key, and a symmetric key proves nothing.
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// How proofs are checked.
#[derive(Debug, Clone)]
pub struct ProofRules {
    /// Asymmetric algorithms a proof may be signed with.
    pub algorithms: Vec<Algorithm>,
    /// Seconds `iat` may lie before now.
    pub iat_window: u64,
    /// Seconds `iat` may lie after now (clock skew).
    pub iat_future_skew: u64,
}

/// The request a proof must be about.
#[derive(Debug, Clone, Copy)]
pub struct ProofTarget<'a> {
    /// The request method, e.g. `GET`.
    pub method: &'a str,
    /// The URL the client addressed, without query (the configured public URL + the path).
    pub htu: &'a str,
    /// The access token sent with the proof; `None` for a proof sent to a token endpoint
    /// (RFC 9449 §5), which has no `ath`.
    pub token: Option<&'a str>,
}

/// A proof whose signature and claims checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proof {
    /// RFC 7638 SHA-256 thumbprint of the proof's key, base64url: what `cnf.jkt` must say.
    pub jkt: String,
    /// `jti`.
    pub jti: String,
    /// `iat`, seconds since the epoch.
    pub iat: u64,
    /// `nonce`, when the proof carries one.
    pub nonce: Option<String>,
}

/// Largest RSA modulus a proof key may have, in bits: a client needs no more, and a
/// larger key only makes each (possibly replayed) proof dearer to verify.
pub const MAX_RSA_BITS: usize = 4096;

/// A proof whose claims and key checked out, its signature not yet: what the cheap checks
/// leave for the one dear one. The caller compares the thumbprint with the token's
/// `cnf.jkt` and looks the `jti` up before paying for [`Unverified::verify`].
pub struct Unverified<'a> {
    proof: &'a str,
    alg: Algorithm,
    key: SignatureKey,
    /// What the proof says, as it will be returned once its signature verifies.
    pub claims: Proof,
}

impl Unverified<'_> {
    /// Checks the signature under the header's key.
    pub fn verify(self) -> Result<Proof, ProofError> {
        self.key
            .verify(self.proof, self.alg)
            .map_err(|_| ProofError::BadSignature)?;
        Ok(self.claims)
    }
}

/// Checks `proof` (the `DPoP` header's value) against `target` at `now`, signature included.
pub fn check(
    proof: &str,
    target: &ProofTarget,
    rules: &ProofRules,
    now: u64,
) -> Result<Proof, ProofError> {
    inspect(proof, target, rules, now)?.verify()
}

/// Every check of `proof` but its signature: shape, header, key, and claims against
/// `target` at `now`. Cheap, so a proof that names another request, is stale or carries an
/// oversized key costs no signature verification.
pub fn inspect<'a>(
    proof: &'a str,
    target: &ProofTarget,
    rules: &ProofRules,
    now: u64,
) -> Result<Unverified<'a>, ProofError> {
    if proof.len() > MAX_PROOF_BYTES {
        return Err(ProofError::Malformed);
    }
    let mut parts = proof.split('.');
    let (Some(header), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ProofError::Malformed);
    };
    let header = json_object(header)?;
    let typ = header.get("typ").and_then(Value::as_str);
    if !typ.is_some_and(|t| t.eq_ignore_ascii_case("dpop+jwt")) {
        return Err(ProofError::BadType);
    }
    // `Ed25519` (RFC 9864) is EdDSA on an Ed25519 key, the only key EdDSA verifies with.
    let alg = header
        .get("alg")
        .and_then(Value::as_str)
        .and_then(crate::auth::jws::algorithm_named)
        .ok_or(ProofError::DisallowedAlgorithm)?;
    if crate::ground::alg::is_hmac(alg) || !rules.algorithms.contains(&alg) {
        return Err(ProofError::DisallowedAlgorithm);
    }
    if header.contains_key("crit") {
        return Err(ProofError::Malformed);
    }
    let jwk = match header.get("jwk") {
        Some(Value::Object(jwk)) => jwk,
        _ => return Err(ProofError::BadKey),
    };
    if PRIVATE_MEMBERS.iter().any(|m| jwk.contains_key(*m)) {
        return Err(ProofError::PrivateKey);
    }
    if let Some(Value::String(n)) = jwk.get("n")
        && crate::auth::jwks::keyset::rsa_bits(n) > MAX_RSA_BITS
    {
        return Err(ProofError::BadKey);
    }
    let jwk: Jwk = serde_json::from_value(crate::auth::jws::jwk_with_known_alg(Value::Object(
        jwk.clone(),
    )))
    .map_err(|_| ProofError::BadKey)?;

    let claims = crate::auth::claims::decode(proof).ok_or(ProofError::Malformed)?;
    let text = |name: &str| match claims.get(name) {
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        None => Ok(None),
        Some(_) => Err(ProofError::Malformed),
    };
    let jti = text("jti")?.ok_or(ProofError::MissingClaim)?;
    if jti.is_empty() || jti.len() > MAX_JTI_BYTES {
        return Err(ProofError::Malformed);
    }
    let htm = text("htm")?.ok_or(ProofError::MissingClaim)?;
    if htm != target.method {
        return Err(ProofError::WrongMethod);
    }
    let htu_claim = text("htu")?.ok_or(ProofError::MissingClaim)?;
    if !htu::same(htu_claim, target.htu) {
        return Err(ProofError::WrongUrl);
    }
    let iat = match claims.get("iat") {
        Some(v) => v.as_u64().ok_or(ProofError::Malformed)?,
        None => return Err(ProofError::MissingClaim),
    };
    // Back by the window, ahead by the clock skew only: a proof dated ahead would stay
    // acceptable (and replayable) for longer than the window.
    if now.saturating_sub(iat) > rules.iat_window || iat > now.saturating_add(rules.iat_future_skew)
    {
        return Err(ProofError::Stale);
    }
    if let Some(token) = target.token {
        let ath = text("ath")?.ok_or(ProofError::MissingClaim)?;
        if ath != token_hash(token) {
            return Err(ProofError::WrongToken);
        }
    }
    let nonce = text("nonce")?.map(str::to_owned);
    let jkt = jwk
        .thumbprint(ThumbprintHash::SHA256)
        .map_err(|_| ProofError::BadKey)?;
    // The key must be one the header's algorithm applies to (an EC key for ES256, …):
    // `SignatureKey` refuses any other pairing.
    let key = DecodingKey::from_jwk(&jwk)
        .ok()
        .and_then(|decoding| SignatureKey::new(decoding, &[alg]))
        .ok_or(ProofError::BadKey)?;
    Ok(Unverified {
        proof,
        alg,
        key,
        claims: Proof {
            jkt,
            jti: jti.to_owned(),
            iat,
            nonce,
        },
    })
}

/// `ath`: base64url(SHA-256(the access token's ASCII)) (RFC 9449 §4.2).
pub fn token_hash(token: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()))
}

fn json_object(part: &str) -> Result<Map<String, Value>, ProofError> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| ProofError::Malformed)?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(ProofError::Malformed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::json;

    const EC: &str = include_str!("../../../tests/fixtures/ec-p256.pem");
    const RSA: &str = include_str!("../../../tests/fixtures/rsa-1.pem");
    const ED: &str = include_str!("../../../tests/fixtures/ed25519.pem");
    const NOW: u64 = 1_800_000_000;
    const TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2ln";
    const HTU: &str = "https://api.exampleco.com/timesheets";

    fn rules() -> ProofRules {
        ProofRules {
            algorithms: vec![Algorithm::ES256, Algorithm::PS256, Algorithm::EdDSA],
            iat_window: 60,
            iat_future_skew: 5,
        }
    }

    fn target() -> ProofTarget<'static> {
        ProofTarget {
            method: "GET",
            htu: HTU,
            token: Some(TOKEN),
        }
    }

    fn claims() -> Value {
        json!({"jti": "j-1", "htm": "GET", "htu": HTU, "iat": NOW, "ath": token_hash(TOKEN)})
    }

    fn ec() -> EncodingKey {
        EncodingKey::from_ec_pem(EC.as_bytes()).unwrap()
    }

    /// A proof signed by `key` under `alg`, with the key's public JWK in the header.
    fn sign(alg: Algorithm, key: &EncodingKey, claims: &Value) -> String {
        crate::install_crypto_provider();
        let mut header = Header::new(alg);
        header.typ = Some("dpop+jwt".into());
        header.jwk = Some(Jwk::from_encoding_key(key, alg).unwrap());
        jsonwebtoken::encode(&header, claims, key).unwrap()
    }

    fn with(name: &str, value: Value) -> Value {
        let mut c = claims();
        if value.is_null() {
            c.as_object_mut().unwrap().remove(name);
        } else {
            c[name] = value;
        }
        c
    }

    fn run(proof: &str) -> Result<Proof, ProofError> {
        check(proof, &target(), &rules(), NOW)
    }

    /// A proof with a hand-made header (signed by the EC fixture).
    fn with_header(header: Value) -> String {
        crate::install_crypto_provider();
        let b64 = |v: &Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string().as_bytes())
        };
        let message = format!("{}.{}", b64(&header), b64(&claims()));
        let signature =
            jsonwebtoken::crypto::sign(message.as_bytes(), &ec(), Algorithm::ES256).unwrap();
        format!("{message}.{signature}")
    }

    fn ec_jwk() -> Value {
        serde_json::to_value(Jwk::from_encoding_key(&ec(), Algorithm::ES256).unwrap()).unwrap()
    }

    /// A proof with `header`, signed by `key` with `alg`.
    fn signed_with(header: Value, key: &EncodingKey, alg: Algorithm) -> String {
        crate::install_crypto_provider();
        let b64 = |v: &Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string().as_bytes())
        };
        let message = format!("{}.{}", b64(&header), b64(&claims()));
        let signature = jsonwebtoken::crypto::sign(message.as_bytes(), key, alg).unwrap();
        format!("{message}.{signature}")
    }

    #[test]
    fn the_fully_specified_ed25519_name_passes_on_an_ed25519_key_only() {
        let ed = EncodingKey::from_ed_pem(ED.as_bytes()).unwrap();
        let mut ed_jwk =
            serde_json::to_value(Jwk::from_encoding_key(&ed, Algorithm::EdDSA).unwrap()).unwrap();
        let header = json!({"typ": "dpop+jwt", "alg": "Ed25519", "jwk": ed_jwk.clone()});
        let proof = run(&signed_with(header, &ed, Algorithm::EdDSA)).unwrap();
        let eddsa = run(&sign(Algorithm::EdDSA, &ed, &claims())).unwrap();
        assert_eq!(proof.jkt, eddsa.jkt);
        // A JWK may name the new algorithm too.
        ed_jwk["alg"] = "Ed25519".into();
        let header = json!({"typ": "dpop+jwt", "alg": "Ed25519", "jwk": ed_jwk});
        assert!(run(&signed_with(header, &ed, Algorithm::EdDSA)).is_ok());
        // Not on another key type, and not where EdDSA is not allowed.
        let header = json!({"typ": "dpop+jwt", "alg": "Ed25519", "jwk": ec_jwk()});
        assert_eq!(
            run(&signed_with(header.clone(), &ec(), Algorithm::ES256)),
            Err(ProofError::BadKey)
        );
        let es_only = ProofRules {
            algorithms: vec![Algorithm::ES256],
            iat_window: 60,
            iat_future_skew: 5,
        };
        let header = json!({"typ": "dpop+jwt", "alg": "Ed25519", "jwk": ed_jwk_plain(&ed)});
        assert_eq!(
            check(
                &signed_with(header, &ed, Algorithm::EdDSA),
                &target(),
                &es_only,
                NOW
            ),
            Err(ProofError::DisallowedAlgorithm)
        );
    }

    fn ed_jwk_plain(ed: &EncodingKey) -> Value {
        serde_json::to_value(Jwk::from_encoding_key(ed, Algorithm::EdDSA).unwrap()).unwrap()
    }

    #[test]
    fn a_valid_proof_yields_its_keys_thumbprint() {
        let proof = run(&sign(Algorithm::ES256, &ec(), &claims())).unwrap();
        let jwk = Jwk::from_encoding_key(&ec(), Algorithm::ES256).unwrap();
        assert_eq!(proof.jkt, jwk.thumbprint(ThumbprintHash::SHA256).unwrap());
        assert_eq!((proof.jti.as_str(), proof.iat), ("j-1", NOW));
        assert_eq!(proof.nonce, None);
        let rsa = EncodingKey::from_rsa_pem(RSA.as_bytes()).unwrap();
        assert!(run(&sign(Algorithm::PS256, &rsa, &claims())).is_ok());
        let ed = EncodingKey::from_ed_pem(ED.as_bytes()).unwrap();
        assert!(run(&sign(Algorithm::EdDSA, &ed, &claims())).is_ok());
        let nonce = run(&sign(Algorithm::ES256, &ec(), &with("nonce", "n".into()))).unwrap();
        assert_eq!(nonce.nonce.as_deref(), Some("n"));
    }

    #[test]
    fn rfc_7638_thumbprint_example() {
        // RFC 7638 §3.1: the thumbprint of the example RSA key.
        let jwk: Jwk = serde_json::from_value(json!({
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e": "AQAB",
            "alg": "RS256",
            "kid": "2011-04-29"
        }))
        .unwrap();
        assert_eq!(
            jwk.thumbprint(ThumbprintHash::SHA256).unwrap(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn the_header_must_be_a_dpop_proof_with_a_public_key_and_an_allowed_algorithm() {
        let mut header = json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": ec_jwk()});
        assert!(run(&with_header(header.clone())).is_ok());
        for typ in [json!("JWT"), json!("at+jwt"), Value::Null] {
            header["typ"] = typ;
            assert_eq!(run(&with_header(header.clone())), Err(ProofError::BadType));
        }
        header["typ"] = "dpop+jwt".into();
        let mut private = ec_jwk();
        private["d"] = "c2VjcmV0".into();
        let mut leaked = header.clone();
        leaked["jwk"] = private;
        assert_eq!(run(&with_header(leaked)), Err(ProofError::PrivateKey));
        let mut symmetric = header.clone();
        symmetric["jwk"] = json!({"kty": "oct", "k": "c2VjcmV0"});
        assert_eq!(run(&with_header(symmetric)), Err(ProofError::PrivateKey));
        let mut none = header.clone();
        none.as_object_mut().unwrap().remove("jwk");
        assert_eq!(run(&with_header(none)), Err(ProofError::BadKey));
        let mut crit = header.clone();
        crit["crit"] = json!(["exp"]);
        assert_eq!(run(&with_header(crit)), Err(ProofError::Malformed));
        // An RSA key under ES256: the key does not fit the algorithm.
        let rsa = EncodingKey::from_rsa_pem(RSA.as_bytes()).unwrap();
        let mut mismatched = header.clone();
        mismatched["jwk"] =
            serde_json::to_value(Jwk::from_encoding_key(&rsa, Algorithm::RS256).unwrap()).unwrap();
        assert_eq!(run(&with_header(mismatched)), Err(ProofError::BadKey));
        // Algorithms outside the allowlist, symmetric ones and `none`.
        assert_eq!(
            run(&sign(Algorithm::RS256, &rsa, &claims())),
            Err(ProofError::DisallowedAlgorithm)
        );
        let hs = EncodingKey::from_secret(b"0123456789abcdef0123456789abcdef");
        let mut hs_header = Header::new(Algorithm::HS256);
        hs_header.typ = Some("dpop+jwt".into());
        let hs_proof = jsonwebtoken::encode(&hs_header, &claims(), &hs).unwrap();
        assert_eq!(run(&hs_proof), Err(ProofError::DisallowedAlgorithm));
        for alg in [json!("none"), json!("XX256")] {
            let mut h = header.clone();
            h["alg"] = alg;
            assert_eq!(run(&with_header(h)), Err(ProofError::DisallowedAlgorithm));
        }
    }

    #[test]
    fn the_signature_must_be_the_headers_keys() {
        let proof = sign(Algorithm::ES256, &ec(), &claims());
        let (head, rest) = proof.split_once('.').unwrap();
        let (_, signature) = rest.split_once('.').unwrap();
        let other = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(with("jti", "j-2".into()).to_string());
        assert_eq!(
            run(&format!("{head}.{other}.{signature}")),
            Err(ProofError::BadSignature)
        );
        for garbage in [
            "",
            "a.b",
            "a.b.c.d",
            "!!.b.c",
            &"a".repeat(MAX_PROOF_BYTES + 1),
        ] {
            assert_eq!(run(garbage), Err(ProofError::Malformed), "{garbage:.20}");
        }
    }

    #[test]
    fn each_claim_must_name_this_request() {
        let cases = [
            (with("htm", "POST".into()), ProofError::WrongMethod),
            (with("htm", "get".into()), ProofError::WrongMethod),
            (
                with("htu", "https://api.exampleco.com/approvals".into()),
                ProofError::WrongUrl,
            ),
            (
                with("htu", "http://api.exampleco.com/timesheets".into()),
                ProofError::WrongUrl,
            ),
            (
                with("htu", "https://evil.example/timesheets".into()),
                ProofError::WrongUrl,
            ),
            (with("iat", (NOW - 61).into()), ProofError::Stale),
            (with("iat", (NOW + 61).into()), ProofError::Stale),
            // Ahead of now by more than the skew, though inside the window.
            (with("iat", (NOW + 6).into()), ProofError::Stale),
            (with("iat", "1800000000".into()), ProofError::Malformed),
            (
                with("ath", token_hash("another token").into()),
                ProofError::WrongToken,
            ),
            (with("jti", "".into()), ProofError::Malformed),
            (with("jti", 7.into()), ProofError::Malformed),
        ];
        for (claims, expected) in cases {
            let proof = sign(Algorithm::ES256, &ec(), &claims);
            assert_eq!(run(&proof), Err(expected), "{claims}");
        }
        for name in ["jti", "htm", "htu", "iat", "ath"] {
            let proof = sign(Algorithm::ES256, &ec(), &with(name, Value::Null));
            assert_eq!(run(&proof), Err(ProofError::MissingClaim), "{name}");
        }
        // Inside the window either way, and the URL as RFC 9449 §4.3 compares it.
        for claims in [
            with("iat", (NOW - 60).into()),
            with("iat", (NOW + 5).into()),
            with(
                "htu",
                "HTTPS://API.exampleco.com:443/timesheets?x=1#f".into(),
            ),
        ] {
            assert!(
                run(&sign(Algorithm::ES256, &ec(), &claims)).is_ok(),
                "{claims}"
            );
        }
    }

    #[test]
    fn cheap_checks_come_before_the_signature() {
        // A proof for another method, or a stale one, with a broken signature: refused for
        // what it says, before any signature work.
        for (claims, expected) in [
            (with("htm", "POST".into()), ProofError::WrongMethod),
            (with("iat", (NOW - 600).into()), ProofError::Stale),
            (
                with("htu", "https://evil.example/timesheets".into()),
                ProofError::WrongUrl,
            ),
        ] {
            let proof = sign(Algorithm::ES256, &ec(), &claims);
            let (rest, _) = proof.rsplit_once('.').unwrap();
            let broken = format!("{rest}.AAAA");
            assert_eq!(run(&broken), Err(expected), "{claims}");
        }
        // What passes them still needs the signature.
        let proof = sign(Algorithm::ES256, &ec(), &claims());
        let (rest, _) = proof.rsplit_once('.').unwrap();
        let broken = format!("{rest}.AAAA");
        let unverified = inspect(&broken, &target(), &rules(), NOW).unwrap();
        assert_eq!(unverified.claims.jti, "j-1");
        assert_eq!(unverified.verify(), Err(ProofError::BadSignature));
    }

    #[test]
    fn rsa_proof_keys_above_4096_bits_are_refused() {
        // An 8192-bit modulus (its top bit set); the signature need not be looked at.
        let mut n = vec![0xC5u8; 1024];
        n[1023] |= 1;
        let jwk = json!({
            "kty": "RSA",
            "n": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&n),
            "e": "AQAB",
        });
        let b64 = |v: &Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string().as_bytes())
        };
        let header = json!({"typ": "dpop+jwt", "alg": "PS256", "jwk": jwk});
        let proof = format!("{}.{}.{}", b64(&header), b64(&claims()), "A".repeat(1366));
        assert_eq!(run(&proof), Err(ProofError::BadKey));
        // 4096 bits is still fine as far as size goes (the signature then decides).
        let mut n = vec![0xC5u8; 512];
        n[511] |= 1;
        let header = json!({"typ": "dpop+jwt", "alg": "PS256", "jwk": {
            "kty": "RSA",
            "n": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&n),
            "e": "AQAB",
        }});
        let proof = format!("{}.{}.{}", b64(&header), b64(&claims()), "A".repeat(683));
        assert_eq!(run(&proof), Err(ProofError::BadSignature));
    }
}
