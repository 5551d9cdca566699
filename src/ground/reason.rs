//! The closed sets of labels every outcome is known by: the metric `decision` and `reason`
//! labels, the access log's fields, `explain`'s output and README's responses table.
//!
//! Both enums are matched without a wildcard wherever they are read, so a new variant makes
//! the compiler point at every place that must answer it.

#![deny(clippy::wildcard_enum_match_arm)]

/// The metric `decision` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Forwarded to the upstream.
    Allow,
    /// Answered by the gateway itself.
    Deny,
    /// Allowed, but the upstream failed.
    Error,
    /// Answered by the gateway from its own documents (RFC 9728 metadata): nothing to decide.
    Served,
    /// A dry-run route (or policy) would have denied it; forwarded.
    DryRunDeny,
}

impl Outcome {
    /// Every outcome, for pre-seeding metric series.
    pub const ALL: [Outcome; 5] = [
        Outcome::Allow,
        Outcome::Deny,
        Outcome::Error,
        Outcome::Served,
        Outcome::DryRunDeny,
    ];

    /// The label.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Allow => "allow",
            Outcome::Deny => "deny",
            Outcome::Error => "error",
            Outcome::Served => "served",
            Outcome::DryRunDeny => "dry_run_deny",
        }
    }

    /// The outcome a label names, for decision tests that expect one.
    pub fn parse(label: &str) -> Option<Outcome> {
        Outcome::ALL.into_iter().find(|o| o.as_str() == label)
    }
}

/// The metric `reason` label: why a request was allowed, denied or failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// A public route: no token looked at.
    Public,
    /// A verified token satisfied the route.
    Authorized,
    /// No bearer credentials.
    MissingToken,
    /// A malformed request (several credentials, a bad header, an oversized token, an
    /// unparsable request line).
    InvalidRequest,
    /// A path that more than one backend could read differently.
    AmbiguousPath,
    /// A token that is not a well-formed JWT, or lacks a required claim.
    InvalidToken,
    /// `exp` passed.
    TokenExpired,
    /// `nbf` or `iat` in the future.
    TokenNotYetValid,
    /// `iss` names no configured issuer.
    UnknownIssuer,
    /// No key of the issuer matches the token.
    UnknownKey,
    /// The signature does not verify.
    BadSignature,
    /// `aud` holds none of the configured audiences.
    BadAudience,
    /// An algorithm the key and the allowlist do not permit.
    DisallowedAlgorithm,
    /// A `typ` of another kind of token.
    BadTokenType,
    /// A `crit` extension the gateway does not implement.
    UnsupportedCrit,
    /// Introspection says the token is not active (revoked, expired, unknown).
    TokenInactive,
    /// The token lacks a scope the route requires.
    InsufficientScope,
    /// A claim of the token fails the route's claim condition.
    ClaimMismatch,
    /// The user must sign in again with another `acr` or more recently (RFC 9470).
    InsufficientUserAuthentication,
    /// No route matches: default deny.
    NoRoute,
    /// The issuer's keys are not loaded or too stale: fail closed.
    KeysUnavailable,
    /// Introspection was needed and the authorization server did not answer: fail closed.
    IntrospectionUnavailable,
    /// A DPoP proof could not be claimed: the shared store did not answer (`on_error: deny`).
    SharedStoreUnavailable,
    /// A certificate-bound token over a connection without that client certificate.
    CertificateMismatch,
    /// The DPoP scheme without a `DPoP` proof header.
    DpopProofMissing,
    /// A DPoP proof that fails a check of RFC 9449 §4.3.
    InvalidDpopProof,
    /// A DPoP proof used before.
    DpopReplayed,
    /// A DPoP proof by another key than the token's `cnf.jkt`.
    DpopKeyMismatch,
    /// A DPoP proof without a current server nonce.
    UseDpopNonce,
    /// A plain bearer token where DPoP is required.
    DpopRequired,
    /// A DPoP-bound token sent as a bearer token.
    DpopBoundAsBearer,
    /// The upstream failed an allowed request.
    UpstreamError,
    /// The protected-resource metadata document (RFC 9728).
    ResourceMetadata,
    /// The request's host is not one `hosts.allowed` lists.
    UnknownHost,
    /// The request body is over `max_request_body_bytes`.
    BodyTooLarge,
}

