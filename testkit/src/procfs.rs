//! What Linux's `/proc` says about processes on this machine: CPU time (user + system, the
//! kernel's work on the process's behalf included) and memory. The benchmark divides CPU time by
//! requests to get a cost per request that stays steady on a busy machine (unlike throughput),
//! and reads a server's peak memory; the fault suite watches an origin's CPU and memory settle.

use std::path::Path;

use crate::Error;

/// `USER_HZ`: the unit of the CPU times in `/proc/<pid>/stat`, 100 on every Linux this runs on
/// (the kernel's ABI, independent of `CONFIG_HZ`).
pub const TICKS_PER_SECOND: f64 = 100.0;

/// The fields of `/proc/<pid>/stat` after the command name (which is in parentheses and may hold
/// spaces): index 0 is stat(5)'s field 3, the state.
fn fields_after_name(stat: &str) -> Option<Vec<&str>> {
    Some(stat.rsplit_once(')')?.1.split_whitespace().collect())
}

/// CPU seconds in a `/proc/<pid>/stat` (or `/proc/<pid>/task/<tid>/stat`) text: utime + stime
/// (stat(5) fields 14 and 15), and with `children` also cutime + cstime (16 and 17: children
/// that have exited and been waited for).
pub fn stat_cpu_seconds(stat: &str, children: bool) -> Option<f64> {
    let fields = fields_after_name(stat)?;
    let tick = |i: usize| fields.get(i)?.parse::<u64>().ok();
    let mut ticks = tick(11)? + tick(12)?;
    if children {
        ticks += tick(13)? + tick(14)?;
    }
    Some(ticks as f64 / TICKS_PER_SECOND)
}

/// The parent pid in a `/proc/<pid>/stat` text (stat(5) field 4).
pub fn stat_parent(stat: &str) -> Option<u32> {
    fields_after_name(stat)?.get(1)?.parse().ok()
}

fn read(path: &str) -> Result<String, Error> {
    std::fs::read_to_string(path).map_err(|e| Error::io(path.to_string(), e))
}

/// A `/proc` file that does not read as documented.
fn malformed(path: &str, what: &str) -> Error {
    Error::io(
        path.to_string(),
        std::io::Error::new(std::io::ErrorKind::InvalidData, format!("no {what} in it")),
    )
}

fn unreadable(path: &str) -> Error {
    malformed(path, "CPU times")
}

/// CPU seconds a process has used so far, all its threads together.
pub fn cpu_seconds(pid: u32) -> Result<f64, Error> {
    let path = format!("/proc/{pid}/stat");
    stat_cpu_seconds(&read(&path)?, false).ok_or_else(|| unreadable(&path))
}

/// CPU seconds of this process's children that have exited and been waited for (a `wrk` run, once
/// `output()` has returned).
pub fn reaped_children_cpu_seconds() -> Result<f64, Error> {
    // One read for both sums: two reads would see this process's own time grow in between.
    let path = "/proc/self/stat";
    let stat = read(path)?;
    let all = stat_cpu_seconds(&stat, true).ok_or_else(|| unreadable(path))?;
    let own = stat_cpu_seconds(&stat, false).ok_or_else(|| unreadable(path))?;
    Ok(all - own)
}

/// The calling thread's id in this process (for [`thread_cpu_seconds`]).
pub fn current_thread_id() -> Result<u32, Error> {
    let link =
        std::fs::read_link("/proc/thread-self").map_err(|e| Error::io("/proc/thread-self", e))?;
    link.file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| {
            malformed(
                &format!("/proc/thread-self -> {}", link.display()),
                "thread id",
            )
        })
}

/// CPU seconds one thread of this process has used so far.
pub fn thread_cpu_seconds(tid: u32) -> Result<f64, Error> {
    let path = format!("/proc/self/task/{tid}/stat");
    stat_cpu_seconds(&read(&path)?, false).ok_or_else(|| unreadable(&path))
}

