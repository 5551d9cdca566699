//! `scopegate demo`: the authorization server and the backend on a tokio runtime of their
//! own in a background thread, and the gateway on the main thread (pingora makes its own
//! runtimes, which must not nest inside another).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use super::DemoError;
use super::authz::AuthServer;
use super::authz::directory::{RESOURCE_SERVER_CLIENT_ID, RESOURCE_SERVER_CLIENT_SECRET};
use super::backend::TimesheetsBackend;
use super::cli::{DEFAULT_AUTHZ_URL, ServeArgs};
use crate::config::Settings;

/// The policy the demo prefers: the repository's copy, when run from a checkout, so that
/// edits to it show up live.
const POLICY_IN_CHECKOUT: &str = "policies/timesheets.yaml";
/// The same policy, built in, for running anywhere else.
const EMBEDDED_POLICY: &str = include_str!("../../policies/timesheets.yaml");
/// Longest the demo gateway trusts a cached introspection answer, in seconds: short, so
/// that `demo revoke` shows within seconds.
pub const INTROSPECTION_CACHE_SECONDS: u64 = 5;

/// Starts the demo; returns only if something fails to start.
pub fn run(args: &ServeArgs) -> Result<Infallible, DemoError> {
    let (auth, backend) = start_services(args)?;
    let scratch = scratch_dir();
    let policy = policy_file(&scratch)?;
    let secret = introspection_secret_file(&scratch)?;
    let yaml = gateway_config(args, &auth, &backend, &policy, &scratch, &secret);
    // The policy path in it is absolute, so the folder relative paths start from is moot.
    let settings = Settings::parse(&yaml, "demo configuration", &scratch).map_err(|errors| {
        let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
        DemoError::Gateway(lines.join("\n"))
    })?;
    let server = crate::server::build(&settings, Default::default())
        .map_err(|e| DemoError::Gateway(e.to_string()))?;
    println!("{}", next_steps(args, &auth, &backend, &policy));
    server.run();
    // The secret and the policy copy are this run's alone: a stopped demo leaves nothing.
    let _ = std::fs::remove_dir_all(&scratch);
    std::process::exit(0)
}

/// Binds the authorization server and the backend on a background runtime, and waits until
/// both listen (or one fails), so the gateway's first JWKS fetch finds the server up.
fn start_services(args: &ServeArgs) -> Result<(AuthServer, TimesheetsBackend), DemoError> {
    let (tx, rx) = mpsc::channel();
    let (authz_addr, backend_addr) = (args.authz_listen, args.backend_listen);
    std::thread::Builder::new()
        .name("demo-services".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("demo-services")
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(e) => {
                    let _ = tx.send(Err(DemoError::Runtime(e)));
                    return;
                }
            };
            runtime.block_on(async move {
                let bind_error = |what, addr| move |source| DemoError::Bind { what, addr, source };
                let auth = AuthServer::bind(authz_addr)
                    .await
                    .map_err(bind_error("development authorization server", authz_addr));
                let backend = TimesheetsBackend::bind(backend_addr)
                    .await
                    .map_err(bind_error("demo backend", backend_addr));
                let ((auth, serve_auth), (backend, serve_backend)) = match (auth, backend) {
                    (Ok(a), Ok(b)) => (a, b),
                    (Err(e), _) | (_, Err(e)) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                };
                let _ = tx.send(Ok((auth, backend)));
                let (a, b) = tokio::join!(serve_auth, serve_backend);
                for (what, result) in [("authorization server", a), ("backend", b)] {
                    if let Err(e) = result {
                        tracing::error!(error = %e, "the demo {what} stopped");
                    }
                }
            });
        })
        .map_err(DemoError::Runtime)?;
    rx.recv()
        .map_err(|_| DemoError::Runtime(std::io::Error::other("the demo services thread ended")))?
}

/// A folder of this process's own, for the upgrade socket (so the demo never meets a real
/// scopegate's; pingora creates the socket only during an upgrade) and, when needed, the
/// built-in policy, and the introspection secret. Removed when the demo stops.
fn scratch_dir() -> PathBuf {
    std::env::temp_dir().join(format!("scopegate-demo-{}", std::process::id()))
}

/// The checkout's policy when the demo runs from the repository, else the built-in copy
/// written to `scratch`. Either file reloads when edited.
fn policy_file(scratch: &Path) -> Result<PathBuf, DemoError> {
    let local = Path::new(POLICY_IN_CHECKOUT);
    if local.is_file() {
        return std::path::absolute(local).map_err(|source| DemoError::Policy {
            path: POLICY_IN_CHECKOUT.into(),
            source,
        });
    }
    let copy = scratch.join("timesheets.yaml");
    std::fs::create_dir_all(scratch)
        .and_then(|()| std::fs::write(&copy, EMBEDDED_POLICY))
        .map_err(|source| DemoError::Policy {
            path: copy.display().to_string(),
            source,
        })?;
    Ok(copy)
}

/// The resource server's client secret, in a file of mode 0600 in `scratch`, where the
/// gateway's `client_secret_file` reads it as an operator's would be read.
fn introspection_secret_file(scratch: &Path) -> Result<PathBuf, DemoError> {
    use std::io::Write as _;
    let path = scratch.join("introspection-secret");
    let mut options = std::fs::OpenOptions::new();
    // A new file, so the mode is ours whatever an older one had.
    let _ = std::fs::remove_file(&path);
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    std::fs::create_dir_all(scratch)
        .and_then(|()| options.open(&path))
        .and_then(|mut file| file.write_all(RESOURCE_SERVER_CLIENT_SECRET.as_bytes()))
        .map_err(|source| DemoError::Scratch {
            path: path.display().to_string(),
            source,
        })?;
    Ok(path)
}

