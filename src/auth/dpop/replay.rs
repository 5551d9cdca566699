//! The per-instance `jti` replay cache (RFC 9449 §11.1): a proof is accepted once.
//!
//! Bounded in entries, and so in bytes: an entry is a fixed-size hash of the key thumbprint
//! and `jti` plus the proof's `iat`, never the client's strings. An entry is kept as long
//! as its proof could still pass the `iat` window; the oldest entries go first when the
//! cache is full, and the cache then refuses every proof as old as one it has let go
//! (it can no longer tell whether such a proof is a replay): it fails closed.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use sha2::{Digest, Sha256};

type Key = [u8; 32];

/// Seen proofs, keyed by (key thumbprint, `jti`).
pub struct ReplayCache {
    max_entries: usize,
    /// Seconds a proof stays acceptable after its `iat`.
    window: u64,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    seen: HashMap<Key, u64>,
    /// Insertion order, with each entry's `iat`.
    order: VecDeque<(Key, u64)>,
    /// Proofs with an `iat` at or below this may have been evicted while still live.
    floor: u64,
}

/// Why a proof was not recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replay {
    /// The same key already sent this `jti`.
    Seen,
    /// The proof is as old as one the full cache had to forget.
    TooOld,
}

impl ReplayCache {
    /// A cache for at most `max_entries` proofs of an `iat` window of `window` seconds.
    pub fn new(max_entries: usize, window: u64) -> ReplayCache {
        ReplayCache {
            max_entries: max_entries.max(1),
            window,
            state: Mutex::new(State::default()),
        }
    }

    /// Records the proof `(jkt, jti)` issued at `iat`, seen at `now`; refuses one seen before.
    pub fn record(&self, jkt: &str, jti: &str, iat: u64, now: u64) -> Result<(), Replay> {
        let mut hasher = Sha256::new();
        hasher.update(jkt.as_bytes());
        hasher.update([0]);
        hasher.update(jti.as_bytes());
        let key: Key = hasher.finalize().into();
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        // Entries whose proofs can no longer pass the window are dropped first.
        while let Some(&(old, old_iat)) = state.order.front() {
            if old_iat.saturating_add(self.window) >= now {
                break;
            }
            state.order.pop_front();
            state.seen.remove(&old);
        }
        if state.seen.contains_key(&key) {
            return Err(Replay::Seen);
        }
        if iat <= state.floor {
            return Err(Replay::TooOld);
        }
        while state.order.len() >= self.max_entries {
            let Some((old, old_iat)) = state.order.pop_front() else {
                break;
            };
            state.seen.remove(&old);
            state.floor = state.floor.max(old_iat);
        }
        state.seen.insert(key, iat);
        state.order.push_back((key, iat));
        Ok(())
    }

    /// Proofs currently remembered.
    pub fn len(&self) -> usize {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .seen
            .len()
    }

    /// Whether no proof is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_proof_is_accepted_once_per_key() {
        let cache = ReplayCache::new(10, 60);
        assert_eq!(cache.record("k1", "a", 100, 100), Ok(()));
        assert_eq!(cache.record("k1", "a", 100, 101), Err(Replay::Seen));
        assert_eq!(cache.record("k2", "a", 100, 101), Ok(()));
        // No ambiguity between ("k1", "ab") and ("k1a", "b").
        assert_eq!(cache.record("k1", "ab", 100, 101), Ok(()));
        assert_eq!(cache.record("k1a", "b", 100, 101), Ok(()));
    }

    #[test]
    fn entries_leave_once_their_proof_is_past_the_window() {
        let cache = ReplayCache::new(10, 60);
        cache.record("k", "a", 100, 100).unwrap();
        cache.record("k", "b", 150, 150).unwrap();
        assert_eq!(cache.len(), 2);
        // At 161, "a" (iat 100) could no longer pass the window: it is dropped.
        cache.record("k", "c", 161, 161).unwrap();
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn a_full_cache_forgets_the_oldest_and_refuses_proofs_as_old() {
        let cache = ReplayCache::new(2, 60);
        cache.record("k", "a", 100, 100).unwrap();
        cache.record("k", "b", 101, 101).unwrap();
        cache.record("k", "c", 102, 102).unwrap();
        assert_eq!(cache.len(), 2);
        // "a" was forgotten while still live: its replay is refused all the same.
        assert_eq!(cache.record("k", "a", 100, 103), Err(Replay::TooOld));
        assert_eq!(cache.record("k", "c", 102, 103), Err(Replay::Seen));
        assert_eq!(cache.record("k", "d", 103, 103), Ok(()));
    }
}
