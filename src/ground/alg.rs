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

/// RFC 9864's fully-specified name of EdDSA with Ed25519, which current JOSE libraries
/// sign with instead of the deprecated, polymorphic `EdDSA`.
pub const ED25519: &str = "Ed25519";

/// The algorithm a JOSE `alg` name (a header's, a JWK's or the configuration's) stands for:
/// every name jsonwebtoken knows, and [`ED25519`], read as `EdDSA`. The two are one here:
/// the only EdDSA keys scopegate uses are Ed25519 keys (a JWKS key of another curve is
/// left out), so `Ed25519` can never reach a key `EdDSA` could not.
pub fn algorithm_named(name: &str) -> Option<Algorithm> {
    if name == ED25519 {
        Some(Algorithm::EdDSA)
    } else {
        name.parse().ok()
    }
}

/// The names `algorithms` are advertised under (DPoP's `algs`, the resource metadata's
/// `dpop_signing_alg_values_supported`): each algorithm's name, and EdDSA under its
/// fully-specified name first and its deprecated one after (RFC 9864 §2), so clients of
/// either generation find theirs.
pub fn advertised_names(algorithms: &[Algorithm]) -> Vec<String> {
    let mut names = Vec::new();
    for alg in algorithms {
        if *alg == Algorithm::EdDSA {
            names.push(ED25519.to_owned());
        }
        let name = name(*alg).to_owned();
        if !names.contains(&name) {
            names.push(name);
        }
    }
    names
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
