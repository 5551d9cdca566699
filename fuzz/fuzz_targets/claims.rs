//! Claim parsing: a JSON object's registered claims checked, its scopes collected, never a
//! panic; an accepted token's `exp` is the non-negative number it states, and the check is
//! monotonic in time (valid now and at a later time: valid in between).
//!
//! Input: 8 bytes of `now`, one byte of leeway, then the claims as JSON.
#![no_main]

use base64::Engine as _;
use libfuzzer_sys::fuzz_target;
use scopegate::auth::claims::{Claims, Expected, check};
use scopegate::auth::identity::{DEFAULT_SCOPE_CLAIMS, collect_scopes};
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    if data.len() < 9 {
        return;
    }
    let (head, json) = data.split_at(9);
    let now = u64::from_le_bytes(head[..8].try_into().unwrap()) % 4_000_000_000;
    let leeway = u64::from(head[8]);
    let Ok(claims) = serde_json::from_slice::<Claims>(json) else {
        return;
    };
    let audiences = ["https://api.exampleco.com/timesheets".to_owned()];
    let expected = Expected {
        issuer: "https://exampleco.test/",
        audiences: &audiences,
        leeway,
    };
    if let Ok(exp) = check(&claims, &expected, now) {
        let stated = &claims["exp"];
        let read = stated
            .as_u64()
            .or(stated.as_f64().map(|f| f.floor() as u64));
        assert_eq!(read, Some(exp));
        assert_eq!(claims["iss"], Value::String(expected.issuer.into()));
        assert!(now <= exp.saturating_add(leeway));
        // Valid now and at `exp`: valid at every time between.
        if check(&claims, &expected, exp).is_ok() {
            let mid = now + (exp.saturating_sub(now)) / 2;
            assert!(check(&claims, &expected, mid).is_ok(), "a gap at {mid}");
        }
    }
    let scopes = collect_scopes(&claims, &DEFAULT_SCOPE_CLAIMS);
    assert!(scopes.windows(2).all(|w| w[0] < w[1]), "sorted, no repeats");
    assert!(
        scopes
            .iter()
            .all(|s| !s.is_empty() && !s.contains(char::is_whitespace))
    );
    // The payload decoder reads the same object.
    let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json);
    let token = format!("e30.{payload}.c2ln");
    if let Some(decoded) = scopegate::auth::claims::decode(&token) {
        assert_eq!(decoded, claims);
    }
});
