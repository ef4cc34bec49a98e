//! `make bench`: the claims of issue 18 measured in one run on this machine. The origin (batched,
//! and with `MAX_BATCH=1`) against PostgreSQL with real commits, and a bare hyper server returning
//! a constant body (the physical limit of the HTTP path), each driven by `wrk` and by this
//! harness, side by side. Closed-loop runs are interleaved round by round and summarised by their
//! medians, because on a shared 2-core machine single runs vary by ±15%. Then the capacity runs
//! ([`capacity`]): database round trips through a latency proxy, and several origins on one row.
//!
//! Every claim is the issue's, with its threshold; the run exits 1 when one is missed. Where this
//! machine bounds a claim physically (commit time and Little's law, or the CPU the client,
//! servers and PostgreSQL share), the claim's row says so with the figure that bounds it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use clap::Args;
use serde::Serialize;
use testkit::origin::{Origin, OriginSpec};
use testkit::{affinity, probe, procfs, Machine};

pub mod capacity;
pub mod commit;
pub mod cpu;
pub mod wrk;

use crate::client::Endpoint;
use crate::drive::{self, Mode, Plan, Scenario};
use crate::progress::Progress;
use crate::report::{self, RunResult};
use crate::SetupError;
use cpu::{Client, Cost, Watched};
use wrk::{Method, Wrk};

/// The batch size of the batched origins (the origin's default).
pub const MAX_BATCH: usize = 512;
/// Issue 18, item 4: the origin's resident memory under the side-by-side load.
pub const RSS_LIMIT_MIB: f64 = 32.0;

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// The `counter-origin` binary (release build).
    #[arg(long)]
    pub origin: PathBuf,
    /// The bare hyper example (`target/release/examples/bare-hyper`).
    #[arg(long)]
    pub bare: PathBuf,
    /// The `wrk` binary, the reference client.
    #[arg(long, default_value = "wrk")]
    pub wrk: PathBuf,
    /// PostgreSQL for the origins (the throwaway server scripts/bench.sh starts).
    #[arg(long, env = "TEST_DATABASE_URL")]
    pub database_url: String,
    /// Directory for bench.json, bench.md, report.html and the servers' logs.
    #[arg(long, default_value = "artifacts/bench")]
    pub out: PathBuf,
    /// Interleaved rounds of the closed-loop measurements (medians are reported).
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Measured time of each closed-loop run (whole seconds: wrk's resolution).
    #[arg(long, default_value = "4s", value_parser = crate::cli::duration)]
    pub step: Duration,
    /// Warm-up before each harness run.
    #[arg(long, default_value = "1s", value_parser = crate::cli::duration)]
    pub warmup: Duration,
    /// Connections of the side-by-side closed loops (wrk and harness alike; the 256).
    #[arg(long, default_value_t = 256)]
    pub connections: usize,
    /// Threads of the harness runtime and of wrk (the issue's `wrk -t2`).
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Rate of the open-loop latency runs.
    #[arg(long, default_value_t = 5000.0)]
    pub open_rate: f64,
    /// Measured time of each open-loop run.
    #[arg(long, default_value = "5s", value_parser = crate::cli::duration)]
    pub open_duration: Duration,
    /// Connections of the open-loop runs: enough that a rate times the write latency with real
    /// commits (5,000/s × ~10 ms) never waits for a free connection.
    #[arg(long, default_value_t = 256)]
    pub open_connections: usize,
    /// Connections of the capacity runs' batched closed loop: with commits of milliseconds a
    /// closed loop is bounded by connections ÷ latency, so it needs enough to reach the CPU.
    #[arg(long, default_value_t = 1024)]
    pub capacity_connections: usize,
    /// Database round trips (ms) to measure the write path at, through the latency proxy
    /// (docs/capacity.md); an empty list skips the sweep.
    #[arg(long, default_value = "0,1,2", value_parser = list::<f64>)]
    pub db_rtt_ms: List<f64>,
    /// Numbers of origins writing the same row at once; an empty list skips the sweep.
    #[arg(long, default_value = "1,2,4", value_parser = list::<usize>)]
    pub origins: List<usize>,
    /// PostgreSQL's data directory (its postmaster.pid): the runs read the server's CPU time
    /// from /proc when it is on this machine, and pg_test_fsync writes beside it.
    #[arg(long, env = "TEST_PG_DATA_DIR")]
    pub pg_data_dir: Option<PathBuf>,
    /// PostgreSQL's binaries (pg_test_fsync: the disk's commit time).
    #[arg(long, env = "TEST_PG_BIN_DIR")]
    pub pg_bin_dir: Option<PathBuf>,
    /// The database round trip (ms) of the several-origins runs.
    #[arg(long, default_value_t = 1.0)]
    pub origins_rtt_ms: f64,
    /// Cores the open-loop (latency) runs are pinned to, with every process they involve (the
    /// servers, PostgreSQL and its backends, this process and its proxy thread). Default: the
    /// last core, on a machine with two or more (core 0 takes the interrupts and, here, the
    /// sandbox's agent: docs/capacity.md); "" pins nothing.
    #[arg(long, value_parser = list::<usize>)]
    pub latency_cpus: Option<List<usize>>,
    /// A configuration variable for every origin the bench starts, NAME=VALUE (repeatable), e.g.
    /// READ_CACHE_TTL_MS=0 to measure reads without the cache; MAX_BATCH and DATABASE_URL are the bench's.
    #[arg(long = "origin-env", value_name = "NAME=VALUE", value_parser = origin_env)]
    pub origin_env: Vec<(String, String)>,
}

