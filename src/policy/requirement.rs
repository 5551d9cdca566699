//! What a protected route asks of a token, and the check of one identity against it.
//!
//! A route accepts one of several requirement sets (OR of ANDs, like OpenAPI's
//! `security:`); each set is scopes plus claim conditions. The route may also ask how the
//! user signed in (RFC 9470). Everything is compiled once; the check allocates only to
//! describe a refusal.

use serde_json::Value;

use crate::auth::identity::Identity;
use crate::ground::rejection::Rejection;

/// What a route asks of the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    /// No token needed.
    Public,
    /// A valid token meeting one of the requirement sets, and the authentication rule.
    Token(TokenRequirement),
}

/// A protected route's requirement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequirement {
    /// Requirement sets of which one is enough, in the policy's order; never empty.
    pub any_of: Vec<Alternative>,
    /// How the user must have signed in, if the route says.
    pub authentication: Option<StepUp>,
}

/// One requirement set: every scope and every claim condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alternative {
    /// Required scopes, in the policy's order (may be empty when claims are given).
    pub scopes: Vec<String>,
    /// The same, space-separated, for the `scope` challenge attribute.
    pub joined: String,
    /// Claim conditions, all of which must hold.
    pub claims: Vec<ClaimCondition>,
}

/// A condition on one claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimCondition {
    /// Where the claim is.
    pub claim: ClaimPath,
    /// What it must hold.
    pub test: ClaimTest,
}

/// A claim's place in the token: a top-level name (taken whole, dots and all), then names
/// of nested objects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimPath {
    /// One name per level; never empty.
    pub segments: Vec<String>,
    /// The path for people: the name, or the names joined with `.`.
    pub shown: String,
}

/// How a claim is compared; always exactly, never case-folded or split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimTest {
    /// The claim is a string equal to this one.
    Equals(String),
    /// The claim holds at least one of these.
    ContainsAny(Vec<String>),
    /// The claim holds all of these.
    ContainsAll(Vec<String>),
}

/// A step-up rule (RFC 9470).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepUp {
    /// Acceptable `acr` values; empty when any will do.
    pub acr: Vec<String>,
    /// The same, space-separated, for the `acr_values` challenge attribute.
    pub acr_values: String,
    /// Largest accepted age of `auth_time`, in seconds.
    pub max_age: Option<u64>,
}

impl TokenRequirement {
    /// Whether `identity` meets the requirement at `now` (seconds since the epoch).
    ///
    /// Authorization comes before authentication: a user who lacks the role gains
    /// nothing by signing in again, so a 403 is answered before a step-up 401.
    pub fn check(&self, identity: &Identity, now: u64) -> Result<(), Rejection> {
        self.authorize(identity)?;
        match &self.authentication {
            Some(step_up) => step_up.check(identity, now),
            None => Ok(()),
        }
    }

    /// The requirement sets alone. When none is met, the refusal names what would help:
    /// the scopes of the first set whose claims the token meets (asking for those scopes
    /// would satisfy the route), else the first claim that failed.
    fn authorize(&self, identity: &Identity) -> Result<(), Rejection> {
        let mut scopes_short: Option<&Alternative> = None;
        let mut claim_failed: Option<&ClaimPath> = None;
        for alternative in &self.any_of {
            let failed = alternative.claims.iter().find(|c| !c.holds(identity));
            let scoped = alternative.scopes.iter().all(|s| identity.has_scope(s));
            match (failed, scoped) {
                (None, true) => return Ok(()),
                (None, false) => {
                    scopes_short.get_or_insert(alternative);
                }
                (Some(condition), _) => {
                    claim_failed.get_or_insert(&condition.claim);
                }
            }
        }
        Err(match (scopes_short, claim_failed) {
            (Some(alternative), _) => Rejection::InsufficientScope {
                required: alternative.joined.clone(),
            },
            (None, Some(claim)) => Rejection::ClaimMismatch {
                claim: claim.shown.clone(),
            },
            // Compilation never yields an empty `any_of`; refuse rather than allow.
            (None, None) => Rejection::NoRoute,
        })
    }

    /// Every scope any requirement set names.
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.any_of
            .iter()
            .flat_map(|a| a.scopes.iter().map(String::as_str))
    }
}

impl ClaimCondition {
    /// Whether the identity's claim meets the test; an absent claim never does.
    pub fn holds(&self, identity: &Identity) -> bool {
        identity
            .claim(&self.claim.segments)
            .is_some_and(|value| self.test.holds(value))
    }
}

impl ClaimTest {
    /// Whether `value` passes. A string is read as a one-item array by the `contains`
    /// tests (an `azp` among a list); array items that are not strings never match.
    pub fn holds(&self, value: &Value) -> bool {
        match self {
            ClaimTest::Equals(expected) => value.as_str() == Some(expected.as_str()),
            ClaimTest::ContainsAny(wanted) => strings(value).any(|v| wanted.iter().any(|w| w == v)),
            ClaimTest::ContainsAll(wanted) => wanted.iter().all(|w| strings(value).any(|v| v == w)),
        }
    }

    /// The test's name, as written in the policy.
    pub fn name(&self) -> &'static str {
        match self {
            ClaimTest::Equals(_) => "equals",
            ClaimTest::ContainsAny(_) => "contains_any",
            ClaimTest::ContainsAll(_) => "contains_all",
        }
    }

    /// The values compared with.
    pub fn values(&self) -> Vec<&str> {
        match self {
            ClaimTest::Equals(v) => vec![v.as_str()],
            ClaimTest::ContainsAny(v) | ClaimTest::ContainsAll(v) => {
                v.iter().map(String::as_str).collect()
            }
        }
    }
}

