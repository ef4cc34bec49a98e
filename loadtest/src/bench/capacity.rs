//! The capacity runs of `make bench` (docs/capacity.md): the write path with a database round
//! trip between origin and PostgreSQL (the latency proxy of `testkit`, one per round trip), and
//! several origins writing the same row, with the row-lock waits sampled from PostgreSQL.
//!
//! Each row is one run (no rounds: a sweep of a few minutes already); the side-by-side part of
//! `make bench` measures the noise of this machine and the tables say so.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use testkit::origin::Origin;
use testkit::proxy::{LatencyProxy, ProxyConfig};

use super::commit::{self, CommitTime, IdleUpdates};
use super::cpu::{self, Client, Cost, Watched};
use super::{
    closed, harness_on, latency_run, open, pinned, ratio, start_origin, thousands, BenchArgs,
    Claim, Comparison, Counters, Ledger, OpenLoop, MAX_BATCH,
};
use crate::client::Endpoint;
use crate::drive::Scenario;
use crate::report::RunResult;
use crate::SetupError;

/// How often the lock sampler looks at pg_stat_activity: often enough to see waits of a
/// millisecond or two in aggregate, rarely enough to cost PostgreSQL nothing measurable.
const SAMPLE_EVERY: Duration = Duration::from_millis(5);

/// The two write paths compared on every row.
/// The write paths measured: name, `MAX_BATCH`, and whether every POST carries an
/// `Idempotency-Key` (the page's clicks do: one transaction per batch that also stores the keys).
const MODES: [(&str, usize, bool); 3] = [
    ("batched", MAX_BATCH, false),
    ("MAX_BATCH=1", 1, false),
    ("keyed", MAX_BATCH, true),
];

/// A latency proxy on its own thread and runtime, so the harness's busy workers do not delay
/// the delayed bytes further; its thread id lets the runs charge its CPU to it, not the client.
struct ProxyThread {
    addr: SocketAddr,
    thread_id: u32,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ProxyThread {
    fn start(upstream: SocketAddr, one_way: Duration) -> Result<Self, SetupError> {
        let (ready, started) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(e) => return drop(ready.send(Err(e.to_string()))),
            };
            let thread_id = match testkit::procfs::current_thread_id() {
                Ok(id) => id,
                Err(e) => return drop(ready.send(Err(e.to_string()))),
            };
            runtime.block_on(async move {
                match LatencyProxy::start(ProxyConfig::new(upstream, one_way)).await {
                    Ok(proxy) => {
                        let _ = ready.send(Ok((proxy.addr(), thread_id)));
                        // Sender dropped or signalled: either way the bench is done with it.
                        let _ = stopped.await;
                    }
                    Err(e) => drop(ready.send(Err(e.to_string()))),
                }
            });
        });
        let (addr, thread_id) = started
            .recv()
            .map_err(|_| SetupError("the latency proxy's thread died".into()))?
            .map_err(|e| SetupError(format!("latency proxy: {e}")))?;
        Ok(Self {
            addr,
            thread_id,
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for ProxyThread {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// `postgres://user@host:port/db?…` → (`host:port` resolved, the URL with `addr` in its place).
pub fn reroute(url: &str, addr: SocketAddr) -> Result<(SocketAddr, String), String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| format!("{url}: not a URL"))?;
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let (user, host_port) = match authority.rsplit_once('@') {
        Some((user, host_port)) => (format!("{user}@"), host_port),
        None => (String::new(), authority),
    };
    let host_port = if host_port.contains(':') {
        host_port.to_string()
    } else {
        format!("{host_port}:5432")
    };
    let upstream = host_port
        .to_socket_addrs()
        .map_err(|e| format!("{host_port}: {e}"))?
        .next()
        .ok_or_else(|| format!("{host_port}: no address"))?;
    Ok((upstream, format!("{scheme}://{user}{addr}{tail}")))
}

/// What one closed-loop write run did to the database, and what it cost the machine.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct WriteLoad {
    /// Successful POSTs per second (the harness's count).
    pub increments_per_s: f64,
    /// Failed requests of the run (a rate of the others is still reported).
    pub failed: u64,
    pub statements_per_s: Option<f64>,
    pub average_batch: Option<f64>,
    /// Mean time of one `add` statement as the origin saw it (round trip, lock, commit).
    pub statement_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    /// CPU per committed increment (warm-up included, like the count): origins, PostgreSQL,
    /// the harness, the latency proxy.
    pub cpu: Option<Cost>,
}

