//! Signing keys per issuer: fetched from the JWKS URI, refreshed in the background, refetched
//! (rate-limited) on unknown `kid`s, and kept through outages up to a maximum staleness.
//!
//! The request path only reads an `ArcSwap` snapshot; it never waits on the network.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use async_trait::async_trait;
use jsonwebtoken::jwk::{
    AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, KeyOperations, PublicKeyUse,
};
use jsonwebtoken::{Algorithm, DecodingKey};
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use tokio::sync::Notify;

use crate::auth::bounded::{BoundedCache, Weighed, bounded};
use crate::auth::jws::SignatureKey;
use crate::config::{IssuerSettings, JwksTiming, KeySource};
use crate::ops::metrics::Metrics;

/// One key that may verify signatures, with the algorithms it may be used with.
pub struct VerifyKey {
    /// The key's `kid`, if it has one.
    pub kid: Option<String>,
    /// Algorithms allowed for this key: its own `alg`, or its type's, within the allowlist.
    pub algorithms: Vec<Algorithm>,
    /// The key material, parsed for signature checks.
    pub signature: SignatureKey,
    /// The JWK's public parameters and declared `alg`, to keep the same `Arc` across
    /// refreshes that do not change the key.
    fingerprint: String,
}

impl std::fmt::Debug for VerifyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyKey")
            .field("kid", &self.kid)
            .field("algorithms", &self.algorithms)
            .finish_non_exhaustive()
    }
}

/// A loaded key set.
#[derive(Debug)]
pub struct KeySet {
    by_kid: HashMap<String, Arc<VerifyKey>>,
    all: Vec<Arc<VerifyKey>>,
    loaded_at: Instant,
}

impl KeySet {
    /// Builds a set from keys; keys without a `kid` are only found by [`KeySet::without_kid`].
    pub fn new(keys: Vec<Arc<VerifyKey>>) -> KeySet {
        let by_kid = keys
            .iter()
            .filter_map(|k| k.kid.clone().map(|kid| (kid, k.clone())))
            .collect();
        KeySet {
            by_kid,
            all: keys,
            loaded_at: Instant::now(),
        }
    }

    /// The key with this `kid`.
    pub fn get(&self, kid: &str) -> Option<&Arc<VerifyKey>> {
        self.by_kid.get(kid)
    }

    /// For a token without `kid`: the one key that allows `alg`, if exactly one does.
    pub fn without_kid(&self, alg: Algorithm) -> Option<&Arc<VerifyKey>> {
        let mut candidates = self.all.iter().filter(|k| k.algorithms.contains(&alg));
        match (candidates.next(), candidates.next()) {
            (Some(k), None) => Some(k),
            _ => None,
        }
    }

    /// Whether `key` (by identity) is still part of this set.
    pub fn contains(&self, key: &Arc<VerifyKey>) -> bool {
        self.all.iter().any(|k| Arc::ptr_eq(k, key))
    }

    /// Number of usable keys.
    pub fn len(&self) -> usize {
        self.all.len()
    }

    /// Whether the set has no usable key.
    pub fn is_empty(&self) -> bool {
        self.all.is_empty()
    }
}

/// Largest JWKS document read; a key set of a hundred RSA keys is about 50 KB.
pub const MAX_JWKS_BYTES: usize = 512 * 1024;

/// Smallest RSA modulus used, in bits (NIST SP 800-131A; aws-lc verifies 2048 and up).
const MIN_RSA_BITS: usize = 2048;

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
                .filter(|a| crate::config::is_hmac(*a))
                .collect();
            let key = VerifyKey {
                kid: None,
                algorithms,
                signature: SignatureKey::hmac(secret),
                fingerprint: String::new(),
            };
            store
                .current
                .store(Some(Arc::new(KeySet::new(vec![Arc::new(key)]))));
            store.fixed = true;
        }
        store
    }

    /// The usable keys, or `None` while none are loaded or they are too stale to trust.
    pub fn keys(&self) -> Option<Arc<KeySet>> {
        let set = self.current.load_full()?;
        if !self.fixed && set.loaded_at.elapsed() > self.max_staleness() {
            return None;
        }
        Some(set)
    }

    /// Whether the store has keys it may use (readiness).
    pub fn is_ready(&self) -> bool {
        self.keys().is_some()
    }

    fn max_staleness(&self) -> Duration {
        self.timing.max_staleness
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
        self.current.store(Some(Arc::new(KeySet::new(keys))));
        self.unknown_kids.clear();
        n
    }
}

