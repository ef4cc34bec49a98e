//! `loadtest`: parse the flags, build the runtime, run, exit 0 (pass), 1 (a target or a
//! correctness check failed; `compare`: a regression), 2 (could not run) or 130 (stopped by
//! Ctrl-C: partial result written).

use std::process::ExitCode;

use clap::Parser;
use loadtest::cli::{Cli, Command};
use loadtest::report::Verdict;

/// The shell's code for a process ended by Ctrl-C (128 + SIGINT).
const INTERRUPTED: u8 = 130;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let threads = match &cli.command {
        Command::Run(args) => args.threads,
        Command::Bench(args) => Some(args.threads),
        Command::Compare(_) => Some(1),
    };
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = threads {
        builder.worker_threads(n.max(1));
    }
    let runtime = builder.enable_all().build().expect("tokio runtime");
    let verdict = runtime.block_on(async {
        match &cli.command {
            Command::Run(args) => loadtest::run(args).await.map(|r| r.verdict),
            Command::Bench(args) => loadtest::bench::run(args).await.map(pass_or_fail),
            Command::Compare(args) => loadtest::compare::run(args).map(pass_or_fail),
        }
    });
    match verdict {
        Ok(Verdict::Pass) => ExitCode::SUCCESS,
        Ok(Verdict::Fail) => ExitCode::from(1),
        Ok(Verdict::Interrupted) => ExitCode::from(INTERRUPTED),
        Err(error) => {
            eprintln!("loadtest: {error}");
            ExitCode::from(2)
        }
    }
}

fn pass_or_fail(passed: bool) -> Verdict {
    if passed {
        Verdict::Pass
    } else {
        Verdict::Fail
    }
}
