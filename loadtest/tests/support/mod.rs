//! Small misbehaving HTTP/1.1 servers on loopback, shared by the integration tests.
#![allow(dead_code)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// What the test server does with request number `n` (counted over all connections).
pub enum Behaviour {
    Answer(u16, String),
    /// Answer after this long (the connection is blocked meanwhile, like a stalled server).
    After(Duration, String),
    /// Never answer.
    Hang,
}

pub async fn spawn_server(behave: impl Fn(u64) -> Behaviour + Send + Sync + 'static) -> String {
    spawn_watched_server(behave).await.0
}

/// As `spawn_server`, with a receiver of the number of requests received so far, so that a
/// test can await "the load has started" instead of sleeping.
pub async fn spawn_watched_server(
    behave: impl Fn(u64) -> Behaviour + Send + Sync + 'static,
) -> (String, watch::Receiver<u64>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let behave = Arc::new(behave);
    let requests = Arc::new(AtomicU64::new(0));
    let (seen, watched) = watch::channel(0u64);
    let seen = Arc::new(seen);
    tokio::spawn(async move {
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            let (behave, requests, seen) = (
                Arc::clone(&behave),
                Arc::clone(&requests),
                Arc::clone(&seen),
            );
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    // Requests have no body: each ends with the blank line of its head.
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match socket.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
                    buf.drain(..end);
                    let n = requests.fetch_add(1, Ordering::SeqCst);
                    seen.send_modify(|seen| *seen = (*seen).max(n + 1));
                    let (status, body) = match behave(n) {
                        Behaviour::Answer(status, body) => (status, body),
                        Behaviour::After(delay, body) => {
                            tokio::time::sleep(delay).await;
                            (200, body)
                        }
                        Behaviour::Hang => std::future::pending().await,
                    };
                    let answer = format!(
                        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    if socket.write_all(answer.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (format!("http://{addr}"), watched)
}

pub fn body(value: i64) -> String {
    format!("{{\"value\":{value}}}")
}