/// Why a fetch failed; logged and counted, the old keys stay.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// Connection refused, timeout, TLS failure.
    #[error("request failed: {0}")]
    Transport(String),
    /// Not a 2xx answer.
    #[error("the server answered {0}")]
    Status(u16),
    /// Not a JWK Set.
    #[error("invalid JWKS document: {0}")]
    Invalid(String),
    /// The document is larger than [`MAX_JWKS_BYTES`].
    #[error("the key set is larger than {MAX_JWKS_BYTES} bytes")]
    TooLarge,
    /// A JWK Set without a single key this issuer may use.
    #[error("no usable signing key in the set ({0} keys skipped)")]
    NoUsableKey(usize),
}

/// Turns a JWKS document into the keys this issuer may use; returns them and how many were
/// skipped (encryption keys, HMAC keys, algorithms outside the allowlist, broken entries).
pub fn parse_jwks(
    body: &[u8],
    allowed: &[Algorithm],
) -> Result<(Vec<VerifyKey>, usize), FetchError> {
    #[derive(serde::Deserialize)]
    struct RawSet {
        keys: Vec<serde_json::Value>,
    }
    let raw: RawSet =
        serde_json::from_slice(body).map_err(|e| FetchError::Invalid(e.to_string()))?;
    let mut keys = Vec::new();
    let mut skipped = 0;
    for value in raw.keys {
        match serde_json::from_value::<Jwk>(crate::auth::jws::jwk_with_known_alg(value))
            .ok()
            .and_then(|jwk| usable_key(&jwk, allowed))
        {
            Some(key) => keys.push(key),
            None => skipped += 1,
        }
    }
    if keys.is_empty() {
        return Err(FetchError::NoUsableKey(skipped));
    }
    Ok((keys, skipped))
}

fn usable_key(jwk: &Jwk, allowed: &[Algorithm]) -> Option<VerifyKey> {
    let common = &jwk.common;
    if matches!(
        common.public_key_use,
        Some(PublicKeyUse::Encryption | PublicKeyUse::Other(_))
    ) {
        return None;
    }
    if let Some(ops) = &common.key_operations
        && !ops.contains(&KeyOperations::Verify)
    {
        return None;
    }
    // What the key type permits; HMAC secrets never come from a JWKS.
    let by_type: &[Algorithm] = match &jwk.algorithm {
        AlgorithmParameters::RSA(p) if rsa_bits(&p.n) < MIN_RSA_BITS => return None,
        AlgorithmParameters::RSA(_) => &[
            Algorithm::RS256,
            Algorithm::RS384,
            Algorithm::RS512,
            Algorithm::PS256,
            Algorithm::PS384,
            Algorithm::PS512,
        ],
        AlgorithmParameters::EllipticCurve(p) => match p.curve {
            EllipticCurve::P256 => &[Algorithm::ES256],
            EllipticCurve::P384 => &[Algorithm::ES384],
            _ => &[],
        },
        AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
            &[Algorithm::EdDSA]
        }
        _ => &[],
    };
    let algorithms: Vec<Algorithm> = match common.key_algorithm {
        None => by_type
            .iter()
            .copied()
            .filter(|a| allowed.contains(a))
            .collect(),
        Some(KeyAlgorithm::UNKNOWN_ALGORITHM) => return None,
        Some(declared) => {
            let alg = Algorithm::try_from(declared).ok()?;
            if by_type.contains(&alg) && allowed.contains(&alg) {
                vec![alg]
            } else {
                vec![]
            }
        }
    };
    if algorithms.is_empty() {
        return None;
    }
    let signature = SignatureKey::new(DecodingKey::from_jwk(jwk).ok()?, &algorithms)?;
    Some(VerifyKey {
        kid: common.key_id.clone(),
        algorithms,
        signature,
        // The declared `alg` too: a key whose `alg` changes must not keep its old algorithms.
        fingerprint: serde_json::to_string(&(&jwk.algorithm, &common.key_algorithm))
            .unwrap_or_default(),
    })
}

