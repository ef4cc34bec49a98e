//! The embedded default: one SQLite file in WAL mode with `synchronous = FULL`, so a `200` means
//! the increment is on disk and `cargo run` on a fresh machine keeps the count across restarts.
//!
//! SQLite calls block, so each runs on tokio's blocking pool; the mutex serialises them, which
//! matches SQLite's single writer anyway.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension};

use super::{BoxFuture, CounterStore, KeyedAdd, KeyedBatch, OpenError, StoreError, COUNTER_ID};

pub struct EmbeddedStore {
    connection: Arc<Mutex<Connection>>,
}

pub const FILE_NAME: &str = "counter.sqlite3";

impl EmbeddedStore {
    /// Opens (or creates) the file and brings its schema to this build's version, or with
    /// `migrate` false only checks that it is there.
    pub fn open(data_dir: &Path, migrate: bool) -> Result<Self, OpenError> {
        std::fs::create_dir_all(data_dir).map_err(|source| OpenError::DataDir {
            path: data_dir.display().to_string(),
            source,
        })?;
        let path = data_dir.join(FILE_NAME);
        let failed = |source| OpenError::Embedded {
            path: path.display().to_string(),
            source,
        };
        let connection = Connection::open(&path).map_err(failed)?;
        connection
            .execute_batch(
                "PRAGMA journal_mode = WAL;
                 PRAGMA synchronous = FULL;
                 PRAGMA busy_timeout = 5000;",
            )
            .map_err(failed)?;
        super::schema::sqlite::prepare(&connection, migrate).map_err(|source| {
            OpenError::Schema {
                path: path.display().to_string(),
                source,
            }
        })?;
        Ok(Self {
            connection: Arc::new(Mutex::new(connection)),
        })
    }

    fn run<T: Send + 'static>(
        &self,
        call: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> BoxFuture<'_, Result<T, StoreError>> {
        let connection = Arc::clone(&self.connection);
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                let connection = connection
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                call(&connection)
            })
            .await
            .map_err(|e| StoreError::Unavailable(format!("embedded store task: {e}")))?
            // SQLite applies a statement atomically or not at all: a failure is never ambiguous.
            .map_err(|e| StoreError::Unavailable(format!("embedded store: {e}")))
        })
    }
}

impl CounterStore for EmbeddedStore {
    fn add(&self, n: i64) -> BoxFuture<'_, Result<i64, StoreError>> {
        self.run(move |c| {
            c.prepare_cached(
                "UPDATE request_counter_state SET value = value + ?1 WHERE id = ?2 RETURNING value",
            )?
            .query_row((n, COUNTER_ID), |row| row.get(0))
        })
    }

    fn add_keyed(
        &self,
        entries: Vec<Option<String>>,
    ) -> BoxFuture<'_, Result<KeyedAdd, StoreError>> {
        self.run(move |c| {
            // IMMEDIATE takes the write lock up front: the lookup and the increment see one state.
            let transaction = rusqlite::Transaction::new_unchecked(c, rusqlite::TransactionBehavior::Immediate)?;
            let mut stored = HashMap::new();
            {
                let mut lookup = transaction.prepare_cached("SELECT value FROM counter_idempotency_keys WHERE key = ?1")?;
                for key in KeyedBatch::distinct_keys(&entries) {
                    if let Some(value) = lookup.query_row([&key], |row| row.get::<_, i64>(0)).optional()? {
                        stored.insert(key, value);
                    }
                }
            }
            let batch = KeyedBatch::plan(&entries, &stored);
            let after: i64 = transaction
                .prepare_cached("UPDATE request_counter_state SET value = value + ?1 WHERE id = ?2 RETURNING value")?
                .query_row((batch.new_count(), COUNTER_ID), |row| row.get(0))?;
            {
                let mut insert = transaction.prepare_cached("INSERT INTO counter_idempotency_keys (key, value) VALUES (?1, ?2)")?;
                for (key, value) in batch.keys_to_store(after) {
                    insert.execute((key, value))?;
                }
            }
            transaction.commit()?;
            Ok(KeyedAdd { values: batch.values(after), counted: batch.new_count() as u64 })
        })
    }

    fn prune_keys(&self, retention: Duration) -> BoxFuture<'_, Result<u64, StoreError>> {
        let seconds = retention.as_secs() as i64;
        self.run(move |c| {
            c.prepare_cached(
                "DELETE FROM counter_idempotency_keys WHERE created_at < unixepoch() - ?1",
            )?
            .execute([seconds])
            .map(|n| n as u64)
        })
    }

    fn get(&self) -> BoxFuture<'_, Result<i64, StoreError>> {
        self.run(|c| {
            c.prepare_cached("SELECT value FROM request_counter_state WHERE id = ?1")?
                .query_row([COUNTER_ID], |row| row.get(0))
        })
    }

    fn ping(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        let get = self.get();
        Box::pin(async move { get.await.map(drop) })
    }
}
