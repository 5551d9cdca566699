//! Offline answers for operators: what would the policy decide for this request and these
//! scopes? Used by `scopegate explain` and `scopegate test`. The decision is the gateway's
//! own ([`crate::decision::decide`]); only the caller is given instead of verified, so no
//! signature is checked here.

use std::fmt;
use std::sync::Arc;

use crate::auth::identity::Identity;
use crate::decision::{self, Outcome, Reason, Rejection};
use crate::ground::path::PathRules;
use crate::policy::{Alternative, Policy, Requirement, StepUp};

/// The decision for one request, with everything that led to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    /// The method as given.
    pub method: String,
    /// The path after normalization, or `None` when it was refused.
    pub normalized_path: Option<String>,
    /// The matched route.
    pub route: Option<String>,
    /// The route's required scopes, of every requirement set (empty for public routes).
    pub required: Vec<String>,
    /// The route's requirement sets, one line each, when it has claims or alternatives.
    pub requirement_sets: Vec<String>,
    /// The route's sign-in rule, if any.
    pub authentication: Option<String>,
    /// Whether the route (or, with no route, the policy) is in dry-run mode.
    pub dry_run: bool,
    /// The scopes presented, `None` when no token was presented or it was refused.
    pub present: Option<Vec<String>>,
    /// Forwarded, denied, or forwarded by a dry run that would deny.
    pub outcome: Outcome,
    /// The metric `reason` label the gateway would record.
    pub reason: Reason,
    /// The HTTP status the client would get (200 stands for "forwarded"; a dry run's
    /// refusal shows the status it would have had).
    pub status: u16,
}

/// Decides `method path` for a caller with `scopes` (`None`: no token at all).
pub fn explain(
    policy: &Policy,
    method: &str,
    path: &str,
    scopes: Option<&[String]>,
) -> Explanation {
    explain_for(
        policy,
        &PathRules::default(),
        method,
        path,
        scopes.map(|s| Ok(Identity::offline(s))),
    )
}

/// Decides `method path` for `caller` (`None`: no token at all; an error: a token the
/// gateway would refuse), e.g. an identity built with [`Identity::offline_from_claims`],
/// reading the path as a gateway with `rules`
/// (its configuration's `paths`) would.
pub fn explain_for(
    policy: &Policy,
    rules: &PathRules,
    method: &str,
    path: &str,
    caller: Option<Result<Identity, Rejection>>,
) -> Explanation {
    let caller = caller.map(|c| c.map(Arc::new));
    let path = path.split('?').next().unwrap_or(path);
    let clock = crate::ground::clock::unix_now();
    let decision = decision::now(decision::decide(
        rules,
        method,
        path,
        policy,
        clock,
        |_route| std::future::ready(caller.clone().unwrap_or(Err(Rejection::MissingToken))),
    ));
    let route = decision
        .route
        .as_deref()
        .and_then(|id| policy.routes().iter().find(|r| &*r.id == id));
    let refused_path = route.is_none()
        && matches!(
            decision.verdict.reason(),
            Reason::AmbiguousPath | Reason::InvalidRequest
        );
    let token = match route.map(|r| &r.requirement) {
        Some(Requirement::Token(t)) => Some(t),
        Some(Requirement::Public) | None => None,
    };
    let plain_scopes = token.is_some_and(|t| t.any_of.len() == 1 && t.any_of[0].claims.is_empty());
    let verdict = &decision.verdict;
    Explanation {
        method: method.to_owned(),
        normalized_path: (!refused_path).then(|| {
            decision
                .rewritten_path
                .clone()
                .unwrap_or_else(|| path.to_owned())
        }),
        route: route.map(|r| r.id.to_string()),
        required: token
            .map(|t| t.scopes().map(str::to_owned).collect())
            .unwrap_or_default(),
        requirement_sets: match token {
            Some(t) if !plain_scopes => t.any_of.iter().map(describe).collect(),
            Some(_) | None => Vec::new(),
        },
        authentication: token.and_then(|t| t.authentication.as_ref().map(describe_step_up)),
        dry_run: route.map_or(policy.dry_run, |r| r.dry_run),
        present: caller.and_then(Result::ok).map(|c| c.scopes.clone()),
        outcome: verdict.outcome(),
        reason: verdict.reason(),
        status: verdict
            .rejection()
            .or(verdict.dry_run_rejection())
            .map_or(200, Rejection::status),
    }
}

/// One requirement set for people: `scopes a b and claim x contains_any [M]`.
fn describe(alternative: &Alternative) -> String {
    let mut parts = Vec::new();
    if !alternative.scopes.is_empty() {
        parts.push(format!("scopes {}", alternative.joined));
    }
    for c in &alternative.claims {
        parts.push(format!(
            "claim {} {} [{}]",
            c.claim.shown,
            c.test.name(),
            c.test.values().join(", ")
        ));
    }
    parts.join(" and ")
}

