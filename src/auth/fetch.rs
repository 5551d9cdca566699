//! The one way the gateway fetches from an authorization server (its metadata, its key
//! set, its introspection endpoint): no redirects, a timeout, and a body bounded in bytes.

use std::time::Duration;

/// Why a fetch failed; logged and counted, and what was fetched before keeps serving.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// Connection refused, timeout, TLS failure.
    #[error("request failed: {0}")]
    Transport(String),
    /// Not a 2xx answer.
    #[error("the server answered {0}")]
    Status(u16),
    /// Not the document expected.
    #[error("invalid document: {0}")]
    Invalid(String),
    /// The body is larger than its bound.
    #[error("the answer is larger than {0} bytes")]
    TooLarge(usize),
    /// A JWK Set without a single key this issuer may use.
    #[error("no usable signing key in the set ({0} keys skipped)")]
    NoUsableKey(usize),
}

/// An HTTP client for an authorization server. A redirect is a failed fetch: it could lead
/// anywhere, `https` to `http` included, and would carry an introspection call's client
/// secret and token with it.
pub fn client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("scopegate/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("the HTTP client's settings are valid")
}

/// A successful answer: its headers and its whole body.
pub struct Fetched {
    /// The response headers (`Cache-Control` of a key set, say).
    pub headers: reqwest::header::HeaderMap,
    /// The body, at most the bound given.
    pub body: Vec<u8>,
}

/// Sends `request` and reads a 2xx answer of at most `limit` bytes, chunk by chunk, so an
/// endless or oversized body costs at most the limit.
pub async fn bounded(
    request: reqwest::RequestBuilder,
    limit: usize,
) -> Result<Fetched, FetchError> {
    let transport = |e: reqwest::Error| FetchError::Transport(without_url(e));
    let mut response = request.send().await.map_err(transport)?;
    if !response.status().is_success() {
        return Err(FetchError::Status(response.status().as_u16()));
    }
    if response.content_length().is_some_and(|n| n > limit as u64) {
        return Err(FetchError::TooLarge(limit));
    }
    let headers = std::mem::take(response.headers_mut());
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(transport)? {
        if body.len() + chunk.len() > limit {
            return Err(FetchError::TooLarge(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Fetched { headers, body })
}

/// reqwest errors print the URL; keep messages to the cause (URLs may carry credentials).
pub fn without_url(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut cause = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        cause = format!("{cause}: {s}");
        source = s.source();
    }
    cause
}
