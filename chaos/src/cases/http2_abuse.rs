//! HTTP/2 clients that hold resources instead of making requests (docs/design.md §1: bounded
//! everything), written frame by frame so nothing in a client library smooths them out:
//! - **zero window**: 1,500 connections (more than the default `MAX_CONNECTIONS`, 1,024) set
//!   `INITIAL_WINDOW_SIZE = 0`, open many streams for the page and never read, so no answer can
//!   be sent. Promise: the origin's memory stays within a stated bound and returns near its
//!   baseline after they leave, it closes the stalled connections itself (evicting them for new
//!   ones at the limit), and normal clients are served, within 2× their idle p99;
//! - **preface flood**: with `MAX_CONNECTIONS=200`, 1,200 connections send only the HTTP/2
//!   preface (half of them only its first bytes) and wait. Promise: a normal client is served
//!   within `HEADER_READ_TIMEOUT_MS` + 1 s.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{Env, FaultCase};
use crate::load::Latencies;
use crate::report::{ms, Checks};
use crate::Error;
use testkit::probe;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const ZERO_WINDOW_CONNECTIONS: usize = 1500;
const STREAMS_PER_CONNECTION: u32 = 256;
/// Peak resident memory the zero-window attack may add: half the pod's 256 Mi limit.
pub const ZERO_WINDOW_RSS_BOUND_MIB: f64 = 128.0;
/// What may stay resident after the attackers left (allocator caches).
pub const RSS_RETURN_SLACK_MIB: f64 = 16.0;
/// Normal requests' p99 under attack against idle; p99s below this floor count as equal (a
/// sub-millisecond p99 on a shared 2-core machine moves by more than 2× on its own).
pub const P99_FACTOR: f64 = 2.0;
const P99_FLOOR_MS: f64 = 2.0;
const NORMAL_REQUESTS: usize = 200;
/// The origin's header-read timeout in the zero-window case, which is also how long an answer
/// may wait unsent: long enough to measure normal clients while the attack is in force.
const STALL_TIMEOUT_MS: u64 = 5000;
const FLOOD_MAX_CONNECTIONS: usize = 200;
const FLOOD_CONNECTIONS: usize = 1200;
const FLOOD_HEADER_TIMEOUT_MS: u64 = 1000;

#[derive(Clone, Debug, Default, Serialize)]
pub struct ZeroWindowFigures {
    pub connections: usize,
    pub streams_per_connection: u32,
    /// From the last attack byte sent until the origin's CPU went quiet.
    pub attack_in_force_ms: f64,
    pub rss_baseline_mib: f64,
    pub rss_peak_mib: f64,
    pub rss_after_mib: f64,
    pub idle: Latencies,
    pub under_attack: Latencies,
    pub normal_failures: u64,
    /// Attack connections the origin closed itself (the stalled-answer timeout).
    pub closed_by_origin: usize,
    /// The p99 comparison is judged by `make chaos` only: the test command runs beside builds on
    /// a shared machine, where sub-millisecond p99s move by more than 2× on their own.
    pub latency_judged: bool,
    pub panics: Vec<String>,
}

pub struct ZeroWindow;

impl FaultCase for ZeroWindow {
    type Figures = ZeroWindowFigures;

