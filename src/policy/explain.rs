//! Offline answers for operators: what would the policy decide for this request and these
//! scopes? Used by `scopegate explain` and `scopegate test`; no signature is checked here.

use std::fmt;

use super::{Policy, Requirement};
use crate::error::Rejection;

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
    /// `allow` or `deny`.
    pub decision: &'static str,
    /// The metric `reason` label the gateway would record.
    pub reason: &'static str,
    /// The HTTP status the client would get (200 stands for "forwarded").
    pub status: u16,
}

/// Decides `method path` for a token carrying `scopes` (`None`: no token at all).
pub fn explain(
    policy: &Policy,
    method: &str,
    path: &str,
    scopes: Option<&[String]>,
) -> Explanation {
    let mut e = Explanation {
        method: method.to_owned(),
        normalized_path: None,
        route: None,
        required: Vec::new(),
        present: scopes.map(|s| {
            let mut v = s.to_vec();
            v.sort();
            v.dedup();
            v
        }),
        decision: "deny",
        reason: "",
        status: 0,
    };
    let outcome: Result<&'static str, Rejection> = (|| {
        let normalized = crate::path::normalize(path.split('?').next().unwrap_or(path))?;
        e.normalized_path = Some(normalized.to_string());
        let route = policy
            .route(method, &normalized)
            .ok_or(Rejection::NoRoute)?;
        e.route = Some(route.id.to_string());
        match &route.requirement {
            Requirement::Public => Ok("public"),
            Requirement::Scopes { all, joined } => {
                e.required = all.clone();
                let present = e.present.as_ref().ok_or(Rejection::MissingToken)?;
                if all.iter().all(|s| present.contains(s)) {
                    Ok("authorized")
                } else {
                    Err(Rejection::InsufficientScope {
                        required: joined.clone(),
                    })
                }
            }
        }
    })();
    match outcome {
        Ok(reason) => {
            e.decision = "allow";
            e.reason = reason;
            e.status = 200;
        }
        Err(r) => {
            e.reason = r.reason();
            e.status = r.status();
        }
    }
    e
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
            self.decision, self.reason, self.status
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
            (e.decision, e.reason, e.status),
            ("allow", "authorized", 200)
        );
        assert_eq!(e.normalized_path.as_deref(), Some("/timesheets/7"));
        assert_eq!(e.route.as_deref(), Some("read-timesheet"));
        let e = explain(&p, "PUT", "/approvals/7", Some(&read));
        assert_eq!((e.reason, e.status), ("insufficient_scope", 403));
        assert_eq!(explain(&p, "GET", "/timesheets", None).status, 401);
        assert_eq!(explain(&p, "GET", "/nope", Some(&read)).reason, "no_route");
        assert_eq!(explain(&p, "GET", "/a%2Fb", Some(&read)).status, 400);
        assert_eq!(explain(&p, "GET", "/healthz", None).reason, "public");
    }
}
