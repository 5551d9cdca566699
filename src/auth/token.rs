//! Bearer token extraction (RFC 6750 §2).
//!
//! Only the `Authorization` header is read unless the operator opts into the query
//! parameter (RFC 6750 §2.3 discourages it: URLs end up in logs and `Referer` headers).

use std::borrow::Cow;

use crate::config::TokenRules;
use crate::ground::rejection::{Rejection, TokenError};

/// The scheme a token came with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// `Authorization: Bearer` or the `access_token` query parameter (RFC 6750).
    Bearer,
    /// `Authorization: DPoP` (RFC 9449 §7.1).
    Dpop,
}

/// The request's credential, read once: the decision, DPoP and the challenge's scheme all
/// read this value, never the header again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential<'a> {
    /// The token.
    pub token: Cow<'a, str>,
    /// The scheme it came with (`Bearer` for the `access_token` query parameter).
    pub scheme: Scheme,
}

impl Credential<'_> {
    /// Whether it came with the `DPoP` scheme.
    pub fn is_dpop(&self) -> bool {
        self.scheme == Scheme::Dpop
    }
}

/// Takes the access token from a request's `Authorization` header values and query string.
///
/// - no credentials (or credentials of another scheme): `Ok(None)`, a bare 401 challenge;
/// - more than one `Authorization` header, or a token in both places: 400 `invalid_request`;
/// - a token longer than `max_bytes`: 400 `invalid_request`.
///
/// The token's syntax is checked by [`check_syntax`] when it is verified, not here: a token
/// the verified-token cache holds is byte for byte one that passed, so a cache hit skips
/// the check (for a typical 700-byte token, the largest per-byte cost of a hit).
pub fn extract<'a, I>(
    authorization: I,
    query: Option<&'a str>,
    rules: &TokenRules,
) -> Result<Option<Credential<'a>>, Rejection>
where
    I: IntoIterator<Item = &'a [u8]>,
{
    let mut headers = authorization.into_iter();
    let header = headers.next();
    if headers.next().is_some() {
        return Err(Rejection::InvalidRequest(
            "More than one Authorization header was sent",
        ));
    }
    let from_header = match header {
        Some(value) => credentials(value, rules.accept_dpop)?,
        None => None,
    };
    let from_query = match (rules.allow_query, query) {
        (true, Some(q)) => query_token(q)?,
        _ => None,
    };
    let (token, scheme) = match (from_header, from_query) {
        (Some(_), Some(_)) => {
            return Err(Rejection::InvalidRequest(
                "The access token was sent in more than one way",
            ));
        }
        (Some((t, scheme)), None) => (Cow::Borrowed(t), scheme),
        (None, Some(t)) => (t, Scheme::Bearer),
        (None, None) => return Ok(None),
    };
    if token.len() > rules.max_bytes {
        return Err(Rejection::InvalidRequest("The access token is too large"));
    }
    Ok(Some(Credential { token, scheme }))
}

/// `Bearer <token>` (or `DPoP <token>` when `dpop` is accepted) with the scheme matched
/// case-insensitively (RFC 7235 §2.1); the flag says which.
fn credentials(value: &[u8], dpop: bool) -> Result<Option<(&str, Scheme)>, Rejection> {
    let not_utf8 = || Rejection::InvalidRequest("The Authorization header is not ASCII");
    let value = trim_blanks(value);
    // Read as bytes up to the scheme's end: only the token, which is most of the value, is
    // then checked to be UTF-8 (once, not once more while it is split off).
    let (scheme, rest) = match value.iter().position(|&b| b == b' ') {
        Some(space) => (&value[..space], &value[space + 1..]),
        None => (value, &b""[..]),
    };
    let is_dpop = dpop && scheme.eq_ignore_ascii_case(b"dpop");
    if !is_dpop && !scheme.eq_ignore_ascii_case(b"bearer") {
        std::str::from_utf8(value).map_err(|_| not_utf8())?;
        // Another scheme (Basic, …) carries no token: answer as if none was sent.
        return Ok(None);
    }
    let start = rest.iter().position(|&b| b != b' ').unwrap_or(rest.len());
    // A vector check: a fifth of the standard library's on a 700-byte token.
    let token = simdutf8::basic::from_utf8(&rest[start..]).map_err(|_| not_utf8())?;
    if token.is_empty() {
        return Err(Rejection::InvalidRequest(
            "The Authorization header has no access token",
        ));
    }
    let scheme = if is_dpop {
        Scheme::Dpop
    } else {
        Scheme::Bearer
    };
    Ok(Some((token, scheme)))
}

