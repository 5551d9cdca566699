//! DPoP (RFC 9449): proof-of-possession for access tokens.
//!
//! | file | job |
//! |---|---|
//! | [`proof`] | one proof's signature and claims (§4.3) |
//! | [`htu`] | the `htu` URL comparison |
//! | [`replay`] | the per-instance `jti` replay cache |
//! | `crate::auth::store` | with a shared store, the fleet's `jti`s (`SET NX`) |
//! | [`nonce`] | server nonces from a shared secret and a time window (§8) |
//!
//! [`DpopGuard`] puts them together for a request whose token verified: the scheme it came
//! with, the issuer's and the route's DPoP setting, the proof, the replay and nonce checks
//! and the token's `cnf.jkt`. Proofs are never cached: each is new.
//!
//! The order is cheapest first: the proof's claims and key against this request, the key
//! against `cnf.jkt`, the nonce and the local replay look-up, and only then the signature
//! (the one dear step). A proof that passed everything is claimed: in the shared store
//! when one is configured (once in the fleet), else in the replica's replay cache.

pub mod htu;
pub mod nonce;
pub mod proof;
pub mod replay;

use std::sync::Arc;
use std::time::Duration;

use crate::auth::identity::Identity;
use crate::auth::store::{Store, StoreKey};
use crate::config::StoreErrorMode;
pub use crate::config::{DpopMode, DpopSettings};
use crate::ground::rejection::{DpopOffer, ProofError, Rejection};
use crate::ops::metrics::StoreFallback;
use nonce::Nonces;
use proof::{Proof, ProofRules, ProofTarget};
use replay::ReplayCache;

/// The `DPoP` header values of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DpopHeader<'a> {
    /// None.
    Absent,
    /// Exactly one.
    One(&'a [u8]),
    /// More than one: refused (RFC 9449 §4.3, step 1).
    Several,
}

impl<'a> DpopHeader<'a> {
    /// Counts the values of the request's `DPoP` header.
    pub fn from_values(values: impl IntoIterator<Item = &'a [u8]>) -> DpopHeader<'a> {
        let mut values = values.into_iter();
        match (values.next(), values.next()) {
            (None, _) => DpopHeader::Absent,
            (Some(one), None) => DpopHeader::One(one),
            (Some(_), Some(_)) => DpopHeader::Several,
        }
    }
}

/// The `DPoP` header's name, made once: a lookup by `&str` parses the name every time.
pub static DPOP: http::HeaderName = http::HeaderName::from_static("dpop");

/// What DPoP checks need of the request besides the token.
#[derive(Debug, Clone, Copy)]
pub struct DpopRequest<'a> {
    /// The method.
    pub method: &'a str,
    /// The path as the client sent it (no query).
    pub path: &'a str,
    /// The request's headers: the `DPoP` header is looked up only by a check that reads
    /// it, so a bearer token on a gateway without DPoP never pays for the lookup.
    pub headers: &'a http::HeaderMap,
}

impl<'a> DpopRequest<'a> {
    /// The request's `DPoP` header values.
    pub fn proof(&self) -> DpopHeader<'a> {
        DpopHeader::from_values(self.headers.get_all(&DPOP).iter().map(|v| v.as_bytes()))
    }
}

/// DPoP enforcement for every issuer and route.
pub struct DpopGuard {
    public_url: Option<String>,
    rules: ProofRules,
    replay: ReplayCache,
    nonces: Option<Nonces>,
    /// The store replicas share, when configured.
    store: Option<Store>,
    /// Each issuer's mode, in settings order.
    issuers: Vec<(Arc<str>, DpopMode)>,
    weakest: DpopMode,
    strongest: DpopMode,
    offer_beside: DpopOffer,
    offer_instead: DpopOffer,
}

impl DpopGuard {
    /// The guard for `settings` and each issuer's mode; with `store`, proofs are claimed
    /// there, once for the whole fleet.
    pub fn new(
        settings: &DpopSettings,
        issuers: Vec<(Arc<str>, DpopMode)>,
        store: Option<Store>,
    ) -> DpopGuard {
        let modes = issuers.iter().map(|(_, m)| *m);
        let weakest = modes.clone().min().unwrap_or_default();
        let strongest = modes.max().unwrap_or_default();
        let algs = crate::auth::jws::advertised_names(&settings.algorithms).join(" ");
        DpopGuard {
            public_url: settings
                .public_url
                .as_ref()
                .map(|u| u.trim_end_matches('/').to_owned()),
            rules: ProofRules {
                algorithms: settings.algorithms.clone(),
                iat_window: settings.iat_window,
                iat_future_skew: settings.iat_future_skew,
            },
            replay: ReplayCache::new(settings.replay_cache_entries, settings.iat_window),
            nonces: settings.nonce.as_ref().map(|(secret, window)| {
                Nonces::new(secret.expose(), std::time::Duration::from_secs(*window))
            }),
            store,
            issuers,
            weakest,
            strongest,
            offer_beside: DpopOffer {
                algs: algs.clone(),
                bearer: true,
            },
            offer_instead: DpopOffer {
                algs,
                bearer: false,
            },
        }
    }

    /// Whether the `DPoP` scheme is read at all.
    pub fn enabled(&self) -> bool {
        self.public_url.is_some()
    }

