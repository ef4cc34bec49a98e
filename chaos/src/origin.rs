//! The origin as operators run it: the real binary in its own process, configured only through
//! its environment, logs appended to files (so every incarnation of a restarted origin is scanned
//! for panics and secrets), stopped with real signals.

use std::fs::{File, OpenOptions};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

use crate::probe;

/// How long a started origin may take to answer its probe.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

/// What it takes to start one origin, reusable for restarts on the same ports.
#[derive(Clone, Debug)]
pub struct OriginSpec {
    pub binary: PathBuf,
    pub name: String,
    pub addr: SocketAddr,
    pub metrics_addr: SocketAddr,
    pub env: Vec<(String, String)>,
    pub log_dir: PathBuf,
}

impl OriginSpec {
    /// An origin on fresh loopback ports with `env` on top of quiet, production-like defaults.
    pub fn new(
        binary: &Path,
        name: &str,
        log_dir: &Path,
        env: &[(&str, &str)],
    ) -> Result<Self, String> {
        let mut spec = Self {
            binary: binary.to_path_buf(),
            name: name.into(),
            addr: probe::free_addr()?,
            metrics_addr: probe::free_addr()?,
            env: Vec::new(),
            log_dir: log_dir.to_path_buf(),
        };
        // The production configuration, except what a loopback test must change.
        spec.set("ACCESS_LOG_EVERY", "0");
        spec.set("DRAIN_PERIOD_MS", "0");
        spec.set("READY_CHECK_INTERVAL_MS", "100");
        spec.set("READY_STALE_AFTER_MS", "1000");
        for (k, v) in env {
            spec.set(k, v);
        }
        Ok(spec)
    }

    pub fn set(&mut self, name: &str, value: &str) {
        self.env.retain(|(k, _)| k != name);
        self.env.push((name.into(), value.into()));
    }

    pub fn stdout_log(&self) -> PathBuf {
        self.log_dir.join(format!("{}.log", self.name))
    }

    pub fn stderr_log(&self) -> PathBuf {
        self.log_dir.join(format!("{}.stderr.log", self.name))
    }

    /// Starts the process; does not wait for it to serve (see [`Origin::wait_ready`]).
    pub fn spawn(&self) -> Result<Origin, String> {
        let append = |path: &Path| -> Result<File, String> {
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| format!("{}: {e}", path.display()))
        };
        let child = Command::new(&self.binary)
            .env_clear()
            .env("LISTEN_ADDR", self.addr.to_string())
            .env("METRICS_ADDR", self.metrics_addr.to_string())
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(append(&self.stdout_log())?)
            .stderr(append(&self.stderr_log())?)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", self.binary.display()))?;
        let pid = child.id().ok_or("the origin exited at once")?;
        Ok(Origin {
            spec: self.clone(),
            child,
            pid,
        })
    }

    /// Starts the process and waits until `/readyz` answers 200.
    pub async fn start_ready(&self) -> Result<Origin, String> {
        let mut origin = self.spawn()?;
        origin.wait_ready().await?;
        Ok(origin)
    }
}

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
        format!("http://{}", self.spec.addr)
    }

    pub async fn wait_ready(&mut self) -> Result<Duration, String> {
        self.wait_for("/readyz", 200).await
    }

    /// Polls `path` until it answers `status`; fails early if the process died.
    pub async fn wait_for(&mut self, path: &str, status: u16) -> Result<Duration, String> {
        let waited = probe::wait_for_status(self.addr(), path, status, START_TIMEOUT).await;
        if let Some(exit) = self.exited() {
            return Err(format!(
                "{} exited ({exit}); see {}",
                self.spec.name,
                self.spec.stdout_log().display()
            ));
        }
        waited.map_err(|e| format!("{}: {e}", self.spec.name))
    }

    /// `Some(description)` once the process has exited.
    pub fn exited(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(status)) => Some(status.to_string()),
            Ok(None) => None,
            Err(e) => Some(format!("unknown: {e}")),
        }
    }

    pub fn signal(&self, signal: libc::c_int) -> Result<(), String> {
        // SAFETY: kill(2) on the pid of a child we spawned and have not reaped (the Child owns it).
        if unsafe { libc::kill(self.pid as libc::pid_t, signal) } == 0 {
            Ok(())
        } else {
            Err(format!(
                "kill({}, {signal}): {}",
                self.pid,
                std::io::Error::last_os_error()
            ))
        }
    }

    /// SIGKILL: no drain, no flush, no goodbye. Returns once the process is gone.
    pub async fn kill(mut self) -> Result<(), String> {
        self.signal(libc::SIGKILL)?;
        self.child
            .wait()
            .await
            .map(drop)
            .map_err(|e| format!("wait: {e}"))
    }

    /// SIGTERM and wait for the exit code (a graceful stop exits 0).
    pub async fn terminate(mut self, timeout: Duration) -> Result<i32, String> {
        self.signal(libc::SIGTERM)?;
        match tokio::time::timeout(timeout, self.child.wait()).await {
            Ok(Ok(status)) => status
                .code()
                .ok_or_else(|| format!("{} ended by a signal ({status})", self.spec.name)),
            Ok(Err(e)) => Err(format!("wait: {e}")),
            Err(_) => Err(format!(
                "{} did not exit within {timeout:?} of SIGTERM",
                self.spec.name
            )),
        }
    }

    pub async fn metrics(&self) -> Result<String, String> {
        probe::scrape(self.metrics_addr()).await
    }
}

/// Lines of the origin's logs (all incarnations, stdout and stderr) that report a panic.
pub fn panics(spec: &OriginSpec) -> Vec<String> {
    let mut found = Vec::new();
    for path in [spec.stdout_log(), spec.stderr_log()] {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        found.extend(
            text.lines()
                .filter(|l| l.contains("panicked") || l.contains("RUST_BACKTRACE"))
                .map(|l| l.chars().take(300).collect::<String>()),
        );
    }
    found
}

/// Both logs, concatenated (for secret scans).
pub fn logs(spec: &OriginSpec) -> String {
    let mut text = std::fs::read_to_string(spec.stdout_log()).unwrap_or_default();
    text.push_str(&std::fs::read_to_string(spec.stderr_log()).unwrap_or_default());
    text
}
