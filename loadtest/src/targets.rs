//! Latency, rate and error targets per scenario, from a TOML file such as
//! `loadtest/targets/local.toml`:
//!
//! ```toml
//! [read]
//! p50_ms = 1.0
//! p95_ms = 3.0
//! p99_ms = 5.0
//! mean_ms = 1.5
//! min_rate = 1000.0       # successful requests per second, measured window
//! max_error_rate = 0.001  # (failed + unsent) / scheduled
//! ```
//!
//! Every key is optional; unknown keys are an error (a typo must not silently drop a target).
//! The error rate is always judged: without `max_error_rate` (or without a targets file) the
//! run is held to `DEFAULT_ERROR_BUDGET`, so a run whose requests fail never passes.

use std::path::Path;

use serde::{Deserialize, Serialize};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetsFile {
    pub read: Option<Targets>,
    pub write: Option<Targets>,
    pub mixed: Option<Targets>,
}

/// The error budget of a run with no `max_error_rate` to go by: 1% of requests may fail. A
/// healthy target fails far less; an outage, a wrong URL (all 404) or a stopped origin fails
/// far more.
pub const DEFAULT_ERROR_BUDGET: f64 = 0.01;

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Targets {
    pub p50_ms: Option<f64>,
    pub p90_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub p999_ms: Option<f64>,
    pub mean_ms: Option<f64>,
    pub min_rate: Option<f64>,
    pub max_error_rate: Option<f64>,
}

/// What a run measured, in the units targets use; a latency is `None` when nothing answered.
#[derive(Clone, Copy, Debug)]
pub struct Measured {
    pub p50_ms: Option<f64>,
    pub p90_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub p999_ms: Option<f64>,
    pub mean_ms: Option<f64>,
    pub rate: f64,
    pub error_rate: f64,
}

/// One line of the targets table.
#[derive(Clone, Debug, Serialize)]
pub struct TargetCheck {
    pub name: &'static str,
    pub limit: f64,
    /// `None` (JSON `null`): no data (nothing answered), and the target is missed.
    pub measured: Option<f64>,
    pub unit: &'static str,
    /// `true` when the measured value must be at most the limit, `false` for at least.
    pub at_most: bool,
    pub passed: bool,
    /// The limit is the tool's default, not from a targets file.
    pub default: bool,
}

impl TargetsFile {
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        let file: TargetsFile = toml::from_str(text).map_err(|e| e.to_string())?;
        for (name, targets) in [
            ("read", &file.read),
            ("write", &file.write),
            ("mixed", &file.mixed),
        ] {
            if let Some(t) = targets {
                t.validate().map_err(|e| format!("[{name}] {e}"))?;
            }
        }
        Ok(file)
    }

    /// The section for `scenario`; a file without it is an error, not a pass.
    pub fn for_scenario(&self, scenario: &str) -> Result<Targets, String> {
        match scenario {
            "read" => self.read.clone(),
            "write" => self.write.clone(),
            "mixed" => self.mixed.clone(),
            _ => None,
        }
        .ok_or_else(|| format!("the targets file has no [{scenario}] section"))
    }
}

impl Targets {
    fn validate(&self) -> Result<(), String> {
        let latencies = [
            self.p50_ms,
            self.p90_ms,
            self.p95_ms,
            self.p99_ms,
            self.p999_ms,
        ];
        if latencies
            .iter()
            .chain([&self.mean_ms])
            .flatten()
            .any(|&v| v.is_nan() || v <= 0.0)
        {
            return Err("latency targets must be positive".into());
        }
        let set: Vec<f64> = latencies.iter().flatten().copied().collect();
        if set.windows(2).any(|w| w[0] > w[1]) {
            return Err("latency targets must not decrease with the percentile".into());
        }
        if matches!(self.min_rate, Some(r) if r.is_nan() || r < 0.0) {
            return Err("min_rate must be at least 0".into());
        }
        if matches!(self.max_error_rate, Some(r) if r.is_nan() || !(0.0..=1.0).contains(&r)) {
            return Err("max_error_rate must be between 0 and 1".into());
        }
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        *self == Targets::default()
    }

