//! The demo's Timesheets API: a plain backend that knows nothing of tokens. It believes the
//! identity headers the gateway sets (`X-Auth-Email`, else `X-Auth-Subject`), so it must
//! only be reachable through scopegate; without either header it answers 401 all the same,
//! as a second line of defence. Which caller may use which route is the policy's business.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{FromRequestParts, Path, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use crate::demo::Serve;

/// Most entries kept, so a looping script cannot exhaust memory.
const MAX_ENTRIES: usize = 10_000;
/// Most entries in one batch upload.
const MAX_UPLOAD: usize = 500;
/// Longest identity header value accepted (an email address is at most 254 bytes).
const MAX_IDENTITY_BYTES: usize = 320;

/// One timesheet entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    /// Entry id.
    pub id: u64,
    /// The employee it belongs to (their email, or a client's subject).
    pub user_id: String,
    /// When the work started, RFC 3339.
    pub date: String,
    /// Project name.
    pub project: String,
    /// Hours worked, 1 to 24.
    pub hours: u32,
    /// Whether a manager approved it.
    pub approved: bool,
    /// Who approved it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approved_by: Option<String>,
}

/// A running demo backend.
#[derive(Clone)]
pub struct TimesheetsBackend {
    addr: SocketAddr,
    state: Arc<Store>,
}

impl std::fmt::Debug for TimesheetsBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TimesheetsBackend")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl TimesheetsBackend {
    /// Binds `addr` (loopback only; port 0 picks a free one) with the seed entries loaded.
    /// Returns the handle and the future that serves requests: await or spawn it.
    pub async fn bind(addr: SocketAddr) -> std::io::Result<(TimesheetsBackend, Serve)> {
        crate::demo::require_loopback(addr, "the demo backend")?;
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(Store::seeded());
        tracing::info!(%addr, "demo Timesheets backend listening; it trusts X-Auth-* headers, so reach it through scopegate only");
        let serve = axum::serve(listener, router(state.clone()));
        Ok((
            TimesheetsBackend { addr, state },
            Box::pin(async move { serve.await }),
        ))
    }

    /// [`TimesheetsBackend::bind`], then serves on the current tokio runtime.
    pub async fn spawn(addr: SocketAddr) -> std::io::Result<TimesheetsBackend> {
        let (backend, serve) = TimesheetsBackend::bind(addr).await?;
        crate::demo::spawn_serve(serve, "demo backend");
        Ok(backend)
    }

    /// The socket address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its base URL, `http://<address>`, as a gateway `upstream`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every entry, in id order.
    pub fn entries(&self) -> Vec<Entry> {
        self.state.entries().values().cloned().collect()
    }
}

#[derive(Debug)]
struct Store {
    entries: Mutex<BTreeMap<u64, Entry>>,
}

impl Store {
    fn seeded() -> Store {
        let seed = [
            (
                7,
                "alice@exampleco.com",
                "2026-11-02T09:00:00Z",
                "StoreZero",
                6,
                None,
            ),
            (
                8,
                "alice@exampleco.com",
                "2026-11-03T09:00:00Z",
                "StoreZero",
                8,
                Some("bob@exampleco.com"),
            ),
            (
                9,
                "bob@exampleco.com",
                "2026-11-02T10:00:00Z",
                "Payroll",
                4,
                None,
            ),
            (
                12,
                "alice@exampleco.com",
                "2026-11-04T13:00:00Z",
                "Internal",
                2,
                None,
            ),
        ];
        let entries = seed
            .into_iter()
            .map(|(id, user, date, project, hours, approved_by)| {
                let entry = Entry {
                    id,
                    user_id: user.into(),
                    date: date.into(),
                    project: project.into(),
                    hours,
                    approved: approved_by.is_some(),
                    approved_by: approved_by.map(Into::into),
                };
                (id, entry)
            })
            .collect();
        Store {
            entries: Mutex::new(entries),
        }
    }

