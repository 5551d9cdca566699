//! The world the stories run in: a JWKS server the test controls, an echo upstream that
//! reports what it received, tokens minted from fixture keys, and the real `scopegate`
//! binary on free loopback ports.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, EncodingKey, Header, jwk::Jwk};
use serde_json::{Value, json};

pub const ISSUER: &str = "https://exampleco.test/";
pub const AUDIENCE: &str = "https://api.exampleco.com/timesheets";
pub const EMAIL_CLAIM: &str = "https://api.exampleco.com/email";

/// A runtime shared by every test's in-process servers.
pub fn rt() -> &'static tokio::runtime::Runtime {
    static RT: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RT.get_or_init(|| {
        scopegate::install_crypto_provider();
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime")
    })
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

// ---------------------------------------------------------------------------------------
// Keys and tokens

/// A fixture signing key and its public JWK.
#[derive(Clone)]
pub struct TestKey {
    pub kid: String,
    pub alg: Algorithm,
    pub encoding: EncodingKey,
    pub jwk: Jwk,
}

impl TestKey {
    fn load(file: &str, kid: &str, alg: Algorithm) -> TestKey {
        rt();
        let pem = std::fs::read(fixture(file)).expect("fixture key");
        let encoding = match alg {
            Algorithm::RS256 => EncodingKey::from_rsa_pem(&pem),
            Algorithm::ES256 => EncodingKey::from_ec_pem(&pem),
            Algorithm::EdDSA => EncodingKey::from_ed_pem(&pem),
            other => panic!("no fixture for {other:?}"),
        }
        .expect("fixture key parses");
        let mut jwk = Jwk::from_encoding_key(&encoding, alg).expect("public JWK");
        jwk.common.key_id = Some(kid.to_owned());
        TestKey {
            kid: kid.to_owned(),
            alg,
            encoding,
            jwk,
        }
    }

    pub fn rsa() -> TestKey {
        TestKey::load("rsa-1.pem", "rsa-1", Algorithm::RS256)
    }
    pub fn rsa2() -> TestKey {
        TestKey::load("rsa-2.pem", "rsa-2", Algorithm::RS256)
    }
    pub fn ec() -> TestKey {
        TestKey::load("ec-p256.pem", "ec-1", Algorithm::ES256)
    }
    pub fn ed() -> TestKey {
        TestKey::load("ed25519.pem", "ed-1", Algorithm::EdDSA)
    }

    /// The key's public JWK as JSON.
    pub fn public(&self) -> Value {
        serde_json::to_value(&self.jwk).expect("JWK serializes")
    }

    /// A token signed with this key.
    pub fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.clone());
        header.typ = Some("at+jwt".into());
        self.sign_with(header, claims)
    }

    /// A token with a hand-made header (any `alg` name, e.g. RFC 9864's `Ed25519`),
    /// signed with this key's algorithm.
    pub fn sign_raw(&self, header: &Value, claims: &Value) -> String {
        let message = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let signature = jsonwebtoken::crypto::sign(message.as_bytes(), &self.encoding, self.alg)
            .expect("signing works");
        format!("{message}.{signature}")
    }

    /// A token with a header of the test's choosing.
    pub fn sign_with(&self, header: Header, claims: &Value) -> String {
        jsonwebtoken::encode(&header, claims, &self.encoding).expect("signing works")
    }
}

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

pub fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

/// The claims of a valid token for `scope`.
pub fn claims(scope: &str) -> Value {
    json!({
        "iss": ISSUER,
        "aud": [AUDIENCE, "https://exampleco.test/userinfo"],
        "sub": "auth0|alice",
        "azp": "timesheets-mobile",
        "iat": now(),
        "exp": now() + 3600,
        "scope": scope,
        EMAIL_CLAIM: "alice@exampleco.com",
    })
}

/// Base64url (no padding) of raw bytes; for hand-made tokens.
pub fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

// ---------------------------------------------------------------------------------------
// JWKS server

/// How the JWKS server answers.
#[derive(Clone, Debug)]
pub enum JwksMode {
    Serve,
    Status(u16),
    Garbage,
    /// Serves the keys, but only after this many milliseconds.
    Slow(u64),
}

