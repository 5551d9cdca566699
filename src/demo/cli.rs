//! The `scopegate demo` command line: start the demo, log in as a demo user, revoke a
//! token, rotate the demo's signing key.

use std::net::SocketAddr;

use clap::{Args, Subcommand};

/// Default address of the development authorization server, as a URL.
pub const DEFAULT_AUTHZ_URL: &str = "http://127.0.0.1:9400";

/// `scopegate demo [OPTIONS] [COMMAND]`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct DemoArgs {
    /// Without a command, start the demo.
    #[command(subcommand)]
    pub command: Option<DemoCommand>,
    /// Where the demo's servers listen.
    #[command(flatten)]
    pub serve: ServeArgs,
}

impl DemoArgs {
    /// Whether this starts the servers (which log), rather than a client command (whose
    /// stdout must hold nothing but its result).
    pub fn serves(&self) -> bool {
        self.command.is_none()
    }
}

/// Listening addresses of the demo; loopback only.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Development authorization server (for demos and tests only).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9400")]
    pub authz_listen: SocketAddr,
    /// Demo Timesheets backend.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9401")]
    pub backend_listen: SocketAddr,
    /// The gateway's proxy listener.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// The gateway's admin listener (/metrics, /healthz, /readyz).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9090")]
    pub admin_listen: SocketAddr,
}

/// Client commands against a running demo.
#[derive(Debug, Subcommand)]
pub enum DemoCommand {
    /// Log in as a demo user the way the mobile app does (PKCE); print only the access token.
    ///
    /// Authorization code flow with an S256 code challenge: the login form is submitted, the
    /// code read from the redirect and exchanged with the verifier. The access token alone goes
    /// to stdout, a note to stderr, so that this works:
    /// TOKEN=$(scopegate demo login --user bob --scope approve:timesheets)
    Login(LoginArgs),
    /// Make the demo authorization server sign with a new key; the old one stays in the JWKS
    /// unless --retire.
    RotateKey(RotateKeyArgs),
    /// Print a fresh DPoP proof (RFC 9449) for METHOD URL, signed with the key
    /// `demo login --dpop` saved: the value of the request's DPoP header.
    DpopProof(DpopProofArgs),
    /// Revoke a token at the demo authorization server (RFC 7009), as the mobile app does
    /// when its user signs out: an opaque token is then refused once the gateway's cached
    /// answer ages out; a refresh token ends its whole grant.
    Revoke(RevokeArgs),
}

/// `scopegate demo revoke`.
#[derive(Debug, Clone, Args)]
pub struct RevokeArgs {
    /// The token: an opaque access token (`demo login --opaque`) or a refresh token.
    /// Base64url may begin with `-`: such a token is still the token, not an option.
    #[arg(allow_hyphen_values = true)]
    pub token: String,
    /// The development authorization server.
    #[arg(long, value_name = "URL", default_value = DEFAULT_AUTHZ_URL)]
    pub authz: String,
}

/// `scopegate demo dpop-proof`.
#[derive(Debug, Clone, Args)]
pub struct DpopProofArgs {
    /// The request's method, e.g. GET.
    pub method: String,
    /// The URL the request goes to, e.g. http://127.0.0.1:8080/timesheets.
    pub url: String,
    /// The access token sent with the proof (its hash goes in the proof's `ath`).
    #[arg(long)]
    pub token: Option<String>,
    /// A nonce the server sent in DPoP-Nonce.
    #[arg(long)]
    pub nonce: Option<String>,
    /// The key file. Default: scopegate-demo-dpop-key.pem in the temporary folder.
    #[arg(long, value_name = "FILE")]
    pub dpop_key: Option<std::path::PathBuf>,
}

/// `scopegate demo login`.
#[derive(Debug, Clone, Args)]
pub struct LoginArgs {
    /// alice or alice@exampleco.com (group Employees); bob or bob@exampleco.com (Managers).
    #[arg(long)]
    pub user: String,
    /// Password. Default: the user name up to any '@', which is each demo user's password.
    #[arg(long)]
    pub password: Option<String>,
    /// Space-separated scopes to ask for; the token carries those the user's roles permit.
    #[arg(long)]
    pub scope: String,
    /// Sign in with a second factor: `mfa` sends the one-time code, and the token carries
    /// `acr: mfa` (for routes that require a step-up, RFC 9470).
    #[arg(long, value_name = "ACR")]
    pub acr: Option<String>,
    /// The one-time code sent with --acr. Default: the demo users' public code.
    #[arg(long, default_value = crate::demo::authz::directory::DEMO_ONE_TIME_CODE)]
    pub otp: String,
    /// The development authorization server.
    #[arg(long, value_name = "URL", default_value = DEFAULT_AUTHZ_URL)]
    pub authz: String,
    /// Get a DPoP-bound token (RFC 9449): make a new key, prove its possession to the
    /// token endpoint, and save it for `demo dpop-proof`.
    #[arg(long)]
    pub dpop: bool,
    /// Get an opaque access token instead of a JWT: a random string whose claims stay at
    /// the authorization server, which the gateway asks about (introspection, RFC 7662) and
    /// `demo revoke` ends.
    #[arg(long, conflicts_with = "dpop")]
    pub opaque: bool,
    /// Where --dpop saves the key. Default: scopegate-demo-dpop-key.pem in the temporary
    /// folder.
    #[arg(long, value_name = "FILE", requires = "dpop")]
    pub dpop_key: Option<std::path::PathBuf>,
    /// The gateway, for the command printed after a --dpop login.
    #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:8080")]
    pub gateway: String,
}

/// `scopegate demo rotate-key`.
#[derive(Debug, Clone, Args)]
pub struct RotateKeyArgs {
    /// Also drop the older keys from the JWKS, so tokens they signed stop verifying.
    #[arg(long)]
    pub retire: bool,
    /// The development authorization server.
    #[arg(long, value_name = "URL", default_value = DEFAULT_AUTHZ_URL)]
    pub authz: String,
}
