//! The embedded store's own faults, under write load (docs/design.md §2, §4): its disk fills up,
//! and its files are deleted while it runs. The promise is the write path's: a `200` means
//! committed, so every `200` value is distinct and the counter moves by exactly the number of
//! `200`s; the process logs the incident once and leaves the load balancer (`/readyz` 503) while
//! its writes fail, and comes back by itself once they work again.
//!
//! The full disk is real: a 4 MiB tmpfs holds the data directory and a file fills it to `ENOSPC`
//! (mounting needs root, as the test command runs in CI; elsewhere the case fails and says so).
//! It is filled while SQLite's WAL is still growing, as on a fresh store: a WAL that has reached
//! its checkpoint size is rewritten in place and needs no new blocks, so on a full disk its
//! commits rightly keep succeeding.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;
use testkit::client::{Endpoint, Op};

use super::Context;
use crate::load::{self, Load, LoadPlan};
use crate::report::{ms, Checks};
use testkit::origin::{self, Origin, OriginSpec};
use testkit::probe;

const CONNECTIONS: usize = 8;
/// What the log says once per incident (origin/src/counter/batcher.rs).
const INCIDENT_LINE: &str = "increments failing";
/// The store's own line (other lines quote it as their error's cause).
const DELETED_LINE: &str = r#""message":"embedded store file"#;

