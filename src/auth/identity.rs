//! The verified caller: what the gateway learned from a token it accepted.

use std::sync::Arc;

use std::ops::Range;

use bytes::Bytes;
use http::HeaderValue;
use http::header::InvalidHeaderValue;
use serde_json::Value;

use crate::auth::claims::Claims;
use crate::ground::rejection::{Rejection, TokenError};

/// A verified token's identity, shared between the token cache and requests.
///
/// Built with [`Identity::new`], which also prepares the upstream header values once: a
/// cached token is forwarded on every later request without formatting or validating
/// anything again. The fields are for reading: the scope check and the forwarded headers
/// use the prepared values, so a field changed afterwards would not reach them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// `sub`, when present.
    pub subject: Option<String>,
    /// `iss`, as configured.
    pub issuer: Arc<str>,
    /// `client_id` (RFC 9068) or, failing that, `azp`.
    pub client_id: Option<String>,
    /// The union of the issuer's scope claims, sorted and deduplicated.
    pub scopes: Vec<String>,
    /// Values of the claims mapped to upstream headers, in mapping order.
    pub claims: Vec<(Arc<str>, String)>,
    /// `exp`, seconds since the epoch.
    pub expires_at: u64,
    /// `acr`: how the user authenticated (RFC 9470), when the token says.
    pub acr: Option<String>,
    /// `auth_time`: when the user authenticated, seconds since the epoch.
    pub auth_time: Option<u64>,
    /// The token's claims that the policy's claim conditions read, and only those (see
    /// [`ConditionClaims`]).
    pub conditions: Claims,
    /// What the token is bound to (`cnf`, RFC 7800), if anything.
    pub confirmation: Confirmation,
    values: HeaderValues,
}

/// The top-level claims a policy's conditions read: all a verified identity keeps of its
/// token besides the fields above.
///
/// Why not the whole claims object: an identity lives in the verified-token cache for as
/// long as its token is used, and most claims (`jti`, `aud`, `iat`, the email, …) are never
/// read again. Keeping only what conditions name leaves a scope-only policy's identities
/// as small as before, and a cache hit as fast (it clones an `Arc` either way). The cache
/// remembers which names an identity was built for and verifies the token again when a
/// reloaded policy reads other claims.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConditionClaims(Arc<[Box<str>]>);

impl ConditionClaims {
    /// The set of `names`, sorted and deduplicated.
    pub fn new<S: AsRef<str>>(names: impl IntoIterator<Item = S>) -> ConditionClaims {
        let mut names: Vec<Box<str>> = names.into_iter().map(|n| n.as_ref().into()).collect();
        names.sort_unstable();
        names.dedup();
        ConditionClaims(names.into())
    }

    /// The names.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|n| &**n)
    }

    /// Copies the named claims out of a token's claims.
    pub fn pick(&self, claims: &Claims) -> Claims {
        self.names()
            .filter_map(|n| claims.get(n).map(|v| (n.to_owned(), v.clone())))
            .collect()
    }
}

/// A token's confirmation claim (`cnf`): the key or certificate it is bound to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Confirmation {
    /// `cnf.jkt` (RFC 9449 §6.1): the JWK thumbprint of the DPoP key, as a header value.
    pub jkt: Option<HeaderValue>,
    /// `cnf.x5t#S256` (RFC 8705 §3.1): the client certificate's SHA-256 thumbprint, as a
    /// header value.
    pub x5t_s256: Option<HeaderValue>,
}

impl Confirmation {
    /// Whether the token is bound to anything.
    pub fn is_bound(&self) -> bool {
        self.jkt.is_some() || self.x5t_s256.is_some()
    }
}

/// The identity as upstream header values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderValues {
    /// `sub`.
    pub subject: Option<HeaderValue>,
    /// `iss`.
    pub issuer: HeaderValue,
    /// The scopes, space-separated.
    pub scopes: HeaderValue,
    /// `client_id` or `azp`.
    pub client_id: Option<HeaderValue>,
    /// The mapped claims, in the order of [`Identity::claims`].
    pub claims: Vec<HeaderValue>,
}

