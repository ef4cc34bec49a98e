//! The embedded default: one SQLite file in WAL mode with `synchronous = FULL`, so a `200` means
//! the increment is on disk and `cargo run` on a fresh machine keeps the count across restarts.
//!
//! SQLite calls block, so each runs on tokio's blocking pool; the mutex serialises them, which
//! matches SQLite's single writer anyway.
//!
//! Two faults a file store meets that a server does not, and how each is kept from turning into a
//! `200` for an increment that was not stored (docs/design.md §4):
//! - **A commit that fails** (disk full, I/O error). Every write runs in an explicit transaction
//!   whose `COMMIT` result is checked: an autocommit `UPDATE … RETURNING` hands back its row on
//!   the first step and commits only when the statement is reset, where rusqlite drops the error.
//!   A failed `COMMIT` is `Unavailable` when SQLite cannot have written the commit frame (disk
//!   full, busy, read-only) and `Ambiguous` otherwise (an `fsync` error: the frame may be in the
//!   WAL); after an ambiguous one the connection is reopened, so what it serves is what is on disk.
//! - **Its files deleted or replaced while running.** An open file keeps working after it is
//!   unlinked, and everything written to it vanishes at the next start. Before every call the
//!   store checks that the database, `-wal` and `-shm` paths still name the files it opened; if
//!   not, it refuses every call from then on (writes `503`, readiness fails) and says so once.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OptionalExtension, TransactionBehavior};

use super::statements::sqlite::{ADD, GET, PROBE_WRITE, PRUNE, STORED_KEY, STORE_KEY};
use super::{BoxFuture, CounterStore, KeyedAdd, KeyedBatch, OpenError, StoreError, COUNTER_ID};

pub const FILE_NAME: &str = "counter.sqlite3";

pub struct EmbeddedStore {
    state: Arc<Mutex<State>>,
}

struct State {
    path: PathBuf,
    connection: Connection,
    /// The files this process opened; the store refuses to go on once a path names another file.
    opened: Vec<FileId>,
    /// Set after an ambiguous commit: reopen before the next call.
    reopen: bool,
    /// Why the store stopped serving for good (its files were removed or replaced).
    broken: Option<String>,
}

/// A file's identity: the same path may later name another file (or none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileId {
    dev: u64,
    ino: u64,
}

/// The paths whose files the store must keep: the database and SQLite's WAL companions.
fn companion_paths(path: &Path) -> [PathBuf; 3] {
    let with = |suffix: &str| {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        PathBuf::from(name)
    };
    [path.to_path_buf(), with("-wal"), with("-shm")]
}

fn file_ids(path: &Path) -> std::io::Result<Vec<FileId>> {
    companion_paths(path)
        .iter()
        .map(|p| {
            std::fs::metadata(p).map(|m| FileId {
                dev: m.dev(),
                ino: m.ino(),
            })
        })
        .collect()
}

fn connect(path: &Path) -> rusqlite::Result<Connection> {
    let connection = Connection::open(path)?;
    connection.execute_batch(
        "PRAGMA auto_vacuum = INCREMENTAL;
         PRAGMA journal_mode = WAL;
         PRAGMA synchronous = FULL;
         PRAGMA busy_timeout = 5000;",
    )?;
    Ok(connection)
}

impl EmbeddedStore {
    /// Opens (or creates) the file and brings its schema to this build's version, or with
    /// `migrate` false only checks that it is there.
    pub fn open(data_dir: &Path, migrate: bool) -> Result<Self, OpenError> {
        std::fs::create_dir_all(data_dir).map_err(|source| OpenError::DataDir {
            path: data_dir.display().to_string(),
            source,
        })?;
        let path = data_dir.join(FILE_NAME);
        // A journal without its database: the file was deleted (or moved) under a running
        // process. A new file here would count from 0 again, handing out values twice.
        let [_, wal, shm] = companion_paths(&path);
        if !path.exists() && (wal.exists() || shm.exists()) {
            return Err(OpenError::OrphanedJournal {
                path: path.display().to_string(),
            });
        }
        let failed = |source| OpenError::Embedded {
            path: path.display().to_string(),
            source,
        };
        let connection = connect(&path).map_err(failed)?;
        super::schema::sqlite::prepare(&connection, migrate).map_err(|source| {
            OpenError::Schema {
                path: path.display().to_string(),
                source,
            }
        })?;
        // A file made before auto_vacuum was set keeps its mode until VACUUM rewrites it (once).
        let auto_vacuum: i64 = connection
            .query_row("PRAGMA auto_vacuum", [], |row| row.get(0))
            .map_err(failed)?;
        if auto_vacuum != 2 {
            connection.execute_batch("VACUUM").map_err(failed)?;
        }
        let opened = file_ids(&path).map_err(|source| OpenError::DataDir {
            path: path.display().to_string(),
            source,
        })?;
        Ok(Self {
            state: Arc::new(Mutex::new(State {
                path,
                connection,
                opened,
                reopen: false,
                broken: None,
            })),
        })
    }

