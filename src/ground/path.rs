//! Request path normalization: the one reading of a path that both the policy and the
//! upstream see.
//!
//! The rules, in order (documented in README, "Paths"):
//! 1. the path must be origin-form (`/…`); control characters, `\` and malformed `%` escapes
//!    are refused;
//! 2. escapes of unreserved characters (`A-Z a-z 0-9 - . _ ~`) are decoded, other escapes are
//!    kept with upper-case hex (RFC 3986 §6.2.2);
//! 3. an escaped `/`, `\`, NUL or control character is refused: backends disagree on whether
//!    it splits a segment, so no single reading exists;
//! 4. a segment that is `.` or `..` only after decoding is refused (encoded dot segment);
//! 5. repeated slashes are merged, `.` and `..` segments are resolved (RFC 3986 §5.2.4);
//!    `..` above the root is refused;
//! 6. `;` segment parameters (what servlet containers strip before they resolve a path):
//!    a segment that is `.` or `..` before its `;` (`..;`, `.;x`) is refused by default,
//!    since `/static/..;/admin` is `/admin` to Tomcat; [`SegmentParameters`] can strip
//!    every parameter instead (match on what a servlet container sees) or refuse any `;`;
//! 7. a double-encoded dot, slash or backslash (`%252e`, `%252f`, `%255c`, any depth), as
//!    the segment reads after step 2 (`%25%32f` is `%252F`), is refused unless allowed: a
//!    backend that decodes twice would read a dot segment or a separator the gateway never
//!    saw.
//!
//! The gateway forwards the normalized path, so the upstream acts on what was authorized.

use std::borrow::Cow;

use serde::Deserialize;

use crate::ground::rejection::Rejection;

/// What `;` segment parameters (RFC 3986 §3.3) may do.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SegmentParameters {
    /// Refuse a segment that is `.` or `..` before its `;`; keep other parameters as part
    /// of their segment.
    #[default]
    RejectDotSegments,
    /// Remove every parameter before matching and forwarding: the policy decides on what a
    /// servlet container (Tomcat, Jetty, Spring) acts on.
    Strip,
    /// Refuse any `;` in the path.
    Reject,
}

/// The operator's choices where a backend needs a path the defaults refuse.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PathRules {
    /// How `;` parameters are treated.
    pub segment_parameters: SegmentParameters,
    /// Forward double-encoded dots, slashes and backslashes (`%252e`, `%252f`, `%255c`).
    pub allow_double_encoding: bool,
}

/// Normalizes a request path with the default rules.
pub fn normalize(raw: &str) -> Result<Cow<'_, str>, Rejection> {
    normalize_with(raw, &PathRules::default())
}

/// Normalizes a request path, or explains why it has no single reading.
pub fn normalize_with<'a>(raw: &'a str, rules: &PathRules) -> Result<Cow<'a, str>, Rejection> {
    if !raw.starts_with('/') {
        return Err(Rejection::InvalidRequest(
            "The request target must be an absolute path",
        ));
    }
    if is_plain(raw) {
        return Ok(Cow::Borrowed(raw));
    }
    let mut segments: Vec<String> = Vec::new();
    let trailing_slash = raw.len() > 1 && raw.ends_with('/');
    for raw_segment in raw.split('/') {
        let raw_segment = match (raw_segment.split_once(';'), rules.segment_parameters) {
            (None, _) => raw_segment,
            (Some(_), SegmentParameters::Reject) => {
                return Err(Rejection::AmbiguousPath(
                    "The path contains a segment parameter (;)",
                ));
            }
            (Some((name, _)), SegmentParameters::Strip) => name,
            (Some((name, _)), SegmentParameters::RejectDotSegments) => {
                if matches!(decode_segment(name, rules)?.0.as_str(), "." | "..") {
                    return Err(Rejection::AmbiguousPath(
                        "The path contains a dot segment with parameters (..;)",
                    ));
                }
                raw_segment
            }
        };
        let (segment, had_escaped_dot) = decode_segment(raw_segment, rules)?;
        match segment.as_str() {
            "" => {}
            "." | ".." if had_escaped_dot => {
                return Err(Rejection::AmbiguousPath(
                    "The path contains an encoded dot segment",
                ));
            }
            "." => {}
            ".." => {
                if segments.pop().is_none() {
                    return Err(Rejection::AmbiguousPath("The path climbs above the root"));
                }
            }
            _ => segments.push(segment),
        }
    }
    let mut out = String::with_capacity(raw.len());
    for segment in &segments {
        out.push('/');
        out.push_str(segment);
    }
    if out.is_empty() || trailing_slash {
        out.push('/');
    }
    Ok(Cow::Owned(out))
}