/// CPU seconds of a process and its live children together: a PostgreSQL server is its
/// postmaster and the processes it forked (backends, WAL writer, checkpointer, …). Children that
/// exited are not seen, so this is measured around runs whose connections stay open.
pub fn process_tree_cpu_seconds(parent: u32) -> Result<f64, Error> {
    let mut total = cpu_seconds(parent)?;
    for child in children(parent)? {
        // A child may exit between the listing and the read: it is then not a live child.
        total += cpu_seconds(child).unwrap_or(0.0);
    }
    Ok(total)
}

/// The live processes whose parent is `parent`.
pub fn children(parent: u32) -> Result<Vec<u32>, Error> {
    let entries = std::fs::read_dir("/proc").map_err(|e| Error::io("/proc", e))?;
    let mut children = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        // A process may exit between the listing and the read: it is then not a live child.
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        if stat_parent(&stat) == Some(parent) {
            children.push(pid);
        }
    }
    Ok(children)
}

/// The threads of a live process (its `/proc/<pid>/task` entries).
pub fn threads(pid: u32) -> Result<Vec<u32>, Error> {
    let path = format!("/proc/{pid}/task");
    let entries = std::fs::read_dir(&path).map_err(|e| Error::io(path.clone(), e))?;
    Ok(entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect())
}

/// The postmaster's pid of the PostgreSQL server whose data directory is `data_dir` (the first
/// line of its `postmaster.pid`).
pub fn postmaster_pid(data_dir: &Path) -> Result<u32, Error> {
    let path = data_dir.join("postmaster.pid");
    let text =
        std::fs::read_to_string(&path).map_err(|e| Error::io(path.display().to_string(), e))?;
    text.lines()
        .next()
        .and_then(|l| l.trim().parse().ok())
        .ok_or_else(|| malformed(&path.display().to_string(), "pid on its first line"))
}

/// A memory figure of `/proc/<pid>/status` in bytes: `VmRSS` (resident now) or `VmHWM` (the
/// peak resident set).
pub fn status_bytes(pid: u32, field: &str) -> Result<u64, Error> {
    let path = format!("/proc/{pid}/status");
    status_field_bytes(&read(&path)?, field).ok_or_else(|| malformed(&path, field))
}

pub fn status_field_bytes(status: &str, field: &str) -> Option<u64> {
    let line = status
        .lines()
        .find(|l| l.split_once(':').is_some_and(|(name, _)| name == field))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_comes_from_utime_and_stime_and_optionally_the_reaped_children() {
        let stat = "4242 (counter origin) S 1 2 3 4 5 6 7 8 9 10 150 50 300 100 20 0 3";
        assert_eq!(stat_cpu_seconds(stat, false), Some(2.0));
        assert_eq!(stat_cpu_seconds(stat, true), Some(6.0));
        assert_eq!(stat_parent(stat), Some(1));
        assert_eq!(stat_cpu_seconds("garbage", false), None);
    }

    #[test]
    fn this_process_and_thread_are_readable() {
        // CPU time only grows (other tests run beside this one), so each pair is read in the
        // order that makes the comparison hold however much time passes between the reads.
        let pid = std::process::id();
        let own = cpu_seconds(pid).unwrap();
        assert!(own >= 0.0);
        assert!(process_tree_cpu_seconds(pid).unwrap() >= own);
        let tid = current_thread_id().unwrap();
        assert!(threads(pid).unwrap().contains(&tid));
        let thread = thread_cpu_seconds(tid).unwrap();
        // One tick of slack: the kernel rounds a thread's and the process's times separately.
        assert!(thread <= cpu_seconds(pid).unwrap() + 0.01);
        assert!(reaped_children_cpu_seconds().unwrap() >= 0.0);
        assert!(status_bytes(pid, "VmHWM").unwrap() >= status_bytes(pid, "VmRSS").unwrap() / 2);
    }

    #[test]
    fn memory_fields_are_matched_by_whole_name() {
        let status = "Name:\tx\nVmHWM:\t   16384 kB\nVmRSS:\t 1 kB\n";
        assert_eq!(status_field_bytes(status, "VmHWM"), Some(16 * 1024 * 1024));
        assert_eq!(status_field_bytes(status, "VmRSS"), Some(1024));
        assert_eq!(status_field_bytes(status, "VmHW"), None);
    }
}
