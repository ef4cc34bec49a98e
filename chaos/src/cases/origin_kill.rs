//! The origin SIGKILLed under write load, then restarted on the same store. Promise (docs/design.md
//! §2): a `200` means committed. So after the kill every value a client was given is at most the
//! committed counter, and all values are distinct across both lives of the process. Increments
//! committed without an answer (the client saw the connection die) are reported and bounded by
//! the writes whose outcome the clients could not know.
//!
//! Run for both stores: PostgreSQL (production) and the embedded SQLite file (a `cargo run` on a
//! laptop must not lose a count to a crash either).

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use testkit::client::{Endpoint, Op};

use super::Context;
use crate::load::{self, Load, LoadPlan};
use crate::report::{ms, Checks};
use testkit::database::counter_value;
use testkit::origin::{self, OriginSpec};
use testkit::probe;

const CONNECTIONS: usize = 32;

#[derive(Clone, Debug, Default, Serialize)]
pub struct StoreFigures {
    pub store: String,
    /// The opening sentinel: the counter before the load.
    pub counter_before: i64,
    pub successes_before_kill: u64,
    /// Writes that failed in a way that may have counted (dropped connection, timeout).
    pub uncertain_at_kill: u64,
    pub writes_in_flight_at_kill: usize,
    /// Read after the restart (a sentinel POST's value minus one).
    pub committed_at_kill: i64,
    /// Committed without the client hearing of it: delta minus 2xx.
    pub counted_without_answer: i64,
    /// 2xx values above the committed counter: answers for increments not in the store.
    pub acknowledged_not_committed: u64,
    pub restart_to_ready_ms: f64,
    pub successes_after_restart: u64,
    pub counter_final: i64,
    /// PostgreSQL only: the counter read with SQL, to cross-check the sentinel.
    pub counter_final_sql: Option<i64>,
    pub duplicates: Vec<i64>,
    pub after_restart_out_of_range: u64,
    pub panics: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Figures {
    pub connections: usize,
    pub stores: Vec<StoreFigures>,
}

enum Store {
    Postgres(String),
    Embedded,
}

pub async fn run(ctx: &Context, name: &str) -> Result<(Value, Checks), String> {
    let dir = ctx.case_dir(name)?;
    let database = ctx.database()?;
    let url = database.fresh(name).await?;
    let mut stores = Vec::new();
    for store in [Store::Postgres(url), Store::Embedded] {
        stores.push(run_store(ctx, &dir, store).await?);
    }
    let figures = Figures {
        connections: CONNECTIONS,
        stores,
    };
    let checks = judge(&figures);
    Ok((
        serde_json::to_value(&figures).expect("figures serialise"),
        checks,
    ))
}

async fn run_store(
    ctx: &Context,
    dir: &std::path::Path,
    store: Store,
) -> Result<StoreFigures, String> {
    let (label, spec) = match &store {
        Store::Postgres(url) => (
            "postgres",
            OriginSpec::for_tests(
                &ctx.origin_binary,
                "origin-postgres",
                dir,
                &[("DATABASE_URL", url)],
            )?,
        ),
        Store::Embedded => {
            let data = dir.join("embedded-data");
            std::fs::create_dir_all(&data).map_err(|e| format!("{}: {e}", data.display()))?;
            let data = data.display().to_string();
            (
                "embedded",
                OriginSpec::for_tests(
                    &ctx.origin_binary,
                    "origin-embedded",
                    dir,
                    &[("DATA_DIR", &data)],
                )?,
            )
        }
    };
    let mut figures = StoreFigures {
        store: label.into(),
        ..StoreFigures::default()
    };
    let origin = spec.start_ready().await?;
    figures.counter_before = sentinel(&origin.url()).await?;
    let endpoint = Arc::new(
        Endpoint::resolve(&origin.url())
            .await
            .map_err(|e| e.to_string())?,
    );
    let plan = LoadPlan {
        connections: CONNECTIONS,
        write_every: 1,
        timeout: Duration::from_secs(5),
        pause_after_failure: Duration::from_millis(20),
        max_duration: Duration::from_secs(60),
    };
    let load = Load::start(Arc::clone(&endpoint), plan.clone(), figures.counter_before);
    load.until_ok_writes(ctx.pick(1000, 5000), Duration::from_secs(30))
        .await?;
    figures.writes_in_flight_at_kill = load.writes_in_flight();
    origin.kill().await?;
    // Every worker's request in flight fails at once (the socket is gone); then they stop.
    let first = load.stop().await;
    let values_before_kill = load::write_values(&first.records);
    figures.successes_before_kill = values_before_kill.len() as u64;
    figures.uncertain_at_kill = first
        .records
        .iter()
        .filter(|r| r.op == Op::Write)
        .filter_map(|r| r.outcome.err())
        .filter(|e| e.write_may_have_counted())
        .count() as u64;

    let restarted = std::time::Instant::now();
    let origin = spec.start_ready().await?;
    figures.restart_to_ready_ms = ms(restarted.elapsed());
    // A POST sent alone is an exact reading: the counter held its value minus one.
    let reading = sentinel(&origin.url()).await?;
    figures.committed_at_kill = reading - 1;
    figures.counted_without_answer =
        figures.committed_at_kill - figures.counter_before - figures.successes_before_kill as i64;
    figures.acknowledged_not_committed = values_before_kill
        .iter()
        .filter(|&&v| v > figures.committed_at_kill)
        .count() as u64;

    let load = Load::start(endpoint, plan, reading);
    load.until_ok_writes(ctx.pick(500, 2000), Duration::from_secs(30))
        .await?;
    let second = load.stop().await;
    let values_after = load::write_values(&second.records);
    figures.successes_after_restart = values_after.len() as u64;
    figures.counter_final = sentinel(&origin.url()).await?;
    figures.after_restart_out_of_range = values_after
        .iter()
        .filter(|&&v| v <= reading || v >= figures.counter_final)
        .count() as u64;
    let mut all = values_before_kill;
    all.extend(values_after);
    all.push(reading);
    all.push(figures.counter_final);
    figures.duplicates = load::duplicates(&all);
    if let Store::Postgres(url) = &store {
        figures.counter_final_sql = Some(counter_value(url).await?);
    }
    let _ = origin.terminate(Duration::from_secs(30)).await;
    figures.panics = origin::panics(&spec);
    Ok(figures)
}

/// One POST on its own connection; its value is the counter right after it.
async fn sentinel(url: &str) -> Result<i64, String> {
    let addr = url
        .trim_start_matches("http://")
        .parse()
        .map_err(|e| format!("{url}: {e}"))?;
    let answer = probe::request(addr, "POST", "/api/counter", &[], Duration::from_secs(10)).await?;
    if answer.status != 200 {
        return Err(format!(
            "sentinel POST answered {}: {}",
            answer.status, answer.body
        ));
    }
    testkit::client::parse_value(answer.body.as_bytes())
        .ok_or_else(|| format!("sentinel POST body {:?}", answer.body))
}

pub fn judge(f: &Figures) -> Checks {
    let mut checks = Checks::default();
    for s in &f.stores {
        let store = &s.store;
        checks.expect(
            &format!("{store}: no 2xx for an increment that is not in the store"),
            s.successes_before_kill > 0
                && s.acknowledged_not_committed == 0
                && s.counted_without_answer >= 0,
            format!(
                "{} 2xx before the kill, committed {} → {}; {} values above it",
                s.successes_before_kill,
                s.counter_before,
                s.committed_at_kill,
                s.acknowledged_not_committed
            ),
        );
        checks.expect(
            &format!("{store}: unanswered increments bounded by the writes cut off"),
            s.counted_without_answer <= s.uncertain_at_kill as i64,
            format!(
                "{} committed without an answer, {} writes cut off by the kill ({} in flight)",
                s.counted_without_answer, s.uncertain_at_kill, s.writes_in_flight_at_kill
            ),
        );
        checks.expect(
            &format!("{store}: the restarted origin continues the count"),
            s.successes_after_restart > 0
                && s.after_restart_out_of_range == 0
                && s.duplicates.is_empty()
                && s.counter_final_sql.is_none_or(|sql| sql == s.counter_final),
            format!(
                "{} 2xx after the restart, {} out of range, {} duplicates across both lives, final {} (SQL {:?})",
                s.successes_after_restart,
                s.after_restart_out_of_range,
                s.duplicates.len(),
                s.counter_final,
                s.counter_final_sql
            ),
        );
        checks.expect(
            &format!("{store}: no panic"),
            s.panics.is_empty(),
            format!("{:?}", s.panics),
        );
    }
    checks
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good() -> StoreFigures {
        StoreFigures {
            store: "postgres".into(),
            counter_before: 1,
            successes_before_kill: 1000,
            uncertain_at_kill: 32,
            writes_in_flight_at_kill: 32,
            committed_at_kill: 1011,
            counted_without_answer: 10,
            successes_after_restart: 500,
            counter_final: 1513,
            counter_final_sql: Some(1513),
            ..StoreFigures::default()
        }
    }

    fn passes(s: StoreFigures) -> bool {
        judge(&Figures {
            connections: 32,
            stores: vec![s],
        })
        .passed()
    }

    #[test]
    fn a_clean_kill_passes_and_each_broken_promise_fails() {
        assert!(passes(good()));
        let broken: crate::report::Breaks<StoreFigures> = vec![
            (
                "a 2xx above the committed value",
                Box::new(|s| s.acknowledged_not_committed = 1),
            ),
            (
                "more 2xx than increments",
                Box::new(|s| s.counted_without_answer = -1),
            ),
            (
                "increments counted beyond the cut-off writes",
                Box::new(|s| s.counted_without_answer = 33),
            ),
            ("a value given twice", Box::new(|s| s.duplicates = vec![5])),
            ("no load at all", Box::new(|s| s.successes_before_kill = 0)),
            (
                "restarted origin out of range",
                Box::new(|s| s.after_restart_out_of_range = 1),
            ),
            ("SQL disagrees", Box::new(|s| s.counter_final_sql = Some(1))),
            ("a panic", Box::new(|s| s.panics = vec!["panicked".into()])),
        ];
        for (what, breaks) in broken {
            let mut figures = good();
            breaks(&mut figures);
            assert!(!passes(figures), "{what} went unnoticed");
        }
    }
}
