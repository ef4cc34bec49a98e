//! The throwaway PostgreSQL of `scripts/lib/postgres.sh` stopped and started with `pg_ctl` (as
//! the data directory's owner: PostgreSQL refuses to run as root). Fresh databases and the
//! committed counter come from `testkit::database`.

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::Command;

use crate::Error;

/// Bound on `pg_ctl stop`/`start` (`-t`), crash recovery after `immediate` included.
const PG_CTL_TIMEOUT_S: u32 = 60;

/// How `pg_ctl stop` takes the server down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopMode {
    /// Sessions are told to end (FATAL 57P01) and running statements roll back.
    Fast,
    /// Every backend dies at once, no goodbye: in-flight statements end in a dropped connection.
    Immediate,
}

impl StopMode {
    pub fn as_str(self) -> &'static str {
        match self {
            StopMode::Fast => "fast",
            StopMode::Immediate => "immediate",
        }
    }
}

/// `pg_ctl` for the server behind the admin URL. Only the throwaway server qualifies: the data
/// directory must be on this machine and `pg_ctl` must be found.
#[derive(Clone, Debug)]
pub struct ServerControl {
    pg_ctl: PathBuf,
    data_dir: PathBuf,
    log: PathBuf,
    /// uid/gid to run `pg_ctl` as when we are root.
    owner: Option<(u32, u32)>,
}

impl ServerControl {
    pub async fn discover(admin_url: &str, bin_dir: Option<PathBuf>) -> Result<Self, Error> {
        let admin = testkit::database::connect(admin_url).await?;
        let data_dir: String = admin
            .query_one("SHOW data_directory", &[])
            .await
            .map_err(|e| Error::Setup(format!("SHOW data_directory (a superuser is needed): {e}")))?
            .get(0);
        let data_dir = PathBuf::from(data_dir);
        let meta = std::fs::metadata(&data_dir).map_err(|e| {
            Error::Setup(format!(
                "the database's data directory {} is not on this machine ({e}): the outage case \
                 needs the throwaway server of scripts/lib/postgres.sh (leave DATABASE_URL unset)",
                data_dir.display()
            ))
        })?;
        let pg_ctl = match bin_dir {
            Some(dir) => dir.join("pg_ctl"),
            None => PathBuf::from("pg_ctl"),
        };
        // SAFETY: getuid(2) has no preconditions.
        let root = unsafe { libc::getuid() } == 0;
        let owner = (root && meta.uid() != 0).then(|| (meta.uid(), meta.gid()));
        let log = data_dir
            .parent()
            .map_or_else(|| data_dir.join("server.log"), |p| p.join("server.log"));
        Ok(Self {
            pg_ctl,
            data_dir,
            log,
            owner,
        })
    }

    async fn pg_ctl(&self, args: &[&str]) -> Result<Duration, Error> {
        let started = Instant::now();
        let mut command = Command::new(&self.pg_ctl);
        command
            .arg("-D")
            .arg(&self.data_dir)
            .args(args)
            .stdin(Stdio::null())
            .current_dir(self.data_dir.parent().unwrap_or(&self.data_dir));
        if let Some((uid, gid)) = self.owner {
            command.uid(uid).gid(gid);
        }
        let output = command
            .output()
            .await
            .map_err(|e| Error::io(format!("cannot run {}", self.pg_ctl.display()), e))?;
        if !output.status.success() {
            return Err(Error::Tool(format!(
                "pg_ctl {} failed: {}{}",
                args.join(" "),
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            )));
        }
        Ok(started.elapsed())
    }

    /// Stops the server and waits until it is down.
    pub async fn stop(&self, mode: StopMode) -> Result<Duration, Error> {
        let timeout = PG_CTL_TIMEOUT_S.to_string();
        self.pg_ctl(&["-m", mode.as_str(), "-w", "-t", &timeout, "stop"])
            .await
    }

    /// Starts the server (same configuration, same port) and waits until it accepts connections.
    pub async fn start(&self) -> Result<Duration, Error> {
        let timeout = PG_CTL_TIMEOUT_S.to_string();
        let log = self.log.display().to_string();
        self.pg_ctl(&["-l", &log, "-w", "-t", &timeout, "start"])
            .await
    }
}
