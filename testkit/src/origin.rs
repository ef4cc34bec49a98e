//! The origin as operators run it: the real binary in its own process, configured only through
//! its environment, on fresh loopback ports, logs appended to files (so every incarnation of a
//! restarted origin is scanned for panics and secrets), ready when `/readyz` answers 200, stopped
//! with real signals.
//!
//! ```no_run
//! # async fn example() -> Result<(), testkit::Error> {
//! use testkit::origin::OriginSpec;
//! use std::path::Path;
//!
//! let url = testkit::Database::from_env()?.fresh("bench").await?;
//! // Production settings except the ports and these overrides.
//! let spec = OriginSpec::new(
//!     Path::new("target/release/counter-origin"),
//!     "origin-batched",
//!     Path::new("artifacts/bench"),
//!     &[("DATABASE_URL", &url), ("MAX_BATCH", "512")],
//! )?;
//! let origin = spec.start_ready().await?; // spawned, and /readyz answered 200
//! println!("serving on {} (pid {}), metrics on {}", origin.url(), origin.pid, origin.metrics_addr());
//! let exit_code = origin.terminate(std::time::Duration::from_secs(30)).await?;
//! assert_eq!(exit_code, 0);
//! assert!(testkit::origin::panics(&spec).is_empty());
//! # Ok(()) }
//! ```
//!
//! Any HTTP server binary starts the same way: one that takes its address as an argument and
//! has no `/readyz` (the benchmark's bare hyper server) pushes `spec.addr` onto `spec.args` and
//! sets `spec.ready_path` to a path it answers 200 on.

use std::fs::{File, OpenOptions};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

use crate::{ports, probe, Error};

/// How long a started origin may take to become ready.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

/// What a loopback test changes in the production configuration ([`OriginSpec::for_tests`]):
/// no load balancer to wait for on shutdown, no access-log sampling, readiness that follows the
/// store within a second.
pub const TEST_ENV: [(&str, &str); 4] = [
    ("ACCESS_LOG_EVERY", "0"),
    ("DRAIN_PERIOD_MS", "0"),
    ("READY_CHECK_INTERVAL_MS", "100"),
    ("READY_STALE_AFTER_MS", "1000"),
];

/// What it takes to start one origin, reusable for restarts on the same ports.
#[derive(Clone, Debug)]
pub struct OriginSpec {
    pub binary: PathBuf,
    /// Names the log files (`<log_dir>/<name>.log`, `<name>.stderr.log`) and error messages.
    pub name: String,
    /// `LISTEN_ADDR`: a free loopback port chosen at [`OriginSpec::new`].
    pub addr: SocketAddr,
    /// `METRICS_ADDR`: likewise.
    pub metrics_addr: SocketAddr,
    /// Command-line arguments (none for the origin).
    pub args: Vec<String>,
    /// The whole environment of the process (it starts from an empty one), in order; the
    /// addresses are added at spawn.
    pub env: Vec<(String, String)>,
    pub log_dir: PathBuf,
    /// `GET` on this path answers 200 once the server is ready.
    pub ready_path: String,
}

impl OriginSpec {
    /// An origin on fresh loopback ports with the production configuration plus `env`.
    pub fn new(
        binary: &Path,
        name: &str,
        log_dir: &Path,
        env: &[(&str, &str)],
    ) -> Result<Self, Error> {
        let mut spec = Self {
            binary: binary.to_path_buf(),
            name: name.into(),
            addr: ports::free_addr()?,
            metrics_addr: ports::free_addr()?,
            args: Vec::new(),
            env: Vec::new(),
            log_dir: log_dir.to_path_buf(),
            ready_path: "/readyz".into(),
        };
        for (k, v) in env {
            spec.set(k, v);
        }
        Ok(spec)
    }

    /// As [`OriginSpec::new`], with [`TEST_ENV`] under `env`.
    pub fn for_tests(
        binary: &Path,
        name: &str,
        log_dir: &Path,
        env: &[(&str, &str)],
    ) -> Result<Self, Error> {
        let mut spec = Self::new(binary, name, log_dir, &TEST_ENV)?;
        for (k, v) in env {
            spec.set(k, v);
        }
        Ok(spec)
    }

    /// Sets (or replaces) one variable.
    pub fn set(&mut self, name: &str, value: &str) {
        self.env.retain(|(k, _)| k != name);
        self.env.push((name.into(), value.into()));
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn stdout_log(&self) -> PathBuf {
        self.log_dir.join(format!("{}.log", self.name))
    }

    pub fn stderr_log(&self) -> PathBuf {
        self.log_dir.join(format!("{}.stderr.log", self.name))
    }

    /// Starts the process; does not wait for it to serve (see [`Origin::wait_ready`]). The
    /// process is killed if the [`Origin`] is dropped.
    pub fn spawn(&self) -> Result<Origin, Error> {
        let append = |path: &Path| -> Result<File, Error> {
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| Error::io(path.display().to_string(), e))
        };
        let child = Command::new(&self.binary)
            .args(&self.args)
            .env_clear()
            .env("LISTEN_ADDR", self.addr.to_string())
            .env("METRICS_ADDR", self.metrics_addr.to_string())
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(append(&self.stdout_log())?)
            .stderr(append(&self.stderr_log())?)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| Error::io(format!("cannot start {}", self.binary.display()), e))?;
        let pid = child.id().ok_or_else(|| Error::Exited {
            name: self.name.clone(),
            status: "at once".into(),
            log: self.stderr_log(),
        })?;
        Ok(Origin {
            spec: self.clone(),
            child,
            pid,
        })
    }

    /// Starts the process and waits until it is ready, at most [`START_TIMEOUT`].
    pub async fn start_ready(&self) -> Result<Origin, Error> {
        let mut origin = self.spawn()?;
        origin.wait_ready().await?;
        Ok(origin)
    }
}

