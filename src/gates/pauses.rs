//! The gates inside the rollout of a service whose deployments pause (blue/green, linear, canary):
//! "test traffic" at `POST_TEST_TRAFFIC_SHIFT` (the smoke checks and write sequences against
//! `smoke.test-url`, the test listener, before any production request reaches the new revision) and
//! "canary" at `PRE_PRODUCTION_TRAFFIC_SHIFT`. Each pause is answered CONTINUE on a pass and ROLLBACK
//! otherwise; the records say passed, failed or skipped (never passed for a pause that expired).
//!
//! APIs: ECS `DescribeServiceDeployments`, `ContinueServiceDeployment` (see `deploy::hooks`); those of
//! the canary analysis (ELBv2 `DescribeRules`, CloudWatch `GetMetricData`, ...; see `steps::canary`).

use std::time::SystemTime;

use tokio::time::Instant;

use super::list::Cx;
use super::record::{GateOutcome, GateRecord};
use crate::config::Smoke;
use crate::report::section::{Outcome, Timeline};
use crate::steps::canary::{self, CanaryReport, Groups, StepVerdict, Verdict};
use crate::steps::deploy::hooks::{
    self, Action, Answered, Decision, Pause, Pauses, Routing, Stage,
};
use crate::steps::deploy::{self, rollout::AtPause};
use crate::steps::smoke::{self, OnTestTraffic};

/// The names the gate list and the marker give these gates.
pub const TEST_TRAFFIC: &str = "test traffic";
pub const CANARY: &str = "canary";

/// Analysis rounds at most per canary step while it has too little traffic to judge: a bound beside
/// the hook's own expiry.
const MAX_ROUNDS: u32 = 30;

/// Judges the pauses of the rollout this run started.
pub(super) struct Judge<'a> {
    pub cx: &'a Cx<'a>,
    /// The section of the checks on test traffic.
    pub test_traffic: &'a mut Option<OnTestTraffic>,
    /// The canary section: one verdict per judged step.
    pub canary: &'a mut Option<CanaryReport>,
    /// The task definitions `(new, old)`.
    pub revisions: (String, String),
    pub routing: Option<Routing>,
    /// The new and old revision's target groups, read at the first judged step.
    pub groups: Option<Groups>,
    /// When the traffic step now judged began: the last CONTINUE before a production shift.
    pub step_from: Option<SystemTime>,
}

impl AtPause for Judge<'_> {
    async fn at_pause(
        &mut self,
        pause: &Pause,
        timeline: &mut Timeline,
    ) -> Result<Option<Decision>, deploy::Error> {
        let started = Instant::now();
        let (action, why, judged) = match pause.stage {
            Stage::PostTestTrafficShift => self.on_test_traffic(timeline).await,
            Stage::PreProductionTrafficShift => self.canary_step(pause).await,
            Stage::TrafficStep => return self.judge_bake(pause).await,
        };
        let ecs = &self.cx.clients.ecs;
        let answered = hooks::answer(ecs, pause, action, started.elapsed()).await?;
        let mut why = why;
        // The pause expired into CONTINUE while the verdict is ROLLBACK: stop the deployment anyway.
        let expired_on =
            matches!(&answered, Answered::Expired { applied, .. } if applied != "ROLLBACK");
        if expired_on && action == Action::Rollback {
            hooks::stop(ecs, &pause.service_deployment).await?;
            why.push_str("; the action stopped the deployment (`StopServiceDeployment` ROLLBACK)");
        }
        Ok(Some(Decision {
            pause: pause.clone(),
            action,
            why,
            judged,
            answered,
        }))
    }
}

