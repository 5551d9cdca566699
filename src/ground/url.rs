//! The one rule for every URL the gateway fetches from: `https`, loopback, or an explicit
//! per-issuer opt-in. The configuration checks configured URLs with it, discovery the
//! discovered ones.

/// The one rule for every URL the gateway fetches from for an issuer (its metadata, its
/// key set, its introspection endpoint), configured or discovered: `https://`, or plain
/// `http://` on this machine (`localhost`, 127.0.0.0/8, `::1`), or plain `http://`
/// elsewhere when the issuer says `insecure_allow_http`. Anyone on the path of a plain
/// fetch could swap the metadata or the keys, and so forge any token, or read the
/// gateway's client secret and every opaque token it introspects. `None` when `url`
/// passes; otherwise why not.
pub fn fetch_url_problem(url: &str, insecure_allow_http: bool) -> Option<String> {
    if url.starts_with("https://") {
        return None;
    }
    if !url.starts_with("http://") {
        return Some(format!("\"{url}\" is not an http(s) URL"));
    }
    if insecure_allow_http || is_loopback_url(url) {
        return None;
    }
    Some(format!(
        "\"{url}\" is plain http to another host: anyone on the path could replace the metadata or the keys, or read the tokens and the client secret sent there (use https, or set insecure_allow_http: true)"
    ))
}

/// Whether a URL's host is this machine (`localhost`, 127.0.0.0/8, `::1`): plain http
/// there never crosses a network.
pub fn is_loopback_url(url: &str) -> bool {
    let Some(host) = url
        .parse::<http::Uri>()
        .ok()
        .and_then(|u| u.host().map(str::to_owned))
    else {
        return false;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}
