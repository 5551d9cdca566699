//! The one way the gateway fetches from an authorization server (its metadata, its key
//! set, its introspection endpoint): no redirects, a timeout, and a body bounded in bytes.

use std::time::Duration;

use crate::ops::trace::ClientSpan;

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
    /// The answer's status, a 2xx.
    pub status: u16,
    /// The response headers (`Cache-Control` of a key set, say).
    pub headers: reqwest::header::HeaderMap,
    /// The body, at most the bound given.
    pub body: Vec<u8>,
}

/// Sends `request` and reads a 2xx answer of at most `limit` bytes, chunk by chunk, so an
/// endless or oversized body costs at most the limit.
///
/// With tracing on, the call is a client span under the current context (the request's
/// server span, a refresh's own span), and the server receives its `traceparent`.
pub async fn bounded(
    request: reqwest::RequestBuilder,
    limit: usize,
) -> Result<Fetched, FetchError> {
    let (client, request) = request.build_split();
    let mut request = request.map_err(|e| FetchError::Transport(without_url(e)))?;
    let url = request.url();
    let Some(span) = ClientSpan::start(
        request.method().as_str(),
        url.host_str(),
        url.port_or_known_default(),
    ) else {
        return send(&client, request, limit).await;
    };
    span.inject(request.headers_mut());
    let result = send(&client, request, limit).await;
    let (status, error) = match &result {
        Ok(fetched) => (Some(fetched.status), None),
        Err(FetchError::Status(status)) => (Some(*status), Some("status")),
        Err(FetchError::Transport(_)) => (None, Some("transport")),
        Err(FetchError::TooLarge(_)) => (None, Some("too_large")),
        Err(FetchError::Invalid(_) | FetchError::NoUsableKey(_)) => (None, Some("invalid")),
    };
    span.end(status, error);
    result
}

async fn send(
    client: &reqwest::Client,
    request: reqwest::Request,
    limit: usize,
) -> Result<Fetched, FetchError> {
    let transport = |e: reqwest::Error| FetchError::Transport(without_url(e));
    let mut response = client.execute(request).await.map_err(transport)?;
    if !response.status().is_success() {
        return Err(FetchError::Status(response.status().as_u16()));
    }
    let status = response.status().as_u16();
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
    Ok(Fetched {
        status,
        headers,
        body,
    })
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