#[derive(Clone, Debug, Default, Serialize)]
pub struct Audit {
    pub counter_before: i64,
    pub counter_after: i64,
    /// `200` answers to POSTs of the load (the sentinels excluded).
    pub answered_200: u64,
    /// The counter's movement, sentinels excluded: must equal `answered_200`.
    pub counted: i64,
    pub duplicates: Vec<i64>,
    pub outcomes: std::collections::BTreeMap<String, u64>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct DiskFullFigures {
    pub audit: Audit,
    /// POSTs answered `503` while the disk was full (proves the fault bit).
    pub failed_while_full: u64,
    pub ok_while_full: u64,
    pub unready_after_fill_ms: Option<f64>,
    pub ready_after_free_ms: Option<f64>,
    pub incident_log_lines: usize,
    pub panics: Vec<String>,
}

pub async fn run_disk_full(ctx: &Context, name: &str) -> Result<(Value, Checks), String> {
    let dir = ctx.case_dir(name)?;
    let data = Tmpfs::mount(&dir.join("data"), "4m")?;
    let spec = OriginSpec::for_tests(
        &ctx.origin_binary,
        "origin",
        &dir,
        &[("DATA_DIR", &data.path.display().to_string())],
    )?;
    let origin = spec.start_ready().await?;
    let mut figures = DiskFullFigures::default();
    let (load, before) = start_writes(&origin).await?;
    load.until_ok_writes(50, Duration::from_secs(30)).await?;

    let ok_at_fill = load.ok_writes();
    let filled = Instant::now();
    fill(&data.path.join("filler"))?;
    figures.unready_after_fill_ms =
        probe::wait_for_status(origin.addr(), "/readyz", 503, Duration::from_secs(10))
            .await
            .ok()
            .map(|_| ms(filled.elapsed()));
    let full_until = load.elapsed();
    let full_from = full_until.saturating_sub(filled.elapsed());
    figures.ok_while_full = load.ok_writes() - ok_at_fill;

    std::fs::remove_file(data.path.join("filler")).map_err(|e| format!("free the disk: {e}"))?;
    let freed = Instant::now();
    figures.ready_after_free_ms =
        probe::wait_for_status(origin.addr(), "/readyz", 200, Duration::from_secs(10))
            .await
            .ok()
            .map(|_| ms(freed.elapsed()));
    load.until_ok_writes(200, Duration::from_secs(30)).await?;
    let finished = load.stop().await;
    figures.failed_while_full = finished
        .records
        .iter()
        .filter(|r| r.op == Op::Write && r.sent >= full_from && r.done() <= full_until)
        .filter(|r| r.status() == Some(503))
        .count() as u64;
    figures.audit = audit(&origin, before, &finished).await?;
    let _ = origin.terminate(Duration::from_secs(30)).await;
    figures.incident_log_lines = log_lines(&spec, INCIDENT_LINE);
    figures.panics = origin::panics(&spec);
    let checks = judge_disk_full(&figures);
    Ok((serde_json::to_value(&figures).expect("figures"), checks))
}

pub fn judge_disk_full(f: &DiskFullFigures) -> Checks {
    let mut checks = Checks::default();
    judge_audit(&mut checks, &f.audit);
    checks.expect(
        "the full disk failed increments, and they were answered 503",
        f.failed_while_full > 0,
        format!(
            "{} POSTs answered 503 and {} answered 200 while the disk was full",
            f.failed_while_full, f.ok_while_full
        ),
    );
    checks.expect(
        "readiness failed while writes failed and came back once the disk had room",
        f.unready_after_fill_ms.is_some() && f.ready_after_free_ms.is_some(),
        format!(
            "/readyz 503 {:?} ms after the fill, 200 {:?} ms after the disk was freed",
            f.unready_after_fill_ms, f.ready_after_free_ms
        ),
    );
    checks.expect(
        "the incident was logged once",
        f.incident_log_lines == 1,
        format!("{} lines saying {INCIDENT_LINE:?}", f.incident_log_lines),
    );
    checks.expect("no panic", f.panics.is_empty(), format!("{:?}", f.panics));
    checks
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct FilesDeletedFigures {
    pub ok_before_delete: u64,
    /// `200`s for POSTs sent after the files were deleted: each would be an increment that the
    /// next start cannot know of.
    pub ok_sent_after_delete: u64,
    pub failed_after_delete: u64,
    pub unready_after_delete_ms: Option<f64>,
    pub deleted_log_lines: usize,
    pub duplicates: Vec<i64>,
    /// The count a restarted process starts from (its files are gone: 0 is the honest answer).
    pub counter_after_restart: i64,
    pub panics: Vec<String>,
}

pub async fn run_files_deleted(ctx: &Context, name: &str) -> Result<(Value, Checks), String> {
    let dir = ctx.case_dir(name)?;
    let data = dir.join("data");
    std::fs::create_dir_all(&data).map_err(|e| format!("{}: {e}", data.display()))?;
    let spec = OriginSpec::for_tests(
        &ctx.origin_binary,
        "origin",
        &dir,
        &[("DATA_DIR", &data.display().to_string())],
    )?;
    let origin = spec.start_ready().await?;
    let mut figures = FilesDeletedFigures::default();
    let (load, _before) = start_writes(&origin).await?;
    load.until_ok_writes(200, Duration::from_secs(30)).await?;
    for suffix in ["", "-wal", "-shm"] {
        let path = data.join(format!("counter.sqlite3{suffix}"));
        std::fs::remove_file(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    // Taken once the files are gone: a POST sent later is in a batch that starts later.
    let deleted_at = load.elapsed();
    let deleted = Instant::now();
    figures.unready_after_delete_ms =
        probe::wait_for_status(origin.addr(), "/readyz", 503, Duration::from_secs(10))
            .await
            .ok()
            .map(|_| ms(deleted.elapsed()));
    let finished = load.stop().await;
    let writes = || finished.records.iter().filter(|r| r.op == Op::Write);
    figures.ok_before_delete = writes()
        .filter(|r| r.sent < deleted_at && r.outcome.is_ok())
        .count() as u64;
    figures.ok_sent_after_delete = writes()
        .filter(|r| r.sent >= deleted_at && r.outcome.is_ok())
        .count() as u64;
    figures.failed_after_delete = writes()
        .filter(|r| r.sent >= deleted_at && r.status() == Some(503))
        .count() as u64;
    figures.duplicates = load::duplicates(&load::write_values(&finished.records));
    let _ = origin.terminate(Duration::from_secs(30)).await;
    figures.deleted_log_lines = log_lines(&spec, DELETED_LINE);
    let restarted = spec.start_ready().await?;
    figures.counter_after_restart = sentinel(&restarted).await? - 1;
    let _ = restarted.terminate(Duration::from_secs(30)).await;
    figures.panics = origin::panics(&spec);
    let checks = judge_files_deleted(&figures);
    Ok((serde_json::to_value(&figures).expect("figures"), checks))
}

pub fn judge_files_deleted(f: &FilesDeletedFigures) -> Checks {
    let mut checks = Checks::default();
    checks.expect(
        "no 200 for an increment sent after the files were deleted",
        f.ok_before_delete > 0 && f.ok_sent_after_delete == 0 && f.failed_after_delete > 0,
        format!(
            "{} 200s before the deletion; after it {} 200s and {} 503s",
            f.ok_before_delete, f.ok_sent_after_delete, f.failed_after_delete
        ),
    );
    checks.expect(
        "readiness failed and the deletion was logged once",
        f.unready_after_delete_ms.is_some() && f.deleted_log_lines == 1,
        format!(
            "/readyz 503 after {:?} ms; {} lines saying {DELETED_LINE:?}",
            f.unready_after_delete_ms, f.deleted_log_lines
        ),
    );
    checks.expect(
        "every 200 value distinct",
        f.duplicates.is_empty(),
        format!("{} duplicates", f.duplicates.len()),
    );
    checks.expect("no panic", f.panics.is_empty(), format!("{:?}", f.panics));
    checks
}

/// Closed-loop POSTs on `CONNECTIONS` keep-alive connections, after an opening sentinel.
async fn start_writes(origin: &Origin) -> Result<(Load, i64), String> {
    let before = sentinel(origin).await?;
    let endpoint = Arc::new(
        Endpoint::resolve(&origin.url())
            .await
            .map_err(|e| e.to_string())?,
    );
    let plan = LoadPlan {
        connections: CONNECTIONS,
        write_every: 1,
        timeout: Duration::from_secs(5),
        pause_after_failure: Duration::from_millis(10),
        max_duration: Duration::from_secs(60),
    };
    Ok((Load::start(endpoint, plan, before), before))
}

/// The exact count: between two sentinels the counter moved by the number of `200`s.
async fn audit(origin: &Origin, before: i64, finished: &load::Finished) -> Result<Audit, String> {
    let after = sentinel(origin).await?;
    let values = load::write_values(&finished.records);
    let mut all = values.clone();
    all.extend([before, after]);
    Ok(Audit {
        counter_before: before,
        counter_after: after,
        answered_200: values.len() as u64,
        counted: after - before - 1,
        duplicates: load::duplicates(&all),
        outcomes: load::outcomes(finished.records.iter().filter(|r| r.op == Op::Write)),
    })
}

fn judge_audit(checks: &mut Checks, a: &Audit) {
    checks.expect(
        "exact count: the counter moved by the number of 200s, every value distinct",
        a.answered_200 > 0 && a.counted == a.answered_200 as i64 && a.duplicates.is_empty(),
        format!(
            "{} 200s, counter {} → {} ({} counted), {} duplicates; outcomes {:?}",
            a.answered_200,
            a.counter_before,
            a.counter_after,
            a.counted,
            a.duplicates.len(),
            a.outcomes
        ),
    );
}

/// One POST on its own connection; its value is the counter right after it.
async fn sentinel(origin: &Origin) -> Result<i64, String> {
    let answer = probe::request(
        origin.addr(),
        "POST",
        "/api/counter",
        &[],
        Duration::from_secs(10),
    )
    .await?;
    if answer.status != 200 {
        return Err(format!(
            "sentinel POST answered {}: {}",
            answer.status, answer.body
        ));
    }
    testkit::client::parse_value(answer.body.as_bytes())
        .ok_or_else(|| format!("sentinel POST body {:?}", answer.body))
}

fn log_lines(spec: &OriginSpec, needle: &str) -> usize {
    origin::logs(spec)
        .lines()
        .filter(|l| l.contains(needle))
        .count()
}

/// Writes zeros until the file system says `ENOSPC`.
fn fill(path: &Path) -> Result<(), String> {
    use std::io::Write;
    let mut file = std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let block = [0u8; 4096];
    loop {
        match file.write_all(&block) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => return Ok(()),
            Err(e) => return Err(format!("filling {}: {e}", path.display())),
        }
    }
}

/// A small tmpfs mounted for the case, unmounted when dropped.
struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    fn mount(path: &Path, size: &str) -> Result<Self, String> {
        std::fs::create_dir_all(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .status()
            .map_err(|e| format!("mount: {e}"))?;
        if !status.success() {
            return Err(format!(
                "cannot mount a {size} tmpfs at {} ({status}): the disk-full case needs root \
                 (CI runs the test command as root)",
                path.display()
            ));
        }
        Ok(Self {
            path: path.to_path_buf(),
        })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.path)
            .status();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn disk_full() -> DiskFullFigures {
        DiskFullFigures {
            audit: Audit {
                counter_before: 10,
                counter_after: 411,
                answered_200: 400,
                counted: 400,
                ..Audit::default()
            },
            failed_while_full: 50,
            unready_after_fill_ms: Some(1100.0),
            ready_after_free_ms: Some(150.0),
            incident_log_lines: 1,
            ..DiskFullFigures::default()
        }
    }

    #[test]
    fn a_full_disk_that_keeps_the_promise_passes_and_each_break_fails() {
        assert!(judge_disk_full(&disk_full()).passed());
        let broken: crate::report::Breaks<DiskFullFigures> = vec![
            ("a 200 not counted", Box::new(|f| f.audit.counted = 399)),
            (
                "a value handed out twice",
                Box::new(|f| f.audit.duplicates = vec![42]),
            ),
            ("the fault never bit", Box::new(|f| f.failed_while_full = 0)),
            (
                "readiness stayed 200",
                Box::new(|f| f.unready_after_fill_ms = None),
            ),
            (
                "never ready again",
                Box::new(|f| f.ready_after_free_ms = None),
            ),
            ("logged per failure", Box::new(|f| f.incident_log_lines = 7)),
            ("not logged", Box::new(|f| f.incident_log_lines = 0)),
        ];
        for (what, breaks) in broken {
            let mut figures = disk_full();
            breaks(&mut figures);
            assert!(!judge_disk_full(&figures).passed(), "{what} went unnoticed");
        }
    }

    #[test]
    fn deleted_files_that_keep_the_promise_pass_and_each_break_fails() {
        let good = || FilesDeletedFigures {
            ok_before_delete: 200,
            failed_after_delete: 30,
            unready_after_delete_ms: Some(900.0),
            deleted_log_lines: 1,
            ..FilesDeletedFigures::default()
        };
        assert!(judge_files_deleted(&good()).passed());
        let broken: crate::report::Breaks<FilesDeletedFigures> = vec![
            (
                "a 200 after the deletion",
                Box::new(|f| f.ok_sent_after_delete = 1),
            ),
            (
                "readiness stayed 200",
                Box::new(|f| f.unready_after_delete_ms = None),
            ),
            ("silent", Box::new(|f| f.deleted_log_lines = 0)),
            ("a duplicate", Box::new(|f| f.duplicates = vec![3])),
        ];
        for (what, breaks) in broken {
            let mut figures = good();
            breaks(&mut figures);
            assert!(
                !judge_files_deleted(&figures).passed(),
                "{what} went unnoticed"
            );
        }
    }
}
