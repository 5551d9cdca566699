//! A fixed-count HTTP/1.1 load for `benches/instructions.sh`: exactly COUNT requests over
//! CONNS keep-alive connections, one request in flight on each, then it checks that every
//! answer was 2xx. A fixed number of requests (not a fixed duration, as wrk has) makes the
//! instruction count of the proxy under test a whole the script divides by that number.
//!
//! ```text
//! cargo run --release --example bench_client -- ADDR COUNT [--conns N] [--path PATH]
//!     [--token TOKEN | --tokens FILE] [--dpop HTU]
//! ```
//!
//! `--token` sends `Authorization: Bearer TOKEN` on every request; `--tokens FILE` cycles
//! through the file's tokens (one a line), request `i` taking token `i mod n`, so a count
//! equal to the file's length sends each token once. `--dpop HTU` sends the token under the
//! `DPoP` scheme with a fresh proof per request (RFC 9449: ES256, signed with
//! `tests/fixtures/ec-p256.pem`, `htm` GET, `htu` HTU, `ath` the token's hash, a distinct
//! `jti`), which is what `examples/mint_tokens.rs --dpop-bound` binds its token to.
//! Prints `requests=COUNT ok=OK` and exits 1 unless every answer was 2xx.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

struct Load {
    addr: String,
    count: usize,
    path: String,
    tokens: Vec<String>,
    dpop: Option<Dpop>,
    next: AtomicUsize,
    ok: AtomicUsize,
}

struct Dpop {
    htu: String,
    key: EncodingKey,
    jwk: Jwk,
    /// `ath` of each token, in the order of `tokens`.
    ath: Vec<String>,
}

fn usage() -> ! {
    eprintln!(
        "usage: bench_client ADDR COUNT [--conns N] [--path PATH] [--token TOKEN | --tokens FILE] [--dpop HTU]"
    );
    std::process::exit(2)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (addr, count) = match (args.first(), args.get(1).and_then(|c| c.parse().ok())) {
        (Some(a), Some(c)) => (a.clone(), c),
        _ => usage(),
    };
    let (mut conns, mut path, mut tokens, mut htu) =
        (4usize, "/timesheets/4711".to_string(), Vec::new(), None);
    let mut rest = args[2..].iter();
    while let Some(flag) = rest.next() {
        let value = rest.next().unwrap_or_else(|| usage()).clone();
        match flag.as_str() {
            "--conns" => conns = value.parse().unwrap_or_else(|_| usage()),
            "--path" => path = value,
            "--token" => tokens = vec![value],
            "--tokens" => {
                tokens = std::fs::read_to_string(&value)
                    .unwrap_or_else(|e| panic!("{value}: {e}"))
                    .lines()
                    .filter(|l| !l.is_empty())
                    .map(str::to_string)
                    .collect()
            }
            "--dpop" => htu = Some(value),
            _ => usage(),
        }
    }
    let dpop = htu.map(|htu| {
        let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
        let pem_path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/ec-p256.pem");
        let pem = std::fs::read(pem_path).expect("fixture key");
        let key = EncodingKey::from_ec_pem(&pem).expect("fixture key parses");
        let jwk = Jwk::from_encoding_key(&key, Algorithm::ES256).expect("public JWK");
        let ath = tokens
            .iter()
            .map(|t| scopegate::auth::dpop::proof::token_hash(t))
            .collect();
        Dpop { htu, key, jwk, ath }
    });
    if dpop.is_some() && tokens.is_empty() {
        usage();
    }
    let load = Arc::new(Load {
        addr,
        count,
        path,
        tokens,
        dpop,
        next: AtomicUsize::new(0),
        ok: AtomicUsize::new(0),
    });
    let failed = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .expect("a runtime")
        .block_on(async {
            let tasks: Vec<_> = (0..conns.max(1))
                .map(|_| tokio::spawn(connection(load.clone())))
                .collect();
            let mut failed = false;
            for t in tasks {
                if let Err(e) = t.await.expect("a connection task") {
                    eprintln!("bench_client: {e}");
                    failed = true;
                }
            }
            failed
        });
    let ok = load.ok.load(Ordering::Relaxed);
    println!("requests={count} ok={ok}");
    if failed || ok != count {
        std::process::exit(1);
    }
}

