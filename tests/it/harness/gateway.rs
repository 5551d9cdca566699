//! The gateway: the real `scopegate` binary with its own config, policy and log files.

use super::*;

/// A running `scopegate run` process with its own config, policy and log files.
pub struct Gateway {
    pub child: Child,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub dir: tempfile::TempDir,
}

/// Settings for [`Gateway::start`]; `extra` is appended to the generated config at its top
/// level, and the issuer's own keys are set with [`GatewaySpec::issuer_option`].
pub struct GatewaySpec<'a> {
    pub jwks_uri: String,
    pub upstream: SocketAddr,
    pub policy: &'a str,
    /// The issuer's keys besides `issuer`, `name`, `audiences`, `jwks_uri` and
    /// `algorithms`, each written as `key: <JSON>` (JSON is YAML: nothing depends on
    /// indentation).
    pub issuer: serde_json::Map<String, Value>,
    pub extra: &'a str,
}

/// The issuer keys every test gateway starts with: short JWKS intervals.
pub fn default_issuer_options() -> serde_json::Map<String, Value> {
    let mut options = serde_json::Map::new();
    options.insert(
        "jwks".into(),
        json!({"min_refresh_seconds": 1, "unknown_kid_refetch_seconds": 1}),
    );
    options
}

pub fn timesheets_policy() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/timesheets.yaml"))
        .expect("policy")
}

impl<'a> GatewaySpec<'a> {
    /// Sets an issuer key; an object is merged into one already set (`jwks`, say), so a
    /// test adds `max_staleness_seconds` without restating the rest.
    pub fn issuer_option(&mut self, key: &str, value: Value) -> &mut Self {
        match (self.issuer.get_mut(key), value) {
            (Some(Value::Object(set)), Value::Object(more)) => set.extend(more),
            (_, value) => {
                self.issuer.insert(key.to_owned(), value);
            }
        }
        self
    }

    pub fn new(jwks: &JwksServer, upstream: &Upstream, policy: &'a str) -> GatewaySpec<'a> {
        GatewaySpec {
            jwks_uri: jwks.uri(),
            upstream: upstream.addr,
            policy,
            issuer: default_issuer_options(),
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
        let [addr, admin] = free_ports::<2>().map(|port| SocketAddr::from(([127, 0, 0, 1], port)));
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
{issuer_options}identity_headers:
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
            issuer_options = spec
                .issuer
                .iter()
                .map(|(key, value)| format!("    {key}: {value}\n"))
                .collect::<String>(),
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
