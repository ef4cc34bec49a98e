//! PostgreSQL stopped and restarted under write load (docs/design.md §2). Promises:
//! - during the outage every POST is answered `503` at once (the failed connect), never left to
//!   run into a timeout, and no connection is dropped;
//! - readiness turns `503` during the outage and `200` after it, and writes succeed again without
//!   restarting the origin (same process);
//! - nothing is lost or doubled: between two sentinel POSTs `2xx ≤ counter delta ≤ 2xx +
//!   ambiguous`, where ambiguous is the origin's `counter_increments_total{outcome="ambiguous"}`
//!   and never exceeds the writes in flight at the cut; every `2xx` value is distinct, within the
//!   delta and fresh.

use std::time::Duration;

use loadtest::correctness::WriteCheck;
use serde::Serialize;
use testkit::client::Op;

use super::{Env, FaultCase};
use crate::database::{ServerControl, StopMode};
use crate::load::{self, Finished, Latencies, Load, LoadPlan};
use crate::report::{ms, Checks};
use crate::Error;
use testkit::origin;
use testkit::probe;

/// The shortest bound an outage answer could be waiting on is the 2 s statement timeout (the
/// connect timeout is 3 s): half of it proves the `503` came from the failed connect itself.
const FAST_ANSWER_MS: f64 = 1000.0;
/// Writes reconnect on demand; readiness is re-checked every 100 ms here.
const RECOVERY_BOUND_MS: f64 = 5000.0;
const CONNECTIONS: usize = 32;

/// The case, with how `pg_ctl` stops the server.
pub struct Outage(pub StopMode);

#[derive(Clone, Debug, Default, Serialize)]
pub struct Figures {
    pub stop_mode: String,
    pub connections: usize,
    pub requests: u64,
    pub outcomes: std::collections::BTreeMap<String, u64>,
    /// POSTs sent after PostgreSQL was down and answered before it was started again.
    pub during_outage: Latencies,
    pub during_outage_non_503: u64,
    pub outage_ms: f64,
    pub pg_stop_ms: f64,
    pub pg_start_ms: f64,
    /// From the stop to `/readyz` answering 503.
    pub unready_after_ms: f64,
    /// From PostgreSQL accepting again to the first committed POST.
    pub first_write_after_restart_ms: Option<f64>,
    /// From PostgreSQL accepting again to `/readyz` answering 200.
    pub ready_again_after_ms: f64,
    /// `counter_increments_total{outcome="ambiguous"}` / `{outcome="failed"}` after the run.
    pub ambiguous: u64,
    pub failed: u64,
    pub writes_in_flight_at_cut: usize,
    /// The exact-count audit between the sentinels, the ambiguous increments as uncertain.
    pub writes: Option<WriteCheck>,
    pub same_process: bool,
    pub graceful_exit_code: Option<i32>,
    pub panics: Vec<String>,
}

impl FaultCase for Outage {
    type Figures = Figures;

