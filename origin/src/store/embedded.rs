//! The embedded default: one SQLite file in WAL mode with `synchronous = FULL`, so a `200` means
//! the increment is on disk and `cargo run` on a fresh machine keeps the count across restarts.
//!
//! SQLite calls block, so each runs on tokio's blocking pool; the mutex serialises them, which
//! matches SQLite's single writer anyway.

use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::Connection;

use super::{BoxFuture, CounterStore, OpenError, StoreError, COUNTER_ID};

pub struct EmbeddedStore {
    connection: Arc<Mutex<Connection>>,
}

pub const FILE_NAME: &str = "counter.sqlite3";

impl EmbeddedStore {
    pub fn open(data_dir: &Path) -> Result<Self, OpenError> {
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
            .execute_batch(&format!(
                "PRAGMA journal_mode = WAL;
                 PRAGMA synchronous = FULL;
                 PRAGMA busy_timeout = 5000;
                 CREATE TABLE IF NOT EXISTS request_counter_state (id INTEGER PRIMARY KEY, value BIGINT NOT NULL);
                 INSERT INTO request_counter_state (id, value) VALUES ({COUNTER_ID}, 0) ON CONFLICT (id) DO NOTHING;"
            ))
            .map_err(failed)?;
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
