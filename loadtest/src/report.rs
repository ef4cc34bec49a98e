//! What a run produced, in three forms: a human summary (stdout), the machine-readable result
//! (`result.json`, and stdout with `--json`; its schema is documented in loadtest/README.md and
//! versioned by `schema_version`), and the HTML report (`html.rs`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::client::Op;
use crate::correctness::{WriteCheck, WriteOutcome};
use crate::drive::{Mode, Outcome, Plan, TimelinePoint};
use crate::stats::OpTotals;
use crate::targets::{Measured, TargetCheck, Targets, DEFAULT_ERROR_BUDGET};

pub use crate::html::percentile_svg;

/// Bumped whenever a field of `result.json` changes meaning or goes away (new fields do not
/// bump it). `loadtest compare` refuses files of another version.
pub const SCHEMA_VERSION: u32 = 1;

pub fn serialize_secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// The verdict of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Every target (and the default error budget) met, no write violation.
    Pass,
    Fail,
    /// Stopped early (Ctrl-C): the numbers are partial; `failures` says what they show.
    Interrupted,
}

/// The whole result of one run: what the JSON file holds and the other forms show.
#[derive(Clone, Debug, Serialize)]
pub struct RunResult {
    pub schema_version: u32,
    pub tool: String,
    /// The exact command, shell-quoted, so the run can be repeated.
    pub command_line: String,
    pub started_at: String,
    pub target: String,
    /// The targets file the run was judged by; `None`: only the default error budget.
    pub targets_file: Option<String>,
    pub plan: Plan,
    pub measured_s: f64,
    /// How long load was applied, warm-up included (up to Ctrl-C, when it stopped the run).
    pub loaded_s: f64,
    pub verdict: Verdict,
    /// `verdict == "pass"`.
    pub passed: bool,
    /// Why the verdict is not a pass, in words (empty on a pass).
    pub failures: Vec<String>,
    /// What the reader must know to read the numbers right, whatever the verdict: the load
    /// generator fell behind its schedule, or the likely cause of a run of 404s.
    pub warnings: Vec<String>,
    pub interrupted: bool,
    /// Requests still unanswered when the grace after Ctrl-C ran out (in no count below).
    pub abandoned: u64,
    /// The measured window (after warm-up), read and write together; its error rate includes
    /// open-loop requests never sent.
    pub total: OpReport,
    pub read: Option<OpReport>,
    pub write: Option<OpReport>,
    /// With `--stages`: each stage apart, requests counted in the stage of their intended time.
    pub stages: Vec<StageReport>,
    pub open_loop: Option<SendReport>,
    /// Over the whole run, warm-up included.
    pub writes: Option<WriteCheck>,
    pub targets: Vec<TargetCheck>,
    pub timeline: Vec<TimelinePoint>,
}

#[derive(Clone, Debug, Serialize)]
pub struct OpReport {
    pub requests: u64,
    pub ok: u64,
    pub failed: u64,
    /// Failures by kind: `status_404`, `timeout`, `transport`, `connect`, `bad_body`, `unsent`.
    pub errors: BTreeMap<String, u64>,
    /// Every complete answer by HTTP status ("200": n, "404": m).
    pub status_codes: BTreeMap<String, u64>,
    /// Successful answers per second over the measured window.
    pub rate: f64,
    pub error_rate: f64,
    pub latency_ms: LatencyReport,
    /// (percentile, ms) points of the latency distribution, for charts.
    pub percentiles: Vec<(f64, f64)>,
}

/// Milliseconds. When nothing was answered there is no latency: every field is NaN, written
/// `null` in JSON and "no data" in the tables (NaN rather than `Option` keeps field access
/// plain for the benchmark; `get` gives the typed view).
#[derive(Clone, Copy, Debug, Serialize)]
pub struct LatencyReport {
    #[serde(serialize_with = "no_data_as_null")]
    pub p50: f64,
    #[serde(serialize_with = "no_data_as_null")]
    pub p90: f64,
    #[serde(serialize_with = "no_data_as_null")]
    pub p95: f64,
    #[serde(serialize_with = "no_data_as_null")]
    pub p99: f64,
    #[serde(serialize_with = "no_data_as_null")]
    pub p999: f64,
    #[serde(serialize_with = "no_data_as_null")]
    pub max: f64,
    #[serde(serialize_with = "no_data_as_null")]
    pub mean: f64,
}

