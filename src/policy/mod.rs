//! The policy: which scopes each method and path requires.
//!
//! `file` holds the YAML types, `compile` turns them into an immutable [`Policy`] (or every
//! error at once), and `reload` watches the file and swaps in new versions. Matching and
//! deciding are pure functions of a `Policy` snapshot.

pub mod cases;
mod compile;
pub mod explain;
pub mod file;
pub mod reload;

use std::sync::Arc;

pub use compile::{PolicyError, compile, load};

use crate::auth::identity::Identity;
use crate::config::yaml::Pos;
use crate::decision::rejection::Rejection;

/// Methods a route may name.
pub const METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/// What a route asks of the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    /// No token needed.
    Public,
    /// A valid token carrying every one of these scopes.
    Scopes {
        /// Required scopes, in the policy's order.
        all: Vec<String>,
        /// The same, space-separated, for the `scope` challenge attribute.
        joined: String,
    },
}

/// A compiled route.
#[derive(Debug, Clone)]
pub struct Route {
    /// The route's id.
    pub id: Arc<str>,
    /// The path template as written.
    pub template: String,
    /// What it requires.
    pub requirement: Requirement,
    /// Its DPoP setting (`Off`: the issuer's applies).
    pub dpop: crate::auth::dpop::DpopMode,
    /// Where it is defined.
    pub pos: Pos,
}

impl Route {
    /// Whether `identity` satisfies the route.
    pub fn decide(&self, identity: &Identity) -> Result<(), Rejection> {
        match &self.requirement {
            Requirement::Public => Ok(()),
            Requirement::Scopes { all, joined } => {
                if all.iter().all(|s| identity.has_scope(s)) {
                    Ok(())
                } else {
                    Err(Rejection::InsufficientScope {
                        required: joined.clone(),
                    })
                }
            }
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

    /// A policy that matches nothing (so denies everything).
    pub fn deny_all() -> Policy {
        Policy {
            routes: Vec::new(),
            routers: vec![None; METHODS.len()],
            hash: String::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMESHEETS: &str = include_str!("../../policies/timesheets.yaml");

    fn policy() -> Policy {
        compile(TIMESHEETS.as_bytes(), "timesheets.yaml").unwrap()
    }

    fn identity(scopes: &[&str]) -> Identity {
        let mut scopes: Vec<String> = scopes.iter().map(|s| s.to_string()).collect();
        scopes.sort();
        Identity::new(
            Some("alice".into()),
            "https://tenant/".into(),
            None,
            scopes,
            vec![],
            u64::MAX,
        )
        .unwrap()
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
            assert_eq!(route.decide(&identity(&[scope])), Ok(()), "{method} {path}");
            let err = route.decide(&identity(&["unrelated"])).unwrap_err();
            assert_eq!(err.status(), 403);
        }
        assert!(p.route("GET", "/healthz").unwrap().is_public());
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
