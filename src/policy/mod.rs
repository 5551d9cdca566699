//! The policy: which scopes each method and path requires.
//!
//! `file` holds the YAML types, `compile` turns them into an immutable [`Policy`] (or every
//! error at once), and `reload` watches the file and swaps in new versions. Matching and
//! deciding are pure functions of a `Policy` snapshot.

mod compile;
pub mod file;
pub mod openapi;
pub mod reload;
pub mod requirement;

use std::sync::Arc;

pub use compile::{PolicyError, compile, load};
pub use requirement::{
    Alternative, ClaimCondition, ClaimPath, ClaimTest, Requirement, StepUp, TokenRequirement,
};

use std::collections::BTreeSet;

use crate::auth::identity::{ConditionClaims, Identity};
pub use crate::auth::{Introspect, RouteAuth};
use crate::ground::Pos;
use crate::ground::rejection::Rejection;

/// Methods a route may name.
pub const METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/// A compiled route.
#[derive(Debug, Clone)]
pub struct Route {
    /// The route's id.
    pub id: Arc<str>,
    /// The path template as written.
    pub template: String,
    /// The methods it covers, in [`METHODS`] order.
    pub methods: Vec<&'static str>,
    /// What it requires.
    pub requirement: Requirement,
    /// What authentication needs of it: introspection and DPoP.
    pub auth: RouteAuth,
    /// Decide and count, but forward (its own `dry_run`, else the policy's).
    pub dry_run: bool,
    /// Where it is defined.
    pub pos: Pos,
}

impl Route {
    /// Whether `identity` satisfies the route at `now` (seconds since the epoch).
    pub fn decide(&self, identity: &Identity, now: u64) -> Result<(), Rejection> {
        match &self.requirement {
            Requirement::Public => Ok(()),
            Requirement::Token(requirement) => requirement.check(identity, now),
        }
    }

    /// Whether the route needs no token.
    pub fn is_public(&self) -> bool {
        self.requirement == Requirement::Public
    }
}

/// A compiled, immutable policy. Requests hold one snapshot from start to end.
#[derive(Debug)]
pub struct Policy {
    routes: Vec<Route>,
    /// One router per entry of [`METHODS`]; `None` when no route names that method.
    routers: Vec<Option<matchit::Router<usize>>>,
    /// SHA-256 of the file's bytes, hex.
    pub hash: String,
    /// Requests that match no route are forwarded and counted as `dry_run_deny`.
    pub dry_run: bool,
    /// The top-level claims the routes' conditions read.
    conditions: ConditionClaims,
}

impl Policy {
    /// The route for `method` and a normalized `path`, if any: anything else is denied.
    pub fn route(&self, method: &str, path: &str) -> Option<&Route> {
        let index = METHODS.iter().position(|m| *m == method)?;
        let router = self.routers[index].as_ref()?;
        let matched = router.at(path).ok()?;
        self.routes.get(*matched.value)
    }

    /// Every route, in file order.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// The ids of the protected routes whose paths lie outside `base` (a resource
    /// identifier's path): a client that checks the metadata a challenge names against the
    /// URL it called (RFC 9728 §3.3) refuses it on those routes.
    pub fn routes_outside(&self, base: &str) -> Vec<&str> {
        let base = base.trim_end_matches('/');
        self.routes
            .iter()
            .filter(|route| !route.is_public())
            .filter(|route| {
                let path = route.template.as_str();
                !(path == base || path.strip_prefix(base).is_some_and(|r| r.starts_with('/')))
            })
            .map(|route| &*route.id)
            .collect()
    }

    /// The top-level claims the routes' conditions read: what a verified identity must
    /// keep of its token for this policy.
    pub fn condition_claims(&self) -> &ConditionClaims {
        &self.conditions
    }

    /// Every scope some route requires, alternatives included, sorted (for RFC 9728
    /// `scopes_supported`).
    pub fn scopes(&self) -> BTreeSet<&str> {
        self.routes
            .iter()
            .filter_map(|r| match &r.requirement {
                Requirement::Token(t) => Some(t.scopes()),
                Requirement::Public => None,
            })
            .flatten()
            .collect()
    }

    /// A policy that matches nothing (so denies everything).
    pub fn deny_all() -> Policy {
        Policy {
            routes: Vec::new(),
            routers: vec![None; METHODS.len()],
            hash: String::new(),
            dry_run: false,
            conditions: ConditionClaims::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_outside_the_resource_path_are_named() {
        let policy = load(std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/policies/timesheets.yaml"
        )))
        .unwrap();
        let uncovered = policy.routes_outside("/timesheets");
        assert!(uncovered.contains(&"approve-timesheet"), "{uncovered:?}");
        assert!(!uncovered.contains(&"read-timesheet"), "{uncovered:?}");
        // Public routes need no token, so no discovery.
        assert!(!uncovered.contains(&"health"), "{uncovered:?}");
        assert!(policy.routes_outside("").is_empty());
    }

    const TIMESHEETS: &str = include_str!("../../policies/timesheets.yaml");

    fn policy() -> Policy {
        compile(TIMESHEETS.as_bytes(), "timesheets.yaml").unwrap()
    }

    /// A manager who signed in with MFA at 1000, holding `scopes`.
    fn identity(scopes: &[&str]) -> Identity {
        let claims = serde_json::json!({
            "scope": scopes.join(" "),
            "https://api.exampleco.com/roles": ["Manager"],
            "acr": "mfa",
            "auth_time": 1000,
        });
        Identity::offline_from_claims(claims.as_object().unwrap()).unwrap()
    }

    #[test]
    fn the_timesheets_table_maps_to_routes_and_scopes() {
        let p = policy();
        let table = [
            ("GET", "/timesheets", "read:timesheets"),
            ("POST", "/timesheets", "create:timesheets"),
            ("GET", "/timesheets/7", "read:timesheets"),
            ("DELETE", "/timesheets/7", "delete:timesheets"),
            ("POST", "/timesheets/upload", "batch:upload"),
            ("GET", "/approvals", "approve:timesheets"),
            ("PUT", "/approvals/7", "approve:timesheets"),
        ];
        for (method, path, scope) in table {
            let route = p
                .route(method, path)
                .unwrap_or_else(|| panic!("{method} {path}"));
            let manager = identity(&[scope]);
            assert_eq!(route.decide(&manager, 1000), Ok(()), "{method} {path}");
            let err = route.decide(&identity(&["unrelated"]), 1000).unwrap_err();
            assert_eq!(err.status(), 403);
        }
        assert!(p.route("GET", "/healthz").unwrap().is_public());
    }

    #[test]
    fn the_policy_lists_its_scopes_and_the_claims_its_conditions_read() {
        let p = policy();
        assert_eq!(
            p.scopes().into_iter().collect::<Vec<_>>(),
            [
                "approve:timesheets",
                "batch:upload",
                "create:timesheets",
                "delete:timesheets",
                "read:timesheets"
            ]
        );
        assert_eq!(
            p.condition_claims().names().collect::<Vec<_>>(),
            ["https://api.exampleco.com/roles"]
        );
    }

    #[test]
    fn unmatched_requests_have_no_route() {
        let p = policy();
        assert!(p.route("PATCH", "/timesheets/7").is_none());
        assert!(p.route("GET", "/admin").is_none());
        assert!(p.route("FETCH", "/timesheets").is_none());
        assert!(p.route("GET", "/timesheets/7/extra").is_none());
    }
}