fn write_load(result: &RunResult, done: &Counters, cost: Option<Cost>) -> WriteLoad {
    let per_increment = ratio(done.statements, done.increments);
    WriteLoad {
        increments_per_s: result.total.rate,
        failed: result.total.failed,
        statements_per_s: per_increment.map(|p| result.total.rate * p),
        average_batch: ratio(done.increments, done.statements),
        statement_ms: ratio(done.add_seconds * 1000.0, done.statements),
        p99_ms: crate::report::data(result.total.latency_ms.p99),
        cpu: cost,
    }
}

/// Runs the closed write loop of a capacity row on `origins`, with CPU read around it.
async fn closed_write(
    args: &BenchArgs,
    origins: &[Origin],
    proxy: &ProxyThread,
    (max_batch, keyed): (usize, bool),
    ledger: &mut Ledger,
    during: Option<LockSampler>,
) -> Result<(WriteLoad, Option<LockSamples>), SetupError> {
    let refs: Vec<&Origin> = origins.iter().collect();
    let mut watched = Watched::new(
        origins.iter().map(|o| o.pid).collect(),
        args.pg_data_dir.as_deref(),
    )?;
    watched.proxy_thread = Some(proxy.thread_id);
    let before = (watched.snapshot()?, Counters::read(&refs).await?);
    let result = harness_on(
        endpoint(origins, keyed).await?,
        closed_plan(args, max_batch),
    )
    .await?;
    let after = (watched.snapshot()?, Counters::read(&refs).await?);
    let locks = match during {
        Some(sampler) => Some(sampler.finish().await?),
        None => None,
    };
    ledger.record(&result);
    let done = after.1.since(&before.1);
    let cost = Cost::of(&before.0, &after.0, done.increments, Client::Harness);
    Ok((write_load(&result, &done, cost), locks))
}

#[derive(Clone, Debug, Serialize)]
pub struct RttRow {
    pub rtt_ms: f64,
    pub mode: &'static str,
    pub closed: WriteLoad,
    pub open: OpenLoop,
}

#[derive(Clone, Copy, Debug, Serialize)]
pub struct ProxiedIdle {
    pub rtt_ms: f64,
    pub updates: IdleUpdates,
}

#[derive(Clone, Debug, Serialize)]
pub struct OriginsRow {
    pub origins: usize,
    pub rtt_ms: f64,
    pub mode: &'static str,
    pub closed: WriteLoad,
    /// Mean number of backends waiting for a lock (= backend-seconds of waiting per second).
    pub lock_waiters_mean: Option<f64>,
    /// Share of samples in which at least one backend waited for a lock.
    pub lock_wait_share: Option<f64>,
    /// Lock wait per statement (Little's law: mean waiters ÷ statements per second).
    pub lock_wait_ms_per_statement: Option<f64>,
    pub lock_samples: u64,
}

/// Everything the capacity runs found, for bench.json and the tables.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Capacity {
    /// Connections of the batched closed loops (MAX_BATCH=1 runs with the side-by-side count).
    pub batched_connections: usize,
    /// Idle `UPDATE`s through the proxy before each round trip's runs: the round trip and the
    /// commit as the origins face them (the proxy's own forwarding included).
    pub idle: Vec<ProxiedIdle>,
    pub rtt: Vec<RttRow>,
    pub origins: Vec<OriginsRow>,
    pub write_runs: usize,
    pub increments_checked: u64,
    pub violations: Vec<String>,
}

/// Why a comparison of two closed-loop rows is no measurement: failed requests in either.
fn failures(rows: &[&WriteLoad]) -> Option<String> {
    let failed: u64 = rows.iter().map(|r| r.failed).sum();
    (failed > 0).then(|| format!("{failed} failed requests in the runs compared"))
}

