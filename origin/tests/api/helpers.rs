//! `spawn_app()`-style helpers: start an origin on `127.0.0.1:0`, talk to it over TCP, read its
//! metrics, and reach into PostgreSQL to hold locks or read the committed value.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use counter_origin::{Config, Running};
use http_body_util::{BodyExt, Full};
use hyper::header::HeaderMap;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

#[derive(Clone, Copy, Debug)]
pub enum Backend {
    Postgres,
    Embedded,
    /// PostgreSQL as production runs it: the schema made by `counter-origin migrate`, the origin
    /// signed in as the least-privilege role with an IAM token over verified TLS, never any DDL.
    AppRole,
}

pub const BOTH: [Backend; 2] = [Backend::Postgres, Backend::Embedded];
/// Every way the origin stores the counter (the contract holds for each).
pub const STORES: [Backend; 3] = [Backend::Postgres, Backend::AppRole, Backend::Embedded];

/// A fresh, empty database for one test; returns its URL.
pub async fn fresh_database() -> String {
    let database = testkit::Database::from_env().unwrap_or_else(|e| panic!("{e}"));
    database
        .fresh("counter_test")
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// A plain (non-pooled) PostgreSQL session for the test itself.
pub async fn pg_connect(url: &str) -> tokio_postgres::Client {
    testkit::database::connect(url)
        .await
        .unwrap_or_else(|e| panic!("{e}; is it running?"))
}

pub struct TestApp {
    pub addr: SocketAddr,
    pub metrics_addr: SocketAddr,
    pub database_url: Option<String>,
    pub running: Option<Running>,
    _data_dir: Option<tempfile::TempDir>,
}

/// Settings every test app uses: loopback ports chosen by the kernel, no drain wait, fast
/// readiness checks. `overrides` win.
pub async fn spawn_app(backend: Backend, overrides: &[(&str, &str)]) -> TestApp {
    spawn_app_with(backend, overrides, |_| {}).await
}

/// [`spawn_app`], and `edit` changes the parsed configuration before the origin starts (for what
/// no variable sets, e.g. fixed AWS credentials).
pub async fn spawn_app_with(
    backend: Backend,
    overrides: &[(&str, &str)],
    edit: impl FnOnce(&mut Config),
) -> TestApp {
    let mut vars: HashMap<String, String> = [
        ("LISTEN_ADDR", "127.0.0.1:0"),
        ("METRICS_ADDR", "127.0.0.1:0"),
        ("DRAIN_PERIOD_MS", "0"),
        ("READY_CHECK_INTERVAL_MS", "50"),
        ("READY_STALE_AFTER_MS", "1000"),
        ("ACCESS_LOG_EVERY", "0"),
        ("LOG_LEVEL", "warn"),
        ("DATABASE_POOL_SIZE", "4"),
        // Generous, so a statement held behind a test's row lock is not cancelled on a slow
        // machine; the timeout tests set their own.
        ("STATEMENT_TIMEOUT_MS", "30000"),
        ("REQUEST_TIMEOUT_MS", "30000"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let (database_url, data_dir) = match backend {
        Backend::Postgres | Backend::AppRole => (Some(fresh_database().await), None),
        Backend::Embedded => (None, Some(tempfile::tempdir().unwrap())),
    };
    if let Some(url) = &database_url {
        vars.insert("DATABASE_URL".into(), url.clone());
    }
    let iam = matches!(backend, Backend::AppRole);
    if iam {
        let admin = database_url.as_ref().unwrap();
        let role = app_role_name();
        migrate(admin, &role).await;
        let app_url = app_role_url(admin, &role);
        set_token_password(admin, &role, &iam_token(&app_url, IAM_TEST_REGION)).await;
        for (k, v) in [
            ("DATABASE_URL", app_url.as_str()),
            ("DATABASE_AUTH", "iam"),
            ("AWS_REGION", IAM_TEST_REGION),
            ("DATABASE_CA_FILE", &test_ca()),
            ("SCHEMA_MIGRATE_ON_START", "false"),
        ] {
            vars.insert(k.into(), v.into());
        }
    }
    if let Some(dir) = &data_dir {
        vars.insert("DATA_DIR".into(), dir.path().display().to_string());
    }
    for (k, v) in overrides {
        vars.insert(k.to_string(), v.to_string());
    }
    let mut config =
        Config::from_lookup(|k| vars.get(k).cloned()).expect("valid test configuration");
    if iam {
        fix_iam_credentials(&mut config);
    }
    edit(&mut config);
    let running = counter_origin::start(config).await.expect("origin starts");
    TestApp {
        addr: running.addr,
        metrics_addr: running.metrics_addr,
        database_url,
        running: Some(running),
        _data_dir: data_dir,
    }
}

pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn text(&self) -> &str {
        std::str::from_utf8(&self.body).expect("UTF-8 body")
    }

    /// The `N` of a `{"value": N}` body.
    pub fn value(&self) -> i64 {
        let text = self.text();
        text.strip_prefix("{\"value\":")
            .and_then(|rest| rest.strip_suffix('}'))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("not a value body: {text} (status {})", self.status))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
}

/// One request on a new HTTP/1.1 connection.
pub async fn send(
    addr: SocketAddr,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: &'static [u8],
) -> Answer {
    let stream = TcpStream::connect(addr)
        .await
        .expect("connect to the origin");
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "localhost");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = sender
        .send_request(request.body(Full::new(Bytes::from_static(body))).unwrap())
        .await
        .expect("response");
    let (parts, body) = response.into_parts();
    let body = body.collect().await.expect("body").to_bytes();
    Answer {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

impl TestApp {
    pub async fn get(&self, path: &str) -> Answer {
        send(self.addr, Method::GET, path, &[], b"").await
    }

    pub async fn post_counter(&self) -> Answer {
        send(self.addr, Method::POST, "/api/counter", &[], b"").await
    }

    pub async fn metrics_text(&self) -> String {
        let answer = send(self.metrics_addr, Method::GET, "/metrics", &[], b"").await;
        assert_eq!(answer.status, StatusCode::OK);
        answer.text().to_string()
    }

    /// A sample's value from `/metrics`, e.g. `metric("counter_batch_size_count")` or
    /// `metric("counter_increments_total{outcome=\"shed\"}")`.
    pub async fn metric(&self, series: &str) -> f64 {
        let text = self.metrics_text().await;
        sample(&text, series).unwrap_or_else(|| panic!("no series {series} in /metrics"))
    }

    /// Waits (bounded) until `/readyz` answers `status`.
    pub async fn await_readiness(&self, status: StatusCode) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            if self.get("/readyz").await.status == status {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "/readyz never answered {status}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits (bounded) until a metric reaches `at_least`.
    pub async fn await_metric(&self, series: &str, at_least: f64) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            if self.metric(series).await >= at_least {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{series} never reached {at_least}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The committed value, read straight from PostgreSQL.
    pub async fn committed(&self) -> i64 {
        testkit::database::counter_value(self.database_url.as_ref().expect("a PostgreSQL app"))
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Stops the app the way SIGTERM does and waits until it has.
    pub async fn stop(&mut self) {
        let running = self.running.take().expect("running");
        running.shutdown();
        running.stopped().await;
    }
}

pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        line.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

/// Holds the counter row's lock in another session, so the origin's next statement blocks in
/// PostgreSQL until [`RowLock::release`]. This makes batching and timeouts deterministic.
pub struct RowLock {
    client: tokio_postgres::Client,
}

impl RowLock {
    pub async fn take(app: &TestApp) -> Self {
        // The schema exists once the app is ready.
        app.await_readiness(StatusCode::OK).await;
        let client = pg_connect(app.database_url.as_ref().unwrap()).await;
        client
            .batch_execute("BEGIN; SELECT value FROM request_counter_state WHERE id = 1 FOR UPDATE")
            .await
            .unwrap();
        Self { client }
    }

    /// Waits until the origin's writer is blocked on this lock.
    pub async fn await_writer_blocked(&self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            // Statistics views are snapshotted once per transaction, and this session is inside one.
            self.client
                .batch_execute("SELECT pg_stat_clear_snapshot()")
                .await
                .unwrap();
            let waiting: i64 = self
                .client
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'counter-origin' \
                     AND datname = current_database() AND wait_event_type = 'Lock'",
                    &[],
                )
                .await
                .unwrap()
                .get(0);
            if waiting > 0 {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the writer never blocked on the row lock"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    pub async fn release(self) {
        self.client.batch_execute("COMMIT").await.unwrap();
    }
}

/// The CA of the test server's certificate (`make test` makes one).
pub fn test_ca() -> String {
    std::env::var("TEST_PG_TLS_CA_FILE").expect(
        "TEST_PG_TLS_CA_FILE is not set: `make test` starts PostgreSQL with TLS from a throwaway CA and sets it; \
         with your own DATABASE_URL, also set TEST_PG_TLS_CA_FILE to the CA of its server certificate",
    )
}

/// The region the IAM tests sign for (any region: the test server compares the token as a password).
pub const IAM_TEST_REGION: &str = "eu-west-1";

/// The fixed inputs of every IAM token in the tests (AWS's documented example keys).
pub fn iam_test_credentials() -> (aws_credential_types::Credentials, std::time::SystemTime) {
    (
        aws_credential_types::Credentials::new(
            "AKIAIOSFODNN7EXAMPLE",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            Some("IQoJb3JpZ2luX2VjEXAMPLE+session/token==".into()),
            None,
            "tests",
        ),
        std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_600), // 2026-01-01
    )
}

/// Makes an IAM-mode configuration sign with [`iam_test_credentials`].
pub fn fix_iam_credentials(config: &mut Config) {
    use counter_origin::config::{AwsCredentials, DatabaseAuth, StoreConfig};
    let StoreConfig::Postgres(pg) = &mut config.store else {
        panic!("not a PostgreSQL configuration")
    };
    let DatabaseAuth::Iam(iam) = &mut pg.auth else {
        panic!("not DATABASE_AUTH=iam")
    };
    let (credentials, signing_time) = iam_test_credentials();
    iam.credentials = AwsCredentials::Fixed {
        credentials,
        signing_time,
    };
}

/// A role name of its own for each test: roles are shared by all databases of the server.
pub fn app_role_name() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "counter_app_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Runs `counter-origin migrate` on the database at `admin_url` (the test server's superuser
/// stands in for the RDS master user) with `role` as the application role. The test server's
/// `rds_iam` role exists first, as on RDS: its members sign in with a password over TLS only.
pub async fn migrate(admin_url: &str, role: &str) -> counter_origin::store::migrate::Report {
    let admin = pg_connect(admin_url).await;
    admin
        .batch_execute(
            "DO $$ BEGIN CREATE ROLE rds_iam NOLOGIN;
             EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$",
        )
        .await
        .expect("CREATE ROLE rds_iam");
    let vars: HashMap<&str, String> = [
        ("DATABASE_URL", admin_url.to_string()),
        ("DATABASE_APP_ROLE", role.to_string()),
    ]
    .into();
    let config = Config::from_lookup(|k| vars.get(k).cloned()).expect("valid configuration");
    counter_origin::store::migrate::run(&config)
        .await
        .expect("migrate")
}

/// `postgres://<role>@localhost:<port>/<database>?sslmode=require`: the application's URL, over
/// TLS to the name in the test server's certificate, with no password.
pub fn app_role_url(admin_url: &str, role: &str) -> String {
    let admin: tokio_postgres::Config = admin_url.parse().expect("admin URL");
    format!(
        "postgres://{role}@localhost:{}/{}?sslmode=require",
        admin.get_ports().first().copied().unwrap_or(5432),
        admin.get_dbname().expect("a database name")
    )
}

/// The IAM token for a connection to `url` signed for `region` from the fixed test inputs.
pub fn iam_token(url: &str, region: &str) -> String {
    let pg: tokio_postgres::Config = url.parse().expect("URL");
    let host = match pg.get_hosts() {
        [tokio_postgres::config::Host::Tcp(host)] => host.clone(),
        _ => panic!("one TCP host"),
    };
    let scope = counter_origin::store::iam::TokenScope {
        host,
        port: pg.get_ports().first().copied().unwrap_or(5432),
        user: pg.get_user().expect("a user").to_string(),
        region: region.to_string(),
    };
    let (credentials, time) = iam_test_credentials();
    scope
        .sign(&credentials, time)
        .expect("token")
        .expose()
        .to_string()
}

/// What RDS does with a valid token, the test server does with a password: sets `role`'s
/// password to `token`.
pub async fn set_token_password(admin_url: &str, role: &str, token: &str) {
    let admin = pg_connect(admin_url).await;
    let literal = token.replace('\'', "''");
    admin
        .batch_execute(&format!("ALTER ROLE {role} PASSWORD '{literal}'"))
        .await
        .expect("ALTER ROLE … PASSWORD");
}
