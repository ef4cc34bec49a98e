//! `loadtest compare A B`: the regression gate. Reads two `result.json` files, prints the
//! change in throughput, error rate and latency, and fails when B is worse than A beyond the
//! tolerance. Judged: successful answers per second, error rate, mean, p50, p90, p95, p99.
//! Shown only: p99.9 and max, too noisy in a short run to gate on.

use std::fmt::Write as _;
use std::path::Path;

use serde_json::Value;

use crate::cli::CompareArgs;
use crate::report::SCHEMA_VERSION;
use crate::SetupError;

/// One compared quantity.
#[derive(Debug, PartialEq)]
pub struct Change {
    pub name: &'static str,
    pub a: f64,
    pub b: f64,
    pub regressed: bool,
    pub judged: bool,
}

#[derive(Clone, Copy)]
enum Better {
    Higher,
    Lower,
}

const LATENCIES: [(&str, &str, bool); 7] = [
    ("mean latency ms", "mean", true),
    ("p50 latency ms", "p50", true),
    ("p90 latency ms", "p90", true),
    ("p95 latency ms", "p95", true),
    ("p99 latency ms", "p99", true),
    ("p99.9 latency ms", "p999", false),
    ("max latency ms", "max", false),
];

fn load(path: &Path) -> Result<Value, SetupError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| SetupError(format!("{}: {e}", path.display())))?;
    let value: Value = serde_json::from_str(&text)
        .map_err(|e| SetupError(format!("{}: not JSON: {e}", path.display())))?;
    match value.get("schema_version").and_then(Value::as_u64) {
        Some(v) if v == u64::from(SCHEMA_VERSION) => Ok(value),
        Some(v) => Err(SetupError(format!(
            "{}: schema_version {v}, this loadtest reads {SCHEMA_VERSION}",
            path.display()
        ))),
        None => Err(SetupError(format!(
            "{}: no schema_version: not a loadtest result.json (or one from before schema_version existed)",
            path.display()
        ))),
    }
}

fn number(result: &Value, pointer: &str) -> Result<f64, SetupError> {
    match result.pointer(pointer) {
        Some(Value::Null) => Err(SetupError(format!(
            "result has no data at {pointer}: nothing was answered in that run, so there is no latency to compare"
        ))),
        value => value
            .and_then(Value::as_f64)
            .ok_or_else(|| SetupError(format!("result has no number at {pointer}"))),
    }
}

/// Every compared quantity of `a` and `b` (parsed result.json documents).
pub fn changes(a: &Value, b: &Value, args: &CompareArgs) -> Result<Vec<Change>, SetupError> {
    let mut out = Vec::new();
    let mut add = |name, pointer: &str, better: Better, judged: bool| -> Result<(), SetupError> {
        let (va, vb) = (number(a, pointer)?, number(b, pointer)?);
        let regressed = match better {
            Better::Higher => vb < va * (1.0 - args.tolerance),
            Better::Lower if pointer.ends_with("error_rate") => vb > va + args.error_tolerance,
            Better::Lower => {
                vb > va * (1.0 + args.tolerance) && vb - va > args.min_latency_change_ms
            }
        };
        out.push(Change {
            name,
            a: va,
            b: vb,
            regressed: judged && regressed,
            judged,
        });
        Ok(())
    };
    add("successful answers/s", "/total/rate", Better::Higher, true)?;
    add("error rate", "/total/error_rate", Better::Lower, true)?;
    for (name, key, judged) in LATENCIES {
        add(
            name,
            &format!("/total/latency_ms/{key}"),
            Better::Lower,
            judged,
        )?;
    }
    Ok(out)
}

