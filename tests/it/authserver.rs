//! A test authorization server: RFC 7662 introspection that counts its calls, checks the
//! gateway's client credentials and can be slowed or taken down, and RFC 8414 / OpenID
//! Connect metadata that points at a JWKS server.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::*;

/// The gateway's client at the authorization server.
pub const CLIENT_ID: &str = "scopegate";
/// Its secret.
pub const CLIENT_SECRET: &str = "gateway-secret: with a colon";

#[derive(Default)]
struct State {
    /// token → introspection answer; unknown tokens are inactive.
    answers: Mutex<HashMap<String, Value>>,
    calls: AtomicUsize,
    delay_ms: AtomicU64,
    /// The `issuer` the metadata names (the mix-up test lies here).
    metadata_issuer: Mutex<Option<String>>,
    jwks_uri: Mutex<String>,
    /// The `traceparent` of each introspection call, when it had one.
    traceparents: Mutex<Vec<String>>,
}

/// An authorization server on a free port.
pub struct AuthServer {
    state: Arc<State>,
    pub addr: SocketAddr,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl AuthServer {
    /// Starts listening; its metadata names `jwks_uri` as the key set.
    pub fn start(jwks_uri: &str) -> AuthServer {
        let state = Arc::new(State::default());
        *state.jwks_uri.lock().unwrap() = jwks_uri.to_owned();
        let server = AuthServer {
            state,
            addr: SocketAddr::from(([127, 0, 0, 1], free_port())),
            task: Mutex::new(None),
        };
        server.up();
        server
    }

    /// The issuer identifier: its URL, with the trailing slash Auth0 uses.
    pub fn issuer(&self) -> String {
        format!("http://{}/", self.addr)
    }

    pub fn introspection_endpoint(&self) -> String {
        format!("http://{}/oauth/introspect", self.addr)
    }

    /// Starts listening (again) on its port.
    pub fn up(&self) {
        let listener = rt()
            .block_on(tokio::net::TcpListener::bind(self.addr))
            .expect("bind the authorization server's port");
        let app = axum::Router::new()
            .route(
                "/.well-known/openid-configuration",
                axum::routing::get(metadata),
            )
            .route("/oauth/introspect", axum::routing::post(introspect))
            .with_state((
                self.state.clone(),
                self.issuer(),
                self.introspection_endpoint(),
            ));
        let task = rt().spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        *self.task.lock().unwrap() = Some(task);
    }

    /// Stops listening: connections are refused.
    pub fn down(&self) {
        if let Some(task) = self.task.lock().unwrap().take() {
            task.abort();
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            while std::net::TcpStream::connect(self.addr).is_ok()
                && std::time::Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// Makes `token` active with these claims (`active: true` is added).
    pub fn activate(&self, token: &str, mut answer: Value) {
        answer["active"] = json!(true);
        self.state
            .answers
            .lock()
            .unwrap()
            .insert(token.to_owned(), answer);
    }

    /// Answers `token` with `answer` exactly as given, whatever it is.
    pub fn answer(&self, token: &str, answer: Value) {
        self.state
            .answers
            .lock()
            .unwrap()
            .insert(token.to_owned(), answer);
    }

    /// Revokes `token`: it introspects as inactive from now on.
    pub fn revoke(&self, token: &str) {
        self.state.answers.lock().unwrap().remove(token);
    }

    /// Answers introspection only after `ms` milliseconds.
    pub fn set_delay_ms(&self, ms: u64) {
        self.state.delay_ms.store(ms, Ordering::SeqCst);
    }

    /// Makes the metadata name another issuer.
    pub fn set_metadata_issuer(&self, issuer: &str) {
        *self.state.metadata_issuer.lock().unwrap() = Some(issuer.to_owned());
    }

    /// Introspection calls so far.
    /// The `traceparent` headers introspection calls carried, in order.
    pub fn traceparents(&self) -> Vec<String> {
        self.state.traceparents.lock().unwrap().clone()
    }

    pub fn calls(&self) -> usize {
        self.state.calls.load(Ordering::SeqCst)
    }

    /// The issuer's `introspection` key for the gateway: client credentials from
    /// `secret_file`; a test adds to the object what else it needs (`endpoint`, …).
    pub fn introspection(&self, secret_file: &std::path::Path) -> Value {
        json!({"client_id": CLIENT_ID, "client_secret_file": secret_file.display().to_string()})
    }

    /// [`AuthServer::introspection`] with the right secret written into `dir` and this
    /// server's endpoint named (no discovery).
    pub fn introspection_in(&self, dir: &std::path::Path) -> Value {
        let file = dir.join("client-secret");
        std::fs::write(&file, format!("{CLIENT_SECRET}\n")).unwrap();
        let mut introspection = self.introspection(&file);
        introspection["endpoint"] = json!(self.introspection_endpoint());
        introspection
    }
}

impl Drop for AuthServer {
    fn drop(&mut self) {
        if let Some(task) = self.task.lock().unwrap().take() {
            task.abort();
        }
    }
}

type Shared = (Arc<State>, String, String);

async fn metadata(
    axum::extract::State((state, issuer, introspection)): axum::extract::State<Shared>,
) -> axum::Json<Value> {
    let named = state
        .metadata_issuer
        .lock()
        .unwrap()
        .clone()
        .unwrap_or(issuer);
    axum::Json(json!({
        "issuer": named,
        "jwks_uri": *state.jwks_uri.lock().unwrap(),
        "introspection_endpoint": introspection,
        "response_types_supported": ["code"],
    }))
}

async fn introspect(
    axum::extract::State((state, _, _)): axum::extract::State<Shared>,
    headers: axum::http::HeaderMap,
    axum::Form(form): axum::Form<HashMap<String, String>>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    state.calls.fetch_add(1, Ordering::SeqCst);
    if let Some(traceparent) = headers.get("traceparent").and_then(|v| v.to_str().ok()) {
        state
            .traceparents
            .lock()
            .unwrap()
            .push(traceparent.to_owned());
    }
    let delay = state.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    // client_secret_basic: both parts form-encoded, then base64 (RFC 6749 §2.3.1).
    let expected = {
        use base64::Engine as _;
        const FORM: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
            .remove(b'-')
            .remove(b'.')
            .remove(b'_')
            .remove(b'~');
        let enc = |s: &str| percent_encoding::utf8_percent_encode(s, FORM).to_string();
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!(
                "{}:{}",
                enc(CLIENT_ID),
                enc(CLIENT_SECRET)
            ))
        )
    };
    let authorized = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == expected);
    if !authorized {
        return (
            axum::http::StatusCode::UNAUTHORIZED,
            axum::Json(json!({"error": "invalid_client"})),
        )
            .into_response();
    }
    let token = form.get("token").cloned().unwrap_or_default();
    let answer = state
        .answers
        .lock()
        .unwrap()
        .get(&token)
        .cloned()
        .unwrap_or_else(|| json!({"active": false}));
    axum::Json(answer).into_response()
}

/// The answer for an active access token of `issuer` with `scope`.
pub fn active(issuer: &str, scope: &str) -> Value {
    json!({
        "iss": issuer,
        "aud": AUDIENCE,
        "sub": "alice@exampleco.com",
        "client_id": "timesheets-mobile",
        "scope": scope,
        "token_type": "Bearer",
        "iat": now(),
        "exp": now() + 3600,
    })
}
