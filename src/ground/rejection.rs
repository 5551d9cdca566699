//! Every way a request can be refused: its status, its challenge's kind and its metric
//! `reason` label. How the answer is written out is [`super::answer`].
//!
//! One enum per boundary, matched exhaustively: a new variant forces a decision about its
//! status, its RFC 6750 challenge and its metric `reason` label (the module denies
//! wildcard arms on enums, so the compiler holds every match to this).

#![deny(clippy::wildcard_enum_match_arm)]

use super::reason::Reason;

/// Why a bearer token was refused. Each answers 401 with `error="invalid_token"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a JWS compact serialization, bad base64, bad JSON, or an opaque token.
    #[error("The access token is malformed")]
    Malformed,
    /// `exp` is in the past (beyond the leeway).
    #[error("The access token expired")]
    Expired,
    /// `nbf` or `iat` is in the future (beyond the leeway).
    #[error("The access token is not valid yet")]
    NotYetValid,
    /// `iss` names no configured issuer.
    #[error("The access token was issued by an untrusted issuer")]
    UnknownIssuer,
    /// No key of the issuer's key set matches the token's `kid`.
    #[error("The access token was signed with an unknown key")]
    UnknownKey,
    /// The signature does not verify.
    #[error("The access token signature is invalid")]
    BadSignature,
    /// `aud` holds none of the configured audiences.
    #[error("The access token is not intended for this API")]
    BadAudience,
    /// The header's `alg` is not one the key and the issuer's allowlist permit.
    #[error("The access token algorithm is not allowed")]
    DisallowedAlgorithm,
    /// `typ` marks something other than an access token (an ID token, a logout token, …).
    #[error("The token is not an access token")]
    BadType,
    /// `crit` names an extension this gateway does not implement (RFC 7515 §4.1.11).
    #[error("The access token requires an unsupported extension")]
    UnsupportedCrit,
    /// A required claim (`exp`, `iss`, `aud`) is missing, or a claim has the wrong type.
    #[error("The access token lacks a required claim")]
    BadClaims,
    /// `auth_time` is in the future (beyond the leeway): the sign-in has not happened.
    #[error("The access token's auth_time is in the future")]
    FutureAuthTime,
    /// The authorization server says the token is not active (RFC 7662 §2.2: revoked,
    /// expired, or never issued).
    #[error("The access token is not active")]
    Inactive,
    /// The token is bound to a client certificate (`cnf.x5t#S256`, RFC 8705 §3) the
    /// connection did not present.
    #[error("The access token is bound to another client certificate")]
    CertificateMismatch,
}

impl TokenError {
    /// The metric `reason` label.
    pub fn reason(self) -> Reason {
        match self {
            TokenError::Malformed | TokenError::BadClaims | TokenError::FutureAuthTime => {
                Reason::InvalidToken
            }
            TokenError::Expired => Reason::TokenExpired,
            TokenError::NotYetValid => Reason::TokenNotYetValid,
            TokenError::UnknownIssuer => Reason::UnknownIssuer,
            TokenError::UnknownKey => Reason::UnknownKey,
            TokenError::BadSignature => Reason::BadSignature,
            TokenError::BadAudience => Reason::BadAudience,
            TokenError::DisallowedAlgorithm => Reason::DisallowedAlgorithm,
            TokenError::BadType => Reason::BadTokenType,
            TokenError::UnsupportedCrit => Reason::UnsupportedCrit,
            TokenError::Inactive => Reason::TokenInactive,
            TokenError::CertificateMismatch => Reason::CertificateMismatch,
        }
    }
}

