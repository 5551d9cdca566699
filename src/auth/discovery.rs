//! Issuer discovery: an issuer configured by its URL alone has its key set URL and
//! introspection endpoint read from its metadata, OpenID Connect Discovery's
//! `/.well-known/openid-configuration` or RFC 8414's
//! `/.well-known/oauth-authorization-server`.
//!
//! Metadata whose `issuer` is not exactly the configured one is refused (RFC 8414 §3.3,
//! the mix-up defence): otherwise a compromised or misconfigured document could point the
//! gateway at another issuer's keys.

use serde::Deserialize;

use super::jwks::FetchError;

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

/// Largest metadata document read.
const MAX_METADATA_BYTES: usize = 256 * 1024;

/// The members scopegate reads.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Metadata {
    /// Must equal the configured issuer.
    pub issuer: String,
    /// The key set.
    pub jwks_uri: Option<String>,
    /// RFC 7662's endpoint.
    pub introspection_endpoint: Option<String>,
}

/// Where an issuer's metadata may be: OpenID Connect Discovery's location first (the
/// issuer with `/.well-known/openid-configuration` appended), then RFC 8414's (the
/// well-known segment inserted between the host and the issuer's path).
pub fn metadata_urls(issuer: &str) -> Vec<String> {
    let trimmed = issuer.trim_end_matches('/');
    let mut urls = vec![format!("{trimmed}/.well-known/openid-configuration")];
    if let Ok(uri) = issuer.parse::<http::Uri>()
        && let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority())
    {
        let path = uri.path().trim_end_matches('/');
        urls.push(format!(
            "{scheme}://{authority}/.well-known/oauth-authorization-server{path}"
        ));
    }
    urls
}

/// Reads and checks `issuer`'s metadata, trying each location in turn; the endpoints it
/// names must pass [`fetch_url_problem`] (with `insecure_allow_http`, the issuer's switch)
/// as configured ones must, so a plain-http document cannot lead the gateway to fetch
/// keys or send tokens in clear.
pub async fn discover(
    client: &reqwest::Client,
    issuer: &str,
    insecure_allow_http: bool,
) -> Result<Metadata, FetchError> {
    let mut last = FetchError::Invalid("no metadata location".into());
    for url in metadata_urls(issuer) {
        // The configuration check refused such an issuer; this guards other callers.
        if let Some(why) = fetch_url_problem(&url, insecure_allow_http) {
            return Err(FetchError::Invalid(format!("the metadata location {why}")));
        }
        match fetch(client, &url).await {
            Ok(metadata) => return checked(metadata, issuer, insecure_allow_http),
            Err(e) => last = e,
        }
    }
    Err(last)
}

fn checked(
    metadata: Metadata,
    issuer: &str,
    insecure_allow_http: bool,
) -> Result<Metadata, FetchError> {
    if metadata.issuer != issuer {
        return Err(FetchError::Invalid(format!(
            "the metadata names issuer \"{}\", not the configured \"{issuer}\"",
            metadata.issuer
        )));
    }
    for url in [&metadata.jwks_uri, &metadata.introspection_endpoint]
        .into_iter()
        .flatten()
    {
        if let Some(why) = fetch_url_problem(url, insecure_allow_http) {
            return Err(FetchError::Invalid(format!(
                "the metadata's endpoint {why}"
            )));
        }
    }
    Ok(metadata)
}

async fn fetch(client: &reqwest::Client, url: &str) -> Result<Metadata, FetchError> {
    let transport = |e: reqwest::Error| FetchError::Transport(e.without_url().to_string());
    let mut response = client
        .get(url)
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(transport)?;
    if !response.status().is_success() {
        return Err(FetchError::Status(response.status().as_u16()));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(transport)? {
        if body.len() + chunk.len() > MAX_METADATA_BYTES {
            return Err(FetchError::Invalid(format!(
                "metadata larger than {MAX_METADATA_BYTES} bytes"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&body).map_err(|e| FetchError::Invalid(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_well_known_locations_are_derived_from_the_issuer() {
        assert_eq!(
            metadata_urls("https://tenant.example/"),
            [
                "https://tenant.example/.well-known/openid-configuration",
                "https://tenant.example/.well-known/oauth-authorization-server",
            ]
        );
        assert_eq!(
            metadata_urls("https://as.example/realms/exampleco"),
            [
                "https://as.example/realms/exampleco/.well-known/openid-configuration",
                "https://as.example/.well-known/oauth-authorization-server/realms/exampleco",
            ]
        );
    }

    #[test]
    fn metadata_of_another_issuer_is_refused() {
        let m = |issuer: &str| Metadata {
            issuer: issuer.into(),
            jwks_uri: Some("https://tenant.example/jwks".into()),
            introspection_endpoint: None,
        };
        let ok = |m: Metadata, issuer: &str| checked(m, issuer, false).is_ok();
        assert!(ok(m("https://tenant.example/"), "https://tenant.example/"));
        // Even a trailing slash is another issuer: `iss` is compared exactly.
        assert!(!ok(m("https://tenant.example"), "https://tenant.example/"));
        assert!(!ok(m("https://evil.example/"), "https://tenant.example/"));
    }

    #[test]
    fn discovered_endpoints_follow_the_rule_for_configured_ones() {
        let with = |jwks: &str, introspection: Option<&str>| Metadata {
            issuer: "https://tenant.example/".into(),
            jwks_uri: Some(jwks.into()),
            introspection_endpoint: introspection.map(Into::into),
        };
        let check = |m: Metadata, insecure: bool| checked(m, "https://tenant.example/", insecure);
        assert!(check(with("http://tenant.example/jwks", None), false).is_err());
        assert!(
            check(
                with(
                    "https://tenant.example/jwks",
                    Some("http://as.internal/introspect")
                ),
                false
            )
            .is_err()
        );
        assert!(
            check(
                with("http://127.0.0.1:9/jwks", Some("http://[::1]:9/i")),
                false
            )
            .is_ok()
        );
        assert!(check(with("http://tenant.example/jwks", None), true).is_ok());
        assert!(check(with("ftp://tenant.example/jwks", None), true).is_err());
        assert!(fetch_url_problem("http://localhost:8080/x", false).is_none());
        assert!(fetch_url_problem("http://idp.internal.example/", false).is_some());
    }
}
