//! The live progress line: achieved rate, errors and the last second's p99, redrawn once a
//! second on a terminal; nothing at all when stderr is not one (CI logs stay clean).

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

    pub fn update(&self, point: &TimelinePoint, elapsed: Duration, total: Duration) {
        let p99 = [point.read, point.write]
            .iter()
            .flatten()
            .map(|l| l.p99_ms)
            .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))));
        self.bar.set_message(format!(
            "{:>5.1}/{:.0} s{}  {:>9.0} ok/s  {} errors  p99 {}",
            elapsed.as_secs_f64(),
            total.as_secs_f64(),
            if point.warmup { " (warm-up)" } else { "" },
            point.ok_per_s,
            point.failed,
            p99.map_or("-".into(), |v| format!("{v:.2} ms")),
        ));
        self.bar.tick();
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
