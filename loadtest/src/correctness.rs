//! Correctness of the write path under load (docs/design.md §2: nothing lost or doubled, every
//! successful POST gets its own value).
//!
//! The run is bracketed by two *sentinel* POSTs, sent alone before and after the load: their
//! answers are exact readings of the counter (a GET may come from a cache that is up to a
//! TTL old). Between the sentinels the counter moved by `after - before - 1` increments, and
//! every value the run received must lie strictly between them. Checked:
//! - duplicates: two successful writes with one value (always a violation);
//! - out of range: a value outside the sentinels (a violation: stale or invented);
//! - stale answers: a write answered with a value not above one already acknowledged before it
//!   was sent (linearisability of the counter; a violation);
//! - gaps: values in the range nobody received. When the harness is the only writer each gap is
//!   an increment counted without its answer: explained when requests failed with an unknown
//!   outcome (timeouts, 5xx, dropped connections) and at most that many; a violation beyond that.
//!   With other writers (`--shared-counter`) gaps are not judged, and the report says so.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;

use serde::Serialize;

use crate::report::{counted, was};

/// How many examples of each kind of violation the report lists.
const EXAMPLES: usize = 5;

/// Shared by the workers while the load runs: the highest acknowledged value and stale answers.
pub struct WriteLedger {
    acknowledged: AtomicI64,
    stale: AtomicU64,
    stale_examples: Mutex<Vec<StaleAnswer>>,
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct StaleAnswer {
    /// The highest value acknowledged before the request was sent.
    pub floor: i64,
    /// What the request got.
    pub value: i64,
}

impl WriteLedger {
    /// `before` is the sentinel's value: every later write must be above it.
    pub fn new(before: i64) -> Self {
        Self {
            acknowledged: AtomicI64::new(before),
            stale: AtomicU64::new(0),
            stale_examples: Mutex::new(Vec::new()),
        }
    }

    /// Read just before sending a write.
    pub fn floor(&self) -> i64 {
        self.acknowledged.load(Ordering::Acquire)
    }

    /// A write sent when the floor was `floor` succeeded with `value`.
    pub fn acknowledge(&self, floor: i64, value: i64) {
        if value <= floor {
            self.stale.fetch_add(1, Ordering::Relaxed);
            let mut examples = self.stale_examples.lock().expect("no panics while locked");
            if examples.len() < EXAMPLES {
                examples.push(StaleAnswer { floor, value });
            }
        }
        self.acknowledged.fetch_max(value, Ordering::AcqRel);
    }

    fn stale(&self) -> (u64, Vec<StaleAnswer>) {
        (
            self.stale.load(Ordering::Relaxed),
            self.stale_examples
                .lock()
                .expect("no panics while locked")
                .clone(),
        )
    }
}

/// What the write checks concluded, as `result.json` spells it.
#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum WriteOutcome {
    /// Every check ran and passed.
    Ok,
    /// Nothing was violated, but gaps (lost answers) could not be checked or judged: see
    /// `gaps_not_checked`. Not a failure, and not the same as `ok`.
    OkGapsNotChecked,
    Violated,
}

/// The verdict on the writes of one run.
#[derive(Clone, Debug, Serialize)]
pub struct WriteCheck {
    pub outcome: WriteOutcome,
    /// Why gaps were not checked (the closing sentinel failed) or not judged (other writers).
    pub gaps_not_checked: Option<String>,
    /// True when the harness assumed it was the only writer (gaps judged).
    pub exclusive: bool,
    pub before: i64,
    /// `None` when the closing sentinel failed: the delta could not be read.
    pub after: Option<i64>,
    pub successes: u64,
    /// Failed writes whose outcome is unknown (they may have been counted).
    pub uncertain: u64,
    /// Increments committed between the sentinels, by anyone.
    pub counter_delta: Option<i64>,
    pub duplicates: u64,
    pub duplicate_examples: Vec<i64>,
    pub out_of_range: u64,
    pub out_of_range_examples: Vec<i64>,
    pub stale: u64,
    pub stale_examples: Vec<StaleAnswer>,
    /// Values between the sentinels nobody received (only when `after` is known).
    pub gaps: u64,
    /// First missing ranges, inclusive.
    pub gap_examples: Vec<(i64, i64)>,
    pub violations: Vec<String>,
    /// What could not be decided, in words.
    pub notes: Vec<String>,
}