impl Identity {
    /// An identity and its header values. A value that cannot be a header value (control
    /// characters smuggled into a claim) is an error: such a token is refused rather than
    /// forwarded mangled.
    pub fn new(
        subject: Option<String>,
        issuer: Arc<str>,
        client_id: Option<String>,
        scopes: Vec<String>,
        claims: Vec<(Arc<str>, String)>,
        expires_at: u64,
    ) -> Result<Identity, InvalidHeaderValue> {
        // All values live in one shared buffer: a cache hit then touches one allocation
        // and one reference count for every header, which matters once the cached tokens
        // outgrow the CPU caches (20 000 tokens in the load test).
        let mut buffer = String::new();
        let mut put = |s: &str| {
            let start = buffer.len();
            buffer.push_str(s);
            start..buffer.len()
        };
        let subject_at = subject.as_deref().map(&mut put);
        let issuer_at = put(&issuer);
        let scopes_at = put(&scopes.join(" "));
        let client_at = client_id.as_deref().map(&mut put);
        let claims_at: Vec<_> = claims.iter().map(|(_, v)| put(v)).collect();
        let shared = Bytes::from(buffer);
        let value = |at: Range<usize>| HeaderValue::from_maybe_shared(shared.slice(at));
        let values = HeaderValues {
            subject: subject_at.map(value).transpose()?,
            issuer: value(issuer_at)?,
            scopes: value(scopes_at)?,
            client_id: client_at.map(value).transpose()?,
            claims: claims_at.into_iter().map(value).collect::<Result<_, _>>()?,
        };
        Ok(Identity {
            subject,
            issuer,
            client_id,
            scopes,
            claims,
            expires_at,
            acr: None,
            auth_time: None,
            conditions: Claims::new(),
            confirmation: Confirmation::default(),
            values,
        })
    }

    /// The identity with how its user authenticated (`acr`, `auth_time`).
    pub fn with_authentication(mut self, acr: Option<String>, auth_time: Option<u64>) -> Self {
        self.acr = acr;
        self.auth_time = auth_time;
        self
    }

    /// The identity with the claims its policy's conditions read.
    pub fn with_conditions(mut self, conditions: Claims) -> Self {
        self.conditions = conditions;
        self
    }

    /// The claim at `path`: a top-level name, then names of nested objects.
    pub fn claim(&self, path: &[String]) -> Option<&Value> {
        let (first, rest) = path.split_first()?;
        rest.iter()
            .try_fold(self.conditions.get(first)?, |value, name| value.get(name))
    }

    /// The identity with its token's confirmation claim.
    pub fn with_confirmation(mut self, confirmation: Confirmation) -> Identity {
        self.confirmation = confirmation;
        self
    }

    /// An identity that no token stands behind, for offline decisions (`scopegate explain`
    /// and `scopegate test`): the given scopes, nothing else.
    pub fn offline(scopes: &[String]) -> Identity {
        let mut scopes: Vec<String> = scopes
            .iter()
            .filter(|s| !s.is_empty() && !s.contains(char::is_whitespace))
            .cloned()
            .collect();
        scopes.sort_unstable();
        scopes.dedup();
        // Scopes that cannot be a header value could never arrive in a verified token.
        scopes.retain(|s| HeaderValue::from_str(s).is_ok());
        Identity::new(None, "offline".into(), None, scopes, vec![], u64::MAX)
            .expect("scopes that are header values join into one")
    }

    /// Roughly the bytes this identity holds, for caches bounded in bytes (both the
    /// verified-token and the introspection cache weigh their entries with it).
    pub fn approximate_bytes(&self) -> usize {
        let strings = self.subject.as_ref().map_or(0, String::len)
            + self.client_id.as_ref().map_or(0, String::len)
            + self.scopes.iter().map(|s| s.len() + 24).sum::<usize>()
            + self.claims.iter().map(|(_, v)| v.len() + 40).sum::<usize>();
        let kept = self.acr.as_ref().map_or(0, String::len)
            + self
                .conditions
                .iter()
                .map(|(k, v)| k.len() + json_bytes(v))
                .sum::<usize>();
        // The header values share one buffer as long as the strings above.
        2 * strings + kept + std::mem::size_of::<Identity>()
    }

    /// An identity that no token stands behind, built from the claims a decision test or
    /// `scopegate explain` gives: the scopes of the usual scope claims, `sub`,
    /// `client_id`/`azp`, `acr`, `auth_time` and every claim for the conditions. Claims of
    /// the wrong type, or an `auth_time` in the future (beyond [`OFFLINE_LEEWAY`]), refuse
    /// it as the gateway refuses such a token.
    pub fn offline_from_claims(claims: &Claims) -> Result<Identity, Rejection> {
        let named = NamedClaims::read(claims, crate::ground::clock::unix_now(), OFFLINE_LEEWAY)?;
        let scopes = collect_scopes(claims, &DEFAULT_SCOPE_CLAIMS);
        let base = Identity::offline(&scopes);
        Ok(Identity {
            subject: named.subject,
            client_id: named.client_id,
            ..base
        }
        .with_authentication(named.acr, named.auth_time)
        .with_conditions(claims.clone()))
    }

