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
//! - **Ramp** (`stages`): open loop whose rate moves linearly from one stage's target to the
//!   next (k6's ramping arrival rate), starting from 0.
//!
//! Both are bounded by time and, optionally, by a request count, and can be stopped early
//! (Ctrl-C): sending stops at once, answers in flight get a bounded grace, and the run still
//! produces its result, marked interrupted.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{oneshot, Notify, Semaphore};

use crate::client::{ConnectError, Connection, Endpoint, Op, RequestError};
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
/// After a stop, answers already in flight get at most this long (or the request timeout, if
/// shorter) before they are abandoned: long enough for a healthy server, short enough that a
/// person who pressed Ctrl-C is not kept waiting on a hung one.
const IN_FLIGHT_GRACE: Duration = Duration::from_secs(2);
/// The last interval of the timeline is charted only when it is (nearly) a whole second: the
/// run's end races the one-second ticker by a few milliseconds.
const WHOLE_SECOND: Duration = Duration::from_millis(900);

/// Asks a run to stop early (Ctrl-C). Cloning shares the same signal.
#[derive(Clone, Default)]
pub struct Stop {
    inner: Arc<(AtomicBool, Notify)>,
}

impl Stop {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn trigger(&self) {
        self.inner.0.store(true, Ordering::Release);
        self.inner.1.notify_waiters();
    }

    pub fn is_triggered(&self) -> bool {
        self.inner.0.load(Ordering::Acquire)
    }

    /// Resolves once `trigger` was called (at once if it already was).
    pub async fn triggered(&self) {
        let notified = self.inner.1.notified();
        tokio::pin!(notified);
        // Registered before the check, so a trigger between the two is not missed.
        notified.as_mut().enable();
        if !self.is_triggered() {
            notified.await;
        }
    }
}

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

#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Mode {
    Closed,
    Open {
        rate: f64,
    },
    /// Open loop through `stages`; the plan's duration is their sum and there is no warm-up.
    Ramp {
        stages: Vec<Stage>,
    },
}

/// One stage of a ramp: over `duration`, the rate moves linearly to `target` per second.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct Stage {
    #[serde(serialize_with = "crate::report::serialize_secs")]
    pub duration: Duration,
    pub target: f64,
}

