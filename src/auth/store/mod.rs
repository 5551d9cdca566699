//! The state replicas share: a small key–value contract ([`SharedStore`]) with a Valkey/Redis
//! implementation ([`redis::RedisStore`]) and an in-process one ([`MemoryStore`], for tests
//! and benches: without a configured store the replay cache and the introspection cache
//! are each replica's own, as before).
//!
//! | file | job |
//! |---|---|
//! | this | the contract, hashed keys, the bounded and counted front ([`Store`]) |
//! | [`redis`] | Valkey/Redis through the `redis` crate's reconnecting connection manager |
//! | [`sealed`] | introspection answers encrypted under a key only the token gives |
//!
//! Keys are SHA-256 hashes of what they are about (a proof's thumbprint and `jti`, a
//! token), never the values: a reader of the store learns no token. Every command is
//! bounded by `command_timeout_ms`; what a failure means is each user's documented choice
//! (the DPoP replay check: `on_error`; introspection: ask the authorization server).

pub mod redis;
pub mod sealed;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use base64::Engine as _;
use sha2::{Digest, Sha256};

use crate::config::{SharedStoreSettings, StoreErrorMode};
use crate::ops::metrics::{Metrics, StoreOp, StoreResult};

/// A key: what it is for and the hash of what it is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StoreKey {
    kind: &'static str,
    hash: [u8; 32],
}

impl StoreKey {
    /// The key of kind `kind` (a short constant, e.g. `dpop`) for `parts`, hashed with
    /// their lengths so that no two different lists of parts share a key.
    pub fn new(kind: &'static str, parts: &[&[u8]]) -> StoreKey {
        let mut hasher = Sha256::new();
        hasher.update(kind.as_bytes());
        hasher.update([0]);
        for part in parts {
            hasher.update((part.len() as u64).to_be_bytes());
            hasher.update(part);
        }
        StoreKey {
            kind,
            hash: hasher.finalize().into(),
        }
    }

    /// The hash.
    pub fn hash(&self) -> &[u8; 32] {
        &self.hash
    }

    /// The key as written to the store: `prefix` + kind + `:` + base64url(hash).
    pub fn render(&self, prefix: &str) -> String {
        format!(
            "{prefix}{}:{}",
            self.kind,
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(self.hash)
        )
    }
}

/// A store command that failed: the store is unreachable, too slow or answered an error.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// No answer within the command timeout.
    #[error("the shared store did not answer in time")]
    Timeout,
    /// Connection refused or lost, or an error reply.
    #[error("the shared store failed: {0}")]
    Failed(String),
}

/// What replicas share, as a few commands on hashed keys.
#[async_trait]
pub trait SharedStore: Send + Sync {
    /// Creates `key` for `ttl` unless it exists (`SET NX PX`): `true` for the first caller
    /// in the fleet, `false` for every later one until it expires.
    async fn claim_once(&self, key: &StoreKey, ttl: Duration) -> Result<bool, StoreError>;
    /// The value under `key`, if any.
    async fn get(&self, key: &StoreKey) -> Result<Option<Vec<u8>>, StoreError>;
    /// Sets `key` to `value` for `ttl`.
    async fn set_with_ttl(
        &self,
        key: &StoreKey,
        value: &[u8],
        ttl: Duration,
    ) -> Result<(), StoreError>;
}

/// The store as the gateway uses it: every command bounded by the timeout and counted.
#[derive(Clone)]
pub struct Store {
    backend: Arc<dyn SharedStore>,
    timeout: Duration,
    on_error: StoreErrorMode,
    metrics: Metrics,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("timeout", &self.timeout)
            .field("on_error", &self.on_error)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// The configured Valkey/Redis store (connected on first use).
    pub fn from_settings(settings: &SharedStoreSettings, metrics: &Metrics) -> Store {
        metrics.shared_store();
        Store::new(
            Arc::new(redis::RedisStore::new(settings)),
            settings.command_timeout,
            settings.on_error,
            metrics.clone(),
        )
    }

    /// A store over `backend`, each command given at most `timeout`.
    pub fn new(
        backend: Arc<dyn SharedStore>,
        timeout: Duration,
        on_error: StoreErrorMode,
        metrics: Metrics,
    ) -> Store {
        Store {
            backend,
            timeout,
            on_error,
            metrics,
        }
    }

    /// What DPoP proofs get while the store fails.
    pub fn on_error(&self) -> StoreErrorMode {
        self.on_error
    }

    /// The metrics commands are counted in.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// [`SharedStore::claim_once`], bounded and counted.
    pub async fn claim_once(&self, key: &StoreKey, ttl: Duration) -> Result<bool, StoreError> {
        self.bounded(StoreOp::Claim, self.backend.claim_once(key, ttl))
            .await
    }

