//! The HTML report: one self-contained page (no scripts, no external files) with real tables
//! and three charts drawn by `plotters` into inline SVG: successful answers and errors per
//! second (so an outage shows as one, not as fast answers), latency over time, and latency by
//! percentile. Legends are HTML beside the charts; colours follow the Okabe–Ito palette (told
//! apart with colour-blindness) and the page follows the reader's light or dark setting.

use std::fmt::Write as _;
use std::ops::Range;

use plotters::coord::ranged1d::ValueFormatter;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use crate::correctness::WriteOutcome;
use crate::drive::Mode;
use crate::report::{counted, ms_text, trim_s, value, OpReport, RunResult, Verdict};

/// Okabe–Ito: blue, orange, bluish green, vermillion, reddish purple, sky blue.
const PALETTE: [(u8, u8, u8); 6] = [
    (0, 114, 178),
    (230, 159, 0),
    (0, 158, 115),
    (213, 94, 0),
    (204, 121, 167),
    (86, 180, 233),
];
const OK_HUE: usize = 2;
const ERROR_HUE: usize = 3;
const CHART_SIZE: (u32, u32) = (800, 400);

fn rgb(i: usize) -> RGBColor {
    let (r, g, b) = PALETTE[i % PALETTE.len()];
    RGBColor(r, g, b)
}

fn hex(i: usize) -> String {
    let (r, g, b) = PALETTE[i % PALETTE.len()];
    format!("#{r:02x}{g:02x}{b:02x}")
}

pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const CSS: &str = r#"
:root{color-scheme:light dark;--fg:#1b1b1b;--bg:#fff;--muted:#5b5b5b;--line:#d8d8d8;--head:#f3f3f3;--ok:#1a7f37;--bad:#c62828;--warn:#9a6700}
@media (prefers-color-scheme:dark){:root{--fg:#e8e8e8;--bg:#15171a;--muted:#a3a3a3;--line:#3a3d42;--head:#23262b;--ok:#4ac26b;--bad:#ff7b72;--warn:#e3b341}}
*{box-sizing:border-box}
body{font:16px/1.5 system-ui,-apple-system,"Segoe UI",sans-serif;color:var(--fg);background:var(--bg);max-width:72rem;margin:0 auto;padding:1rem .75rem}
h1{font-size:1.4rem;margin:.5rem 0;overflow-wrap:anywhere}h2{font-size:1.15rem;margin:2rem 0 .5rem}
.verdict{overflow-wrap:anywhere;font-size:1.1rem;padding:.6rem .8rem;border-left:.4rem solid;background:var(--head)}
.pass{color:var(--ok)}.fail{color:var(--bad)}.interrupted,.warn{color:var(--warn)}
.verdict.warn{font-size:1rem;border-color:var(--warn)}.verdict.pass{border-color:var(--ok)}.verdict.fail{border-color:var(--bad)}.verdict.interrupted{border-color:var(--warn)}
.scroll{overflow-x:auto;-webkit-overflow-scrolling:touch}
table{border-collapse:collapse;font-variant-numeric:tabular-nums;white-space:nowrap;font-size:.92rem}
th,td{padding:.3rem .55rem;border-bottom:1px solid var(--line);text-align:right}
th{background:var(--head);font-weight:600}th:first-child,td:first-child{text-align:left}
table.kv{table-layout:fixed;width:100%}table.kv th,table.kv td{white-space:normal;overflow-wrap:anywhere;text-align:left;vertical-align:top}table.kv th{width:7.5rem}
code{font-size:.9em;overflow-wrap:anywhere}
figure{margin:1rem 0;min-width:0}.chart{overflow-x:auto;-webkit-overflow-scrolling:touch;max-width:100%}.chart svg{display:block;width:100%;min-width:34rem;height:auto;color:var(--fg)}
figcaption{color:var(--muted);font-size:.9rem}
.legend{list-style:none;padding:0;margin:.3rem 0;display:flex;flex-wrap:wrap;gap:.2rem 1.4rem;font-size:.95rem}
.legend i{display:inline-block;width:1.6em;height:.35em;vertical-align:middle;margin-right:.45em;border-radius:2px}
.legend i.band{height:1em;opacity:.45}.legend i.mark{width:3px;height:1em;background:var(--muted)}
.note{color:var(--muted);font-size:.92rem}
"#;

impl RunResult {
    pub fn html(&self) -> String {
        let mut page = String::new();
        let title = format!("loadtest {} → {}", self.plan.scenario.name(), self.target);
        let _ = write!(
            page,
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <title>{}</title><style>{CSS}</style></head><body>",
            escape(&title)
        );
        let class = match self.verdict {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::Interrupted => "interrupted",
        };
        let _ = write!(
            page,
            "<h1>{}</h1><p class=\"verdict {class}\"><b>{}</b></p>",
            escape(&title),
            escape(&self.verdict_words(false, false))
        );
        for w in &self.warnings {
            let _ = write!(
                page,
                "<p class=\"verdict warn\"><b>warning:</b> {}</p>",
                escape(w)
            );
        }
        self.run_table(&mut page);
        self.results_tables(&mut page);
        self.writes_table(&mut page);
        self.targets_table(&mut page);
        self.charts(&mut page);
        page.push_str("</body></html>\n");
        page
    }

    fn run_table(&self, page: &mut String) {
        let plan = &self.plan;
        let mut rows = vec![
            ("command", format!("<code>{}</code>", escape(&self.command_line))),
            ("tool", escape(&self.tool)),
            ("started", escape(&self.started_at)),
            (
                "load",
                escape(&format!(
                    "{} scenario, {}, {} connections",
                    plan.scenario.name(),
                    self.mode_text(),
                    plan.connections
                )),
            ),
            (
                "time",
                format!(
                    "{}{}",
                    self.window_text(),
                    if self.interrupted {
                        format!(
                            " — <b class=interrupted>interrupted</b> by Ctrl-C; {} abandoned in flight",
                            counted(self.abandoned, "request", "requests")
                        )
                    } else {
                        String::new()
                    }
                ),
            ),
            (
                "targets",
                match &self.targets_file {
                    Some(f) => format!("<code>{}</code>", escape(f)),
                    None => "<b class=warn>no targets file</b>: only the default error budget was checked".into(),
                },
            ),
        ];
        if let Some(o) = &self.open_loop {
            rows.push((
                "schedule",
                format!(
                    "{} (&gt; {:.1} ms behind their intended time), {} never sent; send lag p50 {} ms, p99 {} ms, max {} ms",
                    counted(o.late, "late send", "late sends"),
                    plan.late_after.as_secs_f64() * 1000.0,
                    o.unsent,
                    ms_text(o.lag_p50_ms),
                    ms_text(o.lag_p99_ms),
                    ms_text(o.lag_max_ms)
                ),
            ));
        }
        page.push_str("<h2>Run</h2><div class=scroll><table class=kv>");
        for (k, v) in rows {
            let _ = write!(page, "<tr><th>{k}</th><td>{v}</td></tr>");
        }
        page.push_str("</table></div>");
    }

    fn results_tables(&self, page: &mut String) {
        let _ = write!(
            page,
            "<h2>Results (measured window, {:.1} s{})</h2><div class=scroll><table>\
             <tr><th></th><th>requests</th><th>ok/s</th><th>failed</th><th>error rate</th><th>mean ms</th>\
             <th>p50 ms</th><th>p90 ms</th><th>p95 ms</th><th>p99 ms</th><th>p99.9 ms</th><th>max ms</th></tr>",
            self.measured_s,
            self.after_warmup()
        );
        for (name, op) in [
            ("read", self.read.as_ref()),
            ("write", self.write.as_ref()),
            ("all", Some(&self.total)),
        ] {
            if let Some(r) = op {
                op_row(page, name, r);
            }
        }
        page.push_str("</table></div>");

        page.push_str("<h2>Answers</h2><div class=scroll><table><tr><th>status</th><th>count</th><th>share</th></tr>");
        let requests = self.total.requests.max(1) as f64;
        for (status, n) in &self.total.status_codes {
            let class = if status.starts_with('2') {
                ""
            } else {
                " class=fail"
            };
            let _ = write!(
                page,
                "<tr><td{class}>HTTP {status}</td><td>{n}</td><td>{:.2}%</td></tr>",
                *n as f64 * 100.0 / requests
            );
        }
        for (kind, n) in self.total.without_answer() {
            let _ = write!(
                page,
                "<tr><td class=fail>no answer: {}</td><td>{n}</td><td>{:.2}%</td></tr>",
                escape(kind),
                *n as f64 * 100.0 / requests
            );
        }
        page.push_str("</table></div>");

        if !self.stages.is_empty() {
            page.push_str(
                "<h2>Stages</h2><p class=note>Each request counts in the stage of its intended send time.</p>\
                 <div class=scroll><table><tr><th>time</th><th>rate</th><th>requests</th><th>ok/s</th><th>failed</th>\
                 <th>error rate</th><th>mean ms</th><th>p50 ms</th><th>p90 ms</th><th>p95 ms</th><th>p99 ms</th><th>p99.9 ms</th><th>max ms</th></tr>",
            );
            for s in &self.stages {
                let _ = write!(
                    page,
                    "<tr><td>{}–{} s</td>",
                    trim_s(s.from_s),
                    trim_s(s.to_s)
                );
                op_row(
                    page,
                    &format!("{:.0} → {:.0}/s", s.rate_from, s.rate_to),
                    &s.report,
                );
            }
            page.push_str("</table></div>");
        }
    }

    fn writes_table(&self, page: &mut String) {
        let Some(w) = &self.writes else { return };
        let class = match w.outcome {
            WriteOutcome::Ok => "pass",
            WriteOutcome::OkGapsNotChecked => "warn",
            WriteOutcome::Violated => "fail",
        };
        let measured_ok = self.write.as_ref().map_or(0, |r| r.ok);
        let opt = |v: Option<i64>| v.map_or("unknown".into(), |v| v.to_string());
        let _ = write!(
            page,
            "<h2>Write correctness (whole run, warm-up included)</h2><p class={class}><b>{}</b></p>\
             <div class=scroll><table class=kv>\
             <tr><th>sentinels</th><td>{} → {}</td></tr>\
             <tr><th>counter moved by</th><td>{}</td></tr>\
             <tr><th>successful writes</th><td>{} ({} in the measured window, {} in the warm-up or after a stop)</td></tr>\
             <tr><th>outcome unknown</th><td>{}</td></tr>\
             <tr><th>duplicates · gaps · out of range · stale</th><td>{} · {} · {} · {}</td></tr>",
            escape(&w.verdict()),
            w.before,
            opt(w.after),
            opt(w.counter_delta),
            w.successes,
            measured_ok,
            w.successes.saturating_sub(measured_ok),
            w.uncertain,
            w.duplicates,
            w.gaps,
            w.out_of_range,
            w.stale
        );
        for v in &w.violations {
            let _ = write!(
                page,
                "<tr><th class=fail>violation</th><td>{}</td></tr>",
                escape(v)
            );
        }
        for n in &w.notes {
            let _ = write!(page, "<tr><th>note</th><td>{}</td></tr>", escape(n));
        }
        page.push_str("</table></div>");
    }

    fn targets_table(&self, page: &mut String) {
        let _ = write!(
            page,
            "<h2>Targets</h2><p class=note>{}</p><div class=scroll><table><tr><th>target</th><th>limit</th><th>measured</th><th>result</th></tr>",
            match &self.targets_file {
                Some(f) => format!("From <code>{}</code>.", escape(f)),
                None => "No targets file: the run was judged by the default error budget only.".into(),
            }
        );
        for c in &self.targets {
            let _ = write!(
                page,
                "<tr><td>{}</td><td>{} {}{}</td><td>{}</td><td class={}>{}</td></tr>",
                c.name,
                if c.at_most { "≤" } else { "≥" },
                value(c.limit, c.unit),
                if c.default { " (default)" } else { "" },
                value(c.measured, c.unit),
                if c.passed { "pass" } else { "fail" },
                if c.passed { "ok" } else { "MISSED" }
            );
        }
        page.push_str("</table></div>");
    }

    fn charts(&self, page: &mut String) {
        let warmup = self.plan.warmup.as_secs_f64();
        let timeline = &self.timeline;
        // A second with any failure is shaded, and so is one in which requests waited and
        // nothing answered (a stall whose requests fail or are abandoned later): [t - 1, t] is
        // the interval the point covers.
        let failing: Vec<Range<f64>> = timeline
            .iter()
            .filter(|p| p.failed > 0 || (p.ok == 0 && p.in_flight > 0))
            .map(|p| (p.t_s - 1.0).max(0.0)..p.t_s)
            .collect();
        let mut bands = vec![];
        if warmup > 0.0 {
            bands.push(Band {
                range: 0.0..warmup,
                colour: GREY,
                label: "warm-up (not in the totals)",
            });
        }
        let failure_label = "seconds with failures or no answer";
        for range in &failing {
            bands.push(Band {
                range: range.clone(),
                colour: rgb(ERROR_HUE),
                label: failure_label,
            });
        }

        let throughput = vec![
            Line {
                name: "successful answers/s".into(),
                hue: OK_HUE,
                points: timeline.iter().map(|p| (p.t_s, p.ok_per_s)).collect(),
            },
            Line {
                name: "errors/s".into(),
                hue: ERROR_HUE,
                points: timeline.iter().map(|p| (p.t_s, p.errors_per_s)).collect(),
            },
        ];
        let mut latency = Vec::new();
        for (op, pick) in [("read", 0usize), ("write", 1)] {
            for (stat, hue) in [("p50", [0, 1][pick]), ("p99", [5, 4][pick])] {
                let points: Vec<(f64, f64)> = timeline
                    .iter()
                    .filter_map(|p| {
                        let l = if pick == 0 { p.read } else { p.write }?;
                        Some((p.t_s, if stat == "p50" { l.p50_ms } else { l.p99_ms }))
                    })
                    .collect();
                if !points.is_empty() {
                    latency.push(Line {
                        name: format!("{op} {stat}"),
                        hue,
                        points,
                    });
                }
            }
        }
        let max_t = timeline.iter().map(|p| p.t_s).fold(1.0f64, f64::max);
        // With --stages: where one stage ends and the next begins.
        let marks: Vec<f64> = self
            .stages
            .iter()
            .map(|s| s.to_s)
            .filter(|&t| t < max_t)
            .collect();
        let max_rate = timeline
            .iter()
            .map(|p| p.ok_per_s.max(p.errors_per_s))
            .fold(0.0f64, f64::max);

        page.push_str("<h2>Answers and errors per second</h2><figure>");
        chart(
            page,
            time_chart(
                &throughput,
                &bands,
                &marks,
                max_t,
                0.0..(max_rate * 1.1).max(1.0),
                "per second",
                false,
            ),
        );
        legend(page, &throughput, &bands, !marks.is_empty());
        page.push_str("<figcaption>Successful answers and failed requests per second over the whole run. A failure period is shaded; an outage shows as answers falling and errors rising, whatever the latency of the errors.</figcaption></figure>");

        page.push_str("<h2>Latency over time</h2><figure>");
        let y = y_range(latency.iter().flat_map(|l| l.points.iter().map(|p| p.1)));
        chart(
            page,
            time_chart(
                &latency,
                &bands,
                &marks,
                max_t,
                y,
                "latency (ms, log)",
                true,
            ),
        );
        legend(page, &latency, &bands, !marks.is_empty());
        let _ = write!(
            page,
            "<figcaption>p50 and p99 of each second's answers, failed ones included{}.</figcaption></figure>",
            if matches!(self.plan.mode, Mode::Closed) {
                ""
            } else {
                ", measured from each request's intended send time (open loop: queueing behind a slow answer is charged)"
            }
        );

        let curves: Vec<Line> = [("read", &self.read, 0), ("write", &self.write, 1)]
            .into_iter()
            .filter_map(|(name, r, hue)| {
                r.as_ref().map(|r| Line {
                    name: name.into(),
                    hue,
                    points: r.percentiles.iter().map(|&(p, v)| (nines(p), v)).collect(),
                })
            })
            .collect();
        page.push_str("<h2>Latency by percentile (measured window)</h2><figure>");
        chart(page, percentile_chart(&curves, false));
        legend(page, &curves, &[], false);
        page.push_str("<figcaption>Log axes: the tail is what matters.</figcaption></figure>");
    }
}

/// A chart scrolls sideways on a narrow screen rather than shrinking its labels away.
fn chart(page: &mut String, svg: String) {
    let _ = write!(page, "<div class=chart>{svg}</div>");
}

fn op_row(page: &mut String, name: &str, r: &OpReport) {
    let l = r.latency_ms;
    let _ = write!(
        page,
        "<td>{}</td><td>{}</td><td>{:.0}</td><td>{}</td><td{}>{:.4}%</td>",
        escape(name),
        r.requests,
        r.rate,
        r.failed,
        if r.failed > 0 { " class=fail" } else { "" },
        r.error_rate * 100.0,
    );
    for v in [l.mean, l.p50, l.p90, l.p95, l.p99, l.p999, l.max] {
        let _ = write!(page, "<td>{}</td>", ms_text(v));
    }
    page.push_str("</tr>");
}

struct Line {
    name: String,
    hue: usize,
    points: Vec<(f64, f64)>,
}

const GREY: RGBColor = RGBColor(128, 128, 128);

struct Band {
    range: Range<f64>,
    colour: RGBColor,
    label: &'static str,
}

fn legend(page: &mut String, lines: &[Line], bands: &[Band], stage_marks: bool) {
    page.push_str("<ul class=legend>");
    for l in lines {
        let _ = write!(
            page,
            "<li><i style=\"background:{}\"></i>{}</li>",
            hex(l.hue),
            escape(&l.name)
        );
    }
    let mut seen = Vec::new();
    for b in bands {
        if !seen.contains(&b.label) {
            seen.push(b.label);
            let RGBColor(r, g, bl) = b.colour;
            let _ = write!(
                page,
                "<li><i class=band style=\"background:rgb({r},{g},{bl})\"></i>{}</li>",
                b.label
            );
        }
    }
    if stage_marks {
        page.push_str("<li><i class=mark></i>stage boundary</li>");
    }
    page.push_str("</ul>");
}

/// Plotters draws in black; the page recolours black to the text colour (light or dark).
fn themed(svg: String) -> String {
    svg.replace("#000000", "currentColor")
}

fn style_axes<'a, DB: DrawingBackend, X, Y>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<X, Y>>,
    x_desc: &str,
    y_desc: &str,
    x_fmt: &dyn Fn(&f64) -> String,
    y_fmt: &dyn Fn(&f64) -> String,
    x_labels: usize,
    y_labels: usize,
) where
    X: Ranged<ValueType = f64> + ValueFormatter<f64>,
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    let _ = chart
        .configure_mesh()
        .x_labels(x_labels)
        .y_labels(y_labels)
        .x_desc(x_desc)
        .y_desc(y_desc)
        .x_label_formatter(x_fmt)
        .y_label_formatter(y_fmt)
        .label_style(("sans-serif", 17))
        .axis_desc_style(("sans-serif", 17))
        .bold_line_style(BLACK.mix(0.15))
        .light_line_style(BLACK.mix(0.05))
        .draw();
}

fn draw_lines<'a, DB: DrawingBackend, Y: Ranged<ValueType = f64>>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<RangedCoordf64, Y>>,
    lines: &[Line],
    bands: &[Band],
    marks: &[f64],
    y: Range<f64>,
) {
    for b in bands {
        let _ = chart.draw_series(std::iter::once(Rectangle::new(
            [(b.range.start, y.start), (b.range.end, y.end)],
            b.colour.mix(0.22).filled(),
        )));
    }
    for &t in marks {
        let _ = chart.draw_series(std::iter::once(PathElement::new(
            vec![(t, y.start), (t, y.end)],
            GREY.stroke_width(2),
        )));
    }
    for l in lines {
        let _ = chart.draw_series(LineSeries::new(
            l.points.iter().copied(),
            rgb(l.hue).stroke_width(3),
        ));
    }
}