/// `value` without the spaces and tabs around it (RFC 9110 §5.5's optional whitespace).
fn trim_blanks(value: &[u8]) -> &[u8] {
    let blank = |b: &u8| *b == b' ' || *b == b'\t';
    let start = value.iter().position(|b| !blank(b)).unwrap_or(value.len());
    let end = value
        .iter()
        .rposition(|b| !blank(b))
        .map_or(start, |i| i + 1);
    &value[start..end]
}

fn query_token(query: &str) -> Result<Option<Cow<'_, str>>, Rejection> {
    let mut found = None;
    for pair in query.split('&') {
        let (_, value) = pair.split_once('=').unwrap_or((pair, ""));
        // By its decoded name as PHP reads it: `access%5Ftoken` and `access.token` are the
        // same parameter to a backend.
        if crate::ground::query::parameter_name(pair) != "access_token" {
            continue;
        }
        if found.is_some() {
            return Err(Rejection::InvalidRequest(
                "More than one access_token parameter was sent",
            ));
        }
        let decoded = percent_encoding::percent_decode_str(value)
            .decode_utf8()
            .map_err(|_| Rejection::InvalidRequest("The access_token parameter is not UTF-8"))?;
        // An empty token is a malformed request (RFC 6750 §3.1 `invalid_request`), as an
        // empty `Bearer` is: both are answered alike.
        if decoded.is_empty() {
            return Err(Rejection::InvalidRequest(
                "The access_token parameter has no access token",
            ));
        }
        found = Some(decoded);
    }
    Ok(found)
}

/// Refuses a token that is not RFC 6750 `b64token` syntax as `invalid_token`.
pub fn check_syntax(token: &str) -> Result<(), Rejection> {
    if is_b64token(token) {
        Ok(())
    } else {
        Err(Rejection::InvalidToken(TokenError::Malformed))
    }
}

/// Whether `token` has a compact JWS's shape (three parts): anything else is an opaque
/// token, for introspection.
pub fn looks_like_jws(token: &str) -> bool {
    // Every request's token is scanned (about 700 bytes for an RS256 token): memchr's vector
    // search costs a tenth of a byte-by-byte count there.
    let mut dots = memchr::memchr_iter(b'.', token.as_bytes());
    dots.next().is_some() && dots.next().is_some() && dots.next().is_none()
}

/// RFC 6750 §2.1: `b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
fn is_b64token(token: &str) -> bool {
    let body = token.trim_end_matches('=');
    // Every request's token passes here: a branch-free test of every byte, which the
    // compiler vectorizes, costs a fifth of a short-circuiting per-byte check.
    !body.is_empty() && body.bytes().fold(true, |ok, b| ok & is_b64token_byte(b))
}

