//! Keeping a measurement's processes on chosen cores, and letting them go again. The benchmark's
//! latency runs use it: on the 2-core machine this project is built on, core 0 takes the device
//! interrupts and the sandbox's own agent and memory monitor, which hold it for up to 10 ms at a
//! time; every p99 measured across both cores carries those stalls (docs/capacity.md).
//!
//! Affinity is per thread in Linux: every thread of every process and of its children is moved.
//! Threads and processes started while pinned (a load thread, a PostgreSQL backend forked by its
//! postmaster) inherit the mask, and are released with their parent.

use rustix::thread::{sched_getaffinity, sched_setaffinity, CpuSet, Pid};

use crate::procfs;
use crate::Error;

/// Processes kept on some cores until [`Pinned::release`] (or drop) gives each, and each of its
/// children, back the mask its main thread had.
pub struct Pinned {
    /// Each process and its main thread's mask before pinning.
    processes: Vec<(u32, CpuSet)>,
}

/// The highest core this thread may run on, when it may run on at least two: the default of the
/// benchmark's latency runs (core 0 is the one that takes a machine's interrupts).
pub fn last_allowed_core() -> Option<usize> {
    let mask = sched_getaffinity(None).ok()?;
    let allowed: Vec<usize> = (0..CpuSet::MAX_CPU).filter(|&c| mask.is_set(c)).collect();
    (allowed.len() >= 2).then(|| allowed[allowed.len() - 1])
}

/// Moves every thread of `processes`, and of their live children, to `cores`.
pub fn pin(processes: &[u32], cores: &[usize]) -> Result<Pinned, Error> {
    if cores.is_empty() {
        return Err(Error::io(
            "pin",
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "no core to pin to"),
        ));
    }
    let mut mask = CpuSet::new();
    for &core in cores {
        mask.set(core);
    }
    let mut pinned = Pinned {
        processes: Vec::with_capacity(processes.len()),
    };
    for &pid in processes {
        let before = sched_getaffinity(Some(pid_of(pid)?))
            .map_err(|e| Error::io(format!("sched_getaffinity({pid})"), e.into()))?;
        // Recorded first, so that a failure below still gives this process back its mask.
        pinned.processes.push((pid, before));
        set_tree(pid, &mask)?;
    }
    Ok(pinned)
}

impl Pinned {
    /// Gives every thread of every pinned process (those started meanwhile included) its
    /// process's mask from before.
    pub fn release(mut self) -> Result<(), Error> {
        self.restore()
    }

    fn restore(&mut self) -> Result<(), Error> {
        let mut first_error = None;
        for (pid, mask) in self.processes.drain(..) {
            if let Err(e) = set_tree(pid, &mask) {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

impl Drop for Pinned {
    fn drop(&mut self) {
        let _ = self.restore();
    }
}

fn pid_of(pid: u32) -> Result<Pid, Error> {
    i32::try_from(pid)
        .ok()
        .and_then(Pid::from_raw)
        .ok_or_else(|| {
            Error::io(
                format!("pid {pid}"),
                std::io::ErrorKind::InvalidInput.into(),
            )
        })
}

/// Sets `mask` on every thread of `pid` and of its live children (a child that ends meanwhile is
/// no error; `pid` gone is).
fn set_tree(pid: u32, mask: &CpuSet) -> Result<(), Error> {
    set_every_thread(pid, mask)?;
    for child in procfs::children(pid)? {
        match set_every_thread(child, mask) {
            Ok(()) => {}
            Err(_) if !std::path::Path::new(&format!("/proc/{child}")).exists() => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Sets `mask` on every thread `/proc/<pid>/task` lists. A thread that ends between the listing
/// and the call is no error; a process that is gone is.
fn set_every_thread(pid: u32, mask: &CpuSet) -> Result<(), Error> {
    for tid in procfs::threads(pid)? {
        match sched_setaffinity(Some(pid_of(tid)?), mask) {
            Ok(()) | Err(rustix::io::Errno::SRCH) => {}
            Err(e) => return Err(Error::io(format!("sched_setaffinity({tid})"), e.into())),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cores_of(tid: u32) -> Vec<usize> {
        let mask = sched_getaffinity(Some(pid_of(tid).unwrap())).unwrap();
        (0..CpuSet::MAX_CPU).filter(|&c| mask.is_set(c)).collect()
    }

    #[test]
    fn a_process_and_its_children_go_to_the_cores_and_come_back() {
        // A process of its own with a child (this test process's threads are other tests' too).
        let mut parent = std::process::Command::new("sh")
            .args(["-c", "sleep 30 & wait"])
            .spawn()
            .unwrap();
        let pid = parent.id();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let child = loop {
            // The shell forks its child at once; wait for it to show in /proc.
            if let Some(&child) = procfs::children(pid).unwrap().first() {
                break child;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "sh never forked sleep"
            );
            std::thread::yield_now();
        };
        let before = cores_of(pid);
        let last = *before.last().unwrap();
        let pinned = pin(&[pid], &[last]).unwrap();
        assert_eq!(cores_of(pid), [last]);
        assert_eq!(cores_of(child), [last]);
        pinned.release().unwrap();
        assert_eq!(cores_of(pid), before);
        assert_eq!(cores_of(child), before);
        let _ = std::process::Command::new("kill")
            .arg(child.to_string())
            .status();
        parent.kill().unwrap();
        parent.wait().unwrap();
    }

    #[test]
    fn nothing_to_pin_to_and_a_process_that_is_gone_are_errors() {
        assert!(pin(&[std::process::id()], &[]).is_err());
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        assert!(pin(&[pid], &[0]).is_err());
    }
}
