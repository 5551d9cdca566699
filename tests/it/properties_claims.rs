//! Properties of claim parsing: the registered claims' checks (types, dates and leeway,
//! `aud`), the scope sets, and the identity a verified JWT or an introspection answer
//! makes, over generated claims.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use proptest::prelude::*;
use scopegate::auth::Authenticator;
use scopegate::auth::claims::{self, Claims, Expected};
use scopegate::auth::identity::{ConditionClaims, DEFAULT_SCOPE_CLAIMS, collect_scopes};
use scopegate::config::Settings;
use scopegate::decision::{Rejection, TokenError};
use scopegate::ops::metrics::Metrics;
use serde_json::{Value, json};

use crate::authserver::{AuthServer, active};
use crate::harness::*;
use crate::properties_support::*;

const NOW: u64 = 1_000_000;

fn check_at(claims: &Claims, leeway: u64, now: u64) -> Result<u64, TokenError> {
    let audiences = [AUDIENCE.to_owned()];
    let expected = Expected {
        issuer: ISSUER,
        audiences: &audiences,
        leeway,
    };
    claims::check(claims, &expected, now)
}

/// Valid claims with the generated ones laid over them.
fn claims_over_valid() -> impl Strategy<Value = Claims> {
    proptest::collection::btree_map(claim_name(), json_value(), 0..6).prop_map(|extra| {
        let mut claims = valid_claims();
        claims.extend(extra);
        claims
    })
}

/// A registered claim and a value of a type it may not have.
fn mistyped() -> impl Strategy<Value = (&'static str, Value)> {
    (prop::sample::select(&REGISTERED[..]), json_value())
        .prop_filter("a wrong type", |(name, value)| wrong_type(name, value))
}

/// RFC 6749 §3.3 `scope-token`s.
fn scope_tokens() -> impl Strategy<Value = Vec<String>> {
    proptest::collection::vec("[!#-\\[\\]-~]{1,10}", 0..6)
}

/// A NumericDate around [`NOW`]: whole seconds or with a fraction.
fn date() -> impl Strategy<Value = Value> {
    prop_oneof![
        (NOW - 200..NOW + 200).prop_map(Value::from),
        (-200.0f64..200.0).prop_map(|d| Value::from(NOW as f64 + d)),
    ]
}

fn with(mut claims: Claims, name: &str, value: Value) -> Claims {
    claims.insert(name.to_owned(), value);
    claims
}