    async fn run(&self, env: &Env<'_>) -> Result<Figures, Error> {
        let mode = self.0;
        let database = env.database()?;
        let control =
            ServerControl::discover(&database.admin_url, env.ctx.pg_bin_dir.clone()).await?;
        let url = env.fresh_database().await?;
        let spec = env.origin("origin", &[("DATABASE_URL", &url)])?;
        let mut origin = spec.start_ready().await?;
        let pid = origin.pid;
        let (load, before) =
            Load::after_sentinel(origin.addr(), LoadPlan::writes(CONNECTIONS)).await?;
        let mut figures = Figures {
            stop_mode: mode.as_str().into(),
            connections: CONNECTIONS,
            ..Figures::default()
        };
        load.until_ok_writes(env.pick(1000, 5000), Duration::from_secs(30))
            .await?;

        // The cut. Writes in flight are sampled for as long as pg_ctl takes the server down.
        let (stopped, in_flight) = max_in_flight_during(&load, control.stop(mode)).await;
        figures.writes_in_flight_at_cut = in_flight;
        figures.pg_stop_ms = ms(stopped?);
        let down_at = load.elapsed();
        // Everything until the restart runs with the server down; the restart must happen
        // whatever the outcome, or every later case would find no database.
        let during = async {
            let unready =
                probe::wait_for_status(origin.addr(), "/readyz", 503, Duration::from_secs(10))
                    .await?;
            // The outage lasts a fixed time on purpose: POSTs keep arriving all along it.
            let hold = Duration::from_millis(env.pick(1500, 4000));
            tokio::time::sleep(hold.saturating_sub(unready)).await;
            Ok::<Duration, Error>(unready)
        }
        .await;
        let restore_at = load.elapsed();
        let started = control.start().await;
        let up_at = load.elapsed();
        figures.unready_after_ms = ms(during?);
        figures.pg_start_ms = ms(started?);
        figures.outage_ms = ms(up_at - down_at);

        let recovery = async {
            let ready =
                probe::wait_for_status(origin.addr(), "/readyz", 200, Duration::from_secs(30))
                    .await?;
            load.until_ok_writes(env.pick(1000, 5000), Duration::from_secs(30))
                .await?;
            Ok::<Duration, Error>(ready)
        }
        .await;
        let finished = load.stop().await;
        figures.ready_again_after_ms = ms(recovery?);
        figures.same_process = origin.exited().is_none() && origin.pid == pid;

        let metrics = origin.metrics().await?;
        let outcome = |o: &str| {
            probe::sample(&metrics, "counter_increments_total", &[("outcome", o)]).unwrap_or(0.0)
                as u64
        };
        figures.ambiguous = outcome("ambiguous");
        figures.failed = outcome("failed");
        let after = load::sentinel(origin.addr()).await?;
        figures.writes = Some(finished.audit(before, Some(after), figures.ambiguous));
        tally(&mut figures, &finished, down_at, restore_at, up_at);
        figures.graceful_exit_code = origin.terminate(super::STOP_TIMEOUT).await.ok();
        figures.panics = origin::panics(&spec);
        Ok(figures)
    }

    fn judge(f: &Figures) -> Checks {
        let mut checks = Checks::default();
        checks.expect(
            "503s during the outage",
            f.during_outage.count > 0 && f.during_outage_non_503 == 0,
            format!(
                "{} POSTs during the {:.0} ms outage, {} not answered 503",
                f.during_outage.count, f.outage_ms, f.during_outage_non_503
            ),
        );
        checks.expect(
            "fast 503s, not timeouts",
            f.during_outage.count > 0 && f.during_outage.max_ms < FAST_ANSWER_MS,
            format!(
                "outage answers p50 {} ms, p99 {} ms, max {} ms (bound {FAST_ANSWER_MS} ms)",
                f.during_outage.p50_ms, f.during_outage.p99_ms, f.during_outage.max_ms
            ),
        );
        let other: u64 = f
            .outcomes
            .iter()
            .filter(|(k, _)| k.as_str() != "ok" && k.as_str() != "status_503")
            .map(|(_, n)| n)
            .sum();
        checks.expect(
            "every failure is a 503 (no timeout, no dropped connection)",
            other == 0,
            format!("outcomes {:?}", f.outcomes),
        );
        checks.expect(
            "readiness follows the store",
            f.unready_after_ms > 0.0 && f.ready_again_after_ms < RECOVERY_BOUND_MS,
            format!(
                "/readyz 503 {} ms after the stop, 200 again {} ms after the restart",
                f.unready_after_ms, f.ready_again_after_ms
            ),
        );
        checks.expect(
        "recovers without restarting the origin",
        f.same_process
            && f
                .first_write_after_restart_ms
                .is_some_and(|t| t < RECOVERY_BOUND_MS),
        format!(
            "same process: {}; first committed POST {:?} ms after PostgreSQL accepted again (bound {RECOVERY_BOUND_MS} ms)",
            f.same_process, f.first_write_after_restart_ms
        ),
    );
        let w = f.writes.as_ref();
        // The ambiguous increments are the audit's uncertain writes.
        checks.audit("counter delta = 2xx (ambiguous aside)", w, load::exact);
        checks.expect(
            "ambiguous ≤ writes in flight at the cut",
            f.ambiguous as usize <= f.writes_in_flight_at_cut,
            format!(
                "{} ambiguous, {} in flight",
                f.ambiguous, f.writes_in_flight_at_cut
            ),
        );
        checks.audit(
            "every 2xx value distinct, committed and fresh",
            w,
            load::distinct,
        );
        checks.expect(
            "graceful stop afterwards, no panic",
            f.graceful_exit_code == Some(0) && f.panics.is_empty(),
            format!("exit {:?}, panics {:?}", f.graceful_exit_code, f.panics),
        );
        checks
    }
}

