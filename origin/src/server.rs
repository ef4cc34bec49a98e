//! Listeners, connection limits, timeouts and the graceful stop of the public listener.
//!
//! hyper gives us HTTP/1.1 (keep-alive) and HTTP/2 cleartext on one port. It has no idle
//! keep-alive timeout, and its header-read timeout also runs between requests (so it would close
//! idle keep-alive connections after a few seconds). Each connection therefore carries a small
//! watchdog instead:
//! - the first request on a connection, HTTP/1.1 or HTTP/2 (preface, settings and the first
//!   stream's headers), must arrive within `HEADER_READ_TIMEOUT_MS` of the accept, and every later
//!   HTTP/1.1 head within that of its first byte; otherwise the connection is dropped: slow,
//!   silent and preface-only clients cannot hold connection slots;
//! - at `MAX_CONNECTIONS`, a new connection evicts an open one that is doing nothing useful,
//!   first one that has sent no request, then one whose answers its client does not read, then
//!   the longest idle one, each only after a short grace (so a client whose request is already in
//!   the socket is never the victim); only when none qualifies does it wait, and the rest wait in
//!   the kernel's backlog. Floods of such connections cannot keep real clients out;
//! - a connection with no request in flight (for HTTP/2: no open stream) for
//!   `KEEPALIVE_IDLE_TIMEOUT_S` is closed gracefully. That timeout must exceed the ALB's (60 s):
//!   the ALB must always be the side that closes an idle connection, or it may send a request
//!   into a socket we are closing (a 502);
//! - a request is in flight until its answer has been handed to the socket, so an answer the
//!   client does not read (an HTTP/2 flow-control window of zero) keeps it in flight; when
//!   answers wait, or the socket refuses our bytes (an HTTP/1.1 client that pipelines and never
//!   reads), and nothing has been written for `HEADER_READ_TIMEOUT_MS`, the connection is
//!   dropped; while more than `MAX_UNSENT_BYTES` of answers wait, further requests on it get a
//!   short `503`. With at most `MAX_H2_STREAMS` streams, this bounds what one connection can make
//!   the process hold, and `MAX_CONNECTIONS` bounds the connections (docs/design.md §1 has the
//!   arithmetic).

use std::collections::BTreeMap;
use std::future::Future as _;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::AbortHandle;

use crate::app::App;
use crate::clock;
use crate::routes;
use crate::telemetry::metrics::CloseReason;

