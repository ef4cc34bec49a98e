//! `loadtest`: parse the flags, build the runtime, run, exit 0 (pass), 1 (a target or a
//! correctness check failed) or 2 (could not run).

use std::process::ExitCode;

use clap::Parser;
use loadtest::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let threads = match &cli.command {
        Command::Run(args) => args.threads,
        Command::Bench(args) => Some(args.threads),
    };
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = threads {
        builder.worker_threads(n.max(1));
    }
    let runtime = builder.enable_all().build().expect("tokio runtime");
    let passed = runtime.block_on(async {
        match &cli.command {
            Command::Run(args) => loadtest::run(args).await.map(|r| r.passed),
            Command::Bench(args) => loadtest::bench::run(args).await,
        }
    });
    match passed {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(error) => {
            eprintln!("loadtest: {error}");
            ExitCode::from(2)
        }
    }
}
