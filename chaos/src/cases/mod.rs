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

use std::fs::File;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use clap::ValueEnum;
use serde::Serialize;
use tokio::process::{Child, Command};

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

/// Every case, in the order a run takes them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Case {
    /// A raw-socket corpus of malformed requests (chaos/corpus/malformed/).
    Malformed,
    /// No database password or origin-verify header value in logs or answers under failure.
    Secrets,
    /// The embedded store's disk fills up under write load (a 4 MiB tmpfs; needs root).
    DiskFull,
    /// The embedded store's files are deleted under write load.
    FilesDeleted,
    /// 1,500 HTTP/2 connections with a zero flow-control window and 256 streams each.
    H2ZeroWindow,
    /// 1,200 connections that send only the HTTP/2 preface, at MAX_CONNECTIONS=200.
    H2PrefaceFlood,
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
    /// cargo-fuzz on every parser of untrusted input, for a bounded time each.
    Fuzz,
}

impl Case {
    /// The cases of `--fast` (the test command), or all of them.
    pub fn selected(fast: bool) -> Vec<Case> {
        let full_only = [Case::DatabaseOutageImmediate, Case::SlowClients, Case::Fuzz];
        Case::value_variants()
            .iter()
            .filter(|case| !(fast && full_only.contains(*case)))
            .copied()
            .collect()
    }

    /// The name on the command line, in `chaos.json` and of the case's directory.
    pub fn name(self) -> String {
        self.to_possible_value()
            .expect("no case is hidden")
            .get_name()
            .to_string()
    }
}

/// What every case may use: the command line of `chaos`.
#[derive(Clone, Debug, clap::Parser)]
#[command(
    name = "chaos",
    about = "Fault cases for the Counter Service origin (all traffic on loopback)"
)]
pub struct Context {
    /// Cases to run (default: all, or the fast ones with --fast).
    #[arg(value_enum)]
    pub cases: Vec<Case>,
    /// The short run of the test command: fewer requests, shorter outages, only the fast cases.
    #[arg(long)]
    pub fast: bool,
    /// The `counter-origin` binary under test.
    #[arg(long = "origin", default_value = "target/debug/counter-origin")]
    pub origin_binary: PathBuf,
    /// Superuser URL of the throwaway PostgreSQL (scripts/lib/postgres.sh exports it); the
    /// PostgreSQL cases fail without it.
    #[arg(long, env = "TEST_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Directory of `pg_ctl` (scripts/lib/postgres.sh exports it); PATH otherwise.
    #[arg(long, env = "TEST_PG_BIN_DIR")]
    pub pg_bin_dir: Option<PathBuf>,
    #[arg(long, default_value = "haproxy")]
    pub haproxy: PathBuf,
    #[arg(long, default_value = "slowhttptest")]
    pub slowhttptest: PathBuf,
    /// The cargo-fuzz directory.
    #[arg(long, default_value = "fuzz")]
    pub fuzz_dir: PathBuf,
    /// How long each fuzz target runs.
    #[arg(long, default_value_t = 30)]
    pub fuzz_seconds: u64,
    /// Figures (`chaos.json`) and each case's logs go here.
    #[arg(long, default_value = "artifacts/chaos")]
    pub out: PathBuf,
}

/// One case's run: the shared context, its name and a fresh directory for its logs and
/// generated files, and the setup most cases start from.
pub struct Env<'a> {
    pub ctx: &'a Context,
    pub name: String,
    pub dir: PathBuf,
}

impl<'a> Env<'a> {
    fn new(ctx: &'a Context, name: String) -> Result<Self, Error> {
        let dir = ctx.out.join(&name);
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

    pub fn database(&self) -> Result<Database, Error> {
        let admin_url = self.ctx.database_url.clone().ok_or_else(|| {
            Error::Setup(
                "TEST_DATABASE_URL is not set: run through scripts/chaos.sh or scripts/test-chaos.sh \
                 (they start a throwaway PostgreSQL)"
                    .into(),
            )
        })?;
        Ok(Database { admin_url })
    }

    /// A fresh PostgreSQL database named after the case; its URL.
    pub async fn fresh_database(&self) -> Result<String, Error> {
        Ok(self.database()?.fresh(&self.name).await?)
    }

    /// Starts a tool the case drives (HAProxy, an attacker), its output in `<dir>/<log>`; killed
    /// when the child is dropped, so no tool outlives its case.
    pub fn spawn(&self, mut command: Command, log: &str) -> Result<Child, Error> {
        let path = self.dir.join(log);
        let file = File::create(&path).map_err(|e| Error::io(path.display(), e))?;
        let copy = file.try_clone().map_err(|e| Error::io(path.display(), e))?;
        let program = command
            .as_std()
            .get_program()
            .to_string_lossy()
            .into_owned();
        command
            .stdin(Stdio::null())
            .stdout(copy)
            .stderr(file)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| Error::io(format!("cannot start {program}"), e))
    }

    /// An empty data directory for the embedded store (`DATA_DIR`).
    pub fn data_dir(&self, label: &str) -> Result<String, Error> {
        let dir = self.dir.join(label);
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(dir.display(), e))?;
        Ok(dir.display().to_string())
    }
}

/// Asks `probe` every 20 ms until it yields a value, at most `bound`.
pub async fn poll<T, F: std::future::Future<Output = Option<T>>>(
    bound: Duration,
    mut probe: impl FnMut() -> F,
) -> Option<T> {
    let until_some = async {
        loop {
            if let Some(value) = probe().await {
                return value;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(bound, until_some).await.ok()
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
async fn execute<C: FaultCase>(case: &C, name: String, ctx: &Context) -> CaseReport {
    let started = Instant::now();
    let result = async {
        let figures = case.run(&Env::new(ctx, name.clone())?).await?;
        let checks = C::judge(&figures);
        Ok::<_, Error>((
            serde_json::to_value(&figures).expect("figures serialise"),
            checks,
        ))
    }
    .await;
    match result {
        Ok((figures, checks)) => CaseReport::new(&name, started.elapsed(), figures, checks),
        Err(error) => CaseReport::failed_to_run(&name, started.elapsed(), error.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_test_command_runs_all_but_the_long_cases() {
        let names =
            |fast| -> Vec<String> { Case::selected(fast).into_iter().map(Case::name).collect() };
        assert_eq!(
            names(false),
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
        let full_only = ["database-outage-immediate", "slow-clients", "fuzz"];
        let fast: Vec<String> = names(false)
            .into_iter()
            .filter(|n| !full_only.contains(&n.as_str()))
            .collect();
        assert_eq!(names(true), fast);
    }
}