/// Bits of a base64url RSA modulus (0 when it does not decode).
fn rsa_bits(n: &str) -> usize {
    use base64::Engine as _;
    let Ok(bytes) =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(n.trim_end_matches('='))
    else {
        return 0;
    };
    let Some(first) = bytes.iter().position(|&b| b != 0) else {
        return 0;
    };
    (bytes.len() - first) * 8 - bytes[first].leading_zeros() as usize
}

/// `Cache-Control: max-age`, if present.
fn max_age(headers: &reqwest::header::HeaderMap) -> Option<u64> {
    let value = headers.get(reqwest::header::CACHE_CONTROL)?.to_str().ok()?;
    value.split(',').find_map(|d| {
        let (name, v) = d.trim().split_once('=')?;
        name.eq_ignore_ascii_case("max-age")
            .then(|| v.trim().trim_matches('"').parse().ok())
            .flatten()
    })
}

/// The background task that keeps one issuer's [`KeyStore`] fresh.
pub struct JwksRefresher {
    store: Arc<KeyStore>,
    /// The configured key set URL; `None`: discovery's.
    uri: Option<String>,
    /// The issuer whose metadata is read before each fetch, when it is discovered.
    discover: Option<String>,
    /// The issuer's `insecure_allow_http`: what discovered endpoints may be.
    insecure_allow_http: bool,
    client: reqwest::Client,
    metrics: Metrics,
}

impl JwksRefresher {
    /// A refresher for `store`, fetching from `uri`, or from the `jwks_uri` of issuer
    /// `discover`'s metadata, read again before each fetch; with `insecure_allow_http` the
    /// metadata may name plain-http endpoints on other hosts.
    pub fn new(
        store: Arc<KeyStore>,
        uri: Option<String>,
        discover: Option<String>,
        insecure_allow_http: bool,
        metrics: Metrics,
    ) -> JwksRefresher {
        let client = reqwest::Client::builder()
            .timeout(store.timing.fetch_timeout)
            .connect_timeout(store.timing.fetch_timeout)
            .user_agent(concat!("scopegate/", env!("CARGO_PKG_VERSION")))
            // A redirect could lead anywhere, https to http included: a key set is fetched
            // from its configured URL only, and a 3xx is a failed fetch.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("the HTTP client's settings are valid");
        JwksRefresher {
            store,
            uri,
            discover,
            insecure_allow_http,
            client,
            metrics,
        }
    }

    /// Fetches once (the metadata first, when discovered) and installs the keys on
    /// success; returns the server's `max-age`. Requests waiting for a refetch are woken
    /// when it ends, whatever its result.
    pub async fn refresh(&self) -> Result<Option<u64>, FetchError> {
        let result = self.refresh_once().await;
        self.store.fetch_ended();
        result
    }

    async fn refresh_once(&self) -> Result<Option<u64>, FetchError> {
        let label = self.store.label.as_str();
        let uri = match self.key_set_url().await {
            Ok(uri) => uri,
            Err(e) => {
                self.metrics.jwks_failed(label);
                tracing::warn!(issuer = %label, error = %e, "issuer discovery failed");
                return Err(e);
            }
        };
        match self.fetch(&uri).await {
            Ok((keys, skipped, age)) => {
                let n = self.store.install(keys);
                self.metrics.jwks_refreshed(label);
                tracing::info!(issuer = %label, keys = n, skipped, max_age = ?age, "JWKS refreshed");
                Ok(age)
            }
            Err(e) => {
                self.metrics.jwks_failed(label);
                let usable = self.store.is_ready();
                tracing::warn!(issuer = %label, error = %e, keeping_keys = usable, "JWKS refresh failed");
                Err(e)
            }
        }
    }

