//! A token's claims (RFC 7519): decoded once from the payload, and the registered ones
//! checked against what the issuer's configuration expects.

use std::fmt;

use base64::Engine as _;
use serde::de::{Deserialize, Deserializer, Error as _, MapAccess, Visitor};
use serde_json::Value;

use crate::ground::rejection::TokenError;

/// A token's claims, as JSON.
pub type Claims = serde_json::Map<String, Value>;

/// Decodes the payload of a compact JWS, before its signature is checked (the issuer named
/// in it picks the keys). `None` when it is not base64url JSON object, or when a claim name
/// appears twice: RFC 7519 §4 lets a parser refuse that or keep the last one, and refusing
/// leaves no room for a backend that re-reads the token and keeps the first.
pub fn decode(token: &str) -> Option<Claims> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    serde_json::from_slice::<Unique>(&bytes).ok().map(|u| u.0)
}

/// What an issuer's tokens must say.
pub struct Expected<'a> {
    /// `iss`, exactly.
    pub issuer: &'a str,
    /// At least one of these in `aud`.
    pub audiences: &'a [String],
    /// Seconds of clock skew allowed on `exp`, `nbf` and `iat`.
    pub leeway: u64,
}

/// RFC 7519 §4.1 on a token whose signature verified: `exp`, `iss` and `aud` are required;
/// `exp`, `nbf` and `iat` are compared with the leeway at `now`. Returns `exp`.
///
/// The order follows jsonwebtoken's, which this replaced, so that each token keeps its
/// reason: required claims and their types, then `exp`, `nbf`, `iss`, `aud`, `iat`.
pub fn check(claims: &Claims, expected: &Expected, now: u64) -> Result<u64, TokenError> {
    let exp = match claims.get("exp") {
        Some(v) => numeric_date(v, f64::floor)?,
        None => return Err(TokenError::BadClaims),
    };
    let Some(Value::String(iss)) = claims.get("iss") else {
        return Err(TokenError::BadClaims);
    };
    let audiences: Vec<&str> = match claims.get("aud") {
        Some(Value::String(aud)) => vec![aud.as_str()],
        Some(Value::Array(auds)) => auds
            .iter()
            .map(|a| a.as_str().ok_or(TokenError::BadClaims))
            .collect::<Result<_, _>>()?,
        _ => return Err(TokenError::BadClaims),
    };
    // Start dates round up and `exp` rounds down: a fraction of a second never widens the
    // window a token is valid in.
    let start = |name: &str| match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => numeric_date(v, f64::ceil).map(Some),
    };
    let (nbf, iat) = (start("nbf")?, start("iat")?);
    let latest_start = now.saturating_add(expected.leeway);
    if now > exp.saturating_add(expected.leeway) {
        return Err(TokenError::Expired);
    }
    if nbf.is_some_and(|nbf| nbf > latest_start) {
        return Err(TokenError::NotYetValid);
    }
    // The verifier picked the issuer by this same claim; this guards other callers.
    if iss != expected.issuer {
        return Err(TokenError::UnknownIssuer);
    }
    if !audiences
        .iter()
        .any(|aud| expected.audiences.iter().any(|a| a == aud))
    {
        return Err(TokenError::BadAudience);
    }
    if iat.is_some_and(|iat| iat > latest_start) {
        return Err(TokenError::NotYetValid);
    }
    Ok(exp)
}

/// An RFC 7519 NumericDate: seconds since the epoch, a non-negative JSON number that may
/// have a fraction (rounded with `round`). Anything else is a malformed claim.
fn numeric_date(value: &Value, round: fn(f64) -> f64) -> Result<u64, TokenError> {
    if let Some(n) = value.as_u64() {
        return Ok(n);
    }
    match value.as_f64() {
        // `as` saturates at u64::MAX for values beyond it.
        Some(f) if f.is_finite() && f >= 0.0 => Ok(round(f) as u64),
        _ => Err(TokenError::BadClaims),
    }
}

/// A claims object that refuses a repeated claim name.
struct Unique(Claims);

impl<'de> Deserialize<'de> for Unique {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Unique, D::Error> {
        struct Names;
        impl<'de> Visitor<'de> for Names {
            type Value = Unique;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object of claims")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Unique, A::Error> {
                let mut claims = Claims::new();
                while let Some((name, value)) = map.next_entry::<String, Value>()? {
                    if claims.contains_key(&name) {
                        return Err(A::Error::custom(format!("claim {name:?} appears twice")));
                    }
                    claims.insert(name, value);
                }
                Ok(Unique(claims))
            }
        }
        deserializer.deserialize_map(Names)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: u64 = 1_000_000;

