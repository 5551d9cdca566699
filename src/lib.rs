//! scopegate: an OAuth 2.0 bearer-token authorization gateway on pingora.
//!
//! A request's path through the modules:
//!
//! | step | what happens | where |
//! |---|---|---|
//! | 1 | normalize the path; reject ambiguous ones (400) | [`path`] |
//! | 2 | match method + path against a policy snapshot; no route → 403 | [`policy`] |
//! | 3 | take the bearer token from `Authorization` (RFC 6750 §2.1) | [`token`] |
//! | 4 | verify signature and claims with cached keys → identity | [`verify`], [`jws`], [`claims`], [`jwks`] |
//! | 4b | a bound token (`cnf`): its DPoP proof or client certificate | `auth::dpop`, `auth::cnf` |
//! | 5 | required scopes vs the token's → allow, or 401/403 with a challenge | [`gate`], [`error`] |
//! | 6 | strip client identity headers, set verified ones, forward | [`headers`], [`proxy`] |
//! | 7 | one metrics update and one log line | [`metrics`], [`proxy`] |
//!
//! Background services keep the JWKS fresh ([`jwks::JwksRefresher`]) and reload the policy
//! ([`policy::reload::PolicyWatcher`]); [`admin`] serves `/metrics`, `/healthz`, `/readyz`.
//! Everything but [`proxy`], [`admin`] and [`server`] is plain code that knows no pingora.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod auth;
pub mod config;
pub mod decision;
#[cfg(feature = "demo")]
pub mod demo;
pub mod ops;
pub mod policy;
pub mod proxy;
pub mod server;

/// Installs the process-wide JWT crypto provider (aws-lc). Call once at start-up, so that
/// crate feature unification can never leave two providers or none.
pub fn install_crypto_provider() {
    let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
}
