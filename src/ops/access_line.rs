//! One access-log line, formatted by hand into a byte buffer: the request thread pays for
//! a few copies and one timestamp, not for a tracing subscriber's field visitors.
//!
//! The fields are those of the `request` event scopegate wrote through `tracing` before:
//! `method`, `path`, `route`, `decision`, `reason`, `status`, `latency_ms`, `subject`.
//! Text lines read like tracing-subscriber's (`2026-12-01T09:00:00.123456Z  INFO
//! scopegate::access: request method=GET path="/timesheets" …`, strings quoted and
//! escaped as Rust's `{:?}` does); JSON lines are one object, strings escaped by
//! `serde_json`, with the `timestamp`, `level`, `message` and `target` keys of
//! tracing-subscriber's flattened JSON.

use std::cell::RefCell;
use std::io::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry::trace::{SpanId, TraceId};

use crate::config::LogFormat;
use crate::ground::{Outcome, Reason};

/// The `target` of access lines, as log stacks filter on it.
pub const TARGET: &str = "scopegate::access";

/// Longest method, path and subject written, in bytes; longer ones are cut, ending in `…`,
/// so that a line, and the writer's queue of them, stays bounded in bytes.
pub const MAX_METHOD: usize = 32;
/// See [`MAX_METHOD`].
pub const MAX_PATH: usize = 1024;
/// See [`MAX_METHOD`].
pub const MAX_SUBJECT: usize = 256;

/// What one access line says about a request.
#[derive(Debug, Clone, Copy)]
pub struct AccessEntry<'a> {
    /// Request method.
    pub method: &'a str,
    /// Request path, without the query (it may hold credentials).
    pub path: &'a str,
    /// Route id, `none` when no route matched.
    pub route: &'a str,
    /// Allow, deny or error.
    pub decision: Outcome,
    /// Why.
    pub reason: Reason,
    /// Status sent to the client; 0 if none was.
    pub status: u16,
    /// Time from the request's headers to this line.
    pub latency: Duration,
    /// When the line is written (its timestamp).
    pub at: SystemTime,
    /// The verified token's `sub`; `None` when no token was verified or it had none.
    pub subject: Option<&'a str>,
    /// The client's protocol: `HTTP/1.0`, `HTTP/1.1` or `HTTP/2`.
    pub protocol: &'static str,
    /// The request's trace and server span, when tracing is on: the key from a log line to
    /// its trace.
    pub trace: Option<(TraceId, SpanId)>,
}

/// Appends one line (with its newline) for `entry` to `out`.
pub fn format(out: &mut Vec<u8>, format: LogFormat, entry: &AccessEntry) {
    let method = cut(entry.method, MAX_METHOD);
    let path = cut(entry.path, MAX_PATH);
    let subject = entry.subject.map(|s| cut(s, MAX_SUBJECT));
    let entry = &AccessEntry {
        method: &method,
        path: &path,
        subject: subject.as_deref(),
        ..*entry
    };
    match format {
        LogFormat::Text => text(out, entry),
        LogFormat::Json => json(out, entry),
    }
}

/// `s`, or its first `max` bytes (on a character boundary) and `…`.
fn cut(s: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if s.len() <= max {
        return s.into();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end]).into()
}

fn text(out: &mut Vec<u8>, e: &AccessEntry) {
    timestamp(out, e.at);
    out.extend_from_slice(b"  INFO ");
    out.extend_from_slice(TARGET.as_bytes());
    out.extend_from_slice(b": request method=");
    // A method is a token (RFC 9110 §9.1): no quotes or spaces to escape.
    out.extend_from_slice(e.method.as_bytes());
    out.extend_from_slice(b" path=");
    debug_str(out, e.path);
    out.extend_from_slice(b" route=");
    debug_str(out, e.route);
    out.extend_from_slice(b" decision=\"");
    out.extend_from_slice(e.decision.as_str().as_bytes());
    out.extend_from_slice(b"\" reason=\"");
    out.extend_from_slice(e.reason.as_str().as_bytes());
    out.extend_from_slice(b"\" status=");
    digits(out, u64::from(e.status), 1);
    out.extend_from_slice(b" latency_ms=");
    millis(out, e.latency);
    out.extend_from_slice(b" protocol=");
    out.extend_from_slice(e.protocol.as_bytes());
    out.extend_from_slice(b" subject=");
    debug_str(out, e.subject.unwrap_or("-"));
    if let Some((trace_id, span_id)) = e.trace {
        let _ = write!(out, " trace_id={trace_id:032x} span_id={span_id:016x}");
    }
    out.push(b'\n');
}

