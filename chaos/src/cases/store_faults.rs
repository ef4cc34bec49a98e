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
use std::time::{Duration, Instant};

use loadtest::correctness::WriteCheck;
use serde::Serialize;
use testkit::client::Op;

use super::{Env, FaultCase};
use crate::load::{self, Load, LoadPlan};
use crate::report::{ms, Checks};
use crate::Error;
use testkit::origin::{self, OriginSpec};
use testkit::probe;

const CONNECTIONS: usize = 8;
/// What the log says once per incident (origin/src/counter/batcher.rs).
const INCIDENT_LINE: &str = "increments failing";
/// The store's own line (other lines quote it as their error's cause).
const DELETED_LINE: &str = r#""message":"embedded store file"#;

pub struct DiskFull;

#[derive(Clone, Debug, Default, Serialize)]
pub struct DiskFullFigures {
    /// The exact-count audit: no write is uncertain, a `503` must mean not counted.
    pub writes: Option<WriteCheck>,
    pub outcomes: std::collections::BTreeMap<String, u64>,
    /// POSTs answered `503` while the disk was full (proves the fault bit).
    pub failed_while_full: u64,
    pub ok_while_full: u64,
    pub unready_after_fill_ms: Option<f64>,
    pub ready_after_free_ms: Option<f64>,
    pub incident_log_lines: usize,
    pub panics: Vec<String>,
}

impl FaultCase for DiskFull {
    type Figures = DiskFullFigures;

    async fn run(&self, env: &Env<'_>) -> Result<DiskFullFigures, Error> {
        let data = Tmpfs::mount(&env.dir.join("data"), "4m")?;
        let spec = env.origin("origin", &[("DATA_DIR", &data.path.display().to_string())])?;
        let origin = spec.start_ready().await?;
        let mut figures = DiskFullFigures::default();
        let (load, before) =
            Load::after_sentinel(origin.addr(), LoadPlan::writes(CONNECTIONS)).await?;
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

        let filler = data.path.join("filler");
        std::fs::remove_file(&filler).map_err(|e| Error::io(filler.display(), e))?;
        let freed = Instant::now();
        figures.ready_after_free_ms =
            probe::wait_for_status(origin.addr(), "/readyz", 200, Duration::from_secs(10))
                .await
                .ok()
                .map(|_| ms(freed.elapsed()));
        load.until_ok_writes(200, Duration::from_secs(30)).await?;
        let finished = load.stop().await;
        let writes = || finished.records.iter().filter(|r| r.op == Op::Write);
        figures.failed_while_full = writes()
            .filter(|r| r.sent >= full_from && r.done() <= full_until)
            .filter(|r| r.status() == Some(503))
            .count() as u64;
        figures.outcomes = load::outcomes(writes());
        let after = load::sentinel(origin.addr()).await?;
        figures.writes = Some(finished.audit(before, Some(after), 0));
        let _ = origin.terminate(super::STOP_TIMEOUT).await;
        figures.incident_log_lines = log_lines(&spec, INCIDENT_LINE);
        figures.panics = origin::panics(&spec);
        Ok(figures)
    }

    fn judge(f: &DiskFullFigures) -> Checks {
        let mut checks = Checks::default();
        checks.audit(
            "exact count: the counter moved by the number of 200s, every value distinct",
            f.writes.as_ref(),
            |w| w.successes > 0 && load::exact(w),
        );
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
        checks.no_panic("no panic", &f.panics);
        checks
    }
}

pub struct FilesDeleted;

#[derive(Clone, Debug, Default, Serialize)]
pub struct FilesDeletedFigures {
    pub ok_before_delete: u64,
    /// `200`s for POSTs sent after the files were deleted: each would be an increment that the
    /// next start cannot know of.
    pub ok_sent_after_delete: u64,
    pub failed_after_delete: u64,
    pub unready_after_delete_ms: Option<f64>,
    pub deleted_log_lines: usize,
    /// Values given to more than one `200`.
    pub duplicates: u64,
    /// The count a restarted process starts from (its files are gone: 0 is the honest answer).
    pub counter_after_restart: i64,
    pub panics: Vec<String>,
}

impl FaultCase for FilesDeleted {
    type Figures = FilesDeletedFigures;

