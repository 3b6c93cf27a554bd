//! The accept loop: every connection is bounded in number, in time and in
//! the memory its requests may hold, so slow or numerous clients cannot
//! exhaust the server while others are being served.
//!
//! - At most `max_connections` are open; further ones wait in the kernel's
//!   backlog until a slot frees, rather than being accepted and starved.
//! - From its first byte, a request has `header_timeout` to finish its
//!   headers; once dispatched, its body has `body_timeout` to arrive whole
//!   (the handler then sees an error and answers 408). A connection with
//!   nothing moving and no request being handled is closed after
//!   `idle_timeout`. A watchdog per connection drops it when a deadline
//!   passes: hyper's own header timer also counts the wait between requests,
//!   which would make the idle and header limits one.
//! - Every request body is charged, frame by frame, to the one memory budget
//!   (`memory_budget.rs`); the request's [`Reservation`] travels in its
//!   extensions so ingestion can reserve a declared length before reading.
//!
//! Shutdown stops accepting, asks every connection to finish its current
//! request and close, and waits for them.

use crate::memory_budget::{MemoryBudget, OverBudget, Reservation};
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use axum::Router;
use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify, Semaphore};
use tower_service::Service;

#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
}

/// hyper's read buffer, and so the most a request's headers may take. Real
/// clients send a few kilobytes; hyper's default (~400 KiB) times a thousand
/// connections would be a budget of its own.
const MAX_HEADER_BUFFER: usize = 64 * 1024;

/// How long shutdown waits for open connections to finish their requests.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Why a request body stopped before its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyCut {
    TooSlow(Duration),
    OverBudget(OverBudget),
}

impl fmt::Display for BodyCut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BodyCut::TooSlow(limit) => write!(f, "the body did not arrive within {} seconds", limit.as_secs()),
            BodyCut::OverBudget(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for BodyCut {}

/// Serves `router` on `listener` until `shutdown` resolves, then lets open
/// connections finish (up to [`SHUTDOWN_GRACE`]).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    budget: Arc<MemoryBudget>,
    shutdown: impl Future<Output = ()>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut builder = hyper::server::conn::http1::Builder::new();
    // Deadlines are the watchdog's (see the module comment); without a timer
    // hyper would ignore this, but say it plainly.
    builder.header_read_timeout(None).max_buf_size(MAX_HEADER_BUFFER);
    let builder = Arc::new(builder);
    tokio::pin!(shutdown);
    loop {
        // A slot first, then accept: past the cap, connections wait in the
        // backlog instead of holding memory here.
        let slot = tokio::select! {
            _ = &mut shutdown => break,
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: pause rather than spin.
                    tracing::warn!("accepting a connection failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let connection = Connection {
            router: router.clone(),
            limits,
            budget: budget.clone(),
            builder: builder.clone(),
            stop: stop_rx.clone(),
        };
        tokio::spawn(async move {
            connection.run(stream, peer).await;
            drop(slot);
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    if tokio::time::timeout(SHUTDOWN_GRACE, slots.acquire_many(all)).await.is_err() {
        tracing::warn!("some connections were still open {} seconds after shutdown began", SHUTDOWN_GRACE.as_secs());
    }
}

struct Connection {
    router: Router,
    limits: ConnectionLimits,
    budget: Arc<MemoryBudget>,
    builder: Arc<hyper::server::conn::http1::Builder>,
    stop: watch::Receiver<bool>,
}

impl Connection {
    async fn run(mut self, stream: TcpStream, peer: SocketAddr) {
        let activity = Arc::new(Activity::new());
        let io = TokioIo::new(WatchedStream { inner: stream, activity: activity.clone() });
        let service = RequestService {
            router: self.router.clone(),
            peer,
            budget: self.budget.clone(),
            body_timeout: self.limits.body_timeout,
            activity: activity.clone(),
        };
        let conn = self.builder.serve_connection(io, service);
        tokio::pin!(conn);
        let watchdog = watchdog(&activity, self.limits);
        tokio::pin!(watchdog);
        let mut stopping = *self.stop.borrow();
        if stopping {
            conn.as_mut().graceful_shutdown();
        }
        loop {
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(%peer, "connection ended: {e}");
                    }
                    return;
                }
                why = &mut watchdog => {
                    tracing::debug!(%peer, "connection closed: {why}");
                    return;
                }
                changed = self.stop.changed(), if !stopping => {
                    stopping = true;
                    if changed.is_ok() {
                        conn.as_mut().graceful_shutdown();
                    }
                }
            }
        }
    }
}

/// What the watchdog needs to know about a connection, in milliseconds
/// since it opened.
struct Activity {
    opened: Instant,
    /// Requests dispatched to the router and not yet answered.
    in_flight: AtomicUsize,
    /// When the first byte of a request not yet dispatched arrived.
    head_started: AtomicU64,
    /// When the connection last had nothing to do or moved a byte of an
    /// answer.
    idle_since: AtomicU64,
    /// Wakes the watchdog when a deadline may have moved earlier.
    changed: Notify,
}

const NONE: u64 = u64::MAX;

impl Activity {
    fn new() -> Activity {
        Activity {
            opened: Instant::now(),
            in_flight: AtomicUsize::new(0),
            head_started: AtomicU64::new(NONE),
            idle_since: AtomicU64::new(0),
            changed: Notify::new(),
        }
    }

    fn now(&self) -> u64 {
        self.opened.elapsed().as_millis() as u64
    }

    fn bytes_read(&self) {
        let waiting = self.in_flight.load(Ordering::Acquire) == 0;
        if waiting && self.head_started.compare_exchange(NONE, self.now(), Ordering::AcqRel, Ordering::Relaxed).is_ok()
        {
            self.changed.notify_one();
        }
    }

    fn bytes_written(&self) {
        if self.in_flight.load(Ordering::Acquire) == 0 {
            self.idle_since.store(self.now(), Ordering::Release);
        }
    }

    fn request_started(&self) {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.head_started.store(NONE, Ordering::Release);
    }

    fn request_finished(&self) {
        self.idle_since.store(self.now(), Ordering::Release);
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.changed.notify_one();
    }

    /// The next deadline and what passing it means; `None` while a request
    /// is being handled (its body has a deadline of its own).
    fn deadline(&self, limits: ConnectionLimits) -> Option<(u64, &'static str)> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        match self.head_started.load(Ordering::Acquire) {
            NONE => Some((
                self.idle_since.load(Ordering::Acquire) + limits.idle_timeout.as_millis() as u64,
                "idle for longer than the idle timeout",
            )),
            started => Some((
                started + limits.header_timeout.as_millis() as u64,
                "the request headers did not arrive within the header timeout",
            )),
        }
    }
}

