//! JSON log lines on stdout (Fluent Bit ships them to CloudWatch).

use tracing_subscriber::EnvFilter;

/// Installs the global JSON subscriber. A second call (tests start many apps) is a no-op.
pub fn init(level: &str) {
    let filter = EnvFilter::try_new(level).unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_env_filter(filter)
        .with_writer(std::io::stdout)
        .try_init();
}

/// Whether this request's access-log line is written: one in `every`, counted per thread so the
/// hot path shares no cache line. 5xx answers are always logged by the caller.
pub fn sample_access_log(every: u64) -> bool {
    use std::cell::Cell;
    thread_local!(static SEEN: Cell<u64> = const { Cell::new(0) });
    match every {
        0 => false,
        1 => true,
        n => SEEN.with(|seen| {
            let count = seen.get().wrapping_add(1);
            seen.set(count);
            count % n == 0
        }),
    }
}
