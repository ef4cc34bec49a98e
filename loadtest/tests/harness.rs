//! The harness against small misbehaving servers on loopback: each test breaks one thing the
//! harness exists to catch (duplicate or lost increments, queueing hidden by coordinated
//! omission, requests that could not be sent) and checks the run says so.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use loadtest::client::Endpoint;
use loadtest::drive::{self, Mode, Plan, Scenario, Stop};
use loadtest::progress::Progress;
use loadtest::report::RunResult;
use loadtest::targets::Targets;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// What the test server does with request number `n` (counted over all connections).
enum Behaviour {
    Answer(u16, String),
    /// Answer after this long (the connection is blocked meanwhile, like a stalled server).
    After(Duration, String),
    /// Never answer.
    Hang,
}

async fn spawn_server(behave: impl Fn(u64) -> Behaviour + Send + Sync + 'static) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let behave = Arc::new(behave);
    let requests = Arc::new(AtomicU64::new(0));
    tokio::spawn(async move {
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            let (behave, requests) = (Arc::clone(&behave), Arc::clone(&requests));
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
    format!("http://{addr}")
}

fn plan(scenario: Scenario, mode: Mode, connections: usize, duration: Duration) -> Plan {
    Plan {
        scenario,
        mode,
        connections,
        warmup: Duration::ZERO,
        duration,
        max_requests: None,
        timeout: Duration::from_secs(5),
        late_after: Duration::from_millis(1),
        exclusive: true,
    }
}

async fn run(url: &str, plan: Plan, targets: Option<&Targets>) -> RunResult {
    let endpoint = Arc::new(Endpoint::resolve(url).await.unwrap());
    let outcome = drive::run(endpoint, plan.clone(), &Progress::hidden(), &Stop::new())
        .await
        .unwrap();
    RunResult::new(url, plan, outcome, targets)
}

fn body(value: i64) -> String {
    format!("{{\"value\":{value}}}")
}

fn capped(mut plan: Plan, requests: u64) -> Plan {
    plan.max_requests = Some(requests);
    plan
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_correct_counter_passes_with_an_exact_delta() {
    let counter = Arc::new(AtomicI64::new(100));
    let url = spawn_server(move |_| {
        Behaviour::Answer(200, body(counter.fetch_add(1, Ordering::SeqCst) + 1))
    })
    .await;
    let result = run(
        &url,
        capped(
            plan(Scenario::Write, Mode::Closed, 8, Duration::from_secs(10)),
            500,
        ),
        None,
    )
    .await;
    let writes = result.writes.as_ref().unwrap();
    assert!(result.passed, "{}", result.summary(false));
    assert_eq!(writes.successes, 500);
    assert_eq!(
        writes.counter_delta,
        Some(500),
        "sentinels bracket exactly the run's increments"
    );
    assert_eq!((writes.duplicates, writes.gaps, writes.stale), (0, 0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_values_fail_the_run() {
    // Every value is handed out twice: two increments "committed" as one.
    let counter = Arc::new(AtomicI64::new(0));
    let url = spawn_server(move |_| {
        Behaviour::Answer(200, body(counter.fetch_add(1, Ordering::SeqCst) / 2 + 1))
    })
    .await;
    let result = run(
        &url,
        capped(
            plan(Scenario::Write, Mode::Closed, 4, Duration::from_secs(10)),
            200,
        ),
        None,
    )
    .await;
    let writes = result.writes.as_ref().unwrap();
    assert!(!result.passed);
    assert!(writes.duplicates > 0, "{}", result.summary(false));
    assert!(result.summary(false).contains("VIOLATION"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn increments_without_answers_fail_the_run() {
    // Each request moves the counter by 2: every other increment was counted without an answer.
    let counter = Arc::new(AtomicI64::new(0));
    let url = spawn_server(move |_| {
        Behaviour::Answer(200, body(counter.fetch_add(2, Ordering::SeqCst) + 2))
    })
    .await;
    let result = run(
        &url,
        capped(
            plan(Scenario::Write, Mode::Closed, 4, Duration::from_secs(10)),
            200,
        ),
        None,
    )
    .await;
    let writes = result.writes.as_ref().unwrap();
    assert!(!result.passed);
    assert_eq!(writes.uncertain, 0);
    assert!(writes.gaps >= 200, "{}", result.summary(false));

    // The same server with other writers declared: gaps are not judged.
    let counter = Arc::new(AtomicI64::new(0));
    let url = spawn_server(move |_| {
        Behaviour::Answer(200, body(counter.fetch_add(2, Ordering::SeqCst) + 2))
    })
    .await;
    let mut shared = capped(
        plan(Scenario::Write, Mode::Closed, 4, Duration::from_secs(10)),
        200,
    );
    shared.exclusive = false;
    let result = run(&url, shared, None).await;
    assert!(result.passed, "{}", result.summary(false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_loop_charges_a_stall_to_every_request_queued_behind_it() {
    // One connection, 1000 requests/s, and request 50 stalls the server for 300 ms: about 300
    // requests were due during the stall. Measured from their intended times they waited up to
    // 300 ms; a closed-loop (coordinated-omission) measurement would see one slow request.
    let url = spawn_server(|n| {
        if n == 50 {
            Behaviour::After(Duration::from_millis(300), body(1))
        } else {
            Behaviour::Answer(200, body(1))
        }
    })
    .await;
    let result = run(
        &url,
        plan(
            Scenario::Read,
            Mode::Open { rate: 1000.0 },
            1,
            Duration::from_secs(1),
        ),
        None,
    )
    .await;
    let latency = result.total.latency_ms;
    assert!(latency.max >= 300.0, "{}", result.summary(false));
    assert!(
        latency.p90 >= 100.0,
        "the stall's queue must reach the p90: {}",
        result.summary(false)
    );
    let send = result.open_loop.unwrap();
    assert!(
        send.late >= 250,
        "requests due during the stall are late: {}",
        result.summary(false)
    );
    assert_eq!(result.total.failed, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_that_could_not_be_sent_are_counted_and_fail_the_targets() {
    // A server that never answers: the one connection times out every 200 ms, while 100
    // requests per second fall due. Those never sent are reported, not dropped.
    let url = spawn_server(|_| Behaviour::Hang).await;
    let mut p = plan(
        Scenario::Read,
        Mode::Open { rate: 100.0 },
        1,
        Duration::from_secs(1),
    );
    p.timeout = Duration::from_millis(200);
    let targets = Targets {
        max_error_rate: Some(0.0),
        ..Targets::default()
    };
    let result = run(&url, p, Some(&targets)).await;
    let send = result.open_loop.unwrap();
    assert!(send.unsent >= 50, "{}", result.summary(false));
    assert_eq!(result.total.errors.get("unsent"), Some(&send.unsent));
    assert!(result.total.errors.get("timeout").is_some_and(|&n| n >= 3));
    assert!(!result.passed);
    assert!(result.summary(false).contains("MISSED"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_statuses_count_against_the_error_rate() {
    let url = spawn_server(|n| {
        if n % 10 == 0 {
            Behaviour::Answer(503, "{\"error\":\"overloaded\"}".into())
        } else {
            Behaviour::Answer(200, body(5))
        }
    })
    .await;
    let targets = Targets {
        max_error_rate: Some(0.01),
        ..Targets::default()
    };
    let result = run(
        &url,
        capped(
            plan(Scenario::Read, Mode::Closed, 2, Duration::from_secs(10)),
            1000,
        ),
        Some(&targets),
    )
    .await;
    assert_eq!(result.total.errors.get("status_503"), Some(&100));
    assert!((result.total.error_rate - 0.1).abs() < 1e-9);
    assert!(!result.passed);
}
