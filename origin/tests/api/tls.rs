//! TLS to PostgreSQL through rustls: verified against the configured CA, refused otherwise.

use std::time::Duration;

use counter_origin::config::{PostgresConfig, TlsMode};
use counter_origin::store::{CounterStore, PostgresStore, StoreError};
use hyper::StatusCode;

use crate::helpers::{fresh_database, spawn_app, Backend};

fn test_ca() -> String {
    std::env::var("TEST_PG_TLS_CA_FILE").expect(
        "TEST_PG_TLS_CA_FILE is not set: `make test` starts PostgreSQL with TLS from a throwaway CA and sets it; \
         with your own DATABASE_URL, also set TEST_PG_TLS_CA_FILE to the CA of its server certificate",
    )
}

/// The test database over TLS, by host name (the certificate is for `localhost`).
fn tls_url(plain: &str) -> String {
    plain
        .replace("127.0.0.1", "localhost")
        .replace("sslmode=disable", "sslmode=require")
}

fn store(url: String, ca_file: Option<String>) -> PostgresStore {
    let config = PostgresConfig::new(url, TlsMode::Require, ca_file.map(Into::into));
    PostgresStore::new(&config, Duration::from_secs(2)).expect("store configuration")
}

#[tokio::test]
async fn a_server_certificate_from_the_configured_ca_is_accepted() {
    let url = tls_url(&fresh_database().await);
    let store = store(url, Some(test_ca()));
    store
        .ping()
        .await
        .expect("TLS handshake verified against the test CA");
    assert_eq!(store.add(5).await.unwrap(), 5);
}

#[tokio::test]
async fn a_server_certificate_from_an_unknown_ca_is_refused() {
    let url = tls_url(&fresh_database().await);
    // System roots do not include the throwaway test CA.
    let error = store(url, None)
        .ping()
        .await
        .expect_err("an unverified server must be refused");
    assert!(matches!(error, StoreError::Unavailable(_)), "{error}");
    assert!(
        error.to_string().to_lowercase().contains("certificate"),
        "{error}"
    );
}

#[tokio::test]
async fn the_origin_counts_over_verified_tls() {
    let url = tls_url(&fresh_database().await);
    let ca = test_ca();
    let app = spawn_app(
        Backend::Postgres,
        &[("DATABASE_URL", &url), ("DATABASE_CA_FILE", &ca)],
    )
    .await;
    app.await_readiness(StatusCode::OK).await;
    assert_eq!(app.post_counter().await.value(), 1);
}
