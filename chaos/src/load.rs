//! Load that keeps every answer: the fault cases judge individual requests against the moment a
//! fault was injected (which failed during the outage, how fast, which were in flight at the
//! cut), so unlike `loadtest run` this driver records each request instead of histograms only.
//! It reuses the load tester's keep-alive client, and its write ledger and exact-count audit
//! ([`Finished::audit`], between two sentinel POSTs) for every case that writes.
//!
//! Closed loop: each connection sends its next request when the previous one is answered, after
//! a short pause when it failed (a retrying client backs off; without it a refused connection
//! would spin a core that the server under test needs).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use loadtest::correctness::{WriteCheck, WriteLedger};
use serde::Serialize;
use testkit::client::{Connection, Endpoint, Op, RequestError};
use testkit::probe;

use crate::report::ms;
use crate::Error;

#[derive(Clone, Debug)]
pub struct LoadPlan {
    pub connections: usize,
    /// One request in `write_every` is a POST (1: all writes), spread evenly.
    pub write_every: u64,
    /// Bound on one request: slower counts as a timeout.
    pub timeout: Duration,
    pub pause_after_failure: Duration,
    /// Hard stop even if nobody calls [`Load::stop`].
    pub max_duration: Duration,
}

impl LoadPlan {
    /// `connections` closed-loop writers: every request a POST.
    pub fn writes(connections: usize) -> Self {
        Self {
            connections,
            write_every: 1,
            timeout: Duration::from_secs(10),
            pause_after_failure: Duration::from_millis(10),
            max_duration: Duration::from_secs(120),
        }
    }
}

/// One request and what came of it.
#[derive(Clone, Copy, Debug)]
pub struct Record {
    pub op: Op,
    /// When it was sent, since the load started.
    pub sent: Duration,
    pub latency: Duration,
    pub outcome: Result<i64, RequestError>,
}

impl Record {
    pub fn done(&self) -> Duration {
        self.sent + self.latency
    }

    pub fn status(&self) -> Option<u16> {
        match self.outcome {
            Ok(_) => Some(200),
            Err(RequestError::Status(s)) => Some(s),
            Err(_) => None,
        }
    }
}

struct Shared {
    endpoint: Arc<Endpoint>,
    plan: LoadPlan,
    started: Instant,
    stop: AtomicBool,
    writes_in_flight: AtomicUsize,
    ok_writes: AtomicU64,
    ledger: WriteLedger,
}

pub struct Load {
    shared: Arc<Shared>,
    workers: Vec<tokio::task::JoinHandle<Vec<Record>>>,
}

/// A stopped load: every request, and the ledger's stale-answer verdict.
pub struct Finished {
    pub records: Vec<Record>,
    pub ledger: WriteLedger,
    pub elapsed: Duration,
}

impl Finished {
    /// The values of the successful writes.
    pub fn write_values(&self) -> Vec<i64> {
        self.records
            .iter()
            .filter(|r| r.op == Op::Write)
            .filter_map(|r| r.outcome.ok())
            .collect()
    }

    /// Failed writes that reached the origin without the client learning their outcome.
    pub fn uncertain_writes(&self) -> u64 {
        self.records
            .iter()
            .filter(|r| r.op == Op::Write)
            .filter_map(|r| r.outcome.err())
            .filter(|e| e.write_may_have_counted())
            .count() as u64
    }

    /// The load tester's exact-count audit: `before` and `after` are the values of the sentinel
    /// POSTs around the load (`after` unknown when the store was lost), `uncertain` how many
    /// increments may have been counted without an answer.
    pub fn audit(&self, before: i64, after: Option<i64>, uncertain: u64) -> WriteCheck {
        loadtest::correctness::check(
            self.write_values(),
            &self.ledger,
            before,
            after,
            uncertain,
            true,
        )
    }
}

/// Every `200` value distinct, between the sentinels and fresh.
pub fn distinct(w: &WriteCheck) -> bool {
    w.duplicates == 0 && w.out_of_range == 0 && w.stale == 0
}

/// Distinct, and the counter moved by at least the `200`s and at most the `200`s plus the
/// uncertain writes (exactly the `200`s when none was uncertain).
pub fn exact(w: &WriteCheck) -> bool {
    distinct(w)
        && w.counter_delta.is_some_and(|delta| {
            w.successes as i64 <= delta && delta <= (w.successes + w.uncertain) as i64
        })
}

