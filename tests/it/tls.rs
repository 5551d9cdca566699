//! TLS termination at the edge: scopegate serves its own certificate and picks up a renewed
//! one (a Kubernetes Secret update) without a restart.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::*;

/// A certificate authority and a server certificate it signed for `api.exampleco.test`,
/// made with openssl: `(ca, cert, key)`.
fn make_cert(dir: &Path, name: &str) -> (PathBuf, PathBuf, PathBuf) {
    let file = |ext: &str| dir.join(format!("{name}.{ext}"));
    let openssl = |args: &[&str]| {
        let status = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stderr(std::process::Stdio::null())
            .status()
            .expect("openssl runs");
        assert!(status.success(), "openssl {args:?}");
    };
    let (ca_key, ca, key, csr, cert) = (
        format!("{name}-ca.key"),
        format!("{name}-ca.crt"),
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.crt"),
    );
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    openssl(
        &[
            &["req", "-x509"][..],
            &ec,
            &[
                "-days",
                "2",
                "-subj",
                &format!("/CN=Test CA {name}"),
                "-keyout",
                &ca_key,
                "-out",
                &ca,
            ],
        ]
        .concat(),
    );
    openssl(
        &[
            &["req"][..],
            &ec,
            &[
                "-subj",
                "/CN=api.exampleco.test",
                "-keyout",
                &key,
                "-out",
                &csr,
            ],
        ]
        .concat(),
    );
    std::fs::write(
        file("ext"),
        "subjectAltName=DNS:api.exampleco.test,DNS:localhost\nbasicConstraints=critical,CA:FALSE\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        &csr,
        "-CA",
        &ca,
        "-CAkey",
        &ca_key,
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        &format!("{name}.ext"),
        "-out",
        &cert,
    ]);
    (dir.join(ca), dir.join(cert), dir.join(key))
}

/// A gateway with a TLS listener serving a certificate made for the test: `top` goes at the
/// configuration's top level, `listen_tls` adds to the listener's keys.
struct TlsGateway {
    gw: Gateway,
    upstream: Upstream,
    ca: PathBuf,
    addr: std::net::SocketAddr,
    _jwks: JwksServer,
    _certs: tempfile::TempDir,
}

fn tls_gateway(name: &str, top: &str, listen_tls: Value) -> TlsGateway {
    let certs = tempfile::tempdir().unwrap();
    let (ca, cert, key) = make_cert(certs.path(), name);
    let jwks = JwksServer::start(&[&TestKey::rsa()]);
    let upstream = Upstream::start();
    let policy = timesheets_policy();
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()));
    let mut tls = json!({
        "address": addr.to_string(),
        "cert": cert.display().to_string(),
        "key": key.display().to_string(),
    });
    if let (Some(tls), Value::Object(more)) = (tls.as_object_mut(), listen_tls) {
        tls.extend(more);
    }
    let extra = format!("{top}\nlisten_tls: {tls}\n");
    let mut spec = GatewaySpec::new(&jwks, &upstream, &policy);
    spec.extra = &extra;
    let gw = Gateway::start(&spec);
    gw.wait_ready();
    gw.wait_for(
        || std::net::TcpStream::connect(addr).is_ok(),
        "the TLS listener",
    );
    TlsGateway {
        gw,
        upstream,
        ca,
        addr,
        _jwks: jwks,
        _certs: certs,
    }
}

/// A client that trusts only `ca` and resolves the API's name to the gateway.
fn client(ca: &Path, addr: std::net::SocketAddr) -> reqwest::Client {
    let pem = std::fs::read(ca).unwrap();
    reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&pem).unwrap()])
        .resolve("api.exampleco.test", addr)
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
}

fn status(client: &reqwest::Client, port: u16, token: &str) -> Result<u16, String> {
    rt().block_on(async {
        client
            .get(format!("https://api.exampleco.test:{port}/timesheets"))
            .bearer_auth(token)
            .send()
            .await
            .map(|r| r.status().as_u16())
            .map_err(|e| format!("{e:?}"))
    })
}

