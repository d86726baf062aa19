//! The pure rules of the watch signals: a window's values, and whether the window after the deploy
//! regressed against the one before, past the configured limits. No I/O, no clock.

use serde::Serialize;

use crate::config::WatchSignals;

/// What one window of the load balancer's metrics says.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Metrics {
    /// `RequestCount` summed over the window.
    pub requests: f64,
    /// `HTTPCode_Target_5XX_Count` summed over the window (the load balancer publishes nothing for a
    /// minute without any, which reads as zero).
    pub errors_5xx: f64,
    /// p95 of `TargetResponseTime`, milliseconds; `None` without a request.
    pub p95_ms: Option<f64>,
}

impl Metrics {
    /// The share of requests answered 5xx by the targets; `None` without a request.
    pub fn rate_5xx(&self) -> Option<f64> {
        (self.requests > 0.0).then(|| (self.errors_5xx / self.requests).clamp(0.0, 1.0))
    }
}

/// `1.25%`.
pub fn percent(rate: f64) -> String {
    let p = rate * 100.0;
    if p != 0.0 && p < 0.1 {
        format!("{p:.2}%")
    } else {
        format!("{p:.1}%")
    }
}

/// `340 ms`, `1.2 s`.
pub fn millis(ms: f64) -> String {
    if ms >= 1000.0 {
        format!("{:.1} s", ms / 1000.0)
    } else {
        format!("{ms:.0} ms")
    }
}

/// The 5xx rate after the deploy regressed: above the absolute limit AND above the factor times the
/// rate before (a service that always answered 3% 5xx is not made worse by a deploy that keeps it at
/// 3%). No request after the deploy: nothing to judge.
pub fn judge_5xx(before: Option<f64>, after: Option<f64>, lim: &WatchSignals) -> Option<String> {
    let after = after?;
    let before_rate = before.unwrap_or(0.0);
    (after > lim.max_5xx_rate && after > lim.max_5xx_factor * before_rate).then(|| {
        format!(
            "5xx rate {} (before the deploy {}; limit {} and {}x before)",
            percent(after),
            before.map(percent).unwrap_or_else(|| "no requests".into()),
            percent(lim.max_5xx_rate),
            lim.max_5xx_factor
        )
    })
}

/// The p95 response time after the deploy regressed: above the factor times the p95 before. Without a
/// p95 before the deploy there is nothing to compare with.
pub fn judge_p95(before: Option<f64>, after: Option<f64>, lim: &WatchSignals) -> Option<String> {
    let (before, after) = (before?, after?);
    (before > 0.0 && after > lim.max_p95_factor * before).then(|| {
        format!(
            "p95 response time {} (before the deploy {}; limit {}x)",
            millis(after),
            millis(before),
            lim.max_p95_factor
        )
    })
}

/// The error lines expected in a window of `after_secs` from `before` lines in `before_secs`.
pub fn expected_lines(before: u64, before_secs: f64, after_secs: f64) -> f64 {
    if before_secs <= 0.0 {
        return before as f64;
    }
    before as f64 * (after_secs / before_secs).max(0.0)
}