fn describe_step_up(rule: &StepUp) -> String {
    let mut parts = Vec::new();
    if !rule.acr.is_empty() {
        parts.push(format!("acr one of [{}]", rule.acr.join(", ")));
    }
    if let Some(age) = rule.max_age {
        parts.push(format!("signed in at most {age} s ago"));
    }
    parts.join(" and ")
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |v: &[String]| {
            if v.is_empty() {
                "(none)".to_owned()
            } else {
                v.join(" ")
            }
        };
        writeln!(
            f,
            "request:         {} {}",
            self.method,
            self.normalized_path.as_deref().unwrap_or("(path refused)")
        )?;
        writeln!(
            f,
            "route:           {}{}",
            self.route.as_deref().unwrap_or("(none: default deny)"),
            if self.dry_run { " (dry run)" } else { "" }
        )?;
        if self.requirement_sets.is_empty() {
            writeln!(f, "scopes required: {}", list(&self.required))?;
        } else {
            for (k, set) in self.requirement_sets.iter().enumerate() {
                let label = if k == 0 { "requires:" } else { "  or:" };
                writeln!(f, "{label:<17}{set}")?;
            }
        }
        if let Some(rule) = &self.authentication {
            writeln!(f, "sign-in:         {rule}")?;
        }
        match &self.present {
            Some(p) => writeln!(f, "scopes present:  {}", list(p))?,
            // Offline, only claims of the wrong type make a presented token invalid.
            None if self.reason == Reason::InvalidToken => writeln!(
                f,
                "scopes present:  (the token is refused: a claim of the wrong type)"
            )?,
            None => writeln!(f, "scopes present:  (no token)")?,
        }
        let forwarded = if self.outcome == Outcome::DryRunDeny {
            ", forwarded"
        } else {
            ""
        };
        write!(
            f,
            "decision:        {} ({}, HTTP {}{forwarded})",
            self.outcome, self.reason, self.status
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        crate::policy::compile(include_bytes!("../../policies/timesheets.yaml"), "t.yaml").unwrap()
    }

    #[test]
    fn claims_of_the_wrong_type_refuse_the_token_as_the_gateway_does() {
        let p = policy();
        let claims = serde_json::json!({"scope": "read:timesheets", "sub": ["auth0|alice"]});
        let caller = Identity::offline_from_claims(claims.as_object().unwrap());
        let e = explain_for(
            &p,
            &PathRules::default(),
            "GET",
            "/timesheets",
            Some(caller),
        );
        assert_eq!((e.reason, e.status), (Reason::InvalidToken, 401));
        assert!(e.to_string().contains("the token is refused"), "{e}");
    }

    #[test]
    fn paths_are_read_with_the_configured_rules() {
        let p = policy();
        let read = Some(Ok(Identity::offline(&["read:timesheets".to_owned()])));
        let path = "/timesheets/a%252fb";
        let default = explain_for(&p, &PathRules::default(), "GET", path, read.clone());
        assert_eq!(
            (default.reason, default.status),
            (Reason::AmbiguousPath, 400)
        );
        let allowing = PathRules {
            allow_double_encoding: true,
            ..PathRules::default()
        };
        let e = explain_for(&p, &allowing, "GET", path, read);
        assert_eq!(
            (e.outcome, e.route.as_deref()),
            (Outcome::Allow, Some("read-timesheet"))
        );
    }

    #[test]
    fn explains_allow_and_each_kind_of_deny() {
        let p = policy();
        let read = vec!["read:timesheets".to_owned()];
        let e = explain(&p, "GET", "//timesheets/7", Some(&read));
        assert_eq!(
            (e.outcome, e.reason, e.status),
            (Outcome::Allow, Reason::Authorized, 200)
        );
        assert_eq!(e.normalized_path.as_deref(), Some("/timesheets/7"));
        assert_eq!(e.route.as_deref(), Some("read-timesheet"));
        let e = explain(&p, "PUT", "/approvals/7", Some(&read));
        assert_eq!((e.reason, e.status), (Reason::ClaimMismatch, 403));
        let e = explain(&p, "DELETE", "/timesheets/7", Some(&read));
        assert_eq!((e.reason, e.status), (Reason::InsufficientScope, 403));
        assert_eq!(explain(&p, "GET", "/timesheets", None).status, 401);
        assert_eq!(
            explain(&p, "GET", "/nope", Some(&read)).reason,
            Reason::NoRoute
        );
        let refused = explain(&p, "GET", "/a%2Fb", Some(&read));
        assert_eq!((refused.status, refused.normalized_path), (400, None));
        assert_eq!(explain(&p, "GET", "/healthz", None).reason, Reason::Public);
    }

    #[test]
    fn claims_step_up_and_dry_run_are_shown() {
        let p = policy();
        let claims = serde_json::json!({
            "scope": "approve:timesheets",
            "https://api.exampleco.com/roles": ["Manager"],
        });
        let bob = Identity::offline_from_claims(claims.as_object().unwrap());
        let e = explain_for(&p, &PathRules::default(), "PUT", "/approvals/7", Some(bob));
        assert_eq!(
            (e.reason, e.status),
            (Reason::InsufficientUserAuthentication, 401)
        );
        let shown = e.to_string();
        assert!(
            shown.contains("requires:        scopes approve:timesheets and claim https://api.exampleco.com/roles contains_any [Manager]\n")
                && shown.contains("sign-in:         acr one of [mfa] and signed in at most 900 s ago\n"),
            "{shown}"
        );
        let dry = crate::policy::compile(
            b"version: 1\ndry_run: true\nroutes:\n  - {id: a, methods: [GET], path: /a, scopes: [x]}\n",
            "d.yaml",
        )
        .unwrap();
        let e = explain(&dry, "GET", "/a", None);
        assert_eq!(
            (e.outcome, e.reason, e.status),
            (Outcome::DryRunDeny, Reason::MissingToken, 401)
        );
        assert!(
            e.to_string()
                .ends_with("decision:        dry_run_deny (missing_token, HTTP 401, forwarded)"),
            "{e}"
        );
        assert_eq!(
            explain(&dry, "GET", "/nope", None).outcome,
            Outcome::DryRunDeny
        );
        assert_eq!(explain(&dry, "GET", "/a%2fb", None).outcome, Outcome::Deny);
    }
}
