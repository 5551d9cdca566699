//! scopegate: an OAuth 2.0 resource-server gateway on pingora.
//!
//! A request's path through the layers:
//!
//! | step | what happens | where |
//! |---|---|---|
//! | 1 | pingora hands the request to the proxy phases | [`proxy::phases`] |
//! | 2 | read the credential ([`auth::token::Credential`]; once, but for a token that must be verified or proven, read again by the future that waits for it); normalize the path, refusing ambiguous ones (400) | [`ground::path`] |
//! | 3 | match method + path against a policy snapshot; no route → 403 | [`policy`] |
//! | 4 | verify the token with cached keys, or introspect it → identity | [`auth`] |
//! | 4b | a bound token (`cnf`): its DPoP proof or client certificate | `auth::dpop`, `auth::cnf` |
//! | 5 | one of the route's requirement sets (scopes, claim conditions), then its sign-in rule (`acr`, `auth_time`) → a [`decision::Verdict`]; a dry-run route forwards what it would refuse | [`policy::requirement`], [`decision`] |
//! | 6 | a refusal's status, challenge and body, from one exhaustive mapping | [`ground::rejection`], [`ground::answer`] |
//! | 7 | strip client identity headers, set verified ones, forward | [`proxy::headers`] |
//! | 8 | one metrics update and one log line; with tracing on, the request's spans end | [`ops::metrics`], [`ops::trace`] |
//!
//! Steps 2–5 are one decision ([`decision::route`], then [`decision::Protected::conclude`]
//! with the caller), which `scopegate explain` and `scopegate test` run too
//! ([`decision::decide`]), with a given identity in place of a verified token.
//!
//! The layers, each a folder, top to bottom; a layer imports only the layers below it
//! (`scripts/layers` prints the graph and fails on an upward import):
//!
//! | layer | job | knows pingora |
//! |---|---|---|
//! | `main.rs` | the CLI | |
//! | `demo` | the built-in development authorization server and backend (cargo feature `demo`) | |
//! | [`server`] | settings mapped onto pingora's server, services and listeners | yes |
//! | [`proxy`] | pingora's phases, the header plan, metadata, connection guards, TLS, admin | yes |
//! | [`decision`] | `decide()`: route + authentication + requirement → verdict; `explain`, `test` | no |
//! | [`policy`] | routes: YAML types, compile, match, live reload | its reloader is a `BackgroundService` |
//! | [`auth`] | who is calling: credential, JWS, key sets, discovery, introspection, DPoP, cnf, the shared store (Valkey/Redis) | its JWKS refresher is a `BackgroundService` |
//! | [`ops`] | metrics (named methods, closed labels), the access log, traces (OpenTelemetry), file watching | no |
//! | [`config`] | `scopegate.yaml` → [`config::Settings`]: every compiled setting type | no |
//! | [`ground`] | what all share: refusals and their answers, outcome labels, path and query readers, located errors, `Secret`, algorithm names, the clock | no |

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
