//! The binary as a person first meets it: arguments, `--help`, `--version`, start-up failures
//! explained on stderr with their exit codes, the terminal's URL line, a second Ctrl-C, and the
//! build's identity on `/version` and `/metrics`.

use std::os::fd::{FromRawFd, OwnedFd};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStderr, ChildStdout, Command};

use crate::helpers::{sample, spawn_app, Backend};

const BINARY: &str = env!("CARGO_BIN_EXE_counter-origin");
/// Bounds every wait, so a regression (e.g. an ignored argument starting a server) fails the test
/// instead of hanging it.
const PATIENCE: Duration = Duration::from_secs(30);

/// The binary with a clean environment on loopback ports the kernel picks.
fn origin() -> Command {
    let mut command = Command::new(BINARY);
    command
        .env_clear()
        .envs([
            ("LISTEN_ADDR", "127.0.0.1:0"),
            ("METRICS_ADDR", "127.0.0.1:0"),
            ("ACCESS_LOG_EVERY", "0"),
        ])
        .stdin(Stdio::null())
        .kill_on_drop(true);
    command
}

/// Runs the binary to completion.
async fn run(command: &mut Command) -> Output {
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    tokio::time::timeout(PATIENCE, command.output())
        .await
        .expect("counter-origin exits on its own")
        .expect("spawn counter-origin")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).expect("UTF-8 output")
}

async fn next_line<R: tokio::io::AsyncBufRead + Unpin>(lines: &mut Lines<R>, what: &str) -> String {
    tokio::time::timeout(PATIENCE, lines.next_line())
        .await
        .unwrap_or_else(|_| panic!("no {what} within {PATIENCE:?}"))
        .unwrap()
        .unwrap_or_else(|| panic!("the origin closed its output before {what}"))
}

/// Reads JSON log lines until one has `message`; returns it.
async fn await_log(lines: &mut Lines<BufReader<ChildStdout>>, message: &str) -> serde_json::Value {
    loop {
        let line = next_line(lines, message).await;
        let json: serde_json::Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
        if json["message"] == message {
            return json;
        }
    }
}

fn signal(child: &Child, signal: libc::c_int) {
    let pid = child.id().expect("running") as libc::pid_t;
    // SAFETY: signalling a child process we spawned and have not yet reaped.
    assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
}

async fn exit_code(child: &mut Child) -> i32 {
    let status = tokio::time::timeout(PATIENCE, child.wait())
        .await
        .expect("exits")
        .unwrap();
    status.code().expect("exited, not killed by a signal")
}

/// The JSON log line of a failed start and the sentence on stderr.
fn start_failure(output: &Output) -> (serde_json::Value, String) {
    let stdout = text(&output.stdout);
    let line = stdout
        .lines()
        .find(|l| l.contains("cannot start"))
        .unwrap_or_else(|| panic!("no 'cannot start' log line in: {stdout}"));
    let json: serde_json::Value = serde_json::from_str(line).expect("a JSON log line");
    assert_eq!(json["level"], "ERROR", "{line}");
    (json, text(&output.stderr))
}

#[tokio::test]
async fn unknown_arguments_exit_2_with_a_usage_line_and_start_nothing() {
    for args in [
        &["--bogus"][..],
        &["--port", "9000"],
        &["extra"],
        &["serve", "--bogus"],
        &["-x"],
    ] {
        let output = run(origin().args(args)).await;
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains("Usage: counter-origin"),
            "{args:?}: {stderr}"
        );
        let culprit = if args[0] == "serve" { args[1] } else { args[0] };
        assert!(
            stderr.starts_with("error: ") && stderr.contains(&format!("'{culprit}'")),
            "{args:?}: {stderr}"
        );
        assert!(
            output.stdout.is_empty(),
            "{args:?} logged: {}",
            text(&output.stdout)
        );
    }
    // A near miss is named.
    let output = run(origin().arg("--verison")).await;
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output.stderr).contains("'--version'"));
}