/// The fast path: nothing to decode, merge or resolve. One pass over the bytes: each is
/// printable ASCII other than `%`, `\` and `;`, and no segment is empty (`//`), `.` or `..`.
fn is_plain(raw: &str) -> bool {
    let bytes = raw.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        match PATH_BYTE[usize::from(b)] {
            SEGMENT => {}
            // The leading slash ends the one empty segment a path may start with.
            SLASH => {
                if i > 0 && is_dot_or_empty(&bytes[start..i]) {
                    return false;
                }
                start = i + 1;
            }
            _ => return false,
        }
    }
    // A trailing slash leaves an empty last segment, which is plain.
    !matches!(&bytes[start..], b"." | b"..")
}

/// A byte a plain segment may hold: printable ASCII other than `%`, `\` and `;`.
const SEGMENT: u8 = 0;
/// `/`.
const SLASH: u8 = 1;
/// Anything else: the path takes the slow path.
const OTHER: u8 = 2;

/// Each byte's class: one load per byte instead of five comparisons.
static PATH_BYTE: [u8; 256] = {
    let mut table = [OTHER; 256];
    let mut b = 0;
    while b < 256 {
        let byte = b as u8;
        if byte == b'/' {
            table[b] = SLASH;
        } else if byte.is_ascii_graphic() && byte != b'%' && byte != b'\\' && byte != b';' {
            table[b] = SEGMENT;
        }
        b += 1;
    }
    table
};

fn is_dot_or_empty(segment: &[u8]) -> bool {
    matches!(segment, b"" | b"." | b"..")
}

fn decode_segment(segment: &str, rules: &PathRules) -> Result<(String, bool), Rejection> {
    let bytes = segment.as_bytes();
    let mut out = String::with_capacity(segment.len());
    let mut escaped_dot = false;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or(Rejection::InvalidRequest(
                    "The path has a malformed percent-escape",
                ))?;
            match hex {
                b'/' | b'\\' => {
                    return Err(Rejection::AmbiguousPath(
                        "The path contains an encoded slash or backslash",
                    ));
                }
                0x00..=0x1f | 0x7f => {
                    return Err(Rejection::AmbiguousPath(
                        "The path contains an encoded control character",
                    ));
                }
                c if c.is_ascii_alphanumeric() || b"-._~".contains(&c) => {
                    escaped_dot |= c == b'.';
                    out.push(c as char);
                }
                c => {
                    out.push('%');
                    out.push_str(&format!("{c:02X}"));
                }
            }
            i += 3;
        } else if b == b'\\' {
            return Err(Rejection::AmbiguousPath("The path contains a backslash"));
        } else if !b.is_ascii_graphic() {
            return Err(Rejection::InvalidRequest(
                "The path contains a control or non-ASCII character",
            ));
        } else {
            out.push(b as char);
            i += 1;
        }
    }
    // On the decoded segment, which is what is forwarded: `%25%32f` is `%252F` once the
    // escaped `2` (unreserved) is decoded, a slash to a backend that decodes twice.
    if !rules.allow_double_encoding && hides_double_encoding(&out) {
        return Err(Rejection::AmbiguousPath(
            "The path contains a double-encoded dot, slash or backslash",
        ));
    }
    Ok((out, escaped_dot))
}

/// Whether a decoded segment holds a `%25` that decodes, after further rounds, to a dot,
/// a slash or a backslash.
fn hides_double_encoding(decoded: &str) -> bool {
    let bytes = decoded.as_bytes();
    (0..bytes.len()).any(|i| bytes[i..].starts_with(b"%25") && hides_separator(&bytes[i + 3..]))
}