/// What the CPU costs per increment predict for `new ÷ old` when both runs get the same cores:
/// the inverse ratio of their costs; and how far the measurement is from it.
fn cpu_prediction(old: &WriteLoad, new: &WriteLoad, measured: Option<f64>) -> Option<String> {
    let (o, n) = (old.cpu?, new.cpu?);
    let predicted = o.total_us / n.total_us;
    let part = |c: &Cost| {
        format!(
            "origins {} + PostgreSQL {} + client {}{}",
            cpu::us(Some(c.server_us)),
            cpu::us(c.postgres_us),
            cpu::us(Some(c.client_us)),
            if c.proxy_us > 0.0 {
                format!(" + proxy {}", cpu::us(Some(c.proxy_us)))
            } else {
                String::new()
            }
        )
    };
    Some(format!(
        "CPU per increment {:.1} µs ({}; cores {:.0}% busy) → {:.1} µs ({}; {:.0}% busy) predicts {predicted:.2}×{}",
        o.total_us,
        part(&o),
        o.busy_share * 100.0,
        n.total_us,
        part(&n),
        n.busy_share * 100.0,
        measured.map_or(String::new(), |m| format!(
            ", measured {m:.2}× ({:+.0}%)",
            (m / predicted - 1.0) * 100.0
        ))
    ))
}

/// `new ÷ old` closed-loop throughput at least `threshold`, with what the CPU costs predict.
fn scaling_claim(name: String, old: &WriteLoad, new: &WriteLoad, threshold: f64) -> Claim {
    let measured = ratio(new.increments_per_s, old.increments_per_s);
    Claim::new(name, measured, Comparison::AtLeast, threshold, "×")
        .disqualify(failures(&[old, new]))
        .bound(cpu_prediction(old, new, measured))
}

impl Capacity {
    /// The row of a round trip and write path, if it was measured.
    fn row_at(&self, rtt_ms: f64, mode: &str) -> Option<&RttRow> {
        self.rtt
            .iter()
            .find(|r| r.rtt_ms == rtt_ms && r.mode == mode)
    }

    /// The claims of issue 18 that these runs can judge; `bare` is the bare server's open loop at
    /// the same rate in this run (the machine's own tail).
    pub fn claims(&self, commit: &CommitTime, bare: &OpenLoop) -> Vec<Claim> {
        let mut claims = Vec::new();
        if let (Some(zero), Some(one)) = (self.row_at(0.0, "batched"), self.row_at(1.0, "batched"))
        {
            claims.push(scaling_claim(
                "POST batched at 1 ms round trip ÷ at 0 ms (closed loop)".into(),
                &zero.closed,
                &one.closed,
                0.8,
            ));
        }
        if let Some(one) = self.row_at(1.0, "batched") {
            let limit = 3.0 * (1.0 + commit.statement_mean_ms);
            let errors = one.open.errors;
            let failed = (errors > 0).then(|| format!("{errors} failed requests"));
            let tail = bare.machine_tail_ms();
            let rate = thousands(one.open.rate);
            let machine = match tail {
                Some(tail) => format!(
                    "the machine's own tail: bare hyper GET at {}/s in this run, p50 / p99 / p99.9 \
                     {} (p99 − p50 = {tail:.2} ms)",
                    thousands(bare.rate),
                    bare.latencies()
                ),
                None => format!(
                    "bare hyper GET at {}/s: {}",
                    thousands(bare.rate),
                    bare.latencies()
                ),
            };
            claims.push(
                Claim::new(
                    format!(
                        "open-loop p99 at {rate}/s, 1 ms round trip: ≤ 3 × (1 ms + commit {:.2} ms)",
                        commit.statement_mean_ms
                    ),
                    one.open.p99_ms,
                    Comparison::AtMost,
                    limit,
                    " ms",
                )
                .disqualify(failed.clone())
                .bound(Some(format!(
                    "idle commits: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ⇒ with the p99 commit \
                     3 × (1 ms + {:.2} ms) = {:.2} ms; {machine}",
                    commit.statement_p50_ms,
                    commit.statement_p99_ms,
                    commit.statement_max_ms,
                    commit.statement_p99_ms,
                    3.0 * (1.0 + commit.statement_p99_ms)
                ))),
            );
            // The same bound with both sides measured in this run: the round trip and commit
            // the origins really faced (through the proxy, whose forwarding adds to the 1 ms),
            // and the p99 less what the shared machine adds to any p99 (docs/capacity.md).
            if let Some(idle) = self.idle.iter().find(|i| i.rtt_ms == 1.0) {
                let faced = idle.updates.mean_ms;
                claims.push(
                    Claim::new(
                        format!(
                            "open-loop p99 at {rate}/s, 1 ms round trip, as measured: p99 less the \
                             machine's own tail ≤ 3 × (an idle UPDATE through the proxy, {faced:.2} ms)"
                        ),
                        one.open.p99_ms.zip(tail).map(|(p99, tail)| p99 - tail),
                        Comparison::AtMost,
                        3.0 * faced,
                        " ms",
                    )
                    .disqualify(failed)
                    .bound(Some(format!(
                        "round trip + commit as faced: idle UPDATEs through the proxy p50 {:.2} ms, \
                         p99 {:.2} ms (nominal 1 ms + idle commit {:.2} ms = {:.2} ms); {machine}",
                        idle.updates.p50_ms,
                        idle.updates.p99_ms,
                        commit.statement_mean_ms,
                        1.0 + commit.statement_mean_ms
                    ))),
                );
            }
        }
        for batched in self.rtt.iter().filter(|r| r.mode == "batched") {
            if let Some(single) = self.row_at(batched.rtt_ms, "MAX_BATCH=1") {
                claims.push(
                    Claim::new(
                        format!(
                            "POST batched ÷ MAX_BATCH=1 at {} ms round trip",
                            batched.rtt_ms
                        ),
                        ratio(
                            batched.closed.increments_per_s,
                            single.closed.increments_per_s,
                        ),
                        Comparison::AtLeast,
                        10.0,
                        "×",
                    )
                    .disqualify(failures(&[&batched.closed, &single.closed])),
                );
            }
        }
        let batched: Vec<&OriginsRow> = self
            .origins
            .iter()
            .filter(|r| r.mode == "batched")
            .collect();
        if let (Some(one), Some(most)) = (
            batched.iter().find(|r| r.origins == 1),
            batched
                .iter()
                .filter(|r| r.origins > 1)
                .max_by_key(|r| r.origins),
        ) {
            claims.push(scaling_claim(
                format!(
                    "POST batched, {} origins ÷ 1 origin ({} ms round trip)",
                    most.origins, most.rtt_ms
                ),
                &one.closed,
                &most.closed,
                0.9,
            ));
        }
        claims
    }
}