#[tokio::test]
async fn version_names_the_version_revision_and_build_time() {
    let revision = env!("COUNTER_REVISION");
    let expected = format!(
        "counter-origin {} (revision {revision}, built {})\n",
        env!("CARGO_PKG_VERSION"),
        env!("COUNTER_BUILD_TIME")
    );
    for flag in ["--version", "-V"] {
        let output = run(origin().arg(flag)).await;
        assert_eq!(output.status.code(), Some(0), "{flag}");
        assert_eq!(text(&output.stdout), expected, "{flag}");
    }
    // Built from this checkout without an explicit COUNTER_REVISION: the revision is git's HEAD.
    let head = std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output();
    match head {
        Ok(head) if head.status.success() && std::env::var_os("COUNTER_REVISION").is_none() => {
            assert_eq!(
                text(&head.stdout).trim(),
                revision,
                "revision is not git's HEAD"
            );
        }
        _ => assert!(!revision.is_empty()),
    }
    let time = env!("COUNTER_BUILD_TIME");
    assert!(
        time.len() == 20 && time.ends_with('Z') && time.as_bytes()[10] == b'T',
        "build time is not RFC 3339 UTC: {time}"
    );
}

#[tokio::test]
async fn a_log_level_that_is_not_a_level_exits_2_naming_the_variable() {
    for value in ["debugg", "verbose", "info,counter_origin"] {
        let output = run(origin().env("LOG_LEVEL", value)).await;
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{value}: {stderr}");
        assert!(
            stderr.contains(&format!("LOG_LEVEL={value:?}")) && stderr.contains("target=level"),
            "{value}: {stderr}"
        );
        assert!(output.stdout.is_empty());
    }
}

#[tokio::test]
async fn a_port_in_use_exits_1_with_a_sentence_naming_the_variable() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let addr = format!("127.0.0.1:{port}");
    for variable in ["LISTEN_ADDR", "METRICS_ADDR"] {
        let output = run(origin().env(variable, &addr).env("LOG_LEVEL", "info")).await;
        assert_eq!(output.status.code(), Some(1), "{variable}");
        let (json, stderr) = start_failure(&output);
        assert!(
            json["error"]
                .as_str()
                .unwrap()
                .contains("Address already in use"),
            "{json}"
        );
        assert!(
            stderr.starts_with("counter-origin: cannot start: ")
                && stderr.contains(&format!("port {port}"))
                && stderr.contains("already in use")
                && stderr.contains(&format!("set {variable} to a free address")),
            "{stderr}"
        );
    }
    // Logging switched off cannot hide why the process stopped.
    let output = run(origin().env("LISTEN_ADDR", &addr).env("LOG_LEVEL", "off")).await;
    assert_eq!(output.status.code(), Some(1));
    assert!(output.stdout.is_empty());
    assert!(text(&output.stderr).contains("already in use"));
}

