//! Where every answer is recorded: HDR histograms (microseconds) and counters, sharded so that
//! workers on different threads rarely touch the same lock. A reporter harvests the per-second
//! interval histograms for the progress line and the latency-over-time chart; the totals cover
//! only requests *intended* after the warm-up.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::client::{Op, RequestError};

/// Longest latency a histogram holds; anything slower is clamped (and the run has bigger
/// problems than a clamped tail).
pub const MAX_LATENCY_US: u64 = 3_600_000_000;

/// Three significant figures for the totals (a reported p99.9 is exact to 0.1%); two for the
/// per-second intervals, which are only charted.
pub fn total_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("valid histogram bounds")
}

fn interval_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 2).expect("valid histogram bounds")
}

pub fn micros(d: Duration) -> u64 {
    (d.as_micros() as u64).clamp(1, MAX_LATENCY_US)
}

/// Counts and latencies of one kind of request (or of one stage of a ramp).
pub struct OpTotals {
    pub latency: Histogram<u64>,
    pub ok: u64,
    pub errors: BTreeMap<RequestError, u64>,
    /// Every complete answer by HTTP status, successful or not.
    pub statuses: BTreeMap<u16, u64>,
}

impl Default for OpTotals {
    fn default() -> Self {
        Self::new()
    }
}

impl OpTotals {
    pub fn new() -> Self {
        Self {
            latency: total_histogram(),
            ok: 0,
            errors: BTreeMap::new(),
            statuses: BTreeMap::new(),
        }
    }

    fn add(&mut self, latency: u64, outcome: Result<i64, RequestError>, status: Option<u16>) {
        self.latency.saturating_record(latency);
        match outcome {
            Ok(_) => self.ok += 1,
            Err(kind) => *self.errors.entry(kind).or_default() += 1,
        }
        if let Some(status) = status {
            *self.statuses.entry(status).or_default() += 1;
        }
    }

    pub fn failed(&self) -> u64 {
        self.errors.values().sum()
    }

    pub fn merge(&mut self, other: &OpTotals) {
        self.latency.add(&other.latency).expect("same bounds");
        self.ok += other.ok;
        for (kind, n) in &other.errors {
            *self.errors.entry(*kind).or_default() += n;
        }
        for (status, n) in &other.statuses {
            *self.statuses.entry(*status).or_default() += n;
        }
    }
}

/// What one second of the run looked like.
pub struct Interval {
    pub latency: Histogram<u64>,
    pub ok: u64,
    pub failed: u64,
}

impl Interval {
    fn new() -> Self {
        Self {
            latency: interval_histogram(),
            ok: 0,
            failed: 0,
        }
    }
}

/// Write answers over the whole run (warm-up included), for the correctness checks.
#[derive(Default)]
pub struct WriteOutcomes {
    /// Every value a successful write returned.
    pub values: Vec<i64>,
    /// Failed writes that may still have been counted (see `RequestError::write_may_have_counted`).
    pub uncertain: u64,
    /// Failed writes that certainly were not counted.
    pub not_counted: u64,
}

struct Shard {
    totals: [OpTotals; 2],
    /// Per stage of a ramp (empty without `--stages`), reads and writes together.
    stages: Vec<OpTotals>,
    intervals: [Interval; 2],
    send_lag: Histogram<u64>,
    late: u64,
    writes: WriteOutcomes,
}

/// Everything the workers record, in `shards` independently locked pieces.
pub struct Recorder {
    shards: Vec<Mutex<Shard>>,
    measure_from: Instant,
    /// Open loop: sends this far behind their intended time are late. `None` in closed loop,
    /// where every request is sent when it is intended and there is no send lag to record.
    late_after: Option<Duration>,
    /// When each stage of a ramp ends; a request belongs to the stage of its intended time.
    stage_ends: Vec<Instant>,
}

/// One finished request, as the driver saw it.
pub struct Sample {
    pub op: Op,
    /// When the schedule wanted it sent (closed loop: when it was sent).
    pub intended: Instant,
    pub sent: Instant,
    pub done: Instant,
    pub outcome: Result<i64, RequestError>,
    /// The answer's HTTP status, when a complete answer came back.
    pub status: Option<u16>,
}