/// Largest request head (request line + headers) accepted; larger gets `431`.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
/// Most header fields in one request.
const MAX_HEADERS: usize = 64;
/// Concurrent streams one HTTP/2 client may open. The ALB speaks HTTP/1.1 to targets; this only
/// bounds direct HTTP/2 clients, and a few dozen streams is all a page or a load test uses.
const MAX_H2_STREAMS: u32 = 16;
/// Answer bytes one connection may have waiting to be sent before further requests get a `503`.
pub const MAX_UNSENT_BYTES: u64 = 256 * 1024;
/// What HTTP/2 may buffer for one stream beyond the peer's window (hyper's default is 1 MiB).
const H2_MAX_SEND_BUF: usize = 64 * 1024;
/// Pending connections the kernel may hold while we are at `MAX_CONNECTIONS`.
const LISTEN_BACKLOG: u32 = 4096;
/// After a graceful close was asked of a connection, how long it may take to finish.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// Binds with a deep backlog and `SO_REUSEADDR` (restarts do not wait for TIME_WAIT).
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Accepts and serves connections until `stop` turns true, then asks every connection to finish
/// its requests and close, waiting at most `shutdown_timeout` for them.
pub async fn serve(app: Arc<App>, listener: TcpListener, mut stop: watch::Receiver<bool>) {
    let config = &app.config;
    let limit = Arc::new(Semaphore::new(config.max_connections));
    let (closing, closing_rx) = watch::channel(false);
    let builder = Arc::new(connection_builder());
    let connections = Arc::new(Connections::default());
    let trim = tokio::spawn(trim_memory_after_connections_close(
        Arc::clone(&limit),
        config.max_connections,
    ));
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    // EMFILE and friends: back off briefly instead of spinning on the error.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = turned_true(&mut stop) => break,
        };
        let permit = match Arc::clone(&limit).try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                // At the limit: make room by evicting a connection that does nothing useful, else
                // wait for one to end (one accepted socket waits here; the rest, in the kernel's
                // backlog).
                let grace = Grace {
                    unproven_ms: UNPROVEN_GRACE
                        .min(config.header_read_timeout / 8)
                        .as_millis() as u64,
                    // A client between its requests is not idle in the attacker's sense: only one
                    // silent for a whole header timeout gives its slot up.
                    idle_ms: config.header_read_timeout.as_millis() as u64,
                };
                let permit = loop {
                    if let Some(reason) = connections.evict_one(grace) {
                        app.metrics.connection_closed(reason);
                    }
                    // The evicted task gives its permit back once dropped; until a permit comes,
                    // look again as connections age past the grace.
                    tokio::select! {
                        permit = Arc::clone(&limit).acquire_owned() => break Some(permit.expect("never closed")),
                        _ = tokio::time::sleep(Duration::from_millis((grace.unproven_ms / 2).max(10))) => {}
                        _ = turned_true(&mut stop) => break None,
                    }
                };
                let Some(permit) = permit else { break };
                permit
            }
        };
        let _ = stream.set_nodelay(true);
        limit_send_buffer(&stream);
        let state = Arc::new(ConnectionState {
            app: Arc::clone(&app),
            activity: Activity::new(),
            id: connections.next_id(),
            connections: Arc::clone(&connections),
            fd: std::os::fd::AsRawFd::as_raw_fd(&stream),
        });
        let registration = connections.insert(&state);
        let task = tokio::spawn(serve_connection(
            stream,
            registration,
            Arc::clone(&builder),
            closing_rx.clone(),
            permit,
        ));
        connections.started(state.id, task.abort_handle());
    }
    drop(listener);
    trim.abort();
    let _ = closing.send(true);
    let all = u32::try_from(config.max_connections).unwrap_or(u32::MAX);
    if tokio::time::timeout(config.shutdown_timeout, limit.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!(
            open = config.max_connections - limit.available_permits(),
            "connections still open at shutdown timeout"
        );
    }
}

fn connection_builder() -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        // Off: in hyper it also runs between requests, closing idle keep-alive connections after
        // the header timeout; the connection watchdog times request heads instead.
        .header_read_timeout(None)
        .max_buf_size(MAX_HEADER_BYTES)
        .max_headers(MAX_HEADERS)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(MAX_H2_STREAMS)
        .max_send_buf_size(H2_MAX_SEND_BUF)
        .max_header_list_size(MAX_HEADER_BYTES as u32);
    builder
}

/// What the watchdog knows about one connection, kept by the service and the socket wrapper.
struct Activity {
    accepted_ms: u64,
    /// Requests whose answer has not yet been handed to the socket.
    in_flight: AtomicU32,
    /// Of those, the ones whose handler has finished: their answer waits to be sent.
    unsent: AtomicU32,
    unsent_bytes: AtomicU64,
    /// `clock::now_ms()` when bytes were last written to the socket or an answer became ready.
    progress_ms: AtomicU64,
    /// `clock::now_ms()` since which the socket has refused our bytes (its buffer is full); 0 = not.
    write_blocked_ms: AtomicU64,
    requests: AtomicU64,
    /// `clock::now_ms()` when the connection last became idle.
    idle_since_ms: AtomicU64,
    /// `clock::now_ms()` of the first byte received while idle (a request head is arriving); 0 = none.
    head_started_ms: AtomicU64,
    /// HTTP/2 multiplexes and pings; only the idle rule applies to it.
    http2: AtomicBool,
    /// A request on it timed out waiting for its body (`408`): the client trickles, and an
    /// HTTP/2 client could renew such a stream forever on one connection.
    slow_request: AtomicBool,
}