#[derive(Default)]
struct JwksState {
    keys: Mutex<Vec<Value>>,
    mode: Mutex<Option<JwksMode>>,
    cache_control: Mutex<Option<String>>,
    fetches: AtomicUsize,
}

/// A JWKS endpoint the test controls: rotate keys, fail, count fetches, go down.
pub struct JwksServer {
    state: Arc<JwksState>,
    pub addr: SocketAddr,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl JwksServer {
    /// Serves `keys` on a free port.
    pub fn start(keys: &[&TestKey]) -> JwksServer {
        let server = JwksServer::unstarted(keys);
        server.up();
        server
    }

    /// Reserves a port but does not listen yet (JWKS down at start-up).
    pub fn unstarted(keys: &[&TestKey]) -> JwksServer {
        let state = Arc::new(JwksState::default());
        *state.keys.lock().unwrap() = keys.iter().map(|k| k.public()).collect();
        JwksServer {
            state,
            addr: SocketAddr::from(([127, 0, 0, 1], free_port())),
            task: Mutex::new(None),
        }
    }

    pub fn uri(&self) -> String {
        format!("http://{}/.well-known/jwks.json", self.addr)
    }

    /// Starts listening (again) on the reserved port.
    pub fn up(&self) {
        let state = self.state.clone();
        let addr = self.addr;
        let listener = rt()
            .block_on(tokio::net::TcpListener::bind(addr))
            .expect("bind JWKS port");
        let app = axum::Router::new()
            .route("/.well-known/jwks.json", axum::routing::get(serve_jwks))
            .with_state(state);
        let task = rt().spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        *self.task.lock().unwrap() = Some(task);
    }

    /// Stops listening: connections are refused.
    pub fn down(&self) {
        if let Some(task) = self.task.lock().unwrap().take() {
            task.abort();
            // Wait until the listener is really closed.
            let deadline = Instant::now() + Duration::from_secs(5);
            while TcpStream::connect(self.addr).is_ok() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    pub fn set_keys(&self, keys: &[&TestKey]) {
        *self.state.keys.lock().unwrap() = keys.iter().map(|k| k.public()).collect();
    }

    pub fn set_raw_keys(&self, keys: Vec<Value>) {
        *self.state.keys.lock().unwrap() = keys;
    }

    pub fn set_mode(&self, mode: JwksMode) {
        *self.state.mode.lock().unwrap() = Some(mode);
    }

    pub fn set_cache_control(&self, value: &str) {
        *self.state.cache_control.lock().unwrap() = Some(value.to_owned());
    }

    pub fn fetches(&self) -> usize {
        self.state.fetches.load(Ordering::SeqCst)
    }
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        if let Some(task) = self.task.lock().unwrap().take() {
            task.abort();
        }
    }
}

async fn serve_jwks(
    axum::extract::State(state): axum::extract::State<Arc<JwksState>>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    state.fetches.fetch_add(1, Ordering::SeqCst);
    let mode = state
        .mode
        .lock()
        .unwrap()
        .clone()
        .unwrap_or(JwksMode::Serve);
    match mode {
        JwksMode::Status(code) => axum::http::StatusCode::from_u16(code)
            .unwrap()
            .into_response(),
        JwksMode::Garbage => "<html>maintenance</html>".into_response(),
        JwksMode::Serve | JwksMode::Slow(_) => {
            if let JwksMode::Slow(ms) = mode {
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
            let body = json!({ "keys": *state.keys.lock().unwrap() });
            let mut resp = axum::Json(body).into_response();
            if let Some(cc) = state.cache_control.lock().unwrap().clone() {
                resp.headers_mut()
                    .insert("cache-control", cc.parse().unwrap());
            }
            resp
        }
    }
}

// ---------------------------------------------------------------------------------------
// Echo upstream

/// What the upstream received.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    /// Path and query exactly as received.
    pub target: String,
    pub headers: BTreeMap<String, Vec<String>>,
    /// Length of the request body, read to its end.
    pub body_bytes: usize,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .and_then(|v| v.first())
            .map(String::as_str)
    }
    pub fn header_count(&self, name: &str) -> usize {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map_or(0, Vec::len)
    }
}

/// An upstream that answers 200 with a JSON echo and records every request.
/// How many of the requests it answered the upstream remembers.
pub const SEEN_KEPT: usize = 10_000;

pub struct Upstream {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    arrived: Arc<AtomicUsize>,
    answered: Arc<AtomicUsize>,
    /// Whether it is crashed ([`Upstream::crash`]).
    down: tokio::sync::watch::Sender<bool>,
    app: axum::Router,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Upstream {
    pub fn start() -> Upstream {
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let record = seen.clone();
        let answered: Arc<AtomicUsize> = Arc::default();
        let answers = answered.clone();
        let arrived: Arc<AtomicUsize> = Arc::default();
        let arrivals = arrived.clone();
        let listener = rt()
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
            let (record, answers) = (record.clone(), answers.clone());
            arrivals.fetch_add(1, Ordering::SeqCst);
            async move {
                let (req, body) = req.into_parts();
                let body_bytes = axum::body::to_bytes(body, usize::MAX)
                    .await
                    .map_or(0, |b| b.len());
                let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
                for (name, value) in &req.headers {
                    headers
                        .entry(name.as_str().to_owned())
                        .or_default()
                        .push(String::from_utf8_lossy(value.as_bytes()).into_owned());
                }
                let seen = Seen {
                    body_bytes,
                    method: req.method.to_string(),
                    target: req
                        .uri
                        .path_and_query()
                        .map(|p| p.as_str().to_owned())
                        .unwrap_or_default(),
                    headers,
                };
                // `?delay_ms=N` makes a slow backend, for shutdown and upgrade stories.
                let delay = seen
                    .target
                    .split_once("delay_ms=")
                    .and_then(|(_, v)| v.split('&').next()?.parse::<u64>().ok());
                if let Some(ms) = delay {
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                }
                let body = json!({"method": seen.method, "target": seen.target});
                let mut record = record.lock().unwrap();
                // The soak sends millions: the story tests need only the latest.
                if record.len() == SEEN_KEPT {
                    record.drain(..SEEN_KEPT / 2);
                }
                record.push(seen);
                answers.fetch_add(1, Ordering::SeqCst);
                axum::Json(body)
            }
        });
        let upstream = Upstream {
            addr,
            seen,
            arrived,
            answered,
            down: tokio::sync::watch::Sender::new(false),
            app,
            task: Mutex::new(None),
        };
        upstream.serve(listener);
        upstream
    }

