//! The token endpoint (RFC 6749 §3.2): `authorization_code` with PKCE for the mobile app,
//! `client_credentials` for the batch client, rotating `refresh_token`. Every refusal is a
//! §5.2 JSON error; no credential is ever logged or echoed.
//!
//! Access tokens are JWTs, or with the demo's own `token_format=opaque` parameter random
//! strings whose claims stay here, for the introspection endpoint to tell.

use std::sync::Arc;
use std::time::Duration;

use axum::Form;
use axum::Json;
use axum::extract::State;
use axum::extract::rejection::FormRejection;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::claims::{ACCESS_TOKEN_SECONDS, Principal, access_claims, sign};
use super::client_auth::{FormCredentials, authenticate_client};
use super::directory::{self, Client, ClientKind};
use super::errors::{ErrorCode, OAuthError};
use super::{AuthState, OpaqueGrant, REFRESH_SECONDS, RefreshGrant};
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
    /// The demo's own parameter: `jwt` (the default) or `opaque`.
    token_format: Option<String>,
}

/// What kind of access token a token request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TokenFormat {
    /// A signed JWT the gateway verifies with the JWKS.
    Jwt,
    /// A random string the gateway asks the introspection endpoint about.
    Opaque,
}

/// How the access token of one token request is issued.
struct Issue<'a> {
    format: TokenFormat,
    /// The DPoP key's thumbprint, when the request proved one.
    jkt: Option<&'a str>,
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
    let credentials = FormCredentials {
        client_id: form.client_id.as_deref(),
        client_secret: form.client_secret.as_deref(),
    };
    let client = authenticate_client(headers, credentials)?;
    if matches!(client.kind, ClientKind::ResourceServer { .. }) {
        return Err(OAuthError::new(
            ErrorCode::UnauthorizedClient,
            "the resource server introspects and revokes tokens; it is issued none",
        ));
    }
    let format = match form.token_format.as_deref() {
        None | Some("jwt") => TokenFormat::Jwt,
        Some("opaque") => TokenFormat::Opaque,
        Some(_) => {
            return Err(OAuthError::invalid_request(
                "token_format must be jwt or opaque",
            ));
        }
    };
    let jkt = dpop_key(state, headers)?;
    let issue = Issue {
        format,
        jkt: jkt.as_deref(),
    };
    let mut tokens = match grant {
        "authorization_code" => authorization_code(state, client, form, &issue),
        "client_credentials" => client_credentials(state, client, form, &issue),
        _ => refresh_token(state, client, form, &issue),
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
    // What the gateway accepts by default (ES384, and Ed25519 under either name, too):
    // a client that signs with an algorithm the gateway advertises gets its token here.
    let rules = ProofRules {
        algorithms: crate::config::compile::DEFAULT_DPOP_ALGORITHMS.to_vec(),
        iat_window: 60,
        iat_future_skew: 5,
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

fn authorization_code(
    state: &AuthState,
    client: &'static Client,
    form: &TokenForm,
    issue: &Issue<'_>,
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
        state.revoke_replayed(grant.family);
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
    let access_token = access_token(
        state,
        issue,
        Principal::User(grant.user, grant.sign_in),
        client.id,
        &grant.scopes,
        Some(grant.family),
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
    issue: &Issue<'_>,
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
    let access_token = access_token(state, issue, Principal::Client, client.id, &scopes, None)?;
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
    issue: &Issue<'_>,
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
        state.revoke_replayed(grant.family);
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
    let access_token = access_token(
        state,
        issue,
        Principal::User(grant.user, grant.sign_in),
        client.id,
        &scopes,
        Some(grant.family),
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

/// The access token: a JWT, or an opaque string whose claims are kept for introspection
/// (with the refresh-token `family` it came from, so revoking that family ends it too).
fn access_token(
    state: &AuthState,
    issue: &Issue<'_>,
    principal: Principal,
    client_id: &'static str,
    scopes: &[&'static str],
    family: Option<u64>,
) -> Result<String, OAuthError> {
    let claims = access_claims(state, principal, client_id, scopes, issue.jkt);
    match issue.format {
        TokenFormat::Jwt => sign(state, &claims),
        TokenFormat::Opaque => {
            let token = crate::demo::random_token();
            let grant = OpaqueGrant {
                claims,
                client_id,
                token_type: if issue.jkt.is_some() {
                    "DPoP"
                } else {
                    "Bearer"
                },
                family,
            };
            state
                .opaque_tokens()
                .insert(&token, grant, Duration::from_secs(ACCESS_TOKEN_SECONDS));
            Ok(token)
        }
    }
}

fn issue_refresh_token(state: &AuthState, grant: RefreshGrant) -> String {
    let token = crate::demo::random_token();
    state
        .refresh_tokens()
        .insert(&token, grant, Duration::from_secs(REFRESH_SECONDS));
    token
}
