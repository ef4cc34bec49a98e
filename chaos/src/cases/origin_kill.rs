//! The origin SIGKILLed under write load, then restarted on the same store. Promise (docs/design.md
//! §2): a `200` means committed. So after the kill every value a client was given is at most the
//! committed counter, and all values are distinct across both lives of the process. Increments
//! committed without an answer (the client saw the connection die) are reported and bounded by
//! the writes whose outcome the clients could not know.
//!
//! Run for both stores: PostgreSQL (production) and the embedded SQLite file (a `cargo run` on a
//! laptop must not lose a count to a crash either).

use std::time::{Duration, Instant};

use loadtest::correctness::WriteCheck;
use serde::Serialize;

use super::{Env, FaultCase};
use crate::load::{self, Load, LoadPlan};
use crate::report::{ms, Checks};
use crate::Error;
use testkit::database::counter_value;
use testkit::origin;

const CONNECTIONS: usize = 32;

pub struct OriginKill;

#[derive(Clone, Debug, Serialize)]
pub struct StoreFigures {
    pub store: String,
    pub writes_in_flight_at_kill: usize,
    /// The first life, between the opening sentinel and the restarted origin's first POST (an
    /// exact reading of what was committed at the kill). Uncertain: the writes cut off by the
    /// kill (dropped connections, timeouts); gaps are increments committed without an answer.
    pub before_kill: WriteCheck,
    pub restart_to_ready_ms: f64,
    /// The second life, from that reading to a closing sentinel.
    pub after_restart: WriteCheck,
    /// PostgreSQL only: the counter read with SQL, to cross-check the closing sentinel.
    pub counter_final_sql: Option<i64>,
    pub panics: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Figures {
    pub connections: usize,
    pub stores: Vec<StoreFigures>,
}

impl FaultCase for OriginKill {
    type Figures = Figures;

    async fn run(&self, env: &Env<'_>) -> Result<Figures, Error> {
        let url = env.fresh_database().await?;
        let data = env.data_dir("embedded-data")?;
        let mut stores = Vec::new();
        for (store, variable, value) in [
            ("postgres", "DATABASE_URL", &url),
            ("embedded", "DATA_DIR", &data),
        ] {
            let mut figures = run_store(env, store, &[(variable, value)]).await?;
            if store == "postgres" {
                figures.counter_final_sql = Some(counter_value(&url).await?);
            }
            stores.push(figures);
        }
        Ok(Figures {
            connections: CONNECTIONS,
            stores,
        })
    }

    fn judge(f: &Figures) -> Checks {
        let mut checks = Checks::default();
        for s in &f.stores {
            let (first, second) = (&s.before_kill, &s.after_restart);
            let store = &s.store;
            // The first life's audit closes on the restarted origin's first POST, so its
            // 2xx must all lie at or below what was committed when the process died; its gaps
            // (committed without an answer) are bounded by the writes the kill cut off.
            checks.audit(
                &format!("{store}: no 2xx for an increment that is not in the store"),
                Some(first),
                |w| {
                    w.successes > 0
                        && load::distinct(w)
                        && w.counter_delta.is_some_and(|d| d >= w.successes as i64)
                },
            );
            checks.audit(
                &format!("{store}: unanswered increments bounded by the writes cut off"),
                Some(first),
                load::exact,
            );
            checks.expect(
                &format!("{store}: the restarted origin continues the count"),
                second.successes > 0
                    && load::exact(second)
                    && s.counter_final_sql.is_none_or(|sql| Some(sql) == second.after),
                format!(
                    "{} 2xx after the restart, {} out of range, {} duplicated, {} stale, final {:?} (SQL {:?})",
                    second.successes,
                    second.out_of_range,
                    second.duplicates,
                    second.stale,
                    second.after,
                    s.counter_final_sql
                ),
            );
            checks.no_panic(&format!("{store}: no panic"), &s.panics);
        }
        checks
    }
}

async fn run_store(
    env: &Env<'_>,
    store: &str,
    vars: &[(&str, &str)],
) -> Result<StoreFigures, Error> {
    let spec = env.origin(&format!("origin-{store}"), vars)?;
    let origin = spec.start_ready().await?;
    let (load, before) = Load::after_sentinel(origin.addr(), LoadPlan::writes(CONNECTIONS)).await?;
    load.until_ok_writes(env.pick(1000, 5000), Duration::from_secs(30))
        .await?;
    let writes_in_flight_at_kill = load.writes_in_flight();
    origin.kill().await?;
    // Every worker's request in flight fails at once (the socket is gone); then they stop.
    let first = load.stop().await;

    let restarted = Instant::now();
    let origin = spec.start_ready().await?;
    let restart_to_ready_ms = ms(restarted.elapsed());
    // Sent alone, the first POST is an exact reading: the counter held its value minus one.
    let (load, reading) =
        Load::after_sentinel(origin.addr(), LoadPlan::writes(CONNECTIONS)).await?;
    load.until_ok_writes(env.pick(500, 2000), Duration::from_secs(30))
        .await?;
    let second = load.stop().await;
    let last = load::sentinel(origin.addr()).await?;
    let _ = origin.terminate(super::STOP_TIMEOUT).await;
    Ok(StoreFigures {
        store: store.into(),
        writes_in_flight_at_kill,
        before_kill: first.audit(before, Some(reading), first.uncertain_writes()),
        restart_to_ready_ms,
        after_restart: second.audit(reading, Some(last), second.uncertain_writes()),
        counter_final_sql: None,
        panics: origin::panics(&spec),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use loadtest::correctness::{check, WriteLedger};

    /// 1,000 2xx after the sentinel 1, the counter at 1,011 when killed (10 increments committed
    /// without an answer, 32 writes cut off); 500 2xx in the second life, up to the sentinel 1,513.
    fn good() -> StoreFigures {
        StoreFigures {
            store: "postgres".into(),
            writes_in_flight_at_kill: 32,
            before_kill: check(
                (2..=1001).collect(),
                &WriteLedger::new(1),
                1,
                Some(1012),
                32,
                true,
            ),
            restart_to_ready_ms: 25.0,
            after_restart: check(
                (1013..=1512).collect(),
                &WriteLedger::new(1012),
                1012,
                Some(1513),
                0,
                true,
            ),
            counter_final_sql: Some(1513),
            panics: Vec::new(),
        }
    }

    fn passes(s: &StoreFigures) -> bool {
        OriginKill::judge(&Figures {
            connections: 32,
            stores: vec![s.clone()],
        })
        .passed()
    }

    #[test]
    fn a_clean_kill_passes_and_each_broken_promise_fails() {
        crate::report::assert_each_break_fails(
            good,
            passes,
            breaks![StoreFigures;
                "a 2xx above the committed value" => |s| s.before_kill.out_of_range = 1,
                "more 2xx than increments" => |s| s.before_kill.successes = 1011,
                "increments counted beyond the cut-off writes" => |s| s.before_kill.uncertain = 9,
                "a value given twice" => |s| s.before_kill.duplicates = 1,
                "a stale answer" => |s| s.before_kill.stale = 1,
                "no load at all" => |s| s.before_kill.successes = 0,
                "restarted origin out of range" => |s| s.after_restart.out_of_range = 1,
                "restarted origin counted without answers" => |s| s.after_restart.counter_delta = Some(501),
                "no load after the restart" => |s| s.after_restart.successes = 0,
                "SQL disagrees" => |s| s.counter_final_sql = Some(1),
                "a panic" => |s| s.panics = vec!["panicked".into()],
            ],
        );
    }
}