/// A tick step of 1, 2 or 5 × 10^k, at least `min`, giving at most `max_labels` labels over
/// `span`. Plotters steps by the same family, so asking it for `labels(span, step)` labels
/// gets this step (or a coarser one), and `decimals(step)` tells every label apart.
fn nice_step(span: f64, max_labels: usize, min: f64) -> f64 {
    let raw = (span / (max_labels.max(2) - 1) as f64).max(min).max(1e-9);
    let magnitude = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|&step| step >= raw * (1.0 - 1e-9))
        .unwrap_or(10.0 * magnitude)
}

fn labels(span: f64, step: f64) -> usize {
    (span / step + 1e-9).floor() as usize + 1
}

/// Decimals that tell ticks `step` apart: 1 → 0, 0.5 → 1, 0.05 → 2.
fn decimals(step: f64) -> usize {
    (-(step.log10() + 1e-9).floor()).max(0.0) as usize
}

fn time_chart(
    lines: &[Line],
    bands: &[Band],
    marks: &[f64],
    max_t: f64,
    y: Range<f64>,
    y_desc: &str,
    log: bool,
) -> String {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, CHART_SIZE).into_drawing_area();
        let mut builder = ChartBuilder::on(&root);
        builder
            .margin(12)
            .margin_right(24)
            .x_label_area_size(48)
            .y_label_area_size(78);
        // Whole seconds: the timeline has one point a second.
        let x_step = nice_step(max_t, 10, 1.0);
        let x_decimals = decimals(x_step);
        let seconds = move |x: &f64| format!("{x:.x_decimals$}");
        let x_labels = labels(max_t, x_step);
        if log {
            let Ok(mut chart) = builder.build_cartesian_2d(0.0..max_t, y.clone().log_scale())
            else {
                return fallback();
            };
            style_axes(
                &mut chart,
                "seconds since start",
                y_desc,
                &seconds,
                &|v| trim(*v),
                x_labels,
                10,
            );
            draw_lines(&mut chart, lines, bands, marks, y);
        } else {
            let Ok(mut chart) = builder.build_cartesian_2d(0.0..max_t, y.clone()) else {
                return fallback();
            };
            let y_step = nice_step(y.end - y.start, 7, 0.0);
            let y_decimals = decimals(y_step);
            style_axes(
                &mut chart,
                "seconds since start",
                y_desc,
                &seconds,
                &|v| format!("{v:.y_decimals$}"),
                x_labels,
                labels(y.end - y.start, y_step),
            );
            draw_lines(&mut chart, lines, bands, marks, y);
        }
        let _ = root.present();
    }
    themed(svg)
}

