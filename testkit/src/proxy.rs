//! A TCP proxy that delays every byte by a fixed one-way latency in each direction: the network
//! between an origin and a database in another availability zone, on loopback. The kernel here
//! has no `netem`, hence a userspace proxy.
//!
//! Per connection and direction, a reader stamps each chunk with `received + one_way` and a
//! writer sends the chunks in order, each no earlier than its stamp; so bytes keep their order,
//! and a chunk that arrives while earlier ones wait is not delayed twice (the link is a pipe with
//! latency, not a queue of sleeps). What one direction holds is bounded by `max_buffered` bytes:
//! when the budget is spent the reader stops reading and TCP flow control pushes back on the
//! sender, as a full network path would.
//!
//! The wait uses a timerfd, not `tokio::time`: tokio's timer wheel has millisecond ticks, so a
//! 0.5 ms delay would come out anywhere between 0.5 and 2 ms, which is the very range measured.

use std::io;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustix::time::{Itimerspec, TimerfdClockId, TimerfdFlags, TimerfdTimerFlags, Timespec};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::{JoinHandle, JoinSet};

/// Largest read, and so the largest chunk one stamp covers.
const CHUNK: usize = 16 * 1024;
/// Default bound on the bytes one direction of one connection holds: far above what a database
/// connection has in flight in a millisecond, far below what could hurt a test machine.
pub const DEFAULT_MAX_BUFFERED: usize = 256 * 1024;

/// How a proxy is set up.
#[derive(Clone, Copy, Debug)]
pub struct ProxyConfig {
    /// Where accepted connections are forwarded (one new upstream connection each).
    pub upstream: SocketAddr,
    /// Added to every byte's trip in each direction (the round trip grows by twice this).
    pub one_way: Duration,
    /// Most bytes one direction of one connection holds while they wait.
    pub max_buffered: usize,
}

impl ProxyConfig {
    pub fn new(upstream: SocketAddr, one_way: Duration) -> Self {
        Self {
            upstream,
            one_way,
            max_buffered: DEFAULT_MAX_BUFFERED,
        }
    }
}

/// What a proxy has done so far (all connections).
#[derive(Default)]
struct Stats {
    connections: AtomicU64,
    bytes: AtomicU64,
    peak_buffered: AtomicUsize,
}

/// A running proxy on a loopback port; it stops, closing every connection, when dropped.
pub struct LatencyProxy {
    addr: SocketAddr,
    stats: Arc<Stats>,
    accept: JoinHandle<()>,
}

impl LatencyProxy {
    /// Listens on `127.0.0.1:0`; connect to [`LatencyProxy::addr`] instead of the upstream.
    pub async fn start(config: ProxyConfig) -> io::Result<Self> {
        if config.max_buffered == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "max_buffered must be at least 1 byte",
            ));
        }
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let stats = Arc::new(Stats::default());
        let accept = tokio::spawn(accept_loop(listener, config, Arc::clone(&stats)));
        Ok(Self {
            addr,
            stats,
            accept,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.stats.connections.load(Ordering::Relaxed)
    }

    /// Bytes delivered so far, both directions.
    pub fn bytes(&self) -> u64 {
        self.stats.bytes.load(Ordering::Relaxed)
    }

    /// The most bytes one direction of one connection ever held.
    pub fn peak_buffered(&self) -> usize {
        self.stats.peak_buffered.load(Ordering::Relaxed)
    }
}

impl Drop for LatencyProxy {
    fn drop(&mut self) {
        // The accept task owns the connections' JoinSet: aborting it drops (aborts) them all.
        self.accept.abort();
    }
}

async fn accept_loop(listener: TcpListener, config: ProxyConfig, stats: Arc<Stats>) {
    let mut connections = JoinSet::new();
    loop {
        let client = match listener.accept().await {
            Ok((client, _)) => client,
            // Out of descriptors and the like: the client sees a refused or reset connection,
            // the proxy keeps serving the others.
            Err(_) => continue,
        };
        while connections.try_join_next().is_some() {}
        stats.connections.fetch_add(1, Ordering::Relaxed);
        let stats = Arc::clone(&stats);
        connections.spawn(async move {
            // A failed connection ends with its sockets closed: what a peer sees of a broken
            // path. Nothing else to report.
            let _ = relay(client, config, stats).await;
        });
    }
}