/// Runs the round-trip sweep and the several-origins sweep the flags ask for.
pub async fn run(args: &BenchArgs) -> Result<Capacity, SetupError> {
    let mut capacity = Capacity {
        batched_connections: args.capacity_connections,
        ..Capacity::default()
    };
    let mut ledger = Ledger::default();
    // The keyed runs come last, after the several-origins sweep: they leave PostgreSQL hundreds
    // of thousands of key rows to vacuum and flush, which would otherwise run beside the keyless
    // runs' measurements.
    round_trips(args, false, &mut capacity, &mut ledger).await?;
    if !args.origins.is_empty() {
        let (proxy, url) = proxy_for(args, args.origins_rtt_ms)?;
        for &n in args.origins.iter() {
            // Several origins: the keyless paths (the row's lock rate is the question there).
            for (mode, max_batch, _) in MODES.into_iter().filter(|(_, _, keyed)| !keyed) {
                let mut origins = Vec::with_capacity(n);
                for i in 0..n {
                    let name = format!("origin-{n}x-{i}-{}", mode_slug(mode));
                    origins.push(start_origin(args, &name, max_batch, &url).await?);
                }
                let sampler = LockSampler::start(&args.database_url).await?;
                let (closed, locks) = closed_write(
                    args,
                    &origins,
                    &proxy,
                    (max_batch, false),
                    &mut ledger,
                    Some(sampler),
                )
                .await?;
                let locks = locks.unwrap_or_default();
                let waiters = ratio(locks.waiting as f64, locks.samples as f64);
                let row = OriginsRow {
                    origins: n,
                    rtt_ms: args.origins_rtt_ms,
                    mode,
                    closed,
                    lock_waiters_mean: waiters,
                    lock_wait_share: ratio(locks.with_waiter as f64, locks.samples as f64),
                    lock_wait_ms_per_statement: waiters
                        .zip(closed.statements_per_s)
                        .and_then(|(w, s)| ratio(w * 1000.0, s)),
                    lock_samples: locks.samples,
                };
                eprintln!(
                    "bench: {n} origin(s), {mode}: {:.0} POST/s, batch {}, CPU per POST {}; lock waiters {} on average",
                    closed.increments_per_s,
                    opt(closed.average_batch, 1),
                    cpu::us(closed.cpu.map(|c| c.total_us)),
                    opt(waiters, 2)
                );
                capacity.origins.push(row);
            }
        }
    }
    round_trips(args, true, &mut capacity, &mut ledger).await?;
    // In the table: by round trip, then in MODES' order.
    let order = |mode: &str| MODES.iter().position(|m| m.0 == mode);
    capacity.rtt.sort_by(|a, b| {
        a.rtt_ms
            .total_cmp(&b.rtt_ms)
            .then(order(a.mode).cmp(&order(b.mode)))
    });
    capacity.write_runs = ledger.runs;
    capacity.increments_checked = ledger.increments;
    capacity.violations = ledger.violations;
    Ok(capacity)
}

