//! Who is calling: the credential on the request, its verification, and the identity that
//! comes out of it. Nothing here knows pingora or the policy.
//!
//! | file | job |
//! |---|---|
//! | [`token`] | the bearer token from `Authorization` (RFC 6750 §2.1), syntax |
//! | [`jws`] | signature checks with keys parsed once per key set |
//! | [`claims`] | registered claims (RFC 7519): `iss`, `aud`, `exp`, `nbf`, `iat` |
//! | [`jwks`] | key sets per issuer: fetch, refresh, unknown `kid`, staleness |
//! | [`verify`] | token → [`identity::Identity`], and the verified-token cache |
//! | [`token_key`] | the verified-token cache's key: hashed by the signature's end |
//! | [`introspect`] | opaque tokens by introspection (RFC 7662), cached, single-flight |
//! | [`fetch`] | the one bounded, redirect-free HTTP fetch from an authorization server |
//! | [`discovery`] | an issuer's metadata (RFC 8414, OpenID Connect Discovery) |
//! | [`identity`] | the verified caller and its upstream header values |
//! | [`dpop`] | DPoP proofs, replay cache and nonces (RFC 9449) |
//! | [`cnf`] | the token's `cnf` binding; certificate-bound tokens (RFC 8705) |
//! | [`bounded`] | caches bounded in bytes and entries, evictions counted |
//! | [`store`] | the optional store replicas share (Valkey/Redis): DPoP `jti`s, introspection answers |

pub mod bounded;
pub mod claims;
pub mod cnf;
pub mod discovery;
pub mod dpop;
pub mod fetch;
pub mod identity;
pub mod introspect;
pub mod jwks;
pub mod jws;
pub mod store;
pub mod token;
pub mod token_key;
pub mod verify;

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use crate::config::Settings;
use crate::config::TokenRules;
use crate::ground::Rejection;
use crate::ops::metrics::Metrics;
use cnf::ClientCert;
use dpop::{DpopGuard, DpopMode, DpopRequest};
use identity::{ConditionClaims, Identity};
use introspect::Introspector;
use jwks::KeyStore;
use token::Credential;
use verify::{IssuerVerifier, Verifier};

/// The gateway's way to authenticate a caller: the bearer token from the request, verified
/// (or found in the verified-token cache).
pub struct Authenticator {
    /// Token verification.
    pub verifier: Arc<Verifier>,
    /// Where tokens may come from.
    pub rules: TokenRules,
    /// DPoP enforcement.
    pub dpop: DpopGuard,
}

/// When a route's tokens are checked with the authorization server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Introspect {
    /// Opaque tokens only (a JWT is verified locally).
    #[default]
    Opaque,
    /// Every token, on every request, uncached.
    Always,
}

/// The two facts of a route that change how a caller must prove who they are: handed to
/// authentication as this small value, so nothing here reads the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RouteAuth {
    /// When its tokens are introspected.
    pub introspect: Introspect,
    /// Its DPoP setting (`Off`: the issuer's applies).
    pub dpop: DpopMode,
}

/// What a request offers, besides its token, to prove it is sent by the token's holder.
#[derive(Debug, Clone, Copy)]
pub struct Sender<'a> {
    /// Method, path and `DPoP` header, for DPoP proofs.
    pub dpop: DpopRequest<'a>,
    /// The client certificate of the connection (or the trusted header), if any.
    pub client_cert: Option<ClientCert>,
}

impl Authenticator {
    /// The authenticator for `settings`, and each issuer's key store in settings order
    /// (the JWKS refreshers fill them). The server, the benches and the examples all build
    /// it here.
    pub fn from_settings(
        settings: &Settings,
        metrics: &Metrics,
    ) -> (Authenticator, Vec<Arc<KeyStore>>) {
        let shared = settings
            .shared_store
            .as_ref()
            .map(|s| store::Store::from_settings(s, metrics));
        let stores: Vec<Arc<KeyStore>> = settings
            .issuers
            .iter()
            .map(|issuer| Arc::new(KeyStore::new(issuer)))
            .collect();
        let issuers = settings
            .issuers
            .iter()
            .zip(&stores)
            .map(|(issuer, store)| {
                let introspector = issuer.introspection.as_ref().map(|i| {
                    Introspector::new(
                        &issuer.label,
                        issuer.issuer.clone(),
                        i,
                        store.endpoints.clone(),
                        metrics.clone(),
                        shared.clone(),
                    )
                });
                IssuerVerifier::new(issuer, store.clone(), introspector)
            })
            .collect();
        let claim_names = settings
            .headers
            .claims
            .iter()
            .map(|(claim, _)| Arc::from(claim.as_str()))
            .collect();
        let verifier = Verifier::new(
            issuers,
            claim_names,
            settings.token_cache_entries,
            settings.token_cache_max_bytes,
            metrics.clone(),
        );
        let modes = settings
            .issuers
            .iter()
            .map(|issuer| (issuer.issuer.clone(), issuer.dpop))
            .collect();
        let dpop = DpopGuard::new(&settings.dpop, modes, shared);
        let rules = TokenRules {
            accept_dpop: dpop.enabled(),
            ..settings.token.clone()
        };
        let authenticator = Authenticator {
            verifier: Arc::new(verifier),
            rules,
            dpop,
        };
        (authenticator, stores)
    }