/// A JWT of `claims`, signed with a key of the set.
fn jwt(claims: &Claims) -> String {
    keys().ec.sign(&Value::Object(claims.clone()))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn the_claims_check_accepts_only_well_typed_claims(
        claims in prop_oneof![
            proptest::collection::btree_map(claim_name(), json_value(), 0..8).prop_map(|m| m.into_iter().collect::<Claims>()),
            claims_over_valid(),
        ],
        leeway in 0u64..120,
        now in prop_oneof![Just(now()), any::<u64>()],
    ) {
        if let Ok(exp) = check_at(&claims, leeway, now) {
            for name in ["exp", "nbf", "iat", "aud", "iss"] {
                let value = claims.get(name).unwrap_or(&Value::Null);
                prop_assert!(!wrong_type(name, value), "{name}: {value}");
            }
            prop_assert_eq!(claims["iss"].as_str(), Some(ISSUER));
            let stated = &claims["exp"];
            prop_assert_eq!(Some(exp), stated.as_u64().or(stated.as_f64().map(|f| f.floor() as u64)));
        }
    }

    #[test]
    fn validity_is_one_interval_bounded_by_the_dates_and_the_leeway(
        exp in date(),
        nbf in proptest::option::of(date()),
        iat in proptest::option::of(date()),
        leeway in 0u64..60,
        mut times in proptest::collection::vec(NOW - 300..NOW + 300, 3),
    ) {
        let mut claims = with(valid_claims(), "exp", exp.clone());
        claims.remove("iat");
        if let Some(nbf) = &nbf {
            claims.insert("nbf".into(), nbf.clone());
        }
        if let Some(iat) = &iat {
            claims.insert("iat".into(), iat.clone());
        }
        let start = |v: &Option<Value>| v.as_ref().map_or(0, |v| v.as_f64().unwrap().ceil() as u64);
        let first = start(&nbf).max(start(&iat));
        let last = exp.as_f64().unwrap().floor() as u64;
        times.sort_unstable();
        let results: Vec<_> = times.iter().map(|&t| check_at(&claims, leeway, t)).collect();
        for (&t, result) in times.iter().zip(&results) {
            // Exactly the seconds from `first - leeway` to `last + leeway`.
            let inside = t + leeway >= first && t <= last + leeway;
            prop_assert_eq!(result.is_ok(), inside, "t={} first={} last={} leeway={}", t, first, last, leeway);
        }
        // Valid at two times: valid in between; refused before a valid time: not yet
        // valid; after one: expired.
        for (i, result) in results.iter().enumerate() {
            let earlier_ok = results[..i].iter().any(Result::is_ok);
            let later_ok = results[i + 1..].iter().any(Result::is_ok);
            match result {
                Ok(_) => {}
                Err(e) if earlier_ok && later_ok => prop_assert!(false, "a gap: {e:?}"),
                Err(e) if later_ok => prop_assert_eq!(*e, TokenError::NotYetValid),
                Err(e) if earlier_ok => prop_assert_eq!(*e, TokenError::Expired),
                Err(e) => prop_assert!(matches!(e, TokenError::Expired | TokenError::NotYetValid), "{e:?}"),
            }
        }
    }

    #[test]
    fn aud_as_a_string_and_as_a_one_element_array_are_the_same(
        aud in prop_oneof![Just(AUDIENCE.to_owned()), "[ -~]{0,12}"],
        leeway in 0u64..60,
    ) {
        let one = with(valid_claims(), "aud", json!(aud));
        let array = with(valid_claims(), "aud", json!([aud]));
        prop_assert_eq!(check_at(&one, leeway, now()), check_at(&array, leeway, now()));
        // And through the verifier: the same identity, or the same refusal.
        prop_assert_eq!(verify(&jwt(&one)), verify(&jwt(&array)));
    }

    #[test]
    fn scope_as_a_string_and_as_an_array_give_the_same_scopes(
        scopes in scope_tokens(),
        separators in proptest::collection::vec(" {1,3}", 6),
        claim in prop::sample::select(&DEFAULT_SCOPE_CLAIMS[..]),
    ) {
        let mut spaced = String::new();
        for (scope, sep) in scopes.iter().zip(&separators) {
            spaced.push_str(sep);
            spaced.push_str(scope);
        }
        let mut set = scopes.clone();
        set.sort_unstable();
        set.dedup();
        let base = {
            let mut c = valid_claims();
            c.remove("scope");
            c
        };
        let as_string = with(base.clone(), claim, json!(spaced));
        let as_array = with(base, claim, json!(scopes));
        prop_assert_eq!(&collect_scopes(&as_string, &DEFAULT_SCOPE_CLAIMS), &set);
        prop_assert_eq!(&collect_scopes(&as_array, &DEFAULT_SCOPE_CLAIMS), &set);
        let from_string = verify(&jwt(&as_string)).expect("a valid token");
        let from_array = verify(&jwt(&as_array)).expect("a valid token");
        prop_assert_eq!(&from_string.scopes, &set);
        prop_assert_eq!(&from_array.scopes, &set);
        let joined = set.join(" ");
        prop_assert_eq!(from_string.header_values().scopes.as_bytes(), joined.as_bytes());
    }
}

proptest! {
    #[test]
    fn arbitrary_claims_verify_to_an_identity_of_their_own_values_or_a_401(claims in claims_over_valid()) {
        match verify(&jwt(&claims)) {
            Ok(identity) => {
                for name in REGISTERED {
                    let value = claims.get(name).unwrap_or(&Value::Null);
                    prop_assert!(!wrong_type(name, value), "{name}: {value}");
                }
                prop_assert_eq!(identity.subject.as_deref(), claims.get("sub").and_then(Value::as_str));
                let client = claims.get("client_id").or(claims.get("azp")).and_then(Value::as_str);
                prop_assert_eq!(identity.client_id.as_deref(), client);
                prop_assert_eq!(&identity.scopes, &collect_scopes(&claims, &DEFAULT_SCOPE_CLAIMS));
            }
            Err(Rejection::InvalidToken(_)) => {}
            Err(other) => prop_assert!(false, "{other:?}"),
        }
    }

    #[test]
    fn a_wrong_type_for_a_registered_claim_is_a_refusal_not_a_default((name, value) in mistyped()) {
        let claims = with(valid_claims(), name, value.clone());
        if ["exp", "nbf", "iat", "aud", "iss"].contains(&name) {
            prop_assert_eq!(check_at(&claims, LEEWAY, now()), Err(TokenError::BadClaims), "{}: {}", name, value);
        }
        prop_assert_eq!(token_error(verify(&jwt(&claims))), Some(TokenError::BadClaims), "{}: {}", name, value);
    }

    #[test]
    fn a_payload_decodes_to_its_claims_and_a_repeated_name_is_refused(
        claims in proptest::collection::btree_map(claim_name(), json_value(), 1..6),
        repeat in any::<prop::sample::Index>(),
    ) {
        let claims: Claims = claims.into_iter().collect();
        let token = |payload: &str| format!("eyJhbGciOiJFUzI1NiJ9.{}.c2ln", b64(payload.as_bytes()));
        let text = Value::Object(claims.clone()).to_string();
        // The payload's JSON reading, whatever the claims are.
        let read: Claims = serde_json::from_str(&text).unwrap();
        prop_assert_eq!(claims::decode(&token(&text)), Some(read));
        let (name, value) = claims.iter().nth(repeat.index(claims.len())).unwrap();
        let twice = format!("{},{}:{}}}", &text[..text.len() - 1], json!(name), value);
        prop_assert_eq!(claims::decode(&token(&twice)), None, "{}", twice);
    }
}

