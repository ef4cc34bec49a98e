//! CPU seconds per request of every process a benchmark run keeps busy, from `/proc`: the
//! server(s) under test, PostgreSQL (all its processes), the client (this process without the
//! latency proxy's thread, or `wrk`) and the proxy. On a 2-core machine they share the cores, so
//! throughput ≈ cores available ÷ the sum of these costs (docs/capacity.md); and unlike
//! throughput, CPU per request stays steady when other work competes for the machine.

use std::path::Path;
use std::time::Instant;

use serde::Serialize;
use testkit::procfs;

use crate::SetupError;

/// What to read: the server processes, PostgreSQL's postmaster (when it runs on this machine),
/// and the proxy thread inside this process (when one runs).
#[derive(Clone, Debug, Default)]
pub struct Watched {
    pub servers: Vec<u32>,
    pub postmaster: Option<u32>,
    pub proxy_thread: Option<u32>,
}

impl Watched {
    pub fn new(servers: Vec<u32>, pg_data_dir: Option<&Path>) -> Result<Self, SetupError> {
        let postmaster = pg_data_dir.map(procfs::postmaster_pid).transpose()?;
        Ok(Self {
            servers,
            postmaster,
            proxy_thread: None,
        })
    }

    pub fn snapshot(&self) -> Result<Snapshot, SetupError> {
        let mut servers = 0.0;
        for &pid in &self.servers {
            servers += procfs::cpu_seconds(pid)?;
        }
        let proxy = match self.proxy_thread {
            Some(tid) => procfs::thread_cpu_seconds(tid)?,
            None => 0.0,
        };
        Ok(Snapshot {
            at: Instant::now(),
            servers,
            postgres: self
                .postmaster
                .map(procfs::process_tree_cpu_seconds)
                .transpose()?,
            own: procfs::cpu_seconds(std::process::id())? - proxy,
            reaped: procfs::reaped_children_cpu_seconds()?,
            proxy,
        })
    }
}

/// CPU seconds used so far, by component.
#[derive(Clone, Copy, Debug)]
pub struct Snapshot {
    at: Instant,
    servers: f64,
    postgres: Option<f64>,
    /// This process without the proxy thread: the harness (plus its scrapes, a rounding error).
    own: f64,
    /// Children waited for: `wrk`.
    reaped: f64,
    proxy: f64,
}

/// Which client produced the load of a run: its CPU is read differently.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Client {
    Harness,
    Wrk,
}

/// CPU microseconds per request (or per increment) of one run, by component. A component that
/// was not measured is `None`; a run with no request has no figures at all (see [`Cost::of`]).
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Cost {
    pub server_us: f64,
    pub postgres_us: Option<f64>,
    pub client_us: f64,
    pub proxy_us: f64,
    /// The sum: what one request costs the machine.
    pub total_us: f64,
    /// Share of the machine's cores these processes used during the run (1.0 = all of them):
    /// well under 1 means something else (other work, or waiting: commits, Little's law) held
    /// the rate down.
    pub busy_share: f64,
}

impl Cost {
    /// The cost of `requests` between two snapshots; `None` when nothing was served (a cost per
    /// request of nothing is no figure).
    pub fn of(before: &Snapshot, after: &Snapshot, requests: f64, client: Client) -> Option<Self> {
        if requests < 1.0 {
            return None;
        }
        let per = |seconds: f64| seconds / requests * 1e6;
        let client_seconds = match client {
            Client::Harness => after.own - before.own,
            Client::Wrk => after.reaped - before.reaped,
        };
        let postgres = after.postgres.zip(before.postgres).map(|(a, b)| a - b);
        let seconds = (after.servers - before.servers)
            + postgres.unwrap_or(0.0)
            + client_seconds
            + (after.proxy - before.proxy);
        let wall = after.at.saturating_duration_since(before.at).as_secs_f64();
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        Some(Self {
            server_us: per(after.servers - before.servers),
            postgres_us: postgres.map(per),
            client_us: per(client_seconds),
            proxy_us: per(after.proxy - before.proxy),
            total_us: per(seconds),
            busy_share: if wall > 0.0 {
                seconds / (wall * cores)
            } else {
                f64::NAN
            },
        })
    }

    /// The rate the machine's cores would allow if these processes had them all: cores ÷ CPU
    /// per request.
    pub fn cpu_bound_rate(&self) -> f64 {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        cores / (self.total_us / 1e6)
    }
}

/// `12 µs` style figures for the tables; `—` where nothing was measured.
pub fn us(v: Option<f64>) -> String {
    match v.filter(|v| v.is_finite()) {
        Some(v) if v < 10.0 => format!("{v:.1} µs"),
        Some(v) => format!("{v:.0} µs"),
        None => "—".into(),
    }
}

/// One table cell: server / PostgreSQL / client / proxy = total, and the cores' busy share.
pub fn cell(cost: Option<&Cost>) -> String {
    match cost {
        Some(c) => format!(
            "{} + {} + {}{} = **{}** ({:.0}% of the cores busy)",
            us(Some(c.server_us)),
            us(c.postgres_us),
            us(Some(c.client_us)),
            if c.proxy_us > 0.0 {
                format!(" + {}", us(Some(c.proxy_us)))
            } else {
                String::new()
            },
            us(Some(c.total_us)),
            c.busy_share * 100.0
        ),
        None => "no successful request".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(servers: f64, postgres: Option<f64>, own: f64, reaped: f64, proxy: f64) -> Snapshot {
        Snapshot {
            at: Instant::now(),
            servers,
            postgres,
            own,
            reaped,
            proxy,
        }
    }

    #[test]
    fn costs_are_divided_by_requests_and_summed() {
        let before = at(1.0, Some(2.0), 3.0, 4.0, 0.5);
        let after = at(2.0, Some(2.5), 3.2, 5.0, 0.6);
        let harness = Cost::of(&before, &after, 100_000.0, Client::Harness).unwrap();
        assert!((harness.server_us - 10.0).abs() < 1e-9);
        assert!((harness.postgres_us.unwrap() - 5.0).abs() < 1e-9);
        assert!((harness.client_us - 2.0).abs() < 1e-9);
        assert!((harness.proxy_us - 1.0).abs() < 1e-9);
        assert!((harness.total_us - 18.0).abs() < 1e-9);
        let wrk = Cost::of(&before, &after, 100_000.0, Client::Wrk).unwrap();
        assert!((wrk.client_us - 10.0).abs() < 1e-9);
        let no_postgres = Cost::of(
            &at(0.0, None, 0.0, 0.0, 0.0),
            &at(1.0, None, 0.0, 0.0, 0.0),
            1e6,
            Client::Harness,
        )
        .unwrap();
        assert_eq!(no_postgres.postgres_us, None);
        assert_eq!(us(no_postgres.postgres_us), "—");
    }

    #[test]
    fn nothing_served_has_no_cost() {
        let s = at(1.0, None, 1.0, 1.0, 0.0);
        assert!(Cost::of(&s, &s, 0.0, Client::Harness).is_none());
        assert_eq!(cell(None), "no successful request");
    }
}
