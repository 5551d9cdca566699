//! The access log: one line per request, formatted on the request thread and written to
//! stdout by a thread of its own.
//!
//! The request thread never waits for stdout. Each worker thread formats its lines straight
//! into a buffer of its own (a slot), under a lock only the writer thread ever contends for;
//! the writer swaps each slot's buffer for an empty one and writes what it took in one go,
//! every few milliseconds while lines keep coming, and parks when they stop, to be woken by
//! the next line. A line costs no allocation, copy or queue message of its own. A slot
//! holds at most [`QUEUED_BYTES`]: when the writer cannot keep up, further lines are
//! dropped, never the request delayed, and counted in
//! `scopegate_access_log_dropped_lines_total`. [`AccessLogFlush::flush`], called once the
//! server's runtimes have stopped (shutdown, or the old process of an upgrade), writes out
//! what is still buffered. Lines of one worker thread keep their order; lines of several
//! are written a buffer at a time.
//!
//! Everything else scopegate logs (start-up, JWKS, reloads, errors) stays on `tracing`.

use std::cell::RefCell;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{JoinHandle, Thread};

use super::access_line::{self, AccessEntry};
use super::metrics::Metrics;
use crate::config::LogFormat;

/// Most bytes one worker thread's lines may wait for the writer: lines are at most about
/// 1.5 KiB ([`access_line`] cuts long fields), typically 200 bytes, so this is 5 000 to
/// 40 000 lines, a fraction of a second to seconds of one worker thread at full speed.
pub const QUEUED_BYTES: usize = 8 * 1024 * 1024;

/// How long the writer sleeps when nothing wakes it, before it looks again (a wake-up
/// lost to a race costs at most this much delay, never a line).
const IDLE_LOOK: std::time::Duration = std::time::Duration::from_millis(200);

/// How long the writer lets lines gather before it writes them, once woken and for as long
/// as lines keep coming: a busy gateway's lines go out in one write this often, and the
/// writer (which may share the workers' one core) takes the core from them this rarely.
const GATHER: std::time::Duration = std::time::Duration::from_millis(10);

/// Where the proxy writes its access lines; cheap to share between worker threads.
#[derive(Clone)]
pub struct AccessLog {
    /// `None` when `access_log: false`.
    inner: Option<Arc<Inner>>,
}

struct Inner {
    /// This log's number in the process (several live side by side in tests).
    id: u64,
    format: LogFormat,
    metrics: Metrics,
    /// Every worker thread's slot; the writer drains them in turn.
    slots: Mutex<Vec<Arc<Slot>>>,
    queued_bytes: usize,
    /// The writer thread, to wake.
    writer: Thread,
    stop: AtomicBool,
}

/// One worker thread's lines, waiting for the writer.
#[derive(Default)]
struct Slot {
    lines: Mutex<Vec<u8>>,
}

/// Writes out the buffered lines when the process is done serving.
pub struct AccessLogFlush {
    stop: Option<(Arc<Inner>, JoinHandle<()>)>,
}

impl AccessLog {
    /// Starts the writer thread. With `enabled` false (`access_log: false`), or when the log
    /// filter leaves out `info` for the target `scopegate::access` (`RUST_LOG=warn`), nothing
    /// is started and no line is written.
    pub fn start(
        enabled: bool,
        format: LogFormat,
        metrics: Metrics,
    ) -> (AccessLog, AccessLogFlush) {
        // The line is an `info` event of its own target as far as `RUST_LOG` is concerned;
        // the filter is asked once, here, not per request.
        let filtered_in = tracing::enabled!(target: access_line::TARGET, tracing::Level::INFO);
        AccessLog::start_with(
            enabled && filtered_in,
            format,
            metrics,
            Stdout,
            QUEUED_BYTES,
        )
    }

