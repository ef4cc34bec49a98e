//! Bounded coverage-guided fuzzing of every parser of untrusted input the origin owns (routing,
//! If-None-Match, Idempotency-Key as a header and as a key), through cargo-fuzz and libFuzzer with
//! AddressSanitizer. Each target checks properties of its parser (fuzz/fuzz_targets/); a panic, a
//! failed property or a sanitizer report is a crash and fails the case, with the input saved
//! under fuzz/artifacts/.
//!
//! cargo-fuzz needs nightly-only `-Z` flags. Only the stable toolchain can be installed here, so
//! the build runs with `RUSTC_BOOTSTRAP=1`, which lets stable rustc accept them.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::process::Command;

use super::{Env, FaultCase};
use crate::report::{round3, Checks};
use crate::Error;

pub const TARGETS: [&str; 4] = [
    "routing",
    "if_none_match",
    "idempotency_key",
    "idempotency_headers",
];
/// A target that ran fewer inputs than this did not really run.
const MIN_RUNS: u64 = 10_000;

#[derive(Clone, Debug, Default, Serialize)]
pub struct TargetRun {
    pub target: String,
    pub seconds: f64,
    pub runs: u64,
    pub runs_per_s: u64,
    /// Inputs that found new coverage during this run.
    pub new_units: u64,
    pub corpus_entries: u64,
    pub peak_rss_mb: u64,
    pub crashed: bool,
    /// libFuzzer's last lines when it crashed.
    pub crash: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Figures {
    pub sanitizer: String,
    pub build_s: f64,
    pub seconds_per_target: u64,
    pub targets: Vec<TargetRun>,
}

/// `stat::name: value` from libFuzzer's `-print_final_stats=1` output.
pub fn final_stat(output: &str, name: &str) -> Option<u64> {
    output.lines().find_map(|line| {
        line.trim()
            .strip_prefix("stat::")?
            .strip_prefix(name)?
            .strip_prefix(':')?
            .trim()
            .parse()
            .ok()
    })
}

fn cargo_fuzz(fuzz_dir: &Path) -> Command {
    let mut command = Command::new("cargo");
    command
        .arg("fuzz")
        .env("RUSTC_BOOTSTRAP", "1")
        .current_dir(fuzz_dir.parent().unwrap_or(fuzz_dir))
        .stdin(Stdio::null());
    command
}

pub struct Fuzz;

impl FaultCase for Fuzz {
    type Figures = Figures;