    fn check_at(claims: Value) -> Result<u64, TokenError> {
        let Value::Object(claims) = claims else {
            panic!("claims are an object")
        };
        let audiences = ["api".to_owned(), "other".to_owned()];
        let expected = Expected {
            issuer: "https://tenant/",
            audiences: &audiences,
            leeway: 30,
        };
        check(&claims, &expected, NOW)
    }

    fn valid() -> Value {
        json!({"iss": "https://tenant/", "aud": "api", "exp": NOW + 100})
    }

    fn with(name: &str, value: Value) -> Value {
        let mut claims = valid();
        if value.is_null() && name != "nbf" && name != "iat" {
            claims.as_object_mut().unwrap().remove(name);
        } else {
            claims[name] = value;
        }
        claims
    }

    #[test]
    fn dates_are_compared_with_the_leeway_and_fractions_never_widen_them() {
        assert_eq!(check_at(valid()), Ok(NOW + 100));
        assert_eq!(check_at(with("exp", (NOW - 30).into())), Ok(NOW - 30));
        assert_eq!(
            check_at(with("exp", (NOW - 31).into())),
            Err(TokenError::Expired)
        );
        // 999 970.9 rounds down to 999 970: still inside the leeway; .9 below that is not.
        assert!(check_at(with("exp", (NOW as f64 - 29.1).into())).is_ok());
        assert_eq!(
            check_at(with("exp", (NOW as f64 - 30.1).into())),
            Err(TokenError::Expired)
        );
        for name in ["nbf", "iat"] {
            assert!(check_at(with(name, (NOW + 30).into())).is_ok(), "{name}");
            assert!(check_at(with(name, Value::Null)).is_ok(), "{name}");
            assert_eq!(
                check_at(with(name, (NOW as f64 + 30.2).into())),
                Err(TokenError::NotYetValid),
                "{name}"
            );
        }
    }

    #[test]
    fn issuer_and_audience_must_match() {
        assert!(check_at(with("aud", json!(["x", "other"]))).is_ok());
        assert_eq!(
            check_at(with("aud", json!(["x", "y"]))),
            Err(TokenError::BadAudience)
        );
        assert_eq!(
            check_at(with("iss", "https://tenant".into())),
            Err(TokenError::UnknownIssuer)
        );
    }

    #[test]
    fn missing_or_mistyped_claims_are_bad_claims() {
        for (name, value) in [
            ("exp", Value::Null),
            ("exp", "1000100".into()),
            ("exp", (-1).into()),
            ("nbf", "0".into()),
            ("iat", (-1).into()),
            ("aud", Value::Null),
            ("aud", json!(["api", 7])),
            ("aud", 7.into()),
            ("iss", Value::Null),
            ("iss", json!(["https://tenant/"])),
        ] {
            let claims = with(name, value.clone());
            assert_eq!(
                check_at(claims),
                Err(TokenError::BadClaims),
                "{name}: {value}"
            );
        }
    }

    #[test]
    fn reasons_keep_jsonwebtokens_order() {
        // An expired token without `aud`: the missing claim is reported, not the expiry.
        let mut claims = with("aud", Value::Null);
        claims["exp"] = (NOW - 100).into();
        assert_eq!(check_at(claims), Err(TokenError::BadClaims));
        // A future `iat` and a foreign audience: the audience.
        let mut claims = with("iat", (NOW + 100).into());
        claims["aud"] = "x".into();
        assert_eq!(check_at(claims), Err(TokenError::BadAudience));
    }

    #[test]
    fn payloads_decode_once_and_repeated_claims_are_refused() {
        let token = |payload: &str| {
            let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(payload);
            format!("eyJhbGciOiJSUzI1NiJ9.{b64}.c2ln")
        };
        let claims = decode(&token(r#"{"aud":"api","n":1}"#)).unwrap();
        assert_eq!(claims["aud"], "api");
        assert!(decode(&token(r#"{"aud":"x","aud":"api"}"#)).is_none());
        assert!(decode(&token("[1]")).is_none());
        assert!(decode("only-one-part").is_none());
        assert!(decode("a.!!!.c").is_none());
    }
}
