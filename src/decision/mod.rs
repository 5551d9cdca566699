//! The decision for one request, from plain values: path, route, credentials, requirement.
//!
//! One decision serves the gateway, `scopegate explain` and `scopegate test`: they differ
//! only in how a caller is authenticated. The offline tools call [`decide`] with an identity
//! built from the scopes and claims they were given; the gateway calls its two halves,
//! [`route`] and [`Protected::conclude`], with its token path (extract, cache, verify)
//! between them, so that a caller known without waiting is decided without a future.
//! Nothing here knows pingora.
//!
//! | file | job |
//! |---|---|
//! | [`explain`] | `scopegate explain`: one request against a policy, step by step |
//! | [`cases`] | `scopegate test`: decision-test files run through [`decide`] |

pub mod cases;
pub mod explain;

use std::borrow::Cow;
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

pub use crate::ground::{
    Answer, ChallengeContext, DpopOffer, Outcome, ProofError, Reason, Rejection, TokenError,
};

use crate::auth::RouteAuth;
use crate::auth::identity::Identity;
use crate::ground::path::PathRules;
use crate::policy::{Policy, Route};

/// What to do with a request.
#[derive(Debug)]
pub struct Decision {
    /// The matched route's id, if a route matched.
    pub route: Option<Arc<str>>,
    /// The normalized path when it differs from the one sent: the upstream gets this.
    pub rewritten_path: Option<String>,
    /// The matched route's authentication facts (its DPoP mode names the challenge's
    /// offer); the defaults when no route matched.
    pub auth: RouteAuth,
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
    /// A dry-run route (or policy) would refuse it: forwarded, and counted and logged as
    /// `dry_run_deny` with the refusal's reason.
    DryRun {
        /// The refusal that was not enforced.
        would: Rejection,
        /// Who it would have refused, when a token verified.
        identity: Option<Arc<Identity>>,
    },
}

impl Verdict {
    /// The metric `decision` label.
    pub fn outcome(&self) -> Outcome {
        match self {
            Verdict::Allow(Access::Public | Access::Authorized(_)) => Outcome::Allow,
            Verdict::Allow(Access::DryRun { .. }) => Outcome::DryRunDeny,
            Verdict::Deny { .. } => Outcome::Deny,
        }
    }

    /// The metric `reason` label.
    pub fn reason(&self) -> Reason {
        match self {
            Verdict::Allow(Access::Public) => Reason::Public,
            Verdict::Allow(Access::Authorized(_)) => Reason::Authorized,
            Verdict::Allow(Access::DryRun { would, .. }) => would.reason(),
            Verdict::Deny { rejection, .. } => rejection.reason(),
        }
    }

    /// The caller the verdict is about, when a token verified.
    pub fn identity(&self) -> Option<&Arc<Identity>> {
        match self {
            Verdict::Allow(Access::Authorized(identity)) => Some(identity),
            Verdict::Allow(Access::Public) => None,
            Verdict::Allow(Access::DryRun { identity, .. }) | Verdict::Deny { identity, .. } => {
                identity.as_ref()
            }
        }
    }

    /// The refusal a dry run did not enforce.
    pub fn dry_run_rejection(&self) -> Option<&Rejection> {
        match self {
            Verdict::Allow(Access::DryRun { would, .. }) => Some(would),
            Verdict::Allow(Access::Public | Access::Authorized(_)) | Verdict::Deny { .. } => None,
        }
    }

