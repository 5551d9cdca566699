//! `htu` comparison (RFC 9449 §4.3, step 9): the URL without query and fragment, after the
//! syntax- and scheme-based normalization of RFC 3986 §6.2.2 and §6.2.3 (case of scheme and
//! host, default ports, an empty path, percent-encoding case and unreserved characters).

/// Whether two URLs name the same resource for DPoP.
pub fn same(a: &str, b: &str) -> bool {
    match (normalize(a), normalize(b)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

/// The normalized `scheme://authority/path`, or `None` when `url` is not an absolute
/// http(s) URL.
pub fn normalize(url: &str) -> Option<String> {
    let url = url.split(['#', '?']).next().unwrap_or(url);
    let (scheme, rest) = url.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "https" => ":443",
        "http" => ":80",
        _ => return None,
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    let mut authority = authority.to_ascii_lowercase();
    if authority.ends_with(default_port) {
        authority.truncate(authority.len() - default_port.len());
    }
    let path = if path.is_empty() { "/" } else { path };
    Some(format!(
        "{scheme}://{authority}{}",
        percent_normalized(path)?
    ))
}

/// Uppercase hex in percent-encodings, and unreserved characters decoded (RFC 3986 §6.2.2.1,
/// §6.2.2.2). A malformed escape makes the URL unusable.
fn percent_normalized(path: &str) -> Option<String> {
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'%' {
            out.push(bytes[i] as char);
            i += 1;
            continue;
        }
        let hex = path.get(i + 1..i + 3)?;
        let value = u8::from_str_radix(hex, 16).ok()?;
        if value.is_ascii_alphanumeric() || b"-._~".contains(&value) {
            out.push(value as char);
        } else {
            out.push('%');
            out.push_str(&hex.to_ascii_uppercase());
        }
        i += 3;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equivalent_spellings_are_the_same_url() {
        let base = "https://api.exampleco.com/timesheets/7";
        for same_url in [
            "HTTPS://Api.ExampleCo.com/timesheets/7",
            "https://api.exampleco.com:443/timesheets/7",
            "https://api.exampleco.com/timesheets/7?page=2",
            "https://api.exampleco.com/timesheets/7#top",
            "https://api.exampleco.com/time%73heets/%37",
        ] {
            assert!(same(base, same_url), "{same_url}");
        }
        assert!(same("http://h:80", "http://h/"));
        assert!(same("https://h/a%2fb", "https://h/a%2Fb"));
    }

    #[test]
    fn other_urls_differ() {
        let base = "https://api.exampleco.com/timesheets/7";
        for other in [
            "http://api.exampleco.com/timesheets/7",
            "https://api.exampleco.com:8443/timesheets/7",
            "https://api.exampleco.com/timesheets/8",
            "https://api.exampleco.com/Timesheets/7",
            "https://api.exampleco.com/timesheets/7/",
            "https://api.exampleco.com/timesheets%2F7",
            "https://user@api.exampleco.com/timesheets/7",
            "/timesheets/7",
            "ftp://api.exampleco.com/timesheets/7",
            "https://api.exampleco.com/timesheets/%zz",
        ] {
            assert!(!same(base, other), "{other}");
        }
    }
}
