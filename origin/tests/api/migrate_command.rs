//! `counter-origin migrate` as the Kubernetes Job runs it: a process, configured by environment
//! variables, exit 0 with one log line; the master credentials from Secrets Manager (here a
//! loopback stand-in for its endpoint, reached by the real AWS SDK); bad IAM settings exit 2.

use std::process::Command;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::helpers::{app_role_name, fresh_database, pg_connect};

const BINARY: &str = env!("CARGO_BIN_EXE_counter-origin");

/// A command with a clean environment: no AWS profile, metadata service or region of the machine.
fn origin(args: &[&str]) -> Command {
    let mut command = Command::new(BINARY);
    command
        .args(args)
        .env_clear()
        .env("LOG_LEVEL", "info")
        .env("AWS_CONFIG_FILE", "/nonexistent")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
        .env("AWS_EC2_METADATA_DISABLED", "true");
    command
}

#[test]
fn iam_mode_with_a_password_or_without_tls_exits_2_naming_the_variable() {
    for (url, says) in [
        (
            "postgres://counter_app:s3cr3t@db.example/counter",
            "no password",
        ),
        (
            "postgres://counter_app@db.example/counter?sslmode=disable",
            "TLS",
        ),
    ] {
        for args in [&[][..], &["migrate"][..]] {
            let output = origin(args)
                .env("DATABASE_URL", url)
                .env("DATABASE_AUTH", "iam")
                .env("AWS_REGION", "eu-west-1")
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert_eq!(output.status.code(), Some(2), "{url} {args:?}: {stderr}");
            assert!(
                stderr.contains("DATABASE_URL") && stderr.contains(says),
                "{stderr}"
            );
            assert!(
                !stderr.contains("s3cr3t"),
                "the password must not be echoed: {stderr}"
            );
        }
    }
}

#[tokio::test]
async fn migrate_exits_0_after_one_log_line_and_twice_changes_nothing() {
    let admin_url = fresh_database().await;
    let role = app_role_name();
    for expected in ["schema migrated from version 0 to 1", "schema at version 1"] {
        let output = origin(&["migrate"])
            .env("DATABASE_URL", &admin_url)
            .env("DATABASE_APP_ROLE", &role)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert_eq!(
            output.status.code(),
            Some(0),
            "{stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            stdout.contains("migration done")
                && stdout.contains(expected)
                && stdout.contains(&role),
            "{stdout}"
        );
    }
}

/// Answers one Secrets Manager `GetSecretValue` call with `secret` (as JSON text), and hands back
/// the request it got.
async fn fake_secrets_manager(secret: &str) -> (String, tokio::task::JoinHandle<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let body = serde_json::json!({
        "ARN": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:rds!db-test-AbCdEf",
        "Name": "rds!db-test",
        "SecretString": secret,
        "VersionId": "v1",
        "VersionStages": ["AWSCURRENT"],
        "CreatedDate": 1.767225600e9,
    })
    .to_string();
    let served = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut request = Vec::new();
        let mut buffer = [0u8; 4096];
        // Headers, then as many body bytes as Content-Length says.
        loop {
            let n = stream.read(&mut buffer).await.unwrap();
            assert!(n > 0, "the client closed before a whole request");
            request.extend_from_slice(&buffer[..n]);
            let text = String::from_utf8_lossy(&request).to_string();
            if let Some(end) = text.find("\r\n\r\n") {
                let length = text[..end]
                    .lines()
                    .find_map(|l| {
                        let (name, value) = l.split_once(':')?;
                        name.eq_ignore_ascii_case("content-length")
                            .then(|| value.trim().parse::<usize>().unwrap())
                    })
                    .unwrap_or(0);
                if request.len() >= end + 4 + length {
                    break;
                }
            }
        }
        let answer = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/x-amz-json-1.1\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(answer.as_bytes()).await.unwrap();
        String::from_utf8_lossy(&request).to_string()
    });
    (endpoint, served)
}

