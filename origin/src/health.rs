//! Liveness and readiness, kept apart (the original used one DB-dependent probe, so a database
//! outage restarted every pod). Liveness is "the process serves"; readiness is "the store
//! answered recently and we are not draining".

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::store::CounterStore;
use crate::telemetry::metrics::{Metrics, StoreOp};

pub struct Readiness {
    started: Instant,
    /// Milliseconds since `started` of the last store answer; 0 = never.
    last_answer_ms: AtomicU64,
    draining: AtomicBool,
    stale_after: Duration,
}

/// Why `/readyz` says no.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotReady {
    Draining,
    StoreUnanswered,
}

impl NotReady {
    /// The `/readyz` answer body.
    pub fn body(self) -> &'static str {
        match self {
            Self::Draining => r#"{"status":"not ready","reason":"draining"}"#,
            Self::StoreUnanswered => r#"{"status":"not ready","reason":"store not answering"}"#,
        }
    }
}

impl Readiness {
    pub fn new(stale_after: Duration) -> Self {
        Self {
            started: Instant::now(),
            last_answer_ms: AtomicU64::new(0),
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
        if last == 0 || now.saturating_sub(last) > self.stale_after.as_millis() as u64 {
            return Err(NotReady::StoreUnanswered);
        }
        Ok(())
    }

    pub fn store_answered(&self) {
        let now = (self.started.elapsed().as_millis() as u64).max(1);
        self.last_answer_ms.store(now, Ordering::Relaxed);
    }

    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }
}

/// Pings the store every `interval` for as long as the process lives, so readiness recovers on
/// its own after an outage (and a failed schema set-up is retried) without a restart.
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