impl WriteCheck {
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }

    /// `ok`, `ok (gaps not checked: …)` or `VIOLATED`.
    pub fn verdict(&self) -> String {
        match (self.outcome, &self.gaps_not_checked) {
            (WriteOutcome::Violated, _) => "VIOLATED".into(),
            (WriteOutcome::OkGapsNotChecked, Some(why)) => format!("ok (gaps not checked: {why})"),
            _ => "ok".into(),
        }
    }
}

/// Judges the run. `values` are all successful write answers (any order).
pub fn check(
    values: Vec<i64>,
    ledger: &WriteLedger,
    before: i64,
    after: Option<i64>,
    uncertain: u64,
    exclusive: bool,
) -> WriteCheck {
    let mut check = judge(values, ledger, before, after, uncertain, exclusive);
    check.gaps_not_checked = if after.is_none() {
        Some("the closing sentinel POST failed, so the counter's movement is unknown".into())
    } else if !exclusive {
        Some("--shared-counter: other writers move this counter".into())
    } else {
        None
    };
    check.outcome = if !check.passed() {
        WriteOutcome::Violated
    } else if check.gaps_not_checked.is_some() {
        WriteOutcome::OkGapsNotChecked
    } else {
        WriteOutcome::Ok
    };
    check
}

fn judge(
    mut values: Vec<i64>,
    ledger: &WriteLedger,
    before: i64,
    after: Option<i64>,
    uncertain: u64,
    exclusive: bool,
) -> WriteCheck {
    values.sort_unstable();
    let successes = values.len() as u64;
    let (stale, stale_examples) = ledger.stale();

    let mut duplicates = 0;
    let mut duplicate_examples = Vec::new();
    for pair in values.windows(2) {
        if pair[0] == pair[1] {
            duplicates += 1;
            if duplicate_examples.len() < EXAMPLES && duplicate_examples.last() != Some(&pair[0]) {
                duplicate_examples.push(pair[0]);
            }
        }
    }
    values.dedup();

    let upper = after.unwrap_or(i64::MAX);
    let in_range = |v: i64| v > before && v < upper;
    let out_of_range_examples: Vec<i64> = values
        .iter()
        .copied()
        .filter(|&v| !in_range(v))
        .take(EXAMPLES)
        .collect();
    let out_of_range = values.iter().filter(|&&v| !in_range(v)).count() as u64;

    let mut check = WriteCheck {
        outcome: WriteOutcome::Ok,
        gaps_not_checked: None,
        exclusive,
        before,
        after,
        successes,
        uncertain,
        counter_delta: after.map(|a| a - before - 1),
        duplicates,
        duplicate_examples,
        out_of_range,
        out_of_range_examples,
        stale,
        stale_examples,
        gaps: 0,
        gap_examples: Vec::new(),
        violations: Vec::new(),
        notes: Vec::new(),
    };
    if duplicates > 0 {
        check.violations.push(format!(
            "{}: two successful increments got the same value",
            counted(duplicates, "duplicate value", "duplicate values")
        ));
    }
    if out_of_range > 0 {
        check.violations.push(format!(
            "{} outside ({before}, {}): answers from before the run or invented",
            counted(out_of_range, "value", "values"),
            after.map_or("?".into(), |a| a.to_string())
        ));
    }
    if stale > 0 {
        check.violations.push(format!(
            "{}: a write returned a value not above one acknowledged before it was sent",
            counted(stale, "stale answer", "stale answers")
        ));
    }

    let Some(after) = after else {
        check.notes.push(
            "the closing sentinel POST failed, so the counter's movement is unknown: gaps not checked".into(),
        );
        return check;
    };
    let mut expected = before + 1;
    let mut gaps = 0u64;
    for &v in values.iter().filter(|&&v| in_range(v)) {
        if v > expected {
            gaps += (v - expected) as u64;
            if check.gap_examples.len() < EXAMPLES {
                check.gap_examples.push((expected, v - 1));
            }
        }
        expected = v + 1;
    }
    if after > expected {
        gaps += (after - expected) as u64;
        if check.gap_examples.len() < EXAMPLES {
            check.gap_examples.push((expected, after - 1));
        }
    }
    check.gaps = gaps;
    if gaps == 0 {
        return check;
    }
    if !exclusive {
        check.notes.push(format!(
            "{} between the sentinels {} not ours: other writers share this counter, so gaps are not judged",
            counted(gaps, "increment", "increments"),
            was(gaps)
        ));
    } else if gaps <= uncertain {
        check.notes.push(format!(
            "{} {} counted without a successful answer; {} with an unknown outcome, which explains {}",
            counted(gaps, "increment", "increments"),
            was(gaps),
            counted(uncertain, "request failed", "requests failed"),
            if gaps == 1 { "it" } else { "them" }
        ));
    } else {
        check.violations.push(format!(
            "{} {} counted but only {} with an unknown outcome: \
             {} (or another client wrote; pass --shared-counter if so)",
            counted(gaps, "increment", "increments"),
            was(gaps),
            counted(uncertain, "request failed", "requests failed"),
            match gaps - uncertain {
                1 => "1 increment lost its answer".to_string(),
                n => format!("{n} increments lost their answer"),
            }
        ));
    }
    check
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ledger_after(before: i64, answers: &[(i64, i64)]) -> WriteLedger {
        let ledger = WriteLedger::new(before);
        for &(floor, value) in answers {
            ledger.acknowledge(floor, value);
        }
        ledger
    }

    #[test]
    fn an_exact_run_passes() {
        let ledger = WriteLedger::new(10);
        let check = check(vec![13, 11, 12], &ledger, 10, Some(14), 0, true);
        assert!(check.passed(), "{:?}", check.violations);
        assert_eq!(
            (check.outcome, check.verdict().as_str()),
            (WriteOutcome::Ok, "ok")
        );
        assert_eq!((check.gaps, check.counter_delta), (0, Some(3)));
    }

    #[test]
    fn duplicates_fail() {
        let ledger = WriteLedger::new(0);
        let check = check(vec![1, 2, 2, 3], &ledger, 0, Some(4), 0, true);
        assert!(!check.passed());
        assert_eq!(check.duplicates, 1);
        assert_eq!(check.duplicate_examples, vec![2]);
        assert_eq!(
            (check.outcome, check.verdict().as_str()),
            (WriteOutcome::Violated, "VIOLATED")
        );
        assert!(check.violations[0].contains("duplicate"));
    }

    #[test]
    fn unexplained_gaps_fail_and_explained_ones_are_noted() {
        let ledger = WriteLedger::new(0);
        let lost = check(vec![1, 2, 5], &ledger, 0, Some(7), 1, true);
        assert_eq!(lost.gaps, 3);
        assert_eq!(lost.gap_examples, vec![(3, 4), (6, 6)]);
        assert!(!lost.passed());

        let explained = check(vec![1, 2, 5], &ledger, 0, Some(7), 3, true);
        assert!(explained.passed());
        assert!(explained.notes[0].contains("unknown outcome"));

        let shared = check(vec![1, 2, 5], &ledger, 0, Some(7), 0, false);
        assert!(shared.passed());
        assert_eq!(shared.outcome, WriteOutcome::OkGapsNotChecked);
        assert!(shared.notes[0].contains("other writers"));
    }

    #[test]
    fn counts_agree_with_their_nouns() {
        let ledger = WriteLedger::new(0);
        let one = check(vec![1, 2], &ledger, 0, Some(4), 1, true);
        assert_eq!(
            one.notes[0],
            "1 increment was counted without a successful answer; 1 request failed with an unknown outcome, which explains it"
        );
        let lost = check(vec![1, 2], &ledger, 0, Some(5), 1, true);
        assert_eq!(
            lost.violations[0],
            "2 increments were counted but only 1 request failed with an unknown outcome: \
             1 increment lost its answer (or another client wrote; pass --shared-counter if so)"
        );
    }

    #[test]
    fn values_outside_the_sentinels_fail() {
        let ledger = WriteLedger::new(10);
        let check = check(vec![9, 11, 15], &ledger, 10, Some(12), 0, false);
        assert_eq!(check.out_of_range, 2);
        assert!(!check.passed());
    }

    #[test]
    fn stale_answers_fail() {
        // The second write was sent after 12 was acknowledged, yet got 11.
        let ledger = ledger_after(10, &[(10, 12), (12, 11)]);
        let check = check(vec![11, 12], &ledger, 10, Some(13), 0, true);
        assert_eq!(check.stale, 1);
        assert_eq!(
            check.stale_examples,
            vec![StaleAnswer {
                floor: 12,
                value: 11
            }]
        );
        assert!(!check.passed());
    }

    #[test]
    fn a_missing_closing_sentinel_is_reported_not_guessed() {
        let ledger = WriteLedger::new(0);
        let check = check(vec![1, 3], &ledger, 0, None, 0, true);
        assert!(check.passed());
        assert_eq!(check.counter_delta, None);
        assert!(check.notes[0].contains("unknown"));
        assert_eq!(check.outcome, WriteOutcome::OkGapsNotChecked);
        assert!(check
            .verdict()
            .starts_with("ok (gaps not checked: the closing sentinel"));
    }
}
