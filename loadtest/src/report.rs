//! What a run produced, in three forms: a human summary (stdout), a JSON result file, and a
//! self-contained HTML report with two charts (latency by percentile, latency over time) drawn
//! by `plotters` into inline SVG — no scripts, no external files.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use plotters::prelude::*;
use serde::Serialize;

use crate::client::Op;
use crate::correctness::WriteCheck;
use crate::drive::{Mode, Outcome, Plan, TimelinePoint};
use crate::stats::{total_histogram, OpTotals};
use crate::targets::{Measured, TargetCheck, Targets};

pub fn serialize_secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// The whole result of one run: what the JSON file holds and the other forms show.
#[derive(Clone, Debug, Serialize)]
pub struct RunResult {
    pub tool: String,
    pub started_at: String,
    pub target: String,
    pub plan: Plan,
    pub measured_s: f64,
    /// Read and write together; its error rate includes open-loop requests never sent.
    pub total: OpReport,
    pub read: Option<OpReport>,
    pub write: Option<OpReport>,
    pub open_loop: Option<SendReport>,
    pub writes: Option<WriteCheck>,
    pub targets: Vec<TargetCheck>,
    pub timeline: Vec<TimelinePoint>,
    pub passed: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct OpReport {
    pub requests: u64,
    pub ok: u64,
    pub failed: u64,
    pub errors: BTreeMap<String, u64>,
    /// Successful answers per second over the measured window.
    pub rate: f64,
    pub error_rate: f64,
    pub latency_ms: LatencyReport,
    /// (percentile, ms) points of the latency distribution, for charts.
    pub percentiles: Vec<(f64, f64)>,
}

#[derive(Clone, Copy, Debug, Serialize)]
pub struct LatencyReport {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    pub mean: f64,
}

#[derive(Clone, Copy, Debug, Serialize)]
pub struct SendReport {
    pub rate: f64,
    /// Sent later than `late_after` behind their intended time (they still count, latency
    /// measured from the intended time).
    pub late: u64,
    /// Due during the run, never sent: no connection was free before the run ended.
    pub unsent: u64,
    pub lag_p50_ms: f64,
    pub lag_p99_ms: f64,
    pub lag_max_ms: f64,
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
                0.0
            } else {
                ms(h.value_at_quantile(q))
            }
        };
        Self {
            requests,
            ok: totals.ok,
            failed,
            errors,
            rate: totals.ok as f64 / window,
            error_rate: if requests == 0 {
                0.0
            } else {
                failed as f64 / requests as f64
            },
            latency_ms: LatencyReport {
                p50: quantile(0.5),
                p90: quantile(0.9),
                p99: quantile(0.99),
                p999: quantile(0.999),
                max: if h.is_empty() { 0.0 } else { ms(h.max()) },
                mean: if h.is_empty() { 0.0 } else { h.mean() / 1000.0 },
            },
            percentiles: percentile_curve(h),
        }
    }

    pub fn measured(&self) -> Measured {
        Measured {
            p50_ms: self.latency_ms.p50,
            p90_ms: self.latency_ms.p90,
            p99_ms: self.latency_ms.p99,
            p999_ms: self.latency_ms.p999,
            rate: self.rate,
            error_rate: self.error_rate,
        }
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
    pub fn new(target: &str, plan: Plan, outcome: Outcome, targets: Option<&Targets>) -> Self {
        let window = outcome.measured.as_secs_f64().max(1e-3);
        let recorded = &outcome.recorded;
        let mut all = OpTotals {
            latency: total_histogram(),
            ok: 0,
            errors: BTreeMap::new(),
        };
        for op in Op::ALL {
            all.merge(&recorded.ops[op.index()]);
        }
        let total = OpReport::of(&all, outcome.unsent, window);
        let per_op = |op: Op| {
            let t = &recorded.ops[op.index()];
            (t.ok + t.failed() > 0).then(|| OpReport::of(t, 0, window))
        };
        let lag = &recorded.send_lag;
        let open_loop = match plan.mode {
            Mode::Open { rate } => Some(SendReport {
                rate,
                late: recorded.late,
                unsent: outcome.unsent,
                lag_p50_ms: if lag.is_empty() {
                    0.0
                } else {
                    ms(lag.value_at_quantile(0.5))
                },
                lag_p99_ms: if lag.is_empty() {
                    0.0
                } else {
                    ms(lag.value_at_quantile(0.99))
                },
                lag_max_ms: if lag.is_empty() { 0.0 } else { ms(lag.max()) },
            }),
            Mode::Closed => None,
        };
        let checks = targets
            .map(|t| t.evaluate(&total.measured()))
            .unwrap_or_default();
        let passed = checks.iter().all(|c| c.passed)
            && outcome.writes.as_ref().is_none_or(WriteCheck::passed);
        Self {
            tool: concat!("loadtest ", env!("CARGO_PKG_VERSION")).into(),
            started_at: utc_timestamp(outcome.started_at),
            target: target.into(),
            measured_s: outcome.measured.as_secs_f64(),
            read: per_op(Op::Read),
            write: per_op(Op::Write),
            total,
            open_loop,
            writes: outcome.writes,
            targets: checks,
            timeline: outcome.timeline,
            passed,
            plan,
        }
    }

    /// The summary printed at the end of a run.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        let plan = &self.plan;
        let mode = match plan.mode {
            Mode::Open { rate } => format!("open loop at {rate:.0}/s"),
            Mode::Closed => "closed loop".into(),
        };
        let _ = writeln!(
            out,
            "{} → {}: {} scenario, {mode}, {} connections, {:.1} s measured after {:.1} s warm-up",
            self.started_at,
            self.target,
            plan.scenario.name(),
            plan.connections,
            self.measured_s,
            plan.warmup.as_secs_f64()
        );
        let _ = writeln!(
            out,
            "\n{:<6} {:>10} {:>10} {:>8} {:>11} {:>9} {:>9} {:>9} {:>9} {:>9}",
            "",
            "requests",
            "ok/s",
            "failed",
            "error rate",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "p99.9 ms",
            "max ms"
        );
        for (name, op) in [
            ("read", &self.read),
            ("write", &self.write),
            ("all", &Some(self.total.clone())),
        ] {
            if let Some(r) = op {
                let l = r.latency_ms;
                let _ = writeln!(
                    out,
                    "{name:<6} {:>10} {:>10.0} {:>8} {:>10.4}% {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3}",
                    r.requests, r.rate, r.failed, r.error_rate * 100.0, l.p50, l.p90, l.p99, l.p999, l.max
                );
            }
        }
        if !self.total.errors.is_empty() {
            let errors: Vec<String> = self
                .total
                .errors
                .iter()
                .map(|(k, n)| format!("{k}: {n}"))
                .collect();
            let _ = writeln!(out, "errors: {}", errors.join(", "));
        }
        if let Some(o) = &self.open_loop {
            let _ = writeln!(
                out,
                "schedule: {} late sends (> {:.1} ms behind), {} unsent; send lag p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
                o.late,
                plan.late_after.as_secs_f64() * 1000.0,
                o.unsent,
                o.lag_p50_ms,
                o.lag_p99_ms,
                o.lag_max_ms
            );
        }
        if let Some(w) = &self.writes {
            let _ = writeln!(
                out,
                "\nwrite correctness: {}",
                if w.passed() { "ok" } else { "VIOLATED" }
            );
            let _ = writeln!(
                out,
                "  sentinels {} → {}; counter moved by {}; {} successful writes, {} with unknown outcome; \
                 {} duplicates, {} gaps, {} out of range, {} stale",
                w.before,
                w.after.map_or("?".into(), |a| a.to_string()),
                w.counter_delta.map_or("?".into(), |d| d.to_string()),
                w.successes,
                w.uncertain,
                w.duplicates,
                w.gaps,
                w.out_of_range,
                w.stale
            );
            for v in &w.violations {
                let _ = writeln!(out, "  VIOLATION: {v}");
            }
            for n in &w.notes {
                let _ = writeln!(out, "  note: {n}");
            }
        }
        if !self.targets.is_empty() {
            let _ = writeln!(
                out,
                "\n{:<16} {:>16} {:>14}  result",
                "target", "limit", "measured"
            );
            for c in &self.targets {
                let _ = writeln!(
                    out,
                    "{:<16} {:>16} {:>14}  {}",
                    c.name,
                    format!(
                        "{} {}",
                        if c.at_most { "≤" } else { "≥" },
                        value(c.limit, c.unit)
                    ),
                    value(c.measured, c.unit),
                    if c.passed { "ok" } else { "MISSED" }
                );
            }
        }
        let _ = writeln!(
            out,
            "\nresult: {}",
            if self.passed { "PASS" } else { "FAIL" }
        );
        out
    }

    pub fn html(&self) -> String {
        let mut page = String::new();
        let title = format!("loadtest {} {}", self.plan.scenario.name(), self.target);
        let _ = write!(
            page,
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>{}</style></head><body>",
            escape(&title),
            CSS
        );
        let verdict = if self.passed {
            "<b class=ok>PASS</b>"
        } else {
            "<b class=bad>FAIL</b>"
        };
        let _ = write!(page, "<h1>{} — {verdict}</h1>", escape(&title));
        let _ = write!(page, "<pre>{}</pre>", escape(&self.summary()));
        let _ = write!(
            page,
            "<h2>Latency by percentile</h2>{}",
            percentile_chart(self)
        );
        let _ = write!(page, "<h2>Latency over time</h2>{}", timeline_chart(self));
        let _ = write!(
            page,
            "<p class=note>Latency runs from each request's intended send time{}; the shaded band is the warm-up, excluded from the totals.</p></body></html>",
            if matches!(self.plan.mode, Mode::Open { .. }) { " (open loop: queueing behind a slow answer is charged)" } else { "" }
        );
        page
    }
}

