//! `scopegate_requests_total` children resolved once per worker thread, not per request.
//!
//! A label lookup (`with_label_values`) hashes the three label strings and takes the
//! vector's lock on every request; a request that ends as one of the last few did finds its
//! counter here by the route's address, outcome and reason instead. The route's `Arc` is
//! held by the slot, so its address cannot be reused by another route while it is cached,
//! and each slot names the registry it came from (several gateways can share a process).

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use prometheus::{IntCounter, IntCounterVec};

use crate::ground::{Outcome, Reason};

/// Slots per thread: a sidecar's hot routes, each with its usual outcome.
const SLOTS: usize = 16;

/// One resolved counter.
struct Slot {
    registry: u64,
    route: Option<Arc<str>>,
    outcome: Outcome,
    reason: Reason,
    counter: IntCounter,
}

thread_local! {
    static RESOLVED: RefCell<[Option<Slot>; SLOTS]> = const { RefCell::new([const { None }; SLOTS]) };
}

/// A number no other registry in this process has.
pub fn registry_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Counts one request of `route` (`None`: no route matched) in `requests`, the vector of
/// registry `registry`.
pub fn count(
    requests: &IntCounterVec,
    registry: u64,
    route: Option<&Arc<str>>,
    outcome: Outcome,
    reason: Reason,
) {
    let address = route.map_or(0, |r| Arc::as_ptr(r).cast::<u8>() as usize);
    let index = ((address >> 4) ^ (outcome as usize * 7) ^ (reason as usize * 31)) % SLOTS;
    RESOLVED.with(|cell| {
        let mut slots = cell.borrow_mut();
        if let Some(slot) = &slots[index]
            && slot.registry == registry
            && slot.outcome == outcome
            && slot.reason == reason
            && slot.route.as_ref().map(Arc::as_ptr) == route.map(Arc::as_ptr)
        {
            slot.counter.inc();
            return;
        }
        let label = route.map_or("none", |r| r);
        let counter = requests.with_label_values(&[label, outcome.as_str(), reason.as_str()]);
        counter.inc();
        slots[index] = Some(Slot {
            registry,
            route: route.cloned(),
            outcome,
            reason,
            counter,
        });
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus::Opts;

    fn vector() -> IntCounterVec {
        IntCounterVec::new(Opts::new("r", "r"), &["route", "decision", "reason"]).unwrap()
    }

    #[test]
    fn each_request_counts_under_its_own_labels_whatever_was_cached() {
        let (a, b) = (vector(), vector());
        let (ra, rb) = (registry_id(), registry_id());
        let read: Arc<str> = Arc::from("read");
        // The same text in another allocation (a reloaded policy) is the same label.
        let read_again: Arc<str> = Arc::from("read");
        for _ in 0..3 {
            count(&a, ra, Some(&read), Outcome::Allow, Reason::Authorized);
        }
        count(
            &a,
            ra,
            Some(&read_again),
            Outcome::Allow,
            Reason::Authorized,
        );
        count(
            &a,
            ra,
            Some(&read),
            Outcome::Deny,
            Reason::InsufficientScope,
        );
        count(&a, ra, None, Outcome::Deny, Reason::NoRoute);
        // Another registry with the same route and labels keeps its own counts.
        count(&b, rb, Some(&read), Outcome::Allow, Reason::Authorized);
        let get = |v: &IntCounterVec, labels: [&str; 3]| v.with_label_values(&labels).get();
        assert_eq!(get(&a, ["read", "allow", "authorized"]), 4);
        assert_eq!(get(&a, ["read", "deny", "insufficient_scope"]), 1);
        assert_eq!(get(&a, ["none", "deny", "no_route"]), 1);
        assert_eq!(get(&b, ["read", "allow", "authorized"]), 1);
    }
}
