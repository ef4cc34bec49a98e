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
use testkit::proxy::{LatencyProxy, ProxyConfig};

use super::{
    batch_counters, closed, harness_on, open_loop_of, scrape, start_origin, BenchArgs, OpenLoop,
    Server,
};
use crate::client::Endpoint;
use crate::drive::{Mode, Scenario};
use crate::report::RunResult;
use crate::SetupError;

/// How often the lock sampler looks at pg_stat_activity: often enough to see waits of a
/// millisecond or two in aggregate, rarely enough to cost PostgreSQL nothing measurable.
const SAMPLE_EVERY: Duration = Duration::from_millis(5);
/// The batch size the batched rows run with (the origin's default).
const MAX_BATCH: usize = 512;

/// The two write paths compared on every row.
const MODES: [(&str, usize); 2] = [("batched", MAX_BATCH), ("MAX_BATCH=1", 1)];

/// A latency proxy on its own thread and runtime, so the harness's busy workers do not delay
/// the delayed bytes further.
struct ProxyThread {
    addr: SocketAddr,
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
            runtime.block_on(async move {
                match LatencyProxy::start(ProxyConfig::new(upstream, one_way)).await {
                    Ok(proxy) => {
                        let _ = ready.send(Ok(proxy.addr()));
                        // Sender dropped or signalled: either way the bench is done with it.
                        let _ = stopped.await;
                    }
                    Err(e) => drop(ready.send(Err(e.to_string()))),
                }
            });
        });
        let addr = started
            .recv()
            .map_err(|_| SetupError("the latency proxy's thread died".into()))?
            .map_err(|e| SetupError(format!("latency proxy: {e}")))?;
        Ok(Self {
            addr,
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

/// Statements committed, increments committed, seconds spent in `add` statements and CPU
/// seconds used so far, summed over `servers`.
async fn write_counters(
    servers: &[Server],
    pg_data_dir: Option<&std::path::Path>,
) -> Result<(f64, f64, f64, f64, f64), SetupError> {
    let pg = pg_data_dir
        .and_then(postgres_cpu_seconds)
        .unwrap_or(f64::NAN);
    let mut total = (0.0, 0.0, 0.0, 0.0, pg);
    for server in servers {
        let (statements, increments) = batch_counters(server).await?;
        let text = scrape(server).await?;
        let seconds = super::metric_value(
            &text,
            "counter_store_statement_duration_seconds_sum{op=\"add\"}",
        )
        .unwrap_or(f64::NAN);
        let cpu = server.pid().and_then(cpu_seconds).unwrap_or(f64::NAN);
        total = (
            total.0 + statements,
            total.1 + increments,
            total.2 + seconds,
            total.3 + cpu,
            total.4,
        );
    }
    Ok(total)
}

/// User + system CPU time of a process, from /proc/<pid>/stat (in USER_HZ ticks: 100 a second on
/// every Linux this runs on).
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    cpu_seconds_of(&stat)
}

/// CPU seconds of the PostgreSQL server in `data_dir`: the postmaster and its children (backends,
/// WAL writer, checkpointer), read from /proc.
fn postgres_cpu_seconds(data_dir: &std::path::Path) -> Option<f64> {
    let pid_file = std::fs::read_to_string(data_dir.join("postmaster.pid")).ok()?;
    let postmaster: u32 = pid_file.lines().next()?.trim().parse().ok()?;
    let mut total = cpu_seconds(postmaster)?;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let parent = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if parent == Some(postmaster) {
            total += cpu_seconds_of(&stat).unwrap_or(0.0);
        }
    }
    Some(total)
}

pub fn cpu_seconds_of(stat: &str) -> Option<f64> {
    // Fields after the command name (which may hold spaces): state is the first, utime the 12th.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// What one closed-loop write run did to the database.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct WriteLoad {
    /// Successful POSTs per second (the harness's count).
    pub increments_per_s: f64,
    pub statements_per_s: f64,
    pub average_batch: f64,
    /// Mean time of one `add` statement as the origin saw it (round trip, lock, commit).
    pub statement_ms: f64,
    pub p99_ms: f64,
    pub failed: u64,
    /// Origin CPU (user + system, all origins) per successful POST, warm-up included.
    pub cpu_us_per_increment: f64,
    /// PostgreSQL's CPU (every process of the server) per statement; NaN when not on this machine.
    pub postgres_cpu_us_per_statement: f64,
}

