//! The JWKS server the test controls: serves, rotates, fails.

use super::*;

/// How the JWKS server answers.
#[derive(Clone, Debug)]
pub enum JwksMode {
    Serve,
    Status(u16),
    Garbage,
    /// Serves the keys, but only after this many milliseconds.
    Slow(u64),
}

#[derive(Default)]
struct JwksState {
    keys: Mutex<Vec<Value>>,
    mode: Mutex<Option<JwksMode>>,
    cache_control: Mutex<Option<String>>,
    fetches: AtomicUsize,
}

/// A JWKS endpoint the test controls: rotate keys, fail, count fetches, go down.
pub struct JwksServer {
    state: Arc<JwksState>,
    pub addr: SocketAddr,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl JwksServer {
    /// Serves `keys` on a free port.
    pub fn start(keys: &[&TestKey]) -> JwksServer {
        let server = JwksServer::unstarted(keys);
        server.up();
        server
    }

    /// Reserves a port but does not listen yet (JWKS down at start-up).
    pub fn unstarted(keys: &[&TestKey]) -> JwksServer {
        let state = Arc::new(JwksState::default());
        *state.keys.lock().unwrap() = keys.iter().map(|k| k.public()).collect();
        JwksServer {
            state,
            addr: SocketAddr::from(([127, 0, 0, 1], free_port())),
            task: Mutex::new(None),
        }
    }

    pub fn uri(&self) -> String {
        format!("http://{}/.well-known/jwks.json", self.addr)
    }

    /// Starts listening (again) on the reserved port.
    pub fn up(&self) {
        let state = self.state.clone();
        let addr = self.addr;
        let listener = rt()
            .block_on(tokio::net::TcpListener::bind(addr))
            .expect("bind JWKS port");
        let app = axum::Router::new()
            .route("/.well-known/jwks.json", axum::routing::get(serve_jwks))
            .with_state(state);
        let task = rt().spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        *self.task.lock().unwrap() = Some(task);
    }

    /// Stops listening: connections are refused.
    pub fn down(&self) {
        if let Some(task) = self.task.lock().unwrap().take() {
            task.abort();
            // Wait until the listener is really closed.
            let deadline = Instant::now() + Duration::from_secs(5);
            while TcpStream::connect(self.addr).is_ok() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    pub fn set_keys(&self, keys: &[&TestKey]) {
        *self.state.keys.lock().unwrap() = keys.iter().map(|k| k.public()).collect();
    }

    pub fn set_raw_keys(&self, keys: Vec<Value>) {
        *self.state.keys.lock().unwrap() = keys;
    }

    pub fn set_mode(&self, mode: JwksMode) {
        *self.state.mode.lock().unwrap() = Some(mode);
    }

    pub fn set_cache_control(&self, value: &str) {
        *self.state.cache_control.lock().unwrap() = Some(value.to_owned());
    }

    pub fn fetches(&self) -> usize {
        self.state.fetches.load(Ordering::SeqCst)
    }
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        if let Some(task) = self.task.lock().unwrap().take() {
            task.abort();
        }
    }
}

async fn serve_jwks(
    axum::extract::State(state): axum::extract::State<Arc<JwksState>>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    state.fetches.fetch_add(1, Ordering::SeqCst);
    let mode = state
        .mode
        .lock()
        .unwrap()
        .clone()
        .unwrap_or(JwksMode::Serve);
    match mode {
        JwksMode::Status(code) => axum::http::StatusCode::from_u16(code)
            .unwrap()
            .into_response(),
        JwksMode::Garbage => "<html>maintenance</html>".into_response(),
        JwksMode::Serve | JwksMode::Slow(_) => {
            if let JwksMode::Slow(ms) = mode {
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
            let body = json!({ "keys": *state.keys.lock().unwrap() });
            let mut resp = axum::Json(body).into_response();
            if let Some(cc) = state.cache_control.lock().unwrap().clone() {
                resp.headers_mut()
                    .insert("cache-control", cc.parse().unwrap());
            }
            resp
        }
    }
}
