//! Bearer extraction and token syntax: never panics; a token is no longer than the bound
//! and, when it passes the syntax check, only RFC 6750 `b64token` characters; a refusal is
//! a 400 `invalid_request`.
//!
//! Input: a flags byte, a bound byte, then `Authorization` values separated by `\n`; the
//! last line is the query string.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scopegate::auth::token::{TokenRules, check_syntax, extract};
use scopegate::decision::Reason;

fuzz_target!(|data: &[u8]| {
    let [flags, bound, rest @ ..] = data else {
        return;
    };
    let rules = TokenRules {
        allow_query: flags & 1 != 0,
        accept_dpop: flags & 2 != 0,
        max_bytes: usize::from(*bound) + 1,
    };
    let mut lines: Vec<&[u8]> = rest.split(|&b| b == b'\n').collect();
    let query = lines.pop().and_then(|q| std::str::from_utf8(q).ok());
    match extract(lines.iter().copied(), query, &rules) {
        Ok(Some(presented)) => {
            assert!(presented.token.len() <= rules.max_bytes);
            assert!(rules.accept_dpop || !presented.dpop);
            if check_syntax(&presented.token).is_ok() {
                let body = presented.token.trim_end_matches('=');
                assert!(!body.is_empty());
                assert!(
                    body.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
                );
            }
        }
        Ok(None) => {}
        Err(rejection) => {
            assert_eq!(rejection.status(), 400);
            assert_eq!(rejection.reason(), Reason::InvalidRequest);
        }
    }
    // The syntax check alone, on anything.
    if let Ok(s) = std::str::from_utf8(rest) {
        let _ = check_syntax(s);
    }
});