impl Recorder {
    /// Requests intended before `measure_from` are the warm-up: charted, checked for
    /// correctness, but kept out of the totals. A send more than `late_after` behind its
    /// intended time counts as late (open loop; `None` in closed loop).
    pub fn new(
        shards: usize,
        measure_from: Instant,
        late_after: Option<Duration>,
        stage_ends: Vec<Instant>,
    ) -> Self {
        let shards = (0..shards.max(1))
            .map(|_| {
                Mutex::new(Shard {
                    totals: [OpTotals::new(), OpTotals::new()],
                    stages: stage_ends.iter().map(|_| OpTotals::new()).collect(),
                    intervals: [Interval::new(), Interval::new()],
                    send_lag: total_histogram(),
                    late: 0,
                    writes: WriteOutcomes::default(),
                })
            })
            .collect();
        Self {
            shards,
            measure_from,
            late_after,
            stage_ends,
        }
    }

    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    pub fn record(&self, shard: usize, sample: Sample) {
        let latency = micros(sample.done.saturating_duration_since(sample.intended));
        let measured = sample.intended >= self.measure_from;
        let mut s = self.shards[shard % self.shards.len()]
            .lock()
            .expect("no panics while locked");
        let i = sample.op.index();
        let interval = &mut s.intervals[i];
        interval.latency.saturating_record(latency);
        match sample.outcome {
            Ok(_) => interval.ok += 1,
            Err(_) => interval.failed += 1,
        }
        if sample.op == Op::Write {
            match sample.outcome {
                Ok(value) => s.writes.values.push(value),
                Err(e) if e.write_may_have_counted() => s.writes.uncertain += 1,
                Err(_) => s.writes.not_counted += 1,
            }
        }
        if !measured {
            return;
        }
        if let Some(late_after) = self.late_after {
            let lag = sample.sent.saturating_duration_since(sample.intended);
            s.send_lag.saturating_record(micros(lag));
            if lag > late_after {
                s.late += 1;
            }
        }
        s.totals[i].add(latency, sample.outcome, sample.status);
        if !self.stage_ends.is_empty() {
            let stage = self
                .stage_ends
                .iter()
                .position(|&end| sample.intended < end)
                .unwrap_or(self.stage_ends.len() - 1);
            s.stages[stage].add(latency, sample.outcome, sample.status);
        }
    }

    /// Takes the intervals recorded since the last harvest, per operation.
    pub fn harvest(&self) -> [Interval; 2] {
        let mut merged = [Interval::new(), Interval::new()];
        for shard in &self.shards {
            let mut s = shard.lock().expect("no panics while locked");
            for op in Op::ALL {
                let i = op.index();
                let taken = std::mem::replace(&mut s.intervals[i], Interval::new());
                merged[i].latency.add(&taken.latency).expect("same bounds");
                merged[i].ok += taken.ok;
                merged[i].failed += taken.failed;
            }
        }
        merged
    }

    pub fn finish(self) -> Recorded {
        let mut recorded = Recorded {
            ops: [OpTotals::new(), OpTotals::new()],
            stages: self.stage_ends.iter().map(|_| OpTotals::new()).collect(),
            send_lag: total_histogram(),
            late: 0,
            writes: WriteOutcomes::default(),
        };
        for shard in self.shards {
            let s = shard.into_inner().expect("no panics while locked");
            for op in Op::ALL {
                recorded.ops[op.index()].merge(&s.totals[op.index()]);
            }
            for (total, stage) in recorded.stages.iter_mut().zip(&s.stages) {
                total.merge(stage);
            }
            recorded.send_lag.add(&s.send_lag).expect("same bounds");
            recorded.late += s.late;
            recorded.writes.values.extend_from_slice(&s.writes.values);
            recorded.writes.uncertain += s.writes.uncertain;
            recorded.writes.not_counted += s.writes.not_counted;
        }
        recorded
    }
}