    // A poisoned lock still holds a consistent map: every update is a single insert/remove.
    fn entries(&self) -> MutexGuard<'_, BTreeMap<u64, Entry>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn router(state: Arc<Store>) -> Router {
    Router::new()
        .route("/healthz", get(health))
        .route("/timesheets", get(list).post(create))
        .route("/timesheets/upload", axum::routing::post(upload))
        .route("/timesheets/{id}", get(read).delete(delete))
        .route("/approvals", get(pending))
        .route("/approvals/{id}", put(approve))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "not_found", "no such resource") })
        .with_state(state)
}

/// The caller, as the gateway vouched for them.
struct Caller(String);

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        ["x-auth-email", "x-auth-subject"]
            .iter()
            .find_map(|name| {
                let value = parts.headers.get(*name)?.to_str().ok()?.trim();
                (!value.is_empty() && value.len() <= MAX_IDENTITY_BYTES).then(|| value.to_owned())
            })
            .map(Caller)
            .ok_or_else(|| {
                error(
                    StatusCode::UNAUTHORIZED,
                    "unauthenticated",
                    "no X-Auth-Email or X-Auth-Subject header: call this API through scopegate",
                )
            })
    }
}

async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok"}))
}

async fn list(State(store): State<Arc<Store>>, Caller(user): Caller) -> Json<Vec<Entry>> {
    Json(
        store
            .entries()
            .values()
            .filter(|e| e.user_id == user)
            .cloned()
            .collect(),
    )
}

/// A new entry as a client sends it; the owner comes from the identity header.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewEntry {
    date: String,
    project: String,
    hours: u32,
}

/// An uploaded entry names its owner: the batch client files for others.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UploadedEntry {
    user_id: String,
    date: String,
    project: String,
    hours: u32,
}

async fn create(
    State(store): State<Arc<Store>>,
    Caller(user): Caller,
    body: Result<Json<NewEntry>, JsonRejection>,
) -> Response {
    let new = match body {
        Ok(Json(new)) => new,
        Err(e) => return error(e.status(), "invalid_body", &e.body_text()),
    };
    if let Err(why) = validate(&user, &new.date, &new.project, new.hours) {
        return error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_entry", why);
    }
    let mut entries = store.entries();
    match insert(&mut entries, user, new.date, new.project, new.hours) {
        Some(entry) => (StatusCode::CREATED, Json(entry)).into_response(),
        None => storage_full(),
    }
}

async fn upload(
    State(store): State<Arc<Store>>,
    Caller(client): Caller,
    body: Result<Json<Vec<UploadedEntry>>, JsonRejection>,
) -> Response {
    let batch = match body {
        Ok(Json(batch)) => batch,
        Err(e) => return error(e.status(), "invalid_body", &e.body_text()),
    };
    if batch.len() > MAX_UPLOAD {
        let why = format!("at most {MAX_UPLOAD} entries per upload");
        return error(StatusCode::PAYLOAD_TOO_LARGE, "too_many_entries", &why);
    }
    for (i, e) in batch.iter().enumerate() {
        if let Err(why) = validate(&e.user_id, &e.date, &e.project, e.hours) {
            let why = format!("entry {i}: {why}");
            return error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_entry", &why);
        }
    }
    let mut entries = store.entries();
    if entries.len() + batch.len() > MAX_ENTRIES {
        return storage_full();
    }
    let ids: Vec<u64> = batch
        .into_iter()
        .filter_map(|e| insert(&mut entries, e.user_id, e.date, e.project, e.hours))
        .map(|e| e.id)
        .collect();
    tracing::info!(%client, count = ids.len(), "batch upload stored");
    (
        StatusCode::CREATED,
        Json(serde_json::json!({"created": ids.len(), "ids": ids})),
    )
        .into_response()
}

async fn read(
    State(store): State<Arc<Store>>,
    Caller(user): Caller,
    id: Result<Path<u64>, PathRejection>,
) -> Response {
    let Ok(Path(id)) = id else {
        return bad_id();
    };
    match store.entries().get(&id) {
        // Another user's entry is answered like a missing one: ids reveal nothing.
        Some(entry) if entry.user_id == user => Json(entry.clone()).into_response(),
        _ => not_found(id),
    }
}

