//! "Read the file again now": change events on a file's folder, debounced, plus a slow poll
//! for mounts where events go missing. Shared by the policy and the TLS certificate.
//!
//! The folder is watched, not the file: a Kubernetes ConfigMap or Secret update swaps a
//! `..data` symlink and never names the file, and editors rename over files.

use std::path::Path;
use std::time::Duration;

use notify::Watcher as _;
use tokio::sync::mpsc::UnboundedReceiver;

/// Quiet time after the last event before reading: a save or a kubelet swap is several
/// events within milliseconds.
pub const DEBOUNCE: Duration = Duration::from_millis(200);
/// Poll interval, the safety net for missed events (readers compare content hashes).
pub const POLL: Duration = Duration::from_secs(10);

/// Change notifications for the folder of one file.
pub struct FolderWatch {
    events: UnboundedReceiver<()>,
    poll: tokio::time::Interval,
    /// Dropping the watcher stops the events; `None` when only polling works.
    _watcher: Option<notify::RecommendedWatcher>,
}

impl FolderWatch {
    /// Watches the folder holding `file`. Must be called inside a tokio runtime.
    pub fn new(file: &Path) -> FolderWatch {
        let (tx, events) = tokio::sync::mpsc::unbounded_channel::<()>();
        let folder = file
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_owned();
        let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            // Reading the file is an event too (open, close-without-write): reacting to
            // those would make every reload schedule the next one, forever.
            if !matches!(&event, Ok(e) if e.kind.is_access()) {
                let _ = tx.send(());
            }
        })
        .and_then(|mut w| {
            w.watch(&folder, notify::RecursiveMode::NonRecursive)
                .map(|()| w)
        })
        .map_err(|e| {
            tracing::warn!(folder = %folder.display(), error = %e, "cannot watch the folder; polling only");
        })
        .ok();
        let mut poll = tokio::time::interval(POLL);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        poll.reset();
        FolderWatch {
            events,
            poll,
            _watcher: watcher,
        }
    }

    /// Resolves when the file may have changed: a debounced burst of events, or a poll.
    pub async fn changed(&mut self) {
        tokio::select! {
            Some(()) = self.events.recv() => {
                loop {
                    tokio::select! {
                        Some(()) = self.events.recv() => continue,
                        _ = tokio::time::sleep(DEBOUNCE) => break,
                    }
                }
            }
            _ = self.poll.tick() => {}
        }
    }
}
