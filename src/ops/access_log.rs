//! The access log: one line per request, formatted on the request thread into a small
//! buffer and written to stdout by a thread of its own.
//!
//! The request thread never waits for stdout. Lines go through a bounded queue
//! (`tracing-appender`'s non-blocking writer, [`QUEUED_LINES`] lines); when the writer
//! cannot keep up and the queue is full, lines are dropped, never the request delayed, and
//! counted in `scopegate_access_log_dropped_lines_total`. The writer thread takes whatever
//! is queued and writes it in one go. [`AccessLogFlush::flush`], called once the server's
//! runtimes have stopped (shutdown, or the old process of an upgrade), writes out what is
//! still queued.
//!
//! Everything else scopegate logs (start-up, JWKS, reloads, errors) stays on `tracing`.

use std::cell::RefCell;
use std::io::{self, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::SystemTime;

use tracing_appender::non_blocking::{ErrorCounter, NonBlocking, NonBlockingBuilder, WorkerGuard};

use super::access_line::{self, AccessEntry};
use super::metrics::Metrics;
use crate::config::LogFormat;

/// Most lines queued for the writer thread: half a second of one worker thread at full
/// speed; lines are at most about 1.5 KiB ([`access_line`] cuts long fields), so the queue
/// holds at most about 25 MiB (3 MiB with typical 200-byte lines).
pub const QUEUED_LINES: usize = 16_384;

/// Bytes the writer thread gathers before it writes, within one batch.
const WRITE_CHUNK: usize = 64 * 1024;

/// Where the proxy writes its access lines; cheap to share between worker threads.
#[derive(Clone)]
pub struct AccessLog {
    /// `None` when `access_log: false`.
    inner: Option<Arc<Inner>>,
}

struct Inner {
    queue: NonBlocking,
    format: LogFormat,
    dropped: ErrorCounter,
    /// Dropped lines already added to the metric.
    counted: AtomicUsize,
    metrics: Metrics,
}

/// Writes out the queued lines when the process is done serving.
pub struct AccessLogFlush {
    guard: Option<WorkerGuard>,
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
            QUEUED_LINES,
        )
    }

    fn start_with<W: Write + Send + 'static>(
        enabled: bool,
        format: LogFormat,
        metrics: Metrics,
        out: W,
        queued_lines: usize,
    ) -> (AccessLog, AccessLogFlush) {
        if !enabled {
            return (AccessLog { inner: None }, AccessLogFlush { guard: None });
        }
        let (queue, guard) = NonBlockingBuilder::default()
            .lossy(true)
            .buffered_lines_limit(queued_lines)
            .thread_name("scopegate-access-log")
            .finish(WholeLines::new(out));
        let inner = Inner {
            dropped: queue.error_counter(),
            queue,
            format,
            counted: AtomicUsize::new(0),
            metrics,
        };
        (
            AccessLog {
                inner: Some(Arc::new(inner)),
            },
            AccessLogFlush { guard: Some(guard) },
        )
    }

    /// Whether lines are written at all.
    pub fn enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// Queues the line for one request; never blocks.
    pub fn write(&self, entry: &AccessEntry) {
        let Some(inner) = &self.inner else {
            return;
        };
        thread_local! {
            /// One buffer per worker thread, reused: formatting allocates nothing.
            static LINE: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(512));
        }
        LINE.with(|line| {
            let mut line = line.borrow_mut();
            line.clear();
            access_line::format(&mut line, inner.format, SystemTime::now(), entry);
            // The lossy writer queues a copy or drops it; it never fails or waits.
            let _ = inner.queue.clone().write_all(&line);
        });
        inner.count_dropped();
    }
}

impl Inner {
    /// Adds lines dropped since the last look to the metric. The thread that dropped a line
    /// sees it here, right after its own write.
    fn count_dropped(&self) {
        let dropped = self.dropped.dropped_lines();
        if dropped != self.counted.load(Ordering::Relaxed) {
            let before = self.counted.fetch_max(dropped, Ordering::Relaxed);
            if dropped > before {
                self.metrics.access_lines_dropped((dropped - before) as u64);
            }
        }
    }
}

impl AccessLogFlush {
    /// Writes out every queued line and stops the writer thread (waiting at most about a
    /// second for it).
    pub fn flush(mut self) {
        // The guard's drop queues a stop behind the lines and waits for the writer to
        // reach it.
        drop(self.guard.take());
    }
}

/// stdout, written without Rust's line buffering: [`WholeLines`] hands it whole lines only.
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

/// Gathers the lines of one batch and writes them with as few writes as possible, always
/// ending on a line boundary: `tracing`'s own lines go to the same stdout, and a partial
/// access line left in stdout's buffer would have one of them spliced into it.
struct WholeLines<W: Write> {
    out: W,
    pending: Vec<u8>,
}

impl<W: Write> WholeLines<W> {
    fn new(out: W) -> Self {
        WholeLines {
            out,
            pending: Vec::with_capacity(WRITE_CHUNK),
        }
    }

    fn write_pending(&mut self) -> io::Result<()> {
        let result = self.out.write_all(&self.pending);
        // Lines that could not be written (a closed stdout) are not retried.
        self.pending.clear();
        result
    }
}

impl<W: Write> Write for WholeLines<W> {
    /// Takes one whole line (the non-blocking writer passes each queued line in one call).
    fn write(&mut self, line: &[u8]) -> io::Result<usize> {
        self.pending.extend_from_slice(line);
        if self.pending.len() >= WRITE_CHUNK {
            self.write_pending()?;
        }
        Ok(line.len())
    }

    /// The end of a batch.
    fn flush(&mut self) -> io::Result<()> {
        if !self.pending.is_empty() {
            self.write_pending()?;
        }
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
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
        let (log, flush) =
            AccessLog::start_with(true, LogFormat::Json, metrics.clone(), sink.clone(), 1000);
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
            AccessLog::start_with(true, LogFormat::Text, metrics.clone(), sink.clone(), 10);
        let held = sink.gate.lock().unwrap();
        // The writer thread gets stuck writing the first line; then the queue holds 10.
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
            AccessLog::start_with(false, LogFormat::Text, Metrics::new(), sink.clone(), 10);
        assert!(!log.enabled());
        log.write(&entry("/"));
        flush.flush();
        assert!(sink.lines().is_empty());
    }
}