    async fn run(&self, env: &Env<'_>) -> Result<ZeroWindowFigures, Error> {
        raise_fd_limit()?;
        let spec = env.origin(
            "origin",
            &[("HEADER_READ_TIMEOUT_MS", &STALL_TIMEOUT_MS.to_string())],
        )?;
        let origin = spec.start_ready().await?;
        let mut figures = ZeroWindowFigures {
            connections: ZERO_WINDOW_CONNECTIONS,
            streams_per_connection: STREAMS_PER_CONNECTION,
            latency_judged: !env.ctx.fast,
            ..ZeroWindowFigures::default()
        };
        let (idle, _) = normal_requests(origin.addr()).await;
        figures.idle = idle;
        figures.rss_baseline_mib = rss_of(origin.pid)?;

        let mut attackers = Vec::with_capacity(ZERO_WINDOW_CONNECTIONS);
        let authority = origin.addr().to_string();
        for _ in 0..ZERO_WINDOW_CONNECTIONS {
            let mut stream = TcpStream::connect(origin.addr())
                .await
                .map_err(|e| Error::io("attacker connect", e))?;
            stream
                .write_all(&zero_window_attack(&authority, STREAMS_PER_CONNECTION))
                .await
                .map_err(|e| Error::io("attacker write", e))?;
            attackers.push(stream);
        }
        // In force once the origin has opened (or refused) every stream and sits on the stalled
        // answers; measured then, before it drops them after STALL_TIMEOUT_MS.
        figures.attack_in_force_ms = ms(until_idle(origin.pid, Duration::from_secs(3)).await?);
        let sampler = tokio::spawn(peak_rss(origin.pid, Duration::from_millis(1500)));
        let (under_attack, failures) = normal_requests(origin.addr()).await;
        figures.under_attack = under_attack;
        figures.normal_failures = failures;
        figures.rss_peak_mib = sampler
            .await
            .map_err(|e| Error::Tool(format!("the memory sampler: {e}")))??;
        figures.closed_by_origin = closed_within(&mut attackers, Duration::from_secs(8)).await;
        drop(attackers);
        // What the process holds once they are gone. Closing and the origin's memory trim (once a
        // second) are asynchronous: poll until it is back within the slack, at most 5 s.
        let settle_until = Instant::now() + Duration::from_secs(5);
        figures.rss_after_mib = loop {
            let rss = rss_of(origin.pid)?;
            if rss - figures.rss_baseline_mib < RSS_RETURN_SLACK_MIB
                || Instant::now() >= settle_until
            {
                break rss;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        figures.panics = super::stop(origin).await;
        Ok(figures)
    }

    fn judge(f: &ZeroWindowFigures) -> Checks {
        let mut checks = Checks::default();
        let added = f.rss_peak_mib - f.rss_baseline_mib;
        checks.expect(
            &format!(
            "memory held by {} zero-window connections stays under {ZERO_WINDOW_RSS_BOUND_MIB} MiB",
            f.connections
        ),
            added < ZERO_WINDOW_RSS_BOUND_MIB,
            format!(
                "RSS {:.1} MiB idle, {:.1} MiB peak (+{added:.1})",
                f.rss_baseline_mib, f.rss_peak_mib
            ),
        );
        checks.expect(
            "memory returns near its baseline after the attackers leave",
            f.rss_after_mib - f.rss_baseline_mib < RSS_RETURN_SLACK_MIB,
            format!(
                "RSS {:.1} MiB after, {:.1} MiB before (slack {RSS_RETURN_SLACK_MIB} MiB)",
                f.rss_after_mib, f.rss_baseline_mib
            ),
        );
        checks.expect(
            "the origin drops connections whose answers cannot be sent",
            f.closed_by_origin == f.connections,
            format!(
                "{} of {} closed by the origin",
                f.closed_by_origin, f.connections
            ),
        );
        let allowed = (f.idle.p99_ms * P99_FACTOR).max(P99_FLOOR_MS);
        let (name, fast_enough) = if f.latency_judged {
            (
                "normal clients keep their idle p99 (within 2×)",
                f.under_attack.p99_ms <= allowed,
            )
        } else {
            ("normal clients are served (p99 judged by make chaos)", true)
        };
        checks.expect(
            name,
            f.normal_failures == 0 && f.under_attack.count > 0 && fast_enough,
            format!(
                "p99 {:.2} ms idle, {:.2} ms under attack (allowed {allowed:.2}); {} failed",
                f.idle.p99_ms, f.under_attack.p99_ms, f.normal_failures
            ),
        );
        checks.no_panic("no panic", &f.panics);
        checks
    }
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct PrefaceFloodFigures {
    pub max_connections: usize,
    pub flood_connections: usize,
    pub header_read_timeout_ms: u64,
    /// Each normal request's latency, sent one after another once the flood is in place.
    pub normal_ms: Vec<f64>,
    pub normal_failures: Vec<String>,
    pub closed_by_origin: usize,
    pub panics: Vec<String>,
}

pub struct PrefaceFlood;

impl FaultCase for PrefaceFlood {
    type Figures = PrefaceFloodFigures;

    async fn run(&self, env: &Env<'_>) -> Result<PrefaceFloodFigures, Error> {
        raise_fd_limit()?;
        let spec = env.origin(
            "origin",
            &[
                ("MAX_CONNECTIONS", &FLOOD_MAX_CONNECTIONS.to_string()),
                (
                    "HEADER_READ_TIMEOUT_MS",
                    &FLOOD_HEADER_TIMEOUT_MS.to_string(),
                ),
            ],
        )?;
        let origin = spec.start_ready().await?;
        let mut figures = PrefaceFloodFigures {
            max_connections: FLOOD_MAX_CONNECTIONS,
            flood_connections: FLOOD_CONNECTIONS,
            header_read_timeout_ms: FLOOD_HEADER_TIMEOUT_MS,
            ..PrefaceFloodFigures::default()
        };
        let mut flood = Vec::with_capacity(FLOOD_CONNECTIONS);
        for i in 0..FLOOD_CONNECTIONS {
            // Connects complete in the kernel's backlog even when the origin is at its limit.
            let mut stream = TcpStream::connect(origin.addr())
                .await
                .map_err(|e| Error::io(format!("flood connect {i}"), e))?;
            let sent = if i % 2 == 0 { PREFACE } else { &PREFACE[..10] };
            stream
                .write_all(sent)
                .await
                .map_err(|e| Error::io("flood write", e))?;
            flood.push(stream);
        }
        for _ in 0..5 {
            let started = Instant::now();
            match probe::request(
                origin.addr(),
                "GET",
                "/api/counter",
                &[],
                Duration::from_secs(15),
            )
            .await
            {
                Ok(answer) if answer.status == 200 => figures.normal_ms.push(ms(started.elapsed())),
                Ok(answer) => figures.normal_failures.push(format!(
                    "{} {}",
                    answer.status,
                    answer.body.trim()
                )),
                Err(error) => figures.normal_failures.push(error.to_string()),
            }
        }
        figures.closed_by_origin = closed_within(&mut flood, Duration::from_secs(10)).await;
        drop(flood);
        figures.panics = super::stop(origin).await;
        Ok(figures)
    }

    fn judge(f: &PrefaceFloodFigures) -> Checks {
        let mut checks = Checks::default();
        let bound = (f.header_read_timeout_ms + 1000) as f64;
        let worst = f.normal_ms.iter().copied().fold(0.0, f64::max);
        checks.expect(
            "a normal client is served within HEADER_READ_TIMEOUT_MS + 1 s",
            f.normal_failures.is_empty() && !f.normal_ms.is_empty() && worst <= bound,
            format!(
                "slowest of {} requests {worst:.0} ms (bound {bound:.0} ms); failures {:?}",
                f.normal_ms.len(),
                f.normal_failures
            ),
        );
        checks.expect(
            "the origin closes every preface-only connection",
            f.closed_by_origin == f.flood_connections,
            format!(
                "{} of {} closed by the origin",
                f.closed_by_origin, f.flood_connections
            ),
        );
        checks.no_panic("no panic", &f.panics);
        checks
    }
}

/// The preface, `SETTINGS_INITIAL_WINDOW_SIZE = 0`, and `streams` requests for the page.
fn zero_window_attack(authority: &str, streams: u32) -> Vec<u8> {
    let mut bytes = PREFACE.to_vec();
    // SETTINGS (type 4): INITIAL_WINDOW_SIZE (id 4) = 0.
    frame(&mut bytes, 0x4, 0, 0, &[0, 4, 0, 0, 0, 0]);
    // HPACK: :method GET (static 2), :scheme http (6), :path / (4), :authority as a literal
    // without indexing (name index 1), so every block decodes on its own.
    let mut block = vec![0x82, 0x86, 0x84, 0x01, authority.len() as u8];
    block.extend_from_slice(authority.as_bytes());
    for i in 0..streams {
        // HEADERS (type 1), END_STREAM | END_HEADERS, on odd stream ids.
        frame(&mut bytes, 0x1, 0x5, 2 * i + 1, &block);
    }
    bytes
}

fn frame(out: &mut Vec<u8>, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
    let len = payload.len() as u32;
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.extend_from_slice(&[kind, flags]);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
}

/// `NORMAL_REQUESTS` GETs one after another, each on its own connection.
async fn normal_requests(addr: SocketAddr) -> (Latencies, u64) {
    let mut records = Vec::with_capacity(NORMAL_REQUESTS);
    let mut failures = 0;
    for _ in 0..NORMAL_REQUESTS {
        let started = Instant::now();
        match probe::request(addr, "GET", "/api/counter", &[], Duration::from_secs(10)).await {
            Ok(answer) if answer.status == 200 => records.push(started.elapsed()),
            _ => failures += 1,
        }
    }
    (Latencies::of_durations(records), failures)
}

/// How many of `streams` the peer closed within `timeout` (reading what it sent until EOF).
async fn closed_within(streams: &mut [TcpStream], timeout: Duration) -> usize {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut closed = 0;
    let mut buf = vec![0u8; 64 * 1024];
    for stream in streams.iter_mut() {
        loop {
            match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => {
                    closed += 1;
                    break;
                }
                Ok(Ok(_)) => continue,
                Err(_) => break,
            }
        }
    }
    closed
}

/// Waits until the process used under 10 ms of CPU in a 100 ms window (at most `limit`).
async fn until_idle(pid: u32, limit: Duration) -> Result<Duration, Error> {
    let started = Instant::now();
    let mut before = testkit::procfs::cpu_seconds(pid)?;
    // Clock ticks are 10 ms (USER_HZ = 100): under one tick per 100 ms is idle.
    while started.elapsed() < limit {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = testkit::procfs::cpu_seconds(pid)?;
        if now - before < 0.005 {
            return Ok(started.elapsed());
        }
        before = now;
    }
    Err(Error::Timeout(format!(
        "the origin was still busy {limit:?} after the attack was sent"
    )))
}

fn rss_of(pid: u32) -> Result<f64, Error> {
    Ok(testkit::procfs::status_bytes(pid, "VmRSS")? as f64 / (1024.0 * 1024.0))
}

/// The highest RSS seen over `window`, sampled every 50 ms.
async fn peak_rss(pid: u32, window: Duration) -> Result<f64, Error> {
    let until = Instant::now() + window;
    let mut peak = rss_of(pid)?;
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(50)).await;
        peak = peak.max(rss_of(pid)?);
    }
    Ok(peak)
}

