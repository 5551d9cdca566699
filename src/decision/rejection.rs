//! Every way a request can be refused, and what the client sees for each.
//!
//! One enum per boundary, matched exhaustively: a new variant forces a decision about its
//! status, its RFC 6750 challenge and its metric `reason` label.

use std::fmt::Write as _;

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
    /// The request body is larger than `limits.max_request_body_bytes`.
    #[error("The request body is too large")]
    PayloadTooLarge,
    /// The upstream could not be reached, reset the connection or sent a broken answer.
    #[error("The upstream failed to answer")]
    BadGateway,
    /// The upstream did not answer in time.
    #[error("The upstream did not answer in time")]
    GatewayTimeout,
}

/// Everything a client sees of a rejection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// `WWW-Authenticate`, for the answers that carry a challenge.
    pub challenge: Option<String>,
    /// `Retry-After` in seconds, for answers that say "not now" rather than "no".
    pub retry_after: Option<u32>,
    /// A `DPoP` challenge (RFC 9449 §7.1), beside `challenge` or alone.
    pub dpop_challenge: Option<String>,
    /// `DPoP-Nonce`, the nonce a client must put in its next proof (RFC 9449 §8).
    pub dpop_nonce: Option<String>,
    /// The JSON body, `application/json`; answers are never cached (`no-store`).
    pub body: Vec<u8>,
}

/// Seconds a client is told to wait while keys or introspection are unavailable.
const RETRY_AFTER: u32 = 5;

/// What challenges name besides the error, fixed by configuration.
#[derive(Debug, Clone, Default)]
pub struct ChallengeContext {
    /// `realm` (RFC 6750 §3).
    pub realm: String,
    /// `resource_metadata` (RFC 9728 §5.1): the URL of the protected-resource metadata,
    /// where a client learns which authorization server to sign in at.
    pub resource_metadata: Option<String>,
}

