//! The load test's upstream: a deliberately tiny HTTP/1.1 server on one thread that answers
//! every request with `200 ok` (keep-alive, pipelining tolerated), and serves a JWKS file at
//! `/.well-known/jwks.json` so that the gateway under test has an issuer to fetch from, and
//! answers `POST /introspect` (RFC 7662) with an active `read:timesheets` token for the
//! opaque-token target: every token is the same live token to it, valid for a day.
//! `GET /.bench/served` answers how many requests it has answered `200 ok` so far (the
//! requests proxied to it), so that `benches/instructions.sh` divides by what was served.
//! It shares a core with wrk, so it must cost far less per request than the proxy under test.
//!
//! ```text
//! cargo run --release --example bench_upstream -- 127.0.0.1:9000 [JWKS_FILE]
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::net::{TcpListener, TcpStream};

const OK: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 3\r\n\r\nok\n";

/// Requests answered with [`OK`].
static SERVED: AtomicU64 = AtomicU64::new(0);

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(listen) = args.next() else {
        eprintln!("usage: bench_upstream LISTEN_ADDR [JWKS_FILE]");
        std::process::exit(2);
    };
    let jwks: Arc<[u8]> = match args.next() {
        Some(file) => {
            let body = std::fs::read(&file).unwrap_or_else(|e| {
                eprintln!("bench_upstream: cannot read {file}: {e}");
                std::process::exit(1);
            });
            let mut r = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/jwk-set+json\r\ncache-control: max-age=3600\r\ncontent-length: {}\r\n\r\n",
                body.len()
            )
            .into_bytes();
            r.extend_from_slice(&body);
            r.into()
        }
        None => Arc::from(&b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n"[..]),
    };
    let introspection: Arc<[u8]> = introspection_answer().into();
    tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .expect("a runtime")
        .block_on(async move {
            let listener = TcpListener::bind(&listen).await.unwrap_or_else(|e| {
                eprintln!("bench_upstream: cannot listen on {listen}: {e}");
                std::process::exit(1);
            });
            eprintln!("bench_upstream: listening on {listen}");
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    continue;
                };
                let _ = sock.set_nodelay(true);
                let (jwks, introspection) = (jwks.clone(), introspection.clone());
                tokio::spawn(async move {
                    let _ = serve(sock, &jwks, &introspection).await;
                });
            }
        });
}

/// Answers requests on one connection until the peer closes it.
async fn serve(sock: TcpStream, jwks: &[u8], introspection: &[u8]) -> std::io::Result<()> {
    let mut buf: Vec<u8> = Vec::with_capacity(16 * 1024);
    let mut out: Vec<u8> = Vec::with_capacity(4 * 1024);
    let mut chunk = [0u8; 16 * 1024];
    loop {
        sock.readable().await?;
        let n = match sock.try_read(&mut chunk) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        };
        buf.extend_from_slice(&chunk[..n]);
        let mut consumed = 0;
        let mut close = false;
        while let Some(end) = find(&buf[consumed..], b"\r\n\r\n") {
            let head = &buf[consumed..consumed + end + 4];
            let body = content_length(head);
            let total = end + 4 + body;
            if buf.len() - consumed < total {
                break;
            }
            let path = head.split(|b| *b == b' ').nth(1).unwrap_or_default();
            match path {
                b"/.well-known/jwks.json" => out.extend_from_slice(jwks),
                b"/introspect" => out.extend_from_slice(introspection),
                b"/.bench/served" => {
                    let body = format!("{}\n", SERVED.load(Ordering::Relaxed));
                    out.extend_from_slice(
                        format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\r\n{body}",
                            body.len()
                        )
                        .as_bytes(),
                    );
                }
                _ => {
                    SERVED.fetch_add(1, Ordering::Relaxed);
                    out.extend_from_slice(OK);
                }
            }
            close |= has_connection_close(head);
            consumed += total;
        }
        buf.drain(..consumed);
        let mut written = 0;
        while written < out.len() {
            sock.writable().await?;
            match sock.try_write(&out[written..]) {
                Ok(n) => written += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        out.clear();
        if close {
            return Ok(());
        }
    }
}

/// The introspection response: the load test's issuer and audience, a day to live.
fn introspection_answer() -> Vec<u8> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let body = format!(
        r#"{{"active":true,"scope":"read:timesheets","client_id":"timesheets-mobile","sub":"auth0|bench","aud":"https://api.exampleco.com/timesheets","iss":"https://exampleco.test/","iat":{now},"exp":{}}}"#,
        now + 86_400
    );
    format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn header_lines(head: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    head.split(|b| *b == b'\n').skip(1).filter_map(|line| {
        let colon = line.iter().position(|b| *b == b':')?;
        Some((&line[..colon], line[colon + 1..].trim_ascii()))
    })
}

fn content_length(head: &[u8]) -> usize {
    header_lines(head)
        .find(|(n, _)| n.eq_ignore_ascii_case(b"content-length"))
        .and_then(|(_, v)| std::str::from_utf8(v).ok()?.parse().ok())
        .unwrap_or(0)
}

fn has_connection_close(head: &[u8]) -> bool {
    header_lines(head)
        .any(|(n, v)| n.eq_ignore_ascii_case(b"connection") && v.eq_ignore_ascii_case(b"close"))
}
