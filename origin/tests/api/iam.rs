//! `DATABASE_AUTH=iam`: tokens equal botocore's for the same frozen inputs, and the origin signs
//! in with them over verified TLS as the least-privilege role. The test server plays RDS: members
//! of `rds_iam` must sign in with a password over TLS (scripts/lib/postgres.sh), and the test sets
//! that password to the token RDS would accept.

use std::process::Command;
use std::time::Duration;

use counter_origin::config::{AwsCredentials, DatabaseAuth, PostgresConfig, TlsMode};
use counter_origin::store::iam::TokenScope;
use counter_origin::store::{CounterStore, PostgresStore, StoreError};
use hyper::StatusCode;

use crate::helpers::{
    app_role_name, app_role_url, fresh_database, iam_test_credentials, iam_token, migrate,
    set_token_password, spawn_app, test_ca, Backend, IAM_TEST_REGION,
};

/// botocore's token for the same inputs, from `TEST_PYTHON` (scripts/test-rust.sh installs it).
fn botocore_token(scope: &TokenScope, credentials: &aws_credential_types::Credentials) -> String {
    let python = std::env::var("TEST_PYTHON").expect(
        "TEST_PYTHON is not set: scripts/test-rust.sh points it at a Python with botocore \
         (origin/tests/requirements.txt); or set it to one yourself",
    );
    let (_, time) = iam_test_credentials();
    let unix_time = time
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string();
    let output = Command::new(&python)
        .args([
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/tools/botocore_rds_token.py"
            ),
            &scope.host,
            &scope.port.to_string(),
            &scope.user,
            &scope.region,
            credentials.access_key_id(),
            credentials.secret_access_key(),
            credentials.session_token().unwrap_or(""),
            &unix_time,
        ])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python}: {e}"));
    assert!(
        output.status.success(),
        "botocore failed (is it installed for {python}?): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

#[test]
fn tokens_equal_botocores_for_the_same_frozen_inputs() {
    let (session, time) = iam_test_credentials();
    // Static keys too: no X-Amz-Security-Token then.
    let keys = aws_credential_types::Credentials::new(
        session.access_key_id(),
        session.secret_access_key(),
        None,
        None,
        "tests",
    );
    let scopes = [
        TokenScope {
            host: "counter.c9akciq32example.eu-west-1.rds.amazonaws.com".into(),
            port: 5432,
            user: "counter_app".into(),
            region: "eu-west-1".into(),
        },
        TokenScope {
            host: "localhost".into(),
            port: 6543,
            user: "counter_app_1".into(),
            region: "us-east-1".into(),
        },
    ];
    for scope in &scopes {
        for credentials in [&session, &keys] {
            let ours = scope.sign(credentials, time).unwrap();
            assert_eq!(
                ours.expose(),
                botocore_token(scope, credentials),
                "{scope:?}"
            );
        }
    }
}

/// A database migrated for a fresh role whose password is the token for `IAM_TEST_REGION`;
/// returns the superuser URL of the database and the role's URL.
async fn role_with_token() -> (String, String) {
    let admin = fresh_database().await;
    let role = app_role_name();
    let report = migrate(&admin, &role).await;
    assert!(
        report.rds_iam,
        "the test server has rds_iam, so the role joins it"
    );
    let url = app_role_url(&admin, &role);
    set_token_password(&admin, &role, &iam_token(&url, IAM_TEST_REGION)).await;
    (admin, url)
}

/// A store in IAM mode with the fixed test credentials.
fn iam_store(url: &str, region: &str) -> PostgresStore {
    let mut config = PostgresConfig::new(url, TlsMode::Require, Some(test_ca().into()));
    let (credentials, signing_time) = iam_test_credentials();
    config.auth = DatabaseAuth::Iam(counter_origin::config::IamAuth {
        region: region.into(),
        credentials: AwsCredentials::Fixed {
            credentials,
            signing_time,
        },
    });
    config.migrate_on_start = false;
    PostgresStore::new(&config, Duration::from_secs(5)).expect("store configuration")
}

#[tokio::test]
async fn every_statement_of_the_store_runs_as_the_app_role_signed_in_with_a_token() {
    let (_admin, url) = role_with_token().await;
    let store = iam_store(&url, IAM_TEST_REGION);
    store
        .ping()
        .await
        .expect("signed in over TLS with the token");
    assert_eq!(store.add(2).await.unwrap(), 2);
    let keyed = store
        .add_keyed(vec![Some("k1".into()), None, Some("k1".into())])
        .await
        .unwrap();
    assert_eq!(keyed.counted, 2);
    assert_eq!(
        store
            .add_keyed(vec![Some("k1".into())])
            .await
            .unwrap()
            .counted,
        0,
        "a known key does not count again"
    );
    assert_eq!(store.get().await.unwrap(), 4);
    assert_eq!(store.prune_keys(Duration::ZERO).await.unwrap(), 1);
}

#[tokio::test]
async fn a_token_for_the_wrong_region_or_user_is_refused_with_a_clear_reason_and_never_a_200() {
    let (admin, url) = role_with_token().await;
    // A user the token is not for: on RDS, one the pod's role may not rds-db:connect as.
    let other = app_role_name();
    migrate(&admin, &other).await;
    let wrong_user_url = app_role_url(&admin, &other);
    for (case, url, region) in [
        ("wrong region", url.as_str(), "us-east-1"),
        ("wrong user", wrong_user_url.as_str(), IAM_TEST_REGION),
    ] {
        let error = iam_store(url, region).ping().await.expect_err(case);
        let text = error.to_string();
        assert!(
            matches!(error, StoreError::Unavailable(_)),
            "{case}: {text}"
        );
        assert!(
            text.contains("refused the IAM token") && text.contains("AWS_REGION"),
            "{case}: the reason must say what to check: {text} \
             (if the server accepted the token, its pg_hba does not check passwords for rds_iam members: \
             scripts/lib/postgres.sh sets that up)"
        );
        assert!(
            !text.contains("X-Amz-Signature"),
            "{case}: no token in errors: {text}"
        );

        let app = spawn_app(
            Backend::AppRole,
            &[("DATABASE_URL", url), ("AWS_REGION", region)],
        )
        .await;
        let post = app.post_counter().await;
        assert_eq!(
            post.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{case}: {}",
            post.text()
        );
        assert!(!post.text().contains("X-Amz"), "{case}: no token in bodies");
        assert_eq!(
            app.get("/readyz").await.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{case}"
        );
    }
}

#[tokio::test]
async fn the_origin_serves_as_the_app_role_and_its_metrics_and_logs_hold_no_token() {
    let app = spawn_app(Backend::AppRole, &[]).await;
    app.await_readiness(StatusCode::OK).await;
    assert_eq!(app.post_counter().await.value(), 1);
    let metrics = app.metrics_text().await;
    assert!(!metrics.contains("X-Amz"), "no token in /metrics");
    let config = app.running.as_ref().unwrap().app.config.to_string();
    assert!(config.contains("auth=iam"), "{config}");
    assert!(
        !config.contains("X-Amz") && !config.contains("wJalr"),
        "{config}"
    );
}