/// Runs `work` while sampling the writes in flight every millisecond; returns the maximum.
async fn max_in_flight_during<F: std::future::Future>(load: &Load, work: F) -> (F::Output, usize) {
    tokio::pin!(work);
    let mut max = load.writes_in_flight();
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    loop {
        tokio::select! {
            output = &mut work => return (output, max.max(load.writes_in_flight())),
            _ = tick.tick() => max = max.max(load.writes_in_flight()),
        }
    }
}

fn tally(
    figures: &mut Figures,
    finished: &Finished,
    down_at: Duration,
    restore_at: Duration,
    up_at: Duration,
) {
    let records = &finished.records;
    figures.requests = records.len() as u64;
    figures.outcomes = load::outcomes(records);
    let outage: Vec<_> = records
        .iter()
        .filter(|r| r.op == Op::Write && r.sent >= down_at && r.done() <= restore_at)
        .copied()
        .collect();
    figures.during_outage = Latencies::of(&outage);
    figures.during_outage_non_503 =
        outage.iter().filter(|r| r.status() != Some(503)).count() as u64;
    figures.first_write_after_restart_ms = records
        .iter()
        .filter(|r| r.sent >= up_at && r.outcome.is_ok())
        .map(|r| r.done())
        .min()
        .map(|done| ms(done - up_at));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good() -> Figures {
        Figures {
            stop_mode: "fast".into(),
            connections: 32,
            requests: 10_000,
            outcomes: [("ok".to_string(), 9_000), ("status_503".to_string(), 1_000)].into(),
            during_outage: Latencies {
                count: 900,
                p50_ms: 0.4,
                p99_ms: 2.0,
                max_ms: 9.0,
            },
            outage_ms: 1600.0,
            unready_after_ms: 120.0,
            ready_again_after_ms: 150.0,
            first_write_after_restart_ms: Some(30.0),
            // 9,000 2xx between the sentinels 0 and 9,003: two ambiguous increments counted.
            writes: Some(loadtest::correctness::check(
                (1..=9_000).collect(),
                &loadtest::correctness::WriteLedger::new(0),
                0,
                Some(9_003),
                2,
                true,
            )),
            ambiguous: 2,
            writes_in_flight_at_cut: 32,
            same_process: true,
            graceful_exit_code: Some(0),
            ..Figures::default()
        }
    }

    fn writes(f: &mut Figures) -> &mut WriteCheck {
        f.writes.as_mut().expect("audited")
    }

    #[test]
    fn a_clean_outage_passes() {
        let checks = Outage::judge(&good());
        assert!(checks.passed(), "{:?}", checks.failed().collect::<Vec<_>>());
    }

    #[test]
    fn each_broken_promise_fails() {
        crate::report::assert_each_break_fails(
            good,
            |f| Outage::judge(f).passed(),
            breaks![Figures;
                "no outage seen" => |f| f.during_outage.count = 0,
                "a 504 during the outage" => |f| f.during_outage_non_503 = 1,
                "slow 503s" => |f| f.during_outage.max_ms = 2100.0,
                "a timeout" => |f| { f.outcomes.insert("timeout".into(), 1); },
                "never ready again" => |f| f.ready_again_after_ms = 30_000.0,
                "restarted" => |f| f.same_process = false,
                "never recovered" => |f| f.first_write_after_restart_ms = None,
                "a 2xx not counted" => |f| writes(f).successes = 9_003,
                "counted beyond the ambiguous" => |f| writes(f).counter_delta = Some(9_005),
                "more ambiguous than in flight" => |f| { f.ambiguous = 40; writes(f).uncertain = 40; writes(f).counter_delta = Some(9_040); },
                "no closing sentinel" => |f| f.writes = None,
                "a duplicate" => |f| writes(f).duplicates = 1,
                "a value outside the sentinels" => |f| writes(f).out_of_range = 1,
                "a stale answer" => |f| writes(f).stale = 1,
                "a panic" => |f| f.panics = vec!["panicked".into()],
            ],
        );
    }
}
