//! The fault cases and what they share. A case is a [`FaultCase`]: `run` starts what it needs on
//! loopback (origins, PostgreSQL, HAProxy, attackers), injects its fault and returns typed
//! figures; `judge` turns the figures into checks. Judges are pure, and each is unit-tested with
//! figures that break every promise it guards, so a case can be seen to fail. What every case
//! does around that (its directory, its timing, its report, a setup error as a failed report)
//! lives once, in [`execute`].

pub mod database_outage;
pub mod fuzz;
pub mod http2_abuse;
pub mod malformed;
pub mod origin_kill;
pub mod rolling_restart;
pub mod secrets;
pub mod slow_clients;
pub mod store_faults;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::ValueEnum;
use serde::Serialize;

use crate::database::StopMode;
use crate::report::{CaseReport, Checks};
use crate::Error;
use testkit::{Database, Origin, OriginSpec};

/// How long a SIGTERMed origin may take to drain and exit.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// One fault and the promises it tests.
// `async fn` without a `Send` bound: cases run one after another on the runner's own task.
#[allow(async_fn_in_trait)]
pub trait FaultCase {
    type Figures: Serialize;

    /// Starts what the case needs, injects the fault, and measures.
    async fn run(&self, env: &Env<'_>) -> Result<Self::Figures, Error>;

    /// The promises, judged from the figures alone.
    fn judge(figures: &Self::Figures) -> Checks;
}

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
    /// A raw-socket corpus of malformed requests (chaos/corpus/malformed/).
    Malformed,
    /// No database password or origin-verify header value in logs or answers under failure.
    Secrets,
    /// cargo-fuzz on every parser of untrusted input, for a bounded time each.
    Fuzz,
    /// The embedded store's disk fills up under write load (a 4 MiB tmpfs; needs root).
    DiskFull,
    /// The embedded store's files are deleted under write load.
    FilesDeleted,
    /// 1,500 HTTP/2 connections with a zero flow-control window and 256 streams each.
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

    /// The name on the command line, in `chaos.json` and of the case's directory.
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

/// One case's run: the shared context, its name and a fresh directory for its logs and
/// generated files, and the setup most cases start from.
pub struct Env<'a> {
    pub ctx: &'a Context,
    pub name: &'static str,
    pub dir: PathBuf,
}

impl<'a> Env<'a> {
    fn new(ctx: &'a Context, name: &'static str) -> Result<Self, Error> {
        let dir = ctx.out.join(name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(dir.display(), e))?;
        Ok(Self { ctx, name, dir })
    }

    /// The fast or the full value of a knob.
    pub fn pick<T>(&self, fast: T, full: T) -> T {
        if self.ctx.fast {
            fast
        } else {
            full
        }
    }

    /// The origin under test, its logs in the case's directory, with the test settings and `env`.
    pub fn origin(&self, label: &str, env: &[(&str, &str)]) -> Result<OriginSpec, Error> {
        Ok(OriginSpec::for_tests(
            &self.ctx.origin_binary,
            label,
            &self.dir,
            env,
        )?)
    }

    pub fn database(&self) -> Result<&'a Database, Error> {
        self.ctx.database.as_ref().ok_or_else(|| {
            Error::Setup(
                "TEST_DATABASE_URL is not set: run through scripts/chaos.sh or scripts/test-chaos.sh \
                 (they start a throwaway PostgreSQL)"
                    .into(),
            )
        })
    }

    /// A fresh PostgreSQL database named after the case; its URL.
    pub async fn fresh_database(&self) -> Result<String, Error> {
        Ok(self.database()?.fresh(self.name).await?)
    }

    /// An empty data directory for the embedded store (`DATA_DIR`).
    pub fn data_dir(&self, label: &str) -> Result<String, Error> {
        let dir = self.dir.join(label);
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(dir.display(), e))?;
        Ok(dir.display().to_string())
    }
}

/// Stops `origin` with SIGTERM; the panics in its logs (every incarnation of its spec).
pub async fn stop(origin: Origin) -> Vec<String> {
    let spec = origin.spec.clone();
    let _ = origin.terminate(STOP_TIMEOUT).await;
    testkit::origin::panics(&spec)
}

/// Runs one case to a report.
pub async fn run(case: Case, ctx: &Context) -> CaseReport {
    let name = case.name();
    match case {
        Case::DatabaseOutage => execute(&database_outage::Outage(StopMode::Fast), name, ctx).await,
        Case::DatabaseOutageImmediate => {
            execute(&database_outage::Outage(StopMode::Immediate), name, ctx).await
        }
        Case::OriginKill => execute(&origin_kill::OriginKill, name, ctx).await,
        Case::RollingRestart => execute(&rolling_restart::RollingRestart, name, ctx).await,
        Case::SlowClients => execute(&slow_clients::SlowClients, name, ctx).await,
        Case::Malformed => execute(&malformed::Malformed, name, ctx).await,
        Case::Secrets => execute(&secrets::Secrets, name, ctx).await,
        Case::Fuzz => execute(&fuzz::Fuzz, name, ctx).await,
        Case::DiskFull => execute(&store_faults::DiskFull, name, ctx).await,
        Case::FilesDeleted => execute(&store_faults::FilesDeleted, name, ctx).await,
        Case::H2ZeroWindow => execute(&http2_abuse::ZeroWindow, name, ctx).await,
        Case::H2PrefaceFlood => execute(&http2_abuse::PrefaceFlood, name, ctx).await,
    }
}

/// The tail every case shares: a setup error becomes a failed report, never a pass.
async fn execute<C: FaultCase>(case: &C, name: &'static str, ctx: &Context) -> CaseReport {
    let started = Instant::now();
    let result = async {
        let figures = case.run(&Env::new(ctx, name)?).await?;
        let checks = C::judge(&figures);
        Ok::<_, Error>((
            serde_json::to_value(&figures).expect("figures serialise"),
            checks,
        ))
    }
    .await;
    match result {
        Ok((figures, checks)) => CaseReport::new(name, started.elapsed(), figures, checks),
        Err(error) => CaseReport::failed_to_run(name, started.elapsed(), error.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_names_are_the_command_line_names() {
        let names: Vec<&str> = Case::ALL.iter().map(|c| c.name()).collect();
        assert_eq!(
            names,
            [
                "malformed",
                "secrets",
                "disk-full",
                "files-deleted",
                "h2-zero-window",
                "h2-preface-flood",
                "database-outage",
                "database-outage-immediate",
                "origin-kill",
                "rolling-restart",
                "slow-clients",
                "fuzz"
            ]
        );
        assert!(Case::FAST.iter().all(|c| Case::ALL.contains(c)));
        for case in Case::ALL {
            let parsed = Case::from_str(case.name(), false).expect("a command-line name");
            assert_eq!(parsed, case, "{} is its own command-line name", case.name());
        }
    }
}