fn json(out: &mut Vec<u8>, e: &AccessEntry) {
    out.extend_from_slice(b"{\"timestamp\":\"");
    timestamp(out, e.at);
    out.extend_from_slice(b"\",\"level\":\"INFO\",\"message\":\"request\",\"method\":");
    json_str(out, e.method);
    out.extend_from_slice(b",\"path\":");
    json_str(out, e.path);
    out.extend_from_slice(b",\"route\":");
    json_str(out, e.route);
    out.extend_from_slice(b",\"decision\":\"");
    out.extend_from_slice(e.decision.as_str().as_bytes());
    out.extend_from_slice(b"\",\"reason\":\"");
    out.extend_from_slice(e.reason.as_str().as_bytes());
    out.extend_from_slice(b"\",\"status\":");
    digits(out, u64::from(e.status), 1);
    out.extend_from_slice(b",\"latency_ms\":");
    millis(out, e.latency);
    out.extend_from_slice(b",\"subject\":");
    json_str(out, e.subject.unwrap_or("-"));
    out.extend_from_slice(b",\"protocol\":\"");
    out.extend_from_slice(e.protocol.as_bytes());
    if let Some((trace_id, span_id)) = e.trace {
        let _ = write!(
            out,
            "\",\"trace_id\":\"{trace_id:032x}\",\"span_id\":\"{span_id:016x}"
        );
    }
    out.extend_from_slice(b"\",\"target\":\"");
    out.extend_from_slice(TARGET.as_bytes());
    out.extend_from_slice(b"\"}\n");
}

/// A JSON string literal; `serde_json` escapes quotes, backslashes and control characters.
/// A plain string (see [`debug_str`]) needs none of that and is copied as it is.
fn json_str(out: &mut Vec<u8>, s: &str) {
    if plain(s.as_bytes()) {
        quoted(out, s);
    } else {
        // Writing a `&str` to a `Vec` cannot fail.
        let _ = serde_json::to_writer(&mut *out, s);
    }
}

/// A quoted string as `{:?}` writes it. Paths and route ids are nearly always printable
/// ASCII without quotes or backslashes, which is copied as it is; anything else takes the
/// standard library's escaping (control characters, `"`, `\`, non-printable Unicode).
fn debug_str(out: &mut Vec<u8>, s: &str) {
    if plain(s.as_bytes()) {
        quoted(out, s);
    } else {
        escaped(out, s);
    }
}

/// Kept out of line: the formatting machinery would otherwise make every caller save and
/// restore registers it only needs here.
#[cold]
#[inline(never)]
fn escaped(out: &mut Vec<u8>, s: &str) {
    let _ = write!(out, "{s:?}");
}

fn quoted(out: &mut Vec<u8>, s: &str) {
    out.reserve(s.len() + 2);
    out.push(b'"');
    out.extend_from_slice(s.as_bytes());
    out.push(b'"');
}

/// Whether every byte is one that `{:?}` and JSON both write as it is: printable ASCII
/// but `"` and `\`. Eight bytes at a time (the bit tricks of "Bit Twiddling Hacks":
/// each test is exact for "some byte in the word"); the last word overlaps the one
/// before it rather than ending in a loop over single bytes, and a string shorter than a
/// word is padded with a plain byte.
fn plain(bytes: &[u8]) -> bool {
    let word = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("eight"));
    if bytes.len() < 8 {
        let mut padded = [b'a'; 8];
        padded[..bytes.len()].copy_from_slice(bytes);
        return plain_word(u64::from_le_bytes(padded));
    }
    let last = bytes.len() - 8;
    let mut at = 0;
    while at < last {
        if !plain_word(word(at)) {
            return false;
        }
        at += 8;
    }
    plain_word(word(last))
}

/// [`plain`] for one word.
fn plain_word(x: u64) -> bool {
    const fn splat(b: u8) -> u64 {
        0x0101_0101_0101_0101 * b as u64
    }
    const HIGH: u64 = splat(0x80);
    // High bit of some byte set when a byte of `x` is below `n` (n <= 0x80).
    let less = |x: u64, n: u8| x.wrapping_sub(splat(n)) & !x;
    let equal = |x: u64, b: u8| less(x ^ splat(b), 1);
    (x | less(x, 0x20) | equal(x, b'"') | equal(x, b'\\') | equal(x, 0x7f)) & HIGH == 0
}

/// Milliseconds with microsecond precision, e.g. `0.123` or `12.000`.
fn millis(out: &mut Vec<u8>, d: Duration) {
    let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
    digits(out, micros / 1000, 1);
    out.push(b'.');
    fixed::<3>(out, micros % 1000);
}