/// Why a DPoP proof (RFC 9449 §4.3) was refused. Each answers 401 with a `DPoP` challenge
/// and `error="invalid_dpop_proof"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// `Authorization: DPoP` without a `DPoP` header.
    #[error("A DPoP proof is required with the DPoP scheme")]
    Missing,
    /// More than one `DPoP` header.
    #[error("More than one DPoP proof was sent")]
    Several,
    /// Not a compact JWS, bad base64 or JSON, a claim of the wrong type, or a `crit` header.
    #[error("The DPoP proof is malformed")]
    Malformed,
    /// `typ` is not `dpop+jwt`.
    #[error("The DPoP proof is not of type dpop+jwt")]
    BadType,
    /// `alg` is not one of the allowed asymmetric algorithms.
    #[error("The DPoP proof algorithm is not allowed")]
    DisallowedAlgorithm,
    /// No usable public `jwk` in the header, or one that does not fit `alg`.
    #[error("The DPoP proof carries no usable public key")]
    BadKey,
    /// The header's `jwk` holds private (or symmetric) key material.
    #[error("The DPoP proof key must be a public key")]
    PrivateKey,
    /// The signature does not verify under the header's key.
    #[error("The DPoP proof signature is invalid")]
    BadSignature,
    /// `jti`, `htm`, `htu`, `iat` or `ath` is missing.
    #[error("The DPoP proof lacks a required claim")]
    MissingClaim,
    /// `htm` is not the request's method.
    #[error("The DPoP proof is for another HTTP method")]
    WrongMethod,
    /// `htu` is not the URL the request was sent to.
    #[error("The DPoP proof is for another URL")]
    WrongUrl,
    /// `iat` is outside the accepted window.
    #[error("The DPoP proof is too old or from the future")]
    Stale,
    /// `ath` is not the hash of the access token sent with it.
    #[error("The DPoP proof is for another access token")]
    WrongToken,
    /// The proof's key is not the one the token is bound to (`cnf.jkt`), or the token is
    /// bound to none.
    #[error("The DPoP proof key is not the one the access token is bound to")]
    KeyMismatch,
    /// The proof was used before.
    #[error("The DPoP proof was already used")]
    Replayed,
}

impl ProofError {
    /// The metric `reason` label.
    pub fn reason(self) -> Reason {
        match self {
            ProofError::Missing => Reason::DpopProofMissing,
            ProofError::Replayed => Reason::DpopReplayed,
            ProofError::KeyMismatch => Reason::DpopKeyMismatch,
            ProofError::Several
            | ProofError::Malformed
            | ProofError::BadType
            | ProofError::DisallowedAlgorithm
            | ProofError::BadKey
            | ProofError::PrivateKey
            | ProofError::BadSignature
            | ProofError::MissingClaim
            | ProofError::WrongMethod
            | ProofError::WrongUrl
            | ProofError::Stale
            | ProofError::WrongToken => Reason::InvalidDpopProof,
        }
    }
}

/// How a route's challenges advertise DPoP (RFC 9449 §7.1), when it accepts DPoP at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DpopOffer {
    /// The `algs` parameter: the accepted proof algorithms, space-separated.
    pub algs: String,
    /// Whether a `Bearer` challenge goes beside the `DPoP` one (DPoP is not required).
    pub bearer: bool,
}

