//! Signing keys per issuer: fetched from the JWKS URI, refreshed in the background, refetched
//! (rate-limited) on unknown `kid`s, and kept through outages up to a maximum staleness.
//!
//! The request path only reads an `ArcSwap` snapshot; it never waits on the network.
//!
//! | file | job |
//! |---|---|
//! | `keyset` | a JWK Set document → the keys the issuer may use |
//! | this file | the key store: the current set, staleness, unknown `kid`s |
//! | `refresher` | the background fetch: discovery, key set, schedule |

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use jsonwebtoken::Algorithm;
use tokio::sync::Notify;

pub(crate) mod keyset;
mod refresher;

pub use keyset::{KeySet, MAX_JWKS_BYTES, VerifyKey, parse_jwks};
pub use refresher::JwksRefresher;

use crate::auth::bounded::{BoundedCache, Weighed, bounded};
use crate::auth::fetch::FetchError;
use crate::auth::jws::SignatureKey;
use crate::config::{IssuerSettings, JwksTiming, KeySource};

/// Longest `kid` a token may name; a longer one is refused before any lookup (key ids are
/// short: Auth0's are 22 characters, a thumbprint 43).
pub const MAX_KID_BYTES: usize = 256;

/// Most unknown `kid`s remembered per issuer, and about how many bytes they may take.
const UNKNOWN_KID_ENTRIES: usize = 10_000;
const UNKNOWN_KID_BYTES: u64 = 1024 * 1024;

/// When an unknown `kid` was seen, and what remembering it costs.
#[derive(Clone)]
struct SeenKid {
    at: Instant,
    bytes: u64,
}

impl Weighed for SeenKid {
    fn bytes(&self) -> u64 {
        self.bytes
    }
}

/// The keys of one issuer, as the request path sees them.
pub struct KeyStore {
    /// Metric label.
    pub label: String,
    current: ArcSwapOption<KeySet>,
    allowed: Vec<Algorithm>,
    timing: JwksTiming,
    /// Wakes the refresher for an unknown-`kid` refetch.
    refetch: Notify,
    refetch_pending: AtomicBool,
    last_refetch: Mutex<Option<Instant>>,
    /// `kid`s recently found unknown, with when: a flood of the same random ids costs
    /// nothing more for `unknown_kid_refetch_seconds`. Bounded in entries and bytes.
    unknown_kids: BoundedCache<String, SeenKid>,
    /// Never refreshed (HMAC secret from a file).
    fixed: bool,
    /// A refetch was asked for and has not ended yet: unknown-`kid` requests wait for it.
    refetch_in_flight: AtomicBool,
    /// Counts ended fetches (good or bad); requests waiting for a refetch watch it.
    fetched: tokio::sync::watch::Sender<u64>,
    /// The issuer's endpoints from its metadata (discovery), when it is discovered.
    pub endpoints: Arc<Endpoints>,
}

/// What discovery found in an issuer's metadata; empty until it answers.
#[derive(Default)]
pub struct Endpoints {
    /// `jwks_uri`.
    pub jwks_uri: ArcSwapOption<String>,
    /// `introspection_endpoint`.
    pub introspection: ArcSwapOption<String>,
}

impl KeyStore {
    /// The store for an issuer: empty until its JWKS is fetched, or holding its HMAC
    /// secret for the issuer's HS* algorithms.
    pub fn new(issuer: &IssuerSettings) -> KeyStore {
        let mut store = KeyStore {
            label: issuer.label.clone(),
            current: ArcSwapOption::empty(),
            allowed: issuer.algorithms.clone(),
            timing: issuer.jwks.clone(),
            refetch: Notify::new(),
            refetch_pending: AtomicBool::new(false),
            last_refetch: Mutex::new(None),
            unknown_kids: bounded(UNKNOWN_KID_ENTRIES, UNKNOWN_KID_BYTES, None),
            fixed: false,
            refetch_in_flight: AtomicBool::new(false),
            fetched: tokio::sync::watch::Sender::new(0),
            endpoints: Arc::default(),
        };
        if let KeySource::Hmac { secret } = &issuer.keys {
            let algorithms = issuer
                .algorithms
                .iter()
                .copied()
                .filter(|a| crate::ground::alg::is_hmac(*a))
                .collect();
            let key = VerifyKey {
                kid: None,
                algorithms,
                signature: SignatureKey::hmac(secret.expose()),
                fingerprint: String::new(),
            };
            store.current.store(Some(Arc::new(KeySet::new(
                vec![Arc::new(key)],
                Duration::MAX,
            ))));
            store.fixed = true;
        }
        store
    }

