//! A quick_cache bounded in bytes as well as in entries, that counts its evictions.
//!
//! Each entry weighs its estimated bytes, but never less than `max_bytes / max_entries`:
//! one weight capacity then bounds both, so neither many small entries nor a few large
//! ones (a 7 KB token, a 4 KB `kid`) can outgrow the configured memory.

use std::hash::Hash;
use std::sync::Arc;

use quick_cache::{DefaultHashBuilder, Lifecycle, Weighter};

/// A value that knows its approximate size in memory.
pub trait Weighed {
    /// Approximate bytes held by the entry (key included), allocations and bookkeeping.
    fn bytes(&self) -> u64;
}

impl<T: Weighed> Weighed for Arc<T> {
    fn bytes(&self) -> u64 {
        (**self).bytes()
    }
}

/// Entries weigh their bytes, at least `floor`.
#[derive(Clone)]
pub struct ByBytes {
    floor: u64,
}

impl<K, V: Weighed> Weighter<K, V> for ByBytes {
    fn weight(&self, _key: &K, value: &V) -> u64 {
        value.bytes().max(self.floor)
    }
}

/// Called once per eviction (a metric's named method).
pub type OnEvict = Arc<dyn Fn() + Send + Sync>;

/// Counts evictions (entries pushed out for room; removals are not counted).
#[derive(Clone)]
pub struct CountEvictions(Option<OnEvict>);

impl<K, V> Lifecycle<K, V> for CountEvictions {
    type RequestState = ();

    fn on_evict(&self, _state: &mut Self::RequestState, _key: K, _value: V) {
        if let Some(evicted) = &self.0 {
            evicted();
        }
    }
}

/// The bounded cache.
pub type BoundedCache<K, V> =
    quick_cache::sync::Cache<K, V, ByBytes, DefaultHashBuilder, CountEvictions>;

/// A cache of at most `max_entries` entries and about `max_bytes` bytes; `evictions`
/// counts what it pushes out.
pub fn bounded<K: Eq + Hash, V: Clone + Weighed>(
    max_entries: usize,
    max_bytes: u64,
    evictions: Option<OnEvict>,
) -> BoundedCache<K, V> {
    let max_entries = max_entries.max(1);
    let floor = (max_bytes / max_entries as u64).max(1);
    quick_cache::sync::Cache::with(
        max_entries,
        max_bytes.max(floor),
        ByBytes { floor },
        DefaultHashBuilder::default(),
        CountEvictions(evictions),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone)]
    struct Blob(u64);
    impl Weighed for Blob {
        fn bytes(&self) -> u64 {
            self.0
        }
    }

    #[test]
    fn bytes_and_entries_are_both_bounded_and_evictions_counted() {
        let evicted = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let count = evicted.clone();
        let on_evict: OnEvict = Arc::new(move || {
            count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        });
        let cache = bounded::<u32, Blob>(1000, 100_000, Some(on_evict));
        for i in 0..1000 {
            cache.insert(i, Blob(10_000));
        }
        assert!(cache.weight() <= 100_000, "{}", cache.weight());
        assert!(cache.len() <= 10, "{}", cache.len());
        assert!(evicted.load(std::sync::atomic::Ordering::Relaxed) >= 990);
        let small = bounded::<u32, Blob>(50, 1_000_000, None);
        for i in 0..1000 {
            small.insert(i, Blob(1));
        }
        assert!(small.len() <= 50, "{}", small.len());
    }
}