/// A request the gateway answers itself instead of forwarding.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// No bearer credentials at all: a bare challenge (RFC 6750 §3.1, last paragraph).
    #[error("Bearer credentials are required")]
    MissingToken,
    /// The request is malformed: several credentials, a bad header, an oversized token.
    #[error("{0}")]
    InvalidRequest(&'static str),
    /// The path could be read more than one way, so no route is chosen for it.
    #[error("{0}")]
    AmbiguousPath(&'static str),
    /// The token was presented but is not acceptable.
    #[error("{0}")]
    InvalidToken(TokenError),
    /// The token is valid but lacks scopes the route requires.
    #[error("The access token lacks a required scope")]
    InsufficientScope {
        /// The route's required scopes, space-separated as in the `scope` attribute.
        required: String,
    },
    /// The token fails a claim condition of every requirement set that its scopes would
    /// not already decide; `claim` names the claim (never its value).
    #[error("The access token's claim {claim} does not allow this request")]
    ClaimMismatch {
        /// The claim, as the policy names it.
        claim: String,
    },
    /// The user must sign in again: the route wants another `acr` or a more recent
    /// `auth_time` (RFC 9470).
    #[error("A stronger or more recent authentication is required")]
    InsufficientAuthentication {
        /// Acceptable `acr` values, space-separated, when the route names some.
        acr_values: Option<String>,
        /// The route's largest accepted authentication age, in seconds.
        max_age: Option<u64>,
    },
    /// No route of the policy matches the method and path: default deny.
    #[error("No policy route allows this request")]
    NoRoute,
    /// The issuer's keys are not loaded (yet) or are too stale to trust: fail closed.
    #[error("Signing keys are not available; try again shortly")]
    KeysUnavailable,
    /// The token needs introspection and the authorization server did not answer in time
    /// (or answered with an error): fail closed.
    #[error("The authorization server could not be reached to check the token; try again shortly")]
    IntrospectionUnavailable,
    /// The shared store did not answer, and a DPoP proof cannot be known single-use in the
    /// fleet without it (`shared_store.on_error: deny`): fail closed.
    #[error("The replay check could not be completed; try again shortly with a new proof")]
    SharedStoreUnavailable,
    /// The DPoP proof is not acceptable.
    #[error("{0}")]
    InvalidDpopProof(ProofError),
    /// A proof without a current server nonce where nonces are required (RFC 9449 §8).
    #[error("A DPoP nonce is required: retry with the nonce in the DPoP-Nonce header")]
    UseDpopNonce {
        /// The nonce to use, sent in `DPoP-Nonce`.
        nonce: String,
    },
    /// A plain bearer token where DPoP is required.
    #[error("This API requires a DPoP-bound access token and a DPoP proof")]
    DpopRequired,
    /// A DPoP-bound token (`cnf.jkt`) sent with the `Bearer` scheme (RFC 9449 §7.2).
    #[error("The access token is DPoP-bound: send it with the DPoP scheme and a proof")]
    BoundTokenAsBearer,
    /// The request names a host this gateway does not serve (`hosts.allowed`).
    #[error("This host is not served here")]
    MisdirectedRequest,
    /// The request body is larger than `max_request_body_bytes`.
    #[error("The request body is too large")]
    PayloadTooLarge,
    /// The upstream could not be reached, reset the connection or sent a broken answer.
    #[error("The upstream failed to answer")]
    BadGateway,
    /// The upstream did not answer in time.
    #[error("The upstream did not answer in time")]
    GatewayTimeout,
}

/// How a challenge is shaped.
pub(super) enum Challenge {
    /// None: no credential would change the answer.
    None,
    /// `Bearer realm="…"` alone (no credentials were presented, RFC 6750 §3.1).
    Bare,
    /// `Bearer realm="…", error="…", error_description="…"`.
    Error(&'static str),
    /// `DPoP realm="…", algs="…", error="…", error_description="…"` alone.
    Dpop(&'static str),
}

/// Seconds a client is told to wait while keys or introspection are unavailable.
const RETRY_AFTER: u32 = 5;

impl Rejection {
    /// The metric `reason` label; a closed set.
    pub fn reason(&self) -> Reason {
        match self {
            Rejection::MissingToken => Reason::MissingToken,
            Rejection::InvalidRequest(_) => Reason::InvalidRequest,
            Rejection::AmbiguousPath(_) => Reason::AmbiguousPath,
            Rejection::InvalidToken(e) => e.reason(),
            Rejection::InsufficientScope { .. } => Reason::InsufficientScope,
            Rejection::ClaimMismatch { .. } => Reason::ClaimMismatch,
            Rejection::InsufficientAuthentication { .. } => Reason::InsufficientUserAuthentication,
            Rejection::NoRoute => Reason::NoRoute,
            Rejection::KeysUnavailable => Reason::KeysUnavailable,
            Rejection::IntrospectionUnavailable => Reason::IntrospectionUnavailable,
            Rejection::SharedStoreUnavailable => Reason::SharedStoreUnavailable,
            Rejection::InvalidDpopProof(e) => e.reason(),
            Rejection::UseDpopNonce { .. } => Reason::UseDpopNonce,
            Rejection::DpopRequired => Reason::DpopRequired,
            Rejection::BoundTokenAsBearer => Reason::DpopBoundAsBearer,
            Rejection::MisdirectedRequest => Reason::UnknownHost,
            Rejection::PayloadTooLarge => Reason::BodyTooLarge,
            Rejection::BadGateway | Rejection::GatewayTimeout => Reason::UpstreamError,
        }
    }

    /// The gRPC status a gRPC client gets instead of the HTTP status (gRPC's
    /// `statuscodes.md`): 401 → 16 UNAUTHENTICATED, 403 → 7 PERMISSION_DENIED, 400 → 3
    /// INVALID_ARGUMENT, 413 → 8 RESOURCE_EXHAUSTED, 503 and 502 and 421 → 14 UNAVAILABLE
    /// (another try, or another replica, may succeed), 504 → 4 DEADLINE_EXCEEDED.
    pub fn grpc_status(&self) -> u8 {
        match self {
            Rejection::MissingToken
            | Rejection::InvalidToken(_)
            | Rejection::InsufficientAuthentication { .. }
            | Rejection::InvalidDpopProof(_)
            | Rejection::UseDpopNonce { .. }
            | Rejection::DpopRequired
            | Rejection::BoundTokenAsBearer => 16,
            Rejection::InsufficientScope { .. }
            | Rejection::ClaimMismatch { .. }
            | Rejection::NoRoute => 7,
            Rejection::InvalidRequest(_) | Rejection::AmbiguousPath(_) => 3,
            Rejection::PayloadTooLarge => 8,
            Rejection::KeysUnavailable
            | Rejection::IntrospectionUnavailable
            | Rejection::SharedStoreUnavailable
            | Rejection::MisdirectedRequest
            | Rejection::BadGateway => 14,
            Rejection::GatewayTimeout => 4,
        }
    }

    /// HTTP status of the answer.
    pub fn status(&self) -> u16 {
        self.shape().0
    }

    /// Status, challenge, body `error` and `Retry-After` of each rejection: the one place
    /// that decides them, with no wildcard arm.
    pub(super) fn shape(&self) -> (u16, Challenge, &'static str, Option<u32>) {
        match self {
            Rejection::MissingToken => (401, Challenge::Bare, "unauthorized", None),
            Rejection::InvalidRequest(_) | Rejection::AmbiguousPath(_) => (
                400,
                Challenge::Error("invalid_request"),
                "invalid_request",
                None,
            ),
            Rejection::InvalidToken(_) => (
                401,
                Challenge::Error("invalid_token"),
                "invalid_token",
                None,
            ),
            Rejection::InsufficientScope { .. } => (
                403,
                Challenge::Error("insufficient_scope"),
                "insufficient_scope",
                None,
            ),
            // "Higher privileges than provided by the access token" (RFC 6750 §3.1), but no
            // `scope` attribute: no scope would help.
            Rejection::ClaimMismatch { .. } => (
                403,
                Challenge::Error("insufficient_scope"),
                "insufficient_scope",
                None,
            ),
            Rejection::InsufficientAuthentication { .. } => (
                401,
                Challenge::Error("insufficient_user_authentication"),
                "insufficient_user_authentication",
                None,
            ),
            // Not bearer-token errors: no token would change the answer.
            Rejection::NoRoute => (403, Challenge::None, "access_denied", None),
            Rejection::KeysUnavailable
            | Rejection::IntrospectionUnavailable
            | Rejection::SharedStoreUnavailable => (
                503,
                Challenge::None,
                "temporarily_unavailable",
                Some(RETRY_AFTER),
            ),
            Rejection::InvalidDpopProof(_) => (
                401,
                Challenge::Dpop("invalid_dpop_proof"),
                "invalid_dpop_proof",
                None,
            ),
            Rejection::UseDpopNonce { .. } => (
                401,
                Challenge::Dpop("use_dpop_nonce"),
                "use_dpop_nonce",
                None,
            ),
            Rejection::DpopRequired | Rejection::BoundTokenAsBearer => {
                (401, Challenge::Dpop("invalid_token"), "invalid_token", None)
            }
            Rejection::MisdirectedRequest => (421, Challenge::None, "misdirected_request", None),
            Rejection::PayloadTooLarge => (413, Challenge::None, "request_too_large", None),
            Rejection::BadGateway => (502, Challenge::None, "bad_gateway", None),
            Rejection::GatewayTimeout => (504, Challenge::None, "gateway_timeout", None),
        }
    }
}