/// One keep-alive connection: takes request numbers until COUNT are taken.
async fn connection(load: Arc<Load>) -> Result<(), String> {
    let mut sock = None;
    let mut buf = Vec::with_capacity(16 * 1024);
    let mut request = Vec::with_capacity(4 * 1024);
    let mut jti = 0u64;
    loop {
        let i = load.next.fetch_add(1, Ordering::Relaxed);
        if i >= load.count {
            return Ok(());
        }
        if sock.is_none() {
            let s = TcpStream::connect(&load.addr)
                .await
                .map_err(|e| format!("connect {}: {e}", load.addr))?;
            let _ = s.set_nodelay(true);
            sock = Some(s);
        }
        let s = sock.as_mut().expect("connected");
        request.clear();
        request.extend_from_slice(
            format!(
                "GET {} HTTP/1.1\r\nhost: {}\r\nuser-agent: bench_client\r\naccept: */*\r\n",
                load.path, load.addr
            )
            .as_bytes(),
        );
        if !load.tokens.is_empty() {
            let k = i % load.tokens.len();
            let token = &load.tokens[k];
            match &load.dpop {
                None => request
                    .extend_from_slice(format!("authorization: Bearer {token}\r\n").as_bytes()),
                Some(d) => {
                    jti += 1;
                    let proof = proof(d, &d.ath[k], i, jti);
                    request.extend_from_slice(
                        format!("authorization: DPoP {token}\r\ndpop: {proof}\r\n").as_bytes(),
                    );
                }
            }
        }
        request.extend_from_slice(b"\r\n");
        s.write_all(&request)
            .await
            .map_err(|e| format!("write: {e}"))?;
        let (status, close) = response(s, &mut buf).await?;
        if !(200..300).contains(&status) {
            return Err(format!("request {i}: status {status}"));
        }
        load.ok.fetch_add(1, Ordering::Relaxed);
        if close {
            sock = None;
        }
    }
}

/// A fresh proof for `GET htu` (distinct `jti`: the request number and a per-connection count).
fn proof(d: &Dpop, ath: &str, i: usize, jti: u64) -> String {
    let mut header = Header::new(Algorithm::ES256);
    header.typ = Some("dpop+jwt".into());
    header.jwk = Some(d.jwk.clone());
    let claims = serde_json::json!({
        "jti": format!("{:08x}-{i:010}-{jti:010}", std::process::id()),
        "htm": "GET",
        "htu": d.htu,
        "iat": jsonwebtoken::get_current_timestamp(),
        "ath": ath,
    });
    jsonwebtoken::encode(&header, &claims, &d.key).expect("the proof signs")
}

/// Reads one response (content-length bodies only): its status, and whether the server
/// closes the connection after it. Bytes beyond it stay in `buf`.
async fn response(s: &mut TcpStream, buf: &mut Vec<u8>) -> Result<(u16, bool), String> {
    let mut chunk = [0u8; 16 * 1024];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = std::str::from_utf8(&buf[..end]).map_err(|_| "a non-UTF-8 head")?;
            let mut lines = head.split("\r\n");
            let status = lines
                .next()
                .and_then(|l| l.split(' ').nth(1))
                .and_then(|c| c.parse().ok())
                .ok_or_else(|| format!("a bad status line: {head:?}"))?;
            let (mut length, mut close) = (0usize, false);
            for line in lines {
                let Some((name, value)) = line.split_once(':') else {
                    continue;
                };
                let value = value.trim();
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.parse().map_err(|_| "a bad content-length")?;
                } else if name.eq_ignore_ascii_case("transfer-encoding") {
                    return Err(format!("transfer-encoding {value} is not read here"));
                } else if name.eq_ignore_ascii_case("connection") {
                    close = value.eq_ignore_ascii_case("close");
                }
            }
            let total = end + 4 + length;
            while buf.len() < total {
                let n = s.read(&mut chunk).await.map_err(|e| format!("read: {e}"))?;
                if n == 0 {
                    return Err("the connection closed inside a body".into());
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            buf.drain(..total);
            return Ok((status, close));
        }
        let n = s.read(&mut chunk).await.map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return Err("the connection closed before an answer".into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}