/// Whether what follows a `%25` decodes, after one or more further rounds, to a dot, a
/// slash or a backslash: `2e`, `2f`, `5c` (any case), possibly behind more `25`s.
fn hides_separator(mut rest: &[u8]) -> bool {
    while rest.len() >= 2 && rest[..2] == *b"25" {
        rest = &rest[2..];
    }
    let Some(hex) = rest.get(..2) else {
        return false;
    };
    matches!(
        std::str::from_utf8(hex)
            .ok()
            .and_then(|h| u8::from_str_radix(h, 16).ok()),
        Some(b'.' | b'/' | b'\\')
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(raw: &str) -> String {
        normalize(raw).unwrap().into_owned()
    }

    fn refused(raw: &str) -> u16 {
        normalize(raw).unwrap_err().status()
    }

    #[test]
    fn plain_paths_are_kept_as_they_are() {
        assert!(matches!(normalize("/timesheets/7"), Ok(Cow::Borrowed(_))));
        assert_eq!(ok("/"), "/");
        assert_eq!(ok("/timesheets/"), "/timesheets/");
    }

    #[test]
    fn slashes_merge_and_dot_segments_resolve() {
        assert_eq!(ok("//timesheets///7"), "/timesheets/7");
        assert_eq!(ok("/a/./b/../timesheets"), "/a/timesheets");
        assert_eq!(ok("/timesheets/7/.."), "/timesheets");
    }

    #[test]
    fn unreserved_escapes_are_decoded_and_others_uppercased() {
        assert_eq!(ok("/time%73heets"), "/timesheets");
        assert_eq!(ok("/a%2fb".replace("%2f", "%3f").as_str()), "/a%3Fb");
    }

    #[test]
    fn ambiguous_paths_are_refused() {
        for raw in [
            "/timesheets%2F7",
            "/timesheets%2f7",
            "/timesheets%5C7",
            "/timesheets\\7",
            "/timesheets/%2e%2e/approvals",
            "/timesheets/%2E/x",
            "/a%00b",
            "/..",
            "/a/../../b",
        ] {
            assert_eq!(refused(raw), 400, "{raw}");
        }
        assert_eq!(refused("/a%zz"), 400);
        assert_eq!(refused("*"), 400);
    }

    #[test]
    fn dot_segments_with_parameters_are_refused_and_other_parameters_kept() {
        for raw in ["/static/..;/admin", "/static/.;x/admin", "/a/%2e%2e;x/b"] {
            assert_eq!(refused(raw), 400, "{raw}");
        }
        assert_eq!(ok("/files/a;v=1/b"), "/files/a;v=1/b");
        assert_eq!(ok("/a/b;x/../c"), "/a/c");
    }

    #[test]
    fn parameters_can_be_stripped_or_refused() {
        let strip = PathRules {
            segment_parameters: SegmentParameters::Strip,
            ..PathRules::default()
        };
        let norm = |raw| normalize_with(raw, &strip).map(Cow::into_owned);
        assert_eq!(norm("/static/..;/admin").unwrap(), "/admin");
        assert_eq!(norm("/a;jsessionid=1/b;x=2").unwrap(), "/a/b");
        let reject = PathRules {
            segment_parameters: SegmentParameters::Reject,
            ..PathRules::default()
        };
        assert!(normalize_with("/a;x", &reject).is_err());
    }

    #[test]
    fn double_encoded_separators_are_refused_unless_allowed() {
        for raw in ["/a/%252e%252e/b", "/a%252Fb", "/a%255cb", "/a%25252eb"] {
            assert_eq!(refused(raw), 400, "{raw}");
        }
        assert_eq!(ok("/a%2541"), "/a%2541");
        // The same once decoding an escaped unreserved character spells one (found by
        // the path fuzz target: `%32` is `2`, so `%25%32f` is forwarded as `%252F`).
        for raw in [
            "/a%25%32fb",
            "/a%25%32%46b",
            "/a%25%35cb",
            "/a%25%32%35%32eb",
        ] {
            assert_eq!(refused(raw), 400, "{raw}");
        }
        let allow = PathRules {
            allow_double_encoding: true,
            ..PathRules::default()
        };
        assert_eq!(normalize_with("/a%252fb", &allow).unwrap(), "/a%252fb");
    }

    #[test]
    fn an_escaped_dot_inside_a_name_is_just_a_dot() {
        assert_eq!(ok("/files/report%2Etxt"), "/files/report.txt");
    }
}
