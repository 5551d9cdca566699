//! The development authorization server: for demos and tests only, never for production.
//!
//! It plays the seed's Auth0 tenant on loopback: the mobile app's authorization code flow
//! with PKCE (`S256` only), client credentials for the batch client, rotating refresh tokens,
//! RS256 access tokens (or opaque ones, introspected and revoked), a JWKS, discovery
//! metadata and key rotation on demand.
//!
//! | route | file |
//! |---|---|
//! | `GET`, `POST /authorize`: login form, authorization codes | `authz/authorize.rs` |
//! | `POST /oauth/token`: the three grants | `authz/token.rs` |
//! | `POST /introspect` (RFC 7662), `POST /revoke` (RFC 7009) | `authz/introspect.rs` |
//! | `GET /.well-known/jwks.json`, `/.well-known/openid-configuration`, `POST /admin/rotate-key` | here |

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

use axum::extract::rejection::QueryRejection;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use crate::demo::Serve;

mod authorize;
mod claims;
mod client_auth;
pub mod directory;
mod errors;
mod introspect;
pub mod keys;
mod store;
mod token;

use claims::SignIn;
use directory::User;
use keys::{KeyRing, Rotation, SigningKey};
use store::GrantStore;

/// Seconds an authorization code stays redeemable (RFC 6749 §4.1.2 recommends at most 10
/// minutes; a CLI or app redeems it at once).
const CODE_SECONDS: u64 = 60;
/// Seconds a refresh token lives unless rotated first.
const REFRESH_SECONDS: u64 = 8 * 3600;
/// Most pending authorization codes kept.
const MAX_CODES: usize = 1_000;
/// Most refresh tokens kept (used ones count until they expire, to detect their reuse).
const MAX_REFRESH_TOKENS: usize = 10_000;
/// Most opaque access tokens kept; when full, the one closest to expiry is forgotten, and
/// so becomes inactive: a bound that fails closed.
const MAX_OPAQUE_TOKENS: usize = 10_000;
/// `Cache-Control: max-age` of the JWKS: short, so verifiers notice a retired key soon.
const JWKS_MAX_AGE_SECONDS: u64 = 10;

/// A running development authorization server: its addresses, and key rotation in process.
#[derive(Clone)]
pub struct AuthServer {
    addr: SocketAddr,
    state: Arc<AuthState>,
}

impl std::fmt::Debug for AuthServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthServer")
            .field("issuer", &self.state.issuer)
            .finish_non_exhaustive()
    }
}

impl AuthServer {
    /// Generates a signing key and binds `addr` (loopback only; port 0 picks a free one).
    /// Returns the handle and the future that serves requests: await or spawn it.
    pub async fn bind(addr: SocketAddr) -> std::io::Result<(AuthServer, Serve)> {
        crate::demo::require_loopback(addr, "the development authorization server")?;
        crate::install_crypto_provider();
        let first = generate_key().await?;
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(AuthState::new(format!("http://{addr}/"), first));
        tracing::info!(
            issuer = %state.issuer,
            "development authorization server listening; for demos and tests only, never for production"
        );
        let app = router(state.clone()).into_make_service_with_connect_info::<SocketAddr>();
        let serve = axum::serve(listener, app);
        Ok((
            AuthServer { addr, state },
            Box::pin(async move { serve.await }),
        ))
    }

    /// [`AuthServer::bind`], then serves on the current tokio runtime until it shuts down.
    pub async fn spawn(addr: SocketAddr) -> std::io::Result<AuthServer> {
        let (server, serve) = AuthServer::bind(addr).await?;
        crate::demo::spawn_serve(serve, "development authorization server");
        Ok(server)
    }

    /// The socket address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `iss` of its tokens: `http://<address>/`, with the trailing slash Auth0 uses.
    pub fn issuer(&self) -> String {
        self.state.issuer.clone()
    }

    /// Where its JSON Web Key Set is served.
    pub fn jwks_uri(&self) -> String {
        format!("{}.well-known/jwks.json", self.state.issuer)
    }

