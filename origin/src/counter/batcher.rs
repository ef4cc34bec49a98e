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
//!   Counted in a metric and logged; `Idempotency-Key` is how clients make retries safe: a batch
//!   carrying keys commits as one transaction that also records them, so a retry with the same key
//!   gets the first answer instead of a second increment.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry::trace::SpanContext;
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinHandle;

use super::handoff::{Answerer, Handoff, Outcome};
use super::idempotency::IdempotencyKey;
use super::ReadCache;
use crate::health::Readiness;
use crate::store::{CounterStore, KeyedAdd, StoreError};
use crate::telemetry::metrics::{Metrics, StoreOp};
use crate::telemetry::traces::{self, BatchTrace, Traces};

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

/// A queued increment: the caller may withdraw it until the writer takes it ([`Handoff`]); after
/// that the caller waits for the statement's outcome.
struct Pending {
    reply: Answerer<Reply>,
    /// The caller's request span is sampled: the batch carrying it gets a span to link to.
    traced: bool,
    key: Option<IdempotencyKey>,
}

/// An increment the writer has taken into a batch.
struct Taken {
    reply: Answerer<Reply>,
    traced: bool,
    key: Option<IdempotencyKey>,
}

/// What the writer answers a caller.
struct Reply {
    outcome: Result<i64, IncrementError>,
    /// The span of the batch that carried a traced caller's increment (shared: one per batch, and
    /// it keeps this reply small when tracing is off).
    batch: Option<Arc<SpanContext>>,
}

pub struct IncrementBatcher {
    queue: mpsc::Sender<Pending>,
    close: Arc<Notify>,
    writer: Mutex<Option<JoinHandle<()>>>,
    tracing: bool,
}

/// What the writer commits through and reports to: the pieces it shares with the rest of the app.
pub struct WriterParts {
    pub store: Arc<dyn CounterStore>,
    pub cache: Arc<ReadCache>,
    pub readiness: Arc<Readiness>,
    pub metrics: Arc<Metrics>,
    pub traces: Option<Arc<Traces>>,
}

/// The write path's two bounds, named so that one cannot be passed for the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    /// Most increments one statement commits.
    pub max_batch: usize,
    /// Most increments waiting to be taken; beyond it callers are shed at once (bounds memory).
    pub queue_capacity: usize,
}

impl IncrementBatcher {
    /// Starts the writer task.
    pub fn start(parts: WriterParts, limits: BatchLimits) -> Self {
        let WriterParts {
            store,
            cache,
            readiness,
            metrics,
            traces,
        } = parts;
        let BatchLimits {
            max_batch,
            queue_capacity: capacity,
        } = limits;
        let (queue, receiver) = mpsc::channel(capacity);
        metrics.write_queue_capacity.set(capacity as i64);
        let close = Arc::new(Notify::new());
        let tracing = traces.is_some();
        let writer = Writer {
            receiver,
            store,
            cache,
            readiness,
            metrics,
            traces,
            max_batch,
            close: Arc::clone(&close),
            incident_failed: AtomicU64::new(0),
        };
        let writer = tokio::spawn(writer.run());
        Self {
            queue,
            close,
            writer: Mutex::new(Some(writer)),
            tracing,
        }
    }

