//! Certificate-bound access tokens (RFC 8705 §3): a token with `cnf.x5t#S256` passes only
//! over a connection whose client certificate has that thumbprint, on scopegate's own TLS
//! listener or, behind a TLS-terminating proxy, in the header it forwards.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;

use crate::harness::*;

fn openssl(dir: &Path, args: &[&str]) {
    let status = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl runs");
    assert!(status.success(), "openssl {args:?}");
}

/// A CA (`<name>-ca.crt`, `.key`), made with openssl.
fn make_ca(dir: &Path, name: &str) -> PathBuf {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN={name}"),
            "-keyout",
            &format!("{name}-ca.key"),
            "-out",
            &format!("{name}-ca.crt"),
        ],
    );
    dir.join(format!("{name}-ca.crt"))
}

/// A certificate `<name>.crt` + `<name>.key` signed by CA `ca`, with extensions `ext`.
fn make_leaf(dir: &Path, ca: &str, name: &str, subject: &str, ext: &str) -> (PathBuf, PathBuf) {
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            subject,
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
        ],
    );
    std::fs::write(dir.join(format!("{name}.ext")), ext).unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            &format!("{ca}-ca.crt"),
            "-CAkey",
            &format!("{ca}-ca.key"),
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &format!("{name}.ext"),
            "-out",
            &format!("{name}.crt"),
        ],
    );
    (
        dir.join(format!("{name}.crt")),
        dir.join(format!("{name}.key")),
    )
}

/// `x5t#S256` of a PEM certificate: base64url(SHA-256(DER)).
fn thumbprint(cert: &Path) -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    let pem = std::fs::read_to_string(cert).unwrap();
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap();
    b64(&sha2::Sha256::digest(der))
}

struct Pki {
    dir: tempfile::TempDir,
    server_ca: PathBuf,
    server: (PathBuf, PathBuf),
    client_ca: PathBuf,
    /// Two client certificates of the trusted client CA.
    app: (PathBuf, PathBuf),
    other: (PathBuf, PathBuf),
}

fn pki() -> Pki {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server_ca = make_ca(d, "server");
    let server = make_leaf(
        d,
        "server",
        "api",
        "/CN=api.exampleco.test",
        "subjectAltName=DNS:api.exampleco.test\nbasicConstraints=critical,CA:FALSE\n",
    );
    let client_ca = make_ca(d, "clients");
    let client_ext = "basicConstraints=critical,CA:FALSE\nextendedKeyUsage=clientAuth\n";
    let app = make_leaf(d, "clients", "app", "/CN=timesheets-batch", client_ext);
    let other = make_leaf(d, "clients", "other", "/CN=someone-else", client_ext);
    Pki {
        dir,
        server_ca,
        server,
        client_ca,
        app,
        other,
    }
}

fn client(pki: &Pki, addr: SocketAddr, identity: Option<&(PathBuf, PathBuf)>) -> reqwest::Client {
    let ca = std::fs::read(&pki.server_ca).unwrap();
    let mut builder = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&ca).unwrap()])
        .resolve("api.exampleco.test", addr)
        .pool_max_idle_per_host(0);
    if let Some((cert, key)) = identity {
        let mut pem = std::fs::read(cert).unwrap();
        pem.extend(std::fs::read(key).unwrap());
        builder = builder.identity(reqwest::Identity::from_pem(&pem).unwrap());
    }
    builder.build().unwrap()
}

fn status(client: &reqwest::Client, addr: SocketAddr, token: &str) -> (u16, String) {
    rt().block_on(async {
        let r = client
            .get(format!(
                "https://api.exampleco.test:{}/timesheets",
                addr.port()
            ))
            .bearer_auth(token)
            .send()
            .await
            .expect("the request completes");
        let status = r.status().as_u16();
        let challenge = r
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        (status, challenge)
    })
}

fn bound_token(cert: &Path) -> String {
    let mut c = claims("read:timesheets");
    c["cnf"] = json!({"x5t#S256": thumbprint(cert)});
    TestKey::rsa().sign(&c)
}

#[test]
fn a_certificate_bound_token_passes_only_with_its_client_certificate() {
    let pki = pki();
    let jwks = JwksServer::start(&[&TestKey::rsa()]);
    let upstream = Upstream::start();
    let policy = timesheets_policy();
    let tls_addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let extra = format!(
        "listen_tls:\n  address: \"{tls_addr}\"\n  cert: {}\n  key: {}\n  client_ca_file: {}",
        pki.server.0.display(),
        pki.server.1.display(),
        pki.client_ca.display()
    );
    let mut spec = GatewaySpec::new(&jwks, &upstream, &policy);
    spec.extra = &extra;
    let gw = Gateway::start(&spec);
    gw.wait_ready();
    gw.wait_for(
        || std::net::TcpStream::connect(tls_addr).is_ok(),
        "the TLS listener",
    );

    let token = bound_token(&pki.app.0);
    let (ok, _) = status(&client(&pki, tls_addr, Some(&pki.app)), tls_addr, &token);
    assert_eq!(ok, 200, "{}", gw.log());
    assert_eq!(
        upstream.last().header("x-auth-cert-thumbprint"),
        Some(thumbprint(&pki.app.0).as_str())
    );
    for who in [Some(&pki.other), None] {
        let (refused, challenge) = status(&client(&pki, tls_addr, who), tls_addr, &token);
        assert_eq!(refused, 401);
        assert!(
            challenge.contains(r#"error="invalid_token""#),
            "{challenge}"
        );
    }
    gw.wait_metric(
        r#"scopegate_requests_total{decision="deny",reason="certificate_mismatch",route="list-timesheets"}"#,
        2.0,
    );
    // The certificate is optional: unbound tokens pass without one, and over plain HTTP.
    let unbound = TestKey::rsa().sign(&claims("read:timesheets"));
    assert_eq!(
        status(&client(&pki, tls_addr, None), tls_addr, &unbound).0,
        200
    );
    assert_eq!(gw.call("GET", "/timesheets", &token).status, 401);
    let _ = pki.dir.path();
}

#[test]
fn behind_a_tls_terminating_proxy_the_forwarded_certificate_binds() {
    let pki = pki();
    let (gw, _jwks, _upstream) = Gateway::with_extra("insecure_client_cert_header: X-Client-Cert");
    let escaped = |cert: &Path| {
        let pem = std::fs::read_to_string(cert).unwrap();
        percent_encoding::utf8_percent_encode(&pem, percent_encoding::NON_ALPHANUMERIC).to_string()
    };
    let token = bound_token(&pki.app.0);
    let call = |cert: Option<&Path>| {
        let auth = format!("Bearer {token}");
        let mut headers = vec![("Authorization", auth.as_str())];
        let value = cert.map(escaped);
        if let Some(v) = &value {
            headers.push(("X-Client-Cert", v.as_str()));
        }
        gw.request("GET", "/timesheets", &headers).status
    };
    assert_eq!(call(Some(&pki.app.0)), 200, "{}", gw.log());
    assert_eq!(call(Some(&pki.other.0)), 401);
    assert_eq!(call(None), 401);
}
