//! The versioned schema. Migrations are SQL files per dialect in `origin/migrations/{postgres,sqlite}/`
//! (`NNNN_name.sql`, embedded at build time); the database records each applied version in
//! [`VERSION_TABLE`]. Both dialects carry the same versions, so they cannot drift apart silently.
//!
//! A process either brings the schema to its version (the `migrate` subcommand, or start-up with
//! `SCHEMA_MIGRATE_ON_START=true`) or only checks it. It never serves against a schema newer than
//! it knows: that database belongs to a later release, whose columns it may not honour.

use std::fmt;

/// Where the applied versions are recorded (one row per migration).
pub const VERSION_TABLE: &str = "counter_schema_migrations";

/// One migration file.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub version: u32,
    /// The file name without `.sql`, e.g. `0001_counter_and_idempotency_keys`.
    pub name: &'static str,
    pub sql: &'static str,
}

macro_rules! migrations {
    ($dialect:literal: $($version:literal => $name:literal),* $(,)?) => {
        &[$(Migration {
            version: $version,
            name: $name,
            sql: include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/", $dialect, "/", $name, ".sql")),
        }),*]
    };
}

/// Every migration of a dialect, in order. A file added to the folder but not here fails the tests.
pub const POSTGRES: &[Migration] =
    migrations!("postgres": 1 => "0001_counter_and_idempotency_keys");
pub const SQLITE: &[Migration] = migrations!("sqlite": 1 => "0001_counter_and_idempotency_keys");

/// The version a build brings its schema to (the same for both dialects, checked by the tests).
pub fn latest(migrations: &[Migration]) -> u32 {
    migrations.last().map_or(0, |m| m.version)
}

/// What a schema check or migration did: the version found and the version left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    pub from: u32,
    pub to: u32,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.from == self.to {
            write!(f, "schema at version {}", self.to)
        } else {
            write!(
                f,
                "schema migrated from version {} to {}",
                self.from, self.to
            )
        }
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum SchemaError {
    #[error(
        "the database schema is at version {found}, newer than this build knows ({known}): \
         refusing to serve it; deploy a release that knows version {found}"
    )]
    Newer { found: u32, known: u32 },
    #[error(
        "the database schema is at version {found}, this build needs version {needed}: run \
         `counter-origin migrate` (with SCHEMA_MIGRATE_ON_START=false the origin never changes the schema)"
    )]
    Behind { found: u32, needed: u32 },
    #[error("migration {name} failed: {reason}")]
    Migration { name: &'static str, reason: String },
    #[error("reading the schema version: {0}")]
    Database(String),
}

/// The migrations to run on a database at version `found`: none when it is current, all later
/// ones when `apply`, otherwise an error that says what to do.
pub fn pending(
    migrations: &'static [Migration],
    found: u32,
    apply: bool,
) -> Result<&'static [Migration], SchemaError> {
    let known = latest(migrations);
    if found > known {
        return Err(SchemaError::Newer { found, known });
    }
    if found == known {
        return Ok(&[]);
    }
    if !apply {
        return Err(SchemaError::Behind {
            found,
            needed: known,
        });
    }
    let first = migrations
        .iter()
        .position(|m| m.version > found)
        .unwrap_or(migrations.len());
    Ok(&migrations[first..])
}

pub mod postgres {
    //! PostgreSQL: one transaction under an advisory lock, so of many pods starting at once one
    //! migrates and the others wait, then find the schema current. DDL is transactional here: a
    //! failed migration leaves nothing behind.

    use tokio_postgres::Client;

    use super::{pending, Migration, Outcome, SchemaError, POSTGRES, VERSION_TABLE};
    use crate::store::describe;

    /// Serialises migrations across processes (the same key since before versioning).
    const LOCK_KEY: i64 = 7_243_012_001;

    fn version_table_sql() -> String {
        format!(
            "CREATE TABLE IF NOT EXISTS {VERSION_TABLE} (
                version INTEGER PRIMARY KEY,
                name TEXT NOT NULL,
                applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
        )
    }

    /// Brings the schema to this build's version (`apply`) or checks that it is there. Reads and
    /// locks without DDL when nothing is pending, so a role without CREATE may call it.
    pub async fn prepare(client: &Client, apply: bool) -> Result<Outcome, SchemaError> {
        let db = |e: tokio_postgres::Error| SchemaError::Database(describe(&e));
        client.batch_execute("BEGIN").await.map_err(db)?;
        let result = prepare_in_transaction(client, apply, POSTGRES).await;
        let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
        let ended = client.batch_execute(end).await.map_err(db);
        let outcome = result?;
        ended?;
        Ok(outcome)
    }

