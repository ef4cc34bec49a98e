//! PostgreSQL through a small `deadpool-postgres` pool: TLS by rustls (verified against a CA file
//! or the system roots), prepared statements, and `statement_timeout` set once per connection at
//! start-up so an increment costs one round trip (no pre-ping, no BEGIN/COMMIT: the single
//! `UPDATE … RETURNING` commits on its own).

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::error::SqlState;
use tokio_postgres::NoTls;

use super::{
    describe, BoxFuture, CounterStore, KeyedAdd, KeyedBatch, OpenError, StoreError, COUNTER_ID,
};
use crate::config::{PostgresConfig, TlsMode};
use crate::telemetry::metrics::PoolUsage;

const ADD_SQL: &str =
    "UPDATE request_counter_state SET value = value + $1 WHERE id = $2 RETURNING value";
const GET_SQL: &str = "SELECT value FROM request_counter_state WHERE id = $1";

/// Creating the table and its row under a transaction-scoped advisory lock: `CREATE TABLE IF NOT
/// EXISTS` alone races when many pods start at once (two sessions both try to create it).
const MIGRATION_SQL: &str = "BEGIN;
SELECT pg_advisory_xact_lock(7243012001);
CREATE TABLE IF NOT EXISTS request_counter_state (id INTEGER PRIMARY KEY, value BIGINT NOT NULL);
INSERT INTO request_counter_state (id, value) VALUES (1, 0) ON CONFLICT (id) DO NOTHING;
CREATE TABLE IF NOT EXISTS counter_idempotency_keys (
    key TEXT PRIMARY KEY,
    value BIGINT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS counter_idempotency_keys_created_at ON counter_idempotency_keys (created_at);
COMMIT;";

/// Taking the counter row's lock first serialises keyed batches across pods: once we hold it, a
/// key committed by anyone else is visible to our next statement (READ COMMITTED).
const LOCK_SQL: &str = "SELECT value FROM request_counter_state WHERE id = $1 FOR UPDATE";
const STORED_KEYS_SQL: &str = "SELECT key, value FROM counter_idempotency_keys WHERE key = ANY($1)";
const STORE_KEYS_SQL: &str =
    "INSERT INTO counter_idempotency_keys (key, value) SELECT * FROM unnest($1::text[], $2::bigint[])";
/// Pruning deletes in slices so it never holds many row locks or runs one long statement.
const PRUNE_SQL: &str = "DELETE FROM counter_idempotency_keys WHERE key IN (
    SELECT key FROM counter_idempotency_keys WHERE created_at < now() - make_interval(secs => $1) LIMIT 5000)";

pub struct PostgresStore {
    pool: Pool,
    schema_ready: AtomicBool,
    /// Client-side bound on a call: the server's statement_timeout plus the time to hear about it.
    call_timeout: Duration,
}

