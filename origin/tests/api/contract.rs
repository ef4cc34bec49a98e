//! The HTTP contract of docs/design.md §1, held by every store (PostgreSQL also as the
//! least-privilege role signed in with an IAM token).

use hyper::{Method, StatusCode};

use crate::helpers::{send, spawn_app, STORES};

#[tokio::test]
async fn counter_reads_and_increments_with_the_documented_headers() {
    for backend in STORES {
        let app = spawn_app(backend, &[]).await;
        app.await_readiness(StatusCode::OK).await;

        let first = app.get("/api/counter").await;
        assert_eq!(first.status, StatusCode::OK, "{backend:?}");
        assert_eq!(first.text(), r#"{"value":0}"#, "{backend:?}");
        assert_eq!(first.header("content-type"), Some("application/json"));
        assert_eq!(
            first.header("cache-control"),
            Some("public, max-age=0, s-maxage=1, stale-while-revalidate=1, stale-if-error=60")
        );
        assert_eq!(first.header("etag"), Some("\"0\""));

        let one = app.post_counter().await;
        assert_eq!(
            (one.status, one.value()),
            (StatusCode::OK, 1),
            "{backend:?}"
        );
        assert_eq!(one.header("cache-control"), Some("no-store"));
        assert_eq!(app.post_counter().await.value(), 2);

        // A committed batch refreshes the cached value: no stale read after our own write.
        assert_eq!(app.get("/api/counter").await.value(), 2, "{backend:?}");
    }
}

#[tokio::test]
async fn etag_revalidation_answers_304_until_the_value_changes() {
    for backend in STORES {
        let app = spawn_app(backend, &[]).await;
        app.post_counter().await;
        let read = app.get("/api/counter").await;
        let etag = read.header("etag").unwrap().to_string();

        let same = send(
            app.addr,
            Method::GET,
            "/api/counter",
            &[("if-none-match", &etag)],
            b"",
        )
        .await;
        assert_eq!(same.status, StatusCode::NOT_MODIFIED, "{backend:?}");
        assert!(same.body.is_empty());
        assert_eq!(same.header("etag"), Some(etag.as_str()));
        let listed = format!("\"999\", W/{etag}");
        let weak = send(
            app.addr,
            Method::GET,
            "/api/counter",
            &[("if-none-match", &listed)],
            b"",
        )
        .await;
        assert_eq!(weak.status, StatusCode::NOT_MODIFIED);

        app.post_counter().await;
        let changed = send(
            app.addr,
            Method::GET,
            "/api/counter",
            &[("if-none-match", &etag)],
            b"",
        )
        .await;
        assert_eq!(
            (changed.status, changed.value()),
            (StatusCode::OK, 2),
            "{backend:?}"
        );
    }
}

#[tokio::test]
async fn probes_are_split_and_metrics_live_only_on_their_own_listener() {
    for backend in STORES {
        let app = spawn_app(backend, &[]).await;
        let health = app.get("/healthz").await;
        assert_eq!(
            (health.status, health.text()),
            (StatusCode::OK, r#"{"status":"ok"}"#)
        );
        app.await_readiness(StatusCode::OK).await;
        assert_eq!(app.get("/readyz").await.text(), r#"{"status":"ready"}"#);

        assert_eq!(
            app.get("/metrics").await.status,
            StatusCode::NOT_FOUND,
            "metrics must not be public"
        );
        let metrics = app.metrics_text().await;
        for name in [
            "http_requests_total",
            "http_request_duration_seconds_bucket",
            "counter_value",
            "counter_batch_size_bucket",
            "counter_store_statement_duration_seconds_bucket",
            "counter_write_queue_depth",
            "counter_read_cache_requests_total",
            "counter_increments_total",
            "counter_ready",
            "process_resident_memory_bytes",
        ] {
            assert!(metrics.contains(name), "{name} missing from /metrics");
        }
    }
}

#[tokio::test]
async fn unknown_paths_and_methods_get_json_errors_with_allow() {
    for backend in STORES {
        let app = spawn_app(backend, &[]).await;
        let missing = app.get("/nope/../../etc/passwd").await;
        assert_eq!(
            (missing.status, missing.text()),
            (StatusCode::NOT_FOUND, r#"{"error":"not found"}"#)
        );
        assert_eq!(missing.header("content-type"), Some("application/json"));

        let delete = send(app.addr, Method::DELETE, "/api/counter", &[], b"").await;
        assert_eq!(delete.status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(delete.header("allow"), Some("GET, HEAD, POST, OPTIONS"));
        assert_eq!(delete.text(), r#"{"error":"method not allowed"}"#);

        let post_probe = send(app.addr, Method::POST, "/healthz", &[], b"").await;
        assert_eq!(
            (post_probe.status, post_probe.header("allow")),
            (StatusCode::METHOD_NOT_ALLOWED, Some("GET, HEAD, OPTIONS"))
        );

        let options = send(app.addr, Method::OPTIONS, "/api/counter", &[], b"").await;
        assert_eq!(
            (options.status, options.header("allow")),
            (StatusCode::NO_CONTENT, Some("GET, HEAD, POST, OPTIONS"))
        );

        let head = send(app.addr, Method::HEAD, "/api/counter", &[], b"").await;
        assert_eq!(head.status, StatusCode::OK);
        assert!(head.body.is_empty(), "HEAD carries no body");

        // Query strings never change the route.
        assert_eq!(
            app.get("/api/counter?cachebuster=1").await.status,
            StatusCode::OK
        );
        // Unknown paths share one label value: no request can create a series.
        let metrics = app.metrics_text().await;
        assert!(!metrics.contains("passwd") && metrics.contains(r#"endpoint="other""#));
    }
}

#[tokio::test]
async fn every_static_file_is_served_with_its_type_cache_policy_and_security_headers() {
    let app = spawn_app(crate::helpers::Backend::Embedded, &[]).await;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../static");
    let mut files = Vec::new();
    let mut dirs = vec![root.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path)
            } else {
                files.push(path)
            }
        }
    }
    assert!(
        files.iter().any(|f| f.ends_with("index.html")),
        "static/index.html is the page"
    );
    for file in files {
        let url = format!("/{}", file.strip_prefix(&root).unwrap().display());
        let answer = app.get(&url).await;
        assert_eq!(answer.status, StatusCode::OK, "{url}");
        assert_eq!(
            answer.body,
            std::fs::read(&file).unwrap(),
            "{url} is served byte for byte"
        );
        let expected_type = match file.extension().and_then(|e| e.to_str()) {
            Some("html") => "text/html; charset=utf-8",
            Some("css") => "text/css; charset=utf-8",
            Some("js" | "mjs") => "text/javascript; charset=utf-8",
            Some("svg") => "image/svg+xml",
            Some("json") => "application/json",
            Some("webmanifest") => "application/manifest+json",
            Some("png") => "image/png",
            Some("ico") => "image/x-icon",
            Some("txt") => "text/plain; charset=utf-8",
            Some("woff2") => "font/woff2",
            other => panic!("{url}: no expected type for {other:?}"),
        };
        assert_eq!(answer.header("content-type"), Some(expected_type), "{url}");
        let cache = if url.starts_with("/assets/") {
            "public, max-age=31536000, immutable"
        } else {
            "public, max-age=0, s-maxage=60"
        };
        assert_eq!(answer.header("cache-control"), Some(cache), "{url}");
        assert!(answer
            .header("content-security-policy")
            .unwrap()
            .contains("default-src 'none'"));
        assert_eq!(answer.header("x-content-type-options"), Some("nosniff"));

        let etag = answer.header("etag").unwrap().to_string();
        let again = send(
            app.addr,
            Method::GET,
            &url,
            &[("if-none-match", &etag)],
            b"",
        )
        .await;
        assert_eq!(again.status, StatusCode::NOT_MODIFIED, "{url}");
    }
    let page = app.get("/").await;
    assert_eq!(
        page.body,
        std::fs::read(root.join("index.html")).unwrap(),
        "/ is the page"
    );
}
