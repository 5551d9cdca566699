//! Access tokens shaped like Auth0's, so the gateway meets in the demo what it meets in
//! production: `kid` and `typ: at+jwt` in the header, a trailing-slash `iss`, an `aud` array
//! for users (API + userinfo) and a string for clients, `azp`, a space-delimited `scope`, the
//! RBAC `permissions` array and a namespaced email claim.

use serde_json::{Value, json};

use super::AuthState;
use super::directory::User;
use super::errors::{ErrorCode, OAuthError};
use crate::demo::{API_AUDIENCE, EMAIL_CLAIM};

/// Lifetime of an access token, in seconds (Auth0's default for an API is longer; an hour
/// keeps the demo's expiry visible).
pub const ACCESS_TOKEN_SECONDS: u64 = 3600;

/// On whose behalf a token acts.
#[derive(Debug, Clone, Copy)]
pub enum Principal {
    /// A user who logged in through a client.
    User(&'static User),
    /// The client itself (client credentials).
    Client,
}

/// Signs an access token for `principal`, requested by `client_id`, carrying exactly
/// `scopes`; bound to the DPoP key with thumbprint `jkt` when there is one.
pub fn mint(
    state: &AuthState,
    principal: Principal,
    client_id: &str,
    scopes: &[&'static str],
    jkt: Option<&str>,
) -> Result<String, OAuthError> {
    let now = crate::demo::unix_now();
    let mut claims = json!({
        "iss": state.issuer,
        "iat": now,
        "exp": now + ACCESS_TOKEN_SECONDS,
        "azp": client_id,
        "client_id": client_id,
        "jti": crate::demo::random_token(),
        "scope": scopes.join(" "),
        "permissions": scopes,
    });
    if let Some(jkt) = jkt {
        claims["cnf"] = json!({ "jkt": jkt });
    }
    match principal {
        Principal::User(user) => {
            claims["sub"] = json!(user.subject);
            claims["aud"] = json!([API_AUDIENCE, format!("{}userinfo", state.issuer)]);
            claims[EMAIL_CLAIM] = json!(user.email);
        }
        Principal::Client => {
            claims["sub"] = json!(format!("{client_id}@clients"));
            claims["aud"] = Value::from(API_AUDIENCE);
            claims["gty"] = json!("client-credentials");
        }
    }
    let key = state.signing_key();
    key.sign(&claims).map_err(|e| {
        tracing::error!(error = %e, "cannot sign an access token");
        OAuthError::new(ErrorCode::ServerError, "cannot sign the access token")
    })
}