/// One row per round trip of `--db-rtt-ms` for the keyless write paths, or for the keyed one.
async fn round_trips(
    args: &BenchArgs,
    keyed: bool,
    capacity: &mut Capacity,
    ledger: &mut Ledger,
) -> Result<(), SetupError> {
    for &rtt_ms in args.db_rtt_ms.iter() {
        let (proxy, url) = proxy_for(args, rtt_ms)?;
        if !keyed {
            // Pinned as the open loops are: this is the bound they are judged against.
            let updates = pinned(args, &[], commit::idle_updates(&url)).await?;
            eprintln!(
            "bench: {rtt_ms} ms round trip: idle UPDATE through the proxy {:.2} ms mean ({:.2} ms p99)",
            updates.mean_ms, updates.p99_ms
        );
            capacity.idle.push(ProxiedIdle { rtt_ms, updates });
        }
        for (mode, max_batch, keyed) in MODES.into_iter().filter(|m| m.2 == keyed) {
            let name = format!("origin-rtt{rtt_ms}ms-{}", mode_slug(mode));
            let origin = start_origin(args, &name, max_batch, &url).await?;
            let origins = std::slice::from_ref(&origin);
            let (load, _) =
                closed_write(args, origins, &proxy, (max_batch, keyed), ledger, None).await?;
            // MAX_BATCH=1 (and the keyed path, a transaction per batch) may not take the batched
            // rate: measure their latency at half their ceiling at most.
            let rate = if max_batch == 1 || keyed {
                args.open_rate
                    .min((load.increments_per_s / 2.0).round().max(1.0))
            } else {
                args.open_rate
            };
            let result = latency_run(
                args,
                &[origin.pid],
                endpoint(origins, keyed).await?,
                open(args, Scenario::Write, rate),
            )
            .await?;
            ledger.record(&result);
            let row = RttRow {
                rtt_ms,
                mode,
                closed: load,
                open: OpenLoop::of(&result, rate),
            };
            eprintln!(
            "bench: {rtt_ms} ms round trip, {mode}: {:.0} POST/s, batch {}, statement {} ms, CPU per POST {}; open loop {}/s: {}",
            row.closed.increments_per_s,
            opt(row.closed.average_batch, 1),
            opt(row.closed.statement_ms, 2),
            cpu::us(row.closed.cpu.map(|c| c.total_us)),
            rate,
            row.open.latencies()
        );
            capacity.rtt.push(row);
        }
    }
    Ok(())
}

fn opt(v: Option<f64>, decimals: usize) -> String {
    super::opt(v, decimals)
}

/// The closed loop of a capacity run. Batched: enough connections to reach the CPU rather than
/// connections ÷ latency. MAX_BATCH=1: the side-by-side count (more would only queue, past the
/// request deadline, behind one statement at a time).
fn closed_plan(args: &BenchArgs, max_batch: usize) -> crate::drive::Plan {
    let connections = if max_batch == 1 {
        args.connections
    } else {
        args.capacity_connections
    };
    crate::drive::Plan {
        connections,
        ..closed(args, Scenario::Write)
    }
}

fn mode_slug(mode: &str) -> &'static str {
    match mode {
        "batched" => "batched",
        "keyed" => "keyed",
        _ => "max-batch-1",
    }
}

/// A proxy adding half of `rtt_ms` each way in front of the benchmark's PostgreSQL, and the
/// database URL that goes through it.
fn proxy_for(args: &BenchArgs, rtt_ms: f64) -> Result<(ProxyThread, String), SetupError> {
    let placeholder: SocketAddr = "127.0.0.1:0".parse().expect("an address");
    let (upstream, _) = reroute(&args.database_url, placeholder).map_err(SetupError)?;
    let proxy = ProxyThread::start(upstream, Duration::from_secs_f64(rtt_ms / 2000.0))?;
    let (_, url) = reroute(&args.database_url, proxy.addr).map_err(SetupError)?;
    Ok((proxy, url))
}