impl PostgresStore {
    pub fn new(config: &PostgresConfig, statement_timeout: Duration) -> Result<Self, OpenError> {
        let mut pg = tokio_postgres::Config::from_str(&config.url).map_err(OpenError::Url)?;
        pg.application_name("counter-origin")
            .connect_timeout(config.connect_timeout)
            .options(format!(
                "-c statement_timeout={}",
                statement_timeout.as_millis()
            ))
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(30));
        let manager_config = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let manager = match config.tls {
            TlsMode::Disable => {
                pg.ssl_mode(tokio_postgres::config::SslMode::Disable);
                Manager::from_config(pg, NoTls, manager_config)
            }
            TlsMode::Require => {
                pg.ssl_mode(tokio_postgres::config::SslMode::Require);
                let tls = tokio_postgres_rustls::MakeRustlsConnect::new(tls_config(
                    config.ca_file.as_deref(),
                )?);
                Manager::from_config(pg, tls, manager_config)
            }
        };
        let pool = Pool::builder(manager)
            .max_size(config.pool_size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(config.connect_timeout))
            .create_timeout(Some(config.connect_timeout))
            .recycle_timeout(Some(config.connect_timeout))
            .build()
            .map_err(|e| OpenError::Pool(e.to_string()))?;
        Ok(Self {
            pool,
            schema_ready: AtomicBool::new(false),
            call_timeout: statement_timeout + Duration::from_secs(1),
        })
    }

    /// A pooled connection with the schema in place. Failing here means nothing was sent.
    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        let client = self
            .pool
            .get()
            .await
            .map_err(|e| StoreError::Unavailable(format!("connect: {}", describe(&e))))?;
        if !self.schema_ready.load(Ordering::Acquire) {
            if let Err(e) = client.batch_execute(MIGRATION_SQL).await {
                // The connection may be inside the failed transaction: never reuse it.
                drop(deadpool_postgres::Object::take(client));
                return Err(StoreError::Unavailable(format!("schema: {}", describe(&e))));
            }
            self.schema_ready.store(true, Ordering::Release);
        }
        Ok(client)
    }

    /// Runs one prepared statement returning one value, and says what a failure means.
    async fn query_value(
        &self,
        sql: &'static str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<i64, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(sql)
            .await
            .map_err(|e| StoreError::Unavailable(format!("prepare: {}", describe(&e))))?;
        match tokio::time::timeout(self.call_timeout, client.query_one(&statement, params)).await {
            Ok(Ok(row)) => row
                .try_get(0)
                .map_err(|e| StoreError::Unavailable(format!("decode: {e}"))),
            Ok(Err(e)) => Err(classify(&e)),
            Err(_) => {
                // The statement may still commit; never hand this connection out again.
                drop(deadpool_postgres::Object::take(client));
                Err(StoreError::Ambiguous(format!(
                    "no answer within {:?}",
                    self.call_timeout
                )))
            }
        }
    }
}

/// A database error response means the statement was rolled back (autocommit); anything else
/// after sending (connection closed, I/O) leaves the outcome unknown.
fn classify(e: &tokio_postgres::Error) -> StoreError {
    match e.as_db_error() {
        Some(db) if db.code() == &SqlState::QUERY_CANCELED => {
            StoreError::Unavailable(format!("statement timeout: {}", db.message()))
        }
        Some(db) => StoreError::Unavailable(format!("{}: {}", db.code().code(), db.message())),
        None if e.to_string().contains("unexpected number of rows") => {
            StoreError::Unavailable("counter row missing".into())
        }
        None => StoreError::Ambiguous(describe(e)),
    }
}

impl PostgresStore {
    async fn add_keyed_in_transaction(
        &self,
        client: &mut deadpool_postgres::Object,
        entries: &[Option<String>],
        committing: &std::sync::atomic::AtomicBool,
    ) -> Result<KeyedAdd, tokio_postgres::Error> {
        let transaction = client.transaction().await?;
        let locked: i64 = transaction
            .query_one(LOCK_SQL, &[&COUNTER_ID])
            .await?
            .get(0);
        let keys = KeyedBatch::distinct_keys(entries);
        let stored: HashMap<String, i64> = transaction
            .query(STORED_KEYS_SQL, &[&keys])
            .await?
            .iter()
            .map(|row| (row.get(0), row.get(1)))
            .collect();
        let batch = KeyedBatch::plan(entries, &stored);
        let after = if batch.new_count() > 0 {
            transaction
                .query_one(ADD_SQL, &[&batch.new_count(), &COUNTER_ID])
                .await?
                .get(0)
        } else {
            locked
        };
        let (new_keys, new_values): (Vec<String>, Vec<i64>) =
            batch.keys_to_store(after).into_iter().unzip();
        if !new_keys.is_empty() {
            transaction
                .execute(STORE_KEYS_SQL, &[&new_keys, &new_values])
                .await?;
        }
        committing.store(true, Ordering::Relaxed);
        transaction.commit().await?;
        Ok(KeyedAdd {
            values: batch.values(after),
            counted: batch.new_count() as u64,
        })
    }
}

