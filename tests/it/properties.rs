//! Properties of the pure functions every request goes through: path normalization and
//! the header plan, over generated inputs.

use proptest::prelude::*;
use scopegate::ground::path::{PathRules, SegmentParameters, normalize_with};

/// Paths built from the pieces that make readings differ: dots, slashes, `;`, escapes of
/// dot, slash, backslash and percent, and plain names.
fn tricky_path() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("/".to_owned()),
        Just(".".to_owned()),
        Just("..".to_owned()),
        Just(";".to_owned()),
        Just("%2e".to_owned()),
        Just("%2E".to_owned()),
        Just("%2f".to_owned()),
        Just("%5c".to_owned()),
        Just("%25".to_owned()),
        Just("2e".to_owned()),
        Just("%41".to_owned()),
        Just("2f".to_owned()),
        Just("=".to_owned()),
        "[a-z]{1,3}",
    ];
    let path = proptest::collection::vec(piece, 0..12).prop_map(|p| format!("/{}", p.concat()));
    // Some characters percent-encoded: an escaped hex digit can spell, once decoded, an
    // escape that was never sent (`%25%32f` is `%252F`).
    let encode = proptest::collection::vec(proptest::bool::weighted(0.1), 64);
    (path, encode).prop_map(|(path, encode)| {
        path.chars()
            .zip(encode.into_iter().chain(std::iter::repeat(false)))
            .enumerate()
            .map(|(i, (c, encode))| match c {
                c if encode && i > 0 && c.is_ascii() => format!("%{:02X}", c as u8),
                c => c.to_string(),
            })
            .collect()
    })
}

fn rules() -> impl Strategy<Value = PathRules> {
    (
        prop_oneof![
            Just(SegmentParameters::RejectDotSegments),
            Just(SegmentParameters::Strip),
            Just(SegmentParameters::Reject),
        ],
        any::<bool>(),
    )
        .prop_map(|(segment_parameters, allow_double_encoding)| PathRules {
            segment_parameters,
            allow_double_encoding,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn normalization_is_idempotent_and_leaves_no_second_reading(raw in tricky_path(), rules in rules()) {
        match normalize_with(&raw, &rules) {
            Ok(once) => {
                let twice = normalize_with(&once, &rules).expect("a normalized path normalizes");
                prop_assert_eq!(&*twice, &*once);
                for segment in once.split('/') {
                    let name = segment.split(';').next().unwrap_or_default();
                    prop_assert!(name != "." && name != "..", "dot segment in {once}");
                }
                let upper = once.to_ascii_uppercase();
                prop_assert!(!upper.contains("%2F") && !upper.contains("%5C"), "encoded separator in {once}");
                if !rules.allow_double_encoding {
                    prop_assert!(!upper.contains("%252E") && !upper.contains("%252F"), "double encoding in {once}");
                }
                if rules.segment_parameters != SegmentParameters::RejectDotSegments {
                    prop_assert!(!once.contains(';'), "parameter kept in {once}");
                }
            }
            Err(rejection) => {
                // Every refusal is a 400, with one rule's own description.
                prop_assert_eq!(rejection.status(), 400);
                prop_assert!(!rejection.to_string().is_empty());
            }
        }
    }
}

/// Spellings of identity and override header names: any case, `_` or `-`.
fn spelled_header() -> impl Strategy<Value = String> {
    let names = prop_oneof![
        Just("x-auth-subject"),
        Just("x-auth-scopes"),
        Just("x-auth-issuer"),
        Just("x-auth-client-id"),
        Just("x-http-method-override"),
        Just("x-original-url"),
    ];
    (names, proptest::collection::vec(any::<(bool, bool)>(), 32)).prop_map(|(name, flips)| {
        name.chars()
            .zip(flips)
            .map(|(c, (upper, underscore))| match c {
                '-' if underscore => '_',
                c if upper => c.to_ascii_uppercase(),
                c => c,
            })
            .collect()
    })
}

proptest! {
    #[test]
    fn no_spelling_of_an_identity_header_survives_the_plan(names in proptest::collection::vec(spelled_header(), 1..6)) {
        let text = "version: 1
upstream: http://127.0.0.1:1
policy: p.yaml
issuers: [{issuer: i, audiences: [a], jwks_uri: http://127.0.0.1:1/jwks}]
";
        let settings = scopegate::config::Settings::parse(text, "c.yaml", std::path::Path::new("."))
            .expect("a valid configuration");
        let plan = scopegate::proxy::headers::HeaderPlan::new(&settings.headers);
        let mut headers = http::HeaderMap::new();
        for name in &names {
            headers.append(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                http::HeaderValue::from_static("forged"),
            );
        }
        plan.apply(&mut headers, None);
        prop_assert!(headers.is_empty(), "{headers:?} survived");
    }
}
