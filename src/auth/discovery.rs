//! Issuer discovery: an issuer configured by its URL alone has its key set URL and
//! introspection endpoint read from its metadata, OpenID Connect Discovery's
//! `/.well-known/openid-configuration` or RFC 8414's
//! `/.well-known/oauth-authorization-server`.
//!
//! Metadata whose `issuer` is not exactly the configured one is refused (RFC 8414 §3.3,
//! the mix-up defence): otherwise a compromised or misconfigured document could point the
//! gateway at another issuer's keys.

use serde::Deserialize;

use super::fetch::{self, FetchError};

pub use crate::ground::url::{fetch_url_problem, is_loopback_url};

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
    let request = client
        .get(url)
        .header(reqwest::header::ACCEPT, "application/json");
    let fetched = fetch::bounded(request, MAX_METADATA_BYTES).await?;
    serde_json::from_slice(&fetched.body).map_err(|e| FetchError::Invalid(e.to_string()))
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