impl Stage {
    /// `10s:1000,30s:5000,10s:0`.
    pub fn parse_list(text: &str) -> Result<Vec<Stage>, String> {
        let stages = text
            .split(',')
            .map(|part| {
                let (duration, target) = part
                    .split_once(':')
                    .ok_or_else(|| format!("{part:?}: expected DURATION:RATE, e.g. 10s:1000"))?;
                let duration = crate::cli::duration(duration)?;
                let target: f64 = target
                    .trim()
                    .parse()
                    .map_err(|_| format!("{part:?}: {target:?} is not a rate"))?;
                if !(target >= 0.0 && target.is_finite()) || duration.is_zero() {
                    return Err(format!(
                        "{part:?}: needs a positive duration and a rate ≥ 0"
                    ));
                }
                Ok(Stage { duration, target })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if stages.iter().all(|s| s.target == 0.0) {
            return Err("every stage has rate 0: nothing would be sent".into());
        }
        Ok(stages)
    }
}

impl Mode {
    /// The schedule of intended send times, for the open-loop modes.
    pub fn schedule(&self) -> Option<Schedule> {
        match self {
            Mode::Closed => None,
            Mode::Open { rate } => Some(Schedule::Constant(Period::of_rate(*rate))),
            Mode::Ramp { stages } => Some(Schedule::Ramp(stages.clone())),
        }
    }
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

/// One second of the run, for the progress line and the charts over time. The warm-up is
/// included; a trailing interval shorter than a second is not (it would plunge every line).
#[derive(Clone, Debug, serde::Serialize)]
pub struct TimelinePoint {
    /// Seconds since the load started, at the end of this interval.
    pub t_s: f64,
    pub warmup: bool,
    /// Successful answers in this interval, and per second.
    pub ok: u64,
    pub ok_per_s: f64,
    /// Failed requests per second (errors and error statuses; in the last interval also the
    /// requests abandoned at a stop and those never sent).
    pub errors_per_s: f64,
    /// Failed requests in this interval (the last one includes abandoned and unsent ones).
    pub failed: u64,
    /// Requests sent and not yet answered at the end of the interval.
    pub in_flight: u64,
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
    /// How long load was applied, warm-up included (up to the stop, when there was one).
    pub loaded: Duration,
    pub timeline: Vec<TimelinePoint>,
    /// Open loop: requests due during the run that no connection was free to send before it
    /// ended. Counted as failures, never silently dropped.
    pub unsent: u64,
    pub writes: Option<WriteCheck>,
    /// Stopped early (Ctrl-C): the numbers cover the run up to the stop.
    pub interrupted: bool,
    /// Requests still unanswered when the grace after a stop ran out: not counted as answers
    /// or errors; writes among them count as outcome unknown for the write checks.
    pub abandoned: u64,
}

#[derive(Debug)]
pub enum RunError {
    Connect {
        wanted: usize,
        failed: usize,
        first: ConnectError,
    },
    Sentinel(RequestError),
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunError::Connect {
                wanted,
                failed,
                first,
            } => {
                write!(
                    f,
                    "could not open connections to the target ({failed} of {wanted} failed; first: {first})"
                )?;
                let cause = first.cause.to_lowercase();
                let hint = if cause.contains("refused") {
                    "nothing is listening there: is the server running, and are the host and port right?"
                } else if cause.contains("timed out") {
                    "no answer to the connection attempt: a firewall, or the wrong host?"
                } else if cause.contains("too many open files") {
                    "this process ran out of file descriptors: raise `ulimit -n` or use fewer --connections"
                } else if cause.contains("tls") {
                    "the TLS handshake failed: is it an https URL for an http server, or a certificate this machine does not trust?"
                } else {
                    ""
                };
                if !hint.is_empty() {
                    write!(f, ": {hint}")?;
                }
                Ok(())
            }
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
    stop: Stop,
    /// Requests sent and not yet recorded, per operation.
    in_flight: [AtomicU64; 2],
}

impl Shared {
    fn in_flight(&self) -> u64 {
        self.in_flight
            .iter()
            .map(|n| n.load(Ordering::Relaxed))
            .sum()
    }
}

/// Runs `plan` against `endpoint` to its end. Connections are opened before the clock starts.
pub async fn run(
    endpoint: Arc<Endpoint>,
    plan: Plan,
    progress: &Progress,
) -> Result<Outcome, RunError> {
    run_until(endpoint, plan, progress, &Stop::new()).await
}

/// As `run`, ending early (with a partial outcome) when `stop` is triggered.
pub async fn run_until(
    endpoint: Arc<Endpoint>,
    plan: Plan,
    progress: &Progress,
    stop: &Stop,
) -> Result<Outcome, RunError> {
    let threads = tokio::runtime::Handle::current()
        .metrics()
        .num_workers()
        .clamp(1, plan.connections.max(1));
    let mut load = LoadThreads::start(&endpoint, plan.connections, threads);
    let mut failures = load.opened().await;
    if !failures.is_empty() {
        load.cancel().await;
        failures.sort_by_key(|(index, _)| *index);
        let failed = failures.len();
        let (_, first) = failures.swap_remove(0);
        return Err(RunError::Connect {
            wanted: plan.connections,
            failed,
            first,
        });
    }

    let before = if plan.scenario.writes() {
        // On a connection of its own: the load connections belong to the load threads.
        let opening = async {
            let mut connection = endpoint.connect(0).await?;
            sentinel(&mut connection).await
        };
        match opening.await {
            Ok(value) => Some(value),
            Err(e) => {
                load.cancel().await;
                return Err(RunError::Sentinel(e));
            }
        }
    } else {
        None
    };

    let started_at = SystemTime::now();
    let start = Instant::now();
    let measure_from = start + plan.warmup;
    let end = measure_from + plan.duration;
    // The ramp's schedule, like its stages, runs from the start (a ramp has no warm-up).
    let stage_ends = match &plan.mode {
        Mode::Ramp { stages } => stages
            .iter()
            .scan(start, |at, stage| {
                *at += stage.duration;
                Some(*at)
            })
            .collect(),
        _ => Vec::new(),
    };
    let shared = Arc::new(Shared {
        recorder: Recorder::new(
            plan.connections.min(threads * 4),
            measure_from,
            plan.mode.schedule().map(|_| plan.late_after),
            stage_ends,
        ),
        stop: stop.clone(),
        in_flight: [AtomicU64::new(0), AtomicU64::new(0)],
        ledger: WriteLedger::new(before.unwrap_or(i64::MIN)),
        next: AtomicU64::new(0),
        start,
        end,
        cap: plan.max_requests.unwrap_or(u64::MAX),
        endpoint: Arc::clone(&endpoint),
        plan: plan.clone(),
    });

    let pacer = plan
        .mode
        .schedule()
        .map(|schedule| Pacer::start(Arc::clone(&shared), schedule));
    load.go(&shared, pacer.as_ref().map(|p| Arc::clone(&p.permits)));

    let mut timeline = Vec::new();
    let mut ticker = tokio::time::interval_at(
        (start + Duration::from_secs(1)).into(),
        Duration::from_secs(1),
    );
    let mut last = start;
    let mut so_far = (0u64, 0u64);
    let all_done = load.done();
    tokio::pin!(all_done);
    let mut stopped_at: Option<Instant> = None;
    let grace = plan.timeout.min(IN_FLIGHT_GRACE);
    loop {
        let grace_over = async {
            match stopped_at {
                Some(at) => tokio::time::sleep_until((at + grace).into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = &mut all_done => break,
            () = stop.triggered(), if stopped_at.is_none() => {
                stopped_at = Some(Instant::now());
                // Wake workers waiting for a permit; closed-loop ones check the flag.
                if let Some(p) = &pacer {
                    p.permits.close();
                }
            }
            () = grace_over => {
                load.abort.trigger();
                (&mut all_done).await;
                break;
            }
            tick = ticker.tick() => {
                let now: Instant = tick.into();
                let point = timeline_point(&shared, &mut last, now, measure_from);
                so_far.0 += point.ok;
                so_far.1 += point.failed;
                progress.update(&point, now.saturating_duration_since(start), plan.warmup + plan.duration, so_far);
                timeline.push(point);
            }
        }
    }
    let finished = Instant::now();
    load.join().await;
    let unsent = pacer.map_or(0, |p| p.finish(&shared));
    let abandoned_writes = shared.in_flight[Op::Write.index()].load(Ordering::Acquire);
    let abandoned = shared.in_flight();
    let last_tick = last;
    let mut point = timeline_point(&shared, &mut last, finished, measure_from);
    // Requests abandoned at a stop or never sent fail at the end: the chart shows them there
    // (over at least a second, the unit of its rates), as the verdict counts them.
    let span = finished.saturating_duration_since(last_tick);
    let unfinished = abandoned + unsent;
    if unfinished > 0 {
        point.failed += unfinished;
        point.errors_per_s = point.failed as f64 / span.as_secs_f64().max(1.0);
    }
    // A trailing part-second of answers would plunge every line of the charts; its requests
    // are in the totals all the same. A run shorter than a second keeps it, or it would chart
    // nothing; so does one whose end failed requests.
    let has_answers = point.read.is_some() || point.write.is_some();
    if (has_answers && (timeline.is_empty() || span >= WHOLE_SECOND)) || unfinished > 0 {
        timeline.push(point);
    }

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
    // The load ended at the stop, not when the last answer came back.
    let measured = stopped_at
        .unwrap_or(finished)
        .min(end)
        .saturating_duration_since(measure_from);
    let mut recorded = shared.recorder.finish();
    recorded.writes.uncertain += abandoned_writes;
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
        interrupted: stopped_at.is_some(),
        abandoned,
        loaded: stopped_at
            .unwrap_or(finished)
            .min(end)
            .saturating_duration_since(start),
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
    let failed = read.failed + write.failed;
    let point = TimelinePoint {
        t_s: now.saturating_duration_since(shared.start).as_secs_f64(),
        warmup: now <= measure_from,
        ok: read.ok + write.ok,
        ok_per_s: (read.ok + write.ok) as f64 / span,
        errors_per_s: failed as f64 / span,
        failed,
        in_flight: shared.in_flight(),
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
                        status: None,
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
    shared.in_flight[op.index()].fetch_add(1, Ordering::Relaxed);
    let sent = Instant::now();
    let outcome = open.exchange(op, sent + shared.plan.timeout).await;
    let done = Instant::now();
    let status = match outcome {
        Ok(_) | Err(RequestError::BadBody) => Some(open.last_status()),
        Err(RequestError::Status(s)) => Some(s),
        Err(_) => None,
    };
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
            status,
        },
    );
    // After recording: a request abandoned at a stop is one still counted here.
    shared.in_flight[op.index()].fetch_sub(1, Ordering::Relaxed);
}

async fn closed_loop_worker(shared: &Shared, index: usize, connection: Connection) {
    let mut connection = Some(connection);
    loop {
        let now = Instant::now();
        if now >= shared.end || shared.stop.is_triggered() {
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
    let schedule = shared
        .plan
        .mode
        .schedule()
        .expect("open-loop workers have a schedule");
    while let Ok(permit) = permits.acquire().await {
        permit.forget();
        let i = shared.next.fetch_add(1, Ordering::Relaxed);
        let intended = shared.start + schedule.at(i);
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

/// When each open-loop request is due: at a constant rate, or along a ramp.
#[derive(Clone)]
pub enum Schedule {
    Constant(Period),
    Ramp(Vec<Stage>),
}

impl Schedule {
    /// Requests due by `elapsed` since the start.
    pub fn due_by(&self, elapsed: Duration) -> u64 {
        match self {
            Schedule::Constant(period) => period.due_by(elapsed),
            Schedule::Ramp(stages) => ramp_count(stages, elapsed.as_secs_f64()).floor() as u64 + 1,
        }
    }

    /// When request `i` is due (request 0 at once).
    pub fn at(&self, i: u64) -> Duration {
        match self {
            Schedule::Constant(period) => period.at(i),
            Schedule::Ramp(stages) => Duration::from_secs_f64(ramp_time(stages, i as f64)),
        }
    }
}

/// Requests due in the first `t` seconds of a ramp: the integral of its rate, which moves
/// linearly from 0 to the first stage's target, then from each target to the next.
fn ramp_count(stages: &[Stage], t: f64) -> f64 {
    let (mut from, mut at, mut count) = (0.0, 0.0, 0.0);
    for stage in stages {
        let d = stage.duration.as_secs_f64();
        let s = (t - at).clamp(0.0, d);
        count += from * s + (stage.target - from) * s * s / (2.0 * d);
        if t <= at + d {
            return count;
        }
        (from, at) = (stage.target, at + d);
    }
    count
}

/// The time at which a ramp's count reaches `n`: the inverse of `ramp_count` (past the end of
/// the ramp when it never does).
fn ramp_time(stages: &[Stage], n: f64) -> f64 {
    let (mut from, mut at, mut count) = (0.0f64, 0.0, 0.0);
    for stage in stages {
        let d = stage.duration.as_secs_f64();
        let slope = (stage.target - from) / d;
        let in_stage = from * d + slope * d * d / 2.0;
        if count + in_stage >= n {
            let m = n - count;
            // The root of slope/2·s² + from·s − m = 0, in the form that stays exact when the
            // slope is 0 or negative.
            let s = 2.0 * m / (from + (from * from + 2.0 * slope * m).max(0.0).sqrt()).max(1e-12);
            return at + s.min(d);
        }
        (from, at, count) = (stage.target, at + d, count + in_stage);
    }
    at + 1.0
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
    fn start(shared: Arc<Shared>, period: Schedule) -> Self {
        let permits = Arc::new(Semaphore::new(0));
        let released = Arc::new(AtomicU64::new(0));
        let done = Arc::new(AtomicBool::new(false));
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
                        if now >= shared.end || shared.stop.is_triggered() {
                            break;
                        }
                        let due = period.due_by(now - shared.start).min(total);
                        if due > sent {
                            permits.add_permits((due - sent) as usize);
                            sent = due;
                            released.store(sent, Ordering::Release);
                        }
                        if sent < total {
                            // Capped so that a stop, or a ramp stage at rate 0, is noticed.
                            let next = (shared.start + period.at(sent))
                                .min(Instant::now() + Duration::from_millis(50));
                            std::thread::sleep(next.saturating_duration_since(Instant::now()));
                        }
                    }
                    // Give the last requests until the end of the run to be taken.
                    while Instant::now() < shared.end
                        && !shared.stop.is_triggered()
                        && shared.next.load(Ordering::Acquire) < sent
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

/// The threads that apply the load. Each has a current-thread runtime of its own and its share
/// of the connections (connection `i` on thread `i % threads`), as wrk's threads have their own
/// event loops: a connection's task is never handed between threads, and no thread wakes
/// another. Against the bare hyper server (256 connections, 2 threads, interleaved runs) this
/// sent 10–15% more requests per second than one shared multi-thread runtime did, with less CPU
/// per request in the client and in the server.
struct LoadThreads {
    threads: Vec<std::thread::JoinHandle<()>>,
    opened: Vec<oneshot::Receiver<Vec<(usize, ConnectError)>>>,
    go: Vec<oneshot::Sender<Go>>,
    done: Vec<oneshot::Receiver<()>>,
    /// Abandons the requests still in flight (after a stop's grace).
    abort: Stop,
}

/// What a load thread needs to start its workers.
struct Go {
    shared: Arc<Shared>,
    /// Open loop: the pacer's permits.
    permits: Option<Arc<Semaphore>>,
}

impl LoadThreads {
    /// Starts the threads; each opens its connections at once and waits for `go`.
    fn start(endpoint: &Arc<Endpoint>, connections: usize, threads: usize) -> Self {
        let abort = Stop::new();
        let mut load = Self {
            threads: Vec::with_capacity(threads),
            opened: Vec::with_capacity(threads),
            go: Vec::with_capacity(threads),
            done: Vec::with_capacity(threads),
            abort: abort.clone(),
        };
        for t in 0..threads {
            let (opened_tx, opened_rx) = oneshot::channel();
            let (go_tx, go_rx) = oneshot::channel();
            let (done_tx, done_rx) = oneshot::channel();
            let indices: Vec<usize> = (t..connections).step_by(threads).collect();
            let (endpoint, abort) = (Arc::clone(endpoint), abort.clone());
            let thread = std::thread::Builder::new()
                .name(format!("loadtest-load-{t}"))
                .spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("a load thread's runtime");
                    runtime.block_on(load_thread(endpoint, indices, opened_tx, go_rx, abort));
                    // Dropping the runtime drops aborted workers, and with them their share of
                    // the run's state, before the run reads it.
                    drop(runtime);
                    let _ = done_tx.send(());
                })
                .expect("spawn a load thread");
            load.threads.push(thread);
            load.opened.push(opened_rx);
            load.go.push(go_tx);
            load.done.push(done_rx);
        }
        load
    }

    /// The connections that could not be opened, by index.
    async fn opened(&mut self) -> Vec<(usize, ConnectError)> {
        let mut failures = Vec::new();
        for opened in self.opened.drain(..) {
            failures.extend(opened.await.expect("a load thread reports its connections"));
        }
        failures
    }

    /// Starts every thread's workers.
    fn go(&mut self, shared: &Arc<Shared>, permits: Option<Arc<Semaphore>>) {
        for go in self.go.drain(..) {
            let _ = go.send(Go {
                shared: Arc::clone(shared),
                permits: permits.clone(),
            });
        }
    }

    /// Resolves once every thread's workers have finished (or been abandoned).
    fn done(&mut self) -> impl std::future::Future<Output = ()> {
        let done = std::mem::take(&mut self.done);
        async move {
            for done in done {
                let _ = done.await;
            }
        }
    }

    /// Closes the connections without sending anything and ends the threads.
    async fn cancel(mut self) {
        self.go.clear();
        self.join().await;
    }

    async fn join(&mut self) {
        let threads = std::mem::take(&mut self.threads);
        tokio::task::spawn_blocking(move || {
            for thread in threads {
                let _ = thread.join();
            }
        })
        .await
        .expect("joining the load threads does not panic");
    }
}

/// One load thread: opens its connections, reports the failures, and once told to go runs one
/// worker per connection until they finish or `abort` abandons them.
async fn load_thread(
    endpoint: Arc<Endpoint>,
    indices: Vec<usize>,
    opened: oneshot::Sender<Vec<(usize, ConnectError)>>,
    go: oneshot::Receiver<Go>,
    abort: Stop,
) {
    let opening: Vec<_> = indices
        .into_iter()
        .map(|index| {
            let endpoint = Arc::clone(&endpoint);
            tokio::spawn(async move { (index, endpoint.open(index).await) })
        })
        .collect();
    let mut connections = Vec::with_capacity(opening.len());
    let mut failures = Vec::new();
    for task in opening {
        match task.await.expect("connect task does not panic") {
            (index, Ok(connection)) => connections.push((index, connection)),
            (index, Err(e)) => failures.push((index, e)),
        }
    }
    let _ = opened.send(failures);
    // No go: the run was cancelled and the connections close unused.
    let Ok(Go { shared, permits }) = go.await else {
        return;
    };
    let workers: Vec<_> = connections
        .into_iter()
        .map(|(index, connection)| {
            let shared = Arc::clone(&shared);
            let permits = permits.clone();
            tokio::spawn(async move {
                match permits {
                    Some(permits) => open_loop_worker(&shared, index, connection, &permits).await,
                    None => closed_loop_worker(&shared, index, connection).await,
                }
            })
        })
        .collect();
    drop(shared);
    let aborts: Vec<_> = workers.iter().map(|w| w.abort_handle()).collect();
    let all_done = async {
        for worker in workers {
            let _ = worker.await;
        }
    };
    tokio::select! {
        () = all_done => {}
        () = abort.triggered() => {
            for worker in &aborts {
                worker.abort();
            }
        }
    }
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

    #[test]
    fn a_ramp_schedules_the_area_under_its_rate() {
        let stages = Stage::parse_list("10s:1000,30s:1000,10s:0").unwrap();
        let ramp = Schedule::Ramp(stages);
        // Up to 1000/s over 10 s: 5000 requests; then 30 s flat: 30000; then down: 5000.
        assert_eq!(ramp.due_by(Duration::from_secs(10)), 5001);
        assert_eq!(ramp.due_by(Duration::from_secs(40)), 35001);
        assert_eq!(ramp.due_by(Duration::from_secs(50)), 40001);
        assert_eq!(ramp.due_by(Duration::from_secs(60)), 40001);
        for i in [0u64, 1, 4999, 5000, 20000, 35000, 39999] {
            let t = ramp.at(i);
            assert_eq!(
                ramp.due_by(t + Duration::from_micros(1)),
                i + 1,
                "request {i} at {t:?}"
            );
        }
        // Halfway up the first ramp (rate 500/s) requests are 2 ms apart.
        let gap = ramp.at(1251) - ramp.at(1250);
        assert!((gap.as_secs_f64() - 0.002).abs() < 1e-4, "{gap:?}");
    }

    #[test]
    fn stages_parse_and_reject_nonsense() {
        assert_eq!(
            Stage::parse_list("10s:1000,500ms:0").unwrap(),
            vec![
                Stage {
                    duration: Duration::from_secs(10),
                    target: 1000.0
                },
                Stage {
                    duration: Duration::from_millis(500),
                    target: 0.0
                },
            ]
        );
        for bad in ["10s", "10:5", "0s:5", "1s:-1", "1s:0", "1s:x"] {
            assert!(Stage::parse_list(bad).is_err(), "{bad}");
        }
    }
}
