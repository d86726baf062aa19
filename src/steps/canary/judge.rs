//! The pure judgement of one canary step: the new revision's sample against the old revision's, taken
//! in the same minutes. 5xx shares by a one-sided pooled two-proportion z-test at the configured
//! confidence AND a minimum effect (both: a significant but tiny difference is not worth a rollback, a
//! large but insignificant one may be chance); p95 response times by a ratio; error lines per request
//! by a ratio plus an allowance. Too few requests on either side is "not enough traffic", never a pass.
//! No I/O, no clock, no AWS API.

use serde::Serialize;

use crate::config::{Canary, OnNoData};
use crate::steps::signals::compare::{millis, percent};

/// What one revision did in the window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Sample {
    /// `RequestCount` of its target group.
    pub requests: u64,
    /// `HTTPCode_Target_5XX_Count` of its target group.
    pub errors_5xx: u64,
    /// p95 of `TargetResponseTime`, milliseconds; `None` without a request.
    pub p95_ms: Option<f64>,
    /// Error lines in its tasks' log streams; `None` when they could not be read.
    pub error_lines: Option<u64>,
    /// Its running tasks whose lines were read.
    pub tasks: Option<u64>,
}

impl Sample {
    /// The share of requests answered 5xx; `None` without a request.
    pub fn rate_5xx(&self) -> Option<f64> {
        (self.requests > 0).then(|| (self.errors_5xx as f64 / self.requests as f64).clamp(0.0, 1.0))
    }
}

/// The verdict of one step.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "verdict", content = "detail", rename_all = "kebab-case")]
pub enum Verdict {
    /// No signal regressed.
    Pass,
    /// What regressed, one sentence each.
    Regression(Vec<String>),
    /// Fewer requests than `canary.min-requests` on a side: nothing can be said yet.
    NotEnoughTraffic { new: u64, old: u64 },
    /// The metrics could not be read (why).
    NoData(String),
}

/// One revision in one step.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Side {
    /// Its target group's ARN.
    pub target_group: String,
    /// Its task definition's ARN.
    pub revision: String,
    #[serde(flatten)]
    pub sample: Sample,
}

/// The verdict of one step and what it was drawn from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepVerdict {
    pub verdict: Verdict,
    /// The new revision's share of production traffic, percent.
    pub weight: f64,
    /// The window read, epoch seconds, on whole minutes.
    pub from_epoch: u64,
    pub to_epoch: u64,
    pub new: Side,
    pub old: Side,
    /// The verdict in one sentence.
    pub why: String,
    /// Signals left out, and why.
    pub notes: Vec<String>,
}

/// What the caller does after a verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Decision {
    /// Let the traffic shift go on (`ContinueServiceDeployment CONTINUE` at a pause).
    Continue,
    /// Roll back now (`ContinueServiceDeployment ROLLBACK` at a pause, else `StopServiceDeployment`).
    Rollback,
    /// Judge again after another interval: the window grows, and so does the sample.
    Wait,
}

impl Verdict {
    /// The decision: a pass continues, a regression rolls back; too little traffic waits for more
    /// until the step is over (`step_over`), then `canary.on-no-data` decides, as it does at once for
    /// metrics that could not be read (a role that may not read them will not be allowed to later, and
    /// the SDK has already retried a throttled call).
    pub fn decision(&self, cfg: &Canary, step_over: bool) -> Decision {
        let no_data = match cfg.on_no_data {
            OnNoData::Rollback => Decision::Rollback,
            OnNoData::Continue => Decision::Continue,
        };
        match self {
            Verdict::Pass => Decision::Continue,
            Verdict::Regression(_) => Decision::Rollback,
            Verdict::NotEnoughTraffic { .. } if !step_over => Decision::Wait,
            Verdict::NotEnoughTraffic { .. } | Verdict::NoData(_) => no_data,
        }
    }

    /// A short label for tables and logs.
    pub fn label(&self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Regression(_) => "regression",
            Verdict::NotEnoughTraffic { .. } => "not enough traffic",
            Verdict::NoData(_) => "no data",
        }
    }
}

/// The standard normal quantile (the inverse of its CDF) at `p` in (0, 1), by P. J. Acklam's rational
/// approximation (relative error below 1.2e-9, far below what a 5xx share can tell). Written here:
/// `statrs`, the well-kept statistics crate, is a whole library of distributions (with a linear-algebra
/// crate by default) for these thirty lines, which the table test below pins.
pub fn normal_quantile(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    const LOW: f64 = 0.024_25;
    if !(p > 0.0 && p < 1.0) {
        return if p >= 1.0 {
            f64::INFINITY
        } else {
            f64::NEG_INFINITY
        };
    }
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    if p < LOW {
        tail((-2.0 * p.ln()).sqrt())
    } else if p > 1.0 - LOW {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    }
}