#[tokio::test]
async fn migrate_signs_in_with_the_master_secret_from_secrets_manager() {
    let admin_url = fresh_database().await;
    let admin: tokio_postgres::Config = admin_url.parse().unwrap();
    // The URL names the server and database only; the user comes from the secret.
    let url = format!(
        "postgres://127.0.0.1:{}/{}?sslmode=disable",
        admin.get_ports()[0],
        admin.get_dbname().unwrap()
    );
    let (endpoint, served) =
        fake_secrets_manager(r#"{"username":"postgres","password":"master-password-1"}"#).await;
    let arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:rds!db-test-AbCdEf";
    let role = app_role_name();
    let output = tokio::task::spawn_blocking(move || {
        origin(&["migrate"])
            .env("DATABASE_URL", &url)
            .env("DATABASE_APP_ROLE", &role)
            .env("DATABASE_MASTER_SECRET_ARN", arn)
            .env("AWS_ENDPOINT_URL", &endpoint)
            .env("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE")
            .env(
                "AWS_SECRET_ACCESS_KEY",
                "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            )
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        !stdout.contains("master-password-1"),
        "the secret must not be logged: {stdout}"
    );

    let request = served.await.unwrap();
    assert!(
        request.contains("secretsmanager.GetSecretValue"),
        "{request}"
    );
    assert!(
        request.contains(arn),
        "asks for the configured secret: {request}"
    );
    assert!(
        request
            .to_lowercase()
            .contains("authorization: aws4-hmac-sha256 credential=akiaiosfodnn7example/")
            && request.contains("/eu-west-1/secretsmanager/aws4_request"),
        "SigV4-signed for the secret's region: {request}"
    );
    let tables: i64 = pg_connect(&admin_url)
        .await
        .query_one("SELECT count(*) FROM counter_schema_migrations", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(tables, 1, "migrated as the secret's user");
}

/// A role that already holds more than the service needs (a membership, something it owns, a
/// privilege outside what migrate grants, here or in another database) is refused, exit 1 with
/// what is extra, and left as it was: migrate never says "granted the service's privileges" of a
/// role that keeps more.
#[tokio::test]
async fn migrate_refuses_a_role_that_holds_more_than_the_service_needs() {
    let other_url = fresh_database().await;
    let other: tokio_postgres::Config = other_url.parse().unwrap();
    let other_db = other.get_dbname().unwrap().to_string();
    // (SQL run here as the superuser before migrate, SQL run in the other database, expected text)
    let cases: &[(&str, &str, &str)] = &[
        ("GRANT pg_write_all_data TO {role}", "", "member of pg_write_all_data"),
        ("GRANT pg_read_server_files TO {role}", "", "member of pg_read_server_files"),
        ("GRANT pg_signal_backend TO {role}", "", "member of pg_signal_backend"),
        (
            "CREATE SCHEMA extra; CREATE TABLE extra.owned (x INTEGER);
             ALTER TABLE extra.owned OWNER TO {role}",
            "",
            "owns table extra.owned",
        ),
        (
            "CREATE TABLE public.owned (x INTEGER); ALTER TABLE public.owned OWNER TO {role}",
            "",
            "owns table owned",
        ),
        ("CREATE SCHEMA owned AUTHORIZATION {role}", "", "owns schema owned"),
        (
            "CREATE SCHEMA extra; CREATE TABLE extra.t (x INTEGER); GRANT INSERT ON extra.t TO {role}",
            "",
            "INSERT on table extra.t",
        ),
        (
            "CREATE SCHEMA extra; GRANT CREATE ON SCHEMA extra TO {role}",
            "",
            "CREATE on schema extra",
        ),
        (
            "CREATE SCHEMA extra; CREATE TABLE extra.t (x INTEGER); GRANT UPDATE (x) ON extra.t TO {role}",
            "",
            "UPDATE on column x of table extra.t",
        ),
        (
            "",
            "GRANT CONNECT, TEMPORARY ON DATABASE {other} TO {role}",
            "TEMPORARY on database",
        ),
        (
            "",
            "CREATE TABLE elsewhere (x INTEGER); ALTER TABLE elsewhere OWNER TO {role}",
            "owns 1 object(s) in database",
        ),
        (
            "",
            "CREATE SCHEMA e; CREATE TABLE e.a (x INTEGER); CREATE TABLE e.b (x INTEGER);
             CREATE TABLE e.c (x INTEGER); CREATE TABLE e.d (x INTEGER);
             GRANT USAGE ON SCHEMA e TO {role}; GRANT SELECT ON e.a, e.b, e.c, e.d TO {role}",
            "privileges on 5 object(s) in database",
        ),
        (
            "",
            "CREATE FUNCTION f() RETURNS INTEGER LANGUAGE SQL AS 'SELECT 1';
             REVOKE EXECUTE ON FUNCTION f() FROM PUBLIC; GRANT EXECUTE ON FUNCTION f() TO {role}",
            "privileges on 1 object(s) in database",
        ),
    ];
    for (here, there, says) in cases {
        let admin_url = fresh_database().await;
        let role = app_role_name();
        let fill = |sql: &str| sql.replace("{role}", &role).replace("{other}", &other_db);
        let admin = pg_connect(&admin_url).await;
        admin
            .batch_execute(&format!(
                "DO $$ BEGIN CREATE ROLE rds_iam NOLOGIN;
                 EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$;
                 CREATE ROLE {role} NOLOGIN;
                 {}",
                fill(here)
            ))
            .await
            .unwrap_or_else(|e| panic!("{here}: {e}"));
        if !there.is_empty() {
            pg_connect(&other_url)
                .await
                .batch_execute(&fill(there))
                .await
                .unwrap_or_else(|e| panic!("{there}: {e}"));
        }
        let output = {
            let (url, role) = (admin_url.clone(), role.clone());
            tokio::task::spawn_blocking(move || {
                origin(&["migrate"])
                    .env("DATABASE_URL", &url)
                    .env("DATABASE_APP_ROLE", &role)
                    .output()
                    .unwrap()
            })
            .await
            .unwrap()
        };
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(
            output.status.code(),
            Some(1),
            "{says}: {}{stderr}",
            String::from_utf8_lossy(&output.stdout)
        );
        assert!(
            stderr.contains(&role)
                && stderr.contains("more than the service's privileges")
                && stderr.contains(says),
            "{says}: {stderr}"
        );
        let can_login: bool = admin
            .query_one(
                "SELECT rolcanlogin FROM pg_roles WHERE rolname = $1",
                &[&role],
            )
            .await
            .unwrap()
            .get(0);
        assert!(!can_login, "{says}: the refused role is left as it was");
    }
}

/// A server that accepts and never answers (a hung proxy, a black-holed failover) ends migrate
/// with exit 1 after about `DATABASE_CONNECT_TIMEOUT_MS`, in plain and in TLS mode: the bound
/// covers connect, TLS and start-up, not only the TCP connect.
#[tokio::test]
async fn migrate_gives_up_on_a_silent_server_after_the_connect_timeout() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            open.push(stream); // never read, never answered, never closed
        }
    });
    for sslmode in ["disable", "require"] {
        let url = format!("postgres://postgres:pw@127.0.0.1:{port}/counter?sslmode={sslmode}");
        let mut command = tokio::process::Command::from(origin(&["migrate"]));
        command
            .env("DATABASE_URL", &url)
            .env("DATABASE_CONNECT_TIMEOUT_MS", "200")
            .kill_on_drop(true);
        // Generous: it only has to end, where it used to wait forever.
        let output = tokio::time::timeout(std::time::Duration::from_secs(60), command.output())
            .await
            .unwrap_or_else(|_| panic!("sslmode={sslmode}: migrate still waits on a silent server"))
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "sslmode={sslmode}: {stderr}");
        assert!(
            stderr.contains("DATABASE_CONNECT_TIMEOUT_MS"),
            "sslmode={sslmode}: {stderr}"
        );
    }
    held.abort();
}

