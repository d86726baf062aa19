//! `smoke.watch-signals`: what the post-deploy watch reads besides its HTTP checks (the target group's
//! 5xx rate and p95 response time from CloudWatch, the error lines in the service's log group) and the
//! limits past which a round counts as bad. Validated here, so a typo costs no change. No AWS API.

use std::time::Duration;

use serde::Deserialize;

use super::error::{invalid, Error};
use super::validate::parse_duration;
use crate::clock::Clock;

/// CloudWatch Logs' limit on a filter pattern.
const MAX_PATTERN_CHARS: usize = 1024;

/// The default pattern of error lines: any line with one of these words.
pub const DEFAULT_ERROR_PATTERN: &str = "?ERROR ?Traceback ?CRITICAL";

/// The shortest window compared: CloudWatch keeps the load balancer's metrics per minute.
const MIN_BASELINE: Duration = Duration::from_secs(60);

/// The window before the deploy when neither `baseline` nor `watch` says more.
const DEFAULT_MIN_BASELINE: Duration = Duration::from_secs(300);

/// `smoke.watch-signals:` as written.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct WatchSignalsFile {
    /// Read the signals at all (default true; `false` keeps a smoke-only watch).
    pub enabled: Option<bool>,
    /// CloudWatch Logs filter pattern of an error line.
    pub error_pattern: Option<String>,
    /// A 5xx rate above this percentage (and above `max-5xx-factor` x the baseline) is a regression.
    pub max_5xx_percent: Option<f64>,
    pub max_5xx_factor: Option<f64>,
    /// A p95 response time above this factor x the baseline is a regression.
    pub max_p95_factor: Option<f64>,
    /// More error lines than this factor x the baseline plus `error-lines-allowance` is a regression.
    pub max_error_lines_factor: Option<f64>,
    pub error_lines_allowance: Option<u32>,
    /// Length of the window before the deploy (humantime; default: the watch's length, at least 5 min).
    pub baseline: Option<String>,
    /// Test-only, left out in real use: the run's wall clock reads this RFC 3339 time when the config is
    /// built and runs on at real speed, so a test stamps its metrics in a minute of its choosing
    /// instead of waiting for the real one.
    pub test_clock_start: Option<String>,
}

/// The limits of one watch, compiled.
#[derive(Debug, Clone, PartialEq)]
pub struct WatchSignals {
    pub enabled: bool,
    pub error_pattern: String,
    /// A fraction (0.01 for 1%).
    pub max_5xx_rate: f64,
    pub max_5xx_factor: f64,
    pub max_p95_factor: f64,
    pub max_error_lines_factor: f64,
    pub error_lines_allowance: u32,
    /// Whole minutes, at least one.
    pub baseline: Duration,
    /// What the windows are measured by: the system's time, unless a test set `test-clock-start`.
    pub clock: Clock,
}

impl WatchSignals {
    /// The defaults for a watch of `watch`.
    pub fn defaults(watch: Duration) -> Self {
        WatchSignals {
            enabled: true,
            error_pattern: DEFAULT_ERROR_PATTERN.into(),
            max_5xx_rate: 0.01,
            max_5xx_factor: 2.0,
            max_p95_factor: 2.0,
            max_error_lines_factor: 3.0,
            error_lines_allowance: 10,
            baseline: whole_minutes(watch.max(DEFAULT_MIN_BASELINE)),
            clock: Clock::System,
        }
    }
}

/// `d` rounded up to whole minutes.
fn whole_minutes(d: Duration) -> Duration {
    Duration::from_secs(d.as_secs().div_ceil(60).max(1) * 60)
}

fn factor(key: &'static str, v: Option<f64>, default: f64) -> Result<f64, Error> {
    match v {
        None => Ok(default),
        Some(f) if f.is_finite() && (1.0..=1000.0).contains(&f) => Ok(f),
        Some(f) => Err(invalid(
            key,
            format!("{f} is not a factor between 1 and 1000 (2 means twice the baseline)"),
        )),
    }
}

/// `test-clock-start`, when a test set it.
fn test_clock(start: Option<&str>) -> Result<Clock, Error> {
    let Some(v) = start else {
        return Ok(Clock::System);
    };
    humantime::parse_rfc3339_weak(v.trim())
        .map(Clock::starting_at)
        .map_err(|e| {
            invalid(
                "smoke.watch-signals.test-clock-start",
                format!(
                    "`{v}` is not an RFC 3339 time ({e}); this key is for tests only, leave it out"
                ),
            )
        })
}

