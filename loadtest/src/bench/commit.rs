//! The commit time of the benchmark's PostgreSQL, measured before any load: what one
//! `UPDATE … RETURNING` in autocommit costs when nothing else runs (the backend's work and the
//! WAL flush), and what the disk's `fdatasync` alone costs (`pg_test_fsync`, PostgreSQL's own
//! tool, on the file system of the data directory). These bound the write path whatever the CPU:
//! a closed loop of C connections gets at most C ÷ (2 × statement time) POSTs a second
//! (docs/capacity.md), and the latency claim is stated in commits.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use crate::SetupError;

/// Statements timed for the idle commit: enough for a steady mean on a disk whose flushes vary
/// by 2–3×, few enough to take about a second.
const STATEMENTS: usize = 300;
/// Seconds per `pg_test_fsync` test (its `-s`); only the first section's `fdatasync` line is read.
const FSYNC_TEST_SECONDS: u32 = 2;

#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct CommitTime {
    /// One single-row `UPDATE` in autocommit, round trip on loopback included, nothing else
    /// running: mean, median, and the tail (a shared disk's flushes stall now and then, and an
    /// open loop's p99 meets those stalls).
    pub statement_mean_ms: f64,
    pub statement_p50_ms: f64,
    pub statement_p99_ms: f64,
    pub statement_max_ms: f64,
    /// `pg_test_fsync`'s `fdatasync` of one 8 kB write (PostgreSQL's default `wal_sync_method` on
    /// Linux); `None` when the tool or the data directory is not at hand.
    pub fdatasync_ms: Option<f64>,
}

/// Idle single-row `UPDATE`s in autocommit, timed one after another.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct IdleUpdates {
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// Times [`STATEMENTS`] commits on a scratch table of `database_url` (created and dropped here):
/// through the latency proxy, a round trip and a commit as the origins face them.
pub async fn idle_updates(database_url: &str) -> Result<IdleUpdates, SetupError> {
    let client = testkit::database::connect(database_url).await?;
    let fail = |e: tokio_postgres::Error| SetupError(format!("commit probe: {e}"));
    client
        .batch_execute(
            "DROP TABLE IF EXISTS bench_commit_probe; \
             CREATE TABLE bench_commit_probe (id int PRIMARY KEY, value bigint NOT NULL); \
             INSERT INTO bench_commit_probe VALUES (1, 0)",
        )
        .await
        .map_err(fail)?;
    let update = client
        .prepare("UPDATE bench_commit_probe SET value = value + $1 WHERE id = 1 RETURNING value")
        .await
        .map_err(fail)?;
    let mut times = Vec::with_capacity(STATEMENTS);
    for _ in 0..STATEMENTS {
        let started = Instant::now();
        client.query_one(&update, &[&1i64]).await.map_err(fail)?;
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    client
        .batch_execute("DROP TABLE bench_commit_probe")
        .await
        .map_err(fail)?;
    times.sort_by(f64::total_cmp);
    Ok(IdleUpdates {
        mean_ms: times.iter().sum::<f64>() / times.len() as f64,
        p50_ms: super::median(&times),
        p99_ms: times[(times.len() * 99).div_ceil(100) - 1],
        max_ms: times[times.len() - 1],
    })
}

/// The idle commit on loopback, then the disk's `fdatasync` when PostgreSQL is at hand.
pub async fn measure(
    database_url: &str,
    pg_bin_dir: Option<&Path>,
    pg_data_dir: Option<&Path>,
) -> Result<CommitTime, SetupError> {
    let idle = idle_updates(database_url).await?;
    let fdatasync_ms = match (pg_bin_dir, pg_data_dir) {
        (Some(bin), Some(data)) => Some(fdatasync_ms(bin, data).await?),
        _ => None,
    };
    Ok(CommitTime {
        statement_mean_ms: idle.mean_ms,
        statement_p50_ms: idle.p50_ms,
        statement_p99_ms: idle.p99_ms,
        statement_max_ms: idle.max_ms,
        fdatasync_ms,
    })
}

/// Runs `pg_test_fsync` with its test file beside the data directory (same file system as the
/// WAL) and stops it once the first `fdatasync` figure is out (the later sections test other
/// write patterns the WAL does not use).
async fn fdatasync_ms(bin: &Path, data_dir: &Path) -> Result<f64, SetupError> {
    // Where `initdb` is a link onto PATH (Debian's /usr/lib/postgresql/15/bin/initdb linked into
    // /usr/local/bin), pg_test_fsync stays beside the link's target.
    let tool = std::iter::once(bin.to_path_buf())
        .chain(
            std::fs::canonicalize(bin.join("initdb"))
                .ok()
                .and_then(|initdb| initdb.parent().map(Path::to_path_buf)),
        )
        .map(|dir| dir.join("pg_test_fsync"))
        .find(|tool| tool.exists())
        .ok_or_else(|| {
            SetupError(format!(
                "no pg_test_fsync in {} (nor beside its initdb's target)",
                bin.display()
            ))
        })?;
    let file = data_dir
        .parent()
        .unwrap_or(data_dir)
        .join("bench-pg_test_fsync.tmp");
    let mut child = Command::new(&tool)
        .arg("-s")
        .arg(FSYNC_TEST_SECONDS.to_string())
        .arg("-f")
        .arg(&file)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| SetupError(format!("cannot run {}: {e}", tool.display())))?;
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut seen = String::new();
    let found = tokio::time::timeout(Duration::from_secs(60), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(ms) = parse_fdatasync(&line) {
                return Some(ms);
            }
            seen.push_str(&line);
            seen.push('\n');
        }
        None
    })
    .await
    .ok()
    .flatten();
    let _ = child.kill().await;
    let _ = std::fs::remove_file(&file);
    found.ok_or_else(|| {
        SetupError(format!(
            "{} gave no fdatasync figure:\n{seen}",
            tool.display()
        ))
    })
}

/// `        fdatasync                 857.620 ops/sec    1166 usecs/op` → 1.166 ms.
pub fn parse_fdatasync(line: &str) -> Option<f64> {
    let mut words = line.split_whitespace();
    if words.next()? != "fdatasync" {
        return None;
    }
    let words: Vec<&str> = words.collect();
    let at = words.iter().position(|w| *w == "usecs/op")?;
    let us: f64 = words.get(at.checked_sub(1)?)?.parse().ok()?;
    Some(us / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_pg_test_fsyncs_fdatasync_line() {
        assert_eq!(
            parse_fdatasync(
                "        fdatasync                           857.620 ops/sec    1166 usecs/op"
            ),
            Some(1.166)
        );
        assert_eq!(
            parse_fdatasync(
                "        open_datasync                       337.692 ops/sec    2961 usecs/op"
            ),
            None
        );
        // Linux's default is written on the header line too; that is not a figure.
        assert_eq!(
            parse_fdatasync(
                "(in wal_sync_method preference order, except fdatasync is Linux's default)"
            ),
            None
        );
        assert_eq!(
            parse_fdatasync("        fdatasync                                    n/a"),
            None
        );
    }
}
