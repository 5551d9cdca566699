//! Memory an attacker could grow is bounded in bytes: the verified-token cache and the
//! unknown-`kid` memo.

use std::time::Duration;

use crate::harness::*;

#[test]
fn the_token_cache_is_bounded_in_bytes_and_counts_its_evictions() {
    // 64 KiB hold a dozen of these 4 KB tokens at most: the rest are evicted, and every
    // request is still answered from a full verification.
    let (gw, _jwks, _upstream) = Gateway::with_extra("token_cache:\n  max_bytes: 65536");
    let key = TestKey::rsa();
    let padding = "p".repeat(3000);
    let mut tokens = Vec::new();
    for i in 0..40 {
        let mut c = claims("read:timesheets");
        c["jti"] = serde_json::json!(format!("{i}-{padding}"));
        tokens.push(key.sign(&c));
    }
    for token in tokens.iter().chain(&tokens) {
        assert_eq!(gw.call("GET", "/timesheets", token).status, 200);
    }
    let evicted = gw.metric("scopegate_token_cache_evictions_total");
    assert!(evicted >= 40.0, "evictions: {evicted}");
    assert!(
        gw.metric("scopegate_token_cache_requests_total{result=\"miss\"}") >= 60.0,
        "the second round cannot be served from a cache that holds a dozen"
    );
}

#[test]
fn a_long_kid_is_a_bad_token_and_causes_no_refetch() {
    let (gw, jwks, upstream) = Gateway::with_extra("");
    let key = TestKey::rsa();
    let fetches = jwks.fetches();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some("k".repeat(4096));
    let token = key.sign_with(header, &claims("read:timesheets"));
    let r = gw.call("GET", "/timesheets", &token);
    assert_eq!(r.status, 401);
    assert!(
        r.header("www-authenticate")
            .unwrap()
            .contains("invalid_token")
    );
    gw.wait_metric(
        "scopegate_requests_total{decision=\"deny\",reason=\"invalid_token\",route=\"list-timesheets\"}",
        1.0,
    );
    // An unknown key id of a sane length still asks for the keys again.
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some("rotated-key".into());
    let r = gw.call(
        "GET",
        "/timesheets",
        &key.sign_with(header, &claims("read:timesheets")),
    );
    assert_eq!(r.status, 401);
    gw.wait_for(|| jwks.fetches() > fetches, "an unknown-kid refetch");
    assert_eq!(
        gw.metric("scopegate_jwks_unknown_kid_refetches_total{issuer=\"exampleco\"}"),
        1.0
    );
    assert_eq!(upstream.count(), 0);
}

#[test]
fn a_request_body_over_the_limit_gets_413() {
    let (gw, _jwks, upstream) = Gateway::with_extra("max_request_body_bytes: 1024");
    let token = TestKey::rsa().sign(&claims("create:timesheets"));
    let body = "x".repeat(4096);
    let declared = format!(
        "POST /timesheets HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer {token}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let r = raw(gw.addr, &declared).unwrap();
    assert_eq!(r.status, 413, "{r:?}");
    assert_eq!(r.json()["error"], "request_too_large");
    assert_eq!(upstream.count(), 0);
    // Chunked: no length declared, counted as it streams.
    let chunked = format!(
        "POST /timesheets HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer {token}\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
        body.len()
    );
    let r = raw(gw.addr, &chunked).unwrap();
    assert_eq!(r.status, 413, "{r:?}");
    let small = gw.call("POST", "/timesheets", &token);
    assert_eq!(small.status, 200);
}

#[test]
fn connections_past_the_cap_are_closed_and_counted() {
    let (gw, _jwks, _upstream) = Gateway::with_extra("max_connections: 2");
    let mut held: Vec<Connection> = (0..2).map(|_| Connection::open(gw.addr).unwrap()).collect();
    for c in &mut held {
        let r = c.send("GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
        assert_eq!(r.status, 200);
    }
    gw.wait_metric("scopegate_connections", 2.0);
    let mut third = Connection::open(gw.addr).unwrap();
    assert!(
        third
            .send("GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n")
            .is_err()
    );
    gw.wait_metric("scopegate_connections_refused_total", 1.0);
    drop(held);
    gw.wait_metric("scopegate_connections", 0.0);
    assert_eq!(gw.request("GET", "/healthz", &[]).status, 200);
}

/// Sends a header 4 bytes every 200 ms (about 4 s, each read well inside pingora's own
/// per-read timeout) and checks that it was cut off, not answered.
fn send_a_slow_header_and_see_it_cut_off(conn: &mut Connection, gw: &Gateway) {
    let header =
        "GET /healthz HTTP/1.1\r\nHost: a\r\nX-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    let sent = conn.trickle(header, Duration::from_millis(200));
    let answer = conn.receive();
    assert!(
        sent.is_err() || answer.is_err(),
        "a slow header was answered: {answer:?}"
    );
    gw.wait_metric("scopegate_client_header_timeouts_total", 1.0);
}

#[test]
fn a_header_sent_a_few_bytes_at_a_time_is_cut_off_at_the_header_deadline() {
    let (gw, _jwks, upstream) = Gateway::with_extra("client_header_timeout_seconds: 1");
    let mut slow = Connection::open(gw.addr).unwrap();
    send_a_slow_header_and_see_it_cut_off(&mut slow, &gw);
    assert_eq!(upstream.count(), 0);
    // Other clients are served as before.
    assert_eq!(gw.request("GET", "/healthz", &[]).status, 200);
}

#[test]
fn a_later_header_on_a_kept_alive_connection_is_cut_off_at_the_deadline_too() {
    let (gw, _jwks, _upstream) = Gateway::with_extra("client_header_timeout_seconds: 1");
    let mut conn = Connection::open(gw.addr).unwrap();
    let first = conn
        .send("GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    assert_eq!(first.status, 200);
    // The second header's clock starts at its first wait, right after its first bytes.
    send_a_slow_header_and_see_it_cut_off(&mut conn, &gw);
}

#[test]
fn the_header_deadline_spares_a_slow_body_and_an_idle_keep_alive_connection() {
    let (gw, _jwks, upstream) = Gateway::with_extra("client_header_timeout_seconds: 1");
    let token = TestKey::rsa().sign(&claims("create:timesheets"));
    let body = "x".repeat(64);
    let mut conn = Connection::open(gw.addr).unwrap();
    // The header at once, the body over about 3 s: the clock stopped with the header.
    conn.trickle(
        &format!(
            "POST /timesheets HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer {token}\r\nContent-Length: {}\r\n\r\n",
            body.len()
        ),
        Duration::ZERO,
    )
    .unwrap();
    conn.trickle(&body, Duration::from_millis(200)).unwrap();
    assert_eq!(conn.receive().unwrap().status, 200);
    assert_eq!(upstream.last().body_bytes, body.len());
    // Idle on the kept-alive connection past the header limit: the next request's clock
    // starts at its first byte.
    std::thread::sleep(Duration::from_millis(1500));
    let r = conn
        .send(&format!(
            "GET /timesheets HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer {token}\r\n\r\n"
        ))
        .unwrap();
    assert_eq!(r.status, 403, "{r:?}");
    assert_eq!(gw.metric("scopegate_client_header_timeouts_total"), 0.0);
}