    /// Accepts on `listener`. The connections are tasks of the accept loop's own set, so a
    /// crash closes every one of them.
    fn serve(&self, listener: tokio::net::TcpListener) {
        let app = self.app.clone();
        let mut down = self.down.subscribe();
        let task = rt().spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            loop {
                tokio::select! {
                    Ok(()) = down.changed() => {
                        if *down.borrow_and_update() {
                            connections.abort_all();
                        }
                    }
                    accepted = listener.accept() => {
                        let Ok((socket, _)) = accepted else { continue };
                        if *down.borrow() {
                            continue;
                        }
                        let service = hyper_util::service::TowerToHyperService::new(app.clone());
                        connections.spawn(async move {
                            let _ = hyper::server::conn::http1::Builder::new()
                                .serve_connection(hyper_util::rt::TokioIo::new(socket), service)
                                .await;
                        });
                    }
                    Some(_) = connections.join_next(), if !connections.is_empty() => {}
                }
            }
        });
        *self.task.lock().unwrap() = Some(task);
    }

    /// Fails as a crashed backend does, keeping its port: every open connection closes,
    /// and new ones are closed as soon as they are accepted, until [`Upstream::recover`].
    pub fn crash(&self) {
        self.down.send_replace(true);
    }

    /// Serves again after [`Upstream::crash`].
    pub fn recover(&self) {
        self.down.send_replace(false);
    }

    /// Requests that reached the upstream, answered or still waiting out a `delay_ms`.
    pub fn arrived(&self) -> usize {
        self.arrived.load(Ordering::SeqCst)
    }

    /// The requests answered, the latest [`SEEN_KEPT`] at most.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// How many requests were answered.
    pub fn count(&self) -> usize {
        self.answered.load(Ordering::SeqCst)
    }

    pub fn last(&self) -> Seen {
        let seen = self.seen.lock().unwrap();
        seen.last().cloned().expect("the upstream saw a request")
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        if let Some(task) = self.task.lock().unwrap().take() {
            task.abort();
        }
    }
}

// ---------------------------------------------------------------------------------------
// The gateway

