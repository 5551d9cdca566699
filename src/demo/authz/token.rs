//! The token endpoint (RFC 6749 §3.2): `authorization_code` with PKCE for the mobile app,
//! `client_credentials` for the batch client, rotating `refresh_token`. Every refusal is a
//! §5.2 JSON error; no credential is ever logged or echoed.

use std::sync::Arc;
use std::time::Duration;

use axum::Form;
use axum::Json;
use axum::extract::State;
use axum::extract::rejection::FormRejection;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::claims::{ACCESS_TOKEN_SECONDS, Principal, mint};
use super::directory::{self, Client, ClientKind};
use super::errors::{ErrorCode, OAuthError};
use super::{AuthState, REFRESH_SECONDS, RefreshGrant};
use crate::demo::pkce;

/// The token request's form fields; each grant reads the ones it needs. No `Debug`: it
/// holds secrets.
#[derive(Deserialize)]
pub struct TokenForm {
    grant_type: Option<String>,
    code: Option<String>,
    redirect_uri: Option<String>,
    code_verifier: Option<String>,
    refresh_token: Option<String>,
    scope: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
}

/// A successful token response (§5.1).
#[derive(Serialize)]
struct TokenResponse {
    access_token: String,
    token_type: &'static str,
    expires_in: u64,
    scope: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
}

impl IntoResponse for TokenResponse {
    fn into_response(self) -> Response {
        let mut response = Json(self).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        response
    }
}

/// `POST /oauth/token`.
pub async fn token(
    State(state): State<Arc<AuthState>>,
    headers: HeaderMap,
    form: Result<Form<TokenForm>, FormRejection>,
) -> Response {
    let result = match form {
        Ok(Form(form)) => exchange(&state, &headers, &form),
        Err(e) => Err(OAuthError::invalid_request(format!(
            "the request body must be an application/x-www-form-urlencoded form with each parameter once ({})",
            e.body_text()
        ))),
    };
    match result {
        Ok(tokens) => tokens.into_response(),
        Err(e) => {
            tracing::info!(error = e.code.as_str(), description = %e.description, "token request refused");
            e.into_response()
        }
    }
}

fn exchange(
    state: &AuthState,
    headers: &HeaderMap,
    form: &TokenForm,
) -> Result<TokenResponse, OAuthError> {
    let grant = form
        .grant_type
        .as_deref()
        .ok_or_else(|| OAuthError::invalid_request("grant_type is required"))?;
    if !matches!(
        grant,
        "authorization_code" | "client_credentials" | "refresh_token"
    ) {
        return Err(OAuthError::new(
            ErrorCode::UnsupportedGrantType,
            "grant_type must be authorization_code, client_credentials or refresh_token",
        ));
    }
    let client = authenticate_client(headers, form)?;
    let jkt = dpop_key(state, headers)?;
    let jkt = jkt.as_deref();
    let mut tokens = match grant {
        "authorization_code" => authorization_code(state, client, form, jkt),
        "client_credentials" => client_credentials(state, client, form, jkt),
        _ => refresh_token(state, client, form, jkt),
    }?;
    if jkt.is_some() {
        tokens.token_type = "DPoP";
    }
    Ok(tokens)
}

/// RFC 9449 §5: a `DPoP` proof at the token endpoint binds the access token to its key
/// (`cnf.jkt`); the gateway's own proof check verifies it.
fn dpop_key(state: &AuthState, headers: &HeaderMap) -> Result<Option<String>, OAuthError> {
    use crate::auth::dpop::proof::{self, ProofRules, ProofTarget};
    let refused = |what: &str| {
        OAuthError::new(
            ErrorCode::InvalidDpopProof,
            format!("the DPoP proof is not acceptable: {what}"),
        )
    };
    let mut values = headers.get_all("dpop").iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return match headers.contains_key("dpop") {
            true => Err(refused("send exactly one")),
            false => Ok(None),
        };
    };
    let value = value.to_str().map_err(|_| refused("not ASCII"))?;
    let rules = ProofRules {
        algorithms: vec![
            jsonwebtoken::Algorithm::ES256,
            jsonwebtoken::Algorithm::EdDSA,
            jsonwebtoken::Algorithm::PS256,
            jsonwebtoken::Algorithm::RS256,
        ],
        iat_window: 60,
    };
    let htu = format!("{}oauth/token", state.issuer);
    let target = ProofTarget {
        method: "POST",
        htu: &htu,
        token: None,
    };
    proof::check(value, &target, &rules, crate::demo::unix_now())
        .map(|p| Some(p.jkt))
        .map_err(|e| refused(&e.to_string()))
}

