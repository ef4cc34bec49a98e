//! The Counter Service load tester (docs/design.md §8): open- and closed-loop load on any base URL,
//! HDR latency histograms, targets from a file, write correctness checks, and reports; plus the
//! side-by-side benchmark behind `make bench`.

pub mod bench;
pub mod cli;
pub mod client;
pub mod correctness;
pub mod drive;
pub mod progress;
pub mod report;
pub mod stats;
pub mod targets;

use std::path::Path;
use std::sync::Arc;

use cli::{RunArgs, ScenarioName};
use drive::{Mode, Plan, Scenario};
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

impl RunArgs {
    pub fn plan(&self) -> Plan {
        Plan {
            scenario: match self.scenario {
                ScenarioName::Read => Scenario::Read,
                ScenarioName::Write => Scenario::Write,
                ScenarioName::Mixed => Scenario::Mixed {
                    write_ratio: self.write_ratio,
                },
            },
            mode: self.rate.map_or(Mode::Closed, |rate| Mode::Open { rate }),
            connections: usize::from(self.connections),
            warmup: self.warmup,
            duration: self.duration,
            max_requests: self.requests,
            timeout: self.timeout,
            late_after: self.late_after,
            exclusive: !self.shared_counter,
        }
    }
}

/// Runs one load test as the flags say: prints the summary, writes the files, returns the result.
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
    let endpoint = client::Endpoint::resolve(&args.base_url)
        .await
        .map_err(|e| SetupError(e.to_string()))?;
    let progress = Progress::new(args.quiet);
    let plan = args.plan();
    let outcome = drive::run(Arc::new(endpoint), plan.clone(), &progress)
        .await
        .map_err(|e| SetupError(e.to_string()));
    progress.finish();
    let result = RunResult::new(&args.base_url, plan, outcome?, targets.as_ref());
    print!("{}", result.summary());
    if let Some(dir) = &args.out {
        write_outputs(dir, &result).map_err(SetupError)?;
        println!(
            "wrote {}/result.json and {}/report.html",
            dir.display(),
            dir.display()
        );
    }
    Ok(result)
}

impl RunArgs {
    fn scenario_name(&self) -> &'static str {
        match self.scenario {
            ScenarioName::Read => "read",
            ScenarioName::Write => "write",
            ScenarioName::Mixed => "mixed",
        }
    }
}

pub fn write_outputs(dir: &Path, result: &RunResult) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let json = serde_json::to_string_pretty(result).map_err(|e| e.to_string())?;
    std::fs::write(dir.join("result.json"), json + "\n")
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    std::fs::write(dir.join("report.html"), result.html())
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok(())
}
