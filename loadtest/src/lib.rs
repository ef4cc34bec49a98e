//! The Counter Service load tester (docs/design.md §8): open- and closed-loop load on any base URL,
//! HDR latency histograms, targets from a file, write correctness checks, and reports; plus the
//! side-by-side benchmark behind `make bench`.

pub mod bench;
pub mod cli;
pub mod compare;
pub mod correctness;
pub mod drive;
pub mod guardrails;
pub mod html;
pub mod progress;
pub mod report;
pub mod stats;
pub mod targets;

/// The load client is the test kit's (the fault suite drives its load with the same one).
pub use testkit::client;

use std::io::IsTerminal;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use cli::{RunArgs, ScenarioName};
use drive::{Mode, Plan, Scenario, Stop};
use progress::Progress;
use report::RunResult;
use targets::TargetsFile;

/// Why a run could not produce a verdict (bad flags or files, unreachable target).
#[derive(Debug)]
pub struct SetupError(pub String);

impl std::fmt::Display for SetupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SetupError {}

/// Test-kit failures (starting a server, a probe, a database) are setup failures here.
impl From<testkit::Error> for SetupError {
    fn from(error: testkit::Error) -> Self {
        SetupError(error.to_string())
    }
}

impl RunArgs {
    pub fn plan(&self) -> Plan {
        let (mode, warmup, duration) = match (&self.stages, self.rate) {
            (Some(stages), _) => (
                Mode::Ramp {
                    stages: stages.clone(),
                },
                Duration::ZERO,
                stages.iter().map(|s| s.duration).sum(),
            ),
            (None, Some(rate)) => (Mode::Open { rate }, self.warmup, self.duration),
            (None, None) => (Mode::Closed, self.warmup, self.duration),
        };
        Plan {
            scenario: match self.scenario {
                ScenarioName::Read => Scenario::Read,
                ScenarioName::Write => Scenario::Write,
                ScenarioName::Mixed => Scenario::Mixed {
                    write_ratio: self.write_ratio,
                },
            },
            mode,
            connections: usize::from(self.connections),
            warmup,
            duration,
            max_requests: self.requests,
            timeout: self.timeout,
            late_after: self.late_after,
            exclusive: !self.shared_counter,
        }
    }

    fn scenario_name(&self) -> &'static str {
        match self.scenario {
            ScenarioName::Read => "read",
            ScenarioName::Write => "write",
            ScenarioName::Mixed => "mixed",
        }
    }
}

/// Runs one load test as the flags say: prints the summary (or the JSON), writes the files,
/// returns the result. The first Ctrl-C stops the run early with a partial result; the second
/// exits at once.
pub async fn run(args: &RunArgs) -> Result<RunResult, SetupError> {
    let targets = match &args.targets {
        Some(path) => {
            let file = TargetsFile::load(path).map_err(SetupError)?;
            Some(
                file.for_scenario(args.scenario_name())
                    .map_err(SetupError)?,
            )
        }
        None => None,
    };
    if let Some(warning) = guardrails::api_path_warning(&args.base_url) {
        eprintln!("warning: {warning}");
    }
    let mut endpoint = client::Endpoint::resolve(&args.base_url)
        .await
        .map_err(|e| SetupError(e.to_string()))?;
    if args.idempotency_keys {
        endpoint = endpoint.with_idempotency_keys();
    }
    let plan = args.plan();
    if let Some(warning) = guardrails::shared_write_warning(&endpoint, &plan) {
        eprintln!("warning: {warning}");
    }
    let stop = Stop::new();
    let signals = tokio::spawn(guardrails::stop_on_ctrl_c(stop.clone()));
    let progress = Progress::new(args.quiet);
    let outcome = drive::run_until(Arc::new(endpoint), plan.clone(), &progress, &stop)
        .await
        .map_err(|e| SetupError(e.to_string()));
    progress.finish();
    let mut result = RunResult::new(&args.base_url, plan, outcome?, targets.as_ref());
    result.command_line = report::shell_line(std::env::args());
    result.targets_file = args.targets.as_ref().map(|p| p.display().to_string());
    if args.json {
        print!("{}", result.json());
    } else {
        print!(
            "{}",
            result.summary(report::colour_wanted(std::io::stdout().is_terminal()))
        );
    }
    if let Some(dir) = &args.out {
        write_outputs(dir, &result).map_err(SetupError)?;
        let note = format!(
            "wrote {}/result.json and {}/report.html",
            dir.display(),
            dir.display()
        );
        // With --json, stdout is the document alone.
        if args.json {
            eprintln!("{note}");
        } else {
            println!("{note}");
        }
    }
    // Writing is done: a Ctrl-C from here on ends the process the ordinary way.
    signals.abort();
    Ok(result)
}

pub fn write_outputs(dir: &Path, result: &RunResult) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    std::fs::write(dir.join("result.json"), result.json())
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    std::fs::write(dir.join("report.html"), result.html())
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok(())
}
