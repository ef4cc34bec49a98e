//! Listeners, connection limits, timeouts and the graceful stop of the public listener.
//!
//! hyper gives us HTTP/1.1 (keep-alive) and HTTP/2 cleartext on one port and a header-read
//! timeout; it has no idle keep-alive timeout, so each connection carries a small watchdog:
//! - a connection that has not completed its first request head within `HEADER_READ_TIMEOUT_MS`
//!   is dropped (this also covers the protocol sniffing of HTTP/1 vs HTTP/2, which has no timer);
//! - a connection with no request in flight for `KEEPALIVE_IDLE_TIMEOUT_S` is closed gracefully.
//!   That timeout must exceed the ALB's (60 s): the ALB must always be the side that closes an
//!   idle connection, or it may send a request into a socket we are closing (a 502).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};

use crate::{routes, App};

/// Largest request head (request line + headers) accepted; larger gets `431`.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
/// Most header fields in one request.
const MAX_HEADERS: usize = 64;
/// Concurrent streams one HTTP/2 client may open.
const MAX_H2_STREAMS: u32 = 256;
/// Pending connections the kernel may hold while we are at `MAX_CONNECTIONS`.
const LISTEN_BACKLOG: u32 = 4096;
/// After a graceful close was asked of a connection, how long it may take to finish.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// Binds with a deep backlog and `SO_REUSEADDR` (restarts do not wait for TIME_WAIT).
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
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
    let builder = Arc::new(connection_builder(config.header_read_timeout));
    loop {
        let permit = tokio::select! {
            permit = Arc::clone(&limit).acquire_owned() => permit.expect("never closed"),
            _ = turned_true(&mut stop) => break,
        };
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
        let _ = stream.set_nodelay(true);
        tokio::spawn(serve_connection(stream, Arc::clone(&app), Arc::clone(&builder), closing_rx.clone(), permit));
    }
    drop(listener);
    let _ = closing.send(true);
    let all = u32::try_from(config.max_connections).unwrap_or(u32::MAX);
    if tokio::time::timeout(config.shutdown_timeout, limit.acquire_many(all)).await.is_err() {
        tracing::warn!(open = config.max_connections - limit.available_permits(), "connections still open at shutdown timeout");
    }
}

fn connection_builder(header_read_timeout: Duration) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout)
        .max_buf_size(MAX_HEADER_BYTES)
        .max_headers(MAX_HEADERS)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(MAX_H2_STREAMS)
        .max_header_list_size(MAX_HEADER_BYTES as u32);
    builder
}

/// What the watchdog needs to know about one connection's requests.
struct Activity {
    in_flight: AtomicU32,
    requests: AtomicU64,
    /// `clock_ms()` when the connection last became idle.
    idle_since_ms: AtomicU64,
}

async fn serve_connection(
    stream: TcpStream,
    app: Arc<App>,
    builder: Arc<auto::Builder<TokioExecutor>>,
    mut closing: watch::Receiver<bool>,
    _permit: OwnedSemaphorePermit,
) {
    let activity = Arc::new(Activity { in_flight: AtomicU32::new(0), requests: AtomicU64::new(0), idle_since_ms: AtomicU64::new(clock_ms()) });
    let service = {
        let (app, activity) = (Arc::clone(&app), Arc::clone(&activity));
        service_fn(move |request| {
            let (app, activity) = (Arc::clone(&app), Arc::clone(&activity));
            activity.requests.fetch_add(1, Ordering::Relaxed);
            activity.in_flight.fetch_add(1, Ordering::Relaxed);
            async move {
                let response = routes::handle(&app, request).await;
                activity.idle_since_ms.store(clock_ms(), Ordering::Relaxed);
                activity.in_flight.fetch_sub(1, Ordering::Relaxed);
                Ok::<_, std::convert::Infallible>(response)
            }
        })
    };
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);

    let idle_timeout = app.config.keepalive_idle_timeout;
    let watchdog = tokio::time::sleep(app.config.header_read_timeout);
    tokio::pin!(watchdog);
    let mut close_deadline: Option<Instant> = None;
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%error, "connection ended with an error");
                }
                return;
            }
            _ = turned_true(&mut closing), if close_deadline.is_none() => {
                connection.as_mut().graceful_shutdown();
                close_deadline = Some(Instant::now() + CLOSE_GRACE.min(app.config.shutdown_timeout));
                watchdog.as_mut().reset(close_deadline.unwrap().into());
            }
            _ = &mut watchdog => {
                if close_deadline.is_some_and(|deadline| Instant::now() >= deadline) {
                    return; // asked to close and did not: drop it
                }
                if activity.requests.load(Ordering::Relaxed) == 0 {
                    return; // no complete request head in time (slow or silent client)
                }
                if activity.in_flight.load(Ordering::Relaxed) > 0 {
                    watchdog.as_mut().reset((Instant::now() + idle_timeout).into());
                    continue;
                }
                let idle_for = Duration::from_millis(clock_ms().saturating_sub(activity.idle_since_ms.load(Ordering::Relaxed)));
                if idle_for >= idle_timeout {
                    connection.as_mut().graceful_shutdown();
                    close_deadline = Some(Instant::now() + CLOSE_GRACE);
                    watchdog.as_mut().reset(close_deadline.unwrap().into());
                } else {
                    watchdog.as_mut().reset((Instant::now() + (idle_timeout - idle_for)).into());
                }
            }
        }
    }
}

/// Resolves once the flag is true (the guard `wait_for` returns must not live across an await).
async fn turned_true(flag: &mut watch::Receiver<bool>) {
    let _ = flag.wait_for(|set| *set).await;
}

/// Milliseconds on a monotonic process clock (cheap to store in an atomic).
fn clock_ms() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_millis() as u64
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
                    let response = if request.uri().path() == "/metrics" && request.method() == hyper::Method::GET {
                        Response::builder()
                            .header(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")
                            .body(Full::new(bytes::Bytes::from(app.metrics.render())))
                    } else {
                        Response::builder().status(StatusCode::NOT_FOUND).body(Full::new(bytes::Bytes::from_static(b"not found\n")))
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