impl Activity {
    fn new() -> Self {
        let now = clock::now_ms();
        Self {
            accepted_ms: now,
            in_flight: AtomicU32::new(0),
            unsent: AtomicU32::new(0),
            unsent_bytes: AtomicU64::new(0),
            progress_ms: AtomicU64::new(now),
            write_blocked_ms: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            idle_since_ms: AtomicU64::new(now),
            head_started_ms: AtomicU64::new(0),
            http2: AtomicBool::new(false),
            slow_request: AtomicBool::new(false),
        }
    }

    fn request_started(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.head_started_ms.store(0, Ordering::Relaxed);
    }

    /// The handler has answered; the answer now waits to be sent.
    fn answer_ready(&self, bytes: u64) {
        self.unsent.fetch_add(1, Ordering::Relaxed);
        self.unsent_bytes.fetch_add(bytes, Ordering::Relaxed);
        self.progress_ms.store(clock::now_ms(), Ordering::Relaxed);
    }

    /// The answer has been handed to the socket (or the stream was reset): the request is over.
    fn answer_sent(&self, bytes: u64) {
        self.unsent.fetch_sub(1, Ordering::Relaxed);
        self.unsent_bytes.fetch_sub(bytes, Ordering::Relaxed);
        self.request_ended();
    }

    fn request_ended(&self) {
        self.idle_since_ms.store(clock::now_ms(), Ordering::Relaxed);
        self.head_started_ms.store(0, Ordering::Relaxed);
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }

    fn bytes_sent(&self) {
        if self.write_blocked_ms.load(Ordering::Relaxed) != 0 {
            self.write_blocked_ms.store(0, Ordering::Relaxed);
        }
        if self.unsent.load(Ordering::Relaxed) > 0 {
            self.progress_ms.store(clock::now_ms(), Ordering::Relaxed);
        }
    }

    fn write_blocked(&self) {
        if self.write_blocked_ms.load(Ordering::Relaxed) == 0 {
            self.write_blocked_ms
                .store(clock::now_ms().max(1), Ordering::Relaxed);
        }
    }

    /// Since when the client has not taken what we have for it: answers waiting with nothing
    /// written, or a socket refusing our bytes.
    fn stalled_since(&self) -> Option<u64> {
        let blocked = self.write_blocked_ms.load(Ordering::Relaxed);
        let waiting = (self.unsent.load(Ordering::Relaxed) > 0)
            .then(|| self.progress_ms.load(Ordering::Relaxed));
        match (blocked, waiting) {
            (0, waiting) => waiting,
            (blocked, Some(waiting)) => Some(blocked.min(waiting)),
            (blocked, None) => Some(blocked),
        }
    }

    fn bytes_received(&self, first: &[u8]) {
        if self.in_flight.load(Ordering::Relaxed) == 0
            && self.head_started_ms.load(Ordering::Relaxed) == 0
        {
            if self.requests.load(Ordering::Relaxed) == 0 && first.starts_with(b"PRI * HTTP/2.0") {
                self.http2.store(true, Ordering::Relaxed);
            }
            self.head_started_ms
                .store(clock::now_ms().max(1), Ordering::Relaxed);
        }
    }
}

struct ConnectionState {
    app: Arc<App>,
    activity: Activity,
    id: u64,
    connections: Arc<Connections>,
    /// The socket, for options set while hyper owns the stream (valid while the task lives).
    fd: std::os::fd::RawFd,
}

impl ConnectionState {
    /// Makes the coming close a reset (`SO_LINGER` 0): for connections the origin drops or
    /// evicts, whose client may not be reading, so unsent bytes do not outlive the slot.
    fn reset_on_close(&self) {
        let linger = libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        // SAFETY: setsockopt on the connection's own socket, still open (its task owns it), with
        // a pointer to a local of the size given.
        unsafe {
            libc::setsockopt(
                self.fd,
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                (&linger as *const libc::linger).cast(),
                std::mem::size_of::<libc::linger>() as libc::socklen_t,
            );
        }
    }
}

/// Bounds what the kernel buffers for a client that does not read (the kernel doubles it): past
/// it, writes block and the watchdog's stall rule applies, instead of megabytes per socket.
const SEND_BUFFER_BYTES: libc::c_int = 32 * 1024;

