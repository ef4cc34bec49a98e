//! The live progress line: the last second's rate, errors and p99, the totals so far and the
//! requests in flight, redrawn once a second on a terminal; nothing at all when stderr is not
//! one (CI logs stay clean).

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::drive::TimelinePoint;

pub struct Progress {
    bar: ProgressBar,
}

impl Progress {
    /// Draws on stderr when it is a terminal and `quiet` is false.
    pub fn new(quiet: bool) -> Self {
        let target = if quiet || !std::io::stderr().is_terminal() {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr()
        };
        let bar = ProgressBar::with_draw_target(None, target);
        bar.set_style(ProgressStyle::with_template("{spinner} {msg}").expect("valid template"));
        Self { bar }
    }

    pub fn hidden() -> Self {
        Self::new(true)
    }

    /// `so_far` is (successful, failed) since the start, warm-up included.
    pub fn update(
        &self,
        point: &TimelinePoint,
        elapsed: Duration,
        total: Duration,
        so_far: (u64, u64),
    ) {
        let p99 = [point.read, point.write]
            .iter()
            .flatten()
            .map(|l| l.p99_ms)
            .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))));
        self.bar.set_message(format!(
            "{:>5.1}/{:.0} s{}  {:>9.0} ok/s  {} errors/s  p99 {}  │ so far {} ok, {} failed, {} in flight",
            elapsed.as_secs_f64(),
            total.as_secs_f64(),
            if point.warmup { " (warm-up)" } else { "" },
            point.ok_per_s,
            point.failed,
            p99.map_or("-".into(), |v| format!("{v:.2} ms")),
            so_far.0,
            so_far.1,
            point.in_flight,
        ));
        self.bar.tick();
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