/// One endpoint whose connections are spread over every server (one write ledger for all);
/// `keyed`: every POST carries its own `Idempotency-Key`.
async fn endpoint(origins: &[Origin], keyed: bool) -> Result<Endpoint, SetupError> {
    let endpoint = Endpoint::resolve(&origins[0].url())
        .await
        .map_err(|e| SetupError(e.to_string()))?
        .with_addrs(origins.iter().map(|o| o.addr()).collect());
    Ok(if keyed {
        endpoint.with_idempotency_keys()
    } else {
        endpoint
    })
}

#[derive(Debug, Default)]
pub struct LockSamples {
    samples: u64,
    /// Sum over samples of the backends waiting for a lock.
    waiting: u64,
    /// Samples with at least one waiter.
    with_waiter: u64,
}

/// Samples pg_stat_activity while a run goes on: how many client backends wait for a
/// heavyweight lock (on the one counter row: a tuple or transaction-id lock).
struct LockSampler {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Result<LockSamples, String>>,
}

impl LockSampler {
    async fn start(database_url: &str) -> Result<Self, SetupError> {
        let (client, connection) = tokio_postgres::connect(database_url, tokio_postgres::NoTls)
            .await
            .map_err(|e| SetupError(format!("lock sampler: cannot connect: {e}")))?;
        tokio::spawn(connection);
        let statement = client
            .prepare(
                "SELECT count(*) FILTER (WHERE wait_event_type = 'Lock') \
                 FROM pg_stat_activity WHERE backend_type = 'client backend'",
            )
            .await
            .map_err(|e| SetupError(format!("lock sampler: {e}")))?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let task = tokio::spawn(async move {
            let mut samples = LockSamples::default();
            let mut ticks = tokio::time::interval(SAMPLE_EVERY);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            while !stopped.load(Ordering::Relaxed) {
                ticks.tick().await;
                let row = client
                    .query_one(&statement, &[])
                    .await
                    .map_err(|e| e.to_string())?;
                let waiting: i64 = row.get(0);
                samples.samples += 1;
                samples.waiting += waiting as u64;
                samples.with_waiter += u64::from(waiting > 0);
            }
            Ok(samples)
        });
        Ok(Self { stop, task })
    }

    async fn finish(self) -> Result<LockSamples, SetupError> {
        self.stop.store(true, Ordering::Relaxed);
        let deadline = Instant::now() + Duration::from_secs(5);
        tokio::time::timeout_at(deadline.into(), self.task)
            .await
            .map_err(|_| SetupError("lock sampler did not stop".into()))?
            .map_err(|e| SetupError(format!("lock sampler: {e}")))?
            .map_err(|e| SetupError(format!("lock sampler: {e}")))
    }
}