    async fn prepare_in_transaction(
        client: &Client,
        apply: bool,
        migrations: &'static [Migration],
    ) -> Result<Outcome, SchemaError> {
        let db = |e: tokio_postgres::Error| SchemaError::Database(describe(&e));
        if apply {
            client
                .execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_KEY])
                .await
                .map_err(db)?;
        }
        let found = version(client).await?;
        let todo = pending(migrations, found, apply)?;
        if todo.is_empty() {
            return Ok(Outcome {
                from: found,
                to: found,
            });
        }
        client
            .batch_execute(&version_table_sql())
            .await
            .map_err(db)?;
        let record = format!("INSERT INTO {VERSION_TABLE} (version, name) VALUES ($1, $2)");
        for migration in todo {
            let failed = |e: tokio_postgres::Error| SchemaError::Migration {
                name: migration.name,
                reason: describe(&e),
            };
            client.batch_execute(migration.sql).await.map_err(failed)?;
            client
                .execute(&record, &[&(migration.version as i32), &migration.name])
                .await
                .map_err(failed)?;
        }
        Ok(Outcome {
            from: found,
            to: todo.last().map_or(found, |m| m.version),
        })
    }

    /// The recorded version; 0 for a database that never saw a migration.
    pub async fn version(client: &Client) -> Result<u32, SchemaError> {
        let db = |e: tokio_postgres::Error| SchemaError::Database(describe(&e));
        let exists: bool = client
            .query_one("SELECT to_regclass($1) IS NOT NULL", &[&VERSION_TABLE])
            .await
            .map_err(db)?
            .get(0);
        if !exists {
            return Ok(0);
        }
        let version: i32 = client
            .query_one(
                &format!("SELECT coalesce(max(version), 0) FROM {VERSION_TABLE}"),
                &[],
            )
            .await
            .map_err(db)?
            .get(0);
        Ok(version as u32)
    }
}

pub mod sqlite {
    //! SQLite: one `BEGIN IMMEDIATE` transaction (the write lock up front, so two processes on one
    //! file cannot both migrate).

    use rusqlite::{Connection, OptionalExtension};

    use super::{pending, Migration, Outcome, SchemaError, SQLITE, VERSION_TABLE};

    /// Brings the schema to this build's version (`apply`) or checks that it is there.
    pub fn prepare(connection: &Connection, apply: bool) -> Result<Outcome, SchemaError> {
        prepare_with(connection, apply, SQLITE)
    }