fn value(v: f64, unit: &str) -> String {
    match unit {
        "ms" => format!("{v:.3} ms"),
        "/s" => format!("{v:.0}/s"),
        _ => format!("{:.4}%", v * 100.0),
    }
}

const CSS: &str = "body{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;color:#222}\
pre{background:#f6f6f6;padding:1em;overflow-x:auto;font-size:13px}.ok{color:#176f2c}.bad{color:#b00020}\
.note{color:#555;font-size:14px}svg{max-width:100%;height:auto}";

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

const SERIES: [RGBColor; 4] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
];

/// The x position of a percentile on a "nines" axis: 90% → 1, 99% → 2, 99.9% → 3.
fn nines(percentile: f64) -> f64 {
    -(1.0 - (percentile / 100.0).min(0.999_999)).log10()
}

fn y_range(values: impl Iterator<Item = f64>) -> std::ops::Range<f64> {
    let (lo, hi) = values
        .filter(|v| *v > 0.0)
        .fold((f64::MAX, 0.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if hi <= 0.0 {
        return 0.01..1.0;
    }
    (lo / 1.5).max(0.001)..hi * 1.5
}

/// Latency by percentile for each operation, on log axes (the tail is what matters).
pub fn percentile_chart(result: &RunResult) -> String {
    let series: Vec<(&str, &OpReport)> = [("read", &result.read), ("write", &result.write)]
        .into_iter()
        .filter_map(|(name, r)| r.as_ref().map(|r| (name, r)))
        .collect();
    let curves: Vec<(&str, Vec<(f64, f64)>)> = series
        .iter()
        .map(|(name, r)| {
            (
                *name,
                r.percentiles.iter().map(|&(p, v)| (nines(p), v)).collect(),
            )
        })
        .collect();
    percentile_svg(&curves)
}

/// Draws `(name, [(nines, ms)])` curves; shared with the benchmark report.
pub fn percentile_svg(curves: &[(&str, Vec<(f64, f64)>)]) -> String {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (900, 420)).into_drawing_area();
        let _ = root.fill(&WHITE);
        let max_x = curves
            .iter()
            .flat_map(|(_, c)| c.iter().map(|p| p.0))
            .fold(2.0f64, f64::max)
            .ceil();
        let y = y_range(curves.iter().flat_map(|(_, c)| c.iter().map(|p| p.1)));
        let Ok(mut chart) = ChartBuilder::on(&root)
            .margin(15)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(0.0..max_x, y.log_scale())
        else {
            return svg_fallback();
        };
        let _ = chart
            .configure_mesh()
            .x_labels(max_x as usize + 1)
            .x_label_formatter(&|x| {
                let p = 100.0 * (1.0 - 10f64.powf(-x));
                if p < 99.0 {
                    format!("{p:.0}%")
                } else {
                    format!("{}%", trim(p))
                }
            })
            .x_desc("percentile")
            .y_desc("latency (ms)")
            .y_label_formatter(&|v| trim(*v))
            .draw();
        for (i, (name, curve)) in curves.iter().enumerate() {
            let color = SERIES[i % SERIES.len()];
            if let Ok(drawn) = chart.draw_series(LineSeries::new(
                curve.iter().copied(),
                color.stroke_width(2),
            )) {
                drawn.label(*name).legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
            }
        }
        let _ = chart
            .configure_series_labels()
            .border_style(BLACK)
            .background_style(WHITE.mix(0.8))
            .draw();
        let _ = root.present();
    }
    svg
}

