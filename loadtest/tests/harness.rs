//! The harness against small misbehaving servers on loopback: each test breaks one thing the
//! harness exists to catch (duplicate or lost increments, queueing hidden by coordinated
//! omission, requests that could not be sent, an outage, a closing sentinel that fails) and
//! checks the run says so, in its verdict, its summary and its report.

mod support;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use loadtest::client::Endpoint;
use loadtest::correctness::WriteOutcome;
use loadtest::drive::{self, Mode, Plan, Scenario, Stage, Stop};
use loadtest::progress::Progress;
use loadtest::report::{RunResult, Verdict};
use loadtest::targets::Targets;
use support::{body, spawn_server, Behaviour};

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
    let outcome = drive::run(endpoint, plan.clone(), &Progress::hidden())
        .await
        .unwrap();
    RunResult::new(url, plan, outcome, targets)
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
    // Sends fell far behind the schedule: the verdict says latency includes the client's lag.
    let verdict = result.verdict_line(false);
    assert!(
        verdict.contains("warning: the load generator fell behind its schedule")
            && verdict.contains("include this client's own lag"),
        "{verdict}"
    );
    assert!(result.html().contains("fell behind its schedule"));
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

// Issue 14, defect 1: without a targets file a failing run said PASS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_targets_a_run_that_fails_everything_fails() {
    // The base URL a user gets wrong: everything is 404.
    let url = spawn_server(|_| Behaviour::Answer(404, "{\"error\":\"not found\"}".into())).await;
    let result = run(
        &url,
        capped(
            plan(Scenario::Read, Mode::Closed, 2, Duration::from_secs(10)),
            200,
        ),
        None,
    )
    .await;
    let summary = result.summary(false);
    assert!(!result.passed, "{summary}");
    assert_eq!(result.verdict, Verdict::Fail);
    assert_eq!(result.total.status_codes.get("404"), Some(&200));
    assert!(summary.contains("result: FAIL"), "{summary}");
    assert!(
        summary.contains("no targets file"),
        "the verdict says it had no targets: {summary}"
    );
    assert!(result.html().contains("class=\"verdict fail\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_targets_an_outage_mid_run_fails_and_a_healthy_run_passes() {
    // The origin "stops" after 300 answers: the rest are 503s (41.65% errors in the issue).
    let url = spawn_server(|n| {
        if n < 300 {
            Behaviour::Answer(200, body(1))
        } else {
            Behaviour::Answer(503, "{\"error\":\"unavailable\"}".into())
        }
    })
    .await;
    let p = capped(
        plan(Scenario::Read, Mode::Closed, 2, Duration::from_secs(10)),
        500,
    );
    let result = run(&url, p.clone(), None).await;
    assert!((result.total.error_rate - 0.4).abs() < 1e-9);
    assert!(!result.passed, "{}", result.summary(false));
    let budget = &result.targets[0];
    assert!(budget.default && !budget.passed, "{:?}", result.targets);

    let healthy = spawn_server(|_| Behaviour::Answer(200, body(1))).await;
    let result = run(&healthy, p, None).await;
    assert!(result.passed, "{}", result.summary(false));
    assert!(result
        .verdict_line(false)
        .starts_with("PASS (no targets file: judged by the default error budget of 1% only"));
}

// Defect 2: "write correctness: ok" although the gaps were never checked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_closing_sentinel_is_ok_with_gaps_not_checked() {
    // Request 0 is the opening sentinel, 1..=200 the capped run; from then on every POST fails,
    // the closing sentinel's retries included.
    let counter = Arc::new(AtomicI64::new(0));
    let url = spawn_server(move |n| {
        if n <= 200 {
            Behaviour::Answer(200, body(counter.fetch_add(1, Ordering::SeqCst) + 1))
        } else {
            Behaviour::Answer(503, "{\"error\":\"unavailable\"}".into())
        }
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
    assert_eq!(writes.after, None);
    assert_eq!(writes.outcome, WriteOutcome::OkGapsNotChecked);
    let summary = result.summary(false);
    assert!(
        summary.contains("write correctness (whole run, warm-up included): ok (gaps not checked: the closing sentinel"),
        "{summary}"
    );
    let json: serde_json::Value = serde_json::from_str(&result.json()).unwrap();
    assert_eq!(json["writes"]["outcome"], "ok_gaps_not_checked");
}

// Defect 3 (the library part; the signal itself is tests/cli.rs): a stop ends the run with
// a partial result, and answers that never come are abandoned after a bounded grace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_ends_the_run_early_with_a_partial_result() {
    // Every request hangs: four connections, four requests in flight that never end.
    let mut p = plan(
        Scenario::Read,
        Mode::Open { rate: 200.0 },
        4,
        Duration::from_secs(60),
    );
    p.timeout = Duration::from_secs(60);
    let (url, mut seen) = support::spawn_watched_server(|_| Behaviour::Hang).await;
    let endpoint = Arc::new(Endpoint::resolve(&url).await.unwrap());
    let stop = Stop::new();
    let run = tokio::spawn({
        let (stop, p) = (stop.clone(), p.clone());
        async move { drive::run_until(endpoint, p, &Progress::hidden(), &stop).await }
    });
    seen.wait_for(|&n| n >= 4).await.unwrap();
    let stopped = Instant::now();
    stop.trigger();
    let outcome = run.await.unwrap().unwrap();
    assert!(
        stopped.elapsed() < Duration::from_secs(10),
        "the grace for answers in flight is bounded"
    );
    assert!(outcome.interrupted);
    assert_eq!(outcome.abandoned, 4, "one hung request per connection");
    let result = RunResult::new(&url, p, outcome, None);
    assert_eq!(result.verdict, Verdict::Interrupted);
    assert!(result.summary(false).contains("INTERRUPTED"));
    assert!(result.measured_s < 10.0);

    // The chart over time shows what the verdict counts: every abandoned and unsent request
    // is an error at the stop, and that second is shaded.
    let unsent = result.open_loop.unwrap().unsent;
    let charted: u64 = result.timeline.iter().map(|p| p.failed).sum();
    assert_eq!(charted, result.abandoned + unsent, "{:?}", result.timeline);
    assert!(result.timeline.last().unwrap().errors_per_s > 0.0);
    let html = result.html();
    assert!(html.contains("seconds with failures or no answer"));

    // Nothing answered: no latency, said as such (not 0.000 ms) in every form.
    let latency = serde_json::to_value(result.total.latency_ms).unwrap();
    for key in ["mean", "p50", "p90", "p95", "p99", "p999", "max"] {
        assert!(latency[key].is_null(), "{key}: {latency}");
    }
    let json: serde_json::Value = serde_json::from_str(&result.json()).unwrap();
    assert!(json["total"]["latency_ms"]["p99"].is_null());
    let summary = result.summary(false);
    let all = summary.lines().find(|l| l.starts_with("all ")).unwrap();
    assert!(
        all.contains("no data") && !all.split_whitespace().any(|w| w == "0.000"),
        "{all}"
    );
    assert!(html.contains("<td>no data</td>") && !html.contains("<td>0.000</td>"));
}

// Defect 4: the table counted measured writes, the correctness line the whole run, unlabelled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warm_up_and_measured_counts_are_labelled_and_add_up() {
    let counter = Arc::new(AtomicI64::new(0));
    let url = spawn_server(move |_| {
        Behaviour::After(
            Duration::from_millis(2),
            body(counter.fetch_add(1, Ordering::SeqCst) + 1),
        )
    })
    .await;
    let mut p = plan(Scenario::Write, Mode::Closed, 1, Duration::from_millis(400));
    p.warmup = Duration::from_millis(300);
    let result = run(&url, p, None).await;
    let writes = result.writes.as_ref().unwrap();
    let measured = result.write.as_ref().unwrap().ok;
    let warm_up = writes.successes - measured;
    assert!(warm_up > 0 && measured > 0, "{}", result.summary(false));
    let summary = result.summary(false);
    assert!(summary.contains("measured window ("), "{summary}");
    assert!(
        summary.contains("write correctness (whole run, warm-up included)"),
        "{summary}"
    );
    assert!(result
        .html()
        .contains("Write correctness (whole run, warm-up included)"));
    assert!(
        summary.contains(&format!(
            "{} successful writes ({measured} in the measured window above, {warm_up} in the warm-up",
            writes.successes
        )),
        "{summary}"
    );
}