/// The attackers need more sockets than the usual soft limit of 1,024.
fn raise_fd_limit() -> Result<(), Error> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return Err(Error::io("getrlimit", std::io::Error::last_os_error()));
        }
        let wanted = 8192.min(limit.rlim_max);
        if limit.rlim_cur < wanted {
            limit.rlim_cur = wanted;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(Error::io("setrlimit", std::io::Error::last_os_error()));
            }
        }
        if limit.rlim_cur < (FLOOD_CONNECTIONS + 256) as libc::rlim_t {
            return Err(Error::Setup(format!(
                "the open-file limit ({}) is too low for {FLOOD_CONNECTIONS} attack connections",
                limit.rlim_cur
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_attack_is_well_formed_http2() {
        let bytes = zero_window_attack("127.0.0.1:8080", 2);
        assert!(bytes.starts_with(PREFACE));
        let rest = &bytes[PREFACE.len()..];
        // SETTINGS: length 6, type 4, stream 0, INITIAL_WINDOW_SIZE = 0.
        assert_eq!(&rest[..9], &[0, 0, 6, 4, 0, 0, 0, 0, 0]);
        assert_eq!(&rest[9..15], &[0, 4, 0, 0, 0, 0]);
        // First HEADERS on stream 1 with END_STREAM|END_HEADERS.
        let headers = &rest[15..];
        assert_eq!(&headers[3..9], &[1, 5, 0, 0, 0, 1]);
    }

    #[test]
    fn judges_fail_each_broken_promise() {
        let good = ZeroWindowFigures {
            connections: 400,
            rss_baseline_mib: 10.0,
            rss_peak_mib: 60.0,
            rss_after_mib: 14.0,
            idle: Latencies {
                count: 200,
                p99_ms: 1.0,
                ..Latencies::default()
            },
            under_attack: Latencies {
                count: 200,
                p99_ms: 1.5,
                ..Latencies::default()
            },
            closed_by_origin: 400,
            latency_judged: true,
            ..ZeroWindowFigures::default()
        };
        crate::report::assert_each_break_fails::<ZeroWindowFigures>(
            || good.clone(),
            |f| ZeroWindow::judge(f).passed(),
            breaks![ZeroWindowFigures;
                "memory unbounded" => |f| f.rss_peak_mib = 500.0,
                "memory kept" => |f| f.rss_after_mib = 200.0,
                "stalled connections kept" => |f| f.closed_by_origin = 10,
                "normal clients slowed" => |f| f.under_attack.p99_ms = 9.0,
                "normal clients failed" => |f| f.normal_failures = 1,
            ],
        );
        let fast_run = ZeroWindowFigures {
            latency_judged: false,
            ..good.clone()
        };
        let mut slowed = fast_run.clone();
        slowed.under_attack.p99_ms = 9.0;
        assert!(
            ZeroWindow::judge(&slowed).passed(),
            "the test command does not judge p99"
        );
        let mut failed = fast_run;
        failed.normal_failures = 1;
        assert!(
            !ZeroWindow::judge(&failed).passed(),
            "failures count in every run"
        );
        let flood = PrefaceFloodFigures {
            flood_connections: 1200,
            header_read_timeout_ms: 1000,
            normal_ms: vec![5.0, 900.0],
            closed_by_origin: 1200,
            ..PrefaceFloodFigures::default()
        };
        assert!(PrefaceFlood::judge(&flood).passed());
        let mut slow = flood.clone();
        slow.normal_ms.push(2500.0);
        assert!(!PrefaceFlood::judge(&slow).passed());
        let mut held = flood.clone();
        held.closed_by_origin = 200;
        assert!(!PrefaceFlood::judge(&held).passed());
    }
}