fn is_b64token_byte(b: u8) -> bool {
    ((b | 0x20).wrapping_sub(b'a') < 26)
        | (b.wrapping_sub(b'0') < 10)
        | (b == b'-')
        | (b == b'.')
        | (b == b'_')
        | (b == b'~')
        | (b == b'+')
        | (b == b'/')
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: TokenRules = TokenRules {
        allow_query: false,
        max_bytes: 64,
        accept_dpop: false,
    };

    fn one(value: &str) -> Result<Option<String>, Rejection> {
        extract([value.as_bytes()], None, &RULES).map(|t| t.map(|t| t.token.into_owned()))
    }

    #[test]
    fn a_jws_has_exactly_two_dots_wherever_they_fall() {
        assert!(looks_like_jws("a.b.c"));
        assert!(looks_like_jws(".."));
        let long = format!(
            "{}.{}.{}",
            "h".repeat(100),
            "p".repeat(500),
            "s".repeat(340)
        );
        assert!(looks_like_jws(&long));
        assert!(!looks_like_jws(&format!("{long}.")));
        assert!(!looks_like_jws(&long.replacen('.', "", 1)));
        assert!(!looks_like_jws("opaque-token-without-dots"));
        assert!(!looks_like_jws(""));
    }

    #[test]
    fn the_dpop_scheme_is_read_only_when_accepted() {
        assert_eq!(one("DPoP abc").unwrap(), None);
        let rules = TokenRules {
            accept_dpop: true,
            ..RULES
        };
        let dpop = extract([b"dpop abc".as_slice()], None, &rules)
            .unwrap()
            .unwrap();
        assert_eq!((dpop.token.as_ref(), dpop.scheme), ("abc", Scheme::Dpop));
        let bearer = extract([b"Bearer abc".as_slice()], None, &rules)
            .unwrap()
            .unwrap();
        assert_eq!(bearer.scheme, Scheme::Bearer);
    }

    #[test]
    fn b64token_bytes_are_exactly_the_rfc_set() {
        for b in 0..=255u8 {
            let rfc = b.is_ascii_alphanumeric() || b"-._~+/".contains(&b);
            assert_eq!(is_b64token_byte(b), rfc, "byte {b:#04x}");
        }
    }

    #[test]
    fn scheme_is_case_insensitive() {
        assert_eq!(
            one("bearer abc.def.ghi").unwrap().as_deref(),
            Some("abc.def.ghi")
        );
        assert_eq!(one("BEARER abc").unwrap().as_deref(), Some("abc"));
    }

    #[test]
    fn other_schemes_count_as_no_credentials() {
        assert_eq!(one("Basic dXNlcjpwdw==").unwrap(), None);
        assert_eq!(extract([], None, &RULES).unwrap(), None);
    }

    #[test]
    fn two_authorization_headers_are_a_bad_request() {
        let err = extract([b"Bearer a".as_slice(), b"Bearer b"], None, &RULES).unwrap_err();
        assert_eq!(err.status(), 400);
    }

    #[test]
    fn empty_and_malformed_tokens_are_refused() {
        assert_eq!(one("Bearer").unwrap_err().status(), 400);
        for bad in ["a b", "a\"b", "=", "a=b", "abc,def"] {
            assert_eq!(check_syntax(bad).unwrap_err().status(), 401, "{bad}");
        }
        for good in ["abc.def.ghi", "a-b_c~d+e/f==", "QUJD"] {
            assert!(check_syntax(good).is_ok(), "{good}");
        }
    }

    #[test]
    fn oversized_tokens_are_a_bad_request() {
        let long = format!("Bearer {}", "a".repeat(65));
        assert_eq!(one(&long).unwrap_err().status(), 400);
    }

    #[test]
    fn query_token_is_ignored_unless_enabled() {
        assert_eq!(extract([], Some("access_token=abc"), &RULES).unwrap(), None);
        let rules = TokenRules {
            allow_query: true,
            ..RULES
        };
        assert_eq!(
            extract([], Some("x=1&access_token=abc"), &rules)
                .unwrap()
                .map(|p| p.token.into_owned())
                .as_deref(),
            Some("abc")
        );
        let both = extract([b"Bearer abc".as_slice()], Some("access_token=abc"), &rules);
        assert_eq!(both.unwrap_err().status(), 400);
        let encoded = extract(
            [b"Bearer abc".as_slice()],
            Some("access%5Ftoken=abc"),
            &rules,
        );
        assert_eq!(encoded.unwrap_err().status(), 400);
        let twice = extract([], Some("access_token=a&access%5ftoken=b"), &rules);
        assert_eq!(twice.unwrap_err().status(), 400);
        let php = extract([b"Bearer abc".as_slice()], Some("access.token=abc"), &rules);
        assert_eq!(php.unwrap_err().status(), 400);
        let twice = extract([], Some("access_token=a&access+token=b"), &rules);
        assert_eq!(twice.unwrap_err().status(), 400);
    }

    #[test]
    fn an_empty_query_token_is_answered_as_an_empty_bearer() {
        let rules = TokenRules {
            allow_query: true,
            ..RULES
        };
        let bearer = extract([b"Bearer".as_slice()], None, &rules).unwrap_err();
        for q in ["access_token=", "access_token", "x=1&access_token=&y=2"] {
            let query = extract([], Some(q), &rules).unwrap_err();
            assert_eq!(
                (query.status(), query.reason()),
                (bearer.status(), bearer.reason()),
                "{q}"
            );
        }
        assert_eq!(bearer.status(), 400);
    }
}
