//! The binary as an operator runs it: configuration errors, `--help`, SIGTERM under load, and the
//! embedded store surviving a restart.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::StatusCode;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::helpers::{fresh_database, send};

const BINARY: &str = env!("CARGO_BIN_EXE_counter-origin");

/// Starts the binary with `env` and returns it once it logged its listening address.
async fn start_binary(env: &[(&str, &str)]) -> (Child, SocketAddr, Arc<Mutex<Vec<String>>>) {
    let mut command = Command::new(BINARY);
    command
        .env_clear()
        .envs([
            ("LISTEN_ADDR", "127.0.0.1:0"),
            ("METRICS_ADDR", "127.0.0.1:0"),
            ("LOG_LEVEL", "info"),
            ("ACCESS_LOG_EVERY", "0"),
        ])
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    let mut child = command.spawn().expect("spawn counter-origin");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let log = Arc::new(Mutex::new(Vec::new()));
    let addr = loop {
        let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .expect("start-up log line")
            .unwrap()
            .expect("the origin exited before it started");
        log.lock().unwrap().push(line.clone());
        if line.contains("counter origin started") {
            let start = line.find("\"addr\":\"").unwrap() + 8;
            break line[start..].split('"').next().unwrap().parse().unwrap();
        }
    };
    let tail = Arc::clone(&log);
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            tail.lock().unwrap().push(line);
        }
    });
    (child, addr, log)
}

fn sigterm(child: &Child) {
    let pid = child.id().expect("running") as libc::pid_t;
    // SAFETY: sending a signal to a child process we spawned and still own.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
}

async fn exit_code(child: &mut Child) -> i32 {
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("exits")
        .unwrap();
    status.code().expect("exited, not killed")
}

#[tokio::test]
async fn an_invalid_variable_exits_2_naming_it() {
    let output = std::process::Command::new(BINARY)
        .env_clear()
        .env("MAX_BATCH", "lots")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("MAX_BATCH") && stderr.contains("whole number"),
        "{stderr}"
    );
}

#[tokio::test]
async fn help_lists_every_variable() {
    let output = std::process::Command::new(BINARY)
        .arg("--help")
        .output()
        .unwrap();
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for variable in counter_origin::config::VARIABLES {
        assert!(
            help.contains(variable.name),
            "{} missing from --help",
            variable.name
        );
    }
}

#[tokio::test]
async fn the_effective_configuration_is_logged_once_without_secrets() {
    let url = "postgres://app:hunter2-secret@127.0.0.1:9/counter?sslmode=disable";
    let (mut child, _, log) =
        start_binary(&[("DATABASE_URL", url), ("DRAIN_PERIOD_MS", "0")]).await;
    sigterm(&child);
    assert_eq!(exit_code(&mut child).await, 0);
    let log = log.lock().unwrap().join("\n");
    assert_eq!(log.matches("counter origin started").count(), 1);
    assert!(log.contains("app:***@127.0.0.1:9"), "{log}");
    assert!(!log.contains("hunter2"), "the password leaked: {log}");
}

#[tokio::test]
async fn the_embedded_store_keeps_the_count_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().display().to_string();
    let env = [("DATA_DIR", data_dir.as_str()), ("DRAIN_PERIOD_MS", "0")];
    let (mut child, addr, _) = start_binary(&env).await;
    for expected in 1..=3 {
        assert_eq!(
            send(addr, hyper::Method::POST, "/api/counter", &[], b"")
                .await
                .value(),
            expected
        );
    }
    sigterm(&child);
    assert_eq!(exit_code(&mut child).await, 0);

    let (mut child, addr, _) = start_binary(&env).await;
    assert_eq!(
        send(addr, hyper::Method::GET, "/api/counter", &[], b"")
            .await
            .value(),
        3
    );
    assert_eq!(
        send(addr, hyper::Method::POST, "/api/counter", &[], b"")
            .await
            .value(),
        4
    );
    sigterm(&child);
    assert_eq!(exit_code(&mut child).await, 0);
}

