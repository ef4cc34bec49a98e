//! `chaos`: run fault cases against the origin binary, print each verdict, write the figures to
//! `<out>/chaos.json`; exit 0 when every case passed, 1 when one failed, 2 when none could run.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::SystemTime;

use chaos::cases::{self, Case, Context};
use chaos::report::Summary;
use clap::Parser;
use testkit::Database;

#[derive(Debug, Parser)]
#[command(
    name = "chaos",
    about = "Fault cases for the Counter Service origin (all traffic on loopback)"
)]
struct Cli {
    /// Cases to run (default: all, or the fast ones with --fast).
    #[arg(value_enum)]
    cases: Vec<Case>,
    /// The short run of the test command: fewer requests, shorter outages, only the fast cases.
    #[arg(long)]
    fast: bool,
    /// The `counter-origin` binary under test.
    #[arg(long, default_value = "target/debug/counter-origin")]
    origin: PathBuf,
    /// Superuser URL of the throwaway PostgreSQL (scripts/lib/postgres.sh exports it).
    #[arg(long, env = "TEST_DATABASE_URL")]
    database_url: Option<String>,
    /// Directory of `pg_ctl` (scripts/lib/postgres.sh exports it); PATH otherwise.
    #[arg(long, env = "TEST_PG_BIN_DIR")]
    pg_bin_dir: Option<PathBuf>,
    #[arg(long, default_value = "haproxy")]
    haproxy: PathBuf,
    #[arg(long, default_value = "slowhttptest")]
    slowhttptest: PathBuf,
    /// The cargo-fuzz directory.
    #[arg(long, default_value = "fuzz")]
    fuzz_dir: PathBuf,
    /// How long each fuzz target runs.
    #[arg(long, default_value_t = 30)]
    fuzz_seconds: u64,
    /// Figures (`chaos.json`) and each case's logs go here.
    #[arg(long, default_value = "artifacts/chaos")]
    out: PathBuf,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let selected: Vec<Case> = if !cli.cases.is_empty() {
        cli.cases.clone()
    } else if cli.fast {
        Case::FAST.to_vec()
    } else {
        Case::ALL.to_vec()
    };
    if !cli.origin.is_file() {
        eprintln!(
            "chaos: no origin binary at {} (cargo build -p counter-origin)",
            cli.origin.display()
        );
        return ExitCode::from(2);
    }
    if let Err(e) = std::fs::create_dir_all(&cli.out) {
        eprintln!("chaos: {}: {e}", cli.out.display());
        return ExitCode::from(2);
    }
    let ctx = Context {
        origin_binary: std::fs::canonicalize(&cli.origin).unwrap_or(cli.origin.clone()),
        database: cli
            .database_url
            .clone()
            .map(|admin_url| Database { admin_url }),
        pg_bin_dir: cli.pg_bin_dir.clone(),
        haproxy: cli.haproxy.clone(),
        slowhttptest: cli.slowhttptest.clone(),
        out: std::fs::canonicalize(&cli.out).unwrap_or(cli.out.clone()),
        fuzz_dir: std::fs::canonicalize(&cli.fuzz_dir).unwrap_or(cli.fuzz_dir.clone()),
        fuzz_seconds: cli.fuzz_seconds,
        fast: cli.fast,
    };
    let started = SystemTime::now();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let reports = runtime.block_on(async {
        let mut reports = Vec::new();
        for case in selected {
            eprintln!("--- chaos: {}", case.name());
            let report = cases::run(case, &ctx).await;
            eprint!("{}", report.summary());
            reports.push(report);
        }
        reports
    });
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let summary = Summary::new(
        started,
        if cli.fast { "fast" } else { "full" },
        command,
        reports,
    );
    let path = cli.out.join("chaos.json");
    let json = serde_json::to_string_pretty(&summary).expect("summary serialises") + "\n";
    if let Err(e) = std::fs::write(&path, json) {
        eprintln!("chaos: {}: {e}", path.display());
        return ExitCode::from(2);
    }
    let failed: Vec<&str> = summary
        .cases
        .iter()
        .filter(|c| !c.passed)
        .map(|c| c.case.as_str())
        .collect();
    eprintln!(
        "chaos: {} of {} cases passed; figures in {}",
        summary.cases.len() - failed.len(),
        summary.cases.len(),
        path.display()
    );
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        eprintln!("chaos: FAILED: {}", failed.join(", "));
        ExitCode::from(1)
    }
}
