//! Access tokens shaped like Auth0's, so the gateway meets in the demo what it meets in
//! production: `kid` and `typ: at+jwt` in the header, a trailing-slash `iss`, an `aud` array
//! for users (API + userinfo) and a string for clients, `azp`, a space-delimited `scope`, the
//! RBAC `permissions` array, namespaced email and roles claims, and for users `auth_time`
//! (and `acr`/`amr` after a sign-in with the one-time code, as RFC 9470 step-up expects).

use serde_json::{Value, json};

use super::AuthState;
use super::directory::User;
use super::errors::{ErrorCode, OAuthError};
use crate::demo::{API_AUDIENCE, EMAIL_CLAIM, ROLES_CLAIM};

/// The one `acr` value this server knows: password plus one-time code.
pub const MFA_ACR: &str = "mfa";

/// How and when a user signed in; kept by codes and refresh tokens, so a refreshed token
/// still tells the time of the sign-in, not of the refresh.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignIn {
    /// `Some(MFA_ACR)` after a one-time code, `None` after a password alone.
    pub acr: Option<&'static str>,
    /// Seconds since the epoch.
    pub auth_time: u64,
}

/// Lifetime of an access token, in seconds (Auth0's default for an API is longer; an hour
/// keeps the demo's expiry visible).
pub const ACCESS_TOKEN_SECONDS: u64 = 3600;

/// On whose behalf a token acts.
#[derive(Debug, Clone, Copy)]
pub enum Principal {
    /// A user who logged in through a client, and how.
    User(&'static User, SignIn),
    /// The client itself (client credentials).
    Client,
}

/// The claims of an access token for `principal`, requested by `client_id`, carrying
/// exactly `scopes`; bound to the DPoP key with thumbprint `jkt` when there is one. Signed
/// into a JWT by [`sign`], or kept behind an opaque token for introspection.
pub fn access_claims(
    state: &AuthState,
    principal: Principal,
    client_id: &str,
    scopes: &[&'static str],
    jkt: Option<&str>,
) -> Value {
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
        Principal::User(user, sign_in) => {
            claims["sub"] = json!(user.subject);
            claims["aud"] = json!([API_AUDIENCE, format!("{}userinfo", state.issuer)]);
            claims[EMAIL_CLAIM] = json!(user.email);
            claims[ROLES_CLAIM] = json!(user.roles().collect::<Vec<_>>());
            claims["auth_time"] = json!(sign_in.auth_time);
            if let Some(acr) = sign_in.acr {
                claims["acr"] = json!(acr);
                claims["amr"] = json!(["pwd", "otp"]);
            }
        }
        Principal::Client => {
            claims["sub"] = json!(format!("{client_id}@clients"));
            claims["aud"] = Value::from(API_AUDIENCE);
            claims["gty"] = json!("client-credentials");
        }
    }
    claims
}

/// Signs `claims` into a JWT with the current key.
pub fn sign(state: &AuthState, claims: &Value) -> Result<String, OAuthError> {
    let key = state.signing_key();
    key.sign(claims).map_err(|e| {
        tracing::error!(error = %e, "cannot sign an access token");
        OAuthError::new(ErrorCode::ServerError, "cannot sign the access token")
    })
}
