//! Where the counter lives. One small trait, two implementations: PostgreSQL in production, an
//! embedded SQLite file locally. The batcher and the read cache only see [`CounterStore`].
//!
//! Both keep the original system's schema: `request_counter_state(id INTEGER PRIMARY KEY,
//! value BIGINT NOT NULL)` with the counter in row `id = 1`, so the origin can take over a
//! database the original filled. The schema is created on first use, idempotently.

mod embedded;
mod keyed_batch;
mod postgres;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

pub use embedded::EmbeddedStore;
pub use keyed_batch::KeyedBatch;
pub use postgres::PostgresStore;

use crate::config::StoreConfig;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The counter row in the original schema.
pub const COUNTER_ID: i32 = 1;

pub trait CounterStore: Send + Sync + 'static {
    /// Adds `n` (≥ 1) in one statement and returns the value after it committed.
    fn add(&self, n: i64) -> BoxFuture<'_, Result<i64, StoreError>>;
    /// For a batch where some callers sent an `Idempotency-Key`: in ONE transaction, adds one for
    /// every entry that has no key or a key not committed before, and stores the new keys with
    /// their values. Returns each entry's value (a known key gets its first answer again).
    fn add_keyed(
        &self,
        entries: Vec<Option<String>>,
    ) -> BoxFuture<'_, Result<KeyedAdd, StoreError>>;
    /// Forgets keys committed more than `retention` ago; returns how many.
    fn prune_keys(&self, retention: Duration) -> BoxFuture<'_, Result<u64, StoreError>>;
    /// The committed value.
    fn get(&self) -> BoxFuture<'_, Result<i64, StoreError>>;
    /// Proves the store answers and its schema is in place (readiness).
    fn ping(&self) -> BoxFuture<'_, Result<(), StoreError>>;
    /// The connection pool's state, read at each scrape; `None`: the store has no pool.
    fn pool_usage(&self) -> Option<crate::telemetry::metrics::PoolUsage> {
        None
    }
    /// Commits a write that changes no count, to learn whether writes work again after they
    /// failed (readiness). In PostgreSQL `value = value + 0` writes a new row version.
    fn probe_write(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        let add = self.add(0);
        Box::pin(async move { add.await.map(drop) })
    }
}

/// What a keyed batch did: each entry's value, and how many entries counted (the others were
/// retries of keys already committed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyedAdd {
    pub values: Vec<i64>,
    pub counted: u64,
}

/// A store call that failed. The distinction decides what a caller may be told.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// Certainly not applied: no connection, statement refused, cancelled or timed out server-side.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// Maybe applied: the connection was lost (or the client gave up) after the statement was sent.
    #[error("store outcome unknown: {0}")]
    Ambiguous(String),
}

/// Opens the configured store. Never waits for a database server: PostgreSQL connections are made
/// on demand, so the origin starts (unready) while the database is down.
pub fn open(
    config: &StoreConfig,
    statement_timeout: Duration,
) -> Result<Arc<dyn CounterStore>, OpenError> {
    Ok(match config {
        StoreConfig::Embedded { data_dir } => Arc::new(EmbeddedStore::open(data_dir)?),
        StoreConfig::Postgres(pg) => Arc::new(PostgresStore::new(pg, statement_timeout)?),
    })
}

/// An error with its causes, `outer: inner: root`, for logs (the useful part, e.g. "invalid
/// peer certificate: UnknownIssuer", is usually the root).
pub(crate) fn describe(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// A store that cannot be set up at all (a configuration problem, not an outage).
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("embedded store at {path}: {source}")]
    Embedded {
        path: String,
        source: rusqlite::Error,
    },
    #[error("embedded store {path} is missing but its -wal/-shm files remain")]
    OrphanedJournal { path: String },
    #[error("embedded store directory {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error("DATABASE_URL: {0}")]
    Url(tokio_postgres::Error),
    #[error("DATABASE_CA_FILE {path}: {reason}")]
    CaFile { path: String, reason: String },
    #[error("database pool: {0}")]
    Pool(String),
}