    /// Adds one to the counter and returns the value this increment produced. When the current
    /// request span is sampled, it is linked to the span of the batch that carried the increment.
    ///
    /// With an `Idempotency-Key`, a key already committed returns its first value and counts
    /// nothing (the key is stored in the same transaction as its increment).
    pub async fn increment(
        &self,
        deadline: Instant,
        metrics: &Metrics,
        key: Option<IdempotencyKey>,
    ) -> Result<i64, IncrementError> {
        let traced = self.tracing && traces::current_span_sampled();
        let (handoff, reply) = Handoff::new();
        match self.queue.try_send(Pending { reply, traced, key }) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                metrics.shed.inc();
                return Err(IncrementError::Overloaded);
            }
            Err(mpsc::error::TrySendError::Closed(_)) => return Err(IncrementError::ShuttingDown),
        }
        let outcome = match tokio::time::timeout_at(deadline.into(), handoff.outcome()).await {
            Ok(outcome) => outcome,
            Err(_) if handoff.withdraw() => {
                metrics.expired.inc();
                return Err(IncrementError::DeadlineExceeded);
            }
            // Taken into a batch: its statement is bounded by the store's call timeout.
            Err(_) => handoff.outcome().await,
        };
        let reply = match outcome {
            Outcome::Answered(reply) => reply,
            Outcome::NeverTaken => return Err(IncrementError::ShuttingDown),
            // The writer was abandoned mid-statement (shutdown timeout).
            Outcome::Abandoned => return Err(IncrementError::Ambiguous),
        };
        if let Some(batch) = reply.batch {
            traces::link_current_span(&batch);
        }
        reply.outcome
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
    traces: Option<Arc<Traces>>,
    max_batch: usize,
    close: Arc<Notify>,
    /// Increments failed since the last commit (for the line that ends an incident).
    incident_failed: AtomicU64,
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
            // What waited when the writer came back: the queue's peak since the last batch.
            self.metrics
                .observe_queue_depth(received + self.receiver.len());
            batch.extend(taken.drain(..).filter_map(|p: Pending| {
                p.reply.take().then_some(Taken {
                    reply: p.reply,
                    traced: p.traced,
                    key: p.key,
                })
            }));
            if !batch.is_empty() {
                self.commit(&mut batch).await;
            }
        }
    }

    /// Commits one batch: ONE `add(n)` statement, or — when any caller sent an
    /// `Idempotency-Key` — one transaction that also looks up and stores the keys.
    async fn commit(&self, batch: &mut Vec<Taken>) {
        let n = batch.len() as i64;
        // A span only for a batch that carries a sampled request (never when tracing is off).
        let trace = self
            .traces
            .as_deref()
            .filter(|_| batch.iter().any(|taken| taken.traced))
            .map(|traces| (traces, traces.start_batch(batch.len())));
        let keyed = batch.iter().any(|taken| taken.key.is_some());
        let statement = async {
            if keyed {
                let entries = batch
                    .iter_mut()
                    .map(|t| t.key.take().map(IdempotencyKey::into_inner))
                    .collect();
                self.store.add_keyed(entries).await
            } else {
                let last = self.store.add(n).await?;
                Ok(KeyedAdd {
                    values: (last - n + 1..=last).collect(),
                    counted: n as u64,
                })
            }
        };
        let started = Instant::now();
        let result = match &trace {
            None => statement.await,
            Some((traces, batch_trace)) => traces.statement(batch_trace, statement).await,
        };
        self.metrics.observe_store(StoreOp::Add, started.elapsed());
        let trace = trace.map(|(_, batch_trace)| batch_trace);
        let batch_span = trace.as_ref().map(|t| Arc::new(t.span_context()));
        let link = |traced: bool| batch_span.as_ref().filter(|_| traced).map(Arc::clone);
        match result {
            Ok(KeyedAdd { values, counted }) => {
                self.metrics.batch_size.observe(n as f64);
                self.metrics.committed.inc_by(counted);
                self.metrics.replayed.inc_by(n as u64 - counted);
                self.readiness.write_committed();
                if self.incident_failed.load(Ordering::Relaxed) > 0 {
                    tracing::info!(
                        failed = self.incident_failed.swap(0, Ordering::Relaxed),
                        "increments commit again; the failed ones were answered 503 and not counted"
                    );
                }
                if let Some(&highest) = values.iter().max() {
                    self.cache.observe_committed(highest).await;
                }
                for (taken, own) in batch.drain(..).zip(values) {
                    // A caller that went away was still counted.
                    taken.reply.answer(Reply {
                        outcome: Ok(own),
                        batch: link(taken.traced),
                    });
                }
                if let Some(trace) = trace {
                    trace.end("committed");
                }
            }
            Err(error) => {
                // The batch's trace id on these log lines (the guard is dropped before any await).
                let in_batch = trace.as_ref().map(BatchTrace::enter);
                // Logged once per incident (the first failure after a success), with its cause;
                // every failed increment is counted in the metrics.
                let first = self.readiness.write_failed();
                self.incident_failed.fetch_add(n as u64, Ordering::Relaxed);
                let (outcome, label) = match &error {
                    StoreError::Unavailable(_) => {
                        self.metrics.failed.inc_by(n as u64);
                        if first {
                            tracing::error!(batch = n, %error, "increments failing: answered 503, nothing counted (logged once until they commit again)");
                        } else {
                            tracing::debug!(batch = n, %error, "increment batch failed; nothing counted");
                        }
                        (IncrementError::Unavailable, "failed")
                    }
                    StoreError::Ambiguous(_) => {
                        self.metrics.ambiguous.inc_by(n as u64);
                        tracing::error!(batch = n, %error, "increment batch outcome unknown; it may have been counted");
                        (IncrementError::Ambiguous, "ambiguous")
                    }
                };
                for taken in batch.drain(..) {
                    taken.reply.answer(Reply {
                        outcome: Err(outcome.clone()),
                        batch: link(taken.traced),
                    });
                }
                drop(in_batch);
                if let Some(trace) = trace {
                    trace.end(label);
                }
            }
        }
    }
}