async fn relay(client: TcpStream, config: ProxyConfig, stats: Arc<Stats>) -> io::Result<()> {
    let upstream = TcpStream::connect(config.upstream).await?;
    // Small messages (one statement, one reply): the delay is ours to add, not Nagle's.
    client.set_nodelay(true)?;
    upstream.set_nodelay(true)?;
    let (client_read, client_write) = client.into_split();
    let (upstream_read, upstream_write) = upstream.into_split();
    // Each direction ends after delivering its EOF; an error in either ends both, closing the
    // sockets, because a half-broken path is not something a database client expects.
    tokio::try_join!(
        direction(client_read, upstream_write, &config, &stats),
        direction(upstream_read, client_write, &config, &stats),
    )?;
    Ok(())
}

/// A chunk on its way, and when it may leave.
struct Delayed {
    due: Instant,
    data: Vec<u8>,
}

async fn direction(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    config: &ProxyConfig,
    stats: &Stats,
) -> io::Result<()> {
    let budget = &Semaphore::new(config.max_buffered);
    let chunk = CHUNK.min(config.max_buffered);
    // Unbounded in items, bounded in bytes by `budget` (every chunk holds at least one byte).
    let (send, mut receive) = mpsc::unbounded_channel::<Delayed>();
    let read = async move {
        loop {
            // Permits are bytes: reserve a whole chunk, give back what the read did not fill.
            budget
                .acquire_many(chunk as u32)
                .await
                .expect("the budget is never closed")
                .forget();
            let mut data = vec![0; chunk];
            let n = from.read(&mut data).await?;
            budget.add_permits(chunk - n);
            if n == 0 {
                // EOF: dropping `send` (with this future) lets the writer finish and shut down.
                return Ok::<_, io::Error>(());
            }
            data.truncate(n);
            let held = config.max_buffered - budget.available_permits();
            stats.peak_buffered.fetch_max(held, Ordering::Relaxed);
            let due = Instant::now() + config.one_way;
            if send.send(Delayed { due, data }).is_err() {
                return Ok(()); // the writer failed; its error ends the connection
            }
        }
    };
    let write = async move {
        let mut timer = Timer::new()?;
        while let Some(Delayed { due, data }) = receive.recv().await {
            timer.sleep_until(due).await?;
            to.write_all(&data).await?;
            stats.bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
            budget.add_permits(data.len());
        }
        to.shutdown().await
    };
    tokio::try_join!(read, write)?;
    Ok(())
}

/// A one-shot timer with the kernel's high-resolution clock, driven by tokio's reactor.
struct Timer {
    fd: AsyncFd<OwnedFd>,
}