    /// How challenges on a route with DPoP setting `route` advertise DPoP; `None` where no
    /// issuer accepts it there. Before a token is verified its issuer is unknown, so a
    /// `Bearer` challenge goes beside the `DPoP` one unless every issuer requires DPoP.
    pub fn offer(&self, route: DpopMode) -> Option<&DpopOffer> {
        if !self.enabled() {
            return None;
        }
        if self.weakest.max(route) == DpopMode::Required {
            Some(&self.offer_instead)
        } else if self.strongest.max(route) > DpopMode::Off {
            Some(&self.offer_beside)
        } else {
            None
        }
    }

    /// The mode for a token of `issuer` on a route that says `route`.
    pub fn mode(&self, issuer: &str, route: DpopMode) -> DpopMode {
        let of_issuer = self
            .issuers
            .iter()
            .find(|(i, _)| &**i == issuer)
            .map_or(DpopMode::Off, |(_, m)| *m);
        of_issuer.max(route)
    }

    /// The DPoP checks for a verified `identity` whose `token` came with the `DPoP` scheme
    /// (`dpop_scheme`) or as a bearer token, at `now`.
    pub async fn check(
        &self,
        identity: &Identity,
        token: &str,
        dpop_scheme: bool,
        request: &DpopRequest<'_>,
        route: DpopMode,
        now: u64,
    ) -> Result<(), Rejection> {
        let bound = identity.confirmation.jkt.as_ref();
        let mode = self.mode(&identity.issuer, route);
        if !dpop_scheme {
            // RFC 9449 §7.2: a bound token is never a bearer token, whatever the mode.
            return match (bound, mode) {
                (Some(_), _) => Err(Rejection::BoundTokenAsBearer),
                (None, DpopMode::Required) => Err(Rejection::DpopRequired),
                (None, DpopMode::Off | DpopMode::Allowed) => Ok(()),
            };
        }
        let public_url = match (&self.public_url, mode) {
            (Some(url), DpopMode::Allowed | DpopMode::Required) => url,
            _ => {
                return Err(Rejection::InvalidRequest(
                    "DPoP is not accepted for this token's issuer",
                ));
            }
        };
        let invalid = Rejection::InvalidDpopProof;
        let proof = match request.proof() {
            DpopHeader::Absent => return Err(invalid(ProofError::Missing)),
            DpopHeader::Several => return Err(invalid(ProofError::Several)),
            DpopHeader::One(value) => {
                std::str::from_utf8(value).map_err(|_| invalid(ProofError::Malformed))?
            }
        };
        let htu = format!("{public_url}{}", request.path);
        let target = ProofTarget {
            method: request.method,
            htu: &htu,
            token: Some(token),
        };
        let unverified = proof::inspect(proof, &target, &self.rules, now).map_err(invalid)?;
        let claims = &unverified.claims;
        if bound.is_none_or(|jkt| jkt.as_bytes() != claims.jkt.as_bytes()) {
            return Err(invalid(ProofError::KeyMismatch));
        }
        if let Some(nonces) = &self.nonces
            && !claims
                .nonce
                .as_deref()
                .is_some_and(|n| nonces.accepts(n, now))
        {
            return Err(Rejection::UseDpopNonce {
                nonce: nonces.current(now),
            });
        }
        // A replay this replica saw costs a look-up, not a signature check.
        self.replay
            .check(&claims.jkt, &claims.jti, claims.iat)
            .map_err(|_| invalid(ProofError::Replayed))?;
        let proof = unverified.verify().map_err(invalid)?;
        // Last: only a proof that passed everything else takes a place in the cache.
        self.claim(&proof, now).await
    }

    /// Records `proof` as used: in the shared store when there is one (the fleet's
    /// answer), and in this replica's cache.
    async fn claim(&self, proof: &Proof, now: u64) -> Result<(), Rejection> {
        let replayed = |_| Rejection::InvalidDpopProof(ProofError::Replayed);
        let Some(store) = &self.store else {
            return self
                .replay
                .record(&proof.jkt, &proof.jti, proof.iat, now)
                .map_err(replayed);
        };
        let key = StoreKey::new("dpop", &[proof.jkt.as_bytes(), proof.jti.as_bytes()]);
        // Kept while the proof could pass the window at any replica, whose clocks may
        // differ by the skew.
        let until = proof.iat + self.rules.iat_window + self.rules.iat_future_skew + 1;
        let ttl = Duration::from_secs(until.saturating_sub(now).max(1));
        match store.claim_once(&key, ttl).await {
            Ok(true) => {
                // The store decided; the local entry serves the cheap look-up and an outage.
                let _ = self.replay.record(&proof.jkt, &proof.jti, proof.iat, now);
                Ok(())
            }
            Ok(false) => Err(Rejection::InvalidDpopProof(ProofError::Replayed)),
            Err(e) => match store.on_error() {
                StoreErrorMode::Deny => {
                    store.metrics().store_fallback(StoreFallback::DpopDenied);
                    tracing::warn!(error = %e, "DPoP proof refused: the shared store failed (on_error: deny)");
                    Err(Rejection::SharedStoreUnavailable)
                }
                StoreErrorMode::Local => {
                    store.metrics().store_fallback(StoreFallback::DpopLocal);
                    tracing::warn!(error = %e, "DPoP proof checked locally only: the shared store failed (on_error: local)");
                    self.replay
                        .record(&proof.jkt, &proof.jti, proof.iat, now)
                        .map_err(replayed)
                }
            },
        }
    }
}
