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
//! | [`identity`] | the verified caller and its upstream header values |
//! | [`bounded`] | caches bounded in bytes and entries, evictions counted |

pub mod bounded;
pub mod claims;
pub mod identity;
pub mod jwks;
pub mod jws;
pub mod token;
pub mod verify;

use std::sync::Arc;

use crate::config::Settings;
use crate::decision::Rejection;
use crate::ops::metrics::Metrics;
use identity::Identity;
use jwks::KeyStore;
use token::TokenRules;
use verify::{IssuerVerifier, Verifier};

/// The gateway's way to authenticate a caller: the bearer token from the request, verified
/// (or found in the verified-token cache).
pub struct Authenticator {
    /// Token verification.
    pub verifier: Arc<Verifier>,
    /// Where tokens may come from.
    pub rules: TokenRules,
}

impl Authenticator {
    /// The authenticator for `settings`, and each issuer's key store in settings order
    /// (the JWKS refreshers fill them). The server, the benches and the examples all build
    /// it here.
    pub fn from_settings(
        settings: &Settings,
        metrics: &Metrics,
    ) -> (Authenticator, Vec<Arc<KeyStore>>) {
        let stores: Vec<Arc<KeyStore>> = settings
            .issuers
            .iter()
            .map(|issuer| Arc::new(KeyStore::new(issuer)))
            .collect();
        let issuers = settings
            .issuers
            .iter()
            .zip(&stores)
            .map(|(issuer, store)| IssuerVerifier::new(issuer, store.clone()))
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
        let authenticator = Authenticator {
            verifier: Arc::new(verifier),
            rules: settings.token.clone(),
        };
        (authenticator, stores)
    }

    /// The identity behind the request's credentials: its `Authorization` header values
    /// and query string.
    pub fn authenticate<'a>(
        &self,
        authorization: impl IntoIterator<Item = &'a [u8]>,
        query: Option<&'a str>,
    ) -> Result<Arc<Identity>, Rejection> {
        let token =
            token::extract(authorization, query, &self.rules)?.ok_or(Rejection::MissingToken)?;
        self.verifier.verify(&token)
    }
}
