//! Path normalization: never panics; a normalized path normalizes to itself and has no
//! dot segment, `;..` or encoded separator; a refusal is a 400 of one named rule.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scopegate::ground::path::{PathRules, SegmentParameters, normalize_with};

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let Ok(raw) = std::str::from_utf8(rest) else {
        return;
    };
    let rules = PathRules {
        segment_parameters: match flags % 3 {
            0 => SegmentParameters::RejectDotSegments,
            1 => SegmentParameters::Strip,
            _ => SegmentParameters::Reject,
        },
        allow_double_encoding: flags & 0x80 != 0,
    };
    match normalize_with(raw, &rules) {
        Ok(once) => {
            let twice = normalize_with(&once, &rules).expect("a normalized path normalizes");
            assert_eq!(twice, once, "not idempotent");
            for segment in once.split('/') {
                let name = segment.split(';').next().unwrap_or_default();
                assert!(name != "." && name != "..", "dot segment in {once:?}");
            }
            let upper = once.to_ascii_uppercase();
            assert!(!upper.contains("%2F") && !upper.contains("%5C"), "{once:?}");
            if !rules.allow_double_encoding {
                assert!(
                    !upper.contains("%252E") && !upper.contains("%252F"),
                    "{once:?}"
                );
            }
        }
        Err(rejection) => {
            assert_eq!(rejection.status(), 400);
            assert!(!rejection.to_string().is_empty());
        }
    }
});
