//! Upstream faults: answered in bounded time with 502/504 and the JSON error body, and
//! counted by kind.

use crate::harness::*;

/// An upstream that accepts and then does `behave` with each connection.
fn bad_upstream(behave: fn(std::net::TcpStream)) -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || behave(stream));
        }
    });
    addr
}

fn read_head(stream: &mut std::net::TcpStream) {
    use std::io::Read;
    let mut buf = [0u8; 4096];
    let _ = stream.read(&mut buf);
}

fn gateway_on(upstream: std::net::SocketAddr) -> (Gateway, JwksServer) {
    let jwks = JwksServer::start(&[&TestKey::rsa()]);
    let policy = timesheets_policy();
    let spec = GatewaySpec {
        jwks_uri: jwks.uri(),
        upstream,
        policy: &policy,
        issuer: default_issuer_options(),
        extra: "upstream_timeouts:\n  read_seconds: 1\n  connect_seconds: 1",
    };
    let gw = Gateway::start(&spec);
    gw.wait_ready();
    (gw, jwks)
}

fn expect(upstream: std::net::SocketAddr, status: u16, error: &str, kind: &str) {
    let (gw, _jwks) = gateway_on(upstream);
    let r = gw.request("GET", "/healthz", &[]);
    assert_eq!(r.status, status, "{r:?}\n{}", gw.log());
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.json()["error"], error);
    gw.wait_metric(
        &format!("scopegate_upstream_errors_total{{kind=\"{kind}\"}}"),
        1.0,
    );
    gw.wait_metric(
        "scopegate_requests_total{decision=\"error\",reason=\"upstream_error\",route=\"health\"}",
        1.0,
    );
}

#[test]
fn an_upstream_that_never_answers_gets_504() {
    let silent = bad_upstream(|mut s| {
        read_head(&mut s);
        std::thread::sleep(std::time::Duration::from_secs(30));
    });
    expect(silent, 504, "gateway_timeout", "timeout");
}

#[test]
fn a_refused_connection_gets_502() {
    let port = free_port();
    expect(
        std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        502,
        "bad_gateway",
        "connect",
    );
}

#[test]
fn a_reset_and_a_broken_answer_get_502() {
    let closing = bad_upstream(|mut s| {
        read_head(&mut s);
        let _ = s.shutdown(std::net::Shutdown::Both);
    });
    expect(closing, 502, "bad_gateway", "reset");
    let garbage = bad_upstream(|mut s| {
        use std::io::Write;
        read_head(&mut s);
        let _ = s.write_all(b"NOT HTTP AT ALL\r\n\r\n");
        std::thread::sleep(std::time::Duration::from_secs(2));
    });
    expect(garbage, 502, "bad_gateway", "protocol");
}
