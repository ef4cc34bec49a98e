//! Milliseconds on the kernel's coarse monotonic clock, for the bookkeeping every request does
//! (connection activity, the read cache's freshness). `Instant::now()` costs a precise clock read
//! plus a timespec subtraction, several times per request; the coarse clock is one vDSO read of a
//! value the kernel updates every tick (1–4 ms), which is all a timeout of seconds needs.
//! Request durations for the metrics still use `Instant`.

/// Milliseconds since an arbitrary fixed point (boot); never goes backwards.
pub fn now_ms() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec through a valid pointer to a local.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut now) };
    debug_assert_eq!(rc, 0, "CLOCK_MONOTONIC_COARSE is always available on Linux");
    now.tv_sec as u64 * 1000 + now.tv_nsec as u64 / 1_000_000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advances_with_the_monotonic_clock_and_never_backwards() {
        let start = now_ms();
        let precise = std::time::Instant::now();
        let mut last = start;
        while precise.elapsed() < std::time::Duration::from_millis(30) {
            let now = now_ms();
            assert!(now >= last, "coarse clock went backwards: {last} → {now}");
            last = now;
        }
        // 30 ms passed on the precise clock; the coarse one lags by at most a tick (≤ 10 ms).
        assert!(
            last - start >= 20,
            "coarse clock advanced {} ms in 30 ms",
            last - start
        );
    }
}
