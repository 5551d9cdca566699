//! A plain pingora reverse proxy with no authorization: the ceiling `benches/load.sh`
//! compares scopegate against. Same pingora settings as `scopegate run` (one worker thread
//! by default, downstream and upstream keep-alive, pingora's default connection pool), and
//! the same shape of `ProxyHttp` minus the policy, token and header work.
//!
//! With `--verify-rs256 JWKS_FILE` it also checks each request's bearer token signature
//! with the JWKS's first key, through scopegate's own signature check (`jws::SignatureKey`,
//! key parsed once) and nothing else: no claims, identity, cache, policy or headers. That is
//! the least any gateway spends on a token it has not seen, so `benches/load.sh` measures
//! it as the bound for the cache-off target. A token that fails is answered 401.
//!
//! ```text
//! cargo run --release --example passthrough -- 127.0.0.1:8080 127.0.0.1:9000 \
//!     [--threads N] [--verify-rs256 JWKS_FILE] [--h2c true] [--timeouts false]
//! ```
//!
//! The upstream timeouts are scopegate's defaults (`upstream_timeouts`: connect 5 s, each
//! read and write 60 s, idle 60 s), set on the peer as scopegate sets them: pingora arms a
//! timer for each timed read and write, and a proxy deployed without them would wait on a
//! silent upstream forever. `--timeouts false` leaves them off (pingora's bare defaults, the
//! passthrough measured before 2026-12-07 14:00 UTC).
//!
//! `--h2c true` accepts HTTP/2 with prior knowledge as well, as `http2.h2c: true` makes
//! scopegate do: the HTTP/2 ceiling of `benches/load_h2.sh`.

use std::net::SocketAddr;

use async_trait::async_trait;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey};
use pingora::prelude::*;
use pingora::proxy::{ProxyHttp, Session};
use pingora::server::configuration::{Opt, ServerConf};
use scopegate::auth::jws::SignatureKey;
use scopegate::config::UpstreamTimeouts;
use scopegate::proxy::upstream::apply_timeouts;

struct Passthrough {
    upstream: SocketAddr,
    host: String,
    verify: Option<SignatureKey>,
    timeouts: Option<UpstreamTimeouts>,
}

#[async_trait]
impl ProxyHttp for Passthrough {
    type CTX = ();

    fn new_ctx(&self) {}

    async fn request_filter(&self, session: &mut Session, _ctx: &mut ()) -> Result<bool> {
        let Some(key) = &self.verify else {
            return Ok(false);
        };
        let token = session
            .req_header()
            .headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if token.is_some_and(|t| key.verify(t, Algorithm::RS256).is_ok()) {
            return Ok(false);
        }
        session.respond_error(401).await?;
        Ok(true)
    }

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        let mut peer = HttpPeer::new(self.upstream, false, self.host.clone());
        if let Some(timeouts) = &self.timeouts {
            apply_timeouts(timeouts, &mut peer);
        }
        Ok(Box::new(peer))
    }
}

/// The same allocator as `scopegate`, so that the comparison measures authorization only.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn usage() -> ! {
    eprintln!(
        "usage: passthrough LISTEN_ADDR UPSTREAM_ADDR [--threads N] [--verify-rs256 JWKS_FILE] [--h2c true] \
         [--timeouts false]"
    );
    std::process::exit(2)
}

/// The first key of a JWKS file, parsed for RS256.
fn rs256_key(path: &str) -> SignatureKey {
    scopegate::install_crypto_provider();
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let set: JwkSet = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
    let jwk = set
        .keys
        .first()
        .unwrap_or_else(|| panic!("{path}: no keys"));
    let decoding = DecodingKey::from_jwk(jwk).expect("an RSA public key");
    SignatureKey::new(decoding, &[Algorithm::RS256]).expect("an RS256 key")
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (listen, upstream) = match (args.first(), args.get(1)) {
        (Some(l), Some(u)) => (l.clone(), u.clone()),
        _ => usage(),
    };
    let (mut threads, mut verify, mut h2c, mut timeouts) = (1, None, false, true);
    let mut rest = args[2..].iter();
    while let Some(flag) = rest.next() {
        let value = rest.next().unwrap_or_else(|| usage());
        match flag.as_str() {
            "--threads" => threads = value.parse().unwrap_or_else(|_| usage()),
            "--verify-rs256" => verify = Some(rs256_key(value)),
            "--h2c" => h2c = value == "true",
            "--timeouts" => timeouts = value != "false",
            _ => usage(),
        }
    }
    let upstream: SocketAddr = upstream.parse().unwrap_or_else(|_| usage());
    let pid = std::process::id();
    // As in `server::build`: pingora's defaults except the thread count, and a pid file and
    // upgrade socket of our own so that several instances can run side by side.
    let conf = ServerConf {
        threads,
        pid_file: format!("/tmp/passthrough-{pid}.pid"),
        upgrade_sock: format!("/tmp/passthrough-{pid}.sock"),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(Opt::default(), conf);
    server.bootstrap();
    let checks = if verify.is_some() {
        ", RS256 signature check"
    } else {
        ""
    };
    let mut proxy = pingora::proxy::http_proxy_service_with_name(
        &server.configuration,
        Passthrough {
            upstream,
            host: upstream.ip().to_string(),
            verify,
            timeouts: timeouts.then(UpstreamTimeouts::default),
        },
        "passthrough",
    );
    if h2c {
        let mut options = pingora::apps::HttpServerOptions::default();
        options.h2c = true;
        proxy
            .app_logic_mut()
            .expect("the proxy's app")
            .server_options = Some(options);
    }
    proxy.add_tcp(&listen);
    server.add_service(proxy);
    eprintln!("passthrough: {listen} -> {upstream}, {threads} thread(s){checks}");
    server.run_forever();
}