/// The capacity tables, in Markdown (part of bench.md).
pub fn markdown(c: &Capacity) -> String {
    let mut t = String::new();
    if !c.rtt.is_empty() {
        t += &format!(
            "\n### Database round trip (latency proxy; PostgreSQL with real commits; batched closed loop with {} connections)\n\n\
             | round trip | write path | POST/s (closed loop) | statements/s | average batch | statement | CPU per POST: origin + PostgreSQL + client + proxy = total | open loop: rate, p50 / p99 / p99.9 | late, unsent, errors |\n\
             |---|---|---|---|---|---|---|---|---|\n",
            c.batched_connections
        );
        for r in &c.rtt {
            t += &format!(
                "| {} ms | {} | {}{} | {} | {} | {} ms | {} | {}/s: {} | {}, {}, {} |\n",
                r.rtt_ms,
                r.mode,
                thousands(r.closed.increments_per_s),
                failed_note(r.closed.failed),
                r.closed.statements_per_s.map_or("—".into(), thousands),
                opt(r.closed.average_batch, 1),
                opt(r.closed.statement_ms, 2),
                cpu::cell(r.closed.cpu.as_ref()),
                thousands(r.open.rate),
                r.open.latencies(),
                r.open.late,
                r.open.unsent,
                r.open.errors
            );
        }
    }
    if !c.idle.is_empty() {
        t += &format!(
            "\nAn idle UPDATE through the proxy before each round trip's runs (round trip + commit as the origins face them; mean / p99): {}.\n",
            c.idle
                .iter()
                .map(|i| format!(
                    "{} ms: {:.2} / {:.2} ms",
                    i.rtt_ms, i.updates.mean_ms, i.updates.p99_ms
                ))
                .collect::<Vec<_>>()
                .join("; ")
        );
    }
    if let Some(first) = c.origins.first() {
        t += &format!(
            "\n### Several origins on one row ({} ms round trip; closed loop, batched with {} connections spread over the origins)\n\n\
             | origins | write path | POST/s in all | statements/s | average batch | statement | waiting for the row lock (mean backends; share of samples) | lock wait per statement | p99 | CPU per POST: origins + PostgreSQL + client + proxy = total |\n\
             |---|---|---|---|---|---|---|---|---|---|\n",
            first.rtt_ms, c.batched_connections
        );
        for r in &c.origins {
            t += &format!(
                "| {} | {} | {}{} | {} | {} | {} ms | {}; {}% of {} samples | {} ms | {} ms | {} |\n",
                r.origins,
                r.mode,
                thousands(r.closed.increments_per_s),
                failed_note(r.closed.failed),
                r.closed.statements_per_s.map_or("—".into(), thousands),
                opt(r.closed.average_batch, 1),
                opt(r.closed.statement_ms, 2),
                opt(r.lock_waiters_mean, 2),
                opt(r.lock_wait_share.map(|s| s * 100.0), 0),
                r.lock_samples,
                opt(r.lock_wait_ms_per_statement, 2),
                opt(r.closed.p99_ms, 2),
                cpu::cell(r.closed.cpu.as_ref())
            );
        }
    }
    if c.write_runs > 0 {
        t += &format!(
            "\nWrite correctness of these runs (one ledger across all origins of a run): {} violations in {} write runs ({} increments checked).\n",
            c.violations.len(),
            c.write_runs,
            thousands(c.increments_checked as f64)
        );
    }
    t
}

