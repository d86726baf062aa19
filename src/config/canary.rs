//! `canary:` of an environment: how the new revision is judged against the old one while it takes a
//! slice of production traffic (a canary bake, a linear step, a pause before a production traffic
//! shift). Validated here, so a confidence of `99` (meant as 99%) costs one error and no change. No AWS
//! API.

use std::time::Duration;

use serde::Deserialize;

use super::error::{invalid, Error};
use super::validate::parse_duration;

/// `canary:` as written.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct CanaryFile {
    /// Confidence of the one-sided two-proportion test on the 5xx shares, in (0, 1) (default 0.99).
    pub confidence: Option<f64>,
    /// Requests each revision must have answered in a window before it is judged (default 50).
    pub min_requests: Option<u64>,
    /// The new revision's 5xx share must exceed the old one's by more than this many percentage points
    /// (default 1.0) ...
    pub min_effect_points: Option<f64>,
    /// ... and be more than this factor times the old one's (default 2.0).
    pub min_effect_ratio: Option<f64>,
    /// A p95 response time above this factor times the old revision's is a regression (default 1.5).
    pub p95_ratio: Option<f64>,
    /// More error lines per request than this factor times the old revision's (plus the allowance) is a
    /// regression (default 3.0).
    pub error_lines_ratio: Option<f64>,
    /// Error lines the new revision may have beyond the ratio (default 10).
    pub error_lines_allowance: Option<u32>,
    /// How often a step is judged (humantime; default 1m).
    pub interval: Option<String>,
    /// What a step that could not be judged leads to: `rollback` (default) or `continue`.
    pub on_no_data: Option<String>,
}

/// What a step that could not be judged (CloudWatch denied or throttled, too little traffic until the
/// step's end) leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnNoData {
    Rollback,
    Continue,
}

/// The canary limits, compiled.
#[derive(Debug, Clone, PartialEq)]
pub struct Canary {
    /// In (0, 1) exclusive.
    pub confidence: f64,
    /// At least 1: an empty sample is never judged.
    pub min_requests: u64,
    /// A fraction (0.01 for 1 point).
    pub min_effect: f64,
    pub min_effect_ratio: f64,
    pub p95_ratio: f64,
    pub error_lines_ratio: f64,
    pub error_lines_allowance: u32,
    /// Between 1 s and 1 h.
    pub interval: Duration,
    pub on_no_data: OnNoData,
}

impl Default for Canary {
    fn default() -> Self {
        Canary {
            confidence: 0.99,
            min_requests: 50,
            min_effect: 0.01,
            min_effect_ratio: 2.0,
            p95_ratio: 1.5,
            error_lines_ratio: 3.0,
            error_lines_allowance: 10,
            interval: Duration::from_secs(60),
            on_no_data: OnNoData::Rollback,
        }
    }
}

fn factor(key: &'static str, v: Option<f64>, default: f64) -> Result<f64, Error> {
    match v {
        None => Ok(default),
        Some(f) if f.is_finite() && (1.0..=1000.0).contains(&f) => Ok(f),
        Some(f) => Err(invalid(
            key,
            format!("{f} is not a factor between 1 and 1000 (2 means twice the old revision's)"),
        )),
    }
}

