//! Slow clients against one origin: `slowhttptest` holds ~1,000 connections open with a request
//! head (slowloris) or a body (slow POST) that trickles in, while the load tester measures normal
//! requests at a constant rate. Promise: normal requests keep being served with p99 within 2× of
//! an idle baseline measured in the same run, and the slow connections are cut off by the
//! origin's own bounds (header-read timeout, request deadline), not held forever.
//!
//! The origin runs with its production timeouts (`HEADER_READ_TIMEOUT_MS=10000`,
//! `REQUEST_TIMEOUT_MS=5000`): the attacks are measured while they are in full force, then the
//! case waits for the origin to shed them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use loadtest::drive::{self, Mode, Plan, Scenario};
use loadtest::progress::Progress;
use loadtest::report::RunResult;
use serde::Serialize;
use testkit::client::Endpoint;

use super::{Env, FaultCase};
use crate::report::{ms, Checks};
use crate::Error;
use testkit::probe;

/// Idle/attacked window pairs per attack mode.
const ROUNDS: usize = 3;
/// Connections each attack holds.
pub const ATTACK_CONNECTIONS: usize = 1000;
/// A slow attack counts as in force from this share of its connections.
const IN_FORCE: f64 = 0.9;
/// Normal requests per second, measured idle and under attack (open loop: latency from the
/// intended send time, so a stalled server is charged for every request that queued).
const RATE: f64 = 1000.0;
/// Allowed p99 growth under attack.
pub const P99_FACTOR: f64 = 2.0;
/// The origin must have closed the slow connections within its header-read timeout (10 s) plus
/// this margin after the measurement (the attack was already seconds old by then).
const SHED_BOUND: Duration = Duration::from_secs(15);
/// Connections besides the load tester's that may remain (probes, stragglers being closed).
const SHED_SLACK: usize = 10;

#[derive(Clone, Debug, Default, Serialize)]
pub struct Measured {
    pub requests: u64,
    pub errors: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// The exact-count audit of the window's POSTs (distinct values, the counter moved by exactly
    /// the number of `200`s between two sentinels): the load tester's verdict.
    pub writes: String,
    pub writes_exact: bool,
}

impl Measured {
    fn of(result: &RunResult) -> Self {
        Self {
            requests: result.total.requests,
            errors: result.total.failed,
            p50_ms: result.total.latency_ms.p50,
            p99_ms: result.total.latency_ms.p99,
            max_ms: result.total.latency_ms.max,
            writes: result
                .writes
                .as_ref()
                .map_or("not checked".into(), |w| w.verdict()),
            writes_exact: result
                .writes
                .as_ref()
                .is_some_and(|w| w.outcome == loadtest::correctness::WriteOutcome::Ok),
        }
    }
}

