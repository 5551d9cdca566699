//! Query parameters a backend could act on after the decision, read by their decoded names
//! (`%5Fmethod` is `_method`) as PHP maps them (`.method` and `_method[]` are `_method`):
//!
//! - `_method` (Rails, Laravel and Symfony take it as the method of a POST): refused by
//!   default, or removed ([`MethodOverride::Strip`]); the form-body `_method` field is not
//!   read (the gateway does not parse bodies), see README "Paths";
//! - `access_token`, when the query-string token is off: refused, so a request never
//!   carries a second, unchecked token next to the verified one (RFC 6750 §2: one method
//!   per request).

use std::borrow::Cow;

use serde::Deserialize;

use crate::ground::rejection::Rejection;

/// What to do with a `_method` query parameter.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MethodOverride {
    /// Refuse the request with 400.
    #[default]
    Reject,
    /// Remove the parameter and forward the rest.
    Strip,
}

/// The operator's query rules.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueryRules {
    /// `_method` parameters.
    pub method_override: MethodOverride,
    /// Whether `access_token` is a token source (`token.insecure_allow_query_parameter`).
    pub token_parameter: bool,
}

/// A query parameter's name, percent-decoded (`+` is a space in form encoding).
pub fn decoded_name(pair: &str) -> Cow<'_, str> {
    let name = pair.split_once('=').map_or(pair, |(n, _)| n);
    if !name.contains(['%', '+']) {
        return Cow::Borrowed(name);
    }
    let spaced = name.replace('+', " ");
    Cow::Owned(
        percent_encoding::percent_decode_str(&spaced)
            .decode_utf8_lossy()
            .into_owned(),
    )
}

/// A query parameter's name as PHP reads it (Laravel and Symfony take their parameters
/// from it): decoded (see [`decoded_name`]), leading spaces dropped, and `.`, space and an
/// unclosed `[` turned into `_`; a `[…]` suffix makes an array of the name before it.
/// `?.method=`, `?%2Emethod=`, `?_method[]=` and `?access+token=` are then `_method` and
/// `access_token`. A name no PHP mapping changes is its decoded name, so comparing this
/// one covers every other reading too.
pub fn parameter_name(pair: &str) -> Cow<'_, str> {
    let decoded = decoded_name(pair);
    if !decoded.contains(['.', ' ', '[']) {
        return decoded;
    }
    let name = decoded.trim_start_matches(' ');
    // PHP keeps the name before a `[` that a `]` closes later on, and reads the rest
    // as array keys.
    let (name, array) = match name.find('[') {
        Some(open) if name[open..].contains(']') => (&name[..open], true),
        _ => (name, false),
    };
    let mut mapped = String::with_capacity(name.len());
    let mut bracket = false;
    for c in name.chars() {
        match c {
            '.' | ' ' if !bracket => mapped.push('_'),
            // Only the first unclosed `[` becomes `_`; PHP copies what follows as it is.
            '[' if !bracket && !array => {
                mapped.push('_');
                bracket = true;
            }
            c => mapped.push(c),
        }
    }
    Cow::Owned(mapped)
}

/// Checks a query string; returns the query to forward when a parameter was removed.
pub fn check(query: &str, rules: &QueryRules) -> Result<Option<String>, Rejection> {
    let mut stripped = false;
    for pair in query.split('&') {
        match &*parameter_name(pair) {
            "_method" => match rules.method_override {
                MethodOverride::Reject => {
                    return Err(Rejection::InvalidRequest(
                        "The _method query parameter is not accepted",
                    ));
                }
                MethodOverride::Strip => stripped = true,
            },
            "access_token" if !rules.token_parameter => {
                return Err(Rejection::InvalidRequest(
                    "The access token may not be sent in the query string",
                ));
            }
            _ => {}
        }
    }
    if !stripped {
        return Ok(None);
    }
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| parameter_name(pair) != "_method")
        .collect();
    Ok(Some(kept.join("&")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_override_is_refused_or_stripped_in_any_encoding() {
        let rules = QueryRules::default();
        for q in ["_method=DELETE", "a=1&%5Fmethod=PUT", "%5f%6d%65thod=x"] {
            assert_eq!(check(q, &rules).unwrap_err().status(), 400, "{q}");
        }
        assert_eq!(check("method=1&x_method=2", &rules), Ok(None));
        let strip = QueryRules {
            method_override: MethodOverride::Strip,
            ..rules
        };
        assert_eq!(
            check("a=1&_method=DELETE&b=2", &strip),
            Ok(Some("a=1&b=2".into()))
        );
    }

    #[test]
    fn names_are_compared_as_php_reads_them() {
        let rules = QueryRules::default();
        for q in [
            ".method=DELETE",
            "%2Emethod=DELETE",
            "[method=DELETE",
            "_method[]=DELETE",
            "_method[x]=DELETE",
            "a=1&%20%20.method=PUT",
            "access.token=t",
            "access+token=t",
            "access%20token=t",
            "access[token=t",
            "access_token[0]=t",
        ] {
            assert_eq!(check(q, &rules).unwrap_err().status(), 400, "{q}");
        }
        // PHP drops leading spaces: `+method` is `method`.
        for q in [
            "x.method=1",
            "method=1",
            "+method=1",
            "access-token=t",
            "access[token]=t",
            "a.b[c=1",
        ] {
            assert_eq!(check(q, &rules), Ok(None), "{q}");
        }
        assert_eq!(parameter_name("a.b[c.d=1"), "a_b_c.d");
        assert_eq!(parameter_name("a.b=1"), "a_b");
        let strip = QueryRules {
            method_override: MethodOverride::Strip,
            ..rules
        };
        assert_eq!(
            check("a=1&.method=DELETE&_method[]=PUT&b.c=2", &strip),
            Ok(Some("a=1&b.c=2".into()))
        );
    }

    #[test]
    fn a_query_token_is_refused_when_the_query_is_no_token_source() {
        let off = QueryRules::default();
        for q in ["access_token=t", "x=1&access%5Ftoken=t", "access%5ftoken"] {
            assert!(check(q, &off).is_err(), "{q}");
        }
        let on = QueryRules {
            token_parameter: true,
            ..off
        };
        assert_eq!(check("access_token=t", &on), Ok(None));
    }
}
