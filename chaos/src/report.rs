//! What a case reports: its figures (counts, rates, latencies, as JSON) and the checks that
//! decide whether its promise held. A case that could not reach a verdict (a setup failure)
//! carries an error and counts as failed: a fault suite must never pass by not running.

use std::time::{Duration, SystemTime};

use loadtest::correctness::WriteCheck;
use serde::Serialize;
use serde_json::Value;
use testkit::Machine;

/// One promise of a case, kept or broken, with the numbers that decided it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Check {
    pub name: String,
    pub passed: bool,
    pub detail: String,
}

/// The checks of one case, in the order they were made.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(transparent)]
pub struct Checks(pub Vec<Check>);

impl Checks {
    pub fn expect(&mut self, name: &str, passed: bool, detail: impl Into<String>) {
        self.0.push(Check {
            name: name.into(),
            passed,
            detail: detail.into(),
        });
    }

    /// The check every case makes: nothing in the origin's logs says it panicked.
    pub fn no_panic(&mut self, name: &str, panics: &[String]) {
        self.expect(name, panics.is_empty(), format!("{panics:?}"));
    }

    /// A check on the exact-count audit; a missing audit fails it.
    pub fn audit(
        &mut self,
        name: &str,
        audit: Option<&WriteCheck>,
        kept: impl Fn(&WriteCheck) -> bool,
    ) {
        let known = |v: Option<i64>| v.map_or("?".into(), |v| v.to_string());
        let detail = audit.map_or("not audited".into(), |w| {
            format!(
                "{} 2xx between the sentinels {} and {}: the counter moved {}, {} writes uncertain; {} duplicated, {} outside, {} stale",
                w.successes, w.before, known(w.after), known(w.counter_delta), w.uncertain, w.duplicates, w.out_of_range, w.stale
            )
        });
        self.expect(name, audit.is_some_and(kept), detail);
    }

    pub fn passed(&self) -> bool {
        !self.0.is_empty() && self.0.iter().all(|c| c.passed)
    }

    pub fn failed(&self) -> impl Iterator<Item = &Check> {
        self.0.iter().filter(|c| !c.passed)
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct CaseReport {
    pub case: String,
    pub passed: bool,
    pub seconds: f64,
    pub figures: Value,
    pub checks: Checks,
    /// Why the case could not reach a verdict.
    pub error: Option<String>,
}

impl CaseReport {
    pub fn new(case: &str, elapsed: Duration, figures: Value, checks: Checks) -> Self {
        Self {
            case: case.into(),
            passed: checks.passed(),
            seconds: round3(elapsed.as_secs_f64()),
            figures,
            checks,
            error: None,
        }
    }

    pub fn failed_to_run(case: &str, elapsed: Duration, error: String) -> Self {
        Self {
            case: case.into(),
            passed: false,
            seconds: round3(elapsed.as_secs_f64()),
            figures: Value::Null,
            checks: Checks::default(),
            error: Some(error),
        }
    }

    /// Lines for the terminal: the verdict, each check, and the error if any.
    pub fn summary(&self) -> String {
        let mut out = format!(
            "{} {} ({:.1} s)\n",
            if self.passed { "PASS" } else { "FAIL" },
            self.case,
            self.seconds
        );
        for check in &self.checks.0 {
            out.push_str(&format!(
                "  [{}] {}: {}\n",
                if check.passed { "ok" } else { "FAILED" },
                check.name,
                check.detail
            ));
        }
        if let Some(error) = &self.error {
            out.push_str(&format!("  could not run: {error}\n"));
        }
        out
    }
}

/// The whole run: what `artifacts/chaos/chaos.json` holds.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    pub date: String,
    pub machine: Machine,
    /// `fast` (the test command) or `full` (`make chaos`).
    pub mode: String,
    pub command: String,
    pub cases: Vec<CaseReport>,
    pub passed: bool,
}

impl Summary {
    pub fn new(started: SystemTime, mode: &str, command: String, cases: Vec<CaseReport>) -> Self {
        Self {
            date: loadtest::report::utc_timestamp(started),
            machine: Machine::current(),
            mode: mode.into(),
            command,
            passed: !cases.is_empty() && cases.iter().all(|c| c.passed),
            cases,
        }
    }
}

pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Milliseconds with microsecond resolution, for figures.
pub fn ms(d: Duration) -> f64 {
    round3(d.as_secs_f64() * 1000.0)
}

/// Ways to break a case's figures, each named, for the tests that prove a judge notices.
#[cfg(test)]
pub type Breaks<T> = Vec<(&'static str, Box<dyn Fn(&mut T)>)>;

/// Asserts that the `good` figures pass and that each break makes them fail.
#[cfg(test)]
pub fn assert_each_break_fails<T>(
    good: impl Fn() -> T,
    passes: impl Fn(&T) -> bool,
    breaks: Breaks<T>,
) {
    assert!(passes(&good()), "the unbroken figures fail");
    for (what, breaks) in breaks {
        let mut figures = good();
        breaks(&mut figures);
        assert!(!passes(&figures), "{what} went unnoticed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_case_passes_only_when_every_check_passed_and_there_was_one() {
        let mut checks = Checks::default();
        assert!(!checks.passed(), "no checks is no verdict");
        checks.expect("a", true, "fine");
        assert!(checks.passed());
        checks.expect("b", false, "broken");
        assert!(!checks.passed());
        assert_eq!(checks.failed().count(), 1);
        let report = CaseReport::new("x", Duration::from_millis(1500), Value::Null, checks);
        assert!(!report.passed);
        assert!(report.summary().contains("[FAILED] b: broken"));
    }

    #[test]
    fn a_case_that_could_not_run_fails() {
        let report = CaseReport::failed_to_run("x", Duration::ZERO, "no haproxy".into());
        assert!(!report.passed);
        let summary = Summary::new(SystemTime::now(), "fast", "chaos".into(), vec![report]);
        assert!(!summary.passed);
        assert!(!Summary::new(SystemTime::now(), "fast", "chaos".into(), vec![]).passed);
    }
}