impl Timer {
    fn new() -> io::Result<Self> {
        let fd = rustix::time::timerfd_create(
            TimerfdClockId::Monotonic,
            TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC,
        )?;
        // SAFETY: `fd` is a valid descriptor this timer owns; nothing else closes or replaces it
        // while it is registered.
        let fd = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }
            .map_err(io::Error::from)?;
        Ok(Self { fd })
    }

    /// Returns at `due` or later (at once when `due` has passed).
    async fn sleep_until(&mut self, due: Instant) -> io::Result<()> {
        let wait = due.saturating_duration_since(Instant::now());
        if wait.is_zero() {
            return Ok(());
        }
        let zero = Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // Relative to now: the remaining wait is at least `due - now`, so never early.
        rustix::time::timerfd_settime(
            self.fd.get_ref(),
            TimerfdTimerFlags::empty(),
            &Itimerspec {
                it_interval: zero,
                it_value: Timespec {
                    tv_sec: wait.as_secs() as _,
                    tv_nsec: wait.subsec_nanos() as _,
                },
            },
        )?;
        loop {
            let mut ready = self.fd.readable().await?;
            let mut expirations = [0u8; 8];
            match rustix::io::read(self.fd.get_ref(), &mut expirations) {
                Ok(_) => return Ok(()),
                Err(rustix::io::Errno::AGAIN) => ready.clear_ready(),
                Err(e) => return Err(e.into()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Echoes everything back; reports when each read arrived (for the one-way delays).
    async fn echo_server() -> (SocketAddr, mpsc::UnboundedReceiver<Instant>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (arrivals, receive) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let arrivals = arrivals.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0; 64 * 1024];
                    loop {
                        let n = socket.read(&mut buf).await.unwrap();
                        let _ = arrivals.send(Instant::now());
                        if n == 0 {
                            return; // dropping the socket closes it: the client sees EOF
                        }
                        socket.write_all(&buf[..n]).await.unwrap();
                    }
                });
            }
        });
        (addr, receive)
    }

    /// Bytes that show any reordering, loss or duplication (not a repeating short pattern).
    fn pattern(len: usize) -> Vec<u8> {
        let mut x: u32 = 0x9e37_79b9;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect()
    }

    /// Writes `data` in uneven pieces while reading the echo to EOF; returns what came back.
    async fn round_trip(addr: SocketAddr, data: Vec<u8>) -> Vec<u8> {
        let (mut read, mut write) = TcpStream::connect(addr).await.unwrap().into_split();
        let writer = tokio::spawn(async move {
            let mut rest = &data[..];
            let mut piece = 1;
            while !rest.is_empty() {
                let n = piece.min(rest.len());
                write.write_all(&rest[..n]).await.unwrap();
                rest = &rest[n..];
                piece = (piece * 7 + 3) % 9000 + 1;
            }
            write.shutdown().await.unwrap();
        });
        let mut echoed = Vec::new();
        read.read_to_end(&mut echoed).await.unwrap();
        writer.await.unwrap();
        echoed
    }

    #[tokio::test]
    async fn each_direction_is_delayed_by_at_least_the_setting() {
        let (echo, mut arrivals) = echo_server().await;
        let one_way = Duration::from_millis(3);
        let proxy = LatencyProxy::start(ProxyConfig::new(echo, one_way))
            .await
            .unwrap();
        let mut socket = TcpStream::connect(proxy.addr()).await.unwrap();
        let mut answer = [0u8; 5];
        for _ in 0..5 {
            let sent = Instant::now();
            socket.write_all(b"hello").await.unwrap();
            socket.read_exact(&mut answer).await.unwrap();
            let back = Instant::now();
            let arrived = arrivals.recv().await.unwrap();
            assert_eq!(&answer, b"hello");
            assert!(arrived - sent >= one_way, "forward: {:?}", arrived - sent);
            // The echo left the server after `arrived`, so this bounds the return trip from below.
            assert!(back - arrived >= one_way, "return: {:?}", back - arrived);
        }
        assert_eq!(proxy.connections(), 1);
        assert_eq!(proxy.bytes(), 50);
    }

    #[tokio::test]
    async fn bytes_keep_their_order_and_eof_passes_through() {
        let (echo, _arrivals) = echo_server().await;
        for one_way in [Duration::ZERO, Duration::from_micros(500)] {
            let proxy = LatencyProxy::start(ProxyConfig::new(echo, one_way))
                .await
                .unwrap();
            let data = pattern(2 * 1024 * 1024);
            let echoed = round_trip(proxy.addr(), data.clone()).await;
            assert_eq!(echoed.len(), data.len(), "one way {one_way:?}");
            assert!(echoed == data, "bytes reordered or changed ({one_way:?})");
        }
    }

    #[tokio::test]
    async fn what_waits_is_bounded_by_the_budget() {
        let (echo, _arrivals) = echo_server().await;
        // 20 ms of delay in front of a sender that could push megabytes in that time: without
        // the bound nearly the whole transfer would be held at once.
        let config = ProxyConfig {
            max_buffered: 4096,
            ..ProxyConfig::new(echo, Duration::from_millis(20))
        };
        let proxy = LatencyProxy::start(config).await.unwrap();
        let data = pattern(256 * 1024);
        let echoed = round_trip(proxy.addr(), data.clone()).await;
        assert!(echoed == data, "bytes lost or changed under back-pressure");
        assert!(proxy.peak_buffered() > 0);
        assert!(
            proxy.peak_buffered() <= 4096,
            "held {} bytes",
            proxy.peak_buffered()
        );
    }

    #[tokio::test]
    async fn a_zero_budget_is_refused() {
        let config = ProxyConfig {
            max_buffered: 0,
            ..ProxyConfig::new("127.0.0.1:1".parse().unwrap(), Duration::ZERO)
        };
        assert!(LatencyProxy::start(config).await.is_err());
    }

    #[tokio::test]
    async fn dropping_the_proxy_closes_its_connections() {
        let (echo, _arrivals) = echo_server().await;
        let proxy = LatencyProxy::start(ProxyConfig::new(echo, Duration::ZERO))
            .await
            .unwrap();
        let mut socket = TcpStream::connect(proxy.addr()).await.unwrap();
        socket.write_all(b"x").await.unwrap();
        let mut one = [0u8; 1];
        socket.read_exact(&mut one).await.unwrap();
        drop(proxy);
        let mut rest = Vec::new();
        // EOF or reset, never a hang: the relay's sockets were closed.
        let _ = socket.read_to_end(&mut rest).await;
        assert!(rest.is_empty());
    }
}
