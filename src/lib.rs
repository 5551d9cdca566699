//! scopegate: an OAuth 2.0 resource-server gateway on pingora.
//!
//! A request's path through the layers:
//!
//! | step | what happens | where |
//! |---|---|---|
//! | 1 | pingora hands the request to the proxy phases | [`proxy::phases`] |
//! | 2 | normalize the path; reject ambiguous ones (400) | [`proxy::path`] |
//! | 3 | match method + path against a policy snapshot; no route → 403 | [`policy`] |
//! | 4 | take the token from the request and verify it with cached keys, or introspect it → identity | [`auth`] |
//! | 4b | a bound token (`cnf`): its DPoP proof or client certificate | `auth::dpop`, `auth::cnf` |
//! | 5 | one of the route's requirement sets (scopes, claim conditions), then its sign-in rule (`acr`, `auth_time`) → a [`decision::Verdict`]; a dry-run route forwards what it would refuse | [`policy::requirement`], [`decision`] |
//! | 6 | a refusal's status, challenge and body, from one exhaustive mapping | [`decision::rejection`] |
//! | 7 | strip client identity headers, set verified ones, forward | [`proxy::headers`] |
//! | 8 | one metrics update and one log line | [`ops::metrics`] |
//!
//! Steps 2–5 are one function, [`decision::decide`], which `scopegate explain` and
//! `scopegate test` run too, with a given identity in place of a verified token.
//!
//! The layers, each a folder: [`config`] (the settings file, parsed then compiled),
//! [`auth`] (tokens, keys, verification, identity), [`policy`] (routes and what they
//! require), [`decision`] (the verdict and the answer), [`proxy`] (pingora: phases, paths,
//! headers, admin listener, TLS), [`ops`] (metrics, file watching) and [`server`] (settings
//! mapped onto pingora). Background services keep the JWKS fresh
//! ([`auth::jwks::JwksRefresher`]) and reload the policy ([`policy::reload::PolicyWatcher`]).
//! Only [`proxy`] and [`server`] know pingora; `demo` (cargo feature `demo`, on by default)
//! is the built-in development authorization server and backend.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod auth;
pub mod config;
pub mod decision;
#[cfg(feature = "demo")]
pub mod demo;
pub mod ground;
pub mod ops;
pub mod policy;
pub mod proxy;
pub mod server;

/// Installs the process-wide JWT crypto provider (aws-lc). Call once at start-up, so that
/// crate feature unification can never leave two providers or none.
pub fn install_crypto_provider() {
    let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
}