/// Runs `loadtest compare`: prints the table; `Ok(false)` when B regressed.
pub fn run(args: &CompareArgs) -> Result<bool, SetupError> {
    let (a, b) = (load(&args.a)?, load(&args.b)?);
    let mut out = String::new();
    for key in ["/plan/scenario/name", "/target", "/plan/mode/kind"] {
        let (x, y) = (a.pointer(key), b.pointer(key));
        if x != y {
            let _ = writeln!(
                out,
                "warning: the runs differ in {}: {} vs {}",
                key.trim_start_matches('/').replace('/', "."),
                x.unwrap_or(&Value::Null),
                y.unwrap_or(&Value::Null)
            );
        }
    }
    let changes = changes(&a, &b, args)?;
    let _ = writeln!(
        out,
        "A: {} ({})\nB: {} ({})\n\n{:<22} {:>14} {:>14} {:>9}  verdict",
        args.a.display(),
        a.pointer("/started_at")
            .and_then(Value::as_str)
            .unwrap_or("?"),
        args.b.display(),
        b.pointer("/started_at")
            .and_then(Value::as_str)
            .unwrap_or("?"),
        "",
        "A",
        "B",
        "change"
    );
    for c in &changes {
        let change = if c.a == 0.0 {
            if c.b == 0.0 {
                "0%".to_string()
            } else {
                "new".to_string()
            }
        } else {
            let percent = (c.b - c.a) / c.a * 100.0;
            if percent.abs() < 0.05 {
                "0.0%".to_string()
            } else {
                format!("{percent:+.1}%")
            }
        };
        let shown = |v: f64| {
            if c.name == "error rate" {
                format!("{:.4}%", v * 100.0)
            } else if c.name.ends_with("/s") {
                format!("{v:.0}")
            } else {
                format!("{v:.3}")
            }
        };
        let _ = writeln!(
            out,
            "{:<22} {:>14} {:>14} {:>9}  {}",
            c.name,
            shown(c.a),
            shown(c.b),
            change,
            match (c.judged, c.regressed) {
                (false, _) => "(not judged)",
                (true, true) => "REGRESSED",
                (true, false) => "ok",
            }
        );
    }
    let regressions: Vec<&str> = changes
        .iter()
        .filter(|c| c.regressed)
        .map(|c| c.name)
        .collect();
    let _ = writeln!(
        out,
        "\nresult: {} (tolerance {:.0}% on rate and latency, {:.2} points on error rate)",
        if regressions.is_empty() {
            "no regression".to_string()
        } else {
            format!("REGRESSED: {}", regressions.join(", "))
        },
        args.tolerance * 100.0,
        args.error_tolerance * 100.0
    );
    print!("{out}");
    Ok(regressions.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn result(rate: f64, error_rate: f64, p99: f64) -> Value {
        serde_json::json!({
            "schema_version": SCHEMA_VERSION,
            "total": {"rate": rate, "error_rate": error_rate, "latency_ms": {
                "mean": 1.0, "p50": 1.0, "p90": 2.0, "p95": 3.0, "p99": p99, "p999": 50.0, "max": 90.0
            }}
        })
    }

    fn args() -> CompareArgs {
        CompareArgs {
            a: PathBuf::new(),
            b: PathBuf::new(),
            tolerance: 0.1,
            min_latency_change_ms: 0.05,
            error_tolerance: 0.001,
        }
    }

    fn regressed(a: &Value, b: &Value) -> Vec<&'static str> {
        changes(a, b, &args())
            .unwrap()
            .into_iter()
            .filter(|c| c.regressed)
            .map(|c| c.name)
            .collect()
    }

    #[test]
    fn within_tolerance_is_no_regression() {
        assert!(regressed(&result(1000.0, 0.0, 5.0), &result(920.0, 0.0005, 5.4)).is_empty());
    }

    #[test]
    fn slower_lossier_or_less_throughput_regresses() {
        let a = result(1000.0, 0.0, 5.0);
        assert_eq!(
            regressed(&a, &result(850.0, 0.0, 5.0)),
            vec!["successful answers/s"]
        );
        assert_eq!(
            regressed(&a, &result(1000.0, 0.01, 5.0)),
            vec!["error rate"]
        );
        assert_eq!(
            regressed(&a, &result(1000.0, 0.0, 6.0)),
            vec!["p99 latency ms"]
        );
    }

    #[test]
    fn tiny_absolute_changes_and_the_noisy_tail_are_not_judged() {
        let mut a = result(1000.0, 0.0, 0.10);
        let mut b = result(1000.0, 0.0, 0.14);
        assert!(regressed(&a, &b).is_empty(), "+40% but only 0.04 ms");
        a["total"]["latency_ms"]["max"] = 1.0.into();
        b["total"]["latency_ms"]["max"] = 100.0.into();
        assert!(regressed(&a, &b).is_empty());
    }

    #[test]
    fn other_schema_versions_are_refused() {
        let dir = std::env::temp_dir().join(format!("loadtest-compare-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let old = dir.join("old.json");
        std::fs::write(&old, r#"{"total":{}}"#).unwrap();
        assert!(load(&old).unwrap_err().0.contains("schema_version"));
        let _ = std::fs::remove_dir_all(dir);
    }
}
