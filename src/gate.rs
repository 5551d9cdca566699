//! The decision for one request, from plain values: route, token, verification, scopes.
//!
//! Nothing here knows pingora; `proxy.rs` hands in the request's parts and acts on the
//! [`Decision`].

use std::borrow::Cow;
use std::sync::Arc;

use crate::error::Rejection;
use crate::identity::Identity;
use crate::policy::Policy;
use crate::token::{self, TokenRules};
use crate::verify::Verifier;

/// The parts of a request the decision depends on.
pub struct RequestParts<'a, A> {
    /// The method, as sent.
    pub method: &'a str,
    /// The path, as sent (no query).
    pub path: &'a str,
    /// The query string, if any.
    pub query: Option<&'a str>,
    /// Every `Authorization` header value.
    pub authorization: A,
}

/// What to do with a request.
#[derive(Debug)]
pub struct Decision {
    /// The matched route's id, if a route matched.
    pub route: Option<Arc<str>>,
    /// The normalized path when it differs from the one sent: the upstream gets this.
    pub rewritten_path: Option<String>,
    /// Forward, or answer with a rejection.
    pub outcome: Result<Access, Rejection>,
    /// The verified identity, whenever a token verified (also when its scopes fell short:
    /// the log then says who was denied).
    pub identity: Option<Arc<Identity>>,
}

/// Why a request may pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// The route is public: no token was looked at.
    Public,
    /// A verified token carries every required scope.
    Authorized,
}

impl Access {
    /// The metric `reason` label.
    pub fn reason(self) -> &'static str {
        match self {
            Access::Public => "public",
            Access::Authorized => "authorized",
        }
    }
}

/// Decides one request against a policy snapshot.
pub fn decide<'a, A>(
    request: RequestParts<'a, A>,
    policy: &Policy,
    verifier: &Verifier,
    rules: &TokenRules,
) -> Decision
where
    A: IntoIterator<Item = &'a [u8]>,
{
    let path = match crate::path::normalize(request.path) {
        Ok(p) => p,
        Err(rejection) => {
            return Decision {
                route: None,
                rewritten_path: None,
                outcome: Err(rejection),
                identity: None,
            };
        }
    };
    let rewritten_path = match &path {
        Cow::Owned(p) => Some(p.clone()),
        Cow::Borrowed(_) => None,
    };
    let Some(route) = policy.route(request.method, &path) else {
        return Decision {
            route: None,
            rewritten_path,
            outcome: Err(Rejection::NoRoute),
            identity: None,
        };
    };
    let mut identity = None;
    let outcome = if route.is_public() {
        Ok(Access::Public)
    } else {
        authorize(request.authorization, request.query, verifier, rules).and_then(|id| {
            let decided = route.decide(&id).map(|()| Access::Authorized);
            identity = Some(id);
            decided
        })
    };
    Decision {
        route: Some(route.id.clone()),
        rewritten_path,
        outcome,
        identity,
    }
}

/// The bearer token's verified identity.
fn authorize<'a>(
    authorization: impl IntoIterator<Item = &'a [u8]>,
    query: Option<&'a str>,
    verifier: &Verifier,
    rules: &TokenRules,
) -> Result<Arc<Identity>, Rejection> {
    let token = token::extract(authorization, query, rules)?.ok_or(Rejection::MissingToken)?;
    verifier.verify(&token)
}