thread_local! {
    /// The last second formatted on this thread and its `YYYY-MM-DDTHH:MM:SS` text: the
    /// calendar arithmetic runs once per second per thread.
    static SECOND: RefCell<(u64, [u8; 19])> = const { RefCell::new((u64::MAX, [0; 19])) };
}

/// RFC 3339 in UTC with microseconds, `2026-12-01T09:00:00.123456Z`, as tracing-subscriber
/// writes it.
fn timestamp(out: &mut Vec<u8>, now: SystemTime) {
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    SECOND.with(|cell| {
        let mut cached = cell.borrow_mut();
        if cached.0 != secs {
            *cached = (secs, civil_second(secs));
        }
        out.extend_from_slice(&cached.1);
    });
    out.push(b'.');
    fixed::<6>(out, u64::from(since.subsec_micros()));
    out.push(b'Z');
}

/// `n` in decimal, zero-padded to `width`. `itoa`, not `write!`: formatting through
/// `io::Write` costs about 400 instructions a number, nearly half of the whole line.
fn digits(out: &mut Vec<u8>, n: u64, width: usize) {
    let mut buffer = itoa::Buffer::new();
    let text = buffer.format(n);
    out.resize(out.len() + width.saturating_sub(text.len()), b'0');
    out.extend_from_slice(text.as_bytes());
}

/// The last `W` decimal digits of `n`, zero-padded: the fractions of the timestamp and
/// the latency, a fixed number of digits that needs no loop.
fn fixed<const W: usize>(out: &mut Vec<u8>, mut n: u64) {
    let mut buf = [b'0'; W];
    for digit in buf.iter_mut().rev() {
        *digit = b'0' + (n % 10) as u8;
        n /= 10;
    }
    out.extend_from_slice(&buf);
}

