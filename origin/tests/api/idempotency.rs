//! `Idempotency-Key`: a retry with the same key returns the first answer and never counts again,
//! also when the two requests race, across origins, and with keys stored in the same transaction
//! as their increment.

use std::time::Duration;

use counter_origin::config::{PostgresConfig, TlsMode};
use counter_origin::store::{CounterStore, EmbeddedStore, PostgresStore};

use hyper::StatusCode;

use crate::helpers::{fresh_database, Backend, BOTH};

/// A store under test, and where its data lives (to age keys behind its back).
enum Place {
    File(tempfile::TempDir),
    Database(String),
}

async fn open_store(backend: Backend) -> (Box<dyn CounterStore>, Place) {
    match backend {
        Backend::Embedded => {
            let dir = tempfile::tempdir().unwrap();
            (
                Box::new(EmbeddedStore::open(dir.path(), true).unwrap()),
                Place::File(dir),
            )
        }
        Backend::AppRole => panic!("the store-level tests open Postgres or Embedded"),
        Backend::Postgres => {
            let url = fresh_database().await;
            let config = PostgresConfig::new(url.clone(), TlsMode::Disable, None);
            (
                Box::new(PostgresStore::new(&config, Duration::from_secs(5)).unwrap()),
                Place::Database(url),
            )
        }
    }
}

/// Makes key `k` look committed two hours ago.
async fn age_key(place: &Place, k: &str) {
    match place {
        Place::File(dir) => {
            let db = rusqlite::Connection::open(dir.path().join("counter.sqlite3")).unwrap();
            let n = db
                .execute("UPDATE counter_idempotency_keys SET created_at = unixepoch() - 7200 WHERE key = ?1", [k])
                .unwrap();
            assert_eq!(n, 1);
        }
        Place::Database(url) => {
            let db = crate::helpers::pg_connect(url).await;
            let n = db
                .execute("UPDATE counter_idempotency_keys SET created_at = now() - interval '2 hours' WHERE key = $1", &[&k])
                .await
                .unwrap();
            assert_eq!(n, 1);
        }
    }
}

fn key(k: &str) -> Option<String> {
    Some(k.to_string())
}

#[tokio::test]
async fn stores_count_each_key_once_and_answer_retries_with_the_first_value() {
    for backend in BOTH {
        let (store, _place) = open_store(backend).await;
        assert_eq!(store.add(2).await.unwrap(), 2, "{backend:?}");
        assert_eq!(
            store
                .add_keyed(vec![key("a"), None, key("a"), key("b")])
                .await
                .unwrap()
                .values,
            vec![3, 4, 3, 5],
            "{backend:?}"
        );
        assert_eq!(
            store
                .add_keyed(vec![key("b"), key("a")])
                .await
                .unwrap()
                .values,
            vec![5, 3],
            "{backend:?}: retries only"
        );
        assert_eq!(
            store.get().await.unwrap(),
            5,
            "{backend:?}: retries changed nothing"
        );
        assert_eq!(
            store.add_keyed(vec![None, key("c")]).await.unwrap().values,
            vec![6, 7],
            "{backend:?}"
        );

        assert_eq!(
            store.prune_keys(Duration::from_secs(3600)).await.unwrap(),
            0,
            "{backend:?}: young keys kept"
        );
        assert_eq!(
            store.add_keyed(vec![key("a")]).await.unwrap().values,
            vec![3],
            "{backend:?}"
        );
    }
}

#[tokio::test]
async fn keys_past_the_retention_are_pruned_and_younger_ones_kept() {
    for backend in BOTH {
        let (store, place) = open_store(backend).await;
        assert_eq!(
            store
                .add_keyed(vec![key("old"), key("young")])
                .await
                .unwrap()
                .values,
            vec![1, 2]
        );
        age_key(&place, "old").await;
        assert_eq!(
            store.prune_keys(Duration::from_secs(3600)).await.unwrap(),
            1,
            "{backend:?}"
        );
        assert_eq!(
            store.add_keyed(vec![key("young")]).await.unwrap().values,
            vec![2],
            "{backend:?}: still remembered"
        );
        assert_eq!(
            store.add_keyed(vec![key("old")]).await.unwrap().values,
            vec![3],
            "{backend:?}: a forgotten key counts again"
        );
    }
}

async fn post_with_key(addr: std::net::SocketAddr, key: &'static str) -> crate::helpers::Answer {
    crate::helpers::send(
        addr,
        hyper::Method::POST,
        "/api/counter",
        &[("idempotency-key", key)],
        b"",
    )
    .await
}

