//! A fresh PostgreSQL database per test, case or benchmark, created through the admin URL the
//! test scripts export (`TEST_DATABASE_URL`: a superuser on the throwaway server of
//! `scripts/lib/postgres.sh`, or any server where that user may `CREATE DATABASE`), and the
//! committed counter read behind the origin's back.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::Error;

/// The variable the test scripts export.
pub const ADMIN_URL_VAR: &str = "TEST_DATABASE_URL";

/// The test PostgreSQL server, reached through its admin URL.
#[derive(Clone, Debug)]
pub struct Database {
    pub admin_url: String,
}

impl Database {
    /// The server named by `TEST_DATABASE_URL`.
    pub fn from_env() -> Result<Self, Error> {
        std::env::var(ADMIN_URL_VAR)
            .map(|admin_url| Self { admin_url })
            .map_err(|_| {
                Error::Setup(format!(
                    "{ADMIN_URL_VAR} is not set: run the tests through scripts/test.sh (it starts a \
                     throwaway PostgreSQL), or point {ADMIN_URL_VAR} at a server where this user \
                     may CREATE DATABASE"
                ))
            })
    }

    /// Creates an empty database and returns its URL. `label` (letters, digits, `-`, `_`) starts
    /// the name; the process id, a per-process sequence and the clock's nanoseconds make it unique
    /// on a server that outlives this run.
    pub async fn fresh(&self, label: &str) -> Result<String, Error> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let name = database_name(
            label,
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos()),
        );
        let admin = connect(&self.admin_url).await?;
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .map_err(|e| Error::postgres(format!("CREATE DATABASE {name}"), e))?;
        Ok(with_database(&self.admin_url, &name))
    }
}

/// A plain (non-pooled) session for the test itself; its connection task runs on the caller's
/// runtime.
pub async fn connect(url: &str) -> Result<tokio_postgres::Client, Error> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .map_err(|e| Error::postgres("cannot connect to the test PostgreSQL", e))?;
    tokio::spawn(connection);
    Ok(client)
}

/// The committed value of the counter row, read directly.
pub async fn counter_value(url: &str) -> Result<i64, Error> {
    let client = connect(url).await?;
    let row = client
        .query_one("SELECT value FROM request_counter_state WHERE id = 1", &[])
        .await
        .map_err(|e| Error::postgres("reading the committed counter", e))?;
    Ok(row.get(0))
}

/// Replaces the database name in a `postgres://…/name?…` URL.
pub fn with_database(url: &str, database: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let slash = base.rfind('/').unwrap_or(base.len());
    let mut out = format!("{}/{database}", &base[..slash]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

/// PostgreSQL folds unquoted names to lower case and cuts them at 63 bytes: keep within both.
fn database_name(label: &str, pid: u32, sequence: u64, nanos: u32) -> String {
    let label: String = label
        .chars()
        .map(|c| match c {
            'a'..='z' | '0'..='9' => c,
            'A'..='Z' => c.to_ascii_lowercase(),
            _ => '_',
        })
        .take(20)
        .collect();
    format!("{label}_{pid}_{sequence}_{nanos}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_database_name_and_keeps_the_query() {
        assert_eq!(
            with_database("postgres://u@127.0.0.1:5/postgres?sslmode=disable", "x"),
            "postgres://u@127.0.0.1:5/x?sslmode=disable"
        );
        assert_eq!(with_database("postgres://u@h/db", "y"), "postgres://u@h/y");
    }

    #[test]
    fn names_are_plain_identifiers_within_the_limit() {
        assert_eq!(
            database_name("chaos-Origin-kill", 12, 3, 999),
            "chaos_origin_kill_12_3_999"
        );
        let longest = database_name(&"x".repeat(80), u32::MAX, u64::MAX, 999_999_999);
        assert!(longest.len() <= 63, "{} bytes", longest.len());
    }
}
