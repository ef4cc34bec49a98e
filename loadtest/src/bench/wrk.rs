//! `wrk`, the reference client the ratios were first measured with (`wrk -t2 -c256`):
//! GET, and POST through a Lua script. A POST to the origin needs no more than `wrk` sends by
//! default (`Host`) and an empty body with its `Content-Length: 0` (docs/design.md §1; no
//! `Idempotency-Key`, so the keyless one-statement path, as the harness's POSTs).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

use crate::SetupError;

/// `wrk.body = ""` makes wrk send `Content-Length: 0`; the method is the only other change.
const POST_SCRIPT: &str = "wrk.method = \"POST\"\nwrk.body = \"\"\n";

/// Any answer slower than this fails the measurement (wrk counts it as a timeout error).
const TIMEOUT: &str = "5s";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
}

/// How to run wrk: the binary, threads, connections, seconds, and where the POST script lives.
pub struct Wrk {
    pub binary: PathBuf,
    pub threads: usize,
    pub connections: usize,
    pub duration: Duration,
    post_script: PathBuf,
}

/// What one run answered.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WrkRun {
    pub requests: u64,
    pub rate: f64,
}

impl Wrk {
    /// Writes the POST script into `dir` (wrk reads it from a file).
    pub fn new(
        binary: &Path,
        threads: usize,
        connections: usize,
        duration: Duration,
        dir: &Path,
    ) -> Result<Self, SetupError> {
        let post_script = dir.join("wrk-post.lua");
        std::fs::write(&post_script, POST_SCRIPT)
            .map_err(|e| SetupError(format!("{}: {e}", post_script.display())))?;
        Ok(Self {
            binary: binary.to_path_buf(),
            threads,
            connections,
            duration,
            post_script,
        })
    }

    /// Closed loop on `url`/api/counter. Any non-2xx answer or socket error fails the
    /// measurement rather than inflating it.
    pub async fn run(&self, url: &str, method: Method) -> Result<WrkRun, SetupError> {
        let mut command = Command::new(&self.binary);
        command
            .arg(format!("-t{}", self.threads))
            .arg(format!("-c{}", self.connections))
            .arg(format!("-d{}s", self.duration.as_secs().max(1)))
            .arg("--timeout")
            .arg(TIMEOUT);
        if method == Method::Post {
            command.arg("-s").arg(&self.post_script);
        }
        let output = command
            .arg(format!("{url}/api/counter"))
            .stdin(Stdio::null())
            .output()
            .await
            .map_err(|e| SetupError(format!("cannot run {}: {e}", self.binary.display())))?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() {
            return Err(SetupError(format!(
                "wrk failed: {stdout}{}",
                String::from_utf8_lossy(&output.stderr)
            )));
        }
        parse(&stdout).map_err(|e| SetupError(format!("wrk {method:?} {url}: {e}\n{stdout}")))
    }
}

/// The count and rate of a wrk report; a report with errors is no measurement.
pub fn parse(stdout: &str) -> Result<WrkRun, String> {
    if let Some(line) = stdout
        .lines()
        .find(|l| l.contains("Non-2xx or 3xx responses") || l.contains("Socket errors"))
    {
        return Err(format!("errors during the run: {}", line.trim()));
    }
    // "  123456 requests in 4.00s, 14.20MB read"
    let requests = stdout
        .lines()
        .find_map(|l| l.trim().split_once(" requests in ")?.0.trim().parse().ok())
        .ok_or("no \"requests in\" line")?;
    let rate = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or("no Requests/sec line")?;
    if requests == 0 {
        return Err("no request answered".into());
    }
    Ok(WrkRun { requests, rate })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_wrk_and_refuses_runs_with_errors() {
        let ok = "Running 4s test @ http://x\n  2 threads and 256 connections\n  \
                  493827 requests in 4.00s, 56.50MB read\nRequests/sec: 123456.78\nTransfer/sec: 14.1MB\n";
        assert_eq!(
            parse(ok),
            Ok(WrkRun {
                requests: 493_827,
                rate: 123_456.78
            })
        );
        let errors = format!("{ok}  Non-2xx or 3xx responses: 12\n");
        assert!(parse(&errors).unwrap_err().contains("Non-2xx"));
        let timeouts = format!("{ok}  Socket errors: connect 0, read 0, write 0, timeout 9\n");
        assert!(parse(&timeouts).unwrap_err().contains("Socket errors"));
        assert!(parse("nothing").is_err());
        let none = "  0 requests in 4.00s, 0B read\nRequests/sec:      0.00\n";
        assert_eq!(parse(none), Err("no request answered".into()));
    }
}