fn limit_send_buffer(stream: &TcpStream) {
    use std::os::fd::AsRawFd;
    // SAFETY: setsockopt on an open socket with a pointer to a local of the size given.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            (&SEND_BUFFER_BYTES as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// Keeps a connection in [`Connections`] until its task ends (also when aborted before it ran).
struct Registration(Arc<ConnectionState>);

impl Drop for Registration {
    fn drop(&mut self) {
        self.0.connections.remove(self.0.id);
    }
}

/// How long a new connection is spared from eviction (at most an eighth of the header timeout): a
/// request already in its socket gets parsed first, even on a busy machine.
const UNPROVEN_GRACE: Duration = Duration::from_secs(1);

/// How long each kind of connection must have been so before it may be evicted.
#[derive(Debug, Clone, Copy)]
struct Grace {
    /// Since the accept, for a connection that has sent no request; also since the last byte
    /// written, for one whose client does not read.
    unproven_ms: u64,
    /// Since its last answer, for an idle keep-alive connection.
    idle_ms: u64,
}

/// A registered connection, and its task once spawned.
type Entry = (Arc<ConnectionState>, Option<AbortHandle>);

/// Every open connection, by id (accept order), so that at the limit one can be evicted.
#[derive(Default)]
struct Connections {
    next_id: std::sync::atomic::AtomicU64,
    open: Mutex<BTreeMap<u64, Entry>>,
}

impl Connections {
    fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Registers a connection before its task is spawned ([`Self::started`] adds the task).
    fn insert(&self, state: &Arc<ConnectionState>) -> Registration {
        self.lock().insert(state.id, (Arc::clone(state), None));
        Registration(Arc::clone(state))
    }

    fn started(&self, id: u64, task: AbortHandle) {
        if let Some((_, slot)) = self.lock().get_mut(&id) {
            *slot = Some(task);
        }
    }

    fn remove(&self, id: u64) {
        // The entry holds an Arc of the state: take it out, drop it outside the lock.
        let removed = self.lock().remove(&id);
        drop(removed);
    }

    /// Ends the connection least worth keeping, if one has been so for longer than its grace:
    /// first one that sent no request (oldest first), then one whose client does not read its
    /// answers (stalled longest first), then the longest idle. Only when the limit is reached.
    fn evict_one(&self, grace: Grace) -> Option<CloseReason> {
        let now = clock::now_ms();
        let mut open = self.lock();
        let victim = open
            .iter()
            .filter_map(|(&id, (state, task))| {
                task.as_ref()?;
                let a = &state.activity;
                let due = |since: u64| since + grace.unproven_ms <= now;
                let candidate = if a.requests.load(Ordering::Relaxed) == 0 {
                    due(a.accepted_ms).then_some((CloseReason::EvictedUnproven, a.accepted_ms))
                } else if let Some(since) = a.stalled_since() {
                    due(since).then_some((CloseReason::EvictedStalled, since))
                } else if a.in_flight.load(Ordering::Relaxed) == 0 {
                    let idle = a.idle_since_ms.load(Ordering::Relaxed);
                    (idle + grace.idle_ms <= now).then_some((CloseReason::EvictedIdle, idle))
                } else {
                    None
                };
                candidate.map(|(reason, since)| (reason, since, id))
            })
            .min();
        let (reason, _, id) = victim?;
        let removed = open.remove(&id);
        drop(open);
        if let Some((state, Some(task))) = &removed {
            // Reset rather than close: what the kernel still holds for it is discarded at once
            // instead of lingering in FIN-WAIT-1 after its slot is free.
            state.reset_on_close();
            task.abort();
        }
        tracing::debug!(
            reason = reason.label(),
            "connection limit reached: evicted a connection"
        );
        Some(reason)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Entry>> {
        self.open
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// What the watchdog decides on each wake-up.
enum Verdict {
    /// Look again at this `clock::now_ms()`.
    CheckAt(u64),
    /// Idle too long: ask the connection to close gracefully.
    CloseIdle,
    /// Drop the connection: a request head did not arrive in time (slow or silent client), or
    /// the client takes nothing of what we have for it.
    Drop(CloseReason),
}

fn judge(activity: &Activity, now: u64, header_timeout: u64, idle_timeout: u64) -> Verdict {
    // Wake at least every header timeout, so a head that starts arriving is timed from its start.
    let soon = now + header_timeout;
    if activity.slow_request.load(Ordering::Relaxed) {
        return Verdict::Drop(CloseReason::SlowRequest);
    }
    if let Some(since) = activity.stalled_since() {
        let deadline = since + header_timeout;
        if now >= deadline {
            return Verdict::Drop(CloseReason::SendStalled);
        }
        return Verdict::CheckAt(deadline.min(soon));
    }
    if activity.in_flight.load(Ordering::Relaxed) > 0 {
        return Verdict::CheckAt(soon);
    }
    let http2 = activity.http2.load(Ordering::Relaxed);
    let head_started = activity.head_started_ms.load(Ordering::Relaxed);
    if head_started != 0 && !http2 {
        let deadline = head_started + header_timeout;
        return if now >= deadline {
            Verdict::Drop(CloseReason::HeadTimeout)
        } else {
            Verdict::CheckAt(deadline)
        };
    }
    // The first request, whatever the protocol: an HTTP/2 preface alone is not a request.
    if activity.requests.load(Ordering::Relaxed) == 0 {
        let deadline = activity.accepted_ms + header_timeout;
        return if now >= deadline {
            Verdict::Drop(CloseReason::HeadTimeout)
        } else {
            Verdict::CheckAt(deadline)
        };
    }
    let deadline = activity.idle_since_ms.load(Ordering::Relaxed) + idle_timeout;
    if now >= deadline {
        Verdict::CloseIdle
    } else {
        Verdict::CheckAt(deadline.min(soon))
    }
}

async fn serve_connection(
    stream: TcpStream,
    registration: Registration,
    builder: Arc<auto::Builder<TokioExecutor>>,
    mut closing: watch::Receiver<bool>,
    _permit: OwnedSemaphorePermit,
) {
    // One Arc per connection, cloned per request: the reference count stays on this
    // connection's core instead of being shared by every request in the process.
    let connection_state = Arc::clone(&registration.0);
    let app = Arc::clone(&connection_state.app);
    let service = {
        let state = Arc::clone(&connection_state);
        service_fn(move |request| {
            // Ends the request for the watchdog when dropped, also if hyper drops this future
            // (a client that resets its stream or closes mid-request).
            let in_flight = InFlight::start(Arc::clone(&state));
            async move {
                let activity = &in_flight.state.activity;
                let response = if activity.unsent_bytes.load(Ordering::Relaxed) > MAX_UNSENT_BYTES {
                    routes::unsent_answers_pending()
                } else {
                    routes::handle(&in_flight.state.app, request).await
                };
                if response.status() == hyper::StatusCode::REQUEST_TIMEOUT {
                    activity.slow_request.store(true, Ordering::Relaxed);
                }
                Ok::<_, std::convert::Infallible>(
                    response.map(|body| SentBody::new(body, in_flight)),
                )
            }
        })
    };
    let io = TokioIo::new(WatchedStream {
        stream,
        state: Arc::clone(&connection_state),
    });
    let connection = builder.serve_connection(io, service);
    tokio::pin!(connection);

    let header_timeout = app.config.header_read_timeout.as_millis() as u64;
    let idle_timeout = app.config.keepalive_idle_timeout.as_millis() as u64;
    let watchdog = tokio::time::sleep(app.config.header_read_timeout);
    tokio::pin!(watchdog);
    let mut close_deadline: Option<u64> = None;
    // The connection is what wakes this task on every request, so it is polled first and usually
    // alone: the closing signal and the watchdog's timer are polled once to register, then only
    // once they have fired (cheap checks below). Polling both on every wake-up cost ~450
    // instructions a request (a mutex in tokio's `Notify`, the timer entry), as much as routing.
    let closing_fired = closing.clone();
    let closing_signal = async move {
        let _ = closing.wait_for(|set| *set).await;
    };
    tokio::pin!(closing_signal);
    let (mut closing_registered, mut watchdog_registered) = (false, false);
    loop {
        let wake = std::future::poll_fn(|cx| {
            if let Poll::Ready(result) = connection.as_mut().poll(cx) {
                return Poll::Ready(Wake::Ended(result));
            }
            // A closed sender (the server is gone) counts as closing, as `wait_for` returns then.
            if close_deadline.is_none()
                && (!closing_registered || closing_fired.has_changed().unwrap_or(true))
            {
                if !budget_left(cx) {
                    return Poll::Pending;
                }
                closing_registered = true;
                if closing_signal.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Wake::Closing);
                }
            }
            if !watchdog_registered || watchdog.is_elapsed() {
                if !budget_left(cx) {
                    return Poll::Pending;
                }
                watchdog_registered = true;
                if watchdog.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Wake::Watchdog);
                }
            }
            Poll::Pending
        })
        .await;
        match wake {
            Wake::Ended(result) => {
                if let Err(error) = result {
                    tracing::debug!(%error, "connection ended with an error");
                }
                return;
            }
            Wake::Closing => {
                connection.as_mut().graceful_shutdown();
                let grace = CLOSE_GRACE.min(app.config.shutdown_timeout);
                close_deadline = Some(clock::now_ms() + grace.as_millis() as u64);
                watchdog.as_mut().reset(tokio::time::Instant::now() + grace);
                watchdog_registered = false;
            }
            Wake::Watchdog => {
                let now = clock::now_ms();
                let next = match close_deadline {
                    Some(deadline) if now >= deadline => return, // asked to close and did not
                    Some(deadline) => deadline,
                    None => match judge(
                        &connection_state.activity,
                        now,
                        header_timeout,
                        idle_timeout,
                    ) {
                        Verdict::CheckAt(at) => at,
                        Verdict::Drop(reason) => {
                            app.metrics.connection_closed(reason);
                            connection_state.reset_on_close();
                            return;
                        }
                        Verdict::CloseIdle => {
                            app.metrics.connection_closed(CloseReason::IdleTimeout);
                            connection.as_mut().graceful_shutdown();
                            // Nothing is in flight, so all hyper may still wait for is a request
                            // head (e.g. a partial one pipelined behind the last request, which
                            // the watchdog cannot see): the header timeout bounds that.
                            let grace = header_timeout.min(CLOSE_GRACE.as_millis() as u64);
                            close_deadline = Some(now + grace);
                            now + grace
                        }
                    },
                };
                watchdog.as_mut().reset(
                    tokio::time::Instant::now()
                        + Duration::from_millis(next.saturating_sub(now).max(1)),
                );
                watchdog_registered = false;
            }
        }
    }
}