/// The gateway configuration, as text an operator would write, checked by the same parser.
fn gateway_config(
    args: &ServeArgs,
    auth: &AuthServer,
    backend: &TimesheetsBackend,
    policy: &Path,
    scratch: &Path,
    secret: &Path,
) -> String {
    // A JSON string is a valid YAML scalar, quoting included: paths may hold anything.
    let q = |s: &str| serde_json::Value::from(s).to_string();
    format!(
        "version: 1
listen: {listen}
admin_listen: {admin}
upstream: {upstream}
policy: {policy}
upgrade_socket: {socket}
# HTTP/2 with prior knowledge too, as meshes and gRPC clients send it.
http2:
  h2c: true
# A demo stops at once; production keeps serving while load balancers notice.
grace_period_seconds: 0
graceful_shutdown_timeout_seconds: 1
issuers:
  - issuer: {issuer}
    name: demo
    audiences: [{audience}]
    jwks_uri: {jwks}
    algorithms: [RS256]
    # DPoP-bound tokens (demo login --dpop) need their proof; bearer tokens pass too.
    dpop: allowed
    jwks:
      # Short, so that a key rotation shows within seconds.
      min_refresh_seconds: 5
      unknown_kid_refetch_seconds: 1
    # Opaque tokens (demo login --opaque) are asked about at the introspection endpoint.
    introspection:
      endpoint: {introspection}
      client_id: {client_id}
      client_secret_file: {secret}
      # Short, so that a revocation (demo revoke) shows within seconds.
      cache_max_seconds: {cache_max}
identity_headers:
  claims:
    {email_claim}: X-Auth-Email
dpop:
  public_url: {public_url}
# RFC 9728: the app that knows only the API's URL finds where to sign in. Every
# challenge names this document; the identifier (the origin) covers every route.
protected_resource:
  resource: {public_url}
  resource_name: ExampleCo Timesheets (demo)
",
        public_url = q(&url(args.listen)),
        listen = q(&args.listen.to_string()),
        admin = q(&args.admin_listen.to_string()),
        upstream = q(&backend.url()),
        policy = q(&policy.display().to_string()),
        socket = q(&scratch.join("upgrade.sock").display().to_string()),
        issuer = q(&auth.issuer()),
        audience = q(super::API_AUDIENCE),
        jwks = q(&auth.jwks_uri()),
        introspection = q(&auth.introspection_endpoint()),
        client_id = q(RESOURCE_SERVER_CLIENT_ID),
        secret = q(&secret.display().to_string()),
        cache_max = INTROSPECTION_CACHE_SECONDS,
        email_claim = q(super::EMAIL_CLAIM),
    )
}

/// What to try next, with the exact commands for the ports in use.
fn next_steps(
    args: &ServeArgs,
    auth: &AuthServer,
    backend: &TimesheetsBackend,
    policy: &Path,
) -> String {
    let me = program_name();
    let authz_url = format!("http://{}", auth.local_addr());
    let authz_flag = if authz_url == DEFAULT_AUTHZ_URL {
        String::new()
    } else {
        format!(" --authz {authz_url}")
    };
    let gateway = url(args.listen);
    let gateway_flag = if gateway == "http://127.0.0.1:8080" {
        String::new()
    } else {
        format!(" --gateway {gateway}")
    };
    format!(
        "
scopegate demo: everything on loopback; the authorization server is for demos and tests only.

  authorization server  {issuer}  users alice/alice (Employee), bob/bob (Manager)
  Timesheets backend    {backend}  trusts X-Auth-* headers: call it through the gateway
  gateway               {gateway}  metrics and readiness on {admin}
  policy                {policy}  (edits apply without a restart)

Try:
  curl -i {gateway}/timesheets
      # 401: no token
  ALICE=$({me} demo login --user alice --scope \"read:timesheets create:timesheets\"{authz_flag})
  curl -i -X PUT -H \"Authorization: Bearer $ALICE\" {gateway}/approvals/7
      # 403: an employee's token has no approve:timesheets
  BOB=$({me} demo login --user bob --scope approve:timesheets{authz_flag})
  curl -i -X PUT -H \"Authorization: Bearer $BOB\" {gateway}/approvals/7
      # 200: a manager approves entry 7
  TOKEN=$({me} demo login --dpop --user alice --scope read:timesheets{authz_flag}{gateway_flag})
      # a DPoP-bound token: it passes only with a fresh proof by the key it names
  OPAQUE=$({me} demo login --opaque --user alice --scope read:timesheets{authz_flag})
      # an opaque token, which the gateway introspects
  {me} demo revoke $OPAQUE{authz_flag}
      # refused within {cache_max} s (the gateway's introspection cache maximum)
  {me} demo rotate-key{authz_flag}
      # a new signing key; add --retire to make older tokens fail
",
        issuer = auth.issuer(),
        backend = backend.url(),
        admin = url(args.admin_listen),
        policy = policy.display(),
        cache_max = INTROSPECTION_CACHE_SECONDS,
    )
}

fn url(addr: SocketAddr) -> String {
    format!("http://{addr}")
}

/// The command as it was invoked, so the printed lines work as they are (`scopegate` on
/// the PATH, or `target/debug/scopegate`).
fn program_name() -> String {
    std::env::args()
        .next()
        .filter(|p| !p.is_empty() && !p.contains(char::is_whitespace))
        .unwrap_or_else(|| "scopegate".into())
}
