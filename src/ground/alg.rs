//! JOSE algorithm facts every layer reads: the configuration (which algorithms an issuer
//! may use), the verifier, DPoP, and the labels in challenges and logs.

use jsonwebtoken::Algorithm;

/// Whether `alg` is one of the HMAC algorithms.
pub fn is_hmac(alg: Algorithm) -> bool {
    matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512)
}

/// The algorithm's JOSE name (RFC 7518 §3.1), as challenges and metadata print it.
pub fn name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::HS256 => "HS256",
        Algorithm::HS384 => "HS384",
        Algorithm::HS512 => "HS512",
        Algorithm::ES256 => "ES256",
        Algorithm::ES384 => "ES384",
        Algorithm::RS256 => "RS256",
        Algorithm::RS384 => "RS384",
        Algorithm::RS512 => "RS512",
        Algorithm::PS256 => "PS256",
        Algorithm::PS384 => "PS384",
        Algorithm::PS512 => "PS512",
        Algorithm::EdDSA => "EdDSA",
        // `Algorithm` is `#[non_exhaustive]`: an algorithm a later jsonwebtoken adds is
        // never configured here (the configuration lists the names above), so it has no
        // name of ours yet.
        _ => "unsupported",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_the_crate_s_own_spelling() {
        for alg in [
            Algorithm::HS256,
            Algorithm::ES384,
            Algorithm::RS512,
            Algorithm::PS256,
            Algorithm::EdDSA,
        ] {
            assert_eq!(name(alg), format!("{alg:?}"));
        }
        assert!(is_hmac(Algorithm::HS384) && !is_hmac(Algorithm::RS256));
    }
}