    /// [`SharedStore::get`], bounded and counted.
    pub async fn get(&self, key: &StoreKey) -> Result<Option<Vec<u8>>, StoreError> {
        self.bounded(StoreOp::Get, self.backend.get(key)).await
    }

    /// [`SharedStore::set_with_ttl`], bounded and counted.
    pub async fn set_with_ttl(
        &self,
        key: &StoreKey,
        value: &[u8],
        ttl: Duration,
    ) -> Result<(), StoreError> {
        self.bounded(StoreOp::Set, self.backend.set_with_ttl(key, value, ttl))
            .await
    }

    async fn bounded<T>(
        &self,
        op: StoreOp,
        command: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let started = Instant::now();
        // The client has its own timeouts; this one is the promise to the request: never
        // a wait past `command_timeout_ms`, whatever state the connection is in.
        let result = match tokio::time::timeout(self.timeout, command).await {
            Ok(result) => result,
            Err(_) => Err(StoreError::Timeout),
        };
        let label = match &result {
            Ok(_) => StoreResult::Ok,
            Err(StoreError::Timeout) => StoreResult::Timeout,
            Err(StoreError::Failed(_)) => StoreResult::Error,
        };
        self.metrics.store_call(op, label, started.elapsed());
        result
    }
}

/// An in-process [`SharedStore`]: what one process shares with itself. For tests and
/// benches, and a model of the contract; it can be made to fail.
#[derive(Default)]
pub struct MemoryStore {
    entries: Mutex<HashMap<StoreKey, (Vec<u8>, Instant)>>,
    failing: std::sync::atomic::AtomicBool,
}

impl MemoryStore {
    /// Makes every later command fail (`true`) or work again (`false`).
    pub fn set_failing(&self, failing: bool) {
        self.failing
            .store(failing, std::sync::atomic::Ordering::Relaxed);
    }

    fn check(&self) -> Result<(), StoreError> {
        if self.failing.load(std::sync::atomic::Ordering::Relaxed) {
            Err(StoreError::Failed("down".into()))
        } else {
            Ok(())
        }
    }

    fn live(&self) -> std::sync::MutexGuard<'_, HashMap<StoreKey, (Vec<u8>, Instant)>> {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        entries.retain(|_, (_, until)| *until > now);
        entries
    }
}

#[async_trait]
impl SharedStore for MemoryStore {
    async fn claim_once(&self, key: &StoreKey, ttl: Duration) -> Result<bool, StoreError> {
        self.check()?;
        let mut entries = self.live();
        if entries.contains_key(key) {
            return Ok(false);
        }
        entries.insert(*key, (Vec::new(), Instant::now() + ttl));
        Ok(true)
    }

    async fn get(&self, key: &StoreKey) -> Result<Option<Vec<u8>>, StoreError> {
        self.check()?;
        Ok(self.live().get(key).map(|(v, _)| v.clone()))
    }

    async fn set_with_ttl(
        &self,
        key: &StoreKey,
        value: &[u8],
        ttl: Duration,
    ) -> Result<(), StoreError> {
        self.check()?;
        self.live()
            .insert(*key, (value.to_vec(), Instant::now() + ttl));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_hash_their_parts_with_lengths_and_never_show_them() {
        let a = StoreKey::new("dpop", &[b"k1", b"ab"]);
        assert_ne!(a, StoreKey::new("dpop", &[b"k1a", b"b"]));
        assert_ne!(a, StoreKey::new("introspection", &[b"k1", b"ab"]));
        let rendered = a.render("scopegate:");
        assert!(rendered.starts_with("scopegate:dpop:"), "{rendered}");
        assert!(!rendered.contains("k1"));
        assert_eq!(rendered.len(), "scopegate:dpop:".len() + 43);
    }

    #[tokio::test]
    async fn a_key_is_claimed_once_and_values_expire() {
        let store = Store::new(
            Arc::new(MemoryStore::default()),
            Duration::from_millis(100),
            StoreErrorMode::Deny,
            Metrics::new(),
        );
        let key = StoreKey::new("dpop", &[b"x"]);
        assert!(
            store
                .claim_once(&key, Duration::from_secs(5))
                .await
                .unwrap()
        );
        assert!(
            !store
                .claim_once(&key, Duration::from_secs(5))
                .await
                .unwrap()
        );
        let value = StoreKey::new("introspection", &[b"t"]);
        store
            .set_with_ttl(&value, b"v", Duration::from_millis(20))
            .await
            .unwrap();
        assert_eq!(store.get(&value).await.unwrap().as_deref(), Some(&b"v"[..]));
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert_eq!(store.get(&value).await.unwrap(), None);
    }
}