    fn start_with<W: Write + Send + 'static>(
        enabled: bool,
        format: LogFormat,
        metrics: Metrics,
        out: W,
        queued_bytes: usize,
    ) -> (AccessLog, AccessLogFlush) {
        if !enabled {
            return (AccessLog { inner: None }, AccessLogFlush { stop: None });
        }
        let (handoff, taken) = std::sync::mpsc::sync_channel::<Arc<Inner>>(1);
        let writer = std::thread::Builder::new()
            .name("scopegate-access-log".into())
            .spawn(move || {
                if let Ok(inner) = taken.recv() {
                    inner.write_until_stopped(out);
                }
            })
            .expect("the access log's writer thread starts");
        static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let inner = Arc::new(Inner {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            format,
            metrics,
            slots: Mutex::new(Vec::new()),
            queued_bytes,
            writer: writer.thread().clone(),
            stop: AtomicBool::new(false),
        });
        handoff
            .send(inner.clone())
            .expect("the writer thread waits for its log");
        (
            AccessLog {
                inner: Some(inner.clone()),
            },
            AccessLogFlush {
                stop: Some((inner, writer)),
            },
        )
    }

    /// Whether lines are written at all.
    pub fn enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// Buffers the line for one request; never blocks on the writer.
    pub fn write(&self, entry: &AccessEntry) {
        let Some(inner) = &self.inner else {
            return;
        };
        thread_local! {
            /// This thread's slot in each log it writes to (one, but for tests).
            static SLOTS: RefCell<Vec<(u64, Arc<Slot>)>> = const { RefCell::new(Vec::new()) };
        }
        let log = inner.id;
        let slot = SLOTS.with(|slots| {
            let mut slots = slots.borrow_mut();
            if let Some((_, slot)) = slots.iter().find(|(l, _)| *l == log) {
                return slot.clone();
            }
            let slot = Arc::new(Slot::default());
            inner
                .slots
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(slot.clone());
            slots.push((log, slot.clone()));
            slot
        });
        let was_empty = {
            let mut lines = slot.lines.lock().unwrap_or_else(PoisonError::into_inner);
            if lines.len() >= inner.queued_bytes {
                drop(lines);
                inner.metrics.access_lines_dropped(1);
                return;
            }
            let was_empty = lines.is_empty();
            access_line::format(&mut lines, inner.format, entry);
            was_empty
        };
        if was_empty {
            inner.writer.unpark();
        }
    }
}

impl Inner {
    /// The writer thread: drains the slots every [`GATHER`] while lines come, or when woken
    /// (or every [`IDLE_LOOK`]) after an idle spell, until stopped, then once more.
    fn write_until_stopped<W: Write>(&self, mut out: W) {
        let mut spare = Vec::new();
        loop {
            let stopping = self.stop.load(Ordering::Acquire);
            let slots: Vec<Arc<Slot>> = self
                .slots
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            let mut wrote = false;
            for slot in &slots {
                std::mem::swap(
                    &mut *slot.lines.lock().unwrap_or_else(PoisonError::into_inner),
                    &mut spare,
                );
                if !spare.is_empty() {
                    // Lines that cannot be written (a closed stdout) are not retried.
                    let _ = out.write_all(&spare);
                    spare.clear();
                    wrote = true;
                }
            }
            let _ = out.flush();
            if stopping {
                return;
            }
            if !wrote {
                // Idle: parked until a worker's first line wakes it. While lines keep
                // coming it only sleeps, so that no worker pays for a wake-up (a worker
                // unparks a thread that is not parked for the price of an atomic swap).
                std::thread::park_timeout(IDLE_LOOK);
            }
            // Let more lines join the first before they are written.
            std::thread::sleep(GATHER);
        }
    }
}

impl AccessLogFlush {
    /// Writes out every buffered line and stops the writer thread.
    pub fn flush(mut self) {
        if let Some((inner, writer)) = self.stop.take() {
            inner.stop.store(true, Ordering::Release);
            writer.thread().unpark();
            let _ = writer.join();
        }
    }
}

