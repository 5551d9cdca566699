//! The echo upstream: reports what it received, can crash and recover.

use super::*;

/// What the upstream received.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    /// Path and query exactly as received.
    pub target: String,
    pub headers: BTreeMap<String, Vec<String>>,
    /// Length of the request body, read to its end.
    pub body_bytes: usize,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .and_then(|v| v.first())
            .map(String::as_str)
    }
    pub fn header_count(&self, name: &str) -> usize {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map_or(0, Vec::len)
    }
}

/// An upstream that answers 200 with a JSON echo and records every request.
/// How many of the requests it answered the upstream remembers.
pub const SEEN_KEPT: usize = 10_000;

pub struct Upstream {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    arrived: Arc<AtomicUsize>,
    answered: Arc<AtomicUsize>,
    /// Whether it is crashed ([`Upstream::crash`]).
    down: tokio::sync::watch::Sender<bool>,
    app: axum::Router,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Upstream {
    pub fn start() -> Upstream {
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let record = seen.clone();
        let answered: Arc<AtomicUsize> = Arc::default();
        let answers = answered.clone();
        let arrived: Arc<AtomicUsize> = Arc::default();
        let arrivals = arrived.clone();
        let listener = rt()
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
            let (record, answers) = (record.clone(), answers.clone());
            arrivals.fetch_add(1, Ordering::SeqCst);
            async move {
                let (req, body) = req.into_parts();
                let body_bytes = axum::body::to_bytes(body, usize::MAX)
                    .await
                    .map_or(0, |b| b.len());
                let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
                for (name, value) in &req.headers {
                    headers
                        .entry(name.as_str().to_owned())
                        .or_default()
                        .push(String::from_utf8_lossy(value.as_bytes()).into_owned());
                }
                let seen = Seen {
                    body_bytes,
                    method: req.method.to_string(),
                    target: req
                        .uri
                        .path_and_query()
                        .map(|p| p.as_str().to_owned())
                        .unwrap_or_default(),
                    headers,
                };
                // `?delay_ms=N` makes a slow backend, for shutdown and upgrade stories.
                let delay = seen
                    .target
                    .split_once("delay_ms=")
                    .and_then(|(_, v)| v.split('&').next()?.parse::<u64>().ok());
                if let Some(ms) = delay {
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                }
                let body = json!({"method": seen.method, "target": seen.target});
                let mut record = record.lock().unwrap();
                // The soak sends millions: the story tests need only the latest.
                if record.len() == SEEN_KEPT {
                    record.drain(..SEEN_KEPT / 2);
                }
                record.push(seen);
                answers.fetch_add(1, Ordering::SeqCst);
                axum::Json(body)
            }
        });
        let upstream = Upstream {
            addr,
            seen,
            arrived,
            answered,
            down: tokio::sync::watch::Sender::new(false),
            app,
            task: Mutex::new(None),
        };
        upstream.serve(listener);
        upstream
    }

    /// Accepts on `listener`. The connections are tasks of the accept loop's own set, so a
    /// crash closes every one of them.
    fn serve(&self, listener: tokio::net::TcpListener) {
        let app = self.app.clone();
        let mut down = self.down.subscribe();
        let task = rt().spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            loop {
                tokio::select! {
                    Ok(()) = down.changed() => {
                        if *down.borrow_and_update() {
                            connections.abort_all();
                        }
                    }
                    accepted = listener.accept() => {
                        let Ok((socket, _)) = accepted else { continue };
                        if *down.borrow() {
                            continue;
                        }
                        let service = hyper_util::service::TowerToHyperService::new(app.clone());
                        connections.spawn(async move {
                            let _ = hyper::server::conn::http1::Builder::new()
                                .serve_connection(hyper_util::rt::TokioIo::new(socket), service)
                                .await;
                        });
                    }
                    Some(_) = connections.join_next(), if !connections.is_empty() => {}
                }
            }
        });
        *self.task.lock().unwrap() = Some(task);
    }

    /// Fails as a crashed backend does, keeping its port: every open connection closes,
    /// and new ones are closed as soon as they are accepted, until [`Upstream::recover`].
    pub fn crash(&self) {
        self.down.send_replace(true);
    }

    /// Serves again after [`Upstream::crash`].
    pub fn recover(&self) {
        self.down.send_replace(false);
    }

    /// Requests that reached the upstream, answered or still waiting out a `delay_ms`.
    pub fn arrived(&self) -> usize {
        self.arrived.load(Ordering::SeqCst)
    }

    /// The requests answered, the latest [`SEEN_KEPT`] at most.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// How many requests were answered.
    pub fn count(&self) -> usize {
        self.answered.load(Ordering::SeqCst)
    }

    pub fn last(&self) -> Seen {
        let seen = self.seen.lock().unwrap();
        seen.last().cloned().expect("the upstream saw a request")
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        if let Some(task) = self.task.lock().unwrap().take() {
            task.abort();
        }
    }
}

/// An upstream that records each request head byte for byte, as it arrived (an HTTP library
/// would hide the request-target's form and the names' spelling), and answers `200` with an
/// empty body, on kept-alive connections too.
pub fn raw_upstream() -> (std::net::SocketAddr, std::sync::mpsc::Receiver<String>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let addr = listener.local_addr().unwrap();
    let (heads, received) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let heads = heads.clone();
            std::thread::spawn(move || {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while stream.read(&mut byte).unwrap_or(0) == 1 {
                    head.push(byte[0]);
                    if head.ends_with(b"\r\n\r\n") {
                        if heads
                            .send(String::from_utf8_lossy(&head).into_owned())
                            .is_err()
                        {
                            return;
                        }
                        head.clear();
                        let answer = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
                        if stream.write_all(answer).is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    (addr, received)
}
