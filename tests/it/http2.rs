//! HTTP/2 from clients (h2c with prior knowledge, as meshes and gRPC clients send it) goes
//! through the same decision and header plan as HTTP/1.1, and gRPC clients get their
//! refusals as gRPC. Driven with curl, a real HTTP/2 client.

use std::process::Command;

use crate::harness::*;

/// `curl --http2-prior-knowledge` with `args`; returns the status line's version and code,
/// and the response headers.
fn h2c(gw: &Gateway, path: &str, args: &[&str]) -> (String, String) {
    let out = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-D",
            "-",
            "--http2-prior-knowledge",
            "-w",
            "%{http_version} %{http_code}",
        ])
        .args(args)
        .arg(format!("http://{}{path}", gw.addr))
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (headers, status) = text.rsplit_once("\r\n\r\n").unwrap_or(("", &text));
    (status.trim().to_owned(), headers.to_ascii_lowercase())
}

const H2C: &str = "http2:\n  h2c: true";

#[test]
fn an_h2c_request_is_decided_and_forwarded_like_an_http1_one() {
    let (gw, _jwks, upstream) = Gateway::with_extra(H2C);
    let token = TestKey::rsa().sign(&claims("read:timesheets"));
    let bearer = format!("Authorization: Bearer {token}");
    let (status, _) = h2c(
        &gw,
        "/timesheets",
        &["-H", &bearer, "-H", "X-Auth-Subject: forged"],
    );
    assert_eq!(status, "2 200");
    // The header plan holds on HTTP/2: the client's identity header is gone.
    let seen = upstream.last();
    assert_eq!(
        seen.header("x-auth-subject"),
        Some("auth0|alice"),
        "{seen:?}"
    );
    assert_eq!(seen.header_count("x-auth-subject"), 1, "{seen:?}");
    let (status, headers) = h2c(&gw, "/timesheets", &[]);
    assert_eq!(status, "2 401");
    assert!(
        headers.contains("www-authenticate: bearer realm="),
        "{headers}"
    );
    // The same normalization and refusals read `:path`.
    let (status, _) = h2c(
        &gw,
        "/timesheets/%2e%2e/x",
        &["-H", &bearer, "--path-as-is"],
    );
    assert_eq!(status, "2 400");
}

#[test]
fn h2c_is_off_unless_configured() {
    let (gw, _jwks, _upstream) = Gateway::with_extra("");
    let (status, _) = h2c(&gw, "/timesheets", &[]);
    assert_ne!(status, "2 401", "h2c answered although not configured");
}

#[test]
fn a_grpc_request_without_a_token_gets_unauthenticated_as_grpc_with_the_challenge() {
    let (gw, _jwks, upstream) = Gateway::with_extra(H2C);
    let grpc = [
        "-X",
        "POST",
        "-H",
        "content-type: application/grpc",
        "-H",
        "te: trailers",
    ];
    let (status, headers) = h2c(&gw, "/timesheets", &grpc);
    assert_eq!(status, "2 200", "{headers}");
    assert!(
        headers.contains("content-type: application/grpc"),
        "{headers}"
    );
    assert!(headers.contains("grpc-status: 16"), "{headers}");
    assert!(
        headers.contains("www-authenticate: bearer realm="),
        "{headers}"
    );
    // A token without the scope: PERMISSION_DENIED, the scope named in the challenge.
    let token = TestKey::rsa().sign(&claims("delete:timesheets"));
    let bearer = format!("Authorization: Bearer {token}");
    let mut args = grpc.to_vec();
    args.extend(["-H", &bearer]);
    let (status, headers) = h2c(&gw, "/timesheets", &args);
    assert_eq!(status, "2 200", "{headers}");
    assert!(headers.contains("grpc-status: 7"), "{headers}");
    assert!(headers.contains("grpc-message: "), "{headers}");
    assert!(
        headers.contains("error=\"insufficient_scope\""),
        "{headers}"
    );
    assert_eq!(upstream.count(), 0, "a refused call reached the upstream");
}

#[test]
fn a_grpc_web_refusal_over_http1_is_grpc_web() {
    let (gw, _jwks, _upstream) = Gateway::with_extra("");
    let r = gw.request(
        "POST",
        "/timesheets",
        &[("content-type", "application/grpc-web+proto")],
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/grpc-web"));
    assert_eq!(r.header("grpc-status"), Some("16"));
}