/// A running `scopegate run` process with its own config, policy and log files.
pub struct Gateway {
    pub child: Child,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub dir: tempfile::TempDir,
}

/// Settings for [`Gateway::start`]; `extra` is appended to the generated config.
pub struct GatewaySpec<'a> {
    pub jwks_uri: String,
    pub upstream: SocketAddr,
    pub policy: &'a str,
    pub issuer_extra: &'a str,
    pub extra: &'a str,
}

pub fn timesheets_policy() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/timesheets.yaml"))
        .expect("policy")
}

impl<'a> GatewaySpec<'a> {
    pub fn new(jwks: &JwksServer, upstream: &Upstream, policy: &'a str) -> GatewaySpec<'a> {
        GatewaySpec {
            jwks_uri: jwks.uri(),
            upstream: upstream.addr,
            policy,
            issuer_extra: "",
            extra: "",
        }
    }
}

impl Gateway {
    /// The usual set-up: RS256/ES256/EdDSA keys served, the Timesheets policy, an echo
    /// upstream.
    pub fn standard() -> (Gateway, JwksServer, Upstream) {
        let jwks = JwksServer::start(&[&TestKey::rsa(), &TestKey::ec(), &TestKey::ed()]);
        let upstream = Upstream::start();
        let policy = timesheets_policy();
        let gw = Gateway::start(&GatewaySpec::new(&jwks, &upstream, &policy));
        gw.wait_ready();
        (gw, jwks, upstream)
    }

    /// The RS256 fixture key served, the Timesheets policy, an echo upstream, and `extra`
    /// appended to the config; ready.
    pub fn with_extra(extra: &str) -> (Gateway, JwksServer, Upstream) {
        let jwks = JwksServer::start(&[&TestKey::rsa()]);
        let upstream = Upstream::start();
        let policy = timesheets_policy();
        let mut spec = GatewaySpec::new(&jwks, &upstream, &policy);
        spec.extra = extra;
        let gw = Gateway::start(&spec);
        gw.wait_ready();
        (gw, jwks, upstream)
    }

    /// Writes the config and policy, starts the binary and waits for its admin listener.
    pub fn start(spec: &GatewaySpec) -> Gateway {
        Gateway::start_with_issuer(spec, ISSUER)
    }

    /// [`Gateway::start`] for tokens of another issuer (a real authorization server's).
    pub fn start_with_issuer(spec: &GatewaySpec, issuer: &str) -> Gateway {
        Gateway::start_full(spec, issuer, &format!("http://{}", spec.upstream))
    }

    /// [`Gateway::start`] with an upstream URL of the test's choosing (https).
    pub fn start_with_upstream(spec: &GatewaySpec, upstream: &str) -> Gateway {
        Gateway::start_full(spec, ISSUER, upstream)
    }

    /// [`Gateway::start`] with `RUST_LOG` of the test's choosing.
    pub fn start_logging(spec: &GatewaySpec, rust_log: &str) -> Gateway {
        Gateway::start_at(spec, ISSUER, &format!("http://{}", spec.upstream), rust_log)
    }

    fn start_full(spec: &GatewaySpec, issuer: &str, upstream: &str) -> Gateway {
        Gateway::start_at(spec, issuer, upstream, "info")
    }

