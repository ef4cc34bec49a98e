//! The two ways of applying load.
//!
//! - **Open loop** (`rate` set): requests are due at a constant rate whether or not earlier ones
//!   have been answered. A pacer thread releases each request at its intended time; an idle
//!   worker sends it. Latency runs from the *intended* time, so a server that stalls is charged
//!   for every request that queued behind the stall (no coordinated omission). A send later than
//!   `late_after` is counted late; requests still unsent when the run ends are counted unsent.
//! - **Closed loop**: each connection sends its next request as soon as the previous one is
//!   answered: the maximum throughput the server (and this machine) sustains.
//!
//! Both are bounded by time and, optionally, by a request count.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::Semaphore;

use crate::client::{Connection, Endpoint, Op, RequestError};
use crate::correctness::{self, WriteCheck, WriteLedger};
use crate::progress::Progress;
use crate::stats::{Interval, Recorded, Recorder, Sample};

/// After a failed connect in closed loop, wait this long before the next attempt, so an
/// unreachable server is not hammered with SYNs in a hot loop.
const RECONNECT_PAUSE: Duration = Duration::from_millis(20);
/// How often the pacer checks whether the last released requests have all been taken.
const PACER_IDLE_CHECK: Duration = Duration::from_millis(1);
/// The closing sentinel is retried this often (a loaded server may still shed it).
const SENTINEL_ATTEMPTS: u32 = 5;

/// What requests the run sends.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
#[serde(tag = "name", rename_all = "lowercase")]
pub enum Scenario {
    Read,
    Write,
    /// Reads and writes interleaved evenly; `write_ratio` of the requests are writes.
    Mixed {
        write_ratio: f64,
    },
}

impl Scenario {
    /// The operation of request number `i`: deterministic, evenly spread (no random source, so
    /// two runs send the same sequence).
    pub fn op(self, i: u64) -> Op {
        match self {
            Scenario::Read => Op::Read,
            Scenario::Write => Op::Write,
            Scenario::Mixed { write_ratio } => {
                let before = (i as f64 * write_ratio).floor();
                let after = ((i + 1) as f64 * write_ratio).floor();
                if after > before {
                    Op::Write
                } else {
                    Op::Read
                }
            }
        }
    }

    pub fn writes(self) -> bool {
        match self {
            Scenario::Read => false,
            Scenario::Write => true,
            Scenario::Mixed { write_ratio } => write_ratio > 0.0,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Scenario::Read => "read",
            Scenario::Write => "write",
            Scenario::Mixed { .. } => "mixed",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Mode {
    Closed,
    Open { rate: f64 },
}

/// Everything that shapes one run.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Plan {
    pub scenario: Scenario,
    pub mode: Mode,
    pub connections: usize,
    #[serde(serialize_with = "crate::report::serialize_secs")]
    pub warmup: Duration,
    #[serde(serialize_with = "crate::report::serialize_secs")]
    pub duration: Duration,
    pub max_requests: Option<u64>,
    #[serde(serialize_with = "crate::report::serialize_secs")]
    pub timeout: Duration,
    #[serde(serialize_with = "crate::report::serialize_secs")]
    pub late_after: Duration,
    /// The harness is the only writer to the counter (gaps in the values are judged).
    pub exclusive: bool,
}

/// One second of the run, for the progress line and the latency-over-time chart.
#[derive(Clone, Debug, serde::Serialize)]
pub struct TimelinePoint {
    /// Seconds since the load started, at the end of this interval.
    pub t_s: f64,
    pub warmup: bool,
    pub ok_per_s: f64,
    pub failed: u64,
    pub read: Option<LatencySummary>,
    pub write: Option<LatencySummary>,
}

#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct LatencySummary {
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl LatencySummary {
    fn of(interval: &Interval) -> Option<Self> {
        let h = &interval.latency;
        (!h.is_empty()).then(|| Self {
            p50_ms: h.value_at_quantile(0.50) as f64 / 1000.0,
            p90_ms: h.value_at_quantile(0.90) as f64 / 1000.0,
            p99_ms: h.value_at_quantile(0.99) as f64 / 1000.0,
            max_ms: h.max() as f64 / 1000.0,
        })
    }
}

/// A finished run, before it is judged against targets.
pub struct Outcome {
    pub started_at: SystemTime,
    pub recorded: Recorded,
    /// The measured window (after warm-up), shorter than planned when a request cap ended it.
    pub measured: Duration,
    pub timeline: Vec<TimelinePoint>,
    /// Open loop: requests due during the run that no connection was free to send before it
    /// ended. Counted as failures, never silently dropped.
    pub unsent: u64,
    pub writes: Option<WriteCheck>,
}

#[derive(Debug)]
pub enum RunError {
    Connect(usize),
    Sentinel(RequestError),
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunError::Connect(n) => write!(f, "could not open {n} connections to the target"),
            RunError::Sentinel(e) => write!(
                f,
                "the opening sentinel POST failed ({}): the write checks need one exact reading of the counter",
                e.label()
            ),
        }
    }
}

