//! Offline answers for operators: what would the policy decide for this request and these
//! scopes? Used by `scopegate explain` and `scopegate test`. The decision is the gateway's
//! own ([`crate::decision::decide`]); only the caller is given instead of verified, so no
//! signature is checked here.

use std::fmt;
use std::sync::Arc;

use super::{Policy, Requirement};
use crate::auth::identity::Identity;
use crate::decision::{self, Outcome, Reason, Rejection};

/// The decision for one request, with everything that led to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    /// The method as given.
    pub method: String,
    /// The path after normalization, or `None` when it was refused.
    pub normalized_path: Option<String>,
    /// The matched route.
    pub route: Option<String>,
    /// The route's required scopes (empty for public routes).
    pub required: Vec<String>,
    /// The scopes presented, `None` when no token was presented.
    pub present: Option<Vec<String>>,
    /// Allowed (forwarded) or denied.
    pub outcome: Outcome,
    /// The metric `reason` label the gateway would record.
    pub reason: Reason,
    /// The HTTP status the client would get (200 stands for "forwarded").
    pub status: u16,
}

/// Decides `method path` for a caller with `scopes` (`None`: no token at all).
pub fn explain(
    policy: &Policy,
    method: &str,
    path: &str,
    scopes: Option<&[String]>,
) -> Explanation {
    let caller = scopes.map(|s| Arc::new(Identity::offline(s)));
    let path = path.split('?').next().unwrap_or(path);
    let decision = decision::now(decision::decide(method, path, policy, |_route| {
        std::future::ready(caller.clone().ok_or(Rejection::MissingToken))
    }));
    let route = decision
        .route
        .as_deref()
        .and_then(|id| policy.routes().iter().find(|r| &*r.id == id));
    let refused_path = route.is_none()
        && matches!(
            decision.verdict.reason(),
            Reason::AmbiguousPath | Reason::InvalidRequest
        );
    Explanation {
        method: method.to_owned(),
        normalized_path: (!refused_path).then(|| {
            decision
                .rewritten_path
                .clone()
                .unwrap_or_else(|| path.to_owned())
        }),
        route: route.map(|r| r.id.to_string()),
        required: match route.map(|r| &r.requirement) {
            Some(Requirement::Scopes { all, .. }) => all.clone(),
            Some(Requirement::Public) | None => Vec::new(),
        },
        present: caller.map(|c| c.scopes.clone()),
        outcome: decision.verdict.outcome(),
        reason: decision.verdict.reason(),
        status: decision.verdict.rejection().map_or(200, Rejection::status),
    }
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
            "route:           {}",
            self.route.as_deref().unwrap_or("(none: default deny)")
        )?;
        writeln!(f, "scopes required: {}", list(&self.required))?;
        match &self.present {
            Some(p) => writeln!(f, "scopes present:  {}", list(p))?,
            None => writeln!(f, "scopes present:  (no token)")?,
        }
        write!(
            f,
            "decision:        {} ({}, HTTP {})",
            self.outcome, self.reason, self.status
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        super::super::compile(include_bytes!("../../policies/timesheets.yaml"), "t.yaml").unwrap()
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
}