/// One POST on its own connection: its value is the counter right after it, an exact reading
/// that no cache can make stale.
pub async fn sentinel(addr: SocketAddr) -> Result<i64, Error> {
    let answer = probe::request(addr, "POST", "/api/counter", &[], Duration::from_secs(10)).await?;
    testkit::client::parse_value(answer.body.as_bytes())
        .filter(|_| answer.status == 200)
        .ok_or_else(|| {
            Error::Answer(format!(
                "sentinel POST to {addr} answered {}: {}",
                answer.status, answer.body
            ))
        })
}

impl Load {
    /// Starts `plan.connections` workers. `floor` is a value every write answer must exceed
    /// (the counter before the load), for the stale-answer check.
    pub fn start(endpoint: Arc<Endpoint>, plan: LoadPlan, floor: i64) -> Self {
        let shared = Arc::new(Shared {
            endpoint,
            started: Instant::now(),
            stop: AtomicBool::new(false),
            writes_in_flight: AtomicUsize::new(0),
            ok_writes: AtomicU64::new(0),
            ledger: WriteLedger::new(floor),
            plan,
        });
        let workers = (0..shared.plan.connections)
            .map(|index| tokio::spawn(worker(Arc::clone(&shared), index)))
            .collect();
        Self { shared, workers }
    }

    /// The opening sentinel, then `plan` against `addr`; the sentinel's value.
    pub async fn after_sentinel(addr: SocketAddr, plan: LoadPlan) -> Result<(Self, i64), Error> {
        let before = sentinel(addr).await?;
        let endpoint = Endpoint::resolve(&format!("http://{addr}"))
            .await
            .map_err(|e| Error::Setup(e.to_string()))?;
        Ok((Self::start(Arc::new(endpoint), plan, before), before))
    }

    pub fn started(&self) -> Instant {
        self.shared.started
    }

    pub fn elapsed(&self) -> Duration {
        self.shared.started.elapsed()
    }

    /// POSTs sent and not yet answered, now.
    pub fn writes_in_flight(&self) -> usize {
        self.shared.writes_in_flight.load(Ordering::Acquire)
    }

    /// Successful POSTs so far.
    pub fn ok_writes(&self) -> u64 {
        self.shared.ok_writes.load(Ordering::Relaxed)
    }

