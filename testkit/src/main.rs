//! `testkit with-origin`: the origin launcher for shell scripts. Starts the binary on free
//! loopback ports with the given overrides, waits until it is ready, runs a command with
//! `ORIGIN_URL` and `ORIGIN_METRICS_URL` in its environment, then stops the origin with SIGTERM.
//! Exit status: the command's when it failed; 1 when the origin did not become ready, did not
//! stop cleanly (exit 0 within the bound) or logged a panic; 2 on bad arguments.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use testkit::origin::{self, OriginSpec};

/// Bound on the graceful stop after the command (the origin drains for DRAIN_PERIOD_MS first).
const STOP_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, Parser)]
#[command(
    name = "testkit",
    about = "Counter Service test tooling for shell scripts"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run COMMAND against a freshly started, ready origin.
    WithOrigin {
        /// The `counter-origin` binary.
        #[arg(long)]
        origin: PathBuf,
        /// Directory of the origin's logs (`<name>.log`, `<name>.stderr.log`).
        #[arg(long)]
        log_dir: PathBuf,
        #[arg(long, default_value = "origin")]
        name: String,
        /// A configuration variable, `NAME=VALUE` (repeatable); on top of the production
        /// configuration, or of the loopback test settings with --test-env.
        #[arg(long = "env", value_parser = parse_env)]
        env: Vec<(String, String)>,
        /// Start from the loopback test settings (no drain wait, no access-log sampling, fast
        /// readiness checks) instead of the production configuration.
        #[arg(long)]
        test_env: bool,
        /// The command and its arguments.
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
}

fn parse_env(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("{text:?} is not NAME=VALUE"))
}

fn main() -> ExitCode {
    let Command::WithOrigin {
        origin,
        log_dir,
        name,
        env,
        test_env,
        command,
    } = Cli::parse().command;
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let spec = if test_env {
        OriginSpec::for_tests(&origin, &name, &log_dir, &env)
    } else {
        OriginSpec::new(&origin, &name, &log_dir, &env)
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match spec.map(|spec| runtime.block_on(with_origin(spec, &command))) {
        Ok(Ok(code)) => code,
        Ok(Err(message)) | Err(message) => {
            eprintln!("testkit: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn with_origin(spec: OriginSpec, command: &[String]) -> Result<ExitCode, testkit::Error> {
    let origin = spec
        .start_ready()
        .await
        .inspect_err(|_| show_log_tail(&spec))?;
    eprintln!(
        "testkit: {} ready on {} (pid {})",
        spec.name,
        origin.url(),
        origin.pid
    );
    let status = tokio::process::Command::new(&command[0])
        .args(&command[1..])
        .env("ORIGIN_URL", origin.url())
        .env(
            "ORIGIN_METRICS_URL",
            format!("http://{}", origin.metrics_addr()),
        )
        .status()
        .await;
    let stopped = origin.terminate(STOP_TIMEOUT).await;
    let status = status.map_err(|e| testkit::Error::io(format!("cannot run {}", command[0]), e))?;
    match stopped? {
        0 => {}
        code => {
            show_log_tail(&spec);
            return Err(testkit::Error::Exited {
                name: spec.name.clone(),
                status: format!("exit code {code} after SIGTERM"),
                log: spec.stdout_log(),
            });
        }
    }
    let panics = origin::panics(&spec);
    if !panics.is_empty() {
        return Err(testkit::Error::Exited {
            name: spec.name.clone(),
            status: format!("panicked: {}", panics.join(" | ")),
            log: spec.stdout_log(),
        });
    }
    Ok(match status.code() {
        Some(0) => ExitCode::SUCCESS,
        Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        None => ExitCode::FAILURE,
    })
}

/// The end of the origin's logs, for a person reading a failed script's output.
fn show_log_tail(spec: &OriginSpec) {
    let logs = origin::logs(spec);
    let lines: Vec<&str> = logs.lines().collect();
    for line in &lines[lines.len().saturating_sub(20)..] {
        eprintln!("  {line}");
    }
}