/// Build the limits from `canary:` (the defaults without it).
pub(super) fn build(file: Option<&CanaryFile>) -> Result<Canary, Error> {
    let d = Canary::default();
    let Some(f) = file else {
        return Ok(d);
    };
    let confidence = match f.confidence {
        None => d.confidence,
        Some(c) if c.is_finite() && c > 0.0 && c < 1.0 => c,
        Some(c) => {
            return Err(invalid(
                "canary.confidence",
                format!(
                    "{c} is not between 0 and 1 (exclusive); write a fraction, e.g. `0.99` for 99%"
                ),
            ))
        }
    };
    let min_requests = match f.min_requests {
        Some(0) => {
            return Err(invalid(
                "canary.min-requests",
                "must be at least 1: an empty sample proves nothing",
            ))
        }
        v => v.unwrap_or(d.min_requests),
    };
    let min_effect = match f.min_effect_points {
        None => d.min_effect,
        Some(p) if p.is_finite() && (0.0..=100.0).contains(&p) => p / 100.0,
        Some(p) => {
            return Err(invalid(
                "canary.min-effect-points",
                format!("{p} is not a number of percentage points between 0 and 100"),
            ))
        }
    };
    let interval = match &f.interval {
        None => d.interval,
        Some(v) => {
            let i = parse_duration("canary.interval", v)?;
            if i < Duration::from_secs(1) || i > Duration::from_secs(3600) {
                return Err(invalid(
                    "canary.interval",
                    format!("`{v}` must be between 1s and 1h (CloudWatch keeps load balancer metrics per minute: 1m is the natural choice)"),
                ));
            }
            i
        }
    };
    let on_no_data = match f.on_no_data.as_deref().map(str::trim) {
        None | Some("rollback") => OnNoData::Rollback,
        Some("continue") => OnNoData::Continue,
        Some(other) => {
            return Err(invalid(
                "canary.on-no-data",
                format!("`{other}` is neither `rollback` nor `continue`"),
            ))
        }
    };
    Ok(Canary {
        confidence,
        min_requests,
        min_effect,
        min_effect_ratio: factor("canary.min-effect-ratio", f.min_effect_ratio, 2.0)?,
        p95_ratio: factor("canary.p95-ratio", f.p95_ratio, 1.5)?,
        error_lines_ratio: factor("canary.error-lines-ratio", f.error_lines_ratio, 3.0)?,
        error_lines_allowance: f.error_lines_allowance.unwrap_or(d.error_lines_allowance),
        interval,
        on_no_data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<Canary, String> {
        let f: CanaryFile = yaml_serde::from_str(yaml).map_err(|e| e.to_string())?;
        build(Some(&f)).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults() {
        let d = build(None).unwrap();
        assert_eq!(d, Canary::default());
        assert_eq!(d.confidence, 0.99);
        assert_eq!(d.min_requests, 50);
        assert_eq!(d.min_effect, 0.01);
        assert_eq!(d.interval, Duration::from_secs(60));
        assert_eq!(d.on_no_data, OnNoData::Rollback);
        assert_eq!(parse("{}").unwrap(), d);
    }

    #[test]
    fn values_are_read_and_bad_ones_named() {
        let ok = parse(
            "{ confidence: 0.95, min-requests: 200, min-effect-points: 0.5, min-effect-ratio: 3, p95-ratio: 2, error-lines-ratio: 4, error-lines-allowance: 0, interval: 30s, on-no-data: continue }",
        )
        .unwrap();
        assert_eq!(
            ok,
            Canary {
                confidence: 0.95,
                min_requests: 200,
                min_effect: 0.005,
                min_effect_ratio: 3.0,
                p95_ratio: 2.0,
                error_lines_ratio: 4.0,
                error_lines_allowance: 0,
                interval: Duration::from_secs(30),
                on_no_data: OnNoData::Continue,
            }
        );
        let cases = [
            (
                "{ confidence: 99 }",
                "invalid `canary.confidence`: 99 is not between 0 and 1",
            ),
            (
                "{ confidence: 1 }",
                "invalid `canary.confidence`: 1 is not between 0 and 1",
            ),
            (
                "{ confidence: 0 }",
                "invalid `canary.confidence`: 0 is not between 0 and 1",
            ),
            ("{ confidence: -0.5 }", "invalid `canary.confidence`"),
            ("{ confidence: .nan }", "invalid `canary.confidence`"),
            (
                "{ min-requests: 0 }",
                "invalid `canary.min-requests`: must be at least 1",
            ),
            (
                "{ min-effect-points: 120 }",
                "invalid `canary.min-effect-points`: 120 is not",
            ),
            (
                "{ min-effect-ratio: 0.5 }",
                "invalid `canary.min-effect-ratio`: 0.5 is not a factor",
            ),
            ("{ p95-ratio: 0.9 }", "invalid `canary.p95-ratio`"),
            (
                "{ interval: 0s }",
                "invalid `canary.interval`: `0s` must be between 1s and 1h",
            ),
            (
                "{ interval: soon }",
                "invalid `canary.interval`: `soon` is not a duration",
            ),
            (
                "{ on-no-data: pass }",
                "invalid `canary.on-no-data`: `pass` is neither",
            ),
            (
                "{ confidence-level: 0.9 }",
                "unknown field `confidence-level`",
            ),
        ];
        for (yaml, want) in cases {
            let err = parse(yaml).unwrap_err();
            assert!(err.contains(want), "{yaml}: `{err}` lacks `{want}`");
        }
    }
}
