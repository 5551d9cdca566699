//! Token introspection (RFC 7662) and revocation (RFC 7009).
//!
//! - `POST /introspect`: only the resource server's client (`scopegate`, with its secret)
//!   may ask. A live opaque token gets `active: true` and its claims; anything else
//!   (unknown, expired, revoked, a JWT) gets `{"active": false}` alone, so the answer tells
//!   nothing about a token that does not work.
//! - `POST /revoke`: the client a token was issued to (the mobile app by its `client_id`,
//!   the batch client with its secret) or the resource server. Always 200 once the client
//!   is authenticated, whether the token existed or not (§2.2). A refresh token ends its
//!   whole grant, the opaque access tokens it bought included.

use std::sync::Arc;

use axum::Form;
use axum::Json;
use axum::extract::State;
use axum::extract::rejection::FormRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AuthState;
use super::client_auth::{FormCredentials, authenticate_client};
use super::directory::{Client, ClientKind};
use super::errors::{ErrorCode, OAuthError};

/// The form of both endpoints. No `Debug`: it holds secrets. `token_type_hint` may be
/// sent and is ignored: both kinds of token are looked for anyway (RFC 7009 §2.1).
#[derive(Deserialize)]
pub struct TokenForm {
    token: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
}

impl TokenForm {
    fn credentials(&self) -> FormCredentials<'_> {
        FormCredentials {
            client_id: self.client_id.as_deref(),
            client_secret: self.client_secret.as_deref(),
        }
    }

    fn token(&self) -> Result<&str, OAuthError> {
        self.token
            .as_deref()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| OAuthError::invalid_request("token is required"))
    }
}

fn read_form(form: Result<Form<TokenForm>, FormRejection>) -> Result<TokenForm, OAuthError> {
    form.map(|Form(form)| form).map_err(|e| {
        OAuthError::invalid_request(format!(
            "the request body must be an application/x-www-form-urlencoded form with each parameter once ({})",
            e.body_text()
        ))
    })
}

/// `POST /introspect`.
pub async fn introspect(
    State(state): State<Arc<AuthState>>,
    headers: HeaderMap,
    form: Result<Form<TokenForm>, FormRejection>,
) -> Response {
    let answer = read_form(form).and_then(|form| {
        let client = authenticate_client(&headers, form.credentials())?;
        if !matches!(client.kind, ClientKind::ResourceServer { .. }) {
            return Err(OAuthError::new(
                ErrorCode::InvalidClient,
                "only the resource server may introspect tokens",
            ));
        }
        Ok(answer_for(&state, form.token()?))
    });
    match answer {
        Ok(answer) => no_store(Json(answer).into_response()),
        Err(e) => {
            tracing::info!(error = e.code.as_str(), description = %e.description, "introspection refused");
            e.into_response()
        }
    }
}

/// What RFC 7662 §2.2 answers for `token`.
fn answer_for(state: &AuthState, token: &str) -> Value {
    let mut opaque = state.opaque_tokens();
    let Some(grant) = opaque.get_mut(token) else {
        return json!({ "active": false });
    };
    let mut answer = grant.claims.clone();
    answer["active"] = json!(true);
    answer["token_type"] = json!(grant.token_type);
    answer
}

/// `POST /revoke`.
pub async fn revoke(
    State(state): State<Arc<AuthState>>,
    headers: HeaderMap,
    form: Result<Form<TokenForm>, FormRejection>,
) -> Response {
    let result = read_form(form).and_then(|form| {
        let client = authenticate_client(&headers, form.credentials())?;
        revoke_token(&state, client, form.token()?)
    });
    match result {
        Ok(()) => no_store(StatusCode::OK.into_response()),
        Err(e) => {
            tracing::info!(error = e.code.as_str(), description = %e.description, "revocation refused");
            e.into_response()
        }
    }
}

/// Revokes `token` if it is an opaque access token or a refresh token `client` may revoke;
/// an unknown one needs nothing done.
fn revoke_token(state: &AuthState, client: &'static Client, token: &str) -> Result<(), OAuthError> {
    let may_revoke = |issued_to: &str| {
        issued_to == client.id || matches!(client.kind, ClientKind::ResourceServer { .. })
    };
    let not_yours = || {
        OAuthError::new(
            ErrorCode::UnauthorizedClient,
            "the token was issued to another client",
        )
    };
    {
        let mut opaque = state.opaque_tokens();
        if let Some(grant) = opaque.get_mut(token) {
            if !may_revoke(grant.client_id) {
                return Err(not_yours());
            }
            opaque.remove(token);
            tracing::info!(client = client.id, "access token revoked");
            return Ok(());
        }
    }
    let family = {
        let mut refresh = state.refresh_tokens();
        match refresh.get_mut(token) {
            Some(grant) if !may_revoke(grant.client_id) => return Err(not_yours()),
            Some(grant) => Some(grant.family),
            None => None,
        }
    };
    if let Some(family) = family {
        state.revoke_family(family);
        tracing::info!(
            client = client.id,
            family,
            "refresh token revoked, with its grant"
        );
    }
    Ok(())
}

fn no_store(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}
