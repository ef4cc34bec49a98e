//! `make bench`: in one run, the origin (batched, and with `MAX_BATCH=1`) against PostgreSQL and
//! a bare hyper server returning a constant body (the physical limit of the read path), measured
//! side by side on this machine. Closed-loop throughput runs are interleaved round by round and
//! summarised by their medians, because on a shared 2-core machine single runs vary by ±15%.
//!
//! Claims checked (the run exits 1 when one is missed): POST batched ≥ 0.5× bare hyper and
//! ≥ 10× `MAX_BATCH=1`; cached GET ≥ 0.85× bare hyper; the harness ≥ 0.8× `wrk` on the bare
//! server (the harness must not be the bottleneck); zero write-correctness violations.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use clap::Args;
use serde::Serialize;
use tokio::process::{Child, Command};

pub mod capacity;

use crate::client::Endpoint;
use crate::drive::{self, Mode, Plan, Scenario};
use crate::progress::Progress;
use crate::report::{self, RunResult};
use crate::SetupError;

/// How long a started server may take to answer its readiness probe.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

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
    /// Directory for bench.json, bench.md, report.html and the origins' logs.
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
    /// Connections of the closed-loop runs (wrk and harness alike).
    #[arg(long, default_value_t = 256)]
    pub connections: usize,
    /// Threads of the harness runtime and of wrk.
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
    #[arg(long, value_delimiter = ',', default_value = "0,1,2")]
    pub db_rtt_ms: Vec<f64>,
    /// Numbers of origins writing the same row at once; an empty list skips the sweep.
    #[arg(long, value_delimiter = ',', default_value = "1,2,4")]
    pub origins: Vec<usize>,
    /// PostgreSQL's data directory (its postmaster.pid): the capacity runs read the server's CPU
    /// time per statement from /proc when it is on this machine.
    #[arg(long, env = "TEST_PG_DATA_DIR")]
    pub pg_data_dir: Option<PathBuf>,
    /// The database round trip (ms) of the several-origins runs.
    #[arg(long, default_value_t = 1.0)]
    pub origins_rtt_ms: f64,
}

/// A started server process.
struct Server {
    name: String,
    child: Child,
    addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
}

impl Server {
    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn pid(&self) -> Option<u32> {
        self.child.id()
    }
}

fn free_addr() -> Result<SocketAddr, SetupError> {
    // The port is released before the server binds it; on loopback nothing else races for it.
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| SetupError(format!("no free port: {e}")))
}

fn log_file(dir: &Path, name: &str) -> Result<std::fs::File, SetupError> {
    std::fs::File::create(dir.join(format!("{name}.log")))
        .map_err(|e| SetupError(format!("{name}.log: {e}")))
}

async fn start_origin(
    args: &BenchArgs,
    name: String,
    max_batch: usize,
    database_url: &str,
) -> Result<Server, SetupError> {
    let (addr, metrics_addr) = (free_addr()?, free_addr()?);
    let log = log_file(&args.out, &name)?;
    // Production settings except the addresses and the batch size (ACCESS_LOG_EVERY stays at
    // its default of 100: sampled access logs are part of the real cost).
    let child = Command::new(&args.origin)
        .env_clear()
        .env("LISTEN_ADDR", addr.to_string())
        .env("METRICS_ADDR", metrics_addr.to_string())
        .env("DATABASE_URL", database_url)
        .env("MAX_BATCH", max_batch.to_string())
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(|e| SetupError(e.to_string()))?)
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| SetupError(format!("cannot start {}: {e}", args.origin.display())))?;
    let server = Server {
        name,
        child,
        addr,
        metrics_addr: Some(metrics_addr),
    };
    wait_ready(&server, "/readyz").await?;
    Ok(server)
}

async fn start_bare(args: &BenchArgs) -> Result<Server, SetupError> {
    let addr = free_addr()?;
    let log = log_file(&args.out, "bare-hyper")?;
    let child = Command::new(&args.bare)
        .arg(addr.to_string())
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(|e| SetupError(e.to_string()))?)
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| SetupError(format!("cannot start {}: {e}", args.bare.display())))?;
    let server = Server {
        name: "bare-hyper".into(),
        child,
        addr,
        metrics_addr: None,
    };
    wait_ready(&server, "/api/counter").await?;
    Ok(server)
}