impl std::error::Error for RunError {}

struct Shared {
    endpoint: Arc<Endpoint>,
    plan: Plan,
    recorder: Recorder,
    ledger: WriteLedger,
    next: AtomicU64,
    start: Instant,
    end: Instant,
    cap: u64,
}

/// Runs `plan` against `endpoint`. Connections are opened before the clock starts.
pub async fn run(
    endpoint: Arc<Endpoint>,
    plan: Plan,
    progress: &Progress,
) -> Result<Outcome, RunError> {
    let mut connections = Vec::with_capacity(plan.connections);
    let opened = futures_join_all((0..plan.connections).map(|i| {
        let endpoint = Arc::clone(&endpoint);
        async move { endpoint.connect(i).await }
    }))
    .await;
    for connection in opened {
        match connection {
            Ok(c) => connections.push(c),
            Err(_) => return Err(RunError::Connect(plan.connections)),
        }
    }

    let before = if plan.scenario.writes() {
        Some(
            sentinel(&mut connections[0])
                .await
                .map_err(RunError::Sentinel)?,
        )
    } else {
        None
    };

    let started_at = SystemTime::now();
    let start = Instant::now();
    let measure_from = start + plan.warmup;
    let end = measure_from + plan.duration;
    let threads = tokio::runtime::Handle::current().metrics().num_workers();
    let shared = Arc::new(Shared {
        recorder: Recorder::new(
            plan.connections.min(threads * 4),
            measure_from,
            plan.late_after,
        ),
        ledger: WriteLedger::new(before.unwrap_or(i64::MIN)),
        next: AtomicU64::new(0),
        start,
        end,
        cap: plan.max_requests.unwrap_or(u64::MAX),
        endpoint: Arc::clone(&endpoint),
        plan: plan.clone(),
    });

    let pacer = match plan.mode {
        Mode::Open { rate } => Some(Pacer::start(Arc::clone(&shared), rate)),
        Mode::Closed => None,
    };
    let workers: Vec<_> = connections
        .into_iter()
        .enumerate()
        .map(|(index, connection)| {
            let shared = Arc::clone(&shared);
            let permits = pacer.as_ref().map(|p| Arc::clone(&p.permits));
            tokio::spawn(async move {
                match permits {
                    Some(permits) => open_loop_worker(&shared, index, connection, &permits).await,
                    None => closed_loop_worker(&shared, index, connection).await,
                }
            })
        })
        .collect();

    let mut timeline = Vec::new();
    let mut ticker = tokio::time::interval_at(
        (start + Duration::from_secs(1)).into(),
        Duration::from_secs(1),
    );
    let mut last = start;
    let all_done = async {
        for worker in workers {
            let _ = worker.await;
        }
    };
    tokio::pin!(all_done);
    loop {
        tokio::select! {
            () = &mut all_done => break,
            tick = ticker.tick() => {
                let now: Instant = tick.into();
                let point = timeline_point(&shared, &mut last, now, measure_from);
                progress.update(&point, now.saturating_duration_since(start), plan.warmup + plan.duration);
                timeline.push(point);
            }
        }
    }
    let finished = Instant::now();
    let point = timeline_point(&shared, &mut last, finished, measure_from);
    if point.read.is_some() || point.write.is_some() {
        timeline.push(point);
    }
    let unsent = pacer.map_or(0, |p| p.finish(&shared));

    let after = if let Some(before) = before {
        let mut after = None;
        for _ in 0..SENTINEL_ATTEMPTS {
            if let Ok(mut connection) = endpoint.connect(0).await {
                if let Ok(value) = sentinel(&mut connection).await {
                    after = Some(value);
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Some((before, after))
    } else {
        None
    };

    let shared = Arc::into_inner(shared).expect("workers and pacer are done");
    let measured = finished.min(end).saturating_duration_since(measure_from);
    let mut recorded = shared.recorder.finish();
    let values = std::mem::take(&mut recorded.writes.values);
    let writes = after.map(|(before, after)| {
        correctness::check(
            values,
            &shared.ledger,
            before,
            after,
            recorded.writes.uncertain,
            plan.exclusive,
        )
    });
    Ok(Outcome {
        started_at,
        recorded,
        measured,
        timeline,
        unsent,
        writes,
    })
}

/// One POST sent alone: its answer is an exact reading of the counter.
async fn sentinel(connection: &mut Connection) -> Result<i64, RequestError> {
    connection
        .exchange(Op::Write, Instant::now() + crate::client::DEFAULT_TIMEOUT)
        .await
}

fn timeline_point(
    shared: &Shared,
    last: &mut Instant,
    now: Instant,
    measure_from: Instant,
) -> TimelinePoint {
    let [read, write] = shared.recorder.harvest();
    let span = now.saturating_duration_since(*last).as_secs_f64().max(1e-3);
    let point = TimelinePoint {
        t_s: now.saturating_duration_since(shared.start).as_secs_f64(),
        warmup: now <= measure_from,
        ok_per_s: (read.ok + write.ok) as f64 / span,
        failed: read.failed + write.failed,
        read: LatencySummary::of(&read),
        write: LatencySummary::of(&write),
    };
    *last = now;
    point
}

/// Sends request `i` on worker `index`'s connection, reconnecting first when it was lost.
async fn send(
    shared: &Shared,
    index: usize,
    connection: &mut Option<Connection>,
    i: u64,
    intended: Instant,
) {
    let op = shared.plan.scenario.op(i);
    if connection.is_none() {
        match shared.endpoint.connect(index).await {
            Ok(c) => *connection = Some(c),
            Err(e) => {
                let now = Instant::now();
                shared.recorder.record(
                    index,
                    Sample {
                        op,
                        intended,
                        sent: now,
                        done: now,
                        outcome: Err(e),
                    },
                );
                return;
            }
        }
    }
    let Some(open) = connection.as_mut() else {
        return;
    };
    let floor = (op == Op::Write).then(|| shared.ledger.floor());
    let sent = Instant::now();
    let outcome = open.exchange(op, sent + shared.plan.timeout).await;
    let done = Instant::now();
    if let (Ok(value), Some(floor)) = (outcome, floor) {
        shared.ledger.acknowledge(floor, value);
    }
    // A complete answer (any status) leaves the connection usable unless the server closes it.
    let usable = matches!(
        outcome,
        Ok(_) | Err(RequestError::Status(_) | RequestError::BadBody)
    ) && open.is_reusable();
    if !usable {
        *connection = None;
    }
    shared.recorder.record(
        index,
        Sample {
            op,
            intended,
            sent,
            done,
            outcome,
        },
    );
}

async fn closed_loop_worker(shared: &Shared, index: usize, connection: Connection) {
    let mut connection = Some(connection);
    loop {
        let now = Instant::now();
        if now >= shared.end {
            return;
        }
        let i = shared.next.fetch_add(1, Ordering::Relaxed);
        if i >= shared.cap {
            return;
        }
        let was_connected = connection.is_some();
        send(shared, index, &mut connection, i, now).await;
        if !was_connected && connection.is_none() {
            tokio::time::sleep(RECONNECT_PAUSE).await;
        }
    }
}

async fn open_loop_worker(
    shared: &Shared,
    index: usize,
    connection: Connection,
    permits: &Semaphore,
) {
    let mut connection = Some(connection);
    let period = shared_period(shared);
    while let Ok(permit) = permits.acquire().await {
        permit.forget();
        let i = shared.next.fetch_add(1, Ordering::Relaxed);
        let intended = shared.start + period.at(i);
        send(shared, index, &mut connection, i, intended).await;
    }
}

/// The open-loop schedule: request `i` is due `i / rate` seconds after the start.
#[derive(Clone, Copy)]
pub struct Period {
    nanos: f64,
}

impl Period {
    pub fn of_rate(rate: f64) -> Self {
        Self { nanos: 1e9 / rate }
    }

    pub fn at(self, i: u64) -> Duration {
        Duration::from_nanos((i as f64 * self.nanos) as u64)
    }

    /// Requests due by `elapsed` (request 0 is due at once).
    pub fn due_by(self, elapsed: Duration) -> u64 {
        (elapsed.as_nanos() as f64 / self.nanos).floor() as u64 + 1
    }
}

fn shared_period(shared: &Shared) -> Period {
    match shared.plan.mode {
        Mode::Open { rate } => Period::of_rate(rate),
        Mode::Closed => unreachable!("closed-loop workers have no schedule"),
    }
}

/// Releases open-loop requests at their intended times from a dedicated thread: tokio's timer
/// has a 1 ms granularity, which would add up to a millisecond of our own lateness to every
/// sub-millisecond measurement. A sleeping OS thread wakes within tens of microseconds.
struct Pacer {
    permits: Arc<Semaphore>,
    released: Arc<AtomicU64>,
    done: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

impl Pacer {
    fn start(shared: Arc<Shared>, rate: f64) -> Self {
        let permits = Arc::new(Semaphore::new(0));
        let released = Arc::new(AtomicU64::new(0));
        let done = Arc::new(AtomicBool::new(false));
        let period = Period::of_rate(rate);
        let run_for = shared.end.saturating_duration_since(shared.start);
        let total = period
            .due_by(run_for.saturating_sub(Duration::from_nanos(1)))
            .min(shared.cap);
        let thread = {
            let (permits, released, done) = (
                Arc::clone(&permits),
                Arc::clone(&released),
                Arc::clone(&done),
            );
            std::thread::Builder::new()
                .name("loadtest-pacer".into())
                .spawn(move || {
                    let mut sent = 0u64;
                    while sent < total {
                        let now = Instant::now();
                        if now >= shared.end {
                            break;
                        }
                        let due = period.due_by(now - shared.start).min(total);
                        if due > sent {
                            permits.add_permits((due - sent) as usize);
                            sent = due;
                            released.store(sent, Ordering::Release);
                        }
                        if sent < total {
                            let next = shared.start + period.at(sent);
                            std::thread::sleep(next.saturating_duration_since(Instant::now()));
                        }
                    }
                    // Give the last requests until the end of the run to be taken.
                    while Instant::now() < shared.end && shared.next.load(Ordering::Acquire) < sent
                    {
                        std::thread::sleep(PACER_IDLE_CHECK);
                    }
                    permits.close();
                    done.store(true, Ordering::Release);
                })
                .expect("spawn the pacer thread")
        };
        Self {
            permits,
            released,
            done,
            thread,
        }
    }

    /// Requests released but never taken by a worker.
    fn finish(self, shared: &Shared) -> u64 {
        let _ = self.thread.join();
        debug_assert!(self.done.load(Ordering::Acquire));
        let released = self.released.load(Ordering::Acquire);
        released.saturating_sub(shared.next.load(Ordering::Acquire).min(released))
    }
}

/// Awaits every future concurrently (a tiny `join_all`, to avoid a dependency for one call).
async fn futures_join_all<F: std::future::Future + Send + 'static>(
    futures: impl Iterator<Item = F>,
) -> Vec<F::Output>
where
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for handle in handles {
        out.push(handle.await.expect("connect task does not panic"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixed_spreads_writes_evenly() {
        let scenario = Scenario::Mixed { write_ratio: 0.25 };
        let ops: Vec<Op> = (0..8).map(|i| scenario.op(i)).collect();
        let writes = ops.iter().filter(|&&o| o == Op::Write).count();
        assert_eq!(writes, 2);
        assert_eq!(ops[3], Op::Write);
        assert_eq!(ops[7], Op::Write);
        assert!((0..1000).all(|i| Scenario::Mixed { write_ratio: 0.0 }.op(i) == Op::Read));
        assert!((0..1000).all(|i| Scenario::Mixed { write_ratio: 1.0 }.op(i) == Op::Write));
    }

    #[test]
    fn the_schedule_is_by_intended_time() {
        let period = Period::of_rate(1000.0);
        assert_eq!(period.at(0), Duration::ZERO);
        assert_eq!(period.at(1500), Duration::from_millis(1500));
        assert_eq!(period.due_by(Duration::ZERO), 1);
        assert_eq!(period.due_by(Duration::from_micros(999)), 1);
        assert_eq!(period.due_by(Duration::from_millis(1)), 2);
        // A run of exactly 2 s at 1000/s schedules 2000 requests (0 … 1999 ms).
        assert_eq!(
            period.due_by(Duration::from_secs(2) - Duration::from_nanos(1)),
            2000
        );
    }
}
