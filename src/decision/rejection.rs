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
}

impl TokenError {
    /// The metric `reason` label.
    pub fn reason(self) -> Reason {
        match self {
            TokenError::Malformed | TokenError::BadClaims => Reason::InvalidToken,
            TokenError::Expired => Reason::TokenExpired,
            TokenError::NotYetValid => Reason::TokenNotYetValid,
            TokenError::UnknownIssuer => Reason::UnknownIssuer,
            TokenError::UnknownKey => Reason::UnknownKey,
            TokenError::BadSignature => Reason::BadSignature,
            TokenError::BadAudience => Reason::BadAudience,
            TokenError::DisallowedAlgorithm => Reason::DisallowedAlgorithm,
            TokenError::BadType => Reason::BadTokenType,
            TokenError::UnsupportedCrit => Reason::UnsupportedCrit,
        }
    }
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
    /// No route of the policy matches the method and path: default deny.
    #[error("No policy route allows this request")]
    NoRoute,
    /// The issuer's keys are not loaded (yet) or are too stale to trust: fail closed.
    #[error("Signing keys are not available; try again shortly")]
    KeysUnavailable,
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
    /// The JSON body, `application/json`; answers are never cached (`no-store`).
    pub body: Vec<u8>,
}

/// Seconds a client is told to wait while the issuer's keys are unavailable.
const KEYS_RETRY_AFTER: u32 = 5;

/// How a challenge is shaped.
enum Challenge {
    /// None: no credential would change the answer.
    None,
    /// `Bearer realm="…"` alone (no credentials were presented, RFC 6750 §3.1).
    Bare,
    /// `Bearer realm="…", error="…", error_description="…"`.
    Error(&'static str),
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
            Rejection::NoRoute => Reason::NoRoute,
            Rejection::KeysUnavailable => Reason::KeysUnavailable,
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
            // Not bearer-token errors: no token would change the answer.
            Rejection::NoRoute => (403, Challenge::None, "access_denied", None),
            Rejection::KeysUnavailable => (
                503,
                Challenge::None,
                "temporarily_unavailable",
                Some(KEYS_RETRY_AFTER),
            ),
            Rejection::MisdirectedRequest => (421, Challenge::None, "misdirected_request", None),
            Rejection::PayloadTooLarge => (413, Challenge::None, "request_too_large", None),
            Rejection::BadGateway => (502, Challenge::None, "bad_gateway", None),
            Rejection::GatewayTimeout => (504, Challenge::None, "gateway_timeout", None),
        }
    }

    /// What the client gets: status, `WWW-Authenticate` (RFC 6750 §3), `Retry-After` and
    /// the JSON body `{"error": …, "error_description": …}`, which never echoes the token.
    pub fn answer(&self, realm: &str) -> Answer {
        let (status, challenge, error, retry_after) = self.shape();
        let description = self.to_string();
        let challenge = match challenge {
            Challenge::None => None,
            Challenge::Bare => Some(format!("Bearer realm=\"{}\"", quoted(realm))),
            Challenge::Error(code) => {
                let mut value = format!(
                    "Bearer realm=\"{}\", error=\"{code}\", error_description=\"{}\"",
                    quoted(realm),
                    quoted(&description)
                );
                if let Rejection::InsufficientScope { required } = self {
                    let _ = write!(value, ", scope=\"{}\"", quoted(required));
                }
                Some(value)
            }
        };
        let mut body = serde_json::json!({
            "error": error,
            "error_description": description,
        });
        if let Rejection::InsufficientScope { required } = self {
            body["scope"] = serde_json::Value::from(required.as_str());
        }
        Answer {
            status,
            challenge,
            retry_after,
            body: serde_json::to_vec(&body).expect("a JSON object of strings serializes"),
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

    #[test]
    fn missing_token_gets_a_bare_challenge() {
        let a = Rejection::MissingToken.answer("api");
        assert_eq!(a.status, 401);
        assert_eq!(a.challenge.unwrap(), r#"Bearer realm="api""#);
    }

    #[test]
    fn insufficient_scope_names_the_required_scope() {
        let r = Rejection::InsufficientScope {
            required: "approve:timesheets".into(),
        };
        let a = r.answer("api");
        assert_eq!(a.status, 403);
        let c = a.challenge.unwrap();
        assert!(c.contains(r#"error="insufficient_scope""#), "{c}");
        assert!(c.contains(r#"scope="approve:timesheets""#), "{c}");
        let body: serde_json::Value = serde_json::from_slice(&a.body).unwrap();
        assert_eq!(body["error"], "insufficient_scope");
    }

    #[test]
    fn invalid_token_reason_is_specific_but_code_is_invalid_token() {
        let r = Rejection::InvalidToken(TokenError::Expired);
        assert_eq!(r.reason(), Reason::TokenExpired);
        assert!(
            r.answer("x")
                .challenge
                .unwrap()
                .contains(r#"error="invalid_token""#)
        );
    }

    #[test]
    fn only_unavailable_keys_say_when_to_retry_and_no_route_has_no_challenge() {
        let keys = Rejection::KeysUnavailable.answer("x");
        assert_eq!((keys.status, keys.retry_after), (503, Some(5)));
        assert!(keys.challenge.is_none());
        let none = Rejection::NoRoute.answer("x");
        assert_eq!((none.status, none.retry_after), (403, None));
        assert!(none.challenge.is_none());
    }

    #[test]
    fn realm_cannot_break_out_of_its_quotes() {
        let c = Rejection::MissingToken.answer("a\"b\\c").challenge.unwrap();
        assert_eq!(c, r#"Bearer realm="abc""#);
    }
}