/// Roles belong to the whole server: two migrations of two databases with the same role take one
/// lock (in the `postgres` database), not one per database. Here the test plays a first migration
/// caught half-way (the lock held, the role created, not yet committed); the second, on another
/// database, must wait for it and then succeed, not fail on the duplicate role.
#[tokio::test]
async fn two_migrations_of_two_databases_with_one_role_take_turns() {
    let (first_url, second_url) = (fresh_database().await, fresh_database().await);
    let role = app_role_name();
    let first = pg_connect(&first_url).await;
    first
        .batch_execute(
            "DO $$ BEGIN CREATE ROLE rds_iam NOLOGIN;
             EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$",
        )
        .await
        .unwrap();
    let mut lock_url: tokio_postgres::Config = first_url.parse().unwrap();
    lock_url.dbname("postgres");
    let (lock, connection) = lock_url.connect(tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    lock.execute("SELECT pg_advisory_lock(7243012002)", &[])
        .await
        .unwrap();
    first
        .batch_execute(&format!("BEGIN; CREATE ROLE {role} NOLOGIN"))
        .await
        .unwrap();

    let mut command = tokio::process::Command::from(origin(&["migrate"]));
    command
        .env("DATABASE_URL", &second_url)
        .env("DATABASE_APP_ROLE", &role)
        .kill_on_drop(true);
    let second = tokio::spawn(command.output());
    // The second migration is waiting on a lock (the role lock now; the uncommitted role before).
    let second_db: tokio_postgres::Config = second_url.parse().unwrap();
    let second_db = second_db.get_dbname().unwrap().to_string();
    // (Asked on the lock's session: `first` is in a transaction, whose view of
    // pg_stat_activity is a snapshot.)
    let waiting = async {
        loop {
            let n: i64 = lock
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity
                      WHERE application_name = 'counter-origin migrate' AND wait_event_type = 'Lock'",
                    &[],
                )
                .await
                .unwrap()
                .get(0);
            if n > 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(60), waiting)
        .await
        .unwrap_or_else(|_| panic!("the migration of {second_db} never waited on a lock"));
    first.batch_execute("COMMIT").await.unwrap();
    lock.execute("SELECT pg_advisory_unlock(7243012002)", &[])
        .await
        .unwrap();
    let output = tokio::time::timeout(std::time::Duration::from_secs(60), second)
        .await
        .expect("the second migration ends once the first is done")
        .unwrap()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );

    // And two real migrations of the two databases at once both succeed.
    let role = app_role_name();
    let runs = [&first_url, &second_url].map(|url| {
        let mut command = tokio::process::Command::from(origin(&["migrate"]));
        command
            .env("DATABASE_URL", url)
            .env("DATABASE_APP_ROLE", &role)
            .kill_on_drop(true);
        tokio::spawn(command.output())
    });
    for run in runs {
        let output = run.await.unwrap().unwrap();
        assert_eq!(
            output.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