/// The pooled two-proportion z statistic of the new revision's 5xx share over the old one's; `None`
/// when it is undefined (a side without requests, or no spread: both shares 0 or both 100%).
pub fn z_5xx(new: &Sample, old: &Sample) -> Option<f64> {
    let (n1, n2) = (new.requests as f64, old.requests as f64);
    if n1 <= 0.0 || n2 <= 0.0 {
        return None;
    }
    let (p1, p2) = (new.rate_5xx()?, old.rate_5xx()?);
    let pooled = ((new.errors_5xx + old.errors_5xx) as f64 / (n1 + n2)).clamp(0.0, 1.0);
    let se = (pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n2)).sqrt();
    (se > 0.0).then(|| (p1 - p2) / se)
}

/// The 5xx share regressed: significant at the configured confidence and larger than the minimum
/// effect, in points and as a ratio.
pub fn judge_5xx(cfg: &Canary, new: &Sample, old: &Sample) -> Option<String> {
    let (p1, p2) = (new.rate_5xx()?, old.rate_5xx()?);
    let z = z_5xx(new, old)?;
    let critical = normal_quantile(cfg.confidence);
    let significant = z > critical;
    let large = p1 - p2 > cfg.min_effect && p1 > cfg.min_effect_ratio * p2;
    (significant && large).then(|| {
        format!(
            "5xx share {} against {} for the old revision (z = {z:.1} > {critical:.2} at {} confidence; more than {:.1} percentage points and {}x the old share)",
            percent(p1),
            percent(p2),
            percent(cfg.confidence),
            cfg.min_effect * 100.0,
            cfg.min_effect_ratio
        )
    })
}

/// The p95 response time regressed: above the ratio times the old revision's.
pub fn judge_p95(cfg: &Canary, new: &Sample, old: &Sample) -> Option<String> {
    let (n, o) = (new.p95_ms?, old.p95_ms?);
    (o > 0.0 && n > cfg.p95_ratio * o).then(|| {
        format!(
            "p95 response time {} against {} for the old revision (limit {}x)",
            millis(n),
            millis(o),
            cfg.p95_ratio
        )
    })
}

/// The error lines regressed: more than the ratio times what the old revision's lines per request
/// predict for the new revision's requests, plus the allowance.
pub fn judge_error_lines(cfg: &Canary, new: &Sample, old: &Sample) -> Option<String> {
    let (n, o) = (new.error_lines?, old.error_lines?);
    let expected = if old.requests > 0 {
        o as f64 * new.requests as f64 / old.requests as f64
    } else {
        o as f64
    };
    let limit = cfg.error_lines_ratio * expected + f64::from(cfg.error_lines_allowance);
    (n as f64 > limit).then(|| {
        format!(
            "{n} error lines against {o} for the old revision ({expected:.1} expected for as many requests; limit {limit:.0})"
        )
    })
}