/// One idle window and the attacked window right after it.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Round {
    pub baseline: Measured,
    pub under_attack: Measured,
    /// Most slow connections open at once at the origin's port.
    pub peak_connections: usize,
    /// From the attack's start until it was in force.
    pub ramp_ms: f64,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Attack {
    pub mode: String,
    /// Medians over the rounds: a sub-millisecond p99 on a shared 2-core machine moves by as
    /// much as the effect under test from one window to the next, so one pair would be a coin
    /// toss either way.
    pub baseline_p99_ms: f64,
    pub under_attack_p99_ms: f64,
    pub under_attack_errors: u64,
    pub rounds: Vec<Round>,
    /// From the end of the measurement until the origin had closed all but a few, with the
    /// attacker still running.
    pub shed_after_ms: Option<f64>,
    /// Slow connections still open when the attacker was stopped.
    pub still_open: usize,
    /// Slow POSTs answered 408 by the request deadline (`http_requests_total{status="408"}`).
    pub answered_408: u64,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Figures {
    pub rate_per_s: f64,
    pub connections: usize,
    pub measured_s: f64,
    pub attacks: Vec<Attack>,
    pub panics: Vec<String>,
}

pub struct SlowClients;

impl FaultCase for SlowClients {
    type Figures = Figures;

    async fn run(&self, env: &Env<'_>) -> Result<Figures, Error> {
        let url = env.fresh_database().await?;
        let spec = env.origin("origin", &[("DATABASE_URL", &url)])?;
        let origin = spec.start_ready().await?;
        let plan = Plan {
            // The page's mix: mostly reads, some increments.
            scenario: Scenario::Mixed { write_ratio: 0.1 },
            mode: Mode::Open { rate: RATE },
            connections: 8,
            warmup: Duration::from_millis(500),
            duration: Duration::from_secs(3),
            max_requests: None,
            timeout: Duration::from_secs(5),
            late_after: Duration::from_millis(1),
            exclusive: true,
        };
        let mut figures = Figures {
            rate_per_s: RATE,
            connections: plan.connections,
            measured_s: plan.duration.as_secs_f64(),
            ..Figures::default()
        };
        let url = origin.url();
        let port = origin.addr().port();
        for mode in ["slowloris", "slow-body"] {
            let mut attack = Attack {
                mode: mode.into(),
                ..Attack::default()
            };
            let in_force = (ATTACK_CONNECTIONS as f64 * IN_FORCE) as usize;
            for round in 0..ROUNDS {
                let last = round + 1 == ROUNDS;
                let baseline = measure(&url, &plan).await?;
                let mut figures = Round {
                    baseline: Measured::of(&baseline),
                    ..Round::default()
                };
                let started = Instant::now();
                let mut attacker = start_attack(env, mode, &url)?;
                let ramp = || {
                    let open = established(port);
                    figures.peak_connections = figures.peak_connections.max(open);
                    std::future::ready((open >= in_force).then_some(()))
                };
                let ramped = super::poll(Duration::from_secs(5), ramp).await;
                figures.ramp_ms = ms(started.elapsed());
                if ramped.is_none() {
                    let _ = attacker.start_kill();
                    return Err(Error::Tool(format!(
                    "{mode}: only {} of {ATTACK_CONNECTIONS} connections opened in 5 s (see {})",
                    figures.peak_connections,
                    env.dir.join(format!("{mode}.log")).display()
                )));
                }
                let under = measure(&url, &plan).await;
                figures.peak_connections = figures.peak_connections.max(established(port));
                if last {
                    // The attacker is still connected and trickling: only the origin's own
                    // timeouts can close those connections now.
                    let measured_at = Instant::now();
                    if at_most(port, plan.connections + SHED_SLACK, SHED_BOUND).await {
                        attack.shed_after_ms = Some(ms(measured_at.elapsed()));
                    }
                    attack.still_open = established(port).saturating_sub(plan.connections);
                }
                let _ = attacker.start_kill();
                let _ = attacker.wait().await;
                // Earlier rounds: the killed attacker's sockets close at once; start the next idle
                // window only when they are gone.
                at_most(port, plan.connections + SHED_SLACK, Duration::from_secs(10)).await;
                figures.under_attack = Measured::of(&under?);
                attack.rounds.push(figures);
            }
            let median = |f: &dyn Fn(&Round) -> f64| {
                let values: Vec<f64> = attack.rounds.iter().map(f).collect();
                loadtest::bench::median(&values)
            };
            attack.baseline_p99_ms = median(&|r| r.baseline.p99_ms);
            attack.under_attack_p99_ms = median(&|r| r.under_attack.p99_ms);
            attack.under_attack_errors = attack.rounds.iter().map(|r| r.under_attack.errors).sum();
            let metrics = origin.metrics().await?;
            attack.answered_408 = probe::sample(
                &metrics,
                "http_requests_total",
                &[
                    ("endpoint", "/api/counter"),
                    ("method", "POST"),
                    ("status", "408"),
                ],
            )
            .unwrap_or(0.0) as u64;
            figures.attacks.push(attack);
        }
        figures.panics = super::stop(origin).await;
        Ok(figures)
    }

    fn judge(f: &Figures) -> Checks {
        let mut checks = Checks::default();
        for a in &f.attacks {
            let bound = a.baseline_p99_ms * P99_FACTOR;
            let requests: u64 = a.rounds.iter().map(|r| r.under_attack.requests).sum();
            checks.expect(
            &format!("{}: normal requests keep their latency", a.mode),
            requests > 0 && a.under_attack_errors == 0 && a.under_attack_p99_ms <= bound,
            format!(
                "median p99 {} ms under attack vs {} ms idle (bound {bound:.3} ms) over {} rounds; per round {:?}; {requests} requests under attack, {} errors",
                a.under_attack_p99_ms,
                a.baseline_p99_ms,
                a.rounds.len(),
                a.rounds.iter().map(|r| (r.baseline.p99_ms, r.under_attack.p99_ms)).collect::<Vec<_>>(),
                a.under_attack_errors
            ),
        );
            let weakest = a
                .rounds
                .iter()
                .map(|r| r.peak_connections)
                .min()
                .unwrap_or(0);
            checks.expect(
                &format!("{}: the attack was in force", a.mode),
                !a.rounds.is_empty() && weakest >= (ATTACK_CONNECTIONS as f64 * IN_FORCE) as usize,
                format!(
                    "at least {weakest} connections held in every round (ramps {:?} ms)",
                    a.rounds.iter().map(|r| r.ramp_ms).collect::<Vec<_>>()
                ),
            );
            let windows = a.rounds.iter().flat_map(|r| [&r.baseline, &r.under_attack]);
            let inexact: Vec<&str> = windows
                .filter(|m| !m.writes_exact)
                .map(|m| m.writes.as_str())
                .collect();
            checks.expect(
                &format!("{}: exact count in every window", a.mode),
                !a.rounds.is_empty() && inexact.is_empty(),
                format!("windows whose writes were not exact: {inexact:?}"),
            );
            checks.expect(
                &format!("{}: the origin sheds the slow connections itself", a.mode),
                a.shed_after_ms.is_some(),
                format!(
                    "all but {} closed {:?} ms after the measurement, the attacker still running \
                 (bound {SHED_BOUND:?}); {} slow POSTs answered 408",
                    a.still_open, a.shed_after_ms, a.answered_408
                ),
            );
        }
        checks.no_panic("no panic", &f.panics);
        checks
    }
}

async fn measure(url: &str, plan: &Plan) -> Result<RunResult, Error> {
    let endpoint = Endpoint::resolve(url)
        .await
        .map_err(|e| Error::Setup(e.to_string()))?;
    let outcome = drive::run(Arc::new(endpoint), plan.clone(), &Progress::hidden())
        .await
        .map_err(|e| Error::Tool(format!("the load tester: {e}")))?;
    Ok(RunResult::new(url, plan.clone(), outcome, None))
}

/// slowhttptest in slowloris (`-H`) or slow-body (`-B`) mode, for longer than the case needs
/// (it is killed when the measurement is done).
fn start_attack(env: &Env<'_>, mode: &str, url: &str) -> Result<tokio::process::Child, Error> {
    let mut command = tokio::process::Command::new(&env.ctx.slowhttptest);
    match mode {
        // A header line every 5 s: the head never completes.
        "slowloris" => command.args(["-H", "-i", "5", "-x", "24"]),
        // Declares 1000 bytes (under the 1 KB body limit, so the origin must wait for them) and
        // sends 10 every 2 s: only the request deadline ends it.
        _ => command.args(["-B", "-i", "2", "-s", "1000", "-x", "10"]),
    };
    let connections = ATTACK_CONNECTIONS.to_string();
    command.arg("-u").arg(format!("{url}/api/counter")).args([
        "-c",
        &connections,
        "-r",
        "1000",
        "-l",
        "60",
        "-p",
        "3",
    ]);
    env.spawn(command, &format!("{mode}.log"))
}

/// Waits until at most `most` connections are open at `port`, within `bound`; whether they were.
async fn at_most(port: u16, most: usize, bound: Duration) -> bool {
    super::poll(bound, || async move {
        (established(port) <= most).then_some(())
    })
    .await
    .is_some()
}

/// Established TCP connections whose local port is `port` (the origin's side of each), from
/// /proc/net/tcp{,6}.
pub fn established(port: u16) -> usize {
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .map(|path| count_established(&std::fs::read_to_string(path).unwrap_or_default(), port))
        .sum()
}

pub fn count_established(table: &str, port: u16) -> usize {
    let wanted = format!("{port:04X}");
    table
        .lines()
        .skip(1)
        .filter(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            fields.len() > 3
                && fields[3] == "01"
                && fields[1].rsplit(':').next() == Some(wanted.as_str())
        })
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_established_sockets_on_the_local_port() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
           0: 0100007F:1F90 0100007F:D431 01 00000000:00000000 00:00000000 00000000     0        0 1\n\
           1: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2\n\
           2: 0100007F:D431 0100007F:1F90 01 00000000:00000000 00:00000000 00000000     0        0 3\n";
        assert_eq!(
            count_established(table, 8080),
            1,
            "the server side only, not the listener or the client side"
        );
    }

    fn good() -> Attack {
        let round = Round {
            baseline: Measured {
                requests: 3000,
                p99_ms: 1.0,
                writes_exact: true,
                ..Measured::default()
            },
            under_attack: Measured {
                requests: 3000,
                p99_ms: 1.5,
                writes_exact: true,
                ..Measured::default()
            },
            peak_connections: 1000,
            ramp_ms: 1300.0,
        };
        Attack {
            mode: "slowloris".into(),
            baseline_p99_ms: 1.0,
            under_attack_p99_ms: 1.5,
            rounds: vec![round.clone(), round.clone(), round],
            shed_after_ms: Some(9000.0),
            ..Attack::default()
        }
    }

    #[test]
    fn a_slow_or_unshed_attack_fails() {
        let passes = |a: &Attack| {
            SlowClients::judge(&Figures {
                attacks: vec![a.clone()],
                ..Figures::default()
            })
            .passed()
        };
        crate::report::assert_each_break_fails(
            good,
            passes,
            breaks![Attack;
                "p99 doubled and more" => |a| a.under_attack_p99_ms = 2.1,
                "errors under attack" => |a| a.under_attack_errors = 1,
                "attack never in force" => |a| a.rounds[1].peak_connections = 100,
                "connections never shed" => |a| a.shed_after_ms = None,
                "a window whose count was not exact" => |a| a.rounds[2].under_attack.writes_exact = false,
            ],
        );
    }
}
