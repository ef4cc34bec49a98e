//! The versioned schema and the least-privilege role: `migrate` creates the tables and grants the
//! role exactly what the service's statements need; the role owns nothing and may change no
//! schema; start-up never serves a schema it does not know, and with `SCHEMA_MIGRATE_ON_START=false`
//! never runs DDL but waits, unready, for `migrate`.

use std::collections::BTreeSet;

use counter_origin::store::schema::{self, VERSION_TABLE};
use hyper::StatusCode;

use crate::helpers::{app_role_name, fresh_database, migrate, pg_connect, spawn_app, Backend};

#[tokio::test]
async fn migrate_creates_the_schema_and_grants_the_role_exactly_the_services_privileges() {
    let admin_url = fresh_database().await;
    let role = app_role_name();
    let report = migrate(&admin_url, &role).await;
    let latest = schema::latest(schema::POSTGRES);
    assert_eq!((report.schema.from, report.schema.to), (0, latest));
    let admin = pg_connect(&admin_url).await;

    let grants: BTreeSet<(String, String)> = admin
        .query(
            "SELECT table_name::text, privilege_type::text FROM information_schema.role_table_grants \
             WHERE grantee = $1",
            &[&role],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    let expected: BTreeSet<(String, String)> = [
        ("request_counter_state", "SELECT"),
        ("request_counter_state", "UPDATE"),
        ("counter_idempotency_keys", "SELECT"),
        ("counter_idempotency_keys", "INSERT"),
        ("counter_idempotency_keys", "DELETE"),
        (VERSION_TABLE, "SELECT"),
    ]
    .iter()
    .map(|(t, p)| (t.to_string(), p.to_string()))
    .collect();
    assert_eq!(grants, expected);

    let row = admin
        .query_one(
            "SELECT rolcanlogin, rolsuper OR rolcreatedb OR rolcreaterole OR rolreplication OR rolbypassrls,
                    pg_has_role(rolname, 'rds_iam', 'MEMBER'),
                    (SELECT count(*) FROM pg_class WHERE relowner = r.oid)
                  + (SELECT count(*) FROM pg_namespace WHERE nspowner = r.oid)
                  + (SELECT count(*) FROM pg_proc WHERE proowner = r.oid)
                  + (SELECT count(*) FROM pg_type WHERE typowner = r.oid)
                  + (SELECT count(*) FROM pg_database WHERE datdba = r.oid),
                    has_database_privilege(rolname, current_database(), 'CREATE'),
                    has_database_privilege(rolname, current_database(), 'TEMPORARY'),
                    has_schema_privilege(rolname, 'public', 'CREATE')
             FROM pg_roles r WHERE rolname = $1",
            &[&role],
        )
        .await
        .unwrap();
    assert!(row.get::<_, bool>(0), "the role signs in");
    assert!(
        !row.get::<_, bool>(1),
        "no superuser, createdb, createrole, replication, bypassrls"
    );
    assert!(
        row.get::<_, bool>(2),
        "a member of rds_iam (the test server has that role, as RDS)"
    );
    assert_eq!(row.get::<_, i64>(3), 0, "the role owns nothing");
    assert!(!row.get::<_, bool>(4), "no CREATE on the database");
    assert!(!row.get::<_, bool>(5), "no temporary tables");
    assert!(!row.get::<_, bool>(6), "no CREATE in the public schema");

    // Running it again changes nothing and says so.
    let again = migrate(&admin_url, &role).await;
    assert_eq!((again.schema.from, again.schema.to), (latest, latest));
}

#[tokio::test]
async fn the_app_role_is_refused_create_alter_drop_and_truncate() {
    let admin_url = fresh_database().await;
    let role = app_role_name();
    migrate(&admin_url, &role).await;
    let session = pg_connect(&admin_url).await;
    // The superuser takes on exactly the role's privileges.
    session
        .batch_execute(&format!("SET ROLE {role}"))
        .await
        .unwrap();
    session
        .query_one("SELECT value FROM request_counter_state WHERE id = 1", &[])
        .await
        .expect("the role reads the counter");
    for statement in [
        "CREATE TABLE intruder (x INTEGER)",
        "CREATE TEMPORARY TABLE intruder (x INTEGER)",
        "CREATE INDEX intruder ON request_counter_state (value)",
        "ALTER TABLE request_counter_state ADD COLUMN intruder INTEGER",
        "ALTER TABLE counter_idempotency_keys DROP COLUMN created_at",
        "DROP TABLE counter_idempotency_keys",
        "DROP TABLE request_counter_state",
        "TRUNCATE request_counter_state",
        "TRUNCATE counter_idempotency_keys",
        "DELETE FROM request_counter_state",
        "INSERT INTO request_counter_state (id, value) VALUES (2, 0)",
        "UPDATE counter_schema_migrations SET version = 99",
        "CREATE SCHEMA intruder",
    ] {
        let error = session.batch_execute(statement).await.expect_err(statement);
        assert_eq!(
            error.code(),
            Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE),
            "{statement}: {error}"
        );
    }
}