/// Resolves, with the reason, once the connection has passed a deadline.
async fn watchdog(activity: &Activity, limits: ConnectionLimits) -> &'static str {
    loop {
        // A notification that comes while the deadline is being computed is
        // kept (notify_one stores it), so none is missed.
        match activity.deadline(limits) {
            None => activity.changed.notified().await,
            Some((at, why)) => {
                let now = activity.now();
                if now >= at {
                    return why;
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(at - now)) => {}
                    _ = activity.changed.notified() => {}
                }
            }
        }
    }
}

/// The socket, telling the watchdog when bytes move.
struct WatchedStream {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for WatchedStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(result, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.bytes_read();
        }
        result
    }
}

impl AsyncWrite for WatchedStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.bytes_written();
        }
        result
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.bytes_written();
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Hands each request to the router with its peer address, its share of the
/// memory budget, and its body under deadline and budget.
#[derive(Clone)]
struct RequestService {
    router: Router,
    peer: SocketAddr,
    budget: Arc<MemoryBudget>,
    body_timeout: Duration,
    activity: Arc<Activity>,
}

impl hyper::service::Service<Request<Incoming>> for RequestService {
    type Response = axum::response::Response;
    type Error = std::convert::Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        let in_flight = InFlight::begin(self.activity.clone());
        let reservation = Reservation::new(self.budget.clone());
        let (mut parts, incoming) = request.into_parts();
        parts.extensions.insert(ConnectInfo(self.peer));
        parts.extensions.insert(reservation.clone());
        let body = GuardedBody {
            inner: incoming,
            reservation,
            deadline: Box::pin(tokio::time::sleep(self.body_timeout)),
            timeout: self.body_timeout,
            cut: false,
        };
        let request = Request::from_parts(parts, Body::new(body));
        let mut router = self.router.clone();
        Box::pin(async move {
            let response = router.call(request).await;
            drop(in_flight);
            response
        })
    }
}

/// Counts a request as in flight until its answer is ready (or the
/// connection drops it).
struct InFlight(Arc<Activity>);

impl InFlight {
    fn begin(activity: Arc<Activity>) -> InFlight {
        activity.request_started();
        InFlight(activity)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.request_finished();
    }
}

/// A request body that fails once its deadline passes or once a frame does
/// not fit the memory budget.
struct GuardedBody {
    inner: Incoming,
    reservation: Arc<Reservation>,
    deadline: Pin<Box<tokio::time::Sleep>>,
    timeout: Duration,
    cut: bool,
}

impl HttpBody for GuardedBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if self.cut {
            return Poll::Ready(None);
        }
        // Checked before every frame, so a trickle of small frames is cut too.
        if self.deadline.as_mut().poll(cx).is_ready() {
            self.cut = true;
            let timeout = self.timeout;
            return Poll::Ready(Some(Err(Box::new(BodyCut::TooSlow(timeout)))));
        }
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let size = frame.data_ref().map_or(0, |d| d.len());
                if let Err(over) = self.reservation.charge_frame(size) {
                    // Refused once; whatever still comes is only thrown away.
                    self.reservation.discard_from_now();
                    return Poll::Ready(Some(Err(Box::new(BodyCut::OverBudget(over)))));
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(other) => Poll::Ready(other.map(|r| r.map_err(Into::into))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.cut || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