/// More error lines after the deploy than the factor times the lines the window before would have had
/// in the same time, plus the allowance.
pub fn judge_error_lines(
    before: u64,
    before_secs: f64,
    after: u64,
    after_secs: f64,
    lim: &WatchSignals,
) -> Option<String> {
    let expected = expected_lines(before, before_secs, after_secs);
    let limit = lim.max_error_lines_factor * expected + f64::from(lim.error_lines_allowance);
    (after as f64 > limit).then(|| {
        format!(
            "{after} error lines since the deploy (before the deploy {before} in {}; limit {limit:.0})",
            humantime::format_duration(std::time::Duration::from_secs(before_secs.max(0.0) as u64))
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn lim() -> WatchSignals {
        WatchSignals::defaults(Duration::from_secs(600))
    }

    #[test]
    fn rates_and_formats() {
        let m = |requests, errors_5xx| Metrics {
            requests,
            errors_5xx,
            p95_ms: None,
        };
        assert_eq!(m(0.0, 0.0).rate_5xx(), None);
        assert_eq!(m(200.0, 0.0).rate_5xx(), Some(0.0));
        assert_eq!(m(200.0, 5.0).rate_5xx(), Some(0.025));
        // Counts of different metrics can disagree within a minute; a rate is never above 100%.
        assert_eq!(m(2.0, 5.0).rate_5xx(), Some(1.0));
        assert_eq!(percent(0.025), "2.5%");
        assert_eq!(percent(0.0004), "0.04%");
        assert_eq!(percent(0.0), "0.0%");
        assert_eq!(millis(12.4), "12 ms");
        assert_eq!(millis(1260.0), "1.3 s");
    }

    #[test]
    fn the_5xx_rate_must_pass_both_limits() {
        // (before, after, regressed)
        let cases = [
            (Some(0.001), Some(0.05), true),
            (Some(0.0), Some(0.011), true),
            (None, Some(0.02), true),
            // Under the absolute limit.
            (Some(0.001), Some(0.009), false),
            // Over 1%, but no worse than twice before.
            (Some(0.03), Some(0.05), false),
            (Some(0.03), Some(0.061), true),
            // Nothing after the deploy.
            (Some(0.5), None, false),
            (None, None, false),
            (Some(0.001), Some(0.001), false),
        ];
        for (before, after, want) in cases {
            let got = judge_5xx(before, after, &lim());
            assert_eq!(got.is_some(), want, "{before:?} -> {after:?}: {got:?}");
        }
        assert_eq!(
            judge_5xx(Some(0.001), Some(0.05), &lim()).unwrap(),
            "5xx rate 5.0% (before the deploy 0.1%; limit 1.0% and 2x before)"
        );
    }

    #[test]
    fn p95_needs_a_baseline() {
        let cases = [
            (Some(100.0), Some(201.0), true),
            (Some(100.0), Some(200.0), false),
            (Some(100.0), Some(50.0), false),
            (None, Some(5000.0), false),
            (Some(0.0), Some(10.0), false),
            (Some(100.0), None, false),
        ];
        for (before, after, want) in cases {
            let got = judge_p95(before, after, &lim());
            assert_eq!(got.is_some(), want, "{before:?} -> {after:?}: {got:?}");
        }
        assert_eq!(
            judge_p95(Some(40.0), Some(1200.0), &lim()).unwrap(),
            "p95 response time 1.2 s (before the deploy 40 ms; limit 2x)"
        );
    }

    #[test]
    fn error_lines_are_scaled_to_the_time_watched() {
        // (before, before_secs, after, after_secs, regressed)
        let cases = [
            // 10 lines in 10 min before: 1 expected in the first minute, limit 3 + 10.
            (10, 600.0, 13, 60.0, false),
            (10, 600.0, 14, 60.0, true),
            // A quiet service: the allowance alone.
            (0, 600.0, 10, 600.0, false),
            (0, 600.0, 11, 600.0, true),
            // 100 lines before in 10 min: 300 + 10 in as long after.
            (100, 600.0, 310, 600.0, false),
            (100, 600.0, 311, 600.0, true),
        ];
        for (before, bs, after, asecs, want) in cases {
            let got = judge_error_lines(before, bs, after, asecs, &lim());
            assert_eq!(
                got.is_some(),
                want,
                "{before}/{bs} -> {after}/{asecs}: {got:?}"
            );
        }
        assert_eq!(expected_lines(7, 0.0, 60.0), 7.0);
        assert_eq!(
            judge_error_lines(0, 600.0, 25, 120.0, &lim()).unwrap(),
            "25 error lines since the deploy (before the deploy 0 in 10m; limit 10)"
        );
    }
}