/// Latency by percentile on a "nines" x axis and a log y axis. `legend_inside` keeps the
/// benchmark report's in-chart legend; the run report lists series below the chart.
fn percentile_chart(curves: &[Line], legend_inside: bool) -> String {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, CHART_SIZE).into_drawing_area();
        // The 100th percentile (the maximum) would sit at 99.9999%: put it at the axis' end,
        // one step past the last measured percentile.
        let last = curves
            .iter()
            .flat_map(|c| c.points.iter().rev().skip(1).map(|p| p.0))
            .fold(1.0f64, f64::max);
        let max_x = (last + 0.3).ceil().max(2.0);
        let y = y_range(curves.iter().flat_map(|c| c.points.iter().map(|p| p.1)));
        // The right margin holds half of the last label ("99.999%") centred on the axis' end.
        let Ok(mut chart) = ChartBuilder::on(&root)
            .margin(12)
            .margin_right(48)
            .x_label_area_size(48)
            .y_label_area_size(78)
            .build_cartesian_2d(0.0..max_x, y.clone().log_scale())
        else {
            return fallback();
        };
        style_axes(
            &mut chart,
            "percentile",
            "latency (ms, log)",
            &|x| {
                let p = 100.0 * (1.0 - 10f64.powf(-x));
                if p < 99.0 {
                    format!("{p:.0}%")
                } else {
                    format!("{}%", trim(p))
                }
            },
            &|v| trim(*v),
            max_x as usize + 1,
            10,
        );
        for c in curves {
            let colour = rgb(c.hue);
            if let Ok(drawn) = chart.draw_series(LineSeries::new(
                c.points.iter().copied(),
                colour.stroke_width(3),
            )) {
                drawn.label(c.name.clone()).legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(3))
                });
            }
        }
        if legend_inside {
            let _ = chart
                .configure_series_labels()
                .label_font(("sans-serif", 16))
                .border_style(BLACK)
                .background_style(WHITE.mix(0.8))
                .draw();
        }
        let _ = root.present();
    }
    if legend_inside {
        svg
    } else {
        themed(svg)
    }
}