fn trim(v: f64) -> String {
    let s = format!("{v:.4}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

fn svg_fallback() -> String {
    "<p>(chart could not be drawn)</p>".into()
}

/// p50, p99 and max per second for each operation, warm-up shaded.
pub fn timeline_chart(result: &RunResult) -> String {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (900, 420)).into_drawing_area();
        let _ = root.fill(&WHITE);
        let timeline = &result.timeline;
        let max_t = timeline.iter().map(|p| p.t_s).fold(1.0f64, f64::max);
        let y = y_range(timeline.iter().flat_map(|p| {
            [p.read, p.write]
                .into_iter()
                .flatten()
                .flat_map(|l| [l.p50_ms, l.max_ms])
        }));
        let Ok(mut chart) = ChartBuilder::on(&root)
            .margin(15)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(0.0..max_t, y.clone().log_scale())
        else {
            return svg_fallback();
        };
        let _ = chart
            .configure_mesh()
            .x_desc("seconds since start")
            .y_desc("latency (ms)")
            .y_label_formatter(&|v| trim(*v))
            .draw();
        let warmup = result.plan.warmup.as_secs_f64();
        if warmup > 0.0 {
            let _ = chart.draw_series(std::iter::once(Rectangle::new(
                [(0.0, y.start), (warmup.min(max_t), y.end)],
                RGBColor(200, 200, 200).mix(0.35).filled(),
            )));
        }
        let mut color = 0;
        for (op, pick) in [("read", 0usize), ("write", 1)] {
            for (stat, dash) in [("p50", 0), ("p99", 1), ("max", 2)] {
                let points: Vec<(f64, f64)> = timeline
                    .iter()
                    .filter_map(|p| {
                        let l = if pick == 0 { p.read } else { p.write }?;
                        Some((p.t_s, [l.p50_ms, l.p99_ms, l.max_ms][dash]))
                    })
                    .collect();
                if points.is_empty() {
                    continue;
                }
                let c = SERIES[color % SERIES.len()];
                let style = c.mix([1.0, 0.8, 0.45][dash]).stroke_width([2, 2, 1][dash]);
                if let Ok(drawn) = chart.draw_series(LineSeries::new(points, style)) {
                    drawn
                        .label(format!("{op} {stat}"))
                        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
                }
            }
            if timeline.iter().any(|p| {
                if pick == 0 {
                    p.read.is_some()
                } else {
                    p.write.is_some()
                }
            }) {
                color += 1;
            }
        }
        let _ = chart
            .configure_series_labels()
            .border_style(BLACK)
            .background_style(WHITE.mix(0.8))
            .draw();
        let _ = root.present();
    }
    svg
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
    fn the_nines_axis_spreads_the_tail() {
        assert!((nines(90.0) - 1.0).abs() < 1e-9);
        assert!((nines(99.9) - 3.0).abs() < 1e-9);
        assert!(nines(100.0).is_finite());
    }
}