fn write_load(
    result: &RunResult,
    before: (f64, f64, f64, f64, f64),
    after: (f64, f64, f64, f64, f64),
) -> WriteLoad {
    let statements = after.0 - before.0;
    let increments = after.1 - before.1;
    let per_increment = statements / increments;
    WriteLoad {
        increments_per_s: result.total.rate,
        statements_per_s: result.total.rate * per_increment,
        average_batch: increments / statements,
        statement_ms: (after.2 - before.2) / statements * 1000.0,
        p99_ms: result.total.latency_ms.p99,
        failed: result.total.failed,
        cpu_us_per_increment: (after.3 - before.3) / increments * 1e6,
        postgres_cpu_us_per_statement: (after.4 - before.4) / statements * 1e6,
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct RttRow {
    pub rtt_ms: f64,
    pub mode: &'static str,
    pub closed: WriteLoad,
    pub open: OpenLoop,
}

#[derive(Clone, Debug, Serialize)]
pub struct OriginsRow {
    pub origins: usize,
    pub rtt_ms: f64,
    pub mode: &'static str,
    pub closed: WriteLoad,
    /// Mean number of backends waiting for a lock (= backend-seconds of waiting per second).
    pub lock_waiters_mean: f64,
    /// Share of samples in which at least one backend waited for a lock.
    pub lock_wait_share: f64,
    /// Lock wait per statement (Little's law: mean waiters ÷ statements per second).
    pub lock_wait_ms_per_statement: f64,
    pub lock_samples: u64,
}

/// Everything the capacity runs found, for bench.json and the tables.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Capacity {
    /// Connections of the batched closed loops (MAX_BATCH=1 runs with the side-by-side count).
    pub batched_connections: usize,
    pub rtt: Vec<RttRow>,
    pub origins: Vec<OriginsRow>,
    pub write_runs: usize,
    pub increments_checked: u64,
    pub violations: Vec<String>,
}

impl Capacity {
    fn record(&mut self, result: &RunResult) {
        if let Some(w) = &result.writes {
            self.write_runs += 1;
            self.increments_checked += w.successes;
            self.violations.extend(
                w.violations
                    .iter()
                    .map(|v| format!("{}: {v}", result.target)),
            );
        }
    }

    /// The closed-loop batched rate at a round trip, if it was measured.
    fn rate_at(&self, rtt_ms: f64, mode: &str) -> Option<&RttRow> {
        self.rtt
            .iter()
            .find(|r| r.rtt_ms == rtt_ms && r.mode == mode)
    }

    /// The claims of issue 18 that these runs can judge: (name, ratio, at least).
    pub fn claims(&self) -> Vec<(String, f64, f64)> {
        let mut claims = Vec::new();
        if let (Some(zero), Some(one)) =
            (self.rate_at(0.0, "batched"), self.rate_at(1.0, "batched"))
        {
            claims.push((
                "POST batched at 1 ms round trip ÷ at 0 ms".into(),
                one.closed.increments_per_s / zero.closed.increments_per_s,
                0.8,
            ));
            // A commit here: one unbatched statement at 0 ms (lock, WAL flush, reply).
            if let Some(commit) = self.rate_at(0.0, "MAX_BATCH=1") {
                let bound = 3.0 * (1.0 + commit.closed.statement_ms);
                claims.push((
                    format!(
                        "3 × (1 ms + commit {:.2} ms) ÷ open-loop p99 at 1 ms",
                        commit.closed.statement_ms
                    ),
                    bound / one.open.p99_ms,
                    1.0,
                ));
            }
        }
        for batched in self.rtt.iter().filter(|r| r.mode == "batched") {
            if let Some(single) = self.rate_at(batched.rtt_ms, "MAX_BATCH=1") {
                claims.push((
                    format!(
                        "POST batched ÷ MAX_BATCH=1 at {} ms round trip",
                        batched.rtt_ms
                    ),
                    batched.closed.increments_per_s / single.closed.increments_per_s,
                    10.0,
                ));
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
            claims.push((
                format!("POST batched, {} origins ÷ 1 origin", most.origins),
                most.closed.increments_per_s / one.closed.increments_per_s,
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
    for &rtt_ms in &args.db_rtt_ms {
        let proxy = proxy_for(args, rtt_ms)?;
        for (mode, max_batch) in MODES {
            let origin = start_origin(
                args,
                format!("origin-rtt{rtt_ms}ms-{}", mode_slug(mode)),
                max_batch,
                &proxy.1,
            )
            .await?;
            let servers = std::slice::from_ref(&origin);
            let before = write_counters(servers, args.pg_data_dir.as_deref()).await?;
            let result = harness_on(endpoint(servers).await?, closed_plan(args, max_batch)).await?;
            let after = write_counters(servers, args.pg_data_dir.as_deref()).await?;
            capacity.record(&result);
            let load = write_load(&result, before, after);
            // MAX_BATCH=1 cannot take the batched rate: measure its latency at half its ceiling.
            let rate = if max_batch == 1 {
                args.open_rate
                    .min((load.increments_per_s / 2.0).round().max(1.0))
            } else {
                args.open_rate
            };
            let open = harness_on(
                endpoint(servers).await?,
                super::Plan {
                    mode: Mode::Open { rate },
                    connections: args.open_connections,
                    duration: args.open_duration,
                    ..closed(args, Scenario::Write)
                },
            )
            .await?;
            capacity.record(&open);
            let row = RttRow {
                rtt_ms,
                mode,
                closed: load,
                open: open_loop_of(&open, rate),
            };
            eprintln!(
                "bench: {rtt_ms} ms round trip, {mode}: {:.0} POST/s, {:.0} statements/s (batch {:.1}, statement {:.2} ms); open loop {}/s p99 {:.2} ms",
                row.closed.increments_per_s,
                row.closed.statements_per_s,
                row.closed.average_batch,
                row.closed.statement_ms,
                rate,
                row.open.p99_ms
            );
            capacity.rtt.push(row);
        }
    }
    if !args.origins.is_empty() {
        let proxy = proxy_for(args, args.origins_rtt_ms)?;
        for &n in &args.origins {
            for (mode, max_batch) in MODES {
                let mut servers = Vec::with_capacity(n);
                for i in 0..n {
                    servers.push(
                        start_origin(
                            args,
                            format!("origin-{n}x-{i}-{}", mode_slug(mode)),
                            max_batch,
                            &proxy.1,
                        )
                        .await?,
                    );
                }
                let before = write_counters(&servers, args.pg_data_dir.as_deref()).await?;
                let sampler = LockSampler::start(&args.database_url).await?;
                let result =
                    harness_on(endpoint(&servers).await?, closed_plan(args, max_batch)).await?;
                let locks = sampler.finish().await?;
                let after = write_counters(&servers, args.pg_data_dir.as_deref()).await?;
                capacity.record(&result);
                let closed = write_load(&result, before, after);
                let waiters = locks.waiting as f64 / locks.samples.max(1) as f64;
                let row = OriginsRow {
                    origins: n,
                    rtt_ms: args.origins_rtt_ms,
                    mode,
                    closed,
                    lock_waiters_mean: waiters,
                    lock_wait_share: locks.with_waiter as f64 / locks.samples.max(1) as f64,
                    lock_wait_ms_per_statement: waiters / closed.statements_per_s * 1000.0,
                    lock_samples: locks.samples,
                };
                eprintln!(
                    "bench: {n} origin(s), {mode}: {:.0} POST/s, {:.0} statements/s (batch {:.1}); lock waiters {:.2} on average",
                    closed.increments_per_s, closed.statements_per_s, closed.average_batch, waiters
                );
                capacity.origins.push(row);
            }
        }
    }
    Ok(capacity)
}

/// The closed loop of a capacity run. Batched: enough connections to reach the CPU rather than
/// connections ÷ latency. MAX_BATCH=1: the side-by-side count (more would only queue, past the
/// request deadline, behind one statement at a time).
fn closed_plan(args: &BenchArgs, max_batch: usize) -> super::Plan {
    let connections = if max_batch == 1 {
        args.connections
    } else {
        args.capacity_connections
    };
    super::Plan {
        connections,
        ..closed(args, Scenario::Write)
    }
}

fn mode_slug(mode: &str) -> &'static str {
    if mode == "batched" {
        "batched"
    } else {
        "max-batch-1"
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

/// One endpoint whose connections are spread over every server (one write ledger for all).
async fn endpoint(servers: &[Server]) -> Result<Endpoint, SetupError> {
    Ok(Endpoint::resolve(&servers[0].url())
        .await
        .map_err(|e| SetupError(e.to_string()))?
        .with_addrs(servers.iter().map(|s| s.addr).collect()))
}

#[derive(Debug, Default)]
struct LockSamples {
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
             | round trip | write path | POST/s (closed loop) | statements/s | average batch | statement | origin CPU per POST | PostgreSQL CPU per statement | open loop: rate, p50 / p99 / p99.9 | late, unsent, errors |\n\
             |---|---|---|---|---|---|---|---|---|---|\n",
            c.batched_connections
        );
        for r in &c.rtt {
            t += &format!(
                "| {} ms | {} | {} | {} | {:.1} | {:.2} ms | {:.0} µs | {:.0} µs | {}/s: {:.2} / {:.2} / {:.2} ms | {}, {}, {} |\n",
                r.rtt_ms,
                r.mode,
                super::thousands(r.closed.increments_per_s),
                super::thousands(r.closed.statements_per_s),
                r.closed.average_batch,
                r.closed.statement_ms,
                r.closed.cpu_us_per_increment,
                r.closed.postgres_cpu_us_per_statement,
                super::thousands(r.open.rate),
                r.open.p50_ms,
                r.open.p99_ms,
                r.open.p999_ms,
                r.open.late,
                r.open.unsent,
                r.open.errors
            );
        }
    }
    if !c.origins.is_empty() {
        t += &format!(
            "\n### Several origins on one row ({} ms round trip; closed loop, batched with {} connections spread over the origins)\n\n\
             | origins | write path | POST/s in all | statements/s | average batch | statement | waiting for the row lock (mean backends; share of samples) | lock wait per statement | p99 |\n\
             |---|---|---|---|---|---|---|---|---|\n",
            c.origins[0].rtt_ms,
            c.batched_connections
        );
        for r in &c.origins {
            t += &format!(
                "| {} | {} | {} | {} | {:.1} | {:.2} ms | {:.2}; {:.0}% of {} samples | {:.2} ms | {:.2} ms |\n",
                r.origins,
                r.mode,
                super::thousands(r.closed.increments_per_s),
                super::thousands(r.closed.statements_per_s),
                r.closed.average_batch,
                r.closed.statement_ms,
                r.lock_waiters_mean,
                r.lock_wait_share * 100.0,
                r.lock_samples,
                r.lock_wait_ms_per_statement,
                r.closed.p99_ms
            );
        }
    }
    if c.write_runs > 0 {
        t += &format!(
            "\nWrite correctness of these runs (one ledger across all origins of a run): {} violations in {} write runs ({} increments checked).\n",
            c.violations.len(),
            c.write_runs,
            super::thousands(c.increments_checked as f64)
        );
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_comes_from_utime_and_stime() {
        let stat = "4242 (counter origin) S 1 2 3 4 5 6 7 8 9 10 150 50 0 0 20 0 3";
        assert_eq!(cpu_seconds_of(stat), Some(2.0));
        assert_eq!(cpu_seconds_of("garbage"), None);
    }

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

    fn load(rate: f64, statement_ms: f64) -> WriteLoad {
        WriteLoad {
            increments_per_s: rate,
            statement_ms,
            ..WriteLoad::default()
        }
    }

    fn open(p99_ms: f64) -> OpenLoop {
        OpenLoop {
            scenario: "write",
            rate: 5000.0,
            p50_ms: 0.0,
            p99_ms,
            p999_ms: 0.0,
            late: 0,
            unsent: 0,
            errors: 0,
            curve: Vec::new(),
        }
    }

    #[test]
    fn claims_compare_the_rows_they_name() {
        let row = |rtt_ms, mode, rate, statement_ms, p99| RttRow {
            rtt_ms,
            mode,
            closed: load(rate, statement_ms),
            open: open(p99),
        };
        let c = Capacity {
            rtt: vec![
                row(0.0, "batched", 10_000.0, 1.0, 2.0),
                row(0.0, "MAX_BATCH=1", 500.0, 1.5, 9.0),
                row(1.0, "batched", 9_000.0, 2.0, 6.0),
                row(1.0, "MAX_BATCH=1", 400.0, 2.5, 99.0),
            ],
            ..Capacity::default()
        };
        let claims = c.claims();
        let find = |name: &str| claims.iter().find(|c| c.0.starts_with(name)).unwrap();
        assert_eq!(find("POST batched at 1 ms").1, 0.9);
        // 3 × (1 + 1.5) = 7.5 ms allowed, 6 ms measured.
        assert_eq!(find("3 × (1 ms + commit 1.50 ms)").1, 7.5 / 6.0);
        assert_eq!(find("POST batched ÷ MAX_BATCH=1 at 1 ms").1, 22.5);
        assert_eq!(claims.len(), 4);
    }
}