/// A comma-separated list on the command line, where `--origins ""` is the empty list (clap's
/// own delimiter gives one empty, unparsable value).
#[derive(Clone, Debug, PartialEq)]
pub struct List<T>(pub Vec<T>);

impl<T> std::ops::Deref for List<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &self.0
    }
}

fn list<T: std::str::FromStr>(text: &str) -> Result<List<T>, String>
where
    T::Err: std::fmt::Display,
{
    text.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(|item| item.parse().map_err(|e| format!("{item:?}: {e}")))
        .collect::<Result<_, _>>()
        .map(List)
}

impl BenchArgs {
    /// The cores of the latency runs (`--latency-cpus`, or its default); empty: not pinned.
    pub fn latency_cores(&self) -> Vec<usize> {
        match &self.latency_cpus {
            Some(cores) => cores.0.clone(),
            None => affinity::last_allowed_core().into_iter().collect(),
        }
    }
}

/// Runs `work` with the processes of a latency run pinned to [`BenchArgs::latency_cores`]:
/// `servers`, PostgreSQL's whole tree when its data directory is known, and this process. Nothing
/// is pinned when no core is asked for.
pub async fn pinned<T>(
    args: &BenchArgs,
    servers: &[u32],
    work: impl std::future::Future<Output = Result<T, SetupError>>,
) -> Result<T, SetupError> {
    let cores = args.latency_cores();
    if cores.is_empty() {
        return work.await;
    }
    let mut processes = servers.to_vec();
    if let Some(dir) = &args.pg_data_dir {
        processes.push(procfs::postmaster_pid(dir)?);
    }
    processes.push(std::process::id());
    let pin = affinity::pin(&processes, &cores)?;
    let result = work.await;
    pin.release()?;
    result
}

/// Runs one open loop with its processes pinned (see [`pinned`]).
pub async fn latency_run(
    args: &BenchArgs,
    servers: &[u32],
    endpoint: Endpoint,
    plan: Plan,
) -> Result<RunResult, SetupError> {
    pinned(args, servers, harness_on(endpoint, plan)).await
}

fn origin_env(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some(("MAX_BATCH" | "DATABASE_URL", _)) => {
            Err("MAX_BATCH and DATABASE_URL are set by the bench itself".into())
        }
        Some((name, value)) if !name.is_empty() => Ok((name.to_string(), value.to_string())),
        _ => Err(format!("{text:?} is not NAME=VALUE")),
    }
}

/// An origin with production settings except its ports, `MAX_BATCH` and `--origin-env`
/// (`ACCESS_LOG_EVERY` stays at its default of 100: sampled access logs are part of the real
/// cost).
pub async fn start_origin(
    args: &BenchArgs,
    name: &str,
    max_batch: usize,
    database_url: &str,
) -> Result<Origin, SetupError> {
    let max_batch = max_batch.to_string();
    let mut env = vec![
        ("DATABASE_URL", database_url),
        ("MAX_BATCH", max_batch.as_str()),
    ];
    env.extend(
        args.origin_env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str())),
    );
    let spec = OriginSpec::new(&args.origin, name, &args.out, &env)?;
    Ok(spec.start_ready().await?)
}

async fn start_bare(args: &BenchArgs) -> Result<Origin, SetupError> {
    let mut spec = OriginSpec::new(&args.bare, "bare-hyper", &args.out, &[])?;
    spec.args.push(spec.addr.to_string());
    spec.ready_path = "/api/counter".into();
    Ok(spec.start_ready().await?)
}

/// What the origins' metrics have counted so far, summed over origins.
#[derive(Clone, Copy, Debug, Default)]
pub struct Counters {
    /// `add` statements committed (`counter_batch_size_count`).
    pub statements: f64,
    /// Increments committed (`counter_batch_size_sum`).
    pub increments: f64,
    /// Seconds spent in `add` statements, as the origins saw them.
    pub add_seconds: f64,
    /// `GET /api/counter` answered.
    pub gets: f64,
}

impl Counters {
    pub async fn read(origins: &[&Origin]) -> Result<Self, SetupError> {
        let mut total = Self::default();
        for origin in origins {
            let text = origin.metrics().await?;
            let get = |name: &str, labels: &[(&str, &str)]| {
                probe::sample(&text, name, labels).ok_or_else(|| {
                    SetupError(format!("{}: /metrics lacks {name}", origin.spec.name))
                })
            };
            total.statements += get("counter_batch_size_count", &[])?;
            total.increments += get("counter_batch_size_sum", &[])?;
            total.add_seconds += get(
                "counter_store_statement_duration_seconds_sum",
                &[("op", "add")],
            )?;
            // Absent until the first GET.
            total.gets += get(
                "http_request_duration_seconds_count",
                &[("method", "GET"), ("endpoint", "/api/counter")],
            )
            .unwrap_or(0.0);
        }
        Ok(total)
    }

    pub fn since(&self, before: &Self) -> Self {
        Self {
            statements: self.statements - before.statements,
            increments: self.increments - before.increments,
            add_seconds: self.add_seconds - before.add_seconds,
            gets: self.gets - before.gets,
        }
    }
}

/// `a ÷ b`, or `None` when there is no figure to divide by (nothing served).
pub fn ratio(a: f64, b: f64) -> Option<f64> {
    (a.is_finite() && b.is_finite() && b > 0.0).then(|| a / b)
}

async fn harness_on(endpoint: Endpoint, plan: Plan) -> Result<RunResult, SetupError> {
    let url = endpoint.base.clone();
    let outcome = drive::run(Arc::new(endpoint), plan.clone(), &Progress::hidden())
        .await
        .map_err(|e| SetupError(e.to_string()))?;
    Ok(RunResult::new(&url, plan, outcome, None))
}