/// The merged record of a finished run.
pub struct Recorded {
    pub ops: [OpTotals; 2],
    pub stages: Vec<OpTotals>,
    pub send_lag: Histogram<u64>,
    pub late: u64,
    pub writes: WriteOutcomes,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(
        op: Op,
        intended: Instant,
        sent_ms: u64,
        done_ms: u64,
        outcome: Result<i64, RequestError>,
    ) -> Sample {
        Sample {
            op,
            intended,
            sent: intended + Duration::from_millis(sent_ms),
            done: intended + Duration::from_millis(done_ms),
            status: match outcome {
                Ok(_) => Some(200),
                Err(RequestError::Status(s)) => Some(s),
                Err(_) => None,
            },
            outcome,
        }
    }

    #[test]
    fn warm_up_is_charted_and_checked_but_not_totalled() {
        let start = Instant::now();
        let measure_from = start + Duration::from_secs(1);
        let recorder = Recorder::new(2, measure_from, Some(Duration::from_millis(1)), Vec::new());
        recorder.record(0, sample(Op::Write, start, 0, 3, Ok(7)));
        recorder.record(1, sample(Op::Write, measure_from, 5, 9, Ok(8)));
        recorder.record(
            1,
            sample(Op::Write, measure_from, 0, 9, Err(RequestError::Timeout)),
        );
        recorder.record(
            0,
            sample(Op::Read, measure_from, 0, 2, Err(RequestError::Status(404))),
        );
        let interval = recorder.harvest();
        assert_eq!((interval[1].ok, interval[1].failed), (2, 1));
        assert_eq!((interval[0].ok, interval[0].failed), (0, 1));
        assert_eq!(recorder.harvest()[1].ok, 0, "a harvest resets the interval");

        let recorded = recorder.finish();
        let writes = &recorded.ops[Op::Write.index()];
        assert_eq!(writes.ok, 1);
        assert_eq!(writes.errors[&RequestError::Timeout], 1);
        // Latency runs from the intended time, not from the (late) send.
        assert!(writes.latency.max() >= 9_000);
        assert_eq!(recorded.late, 1, "one measured send was 5 ms behind");
        let mut values = recorded.writes.values.clone();
        values.sort_unstable();
        assert_eq!(values, vec![7, 8]);
        assert_eq!(recorded.writes.uncertain, 1);
        assert_eq!(
            recorded.ops[Op::Read.index()].errors[&RequestError::Status(404)],
            1
        );
        assert_eq!(
            recorded.ops[Op::Write.index()].statuses,
            BTreeMap::from([(200, 1)]),
            "a timeout has no status; the warm-up is not totalled"
        );
        assert_eq!(recorded.ops[Op::Read.index()].statuses[&404], 1);
    }

    #[test]
    fn closed_loop_has_no_send_lag() {
        let start = Instant::now();
        let recorder = Recorder::new(1, start, None, Vec::new());
        recorder.record(0, sample(Op::Read, start, 5, 9, Ok(1)));
        let recorded = recorder.finish();
        assert!(recorded.send_lag.is_empty());
        assert_eq!(recorded.late, 0);
        assert_eq!(recorded.ops[Op::Read.index()].ok, 1);
    }

    #[test]
    fn each_request_counts_in_the_stage_of_its_intended_time() {
        let start = Instant::now();
        let ends = vec![
            start + Duration::from_secs(1),
            start + Duration::from_secs(2),
        ];
        let recorder = Recorder::new(1, start, Some(Duration::from_millis(1)), ends);
        recorder.record(0, sample(Op::Read, start, 0, 1, Ok(1)));
        // Intended in stage 1, answered long after it ended: still stage 1's.
        recorder.record(
            0,
            sample(Op::Read, start + Duration::from_millis(1500), 0, 900, Ok(1)),
        );
        let recorded = recorder.finish();
        assert_eq!(recorded.stages.len(), 2);
        assert_eq!((recorded.stages[0].ok, recorded.stages[1].ok), (1, 1));
        assert!(recorded.stages[1].latency.max() >= 900_000);
    }
}
