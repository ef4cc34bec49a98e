//! Bounded everything at the HTTP layer: header and body sizes, slow and silent clients, idle
//! keep-alive connections. Each misbehaving client gets the right answer (or a closed
//! connection) and the server keeps serving everyone else.

use std::time::Duration;

use hyper::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{send, spawn_app, Backend};

/// Sends raw bytes and returns everything the server writes until it closes (bounded).
async fn raw_exchange(addr: std::net::SocketAddr, bytes: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    read_until_closed(&mut stream).await
}

async fn read_until_closed(stream: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut out)).await;
    assert!(read.is_ok(), "the server never closed the connection");
    String::from_utf8_lossy(&out).into_owned()
}

fn status_line(response: &str) -> &str {
    response.lines().next().unwrap_or("")
}

#[tokio::test]
async fn oversized_headers_get_431_and_the_server_keeps_serving() {
    let app = spawn_app(Backend::Embedded, &[]).await;
    let huge = format!(
        "GET /api/counter HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    let response = raw_exchange(app.addr, huge.as_bytes()).await;
    assert!(
        status_line(&response).starts_with("HTTP/1.1 431"),
        "{}",
        status_line(&response)
    );
    let many: String = (0..200).map(|i| format!("X-H{i}: v\r\n")).collect();
    let response = raw_exchange(
        app.addr,
        format!("GET / HTTP/1.1\r\nHost: x\r\n{many}\r\n").as_bytes(),
    )
    .await;
    assert!(
        status_line(&response).starts_with("HTTP/1.1 431"),
        "{}",
        status_line(&response)
    );
    assert_eq!(app.get("/healthz").await.status, StatusCode::OK);
}

#[tokio::test]
async fn oversized_bodies_get_413_and_are_not_counted() {
    let app = spawn_app(Backend::Embedded, &[]).await;
    app.await_readiness(StatusCode::OK).await;
    static BIG: [u8; 4096] = [b'x'; 4096];
    let declared = send(app.addr, hyper::Method::POST, "/api/counter", &[], &BIG).await;
    assert_eq!(declared.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(declared.text(), r#"{"error":"request body too large"}"#);

    let chunk = format!("{:x}\r\n{}\r\n", 4096, "y".repeat(4096));
    let chunked = raw_exchange(
        app.addr,
        format!("POST /api/counter HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{chunk}0\r\n\r\n").as_bytes(),
    )
    .await;
    assert!(
        status_line(&chunked).starts_with("HTTP/1.1 413"),
        "{}",
        status_line(&chunked)
    );

    let small = send(
        app.addr,
        hyper::Method::POST,
        "/api/counter",
        &[("content-type", "application/json")],
        b"{}",
    )
    .await;
    assert_eq!(
        small.value(),
        1,
        "a small body is ignored; the oversized ones were not counted"
    );
}

#[tokio::test]
async fn malformed_requests_get_400_and_conflicting_lengths_are_refused() {
    let app = spawn_app(Backend::Embedded, &[]).await;
    for garbage in [
        &b"THIS IS NOT HTTP\r\n\r\n"[..],
        b"GET /api/counter HTTP/9.9\r\nHost: x\r\n\r\n",
        b"GET /\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST /api/counter HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        b"POST /api/counter HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
    ] {
        let response = raw_exchange(app.addr, garbage).await;
        assert!(
            response.is_empty() || status_line(&response).starts_with("HTTP/1.1 400"),
            "{:?} → {}",
            String::from_utf8_lossy(garbage),
            status_line(&response)
        );
    }
    assert_eq!(
        app.get("/api/counter").await.value(),
        0,
        "nothing was counted"
    );
}

#[tokio::test]
async fn a_client_sending_headers_slowly_is_cut_off_while_others_are_served() {
    let app = spawn_app(Backend::Embedded, &[("HEADER_READ_TIMEOUT_MS", "300")]).await;
    let mut slow = TcpStream::connect(app.addr).await.unwrap();
    slow.write_all(b"GET /api/counter HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    // The others are served while the slow client dribbles.
    for _ in 0..5 {
        assert_eq!(app.get("/healthz").await.status, StatusCode::OK);
        let _ = slow.write_all(b"X-Slow: 1\r\n").await;
    }
    let response = read_until_closed(&mut slow).await;
    assert!(
        response.is_empty() || status_line(&response).starts_with("HTTP/1.1 408"),
        "{response}"
    );
    // A connection that never sends a byte is closed too.
    let mut silent = TcpStream::connect(app.addr).await.unwrap();
    assert_eq!(read_until_closed(&mut silent).await, "");
    assert_eq!(app.get("/healthz").await.status, StatusCode::OK);
}

#[tokio::test]
async fn idle_keep_alive_connections_outlive_the_header_timeout_and_close_after_the_idle_timeout() {
    let app = spawn_app(
        Backend::Embedded,
        &[
            ("HEADER_READ_TIMEOUT_MS", "200"),
            ("KEEPALIVE_IDLE_TIMEOUT_S", "1"),
        ],
    )
    .await;
    let mut conn = TcpStream::connect(app.addr).await.unwrap();
    let request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut buf = vec![0u8; 4096];

    conn.write_all(request).await.unwrap();
    let n = conn.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));

    // Idle for longer than the header-read timeout, shorter than the idle timeout: still open.
    // (Waiting is the behaviour under test: there is no event to await instead.)
    tokio::time::sleep(Duration::from_millis(500)).await;
    conn.write_all(request).await.unwrap();
    let n = conn.read(&mut buf).await.unwrap();
    assert!(
        String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"),
        "keep-alive survived the header timeout"
    );

    // Then idle past the idle timeout: the server closes it.
    let started = std::time::Instant::now();
    assert_eq!(read_until_closed(&mut conn).await, "");
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "closed early, after {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn http2_cleartext_is_served_on_the_same_port() {
    let app = spawn_app(Backend::Embedded, &[]).await;
    let stream = TcpStream::connect(app.addr).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    tokio::spawn(connection);
    let request = hyper::Request::get("http://localhost/healthz")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.version(), hyper::Version::HTTP_2);
}