/// The verdict of one step (see the module documentation).
pub fn judge(cfg: &Canary, new: &Sample, old: &Sample) -> Verdict {
    if new.requests < cfg.min_requests || old.requests < cfg.min_requests {
        return Verdict::NotEnoughTraffic {
            new: new.requests,
            old: old.requests,
        };
    }
    let bad: Vec<String> = [
        judge_5xx(cfg, new, old),
        judge_p95(cfg, new, old),
        judge_error_lines(cfg, new, old),
    ]
    .into_iter()
    .flatten()
    .collect();
    if bad.is_empty() {
        Verdict::Pass
    } else {
        Verdict::Regression(bad)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(requests: u64, errors_5xx: u64) -> Sample {
        Sample {
            requests,
            errors_5xx,
            ..Sample::default()
        }
    }

    #[test]
    fn the_normal_quantile_matches_the_tables() {
        // (p, quantile) from the standard normal table.
        let cases = [
            (0.5, 0.0),
            (0.9, 1.281_551_565_5),
            (0.95, 1.644_853_626_9),
            (0.975, 1.959_963_984_5),
            (0.99, 2.326_347_874_0),
            (0.999, 3.090_232_306_2),
            (0.01, -2.326_347_874_0),
            (0.000_001, -4.753_424_308_8),
        ];
        for (p, want) in cases {
            let got = normal_quantile(p);
            assert!((got - want).abs() < 1e-8, "{p}: {got} != {want}");
        }
        assert_eq!(normal_quantile(1.0), f64::INFINITY);
        assert_eq!(normal_quantile(0.0), f64::NEG_INFINITY);
    }

    #[test]
    fn the_required_figures() {
        let cfg = Canary::default();
        // A canary of 10% at 8% 5xx against the old revision's 0.1%, in the first one-minute step.
        let v = judge(&cfg, &s(100, 8), &s(1000, 1));
        let Verdict::Regression(why) = &v else {
            panic!("{v:?}")
        };
        assert_eq!(
            why,
            &["5xx share 8.0% against 0.1% for the old revision (z = 8.4 > 2.33 at 99.0% confidence; more than 1.0 percentage points and 2x the old share)"]
        );
        assert_eq!(v.decision(&cfg, false), Decision::Rollback);
        // The old revision's rate: a pass.
        let v = judge(&cfg, &s(1000, 1), &s(9000, 9));
        assert_eq!(v, Verdict::Pass);
        assert_eq!(v.decision(&cfg, false), Decision::Continue);
        // Ten requests: nothing to say yet, and never a pass.
        let v = judge(&cfg, &s(10, 0), &s(90, 0));
        assert_eq!(v, Verdict::NotEnoughTraffic { new: 10, old: 90 });
        assert_eq!(v.label(), "not enough traffic");
        assert_eq!(v.decision(&cfg, false), Decision::Wait);
        assert_eq!(v.decision(&cfg, true), Decision::Rollback);
    }

    #[test]
    fn the_5xx_test_needs_significance_and_effect() {
        let cfg = Canary::default();
        // (new, old, regressed)
        let cases = [
            // Equal shares.
            (s(500, 5), s(4500, 45), false),
            (s(500, 0), s(4500, 0), false),
            // Everything fails on both sides: no spread, no regression of the canary.
            (s(100, 100), s(900, 900), false),
            // Large but on few requests: 2 of 60 against 0.6% may be chance at 99%.
            (s(60, 2), s(540, 3), false),
            // Significant but under one point: 1.5% against 0.8% on many requests.
            (s(100_000, 1_500), s(900_000, 7_200), false),
            // Over one point but under twice the old share: 5% against 3%.
            (s(10_000, 500), s(90_000, 2_700), false),
            // 5% against 2% on many requests.
            (s(10_000, 500), s(90_000, 1_800), true),
            // Better than the old revision.
            (s(1000, 0), s(9000, 90), false),
            // A canary that fails every request of the minimum sample.
            (s(50, 50), s(450, 0), true),
        ];
        for (new, old, want) in cases {
            let got = judge_5xx(&cfg, &new, &old);
            assert_eq!(got.is_some(), want, "{new:?} vs {old:?}: {got:?}");
        }
        // A looser confidence turns the small sample into a regression.
        let loose = Canary {
            confidence: 0.9,
            ..Canary::default()
        };
        assert!(judge_5xx(&loose, &s(60, 2), &s(540, 3)).is_some());
        assert_eq!(z_5xx(&s(0, 0), &s(100, 1)), None);
    }

    #[test]
    fn too_few_requests_on_either_side_is_never_a_pass() {
        let cfg = Canary::default();
        let cases = [(0, 0), (49, 5000), (5000, 49), (0, 5000)];
        for (n, o) in cases {
            assert_eq!(
                judge(&cfg, &s(n, 0), &s(o, 0)),
                Verdict::NotEnoughTraffic { new: n, old: o }
            );
        }
        assert_eq!(judge(&cfg, &s(50, 0), &s(50, 0)), Verdict::Pass);
    }

    #[test]
    fn p95_and_error_lines() {
        let cfg = Canary::default();
        let t = |new: f64, old: f64| {
            judge_p95(
                &cfg,
                &Sample {
                    p95_ms: Some(new),
                    ..s(100, 0)
                },
                &Sample {
                    p95_ms: Some(old),
                    ..s(900, 0)
                },
            )
        };
        assert_eq!(
            t(160.0, 100.0).as_deref(),
            Some("p95 response time 160 ms against 100 ms for the old revision (limit 1.5x)")
        );
        assert_eq!(t(150.0, 100.0), None);
        assert_eq!(t(40.0, 0.0), None);
        let l = |new: u64, old: u64| {
            judge_error_lines(
                &cfg,
                &Sample {
                    error_lines: Some(new),
                    ..s(100, 0)
                },
                &Sample {
                    error_lines: Some(old),
                    ..s(900, 0)
                },
            )
        };
        // 90 lines for 900 requests: 10 expected for 100, limit 3 x 10 + 10.
        assert_eq!(l(40, 90), None);
        assert_eq!(
            l(41, 90).as_deref(),
            Some("41 error lines against 90 for the old revision (10.0 expected for as many requests; limit 40)")
        );
        // A quiet old revision: the allowance alone.
        assert_eq!(l(10, 0), None);
        assert!(l(11, 0).is_some());
        // Lines that could not be read judge nothing.
        assert_eq!(judge_error_lines(&cfg, &s(100, 0), &s(900, 0)), None);
        // Every regression is named.
        let v = judge(
            &cfg,
            &Sample {
                p95_ms: Some(900.0),
                error_lines: Some(500),
                ..s(1000, 100)
            },
            &Sample {
                p95_ms: Some(100.0),
                error_lines: Some(0),
                ..s(9000, 0)
            },
        );
        assert!(
            matches!(&v, Verdict::Regression(w) if w.len() == 3),
            "{v:?}"
        );
    }

    #[test]
    fn no_data_follows_the_setting() {
        let v = Verdict::NoData("the role may not call `cloudwatch:GetMetricData`".into());
        assert_eq!(v.decision(&Canary::default(), false), Decision::Rollback);
        let go_on = Canary {
            on_no_data: OnNoData::Continue,
            ..Canary::default()
        };
        assert_eq!(v.decision(&go_on, false), Decision::Continue);
        assert_eq!(
            Verdict::NotEnoughTraffic { new: 1, old: 1 }.decision(&go_on, true),
            Decision::Continue
        );
    }
}