// Defect 5: an outage looked like an improvement (fast failures) in the only time chart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_shows_as_errors_per_second_and_a_shaded_period() {
    // Healthy for the first second, failing for the next, healthy again.
    let start = Instant::now();
    let url = spawn_server(move |_| {
        let t = start.elapsed();
        if t >= Duration::from_secs(1) && t < Duration::from_secs(2) {
            Behaviour::Answer(503, "{\"error\":\"unavailable\"}".into())
        } else {
            Behaviour::Answer(200, body(1))
        }
    })
    .await;
    let result = run(
        &url,
        plan(
            Scenario::Read,
            Mode::Open { rate: 200.0 },
            2,
            Duration::from_millis(3500),
        ),
        None,
    )
    .await;
    let timeline = &result.timeline;
    // Whole seconds only: the trailing half second is in the totals, not in the chart.
    assert_eq!(timeline.len(), 3, "{timeline:?}");
    assert!(timeline
        .iter()
        .all(|p| p.t_s.fract() < 0.2 || p.t_s.fract() > 0.8));
    assert!(
        timeline.iter().any(|p| p.errors_per_s > 100.0),
        "{timeline:?}"
    );
    assert!(timeline
        .iter()
        .any(|p| p.ok_per_s > 100.0 && p.errors_per_s == 0.0));
    let html = result.html();
    for needle in [
        "Answers and errors per second",
        "successful answers/s",
        "errors/s",
        "seconds with failures",
        "<table>",
    ] {
        assert!(html.contains(needle), "report lacks {needle:?}");
    }
    assert!(!result.passed, "half a second in three failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stages_ramp_the_rate_and_are_reported_apart() {
    let url = spawn_server(|_| Behaviour::Answer(200, body(1))).await;
    let stages = Stage::parse_list("500ms:200,500ms:200").unwrap();
    let mut p = plan(
        Scenario::Read,
        Mode::Ramp { stages },
        2,
        Duration::from_secs(1),
    );
    p.warmup = Duration::ZERO;
    let result = run(&url, p, None).await;
    assert_eq!(result.stages.len(), 2);
    let (first, second) = (&result.stages[0].report, &result.stages[1].report);
    // 0→200/s over 0.5 s is 50 requests; 200/s for 0.5 s is 100.
    assert!(
        (45..=55).contains(&first.requests),
        "{}",
        result.summary(false)
    );
    assert!(
        (95..=105).contains(&second.requests),
        "{}",
        result.summary(false)
    );
    let unsent = result.open_loop.unwrap().unsent;
    assert_eq!(
        first.requests + second.requests + unsent,
        result.total.requests
    );
    assert!(result.summary(false).contains("stages (a request counts"));
    // A ramp has no warm-up: said so, not "after 0.0 s warm-up"; its stages are marked.
    let summary = result.summary(false);
    assert!(summary.contains(" s measured, no warm-up"), "{summary}");
    assert!(!summary.contains("0.0 s warm-up"), "{summary}");
    assert!(summary.contains(" s, no warm-up):"), "{summary}");
    assert!(
        summary.contains("open loop in 2 stages (0.5s:200,0.5s:200)"),
        "{summary}"
    );
    assert!(result.html().contains("stage boundary"));
}