    /// The usable keys, or `None` while none are loaded or they are too stale to trust.
    pub fn keys(&self) -> Option<Arc<KeySet>> {
        let set = self.current.load_full()?;
        if !self.fixed && !set.fresh_at(Instant::now()) {
            return None;
        }
        Some(set)
    }

    /// Whether `key` is among the keys usable `at` (the request's arrival):
    /// [`KeyStore::keys`] without taking a reference to the set or reading the clock again
    /// (a cached token's check on every request).
    pub fn holds(&self, key: &Arc<VerifyKey>, at: Instant) -> bool {
        let set = self.current.load();
        set.as_ref()
            .is_some_and(|set| (self.fixed || set.fresh_at(at)) && set.contains(key))
    }

    /// Whether the store has keys it may use (readiness).
    pub fn is_ready(&self) -> bool {
        self.keys().is_some()
    }

    /// Asks for a refetch because a token named `kid`, which the set lacks. Never blocks:
    /// at most one refetch per `unknown_kid_refetch_seconds`, whatever the number of tokens.
    /// Returns whether a refetch is under way that the token's request may wait for (see
    /// [`KeyStore::fetches`]): the one it just caused, or one already running. During the
    /// cool-down after a refetch, unknown `kid`s are refused at once.
    pub fn unknown_kid(&self, kid: &str) -> bool {
        if self.fixed {
            return false;
        }
        if self.refetch_in_flight.load(Ordering::Acquire) {
            return true;
        }
        let interval = self.timing.unknown_kid_refetch;
        let seen = self.unknown_kids.get(kid);
        if seen.is_some_and(|s| s.at.elapsed() < interval) {
            return false;
        }
        let seen = SeenKid {
            at: Instant::now(),
            bytes: (kid.len() + 64) as u64,
        };
        self.unknown_kids.insert(kid.to_owned(), seen);
        let mut last = self.last_refetch.lock().unwrap_or_else(|e| e.into_inner());
        if last.is_some_and(|t| t.elapsed() < interval) {
            return false;
        }
        *last = Some(Instant::now());
        self.refetch_in_flight.store(true, Ordering::Release);
        self.refetch_pending.store(true, Ordering::Release);
        self.refetch.notify_one();
        true
    }

    /// A receiver that changes when the next fetch ends.
    pub fn fetches(&self) -> tokio::sync::watch::Receiver<u64> {
        self.fetched.subscribe()
    }

    /// Longest a request waits for a refetch its unknown `kid` caused.
    pub fn unknown_kid_wait(&self) -> Duration {
        self.timing.unknown_kid_wait
    }

    /// A fetch ended: wake the requests waiting for it.
    fn fetch_ended(&self) {
        self.refetch_in_flight.store(false, Ordering::Release);
        self.fetched.send_modify(|n| *n += 1);
    }

    /// Replaces the set, keeping the `Arc` of every unchanged key so the token cache's
    /// entries for it stay valid.
    fn install(&self, fresh: Vec<VerifyKey>) -> usize {
        let old = self.current.load_full();
        let keys: Vec<Arc<VerifyKey>> = fresh
            .into_iter()
            .map(|k| {
                old.as_ref()
                    .and_then(|o| {
                        o.all
                            .iter()
                            .find(|ok| ok.kid == k.kid && ok.fingerprint == k.fingerprint)
                            .cloned()
                    })
                    .unwrap_or_else(|| Arc::new(k))
            })
            .collect();
        let n = keys.len();
        self.current
            .store(Some(Arc::new(KeySet::new(keys, self.timing.max_staleness))));
        self.unknown_kids.clear();
        n
    }
}

impl KeyStore {
    /// Installs the keys of a JWKS document directly (benches, tests, and key sets that
    /// come from a file rather than a URL); returns the number of usable keys.
    pub fn install_jwks(&self, body: &[u8]) -> Result<usize, FetchError> {
        let (keys, _skipped) = parse_jwks(body, &self.allowed)?;
        Ok(self.install(keys))
    }

    /// Whether a key set was ever loaded (even if it is now too stale to use).
    pub fn has_loaded(&self) -> bool {
        self.current.load().is_some()
    }

    /// Keys usable now (none once they are too stale), and whether keys that were loaded
    /// went stale: what `/metrics` reports for the issuer.
    pub fn state(&self) -> (usize, bool) {
        match self.keys() {
            Some(set) => (set.len(), false),
            None => (0, self.has_loaded()),
        }
    }
}