    fn start_at(spec: &GatewaySpec, issuer: &str, upstream: &str, rust_log: &str) -> Gateway {
        let dir = tempfile::tempdir().expect("temp dir");
        let policy_dir = dir.path().join("policy");
        std::fs::create_dir(&policy_dir).unwrap();
        std::fs::write(policy_dir.join("policy.yaml"), spec.policy).unwrap();
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let admin = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let config = format!(
            "version: 1
listen: \"{addr}\"
admin_listen: \"{admin}\"
upstream: \"{upstream}\"
policy: policy/policy.yaml
upgrade_socket: {sock}
grace_period_seconds: 3
graceful_shutdown_timeout_seconds: 1
issuers:
  - issuer: \"{issuer}\"
    name: exampleco
    audiences: [\"{AUDIENCE}\"]
{jwks}    algorithms: [RS256, ES256, EdDSA]
    jwks:
      min_refresh_seconds: 1
      unknown_kid_refetch_seconds: 1
{issuer_extra}
identity_headers:
  claims:
    \"{EMAIL_CLAIM}\": X-Auth-Email
{extra}
",
            sock = dir.path().join("upgrade.sock").display(),
            // An empty URI leaves the key set to discovery.
            jwks = if spec.jwks_uri.is_empty() {
                String::new()
            } else {
                format!("    jwks_uri: \"{}\"\n", spec.jwks_uri)
            },
            issuer_extra = spec.issuer_extra,
            // `{gateway}` in the extra settings is the gateway's own URL (a resource
            // identifier, a DPoP public URL), known only once its port is chosen.
            extra = spec.extra.replace("{gateway}", &format!("http://{addr}")),
        );
        std::fs::write(dir.path().join("scopegate.yaml"), config).unwrap();
        Gateway::spawn(dir, addr, admin, &[], rust_log)
    }

    fn spawn(
        dir: tempfile::TempDir,
        addr: SocketAddr,
        admin: SocketAddr,
        args: &[&str],
        rust_log: &str,
    ) -> Gateway {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.path().join("gateway.log"))
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_scopegate"))
            .arg("run")
            .arg("--config")
            .arg(dir.path().join("scopegate.yaml"))
            .args(args)
            .env("RUST_LOG", rust_log)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("the scopegate binary starts");
        let gw = Gateway {
            child,
            addr,
            admin,
            dir,
        };
        gw.wait_for(
            || TcpStream::connect(gw.admin).is_ok(),
            "the admin listener",
        );
        gw.wait_for(|| TcpStream::connect(gw.addr).is_ok(), "the proxy listener");
        gw
    }

    /// Starts a second process with `--upgrade` on the same config; it takes the listening
    /// sockets over once this one gets SIGQUIT.
    pub fn spawn_upgrade(&self) -> Child {
        let log = std::fs::OpenOptions::new()
            .append(true)
            .open(self.dir.path().join("gateway.log"))
            .unwrap();
        Command::new(env!("CARGO_BIN_EXE_scopegate"))
            .arg("run")
            .arg("--config")
            .arg(self.dir.path().join("scopegate.yaml"))
            .arg("--upgrade")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("the scopegate binary starts")
    }

    /// Polls `ok` for up to 20 s; panics with the gateway's log if it never holds.
    pub fn wait_for(&self, mut ok: impl FnMut() -> bool, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("timed out waiting for {what}; gateway log:\n{}", self.log());
    }

    pub fn wait_ready(&self) {
        self.wait_for(|| self.admin_get("/readyz").0 == 200, "/readyz");
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("gateway.log")).unwrap_or_default()
    }

    pub fn policy_path(&self) -> PathBuf {
        self.dir.path().join("policy/policy.yaml")
    }

    /// GET on the admin listener: status and body.
    pub fn admin_get(&self, path: &str) -> (u16, String) {
        match raw(
            self.admin,
            &format!("GET {path} HTTP/1.1\r\nHost: admin\r\n\r\n"),
        ) {
            Ok(r) => (r.status, r.body),
            Err(_) => (0, String::new()),
        }
    }

    /// Value of one metric series, e.g. `scopegate_policy_routes` or
    /// `scopegate_requests_total{route="health",decision="allow",reason="public"}`
    /// (labels in the order the exposition prints them: alphabetical).
    pub fn metric(&self, series: &str) -> f64 {
        let (_, body) = self.admin_get("/metrics");
        body.lines()
            .find_map(|l| {
                let (name, value) = l.rsplit_once(' ')?;
                (name == series).then(|| value.parse().ok()).flatten()
            })
            .unwrap_or(0.0)
    }