async fn wait_ready(server: &Server, path: &str) -> Result<(), SetupError> {
    let deadline = Instant::now() + READY_TIMEOUT;
    let endpoint = Endpoint::resolve(&server.url())
        .await
        .map_err(|e| SetupError(e.to_string()))?;
    let request = endpoint.get_request(path);
    while Instant::now() < deadline {
        if let Ok(mut connection) = endpoint.connect(0).await {
            if let Ok((200, _)) = connection
                .fetch(&request, Instant::now() + Duration::from_secs(2))
                .await
            {
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(SetupError(format!(
        "{} did not become ready on {} (see its log)",
        server.name, server.addr
    )))
}

/// `counter_batch_size_count` and `_sum` (statements and increments committed so far).
async fn batch_counters(server: &Server) -> Result<(f64, f64), SetupError> {
    let text = scrape(server).await?;
    let count = metric_value(&text, "counter_batch_size_count");
    let sum = metric_value(&text, "counter_batch_size_sum");
    count.zip(sum).ok_or_else(|| {
        SetupError(format!(
            "{}: /metrics lacks counter_batch_size",
            server.name
        ))
    })
}

async fn scrape(server: &Server) -> Result<String, SetupError> {
    let addr = server
        .metrics_addr
        .ok_or_else(|| SetupError(format!("{} has no metrics", server.name)))?;
    let endpoint = Endpoint::resolve(&format!("http://{addr}"))
        .await
        .map_err(|e| SetupError(e.to_string()))?;
    let mut connection = endpoint
        .connect(0)
        .await
        .map_err(|e| SetupError(format!("{}: metrics: {}", server.name, e.label())))?;
    match connection
        .fetch(
            &endpoint.get_request("/metrics"),
            Instant::now() + Duration::from_secs(5),
        )
        .await
    {
        Ok((200, text)) => Ok(text),
        Ok((status, _)) => Err(SetupError(format!(
            "{}: /metrics answered {status}",
            server.name
        ))),
        Err(e) => Err(SetupError(format!(
            "{}: /metrics: {}",
            server.name,
            e.label()
        ))),
    }
}

/// The value of an unlabelled sample in Prometheus text format.
pub fn metric_value(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Peak resident set (`VmHWM`) of a process, in bytes.
fn peak_rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    vm_hwm_bytes(&status)
}

pub fn vm_hwm_bytes(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Runs wrk (closed loop, GET) and returns its requests per second; any non-2xx or socket error
/// fails the measurement rather than inflating it.
async fn wrk(args: &BenchArgs, url: &str) -> Result<f64, SetupError> {
    let output = Command::new(&args.wrk)
        .arg(format!("-t{}", args.threads))
        .arg(format!("-c{}", args.connections))
        .arg(format!("-d{}s", args.step.as_secs().max(1)))
        .arg("--timeout")
        .arg("5s")
        .arg(format!("{url}/api/counter"))
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| SetupError(format!("cannot run {}: {e}", args.wrk.display())))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(SetupError(format!(
            "wrk failed: {stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        )));
    }
    parse_wrk(&stdout).map_err(|e| SetupError(format!("wrk: {e}\n{stdout}")))
}

pub fn parse_wrk(stdout: &str) -> Result<f64, String> {
    if let Some(line) = stdout
        .lines()
        .find(|l| l.contains("Non-2xx or 3xx responses") || l.contains("Socket errors"))
    {
        return Err(format!("errors during the run: {}", line.trim()));
    }
    stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| "no Requests/sec line".into())
}

async fn harness(url: &str, plan: Plan) -> Result<RunResult, SetupError> {
    let endpoint = Endpoint::resolve(url)
        .await
        .map_err(|e| SetupError(e.to_string()))?;
    harness_on(endpoint, plan).await
}

async fn harness_on(endpoint: Endpoint, plan: Plan) -> Result<RunResult, SetupError> {
    let url = endpoint.base.clone();
    let outcome = drive::run(Arc::new(endpoint), plan.clone(), &Progress::hidden())
        .await
        .map_err(|e| SetupError(e.to_string()))?;
    Ok(RunResult::new(&url, plan, outcome, None))
}

fn open_loop_of(result: &RunResult, rate: f64) -> OpenLoop {
    let l = result.total.latency_ms;
    let send = result.open_loop.as_ref().expect("an open-loop run");
    OpenLoop {
        scenario: result.plan.scenario.name(),
        rate,
        p50_ms: l.p50,
        p99_ms: l.p99,
        p999_ms: l.p999,
        late: send.late,
        unsent: send.unsent,
        errors: result.total.failed,
        curve: result.total.percentiles.clone(),
    }
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

/// The medians and every round's value of one measurement.
#[derive(Clone, Debug, Serialize)]
pub struct Series {
    pub name: &'static str,
    pub per_round: Vec<f64>,
    pub median: f64,
}

pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => 0.0,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Claim {
    pub name: String,
    pub ratio: f64,
    pub at_least: f64,
    pub passed: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct OpenLoop {
    pub scenario: &'static str,
    pub rate: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub late: u64,
    pub unsent: u64,
    pub errors: u64,
    #[serde(skip)]
    pub curve: Vec<(f64, f64)>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    pub cpu: String,
    pub cores: usize,
    pub kernel: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct BenchResult {
    pub date: String,
    pub machine: Machine,
    pub rounds: usize,
    pub step_s: u64,
    pub connections: usize,
    pub throughput: Vec<Series>,
    pub claims: Vec<Claim>,
    pub open_loop: Vec<OpenLoop>,
    /// Statements per increment (1 / average batch size), batched origin.
    pub statements_per_increment: f64,
    pub statements_per_increment_unbatched: f64,
    pub origin_peak_rss_bytes: u64,
    pub origin_unbatched_peak_rss_bytes: u64,
    pub write_runs: usize,
    pub write_increments_checked: u64,
    pub correctness_violations: Vec<String>,
    /// The database round-trip and several-origins runs (docs/capacity.md).
    pub capacity: capacity::Capacity,
    pub passed: bool,
}

fn machine() -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .and_then(|r| r.split(':').nth(1))
        })
        .map_or("unknown".into(), |m| m.trim().to_string());
    Machine {
        cpu,
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map_or("unknown".into(), |k| k.trim().into()),
    }
}

pub async fn run(args: &BenchArgs) -> Result<bool, SetupError> {
    if args.rounds == 0 {
        return Err(SetupError("--rounds must be at least 1".into()));
    }
    std::fs::create_dir_all(&args.out)
        .map_err(|e| SetupError(format!("{}: {e}", args.out.display())))?;
    let bare = start_bare(args).await?;
    let batched = start_origin(args, "origin-batched".into(), 512, &args.database_url).await?;
    let single = start_origin(args, "origin-max-batch-1".into(), 1, &args.database_url).await?;
    eprintln!(
        "bench: bare hyper {}, origin {} (batched), {} (MAX_BATCH=1); {} rounds of {} s",
        bare.addr,
        batched.addr,
        single.addr,
        args.rounds,
        args.step.as_secs()
    );

    let names = [
        "wrk → bare GET",
        "loadtest → bare GET",
        "origin cached GET",
        "origin POST batched",
        "origin POST MAX_BATCH=1",
    ];
    let mut per_round: Vec<Vec<f64>> = vec![Vec::new(); names.len()];
    let mut violations = Vec::new();
    let mut write_runs = 0;
    let mut increments = 0;
    let mut record_writes = |result: &RunResult, violations: &mut Vec<String>| {
        if let Some(w) = &result.writes {
            write_runs += 1;
            increments += w.successes;
            violations.extend(
                w.violations
                    .iter()
                    .map(|v| format!("{}: {v}", result.target)),
            );
        }
    };
    let before_batched = batch_counters(&batched).await?;
    let before_single = batch_counters(&single).await?;
    for round in 1..=args.rounds {
        per_round[0].push(wrk(args, &bare.url()).await?);
        let runs = [
            harness(&bare.url(), closed(args, Scenario::Read)).await?,
            harness(&batched.url(), closed(args, Scenario::Read)).await?,
            harness(&batched.url(), closed(args, Scenario::Write)).await?,
            harness(&single.url(), closed(args, Scenario::Write)).await?,
        ];
        for (i, result) in runs.iter().enumerate() {
            if result.total.failed > 0 {
                return Err(SetupError(format!(
                    "{} had {} failed requests ({:?}); throughput would be meaningless",
                    names[i + 1],
                    result.total.failed,
                    result.total.errors
                )));
            }
            per_round[i + 1].push(result.total.rate);
            record_writes(result, &mut violations);
        }
        eprintln!(
            "bench: round {round}/{}: {}",
            args.rounds,
            names
                .iter()
                .zip(&per_round)
                .map(|(n, v)| format!("{n} {:.0}/s", v[round - 1]))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let after_batched = batch_counters(&batched).await?;
    let after_single = batch_counters(&single).await?;
    let per_increment = |before: (f64, f64), after: (f64, f64)| {
        let (statements, increments) = (after.0 - before.0, after.1 - before.1);
        if increments > 0.0 {
            statements / increments
        } else {
            f64::NAN
        }
    };

    let mut open_loop = Vec::new();
    for scenario in [Scenario::Read, Scenario::Write] {
        let plan = Plan {
            mode: Mode::Open {
                rate: args.open_rate,
            },
            connections: args.open_connections,
            duration: args.open_duration,
            ..closed(args, scenario)
        };
        let result = harness(&batched.url(), plan).await?;
        record_writes(&result, &mut violations);
        open_loop.push(open_loop_of(&result, args.open_rate));
    }
    let batched_rss = batched.pid().and_then(peak_rss).unwrap_or(0);
    let single_rss = single.pid().and_then(peak_rss).unwrap_or(0);
    drop((bare, batched, single));
    let capacity = capacity::run(args).await?;

    let throughput: Vec<Series> = names
        .iter()
        .zip(per_round)
        .map(|(name, values)| Series {
            name,
            median: median(&values),
            per_round: values,
        })
        .collect();
    let m = |i: usize| throughput[i].median;
    let claim = |name: &str, ratio: f64, at_least| Claim {
        name: name.into(),
        ratio,
        at_least,
        passed: ratio >= at_least,
    };
    let mut claims = vec![
        claim("harness ÷ wrk (bare hyper)", m(1) / m(0), 0.8),
        claim("origin cached GET ÷ bare hyper", m(2) / m(1), 0.85),
        claim("origin POST batched ÷ bare hyper", m(3) / m(1), 0.5),
        claim("origin POST batched ÷ MAX_BATCH=1", m(3) / m(4), 10.0),
    ];
    claims.extend(
        capacity
            .claims()
            .into_iter()
            .map(|(name, ratio, at_least)| claim(&name, ratio, at_least)),
    );

    let result = BenchResult {
        date: report::utc_timestamp(SystemTime::now()),
        machine: machine(),
        rounds: args.rounds,
        step_s: args.step.as_secs().max(1),
        connections: args.connections,
        passed: claims.iter().all(|c| c.passed)
            && violations.is_empty()
            && capacity.violations.is_empty(),
        throughput,
        claims,
        open_loop,
        statements_per_increment: per_increment(before_batched, after_batched),
        statements_per_increment_unbatched: per_increment(before_single, after_single),
        origin_peak_rss_bytes: batched_rss,
        origin_unbatched_peak_rss_bytes: single_rss,
        write_runs,
        write_increments_checked: increments,
        correctness_violations: violations,
        capacity,
    };

    let table = markdown(&result);
    print!("{table}");
    let json = serde_json::to_string_pretty(&result).map_err(|e| SetupError(e.to_string()))? + "\n";
    for (file, content) in [
        ("bench.json", json),
        ("bench.md", table.clone()),
        ("report.html", html(&result, &table)),
    ] {
        std::fs::write(args.out.join(file), content)
            .map_err(|e| SetupError(format!("{file}: {e}")))?;
    }
    println!(
        "wrote {}/bench.json, bench.md and report.html",
        args.out.display()
    );
    Ok(result.passed)
}

fn thousands(v: f64) -> String {
    let digits = format!("{:.0}", v);
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The table printed, saved as bench.md, and pasted into the README.
pub fn markdown(r: &BenchResult) -> String {
    let mut t = format!(
        "Benchmark {} on {} ({} cores, Linux {}); closed loop: {} connections, {} rounds of {} s, medians.\n\n\
         | measurement | result |\n|---|---|\n",
        r.date, r.machine.cpu, r.machine.cores, r.machine.kernel, r.connections, r.rounds, r.step_s
    );
    for s in &r.throughput {
        let rounds: Vec<String> = s.per_round.iter().map(|v| thousands(*v)).collect();
        t += &format!(
            "| {} | {}/s (rounds: {}) |\n",
            s.name,
            thousands(s.median),
            rounds.join(", ")
        );
    }
    for c in &r.claims {
        t += &format!(
            "| {} | **{:.2}×** (claim ≥ {}×: {}) |\n",
            c.name,
            c.ratio,
            c.at_least,
            if c.passed { "met" } else { "MISSED" }
        );
    }
    for o in &r.open_loop {
        t += &format!(
            "| open loop {} at {}/s (batched origin) | p50 {:.3} ms, p99 {:.3} ms, p99.9 {:.3} ms; {} late, {} unsent, {} errors |\n",
            o.scenario,
            thousands(o.rate),
            o.p50_ms,
            o.p99_ms,
            o.p999_ms,
            o.late,
            o.unsent,
            o.errors
        );
    }
    t += &format!(
        "| statements per increment | {:.4} batched (average batch {:.0}); {:.2} with MAX_BATCH=1 |\n",
        r.statements_per_increment,
        1.0 / r.statements_per_increment,
        r.statements_per_increment_unbatched
    );
    t += &format!(
        "| origin peak RSS (VmHWM) | {:.1} MiB batched, {:.1} MiB MAX_BATCH=1 |\n",
        r.origin_peak_rss_bytes as f64 / 1048576.0,
        r.origin_unbatched_peak_rss_bytes as f64 / 1048576.0
    );
    t += &format!(
        "| write correctness | {} violations in {} write runs ({} increments checked) |\n",
        r.correctness_violations.len(),
        r.write_runs,
        thousands(r.write_increments_checked as f64)
    );
    t += &capacity::markdown(&r.capacity);
    t += &format!(
        "\nResult: {}\n",
        if r.passed {
            "all claims met"
        } else {
            "FAILED (see above)"
        }
    );
    t
}

fn html(r: &BenchResult, table: &str) -> String {
    let curves: Vec<(&str, Vec<(f64, f64)>)> = r
        .open_loop
        .iter()
        .map(|o| {
            let name = if o.scenario == "read" {
                "GET (open loop)"
            } else {
                "POST (open loop)"
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
         <h1>Counter Service benchmark</h1><pre>{}</pre><h2>Open-loop latency by percentile, batched origin</h2>{}</body></html>",
        r.date,
        table.replace('&', "&amp;").replace('<', "&lt;"),
        report::percentile_svg(&curves)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_unlabelled_prometheus_samples() {
        let text = "# HELP counter_batch_size x\n# TYPE counter_batch_size histogram\n\
                    counter_batch_size_bucket{le=\"1\"} 3\ncounter_batch_size_sum 120\ncounter_batch_size_count 4\n";
        assert_eq!(metric_value(text, "counter_batch_size_sum"), Some(120.0));
        assert_eq!(metric_value(text, "counter_batch_size_count"), Some(4.0));
        assert_eq!(metric_value(text, "counter_batch_size"), None);
    }

    #[test]
    fn reads_wrk_and_refuses_runs_with_errors() {
        let ok = "Running 4s test @ http://x\n  2 threads and 256 connections\nRequests/sec: 123456.78\nTransfer/sec: 14.1MB\n";
        assert_eq!(parse_wrk(ok), Ok(123_456.78));
        let errors = format!("{ok}  Non-2xx or 3xx responses: 12\n");
        assert!(parse_wrk(&errors).unwrap_err().contains("Non-2xx"));
        assert!(parse_wrk("nothing").is_err());
    }

    #[test]
    fn peak_rss_comes_from_vm_hwm() {
        assert_eq!(
            vm_hwm_bytes("Name:\tx\nVmHWM:\t   16384 kB\nVmRSS:\t 1 kB\n"),
            Some(16 * 1024 * 1024)
        );
    }

    #[test]
    fn medians_resist_one_noisy_round() {
        assert_eq!(median(&[100.0, 5.0, 110.0]), 100.0);
        assert_eq!(median(&[1.0, 3.0]), 2.0);
    }
}