impl Reason {
    /// Every reason, in README's order.
    pub const ALL: [Reason; 35] = [
        Reason::Public,
        Reason::Authorized,
        Reason::MissingToken,
        Reason::InvalidRequest,
        Reason::AmbiguousPath,
        Reason::InvalidToken,
        Reason::TokenExpired,
        Reason::TokenNotYetValid,
        Reason::UnknownIssuer,
        Reason::UnknownKey,
        Reason::BadSignature,
        Reason::BadAudience,
        Reason::DisallowedAlgorithm,
        Reason::BadTokenType,
        Reason::UnsupportedCrit,
        Reason::TokenInactive,
        Reason::InsufficientScope,
        Reason::ClaimMismatch,
        Reason::InsufficientUserAuthentication,
        Reason::NoRoute,
        Reason::KeysUnavailable,
        Reason::IntrospectionUnavailable,
        Reason::SharedStoreUnavailable,
        Reason::CertificateMismatch,
        Reason::DpopProofMissing,
        Reason::InvalidDpopProof,
        Reason::DpopReplayed,
        Reason::DpopKeyMismatch,
        Reason::UseDpopNonce,
        Reason::DpopRequired,
        Reason::DpopBoundAsBearer,
        Reason::UpstreamError,
        Reason::ResourceMetadata,
        Reason::UnknownHost,
        Reason::BodyTooLarge,
    ];

    /// The label.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Public => "public",
            Reason::Authorized => "authorized",
            Reason::MissingToken => "missing_token",
            Reason::InvalidRequest => "invalid_request",
            Reason::AmbiguousPath => "ambiguous_path",
            Reason::InvalidToken => "invalid_token",
            Reason::TokenExpired => "token_expired",
            Reason::TokenNotYetValid => "token_not_yet_valid",
            Reason::UnknownIssuer => "unknown_issuer",
            Reason::UnknownKey => "unknown_key",
            Reason::BadSignature => "bad_signature",
            Reason::BadAudience => "bad_audience",
            Reason::DisallowedAlgorithm => "disallowed_algorithm",
            Reason::BadTokenType => "bad_token_type",
            Reason::UnsupportedCrit => "unsupported_crit",
            Reason::TokenInactive => "token_inactive",
            Reason::InsufficientScope => "insufficient_scope",
            Reason::ClaimMismatch => "claim_mismatch",
            Reason::InsufficientUserAuthentication => "insufficient_user_authentication",
            Reason::NoRoute => "no_route",
            Reason::KeysUnavailable => "keys_unavailable",
            Reason::IntrospectionUnavailable => "introspection_unavailable",
            Reason::SharedStoreUnavailable => "shared_store_unavailable",
            Reason::CertificateMismatch => "certificate_mismatch",
            Reason::DpopProofMissing => "dpop_proof_missing",
            Reason::InvalidDpopProof => "invalid_dpop_proof",
            Reason::DpopReplayed => "dpop_replayed",
            Reason::DpopKeyMismatch => "dpop_key_mismatch",
            Reason::UseDpopNonce => "use_dpop_nonce",
            Reason::DpopRequired => "dpop_required",
            Reason::DpopBoundAsBearer => "dpop_bound_as_bearer",
            Reason::UpstreamError => "upstream_error",
            Reason::ResourceMetadata => "resource_metadata",
            Reason::UnknownHost => "unknown_host",
            Reason::BodyTooLarge => "body_too_large",
        }
    }

    /// The reason a label names, for decision tests that expect one.
    pub fn parse(label: &str) -> Option<Reason> {
        Reason::ALL.into_iter().find(|r| r.as_str() == label)
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_unique_and_parse_back() {
        let mut seen = std::collections::HashSet::new();
        for r in Reason::ALL {
            assert!(seen.insert(r.as_str()), "{r} twice");
            assert_eq!(Reason::parse(r.as_str()), Some(r));
        }
        assert_eq!(Reason::parse("allow"), None);
    }
}