#[test]
fn the_tls_listener_serves_its_certificate_and_picks_up_a_renewed_one() {
    let certs = tempfile::tempdir().unwrap();
    let (ca1, cert1, key1) = make_cert(certs.path(), "first");
    let (ca2, cert2, key2) = make_cert(certs.path(), "second");
    // The Secret's mounted files: tls.crt and tls.key.
    let secret = certs.path().join("secret");
    std::fs::create_dir(&secret).unwrap();
    std::fs::copy(&cert1, secret.join("tls.crt")).unwrap();
    std::fs::copy(&key1, secret.join("tls.key")).unwrap();

    let jwks = JwksServer::start(&[&TestKey::rsa()]);
    let upstream = Upstream::start();
    let policy = timesheets_policy();
    let tls_addr = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()));
    let extra = format!(
        "listen_tls:\n  address: \"{tls_addr}\"\n  cert: {}\n  key: {}",
        secret.join("tls.crt").display(),
        secret.join("tls.key").display()
    );
    let mut spec = GatewaySpec::new(&jwks, &upstream, &policy);
    spec.extra = &extra;
    let gw = Gateway::start(&spec);
    gw.wait_ready();
    gw.wait_for(
        || std::net::TcpStream::connect(tls_addr).is_ok(),
        "the TLS listener",
    );

    let token = TestKey::rsa().sign(&claims("read:timesheets"));
    let (trusts_first, trusts_second) = (client(&ca1, tls_addr), client(&ca2, tls_addr));
    assert_eq!(status(&trusts_first, tls_addr.port(), &token), Ok(200));
    assert!(status(&trusts_second, tls_addr.port(), &token).is_err());
    assert_eq!(status(&trusts_first, tls_addr.port(), "bad"), Ok(401));

    // Renewal: the key is written first, then the certificate, as a Secret update lands.
    std::fs::copy(&key2, secret.join("tls.key")).unwrap();
    std::fs::copy(&cert2, secret.join("tls.crt")).unwrap();
    gw.wait_for(
        || status(&trusts_second, tls_addr.port(), &token) == Ok(200),
        "the renewed certificate",
    );
    // A new client (no TLS session to resume) that trusts only the old CA is refused.
    assert!(status(&client(&ca1, tls_addr), tls_addr.port(), &token).is_err());
    // The new certificate is served just before the reload is logged.
    gw.wait_for(
        || gw.log().contains("TLS certificate reloaded"),
        "the reload's log line",
    );
}

#[test]
fn an_https_upstream_is_verified_against_the_configured_authority() {
    // The upstream is itself a scopegate terminating TLS in front of the echo server, so
    // the whole chain is real: client → scopegate → TLS → scopegate → echo.
    let certs = tempfile::tempdir().unwrap();
    let (ca, cert, key) = make_cert(certs.path(), "upstream");
    let (other_ca, _, _) = make_cert(certs.path(), "other");
    let jwks = JwksServer::start(&[&TestKey::rsa()]);
    let echo = Upstream::start();
    let policy = timesheets_policy();
    let tls_addr = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()));
    let extra = format!(
        "listen_tls:\n  address: \"{tls_addr}\"\n  cert: {}\n  key: {}",
        cert.display(),
        key.display()
    );
    let mut spec = GatewaySpec::new(&jwks, &echo, &policy);
    spec.extra = &extra;
    let inner = Gateway::start(&spec);
    inner.wait_ready();
    inner.wait_for(
        || std::net::TcpStream::connect(tls_addr).is_ok(),
        "the TLS listener",
    );

    let front = |ca: &Path| {
        let extra = format!("upstream_ca_file: {}", ca.display());
        let mut spec = GatewaySpec::new(&jwks, &echo, &policy);
        spec.extra = &extra;
        let gw =
            Gateway::start_with_upstream(&spec, &format!("https://localhost:{}", tls_addr.port()));
        gw.wait_ready();
        gw
    };
    let token = TestKey::rsa().sign(&claims("read:timesheets"));
    let trusted = front(&ca);
    assert_eq!(trusted.call("GET", "/timesheets", &token).status, 200);
    assert_eq!(echo.last().header("x-auth-subject"), Some("auth0|alice"));

    let seen = echo.count();
    let untrusted = front(&other_ca);
    let r = untrusted.call("GET", "/timesheets", &token);
    assert_eq!(r.status, 502, "{r:?}");
    assert_eq!(
        echo.count(),
        seen,
        "nothing reached the upstream over an unverified connection"
    );
    untrusted.wait_metric("scopegate_upstream_errors_total{kind=\"connect\"}", 1.0);
    untrusted.wait_metric(
        r#"scopegate_requests_total{decision="error",reason="upstream_error",route="list-timesheets"}"#,
        1.0,
    );
}

