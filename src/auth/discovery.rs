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

/// Reads and checks `issuer`'s metadata, trying each location in turn.
pub async fn discover(client: &reqwest::Client, issuer: &str) -> Result<Metadata, FetchError> {
    let mut last = FetchError::Invalid("no metadata location".into());
    for url in metadata_urls(issuer) {
        match fetch(client, &url).await {
            Ok(metadata) => return checked(metadata, issuer),
            Err(e) => last = e,
        }
    }
    Err(last)
}

fn checked(metadata: Metadata, issuer: &str) -> Result<Metadata, FetchError> {
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
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            return Err(FetchError::Invalid(format!(
                "the metadata's endpoint \"{url}\" is not an http(s) URL"
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
        assert!(checked(m("https://tenant.example/"), "https://tenant.example/").is_ok());
        // Even a trailing slash is another issuer: `iss` is compared exactly.
        assert!(checked(m("https://tenant.example"), "https://tenant.example/").is_err());
        assert!(checked(m("https://evil.example/"), "https://tenant.example/").is_err());
    }
}