    /// The authorization endpoint.
    pub fn authorization_endpoint(&self) -> String {
        format!("{}authorize", self.state.issuer)
    }

    /// The token endpoint.
    pub fn token_endpoint(&self) -> String {
        format!("{}oauth/token", self.state.issuer)
    }

    /// The introspection endpoint (RFC 7662), for the resource server's client.
    pub fn introspection_endpoint(&self) -> String {
        format!("{}introspect", self.state.issuer)
    }

    /// The revocation endpoint (RFC 7009).
    pub fn revocation_endpoint(&self) -> String {
        format!("{}revoke", self.state.issuer)
    }

    /// Rotates the signing key in process, as `POST /admin/rotate-key` does.
    pub async fn rotate_key(&self, retire: bool) -> std::io::Result<Rotation> {
        let next = generate_key().await?;
        Ok(self.state.rotate(next, retire))
    }
}

/// Everything the handlers share.
struct AuthState {
    issuer: String,
    keys: RwLock<KeyRing>,
    codes: Mutex<GrantStore<CodeGrant>>,
    refresh_tokens: Mutex<GrantStore<RefreshGrant>>,
    opaque_tokens: Mutex<GrantStore<OpaqueGrant>>,
    next_family: AtomicU64,
}

/// An authorization code waiting to be redeemed, or redeemed and kept to detect its reuse.
#[derive(Debug, Clone)]
struct CodeGrant {
    client_id: &'static str,
    redirect_uri: &'static str,
    challenge: String,
    user: &'static User,
    scopes: Vec<&'static str>,
    sign_in: SignIn,
    /// The refresh-token family this code starts; revoked if the code is replayed.
    family: u64,
    redeemed: bool,
}

/// A refresh token. Rotation marks it used and issues a new one of the same family; a used
/// token presented again revokes the whole family (RFC 9700 §4.14.2).
#[derive(Debug, Clone)]
struct RefreshGrant {
    client_id: &'static str,
    user: &'static User,
    scopes: Vec<&'static str>,
    sign_in: SignIn,
    family: u64,
    used: bool,
}

/// An opaque access token's claims, kept until it expires or is revoked; what the
/// introspection endpoint answers for it.
#[derive(Debug, Clone)]
struct OpaqueGrant {
    claims: serde_json::Value,
    client_id: &'static str,
    /// `Bearer`, or `DPoP` for a token bound to a key.
    token_type: &'static str,
    /// The refresh-token family of a user's token; `None` for client credentials.
    family: Option<u64>,
}

impl AuthState {
    fn new(issuer: String, first: SigningKey) -> AuthState {
        AuthState {
            issuer,
            keys: RwLock::new(KeyRing::new(first)),
            codes: Mutex::new(GrantStore::new(MAX_CODES)),
            refresh_tokens: Mutex::new(GrantStore::new(MAX_REFRESH_TOKENS)),
            opaque_tokens: Mutex::new(GrantStore::new(MAX_OPAQUE_TOKENS)),
            next_family: AtomicU64::new(1),
        }
    }

    fn signing_key(&self) -> Arc<SigningKey> {
        self.keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .current()
    }

    fn rotate(&self, next: SigningKey, retire: bool) -> Rotation {
        let rotation = self
            .keys
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .rotate(next, retire);
        tracing::info!(kid = %rotation.kid, published = rotation.published.len(), retired = rotation.retired.len(), "signing key rotated");
        rotation
    }

    fn new_family(&self) -> u64 {
        self.next_family.fetch_add(1, Ordering::Relaxed)
    }

