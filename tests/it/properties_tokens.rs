//! Properties of the token's way in: extraction from `Authorization` and the query
//! (RFC 6750 §2), `b64token` syntax, and the compact JWS the verifier parses (segments,
//! `kid` bound, algorithms from configuration and the key only).

use jsonwebtoken::{Algorithm, EncodingKey};
use proptest::prelude::*;
use scopegate::auth::token;
use scopegate::config::TokenRules;
use scopegate::decision::{Reason, Rejection, TokenError};
use serde_json::{Value, json};

use crate::harness::*;
use crate::properties_support::*;

fn rules() -> impl Strategy<Value = TokenRules> {
    (any::<bool>(), 1usize..96, any::<bool>()).prop_map(|(allow_query, max_bytes, accept_dpop)| {
        TokenRules {
            allow_query,
            max_bytes,
            accept_dpop,
        }
    })
}

/// RFC 6750 §2.1 `b64token`.
fn b64token() -> impl Strategy<Value = String> {
    "[A-Za-z0-9._~+/-]{1,60}={0,2}"
}

/// The RFC's grammar, read directly:
/// `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
fn is_b64token(s: &str) -> bool {
    let body = s.trim_end_matches('=');
    !body.is_empty()
        && body
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._~+/".contains(c))
}

/// `Authorization` values: arbitrary bytes, and values built from schemes, separators and
/// token characters, so that every branch is reached.
fn authorization_value() -> impl Strategy<Value = Vec<u8>> {
    let scheme = prop::sample::select(
        &[
            "Bearer", "bearer", "BEARER", "bEaReR", "DPoP", "dpop", "Basic", "Bearer,", "",
        ][..],
    );
    prop_oneof![
        any::<Vec<u8>>(),
        (scheme, "[ \t]{0,3}", "[ -~\t]{0,20}", "[ \t]{0,2}")
            .prop_map(|(s, sep, t, end)| { format!("{s}{sep}{t}{end}").into_bytes() }),
    ]
}

/// Query strings made of parameter names (the token's in several spellings), values,
/// separators and broken escapes.
fn query() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("access_token".to_owned()),
        Just("access%5Ftoken".to_owned()),
        Just("%61ccess_token".to_owned()),
        Just("access+token".to_owned()),
        Just("=".to_owned()),
        Just("&".to_owned()),
        Just("%".to_owned()),
        Just("%C3%A9".to_owned()),
        Just("%FF".to_owned()),
        "[a-z0-9._~-]{1,6}",
    ];
    proptest::collection::vec(piece, 0..8).prop_map(|p| p.concat())
}

/// `access_token` with any of its characters percent-encoded, in either hex case.
fn access_token_spelling() -> impl Strategy<Value = String> {
    proptest::collection::vec(any::<(bool, bool)>(), 12).prop_map(|flips| {
        "access_token"
            .bytes()
            .zip(flips)
            .map(|(b, (encode, upper))| match (encode, upper) {
                (false, _) => (b as char).to_string(),
                (true, true) => format!("%{b:02X}"),
                (true, false) => format!("%{b:02x}"),
            })
            .collect()
    })
}

