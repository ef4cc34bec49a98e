//! The write path of docs/design.md §2: one statement per batch, distinct values in arrival order,
//! bounded queue, deadlines that never lie about what was counted.

use std::collections::BTreeSet;

use hyper::StatusCode;

use crate::helpers::{spawn_app, Backend, RowLock, TestApp, BOTH};

/// Fires `n` POSTs at once, each on its own connection; returns every answer.
async fn concurrent_posts(app: &TestApp, n: usize) -> Vec<crate::helpers::Answer> {
    let addr = app.addr;
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            tokio::spawn(async move {
                crate::helpers::send(addr, hyper::Method::POST, "/api/counter", &[], b"").await
            })
        })
        .collect();
    let mut answers = Vec::with_capacity(n);
    for task in tasks {
        answers.push(task.await.unwrap());
    }
    answers
}

fn assert_exactly(values: impl IntoIterator<Item = i64>, start: i64, n: i64) {
    let values: Vec<i64> = values.into_iter().collect();
    let distinct: BTreeSet<i64> = values.iter().copied().collect();
    assert_eq!(
        distinct.len(),
        values.len(),
        "every POST gets its own value"
    );
    assert_eq!(
        distinct,
        (start + 1..=start + n).collect::<BTreeSet<_>>(),
        "values are exactly start+1 … start+n"
    );
}

