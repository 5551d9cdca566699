//! Overlap detection: two routes that share a method and can match the same path are an
//! error naming both, so an operator never has to guess which one wins.

use std::collections::{BTreeSet, HashMap};

use serde_saphyr::Spanned;

use super::{Errors, Segment};
use crate::ground::Pos;
use crate::policy::METHODS;
use crate::policy::file::RouteEntry;

/// Two routes that share a method and can match the same path are an error naming both:
/// an operator must never have to guess which one wins.
pub(super) fn check_overlaps(
    entries: &[Spanned<RouteEntry>],
    templates: &[(usize, Vec<usize>, Vec<Segment>)],
    errors: &mut Errors,
) {
    let mut pairs = BTreeSet::new();
    let mut consider = |a: usize, b: usize| {
        let (a, b) = (a.min(b), a.max(b));
        if a == b {
            return;
        }
        let (ta, tb) = (&templates[a], &templates[b]);
        let shared = ta.1.iter().find(|m| tb.1.contains(m));
        if let Some(&m) = shared
            && overlap(&ta.2, &tb.2)
        {
            pairs.insert((ta.0, tb.0, m));
        }
    };
    let all: Vec<usize> = (0..templates.len()).collect();
    overlap_candidates(&all, 0, templates, &mut consider);
    for (a, b, m) in pairs {
        let (ea, eb) = (&entries[a].value, &entries[b].value);
        errors.push(
            Pos::of(&eb.path),
            &format!("routes[{b}].path"),
            Some(&eb.id.value),
            format!(
                "{} {} can also match route \"{}\" ({} at routes[{a}]); make the paths disjoint",
                METHODS[m], eb.path.value, ea.id.value, ea.path.value
            ),
        );
    }
}

/// Calls `consider` for every pair of templates in `group` that might overlap. Templates
/// with different static segments at the same depth never do, so the group is split by
/// its segment at `depth` (a walk down the templates' trie) and only templates that end or
/// hold a parameter there are compared with the whole group: large policies under one
/// shared prefix (`/api/...`) compile in milliseconds instead of comparing every pair.
fn overlap_candidates(
    group: &[usize],
    depth: usize,
    templates: &[(usize, Vec<usize>, Vec<Segment>)],
    consider: &mut dyn FnMut(usize, usize),
) {
    if group.len() < 2 {
        return;
    }
    let mut buckets: HashMap<&str, Vec<usize>> = HashMap::new();
    let mut wild = Vec::new();
    for &k in group {
        match templates[k].2.get(depth) {
            // An empty segment is compared like a parameter (`overlap` knows the rule).
            Some(Segment::Static(s)) if !s.is_empty() => {
                buckets.entry(s.as_str()).or_default().push(k)
            }
            _ => wild.push(k),
        }
    }
    for &w in &wild {
        for &k in group {
            consider(w, k);
        }
    }
    for members in buckets.values() {
        overlap_candidates(members, depth + 1, templates, consider);
    }
}

/// Whether some path matches both templates.
pub(super) fn overlap(a: &[Segment], b: &[Segment]) -> bool {
    let mut i = 0;
    loop {
        match (a.get(i), b.get(i)) {
            (None, None) => return true,
            // A catch-all needs at least one more character.
            (Some(Segment::CatchAll), Some(_)) | (Some(_), Some(Segment::CatchAll)) => {
                return true;
            }
            (None, Some(_)) | (Some(_), None) => return false,
            (Some(Segment::Static(x)), Some(Segment::Static(y))) if x != y => return false,
            (Some(Segment::Static(x)), Some(Segment::Param))
            | (Some(Segment::Param), Some(Segment::Static(x)))
                if x.is_empty() =>
            {
                return false;
            }
            _ => i += 1,
        }
    }
}