fn strings(value: &Value) -> impl Iterator<Item = &str> {
    let (one, many) = match value {
        Value::String(s) => (Some(s.as_str()), None),
        Value::Array(items) => (None, Some(items.iter().filter_map(Value::as_str))),
        _ => (None, None),
    };
    one.into_iter().chain(many.into_iter().flatten())
}

impl StepUp {
    /// Whether the user signed in as the route asks: an accepted `acr` and a recent
    /// enough `auth_time`. A token without the claim the rule reads does not pass.
    pub fn check(&self, identity: &Identity, now: u64) -> Result<(), Rejection> {
        let acr_ok = self.acr.is_empty()
            || identity
                .acr
                .as_deref()
                .is_some_and(|acr| self.acr.iter().any(|a| a == acr));
        let recent = self.max_age.is_none_or(|max| {
            identity
                .auth_time
                .is_some_and(|at| now.saturating_sub(at) <= max)
        });
        if acr_ok && recent {
            Ok(())
        } else {
            Err(Rejection::InsufficientAuthentication {
                acr_values: (!self.acr.is_empty()).then(|| self.acr_values.clone()),
                max_age: self.max_age,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn caller(claims: Value) -> Identity {
        Identity::offline_from_claims(claims.as_object().unwrap()).unwrap()
    }

    fn path(segments: &[&str]) -> ClaimPath {
        ClaimPath {
            segments: segments.iter().map(|s| s.to_string()).collect(),
            shown: segments.join("."),
        }
    }

    fn alternative(scopes: &[&str], claims: Vec<ClaimCondition>) -> Alternative {
        let scopes: Vec<String> = scopes.iter().map(|s| s.to_string()).collect();
        Alternative {
            joined: scopes.join(" "),
            scopes,
            claims,
        }
    }

    fn manager() -> ClaimCondition {
        ClaimCondition {
            claim: path(&["https://exampleco.com/roles"]),
            test: ClaimTest::ContainsAny(vec!["Manager".into()]),
        }
    }

    #[test]
    fn claim_tests_compare_exactly() {
        let any = ClaimTest::ContainsAny(vec!["Manager".into(), "Admin".into()]);
        assert!(any.holds(&json!(["Employee", "Manager"])));
        assert!(any.holds(&json!("Admin")));
        assert!(!any.holds(&json!(["manager"])));
        assert!(!any.holds(&json!("Manager Admin")));
        assert!(!any.holds(&json!({"Manager": true})));
        let all = ClaimTest::ContainsAll(vec!["a".into(), "b".into()]);
        assert!(all.holds(&json!(["b", "x", "a"])));
        assert!(!all.holds(&json!(["a"])));
        let eq = ClaimTest::Equals("acme".into());
        assert!(eq.holds(&json!("acme")));
        assert!(!eq.holds(&json!(["acme"])));
        assert!(!eq.holds(&json!("acme ")));
    }

    #[test]
    fn namespaced_and_nested_claims_are_found() {
        let id = caller(json!({
            "https://exampleco.com/roles": ["Manager"],
            "realm_access": {"roles": ["admin"]},
            "resource_access": {"my.client": {"roles": ["editor"]}},
        }));
        assert!(manager().holds(&id));
        let nested = ClaimCondition {
            claim: path(&["resource_access", "my.client", "roles"]),
            test: ClaimTest::ContainsAll(vec!["editor".into()]),
        };
        assert!(nested.holds(&id));
        let absent = ClaimCondition {
            claim: path(&["realm_access", "groups"]),
            test: ClaimTest::ContainsAny(vec!["admin".into()]),
        };
        assert!(!absent.holds(&id));
    }

    #[test]
    fn alternatives_name_what_would_satisfy_the_route() {
        let req = TokenRequirement {
            any_of: vec![
                alternative(&["approve:timesheets"], vec![manager()]),
                alternative(&["admin:timesheets"], vec![]),
            ],
            authentication: None,
        };
        let employee = caller(
            json!({"scope": "approve:timesheets", "https://exampleco.com/roles": ["Employee"]}),
        );
        // The first set fails on the role; the second only lacks a scope: name it.
        assert_eq!(
            req.check(&employee, 0),
            Err(Rejection::InsufficientScope {
                required: "admin:timesheets".into()
            })
        );
        let admin = caller(json!({"scope": "admin:timesheets"}));
        assert_eq!(req.check(&admin, 0), Ok(()));
        let roles_only = TokenRequirement {
            any_of: vec![alternative(&[], vec![manager()])],
            authentication: None,
        };
        assert_eq!(
            roles_only.check(&employee, 0),
            Err(Rejection::ClaimMismatch {
                claim: "https://exampleco.com/roles".into()
            })
        );
    }

    #[test]
    fn step_up_needs_the_acr_and_a_recent_sign_in() {
        let rule = StepUp {
            acr: vec!["mfa".into()],
            acr_values: "mfa".into(),
            max_age: Some(300),
        };
        let refused = Err(Rejection::InsufficientAuthentication {
            acr_values: Some("mfa".into()),
            max_age: Some(300),
        });
        let now = 10_000;
        assert_eq!(
            rule.check(&caller(json!({"acr": "mfa", "auth_time": now - 300})), now),
            Ok(())
        );
        assert_eq!(
            rule.check(&caller(json!({"acr": "mfa", "auth_time": now - 301})), now),
            refused
        );
        assert_eq!(
            rule.check(&caller(json!({"acr": "pwd", "auth_time": now})), now),
            refused
        );
        assert_eq!(rule.check(&caller(json!({"acr": "mfa"})), now), refused);
    }
}