impl CounterStore for PostgresStore {
    fn add(&self, n: i64) -> BoxFuture<'_, Result<i64, StoreError>> {
        Box::pin(async move { self.query_value(ADD_SQL, &[&n, &COUNTER_ID]).await })
    }

    fn add_keyed(
        &self,
        entries: Vec<Option<String>>,
    ) -> BoxFuture<'_, Result<KeyedAdd, StoreError>> {
        Box::pin(async move {
            let mut client = self.client().await?;
            // Before COMMIT is sent, any failure rolls the whole batch back; only a connection
            // lost during COMMIT leaves the outcome unknown.
            let committing = std::sync::atomic::AtomicBool::new(false);
            let work = self.add_keyed_in_transaction(&mut client, &entries, &committing);
            // Four statements and a commit, each bounded by statement_timeout on the server.
            match tokio::time::timeout(self.call_timeout * 2, work).await {
                Ok(Ok(values)) => Ok(values),
                Ok(Err(e)) if committing.load(Ordering::Relaxed) && e.as_db_error().is_none() => {
                    Err(StoreError::Ambiguous(describe(&e)))
                }
                Ok(Err(e)) => Err(match classify(&e) {
                    StoreError::Ambiguous(message) => StoreError::Unavailable(message),
                    certain => certain,
                }),
                Err(_) => {
                    let ambiguous = committing.load(Ordering::Relaxed);
                    drop(deadpool_postgres::Object::take(client));
                    let message = format!("no answer within {:?}", self.call_timeout * 2);
                    Err(if ambiguous {
                        StoreError::Ambiguous(message)
                    } else {
                        StoreError::Unavailable(message)
                    })
                }
            }
        })
    }

    fn prune_keys(&self, retention: Duration) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(async move {
            let client = self.client().await?;
            let seconds = retention.as_secs_f64();
            let mut pruned = 0;
            loop {
                let deleted = client
                    .execute(PRUNE_SQL, &[&seconds])
                    .await
                    .map_err(|e| classify(&e))?;
                pruned += deleted;
                if deleted < 5000 {
                    return Ok(pruned);
                }
            }
        })
    }

    fn get(&self) -> BoxFuture<'_, Result<i64, StoreError>> {
        // A failed read changes nothing: never ambiguous.
        Box::pin(async move {
            self.query_value(GET_SQL, &[&COUNTER_ID])
                .await
                .map_err(|e| match e {
                    StoreError::Ambiguous(m) => StoreError::Unavailable(m),
                    other => other,
                })
        })
    }

    fn ping(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move { self.get().await.map(drop) })
    }

    fn pool_usage(&self) -> Option<PoolUsage> {
        let status = self.pool.status();
        Some(PoolUsage {
            max: status.max_size,
            open: status.size,
            idle: status.available,
            waiting: status.waiting,
        })
    }
}

/// rustls with the CAs in `ca_file` (e.g. the RDS bundle), or the system roots when unset.
/// Chain and host name are always verified.
fn tls_config(ca_file: Option<&std::path::Path>) -> Result<rustls::ClientConfig, OpenError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;

    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let ca_error = |reason: String| OpenError::CaFile {
                path: path.display().to_string(),
                reason,
            };
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| ca_error(e.to_string()))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| ca_error(e.to_string()))?;
            if certs.is_empty() {
                return Err(ca_error("no PEM certificates in the file".into()));
            }
            for cert in certs {
                roots.add(cert).map_err(|e| ca_error(e.to_string()))?;
            }
        }
        None => {
            let native = rustls_native_certs::load_native_certs();
            for cert in native.certs {
                // A malformed system certificate must not stop the others from loading.
                let _ = roots.add(cert);
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| OpenError::Pool(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}