    /// The header values, prepared when the identity was built.
    pub fn header_values(&self) -> &HeaderValues {
        &self.values
    }

    /// Whether the token carries `scope`, compared exactly. Reads the prepared
    /// space-separated header value, which the request forwards anyway, rather than
    /// one allocation per scope.
    pub fn has_scope(&self, scope: &str) -> bool {
        // Scopes never contain whitespace (see `collect_scopes`), so the join is exact.
        let (mut rest, wanted) = (self.values.scopes.as_bytes(), scope.as_bytes());
        // A name with a space is no one scope (and would match across two below).
        if wanted.is_empty() || wanted.contains(&b' ') {
            return false;
        }
        loop {
            // The scope at hand is compared before the next space is looked for: the one
            // that matches costs no search.
            if rest.starts_with(wanted) && rest.get(wanted.len()).is_none_or(|&b| b == b' ') {
                return true;
            }
            let Some(space) = memchr::memchr(b' ', rest) else {
                return false;
            };
            rest = &rest[space + 1..];
        }
    }
}

/// The identity's registered claims, each read strictly: absent (or `null`) is `None`, and
/// any other type than the claim's refuses the token (RFC 7519 §4.1.2, RFC 9068 §2.2).
/// Read as absent, a mistyped `sub` would forward an identity without its subject, and a
/// mistyped `client_id` would forward `azp` instead. The gateway and the offline tools
/// both read them here.
pub struct NamedClaims {
    /// `sub`.
    pub subject: Option<String>,
    /// `client_id`, else `azp`.
    pub client_id: Option<String>,
    /// `acr`.
    pub acr: Option<String>,
    /// `auth_time`, in seconds since the epoch.
    pub auth_time: Option<u64>,
}

/// The leeway the offline tools allow a future `auth_time`: the issuers' default
/// `leeway_seconds`.
pub const OFFLINE_LEEWAY: u64 = 30;

impl NamedClaims {
    /// Reads them at `now`, or refuses the token for one of the wrong type, or for an
    /// `auth_time` later than `now` plus `leeway` (RFC 9068 §2.2.1 makes it a past
    /// instant): read as a sign-in "just now", it would pass every `max_age` until long
    /// after, and an issuer that writes milliseconds would disable step-up for the
    /// token's whole life.
    pub fn read(claims: &Claims, now: u64, leeway: u64) -> Result<NamedClaims, Rejection> {
        let bad = || Rejection::InvalidToken(TokenError::BadClaims);
        let text = |name: &str| match claims.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(bad()),
        };
        let (subject, client_id, azp, acr) =
            (text("sub")?, text("client_id")?, text("azp")?, text("acr")?);
        let auth_time = match claims.get("auth_time") {
            None | Some(Value::Null) => None,
            Some(v) => Some(numeric_date(v).ok_or_else(bad)?),
        };
        if auth_time.is_some_and(|at| at > now.saturating_add(leeway)) {
            return Err(Rejection::InvalidToken(TokenError::FutureAuthTime));
        }
        Ok(NamedClaims {
            subject,
            client_id: client_id.or(azp),
            acr,
            auth_time,
        })
    }
}

/// `auth_time` as seconds since the epoch: a non-negative number, fractions dropped.
pub fn numeric_date(value: &Value) -> Option<u64> {
    value.as_u64().or_else(|| {
        value
            .as_f64()
            .filter(|f| f.is_finite() && *f >= 0.0)
            .map(|f| f.floor() as u64)
    })
}

/// Roughly the bytes a JSON value holds: strings by length, containers by their items, a
/// fixed size for the rest. Cheap enough for a cache's weigher.
fn json_bytes(value: &Value) -> usize {
    const NODE: usize = 32;
    NODE + match value {
        Value::String(s) => s.len(),
        Value::Array(items) => items.iter().map(json_bytes).sum(),
        Value::Object(map) => map.iter().map(|(k, v)| k.len() + json_bytes(v)).sum(),
        Value::Null | Value::Bool(_) | Value::Number(_) => 0,
    }
}

