//! When to try again, and when to stop: the pure timing rules of the smoke step, apart from the I/O so
//! they can be tested as plain functions. The backoff between attempts is the retry policy's.
//!
//! The bound the step promises: an attempt starts only while the budget lasts, and every attempt is
//! itself cut off after one request timeout, so the checks end at most one request timeout after
//! `smoke-timeout`, whatever the endpoint does.

use std::time::Duration;

use tokio::time::Instant;

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
}