    async fn run(&self, env: &Env<'_>) -> Result<FilesDeletedFigures, Error> {
        let data = env.data_dir("data")?;
        let spec = env.origin("origin", &[("DATA_DIR", &data)])?;
        let origin = spec.start_ready().await?;
        let mut figures = FilesDeletedFigures::default();
        let (load, before) =
            Load::after_sentinel(origin.addr(), LoadPlan::writes(CONNECTIONS)).await?;
        load.until_ok_writes(200, Duration::from_secs(30)).await?;
        for suffix in ["", "-wal", "-shm"] {
            let path = Path::new(&data).join(format!("counter.sqlite3{suffix}"));
            std::fs::remove_file(&path).map_err(|e| Error::io(path.display(), e))?;
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
        // The store that would close the count is gone: no closing sentinel.
        figures.duplicates = finished.audit(before, None, 0).duplicates;
        let _ = origin.terminate(super::STOP_TIMEOUT).await;
        figures.deleted_log_lines = log_lines(&spec, DELETED_LINE);
        let restarted = spec.start_ready().await?;
        figures.counter_after_restart = load::sentinel(restarted.addr()).await? - 1;
        let _ = restarted.terminate(super::STOP_TIMEOUT).await;
        figures.panics = origin::panics(&spec);
        Ok(figures)
    }

    fn judge(f: &FilesDeletedFigures) -> Checks {
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
            f.duplicates == 0,
            format!("{} duplicates", f.duplicates),
        );
        checks.no_panic("no panic", &f.panics);
        checks
    }
}

fn log_lines(spec: &OriginSpec, needle: &str) -> usize {
    origin::logs(spec)
        .lines()
        .filter(|l| l.contains(needle))
        .count()
}

/// Writes zeros until the file system says `ENOSPC`.
fn fill(path: &Path) -> Result<(), Error> {
    use std::io::Write;
    let mut file = std::fs::File::create(path).map_err(|e| Error::io(path.display(), e))?;
    let block = [0u8; 4096];
    loop {
        match file.write_all(&block) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => return Ok(()),
            Err(e) => return Err(Error::io(format!("filling {}", path.display()), e)),
        }
    }
}

/// A small tmpfs mounted for the case, unmounted when dropped.
struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    fn mount(path: &Path, size: &str) -> Result<Self, Error> {
        std::fs::create_dir_all(path).map_err(|e| Error::io(path.display(), e))?;
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .status()
            .map_err(|e| Error::io("mount", e))?;
        if !status.success() {
            return Err(Error::Setup(format!(
                "cannot mount a {size} tmpfs at {} ({status}): the disk-full case needs root \
                 (CI runs the test command as root)",
                path.display()
            )));
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
            // 400 200s between the sentinels 10 and 411.
            writes: Some(loadtest::correctness::check(
                (11..=410).collect(),
                &loadtest::correctness::WriteLedger::new(10),
                10,
                Some(411),
                0,
                true,
            )),
            failed_while_full: 50,
            unready_after_fill_ms: Some(1100.0),
            ready_after_free_ms: Some(150.0),
            incident_log_lines: 1,
            ..DiskFullFigures::default()
        }
    }

    #[test]
    fn a_full_disk_that_keeps_the_promise_passes_and_each_break_fails() {
        fn writes(f: &mut DiskFullFigures) -> &mut WriteCheck {
            f.writes.as_mut().expect("audited")
        }
        crate::report::assert_each_break_fails(
            disk_full,
            |f| DiskFull::judge(f).passed(),
            breaks![DiskFullFigures;
                "a 200 not counted" => |f| writes(f).counter_delta = Some(399),
                "an increment counted without a 200" => |f| writes(f).counter_delta = Some(401),
                "a value handed out twice" => |f| writes(f).duplicates = 1,
                "no closing sentinel" => |f| f.writes = None,
                "the fault never bit" => |f| f.failed_while_full = 0,
                "readiness stayed 200" => |f| f.unready_after_fill_ms = None,
                "never ready again" => |f| f.ready_after_free_ms = None,
                "logged per failure" => |f| f.incident_log_lines = 7,
                "not logged" => |f| f.incident_log_lines = 0,
            ],
        );
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
        crate::report::assert_each_break_fails(
            good,
            |f| FilesDeleted::judge(f).passed(),
            breaks![FilesDeletedFigures;
                "a 200 after the deletion" => |f| f.ok_sent_after_delete = 1,
                "readiness stayed 200" => |f| f.unready_after_delete_ms = None,
                "silent" => |f| f.deleted_log_lines = 0,
                "a duplicate" => |f| f.duplicates = 1,
            ],
        );
    }
}
