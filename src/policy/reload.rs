//! The live policy and its reloading: load → compile → swap, never replacing a good policy
//! with a broken one.
//!
//! Triggers: a change in the policy file's folder (watched as a folder, because a
//! Kubernetes ConfigMap update swaps a `..data` symlink and editors rename over files), a
//! slow content-hash poll as a safety net for missed events, and SIGHUP.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use arc_swap::ArcSwap;
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use sha2::{Digest, Sha256};

use super::{Policy, PolicyError, compile};
use crate::ops::metrics::Metrics;
use crate::ops::trace::{Tracing, names};
use crate::ops::watch::FolderWatch;

/// What a reload did.
#[derive(Debug)]
pub enum ReloadOutcome {
    /// The file's bytes are those of the live policy.
    Unchanged,
    /// A new policy is live.
    Reloaded {
        /// Its route count.
        routes: usize,
    },
    /// The file does not compile; the previous policy keeps serving.
    Failed(Vec<PolicyError>),
}

/// The live policy. Requests take one snapshot each and keep it to the end.
pub struct PolicyStore {
    current: ArcSwap<Policy>,
    path: PathBuf,
    metrics: Metrics,
    reload_lock: tokio::sync::Mutex<()>,
    /// The RFC 9728 resource identifier and its path, when one is configured: every policy
    /// loaded is checked against it.
    resource: OnceLock<(String, String)>,
}

impl PolicyStore {
    /// Loads the policy at start-up; a broken file is a start-up error.
    pub fn load(path: &Path, metrics: Metrics) -> Result<PolicyStore, Vec<PolicyError>> {
        let policy = super::load(path)?;
        metrics.policy_loaded(policy.routes().len(), &policy.hash);
        Ok(PolicyStore {
            current: ArcSwap::from_pointee(policy),
            path: path.to_owned(),
            metrics,
            reload_lock: tokio::sync::Mutex::new(()),
            resource: OnceLock::new(),
        })
    }

    /// Warns, now and after every reload, about protected routes outside the resource
    /// identifier `resource` (whose path is `path`): clients that check the metadata a
    /// challenge names against the URL they called refuse it on those routes.
    pub fn check_resource_coverage(&self, resource: &str, path: &str) {
        let _ = self.resource.set((resource.to_owned(), path.to_owned()));
        self.warn_uncovered(&self.current.load());
    }

    fn warn_uncovered(&self, policy: &Policy) {
        let Some((resource, path)) = self.resource.get() else {
            return;
        };
        let uncovered = policy.routes_outside(path);
        if !uncovered.is_empty() {
            tracing::warn!(
                resource = %resource,
                routes = ?uncovered,
                "protected routes lie outside the resource identifier's path: clients that check the metadata a challenge names against the URL they called refuse it there; use an identifier that covers every route (often the origin)"
            );
        }
    }

    /// The live policy.
    pub fn snapshot(&self) -> Arc<Policy> {
        self.current.load_full()
    }

    /// The policy file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the file again and swaps it in if it changed and compiles.
    pub async fn reload(&self) -> ReloadOutcome {
        let _one_at_a_time = self.reload_lock.lock().await;
        let file = self.path.display().to_string();
        let outcome = match tokio::fs::read(&self.path).await {
            Err(e) => ReloadOutcome::Failed(vec![PolicyError {
                file,
                pos: Default::default(),
                yaml_path: String::new(),
                route: None,
                message: format!("cannot read the file: {e}"),
            }]),
            Ok(bytes) if hex_sha256(&bytes) == self.current.load().hash => ReloadOutcome::Unchanged,
            Ok(bytes) => match compile(&bytes, &file) {
                Ok(policy) => {
                    let routes = policy.routes().len();
                    self.metrics.policy_loaded(routes, &policy.hash);
                    tracing::info!(policy = %file, routes, hash = %policy.hash, "policy reloaded");
                    self.warn_uncovered(&policy);
                    self.current.store(Arc::new(policy));
                    ReloadOutcome::Reloaded { routes }
                }
                Err(errors) => ReloadOutcome::Failed(errors),
            },
        };
        if let ReloadOutcome::Failed(errors) = &outcome {
            self.metrics.policy_failed();
            for e in errors {
                tracing::error!(error = %e, "policy reload failed; the previous policy keeps serving");
            }
        }
        outcome
    }
}

fn hex_sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The background service that triggers reloads.
pub struct PolicyWatcher {
    store: Arc<PolicyStore>,
    tracing: Option<Tracing>,
}

impl PolicyWatcher {
    /// A watcher for `store`'s file.
    pub fn new(store: Arc<PolicyStore>) -> PolicyWatcher {
        PolicyWatcher {
            store,
            tracing: None,
        }
    }

    /// Records each reload as a span of its own trace.
    pub fn with_tracing(mut self, tracing: Option<Tracing>) -> PolicyWatcher {
        self.tracing = tracing;
        self
    }
}

#[async_trait]
impl BackgroundService for PolicyWatcher {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut watch = FolderWatch::new(&self.store.path);
        // Handling SIGHUP also keeps its default action (terminate) from killing us.
        let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .map_err(|e| tracing::warn!(error = %e, "cannot handle SIGHUP"))
            .ok();
        let sighup = async |hangup: &mut Option<tokio::signal::unix::Signal>| match hangup {
            Some(h) => h.recv().await,
            None => std::future::pending().await,
        };
        loop {
            tokio::select! {
                () = watch.changed() => {}
                Some(()) = sighup(&mut hangup) => {
                    tracing::info!("SIGHUP: reloading the policy");
                }
                _ = shutdown.changed() => return,
            }
            let span = self
                .tracing
                .as_ref()
                .map(|t| t.background(names::POLICY_RELOAD, &[]));
            let outcome = self.store.reload().await;
            if let Some(span) = span {
                let failed = matches!(outcome, ReloadOutcome::Failed(_));
                span.end(failed.then_some("policy does not compile"));
            }
        }
    }
}