/// An authenticator that introspects opaque tokens at a test authorization server, whose
/// answers the properties set.
struct Introspecting {
    auth: AuthServer,
    authenticator: Authenticator,
    _secret: tempfile::TempDir,
}

fn introspecting() -> &'static Introspecting {
    static IT: OnceLock<Introspecting> = OnceLock::new();
    IT.get_or_init(|| {
        let auth = AuthServer::start("http://127.0.0.1:1/jwks");
        let secret = tempfile::tempdir().unwrap();
        let introspection = auth.introspection_in(secret.path());
        let config = format!(
            "version: 1
upstream: http://127.0.0.1:1
policy: p.yaml
issuers:
  - issuer: \"{}\"
    audiences: [{AUDIENCE}]
    jwks_uri: http://127.0.0.1:1/jwks
    introspection: {introspection}
",
            auth.issuer(),
        );
        let settings = Settings::parse(&config, "c.yaml", std::path::Path::new("."))
            .expect("a valid configuration");
        let (authenticator, _) = Authenticator::from_settings(&settings, &Metrics::new());
        Introspecting {
            auth,
            authenticator,
            _secret: secret,
        }
    })
}

/// Introspects a fresh opaque token whose answer is `answer`, as sent.
fn introspect(
    answer: Value,
) -> Result<std::sync::Arc<scopegate::auth::identity::Identity>, Rejection> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let it = introspecting();
    let token = format!("opaque-{}", NEXT.fetch_add(1, Ordering::Relaxed));
    it.auth.answer(&token, answer);
    rt().block_on(it.authenticator.verifier.authenticate(
        &token,
        false,
        &ConditionClaims::default(),
        scopegate::ground::clock::unix_now(),
    ))
}

/// An active answer with the generated claims laid over it.
fn answer_over_active() -> impl Strategy<Value = Value> {
    proptest::collection::btree_map(
        prop_oneof![
            claim_name(),
            Just("active".to_owned()),
            Just("token_type".to_owned())
        ],
        json_value(),
        0..5,
    )
    .prop_map(|extra| {
        let mut answer = active(&introspecting().auth.issuer(), "read:timesheets");
        answer["active"] = json!(true);
        for (name, value) in extra {
            answer[name] = value;
        }
        answer
    })
}

proptest! {
    #[test]
    fn an_introspection_answer_makes_an_identity_of_its_own_values_or_a_refusal(
        answer in prop_oneof![json_value(), answer_over_active()],
    ) {
        let result = introspect(answer.clone());
        let Value::Object(claims) = &answer else {
            prop_assert_eq!(result, Err(Rejection::IntrospectionUnavailable));
            return Ok(());
        };
        if claims.get("active") != Some(&Value::Bool(true)) {
            prop_assert_eq!(result, Err(Rejection::InvalidToken(TokenError::Inactive)));
            return Ok(());
        }
        match result {
            Ok(identity) => {
                for name in REGISTERED {
                    // An answer without `iss` is its server's own.
                    let value = claims.get(name).unwrap_or(&Value::Null);
                    prop_assert!(name == "iss" && value.is_null() || !wrong_type(name, value), "{name}: {value}");
                }
                prop_assert_eq!(identity.subject.as_deref(), claims.get("sub").and_then(Value::as_str));
                prop_assert_eq!(&identity.scopes, &collect_scopes(claims, &DEFAULT_SCOPE_CLAIMS));
            }
            Err(Rejection::InvalidToken(TokenError::Inactive | TokenError::Expired)) => {}
            Err(other) => prop_assert!(false, "{answer}: {other:?}"),
        }
    }

    #[test]
    fn a_wrong_type_in_an_introspection_answer_is_a_refusal((name, value) in mistyped()) {
        let mut answer = active(&introspecting().auth.issuer(), "read:timesheets");
        answer["active"] = json!(true);
        answer[name] = value.clone();
        prop_assert_eq!(
            introspect(answer),
            Err(Rejection::InvalidToken(TokenError::Inactive)),
            "{}: {}", name, value
        );
    }

    #[test]
    fn introspected_scopes_as_a_string_and_as_an_array_are_the_same(scopes in scope_tokens()) {
        let issuer = introspecting().auth.issuer();
        let mut as_string = active(&issuer, &scopes.join(" "));
        as_string["active"] = json!(true);
        let mut as_array = as_string.clone();
        as_array["scope"] = json!(scopes);
        let mut set = scopes.clone();
        set.sort_unstable();
        set.dedup();
        prop_assert_eq!(&introspect(as_string).expect("active").scopes, &set);
        prop_assert_eq!(&introspect(as_array).expect("active").scopes, &set);
    }
}
