//! Canary analysis: while the new revision takes a slice of production traffic (a canary bake, a
//! linear step, a pause before a production traffic shift), it is compared with the old revision in
//! the same minutes, never with yesterday: each target group's 5xx share and p95 response time, and the
//! error lines of each revision's tasks. One call judges one step ([`analyse`]); the caller (the
//! rollout's hook handling) continues, rolls back or waits by [`Verdict::decision`] (or lets
//! [`until_decided`] pace the reads of one step), and keeps the steps for the summary
//! ([`CanaryReport`]).
//!
//! Metrics that cannot be read (CloudWatch denied or throttled) make the step "no data", never a pass;
//! error lines that cannot be read are a note, and the step is judged on its metrics.
//!
//! Layout: `groups` (which target group is the new revision's), `read` (the I/O of one step), `judge`
//! (the pure verdict), `pace` (judge again while there is not enough traffic, within the step's
//! budget: [`until_decided`]), `report` (the summary section), `error`.
//!
//! APIs: ELBv2 `DescribeRules`, `DescribeTargetGroups`; CloudWatch `GetMetricData`; ECS `ListTasks`,
//! `DescribeTasks`, `DescribeTaskDefinition`; CloudWatch Logs `FilterLogEvents`.

mod error;
mod groups;
pub mod judge;
mod pace;
mod read;
mod report;

use std::time::SystemTime;

pub use error::Error;
pub use groups::{forwards, groups, pick, Groups};
pub use judge::{Decision, Sample, Side, StepVerdict, Verdict};
pub use pace::{until_decided, Window};
pub use report::CanaryReport;

use crate::config::Config;
use crate::steps::signals::compare::Metrics;
use crate::steps::Clients;

fn epoch(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn sample(m: &Metrics) -> Sample {
    Sample {
        requests: m.requests.max(0.0).round() as u64,
        errors_5xx: m.errors_5xx.max(0.0).round() as u64,
        p95_ms: m.p95_ms,
        ..Sample::default()
    }
}

/// Judge one step: read both revisions over `window` (on whole minutes) and compare them by
/// `cfg.canary`. Never fails: what cannot be read is a "no data" verdict or a note. `revisions` are
/// the task-definition ARNs `(new, old)`; `weight` the new revision's production share in percent.
pub async fn analyse(
    clients: &Clients,
    cfg: &Config,
    groups: &Groups,
    revisions: (&str, &str),
    window: Window,
    weight: f64,
) -> StepVerdict {
    let (from, to) = window.whole_minutes();
    let (metrics, lines) = tokio::join!(
        read::metrics_of(clients, (&groups.new, &groups.old), from, to),
        read::lines_of(clients, cfg, revisions, from, to)
    );
    let mut step = StepVerdict {
        verdict: Verdict::Pass,
        weight,
        from_epoch: epoch(from),
        to_epoch: epoch(to),
        new: Side {
            target_group: groups.new.clone(),
            revision: revisions.0.to_string(),
            ..Side::default()
        },
        old: Side {
            target_group: groups.old.clone(),
            revision: revisions.1.to_string(),
            ..Side::default()
        },
        why: String::new(),
        notes: Vec::new(),
    };
    match metrics {
        Ok((new, old)) => {
            step.new.sample = sample(&new);
            step.old.sample = sample(&old);
        }
        Err(why) => step.verdict = Verdict::NoData(why),
    }
    match lines {
        Ok(((nl, nt), (ol, ot))) => {
            (step.new.sample.error_lines, step.new.sample.tasks) = (Some(nl), Some(nt));
            (step.old.sample.error_lines, step.old.sample.tasks) = (Some(ol), Some(ot));
        }
        Err(why) => step.notes.push(why),
    }
    if step.verdict == Verdict::Pass {
        step.verdict = judge::judge(&cfg.canary, &step.new.sample, &step.old.sample);
    }
    step.why = why(&step, cfg.canary.min_requests);
    tracing::info!(
        weight,
        new_requests = step.new.sample.requests,
        old_requests = step.old.sample.requests,
        "canary step: {}: {}",
        step.verdict.label(),
        step.why
    );
    step
}

/// The verdict in one sentence.
fn why(step: &StepVerdict, min_requests: u64) -> String {
    use crate::steps::signals::compare::percent;
    let rate = |s: &Sample| s.rate_5xx().map(percent).unwrap_or_else(|| "-".into());
    match &step.verdict {
        Verdict::Pass => format!(
            "5xx share {} against {} for the old revision; no signal past its limit",
            rate(&step.new.sample),
            rate(&step.old.sample)
        ),
        Verdict::Regression(what) => what.join("; "),
        Verdict::NotEnoughTraffic { new, old } => format!(
            "{new} requests to the new revision and {old} to the old one; {min_requests} each are needed to judge"
        ),
        Verdict::NoData(why) => why.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_verdict_in_one_sentence() {
        let side = |requests, errors_5xx| Side {
            sample: Sample {
                requests,
                errors_5xx,
                ..Sample::default()
            },
            ..Side::default()
        };
        let mut s = StepVerdict {
            verdict: Verdict::Pass,
            weight: 10.0,
            from_epoch: 0,
            to_epoch: 60,
            new: side(200, 1),
            old: side(1800, 2),
            why: String::new(),
            notes: Vec::new(),
        };
        assert_eq!(
            why(&s, 50),
            "5xx share 0.5% against 0.1% for the old revision; no signal past its limit"
        );
        s.verdict = Verdict::Regression(vec!["a".into(), "b".into()]);
        assert_eq!(why(&s, 50), "a; b");
        s.verdict = Verdict::NotEnoughTraffic { new: 3, old: 27 };
        assert_eq!(
            why(&s, 100),
            "3 requests to the new revision and 27 to the old one; 100 each are needed to judge"
        );
    }
}
