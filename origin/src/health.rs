//! Liveness and readiness, kept apart (the original used one DB-dependent probe, so a database
//! outage restarted every pod). Liveness is "the process serves"; readiness is "the store
//! answered recently, this process's writes are not failing persistently, and we are not
//! draining".
//!
//! Writes count because a store can answer reads while refusing writes (a full or broken disk
//! under the embedded store, a read-only replica after a bad failover): such a pod must leave the
//! load balancer. Once writes have failed for longer than `READY_STALE_AFTER_MS` with no success
//! in between, readiness fails, and the store checker probes a write on every tick
//! until one commits (`CounterStore::probe_write`), since an unready pod gets no traffic that
//! could prove it healthy again.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::store::CounterStore;
use crate::telemetry::metrics::{Metrics, StoreOp};

pub struct Readiness {
    started: Instant,
    /// Milliseconds since `started` of the last store answer; 0 = never.
    last_answer_ms: AtomicU64,
    /// Milliseconds since `started` of the first write failure with no success since; 0 = none.
    writes_failing_since_ms: AtomicU64,
    draining: AtomicBool,
    stale_after: Duration,
}

/// Why `/readyz` says no.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotReady {
    Draining,
    StoreUnanswered,
    WritesFailing,
}

impl NotReady {
    /// The `/readyz` answer body.
    pub fn body(self) -> &'static str {
        match self {
            Self::Draining => r#"{"status":"not ready","reason":"draining"}"#,
            Self::StoreUnanswered => r#"{"status":"not ready","reason":"store not answering"}"#,
            Self::WritesFailing => r#"{"status":"not ready","reason":"writes failing"}"#,
        }
    }
}

impl Readiness {
    pub fn new(stale_after: Duration) -> Self {
        Self {
            started: Instant::now(),
            last_answer_ms: AtomicU64::new(0),
            writes_failing_since_ms: AtomicU64::new(0),
            draining: AtomicBool::new(false),
            stale_after,
        }
    }

    pub fn check(&self) -> Result<(), NotReady> {
        if self.draining.load(Ordering::Relaxed) {
            return Err(NotReady::Draining);
        }
        let last = self.last_answer_ms.load(Ordering::Relaxed);
        let now = self.started.elapsed().as_millis() as u64;
        let stale_after = self.stale_after.as_millis() as u64;
        if last == 0 || now.saturating_sub(last) > stale_after {
            return Err(NotReady::StoreUnanswered);
        }
        let failing_since = self.writes_failing_since_ms.load(Ordering::Relaxed);
        if failing_since != 0 && now.saturating_sub(failing_since) > stale_after {
            return Err(NotReady::WritesFailing);
        }
        Ok(())
    }

    fn now_ms(&self) -> u64 {
        (self.started.elapsed().as_millis() as u64).max(1)
    }

    pub fn store_answered(&self) {
        self.last_answer_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    /// A write committed. Returns true when it ends a run of failures (an incident is over).
    pub fn write_committed(&self) -> bool {
        self.store_answered();
        // A load first: the hot path must not write a shared cache line on every batch.
        self.writes_failing_since_ms.load(Ordering::Relaxed) != 0
            && self.writes_failing_since_ms.swap(0, Ordering::Relaxed) != 0
    }

    /// A write failed (not shed, not expired: the store refused or lost it). Returns true when it
    /// starts a run of failures (a new incident, to be logged once).
    pub fn write_failed(&self) -> bool {
        self.writes_failing_since_ms
            .compare_exchange(0, self.now_ms(), Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    }

    /// Writes have failed with no success since; the store checker then probes them.
    pub fn writes_failing(&self) -> bool {
        self.writes_failing_since_ms.load(Ordering::Relaxed) != 0
    }

    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }
}

/// Pings the store every `interval` for as long as the process lives, so readiness recovers on
/// its own after an outage (and a failed schema set-up is retried) without a restart. While
/// writes are failing it also probes one (a real write transaction that changes no count), so a pod taken out of the load balancer for failing writes comes back once they work.
pub fn spawn_store_checker(
    store: Arc<dyn CounterStore>,
    readiness: Arc<Readiness>,
    metrics: Arc<Metrics>,
    interval: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut was_ok = None;
        loop {
            ticker.tick().await;
            let started = Instant::now();
            let result =
                tokio::time::timeout(interval.max(Duration::from_secs(1)) * 2, store.ping()).await;
            metrics.observe_store(StoreOp::Ping, started.elapsed());
            let ok = matches!(result, Ok(Ok(())));
            if ok {
                readiness.store_answered();
                if readiness.writes_failing() {
                    probe_write(store.as_ref(), &readiness, &metrics, interval).await;
                }
            }
            metrics.ready.set(readiness.check().is_ok() as i64);
            if was_ok != Some(ok) {
                match result {
                    Ok(Ok(())) => tracing::info!("store answering"),
                    Ok(Err(error)) => tracing::warn!(%error, "store not answering"),
                    Err(_) => tracing::warn!("store ping timed out"),
                }
                was_ok = Some(ok);
            }
        }
    })
}

async fn probe_write(
    store: &dyn CounterStore,
    readiness: &Readiness,
    metrics: &Metrics,
    interval: Duration,
) {
    let started = Instant::now();
    let result = tokio::time::timeout(
        interval.max(Duration::from_secs(1)) * 2,
        store.probe_write(),
    )
    .await;
    metrics.observe_store(StoreOp::Add, started.elapsed());
    if let Ok(Ok(())) = result {
        if readiness.write_committed() {
            tracing::info!("writes succeed again (probe committed)");
        }
    }
}
