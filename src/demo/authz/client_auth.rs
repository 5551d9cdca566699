//! Client authentication (RFC 6749 §2.3), shared by the token, introspection and revocation
//! endpoints: HTTP Basic or form fields for a client with a secret, a bare `client_id` for a
//! public one; never two methods at once. No secret is ever logged or echoed.

use axum::http::{HeaderMap, HeaderValue, header};
use base64::Engine as _;

use super::directory::{self, Client};
use super::errors::{ErrorCode, OAuthError};

/// The client fields of a request's form.
#[derive(Clone, Copy, Default)]
pub struct FormCredentials<'a> {
    /// `client_id`, if sent in the form.
    pub client_id: Option<&'a str>,
    /// `client_secret`, if sent in the form.
    pub client_secret: Option<&'a str>,
}

/// The registered client these credentials prove, or `invalid_client` (401).
pub fn authenticate_client(
    headers: &HeaderMap,
    form: FormCredentials<'_>,
) -> Result<&'static Client, OAuthError> {
    let invalid_client = |why: &'static str| OAuthError::new(ErrorCode::InvalidClient, why);
    let mut authorization = headers.get_all(header::AUTHORIZATION).iter();
    let basic = match (authorization.next(), authorization.next()) {
        (None, _) => None,
        (Some(value), None) => basic_credentials(value)?,
        (Some(_), Some(_)) => {
            return Err(OAuthError::invalid_request(
                "more than one Authorization header",
            ));
        }
    };
    let (id, secret) = match basic {
        Some((id, secret)) => {
            if form.client_secret.is_some() {
                return Err(OAuthError::invalid_request(
                    "use one client authentication method: HTTP Basic or client_secret, not both",
                ));
            }
            if form.client_id.is_some_and(|form_id| form_id != id) {
                return Err(OAuthError::invalid_request(
                    "client_id differs from the HTTP Basic user",
                ));
            }
            (id, Some(secret))
        }
        None => (
            form.client_id
                .map(str::to_owned)
                .ok_or_else(|| invalid_client("client_id is required"))?,
            form.client_secret.map(str::to_owned),
        ),
    };
    let client = directory::client(&id).ok_or_else(|| invalid_client("unknown client"))?;
    match (client.is_confidential(), secret) {
        (true, Some(secret)) if client.secret_matches(&secret) => Ok(client),
        (true, _) => Err(invalid_client("client authentication failed")),
        (false, None) => Ok(client),
        (false, Some(_)) => Err(invalid_client("this public client has no secret")),
    }
}

/// `Authorization: Basic` credentials, form-urlencoded inside as §2.3.1 requires. Another
/// scheme is no client authentication at all.
fn basic_credentials(value: &HeaderValue) -> Result<Option<(String, String)>, OAuthError> {
    let malformed =
        || OAuthError::new(ErrorCode::InvalidClient, "malformed HTTP Basic credentials");
    let Some((scheme, encoded)) = value.to_str().ok().and_then(|v| v.split_once(' ')) else {
        return Ok(None);
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Ok(None);
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| malformed())?;
    let decoded = String::from_utf8(decoded).map_err(|_| malformed())?;
    let (id, secret) = decoded.split_once(':').ok_or_else(malformed)?;
    let unescape = |s: &str| {
        percent_encoding::percent_decode_str(&s.replace('+', " "))
            .decode_utf8()
            .map(|s| s.into_owned())
            .map_err(|_| malformed())
    };
    Ok(Some((unescape(id)?, unescape(secret)?)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form<'a>(client_id: Option<&'a str>, client_secret: Option<&'a str>) -> FormCredentials<'a> {
        FormCredentials {
            client_id,
            client_secret,
        }
    }

    fn basic(user: &str, password: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        headers.insert(
            header::AUTHORIZATION,
            format!("Basic {encoded}").parse().unwrap(),
        );
        headers
    }

    fn refused(headers: &HeaderMap, form: FormCredentials<'_>) -> ErrorCode {
        authenticate_client(headers, form).unwrap_err().code
    }

    #[test]
    fn the_batch_client_authenticates_with_basic_or_form_secret() {
        let secret = directory::BATCH_CLIENT_SECRET;
        let via_basic = authenticate_client(&basic("timesheets-batch", secret), form(None, None));
        assert_eq!(via_basic.unwrap().id, "timesheets-batch");
        let via_form = authenticate_client(
            &HeaderMap::new(),
            form(Some("timesheets-batch"), Some(secret)),
        );
        assert_eq!(via_form.unwrap().id, "timesheets-batch");
    }

    #[test]
    fn the_resource_server_authenticates_with_its_secret_only() {
        let id = directory::RESOURCE_SERVER_CLIENT_ID;
        let secret = directory::RESOURCE_SERVER_CLIENT_SECRET;
        let client = authenticate_client(&basic(id, secret), form(None, None)).unwrap();
        assert_eq!(client.id, id);
        assert_eq!(
            refused(&basic(id, "guess"), form(None, None)),
            ErrorCode::InvalidClient
        );
        assert_eq!(
            refused(&HeaderMap::new(), form(Some(id), None)),
            ErrorCode::InvalidClient
        );
    }

    #[test]
    fn wrong_missing_or_doubled_client_credentials_are_refused() {
        let none = HeaderMap::new();
        let secret = directory::BATCH_CLIENT_SECRET;
        assert_eq!(
            refused(&basic("timesheets-batch", "guess"), form(None, None)),
            ErrorCode::InvalidClient
        );
        assert_eq!(
            refused(&none, form(Some("timesheets-batch"), None)),
            ErrorCode::InvalidClient
        );
        assert_eq!(refused(&none, form(None, None)), ErrorCode::InvalidClient);
        assert_eq!(
            refused(&none, form(Some("nobody"), None)),
            ErrorCode::InvalidClient
        );
        assert_eq!(
            refused(&none, form(Some("timesheets-mobile"), Some("x"))),
            ErrorCode::InvalidClient
        );
        assert_eq!(
            refused(&basic("timesheets-batch", secret), form(None, Some(secret))),
            ErrorCode::InvalidRequest
        );
        let mut garbage = HeaderMap::new();
        garbage.insert(header::AUTHORIZATION, "Basic %%%".parse().unwrap());
        assert_eq!(
            refused(&garbage, form(None, None)),
            ErrorCode::InvalidClient
        );
    }

    #[test]
    fn basic_credentials_are_form_urlencoded_inside() {
        let headers = basic("a%3Ab", "x+y%25");
        let value = headers.get(header::AUTHORIZATION).unwrap();
        assert_eq!(
            basic_credentials(value).unwrap(),
            Some(("a:b".to_owned(), "x y%".to_owned()))
        );
    }
}