    /// The configured key set URL, or the one of the issuer's metadata (read now; if that
    /// fails, the last one read keeps serving).
    async fn key_set_url(&self) -> Result<Arc<String>, FetchError> {
        if let Some(issuer) = &self.discover {
            let endpoints = &self.store.endpoints;
            match crate::auth::discovery::discover(&self.client, issuer, self.insecure_allow_http)
                .await
            {
                Ok(metadata) => {
                    endpoints.jwks_uri.store(metadata.jwks_uri.map(Arc::new));
                    endpoints
                        .introspection
                        .store(metadata.introspection_endpoint.map(Arc::new));
                }
                Err(e) if self.uri.is_none() && endpoints.jwks_uri.load().is_none() => {
                    return Err(e);
                }
                Err(e) => {
                    tracing::warn!(issuer = %self.store.label, error = %e, "issuer discovery failed; keeping the endpoints found before");
                }
            }
        }
        match &self.uri {
            Some(uri) => Ok(Arc::new(uri.clone())),
            None => self.store.endpoints.jwks_uri.load_full().ok_or_else(|| {
                FetchError::Invalid("the issuer's metadata names no jwks_uri".into())
            }),
        }
    }

    async fn fetch(&self, uri: &str) -> Result<(Vec<VerifyKey>, usize, Option<u64>), FetchError> {
        let response = self
            .client
            .get(uri)
            .header(
                reqwest::header::ACCEPT,
                "application/jwk-set+json, application/json",
            )
            .send()
            .await
            .map_err(|e| FetchError::Transport(without_url(e)))?;
        if !response.status().is_success() {
            return Err(FetchError::Status(response.status().as_u16()));
        }
        let age = max_age(response.headers());
        if response
            .content_length()
            .is_some_and(|n| n > MAX_JWKS_BYTES as u64)
        {
            return Err(FetchError::TooLarge);
        }
        // Read chunk by chunk, so an endless or oversized body costs at most the limit.
        let mut response = response;
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| FetchError::Transport(without_url(e)))?
        {
            if body.len() + chunk.len() > MAX_JWKS_BYTES {
                return Err(FetchError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        let (keys, skipped) = parse_jwks(&body, &self.store.allowed)?;
        Ok((keys, skipped, age))
    }

    /// The next regular refresh, from the server's `max-age` clamped to the bounds.
    fn next_interval(&self, max_age: Option<u64>) -> Duration {
        let t = &self.store.timing;
        max_age
            .map_or(t.refresh, Duration::from_secs)
            .clamp(t.min_refresh, t.max_refresh)
    }
}

/// reqwest errors print the URL; keep messages to the cause (URLs may carry credentials).
fn without_url(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut cause = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        cause = format!("{cause}: {s}");
        source = s.source();
    }
    cause
}

#[async_trait]
impl BackgroundService for JwksRefresher {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        // Retry quickly at start-up and after failures, doubling up to the regular interval.
        let first_backoff = Duration::from_millis(250);
        let mut backoff = first_backoff;
        loop {
            let wait = match self.refresh().await {
                Ok(age) => {
                    backoff = first_backoff;
                    self.next_interval(age)
                }
                Err(_) => {
                    let wait = backoff;
                    backoff =
                        (backoff * 2).min(self.next_interval(None).min(Duration::from_secs(30)));
                    wait
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.store.refetch.notified() => {
                    if self.store.refetch_pending.swap(false, Ordering::AcqRel) {
                        self.metrics.jwks_unknown_kid_refetch(&self.store.label);
                        tracing::info!(issuer = %self.store.label, "unknown key id: refetching JWKS");
                    }
                }
                _ = shutdown.changed() => return,
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    const RSA_N: &str = "u1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gunVTLw7onLRnrq0_IzW7yWR7QkrmBL7jTKEn5u-qKhbwKfBstIs-bMY2Zkp18gnTxKLxoS2tFczGkPLPgizskuemMghRniWaoLcyehkd3qqGElvW_VDL5AaWTg0nLVkjRo9z-40RQzuVaE8AkAFmxZzow3x-VJYKdjykkJ0iT9wCS0DRTXu269V264Vf_3jvredZiKRkgwlL9xNAwxXFg0x_XFw005UWVRIkdgcKWTjpBP2dPwVZ4WWC-9aGVd-Gyn1o0CLelf4rEjGoXbAAEgAqeGUxrcIlbjXfbcmw";

    fn rsa_jwk(extra: serde_json::Value) -> serde_json::Value {
        let mut k = serde_json::json!({"kty": "RSA", "kid": "k1", "n": RSA_N, "e": "AQAB"});
        for (name, v) in extra.as_object().unwrap() {
            k[name] = v.clone();
        }
        k
    }

    fn parse(
        keys: Vec<serde_json::Value>,
        allowed: &[Algorithm],
    ) -> Result<(Vec<VerifyKey>, usize), FetchError> {
        parse_jwks(
            &serde_json::to_vec(&serde_json::json!({ "keys": keys })).unwrap(),
            allowed,
        )
    }

    #[test]
    fn encryption_keys_never_verify() {
        let r = parse(
            vec![rsa_jwk(serde_json::json!({"use": "enc"}))],
            &[Algorithm::RS256],
        );
        assert!(matches!(r, Err(FetchError::NoUsableKey(1))));
    }

    #[test]
    fn hmac_keys_in_a_jwks_are_ignored() {
        let oct = serde_json::json!({"kty": "oct", "kid": "h", "k": "c2VjcmV0"});
        let (keys, skipped) = parse(
            vec![oct, rsa_jwk(serde_json::json!({}))],
            &[Algorithm::RS256, Algorithm::HS256],
        )
        .unwrap();
        assert_eq!((keys.len(), skipped), (1, 1));
        assert_eq!(keys[0].algorithms, [Algorithm::RS256]);
    }

    #[test]
    fn declared_alg_outside_the_allowlist_is_skipped() {
        let r = parse(
            vec![rsa_jwk(serde_json::json!({"alg": "PS256"}))],
            &[Algorithm::RS256],
        );
        assert!(r.is_err());
    }

    #[test]
    fn algorithms_come_from_key_type_and_allowlist() {
        let (keys, _) = parse(
            vec![rsa_jwk(serde_json::json!({}))],
            &[Algorithm::RS256, Algorithm::ES256],
        )
        .unwrap();
        assert_eq!(keys[0].algorithms, [Algorithm::RS256]);
    }

    #[test]
    fn garbage_is_an_invalid_document() {
        assert!(matches!(
            parse_jwks(b"<html>", &[Algorithm::RS256]),
            Err(FetchError::Invalid(_))
        ));
        assert!(matches!(
            parse_jwks(b"{\"keys\": []}", &[Algorithm::RS256]),
            Err(FetchError::NoUsableKey(0))
        ));
    }

    #[test]
    fn rsa_keys_under_2048_bits_are_left_out() {
        use base64::Engine as _;
        let short = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([0xc5u8; 128]);
        assert_eq!(rsa_bits(&short), 1024);
        assert_eq!(rsa_bits(RSA_N), 2048);
        let r = parse(
            vec![rsa_jwk(serde_json::json!({"n": short}))],
            &[Algorithm::RS256],
        );
        assert!(matches!(r, Err(FetchError::NoUsableKey(1))));
    }

    #[test]
    fn max_age_is_read_from_cache_control() {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert(
            "cache-control",
            "public, max-age=600, must-revalidate".parse().unwrap(),
        );
        assert_eq!(max_age(&h), Some(600));
    }
}
