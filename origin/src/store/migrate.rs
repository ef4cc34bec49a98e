//! `counter-origin migrate`: brings the schema to this build's version and sets up the
//! least-privilege application role, then exits. It runs apart from serving (a Kubernetes Job, an
//! Argo CD PreSync hook) with the master credentials, which the serving pods never see: fetched
//! from Secrets Manager at run time (`DATABASE_MASTER_SECRET_ARN`), so RDS may rotate them freely.

use std::fmt;
use std::time::Duration;

use super::statements::postgres::APP_PRIVILEGES;
use super::{describe, schema};
use crate::config::{secret_arn_region, Config, PostgresConfig, StoreConfig, TlsMode};

/// What a migration run did, for its one log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub schema: schema::Outcome,
    /// The role set up (PostgreSQL only).
    pub app_role: Option<String>,
    /// Whether the role was made a member of `rds_iam` (the server is RDS).
    pub rds_iam: bool,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.schema)?;
        if let Some(role) = &self.app_role {
            write!(f, "; role {role} granted the service's privileges")?;
            if self.rds_iam {
                write!(f, " and rds_iam (it signs in with IAM tokens)")?;
            }
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("DATABASE_URL: {0}")]
    Url(String),
    #[error("master secret {arn}: {reason}")]
    Secret { arn: String, reason: String },
    #[error("cannot connect to the database: {0}")]
    Connect(String),
    #[error(transparent)]
    Schema(#[from] schema::SchemaError),
    #[error("application role {role}: {reason}")]
    Role { role: String, reason: String },
    #[error(transparent)]
    Open(#[from] super::OpenError),
}

/// Runs the migration for the configured store.
pub async fn run(config: &Config) -> Result<Report, MigrateError> {
    match &config.store {
        StoreConfig::Embedded { data_dir, .. } => {
            let path = data_dir.join(super::embedded::FILE_NAME);
            let connection = std::fs::create_dir_all(data_dir)
                .map_err(|e| e.to_string())
                .and_then(|()| rusqlite::Connection::open(&path).map_err(|e| e.to_string()))
                .map_err(|e| MigrateError::Connect(format!("{}: {e}", path.display())))?;
            Ok(Report {
                schema: schema::sqlite::prepare(&connection, true)?,
                app_role: None,
                rds_iam: false,
            })
        }
        StoreConfig::Postgres(pg) => run_postgres(pg).await,
    }
}

/// Server-side bound on each migration statement and lock wait (`statement_timeout`,
/// `lock_timeout`): a migration here is a few small DDL statements, never a long rewrite.
const STATEMENT_TIMEOUT: Duration = Duration::from_secs(60);
/// Client-side bound on the whole run once connected: a server that stops answering mid-run ends
/// the Job with an error instead of hanging it.
const RUN_TIMEOUT: Duration = Duration::from_secs(300);

/// Roles are shared by every database of the server, but an advisory lock belongs to one
/// database: role set-up takes it in this one, which every PostgreSQL (and RDS) server has, so
/// two migrations of two databases never race to create the same role.
const LOCK_DATABASE: &str = "postgres";
const ROLE_LOCK: i64 = 7243012002;

async fn run_postgres(config: &PostgresConfig) -> Result<Report, MigrateError> {
    let mut pg = config
        .url
        .driver_config()
        .map_err(|e| MigrateError::Url(e.to_string()))?;
    pg.application_name("counter-origin migrate")
        .connect_timeout(config.connect_timeout)
        .options(format!(
            "-c statement_timeout={ms} -c lock_timeout={ms}",
            ms = STATEMENT_TIMEOUT.as_millis()
        ));
    if let Some(arn) = &config.master_secret_arn {
        let master = master_credentials(arn).await?;
        pg.user(&master.username).password(master.password);
    }
    let client = connect(config, &pg).await?;
    let work = async {
        let outcome = schema::postgres::prepare(&client, true).await?;
        let mut lock_config = pg.clone();
        lock_config.dbname(LOCK_DATABASE);
        let lock = connect(config, &lock_config).await?;
        let role_failed = |reason: String| MigrateError::Role {
            role: config.app_role.clone(),
            reason,
        };
        // Held by this session until it ends (below, or when the process exits).
        lock.execute("SELECT pg_advisory_lock($1)", &[&ROLE_LOCK])
            .await
            .map_err(|e| {
                role_failed(format!(
                    "lock in database {LOCK_DATABASE}: {}",
                    describe(&e)
                ))
            })?;
        let rds_iam = app_role::set_up(&client, &config.app_role)
            .await
            .map_err(|e| role_failed(e.to_string()))?;
        drop(lock);
        Ok::<_, MigrateError>(Report {
            schema: outcome,
            app_role: Some(config.app_role.clone()),
            rds_iam,
        })
    };
    tokio::time::timeout(RUN_TIMEOUT, work)
        .await
        .map_err(|_| MigrateError::Connect(format!("no answer within {RUN_TIMEOUT:?}")))?
}

/// One session, connect + TLS + start-up all bounded by `DATABASE_CONNECT_TIMEOUT_MS` (the
/// driver's own timeout bounds only the TCP connect: a server that accepts and never answers
/// would hang the Job).
async fn connect(
    config: &PostgresConfig,
    pg: &tokio_postgres::Config,
) -> Result<tokio_postgres::Client, MigrateError> {
    let mut pg = pg.clone();
    let connecting = async {
        match config.tls {
            TlsMode::Disable => {
                pg.ssl_mode(tokio_postgres::config::SslMode::Disable);
                let (client, connection) = pg
                    .connect(tokio_postgres::NoTls)
                    .await
                    .map_err(|e| MigrateError::Connect(describe(&e)))?;
                tokio::spawn(connection);
                Ok(client)
            }
            TlsMode::Require => {
                pg.ssl_mode(tokio_postgres::config::SslMode::Require);
                let tls = tokio_postgres_rustls::MakeRustlsConnect::new(
                    super::postgres::tls_config(config.ca_file.as_deref())?,
                );
                let (client, connection) = pg
                    .connect(tls)
                    .await
                    .map_err(|e| MigrateError::Connect(describe(&e)))?;
                tokio::spawn(connection);
                Ok(client)
            }
        }
    };
    tokio::time::timeout(config.connect_timeout, connecting)
        .await
        .map_err(|_| {
            MigrateError::Connect(format!(
                "{}: no answer within {:?} (DATABASE_CONNECT_TIMEOUT_MS)",
                pg.get_dbname().unwrap_or("?"),
                config.connect_timeout
            ))
        })?
}

/// The master user's sign-in, from the RDS-managed secret (JSON with `username` and `password`).
struct MasterCredentials {
    username: String,
    password: String,
}

async fn master_credentials(arn: &str) -> Result<MasterCredentials, MigrateError> {
    let failed = |reason: String| MigrateError::Secret {
        arn: arn.to_string(),
        reason,
    };
    // config.rs checked the ARN's shape; its region is the secret's, whatever AWS_REGION says.
    let region = secret_arn_region(arn).ok_or_else(|| failed("not a secret ARN".into()))?;
    let sdk = super::aws::sdk_config(region).await;
    let answer = aws_sdk_secretsmanager::Client::new(&sdk)
        .get_secret_value()
        .secret_id(arn)
        .send()
        .await
        .map_err(|e| failed(describe(&e)))?;
    let text = answer
        .secret_string()
        .ok_or_else(|| failed("the secret has no string value".into()))?;
    // The error never quotes the secret's text: it holds the password.
    let json: serde_json::Value =
        serde_json::from_str(text).map_err(|_| failed("the secret is not JSON".into()))?;
    let field = |name: &str| {
        json.get(name)
            .and_then(|v| v.as_str())
            .map(str::to_string)
            .ok_or_else(|| failed(format!("the secret has no string \"{name}\"")))
    };
    Ok(MasterCredentials {
        username: field("username")?,
        password: field("password")?,
    })
}

pub mod app_role {
    //! The application role: may read and update the counter row, and read, insert and delete
    //! idempotency keys ([`APP_PRIVILEGES`]); owns nothing, creates nothing. On RDS it is a member of
    //! `rds_iam`, so it signs in with IAM tokens only and has no password at all.

    use tokio_postgres::Client;

    use super::APP_PRIVILEGES;
    use crate::store::describe;

    #[derive(Debug, thiserror::Error)]
    pub enum RoleError {
        #[error(
            "it exists with more than login rights (superuser, createdb, createrole, replication \
             or bypassrls): remove them by hand, the service must not hold them"
        )]
        TooPowerful,
        #[error(
            "it holds more than the service's privileges: {}; remove them by hand (REVOKE, \
             REASSIGN OWNED), the service must not hold them",
            .0.join("; ")
        )]
        Extra(Vec<String>),
        #[error("{0}")]
        Database(String),
    }

    impl From<tokio_postgres::Error> for RoleError {
        fn from(e: tokio_postgres::Error) -> Self {
            Self::Database(describe(&e))
        }
    }

    /// `"name"`: config.rs allows only `[a-z_][a-z0-9_]*`, so this is exact, not an escape.
    fn quoted(name: &str) -> String {
        format!("\"{}\"", name.replace('"', "\"\""))
    }

    /// Creates the role if missing, and grants it exactly [`APP_PRIVILEGES`] (revoking anything
    /// else it holds on this database's tables), in one transaction. Returns whether it was made
    /// a member of `rds_iam`. Refuses a pre-existing role with more powers than a login. The caller
    /// holds the cluster-wide role lock (see `ROLE_LOCK`).
    pub async fn set_up(client: &Client, role: &str) -> Result<bool, RoleError> {
        client.batch_execute("BEGIN").await?;
        let result = set_up_in_transaction(client, role).await;
        let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
        let ended = client.batch_execute(end).await;
        let rds_iam = result?;
        ended?;
        Ok(rds_iam)
    }

    async fn set_up_in_transaction(client: &Client, role: &str) -> Result<bool, RoleError> {
        let name = quoted(role);
        let existing = client
            .query_opt(
                "SELECT rolsuper OR rolcreatedb OR rolcreaterole OR rolreplication OR rolbypassrls \
                 FROM pg_roles WHERE rolname = $1",
                &[&role],
            )
            .await?;
        match existing {
            // NOLOGIN until granted: it can never sign in half set up (and the whole transaction
            // commits at once anyway).
            None => {
                client
                    .batch_execute(&format!("CREATE ROLE {name} NOLOGIN"))
                    .await?
            }
            Some(row) if row.get::<_, bool>(0) => return Err(RoleError::TooPowerful),
            Some(_) => {}
        }
        let database: String = client
            .query_one("SELECT current_database()", &[])
            .await?
            .get(0);
        let database = quoted(&database);
        // PUBLIC may create in the public schema before PostgreSQL 15, and make temporary tables in
        // any database: take both away, so the role can only do what is granted below.
        let mut sql = format!(
            "REVOKE CREATE ON SCHEMA public FROM PUBLIC;
             REVOKE TEMPORARY ON DATABASE {database} FROM PUBLIC;
             REVOKE ALL ON DATABASE {database} FROM {name};
             REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {name};
             REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {name};
             REVOKE ALL ON SCHEMA public FROM {name};
             GRANT CONNECT ON DATABASE {database} TO {name};
             GRANT USAGE ON SCHEMA public TO {name};\n"
        );
        for (table, privileges) in APP_PRIVILEGES {
            sql.push_str(&format!(
                "GRANT {} ON TABLE public.{} TO {name};\n",
                privileges.join(", "),
                quoted(table)
            ));
        }
        sql.push_str(&format!("ALTER ROLE {name} LOGIN;"));
        client.batch_execute(&sql).await?;
        let rds_iam = client
            .query_one("SELECT to_regrole('rds_iam') IS NOT NULL", &[])
            .await?
            .get::<_, bool>(0);
        if rds_iam {
            client
                .batch_execute(&format!("GRANT rds_iam TO {name}"))
                .await?;
        }
        let extra = extra_powers(client, role).await?;
        if !extra.is_empty() {
            return Err(RoleError::Extra(extra));
        }
        Ok(rds_iam)
    }

    /// Everything the role holds beyond what [`set_up_in_transaction`] grants: memberships other
    /// than `rds_iam`, anything it owns (in any database), and privileges on any table, column,
    /// schema, database or other object other than exactly [`APP_PRIVILEGES`], `USAGE` on `public`
    /// and `CONNECT` on this database. The revokes above cover only this database's `public`
    /// schema, so a role that was given more elsewhere would keep it: refuse rather than report
    /// "granted the service's privileges". `pg_shdepend` records owners and grantees cluster-wide.
    /// Another database may be migrated for the same role: there it may have `CONNECT` and
    /// privileges on as many tables and schemas as migrate grants (which privileges, only that
    /// database's catalogs say: its own migrate checks them).
    async fn extra_powers(client: &Client, role: &str) -> Result<Vec<String>, RoleError> {
        let (tables, privileges): (Vec<&str>, Vec<&str>) = APP_PRIVILEGES
            .iter()
            .flat_map(|(table, privileges)| privileges.iter().map(move |p| (*table, *p)))
            .unzip();
        // The service's tables and the public schema, if another database is migrated for the
        // same role.
        let other_database_objects = APP_PRIVILEGES.len() as i64 + 1;
        let rows = client
            .query(
                "WITH r AS (SELECT oid FROM pg_roles WHERE rolname = $1),
                      here AS (SELECT oid FROM pg_database WHERE datname = current_database())
                 SELECT 'member of ' || m.roleid::regrole::text
                   FROM pg_auth_members m, r
                  WHERE m.member = r.oid AND m.roleid IS DISTINCT FROM to_regrole('rds_iam')
                 UNION ALL
                 SELECT 'owns ' || pg_describe_object(d.classid, d.objid, d.objsubid)
                   FROM pg_shdepend d, r, here
                  WHERE d.refclassid = 'pg_authid'::regclass AND d.refobjid = r.oid
                    AND d.deptype = 'o' AND d.dbid IN (0, here.oid)
                 UNION ALL
                 SELECT format('owns %s object(s) in database %I', count(*), db.datname)
                   FROM pg_shdepend d JOIN pg_database db ON db.oid = d.dbid, r, here
                  WHERE d.refclassid = 'pg_authid'::regclass AND d.refobjid = r.oid
                    AND d.deptype = 'o' AND d.dbid <> here.oid
                  GROUP BY db.datname
                 UNION ALL
                 SELECT format('privileges on %s object(s) in database %I', count(*), db.datname)
                   FROM pg_shdepend d JOIN pg_database db ON db.oid = d.dbid, r, here
                  WHERE d.refclassid = 'pg_authid'::regclass AND d.refobjid = r.oid
                    AND d.deptype = 'a' AND d.dbid <> here.oid
                  GROUP BY db.datname
                 HAVING count(*) > $4
                     OR bool_or(d.classid NOT IN ('pg_class'::regclass, 'pg_namespace'::regclass))
                 UNION ALL
                 SELECT format('%s on %s', a.privilege_type, pg_describe_object('pg_class'::regclass, c.oid, 0))
                   FROM pg_class c, aclexplode(c.relacl) a, r
                  WHERE a.grantee = r.oid
                    AND (c.relnamespace <> 'public'::regnamespace
                         OR (c.relname::text, a.privilege_type) NOT IN
                            (SELECT * FROM unnest($2::text[], $3::text[])))
                 UNION ALL
                 SELECT format('%s on %s', a.privilege_type,
                               pg_describe_object('pg_class'::regclass, t.attrelid, t.attnum))
                   FROM pg_attribute t, aclexplode(t.attacl) a, r
                  WHERE a.grantee = r.oid
                 UNION ALL
                 SELECT format('%s on schema %I', a.privilege_type, n.nspname)
                   FROM pg_namespace n, aclexplode(n.nspacl) a, r
                  WHERE a.grantee = r.oid AND NOT (n.nspname = 'public' AND a.privilege_type = 'USAGE')
                 UNION ALL
                 SELECT format('%s on database %I', a.privilege_type, db.datname)
                   FROM pg_database db, aclexplode(db.datacl) a, r
                  WHERE a.grantee = r.oid
                    AND a.privilege_type <> 'CONNECT'
                 UNION ALL
                 SELECT 'privileges on ' || pg_describe_object(d.classid, d.objid, d.objsubid)
                   FROM pg_shdepend d, r, here
                  WHERE d.refclassid = 'pg_authid'::regclass AND d.refobjid = r.oid
                    AND d.deptype = 'a' AND d.dbid = here.oid
                    AND d.classid NOT IN ('pg_class'::regclass, 'pg_namespace'::regclass)
                 ORDER BY 1",
                &[&role, &tables, &privileges, &other_database_objects],
            )
            .await?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }
}
