//! A deadline on the whole request header. pingora times out each read of a client, not the
//! header as a whole, so a client that sends a byte every few seconds holds its connection
//! (and a task, and its buffers) for as long as it likes. Every plaintext HTTP/1 stream is
//! wrapped in a [`HeaderClock`]: its reads fail with `TimedOut` once the header has taken
//! longer than the limit, and pingora closes the connection.
//!
//! The clock runs from the accept for a connection's first request, and for each later one
//! from the first read of it that has to wait for more (right after its first bytes: the
//! keep-alive idle wait before them has its own timeout), or from its fourth read if none
//! had to wait (a stream kept full). A header that arrives in one read, as a kept-alive
//! client's over plain TCP usually does, never reads the clock at all. The proxy's
//! phases tell it when a header is complete ([`HeaderClock::header_read`]) and when a request
//! is over ([`HeaderClock::request_done`]), so a slow request body or a long answer is never
//! cut by it.
//!
//! On the TLS listener the handshake is done here too, not in pingora's accept loop (which
//! gives every handshake a fixed 60 s before any application code runs): the clock wraps
//! the raw TCP stream from the accept, so the handshake counts toward the header's time,
//! the connection already holds its `max_connections` permit, and
//! [`crate::proxy::tls::TlsHandshake`] bounds the handshake by its own setting. The phases
//! reach the clock through a second [`HeaderClock`] around the TLS stream that shares its
//! state and times nothing itself.

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use pingora::apps::ServerApp;
use pingora::protocols::raw_connect::ProxyDigest;
use pingora::protocols::tls::{SslDigest, TlsRef};
use pingora::protocols::{
    ALPN, GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl,
    Stream, TimingDigest, UniqueID, UniqueIDType,
};
use pingora::server::ShutdownWatch;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use crate::ops::metrics::Metrics;
use crate::proxy::connections::{Admitted, ConnectionCap};
use crate::proxy::tls::TlsHandshake;

/// The clock is running: the header has not been read yet.
const HEADER: u8 = 0;
/// The header is in; the body and the answer are not timed here.
const STOPPED: u8 = 1;
/// A request is over; the next one's first byte starts the clock again.
const NEXT: u8 = 2;
/// Never timed (an HTTP/2 connection, whose headers pingora's h2 timeouts bound).
const OFF: u8 = 3;

/// Reads of a later request's header that may find data before its clock starts without
/// a wait: a header comes in one or two reads, a stream that keeps a read busy longer is
/// timed from its fourth.
const UNCLOCKED_READS: u8 = 4;

/// The client preface of HTTP/2 with prior knowledge (h2c, RFC 9113 §3.4): such a
/// connection multiplexes many headers and is never timed here either; `h2`'s header-list
/// bound and `http2.idle_timeout_seconds` bound it instead.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n";

/// Wraps the proxy application: each connection first takes its place under the
/// connection cap, and each HTTP/1 connection's stream gets a [`HeaderClock`].
pub struct HeaderDeadline<A> {
    inner: Arc<A>,
    limit: Duration,
    metrics: Metrics,
    /// The cap on open connections, taken here before anything else.
    cap: ConnectionCap,
    /// The TLS listener's handshake, done here for its connections.
    tls: Option<TlsHandshake>,
}

impl<A> HeaderDeadline<A> {
    /// `inner`, with every request header read within `limit`, and at most `cap`'s
    /// connections open.
    pub fn new(inner: A, limit: Duration, cap: ConnectionCap, metrics: Metrics) -> Self {
        HeaderDeadline {
            inner: Arc::new(inner),
            limit,
            metrics,
            cap,
            tls: None,
        }
    }

    /// Also terminates TLS for the connections `tls` serves, under the same clock.
    pub fn with_tls(mut self, tls: TlsHandshake) -> HeaderDeadline<A> {
        self.tls = Some(tls);
        self
    }
}

/// A connection's future as the inner application made it, holding the connection's place
/// under the cap until it ends.
struct Holding<F> {
    /// Declared first, so dropped first: the connection closes before its place is given
    /// back.
    inner: F,
    _admitted: Admitted,
}

impl<F: Future + Unpin> Future for Holding<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        Pin::new(&mut self.inner).poll(cx)
    }
}

/// The future [`ServerApp::process_new`] returns (`async_trait`'s form of it).
type Processing<'a> = Pin<Box<dyn Future<Output = Option<Stream>> + Send + 'a>>;

