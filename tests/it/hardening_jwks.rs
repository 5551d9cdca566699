//! The key set fetch: bounded in bytes, no redirects, no weak RSA keys.

use crate::harness::*;

/// A JWKS endpoint that answers every request with `response` (raw HTTP).
fn fixed_jwks(response: Vec<u8>) -> std::net::SocketAddr {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let _ = stream.write_all(&response);
        }
    });
    addr
}

fn gateway_on(jwks_uri: String) -> (Gateway, Upstream) {
    let upstream = Upstream::start();
    let policy = timesheets_policy();
    let spec = GatewaySpec {
        jwks_uri,
        upstream: upstream.addr,
        policy: &policy,
        issuer: default_issuer_options(),
        extra: "",
    };
    (Gateway::start(&spec), upstream)
}

#[test]
fn an_oversized_key_set_is_a_failed_fetch() {
    let good = JwksServer::start(&[&TestKey::rsa()]);
    let keys = format!(
        "{{\"keys\": [{}], \"padding\": \"{}\"}}",
        TestKey::rsa().public(),
        "x".repeat(2 * 1024 * 1024)
    );
    let mut response =
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n".to_vec();
    response.extend_from_slice(keys.as_bytes());
    let addr = fixed_jwks(response);
    let (gw, _upstream) = gateway_on(format!("http://{addr}/jwks"));
    gw.wait_for(
        || {
            gw.metric("scopegate_jwks_refreshes_total{issuer=\"exampleco\",result=\"failure\"}")
                >= 1.0
        },
        "a failed fetch",
    );
    assert_eq!(gw.admin_get("/readyz").0, 503);
    // The failure is counted just before it is logged.
    gw.wait_for(
        || gw.log().contains("larger than"),
        "the refusal's log line",
    );
    drop(good);
}

#[test]
fn a_redirect_is_not_followed() {
    let good = JwksServer::start(&[&TestKey::rsa()]);
    let response = format!(
        "HTTP/1.1 302 Found\r\nLocation: {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        good.uri()
    );
    let addr = fixed_jwks(response.into_bytes());
    let (gw, _upstream) = gateway_on(format!("http://{addr}/jwks"));
    gw.wait_for(
        || {
            gw.metric("scopegate_jwks_refreshes_total{issuer=\"exampleco\",result=\"failure\"}")
                >= 1.0
        },
        "a failed fetch",
    );
    assert_eq!(good.fetches(), 0, "the redirect was followed");
    assert_eq!(gw.admin_get("/readyz").0, 503);
}

#[test]
fn weak_rsa_keys_are_not_counted_or_used() {
    use base64::Engine as _;
    let jwks = JwksServer::start(&[]);
    let mut weak = TestKey::rsa().public();
    weak["kid"] = serde_json::json!("weak");
    weak["n"] =
        serde_json::json!(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([0xc5u8; 128]));
    jwks.set_raw_keys(vec![weak]);
    let (gw, _upstream) = gateway_on(jwks.uri());
    gw.wait_for(|| jwks.fetches() >= 1, "a fetch");
    gw.wait_for(
        || {
            gw.metric("scopegate_jwks_refreshes_total{issuer=\"exampleco\",result=\"failure\"}")
                >= 1.0
        },
        "the weak-only set refused",
    );
    assert_eq!(gw.metric("scopegate_jwks_keys{issuer=\"exampleco\"}"), 0.0);
    assert_eq!(gw.admin_get("/readyz").0, 503);
}