    async fn run(&self, env: &Env<'_>) -> Result<Figures, Error> {
        let (ctx, dir) = (env.ctx, &env.dir);
        let fuzz_dir = &ctx.fuzz_dir;
        let dir_arg = fuzz_dir.display().to_string();
        let mut figures = Figures {
            sanitizer: "address".into(),
            seconds_per_target: ctx.fuzz_seconds,
            ..Figures::default()
        };
        // Debug assertions on (-a): an overflow in a parser is a finding too.
        let started = Instant::now();
        let build = cargo_fuzz(fuzz_dir)
            .args(["build", "-a", "--fuzz-dir", &dir_arg])
            .output()
            .await
            .map_err(|e| Error::io("cannot run cargo fuzz (scripts/chaos.sh installs it)", e))?;
        figures.build_s = round3(started.elapsed().as_secs_f64());
        if !build.status.success() {
            let log = dir.join("build.log");
            let _ = std::fs::write(&log, [build.stdout, build.stderr].concat());
            return Err(Error::Tool(format!(
                "cargo fuzz build failed (see {})",
                log.display()
            )));
        }
        for target in TARGETS {
            let corpus = fuzz_dir.join("corpus").join(target);
            std::fs::create_dir_all(&corpus).map_err(|e| Error::io(corpus.display(), e))?;
            let seeds = fuzz_dir.join("seeds").join(target);
            let started = Instant::now();
            let mut command = cargo_fuzz(fuzz_dir);
            command
                .args(["run", "-a", "--fuzz-dir", &dir_arg, target])
                .arg(&corpus)
                .args(seeds.is_dir().then_some(&seeds))
                .arg("--")
                .arg(format!("-max_total_time={}", ctx.fuzz_seconds))
                .args(["-print_final_stats=1", "-rss_limit_mb=2048", "-timeout=10"]);
            let bound = Duration::from_secs(ctx.fuzz_seconds + 120);
            let output = tokio::time::timeout(bound, command.output())
                .await
                .map_err(|_| Error::Timeout(format!("{target}: still running after {bound:?}")))?
                .map_err(|e| Error::io(target, e))?;
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
            let _ = std::fs::write(dir.join(format!("{target}.log")), &text);
            let crashed = !output.status.success();
            let runs = final_stat(&text, "number_of_executed_units").unwrap_or(0);
            let seconds = started.elapsed().as_secs_f64();
            figures.targets.push(TargetRun {
                target: target.into(),
                seconds: round3(seconds),
                runs,
                runs_per_s: final_stat(&text, "average_exec_per_sec").unwrap_or(0),
                new_units: final_stat(&text, "new_units_added").unwrap_or(0),
                corpus_entries: std::fs::read_dir(&corpus).map_or(0, |d| d.count() as u64),
                peak_rss_mb: final_stat(&text, "peak_rss_mb").unwrap_or(0),
                crashed,
                crash: crashed.then(|| {
                    let lines: Vec<&str> = text.lines().collect();
                    lines[lines.len().saturating_sub(25)..].join("\n")
                }),
            });
        }
        Ok(figures)
    }

    fn judge(f: &Figures) -> Checks {
        let mut checks = Checks::default();
        for t in &f.targets {
            checks.expect(
                &format!("{}: no crash", t.target),
                !t.crashed,
                match &t.crash {
                    Some(crash) => format!("crashed:\n{crash}"),
                    None => format!(
                        "{} inputs in {:.0} s ({}/s), {} new, corpus {}",
                        t.runs, t.seconds, t.runs_per_s, t.new_units, t.corpus_entries
                    ),
                },
            );
            checks.expect(
                &format!("{}: really ran", t.target),
                t.runs >= MIN_RUNS,
                format!("{} inputs (at least {MIN_RUNS})", t.runs),
            );
        }
        checks.expect(
            "every target fuzzed",
            f.targets.len() == TARGETS.len(),
            format!("{} of {} targets", f.targets.len(), TARGETS.len()),
        );
        checks
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_libfuzzer_final_stats() {
        let output = "#1048576\tDONE   cov: 312 ft: 901 corp: 88/2411b\n\
            Done 1048576 runs in 30 second(s)\n\
            stat::number_of_executed_units: 1048576\n\
            stat::average_exec_per_sec:     34952\n\
            stat::new_units_added:          17\n\
            stat::peak_rss_mb:              61\n";
        assert_eq!(
            final_stat(output, "number_of_executed_units"),
            Some(1_048_576)
        );
        assert_eq!(final_stat(output, "average_exec_per_sec"), Some(34_952));
        assert_eq!(final_stat(output, "slowest_unit_time_sec"), None);
    }

    #[test]
    fn a_crash_or_an_idle_target_fails() {
        let ran = |target: &str| TargetRun {
            target: target.into(),
            runs: 1_000_000,
            ..TargetRun::default()
        };
        let good = Figures {
            targets: TARGETS.iter().map(|t| ran(t)).collect(),
            ..Figures::default()
        };
        assert!(Fuzz::judge(&good).passed());
        let mut crashed = good.clone();
        crashed.targets[0].crashed = true;
        assert!(!Fuzz::judge(&crashed).passed());
        let mut idle = good.clone();
        idle.targets[1].runs = 10;
        assert!(!Fuzz::judge(&idle).passed());
        let mut missing = good;
        missing.targets.pop();
        assert!(!Fuzz::judge(&missing).passed());
    }
}