/// How a challenge is shaped.
enum Challenge {
    /// None: no credential would change the answer.
    None,
    /// `Bearer realm="…"` alone (no credentials were presented, RFC 6750 §3.1).
    Bare,
    /// `Bearer realm="…", error="…", error_description="…"`.
    Error(&'static str),
    /// `DPoP realm="…", algs="…", error="…", error_description="…"` alone.
    Dpop(&'static str),
}

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
            Rejection::InvalidDpopProof(e) => e.reason(),
            Rejection::UseDpopNonce { .. } => Reason::UseDpopNonce,
            Rejection::DpopRequired => Reason::DpopRequired,
            Rejection::BoundTokenAsBearer => Reason::DpopBoundAsBearer,
            Rejection::MisdirectedRequest => Reason::UnknownHost,
            Rejection::PayloadTooLarge => Reason::BodyTooLarge,
            Rejection::BadGateway | Rejection::GatewayTimeout => Reason::UpstreamError,
        }
    }

    /// HTTP status of the answer.
    pub fn status(&self) -> u16 {
        self.shape().0
    }

    /// Status, challenge, body `error` and `Retry-After` of each rejection: the one place
    /// that decides them, with no wildcard arm.
    fn shape(&self) -> (u16, Challenge, &'static str, Option<u32>) {
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
            Rejection::KeysUnavailable | Rejection::IntrospectionUnavailable => (
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

    /// What the client gets: status, `WWW-Authenticate` (RFC 6750 §3), `Retry-After` and
    /// the JSON body `{"error": …, "error_description": …}`, which never echoes the token.
    pub fn answer(&self, context: &ChallengeContext) -> Answer {
        self.answer_with(context, None, false)
    }

    /// [`Rejection::answer`] on a route that accepts DPoP as `offer` says (RFC 9449 §7.1).
    /// A request without credentials is offered a `DPoP` challenge beside the `Bearer` one
    /// (or instead of it where DPoP is required); an error is reported in the scheme the
    /// client used (`used_dpop`), or in `DPoP` where bearer tokens are not accepted; DPoP's
    /// own errors answer with the `DPoP` challenge alone. Every challenge names the
    /// resource metadata, when there is one.
    pub fn answer_with(
        &self,
        context: &ChallengeContext,
        offer: Option<&DpopOffer>,
        used_dpop: bool,
    ) -> Answer {
        let (status, challenge, error, retry_after) = self.shape();
        let description = self.to_string();
        let realm = quoted(&context.realm);
        let metadata = context
            .resource_metadata
            .as_ref()
            .map_or(String::new(), |url| {
                format!(", resource_metadata=\"{}\"", quoted(url))
            });
        let params = |code: &str| {
            let mut value = format!(
                ", error=\"{code}\", error_description=\"{}\"",
                quoted(&description)
            );
            for (name, attribute) in self.attributes() {
                let text = match &attribute {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                let _ = write!(value, ", {name}=\"{}\"", quoted(&text));
            }
            value
        };
        let dpop = |params: &str| {
            let algs = offer.map_or(String::new(), |o| format!(", algs=\"{}\"", quoted(&o.algs)));
            format!("DPoP realm=\"{realm}\"{algs}{params}{metadata}")
        };
        let bearer = |params: &str| format!("Bearer realm=\"{realm}\"{params}{metadata}");
        let bearer_accepted = offer.is_none_or(|o| o.bearer);
        let (challenge, dpop_challenge) = match challenge {
            Challenge::None => (None, None),
            Challenge::Bare => (bearer_accepted.then(|| bearer("")), offer.map(|_| dpop(""))),
            Challenge::Error(code) => {
                let params = params(code);
                if offer.is_some() && (used_dpop || !bearer_accepted) {
                    (None, Some(dpop(&params)))
                } else {
                    (Some(bearer(&params)), None)
                }
            }
            Challenge::Dpop(code) => (None, Some(dpop(&params(code)))),
        };
        let dpop_nonce = match self {
            Rejection::UseDpopNonce { nonce } => Some(nonce.clone()),
            _ => None,
        };
        let mut body = serde_json::json!({
            "error": error,
            "error_description": description,
        });
        for (name, attribute) in self.attributes() {
            body[name] = attribute;
        }
        Answer {
            status,
            challenge,
            dpop_challenge,
            dpop_nonce,
            retry_after,
            body: serde_json::to_vec(&body).expect("a JSON object of strings serializes"),
        }
    }
}

impl Rejection {
    /// The challenge's extra attributes, also copied into the body: `scope` (RFC 6750
    /// §3), `acr_values` and `max_age` (RFC 9470 §3).
    /// In the body, `max_age` is a number; in the challenge every value is quoted.
    fn attributes(&self) -> Vec<(&'static str, serde_json::Value)> {
        match self {
            Rejection::InsufficientScope { required } => {
                vec![("scope", required.as_str().into())]
            }
            Rejection::InsufficientAuthentication {
                acr_values,
                max_age,
            } => {
                let mut out = Vec::new();
                if let Some(acr) = acr_values {
                    out.push(("acr_values", acr.as_str().into()));
                }
                if let Some(age) = max_age {
                    out.push(("max_age", (*age).into()));
                }
                out
            }
            Rejection::MissingToken
            | Rejection::InvalidRequest(_)
            | Rejection::AmbiguousPath(_)
            | Rejection::InvalidToken(_)
            | Rejection::ClaimMismatch { .. }
            | Rejection::NoRoute
            | Rejection::KeysUnavailable
            | Rejection::IntrospectionUnavailable
            | Rejection::InvalidDpopProof(_)
            | Rejection::UseDpopNonce { .. }
            | Rejection::DpopRequired
            | Rejection::BoundTokenAsBearer
            | Rejection::MisdirectedRequest
            | Rejection::PayloadTooLarge
            | Rejection::BadGateway
            | Rejection::GatewayTimeout => Vec::new(),
        }
    }
}

/// Keeps a value inside an RFC 7230 quoted-string: drops `"`, `\` and control characters.
fn quoted(value: &str) -> String {
    value
        .chars()
        .filter(|c| *c != '"' && *c != '\\' && !c.is_control())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn realm(realm: &str) -> ChallengeContext {
        ChallengeContext {
            realm: realm.into(),
            resource_metadata: None,
        }
    }

    #[test]
    fn missing_token_gets_a_bare_challenge() {
        let a = Rejection::MissingToken.answer(&realm("api"));
        assert_eq!(a.status, 401);
        assert_eq!(a.challenge.unwrap(), r#"Bearer realm="api""#);
    }

    #[test]
    fn insufficient_scope_names_the_required_scope() {
        let r = Rejection::InsufficientScope {
            required: "approve:timesheets".into(),
        };
        let a = r.answer(&realm("api"));
        assert_eq!(a.status, 403);
        let c = a.challenge.unwrap();
        assert!(c.contains(r#"error="insufficient_scope""#), "{c}");
        assert!(c.contains(r#"scope="approve:timesheets""#), "{c}");
        let body: serde_json::Value = serde_json::from_slice(&a.body).unwrap();
        assert_eq!(body["error"], "insufficient_scope");
    }

    #[test]
    fn a_claim_denial_names_the_claim_not_its_value() {
        let r = Rejection::ClaimMismatch {
            claim: "https://exampleco.com/roles".into(),
        };
        let a = r.answer(&realm("api"));
        assert_eq!((a.status, r.reason()), (403, Reason::ClaimMismatch));
        let c = a.challenge.unwrap();
        assert!(c.contains(r#"error="insufficient_scope""#), "{c}");
        assert!(
            c.contains("claim https://exampleco.com/roles does not"),
            "{c}"
        );
        assert!(!c.contains("scope=\""), "{c}");
    }

    #[test]
    fn step_up_asks_for_acr_values_and_max_age() {
        let r = Rejection::InsufficientAuthentication {
            acr_values: Some("mfa".into()),
            max_age: Some(300),
        };
        let a = r.answer(&realm("api"));
        assert_eq!(a.status, 401);
        let c = a.challenge.unwrap();
        assert!(
            c.contains(r#"error="insufficient_user_authentication""#)
                && c.ends_with(r#", acr_values="mfa", max_age="300""#),
            "{c}"
        );
        let body: serde_json::Value = serde_json::from_slice(&a.body).unwrap();
        assert_eq!(
            (body["acr_values"].as_str(), body["max_age"].as_u64()),
            (Some("mfa"), Some(300))
        );
        let age_only = Rejection::InsufficientAuthentication {
            acr_values: None,
            max_age: Some(60),
        };
        let c = age_only.answer(&realm("api")).challenge.unwrap();
        assert!(
            !c.contains("acr_values") && c.contains(r#"max_age="60""#),
            "{c}"
        );
    }

    #[test]
    fn invalid_token_reason_is_specific_but_code_is_invalid_token() {
        let r = Rejection::InvalidToken(TokenError::Expired);
        assert_eq!(r.reason(), Reason::TokenExpired);
        assert!(
            r.answer(&realm("x"))
                .challenge
                .unwrap()
                .contains(r#"error="invalid_token""#)
        );
    }

    #[test]
    fn only_unavailable_keys_say_when_to_retry_and_no_route_has_no_challenge() {
        let keys = Rejection::KeysUnavailable.answer(&realm("x"));
        assert_eq!((keys.status, keys.retry_after), (503, Some(5)));
        assert!(keys.challenge.is_none());
        let none = Rejection::NoRoute.answer(&realm("x"));
        assert_eq!((none.status, none.retry_after), (403, None));
        assert!(none.challenge.is_none());
    }

    #[test]
    fn challenges_point_at_the_resource_metadata_when_there_is_one() {
        let context = ChallengeContext {
            realm: "api".into(),
            resource_metadata: Some(
                "https://api.exampleco.com/.well-known/oauth-protected-resource".into(),
            ),
        };
        for r in [
            Rejection::MissingToken,
            Rejection::InvalidToken(TokenError::Inactive),
        ] {
            let c = r.answer(&context).challenge.unwrap();
            assert!(
                c.ends_with(r#", resource_metadata="https://api.exampleco.com/.well-known/oauth-protected-resource""#),
                "{c}"
            );
        }
        let unavailable = Rejection::IntrospectionUnavailable.answer(&context);
        assert_eq!(
            (unavailable.status, unavailable.retry_after),
            (503, Some(5))
        );
    }

    #[test]
    fn dpop_routes_challenge_with_dpop_beside_or_instead_of_bearer() {
        let allowed = DpopOffer {
            algs: "ES256 EdDSA".into(),
            bearer: true,
        };
        let a = Rejection::MissingToken.answer_with(&realm("api"), Some(&allowed), false);
        assert_eq!(a.challenge.unwrap(), r#"Bearer realm="api""#);
        assert_eq!(
            a.dpop_challenge.unwrap(),
            r#"DPoP realm="api", algs="ES256 EdDSA""#
        );
        let required = DpopOffer {
            bearer: false,
            ..allowed.clone()
        };
        let a = Rejection::DpopRequired.answer_with(&realm("api"), Some(&required), false);
        assert_eq!((a.status, a.challenge), (401, None));
        assert_eq!(
            a.dpop_challenge.unwrap(),
            r#"DPoP realm="api", algs="ES256 EdDSA", error="invalid_token", error_description="This API requires a DPoP-bound access token and a DPoP proof""#
        );
        let expired = Rejection::InvalidToken(TokenError::Expired);
        let a = expired.answer_with(&realm("api"), Some(&required), false);
        assert!(a.challenge.is_none());
        assert!(
            a.dpop_challenge
                .unwrap()
                .contains(r#"error="invalid_token""#)
        );
        // Where bearer tokens pass too, an error answers in the scheme the client used.
        let a = expired.answer_with(&realm("api"), Some(&allowed), false);
        let bearer = a.challenge.unwrap();
        assert!(
            bearer.starts_with(r#"Bearer realm="api", error="invalid_token""#),
            "{bearer}"
        );
        assert!(a.dpop_challenge.is_none());
        let a = expired.answer_with(&realm("api"), Some(&allowed), true);
        assert!(a.challenge.is_none());
        let dpop = a.dpop_challenge.unwrap();
        assert!(
            dpop.starts_with(r#"DPoP realm="api", algs="ES256 EdDSA", error="invalid_token""#),
            "{dpop}"
        );
        let a = Rejection::InvalidDpopProof(ProofError::Replayed).answer_with(
            &realm("api"),
            Some(&allowed),
            true,
        );
        assert!(a.challenge.is_none());
        assert!(
            a.dpop_challenge
                .unwrap()
                .contains(r#"error="invalid_dpop_proof""#)
        );
        assert_eq!(
            Rejection::InvalidDpopProof(ProofError::Replayed).reason(),
            Reason::DpopReplayed
        );
        let a = Rejection::UseDpopNonce {
            nonce: "n-1".into(),
        }
        .answer_with(&realm("api"), Some(&allowed), true);
        assert_eq!(a.dpop_nonce.as_deref(), Some("n-1"));
        assert!(
            a.dpop_challenge
                .unwrap()
                .contains(r#"error="use_dpop_nonce""#)
        );
        let body: serde_json::Value = serde_json::from_slice(&a.body).unwrap();
        assert_eq!(body["error"], "use_dpop_nonce");
        // Without DPoP on the route, answers are exactly as before.
        let plain = Rejection::MissingToken.answer(&realm("api"));
        assert!(plain.dpop_challenge.is_none() && plain.dpop_nonce.is_none());
    }

    #[test]
    fn realm_cannot_break_out_of_its_quotes() {
        let c = Rejection::MissingToken
            .answer(&realm("a\"b\\c"))
            .challenge
            .unwrap();
        assert_eq!(c, r#"Bearer realm="abc""#);
    }
}