#[tokio::test]
async fn a_database_url_that_is_not_postgresql_exits_1_with_a_hint() {
    let output = run(origin().env("DATABASE_URL", "mysql://app:secret@db:3306/counter")).await;
    assert_eq!(output.status.code(), Some(1));
    let (_, stderr) = start_failure(&output);
    assert!(
        stderr.contains("DATABASE_URL is a mysql:// URL")
            && stderr.contains("postgres://")
            && stderr.contains("unset DATABASE_URL to use the embedded store"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("secret"),
        "the password was printed: {stderr}"
    );
}

#[tokio::test]
async fn a_data_dir_that_cannot_be_created_exits_1_with_a_hint() {
    // Its parent is a regular file: creating it fails even for root, which may create anything
    // else (a missing parent is created when the user may).
    let parent = tempfile::NamedTempFile::new().unwrap();
    let data_dir = parent.path().join("data");
    let output = run(origin().env("DATA_DIR", &data_dir)).await;
    assert_eq!(output.status.code(), Some(1));
    let (json, stderr) = start_failure(&output);
    assert!(
        json["error"].as_str().unwrap().contains("Not a directory"),
        "{json}"
    );
    assert!(
        stderr.contains(&format!(
            "cannot create the embedded store's directory {}",
            data_dir.display()
        )) && stderr.contains("Set DATA_DIR"),
        "{stderr}"
    );
}

/// `--help`'s "Exit status:" rows as (code, meaning).
fn exit_codes(help: &str) -> Vec<(String, String)> {
    help.lines()
        .skip_while(|l| *l != "Exit status:")
        .skip(1)
        .take_while(|l| !l.is_empty())
        .map(|l| {
            let (code, meaning) = l.trim().split_once("  ").expect("code  meaning");
            (code.to_string(), meaning.trim().to_string())
        })
        .collect()
}

#[tokio::test]
async fn help_fits_80_columns_and_documents_the_exit_codes() {
    for flag in ["--help", "-h"] {
        let output = run(origin().arg(flag)).await;
        assert_eq!(output.status.code(), Some(0));
        let help = text(&output.stdout);
        for line in help.lines() {
            assert!(
                line.chars().count() <= 80,
                "{flag}: wider than 80 columns: {line:?}"
            );
        }
        assert!(help.contains("Usage: counter-origin [COMMAND]"), "{help}");
        let codes = exit_codes(&help);
        let listed: Vec<&str> = codes.iter().map(|(c, _)| c.as_str()).collect();
        assert_eq!(listed, ["0", "1", "2", "130"], "{help}");
    }
    // docs/configuration.md has the same table.
    let help = text(&run(origin().arg("--help")).await.stdout);
    let docs = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/configuration.md"
    ))
    .unwrap();
    for (code, meaning) in exit_codes(&help) {
        let row = docs
            .lines()
            .find(|l| l.starts_with(&format!("| `{code}` |")))
            .unwrap_or_else(|| panic!("docs/configuration.md has no exit-code row for {code}"));
        assert!(
            row.contains(&meaning),
            "docs row for {code} does not say {meaning:?}: {row}"
        );
    }
}

/// Starts the binary with piped output and waits for its start-up line.
async fn start(env: &[(&str, &str)]) -> (Child, Lines<BufReader<ChildStdout>>, serde_json::Value) {
    let mut child = origin()
        .env("LOG_LEVEL", "info")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn counter-origin");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let started = await_log(&mut lines, "counter origin started").await;
    (child, lines, started)
}

#[tokio::test]
async fn a_second_ctrl_c_exits_at_once_instead_of_waiting_out_the_drain() {
    let data_dir = tempfile::tempdir().unwrap();
    // Ten minutes: the test's own bound (PATIENCE) ends long before this drain would.
    let drain = Duration::from_secs(600);
    let (mut child, mut lines, _) = start(&[
        ("DATA_DIR", data_dir.path().to_str().unwrap()),
        ("DRAIN_PERIOD_MS", &drain.as_millis().to_string()),
    ])
    .await;
    signal(&child, libc::SIGINT);
    let draining = await_log(&mut lines, "shutdown requested: draining").await;
    let interrupted = Instant::now();
    assert_eq!(draining["drain_ms"], drain.as_millis() as u64);
    assert!(
        child.try_wait().unwrap().is_none(),
        "the first Ctrl-C drains"
    );
    signal(&child, libc::SIGINT);
    assert_eq!(exit_code(&mut child).await, 130);
    assert!(interrupted.elapsed() < drain, "waited out the drain");
    let mut stderr = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr)
        .await
        .unwrap();
    assert!(stderr.contains("second Ctrl-C: exiting now"), "{stderr}");
    // Not a terminal: no human lines besides that one.
    assert!(!stderr.contains("open http://"), "{stderr}");
}