/// One keep-alive client posting until the server goes away; returns the values it was given
/// and how many other answers it got.
async fn post_until_refused(
    addr: SocketAddr,
    values: Arc<Mutex<Vec<i64>>>,
    rejected: Arc<Mutex<Vec<StatusCode>>>,
) {
    'connections: loop {
        let Ok(stream) = tokio::net::TcpStream::connect(addr).await else {
            return;
        };
        let Ok((mut sender, connection)) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await
        else {
            return;
        };
        tokio::spawn(connection);
        loop {
            if sender.ready().await.is_err() {
                continue 'connections;
            }
            let request = hyper::Request::post("/api/counter")
                .header("host", "x")
                .body(Empty::<Bytes>::new())
                .unwrap();
            let Ok(response) = sender.send_request(request).await else {
                continue 'connections;
            };
            let status = response.status();
            let body = response
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            if status == StatusCode::OK {
                let text = std::str::from_utf8(&body).unwrap();
                values
                    .lock()
                    .unwrap()
                    .push(text[9..text.len() - 1].parse().unwrap());
            } else {
                rejected.lock().unwrap().push(status);
            }
        }
    }
}

#[tokio::test]
async fn sigterm_under_load_drains_and_loses_no_accepted_increment() {
    let database = fresh_database().await;
    let (mut child, addr, log) = start_binary(&[
        ("DATABASE_URL", &database),
        ("DRAIN_PERIOD_MS", "400"),
        ("READY_CHECK_INTERVAL_MS", "50"),
        ("READY_STALE_AFTER_MS", "1000"),
    ])
    .await;
    let values = Arc::new(Mutex::new(Vec::new()));
    let rejected = Arc::new(Mutex::new(Vec::new()));
    let clients: Vec<_> = (0..32)
        .map(|_| {
            tokio::spawn(post_until_refused(
                addr,
                Arc::clone(&values),
                Arc::clone(&rejected),
            ))
        })
        .collect();
    while values.lock().unwrap().len() < 500 {
        tokio::task::yield_now().await;
    }

    sigterm(&child);
    // Readiness turns 503 at once, while increments are still being served through the drain.
    let saw_unready = Arc::new(AtomicBool::new(false));
    loop {
        let answer = send(addr, hyper::Method::GET, "/readyz", &[], b"").await;
        if answer.status == StatusCode::SERVICE_UNAVAILABLE {
            assert!(answer.text().contains("draining"));
            saw_unready.store(true, Ordering::Relaxed);
            break;
        }
    }
    let served_during_drain = values.lock().unwrap().len();
    assert_eq!(exit_code(&mut child).await, 0, "graceful exit");
    for client in clients {
        client.await.unwrap();
    }
    assert!(saw_unready.load(Ordering::Relaxed));
    let values = values.lock().unwrap().clone();
    assert!(
        values.len() > served_during_drain,
        "requests were still served after readiness failed"
    );

    let distinct: BTreeSet<i64> = values.iter().copied().collect();
    assert_eq!(distinct.len(), values.len(), "no value given twice");
    let client = crate::helpers::pg_connect(&database).await;
    let committed: i64 = client
        .query_one("SELECT value FROM request_counter_state", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        committed,
        values.len() as i64,
        "every 200 committed, nothing else counted"
    );
    assert_eq!(
        distinct,
        (1..=committed).collect(),
        "values are exactly 1 … committed"
    );
    let rejected = rejected.lock().unwrap().clone();
    assert!(
        rejected
            .iter()
            .all(|s| *s == StatusCode::SERVICE_UNAVAILABLE),
        "{rejected:?}"
    );
    assert!(log
        .lock()
        .unwrap()
        .iter()
        .any(|l| l.contains("\"flushed\":true")));
}

#[test]
fn the_configuration_doc_documents_every_variable_with_its_default() {
    let readme = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/configuration.md"
    ))
    .unwrap();
    for variable in counter_origin::config::VARIABLES {
        let row = readme
            .lines()
            .find(|line| line.starts_with(&format!("| `{}` |", variable.name)))
            .unwrap_or_else(|| panic!("docs/configuration.md has no row for {}", variable.name));
        let default = variable
            .default
            .map_or("unset".to_string(), |d| format!("`{d}`"));
        assert!(
            row.contains(&format!("| {default} |")),
            "docs/configuration.md row for {} does not give its default {default}: {row}",
            variable.name
        );
    }
}
