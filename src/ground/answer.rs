//! What a client sees for a refusal: status, `WWW-Authenticate` challenges (RFC 6750 §3,
//! RFC 9449 §7.1, RFC 9470 §3), `DPoP-Nonce`, `Retry-After` and the JSON body. The one
//! rendering of `Rejection::shape`; nothing else writes a refusal.

#![deny(clippy::wildcard_enum_match_arm)]

use std::fmt::Write as _;

use super::rejection::{Challenge, DpopOffer, Rejection};

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
    /// The gRPC status for a gRPC client ([`Rejection::grpc_status`]).
    pub grpc_status: u8,
    /// The error description, for `grpc-message`.
    pub description: String,
}

/// What challenges name besides the error, fixed by configuration.
#[derive(Debug, Clone, Default)]
pub struct ChallengeContext {
    /// `realm` (RFC 6750 §3).
    pub realm: String,
    /// `resource_metadata` (RFC 9728 §5.1): the URL of the protected-resource metadata,
    /// where a client learns which authorization server to sign in at.
    pub resource_metadata: Option<String>,
}

impl Rejection {
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
                // A string attribute unquoted; a number (`max_age`) as JSON writes it.
                let text = attribute
                    .as_str()
                    .map_or_else(|| attribute.to_string(), str::to_owned);
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
            Rejection::MissingToken
            | Rejection::InvalidRequest(_)
            | Rejection::AmbiguousPath(_)
            | Rejection::InvalidToken(_)
            | Rejection::InsufficientScope { .. }
            | Rejection::ClaimMismatch { .. }
            | Rejection::InsufficientAuthentication { .. }
            | Rejection::NoRoute
            | Rejection::KeysUnavailable
            | Rejection::IntrospectionUnavailable
            | Rejection::SharedStoreUnavailable
            | Rejection::InvalidDpopProof(_)
            | Rejection::DpopRequired
            | Rejection::BoundTokenAsBearer
            | Rejection::MisdirectedRequest
            | Rejection::PayloadTooLarge
            | Rejection::BadGateway
            | Rejection::GatewayTimeout => None,
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
            grpc_status: self.grpc_status(),
            description,
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
            | Rejection::SharedStoreUnavailable
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
    use crate::ground::{ProofError, Reason, TokenError};

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