#[tokio::test]
async fn a_retried_post_gets_its_first_answer_and_counts_once() {
    for backend in BOTH {
        let app = crate::helpers::spawn_app(backend, &[]).await;
        let first = post_with_key(app.addr, "7d1c2b9e-0000-4000-8000-000000000001").await;
        assert_eq!(
            (first.status, first.value()),
            (StatusCode::OK, 1),
            "{backend:?}"
        );
        let retry = post_with_key(app.addr, "7d1c2b9e-0000-4000-8000-000000000001").await;
        assert_eq!(
            (retry.status, retry.value()),
            (StatusCode::OK, 1),
            "{backend:?}: the first answer again"
        );
        assert_eq!(
            app.post_counter().await.value(),
            2,
            "{backend:?}: the retry did not count"
        );
        assert_eq!(
            app.metric(r#"counter_increments_total{outcome="replayed"}"#)
                .await,
            1.0
        );
        assert_eq!(
            app.metric(r#"counter_increments_total{outcome="committed"}"#)
                .await,
            2.0
        );
    }
}

#[tokio::test]
async fn racing_requests_with_one_key_count_once_among_others_that_count_each() {
    for backend in BOTH {
        let app = crate::helpers::spawn_app(backend, &[]).await;
        app.await_readiness(StatusCode::OK).await;
        let addr = app.addr;
        let keyed: Vec<_> = (0..50)
            .map(|_| tokio::spawn(post_with_key(addr, "racing-key")))
            .collect();
        let plain: Vec<_> = (0..50)
            .map(|_| {
                tokio::spawn(async move {
                    crate::helpers::send(addr, hyper::Method::POST, "/api/counter", &[], b"").await
                })
            })
            .collect();
        let mut keyed_values = Vec::new();
        for task in keyed {
            keyed_values.push(task.await.unwrap().value());
        }
        let mut values = std::collections::BTreeSet::new();
        for task in plain {
            assert!(
                values.insert(task.await.unwrap().value()),
                "{backend:?}: keyless values are distinct"
            );
        }
        assert!(
            keyed_values.iter().all(|v| *v == keyed_values[0]),
            "{backend:?}: one answer for one key: {keyed_values:?}"
        );
        assert!(
            values.insert(keyed_values[0]),
            "{backend:?}: the key's value is its own"
        );
        assert_eq!(
            values,
            (1..=51).collect(),
            "{backend:?}: 50 keyless + 1 keyed increment"
        );
    }
}

#[tokio::test]
async fn two_origins_racing_on_one_key_count_it_once() {
    let first = crate::helpers::spawn_app(Backend::Postgres, &[]).await;
    let url = first.database_url.clone().unwrap();
    let second = crate::helpers::spawn_app(Backend::Postgres, &[("DATABASE_URL", &url)]).await;
    first.await_readiness(StatusCode::OK).await;
    second.await_readiness(StatusCode::OK).await;
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let addr = if i % 2 == 0 { first.addr } else { second.addr };
            tokio::spawn(post_with_key(addr, "shared-key"))
        })
        .collect();
    let mut values = Vec::new();
    for task in tasks {
        let answer = task.await.unwrap();
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
        values.push(answer.value());
    }
    assert!(values.iter().all(|v| *v == 1), "{values:?}");
    assert_eq!(first.committed().await, 1);
}

#[tokio::test]
async fn malformed_or_repeated_keys_get_400_and_count_nothing() {
    let app = crate::helpers::spawn_app(Backend::Embedded, &[]).await;
    let long = "k".repeat(129);
    for bad in ["has space", long.as_str(), "caf\u{e9}"] {
        let answer = crate::helpers::send(
            app.addr,
            hyper::Method::POST,
            "/api/counter",
            &[("idempotency-key", bad)],
            b"",
        )
        .await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{bad:?}");
        assert!(
            answer
                .text()
                .contains("Idempotency-Key must be 1-128 visible ASCII"),
            "{}",
            answer.text()
        );
    }
    let twice = crate::helpers::send(
        app.addr,
        hyper::Method::POST,
        "/api/counter",
        &[("idempotency-key", "a"), ("idempotency-key", "b")],
        b"",
    )
    .await;
    assert_eq!(twice.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        app.get("/api/counter").await.value(),
        0,
        "nothing was counted"
    );
}