fn failed_note(failed: u64) -> String {
    if failed > 0 {
        format!(" ({failed} failed)")
    } else {
        String::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reroutes_a_database_url_through_the_proxy() {
        let proxy: SocketAddr = "127.0.0.1:6000".parse().unwrap();
        let (upstream, url) = reroute(
            "postgres://postgres@127.0.0.1:5544/postgres?sslmode=disable",
            proxy,
        )
        .unwrap();
        assert_eq!(upstream, "127.0.0.1:5544".parse().unwrap());
        assert_eq!(
            url,
            "postgres://postgres@127.0.0.1:6000/postgres?sslmode=disable"
        );
        let (upstream, url) = reroute("postgres://u:p@w@127.0.0.1", proxy).unwrap();
        assert_eq!(upstream.port(), 5432);
        assert_eq!(url, "postgres://u:p@w@127.0.0.1:6000");
        assert!(reroute("no url", proxy).is_err());
    }

    fn load(rate: f64, total_us: f64) -> WriteLoad {
        WriteLoad {
            increments_per_s: rate,
            cpu: Some(Cost {
                total_us,
                ..Cost::default()
            }),
            ..WriteLoad::default()
        }
    }

    fn open_loop(ok: u64, p99_ms: Option<f64>, errors: u64) -> OpenLoop {
        OpenLoop {
            server: "origin",
            scenario: "write",
            rate: 5000.0,
            ok,
            p50_ms: p99_ms,
            p99_ms,
            p999_ms: p99_ms,
            late: 0,
            unsent: 0,
            errors,
            curve: Vec::new(),
        }
    }

    fn row(rtt_ms: f64, mode: &'static str, closed: WriteLoad, open: OpenLoop) -> RttRow {
        RttRow {
            rtt_ms,
            mode,
            closed,
            open,
        }
    }

    const COMMIT: CommitTime = CommitTime {
        statement_mean_ms: 1.5,
        statement_p50_ms: 1.4,
        statement_p99_ms: 2.5,
        statement_max_ms: 4.0,
        fdatasync_ms: None,
    };

    #[test]
    fn claims_compare_the_rows_they_name() {
        let c = Capacity {
            rtt: [
                (0.0, "batched", 10_000.0, 20.0, 2.0),
                (0.0, "MAX_BATCH=1", 500.0, 200.0, 9.0),
                (1.0, "batched", 9_000.0, 25.0, 6.0),
                (1.0, "MAX_BATCH=1", 400.0, 250.0, 99.0),
            ]
            .map(|(rtt, mode, rate, cpu_us, p99)| {
                row(rtt, mode, load(rate, cpu_us), open_loop(9, Some(p99), 0))
            })
            .to_vec(),
            // Through the 1 ms proxy an idle UPDATE took 1.8 ms.
            idle: vec![ProxiedIdle {
                rtt_ms: 1.0,
                updates: IdleUpdates {
                    mean_ms: 1.8,
                    p50_ms: 1.7,
                    p99_ms: 2.5,
                    max_ms: 3.0,
                },
            }],
            ..Capacity::default()
        };
        // The bare server: p50 0.2 ms, p99 1.2 ms ⇒ the machine's own tail is 1 ms.
        let bare = OpenLoop {
            server: "bare hyper",
            scenario: "read",
            p50_ms: Some(0.2),
            p99_ms: Some(1.2),
            ..open_loop(9, Some(1.2), 0)
        };
        let claims = c.claims(&COMMIT, &bare);
        let find = |name: &str| claims.iter().find(|c| c.name.starts_with(name)).unwrap();
        let rtt = find("POST batched at 1 ms");
        assert_eq!(rtt.value, Some(0.9));
        assert!(rtt.passed);
        // 20 µs → 25 µs per increment predicts 0.8×; 0.9× measured is 12.5% above (just under, in floating point).
        assert!(
            rtt.bounds[0].contains("predicts 0.80×, measured 0.90× (+12%)"),
            "{:?}",
            rtt.bounds
        );
        // 3 × (1 + 1.5) = 7.5 ms allowed, 6 ms measured; 5 ms less the machine's 1 ms tail.
        let p99 = find("open-loop p99 at 5,000/s, 1 ms round trip: ");
        assert_eq!(
            (p99.value, p99.threshold, p99.passed),
            (Some(6.0), 7.5, true)
        );
        // As measured: 6 ms less the machine's 1 ms tail, against 3 × 1.8 ms = 5.4 ms.
        let measured = find("open-loop p99 at 5,000/s, 1 ms round trip, as measured");
        assert!((measured.value.unwrap() - 5.0).abs() < 1e-9, "{measured:?}");
        assert!((measured.threshold - 5.4).abs() < 1e-9, "{measured:?}");
        assert!(measured.passed);
        assert!(
            measured.bounds[0].contains("p99 − p50 = 1.00 ms"),
            "{:?}",
            measured.bounds
        );
        assert_eq!(find("POST batched ÷ MAX_BATCH=1 at 1 ms").value, Some(22.5));
        assert_eq!(claims.len(), 5);
    }

    #[test]
    fn runs_that_failed_fail_their_claims_and_print_no_nan() {
        let dead = WriteLoad {
            failed: 1000,
            ..WriteLoad::default()
        };
        let c = Capacity {
            batched_connections: 1024,
            rtt: vec![
                row(
                    0.0,
                    "batched",
                    load(10_000.0, 20.0),
                    open_loop(9, Some(2.0), 0),
                ),
                row(1.0, "batched", dead, open_loop(0, None, 25_000)),
            ],
            idle: vec![ProxiedIdle {
                rtt_ms: 1.0,
                updates: IdleUpdates::default(),
            }],
            origins: vec![OriginsRow {
                origins: 4,
                rtt_ms: 1.0,
                mode: "batched",
                closed: dead,
                lock_waiters_mean: None,
                lock_wait_share: None,
                lock_wait_ms_per_statement: None,
                lock_samples: 0,
            }],
            ..Capacity::default()
        };
        // A bare server that failed too: no baseline, and no figure to subtract it from.
        let claims = c.claims(&COMMIT, &open_loop(0, None, 25_000));
        assert_eq!(claims.len(), 3);
        assert!(claims.iter().all(|c| !c.passed), "{claims:?}");
        let text = markdown(&c) + &claims.iter().map(Claim::row).collect::<String>();
        assert!(!text.contains("NaN") && !text.contains("inf"), "{text}");
        assert!(text.contains("no successful request"), "{text}");
        assert!(text.contains("1000 failed"), "{text}");
    }
}
