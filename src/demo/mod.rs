//! The built-in demo: `scopegate demo` runs the seed's whole story on loopback.
//!
//! | piece | file | port (default) |
//! |---|---|---|
//! | development authorization server (PKCE login, client credentials, refresh, JWKS, key rotation, introspection, revocation) | [`authz`] | 127.0.0.1:9400 |
//! | the Timesheets backend, which trusts the gateway's identity headers | [`backend`] | 127.0.0.1:9401 |
//! | the gateway itself, with `policies/timesheets.yaml` | [`launch`] | 127.0.0.1:8080, admin 9090 |
//! | what the mobile app does: PKCE login, token on stdout; revocation when it signs out | [`login`] | |
//!
//! The authorization server exists for demos and tests only: its users, passwords and client
//! secret are public, and its keys live in memory. Both servers refuse to bind anything but a
//! loopback address.

use std::future::Future;
use std::pin::Pin;

use base64::Engine as _;

pub mod authz;
pub mod backend;
pub mod cli;
pub mod dpop_key;
pub mod launch;
pub mod login;
pub mod pkce;

pub use cli::{DemoArgs, DemoCommand};

/// Why a `scopegate demo` command failed.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// A demo server could not bind its address.
    #[error("cannot start the {what} on {addr}")]
    Bind {
        /// Which server.
        what: &'static str,
        /// The address it tried.
        addr: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The policy could not be found or written.
    #[error("cannot use the policy file {path}")]
    Policy {
        /// The file or folder concerned.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A file in the demo's scratch folder could not be written.
    #[error("cannot write {path}")]
    Scratch {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The generated gateway configuration or the gateway itself was refused.
    #[error("the gateway cannot start:\n{0}")]
    Gateway(String),
    /// A tokio runtime or thread could not be created.
    #[error("cannot start a runtime: {0}")]
    Runtime(std::io::Error),
    /// `login` or `rotate-key` failed.
    #[error(transparent)]
    Client(#[from] login::LoginError),
    /// The DPoP key could not be made, read, written or used.
    #[error("{0}")]
    Key(String),
}

/// The Timesheets API's identifier: the `aud` of its access tokens.
pub const API_AUDIENCE: &str = "https://api.exampleco.com/timesheets";

/// The namespaced claim that carries the user's email (Auth0 requires custom claims in
/// access tokens to be namespaced with a URL).
pub const EMAIL_CLAIM: &str = "https://api.exampleco.com/email";
/// The namespaced claim with the user's roles, as an Auth0 rule adds the Authorization
/// Extension's roles to access tokens.
pub const ROLES_CLAIM: &str = "https://api.exampleco.com/roles";

/// A server bound to its socket, to be awaited (or spawned) to serve requests. It completes
/// only if the listener fails.
pub type Serve = Pin<Box<dyn Future<Output = std::io::Result<()>> + Send + 'static>>;

/// Serves `serve` on the current tokio runtime, logging if the listener ever fails.
fn spawn_serve(serve: Serve, what: &'static str) {
    tokio::spawn(async move {
        if let Err(e) = serve.await {
            tracing::error!(error = %e, "the {what} stopped");
        }
    });
}

/// Runs a `scopegate demo` command line: the demo servers (never returns unless start-up
/// fails), or one of its client commands.
pub fn execute(args: DemoArgs) -> Result<(), DemoError> {
    match args.command {
        None => match launch::run(&args.serve)? {},
        Some(DemoCommand::Login(login)) => login::run_login(&login),
        Some(DemoCommand::RotateKey(rotate)) => login::run_rotate_key(&rotate),
        Some(DemoCommand::DpopProof(proof)) => login::run_dpop_proof(&proof),
        Some(DemoCommand::Revoke(revoke)) => login::run_revoke(&revoke),
    }
}

/// 32 random bytes as unpadded base64url: authorization codes, refresh tokens, `jti`,
/// `state`. 256 bits leave nothing to guess.
fn random_token() -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

/// Seconds since the Unix epoch.
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Refuses to serve anything but loopback: these servers trust whoever can reach them.
fn require_loopback(addr: std::net::SocketAddr, what: &str) -> std::io::Result<()> {
    if addr.ip().is_loopback() {
        Ok(())
    } else {
        Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{what} binds only to loopback addresses, not {addr}"),
        ))
    }
}