/// Draws `(name, [(nines, ms)])` curves with the legend inside: the benchmark report's chart.
pub fn percentile_svg(curves: &[(&str, Vec<(f64, f64)>)]) -> String {
    let lines: Vec<Line> = curves
        .iter()
        .enumerate()
        .map(|(i, (name, points))| Line {
            name: (*name).into(),
            hue: i,
            points: points.clone(),
        })
        .collect();
    percentile_chart(&lines, true)
}

/// The x position of a percentile on a "nines" axis: 90% → 1, 99% → 2, 99.9% → 3.
fn nines(percentile: f64) -> f64 {
    -(1.0 - (percentile / 100.0).min(0.999_999)).log10()
}

fn y_range(values: impl Iterator<Item = f64>) -> Range<f64> {
    let (lo, hi) = values
        .filter(|v| *v > 0.0)
        .fold((f64::MAX, 0.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if hi <= 0.0 {
        return 0.01..1.0;
    }
    (lo / 1.5).max(0.001)..hi * 1.5
}

fn trim(v: f64) -> String {
    let s = format!("{v:.4}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

fn fallback() -> String {
    "<p>(chart could not be drawn)</p>".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nines_axis_spreads_the_tail() {
        assert!((nines(90.0) - 1.0).abs() < 1e-9);
        assert!((nines(99.9) - 3.0).abs() < 1e-9);
        assert!(nines(100.0).is_finite());
    }

    /// `(x, anchor, text)` of every label in a plotters SVG.
    fn texts(svg: &str) -> Vec<(f64, String, String)> {
        svg.split("<text")
            .skip(1)
            .map(|t| {
                let attr = |name: &str| {
                    t.split(&format!(" {name}=\""))
                        .nth(1)
                        .and_then(|r| r.split('"').next())
                        .unwrap_or("")
                        .to_string()
                };
                let body = t.split('>').nth(1).unwrap_or("");
                let body = body.split("</text").next().unwrap_or("").trim().to_string();
                (attr("x").parse().unwrap_or(0.0), attr("text-anchor"), body)
            })
            .collect()
    }

    fn numeric_labels(svg: &str, anchor: &str) -> Vec<String> {
        texts(svg)
            .into_iter()
            .filter(|(_, a, t)| a == anchor && t.parse::<f64>().is_ok())
            .map(|(_, _, t)| t)
            .collect()
    }

    #[test]
    fn tick_steps_are_nice_and_labels_distinct() {
        assert_eq!(nice_step(3.0, 10, 1.0), 1.0);
        assert_eq!(nice_step(1.1, 7, 0.0), 0.2);
        assert_eq!(nice_step(0.011, 7, 0.0), 0.002);
        assert_eq!(nice_step(65.0, 10, 1.0), 10.0);
        assert_eq!((decimals(1.0), decimals(0.5), decimals(0.05)), (0, 1, 2));
        let line = Line {
            name: "ok".into(),
            hue: OK_HUE,
            points: vec![(1.0, 0.2), (2.0, 1.0), (3.0, 0.4)],
        };
        // A 3 s run with at most one answer a second: once "0 0 1 2 2 2" and "0 0 0 0 0 1 1 1".
        let svg = time_chart(&[line], &[], &[], 3.0, 0.0..1.1, "per second", false);
        assert_eq!(numeric_labels(&svg, "middle"), ["0", "1", "2", "3"]);
        let y = numeric_labels(&svg, "end");
        let mut distinct = y.clone();
        distinct.dedup();
        assert_eq!(y, distinct, "{y:?}");
        assert!(y.len() >= 3 && y.contains(&"0.4".to_string()), "{y:?}");
    }

    #[test]
    fn the_last_percentile_label_is_not_clipped() {
        let curve = Line {
            name: "read".into(),
            hue: 0,
            points: [50.0, 90.0, 99.0, 99.9, 99.99, 99.999, 100.0]
                .into_iter()
                .map(|p| (nines(p), 1.0 + p / 10.0))
                .collect(),
        };
        let svg = percentile_chart(&[curve], false);
        let labels = texts(&svg);
        assert!(labels.iter().any(|(_, _, t)| t == "99.999%"), "{labels:?}");
        for (x, anchor, text) in labels {
            // 17 px sans-serif: no glyph is wider than about 0.6 em.
            let half = text.chars().count() as f64 * 17.0 * 0.6 / 2.0;
            if anchor == "middle" {
                assert!(
                    x + half <= f64::from(CHART_SIZE.0),
                    "{text:?} at {x} is clipped"
                );
            }
        }
    }

    #[test]
    fn text_is_escaped() {
        assert_eq!(
            escape("<a href=\"x\">&"),
            "&lt;a href=&quot;x&quot;&gt;&amp;"
        );
    }
}