    // A panic while a lock is held cannot leave a map half-updated, so a poisoned lock is
    // still usable.
    fn codes(&self) -> MutexGuard<'_, GrantStore<CodeGrant>> {
        self.codes.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn refresh_tokens(&self) -> MutexGuard<'_, GrantStore<RefreshGrant>> {
        self.refresh_tokens
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn opaque_tokens(&self) -> MutexGuard<'_, GrantStore<OpaqueGrant>> {
        self.opaque_tokens
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Ends a grant: its refresh tokens and the opaque access tokens they bought (RFC 7009
    /// §2.1, RFC 9700 §4.14.2). Its JWTs live on until they expire.
    fn revoke_family(&self, family: u64) {
        self.refresh_tokens().retain(|g| g.family != family);
        self.opaque_tokens().retain(|g| g.family != Some(family));
    }

    /// A used code or refresh token came back: someone else may hold it.
    fn revoke_replayed(&self, family: u64) {
        self.revoke_family(family);
        tracing::warn!(
            family,
            "a used code or refresh token was replayed; its refresh tokens are revoked"
        );
    }
}

async fn generate_key() -> std::io::Result<SigningKey> {
    tokio::task::spawn_blocking(SigningKey::generate)
        .await
        .map_err(std::io::Error::other)?
        .map_err(std::io::Error::other)
}

fn router(state: Arc<AuthState>) -> Router {
    Router::new()
        .route(
            "/authorize",
            get(authorize::show_login).post(authorize::log_in),
        )
        .route("/oauth/token", post(token::token))
        .route("/introspect", post(introspect::introspect))
        .route("/revoke", post(introspect::revoke))
        .route("/.well-known/jwks.json", get(jwks))
        .route("/.well-known/openid-configuration", get(metadata))
        .route("/.well-known/oauth-authorization-server", get(metadata))
        .route("/admin/rotate-key", post(rotate_key))
        .fallback(not_found)
        .with_state(state)
}

async fn jwks(State(state): State<Arc<AuthState>>) -> Response {
    let set = state
        .keys
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .jwks();
    let mut response = Json(set).into_response();
    if let Ok(value) = HeaderValue::from_str(&format!("public, max-age={JWKS_MAX_AGE_SECONDS}")) {
        response.headers_mut().insert(header::CACHE_CONTROL, value);
    }
    response
}

/// Authorization server metadata (RFC 8414), also served where OpenID Connect clients look.
async fn metadata(State(state): State<Arc<AuthState>>) -> Json<serde_json::Value> {
    let issuer = &state.issuer;
    Json(serde_json::json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}authorize"),
        "token_endpoint": format!("{issuer}oauth/token"),
        "jwks_uri": format!("{issuer}.well-known/jwks.json"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "client_credentials", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["none", "client_secret_basic", "client_secret_post"],
        "introspection_endpoint": format!("{issuer}introspect"),
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "revocation_endpoint": format!("{issuer}revoke"),
        "revocation_endpoint_auth_methods_supported": ["none", "client_secret_basic", "client_secret_post"],
        "scopes_supported": directory::API_SCOPES,
        "subject_types_supported": ["public"],
        "acr_values_supported": [claims::MFA_ACR],
    }))
}

#[derive(Debug, Deserialize)]
struct RotateParams {
    retire: Option<bool>,
}

async fn rotate_key(
    State(state): State<Arc<AuthState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    params: Result<Query<RotateParams>, QueryRejection>,
) -> Response {
    // The listener is loopback-only already; this keeps the endpoint safe if that changes.
    if !peer.ip().is_loopback() {
        return json_error(
            StatusCode::FORBIDDEN,
            "forbidden",
            "key rotation is allowed from loopback only",
        );
    }
    let retire = match params {
        Ok(Query(p)) => p.retire.unwrap_or(false),
        Err(e) => return json_error(StatusCode::BAD_REQUEST, "invalid_request", &e.body_text()),
    };
    match generate_key().await {
        Ok(next) => Json(state.rotate(next, retire)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "cannot generate a signing key");
            json_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "cannot generate a key",
            )
        }
    }
}

async fn not_found() -> Response {
    json_error(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
}

fn json_error(status: StatusCode, error: &str, description: &str) -> Response {
    let body = serde_json::json!({"error": error, "error_description": description});
    (status, Json(body)).into_response()
}