    /// The verdict of a dry run: a refusal becomes a forward that remembers it. A path
    /// that could be read two ways is refused even so: no policy, dry or not, gets to
    /// decide it, since the backend might read another path than the one matched.
    fn dry_run(self) -> Verdict {
        match self {
            Verdict::Deny {
                rejection: rejection @ (Rejection::AmbiguousPath(_) | Rejection::InvalidRequest(_)),
                identity,
            } => Verdict::Deny {
                rejection,
                identity,
            },
            Verdict::Deny {
                rejection,
                identity,
            } => Verdict::Allow(Access::DryRun {
                would: rejection,
                identity,
            }),
            allow @ Verdict::Allow(_) => allow,
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

/// Decides `method path` against a policy snapshot, reading the path with `rules` (the
/// configuration's `paths.*`; the offline tools pass the defaults or a configuration's).
/// `authenticate` is asked for the caller only on a protected route, and given that route
/// (what it requires may change how the caller must prove who they are). It may wait on
/// the network (token introspection, the refetch of a key set after a rotation), always
/// bounded; the offline tools pass one that is ready at once and run the decision with
/// [`now`]. `clock` is the request's one reading of the time, in seconds since the epoch.
///
/// It is [`route`] and then [`Protected::conclude`]; the gateway calls those two itself,
/// so that a caller it knows without waiting is decided without a future.
pub async fn decide<F, Fut>(
    rules: &PathRules,
    method: &str,
    path: &str,
    policy: &Policy,
    clock: u64,
    authenticate: F,
) -> Decision
where
    F: FnOnce(RouteAuth) -> Fut,
    Fut: Future<Output = Result<Arc<Identity>, Rejection>>,
{
    match route(rules, method, path, policy) {
        Routed::Decided(decision) => decision,
        Routed::Protected(protected) => {
            let caller = authenticate(protected.auth()).await;
            protected.conclude(caller, clock)
        }
    }
}

/// The first half of a decision: the path read and the route found, before anyone is
/// authenticated.
pub enum Routed<'p> {
    /// Decided without a caller: a path refused, no route, or a public route.
    Decided(Decision),
    /// A protected route: its decision needs the caller.
    Protected(Protected<'p>),
}

/// A protected route matched, waiting for its caller.
pub struct Protected<'p> {
    route: &'p Route,
    rewritten_path: Option<String>,
}

/// Reads `path` with `rules` and finds its route in `policy`: see [`decide`].
pub fn route<'p>(rules: &PathRules, method: &str, path: &str, policy: &'p Policy) -> Routed<'p> {
    let path = match crate::ground::path::normalize_with(path, rules) {
        Ok(p) => p,
        Err(rejection) => {
            return Routed::Decided(Decision {
                route: None,
                rewritten_path: None,
                auth: RouteAuth::default(),
                verdict: Verdict::deny(rejection),
            });
        }
    };
    let rewritten_path = match &path {
        Cow::Owned(p) => Some(p.clone()),
        Cow::Borrowed(_) => None,
    };
    let Some(route) = policy.route(method, &path) else {
        let verdict = Verdict::deny(Rejection::NoRoute);
        return Routed::Decided(Decision {
            route: None,
            rewritten_path,
            auth: RouteAuth::default(),
            verdict: if policy.dry_run {
                verdict.dry_run()
            } else {
                verdict
            },
        });
    };
    if route.is_public() {
        return Routed::Decided(decided(
            route,
            rewritten_path,
            Verdict::Allow(Access::Public),
        ));
    }
    Routed::Protected(Protected {
        route,
        rewritten_path,
    })
}

impl Protected<'_> {
    /// What the route asks of authentication (introspection, DPoP).
    pub fn auth(&self) -> RouteAuth {
        self.route.auth
    }

    /// The decision, given who the caller is (or why they are no one) at `clock`.
    pub fn conclude(self, caller: Result<Arc<Identity>, Rejection>, clock: u64) -> Decision {
        let verdict = match caller {
            Err(rejection) => Verdict::deny(rejection),
            Ok(identity) => match self.route.decide(&identity, clock) {
                Ok(()) => Verdict::Allow(Access::Authorized(identity)),
                Err(rejection) => Verdict::Deny {
                    rejection,
                    identity: Some(identity),
                },
            },
        };
        decided(self.route, self.rewritten_path, verdict)
    }
}

/// The decision on a matched `route`, its own dry run applied.
fn decided(route: &Route, rewritten_path: Option<String>, verdict: Verdict) -> Decision {
    Decision {
        route: Some(route.id.clone()),
        rewritten_path,
        auth: route.auth,
        verdict: if route.dry_run {
            verdict.dry_run()
        } else {
            verdict
        },
    }
}

/// Runs a decision whose authentication never waits (the offline tools': an identity given,
/// not fetched) to its end, without a runtime.
///
/// # Panics
/// If the future is not ready at once: only authenticators that never wait belong here.
pub fn now<T>(future: impl Future<Output = T>) -> T {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(value) => value,
        Poll::Pending => panic!("an offline decision waited on something"),
    }
}