/// A latency, or `None` when there is no data.
pub fn data(v: f64) -> Option<f64> {
    (!v.is_nan()).then_some(v)
}

fn no_data_as_null<S: serde::Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    data(*v).serialize(s)
}

/// `12.345` (three decimals, the tables' unit is ms), or `no data`.
pub fn ms_text(v: impl Into<Option<f64>>) -> String {
    match v.into().and_then(data) {
        Some(v) => format!("{v:.3}"),
        None => "no data".into(),
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct StageReport {
    /// Seconds since the start when the stage began and ended.
    pub from_s: f64,
    pub to_s: f64,
    /// The scheduled rate at the stage's start and end (linear in between).
    pub rate_from: f64,
    pub rate_to: f64,
    #[serde(flatten)]
    pub report: OpReport,
}

#[derive(Clone, Copy, Debug, Serialize)]
pub struct SendReport {
    /// The scheduled rate (with `--stages`, the highest stage's).
    pub rate: f64,
    /// Sent later than `late_after` behind their intended time (they still count, latency
    /// measured from the intended time).
    pub late: u64,
    /// Due during the run, never sent: no connection was free before the run ended.
    pub unsent: u64,
    /// `None` when nothing was sent.
    pub lag_p50_ms: Option<f64>,
    pub lag_p99_ms: Option<f64>,
    pub lag_max_ms: Option<f64>,
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

impl OpReport {
    fn of(totals: &OpTotals, unsent: u64, window: f64) -> Self {
        let h = &totals.latency;
        let failed = totals.failed() + unsent;
        let requests = totals.ok + failed;
        let mut errors: BTreeMap<String, u64> =
            totals.errors.iter().map(|(k, n)| (k.label(), *n)).collect();
        if unsent > 0 {
            errors.insert("unsent".into(), unsent);
        }
        let quantile = |q| {
            if h.is_empty() {
                f64::NAN
            } else {
                ms(h.value_at_quantile(q))
            }
        };
        Self {
            requests,
            ok: totals.ok,
            failed,
            errors,
            status_codes: totals
                .statuses
                .iter()
                .map(|(s, n)| (s.to_string(), *n))
                .collect(),
            rate: totals.ok as f64 / window,
            error_rate: if requests == 0 {
                0.0
            } else {
                failed as f64 / requests as f64
            },
            latency_ms: LatencyReport {
                p50: quantile(0.5),
                p90: quantile(0.9),
                p95: quantile(0.95),
                p99: quantile(0.99),
                p999: quantile(0.999),
                max: if h.is_empty() { f64::NAN } else { ms(h.max()) },
                mean: if h.is_empty() {
                    f64::NAN
                } else {
                    h.mean() / 1000.0
                },
            },
            percentiles: percentile_curve(h),
        }
    }

    pub fn measured(&self) -> Measured {
        let l = self.latency_ms;
        Measured {
            p50_ms: data(l.p50),
            p90_ms: data(l.p90),
            p95_ms: data(l.p95),
            p99_ms: data(l.p99),
            p999_ms: data(l.p999),
            mean_ms: data(l.mean),
            rate: self.rate,
            error_rate: self.error_rate,
        }
    }

    /// Failures that got no HTTP answer at all (the status codes cover the rest).
    pub fn without_answer(&self) -> impl Iterator<Item = (&String, &u64)> {
        self.errors
            .iter()
            .filter(|(k, _)| !k.starts_with("status_"))
    }
}

fn percentile_curve(h: &Histogram<u64>) -> Vec<(f64, f64)> {
    if h.is_empty() {
        return Vec::new();
    }
    let mut points: Vec<(f64, f64)> = h
        .iter_quantiles(4)
        .map(|v| (v.quantile_iterated_to() * 100.0, ms(v.value_iterated_to())))
        .filter(|&(p, _)| p < 100.0)
        .collect();
    points.push((100.0, ms(h.max())));
    points
}

impl RunResult {
    /// Judges `outcome` by `targets` (the scenario's section of a targets file) or, without one,
    /// by the default error budget alone.
    pub fn new(target: &str, plan: Plan, outcome: Outcome, targets: Option<&Targets>) -> Self {
        let window = outcome.measured.as_secs_f64().max(1e-3);
        let recorded = &outcome.recorded;
        let mut all = OpTotals::new();
        for op in Op::ALL {
            all.merge(&recorded.ops[op.index()]);
        }
        let total = OpReport::of(&all, outcome.unsent, window);
        let per_op = |op: Op| {
            let t = &recorded.ops[op.index()];
            (t.ok + t.failed() > 0).then(|| OpReport::of(t, 0, window))
        };
        let stages = match &plan.mode {
            Mode::Ramp { stages } => {
                let (mut at, mut from) = (0.0, 0.0);
                stages
                    .iter()
                    .zip(&recorded.stages)
                    .map(|(stage, totals)| {
                        let d = stage.duration.as_secs_f64();
                        // An interrupted stage is judged over the part that ran.
                        let ran = (outcome.measured.as_secs_f64() + plan.warmup.as_secs_f64() - at)
                            .clamp(1e-3, d);
                        let report = StageReport {
                            from_s: at,
                            to_s: at + d,
                            rate_from: from,
                            rate_to: stage.target,
                            report: OpReport::of(totals, 0, ran),
                        };
                        (at, from) = (at + d, stage.target);
                        report
                    })
                    .collect()
            }
            _ => Vec::new(),
        };
        let lag = &recorded.send_lag;
        let lag_at = |q| (!lag.is_empty()).then(|| ms(lag.value_at_quantile(q)));
        let open_loop = match &plan.mode {
            Mode::Closed => None,
            Mode::Open { .. } | Mode::Ramp { .. } => Some(SendReport {
                rate: match &plan.mode {
                    Mode::Open { rate } => *rate,
                    Mode::Ramp { stages } => stages.iter().map(|s| s.target).fold(0.0, f64::max),
                    Mode::Closed => 0.0,
                },
                late: recorded.late,
                unsent: outcome.unsent,
                lag_p50_ms: lag_at(0.5),
                lag_p99_ms: lag_at(0.99),
                lag_max_ms: (!lag.is_empty()).then(|| ms(lag.max())),
            }),
        };
        let default_targets = Targets::default();
        let checks = targets
            .unwrap_or(&default_targets)
            .evaluate(&total.measured());

        let mut failures: Vec<String> = checks
            .iter()
            .filter(|c| !c.passed)
            .map(|c| match c.measured {
                Some(m) => format!(
                    "{} {} is {} the {}limit {}",
                    c.name,
                    value(m, c.unit),
                    if c.at_most { "above" } else { "below" },
                    if c.default { "default " } else { "" },
                    value(c.limit, c.unit)
                ),
                None => format!(
                    "{} has no data (nothing was answered), so the limit {} is not met",
                    c.name,
                    value(c.limit, c.unit)
                ),
            })
            .collect();
        if total.requests == 0 {
            failures.push("no request was measured".into());
        }
        if let Some(w) = outcome.writes.as_ref().filter(|w| !w.passed()) {
            failures.push(format!(
                "write correctness violated ({})",
                w.violations.len()
            ));
        }
        let mut warnings = Vec::new();
        if let Some(o) = &open_loop {
            // Far behind (p99 ten times the late threshold) and often (over 5% of sends): a few
            // late sends on a busy machine are noise, this is the client's own queue.
            let late_ms = plan.late_after.as_secs_f64() * 1000.0;
            let sent = (total.requests + outcome.abandoned).saturating_sub(o.unsent);
            if o.lag_p99_ms.is_some_and(|lag| lag > 10.0 * late_ms) && o.late * 20 > sent {
                warnings.push(format!(
                    "the load generator fell behind its schedule ({}, send lag p99 {} ms): \
                     latencies are measured from the intended send time, so they include this client's own lag; \
                     a missed latency target is not the server's alone (more connections, a lower rate or a bigger machine tell them apart)",
                    counted(o.late, "late send", "late sends"),
                    ms_text(o.lag_p99_ms)
                ));
            }
        }
        let only_404 =
            !total.status_codes.is_empty() && total.status_codes.keys().all(|s| s == "404");
        if only_404 {
            if let Some(cause) = crate::guardrails::api_path_warning(target) {
                warnings.push(format!("every answer was 404: likely cause: {cause}"));
            }
        }
        let verdict = if outcome.interrupted {
            Verdict::Interrupted
        } else if failures.is_empty() {
            Verdict::Pass
        } else {
            Verdict::Fail
        };
        Self {
            schema_version: SCHEMA_VERSION,
            tool: format!("loadtest {}", crate::cli::VERSION),
            command_line: String::new(),
            started_at: utc_timestamp(outcome.started_at),
            target: target.into(),
            targets_file: None,
            measured_s: outcome.measured.as_secs_f64(),
            loaded_s: outcome.loaded.as_secs_f64(),
            verdict,
            passed: verdict == Verdict::Pass,
            failures,
            warnings,
            interrupted: outcome.interrupted,
            abandoned: outcome.abandoned,
            read: per_op(Op::Read),
            write: per_op(Op::Write),
            total,
            stages,
            open_loop,
            writes: outcome.writes,
            targets: checks,
            timeline: outcome.timeline,
            plan,
        }
    }

    /// The machine-readable result: `result.json`, and stdout with `--json`.
    pub fn json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a run result serialises") + "\n"
    }

    /// The verdict line's words, e.g. `PASS (no targets file: …)`.
    pub fn verdict_line(&self, colour: bool) -> String {
        self.verdict_words(colour, true)
    }

    /// The verdict's words; the report lists the warnings apart, under it.
    pub fn verdict_words(&self, colour: bool, with_warnings: bool) -> String {
        let word = match self.verdict {
            Verdict::Pass => paint("PASS", GREEN, colour),
            Verdict::Fail => paint("FAIL", RED, colour),
            Verdict::Interrupted => paint("INTERRUPTED", YELLOW, colour),
        };
        let mut why = self.failures.clone();
        if self.verdict == Verdict::Interrupted {
            why.insert(0, "stopped by Ctrl-C; the numbers are partial".into());
        }
        if with_warnings {
            why.extend(self.warnings.iter().map(|w| format!("warning: {w}")));
        }
        if self.targets_file.is_none() {
            why.push(format!(
                "no targets file: judged by the default error budget of {}% only",
                DEFAULT_ERROR_BUDGET * 100.0
            ));
        }
        if why.is_empty() {
            word
        } else {
            format!("{word} ({})", why.join("; "))
        }
    }

    /// The summary printed at the end of a run; `colour` paints the verdicts (a terminal).
    pub fn summary(&self, colour: bool) -> String {
        let mut out = String::new();
        let plan = &self.plan;
        let _ = writeln!(
            out,
            "{} → {}: {} scenario, {}, {}, {}",
            self.started_at,
            self.target,
            plan.scenario.name(),
            self.mode_text(),
            counted(plan.connections as u64, "connection", "connections"),
            self.window_text()
        );
        if self.interrupted {
            let _ = writeln!(
                out,
                "{}: stopped by Ctrl-C after {:.1} s of load; partial results, {} abandoned in flight",
                paint("INTERRUPTED", YELLOW, colour),
                self.loaded_s,
                counted(self.abandoned, "request", "requests")
            );
        }
        let _ = writeln!(
            out,
            "\nmeasured window ({:.1} s{}):",
            self.measured_s,
            self.after_warmup()
        );
        let header = [
            "requests",
            "ok/s",
            "failed",
            "error rate",
            "mean ms",
            "p50 ms",
            "p90 ms",
            "p95 ms",
            "p99 ms",
            "p99.9 ms",
            "max ms",
        ];
        let _ = write!(out, "{:<6}", "");
        for (i, h) in header.iter().enumerate() {
            let _ = write!(out, " {:>w$}", h, w = if i == 3 { 11 } else { 9 });
        }
        out.push('\n');
        for (name, op) in [
            ("read", self.read.as_ref()),
            ("write", self.write.as_ref()),
            ("all", Some(&self.total)),
        ] {
            if let Some(r) = op {
                let l = r.latency_ms;
                let _ = write!(
                    out,
                    "{name:<6} {:>9} {:>9.0} {:>9} {:>10.4}%",
                    r.requests,
                    r.rate,
                    r.failed,
                    r.error_rate * 100.0
                );
                for v in [l.mean, l.p50, l.p90, l.p95, l.p99, l.p999, l.max] {
                    let _ = write!(out, " {:>9}", ms_text(v));
                }
                out.push('\n');
            }
        }
        let _ = writeln!(out, "status codes: {}", status_text(&self.total));
        let no_answer: Vec<String> = self
            .total
            .without_answer()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        if !no_answer.is_empty() {
            let _ = writeln!(out, "no answer: {}", no_answer.join(", "));
        }
        if let Some(o) = &self.open_loop {
            let _ = writeln!(
                out,
                "schedule: {} (> {:.1} ms behind), {} unsent; send lag p50 {} ms, p99 {} ms, max {} ms",
                counted(o.late, "late send", "late sends"),
                plan.late_after.as_secs_f64() * 1000.0,
                o.unsent,
                ms_text(o.lag_p50_ms),
                ms_text(o.lag_p99_ms),
                ms_text(o.lag_max_ms)
            );
        }
        if !self.stages.is_empty() {
            let _ = writeln!(
                out,
                "\nstages (a request counts in the stage of its intended send time):\n{:<15} {:>15} {:>9} {:>9} {:>9} {:>11} {:>9} {:>9} {:>9} {:>9}",
                "time", "rate", "requests", "ok/s", "failed", "error rate", "p50 ms", "p95 ms", "p99 ms", "max ms"
            );
            for s in &self.stages {
                let (r, l) = (&s.report, s.report.latency_ms);
                let _ = writeln!(
                    out,
                    "{:<15} {:>15} {:>9} {:>9.0} {:>9} {:>10.4}% {:>9} {:>9} {:>9} {:>9}",
                    format!("{}–{} s", trim_s(s.from_s), trim_s(s.to_s)),
                    format!("{:.0}→{:.0}/s", s.rate_from, s.rate_to),
                    r.requests,
                    r.rate,
                    r.failed,
                    r.error_rate * 100.0,
                    ms_text(l.p50),
                    ms_text(l.p95),
                    ms_text(l.p99),
                    ms_text(l.max)
                );
            }
        }
        if let Some(w) = &self.writes {
            let colour_of = match w.outcome {
                WriteOutcome::Ok => GREEN,
                WriteOutcome::OkGapsNotChecked => YELLOW,
                WriteOutcome::Violated => RED,
            };
            let _ = writeln!(
                out,
                "\nwrite correctness (whole run, warm-up included): {}",
                paint(&w.verdict(), colour_of, colour)
            );
            let measured_ok = self.write.as_ref().map_or(0, |r| r.ok);
            let _ = writeln!(
                out,
                "  sentinels {} → {}; counter moved by {}; {} ({} in the measured window above, {} in the warm-up or after a stop), {} with unknown outcome; \
                 {}, {}, {} out of range, {} stale",
                w.before,
                w.after.map_or("?".into(), |a| a.to_string()),
                w.counter_delta.map_or("?".into(), |d| d.to_string()),
                counted(w.successes, "successful write", "successful writes"),
                measured_ok,
                w.successes.saturating_sub(measured_ok),
                w.uncertain,
                counted(w.duplicates, "duplicate", "duplicates"),
                counted(w.gaps, "gap", "gaps"),
                w.out_of_range,
                w.stale
            );
            for v in &w.violations {
                let _ = writeln!(out, "  {}: {v}", paint("VIOLATION", RED, colour));
            }
            for n in &w.notes {
                let _ = writeln!(out, "  note: {n}");
            }
        }
        let _ = writeln!(
            out,
            "\n{}\n{:<16} {:>24} {:>14}  result",
            match &self.targets_file {
                Some(file) => format!("targets ({file}):"),
                None => "targets (no targets file: the default error budget only):".into(),
            },
            "target",
            "limit",
            "measured"
        );
        for c in &self.targets {
            let _ = writeln!(
                out,
                "{:<16} {:>24} {:>14}  {}",
                c.name,
                format!(
                    "{} {}{}",
                    if c.at_most { "≤" } else { "≥" },
                    value(c.limit, c.unit),
                    if c.default { " (default)" } else { "" }
                ),
                value(c.measured, c.unit),
                if c.passed {
                    paint("ok", GREEN, colour)
                } else {
                    paint("MISSED", RED, colour)
                }
            );
        }
        let _ = writeln!(out, "\nresult: {}", self.verdict_line(colour));
        out
    }

    /// `7 s measured after a 2 s warm-up`, or `7 s measured, no warm-up` (a ramp has none).
    pub fn window_text(&self) -> String {
        let warmup = self.plan.warmup.as_secs_f64();
        if warmup > 0.0 {
            format!(
                "{} s measured after a {} s warm-up",
                trim_s(self.measured_s),
                trim_s(warmup)
            )
        } else {
            format!("{} s measured, no warm-up", trim_s(self.measured_s))
        }
    }

    /// ` after the warm-up`, or `, no warm-up` when there was none (a ramp).
    pub fn after_warmup(&self) -> &'static str {
        if self.plan.warmup.is_zero() {
            ", no warm-up"
        } else {
            " after the warm-up"
        }
    }

    pub fn mode_text(&self) -> String {
        match &self.plan.mode {
            Mode::Open { rate } => format!("open loop at {rate:.0}/s"),
            Mode::Closed => "closed loop".into(),
            Mode::Ramp { stages } => format!(
                "open loop in {} stages ({})",
                stages.len(),
                stages
                    .iter()
                    .map(|s| format!("{}s:{:.0}", trim_s(s.duration.as_secs_f64()), s.target))
                    .collect::<Vec<_>>()
                    .join(",")
            ),
        }
    }
}

/// `200 ×9812, 404 ×12`, or `none` when nothing answered.
pub fn status_text(r: &OpReport) -> String {
    if r.status_codes.is_empty() {
        return "none (no HTTP answer)".into();
    }
    r.status_codes
        .iter()
        .map(|(s, n)| format!("{s} ×{n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Seconds as short as they can be said: `7`, `0.5`.
pub fn trim_s(v: f64) -> String {
    let s = format!("{v:.1}");
    s.trim_end_matches(".0").to_string()
}

/// `1 increment`, `2 increments`: a count with its noun in the right number.
pub fn counted(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// `was` or `were`, to agree with `n`.
pub fn was(n: u64) -> &'static str {
    if n == 1 {
        "was"
    } else {
        "were"
    }
}

pub fn value(v: impl Into<Option<f64>>, unit: &str) -> String {
    let Some(v) = v.into().and_then(data) else {
        return "no data".into();
    };
    match unit {
        "ms" => format!("{v:.3} ms"),
        "/s" => format!("{v:.0}/s"),
        _ => format!("{:.4}%", v * 100.0),
    }
}

const GREEN: &str = "32";
const RED: &str = "31";
const YELLOW: &str = "33";

fn paint(text: &str, colour: &str, on: bool) -> String {
    if on {
        format!("\x1b[1;{colour}m{text}\x1b[0m")
    } else {
        text.to_string()
    }
}

/// Colour on a terminal unless `NO_COLOR` is set to anything non-empty (no-color.org).
pub fn colour_wanted(is_terminal: bool) -> bool {
    is_terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Arguments as a shell would need them typed, so the report's command can be pasted back.
pub fn shell_line(args: impl IntoIterator<Item = String>) -> String {
    args.into_iter()
        .map(|a| {
            let safe = !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_./:=,@%+-".contains(c));
            if safe {
                a
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// `2025-01-31T12:00:00Z` without a date-time dependency (civil-from-days, H. Hinnant).
pub fn utc_timestamp(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_utc_iso8601() {
        assert_eq!(utc_timestamp(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_709_210_096); // leap day
        assert_eq!(utc_timestamp(t), "2024-02-29T12:34:56Z");
    }

    #[test]
    fn command_lines_can_be_pasted_back() {
        let args = [
            "loadtest",
            "run",
            "http://x/",
            "--stages",
            "1s:5,2s:0",
            "a b",
            "it's",
        ];
        assert_eq!(
            shell_line(args.map(String::from)),
            r"loadtest run http://x/ --stages 1s:5,2s:0 'a b' 'it'\''s'"
        );
    }

    #[test]
    fn colour_only_when_painting_is_wanted() {
        assert_eq!(paint("FAIL", RED, false), "FAIL");
        assert_eq!(paint("FAIL", RED, true), "\x1b[1;31mFAIL\x1b[0m");
        assert!(!colour_wanted(false));
    }
}