    /// Waits until a series reaches `value`: counters are updated in the logging phase,
    /// which may run just after the client has its response.
    pub fn wait_metric(&self, series: &str, value: f64) {
        let mut last = 0.0;
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            last = self.metric(series);
            if last == value {
                return;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("{series} is {last}, expected {value}");
    }

    /// Sends a request through the proxy.
    pub fn request(&self, method: &str, target: &str, headers: &[(&str, &str)]) -> RawResponse {
        let mut req = format!("{method} {target} HTTP/1.1\r\nHost: api.exampleco.test\r\n");
        for (n, v) in headers {
            req.push_str(&format!("{n}: {v}\r\n"));
        }
        if matches!(method, "POST" | "PUT") {
            req.push_str("Content-Length: 2\r\n\r\n{}");
        } else {
            req.push_str("\r\n");
        }
        raw(self.addr, &req).unwrap_or_else(|e| panic!("request failed: {e}\n{}", self.log()))
    }

    /// A request with `Authorization: Bearer <token>`.
    pub fn call(&self, method: &str, target: &str, token: &str) -> RawResponse {
        self.request(
            method,
            target,
            &[("Authorization", &format!("Bearer {token}"))],
        )
    }

    /// Sends a signal with the `kill` command.
    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        self.child.try_wait().expect("wait works").is_none()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------
// A plain HTTP/1.1 client: sends targets byte for byte (no client-side normalization) and
// can reuse a connection to prove keep-alive.

#[derive(Debug, Clone)]
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// Runs a `scopegate` command (`check`, `test`, `explain`, …): its exit code, and its
/// stdout followed by its stderr.
pub fn scopegate(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_scopegate"))
        .args(args)
        .output()
        .expect("scopegate runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

pub fn raw(addr: SocketAddr, request: &str) -> std::io::Result<RawResponse> {
    let mut conn = Connection::open(addr)?;
    conn.send(request)
}

/// One client connection, for several requests.
pub struct Connection {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Connection {
    pub fn open(addr: SocketAddr) -> std::io::Result<Connection> {
        let stream = TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        Ok(Connection {
            stream,
            buf: Vec::new(),
        })
    }

    pub fn send(&mut self, request: &str) -> std::io::Result<RawResponse> {
        self.stream.write_all(request.as_bytes())?;
        self.read_response(request.starts_with("HEAD "))
    }

    fn read_response(&mut self, head_only: bool) -> std::io::Result<RawResponse> {
        let header_end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i;
            }
            self.fill()?;
        };
        let head = String::from_utf8_lossy(&self.buf[..header_end]).into_owned();
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let status: u16 = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("bad status line {status_line:?}")))?;
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
            .collect();
        self.buf.drain(..header_end + 4);
        let get = |n: &str| {
            headers
                .iter()
                .find(|(h, _)| h.eq_ignore_ascii_case(n))
                .map(|(_, v)| v.clone())
        };
        let body = if head_only {
            Vec::new()
        } else if let Some(len) = get("content-length").and_then(|v| v.parse::<usize>().ok()) {
            while self.buf.len() < len {
                self.fill()?;
            }
            self.buf.drain(..len).collect()
        } else if get("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
            let mut body = Vec::new();
            loop {
                let line_end = loop {
                    if let Some(i) = find(&self.buf, b"\r\n") {
                        break i;
                    }
                    self.fill()?;
                };
                let size_text = String::from_utf8_lossy(&self.buf[..line_end]).into_owned();
                let size = usize::from_str_radix(size_text.trim(), 16)
                    .map_err(|_| std::io::Error::other("bad chunk size"))?;
                self.buf.drain(..line_end + 2);
                while self.buf.len() < size + 2 {
                    self.fill()?;
                }
                body.extend(self.buf.drain(..size));
                self.buf.drain(..2);
                if size == 0 {
                    break;
                }
            }
            body
        } else {
            Vec::new()
        };
        Ok(RawResponse {
            status,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    }

    fn fill(&mut self) -> std::io::Result<()> {
        let mut chunk = [0u8; 16 * 1024];
        let n = self.stream.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "connection closed",
            ));
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }

    /// Writes `text` a few bytes at a time with `pause` between them, as a slow client
    /// would; stops at the first write the server refuses.
    pub fn trickle(&mut self, text: &str, pause: Duration) -> std::io::Result<()> {
        for piece in text.as_bytes().chunks(4) {
            self.stream.write_all(piece)?;
            std::thread::sleep(pause);
        }
        Ok(())
    }

    /// Reads the answer to a request already written.
    pub fn receive(&mut self) -> std::io::Result<RawResponse> {
        self.read_response(false)
    }

    /// Whether the server closed the connection (reads EOF within a short wait).
    pub fn is_closed(&mut self) -> bool {
        self.stream
            .set_read_timeout(Some(Duration::from_millis(300)))
            .ok();
        let mut b = [0u8; 1];
        matches!(self.stream.read(&mut b), Ok(0))
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
