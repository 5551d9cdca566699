//! Every way a request can be refused, and what the client sees for each.
//!
//! One enum per boundary, matched exhaustively: a new variant forces a decision about its
//! status, its RFC 6750 challenge and its metric `reason` label.

use std::fmt::Write as _;

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
    pub fn reason(self) -> &'static str {
        match self {
            TokenError::Malformed | TokenError::BadClaims => "invalid_token",
            TokenError::Expired => "token_expired",
            TokenError::NotYetValid => "token_not_yet_valid",
            TokenError::UnknownIssuer => "unknown_issuer",
            TokenError::UnknownKey => "unknown_key",
            TokenError::BadSignature => "bad_signature",
            TokenError::BadAudience => "bad_audience",
            TokenError::DisallowedAlgorithm => "disallowed_algorithm",
            TokenError::BadType => "bad_token_type",
            TokenError::UnsupportedCrit => "unsupported_crit",
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
}

impl Rejection {
    /// HTTP status of the answer.
    pub fn status(&self) -> u16 {
        match self {
            Rejection::MissingToken | Rejection::InvalidToken(_) => 401,
            Rejection::InvalidRequest(_) | Rejection::AmbiguousPath(_) => 400,
            Rejection::InsufficientScope { .. } | Rejection::NoRoute => 403,
            Rejection::KeysUnavailable => 503,
        }
    }

    /// The metric `reason` label; a closed set.
    pub fn reason(&self) -> &'static str {
        match self {
            Rejection::MissingToken => "missing_token",
            Rejection::InvalidRequest(_) => "invalid_request",
            Rejection::AmbiguousPath(_) => "ambiguous_path",
            Rejection::InvalidToken(e) => e.reason(),
            Rejection::InsufficientScope { .. } => "insufficient_scope",
            Rejection::NoRoute => "no_route",
            Rejection::KeysUnavailable => "keys_unavailable",
        }
    }

    /// The RFC 6750 error code, where one applies.
    pub fn error_code(&self) -> Option<&'static str> {
        match self {
            Rejection::MissingToken => None,
            Rejection::InvalidRequest(_) | Rejection::AmbiguousPath(_) => Some("invalid_request"),
            Rejection::InvalidToken(_) => Some("invalid_token"),
            Rejection::InsufficientScope { .. } => Some("insufficient_scope"),
            // Not bearer-token errors: no token would change the answer.
            Rejection::NoRoute => None,
            Rejection::KeysUnavailable => None,
        }
    }

    /// The `WWW-Authenticate` value (RFC 6750 §3), for the answers that carry one.
    pub fn challenge(&self, realm: &str) -> Option<String> {
        if matches!(self, Rejection::NoRoute | Rejection::KeysUnavailable) {
            return None;
        }
        let mut value = format!("Bearer realm=\"{}\"", quoted(realm));
        if let Some(code) = self.error_code() {
            let _ = write!(
                value,
                ", error=\"{code}\", error_description=\"{}\"",
                quoted(&self.to_string())
            );
        }
        if let Rejection::InsufficientScope { required } = self {
            let _ = write!(value, ", scope=\"{}\"", quoted(required));
        }
        Some(value)
    }

    /// The JSON body: `{"error": …, "error_description": …}`. Never echoes the token.
    pub fn body(&self) -> Vec<u8> {
        let error = match self {
            Rejection::MissingToken => "unauthorized",
            Rejection::NoRoute => "access_denied",
            Rejection::KeysUnavailable => "temporarily_unavailable",
            other => other.error_code().unwrap_or("access_denied"),
        };
        let mut body = serde_json::json!({
            "error": error,
            "error_description": self.to_string(),
        });
        if let Rejection::InsufficientScope { required } = self {
            body["scope"] = serde_json::Value::from(required.as_str());
        }
        serde_json::to_vec(&body).expect("a JSON object of strings serializes")
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
        let r = Rejection::MissingToken;
        assert_eq!(r.status(), 401);
        assert_eq!(r.challenge("api").unwrap(), r#"Bearer realm="api""#);
    }

    #[test]
    fn insufficient_scope_names_the_required_scope() {
        let r = Rejection::InsufficientScope {
            required: "approve:timesheets".into(),
        };
        assert_eq!(r.status(), 403);
        let c = r.challenge("api").unwrap();
        assert!(c.contains(r#"error="insufficient_scope""#), "{c}");
        assert!(c.contains(r#"scope="approve:timesheets""#), "{c}");
        let body: serde_json::Value = serde_json::from_slice(&r.body()).unwrap();
        assert_eq!(body["error"], "insufficient_scope");
    }

    #[test]
    fn invalid_token_reason_is_specific_but_code_is_invalid_token() {
        let r = Rejection::InvalidToken(TokenError::Expired);
        assert_eq!(r.reason(), "token_expired");
        assert!(
            r.challenge("x")
                .unwrap()
                .contains(r#"error="invalid_token""#)
        );
    }

    #[test]
    fn realm_cannot_break_out_of_its_quotes() {
        let c = Rejection::MissingToken.challenge("a\"b\\c").unwrap();
        assert_eq!(c, r#"Bearer realm="abc""#);
    }
}
