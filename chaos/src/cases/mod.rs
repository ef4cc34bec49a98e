//! The fault cases. Each one starts what it needs (origins, HAProxy, attackers) on loopback,
//! injects its fault, and returns its figures and checks. The checks are pure functions of the
//! figures, unit-tested with figures that break each promise, so a case can be seen to fail.

pub mod database_outage;
pub mod fuzz;
pub mod http2_abuse;
pub mod malformed;
pub mod origin_kill;
pub mod rolling_restart;
pub mod secrets;
pub mod slow_clients;
pub mod store_faults;

use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::ValueEnum;
use serde_json::Value;

use crate::database::StopMode;
use crate::report::{CaseReport, Checks};
use testkit::Database;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Case {
    /// PostgreSQL stopped (`pg_ctl stop -m fast`) and restarted under write load.
    DatabaseOutage,
    /// The same with `-m immediate`: backends die mid-statement (ambiguous outcomes).
    DatabaseOutageImmediate,
    /// The origin SIGKILLed under write load and restarted (PostgreSQL and embedded stores).
    OriginKill,
    /// Two origins behind HAProxy restarted one after the other under load.
    RollingRestart,
    /// slowhttptest slowloris and slow-body attacks while normal requests are measured.
    SlowClients,
    /// A raw-socket corpus of malformed requests.
    Malformed,
    /// No database password or origin-verify header value in logs or answers under failure.
    Secrets,
    /// cargo-fuzz on every parser of untrusted input, for a bounded time each.
    Fuzz,
    /// The embedded store's disk fills up under write load (a 4 MiB tmpfs; needs root).
    DiskFull,
    /// The embedded store's files are deleted under write load.
    FilesDeleted,
    /// 400 HTTP/2 connections with a zero flow-control window and 256 streams each.
    H2ZeroWindow,
    /// 1,200 connections that send only the HTTP/2 preface, at MAX_CONNECTIONS=200.
    H2PrefaceFlood,
}

impl Case {
    pub const FAST: [Case; 9] = [
        Case::Malformed,
        Case::Secrets,
        Case::DiskFull,
        Case::FilesDeleted,
        Case::H2ZeroWindow,
        Case::H2PrefaceFlood,
        Case::DatabaseOutage,
        Case::OriginKill,
        Case::RollingRestart,
    ];
    pub const ALL: [Case; 12] = [
        Case::Malformed,
        Case::Secrets,
        Case::DiskFull,
        Case::FilesDeleted,
        Case::H2ZeroWindow,
        Case::H2PrefaceFlood,
        Case::DatabaseOutage,
        Case::DatabaseOutageImmediate,
        Case::OriginKill,
        Case::RollingRestart,
        Case::SlowClients,
        Case::Fuzz,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Case::DatabaseOutage => "database-outage",
            Case::DatabaseOutageImmediate => "database-outage-immediate",
            Case::OriginKill => "origin-kill",
            Case::RollingRestart => "rolling-restart",
            Case::SlowClients => "slow-clients",
            Case::Malformed => "malformed",
            Case::Secrets => "secrets",
            Case::Fuzz => "fuzz",
            Case::DiskFull => "disk-full",
            Case::FilesDeleted => "files-deleted",
            Case::H2ZeroWindow => "h2-zero-window",
            Case::H2PrefaceFlood => "h2-preface-flood",
        }
    }
}

/// What every case may use.
#[derive(Clone, Debug)]
pub struct Context {
    pub origin_binary: PathBuf,
    /// `TEST_DATABASE_URL`; the PostgreSQL cases fail without it.
    pub database: Option<Database>,
    /// `TEST_PG_BIN_DIR` (where `pg_ctl` is); PATH otherwise.
    pub pg_bin_dir: Option<PathBuf>,
    pub haproxy: PathBuf,
    pub slowhttptest: PathBuf,
    pub out: PathBuf,
    /// The cargo-fuzz directory (`fuzz/`).
    pub fuzz_dir: PathBuf,
    pub fuzz_seconds: u64,
    /// The test command's short run rather than `make chaos`'s longer one.
    pub fast: bool,
}

impl Context {
    pub fn database(&self) -> Result<&Database, String> {
        self.database.as_ref().ok_or_else(|| {
            "TEST_DATABASE_URL is not set: run through scripts/chaos.sh or scripts/test-chaos.sh \
             (they start a throwaway PostgreSQL)"
                .to_string()
        })
    }

    /// A fresh directory for one case's logs and generated files.
    pub fn case_dir(&self, case: &str) -> Result<PathBuf, String> {
        let dir = self.out.join(case);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        Ok(dir)
    }

    /// The fast or the full value of a knob.
    pub fn pick<T>(&self, fast: T, full: T) -> T {
        if self.fast {
            fast
        } else {
            full
        }
    }
}

/// Runs one case to a report; a setup error becomes a failed report, never a pass.
pub async fn run(case: Case, ctx: &Context) -> CaseReport {
    let started = Instant::now();
    let result: Result<(Value, Checks), String> = match case {
        Case::DatabaseOutage => database_outage::run(ctx, case.name(), StopMode::Fast).await,
        Case::DatabaseOutageImmediate => {
            database_outage::run(ctx, case.name(), StopMode::Immediate).await
        }
        Case::OriginKill => origin_kill::run(ctx, case.name()).await,
        Case::RollingRestart => rolling_restart::run(ctx, case.name()).await,
        Case::SlowClients => slow_clients::run(ctx, case.name()).await,
        Case::Malformed => malformed::run(ctx, case.name()).await,
        Case::Secrets => secrets::run(ctx, case.name()).await,
        Case::Fuzz => fuzz::run(ctx, case.name()).await,
        Case::DiskFull => store_faults::run_disk_full(ctx, case.name()).await,
        Case::FilesDeleted => store_faults::run_files_deleted(ctx, case.name()).await,
        Case::H2ZeroWindow => http2_abuse::run_zero_window(ctx, case.name()).await,
        Case::H2PrefaceFlood => http2_abuse::run_preface_flood(ctx, case.name()).await,
    };
    match result {
        Ok((figures, checks)) => CaseReport::new(case.name(), started.elapsed(), figures, checks),
        Err(error) => CaseReport::failed_to_run(case.name(), started.elapsed(), error),
    }
}

/// `path` relative to the working directory when it is inside it (shorter report lines).
pub fn display(path: &Path) -> String {
    std::env::current_dir()
        .ok()
        .and_then(|cwd| path.strip_prefix(cwd).ok().map(Path::to_path_buf))
        .unwrap_or_else(|| path.to_path_buf())
        .display()
        .to_string()
}