    fn run<T: Send + 'static>(
        &self,
        call: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> BoxFuture<'_, Result<T, StoreError>> {
        let state = Arc::clone(&self.state);
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                let mut state = state
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                state.usable()?;
                let result = call(&mut state.connection);
                if matches!(result, Err(StoreError::Ambiguous(_))) {
                    state.reopen = true;
                }
                result
            })
            .await
            .map_err(|e| StoreError::Unavailable(format!("embedded store task: {e}")))?
        })
    }
}

impl State {
    /// Refuses the call when the files are not the ones opened; reopens after an ambiguous commit.
    fn usable(&mut self) -> Result<(), StoreError> {
        if let Some(reason) = &self.broken {
            return Err(StoreError::Unavailable(reason.clone()));
        }
        let now = file_ids(&self.path);
        if now.as_ref().ok() != Some(&self.opened) {
            let reason = format!(
                "embedded store file {} (or its -wal/-shm) was deleted or replaced while in use; \
                 refusing every call until the process restarts (what it holds is not what is on disk)",
                self.path.display()
            );
            tracing::error!(path = %self.path.display(), "{reason}");
            self.broken = Some(reason.clone());
            return Err(StoreError::Unavailable(reason));
        }
        if self.reopen {
            self.connection = connect(&self.path).map_err(unavailable)?;
            self.reopen = false;
        }
        Ok(())
    }
}

/// A failure before `COMMIT`: SQLite applies a transaction whole or not at all.
fn unavailable(error: rusqlite::Error) -> StoreError {
    StoreError::Unavailable(format!("embedded store: {error}"))
}

/// A failed `COMMIT`. Disk full, busy and read-only mean SQLite could not write the commit frame;
/// anything else (an I/O error on `fsync`) may have left it in the WAL.
fn commit_failed(error: rusqlite::Error) -> StoreError {
    match error.sqlite_error_code() {
        Some(ErrorCode::DiskFull | ErrorCode::DatabaseBusy | ErrorCode::ReadOnly) => {
            StoreError::Unavailable(format!("embedded store commit: {error}"))
        }
        _ => StoreError::Ambiguous(format!("embedded store commit: {error}")),
    }
}