#[tokio::test]
async fn two_thousand_concurrent_posts_get_exactly_the_next_two_thousand_values() {
    for backend in BOTH {
        let app = spawn_app(backend, &[]).await;
        app.await_readiness(StatusCode::OK).await;
        let start = app.post_counter().await.value();

        let answers = concurrent_posts(&app, 2000).await;
        assert!(
            answers.iter().all(|a| a.status == StatusCode::OK),
            "{backend:?}: every POST succeeds"
        );
        assert_exactly(answers.iter().map(|a| a.value()), start, 2000);
        assert_eq!(
            app.get("/api/counter").await.value(),
            start + 2000,
            "{backend:?}"
        );
        assert_eq!(
            app.metric(r#"counter_increments_total{outcome="committed"}"#)
                .await,
            (start + 2000) as f64
        );
    }
}

#[tokio::test]
async fn increments_waiting_behind_a_statement_are_committed_together() {
    // 2,000 clients at once: above the default connection limit (1,024), where the rest would
    // wait in the backlog instead of the write queue this test fills.
    let app = spawn_app(
        Backend::Postgres,
        &[("MAX_BATCH", "512"), ("MAX_CONNECTIONS", "4096")],
    )
    .await;
    let lock = RowLock::take(&app).await;
    // One increment takes the writer into a statement that blocks on the row lock …
    let addr = app.addr;
    let first = tokio::spawn(async move {
        crate::helpers::send(addr, hyper::Method::POST, "/api/counter", &[], b"").await
    });
    lock.await_writer_blocked().await;
    // … while 1,999 more queue up behind it.
    let rest = tokio::spawn({
        let addr = app.addr;
        async move {
            let tasks: Vec<_> = (0..1999)
                .map(|_| {
                    tokio::spawn(async move {
                        crate::helpers::send(addr, hyper::Method::POST, "/api/counter", &[], b"")
                            .await
                    })
                })
                .collect();
            let mut answers = Vec::new();
            for task in tasks {
                answers.push(task.await.unwrap());
            }
            answers
        }
    });
    app.await_metric("counter_write_queue_depth", 1999.0).await;
    lock.release().await;

    let mut answers = rest.await.unwrap();
    answers.push(first.await.unwrap());
    assert!(answers.iter().all(|a| a.status == StatusCode::OK));
    assert_exactly(answers.iter().map(|a| a.value()), 0, 2000);
    assert_eq!(app.committed().await, 2000);
    // 1 statement for the first increment, then ⌈1999 / 512⌉ = 4 for the queue: 5 for 2,000.
    assert_eq!(app.metric("counter_batch_size_count").await, 5.0);
    assert_eq!(app.metric("counter_batch_size_sum").await, 2000.0);
}

#[tokio::test]
async fn max_batch_one_commits_every_increment_alone() {
    let app = spawn_app(Backend::Postgres, &[("MAX_BATCH", "1")]).await;
    app.await_readiness(StatusCode::OK).await;
    let answers = concurrent_posts(&app, 200).await;
    assert_exactly(answers.iter().map(|a| a.value()), 0, 200);
    assert_eq!(app.metric("counter_batch_size_count").await, 200.0);
}

#[tokio::test]
async fn a_full_queue_sheds_at_once_with_retry_after_and_counts_nothing_extra() {
    let app = spawn_app(
        Backend::Postgres,
        &[("MAX_BATCH", "1"), ("WRITE_QUEUE_CAPACITY", "2")],
    )
    .await;
    let lock = RowLock::take(&app).await;
    let addr = app.addr;
    let post = move || {
        tokio::spawn(async move {
            crate::helpers::send(addr, hyper::Method::POST, "/api/counter", &[], b"").await
        })
    };
    let blocked = post();
    lock.await_writer_blocked().await;
    let queued = [post(), post()];
    app.await_metric("counter_write_queue_depth", 2.0).await;

    let shed = app.post_counter().await;
    assert_eq!(shed.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(shed.header("retry-after"), Some("1"));
    assert!(shed.text().contains("overloaded"), "{}", shed.text());
    assert_eq!(
        app.metric(r#"counter_increments_total{outcome="shed"}"#)
            .await,
        1.0
    );

    lock.release().await;
    let mut values = vec![blocked.await.unwrap().value()];
    for task in queued {
        values.push(task.await.unwrap().value());
    }
    assert_exactly(values, 0, 3);
    assert_eq!(
        app.committed().await,
        3,
        "the shed increment was not counted"
    );
}

#[tokio::test]
async fn a_deadline_withdraws_only_queued_increments_and_never_lies_about_counting() {
    let app = spawn_app(
        Backend::Postgres,
        &[
            ("MAX_BATCH", "1"),
            ("REQUEST_TIMEOUT_MS", "300"),
            ("STATEMENT_TIMEOUT_MS", "20000"),
        ],
    )
    .await;
    let lock = RowLock::take(&app).await;
    let addr = app.addr;
    let in_statement = tokio::spawn(async move {
        crate::helpers::send(addr, hyper::Method::POST, "/api/counter", &[], b"").await
    });
    lock.await_writer_blocked().await;

    // Still queued when its deadline passes: withdrawn, 504, certainly not counted.
    let expired = app.post_counter().await;
    assert_eq!(expired.status, StatusCode::GATEWAY_TIMEOUT);
    assert!(expired.text().contains("not counted"));
    assert_eq!(
        app.metric(r#"counter_increments_total{outcome="expired"}"#)
            .await,
        1.0
    );

    // Already in a statement when its deadline passed: it waits for the outcome and gets it.
    lock.release().await;
    let taken = in_statement.await.unwrap();
    assert_eq!((taken.status, taken.value()), (StatusCode::OK, 1));
    assert_eq!(
        app.post_counter().await.value(),
        2,
        "the withdrawn increment never counted"
    );
    assert_eq!(app.committed().await, 2);
}

#[tokio::test]
async fn a_statement_timeout_fails_the_batch_with_503_and_counts_nothing() {
    let app = spawn_app(
        Backend::Postgres,
        &[
            ("STATEMENT_TIMEOUT_MS", "200"),
            ("REQUEST_TIMEOUT_MS", "20000"),
        ],
    )
    .await;
    let lock = RowLock::take(&app).await;
    let answer = app.post_counter().await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(answer.header("retry-after"), Some("1"));
    assert_eq!(
        answer.text(),
        r#"{"error":"store unavailable; not counted"}"#,
        "no SQL or cause leaks"
    );
    assert_eq!(
        app.metric(r#"counter_increments_total{outcome="failed"}"#)
            .await,
        1.0
    );
    lock.release().await;
    assert_eq!(app.post_counter().await.value(), 1);
}

#[tokio::test]
async fn a_graceful_stop_flushes_every_queued_increment() {
    let mut app = spawn_app(Backend::Postgres, &[("MAX_BATCH", "1")]).await;
    let lock = RowLock::take(&app).await;
    let addr = app.addr;
    let posts: Vec<_> = (0..5)
        .map(|_| {
            tokio::spawn(async move {
                crate::helpers::send(addr, hyper::Method::POST, "/api/counter", &[], b"").await
            })
        })
        .collect();
    lock.await_writer_blocked().await;
    app.await_metric("counter_write_queue_depth", 4.0).await;

    let stopping = tokio::spawn(async move {
        app.stop().await;
        app
    });
    lock.release().await;
    let mut values = Vec::new();
    for post in posts {
        let answer = post.await.unwrap();
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
        values.push(answer.value());
    }
    assert_exactly(values, 0, 5);
    let app = stopping.await.unwrap();
    assert_eq!(app.committed().await, 5);
}
