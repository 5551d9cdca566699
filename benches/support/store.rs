//! The shared store (Valkey/Redis) the store benches use, when one answers on loopback.

/// The store's URL for the benches, when something answers there.
pub fn bench_store() -> Option<String> {
    let url = std::env::var("SCOPEGATE_BENCH_STORE")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let address = url
        .strip_prefix("redis://")
        .unwrap_or(&url)
        .trim_end_matches('/');
    match std::net::TcpStream::connect(address) {
        Ok(_) => Some(url),
        Err(e) => {
            eprintln!(
                "skipping the shared-store benches: nothing answers at {url} ({e}); \
                 start `redis-server --port 6379 --save '' --appendonly no` or set SCOPEGATE_BENCH_STORE"
            );
            None
        }
    }
}