pub use crate::config::DEFAULT_SCOPE_CLAIMS;

/// Collects scopes from a claims object: `scope` (space-delimited string), `scp` (string
/// or array) and `permissions` (array), or whichever claims the issuer names.
pub fn collect_scopes(
    claims: &serde_json::Map<String, serde_json::Value>,
    scope_claims: &[impl AsRef<str>],
) -> Vec<String> {
    let mut scopes = Vec::new();
    for name in scope_claims {
        match claims.get(name.as_ref()) {
            Some(serde_json::Value::String(s)) => {
                scopes.extend(s.split_ascii_whitespace().map(str::to_owned))
            }
            Some(serde_json::Value::Array(items)) => scopes.extend(
                items
                    .iter()
                    .filter_map(|v| v.as_str())
                    .filter(|s| !s.is_empty() && !s.contains(char::is_whitespace))
                    .map(str::to_owned),
            ),
            _ => {}
        }
    }
    scopes.sort_unstable();
    scopes.dedup();
    scopes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(v: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn scopes_are_the_union_of_the_configured_claims() {
        let c = claims(serde_json::json!({
            "scope": "read:timesheets create:timesheets",
            "scp": ["delete:timesheets"],
            "permissions": ["read:timesheets", "approve:timesheets"],
        }));
        let names = ["scope", "scp", "permissions"].map(String::from);
        assert_eq!(
            collect_scopes(&c, &names),
            [
                "approve:timesheets",
                "create:timesheets",
                "delete:timesheets",
                "read:timesheets"
            ]
        );
        assert_eq!(collect_scopes(&c, &["scp"]), ["delete:timesheets"]);
    }

    #[test]
    fn header_values_are_prepared_once_and_control_characters_refused() {
        let id = Identity::new(
            Some("auth0|alice".into()),
            "https://tenant/".into(),
            None,
            vec!["a".into(), "b".into()],
            vec![("email".into(), "alice@exampleco.com".into())],
            0,
        )
        .unwrap();
        let v = id.header_values();
        assert_eq!(v.subject.as_ref().unwrap(), "auth0|alice");
        assert_eq!(v.scopes, "a b");
        assert_eq!(v.claims, ["alice@exampleco.com"]);
        assert!(v.client_id.is_none());
        let smuggled = Identity::new(
            Some("alice\r\nx-auth-scopes: admin".into()),
            "i".into(),
            None,
            vec![],
            vec![],
            0,
        );
        assert!(smuggled.is_err());
    }

    #[test]
    fn an_auth_time_beyond_the_leeway_is_an_invalid_token() {
        let at = |auth_time: serde_json::Value| {
            NamedClaims::read(
                &claims(serde_json::json!({"auth_time": auth_time})),
                1000,
                30,
            )
            .map(|n| n.auth_time)
        };
        assert_eq!(at(1000.into()), Ok(Some(1000)));
        assert_eq!(at(1030.into()), Ok(Some(1030)));
        // Milliseconds, as some issuers write them, are far in the future.
        for future in [1031, 1_000_000] {
            assert_eq!(
                at(future.into()),
                Err(Rejection::InvalidToken(TokenError::FutureAuthTime)),
                "{future}"
            );
        }
        let refused = Rejection::InvalidToken(TokenError::FutureAuthTime);
        assert_eq!(refused.status(), 401);
        assert!(
            refused
                .answer(&Default::default())
                .challenge
                .unwrap()
                .contains(r#"error="invalid_token""#)
        );
    }

    #[test]
    fn scope_match_is_exact() {
        let id = Identity::new(
            None,
            "i".into(),
            None,
            vec!["read:timesheets_extra".into()],
            vec![],
            0,
        )
        .unwrap();
        assert!(!id.has_scope("read:timesheets"));
        assert!(id.has_scope("read:timesheets_extra"));
        let two = Identity::new(
            None,
            "i".into(),
            None,
            vec!["a:b".into(), "c:d".into()],
            vec![],
            0,
        )
        .unwrap();
        assert!(two.has_scope("a:b") && two.has_scope("c:d"));
        for partial in ["", "a", "b c", "a:b c:d", "c:"] {
            assert!(!two.has_scope(partial), "{partial:?}");
        }
        let none = Identity::new(None, "i".into(), None, vec![], vec![], 0).unwrap();
        assert!(!none.has_scope(""));
    }
}