/// A started process; killed when dropped.
pub struct Origin {
    pub spec: OriginSpec,
    child: Child,
    pub pid: u32,
}

impl Origin {
    pub fn addr(&self) -> SocketAddr {
        self.spec.addr
    }

    pub fn metrics_addr(&self) -> SocketAddr {
        self.spec.metrics_addr
    }

    pub fn url(&self) -> String {
        self.spec.url()
    }

    /// Waits until the ready path answers 200; how long that took.
    pub async fn wait_ready(&mut self) -> Result<Duration, Error> {
        let path = self.spec.ready_path.clone();
        self.wait_for(&path, 200).await
    }

    /// Polls `path` until it answers `status`, at most [`START_TIMEOUT`]; fails early if the
    /// process died.
    pub async fn wait_for(&mut self, path: &str, status: u16) -> Result<Duration, Error> {
        let addr = self.addr();
        // A process that exits fails the wait at once rather than after the whole timeout.
        let waited = tokio::select! {
            waited = probe::wait_for_status(addr, path, status, START_TIMEOUT) => Some(waited),
            _ = self.child.wait() => None,
        };
        // Checked after a success too: an answer from a process that has since died (or from
        // someone else on the port) is no readiness.
        if let Some(exit) = self.exited() {
            return Err(self.exited_error(exit));
        }
        match waited {
            Some(Ok(took)) => Ok(took),
            Some(Err(Error::Timeout(text))) => Err(Error::Timeout(format!(
                "{}: {text}; see {}",
                self.spec.name,
                self.spec.stdout_log().display()
            ))),
            Some(Err(other)) => Err(other),
            None => Err(self.exited_error("unknown status".into())),
        }
    }

    fn exited_error(&self, status: String) -> Error {
        Error::Exited {
            name: self.spec.name.clone(),
            status,
            log: self.spec.stdout_log(),
        }
    }

    /// `Some(description)` once the process has exited.
    pub fn exited(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(status)) => Some(status.to_string()),
            Ok(None) => None,
            Err(e) => Some(format!("unknown: {e}")),
        }
    }

    pub fn signal(&self, signal: libc::c_int) -> Result<(), Error> {
        // SAFETY: kill(2) on the pid of a child we spawned and have not reaped (the Child owns it).
        if unsafe { libc::kill(self.pid as libc::pid_t, signal) } == 0 {
            Ok(())
        } else {
            Err(Error::io(
                format!("kill({}, {signal})", self.pid),
                std::io::Error::last_os_error(),
            ))
        }
    }

    /// SIGKILL: no drain, no flush, no goodbye. Returns once the process is gone.
    pub async fn kill(mut self) -> Result<(), Error> {
        self.signal(libc::SIGKILL)?;
        self.child
            .wait()
            .await
            .map(drop)
            .map_err(|e| Error::io(format!("waiting for {}", self.spec.name), e))
    }

    /// SIGTERM and wait for the exit code (a graceful stop exits 0).
    pub async fn terminate(mut self, timeout: Duration) -> Result<i32, Error> {
        self.signal(libc::SIGTERM)?;
        match tokio::time::timeout(timeout, self.child.wait()).await {
            Ok(Ok(status)) => status.code().ok_or_else(|| Error::Exited {
                name: self.spec.name.clone(),
                status: format!("ended by a signal: {status}"),
                log: self.spec.stdout_log(),
            }),
            Ok(Err(e)) => Err(Error::io(format!("waiting for {}", self.spec.name), e)),
            Err(_) => Err(Error::Timeout(format!(
                "{} did not exit within {timeout:?} of SIGTERM",
                self.spec.name
            ))),
        }
    }

    /// The Prometheus text of its metrics listener.
    pub async fn metrics(&self) -> Result<String, Error> {
        probe::scrape(self.metrics_addr()).await
    }
}

/// Lines of the logs (all incarnations, stdout and stderr) that report a panic.
pub fn panics(spec: &OriginSpec) -> Vec<String> {
    logs(spec)
        .lines()
        .filter(|l| l.contains("panicked") || l.contains("RUST_BACKTRACE"))
        .map(|l| l.chars().take(300).collect())
        .collect()
}

/// Both logs, concatenated (for secret scans).
pub fn logs(spec: &OriginSpec) -> String {
    let mut text = std::fs::read_to_string(spec.stdout_log()).unwrap_or_default();
    text.push_str(&std::fs::read_to_string(spec.stderr_log()).unwrap_or_default());
    text
}
