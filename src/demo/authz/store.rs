//! Grants waiting to be redeemed (authorization codes, refresh tokens): in memory, expiring,
//! bounded. Keyed by the SHA-256 of the secret, so the map never holds a usable credential.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// An expiring map with at most `capacity` entries; when full, the entry closest to expiry
/// makes room (a demo server must keep working however many logins a script runs).
#[derive(Debug)]
pub struct GrantStore<V> {
    entries: HashMap<[u8; 32], (Instant, V)>,
    capacity: usize,
}

impl<V> GrantStore<V> {
    /// An empty store for up to `capacity` grants.
    pub fn new(capacity: usize) -> GrantStore<V> {
        GrantStore {
            entries: HashMap::new(),
            capacity: capacity.max(1),
        }
    }

    /// Keeps `value` under `secret` for `ttl`.
    pub fn insert(&mut self, secret: &str, value: V, ttl: Duration) {
        let now = Instant::now();
        self.entries.retain(|_, (expires, _)| *expires > now);
        if self.entries.len() >= self.capacity
            && let Some(oldest) = self
                .entries
                .iter()
                .min_by_key(|(_, (expires, _))| *expires)
                .map(|(k, _)| *k)
        {
            self.entries.remove(&oldest);
        }
        self.entries.insert(key(secret), (now + ttl, value));
    }

    /// The live grant stored under `secret`.
    pub fn get_mut(&mut self, secret: &str) -> Option<&mut V> {
        let now = Instant::now();
        match self.entries.get_mut(&key(secret)) {
            Some((expires, value)) if *expires > now => Some(value),
            _ => None,
        }
    }

    /// Drops every grant for which `keep` is false.
    pub fn retain(&mut self, mut keep: impl FnMut(&V) -> bool) {
        self.entries.retain(|_, (_, v)| keep(v));
    }
}

fn key(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expired_grants_are_not_found() {
        let mut store = GrantStore::new(4);
        store.insert("live", 1, Duration::from_secs(60));
        store.insert("dead", 2, Duration::ZERO);
        assert_eq!(store.get_mut("live"), Some(&mut 1));
        assert_eq!(store.get_mut("dead"), None);
        assert_eq!(store.get_mut("unknown"), None);
    }

    #[test]
    fn a_full_store_drops_the_grant_closest_to_expiry() {
        let mut store = GrantStore::new(2);
        store.insert("soon", 1, Duration::from_secs(10));
        store.insert("later", 2, Duration::from_secs(60));
        store.insert("new", 3, Duration::from_secs(30));
        assert_eq!(store.entries.len(), 2);
        assert_eq!(store.get_mut("soon"), None);
        assert_eq!(store.get_mut("later"), Some(&mut 2));
        assert_eq!(store.get_mut("new"), Some(&mut 3));
    }
}
