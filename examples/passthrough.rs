//! A plain pingora reverse proxy with no authorization: the ceiling `benches/load.sh`
//! compares scopegate against. Same pingora settings as `scopegate run` (one worker thread
//! by default, downstream and upstream keep-alive, pingora's default connection pool), and
//! the same shape of `ProxyHttp` minus the policy, token and header work.
//!
//! ```text
//! cargo run --release --example passthrough -- 127.0.0.1:8080 127.0.0.1:9000 [--threads N]
//! ```

use std::net::SocketAddr;

use async_trait::async_trait;
use pingora::prelude::*;
use pingora::proxy::{ProxyHttp, Session};
use pingora::server::configuration::{Opt, ServerConf};

struct Passthrough {
    upstream: SocketAddr,
    host: String,
}

#[async_trait]
impl ProxyHttp for Passthrough {
    type CTX = ();

    fn new_ctx(&self) {}

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(
            self.upstream,
            false,
            self.host.clone(),
        )))
    }
}

/// The same allocator as `scopegate`, so that the comparison measures authorization only.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn usage() -> ! {
    eprintln!("usage: passthrough LISTEN_ADDR UPSTREAM_ADDR [--threads N]");
    std::process::exit(2)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (listen, upstream) = match (args.first(), args.get(1)) {
        (Some(l), Some(u)) => (l.clone(), u.clone()),
        _ => usage(),
    };
    let threads = match args.get(2).map(String::as_str) {
        None => 1,
        Some("--threads") => args
            .get(3)
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| usage()),
        Some(_) => usage(),
    };
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
    let mut proxy = pingora::proxy::http_proxy_service_with_name(
        &server.configuration,
        Passthrough {
            upstream,
            host: upstream.ip().to_string(),
        },
        "passthrough",
    );
    proxy.add_tcp(&listen);
    server.add_service(proxy);
    eprintln!("passthrough: {listen} -> {upstream}, {threads} thread(s)");
    server.run_forever();
}