/// `word` with each letter's case flipped by `flips`.
fn recase(word: &str, flips: &[bool]) -> String {
    word.chars()
        .zip(flips.iter().chain(std::iter::repeat(&false)))
        .map(|(c, &up)| {
            if up {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn extraction_yields_a_token_nothing_or_a_named_bad_request(
        headers in proptest::collection::vec(authorization_value(), 0..3),
        query in proptest::option::of(query()),
        rules in rules(),
    ) {
        let values: Vec<&[u8]> = headers.iter().map(Vec::as_slice).collect();
        match token::extract(values.iter().copied(), query.as_deref(), &rules) {
            Ok(None) => {}
            Ok(Some(presented)) => {
                prop_assert!(headers.len() <= 1, "two headers gave a token");
                prop_assert!(presented.token.len() <= rules.max_bytes);
                prop_assert!(rules.accept_dpop || !presented.is_dpop());
                if (!rules.allow_query || query.is_none()) && let Some(value) = headers.first() {
                    // The token is the header's bytes after the scheme, verbatim.
                    let value = std::str::from_utf8(value).expect("a token came from UTF-8");
                    let trimmed = value.trim_matches(|c| c == ' ' || c == '\t');
                    prop_assert!(trimmed.ends_with(&*presented.token), "{value:?} gave {:?}", presented.token);
                    prop_assert!(!presented.token.is_empty());
                }
            }
            Err(rejection) => {
                prop_assert_eq!(rejection.status(), 400);
                prop_assert_eq!(rejection.reason(), Reason::InvalidRequest);
                prop_assert!(matches!(rejection, Rejection::InvalidRequest(m) if !m.is_empty()));
            }
        }
    }

    #[test]
    fn only_b64token_syntax_passes_the_syntax_check(s in prop_oneof![any::<String>(), "[ -~]{0,12}", b64token()]) {
        let checked = token::check_syntax(&s);
        prop_assert_eq!(checked.is_ok(), is_b64token(&s), "{:?}", s);
        if let Err(rejection) = checked {
            prop_assert_eq!(rejection, Rejection::InvalidToken(TokenError::Malformed));
            // And the verifier refuses it the same way, whatever it would have said else.
            prop_assert_eq!(token_error(verify(&s)), Some(TokenError::Malformed));
        }
    }

    #[test]
    fn bearer_and_dpop_credentials_round_trip(
        t in b64token(),
        flips in proptest::collection::vec(any::<bool>(), 6),
        dpop in any::<bool>(),
        (before, between, after) in ("[ \t]{0,2}", " {1,3}", "[ \t]{0,2}"),
        rules in rules(),
    ) {
        let scheme = recase(if dpop { "dpop" } else { "bearer" }, &flips);
        let value = format!("{before}{scheme}{between}{t}{after}");
        let got = token::extract([value.as_bytes()], None, &rules);
        if dpop && !rules.accept_dpop {
            // Another scheme: no credentials.
            prop_assert_eq!(got, Ok(None));
        } else if t.len() > rules.max_bytes {
            prop_assert_eq!(got, Err(Rejection::InvalidRequest("The access token is too large")));
        } else {
            let presented = got.expect("a valid credential").expect("a token");
            prop_assert_eq!(&*presented.token, t.as_str());
            prop_assert_eq!(presented.is_dpop(), dpop);
            prop_assert!(token::check_syntax(&presented.token).is_ok());
        }
        // The same token in the query (when allowed) is the same token.
        let rules = TokenRules { allow_query: true, ..rules };
        let encoded = percent_encoding::utf8_percent_encode(&t, percent_encoding::NON_ALPHANUMERIC);
        let query = format!("a=1&access_token={encoded}");
        match token::extract([], Some(&query), &rules) {
            Ok(Some(p)) => prop_assert_eq!(&*p.token, t.as_str()),
            Err(r) => prop_assert!(t.len() > rules.max_bytes, "{r}"),
            Ok(None) => prop_assert!(false, "no token in {query}"),
        }
    }

    #[test]
    fn more_than_one_token_is_always_a_bad_request(
        t in b64token(),
        u in b64token(),
        (first, second) in (access_token_spelling(), access_token_spelling()),
        (before, between, after) in ("[a-z]{1,3}=[a-z]{0,3}", "[a-z]{1,3}=[a-z]{0,3}", "[a-z]{1,3}=[a-z]{0,3}"),
        second_header in authorization_value(),
        max_bytes in 1usize..96,
    ) {
        let rules = TokenRules { allow_query: true, max_bytes, accept_dpop: true };
        let header = format!("Bearer {t}");
        // Header and query, whichever spelling names the parameter.
        let q = format!("{before}&{first}={u}&{after}");
        prop_assert_eq!(token::extract([header.as_bytes()], Some(&q), &rules).map(|_| ()).unwrap_err().status(), 400);
        // Twice in the query, in two spellings.
        let q = format!("{before}&{first}={t}&{between}&{second}={u}&{after}");
        prop_assert_eq!(token::extract([], Some(&q), &rules).map(|_| ()).unwrap_err().status(), 400);
        // Two Authorization headers, whatever the second says.
        let two = [header.as_bytes(), second_header.as_slice()];
        prop_assert_eq!(token::extract(two, None, &rules).map(|_| ()).unwrap_err().status(), 400);
    }
}

/// Compact-JWS-shaped inputs: three base64url parts of arbitrary JSON and bytes, and
/// strings of JWS characters.
fn jws_like() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[A-Za-z0-9_.=-]{0,120}",
        (json_value(), json_value(), any::<Vec<u8>>()).prop_map(|(h, p, s)| format!(
            "{}.{}.{}",
            b64(h.to_string().as_bytes()),
            b64(p.to_string().as_bytes()),
            b64(&s)
        )),
        (json_value(), any::<Vec<u8>>()).prop_map(|(p, s)| format!(
            "{}.{}.{}",
            b64(br#"{"alg":"ES256","kid":"ec-1"}"#),
            b64(p.to_string().as_bytes()),
            b64(&s)
        )),
    ]
}

/// A header JSON object of the test's choosing, with a payload, signed as `alg` names.
fn signed(header: &Value, payload: &Value, sign_as: Option<(Algorithm, &EncodingKey)>) -> String {
    let message = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(payload.to_string().as_bytes())
    );
    let signature = match sign_as {
        Some((alg, key)) => {
            jsonwebtoken::crypto::sign(message.as_bytes(), key, alg).expect("signs")
        }
        None => b64(b"not a signature"),
    };
    format!("{message}.{signature}")
}

const ALGORITHMS: [Algorithm; 12] = [
    Algorithm::HS256,
    Algorithm::HS384,
    Algorithm::HS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::EdDSA,
];

/// The key an attacker would sign `alg` with: the gateway's own RSA or EC key where the
/// family fits (a valid signature under an algorithm the key set does not allow), the RSA
/// public key as an HMAC secret, the Ed25519 key outside the set; none for ES384.
fn attack_key(alg: Algorithm) -> Option<EncodingKey> {
    let keys = keys();
    match alg {
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => Some(EncodingKey::from_secret(
            keys.rsa.public()["n"].as_str().unwrap().as_bytes(),
        )),
        Algorithm::ES256 => Some(keys.ec.encoding.clone()),
        Algorithm::EdDSA => Some(keys.ed.encoding.clone()),
        Algorithm::ES384 => None,
        _ => Some(keys.rsa.encoding.clone()),
    }
}

proptest! {
    #[test]
    fn the_verifier_refuses_arbitrary_input_as_an_invalid_token(s in jws_like()) {
        // Nothing here is signed by the key set, so nothing verifies; and every refusal
        // is a 401 invalid_token, never a 5xx or a panic.
        let error = token_error(verify(&s));
        prop_assert!(error.is_some(), "{s:?}");
    }

    #[test]
    fn a_token_without_exactly_three_segments_is_malformed(
        edits in proptest::collection::vec((any::<bool>(), any::<prop::sample::Index>(), "[A-Za-z0-9_-]{0,8}"), 1..4),
    ) {
        let token = keys().ec.sign(&Value::Object(valid_claims()));
        prop_assert!(verify(&token).is_ok(), "the unedited token verifies");
        let mut segments: Vec<String> = token.split('.').map(str::to_owned).collect();
        for (insert, at, segment) in edits {
            if insert {
                let i = at.index(segments.len() + 1);
                segments.insert(i, segment);
            } else if !segments.is_empty() {
                let i = at.index(segments.len());
                segments.remove(i);
            }
        }
        prop_assume!(segments.len() != 3);
        let edited = segments.join(".");
        prop_assert_eq!(token_error(verify(&edited)), Some(TokenError::Malformed), "{}", edited);
    }

    #[test]
    fn a_kid_longer_than_the_bound_is_malformed_before_any_lookup(kid in "[A-Za-z0-9_-]{200,300}") {
        let keys = keys();
        let header = json!({"alg": "ES256", "kid": kid, "typ": "at+jwt"});
        let token = signed(&header, &Value::Object(valid_claims()), Some((Algorithm::ES256, &keys.ec.encoding)));
        let expected = if kid.len() > scopegate::auth::jwks::MAX_KID_BYTES {
            TokenError::Malformed
        } else {
            TokenError::UnknownKey
        };
        prop_assert_eq!(token_error(verify(&token)), Some(expected));
    }

    #[test]
    fn algorithms_come_from_configuration_and_the_key_never_the_header(
        alg in prop::sample::select(&ALGORITHMS[..]),
        kid in prop::sample::select(&[None, Some("rsa-1"), Some("ec-1"), Some("ed-1")][..]),
        typ in prop::sample::select(&[None, Some("at+jwt"), Some("JWT")][..]),
        // Header members that name other keys: none of them may matter.
        embedded in prop::sample::select(&["", "jwk", "jku", "x5u", "x5c"][..]),
    ) {
        let keys = keys();
        let mut header = json!({"alg": alg});
        if let Some(kid) = kid {
            header["kid"] = json!(kid);
        }
        if let Some(typ) = typ {
            header["typ"] = json!(typ);
        }
        match embedded {
            "" => {}
            "jwk" => header["jwk"] = keys.ed.public(),
            "x5c" => header["x5c"] = json!(["MIIB"]),
            other => header[other] = json!("https://attacker.example/keys"),
        }
        let key = attack_key(alg);
        let token = signed(&header, &Value::Object(valid_claims()), key.as_ref().map(|k| (alg, k)));
        // The key the verifier may use: the one the kid names, or the only one that
        // allows the algorithm; and the algorithms that key allows.
        let allowed = matches!(
            (kid, alg),
            (Some("rsa-1") | None, Algorithm::RS256) | (Some("ec-1") | None, Algorithm::ES256)
        );
        let got = token_error(verify(&token));
        if allowed {
            prop_assert_eq!(got, None, "{}", header);
        } else {
            let expected: &[TokenError] = match kid {
                Some("rsa-1" | "ec-1") => &[TokenError::DisallowedAlgorithm],
                // No key allows it, or the kid is not in the set.
                _ => &[TokenError::DisallowedAlgorithm, TokenError::UnknownKey],
            };
            prop_assert!(got.is_some_and(|e| expected.contains(&e)), "{header}: {got:?}");
        }
    }

    #[test]
    fn an_algorithm_name_no_library_knows_is_a_disallowed_algorithm(
        alg in prop_oneof![
            prop::sample::select(&["none", "None", "NONE", "", "rs256", "RS256 ", "HS1", "ES256K", "RSA-OAEP"][..]).prop_map(str::to_owned),
            "[A-Za-z0-9+-]{1,8}",
        ],
        kid in prop::sample::select(&[None, Some("rsa-1"), Some("ec-1")][..]),
    ) {
        prop_assume!(alg.parse::<Algorithm>().is_err());
        let mut header = json!({"alg": alg, "typ": "JWT"});
        if let Some(kid) = kid {
            header["kid"] = json!(kid);
        }
        for signature in ["", "c2ln"] {
            let token = signed(&header, &Value::Object(valid_claims()), None);
            let (message, _) = token.rsplit_once('.').unwrap();
            let token = format!("{message}.{signature}");
            prop_assert_eq!(token_error(verify(&token)), Some(TokenError::DisallowedAlgorithm), "{}", header);
        }
    }
}
