//! Command-line flags. `loadtest run` applies load to one URL; `loadtest bench` is the
//! side-by-side benchmark behind `make bench`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// `--version`: the crate version and the commit it was built from (build.rs).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (revision ",
    env!("COUNTER_REVISION"),
    ")"
);

#[derive(Debug, Parser)]
#[command(
    name = "loadtest",
    version = VERSION,
    about = "Load tests for the Counter Service: open/closed loop, latency targets, write correctness"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply load to BASE_URL (e.g. http://127.0.0.1:8080 or https://dxxxx.cloudfront.net).
    Run(RunArgs),
    /// Compare two results (result.json): exit 1 when B regresses on A beyond the tolerance.
    Compare(CompareArgs),
    /// Start PostgreSQL-backed origins and a bare hyper server and measure them side by side.
    Bench(crate::bench::BenchArgs),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ScenarioName {
    Read,
    Write,
    Mixed,
}

/// A named type so that clap takes `--stages` as one value (it treats `Vec` as "repeatable").
pub type Stages = Vec<crate::drive::Stage>;

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Base URL of the service; requests go to BASE_URL/api/counter.
    pub base_url: String,
    /// read: GET; write: POST (with correctness checks); mixed: both, see --write-ratio.
    #[arg(short, long, value_enum, default_value_t = ScenarioName::Read)]
    pub scenario: ScenarioName,
    /// Share of requests that are writes in the mixed scenario.
    #[arg(long, default_value_t = 0.1, value_parser = ratio)]
    pub write_ratio: f64,
    /// Open loop at this many requests per second; without it, closed loop (as fast as possible).
    #[arg(short, long, value_parser = positive)]
    pub rate: Option<f64>,
    /// Open loop through stages instead of one rate: DURATION:RATE,… e.g. 10s:1000,30s:5000,10s:0
    /// (the rate moves linearly to each stage's RATE, from 0). The stages are the whole run: no
    /// warm-up, and each stage's latency is reported apart.
    #[arg(long, value_parser = crate::drive::Stage::parse_list, conflicts_with_all = ["rate", "duration", "warmup"])]
    pub stages: Option<Stages>,
    /// Keep-alive connections.
    #[arg(short, long, default_value_t = 64, value_parser = clap::value_parser!(u16).range(1..))]
    pub connections: u16,
    /// Measured time (after the warm-up): 30s, 2m, 500ms.
    #[arg(short, long, default_value = "10s", value_parser = duration)]
    pub duration: Duration,
    /// Load applied before measuring (charted, checked, not totalled).
    #[arg(short, long, default_value = "2s", value_parser = duration)]
    pub warmup: Duration,
    /// Stop after this many requests (warm-up included), even before the time is up.
    #[arg(short = 'n', long)]
    pub requests: Option<u64>,
    /// Bound on one request; slower counts as a timeout error.
    #[arg(long, default_value = "5s", value_parser = duration)]
    pub timeout: Duration,
    /// Open loop: a send this far behind its intended time counts as late.
    #[arg(long, default_value = "1ms", value_parser = duration)]
    pub late_after: Duration,
    /// Worker threads (default: one per core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Targets file (TOML); the run fails when the scenario's section is missed.
    #[arg(short, long)]
    pub targets: Option<PathBuf>,
    /// Write result.json and report.html into this directory.
    #[arg(short, long)]
    pub out: Option<PathBuf>,
    /// Other clients write to this counter too: gaps in the values are not judged.
    #[arg(long)]
    pub shared_counter: bool,
    /// Every POST carries its own Idempotency-Key, as the page's clicks do: the keyed write path
    /// (one transaction per batch that also stores the keys) instead of the keyless statement.
    #[arg(long)]
    pub idempotency_keys: bool,
    /// No progress line.
    #[arg(short, long)]
    pub quiet: bool,
    /// Print the result as JSON (the same document as result.json) instead of the summary.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct CompareArgs {
    /// The baseline result.json.
    pub a: PathBuf,
    /// The result.json to judge against it.
    pub b: PathBuf,
    /// Relative change allowed before it is a regression: B's rate may be this much lower,
    /// its latencies this much higher (0.1 = 10%).
    #[arg(long, default_value_t = 0.1, value_parser = ratio)]
    pub tolerance: f64,
    /// Latencies within this many milliseconds of A's never regress (sub-millisecond noise).
    #[arg(long, default_value_t = 0.05)]
    pub min_latency_change_ms: f64,
    /// Absolute rise in error rate allowed (0.001 = 0.1 percentage points).
    #[arg(long, default_value_t = 0.001, value_parser = ratio)]
    pub error_tolerance: f64,
}

/// `1.5s`, `250ms`, `100us`, `2m`, `1h`.
pub fn duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| format!("{text:?}: add a unit (us, ms, s, m, h)"))?;
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("{text:?}: not a number"))?;
    let scale = match unit {
        "us" | "µs" => 1e-6,
        "ms" => 1e-3,
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        _ => return Err(format!("{text:?}: unknown unit {unit:?} (us, ms, s, m, h)")),
    };
    Duration::try_from_secs_f64(number * scale).map_err(|e| format!("{text:?}: {e}"))
}

fn ratio(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(format!("{text:?}: expected a number between 0 and 1")),
    }
}

fn positive(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(v) if v > 0.0 && v.is_finite() => Ok(v),
        _ => Err(format!("{text:?}: expected a positive number")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_need_a_unit() {
        assert_eq!(duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(duration("100us"), Ok(Duration::from_micros(100)));
        assert_eq!(duration("2m"), Ok(Duration::from_secs(120)));
        assert!(duration("10").is_err());
        assert!(duration("10 parsecs").is_err());
        assert!(duration("-1s").is_err());
    }

    #[test]
    fn the_flags_parse() {
        Cli::try_parse_from([
            "loadtest",
            "run",
            "http://127.0.0.1:1",
            "-s",
            "mixed",
            "--write-ratio",
            "0.5",
            "-r",
            "100",
        ])
        .unwrap();
        assert!(
            Cli::try_parse_from(["loadtest", "run", "http://x", "--write-ratio", "2"]).is_err()
        );
        assert!(Cli::try_parse_from(["loadtest", "run", "http://x", "-c", "0"]).is_err());
        let staged =
            Cli::try_parse_from(["loadtest", "run", "http://x", "--stages", "1s:10,2s:0"]).unwrap();
        let Command::Run(args) = staged.command else {
            panic!("run")
        };
        assert_eq!(args.stages.as_ref().map(Vec::len), Some(2));
        assert_eq!(args.plan().duration, Duration::from_secs(3));
        assert_eq!(args.plan().warmup, Duration::ZERO);
        for clash in ["-r", "-d", "-w"] {
            let value = if clash == "-r" { "5" } else { "1s" };
            assert!(
                Cli::try_parse_from([
                    "loadtest", "run", "http://x", "--stages", "1s:1", clash, value
                ])
                .is_err(),
                "--stages with {clash}"
            );
        }
        Cli::try_parse_from([
            "loadtest",
            "compare",
            "a.json",
            "b.json",
            "--tolerance",
            "0.2",
        ])
        .unwrap();
    }
}