    pub(crate) fn prepare_with(
        connection: &Connection,
        apply: bool,
        migrations: &'static [Migration],
    ) -> Result<Outcome, SchemaError> {
        let db = |e: rusqlite::Error| SchemaError::Database(e.to_string());
        connection.execute_batch("BEGIN IMMEDIATE").map_err(db)?;
        let result = (|| {
            let found = version(connection)?;
            let todo = pending(migrations, found, apply)?;
            if todo.is_empty() {
                return Ok(Outcome {
                    from: found,
                    to: found,
                });
            }
            connection
                .execute_batch(&format!(
                    "CREATE TABLE IF NOT EXISTS {VERSION_TABLE} (
                        version INTEGER PRIMARY KEY,
                        name TEXT NOT NULL,
                        applied_at INTEGER NOT NULL DEFAULT (unixepoch()))"
                ))
                .map_err(db)?;
            for migration in todo {
                let failed = |e: rusqlite::Error| SchemaError::Migration {
                    name: migration.name,
                    reason: e.to_string(),
                };
                connection.execute_batch(migration.sql).map_err(failed)?;
                connection
                    .execute(
                        &format!("INSERT INTO {VERSION_TABLE} (version, name) VALUES (?1, ?2)"),
                        (migration.version, migration.name),
                    )
                    .map_err(failed)?;
            }
            Ok(Outcome {
                from: found,
                to: todo.last().map_or(found, |m| m.version),
            })
        })();
        let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
        let ended = connection.execute_batch(end).map_err(db);
        let outcome = result?;
        ended?;
        Ok(outcome)
    }

    /// The recorded version; 0 for a file that never saw a migration.
    pub fn version(connection: &Connection) -> Result<u32, SchemaError> {
        let db = |e: rusqlite::Error| SchemaError::Database(e.to_string());
        let exists = connection
            .query_row(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1",
                [VERSION_TABLE],
                |_| Ok(()),
            )
            .optional()
            .map_err(db)?
            .is_some();
        if !exists {
            return Ok(0);
        }
        connection
            .query_row(
                &format!("SELECT coalesce(max(version), 0) FROM {VERSION_TABLE}"),
                [],
                |row| row.get(0),
            )
            .map_err(db)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The files in `origin/migrations/<dialect>/`, without `.sql`, sorted.
    fn files(dialect: &str) -> Vec<String> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("migrations")
            .join(dialect);
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .map(|name| {
                name.strip_suffix(".sql")
                    .unwrap_or_else(|| panic!("{dialect}/{name}: only .sql files belong here"))
                    .to_string()
            })
            .collect();
        names.sort();
        names
    }

    #[test]
    fn every_migration_file_is_embedded_in_order_and_both_dialects_match() {
        for (dialect, list) in [("postgres", POSTGRES), ("sqlite", SQLITE)] {
            let embedded: Vec<String> = list.iter().map(|m| m.name.to_string()).collect();
            assert_eq!(
                embedded,
                files(dialect),
                "schema::{} must list every file of migrations/{dialect}/",
                dialect.to_uppercase()
            );
            for (index, migration) in list.iter().enumerate() {
                assert_eq!(migration.version as usize, index + 1, "{}", migration.name);
                assert!(
                    migration
                        .name
                        .starts_with(&format!("{:04}_", migration.version)),
                    "{} must start with its version",
                    migration.name
                );
            }
        }
        assert_eq!(
            files("postgres"),
            files("sqlite"),
            "one migration per version in each dialect"
        );
    }

    #[test]
    fn pending_applies_what_is_missing_and_refuses_a_newer_schema() {
        let known = latest(POSTGRES);
        assert_eq!(pending(POSTGRES, 0, true).unwrap().len(), POSTGRES.len());
        assert!(pending(POSTGRES, known, false).unwrap().is_empty());
        assert!(matches!(
            pending(POSTGRES, 0, false),
            Err(SchemaError::Behind { found: 0, needed }) if needed == known
        ));
        let newer = pending(POSTGRES, known + 1, true).unwrap_err();
        assert!(matches!(newer, SchemaError::Newer { .. }));
        assert!(
            newer.to_string().contains("newer than this build knows"),
            "{newer}"
        );
    }

    #[test]
    fn sqlite_migrates_once_records_the_version_and_refuses_a_newer_file() {
        let connection = rusqlite::Connection::open_in_memory().unwrap();
        let known = latest(SQLITE);
        assert!(matches!(
            sqlite::prepare(&connection, false),
            Err(SchemaError::Behind { found: 0, .. })
        ));
        assert_eq!(
            sqlite::prepare(&connection, true).unwrap(),
            Outcome { from: 0, to: known }
        );
        assert_eq!(
            sqlite::prepare(&connection, false).unwrap(),
            Outcome {
                from: known,
                to: known
            }
        );
        let value: i64 = connection
            .query_row(
                "SELECT value FROM request_counter_state WHERE id = 1",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(value, 0);
        connection
            .execute(
                &format!(
                    "INSERT INTO {VERSION_TABLE} (version, name) VALUES (?1, 'from the future')"
                ),
                [known + 1],
            )
            .unwrap();
        assert!(matches!(
            sqlite::prepare(&connection, true),
            Err(SchemaError::Newer { found, known: k }) if found == known + 1 && k == known
        ));
    }

    #[test]
    fn sqlite_takes_over_a_file_made_before_versioning() {
        let connection = rusqlite::Connection::open_in_memory().unwrap();
        connection
            .execute_batch(
                "CREATE TABLE request_counter_state (id INTEGER PRIMARY KEY, value BIGINT NOT NULL);
                 INSERT INTO request_counter_state VALUES (1, 41);",
            )
            .unwrap();
        sqlite::prepare(&connection, true).unwrap();
        let value: i64 = connection
            .query_row(
                "SELECT value FROM request_counter_state WHERE id = 1",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(value, 41, "the count survives the baseline migration");
    }

    #[test]
    fn a_failed_sqlite_migration_leaves_nothing_behind() {
        static BROKEN: &[Migration] = &[
            Migration {
                version: 1,
                name: "0001_ok",
                sql: "CREATE TABLE a (x INTEGER);",
            },
            Migration {
                version: 2,
                name: "0002_broken",
                sql: "CREATE TABLE b (x INTEGER); NOT SQL",
            },
        ];
        let connection = rusqlite::Connection::open_in_memory().unwrap();
        let error = sqlite::prepare_with(&connection, true, BROKEN).unwrap_err();
        assert!(
            matches!(
                error,
                SchemaError::Migration {
                    name: "0002_broken",
                    ..
                }
            ),
            "{error}"
        );
        assert_eq!(sqlite::version(&connection).unwrap(), 0);
        let tables: i64 = connection
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(tables, 0, "the whole run rolled back");
    }
}