/// Build the limits from `smoke.watch-signals` for a watch of `watch`.
pub(super) fn build(
    file: Option<&WatchSignalsFile>,
    watch: Duration,
) -> Result<WatchSignals, Error> {
    let d = WatchSignals::defaults(watch);
    let f = file.cloned().unwrap_or_default();
    let enabled = f.enabled.unwrap_or(true);
    let error_pattern = match f.error_pattern {
        None => d.error_pattern,
        Some(p) => {
            let p = p.trim().to_string();
            if p.is_empty() {
                return Err(invalid(
                    "smoke.watch-signals.error-pattern",
                    format!("is empty: leave it out for `{DEFAULT_ERROR_PATTERN}`"),
                ));
            }
            if p.chars().count() > MAX_PATTERN_CHARS || p.chars().any(char::is_control) {
                return Err(invalid(
                    "smoke.watch-signals.error-pattern",
                    format!("must be one line of at most {MAX_PATTERN_CHARS} characters (a CloudWatch Logs filter pattern)"),
                ));
            }
            p
        }
    };
    let max_5xx_rate = match f.max_5xx_percent {
        None => d.max_5xx_rate,
        Some(p) if p.is_finite() && (0.0..=100.0).contains(&p) => p / 100.0,
        Some(p) => {
            return Err(invalid(
                "smoke.watch-signals.max-5xx-percent",
                format!("{p} is not a percentage between 0 and 100"),
            ))
        }
    };
    let baseline = match &f.baseline {
        None => d.baseline,
        Some(v) => {
            let b = parse_duration("smoke.watch-signals.baseline", v)?;
            if b < MIN_BASELINE || b > Duration::from_secs(24 * 3600) {
                return Err(invalid(
                    "smoke.watch-signals.baseline",
                    format!("`{v}` must be between 1m and 24h (CloudWatch keeps load balancer metrics per minute)"),
                ));
            }
            whole_minutes(b)
        }
    };
    Ok(WatchSignals {
        enabled,
        error_pattern,
        max_5xx_rate,
        max_5xx_factor: factor("smoke.watch-signals.max-5xx-factor", f.max_5xx_factor, 2.0)?,
        max_p95_factor: factor("smoke.watch-signals.max-p95-factor", f.max_p95_factor, 2.0)?,
        max_error_lines_factor: factor(
            "smoke.watch-signals.max-error-lines-factor",
            f.max_error_lines_factor,
            3.0,
        )?,
        error_lines_allowance: f.error_lines_allowance.unwrap_or(d.error_lines_allowance),
        baseline,
        clock: test_clock(f.test_clock_start.as_deref())?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<WatchSignals, String> {
        let f: WatchSignalsFile = yaml_serde::from_str(yaml).map_err(|e| e.to_string())?;
        build(Some(&f), Duration::from_secs(600)).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_follow_the_watch() {
        let d = build(None, Duration::from_secs(600)).unwrap();
        assert!(d.enabled);
        assert_eq!(d.error_pattern, "?ERROR ?Traceback ?CRITICAL");
        assert_eq!(d.max_5xx_rate, 0.01);
        assert_eq!(d.baseline, Duration::from_secs(600));
        // A short watch still compares five minutes; odd lengths round up to whole minutes.
        let short = build(None, Duration::from_secs(30)).unwrap();
        assert_eq!(short.baseline, Duration::from_secs(300));
        let odd = build(None, Duration::from_secs(601)).unwrap();
        assert_eq!(odd.baseline, Duration::from_secs(660));
        assert!(!parse("{ enabled: false }").unwrap().enabled);
    }

    #[test]
    fn values_are_read_and_bad_ones_named() {
        let ok = parse(
            "{ error-pattern: ' ERROR ', max-5xx-percent: 0.5, max-p95-factor: 3, baseline: 90s, error-lines-allowance: 0 }",
        )
        .unwrap();
        assert_eq!(ok.error_pattern, "ERROR");
        assert_eq!(ok.max_5xx_rate, 0.005);
        assert_eq!(ok.max_p95_factor, 3.0);
        assert_eq!(ok.baseline, Duration::from_secs(120));
        assert_eq!(ok.error_lines_allowance, 0);
        let cases = [
            (
                "{ error-pattern: '' }",
                "invalid `smoke.watch-signals.error-pattern`: is empty",
            ),
            (
                "{ max-5xx-percent: 150 }",
                "invalid `smoke.watch-signals.max-5xx-percent`: 150 is not a percentage",
            ),
            (
                "{ max-5xx-factor: 0.5 }",
                "invalid `smoke.watch-signals.max-5xx-factor`: 0.5 is not a factor",
            ),
            (
                "{ baseline: 10s }",
                "invalid `smoke.watch-signals.baseline`: `10s` must be between 1m and 24h",
            ),
            (
                "{ baseline: soon }",
                "invalid `smoke.watch-signals.baseline`: `soon` is not a duration",
            ),
            ("{ max-p95: 2 }", "unknown field `max-p95`"),
            (
                "{ test-clock-start: tomorrow }",
                "invalid `smoke.watch-signals.test-clock-start`: `tomorrow` is not an RFC 3339 time",
            ),
        ];
        for (yaml, want) in cases {
            let err = parse(yaml).unwrap_err();
            assert!(err.contains(want), "{yaml}: `{err}` lacks `{want}`");
        }
        // Without the test-only key the windows are measured by the system's time.
        assert_eq!(ok.clock, Clock::System);
        let at = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_005);
        let set = parse("{ test-clock-start: '2027-01-15T08:00:05Z' }").unwrap();
        assert!(
            matches!(set.clock, Clock::StartingAt { at: a, .. } if a == at),
            "{set:?}"
        );
        let long = format!("{{ error-pattern: '{}' }}", "x".repeat(1025));
        assert!(parse(&long).unwrap_err().contains("at most 1024"));
    }
}
