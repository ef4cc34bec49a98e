//! Mistakes a person makes with a load tester, caught before they cost a run: a base URL that
//! already names the API path, a write run that would add to someone else's counter, and
//! Ctrl-C (a stop that still reports, then an abort).

use crate::client::{Endpoint, COUNTER_PATH};
use crate::drive::{Mode, Plan, Stop};

/// Paths the origin serves under the base URL; a base URL ending in one doubles it.
const API_PATHS: [&str; 2] = [COUNTER_PATH, "/api"];

/// A warning when `base` already ends in an API path (requests would go to
/// `…/api/counter/api/counter` and fail with 404).
pub fn api_path_warning(base: &str) -> Option<String> {
    let path = base
        .split_once("://")
        .map_or(base, |(_, rest)| rest)
        .split_once('/')
        .map_or("", |(_, path)| path)
        .trim_end_matches('/');
    let path = format!("/{path}");
    API_PATHS.iter().find(|api| path.ends_with(*api)).map(|api| {
        format!(
            "the base URL already ends in {api}; requests go to {}{COUNTER_PATH}. Pass the service's root (e.g. {}) unless that is what you mean",
            base.trim_end_matches('/'),
            base.trim_end_matches('/').trim_end_matches(api)
        )
    })
}

/// A warning before a write run against another machine: every write adds one to a counter
/// other people may read.
pub fn shared_write_warning(endpoint: &Endpoint, plan: &Plan) -> Option<String> {
    let share = match plan.scenario {
        crate::drive::Scenario::Read => return None,
        crate::drive::Scenario::Write => 1.0,
        crate::drive::Scenario::Mixed { write_ratio } => write_ratio,
    };
    if endpoint.is_loopback() || share == 0.0 {
        return None;
    }
    let seconds = (plan.warmup + plan.duration).as_secs_f64();
    let scheduled = match &plan.mode {
        Mode::Open { rate } => Some(rate * seconds),
        Mode::Ramp { stages } => {
            let (mut from, mut n) = (0.0, 0.0);
            for s in stages {
                n += (from + s.target) / 2.0 * s.duration.as_secs_f64();
                from = s.target;
            }
            Some(n)
        }
        Mode::Closed => None,
    };
    let writes = match (scheduled, plan.max_requests) {
        (Some(n), Some(cap)) => format!("about {:.0}", (n.min(cap as f64) * share).ceil()),
        (Some(n), None) => format!("about {:.0}", (n * share).ceil()),
        (None, Some(cap)) => format!("up to {:.0}", (cap as f64 * share).ceil()),
        (None, None) => "as many as it can send in the time (closed loop)".into(),
    };
    Some(format!(
        "{} is not this machine: this run adds {writes} to its counter, which other people may read (and cannot be undone)",
        endpoint.base
    ))
}

/// The first Ctrl-C asks the run to stop (it still reports); the second exits at once with
/// 130, the shell's code for "interrupted".
pub async fn stop_on_ctrl_c(stop: Stop) {
    if tokio::signal::ctrl_c().await.is_err() {
        return;
    }
    stop.trigger();
    eprintln!(
        "\nloadtest: stopping: no new requests; waiting briefly for answers in flight, then the summary (Ctrl-C again to abort at once)"
    );
    if tokio::signal::ctrl_c().await.is_ok() {
        eprintln!("loadtest: aborted");
        std::process::exit(130);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drive::Scenario;
    use std::time::Duration;

    #[test]
    fn a_base_url_ending_in_the_api_path_is_flagged() {
        let w = api_path_warning("http://127.0.0.1:8080/api/counter").unwrap();
        assert!(w.contains("/api/counter/api/counter"), "{w}");
        assert!(w.contains("(e.g. http://127.0.0.1:8080)"), "{w}");
        assert!(api_path_warning("https://x.example/api/").is_some());
        assert_eq!(api_path_warning("http://127.0.0.1:8080"), None);
        assert_eq!(api_path_warning("http://127.0.0.1:8080/"), None);
        assert_eq!(api_path_warning("https://x.example/stage"), None);
    }

    fn plan(scenario: Scenario, mode: Mode) -> Plan {
        Plan {
            scenario,
            mode,
            connections: 1,
            warmup: Duration::from_secs(2),
            duration: Duration::from_secs(8),
            max_requests: None,
            timeout: Duration::from_secs(5),
            late_after: Duration::from_millis(1),
            exclusive: false,
        }
    }

    #[tokio::test]
    async fn writes_to_another_machine_are_announced_with_their_number() {
        // Resolving an address literal opens no connection.
        let remote = Endpoint::resolve("http://192.0.2.1:8080").await.unwrap();
        let local = Endpoint::resolve("http://127.0.0.1:8080").await.unwrap();
        let open = Mode::Open { rate: 100.0 };
        let w = shared_write_warning(&remote, &plan(Scenario::Write, open.clone())).unwrap();
        assert!(w.contains("adds about 1000 to its counter"), "{w}");
        let mixed = plan(Scenario::Mixed { write_ratio: 0.1 }, open.clone());
        assert!(shared_write_warning(&remote, &mixed)
            .unwrap()
            .contains("about 100 "));
        let closed = shared_write_warning(&remote, &plan(Scenario::Write, Mode::Closed)).unwrap();
        assert!(closed.contains("as many as it can send"), "{closed}");
        assert_eq!(
            shared_write_warning(&remote, &plan(Scenario::Read, open.clone())),
            None
        );
        assert_eq!(
            shared_write_warning(&local, &plan(Scenario::Write, open)),
            None
        );
    }
}