#[tokio::test]
async fn without_migrate_on_start_the_origin_waits_unready_for_migrate_and_never_runs_ddl() {
    let app = spawn_app(Backend::Postgres, &[("SCHEMA_MIGRATE_ON_START", "false")]).await;
    let admin_url = app.database_url.clone().unwrap();
    let post = app.post_counter().await;
    assert_eq!(
        post.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        post.text()
    );
    let tables: i64 = pg_connect(&admin_url)
        .await
        .query_one(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(tables, 0, "the serving process created nothing");
    assert_eq!(
        app.get("/readyz").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );

    migrate(&admin_url, &app_role_name()).await;
    app.await_readiness(StatusCode::OK).await;
    assert_eq!(app.post_counter().await.value(), 1);
}

#[tokio::test]
async fn a_schema_newer_than_the_build_is_never_served() {
    let admin_url = fresh_database().await;
    migrate(&admin_url, &app_role_name()).await;
    let future = schema::latest(schema::POSTGRES) + 1;
    pg_connect(&admin_url)
        .await
        .execute(
            &format!(
                "INSERT INTO {VERSION_TABLE} (version, name) VALUES ($1, 'from a later release')"
            ),
            &[&(future as i32)],
        )
        .await
        .unwrap();
    for migrate_on_start in ["true", "false"] {
        let app = spawn_app(
            Backend::Postgres,
            &[
                ("DATABASE_URL", &admin_url),
                ("SCHEMA_MIGRATE_ON_START", migrate_on_start),
            ],
        )
        .await;
        let post = app.post_counter().await;
        assert_eq!(
            post.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{}",
            post.text()
        );
        assert_eq!(
            app.get("/readyz").await.status,
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
    // The reason, as the readiness checker logs it.
    let store = counter_origin::store::PostgresStore::new(
        &counter_origin::config::PostgresConfig::new(
            admin_url.clone(),
            counter_origin::config::TlsMode::Disable,
            None,
        ),
        std::time::Duration::from_secs(5),
    )
    .unwrap();
    use counter_origin::store::CounterStore;
    let error = store.ping().await.unwrap_err().to_string();
    assert!(
        error.contains(&format!("at version {future}, newer than this build knows")),
        "{error}"
    );
}

#[tokio::test]
async fn an_embedded_file_newer_than_the_build_stops_start_up() {
    let dir = tempfile::tempdir().unwrap();
    drop(counter_origin::store::EmbeddedStore::open(dir.path(), true).unwrap());
    let file = rusqlite::Connection::open(dir.path().join("counter.sqlite3")).unwrap();
    file.execute(
        &format!("INSERT INTO {VERSION_TABLE} (version, name) VALUES (?1, 'later')"),
        [schema::latest(schema::SQLITE) + 1],
    )
    .unwrap();
    let error = counter_origin::store::EmbeddedStore::open(dir.path(), true)
        .err()
        .expect("refused");
    assert!(
        error.to_string().contains("newer than this build knows"),
        "{error}"
    );
    let fresh = tempfile::tempdir().unwrap();
    let error = counter_origin::store::EmbeddedStore::open(fresh.path(), false)
        .err()
        .expect("refused");
    assert!(
        error.to_string().contains("counter-origin migrate"),
        "{error}"
    );
}

#[tokio::test]
async fn both_dialects_make_the_same_tables_and_columns() {
    let admin_url = fresh_database().await;
    migrate(&admin_url, &app_role_name()).await;
    let postgres: BTreeSet<(String, String)> = pg_connect(&admin_url)
        .await
        .query(
            "SELECT table_name::text, column_name::text FROM information_schema.columns \
             WHERE table_schema = 'public'",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    let file = rusqlite::Connection::open_in_memory().unwrap();
    schema::sqlite::prepare(&file, true).unwrap();
    let mut sqlite = BTreeSet::new();
    let mut tables = file
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
        .unwrap();
    for table in tables.query_map([], |row| row.get::<_, String>(0)).unwrap() {
        let table = table.unwrap();
        let mut columns = file
            .prepare(&format!("SELECT name FROM pragma_table_info('{table}')"))
            .unwrap();
        for column in columns
            .query_map([], |row| row.get::<_, String>(0))
            .unwrap()
        {
            sqlite.insert((table.clone(), column.unwrap()));
        }
    }
    assert_eq!(postgres, sqlite);
}