impl CounterStore for EmbeddedStore {
    fn add(&self, n: i64) -> BoxFuture<'_, Result<i64, StoreError>> {
        self.run(move |c| {
            let transaction = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(unavailable)?;
            let after = transaction
                .prepare_cached(ADD)
                .and_then(|mut add| add.query_row((n, COUNTER_ID), |row| row.get(0)))
                .map_err(unavailable)?;
            transaction.commit().map_err(commit_failed)?;
            Ok(after)
        })
    }

    fn add_keyed(
        &self,
        entries: Vec<Option<String>>,
    ) -> BoxFuture<'_, Result<KeyedAdd, StoreError>> {
        self.run(move |c| {
            // IMMEDIATE takes the write lock up front: the lookup and the increment see one state.
            let transaction = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(unavailable)?;
            let planned = (|| {
                let mut stored = HashMap::new();
                let mut lookup = transaction.prepare_cached(STORED_KEY)?;
                for key in KeyedBatch::distinct_keys(&entries) {
                    if let Some(value) = lookup
                        .query_row([&key], |row| row.get::<_, i64>(0))
                        .optional()?
                    {
                        stored.insert(key, value);
                    }
                }
                let batch = KeyedBatch::plan(&entries, &stored);
                let after: i64 = transaction
                    .prepare_cached(ADD)?
                    .query_row((batch.new_count(), COUNTER_ID), |row| row.get(0))?;
                let mut insert = transaction.prepare_cached(STORE_KEY)?;
                for (key, value) in batch.keys_to_store(after) {
                    insert.execute((key, value))?;
                }
                Ok(KeyedAdd {
                    values: batch.values(after),
                    counted: batch.new_count() as u64,
                })
            })()
            .map_err(unavailable)?;
            transaction.commit().map_err(commit_failed)?;
            Ok(planned)
        })
    }

    fn prune_keys(&self, retention: Duration) -> BoxFuture<'_, Result<u64, StoreError>> {
        let seconds = retention.as_secs() as i64;
        self.run(move |c| {
            let pruned = c
                .prepare_cached(PRUNE)
                .and_then(|mut delete| delete.execute([seconds]))
                .map_err(unavailable)?;
            if pruned > 0 {
                // Hand the freed pages back to the file system (auto_vacuum = INCREMENTAL).
                c.prepare("PRAGMA incremental_vacuum")
                    .and_then(|mut vacuum| {
                        let mut rows = vacuum.query([])?;
                        while rows.next()?.is_some() {}
                        Ok(())
                    })
                    .map_err(unavailable)?;
            }
            Ok(pruned as u64)
        })
    }

    fn get(&self) -> BoxFuture<'_, Result<i64, StoreError>> {
        self.run(|c| {
            c.prepare_cached(GET)
                .and_then(|mut get| get.query_row([COUNTER_ID], |row| row.get(0)))
                .map_err(unavailable)
        })
    }

    fn ping(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        let get = self.get();
        Box::pin(async move { get.await.map(drop) })
    }

    /// SQLite writes no page for an `UPDATE` that leaves a row as it was, so `add(0)` would
    /// commit on a full disk. Inserting and deleting a key no client can send (keys are visible
    /// ASCII, this one has spaces) dirties pages, and the commit has to reach the WAL.
    fn probe_write(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        self.run(|c| {
            let transaction = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(unavailable)?;
            transaction
                .execute_batch(PROBE_WRITE)
                .map_err(unavailable)?;
            transaction.commit().map_err(commit_failed)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, EmbeddedStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path(), true).unwrap();
        (dir, store)
    }

    #[tokio::test]
    async fn a_deleted_file_stops_every_call() {
        let (dir, store) = store();
        assert_eq!(store.add(2).await.unwrap(), 2);
        std::fs::remove_file(dir.path().join(FILE_NAME)).unwrap();
        assert!(matches!(
            store.add(1).await,
            Err(StoreError::Unavailable(_))
        ));
        assert!(store.ping().await.is_err());
        // For good: a new file at the same path is not the one this process holds.
        drop(std::fs::File::create(dir.path().join(FILE_NAME)).unwrap());
        assert!(store.get().await.is_err());
    }

    #[tokio::test]
    async fn a_deleted_wal_stops_writes() {
        let (dir, store) = store();
        store.add(1).await.unwrap();
        std::fs::remove_file(dir.path().join(format!("{FILE_NAME}-wal"))).unwrap();
        assert!(matches!(
            store.add(1).await,
            Err(StoreError::Unavailable(_))
        ));
    }

    #[test]
    fn a_journal_without_its_database_refuses_to_start_from_zero() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = EmbeddedStore::open(dir.path(), true).unwrap();
            // Keep the files as a killed process leaves them: the connection is never closed.
            std::mem::forget(store);
        }
        std::fs::remove_file(dir.path().join(FILE_NAME)).unwrap();
        assert!(matches!(
            EmbeddedStore::open(dir.path(), true),
            Err(OpenError::OrphanedJournal { .. })
        ));
    }

    #[tokio::test]
    async fn new_files_vacuum_incrementally() {
        let (_dir, store) = store();
        let mode = store.run(|c| {
            c.query_row("PRAGMA auto_vacuum", [], |row| row.get::<_, i64>(0))
                .map_err(unavailable)
        });
        assert_eq!(mode.await.unwrap(), 2);
    }

    #[tokio::test]
    async fn an_old_file_is_converted_to_incremental_vacuum() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        {
            let old = Connection::open(&path).unwrap();
            old.execute_batch(
                "CREATE TABLE request_counter_state (id INTEGER PRIMARY KEY, value BIGINT NOT NULL);
                 INSERT INTO request_counter_state VALUES (1, 41);",
            )
            .unwrap();
        }
        let store = EmbeddedStore::open(dir.path(), true).unwrap();
        assert_eq!(
            store.add(1).await.unwrap(),
            42,
            "the count survives the conversion"
        );
        let mode = store.run(|c| {
            c.query_row("PRAGMA auto_vacuum", [], |row| row.get::<_, i64>(0))
                .map_err(unavailable)
        });
        assert_eq!(mode.await.unwrap(), 2);
    }
}