// The load threads open every connection before the clock starts: when some cannot be opened,
// or the opening sentinel fails, the run ends with the reason and sends no load at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_cannot_start_sends_no_load() {
    let closed = format!("http://{}", testkit::free_addr().unwrap());
    let endpoint = Arc::new(Endpoint::resolve(&closed).await.unwrap());
    let p = plan(Scenario::Read, Mode::Closed, 3, Duration::from_secs(10));
    match drive::run(endpoint, p, &Progress::hidden()).await {
        Err(drive::RunError::Connect { wanted, failed, .. }) => {
            assert_eq!((wanted, failed), (3, 3))
        }
        other => panic!("expected a connect error, got {:?}", other.err()),
    }

    let (url, seen) = support::spawn_watched_server(|_| Behaviour::Answer(503, body(0))).await;
    let endpoint = Arc::new(Endpoint::resolve(&url).await.unwrap());
    let p = plan(Scenario::Write, Mode::Closed, 3, Duration::from_secs(10));
    match drive::run(endpoint, p, &Progress::hidden()).await {
        Err(drive::RunError::Sentinel(e)) => assert_eq!(e.label(), "status_503"),
        other => panic!("expected a sentinel error, got {:?}", other.err()),
    }
    assert_eq!(*seen.borrow(), 1, "only the opening sentinel was sent");
}