#[async_trait]
impl<A: ServerApp + Send + Sync + 'static> ServerApp for HeaderDeadline<A> {
    // Written out rather than as an `async fn`: a plain-TCP connection (every sidecar's) gets
    // the inner application's future itself, held by [`Holding`], instead of one more async
    // block that every wake-up of the connection polls through.
    fn process_new<'life0, 'life1, 'async_trait>(
        self: &'life0 Arc<Self>,
        stream: Stream,
        shutdown: &'life1 ShutdownWatch,
    ) -> Processing<'async_trait>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        // Held until the connection ends, however it ends.
        let Some(admitted) = self.cap.admit() else {
            return Box::pin(std::future::ready(None));
        };
        if let Some(tls) = self.tls.as_ref().filter(|tls| tls.serves(&stream)) {
            return Box::pin(async move {
                let _admitted = admitted;
                // The clock starts at the accept, under the handshake.
                let phase = Arc::new(AtomicU8::new(HEADER));
                let raw =
                    HeaderClock::timed(stream, self.limit, phase.clone(), self.metrics.clone());
                let secured = tls.accept(raw).await?;
                if matches!(secured.selected_alpn_proto(), Some(ALPN::H2)) {
                    phase.store(OFF, Ordering::Relaxed);
                    return self.inner.process_new(Box::new(secured), shutdown).await;
                }
                let carrier = HeaderClock::carrier(Box::new(secured), self.limit, phase);
                self.inner.process_new(Box::new(carrier), shutdown).await
            });
        }
        // HTTP/2 multiplexes many headers on one stream, and its sessions give the phases no
        // stream to stop the clock with: it is left to pingora's own h2 timeouts.
        let stream: Stream = if matches!(stream.selected_alpn_proto(), Some(ALPN::H2)) {
            stream
        } else {
            let phase = Arc::new(AtomicU8::new(HEADER));
            Box::new(HeaderClock::timed(
                stream,
                self.limit,
                phase,
                self.metrics.clone(),
            ))
        };
        Box::pin(Holding {
            inner: self.inner.process_new(stream, shutdown),
            _admitted: admitted,
        })
    }

    async fn cleanup(&self) {
        self.inner.cleanup().await;
    }
}

/// A client stream whose reads fail once a request header has taken too long.
pub struct HeaderClock {
    inner: Stream,
    limit: Duration,
    /// [`HEADER`], [`STOPPED`], [`NEXT`] or [`OFF`]; written by the phases through `&self`,
    /// shared by the timed raw stream and the carrier above a TLS layer.
    phase: Arc<AtomicU8>,
    /// The timer that wakes a read waiting past the deadline, on the stream whose reads
    /// are timed; `None` on a carrier.
    deadline: Option<Pin<Box<Sleep>>>,
    /// When the current header must be in; `None` until a read of a later request's
    /// header first waits.
    deadline_at: Option<Instant>,
    /// Whether `deadline` is set to `deadline_at`. A header that arrives in the read that
    /// starts it (a kept-alive client's usual request) never touches the timer: it is set
    /// only when a read of the header has to wait.
    armed: bool,
    metrics: Option<Metrics>,
    /// Nothing was read yet: the first bytes tell HTTP/1 from h2c.
    first_read: bool,
    /// Reads of the current header that found data while its clock was not yet set.
    unclocked_reads: u8,
}

impl HeaderClock {
    /// A stream whose reads are timed, the clock running from now.
    fn timed(inner: Stream, limit: Duration, phase: Arc<AtomicU8>, metrics: Metrics) -> Self {
        HeaderClock {
            inner,
            limit,
            phase,
            deadline: Some(Box::pin(tokio::time::sleep(limit))),
            deadline_at: Some(Instant::now() + limit),
            armed: true,
            metrics: Some(metrics),
            first_read: true,
            unclocked_reads: 0,
        }
    }

    /// The TLS stream above a timed raw stream: it times nothing, and lets the phases
    /// (which see only the outermost stream) drive the clock beneath.
    fn carrier(inner: Stream, limit: Duration, phase: Arc<AtomicU8>) -> Self {
        HeaderClock {
            inner,
            limit,
            phase,
            deadline: None,
            deadline_at: None,
            armed: false,
            metrics: None,
            first_read: false,
            unclocked_reads: 0,
        }
    }

    /// The clock of the stream a session reads from, when it has one.
    pub fn of(stream: Option<&Stream>) -> Option<&HeaderClock> {
        // Through the box to the stream inside it: the box itself is not the clock.
        let stream: &dyn pingora::protocols::IO = &**stream?;
        stream.as_any().downcast_ref::<HeaderClock>()
    }

