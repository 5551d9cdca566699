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

    /// Forgets the grant stored under `secret`, returning it if it was live.
    pub fn remove(&mut self, secret: &str) -> Option<V> {
        let now = Instant::now();
        match self.entries.remove(&key(secret)) {
            Some((expires, value)) if expires > now => Some(value),
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

    #[test]
    fn however_many_grants_arrive_the_store_keeps_at_most_its_capacity() {
        let mut store = GrantStore::new(100);
        for i in 0..1_000 {
            store.insert(&format!("token-{i}"), i, Duration::from_secs(60 + i));
            assert!(store.entries.len() <= 100);
        }
        // The newest (furthest from expiry) survive.
        assert_eq!(store.get_mut("token-999"), Some(&mut 999));
        assert_eq!(store.get_mut("token-0"), None);
    }

    #[test]
    fn expired_grants_are_pruned_when_another_arrives() {
        let mut store = GrantStore::new(100);
        for i in 0..50 {
            store.insert(&format!("dead-{i}"), i, Duration::ZERO);
        }
        store.insert("live", 1, Duration::from_secs(60));
        assert_eq!(store.entries.len(), 1);
    }

    #[test]
    fn a_removed_grant_is_gone_and_only_a_live_one_is_returned() {
        let mut store = GrantStore::new(4);
        store.insert("live", 1, Duration::from_secs(60));
        store.insert("dead", 2, Duration::ZERO);
        assert_eq!(store.remove("live"), Some(1));
        assert_eq!(store.get_mut("live"), None);
        assert_eq!(store.remove("live"), None);
        assert_eq!(store.remove("dead"), None);
    }
}
