//! The `loadtest` binary as a person or a CI job runs it: exit codes, Ctrl-C (a real SIGINT to
//! the process), `--json`, colour, `compare` and the guardrails' messages, against loopback
//! servers from `support`.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use serde_json::Value;
use support::{body, spawn_server, spawn_watched_server, Behaviour};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

const LOADTEST: &str = env!("CARGO_BIN_EXE_loadtest");

fn loadtest(args: &[&str]) -> Command {
    let mut command = Command::new(LOADTEST);
    command
        .args(args)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

async fn output(args: &[&str]) -> Output {
    loadtest(args).output().await.unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("loadtest-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

async fn not_found_server() -> String {
    spawn_server(|_| Behaviour::Answer(404, "{\"error\":\"not found\"}".into())).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_that_fails_everything_exits_1_with_or_without_targets() {
    let url = not_found_server().await;
    let quick = ["-n", "100", "-c", "2", "-w", "0s", "-q"];
    let without = output(&[&["run", &url][..], &quick].concat()).await;
    let stdout = text(&without.stdout);
    assert_eq!(without.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("result: FAIL"), "{stdout}");
    assert!(stdout.contains("no targets file"), "{stdout}");
    assert!(stdout.contains("status codes: 404 ×100"), "{stdout}");

    // A targets file that bounds only latency: the default error budget still applies.
    let dir = scratch("targets");
    let targets = dir.join("t.toml");
    std::fs::write(&targets, "[read]\np99_ms = 1000.0\n").unwrap();
    let with =
        output(&[&["run", &url, "-t", targets.to_str().unwrap()][..], &quick].concat()).await;
    let stdout = text(&with.stdout);
    assert_eq!(with.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("≤ 1.0000% (default)"), "{stdout}");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_stops_the_run_and_still_writes_the_summary_and_files() {
    let counter = std::sync::atomic::AtomicI64::new(0);
    let (url, mut seen) = spawn_watched_server(move |_| {
        let v = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        Behaviour::After(Duration::from_millis(1), body(v))
    })
    .await;
    let dir = scratch("sigint");
    let out = dir.join("run");
    let child = loadtest(&[
        "run",
        &url,
        "-s",
        "write",
        "-r",
        "200",
        "-c",
        "4",
        "-d",
        "60s",
        "-w",
        "1s",
        "-o",
        out.to_str().unwrap(),
    ])
    .spawn()
    .unwrap();
    // Past the warm-up (200/s for 1 s) and into the measured window.
    seen.wait_for(|&n| n >= 300).await.unwrap();
    interrupt(child.id().unwrap());
    let done = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("the run ends soon after Ctrl-C")
        .unwrap();
    let (stdout, stderr) = (text(&done.stdout), text(&done.stderr));
    assert_eq!(done.status.code(), Some(130), "{stdout}\n{stderr}");
    assert!(stderr.contains("stopping"), "{stderr}");
    assert!(stdout.contains("result: INTERRUPTED"), "{stdout}");
    assert!(
        stdout.contains("write correctness (whole run, warm-up included): ok"),
        "{stdout}"
    );
    let result = read_json(&out.join("result.json"));
    assert_eq!(result["verdict"], "interrupted");
    assert_eq!(result["interrupted"], true);
    assert!(result["measured_s"].as_f64().unwrap() < 30.0);
    assert_eq!(
        result["writes"]["outcome"], "ok",
        "the write checks ran: {stdout}"
    );
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("verdict interrupted") && html.contains("INTERRUPTED"));
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_sigint_aborts_at_once() {
    // Nothing ever answers, so the first Ctrl-C waits out its grace; the second does not wait.
    let (url, mut seen) = spawn_watched_server(|_| Behaviour::Hang).await;
    let dir = scratch("abort");
    let out = dir.join("run");
    let mut child = loadtest(&[
        "run",
        &url,
        "-r",
        "100",
        "-c",
        "2",
        "-d",
        "60s",
        "--timeout",
        "60s",
        "-o",
        out.to_str().unwrap(),
    ])
    .spawn()
    .unwrap();
    seen.wait_for(|&n| n >= 2).await.unwrap();
    let pid = child.id().unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    interrupt(pid);
    while let Some(line) = stderr.next_line().await.unwrap() {
        if line.contains("stopping") {
            break;
        }
    }
    interrupt(pid);
    // Without the abort the run would end on its own 2 s after the first Ctrl-C, writing
    // result.json: the missing file is the proof, the timeout only a backstop.
    let status = tokio::time::timeout(Duration::from_secs(5), child.wait())
        .await
        .expect("the second Ctrl-C does not wait for the grace")
        .unwrap();
    assert_eq!(status.code(), Some(130));
    assert!(!out.join("result.json").exists(), "an abort writes nothing");
    let _ = std::fs::remove_dir_all(dir);
}

/// Sends SIGINT, as Ctrl-C in a terminal does, to one process by PID.
fn interrupt(pid: u32) {
    let status = std::process::Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .expect("kill(1) is installed");
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_output_is_the_documented_result_file() {
    let url = spawn_server(|_| Behaviour::Answer(200, body(1))).await;
    let dir = scratch("json");
    let run = output(&[
        "run",
        &url,
        "-n",
        "200",
        "-c",
        "2",
        "-w",
        "0s",
        "-q",
        "--json",
        "-o",
        dir.to_str().unwrap(),
    ])
    .await;
    assert_eq!(run.status.code(), Some(0), "{}", text(&run.stderr));
    let printed: Value = serde_json::from_slice(&run.stdout).expect("stdout is JSON alone");
    let mut from_file = read_json(&dir.join("result.json"));
    assert_eq!(printed["schema_version"], 1);
    assert_eq!(printed["verdict"], "pass");
    assert_eq!(printed["total"]["status_codes"]["200"], 200);
    assert!(printed["total"]["latency_ms"]["p95"].is_number());
    assert!(printed["command_line"].as_str().unwrap().contains("--json"));
    from_file["command_line"] = printed["command_line"].clone();
    assert_eq!(printed, from_file, "result.json is the same document");

    // Every top-level field is described in the README's schema table.
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let schema_rows: Vec<&str> = readme.lines().filter(|l| l.starts_with("| `")).collect();
    for key in printed.as_object().unwrap().keys() {
        let named = format!("`{key}`");
        assert!(
            schema_rows.iter().any(|row| row
                .split('|')
                .nth(1)
                .is_some_and(|first| first.contains(&named))),
            "README's schema table documents {named}"
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verdicts_are_coloured_only_when_asked() {
    let url = spawn_server(|_| Behaviour::Answer(200, body(1))).await;
    let args = ["run", &url, "-n", "50", "-c", "1", "-w", "0s", "-q"];
    let plain = output(&args).await;
    assert!(
        !text(&plain.stdout).contains('\x1b'),
        "not a terminal, NO_COLOR set"
    );
    let piped = loadtest(&args)
        .env_remove("NO_COLOR")
        .output()
        .await
        .unwrap();
    assert!(
        !text(&piped.stdout).contains('\x1b'),
        "stdout is a pipe, not a terminal"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compare_fails_when_b_regresses() {
    let fast = spawn_server(|_| Behaviour::Answer(200, body(1))).await;
    let slow = spawn_server(|_| Behaviour::After(Duration::from_millis(20), body(1))).await;
    let dir = scratch("compare");
    let (a, b) = (dir.join("a"), dir.join("b"));
    for (url, out) in [(&fast, &a), (&slow, &b)] {
        let run = output(&[
            "run",
            url,
            "-r",
            "100",
            "-c",
            "4",
            "-d",
            "1s",
            "-w",
            "0s",
            "-q",
            "-o",
            out.to_str().unwrap(),
        ])
        .await;
        assert_eq!(run.status.code(), Some(0), "{}", text(&run.stdout));
    }
    let (a, b) = (a.join("result.json"), b.join("result.json"));
    let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());
    let same = output(&["compare", a, a]).await;
    assert_eq!(same.status.code(), Some(0), "{}", text(&same.stdout));
    let worse = output(&["compare", a, b]).await;
    let stdout = text(&worse.stdout);
    assert_eq!(worse.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("p50 latency ms") && stdout.contains("REGRESSED"),
        "{stdout}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_names_the_git_revision() {
    let out = output(&["--version"]).await;
    let stdout = text(&out.stdout);
    assert!(out.status.success());
    // `loadtest 0.1.0 (revision 1a2b…)`: the commit it was built from, like the origin's.
    let revision = stdout
        .trim()
        .strip_prefix(concat!(
            "loadtest ",
            env!("CARGO_PKG_VERSION"),
            " (revision "
        ))
        .and_then(|rest| rest.strip_suffix(')'))
        .unwrap_or_else(|| panic!("no revision in {stdout:?}"));
    assert!(!revision.is_empty(), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guardrails_explain_a_wrong_url_and_a_closed_port() {
    let url = not_found_server().await;
    let dir = scratch("doubled");
    let doubled = output(&[
        "run",
        &format!("{url}/api/counter"),
        "-n",
        "20",
        "-c",
        "1",
        "-w",
        "0s",
        "-q",
        "-o",
        dir.to_str().unwrap(),
    ])
    .await;
    let (stdout, stderr) = (text(&doubled.stdout), text(&doubled.stderr));
    assert!(stderr.contains("already ends in /api/counter"), "{stderr}");
    assert_eq!(doubled.status.code(), Some(1));
    // Every answer a 404: the verdict at the end, far below the start-up warning, and the
    // report repeat the likely cause.
    let verdict = stdout.lines().find(|l| l.starts_with("result:")).unwrap();
    assert!(
        verdict.contains(
            "every answer was 404: likely cause: the base URL already ends in /api/counter"
        ),
        "{verdict}"
    );
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(html.contains("likely cause: the base URL already ends in /api/counter"));
    let _ = std::fs::remove_dir_all(dir);

    let closed = testkit::free_addr().unwrap();
    let refused = output(&[
        "run",
        &format!("http://{closed}"),
        "-n",
        "1",
        "-c",
        "1",
        "-q",
    ])
    .await;
    let stderr = text(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("refused") && stderr.contains("is the server running"),
        "{stderr}"
    );
}