    /// The request header is complete: stop the clock.
    pub fn header_read(&self) {
        let _ = self
            .phase
            .compare_exchange(HEADER, STOPPED, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// The request is over: the next byte read starts the next header's clock.
    pub fn request_done(&self) {
        self.phase.store(NEXT, Ordering::Relaxed);
    }
}

impl AsyncRead for HeaderClock {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        let read = buf.filled().len() > before;
        if this.first_read && read {
            this.first_read = false;
            if buf.filled()[before..].starts_with(H2_PREFACE) {
                this.phase.store(OFF, Ordering::Relaxed);
            }
        }
        let Some(deadline) = this.deadline.as_mut() else {
            return polled;
        };
        match this.phase.load(Ordering::Relaxed) {
            NEXT if read => {
                this.phase.store(HEADER, Ordering::Relaxed);
                // Set at this header's first wait, if it has one.
                this.deadline_at = None;
                this.unclocked_reads = 0;
                this.armed = false;
                polled
            }
            HEADER => {
                // Whatever a read brought, a header past its deadline ends the connection;
                // a read that waits arms the timer, which wakes it at the deadline.
                let late = if polled.is_pending() {
                    let limit = this.limit;
                    let at = *this
                        .deadline_at
                        .get_or_insert_with(|| Instant::now() + limit);
                    if !this.armed {
                        deadline.as_mut().reset(at);
                        this.armed = true;
                    }
                    deadline.as_mut().poll(cx).is_ready()
                } else if let Some(at) = this.deadline_at {
                    Instant::now() >= at
                } else {
                    // A header still coming after a few reads that never had to wait (a
                    // stream kept full, such as TLS records of a byte each) gets its clock
                    // without a wait.
                    this.unclocked_reads += 1;
                    if this.unclocked_reads >= UNCLOCKED_READS {
                        this.deadline_at = Some(Instant::now() + this.limit);
                    }
                    false
                };
                if !late {
                    return polled;
                }
                if let Some(metrics) = &this.metrics {
                    metrics.client_header_timed_out();
                }
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "request header not received in time",
                )))
            }
            _ => polled,
        }
    }
}

impl AsyncWrite for HeaderClock {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

// The rest of pingora's stream interface passes straight through to the wrapped stream.

#[async_trait]
impl Shutdown for HeaderClock {
    async fn shutdown(&mut self) {
        self.inner.shutdown().await;
    }
}

impl UniqueID for HeaderClock {
    fn id(&self) -> UniqueIDType {
        self.inner.id()
    }
}

impl Ssl for HeaderClock {
    fn get_ssl(&self) -> Option<&TlsRef> {
        self.inner.get_ssl()
    }

    fn get_ssl_digest(&self) -> Option<Arc<SslDigest>> {
        self.inner.get_ssl_digest()
    }

    fn selected_alpn_proto(&self) -> Option<ALPN> {
        self.inner.selected_alpn_proto()
    }
}

impl GetTimingDigest for HeaderClock {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.inner.get_timing_digest()
    }

    fn get_read_pending_time(&self) -> Duration {
        self.inner.get_read_pending_time()
    }

    fn get_write_pending_time(&self) -> Duration {
        self.inner.get_write_pending_time()
    }
}

impl GetProxyDigest for HeaderClock {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        self.inner.get_proxy_digest()
    }

    fn set_proxy_digest(&mut self, digest: ProxyDigest) {
        self.inner.set_proxy_digest(digest);
    }
}

impl GetSocketDigest for HeaderClock {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.inner.get_socket_digest()
    }

    fn set_socket_digest(&mut self, digest: SocketDigest) {
        self.inner.set_socket_digest(digest);
    }
}

#[async_trait]
impl Peek for HeaderClock {
    async fn try_peek(&mut self, buf: &mut [u8]) -> io::Result<bool> {
        self.inner.try_peek(buf).await
    }
}

impl fmt::Debug for HeaderClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HeaderClock")
            .field("inner", &self.inner)
            .field("limit", &self.limit)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    /// A later request's header (the clock at `NEXT`) read one byte per read, none waiting.
    fn flooded(reads: usize, limit: Duration) -> HeaderClock {
        let mut mock = tokio_test::io::Builder::new();
        for _ in 0..reads {
            mock.read(b"x");
        }
        let phase = Arc::new(AtomicU8::new(NEXT));
        HeaderClock::timed(Box::new(mock.build()), limit, phase, Metrics::new())
    }

    #[tokio::test(start_paused = true)]
    async fn a_later_header_whose_reads_never_wait_still_meets_its_deadline() {
        let limit = Duration::from_secs(1);
        let mut clock = flooded(9, limit);
        let mut byte = [0u8; 1];
        for _ in 0..8 {
            clock.read_exact(&mut byte).await.expect("inside the limit");
        }
        tokio::time::advance(limit * 2).await;
        let late = clock.read_exact(&mut byte).await.unwrap_err();
        assert_eq!(late.kind(), io::ErrorKind::TimedOut);
    }
}
