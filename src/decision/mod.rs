//! The decision for one request, from plain values: path, route, credentials, requirement.
//!
//! One function, [`decide`], serves the gateway, `scopegate explain` and `scopegate test`:
//! they differ only in how a caller is authenticated. The gateway passes its token path
//! (extract, verify, cache); the offline tools pass an identity built from the scopes and
//! claims they were given. Nothing here knows pingora.
//!
//! | file | job |
//! |---|---|
//! | [`rejection`] | every refusal, and the one mapping to what a client sees |
//! | [`reason`] | the closed `decision` and `reason` labels |

pub mod reason;
pub mod rejection;

use std::borrow::Cow;
use std::sync::Arc;

pub use reason::{Outcome, Reason};
pub use rejection::{Answer, Rejection, TokenError};

use crate::auth::identity::Identity;
use crate::policy::{Policy, Route};
use crate::proxy::path::PathRules;

/// What to do with a request.
#[derive(Debug)]
pub struct Decision {
    /// The matched route's id, if a route matched.
    pub route: Option<Arc<str>>,
    /// The normalized path when it differs from the one sent: the upstream gets this.
    pub rewritten_path: Option<String>,
    /// Forward, or answer with a rejection.
    pub verdict: Verdict,
}

/// Forward or refuse, with who was let through or turned away.
#[derive(Debug, Clone)]
pub enum Verdict {
    /// Forward the request.
    Allow(Access),
    /// Answer it with `rejection`.
    Deny {
        /// Why.
        rejection: Rejection,
        /// Who was denied, when a token verified (its scopes fell short): the log names
        /// them.
        identity: Option<Arc<Identity>>,
    },
}

/// Why a request may pass.
#[derive(Debug, Clone)]
pub enum Access {
    /// The route is public: no token was looked at.
    Public,
    /// A verified token satisfies the route.
    Authorized(Arc<Identity>),
}

impl Verdict {
    /// The metric `decision` label.
    pub fn outcome(&self) -> Outcome {
        match self {
            Verdict::Allow(_) => Outcome::Allow,
            Verdict::Deny { .. } => Outcome::Deny,
        }
    }

    /// The metric `reason` label.
    pub fn reason(&self) -> Reason {
        match self {
            Verdict::Allow(Access::Public) => Reason::Public,
            Verdict::Allow(Access::Authorized(_)) => Reason::Authorized,
            Verdict::Deny { rejection, .. } => rejection.reason(),
        }
    }

    /// The caller the verdict is about, when a token verified.
    pub fn identity(&self) -> Option<&Arc<Identity>> {
        match self {
            Verdict::Allow(Access::Authorized(identity)) => Some(identity),
            Verdict::Allow(Access::Public) => None,
            Verdict::Deny { identity, .. } => identity.as_ref(),
        }
    }

    /// The rejection, for a denial.
    pub fn rejection(&self) -> Option<&Rejection> {
        match self {
            Verdict::Allow(_) => None,
            Verdict::Deny { rejection, .. } => Some(rejection),
        }
    }

    fn deny(rejection: Rejection) -> Verdict {
        Verdict::Deny {
            rejection,
            identity: None,
        }
    }
}

/// Decides `method path` against a policy snapshot with the default path rules.
/// `authenticate` is asked for the caller only on a protected route, and given that route
/// (what it requires may change how the caller must prove who they are).
pub fn decide<F>(method: &str, path: &str, policy: &Policy, authenticate: F) -> Decision
where
    F: FnOnce(&Route) -> Result<Arc<Identity>, Rejection>,
{
    decide_with(&PathRules::default(), method, path, policy, authenticate)
}

/// [`decide`] with the configured path rules (`paths.*`).
pub fn decide_with<F>(
    rules: &PathRules,
    method: &str,
    path: &str,
    policy: &Policy,
    authenticate: F,
) -> Decision
where
    F: FnOnce(&Route) -> Result<Arc<Identity>, Rejection>,
{
    let path = match crate::proxy::path::normalize_with(path, rules) {
        Ok(p) => p,
        Err(rejection) => {
            return Decision {
                route: None,
                rewritten_path: None,
                verdict: Verdict::deny(rejection),
            };
        }
    };
    let rewritten_path = match &path {
        Cow::Owned(p) => Some(p.clone()),
        Cow::Borrowed(_) => None,
    };
    let Some(route) = policy.route(method, &path) else {
        return Decision {
            route: None,
            rewritten_path,
            verdict: Verdict::deny(Rejection::NoRoute),
        };
    };
    let verdict = if route.is_public() {
        Verdict::Allow(Access::Public)
    } else {
        match authenticate(route) {
            Err(rejection) => Verdict::deny(rejection),
            Ok(identity) => match route.decide(&identity) {
                Ok(()) => Verdict::Allow(Access::Authorized(identity)),
                Err(rejection) => Verdict::Deny {
                    rejection,
                    identity: Some(identity),
                },
            },
        }
    };
    Decision {
        route: Some(route.id.clone()),
        rewritten_path,
        verdict,
    }
}
