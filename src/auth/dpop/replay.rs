//! The per-instance `jti` replay cache (RFC 9449 §11.1): a proof is accepted once.
//!
//! Bounded in entries, and so in bytes: an entry is a fixed-size hash of the `jti` under a
//! hash of the key thumbprint, plus the proof's `iat`, never the client's strings. An entry
//! is kept as long as its proof could still pass the `iat` window, and dropped by expiry.
//!
//! When the cache is full, room is made where the load comes from: the oldest proof of
//! the key (thumbprint) holding the most entries is forgotten, and from then on that key's
//! proofs as old as it are refused (the cache can no longer tell whether such a proof is a
//! replay: it fails closed). A client flooding proofs so pushes out its own proofs and
//! raises only its own floor; other clients' fresh proofs are not affected. Only when every
//! key holds a single proof (more live keys than entries) is a global floor raised, and
//! since a proof's `iat` may lie at most the small future skew ahead, that floor never
//! goes further than that past now.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

use sha2::{Digest, Sha256};

type Hash = [u8; 32];

/// Seen proofs, keyed by (key thumbprint, `jti`).
pub struct ReplayCache {
    max_entries: usize,
    /// Seconds a proof stays acceptable after its `iat`.
    window: u64,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    keys: HashMap<Hash, Holder>,
    /// Every entry by `iat` (so by expiry): (iat, key, jti).
    by_expiry: BTreeSet<(u64, Hash, Hash)>,
    /// Keys by how many entries they hold: (count, key).
    by_count: BTreeSet<(usize, Hash)>,
    len: usize,
    /// Proofs with an `iat` at or below this may have been forgotten while still live.
    floor: u64,
}

/// One key's proofs.
#[derive(Default)]
struct Holder {
    /// `jti` hash → `iat`.
    jtis: HashMap<Hash, u64>,
    /// (iat, jti), oldest first.
    order: BTreeSet<(u64, Hash)>,
    /// This key's proofs with an `iat` at or below this may have been forgotten.
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

fn hashes(jkt: &str, jti: &str) -> (Hash, Hash) {
    let key: Hash = Sha256::digest(jkt.as_bytes()).into();
    let mut hasher = Sha256::new();
    hasher.update(key);
    hasher.update(jti.as_bytes());
    (key, hasher.finalize().into())
}

impl State {
    fn remove(&mut self, key: Hash, jti: Hash, iat: u64) -> bool {
        let Some(holder) = self.keys.get_mut(&key) else {
            return false;
        };
        if holder.jtis.remove(&jti).is_none() {
            return false;
        }
        let count = holder.jtis.len();
        holder.order.remove(&(iat, jti));
        self.by_expiry.remove(&(iat, key, jti));
        self.by_count.remove(&(count + 1, key));
        if count == 0 {
            self.keys.remove(&key);
        } else {
            self.by_count.insert((count, key));
        }
        self.len -= 1;
        true
    }

    fn check(&self, key: &Hash, jti: &Hash, iat: u64) -> Result<(), Replay> {
        if let Some(holder) = self.keys.get(key) {
            if holder.jtis.contains_key(jti) {
                return Err(Replay::Seen);
            }
            if iat <= holder.floor {
                return Err(Replay::TooOld);
            }
        }
        if iat <= self.floor {
            return Err(Replay::TooOld);
        }
        Ok(())
    }
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

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether `(jkt, jti)` issued at `iat` would be refused, without recording it: the
    /// cheap look-up done before a proof's signature is checked.
    pub fn check(&self, jkt: &str, jti: &str, iat: u64) -> Result<(), Replay> {
        let (key, jti) = hashes(jkt, jti);
        self.state().check(&key, &jti, iat)
    }

    /// Records the proof `(jkt, jti)` issued at `iat`, seen at `now`; refuses one seen before.
    pub fn record(&self, jkt: &str, jti: &str, iat: u64, now: u64) -> Result<(), Replay> {
        let (key, jti) = hashes(jkt, jti);
        let mut state = self.state();
        // Entries whose proofs can no longer pass the window are dropped first.
        while let Some(&(old_iat, old_key, old_jti)) = state.by_expiry.first() {
            if old_iat.saturating_add(self.window) >= now {
                break;
            }
            state.remove(old_key, old_jti, old_iat);
        }
        state.check(&key, &jti, iat)?;
        while state.len >= self.max_entries {
            let Some(&(count, biggest)) = state.by_count.last() else {
                break;
            };
            if count > 1 {
                let Some(&(old_iat, old_jti)) =
                    state.keys.get(&biggest).and_then(|h| h.order.first())
                else {
                    break;
                };
                state.remove(biggest, old_jti, old_iat);
                if let Some(holder) = state.keys.get_mut(&biggest) {
                    holder.floor = holder.floor.max(old_iat);
                }
            } else {
                // Every key holds one proof (more live keys than entries): the oldest goes.
                let Some(&(old_iat, old_key, old_jti)) = state.by_expiry.first() else {
                    break;
                };
                state.remove(old_key, old_jti, old_iat);
                state.floor = state.floor.max(old_iat);
            }
        }
        if state.keys.get(&key).is_some_and(|h| iat <= h.floor) {
            // This key's own flood just forgot a newer proof than this one.
            return Err(Replay::TooOld);
        }
        let holder = state.keys.entry(key).or_default();
        holder.jtis.insert(jti, iat);
        holder.order.insert((iat, jti));
        let count = holder.jtis.len();
        if count > 1 {
            state.by_count.remove(&(count - 1, key));
        }
        state.by_count.insert((count, key));
        state.by_expiry.insert((iat, key, jti));
        state.len += 1;
        Ok(())
    }

    /// Proofs currently remembered.
    pub fn len(&self) -> usize {
        self.state().len
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
        assert_eq!(cache.check("k1", "a", 100), Err(Replay::Seen));
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

    #[test]
    fn one_keys_flood_of_future_dated_proofs_does_not_lock_out_other_keys() {
        // The flood is dated as far ahead as the skew allows; the cache overflows.
        let cache = ReplayCache::new(10, 60);
        let now = 1_000;
        cache.record("victim", "earlier", now - 1, now).unwrap();
        for n in 0..11 {
            // Once the cache is full the flooder's own proofs are refused: its business.
            let _ = cache.record("flooder", &format!("f{n}"), now + 5, now);
        }
        assert!(cache.len() <= 10);
        // Other clients' fresh proofs still pass, and their replays are still caught.
        assert_eq!(cache.record("victim", "fresh", now, now), Ok(()));
        assert_eq!(cache.record("other", "fresh", now, now), Ok(()));
        assert_eq!(
            cache.record("victim", "earlier", now - 1, now),
            Err(Replay::Seen)
        );
        // The flooder's proofs, kept or forgotten, stay refused.
        for n in 0..11 {
            assert!(
                cache
                    .record("flooder", &format!("f{n}"), now + 5, now)
                    .is_err()
            );
        }
    }

    #[test]
    fn more_live_keys_than_entries_fails_closed_for_proofs_as_old_as_the_forgotten() {
        let cache = ReplayCache::new(2, 60);
        cache.record("a", "1", 100, 100).unwrap();
        cache.record("b", "1", 101, 101).unwrap();
        cache.record("c", "1", 102, 102).unwrap();
        assert_eq!(cache.record("a", "1", 100, 102), Err(Replay::TooOld));
        assert_eq!(cache.record("d", "1", 102, 102), Ok(()));
    }
}