async fn delete(
    State(store): State<Arc<Store>>,
    Caller(user): Caller,
    id: Result<Path<u64>, PathRejection>,
) -> Response {
    let Ok(Path(id)) = id else {
        return bad_id();
    };
    let mut entries = store.entries();
    match entries.get(&id) {
        Some(entry) if entry.user_id == user => {
            if entry.approved {
                return error(
                    StatusCode::CONFLICT,
                    "approved",
                    "an approved entry cannot be deleted",
                );
            }
            entries.remove(&id);
            StatusCode::NO_CONTENT.into_response()
        }
        _ => not_found(id),
    }
}

async fn pending(State(store): State<Arc<Store>>, _caller: Caller) -> Json<Vec<Entry>> {
    Json(
        store
            .entries()
            .values()
            .filter(|e| !e.approved)
            .cloned()
            .collect(),
    )
}

async fn approve(
    State(store): State<Arc<Store>>,
    Caller(manager): Caller,
    id: Result<Path<u64>, PathRejection>,
) -> Response {
    let Ok(Path(id)) = id else {
        return bad_id();
    };
    let mut entries = store.entries();
    let Some(entry) = entries.get_mut(&id) else {
        return not_found(id);
    };
    // Approving twice is harmless: the first approver stays on record.
    if !entry.approved {
        entry.approved = true;
        entry.approved_by = Some(manager);
    }
    Json(entry.clone()).into_response()
}

fn validate(user: &str, date: &str, project: &str, hours: u32) -> Result<(), &'static str> {
    if user.is_empty() || user.len() > MAX_IDENTITY_BYTES {
        return Err("user_id must be 1 to 320 characters");
    }
    if !is_date(date) {
        return Err("date must be RFC 3339, e.g. 2026-11-02T09:00:00Z");
    }
    if project.trim().is_empty() || project.len() > 100 {
        return Err("project must be 1 to 100 characters");
    }
    if !(1..=24).contains(&hours) {
        return Err("hours must be 1 to 24");
    }
    Ok(())
}

/// `YYYY-MM-DD`, optionally followed by a time: enough shape for a demo, without a date crate.
fn is_date(date: &str) -> bool {
    let b = date.as_bytes();
    (10..=35).contains(&b.len())
        && b[..10].iter().enumerate().all(|(i, c)| {
            if i == 4 || i == 7 {
                *c == b'-'
            } else {
                c.is_ascii_digit()
            }
        })
        && (b.len() == 10 || b[10] == b'T')
        && date.is_ascii()
}

fn insert(
    entries: &mut BTreeMap<u64, Entry>,
    user_id: String,
    date: String,
    project: String,
    hours: u32,
) -> Option<Entry> {
    if entries.len() >= MAX_ENTRIES {
        return None;
    }
    let id = entries.last_key_value().map_or(1, |(id, _)| id + 1);
    let entry = Entry {
        id,
        user_id,
        date,
        project,
        hours,
        approved: false,
        approved_by: None,
    };
    entries.insert(id, entry.clone());
    Some(entry)
}

fn bad_id() -> Response {
    error(
        StatusCode::BAD_REQUEST,
        "invalid_id",
        "the id must be a positive integer",
    )
}

fn not_found(id: u64) -> Response {
    error(
        StatusCode::NOT_FOUND,
        "not_found",
        &format!("no timesheet entry {id}"),
    )
}

fn storage_full() -> Response {
    error(
        StatusCode::INSUFFICIENT_STORAGE,
        "storage_full",
        "the demo keeps at most 10000 entries",
    )
}

fn error(status: StatusCode, error: &str, description: &str) -> Response {
    let body = serde_json::json!({"error": error, "error_description": description});
    (status, Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_need_a_calendar_date_first() {
        assert!(is_date("2026-11-02T09:00:00Z"));
        assert!(is_date("2026-11-02"));
        assert!(!is_date("02/11/2026"));
        assert!(!is_date("2026-11-02 09:00"));
        assert!(!is_date("2026-11-0é"));
    }

    #[test]
    fn new_entries_take_the_next_id_and_start_unapproved() {
        let store = Store::seeded();
        let mut entries = store.entries();
        let e = insert(
            &mut entries,
            "alice@exampleco.com".into(),
            "2026-11-05".into(),
            "X".into(),
            3,
        )
        .unwrap();
        assert_eq!(e.id, 13);
        assert!(!e.approved);
    }
}