/// Whether a tokio resource polled now would really be polled. With this task's cooperative
/// budget spent (a burst of pipelined requests can spend it), a timer or a watch answers `Pending`
/// without registering: polled then, and not again until it fires, it would never fire. Without
/// budget the task asks to be polled again, with a fresh one.
fn budget_left(cx: &Context<'_>) -> bool {
    let left = tokio::task::coop::has_budget_remaining();
    if !left {
        cx.waker().wake_by_ref();
    }
    left
}

/// Why a connection's task woke up with something to do.
enum Wake<E> {
    Ended(Result<(), E>),
    Closing,
    Watchdog,
}

/// The client socket, telling [`Activity`] when request bytes arrive while the connection is
/// idle (hyper's own header timer would also fire on idle keep-alive connections).
struct WatchedStream {
    stream: TcpStream,
    state: Arc<ConnectionState>,
}

impl AsyncRead for WatchedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let result = Pin::new(&mut this.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.state.activity.bytes_received(&buf.filled()[before..]);
        }
        result
    }
}

impl WatchedStream {
    fn written(&self, result: &Poll<std::io::Result<usize>>) {
        match result {
            Poll::Ready(Ok(n)) if *n > 0 => self.state.activity.bytes_sent(),
            Poll::Pending => self.state.activity.write_blocked(),
            _ => {}
        }
    }
}