async fn resolve(url: &str) -> Result<Endpoint, SetupError> {
    Endpoint::resolve(url)
        .await
        .map_err(|e| SetupError(e.to_string()))
}

async fn harness(url: &str, plan: Plan) -> Result<RunResult, SetupError> {
    harness_on(resolve(url).await?, plan).await
}

fn closed(args: &BenchArgs, scenario: Scenario) -> Plan {
    Plan {
        scenario,
        mode: Mode::Closed,
        connections: args.connections,
        warmup: args.warmup,
        duration: Duration::from_secs(args.step.as_secs().max(1)),
        max_requests: None,
        timeout: Duration::from_secs(5),
        late_after: Duration::from_millis(1),
        exclusive: true,
    }
}

fn open(args: &BenchArgs, scenario: Scenario, rate: f64) -> Plan {
    Plan {
        mode: Mode::Open { rate },
        connections: args.open_connections,
        duration: args.open_duration,
        ..closed(args, scenario)
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct OpenLoop {
    /// `origin` or `bare hyper` (the machine's own tail at this rate).
    pub server: &'static str,
    pub scenario: &'static str,
    pub rate: f64,
    /// Successful answers; the latencies are theirs (`None`: nothing succeeded).
    pub ok: u64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub p999_ms: Option<f64>,
    pub late: u64,
    pub unsent: u64,
    /// Failed requests, unsent ones included.
    pub errors: u64,
    #[serde(skip)]
    pub curve: Vec<(f64, f64)>,
}

impl OpenLoop {
    pub fn of(result: &RunResult, rate: f64) -> Self {
        let l = result.total.latency_ms;
        let send = result.open_loop.as_ref();
        Self {
            server: "origin",
            scenario: result.plan.scenario.name(),
            rate,
            ok: result.total.ok,
            p50_ms: report::data(l.p50),
            p99_ms: report::data(l.p99),
            p999_ms: report::data(l.p999),
            late: send.map_or(0, |s| s.late),
            unsent: send.map_or(0, |s| s.unsent),
            errors: result.total.failed,
            curve: result.total.percentiles.clone(),
        }
    }

    /// The same run, against another server than the origin.
    pub fn on(self, server: &'static str) -> Self {
        Self { server, ..self }
    }

    /// What the machine adds to a p99 by itself: the bare server's p99 above its p50 (a request
    /// that meets another process holding a core waits for it, whatever it asked for).
    pub fn machine_tail_ms(&self) -> Option<f64> {
        (self.ok > 0 && self.errors == 0)
            .then_some(self.p99_ms? - self.p50_ms?)
            .filter(|tail| tail.is_finite())
    }

    /// `p50 / p99 / p99.9 ms`, or why there are none.
    pub fn latencies(&self) -> String {
        match (self.ok, self.p50_ms, self.p99_ms, self.p999_ms) {
            (1.., Some(p50), Some(p99), Some(p999)) => {
                format!("{p50:.2} / {p99:.2} / {p999:.2} ms")
            }
            _ => "no successful request".into(),
        }
    }
}

/// The medians and every round's value of one measurement, with its CPU cost per request.
#[derive(Clone, Debug, Serialize)]
pub struct Series {
    pub name: &'static str,
    pub per_round: Vec<f64>,
    pub median: f64,
    /// The CPU cost of the round with the median total cost.
    pub cpu: Option<Cost>,
    /// POST runs: the origin's mean statement time over every round's run.
    pub statement_ms: Option<f64>,
}

pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Comparison {
    AtLeast,
    AtMost,
}

/// One claim of the issue: a measured figure against its threshold.
#[derive(Clone, Debug, Serialize)]
pub struct Claim {
    pub name: String,
    /// `None`: nothing to judge (every request failed, or a run it compares is missing).
    pub value: Option<f64>,
    pub comparison: Comparison,
    pub threshold: f64,
    /// Appended to the value and the threshold: `×`, ` ms`, ` MiB`, or nothing.
    pub unit: &'static str,
    /// Why the claim fails whatever its value (failed requests in a run it compares).
    pub disqualified: Option<String>,
    /// What bounds the figure on this machine, with the numbers (Little's law on commits, the
    /// CPU the processes share), and what the CPU costs predict.
    pub bounds: Vec<String>,
    pub passed: bool,
}

impl Claim {
    pub fn new(
        name: impl Into<String>,
        value: Option<f64>,
        comparison: Comparison,
        threshold: f64,
        unit: &'static str,
    ) -> Self {
        let mut claim = Self {
            name: name.into(),
            value,
            comparison,
            threshold,
            unit,
            disqualified: None,
            bounds: Vec::new(),
            passed: false,
        };
        claim.judge();
        claim
    }

    pub fn disqualify(mut self, why: Option<String>) -> Self {
        if why.is_some() {
            self.disqualified = why;
        }
        self.judge();
        self
    }

    pub fn bound(mut self, text: Option<String>) -> Self {
        self.bounds.extend(text);
        self
    }

    fn judge(&mut self) {
        self.passed = self.disqualified.is_none()
            && self.value.is_some_and(|v| match self.comparison {
                Comparison::AtLeast => v >= self.threshold,
                Comparison::AtMost => v <= self.threshold,
            });
    }

    fn figure(&self, v: f64) -> String {
        match self.unit {
            "×" => format!("{v:.2}×"),
            "" => format!("{v:.0}"),
            unit => format!("{v:.2}{unit}"),
        }
    }

    /// The claim's table row.
    pub fn row(&self) -> String {
        let value = match (self.value, &self.disqualified) {
            (_, Some(why)) => format!(
                "{} ({why})",
                self.value.map_or("—".into(), |v| self.figure(v))
            ),
            (Some(v), None) => self.figure(v),
            (None, None) => "no figure (no successful request)".into(),
        };
        let required = format!(
            "{} {}",
            match self.comparison {
                Comparison::AtLeast => "≥",
                Comparison::AtMost => "≤",
            },
            self.figure(self.threshold)
        );
        format!(
            "| {} | **{value}** | {required} | {} | {} |\n",
            self.name,
            if self.passed { "met" } else { "MISSED" },
            if self.bounds.is_empty() {
                "—".into()
            } else {
                self.bounds.join("; ")
            }
        )
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct BenchResult {
    pub date: String,
    pub machine: Machine,
    /// The 1-minute load average at the start and the end (other work on the machine).
    pub load_average: (f64, f64),
    pub rounds: usize,
    pub step_s: u64,
    pub connections: usize,
    pub threads: usize,
    /// `--origin-env`: settings every origin ran with on top of production's.
    pub origin_env: Vec<String>,
    /// `--latency-cpus`: the cores the open-loop runs were pinned to (empty: not pinned).
    pub latency_cores: Vec<usize>,
    pub commit: commit::CommitTime,
    pub throughput: Vec<Series>,
    pub claims: Vec<Claim>,
    pub open_loop: Vec<OpenLoop>,
    /// Statements per increment (1 ÷ average batch) and mean statement time, batched origin,
    /// over its side-by-side POST runs (harness and wrk).
    pub statements_per_increment: Option<f64>,
    pub statement_ms: Option<f64>,
    pub origin_peak_rss_bytes: u64,
    pub origin_unbatched_peak_rss_bytes: u64,
    pub write_runs: usize,
    pub write_increments_checked: u64,
    pub correctness_violations: Vec<String>,
    /// The database round-trip and several-origins runs (docs/capacity.md).
    pub capacity: capacity::Capacity,
    pub passed: bool,
}

fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

/// The side-by-side measurements, in the order of each round.
const NAMES: [&str; 7] = [
    "wrk → bare hyper GET",
    "wrk → origin cached GET",
    "wrk → origin POST batched",
    "loadtest → bare hyper GET",
    "loadtest → origin cached GET",
    "loadtest → origin POST batched",
    "loadtest → origin POST MAX_BATCH=1",
];

/// Write runs' correctness, gathered over the whole bench.
#[derive(Debug, Default)]
pub struct Ledger {
    pub runs: usize,
    pub increments: u64,
    pub violations: Vec<String>,
}

impl Ledger {
    pub fn record(&mut self, result: &RunResult) {
        if let Some(w) = &result.writes {
            self.runs += 1;
            self.increments += w.successes;
            self.violations.extend(
                w.violations
                    .iter()
                    .map(|v| format!("{}: {v}", result.target)),
            );
        }
    }
}

pub async fn run(args: &BenchArgs) -> Result<bool, SetupError> {
    if args.rounds == 0 {
        return Err(SetupError("--rounds must be at least 1".into()));
    }
    std::fs::create_dir_all(&args.out)
        .map_err(|e| SetupError(format!("{}: {e}", args.out.display())))?;
    let load_before = load_average();
    // Pinned as the open loops are: the latency claims are judged against this commit time.
    let commit = pinned(
        args,
        &[],
        commit::measure(
            &args.database_url,
            args.pg_bin_dir.as_deref(),
            args.pg_data_dir.as_deref(),
        ),
    )
    .await?;
    eprintln!(
        "bench: idle commit {:.2} ms mean ({:.2} ms median, {:.2} ms p99) per UPDATE; fdatasync {}",
        commit.statement_mean_ms,
        commit.statement_p50_ms,
        commit.statement_p99_ms,
        commit
            .fdatasync_ms
            .map_or("not measured (no --pg-bin-dir)".into(), |ms| format!(
                "{ms:.2} ms"
            ))
    );
    let bare = start_bare(args).await?;
    let batched = start_origin(args, "origin-batched", MAX_BATCH, &args.database_url).await?;
    let single = start_origin(args, "origin-max-batch-1", 1, &args.database_url).await?;
    eprintln!(
        "bench: bare hyper {}, origin {} (batched), {} (MAX_BATCH=1); {} rounds of {} s",
        bare.addr(),
        batched.addr(),
        single.addr(),
        args.rounds,
        args.step.as_secs()
    );
    let wrk = Wrk::new(
        &args.wrk,
        args.threads,
        args.connections,
        args.step,
        &args.out,
    )?;

    let mut per_round: Vec<Vec<f64>> = vec![Vec::new(); NAMES.len()];
    let mut costs: Vec<Vec<Cost>> = vec![Vec::new(); NAMES.len()];
    let mut statements: Vec<Counters> = vec![Counters::default(); NAMES.len()];
    let mut ledger = Ledger::default();
    let mut post_load = Counters::default();
    let pg = args.pg_data_dir.as_deref();
    for round in 1..=args.rounds {
        for (i, name) in NAMES.iter().enumerate() {
            let (server, method) = match i {
                0 | 3 => (&bare, Method::Get),
                1 | 4 => (&batched, Method::Get),
                2 | 5 => (&batched, Method::Post),
                _ => (&single, Method::Post),
            };
            let watched = Watched::new(vec![server.pid], pg)?;
            let counters = (server.pid != bare.pid).then_some(server);
            let before = (
                watched.snapshot()?,
                match counters {
                    Some(o) => Counters::read(&[o]).await?,
                    None => Counters::default(),
                },
            );
            let (rate, requests, client) = if i < 3 {
                let run = wrk.run(&server.url(), method).await?;
                (run.rate, run.requests as f64, Client::Wrk)
            } else {
                let scenario = match method {
                    Method::Get => Scenario::Read,
                    Method::Post => Scenario::Write,
                };
                let result = harness(&server.url(), closed(args, scenario)).await?;
                if result.total.failed > 0 {
                    return Err(SetupError(format!(
                        "{name} had {} failed requests ({:?}); throughput would be meaningless",
                        result.total.failed, result.total.errors
                    )));
                }
                ledger.record(&result);
                // No server-side count on the bare server: the measured rate over the whole
                // loaded time (a closed loop runs at one rate, warm-up included).
                let requests = result.total.ok as f64 * result.loaded_s / result.measured_s;
                (result.total.rate, requests, Client::Harness)
            };
            let after = (
                watched.snapshot()?,
                match counters {
                    Some(o) => Counters::read(&[o]).await?,
                    None => Counters::default(),
                },
            );
            let done = after.1.since(&before.1);
            let served = match (counters, method) {
                (None, _) => requests,
                (Some(_), Method::Get) => done.gets,
                (Some(_), Method::Post) => done.increments,
            };
            if method == Method::Post && i < 3 && done.increments < requests {
                return Err(SetupError(format!(
                    "{name}: wrk counted {requests} answers but the origin committed {} increments: its POSTs are not increments",
                    done.increments
                )));
            }
            if method == Method::Post {
                statements[i].statements += done.statements;
                statements[i].add_seconds += done.add_seconds;
            }
            if server.pid == batched.pid && method == Method::Post {
                post_load.statements += done.statements;
                post_load.increments += done.increments;
                post_load.add_seconds += done.add_seconds;
            }
            per_round[i].push(rate);
            costs[i].extend(Cost::of(&before.0, &after.0, served, client));
        }
        eprintln!(
            "bench: round {round}/{}: {}",
            args.rounds,
            NAMES
                .iter()
                .zip(&per_round)
                .map(|(n, v)| format!("{n} {:.0}/s", v[round - 1]))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }

    // The bare server first: its tail at this rate is the machine's own, the baseline of the
    // origin's open-loop latencies (here and at every round trip below).
    let bare_open = latency_run(
        args,
        &[bare.pid],
        resolve(&bare.url()).await?,
        open(args, Scenario::Read, args.open_rate),
    )
    .await?;
    let mut open_loop = vec![OpenLoop::of(&bare_open, args.open_rate).on("bare hyper")];
    for scenario in [Scenario::Read, Scenario::Write] {
        let result = latency_run(
            args,
            &[batched.pid],
            resolve(&batched.url()).await?,
            open(args, scenario, args.open_rate),
        )
        .await?;
        ledger.record(&result);
        open_loop.push(OpenLoop::of(&result, args.open_rate));
    }
    let rss = |o: &Origin| procfs::status_bytes(o.pid, "VmHWM").unwrap_or(0);
    let (batched_rss, single_rss) = (rss(&batched), rss(&single));
    drop((bare, batched, single));
    let capacity = capacity::run(args).await?;

    let throughput: Vec<Series> = NAMES
        .iter()
        .zip(per_round)
        .zip(costs)
        .zip(statements)
        .map(|(((name, values), mut costs), done)| {
            costs.sort_by(|a, b| a.total_us.total_cmp(&b.total_us));
            Series {
                name,
                median: median(&values),
                per_round: values,
                cpu: costs.get(costs.len() / 2).copied(),
                statement_ms: ratio(done.add_seconds * 1000.0, done.statements),
            }
        })
        .collect();
    let statement_ms = ratio(post_load.add_seconds * 1000.0, post_load.statements);
    let claims = side_by_side_claims(args, &throughput, &commit, batched_rss)
        .into_iter()
        .chain(capacity.claims(&commit, &open_loop[0]))
        .chain([Claim::new(
            "write-correctness violations (every write run)",
            Some((ledger.violations.len() + capacity.violations.len()) as f64),
            Comparison::AtMost,
            0.0,
            "",
        )])
        .collect::<Vec<_>>();

    let result = BenchResult {
        date: report::utc_timestamp(SystemTime::now()),
        machine: Machine::current(),
        load_average: (load_before, load_average()),
        rounds: args.rounds,
        step_s: args.step.as_secs().max(1),
        connections: args.connections,
        threads: args.threads,
        origin_env: args
            .origin_env
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect(),
        latency_cores: args.latency_cores(),
        commit,
        passed: claims.iter().all(|c| c.passed),
        throughput,
        claims,
        open_loop,
        statements_per_increment: ratio(post_load.statements, post_load.increments),
        statement_ms,
        origin_peak_rss_bytes: batched_rss,
        origin_unbatched_peak_rss_bytes: single_rss,
        write_runs: ledger.runs,
        write_increments_checked: ledger.increments,
        correctness_violations: ledger.violations,
        capacity,
    };
    write_results(&args.out, &result)?;
    Ok(result.passed)
}

fn write_results(out: &Path, result: &BenchResult) -> Result<(), SetupError> {
    let table = markdown(result);
    print!("{table}");
    let json = serde_json::to_string_pretty(result).map_err(|e| SetupError(e.to_string()))? + "\n";
    for (file, content) in [
        ("bench.json", json),
        ("bench.md", table.clone()),
        ("report.html", html(result, &table)),
    ] {
        std::fs::write(out.join(file), content).map_err(|e| SetupError(format!("{file}: {e}")))?;
    }
    println!(
        "wrote {}/bench.json, bench.md and report.html",
        out.display()
    );
    Ok(())
}

/// Item 4's claims, with wrk and with the harness, and the bounds of each on this machine.
fn side_by_side_claims(
    args: &BenchArgs,
    t: &[Series],
    commit: &commit::CommitTime,
    rss_bytes: u64,
) -> Vec<Claim> {
    let mut claims = Vec::new();
    // Little's law with real commits: a closed loop of C connections alternates two batches of
    // C/2, each request waiting one statement for the batch in flight and one for its own, so it
    // gets at most C ÷ (2 × statement time) POSTs a second. No commit is shorter than the disk's
    // fdatasync (the idle commit stands in where pg_test_fsync did not run).
    let c = args.connections as f64;
    let (floor_ms, floor_name) = match commit.fdatasync_ms {
        Some(ms) => (ms, "fdatasync"),
        None => (commit.statement_mean_ms, "idle commit"),
    };
    let commits_bound = |bare: &Series, post: &Series| {
        let physical = c / (2.0 * floor_ms / 1000.0);
        let mut text = format!(
            "commits: {floor_name} {floor_ms:.2} ms ⇒ ≤ {} ÷ (2 × {floor_ms:.2} ms) = {}/s = {}× bare",
            args.connections,
            thousands(physical),
            opt(ratio(physical, bare.median), 2)
        );
        if let Some(s) = post.statement_ms {
            let run = c / (2.0 * s / 1000.0);
            text += &format!(
                "; statements took {s:.2} ms in these runs ⇒ {}/s = {}×",
                thousands(run),
                opt(ratio(run, bare.median), 2)
            );
        }
        text
    };
    for (client, bare, get, post) in [("wrk", 0, 1, 2), ("loadtest", 3, 4, 5)] {
        let cpu_bound = |i: usize| {
            let (b, o) = (t[bare].cpu?, t[i].cpu?);
            Some(format!(
                "CPU (server + PostgreSQL + client): bare {:.1} µs per GET, origin {:.1} µs per request ⇒ {:.2}× predicted with the same cores",
                b.total_us,
                o.total_us,
                b.total_us / o.total_us
            ))
        };
        claims.push(
            Claim::new(
                format!(
                    "cached GET ÷ bare hyper ({client}, {} connections)",
                    args.connections
                ),
                ratio(t[get].median, t[bare].median),
                Comparison::AtLeast,
                0.95,
                "×",
            )
            .bound(cpu_bound(get)),
        );
        claims.push(
            Claim::new(
                format!(
                    "POST batched ÷ bare hyper ({client}, {} connections)",
                    args.connections
                ),
                ratio(t[post].median, t[bare].median),
                Comparison::AtLeast,
                0.8,
                "×",
            )
            .bound(Some(commits_bound(&t[bare], &t[post])))
            .bound(cpu_bound(post)),
        );
    }
    claims.push(Claim::new(
        "POST batched ÷ MAX_BATCH=1 (loadtest)",
        ratio(t[5].median, t[6].median),
        Comparison::AtLeast,
        10.0,
        "×",
    ));
    claims.push(Claim::new(
        "origin peak RSS (VmHWM), batched, after the side-by-side load",
        (rss_bytes > 0).then(|| rss_bytes as f64 / 1048576.0),
        Comparison::AtMost,
        RSS_LIMIT_MIB,
        " MiB",
    ));
    claims
}

pub fn thousands(v: f64) -> String {
    if !v.is_finite() {
        return "—".into();
    }
    let digits = format!("{:.0}", v.abs());
    let mut out = String::from(if v < -0.5 { "-" } else { "" });
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `0.0086` style, or `—`.
fn opt(v: Option<f64>, decimals: usize) -> String {
    v.filter(|v| v.is_finite())
        .map_or("—".into(), |v| format!("{v:.decimals$}"))
}

/// The tables printed, saved as bench.md, and pasted into the README.
pub fn markdown(r: &BenchResult) -> String {
    let mut t = format!(
        "Benchmark {} on {} ({} cores, Linux {}); load average {} at the start, {} at the end. \
         Closed loop: {} connections, {} threads, {} rounds of {} s, medians. {}{}\n\n\
         Commit time of this PostgreSQL (before any load): {} ms mean, {} ms median, {} ms p99 per single-row UPDATE in autocommit; \
         the disk's fdatasync (pg_test_fsync) {}.\n\n\
         | measurement | median | rounds | CPU per request: server + PostgreSQL + client = total |\n|---|---|---|---|\n",
        r.date,
        r.machine.cpu,
        r.machine.cores,
        r.machine.kernel,
        opt(Some(r.load_average.0), 1),
        opt(Some(r.load_average.1), 1),
        r.connections,
        r.threads,
        r.rounds,
        r.step_s,
        match r.latency_cores.as_slice() {
            [] => "Open loops on every core (not pinned).".to_string(),
            cores => format!(
                "Open loops pinned to core {} with every process they involve (--latency-cpus; docs/capacity.md).",
                cores
                    .iter()
                    .map(|c| c.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        },
        if r.origin_env.is_empty() {
            String::new()
        } else {
            format!(" Origins ran with {}.", r.origin_env.join(" "))
        },
        opt(Some(r.commit.statement_mean_ms), 2),
        opt(Some(r.commit.statement_p50_ms), 2),
        opt(Some(r.commit.statement_p99_ms), 2),
        r.commit
            .fdatasync_ms
            .map_or("not measured".into(), |ms| format!("{ms:.2} ms"))
    );
    for s in &r.throughput {
        let rounds: Vec<String> = s.per_round.iter().map(|v| thousands(*v)).collect();
        t += &format!(
            "| {} | {}/s | {} | {} |\n",
            s.name,
            thousands(s.median),
            rounds.join(", "),
            cpu::cell(s.cpu.as_ref())
        );
    }
    if let (Some(wrk), Some(harness)) = (r.throughput.first(), r.throughput.get(3)) {
        t += &format!(
            "\nloadtest ÷ wrk on the bare server: {}× (what the harness's own CPU costs the server; not a claim).\n",
            opt(ratio(harness.median, wrk.median), 2)
        );
    }
    t += "\n| open loop, 0 ms round trip | rate | p50 / p99 / p99.9 | late, unsent, errors |\n|---|---|---|---|\n";
    for o in &r.open_loop {
        t += &format!(
            "| {} {} | {}/s | {} | {}, {}, {} |\n",
            o.server,
            if o.scenario == "read" { "GET" } else { "POST" },
            thousands(o.rate),
            o.latencies(),
            o.late,
            o.unsent,
            o.errors
        );
    }
    t += &format!(
        "\nBatched origin under the side-by-side POST load: {} statements per increment (average batch {}), {} ms per statement. \
         Peak RSS (VmHWM): {:.1} MiB batched, {:.1} MiB MAX_BATCH=1. Write correctness: {} violations in {} write runs ({} increments checked).\n",
        opt(r.statements_per_increment, 4),
        opt(r.statements_per_increment.and_then(|s| ratio(1.0, s)), 0),
        opt(r.statement_ms, 2),
        r.origin_peak_rss_bytes as f64 / 1048576.0,
        r.origin_unbatched_peak_rss_bytes as f64 / 1048576.0,
        r.correctness_violations.len(),
        r.write_runs,
        thousands(r.write_increments_checked as f64)
    );
    t += &capacity::markdown(&r.capacity);
    t += "\n### Claims (issue 18)\n\n| claim | measured | required | verdict | what bounds it here |\n|---|---|---|---|---|\n";
    for c in &r.claims {
        t += &c.row();
    }
    t += &format!(
        "\nResult: {}\n",
        if r.passed {
            "all claims met"
        } else {
            "FAILED (see the claims)"
        }
    );
    t
}

fn html(r: &BenchResult, table: &str) -> String {
    let curves: Vec<(&str, Vec<(f64, f64)>)> = r
        .open_loop
        .iter()
        .map(|o| {
            let name = match (o.server, o.scenario) {
                ("origin", "read") => "GET (open loop)",
                ("origin", _) => "POST (open loop)",
                _ => "bare hyper GET (open loop)",
            };
            (
                name,
                o.curve
                    .iter()
                    .map(|&(p, v)| (-(1.0 - (p / 100.0).min(0.999_999)).log10(), v))
                    .collect(),
            )
        })
        .collect();
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Counter Service benchmark {}</title>\
         <style>body{{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;padding:0 1em}}\
         pre{{background:#f6f6f6;padding:1em;white-space:pre-wrap}}svg{{max-width:100%;height:auto}}</style></head><body>\
         <h1>Counter Service benchmark</h1><pre>{}</pre><h2>Open-loop latency by percentile, batched origin and bare hyper</h2>{}</body></html>",
        r.date,
        table.replace('&', "&amp;").replace('<', "&lt;"),
        report::percentile_svg(&curves)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The flags' defaults, as `make bench` runs them.
    fn default_args() -> BenchArgs {
        args_with(&[]).unwrap()
    }

    /// The required flags with placeholders, then `extra`.
    fn args_with(extra: &[&str]) -> Result<BenchArgs, clap::Error> {
        let mut argv = vec![
            "loadtest",
            "bench",
            "--origin",
            "o",
            "--bare",
            "b",
            "--database-url",
            "postgres://x",
        ];
        argv.extend_from_slice(extra);
        match <crate::cli::Cli as clap::Parser>::try_parse_from(argv)?.command {
            crate::cli::Command::Bench(args) => Ok(args),
            _ => panic!("not bench"),
        }
    }

    #[test]
    fn sweeps_are_lists_and_an_empty_one_skips_the_sweep() {
        let args = default_args();
        assert_eq!(&*args.db_rtt_ms, &[0.0, 1.0, 2.0]);
        assert_eq!(&*args.origins, &[1, 2, 4]);
        let args = args_with(&["--origins", "", "--db-rtt-ms", "0.5, 1"]).unwrap();
        assert!(args.origins.is_empty());
        assert_eq!(&*args.db_rtt_ms, &[0.5, 1.0]);
        assert!(args_with(&["--origins", "1,x"]).is_err());
        assert!(args_with(&["--latency-cpus", ""])
            .unwrap()
            .latency_cores()
            .is_empty());
        assert_eq!(
            args_with(&["--latency-cpus", "1,3"])
                .unwrap()
                .latency_cores(),
            [1, 3]
        );
        assert_eq!(
            default_args().latency_cores(),
            Vec::from_iter(testkit::affinity::last_allowed_core())
        );
    }

    #[test]
    fn origin_settings_are_name_value_pairs_and_never_the_benchs_own() {
        let args = args_with(&[
            "--origin-env",
            "READ_CACHE_TTL_MS=0",
            "--origin-env",
            "X=a=b",
        ])
        .unwrap();
        assert_eq!(
            args.origin_env,
            [
                ("READ_CACHE_TTL_MS".into(), "0".into()),
                ("X".into(), "a=b".into())
            ]
        );
        for bad in [
            "READ_CACHE_TTL_MS",
            "=1",
            "MAX_BATCH=4",
            "DATABASE_URL=postgres://y",
        ] {
            assert!(args_with(&["--origin-env", bad]).is_err(), "{bad}");
        }
    }

    #[test]
    fn medians_resist_one_noisy_round() {
        assert_eq!(median(&[100.0, 5.0, 110.0]), 100.0);
        assert_eq!(median(&[1.0, 3.0]), 2.0);
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn claims_without_a_figure_or_with_failures_are_missed() {
        let met = Claim::new("x", Some(0.9), Comparison::AtLeast, 0.8, "×");
        assert!(met.passed);
        assert!(!Claim::new("x", None, Comparison::AtLeast, 0.8, "×").passed);
        assert!(!Claim::new("x", Some(f64::NAN), Comparison::AtLeast, 0.8, "×").passed);
        assert!(
            !met.clone()
                .disqualify(Some("3 failed requests".into()))
                .passed
        );
        assert!(met.clone().disqualify(None).passed);
        assert!(Claim::new("p99", Some(9.0), Comparison::AtMost, 9.0, " ms").passed);
        assert!(!Claim::new("p99", Some(9.1), Comparison::AtMost, 9.0, " ms").passed);
        let row = Claim::new("x", None, Comparison::AtLeast, 0.8, "×").row();
        assert!(row.contains("no figure") && row.contains("MISSED"), "{row}");
        assert_eq!(ratio(1.0, 0.0), None);
        assert_eq!(ratio(f64::NAN, 2.0), None);
        assert_eq!(thousands(f64::NAN), "—");
        assert_eq!(thousands(1234567.4), "1,234,567");
    }

    #[test]
    fn a_run_where_nothing_succeeded_prints_no_nan_and_fails() {
        let dead = OpenLoop {
            server: "origin",
            scenario: "write",
            rate: 5000.0,
            ok: 0,
            p50_ms: None,
            p99_ms: None,
            p999_ms: None,
            late: 0,
            unsent: 25_000,
            errors: 25_000,
            curve: Vec::new(),
        };
        let series: Vec<Series> = NAMES
            .iter()
            .map(|name| Series {
                name,
                per_round: vec![0.0],
                median: 0.0,
                cpu: None,
                statement_ms: None,
            })
            .collect();
        let args = default_args();
        let commit = commit::CommitTime {
            statement_mean_ms: 1.2,
            statement_p50_ms: 1.1,
            statement_p99_ms: 2.0,
            statement_max_ms: 3.0,
            fdatasync_ms: None,
        };
        let claims = side_by_side_claims(&args, &series, &commit, 0);
        let r = BenchResult {
            date: "2026-11-27T16:00:00Z".into(),
            machine: Machine::current(),
            load_average: (f64::NAN, 2.0),
            rounds: 1,
            step_s: 4,
            connections: 256,
            threads: 2,
            origin_env: Vec::new(),
            latency_cores: vec![1],
            commit,
            passed: false,
            throughput: series,
            claims,
            open_loop: vec![dead],
            statements_per_increment: None,
            statement_ms: None,
            origin_peak_rss_bytes: 0,
            origin_unbatched_peak_rss_bytes: 0,
            write_runs: 0,
            write_increments_checked: 0,
            correctness_violations: Vec::new(),
            capacity: capacity::Capacity::default(),
        };
        assert!(r.claims.iter().all(|c| !c.passed), "{:?}", r.claims);
        let text = markdown(&r);
        assert!(!text.contains("NaN") && !text.contains("inf"), "{text}");
        assert!(text.contains("no successful request"), "{text}");
    }

    #[test]
    fn the_post_claims_name_the_commit_bound() {
        let args = default_args();
        let series = |name, median, statement_ms| Series {
            name,
            per_round: vec![median],
            median,
            cpu: None,
            statement_ms,
        };
        let t: Vec<Series> = NAMES
            .iter()
            .map(|name| match *name {
                n if n.contains("bare") => series(name, 128_000.0, None),
                n if n.contains("POST batched") => series(name, 64_000.0, Some(2.0)),
                n if n.contains("MAX_BATCH=1") => series(name, 300.0, Some(3.0)),
                _ => series(name, 100_000.0, None),
            })
            .collect();
        let commit = commit::CommitTime {
            statement_mean_ms: 2.5,
            statement_p50_ms: 2.4,
            statement_p99_ms: 4.0,
            statement_max_ms: 6.0,
            fdatasync_ms: Some(1.6),
        };
        let claims = side_by_side_claims(&args, &t, &commit, 20 << 20);
        let post = claims
            .iter()
            .find(|c| c.name.starts_with("POST batched ÷ bare hyper (wrk"))
            .unwrap();
        assert_eq!((post.value, post.passed), (Some(0.5), false));
        // 256 ÷ (2 × 1.6 ms) = 80,000/s = 0.625× of 128,000; 256 ÷ (2 × 2 ms) = 64,000/s.
        assert!(
            post.bounds[0]
                .contains("fdatasync 1.60 ms ⇒ ≤ 256 ÷ (2 × 1.60 ms) = 80,000/s = 0.62× bare")
                && post.bounds[0]
                    .contains("statements took 2.00 ms in these runs ⇒ 64,000/s = 0.50×"),
            "{:?}",
            post.bounds
        );
        let rss = claims.iter().find(|c| c.name.contains("RSS")).unwrap();
        assert_eq!((rss.value, rss.passed), (Some(20.0), true));
    }
}