    pub fn evaluate(&self, m: &Measured) -> Vec<TargetCheck> {
        let mut checks = Vec::new();
        let mut at_most = |name, limit: Option<f64>, measured: Option<f64>, unit| {
            if let Some(limit) = limit {
                checks.push(TargetCheck {
                    name,
                    limit,
                    measured,
                    unit,
                    at_most: true,
                    passed: measured.is_some_and(|m| m <= limit),
                    default: false,
                });
            }
        };
        at_most("p50 latency", self.p50_ms, m.p50_ms, "ms");
        at_most("p90 latency", self.p90_ms, m.p90_ms, "ms");
        at_most("p95 latency", self.p95_ms, m.p95_ms, "ms");
        at_most("p99 latency", self.p99_ms, m.p99_ms, "ms");
        at_most("p99.9 latency", self.p999_ms, m.p999_ms, "ms");
        at_most("mean latency", self.mean_ms, m.mean_ms, "ms");
        let limit = self.max_error_rate.unwrap_or(DEFAULT_ERROR_BUDGET);
        checks.push(TargetCheck {
            name: "error rate",
            limit,
            measured: Some(m.error_rate),
            unit: "",
            at_most: true,
            passed: m.error_rate <= limit,
            default: self.max_error_rate.is_none(),
        });
        if let Some(limit) = self.min_rate {
            checks.push(TargetCheck {
                name: "achieved rate",
                limit,
                measured: Some(m.rate),
                unit: "/s",
                at_most: false,
                passed: m.rate >= limit,
                default: false,
            });
        }
        checks
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MEASURED: Measured = Measured {
        p50_ms: Some(0.4),
        p90_ms: Some(0.9),
        p95_ms: Some(1.2),
        p99_ms: Some(2.5),
        p999_ms: Some(9.0),
        mean_ms: Some(0.5),
        rate: 950.0,
        error_rate: 0.0,
    };

    #[test]
    fn each_target_is_judged_against_its_measurement() {
        let file = TargetsFile::parse(
            "[read]\np50_ms = 1.0\np95_ms = 1.0\np99_ms = 2.0\nmean_ms = 0.6\nmin_rate = 900\nmax_error_rate = 0.001\n",
        )
        .unwrap();
        let checks = file.for_scenario("read").unwrap().evaluate(&MEASURED);
        let verdicts: Vec<(&str, bool)> = checks.iter().map(|c| (c.name, c.passed)).collect();
        assert_eq!(
            verdicts,
            vec![
                ("p50 latency", true),
                ("p95 latency", false),
                ("p99 latency", false),
                ("mean latency", true),
                ("error rate", true),
                ("achieved rate", true)
            ]
        );
        assert!(checks.iter().all(|c| !c.default));
        let slow = Measured {
            rate: 899.0,
            ..MEASURED
        };
        let rate = file.for_scenario("read").unwrap().evaluate(&slow);
        assert!(!rate.last().unwrap().passed);
        // Nothing answered: no latency at all, and a latency target cannot be met.
        let silent = Measured {
            p50_ms: None,
            p95_ms: None,
            p99_ms: None,
            mean_ms: None,
            ..MEASURED
        };
        let checks = file.for_scenario("read").unwrap().evaluate(&silent);
        assert!(checks
            .iter()
            .filter(|c| c.unit == "ms")
            .all(|c| !c.passed && c.measured.is_none()));
    }

    #[test]
    fn without_an_error_bound_the_default_budget_judges_errors() {
        let none = Targets::default();
        let failing = Measured {
            error_rate: 0.4165,
            ..MEASURED
        };
        let checks = none.evaluate(&failing);
        assert_eq!(checks.len(), 1);
        assert_eq!(
            (
                checks[0].name,
                checks[0].limit,
                checks[0].passed,
                checks[0].default
            ),
            ("error rate", DEFAULT_ERROR_BUDGET, false, true)
        );
        assert!(none.evaluate(&MEASURED)[0].passed);
    }

    #[test]
    fn a_missing_section_is_an_error() {
        let file = TargetsFile::parse("[read]\np50_ms = 1.0\n").unwrap();
        assert!(file.for_scenario("write").unwrap_err().contains("[write]"));
    }

    #[test]
    fn typos_and_nonsense_are_rejected() {
        assert!(TargetsFile::parse("[read]\np99ms = 1.0\n").is_err());
        assert!(TargetsFile::parse("[reed]\np99_ms = 1.0\n").is_err());
        assert!(TargetsFile::parse("[read]\np50_ms = 5.0\np99_ms = 1.0\n").is_err());
        assert!(TargetsFile::parse("[read]\nmax_error_rate = 2.0\n").is_err());
        assert!(TargetsFile::parse("[read]\np99_ms = -1.0\n").is_err());
    }

    #[test]
    fn shipped_target_files_parse_and_cover_every_scenario() {
        for file in ["local.toml", "prod.toml", "smoke.toml"] {
            let path = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("targets")
                .join(file);
            let targets = TargetsFile::load(&path).unwrap();
            for scenario in ["read", "write", "mixed"] {
                let t = targets.for_scenario(scenario).unwrap();
                assert!(!t.is_empty(), "{file} [{scenario}] sets no target");
                assert!(
                    t.max_error_rate.is_some(),
                    "{file} [{scenario}] must bound errors"
                );
            }
        }
    }
}