/// Identifies the client (§2.3): HTTP Basic or form fields for the confidential client, a
/// bare `client_id` for the public one; never two methods at once.
fn authenticate_client(
    headers: &HeaderMap,
    form: &TokenForm,
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
            if form
                .client_id
                .as_ref()
                .is_some_and(|form_id| *form_id != id)
            {
                return Err(OAuthError::invalid_request(
                    "client_id differs from the HTTP Basic user",
                ));
            }
            (id, Some(secret))
        }
        None => (
            form.client_id
                .clone()
                .ok_or_else(|| invalid_client("client_id is required"))?,
            form.client_secret.clone(),
        ),
    };
    let client = directory::client(&id).ok_or_else(|| invalid_client("unknown client"))?;
    match (&client.kind, secret) {
        (ClientKind::Confidential { .. }, Some(secret)) if client.secret_matches(&secret) => {
            Ok(client)
        }
        (ClientKind::Confidential { .. }, _) => Err(invalid_client("client authentication failed")),
        (ClientKind::Public { .. }, None) => Ok(client),
        (ClientKind::Public { .. }, Some(_)) => {
            Err(invalid_client("this public client has no secret"))
        }
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

fn authorization_code(
    state: &AuthState,
    client: &'static Client,
    form: &TokenForm,
    jkt: Option<&str>,
) -> Result<TokenResponse, OAuthError> {
    if !matches!(client.kind, ClientKind::Public { .. }) {
        return Err(OAuthError::new(
            ErrorCode::UnauthorizedClient,
            "this client may use client_credentials only",
        ));
    }
    let required = |value: &Option<String>, name: &str| {
        value
            .clone()
            .ok_or_else(|| OAuthError::invalid_request(format!("{name} is required")))
    };
    let code = required(&form.code, "code")?;
    let redirect_uri = required(&form.redirect_uri, "redirect_uri")?;
    let verifier = required(&form.code_verifier, "code_verifier")?;
    if !pkce::is_valid_verifier(&verifier) {
        return Err(OAuthError::invalid_request(
            "code_verifier must be 43 to 128 characters from A-Z a-z 0-9 - . _ ~",
        ));
    }
    // Any attempt redeems the code, right or wrong: a stolen code gets one guess at the
    // verifier, and a replay afterwards is detected.
    let grant = {
        let mut codes = state.codes();
        let grant = codes
            .get_mut(&code)
            .ok_or_else(|| OAuthError::invalid_grant("unknown or expired authorization code"))?;
        let first_use = !grant.redeemed;
        grant.redeemed = true;
        (first_use, grant.clone())
    };
    let (first_use, grant) = grant;
    if !first_use {
        // §4.1.2: a code used twice revokes what it was exchanged for.
        state.revoke_family(grant.family);
        return Err(OAuthError::invalid_grant(
            "authorization code already used; the tokens issued for it are revoked",
        ));
    }
    if grant.client_id != client.id {
        return Err(OAuthError::invalid_grant(
            "the code was issued to another client",
        ));
    }
    if grant.redirect_uri != redirect_uri {
        return Err(OAuthError::invalid_grant(
            "redirect_uri differs from the authorization request's",
        ));
    }
    if !pkce::verify_s256(&verifier, &grant.challenge) {
        return Err(OAuthError::invalid_grant(
            "code_verifier does not match the code_challenge",
        ));
    }
    let access_token = mint(
        state,
        Principal::User(grant.user, grant.sign_in),
        client.id,
        &grant.scopes,
        jkt,
    )?;
    let refresh = issue_refresh_token(
        state,
        RefreshGrant {
            client_id: client.id,
            user: grant.user,
            scopes: grant.scopes.clone(),
            sign_in: grant.sign_in,
            family: grant.family,
            used: false,
        },
    );
    tracing::info!(grant = "authorization_code", client = client.id, subject = grant.user.subject, scopes = %grant.scopes.join(" "), "tokens issued");
    Ok(TokenResponse {
        access_token,
        token_type: "Bearer",
        expires_in: ACCESS_TOKEN_SECONDS,
        scope: grant.scopes.join(" "),
        refresh_token: Some(refresh),
    })
}

fn client_credentials(
    state: &AuthState,
    client: &'static Client,
    form: &TokenForm,
    jkt: Option<&str>,
) -> Result<TokenResponse, OAuthError> {
    let ClientKind::Confidential {
        scopes: allowed, ..
    } = &client.kind
    else {
        return Err(OAuthError::new(
            ErrorCode::UnauthorizedClient,
            "a public client cannot use client_credentials",
        ));
    };
    // Like Auth0, no `scope` means everything the client's grant allows.
    let scopes = match &form.scope {
        None => allowed.to_vec(),
        Some(scope) => {
            let asked = directory::parse_scope(scope)
                .map_err(|why| OAuthError::new(ErrorCode::InvalidScope, why))?;
            if let Some(refused) = asked.iter().find(|s| !allowed.contains(s)) {
                return Err(OAuthError::new(
                    ErrorCode::InvalidScope,
                    format!("{} may not be granted {refused}", client.id),
                ));
            }
            asked
        }
    };
    let access_token = mint(state, Principal::Client, client.id, &scopes, jkt)?;
    tracing::info!(grant = "client_credentials", client = client.id, scopes = %scopes.join(" "), "token issued");
    Ok(TokenResponse {
        access_token,
        token_type: "Bearer",
        expires_in: ACCESS_TOKEN_SECONDS,
        scope: scopes.join(" "),
        refresh_token: None,
    })
}

fn refresh_token(
    state: &AuthState,
    client: &'static Client,
    form: &TokenForm,
    jkt: Option<&str>,
) -> Result<TokenResponse, OAuthError> {
    let presented = form
        .refresh_token
        .as_deref()
        .ok_or_else(|| OAuthError::invalid_request("refresh_token is required"))?;
    let grant = {
        let mut tokens = state.refresh_tokens();
        let grant = tokens
            .get_mut(presented)
            .ok_or_else(|| OAuthError::invalid_grant("unknown or expired refresh token"))?;
        if grant.client_id != client.id {
            return Err(OAuthError::invalid_grant(
                "the refresh token was issued to another client",
            ));
        }
        let first_use = !grant.used;
        grant.used = true;
        (first_use, grant.clone())
    };
    let (first_use, grant) = grant;
    if !first_use {
        state.revoke_family(grant.family);
        return Err(OAuthError::invalid_grant(
            "refresh token already used; every token of its family is revoked",
        ));
    }
    // §6: a narrower scope may be asked for, never a wider one.
    let asked = match &form.scope {
        None => grant.scopes.clone(),
        Some(scope) => {
            let asked = directory::parse_scope(scope)
                .map_err(|why| OAuthError::new(ErrorCode::InvalidScope, why))?;
            if let Some(extra) = asked.iter().find(|s| !grant.scopes.contains(s)) {
                return Err(OAuthError::new(
                    ErrorCode::InvalidScope,
                    format!("{extra} was not granted originally"),
                ));
            }
            asked
        }
    };
    // The roles are asked again, so a role taken away ends at the next refresh.
    let scopes = grant.user.grantable(&asked);
    if scopes.is_empty() {
        return Err(OAuthError::new(
            ErrorCode::InvalidScope,
            "the user's roles no longer permit these scopes",
        ));
    }
    let access_token = mint(
        state,
        Principal::User(grant.user, grant.sign_in),
        client.id,
        &scopes,
        jkt,
    )?;
    let refresh = issue_refresh_token(
        state,
        RefreshGrant {
            used: false,
            ..grant.clone()
        },
    );
    tracing::info!(grant = "refresh_token", client = client.id, subject = grant.user.subject, scopes = %scopes.join(" "), "tokens issued");
    Ok(TokenResponse {
        access_token,
        token_type: "Bearer",
        expires_in: ACCESS_TOKEN_SECONDS,
        scope: scopes.join(" "),
        refresh_token: Some(refresh),
    })
}

fn issue_refresh_token(state: &AuthState, grant: RefreshGrant) -> String {
    let token = crate::demo::random_token();
    state
        .refresh_tokens()
        .insert(&token, grant, Duration::from_secs(REFRESH_SECONDS));
    token
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(client_id: Option<&str>, client_secret: Option<&str>) -> TokenForm {
        TokenForm {
            grant_type: Some("client_credentials".into()),
            code: None,
            redirect_uri: None,
            code_verifier: None,
            refresh_token: None,
            scope: None,
            client_id: client_id.map(Into::into),
            client_secret: client_secret.map(Into::into),
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

    fn refused(headers: &HeaderMap, form: &TokenForm) -> ErrorCode {
        authenticate_client(headers, form).unwrap_err().code
    }

    #[test]
    fn the_batch_client_authenticates_with_basic_or_form_secret() {
        let secret = directory::BATCH_CLIENT_SECRET;
        let via_basic = authenticate_client(&basic("timesheets-batch", secret), &form(None, None));
        assert_eq!(via_basic.unwrap().id, "timesheets-batch");
        let via_form = authenticate_client(
            &HeaderMap::new(),
            &form(Some("timesheets-batch"), Some(secret)),
        );
        assert_eq!(via_form.unwrap().id, "timesheets-batch");
    }

    #[test]
    fn wrong_missing_or_doubled_client_credentials_are_refused() {
        let none = HeaderMap::new();
        let secret = directory::BATCH_CLIENT_SECRET;
        assert_eq!(
            refused(&basic("timesheets-batch", "guess"), &form(None, None)),
            ErrorCode::InvalidClient
        );
        assert_eq!(
            refused(&none, &form(Some("timesheets-batch"), None)),
            ErrorCode::InvalidClient
        );
        assert_eq!(refused(&none, &form(None, None)), ErrorCode::InvalidClient);
        assert_eq!(
            refused(&none, &form(Some("nobody"), None)),
            ErrorCode::InvalidClient
        );
        assert_eq!(
            refused(&none, &form(Some("timesheets-mobile"), Some("x"))),
            ErrorCode::InvalidClient
        );
        assert_eq!(
            refused(
                &basic("timesheets-batch", secret),
                &form(None, Some(secret))
            ),
            ErrorCode::InvalidRequest
        );
        let mut garbage = HeaderMap::new();
        garbage.insert(header::AUTHORIZATION, "Basic %%%".parse().unwrap());
        assert_eq!(
            refused(&garbage, &form(None, None)),
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