impl Judge<'_> {
    /// The smoke checks and write sequences against the test listener, then the traffic sample.
    async fn on_test_traffic(&mut self, timeline: &mut Timeline) -> (Action, String, bool) {
        let cfg = &self.cx.cfg.smoke;
        let section = self.test_traffic.get_or_insert_with(Default::default);
        let Some(on_test) = test_listener(cfg) else {
            smoke::skip(cfg, &mut section.checks);
            return (
                Action::Continue,
                "the smoke tests are switched off: nothing judged the new revision".into(),
                false,
            );
        };
        if let Err(e) = smoke::run(&on_test, &mut section.checks, timeline).await {
            return (
                Action::Rollback,
                format!("the smoke checks failed on test traffic: {e}"),
                true,
            );
        }
        let started = Instant::now();
        let (sample, result) = crate::steps::test_sample::run(&on_test).await;
        section.sample = Some(sample);
        let outcome = if result.is_ok() {
            Outcome::Ok
        } else {
            Outcome::Failed
        };
        timeline.record("traffic sample on test traffic", started, outcome);
        match result {
            Ok(()) => (
                Action::Continue,
                "the smoke checks and the traffic sample passed on test traffic".into(),
                true,
            ),
            Err(e) => {
                section.checks.status = smoke::SmokeStatus::Failed;
                (
                    Action::Rollback,
                    format!("the traffic sample failed on test traffic: {e}"),
                    true,
                )
            }
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

impl Judge<'_> {
    /// The traffic step before `pause`, compared with the old revision over the same minutes; too little
    /// traffic waits another interval while the hook has time, then `canary.on-no-data` decides.
    async fn canary_step(&mut self, pause: &Pause) -> (Action, String, bool) {
        let cfg = self.cx.cfg;
        let weight = pause.weight.unwrap_or(0.0);
        let now = cfg.signals.clock.now();
        let from = self.step_from.replace(now);
        if weight <= 0.0 {
            // Without a test listener rule the two groups can be told apart only now, before production
            // traffic reaches the new one; a failure here is judged at the first step with traffic.
            if self.routing.as_ref().is_some_and(|r| r.test_rule.is_none()) {
                let _ = self.groups().await;
            }
            return (
                Action::Continue,
                "no production traffic on the new revision yet: nothing to compare".into(),
                false,
            );
        }
        let interval = cfg.canary.interval;
        let from = from.unwrap_or_else(|| now - interval);
        let groups = match self.groups().await {
            Ok(g) => g,
            Err(why) => {
                let verdict = Verdict::NoData(why.clone());
                let action = match verdict.decision(&cfg.canary, true) {
                    canary::Decision::Continue => Action::Continue,
                    _ => Action::Rollback,
                };
                return (
                    action,
                    format!("canary at {weight}%: no data: {why}"),
                    false,
                );
            }
        };
        let revisions = (self.revisions.0.as_str(), self.revisions.1.as_str());
        // At most MAX_ROUNDS reads, and never past the pause's expiry (ECS would answer for us).
        let mut budget = interval * MAX_ROUNDS;
        if let Some(at) = pause.expires_at {
            let left = at.duration_since(SystemTime::now()).unwrap_or_default();
            budget = budget.min(left);
        }
        let clients = self.cx.clients;
        let (step, decision, _) =
            canary::until_decided(&cfg.canary, &cfg.signals.clock, from, budget, |w| {
                canary::analyse(clients, cfg, &groups, revisions, w, weight)
            })
            .await;
        let answer = canary_answer(decision, &step, weight);
        self.canary
            .get_or_insert_with(Default::default)
            .steps
            .push(step);
        // The next step is judged from when this one's traffic moved.
        self.step_from = Some(cfg.signals.clock.now());
        answer
    }

    /// A traffic step under way with no pause: judged over the minutes since the last judgement; a
    /// regression (or no data, unless `on-no-data: continue`) stops the deployment, too little traffic
    /// waits for the next round with a growing window.
    async fn judge_bake(&mut self, pause: &Pause) -> Result<Option<Decision>, deploy::Error> {
        let cfg = self.cx.cfg;
        let weight = pause.weight.unwrap_or(0.0);
        let now = cfg.signals.clock.now();
        let from = self.step_from.unwrap_or_else(|| now - cfg.canary.interval);
        let step = match self.groups().await {
            Ok(groups) => {
                let revisions = (self.revisions.0.as_str(), self.revisions.1.as_str());
                let window = canary::Window { from, to: now };
                Some(
                    canary::analyse(self.cx.clients, cfg, &groups, revisions, window, weight).await,
                )
            }
            Err(_) => None,
        };
        let verdict = step.as_ref().map_or_else(
            || Verdict::NoData("the target groups could not be read".into()),
            |s| s.verdict.clone(),
        );
        let decision = verdict.decision(&cfg.canary, false);
        if decision == canary::Decision::Wait {
            return Ok(None);
        }
        self.step_from = Some(now);
        let (action, why, judged) = match &step {
            Some(s) => canary_answer(decision, s, weight),
            None if decision == canary::Decision::Continue => (
                Action::Continue,
                format!("canary at {weight}%: no data: the target groups could not be read"),
                false,
            ),
            None => (
                Action::Rollback,
                format!("canary at {weight}%: no data: the target groups could not be read"),
                false,
            ),
        };
        if let Some(s) = step {
            self.canary
                .get_or_insert_with(Default::default)
                .steps
                .push(s);
        }
        if action == Action::Rollback {
            hooks::stop(&self.cx.clients.ecs, &pause.service_deployment).await?;
        }
        Ok(Some(Decision {
            pause: pause.clone(),
            action,
            why,
            judged,
            answered: Answered::Sent,
        }))
    }

    /// The new and old target groups, read once from the listener rules.
    async fn groups(&mut self) -> Result<Groups, String> {
        if let Some(g) = &self.groups {
            return Ok(g.clone());
        }
        let Some(r) = &self.routing else {
            return Err("the service has no load balancer with an advanced configuration".into());
        };
        let pair = (r.pair.0.as_str(), r.pair.1.as_str());
        let g = canary::groups(
            &self.cx.clients.elb,
            r.test_rule.as_deref(),
            &r.production_rule,
            pair,
        )
        .await
        .map_err(|e| e.to_string())?;
        self.groups = Some(g.clone());
        Ok(g)
    }
}

/// The answer to a judged canary step and why; judged only when the analysis passed or found a
/// regression (no data that goes on is not a pass).
fn canary_answer(
    decision: canary::Decision,
    step: &StepVerdict,
    weight: f64,
) -> (Action, String, bool) {
    let why = format!(
        "canary at {weight}%: {}: {}",
        step.verdict.label(),
        step.why
    );
    let judged = matches!(step.verdict, Verdict::Pass | Verdict::Regression(_));
    match decision {
        canary::Decision::Continue => (Action::Continue, why, judged),
        canary::Decision::Rollback | canary::Decision::Wait => (Action::Rollback, why, judged),
    }
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
    if pauses.pre_production || pauses.steps {
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
    // A pause before any production traffic has nothing to compare: it neither passes nor skips.
    let steps: Vec<&&Decision> = at
        .iter()
        .filter(|d| stage == Stage::PostTestTrafficShift || d.pause.weight.unwrap_or(0.0) > 0.0)
        .collect();
    match (steps.iter().find(|d| !d.judged), steps.first()) {
        (Some(d), _) => GateOutcome::Skipped(d.why.clone()),
        (None, Some(_)) => GateOutcome::Passed,
        (None, None) => GateOutcome::Skipped(
            "no traffic step was judged: the new revision took no production traffic before a pause"
                .into(),
        ),
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
                weight: None,
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
            ..Pauses::default()
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
        // The checks passed and the traffic sample after them did not: the gate failed.
        let sample = decision(
            Stage::PostTestTrafficShift,
            Action::Rollback,
            "the traffic sample failed on test traffic: 19 of 100 requests answered 5xx or failed",
            Answered::Sent,
        );
        assert_eq!(words(&[sample]), [(TEST_TRAFFIC, "failed")]);
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

    #[test]
    fn the_canary_gate_passes_only_when_a_step_with_production_traffic_was_judged_good() {
        let canary = Pauses {
            pre_production: true,
            ..Pauses::default()
        };
        let at = |weight: f64, action: Action, judged: bool| {
            let mut d = decision(
                Stage::PreProductionTrafficShift,
                action,
                "canary at 10%: pass",
                Answered::Sent,
            );
            d.pause.weight = Some(weight);
            d.judged = judged;
            d
        };
        let word = |d: &[Decision]| records(canary, d)[0].outcome.word();
        let first = at(0.0, Action::Continue, false);
        // Blue/green: one pause, before any production traffic: nothing was judged.
        assert_eq!(word(std::slice::from_ref(&first)), "skipped");
        assert_eq!(
            word(&[first.clone(), at(10.0, Action::Continue, true)]),
            "passed"
        );
        assert_eq!(
            word(&[first.clone(), at(10.0, Action::Rollback, true)]),
            "failed"
        );
        // Not enough traffic, continued by `on-no-data: continue`: never a pass.
        assert_eq!(
            word(&[first.clone(), at(10.0, Action::Continue, false)]),
            "skipped"
        );
        assert_eq!(
            word(&[
                first,
                at(10.0, Action::Continue, true),
                at(20.0, Action::Continue, false)
            ]),
            "skipped"
        );
    }
}