impl AsyncWrite for WatchedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.stream).poll_write(cx, data);
        this.written(&result);
        result
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.stream).poll_write_vectored(cx, bufs);
        this.written(&result);
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// One request as the watchdog counts it: from the service call until its answer is handed to
/// the socket, or until hyper drops it unanswered.
struct InFlight {
    state: Arc<ConnectionState>,
    /// The answer's size once the handler has answered.
    answer_bytes: Option<u64>,
}

impl InFlight {
    fn start(state: Arc<ConnectionState>) -> Self {
        state.activity.request_started();
        Self {
            state,
            answer_bytes: None,
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        match self.answer_bytes {
            Some(bytes) => self.state.activity.answer_sent(bytes),
            None => self.state.activity.request_ended(),
        }
    }
}

/// An answer body that ends its [`InFlight`] when hyper drops it: once the last byte is handed
/// on, or the stream is reset.
struct SentBody {
    inner: routes::Body,
    _in_flight: InFlight,
}

impl SentBody {
    fn new(inner: routes::Body, mut in_flight: InFlight) -> Self {
        use hyper::body::Body as _;
        let bytes = inner.size_hint().exact().unwrap_or(0);
        in_flight.state.activity.answer_ready(bytes);
        in_flight.answer_bytes = Some(bytes);
        Self {
            inner,
            _in_flight: in_flight,
        }
    }
}

impl hyper::body::Body for SentBody {
    type Data = <routes::Body as hyper::body::Body>::Data;
    type Error = <routes::Body as hyper::body::Body>::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// Connections closed since the last trim that make one worthwhile.
const TRIM_AFTER_CLOSED: usize = 32;

/// Hands memory freed by closed connections back to the system. glibc's allocator keeps what
/// each worker thread's arena freed for reuse, so after a burst of connections (an HTTP/2 client
/// holding streams, say) the process would stay at its peak size for good; `malloc_trim` returns
/// the free pages. It runs at most once a second, and only after many connections closed.
async fn trim_memory_after_connections_close(limit: Arc<Semaphore>, max_connections: usize) {
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut peak = 0;
    loop {
        ticker.tick().await;
        let open = max_connections.saturating_sub(limit.available_permits());
        peak = peak.max(open);
        if peak - open >= TRIM_AFTER_CLOSED {
            // Off the workers: trimming a large heap takes milliseconds, which on a worker would
            // stall every request queued behind it.
            let _ = tokio::task::spawn_blocking(trim_free_memory).await;
            peak = open;
        }
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim_free_memory() {
    // SAFETY: malloc_trim only releases free memory of the allocator; it takes no pointers.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim_free_memory() {}

/// Resolves once the flag is true (the guard `wait_for` returns must not live across an await).
async fn turned_true(flag: &mut watch::Receiver<bool>) {
    let _ = flag.wait_for(|set| *set).await;
}

/// Serves `GET /metrics` (and nothing else) on its own listener until `stop` turns true.
pub async fn serve_metrics(app: Arc<App>, listener: TcpListener, mut stop: watch::Receiver<bool>) {
    use http_body_util::Full;
    use hyper::{header, Response, StatusCode};

    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(_) => continue,
            },
            _ = turned_true(&mut stop) => return,
        };
        let app = Arc::clone(&app);
        tokio::spawn(async move {
            let service = service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                let app = Arc::clone(&app);
                async move {
                    let response = if request.uri().path() == "/metrics"
                        && request.method() == hyper::Method::GET
                    {
                        // Read at scrape time: no per-request bookkeeping on the hot path.
                        app.metrics
                            .write_queue_depth
                            .set(app.batcher.queued() as i64);
                        Response::builder()
                            .header(
                                header::CONTENT_TYPE,
                                "text/plain; version=0.0.4; charset=utf-8",
                            )
                            .body(Full::new(bytes::Bytes::from(app.metrics.render())))
                    } else {
                        Response::builder()
                            .status(StatusCode::NOT_FOUND)
                            .body(Full::new(bytes::Bytes::from_static(b"not found\n")))
                    };
                    Ok::<_, std::convert::Infallible>(response.expect("valid response"))
                }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), service);
            let _ = tokio::time::timeout(Duration::from_secs(60), connection).await;
        });
    }
}