    /// The request's credential: its `Authorization` header values and query string, read
    /// once. `Ok(None)`: no token (a bare challenge); `Err`: credentials sent wrongly (400).
    pub fn credential<'a>(
        &self,
        authorization: impl IntoIterator<Item = &'a [u8]>,
        query: Option<&'a str>,
    ) -> Result<Option<Credential<'a>>, Rejection> {
        token::extract(authorization, query, &self.rules)
    }

    /// The identity behind the request's `credential`, for a request to a route with
    /// `route` facts, and, for a sender-constrained token, the proof that the `sender`
    /// holds its key or certificate. It keeps the claims `conditions` names, for the
    /// policy's claim conditions. `now` is the request's one clock reading, and `arrived`
    /// the instant it came in: a cached token's key set is judged fresh as of then.
    ///
    /// What needs no waiting is answered in the call (a missing or malformed credential,
    /// a cache hit): the future then only hands it over. Verification, introspection and
    /// proof checks are awaited in a boxed future, so that a hit's future stays small.
    pub fn authenticate<'a>(
        &'a self,
        credential: &'a Result<Option<Credential<'a>>, Rejection>,
        route: RouteAuth,
        conditions: &'a ConditionClaims,
        sender: Sender<'a>,
        now: u64,
        arrived: Instant,
    ) -> impl Future<Output = Result<Arc<Identity>, Rejection>> + 'a {
        let first = self.at_once(credential, route, conditions, now, arrived);
        async move {
            match first {
                AtOnce::Done(answer) => answer,
                AtOnce::Wait(waiting) => {
                    let wait = self.resume(credential, waiting, route, conditions, sender, now);
                    Box::pin(wait).await
                }
            }
        }
    }

    /// The answer [`Authenticator::authenticate`] gives without waiting on anything, or
    /// what is left to wait for: a missing or malformed credential, and a token either
    /// cache holds (verified JWS, introspection answer) that no proof of possession
    /// concerns, are answered here; a token to verify or introspect, and a proof to check,
    /// are left to [`Authenticator::resume`].
    pub(crate) fn at_once(
        &self,
        credential: &Result<Option<Credential<'_>>, Rejection>,
        route: RouteAuth,
        conditions: &ConditionClaims,
        now: u64,
        arrived: Instant,
    ) -> AtOnce {
        let presented = match presented(credential) {
            Ok(presented) => presented,
            Err(refused) => return AtOnce::Done(Err(refused)),
        };
        // A route that introspects always asks the server, cache or not.
        if route.introspect == Introspect::Always {
            return AtOnce::Wait(Waiting { found: None });
        }
        let token = presented.token.as_ref();
        let found = match self.verifier.cached(token, conditions, now, arrived) {
            Some(identity) => identity,
            None => match self.verifier.cached_opaque(token, now) {
                Some(Ok(identity)) => identity,
                Some(Err(refused)) => return AtOnce::Done(Err(refused)),
                None => return AtOnce::Wait(Waiting { found: None }),
            },
        };
        if self.needs_proof(&found, route) {
            AtOnce::Wait(Waiting { found: Some(found) })
        } else {
            AtOnce::Done(Ok(found))
        }
    }

    /// The rest of [`Authenticator::authenticate`] after [`Authenticator::at_once`] said
    /// to wait: the token verified (unless `waiting` already holds its cached identity)
    /// and, for a sender-constrained one, its proof checked. `credential` and `route` must
    /// be the ones `at_once` was given: an identity it found is used without looking at
    /// the token again (hence crate-private).
    pub(crate) async fn resume(
        &self,
        credential: &Result<Option<Credential<'_>>, Rejection>,
        waiting: Waiting,
        route: RouteAuth,
        conditions: &ConditionClaims,
        sender: Sender<'_>,
        now: u64,
    ) -> Result<Arc<Identity>, Rejection> {
        // `at_once` waits only for a presented token; anything else is refused as it was.
        let presented = presented(credential)?;
        let token = presented.token.as_ref();
        let identity = match waiting.found {
            Some(identity) => identity,
            None => {
                let introspect = route.introspect == Introspect::Always;
                self.verifier
                    .authenticate(token, introspect, conditions, now)
                    .await?
            }
        };
        if self.needs_proof(&identity, route) {
            // Boxed: the proof check's future (with the shared store's) is large, and only
            // DPoP requests pay for it.
            Box::pin(self.dpop.check(
                &identity,
                token,
                presented.is_dpop(),
                &sender.dpop,
                route.dpop,
                now,
            ))
            .await?;
            cnf::check_certificate(&identity, sender.client_cert.as_ref())?;
        }
        Ok(identity)
    }

    /// Whether the request must prove it holds the token (DPoP, or the certificate it is
    /// bound to). The cached identity says whether the token is bound; an unbound bearer
    /// token on a gateway without DPoP pays nothing more.
    fn needs_proof(&self, identity: &Identity, route: RouteAuth) -> bool {
        self.dpop.enabled() || identity.confirmation.is_bound() || route.dpop != DpopMode::Off
    }
}

/// The token the request presents, or why it presents none (no credential, or one sent
/// wrongly).
fn presented<'c, 'a>(
    credential: &'c Result<Option<Credential<'a>>, Rejection>,
) -> Result<&'c Credential<'a>, Rejection> {
    match credential {
        Ok(Some(credential)) => Ok(credential),
        Ok(None) => Err(Rejection::MissingToken),
        Err(rejection) => Err(rejection.clone()),
    }
}

/// What [`Authenticator::at_once`] could tell.
pub(crate) enum AtOnce {
    /// The answer.
    Done(Result<Arc<Identity>, Rejection>),
    /// Verification, introspection or a proof check is needed: hand this to
    /// [`Authenticator::resume`].
    Wait(Waiting),
}

/// What [`Authenticator::resume`] takes up. It borrows nothing, so a caller can carry it
/// into a future that reads the request anew.
pub(crate) struct Waiting {
    /// The token's identity, when the cache held it (only its proof is left to check).
    found: Option<Arc<Identity>>,
}
