//! The write path: every POST enqueues into a bounded queue; one writer task takes everything
//! waiting (up to `max_batch`), commits it with ONE `add(n)` statement, and hands the callers
//! `v-n+1 … v` in arrival order. No artificial delay: at low load a batch is 1; under load batches
//! grow while a statement is in flight, so throughput rises instead of queueing.
//!
//! Outcomes a caller can get, and what they promise:
//! - `Ok(v)`: committed, and `v` is this increment's own value.
//! - `Overloaded` / `ShuttingDown` / `DeadlineExceeded`: never counted.
//! - `Unavailable`: the statement failed before committing; nothing of the batch counted.
//! - `Ambiguous`: the connection died after the statement was sent; it may have counted.
//!   Counted in a metric and logged; `Idempotency-Key` is how clients make retries safe.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot, Notify};
use tokio::task::JoinHandle;

use super::ReadCache;
use crate::health::Readiness;
use crate::store::{CounterStore, StoreError};
use crate::telemetry::metrics::{Metrics, StoreOp};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IncrementError {
    #[error("write queue full")]
    Overloaded,
    #[error("shutting down")]
    ShuttingDown,
    #[error("deadline passed while queued")]
    DeadlineExceeded,
    #[error("store unavailable")]
    Unavailable,
    #[error("outcome unknown")]
    Ambiguous,
}

/// Who owns a queued increment: the caller may withdraw it until the writer takes it; after
/// that the caller waits for the statement's outcome. One compare-and-swap decides, so a `504`
/// can never be given for an increment that was counted.
const QUEUED: u8 = 0;
const TAKEN: u8 = 1;
const WITHDRAWN: u8 = 2;

struct Pending {
    claim: Arc<AtomicU8>,
    reply: oneshot::Sender<Result<i64, IncrementError>>,
}

pub struct IncrementBatcher {
    queue: mpsc::Sender<Pending>,
    close: Arc<Notify>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl IncrementBatcher {
    /// Starts the writer task. `capacity` bounds memory: beyond it callers are shed at once.
    pub fn start(
        store: Arc<dyn CounterStore>,
        cache: Arc<ReadCache>,
        readiness: Arc<Readiness>,
        metrics: Arc<Metrics>,
        max_batch: usize,
        capacity: usize,
    ) -> Self {
        let (queue, receiver) = mpsc::channel(capacity);
        let close = Arc::new(Notify::new());
        let writer = Writer {
            receiver,
            store,
            cache,
            readiness,
            metrics,
            max_batch,
            close: Arc::clone(&close),
        };
        let writer = tokio::spawn(writer.run());
        Self {
            queue,
            close,
            writer: Mutex::new(Some(writer)),
        }
    }

    /// Adds one to the counter and returns the value this increment produced.
    pub async fn increment(
        &self,
        deadline: Instant,
        metrics: &Metrics,
    ) -> Result<i64, IncrementError> {
        let claim = Arc::new(AtomicU8::new(QUEUED));
        let (reply, mut answer) = oneshot::channel();
        match self.queue.try_send(Pending {
            claim: Arc::clone(&claim),
            reply,
        }) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                metrics.shed.inc();
                return Err(IncrementError::Overloaded);
            }
            Err(mpsc::error::TrySendError::Closed(_)) => return Err(IncrementError::ShuttingDown),
        }
        match tokio::time::timeout_at(deadline.into(), &mut answer).await {
            Ok(outcome) => outcome.unwrap_or(Err(IncrementError::ShuttingDown)),
            Err(_)
                if claim
                    .compare_exchange(QUEUED, WITHDRAWN, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok() =>
            {
                metrics.expired.inc();
                Err(IncrementError::DeadlineExceeded)
            }
            // Taken into a batch: its statement is bounded by the store's call timeout.
            Err(_) => answer.await.unwrap_or(Err(IncrementError::Ambiguous)),
        }
    }

    /// Increments waiting in the queue (not yet taken into a batch).
    pub fn queued(&self) -> usize {
        self.queue.max_capacity() - self.queue.capacity()
    }

    /// Stops taking increments, commits (or fails) everything already queued, and waits for the
    /// writer up to `timeout`. Returns false when the writer had to be abandoned.
    pub async fn flush_and_stop(&self, timeout: Duration) -> bool {
        self.close.notify_one();
        let Some(mut writer) = self.writer.lock().unwrap().take() else {
            return true;
        };
        match tokio::time::timeout(timeout, &mut writer).await {
            Ok(_) => true,
            Err(_) => {
                // Dropping the queued replies answers their callers 503.
                writer.abort();
                false
            }
        }
    }
}

struct Writer {
    receiver: mpsc::Receiver<Pending>,
    store: Arc<dyn CounterStore>,
    cache: Arc<ReadCache>,
    readiness: Arc<Readiness>,
    metrics: Arc<Metrics>,
    max_batch: usize,
    close: Arc<Notify>,
}

impl Writer {
    async fn run(mut self) {
        let mut taken = Vec::with_capacity(self.max_batch);
        let mut batch = Vec::with_capacity(self.max_batch);
        let mut closing = false;
        loop {
            let received = tokio::select! {
                biased;
                _ = self.close.notified(), if !closing => {
                    // No new increments; what is already queued is still drained below.
                    self.receiver.close();
                    closing = true;
                    continue;
                }
                n = self.receiver.recv_many(&mut taken, self.max_batch) => n,
            };
            if received == 0 {
                return; // closed and drained
            }
            batch.extend(taken.drain(..).filter_map(|p: Pending| {
                let claimed = p
                    .claim
                    .compare_exchange(QUEUED, TAKEN, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok();
                claimed.then_some(p.reply)
            }));
            if !batch.is_empty() {
                self.commit(&mut batch).await;
            }
        }
    }

    async fn commit(&self, batch: &mut Vec<oneshot::Sender<Result<i64, IncrementError>>>) {
        let n = batch.len() as i64;
        let started = Instant::now();
        let result = self.store.add(n).await;
        self.metrics.observe_store(StoreOp::Add, started.elapsed());
        match result {
            Ok(value) => {
                self.metrics.batch_size.observe(n as f64);
                self.metrics.committed.inc_by(n as u64);
                self.readiness.store_answered();
                self.cache.observe_committed(value).await;
                for (reply, own) in batch.drain(..).zip(value - n + 1..) {
                    let _ = reply.send(Ok(own)); // a caller that went away was still counted
                }
            }
            Err(error) => {
                let outcome = match &error {
                    StoreError::Unavailable(_) => {
                        self.metrics.failed.inc_by(n as u64);
                        tracing::warn!(batch = n, %error, "increment batch failed; nothing counted");
                        IncrementError::Unavailable
                    }
                    StoreError::Ambiguous(_) => {
                        self.metrics.ambiguous.inc_by(n as u64);
                        tracing::error!(batch = n, %error, "increment batch outcome unknown; it may have been counted");
                        IncrementError::Ambiguous
                    }
                };
                for reply in batch.drain(..) {
                    let _ = reply.send(Err(outcome.clone()));
                }
            }
        }
    }
}
