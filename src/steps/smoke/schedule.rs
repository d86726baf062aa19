//! When to try again, and when to stop: the pure timing rules of the smoke step, apart from the I/O so
//! they can be tested as plain functions. The backoff between attempts is the retry policy's.
//!
//! The bound the step promises: an attempt starts only while the budget lasts, and every attempt is
//! itself cut off after one request timeout, so the checks end at most one request timeout after
//! `smoke-timeout`, whatever the endpoint does.

use std::time::Duration;

use tokio::time::Instant;

/// The shortest interval between watch rounds, whatever the config says (a zero interval would spin).
const MIN_WATCH_INTERVAL: Duration = Duration::from_millis(100);

/// How long to wait before the attempt after `attempts_done` failed ones, or `None` when the budget
/// (ending at `deadline`) is spent. The delay is the binary's one backoff ([`crate::retry::Policy`] from
/// `base`), shortened so that the next attempt still starts at the deadline at the latest: the last
/// chance is never skipped because a long backoff happened to overshoot. The checks are bounded by
/// their time budget, not by a count, and every attempt is kept for the report, so they schedule their
/// own attempts rather than going through `retry::run`.
pub fn retry_delay(
    attempts_done: u32,
    now: Instant,
    deadline: Instant,
    base: Duration,
) -> Option<Duration> {
    if now >= deadline {
        return None;
    }
    let backoff = crate::retry::Policy::new(u32::MAX, base).delay(attempts_done.max(1));
    Some(backoff.min(deadline - now))
}

/// How many rounds a watch of `watch` with rounds every `interval` has: enough to cover the whole
/// window (the last round falls on its end), and none for a zero watch.
pub fn watch_rounds(watch: Duration, interval: Duration) -> u32 {
    if watch.is_zero() {
        return 0;
    }
    let interval = interval.max(MIN_WATCH_INTERVAL);
    let n = watch.as_nanos().div_ceil(interval.as_nanos());
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// When round `k` (1-based) is due, counted from the start of the watch: every `interval`, the last one
/// clamped to the end of the window. A round that overran its slot makes the next one start at once
/// (`sleep_until` a past instant returns immediately), never two at once.
pub fn round_due(start: Instant, k: u32, watch: Duration, interval: Duration) -> Instant {
    let interval = interval.max(MIN_WATCH_INTERVAL);
    start + interval.saturating_mul(k).min(watch)
}

/// The consecutive-failure rule of the watch: a bad round adds one, a good round resets to zero.
/// Returns the new count and whether it reached `limit` (sustained).
pub fn next_streak(streak: u32, bad: bool, limit: u32) -> (u32, bool) {
    let streak = if bad { streak + 1 } else { 0 };
    (streak, streak >= limit.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_stop_when_the_budget_is_spent() {
        let t0 = Instant::now();
        let deadline = t0 + Duration::from_secs(10);
        let base = Duration::from_secs(1);
        assert_eq!(retry_delay(3, deadline, deadline, base), None);
        assert_eq!(
            retry_delay(3, deadline + Duration::from_secs(1), deadline, base),
            None
        );
        // Never past the deadline: the last attempt starts on it at the latest.
        for n in 1..20 {
            let now = t0 + Duration::from_millis(9_900);
            let d = retry_delay(n, now, deadline, base).unwrap();
            assert!(d <= Duration::from_millis(100), "attempt {n}: {d:?}");
        }
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let t0 = Instant::now();
        let far = t0 + Duration::from_secs(3600);
        let base = Duration::from_secs(1);
        let first = retry_delay(1, t0, far, base).unwrap();
        assert!(
            first >= Duration::from_millis(500) && first <= base,
            "{first:?}"
        );
        let fourth = retry_delay(4, t0, far, base).unwrap();
        assert!(
            fourth >= Duration::from_secs(4) && fourth <= Duration::from_secs(8),
            "{fourth:?}"
        );
        let late = retry_delay(30, t0, far, base).unwrap();
        assert!(late <= Duration::from_secs(30), "{late:?}");
    }

    #[test]
    fn the_attempts_of_a_budget_are_bounded() {
        // Simulate a check that always fails instantly: the number of attempts in a 2 min budget is
        // small (backoff), and the last one starts no later than the deadline.
        let t0 = Instant::now();
        let deadline = t0 + Duration::from_secs(120);
        let mut now = t0;
        let mut attempts = 1;
        while let Some(d) = retry_delay(attempts, now, deadline, Duration::from_secs(1)) {
            now += d;
            attempts += 1;
            assert!(now <= deadline);
            assert!(attempts < 40, "runaway retries");
        }
        assert!((6..=16).contains(&attempts), "{attempts} attempts");
    }

    #[test]
    fn watch_rounds_cover_the_window() {
        let s = Duration::from_secs;
        assert_eq!(watch_rounds(Duration::ZERO, s(15)), 0);
        assert_eq!(watch_rounds(s(600), s(15)), 40);
        assert_eq!(watch_rounds(s(10), s(15)), 1);
        assert_eq!(watch_rounds(s(31), s(15)), 3);
        assert_eq!(watch_rounds(s(1), Duration::ZERO), 10);
        let t0 = Instant::now();
        assert_eq!(round_due(t0, 1, s(31), s(15)), t0 + s(15));
        assert_eq!(round_due(t0, 3, s(31), s(15)), t0 + s(31));
        assert_eq!(round_due(t0, 1, s(10), s(15)), t0 + s(10));
    }

    #[test]
    fn a_good_round_resets_the_streak() {
        let mut streak = 0;
        let mut sustained = false;
        for bad in [true, true, false, true, true] {
            (streak, sustained) = next_streak(streak, bad, 3);
        }
        assert_eq!((streak, sustained), (2, false));
        (streak, sustained) = next_streak(streak, true, 3);
        assert_eq!((streak, sustained), (3, true));
        assert_eq!(next_streak(0, true, 0), (1, true));
    }
}
