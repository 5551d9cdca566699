//! A real gRPC server behind the gateway and a real gRPC client in front of it (grpcio,
//! `tests/grpc/`): calls allowed with the identity as metadata, refusals a gRPC client reads
//! as UNAUTHENTICATED or PERMISSION_DENIED with the RFC 6750 challenge beside them, the
//! upstream's own status and trailers passed through, streaming both ways, deadlines.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use serde_json::Value;

use crate::harness::*;

/// gRPC methods are `POST /package.Service/Method`: routes name them by service or exactly.
const POLICY: &str = "version: 1
routes:
  - id: timesheets-grpc-read
    methods: [POST]
    path: /timesheets.v1.Timesheets/{method}
    scopes: [read:timesheets]
  - id: uploads-grpc
    methods: [POST]
    path: /timesheets.v1.Uploads/Upload
    scopes: [create:timesheets]
";

fn python() -> Command {
    let tools = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/tools/python");
    let mut cmd = Command::new("python3");
    cmd.env("PYTHONPATH", tools);
    cmd
}

fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/grpc")
        .join(name)
}

/// The Timesheets gRPC server on a free port; killed when dropped.
struct GrpcServer {
    child: Child,
    addr: std::net::SocketAddr,
}

impl GrpcServer {
    fn start() -> GrpcServer {
        let port = free_port();
        let mut child = python()
            .arg(script("server.py"))
            .arg(port.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 runs the gRPC server");
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.as_mut().unwrap()),
            &mut line,
        )
        .unwrap();
        assert_eq!(line.trim(), port.to_string(), "the gRPC server started");
        GrpcServer {
            child,
            addr: std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        }
    }
}

impl Drop for GrpcServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A gateway with h2c on, speaking h2c to the gRPC server.
fn gateway(server: &GrpcServer, jwks: &JwksServer) -> Gateway {
    let spec = GatewaySpec {
        jwks_uri: jwks.uri(),
        upstream: server.addr,
        policy: POLICY,
        issuer: default_issuer_options(),
        extra: "http2:\n  h2c: true\nupstream_protocol: h2",
    };
    let gw = Gateway::start(&spec);
    gw.wait_ready();
    gw
}

/// One call with the real client; its outcome. A refusal is trailers-only: the client
/// reads its challenge among the trailing metadata.
fn call(gw: &Gateway, method: &str, token: Option<&str>, extra: &[&str]) -> Value {
    let mut cmd = python();
    cmd.arg(script("client.py"))
        .arg(gw.addr.to_string())
        .arg(method);
    if let Some(token) = token {
        cmd.args(["--token", token]);
    }
    let out = cmd
        .args(extra)
        .output()
        .expect("python3 runs the gRPC client");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[test]
fn a_grpc_call_with_the_scope_passes_with_the_identity_as_metadata() {
    let server = GrpcServer::start();
    let jwks = JwksServer::start(&[&TestKey::rsa()]);
    let gw = gateway(&server, &jwks);
    let token = TestKey::rsa().sign(&claims("read:timesheets"));
    let r = call(&gw, "Get", Some(&token), &[]);
    assert_eq!(r["code"], "OK", "{r}");
    let metadata: Value = serde_json::from_str(r["responses"][0].as_str().unwrap()).unwrap();
    assert_eq!(metadata["x-auth-subject"], "auth0|alice", "{metadata}");
    assert_eq!(metadata["x-auth-scopes"], "read:timesheets", "{metadata}");
}

#[test]
fn a_grpc_client_reads_unauthenticated_and_permission_denied_with_the_challenge() {
    let server = GrpcServer::start();
    let jwks = JwksServer::start(&[&TestKey::rsa()]);
    let gw = gateway(&server, &jwks);
    let r = call(&gw, "Get", None, &[]);
    assert_eq!(r["code"], "UNAUTHENTICATED", "{r}");
    let challenge = r["trailing"]["www-authenticate"]
        .as_str()
        .unwrap_or_default();
    assert!(challenge.starts_with("Bearer realm="), "{r}");
    let expired = TestKey::rsa().sign(&serde_json::json!({
        "iss": ISSUER, "aud": AUDIENCE, "sub": "auth0|alice",
        "scope": "read:timesheets", "exp": 1_000_000_000u64,
    }));
    let r = call(&gw, "Get", Some(&expired), &[]);
    assert_eq!(r["code"], "UNAUTHENTICATED", "{r}");
    assert!(
        r["trailing"]["www-authenticate"]
            .as_str()
            .unwrap()
            .contains("invalid_token"),
        "{r}"
    );
    let token = TestKey::rsa().sign(&claims("read:timesheets"));
    let r = call(&gw, "Upload", Some(&token), &[]);
    assert_eq!(r["code"], "PERMISSION_DENIED", "{r}");
    let challenge = r["trailing"]["www-authenticate"].as_str().unwrap();
    assert!(challenge.contains("scope=\"create:timesheets\""), "{r}");
    assert!(!r["details"].as_str().unwrap().is_empty(), "{r}");
}

#[test]
fn the_upstream_s_own_status_and_trailers_reach_the_client_unchanged() {
    let server = GrpcServer::start();
    let jwks = JwksServer::start(&[&TestKey::rsa()]);
    let gw = gateway(&server, &jwks);
    let token = TestKey::rsa().sign(&claims("read:timesheets"));
    let r = call(&gw, "Missing", Some(&token), &[]);
    assert_eq!(r["code"], "NOT_FOUND", "{r}");
    assert_eq!(r["details"], "no timesheet 7", "{r}");
    assert_eq!(r["trailing"]["timesheet-id"], "7", "{r}");
}

#[test]
fn server_and_client_streaming_pass_without_buffering_and_deadlines_hold() {
    let server = GrpcServer::start();
    let jwks = JwksServer::start(&[&TestKey::rsa()]);
    let gw = gateway(&server, &jwks);
    let token = TestKey::rsa().sign(&claims("read:timesheets create:timesheets"));
    let r = call(&gw, "List", Some(&token), &[]);
    assert_eq!(r["code"], "OK", "{r}");
    assert_eq!(r["responses"].as_array().unwrap().len(), 3, "{r}");
    // The server sends a message every 200 ms: streamed, they arrive apart, not together.
    let gaps: Vec<f64> = r["gaps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g.as_f64().unwrap())
        .collect();
    assert!(
        gaps.iter().all(|&g| g > 0.05),
        "messages arrived together: {gaps:?}"
    );
    let r = call(&gw, "Upload", Some(&token), &["--messages", "50"]);
    assert_eq!(r["code"], "OK", "{r}");
    let counted: Value = serde_json::from_str(r["responses"][0].as_str().unwrap()).unwrap();
    assert_eq!(counted["messages"], 50, "{r}");
    let r = call(&gw, "Slow", Some(&token), &["--timeout", "0.5"]);
    assert_eq!(r["code"], "DEADLINE_EXCEEDED", "{r}");
}