/// A pseudo-terminal: (controller, the terminal end a child writes to).
fn pty() -> (OwnedFd, OwnedFd) {
    let (mut controller, mut terminal) = (-1, -1);
    // SAFETY: openpty writes two new descriptors into the out-parameters; name, termios and
    // winsize may be null.
    let rc = unsafe {
        libc::openpty(
            &mut controller,
            &mut terminal,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: both descriptors were just opened and are owned by nobody else.
    unsafe {
        (
            OwnedFd::from_raw_fd(controller),
            OwnedFd::from_raw_fd(terminal),
        )
    }
}

#[tokio::test]
async fn on_a_terminal_the_origin_says_which_url_to_open_and_how_to_skip_the_drain() {
    let data_dir = tempfile::tempdir().unwrap();
    let (_controller, terminal) = pty();
    let mut child = origin()
        .envs([
            ("DATA_DIR", data_dir.path().to_str().unwrap()),
            ("DRAIN_PERIOD_MS", "600000"),
            // The terminal is never read: keep what is written to it small.
            ("LOG_LEVEL", "error"),
            ("LISTEN_ADDR", "0.0.0.0:0"),
        ])
        .stdout(Stdio::from(terminal))
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn counter-origin");
    let mut stderr: Lines<BufReader<ChildStderr>> =
        BufReader::new(child.stderr.take().unwrap()).lines();
    let line = next_line(&mut stderr, "the URL line").await;
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://127.0.0.1:"))
        .unwrap_or_else(|| panic!("no loopback URL in: {line}"));
    assert!(
        line.starts_with(&format!("counter-origin {}", env!("CARGO_PKG_VERSION")))
            && line.contains("/metrics"),
        "{line}"
    );
    let addr = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .unwrap();
    let page = crate::helpers::send(addr, hyper::Method::GET, "/", &[], b"").await;
    assert_eq!(
        page.status,
        hyper::StatusCode::OK,
        "the URL serves the page"
    );
    // Ctrl-C: a person is told how long the drain lasts and how to skip it.
    signal(&child, libc::SIGINT);
    let notice = next_line(&mut stderr, "the drain notice").await;
    assert!(
        notice.contains("draining for 600s") && notice.contains("Ctrl-C again exits at once"),
        "{notice}"
    );
    signal(&child, libc::SIGINT);
    assert_eq!(exit_code(&mut child).await, 130);
    let last = next_line(&mut stderr, "the exit notice").await;
    assert!(last.contains("second Ctrl-C: exiting now"), "{last}");
    assert_eq!(stderr.next_line().await.unwrap(), None, "nothing else");
}

#[tokio::test]
async fn version_and_build_info_say_which_build_runs() {
    let mut app = spawn_app(Backend::Embedded, &[]).await;
    let answer = app.get("/version").await;
    assert_eq!(answer.status, hyper::StatusCode::OK);
    assert_eq!(answer.header("content-type"), Some("application/json"));
    assert_eq!(answer.header("cache-control"), Some("no-store"));
    let body: serde_json::Value = serde_json::from_str(answer.text()).expect("JSON");
    let version = run(origin().arg("--version")).await;
    assert_eq!(
        text(&version.stdout),
        format!(
            "counter-origin {} (revision {}, built {})\n",
            body["version"].as_str().unwrap(),
            body["revision"].as_str().unwrap(),
            body["build_time"].as_str().unwrap()
        ),
        "/version and --version name the same build: {body}"
    );
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));

    let metrics = app.metrics_text().await;
    let series = format!(
        "counter_build_info{{revision=\"{}\",version=\"{}\"}}",
        body["revision"].as_str().unwrap(),
        body["version"].as_str().unwrap()
    );
    assert_eq!(
        sample(&metrics, &series),
        Some(1.0),
        "{series} missing:\n{metrics}"
    );
    app.stop().await;
}

#[test]
fn make_run_serves_on_loopback_only() {
    let output = std::process::Command::new("make")
        .args(["--no-print-directory", "-n", "run"])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .env_remove("LISTEN_ADDR")
        .env_remove("METRICS_ADDR")
        .output()
        .expect("`make` is needed for this test (apt-get install make)");
    assert!(output.status.success());
    let recipe = text(&output.stdout);
    for default in [
        "LISTEN_ADDR=${LISTEN_ADDR:-127.0.0.1:8080}",
        "METRICS_ADDR=${METRICS_ADDR:-127.0.0.1:9090}",
    ] {
        assert!(
            recipe.contains(default),
            "make run does not set {default}: {recipe}"
        );
    }
    assert!(
        recipe.contains("cargo run --release -p counter-origin"),
        "{recipe}"
    );
}
