//! The read path: the latest value kept in memory for `READ_CACHE_TTL_MS`. Concurrent misses
//! share one store query (moka's single-flight `try_get_with`), and every committed batch
//! refreshes the value, so a read here is never older than the writes this process made.
//!
//! Values only grow, so the answer is the maximum of what was loaded and what was committed:
//! a slow load that finishes after a newer commit cannot make the counter go backwards.
//!
//! A hit is the hottest path in the service (every edge refresh of every pod): while the value is
//! fresh it is answered from two atomics, without a moka lookup (whose bookkeeping every core
//! shares); moka holds the value and makes concurrent misses share one load.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::future::Cache;

use crate::clock;
use crate::store::{CounterStore, StoreError};
use crate::telemetry::metrics::{Metrics, StoreOp};

pub struct ReadCache {
    /// `None` when the TTL is 0: every read goes to the store.
    cache: Option<Cache<(), i64>>,
    store: Arc<dyn CounterStore>,
    highest: AtomicI64,
    /// [`clock::now_ms`] until which `highest` may be served without asking moka.
    fresh_until_ms: AtomicU64,
    ttl: Duration,
    metrics: Arc<Metrics>,
}

impl ReadCache {
    pub fn new(store: Arc<dyn CounterStore>, ttl: Duration, metrics: Arc<Metrics>) -> Self {
        let cache =
            (!ttl.is_zero()).then(|| Cache::builder().max_capacity(1).time_to_live(ttl).build());
        Self {
            cache,
            store,
            highest: AtomicI64::new(i64::MIN),
            fresh_until_ms: AtomicU64::new(0),
            ttl,
            metrics,
        }
    }

    /// The current value, from memory when fresh.
    pub async fn get(&self) -> Result<i64, StoreError> {
        let Some(cache) = &self.cache else {
            self.metrics.cache_misses.inc();
            let value = self.load().await?;
            return Ok(self.observe(value));
        };
        if self.now_ms() < self.fresh_until_ms.load(Ordering::Acquire) {
            self.metrics.cache_hits.inc();
            return Ok(self.highest.load(Ordering::Relaxed));
        }
        self.metrics.cache_misses.inc();
        let value = cache
            .try_get_with((), async {
                let value = self.load().await?;
                // The value first, then the window that lets reads take it without moka: the
                // other order let a concurrent read serve the value before it (i64::MIN at start).
                self.observe(value);
                self.refresh_window();
                Ok(value)
            })
            .await
            .map_err(|shared: Arc<StoreError>| (*shared).clone())?;
        Ok(self.observe(value))
    }

    /// A batch committed `value`: serve it from now on.
    pub async fn observe_committed(&self, value: i64) {
        let value = self.observe(value);
        if let Some(cache) = &self.cache {
            cache.insert((), value).await;
            self.refresh_window();
        }
    }

    /// A value was just loaded or committed: serve it from memory for one TTL.
    fn refresh_window(&self) {
        let until = self.now_ms() + self.ttl.as_millis() as u64;
        self.fresh_until_ms.fetch_max(until, Ordering::Release);
    }

    fn now_ms(&self) -> u64 {
        clock::now_ms()
    }

    fn observe(&self, value: i64) -> i64 {
        let highest = self.highest.fetch_max(value, Ordering::Relaxed).max(value);
        self.metrics.counter_value.set(highest);
        highest
    }

    async fn load(&self) -> Result<i64, StoreError> {
        let started = Instant::now();
        let result = self.store.get().await;
        self.metrics.observe_store(StoreOp::Get, started.elapsed());
        result
    }
}
