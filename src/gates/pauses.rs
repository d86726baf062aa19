//! The gates inside the rollout of a service whose deployments pause (blue/green, linear, canary):
//! "test traffic" at `POST_TEST_TRAFFIC_SHIFT` (the smoke checks and write sequences against
//! `smoke.test-url`, the test listener, before any production request reaches the new revision) and
//! "canary" at `PRE_PRODUCTION_TRAFFIC_SHIFT`. Each pause is answered CONTINUE on a pass and ROLLBACK
//! otherwise; the records say passed, failed or skipped (never passed for a pause that expired).
//!
//! APIs: ECS `DescribeServiceDeployments`, `ContinueServiceDeployment` (see `deploy::hooks`).

use tokio::time::Instant;

use super::list::Cx;
use super::record::{GateOutcome, GateRecord};
use crate::config::Smoke;
use crate::report::section::Timeline;
use crate::steps::deploy::hooks::{self, Action, Answered, Decision, Pause, Pauses, Stage};
use crate::steps::deploy::{self, rollout::AtPause};
use crate::steps::smoke::{self, OnTestTraffic};

/// The names the gate list and the marker give these gates.
pub const TEST_TRAFFIC: &str = "test traffic";
pub const CANARY: &str = "canary";

/// Judges the pauses of the rollout this run started.
pub(super) struct Judge<'a> {
    pub cx: &'a Cx<'a>,
    /// The section of the checks on test traffic.
    pub test_traffic: &'a mut Option<OnTestTraffic>,
}

impl AtPause for Judge<'_> {
    async fn at_pause(
        &mut self,
        pause: &Pause,
        timeline: &mut Timeline,
    ) -> Result<Decision, deploy::Error> {
        let started = Instant::now();
        let (action, why, judged) = match pause.stage {
            Stage::PostTestTrafficShift => self.on_test_traffic(timeline).await,
            Stage::PreProductionTrafficShift => canary_unjudged(),
        };
        let answered =
            hooks::answer(&self.cx.clients.ecs, pause, action, started.elapsed()).await?;
        Ok(Decision {
            pause: pause.clone(),
            action,
            why,
            judged,
            answered,
        })
    }
}

impl Judge<'_> {
    /// The smoke checks and write sequences against the test listener.
    async fn on_test_traffic(&mut self, timeline: &mut Timeline) -> (Action, String, bool) {
        let cfg = &self.cx.cfg.smoke;
        let section = &mut self.test_traffic.get_or_insert_with(Default::default).0;
        let Some(on_test) = test_listener(cfg) else {
            smoke::skip(cfg, section);
            return (
                Action::Continue,
                "the smoke tests are switched off: nothing judged the new revision".into(),
                false,
            );
        };
        match smoke::run(&on_test, section, timeline).await {
            Ok(()) => (
                Action::Continue,
                "the smoke checks passed on test traffic".into(),
                true,
            ),
            Err(e) => (
                Action::Rollback,
                format!("the smoke checks failed on test traffic: {e}"),
                true,
            ),
        }
    }
}

/// The smoke settings with the test listener as the base URL; `None` when the checks are off (the
/// preflight refused a test-traffic pause without `smoke.test-url`).
fn test_listener(cfg: &Smoke) -> Option<Smoke> {
    let url = cfg.test_url.clone().filter(|_| cfg.enabled)?;
    Some(Smoke {
        base_url: Some(url),
        ..cfg.clone()
    })
}

/// A pause before a production traffic step, with no analysis to judge it: it goes on, and the canary
/// gate is recorded as skipped (never passed).
fn canary_unjudged() -> (Action, String, bool) {
    (
        Action::Continue,
        "no canary analysis in this build: the step was not judged".into(),
        false,
    )
}

/// The records of the two gates for a service whose deployments pause (none for one that does not,
/// so a rolling service's gate list stays as it was).
pub(super) fn records(pauses: Pauses, decisions: &[Decision]) -> Vec<GateRecord> {
    let mut out = Vec::new();
    if pauses.test_traffic {
        out.push(GateRecord {
            name: TEST_TRAFFIC,
            outcome: outcome(decisions, Stage::PostTestTrafficShift),
        });
    }
    if pauses.pre_production {
        out.push(GateRecord {
            name: CANARY,
            outcome: outcome(decisions, Stage::PreProductionTrafficShift),
        });
    }
    out
}

/// How the pauses at `stage` went, together: failed when any was answered ROLLBACK, skipped when one
/// expired or was not judged, passed when every one was judged and continued.
fn outcome(decisions: &[Decision], stage: Stage) -> GateOutcome {
    let at: Vec<&Decision> = decisions
        .iter()
        .filter(|d| d.pause.stage == stage)
        .collect();
    if at.is_empty() {
        return GateOutcome::Skipped("the deployment did not reach the pause".into());
    }
    if at.iter().any(|d| d.action == Action::Rollback) {
        return GateOutcome::Failed;
    }
    if let Some(d) = at
        .iter()
        .find(|d| matches!(d.answered, Answered::Expired { .. }))
    {
        return GateOutcome::Skipped(d.line());
    }
    match at.iter().find(|d| !d.judged) {
        Some(d) => GateOutcome::Skipped(d.why.clone()),
        None => GateOutcome::Passed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decision(stage: Stage, action: Action, why: &str, answered: Answered) -> Decision {
        let judged = !why.contains("switched off");
        Decision {
            pause: Pause {
                service_deployment: "arn:sd".into(),
                hook_id: "h".into(),
                stage,
                expires_at: None,
                timeout_action: Some("ROLLBACK".into()),
            },
            action,
            why: why.into(),
            judged,
            answered,
        }
    }

    #[test]
    fn the_records_say_passed_only_for_a_judged_and_continued_pause() {
        let both = Pauses {
            test_traffic: true,
            pre_production: false,
        };
        // A rolling service (no pauses): no records, the gate list as before.
        assert!(records(Pauses::default(), &[]).is_empty());
        let words = |d: &[Decision]| -> Vec<(&str, &str)> {
            records(both, d)
                .iter()
                .map(|r| (r.name, r.outcome.word()))
                .collect()
        };
        let pass = decision(
            Stage::PostTestTrafficShift,
            Action::Continue,
            "the smoke checks passed on test traffic",
            Answered::Sent,
        );
        assert_eq!(words(&[pass]), [(TEST_TRAFFIC, "passed")]);
        let fail = decision(
            Stage::PostTestTrafficShift,
            Action::Rollback,
            "the smoke checks failed",
            Answered::Sent,
        );
        assert_eq!(words(&[fail]), [(TEST_TRAFFIC, "failed")]);
        let expired = decision(
            Stage::PostTestTrafficShift,
            Action::Continue,
            "the smoke checks passed on test traffic",
            Answered::Expired {
                after_ms: 90_000,
                applied: "CONTINUE".into(),
            },
        );
        assert_eq!(words(&[expired]), [(TEST_TRAFFIC, "skipped")]);
        assert_eq!(words(&[]), [(TEST_TRAFFIC, "skipped")]);
        let off = decision(
            Stage::PostTestTrafficShift,
            Action::Continue,
            "the smoke tests are switched off: nothing judged the new revision",
            Answered::Sent,
        );
        assert_eq!(words(&[off]), [(TEST_TRAFFIC, "skipped")]);
    }
}