#[test]
fn connections_that_never_send_a_client_hello_hold_a_permit_and_are_cut_off_at_the_handshake_timeout()
 {
    use std::io::Read as _;
    // The header deadline is long, so only the handshake's own timeout can cut them off.
    let t = tls_gateway(
        "hello",
        "max_connections: 4\nclient_header_timeout_seconds: 120",
        json!({"handshake_timeout_seconds": 1}),
    );
    let (gw, tls_addr, ca) = (&t.gw, t.addr, &t.ca);
    gw.wait_metric("scopegate_connections", 0.0);

    // Silent clients: TCP connected, no ClientHello.
    let mut silent: Vec<std::net::TcpStream> = (0..4)
        .map(|_| std::net::TcpStream::connect(tls_addr).unwrap())
        .collect();
    gw.wait_metric("scopegate_connections", 4.0);
    // They hold the cap: the next connection, on either listener, is refused at once.
    let refused = gw.metric("scopegate_connections_refused_total");
    let _fifth = std::net::TcpStream::connect(gw.addr).unwrap();
    gw.wait_metric("scopegate_connections_refused_total", refused + 1.0);

    // The handshake timeout closes them; the cap is free again.
    gw.wait_metric("scopegate_tls_handshake_timeouts_total", 4.0);
    gw.wait_metric("scopegate_connections", 0.0);
    for stream in &mut silent {
        // A guard against a hang only: the connection is already closed.
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(30)))
            .unwrap();
        let mut byte = [0u8; 1];
        let read = stream.read(&mut byte);
        assert!(
            matches!(read, Ok(0))
                || read
                    .as_ref()
                    .is_err_and(|e| e.kind() != std::io::ErrorKind::WouldBlock
                        && e.kind() != std::io::ErrorKind::TimedOut),
            "{read:?}"
        );
    }
    // A client that does the handshake is served as before.
    let token = TestKey::rsa().sign(&claims("read:timesheets"));
    assert_eq!(
        status(&client(ca, tls_addr), tls_addr.port(), &token),
        Ok(200)
    );
    assert_eq!(gw.metric("scopegate_client_header_timeouts_total"), 0.0);
}

#[test]
fn the_header_deadline_runs_from_the_accept_through_the_tls_handshake() {
    // The handshake may take long, the whole header not: the header's clock cuts first.
    let t = tls_gateway(
        "clock",
        "client_header_timeout_seconds: 1",
        json!({"handshake_timeout_seconds": 120}),
    );
    let (gw, tls_addr) = (&t.gw, t.addr);
    let silent = std::net::TcpStream::connect(tls_addr).unwrap();
    gw.wait_metric("scopegate_client_header_timeouts_total", 1.0);
    gw.wait_metric("scopegate_connections", 0.0);
    assert_eq!(gw.metric("scopegate_tls_handshake_timeouts_total"), 0.0);
    drop(silent);
}

#[test]
fn the_tls_listener_offers_h2_by_alpn_and_decides_h2_requests_as_http1_ones() {
    let t = tls_gateway("h2", "", json!({}));
    let (tls_addr, ca, upstream) = (t.addr, &t.ca, &t.upstream);
    let curl = |version: &str, token: Option<&str>| {
        let mut cmd = Command::new("curl");
        cmd.args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_version} %{http_code}",
            version,
        ])
        .arg("--cacert")
        .arg(ca)
        .arg("--resolve")
        .arg(format!("api.exampleco.test:{}:127.0.0.1", tls_addr.port()));
        if let Some(token) = token {
            cmd.arg("-H").arg(format!("Authorization: Bearer {token}"));
        }
        cmd.arg(format!(
            "https://api.exampleco.test:{}/timesheets",
            tls_addr.port()
        ));
        String::from_utf8(cmd.output().expect("curl runs").stdout).unwrap()
    };
    let token = TestKey::rsa().sign(&claims("read:timesheets"));
    assert_eq!(curl("--http2", Some(&token)), "2 200");
    assert_eq!(curl("--http2", None), "2 401");
    assert_eq!(curl("--http1.1", Some(&token)), "1.1 200");
    let seen = upstream.last();
    assert_eq!(seen.header("x-auth-subject"), Some("auth0|alice"));
}