    /// Waits (polling, bounded) until `n` more POSTs have succeeded than when called.
    pub async fn until_ok_writes(&self, n: u64, timeout: Duration) -> Result<(), Error> {
        let target = self.ok_writes() + n;
        let deadline = Instant::now() + timeout;
        while self.ok_writes() < target {
            if Instant::now() >= deadline {
                return Err(Error::Timeout(format!(
                    "only {} of {n} successful writes within {timeout:?}",
                    n - (target - self.ok_writes())
                )));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(())
    }

    /// Asks the workers to finish their current request and stop; returns every record.
    pub async fn stop(self) -> Finished {
        self.shared.stop.store(true, Ordering::Release);
        let mut records = Vec::new();
        for worker in self.workers {
            records.extend(worker.await.unwrap_or_default());
        }
        records.sort_by_key(|r| r.sent);
        let elapsed = self.shared.started.elapsed();
        let shared = Arc::into_inner(self.shared).expect("workers are done");
        Finished {
            records,
            ledger: shared.ledger,
            elapsed,
        }
    }
}

async fn worker(shared: Arc<Shared>, index: usize) -> Vec<Record> {
    let plan = &shared.plan;
    let mut records = Vec::new();
    let mut connection: Option<Connection> = None;
    let mut i = index as u64;
    while !shared.stop.load(Ordering::Acquire) && shared.started.elapsed() < plan.max_duration {
        let op = if plan.write_every <= 1 || i % plan.write_every == 0 {
            Op::Write
        } else {
            Op::Read
        };
        i += plan.connections as u64;
        let sent = Instant::now();
        let open = match connection.as_mut() {
            Some(open) => open,
            None => match shared.endpoint.connect(index).await {
                Ok(c) => connection.insert(c),
                Err(e) => {
                    records.push(Record {
                        op,
                        sent: sent - shared.started,
                        latency: sent.elapsed(),
                        outcome: Err(e),
                    });
                    tokio::time::sleep(plan.pause_after_failure).await;
                    continue;
                }
            },
        };
        let floor = (op == Op::Write).then(|| {
            shared.writes_in_flight.fetch_add(1, Ordering::AcqRel);
            shared.ledger.floor()
        });
        let outcome = open.exchange(op, Instant::now() + plan.timeout).await;
        let latency = sent.elapsed();
        if let Some(floor) = floor {
            shared.writes_in_flight.fetch_sub(1, Ordering::AcqRel);
            if let Ok(value) = outcome {
                shared.ledger.acknowledge(floor, value);
                shared.ok_writes.fetch_add(1, Ordering::Relaxed);
            }
        }
        let usable = matches!(
            outcome,
            Ok(_) | Err(RequestError::Status(_) | RequestError::BadBody)
        ) && open.is_reusable();
        if !usable {
            connection = None;
        }
        records.push(Record {
            op,
            sent: sent - shared.started,
            latency,
            outcome,
        });
        if outcome.is_err() {
            tokio::time::sleep(plan.pause_after_failure).await;
        }
    }
    records
}

/// Count and latency percentiles of a set of requests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Latencies {
    pub count: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Latencies {
    pub fn of<'a>(records: impl IntoIterator<Item = &'a Record>) -> Self {
        Self::of_durations(records.into_iter().map(|r| r.latency))
    }

    pub fn of_durations(latencies: impl IntoIterator<Item = Duration>) -> Self {
        let mut histogram =
            Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds");
        for latency in latencies {
            histogram.saturating_record(latency.as_micros().max(1) as u64);
        }
        if histogram.is_empty() {
            return Self::default();
        }
        let at = |q: f64| ms(Duration::from_micros(histogram.value_at_quantile(q)));
        Self {
            count: histogram.len(),
            p50_ms: at(0.50),
            p99_ms: at(0.99),
            max_ms: ms(Duration::from_micros(histogram.max())),
        }
    }
}

/// How many requests ended each way (`200`, `status_503`, `timeout`, `transport`, …).
pub fn outcomes<'a>(
    records: impl IntoIterator<Item = &'a Record>,
) -> std::collections::BTreeMap<String, u64> {
    let mut counts = std::collections::BTreeMap::new();
    for record in records {
        let key = match record.outcome {
            Ok(_) => "ok".to_string(),
            Err(e) => e.label(),
        };
        *counts.entry(key).or_insert(0) += 1;
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(op: Op, latency_ms: u64, outcome: Result<i64, RequestError>) -> Record {
        Record {
            op,
            sent: Duration::ZERO,
            latency: Duration::from_millis(latency_ms),
            outcome,
        }
    }

    #[test]
    fn summarises_latencies_and_outcomes() {
        let records: Vec<Record> = (1..=100)
            .map(|i| record(Op::Write, i, Ok(i as i64)))
            .chain([record(Op::Write, 5, Err(RequestError::Status(503)))])
            .collect();
        let latencies = Latencies::of(&records);
        assert_eq!(latencies.count, 101);
        assert!((49.0..=51.0).contains(&latencies.p50_ms), "{latencies:?}");
        assert!((99.0..=100.1).contains(&latencies.max_ms), "{latencies:?}");
        let counts = outcomes(&records);
        assert_eq!(counts["ok"], 100);
        assert_eq!(counts["status_503"], 1);
        assert_eq!(Latencies::of(&[]).count, 0);
    }

    #[test]
    fn audits_the_writes_only() {
        let finished = Finished {
            records: vec![
                record(Op::Read, 1, Ok(7)),
                record(Op::Write, 1, Ok(8)),
                record(Op::Write, 1, Err(RequestError::Timeout)),
                record(Op::Write, 1, Err(RequestError::Connect)),
            ],
            ledger: WriteLedger::new(6),
            elapsed: Duration::ZERO,
        };
        assert_eq!(finished.write_values(), vec![8]);
        assert_eq!(
            finished.uncertain_writes(),
            1,
            "a refused connect sent nothing"
        );
        // Sentinels 6 and 10: 8 answered, 7 and 9 counted without an answer.
        let audit = finished.audit(6, Some(10), 1);
        assert!(distinct(&audit));
        assert!(
            !exact(&audit),
            "two unanswered increments, one uncertain write"
        );
        assert!(exact(&finished.audit(6, Some(10), 2)));
        let mut doubled = finished.audit(6, Some(10), 2);
        doubled.duplicates = 1;
        assert!(!exact(&doubled));
        let mut undercounted = finished.audit(6, Some(10), 2);
        undercounted.counter_delta = Some(0);
        assert!(!exact(&undercounted), "a 200 not counted");
        assert!(!exact(&finished.audit(6, None, 2)), "no closing reading");
    }
}