/// stdout, written without Rust's line buffering: the writer hands it whole lines only.
struct Stdout;

impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // All of it under one lock: no `tracing` line can land inside the batch.
        io::stdout().lock().write_all(buf)?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        io::stdout().lock().flush()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    use super::*;
    use crate::ground::{Outcome, Reason};

    /// A sink the test reads, and can hold shut to make the queue fill.
    #[derive(Clone, Default)]
    struct Sink {
        bytes: Arc<Mutex<Vec<u8>>>,
        writes: Arc<AtomicUsize>,
        attempts: Arc<AtomicUsize>,
        gate: Arc<Mutex<()>>,
    }

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.attempts.fetch_add(1, Ordering::SeqCst);
            let _open = self.gate.lock().unwrap();
            self.writes.fetch_add(1, Ordering::SeqCst);
            self.bytes.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Sink {
        fn lines(&self) -> Vec<String> {
            String::from_utf8(self.bytes.lock().unwrap().clone())
                .unwrap()
                .lines()
                .map(str::to_owned)
                .collect()
        }
    }

    fn entry(path: &str) -> AccessEntry<'_> {
        AccessEntry {
            method: "GET",
            path,
            route: "r",
            decision: Outcome::Allow,
            reason: Reason::Public,
            status: 200,
            latency: Duration::from_micros(5),
            at: std::time::SystemTime::now(),
            subject: None,
            protocol: "HTTP/1.1",
            trace: None,
        }
    }

    fn dropped(metrics: &Metrics) -> bool {
        String::from_utf8(metrics.render())
            .unwrap()
            .lines()
            .any(|l| {
                l.starts_with("scopegate_access_log_dropped_lines_total ") && !l.ends_with(" 0")
            })
    }

    #[test]
    fn every_line_is_written_by_the_flush_in_order() {
        let sink = Sink::default();
        let metrics = Metrics::new();
        let (log, flush) = AccessLog::start_with(
            true,
            LogFormat::Json,
            metrics.clone(),
            sink.clone(),
            1 << 20,
        );
        for i in 0..500 {
            log.write(&entry(&format!("/{i}")));
        }
        flush.flush();
        let lines = sink.lines();
        assert_eq!(lines.len(), 500);
        for (i, l) in lines.iter().enumerate() {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            assert_eq!(v["path"], format!("/{i}"));
        }
        assert!(!dropped(&metrics));
        // Batched: far fewer writes than lines.
        assert!(sink.writes.load(Ordering::SeqCst) < 500);
    }

    #[test]
    fn a_full_queue_drops_lines_without_blocking_and_counts_them() {
        let sink = Sink::default();
        let metrics = Metrics::new();
        let (log, flush) =
            AccessLog::start_with(true, LogFormat::Text, metrics.clone(), sink.clone(), 1000);
        let held = sink.gate.lock().unwrap();
        // The writer thread gets stuck writing the first line; then the slot holds 1000
        // bytes, a handful of lines.
        log.write(&entry("/first"));
        while sink.attempts.load(Ordering::SeqCst) == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
        for i in 1..100 {
            log.write(&entry(&format!("/{i}")));
        }
        assert!(dropped(&metrics), "dropped lines are counted");
        drop(held);
        flush.flush();
        let written = sink.lines().len();
        let text = String::from_utf8(metrics.render()).unwrap();
        let counted: f64 = text
            .lines()
            .find_map(|l| l.strip_prefix("scopegate_access_log_dropped_lines_total "))
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(
            written + counted as usize,
            100,
            "each line written or counted"
        );
    }

    #[test]
    fn off_writes_nothing() {
        let sink = Sink::default();
        let (log, flush) =
            AccessLog::start_with(false, LogFormat::Text, Metrics::new(), sink.clone(), 1000);
        assert!(!log.enabled());
        log.write(&entry("/"));
        flush.flush();
        assert!(sink.lines().is_empty());
    }
}