/// `YYYY-MM-DDTHH:MM:SS` of a Unix second (days to the civil date: H. Hinnant's algorithm).
fn civil_second(secs: u64) -> [u8; 19] {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let mut text = [0u8; 19];
    let mut cursor = &mut text[..];
    let _ = write!(
        cursor,
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    );
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(subject: Option<&str>) -> AccessEntry<'_> {
        AccessEntry {
            method: "GET",
            path: "/timesheets/7",
            route: "get-timesheet",
            decision: Outcome::Allow,
            reason: Reason::Authorized,
            status: 200,
            latency: Duration::from_micros(1234),
            // 2026-12-01T09:00:00.000042Z
            at: UNIX_EPOCH + Duration::new(1_796_115_600, 42_000),
            subject,
            protocol: "HTTP/1.1",
            trace: None,
        }
    }

    fn line(format: LogFormat, e: &AccessEntry) -> String {
        let mut out = Vec::new();
        super::format(&mut out, format, e);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn numbers_are_written_in_decimal_zero_padded_to_their_width() {
        for (n, width) in [
            (0, 1),
            (0, 3),
            (7, 1),
            (42, 6),
            (99, 2),
            (100, 1),
            (1234, 3),
        ]
        .into_iter()
        .chain([(u64::MAX, 1), (123_456, 6), (1_000_001, 3)])
        {
            let mut out = Vec::new();
            digits(&mut out, n, width);
            assert_eq!(String::from_utf8(out).unwrap(), format!("{n:0width$}"));
        }
        let mut out = Vec::new();
        fixed::<3>(&mut out, 7);
        fixed::<6>(&mut out, 123_456);
        fixed::<3>(&mut out, 1234);
        assert_eq!(out, b"007123456234");
    }

    #[test]
    fn the_word_at_a_time_check_agrees_with_the_byte_at_a_time_one() {
        let by_byte = |s: &[u8]| {
            s.iter()
                .all(|&b| b.is_ascii_graphic() && b != b'"' && b != b'\\' || b == b' ')
        };
        // Every byte value at every position of a two-word string and of a tail.
        assert!(plain(b""));
        for len in [1, 7, 8, 9, 16, 19] {
            for at in 0..len {
                for b in 0..=255u8 {
                    let mut s = vec![b'a'; len];
                    s[at] = b;
                    assert_eq!(plain(&s), by_byte(&s), "byte {b:#x} at {at} of {len}");
                }
            }
        }
    }

    #[test]
    fn text_lines_read_like_the_tracing_line_they_replace() {
        assert_eq!(
            line(LogFormat::Text, &entry(Some("auth0|alice"))),
            "2026-12-01T09:00:00.000042Z  INFO scopegate::access: request method=GET \
             path=\"/timesheets/7\" route=\"get-timesheet\" decision=\"allow\" \
             reason=\"authorized\" status=200 latency_ms=1.234 protocol=HTTP/1.1 \
             subject=\"auth0|alice\"\n"
        );
    }

    #[test]
    fn json_lines_are_one_object_with_every_field() {
        let text = line(LogFormat::Json, &entry(None));
        assert!(text.ends_with("}\n") && text.matches('\n').count() == 1);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "timestamp": "2026-12-01T09:00:00.000042Z",
                "level": "INFO",
                "message": "request",
                "method": "GET",
                "path": "/timesheets/7",
                "route": "get-timesheet",
                "decision": "allow",
                "reason": "authorized",
                "status": 200,
                "latency_ms": 1.234,
                "subject": "-",
                "protocol": "HTTP/1.1",
                "target": "scopegate::access",
            })
        );
    }

    #[test]
    fn a_subject_with_quotes_newlines_and_unicode_stays_on_one_line_in_both_formats() {
        let subject = "evil\"\n\\ \u{1b}[31m é\u{2028}";
        let json = line(LogFormat::Json, &entry(Some(subject)));
        assert_eq!(json.matches('\n').count(), 1, "{json}");
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["subject"], subject);

        let text = line(LogFormat::Text, &entry(Some(subject)));
        assert_eq!(text.matches('\n').count(), 1, "{text}");
        assert!(text.ends_with(&format!("subject={subject:?}\n")), "{text}");
        assert!(!text.contains('\u{1b}'));
    }

    #[test]
    fn a_traced_request_carries_its_trace_and_span_ids_in_both_formats() {
        let mut e = entry(None);
        e.trace = Some((
            TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap(),
            SpanId::from_hex("00f067aa0ba902b7").unwrap(),
        ));
        assert!(line(LogFormat::Text, &e).ends_with(
            " subject=\"-\" trace_id=4bf92f3577b34da6a3ce929d0e0e4736 span_id=00f067aa0ba902b7\n"
        ));
        let v: serde_json::Value = serde_json::from_str(&line(LogFormat::Json, &e)).unwrap();
        assert_eq!(v["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(v["span_id"], "00f067aa0ba902b7");
        assert_eq!(v["target"], TARGET);
        let untraced: serde_json::Value =
            serde_json::from_str(&line(LogFormat::Json, &entry(None))).unwrap();
        assert!(untraced.get("trace_id").is_none());
    }

    #[test]
    fn a_path_with_a_quote_is_escaped_as_debug_does() {
        let mut e = entry(None);
        e.path = "/a\"b";
        assert!(line(LogFormat::Text, &e).contains(r#" path="/a\"b" "#));
        let v: serde_json::Value = serde_json::from_str(&line(LogFormat::Json, &e)).unwrap();
        assert_eq!(v["path"], "/a\"b");
    }

    #[test]
    fn long_fields_are_cut_on_a_character_boundary() {
        let mut e = entry(None);
        let path = format!("/{}", "é".repeat(2000));
        e.path = &path;
        let v: serde_json::Value = serde_json::from_str(&line(LogFormat::Json, &e)).unwrap();
        let written = v["path"].as_str().unwrap();
        assert!(
            written.len() <= MAX_PATH + '…'.len_utf8(),
            "{}",
            written.len()
        );
        assert!(written.ends_with('…') && path.starts_with(written.trim_end_matches('…')));
        let subject = "s".repeat(1000);
        let text = line(LogFormat::Text, &entry(Some(&subject)));
        assert!(text.len() < 220 + MAX_SUBJECT, "{text}");
    }

    #[test]
    fn timestamps_match_the_calendar() {
        for (secs, want) in [
            (0, "1970-01-01T00:00:00"),
            (951_782_400, "2000-02-29T00:00:00"),
            (1_709_251_199, "2024-02-29T23:59:59"),
            (4_102_444_800, "2100-01-01T00:00:00"),
        ] {
            assert_eq!(std::str::from_utf8(&civil_second(secs)).unwrap(), want);
        }
    }

    #[test]
    fn latency_keeps_microseconds() {
        let mut out = Vec::new();
        millis(&mut out, Duration::from_nanos(12_000_999));
        assert_eq!(out, b"12.000");
        out.clear();
        millis(&mut out, Duration::from_micros(7));
        assert_eq!(out, b"0.007");
    }

    #[test]
    fn digits_are_padded_to_their_width() {
        for (n, width, want) in [
            (0, 1, "0"),
            (200, 1, "200"),
            (42, 6, "000042"),
            (999_999, 6, "999999"),
            (u64::MAX, 1, "18446744073709551615"),
        ] {
            let mut out = Vec::new();
            digits(&mut out, n, width);
            assert_eq!(String::from_utf8(out).unwrap(), want);
        }
    }
}
