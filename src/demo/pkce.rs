//! Proof Key for Code Exchange (RFC 7636), `S256` only: the client's half (make a verifier
//! and its challenge) and the server's half (check their shapes and that they match).

use base64::Engine as _;
use sha2::{Digest, Sha256};

/// A new random code verifier: 32 random bytes as base64url, 43 characters (§4.1).
pub fn new_verifier() -> String {
    super::random_token()
}

/// The `S256` challenge of a verifier: `BASE64URL(SHA256(verifier))` (§4.2).
pub fn s256_challenge(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// Whether `verifier` has the shape §4.1 requires: 43 to 128 unreserved characters.
pub fn is_valid_verifier(verifier: &str) -> bool {
    (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

/// Whether `challenge` can be an `S256` challenge: a SHA-256 digest in unpadded base64url
/// is exactly 43 characters.
pub fn is_valid_s256_challenge(challenge: &str) -> bool {
    challenge.len() == 43
        && challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Whether `verifier` is the one `challenge` was made from; compared in constant time.
pub fn verify_s256(verifier: &str, challenge: &str) -> bool {
    let expected = s256_challenge(verifier);
    aws_lc_rs::constant_time::verify_slices_are_equal(expected.as_bytes(), challenge.as_bytes())
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rfc_7636_appendix_b_example_verifies() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert_eq!(s256_challenge(verifier), challenge);
        assert!(verify_s256(verifier, challenge));
        assert!(!verify_s256(challenge, challenge));
    }

    #[test]
    fn new_verifiers_are_valid_and_distinct() {
        let (a, b) = (new_verifier(), new_verifier());
        assert!(is_valid_verifier(&a), "{a}");
        assert_ne!(a, b);
        assert!(is_valid_s256_challenge(&s256_challenge(&a)));
    }

    #[test]
    fn verifiers_of_the_wrong_length_or_alphabet_are_refused() {
        assert!(!is_valid_verifier(&"a".repeat(42)));
        assert!(is_valid_verifier(&"a".repeat(128)));
        assert!(!is_valid_verifier(&"a".repeat(129)));
        assert!(!is_valid_verifier(&format!("{}+", "a".repeat(42))));
        assert!(!is_valid_s256_challenge("plain-challenge"));
    }
}
