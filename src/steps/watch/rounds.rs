//! The pure timing and verdict rules of the post-deploy watch, apart from the I/O so they can be tested
//! as plain functions: how many rounds, when each is due, and when bad rounds in a row are sustained.
//!
//! APIs: none.

use std::time::Duration;

use tokio::time::Instant;

/// The shortest interval between rounds, whatever the config says (a zero interval would spin).
const MIN_INTERVAL: Duration = Duration::from_millis(100);

/// How many rounds a watch of `watch` with rounds every `interval` has: enough to cover the whole
/// window (the last round falls on its end), and none for a zero watch.
pub fn planned(watch: Duration, interval: Duration) -> u32 {
    if watch.is_zero() {
        return 0;
    }
    let interval = interval.max(MIN_INTERVAL);
    let n = watch.as_nanos().div_ceil(interval.as_nanos());
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// When round `k` (1-based) is due, counted from the start of the watch: every `interval`, the last one
/// clamped to the end of the window. A round that overran its slot makes the next one start at once
/// (`sleep_until` a past instant returns immediately), never two at once.
pub fn due(start: Instant, k: u32, watch: Duration, interval: Duration) -> Instant {
    let interval = interval.max(MIN_INTERVAL);
    start + interval.saturating_mul(k).min(watch)
}

/// The consecutive-failure rule: a bad round adds one, a good round resets to zero. Returns the new
/// count and whether it reached `limit` (sustained).
pub fn next_streak(streak: u32, bad: bool, limit: u32) -> (u32, bool) {
    let streak = if bad { streak + 1 } else { 0 };
    (streak, streak >= limit.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watch_rounds_cover_the_window() {
        let s = Duration::from_secs;
        assert_eq!(planned(Duration::ZERO, s(15)), 0);
        assert_eq!(planned(s(600), s(15)), 40);
        assert_eq!(planned(s(10), s(15)), 1);
        assert_eq!(planned(s(31), s(15)), 3);
        assert_eq!(planned(s(1), Duration::ZERO), 10);
        let t0 = Instant::now();
        assert_eq!(due(t0, 1, s(31), s(15)), t0 + s(15));
        assert_eq!(due(t0, 3, s(31), s(15)), t0 + s(31));
        assert_eq!(due(t0, 1, s(10), s(15)), t0 + s(10));
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
