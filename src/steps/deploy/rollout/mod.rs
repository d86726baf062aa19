//! The rollout wait: poll until the deployment this run created is PRIMARY and COMPLETED, fail fast on
//! FAILED or on a circuit-breaker rollback, stream each new service event once, and on failure say why.
//!
//! - [`poller`]: the adaptive pacing and the generic watch loop over any [`Probe`].
//! - [`probe`]: what is polled, the rolling probe and the verdicts; `blue_green`: the probe of a service
//!   deployment (blue/green, linear, canary) and its pauses.
//! - [`diagnosis`]: the stopped tasks of a failed revision and the likely fixes.
//!
//! A service deployment that pauses at a lifecycle hook is handed to an [`AtPause`] (the gates' checks on
//! test traffic, the canary analysis; CONTINUE for a rollback), which answers it; the watch then goes on.
//!
//! APIs: ECS `DescribeServices`, `ListServiceDeployments`, `DescribeServiceDeployments` (see
//! [`probe`]), `ListTasks`, `DescribeTasks` (see [`diagnosis`]); `ContinueServiceDeployment` through
//! [`ContinueAll`] (see `deploy::hooks`).

mod blue_green;
pub mod diagnosis;
pub mod poller;
pub mod probe;

use std::collections::HashSet;
use std::future::Future;
use std::time::Duration;

pub use diagnosis::{diagnose, Diagnosis};
pub use poller::{poll, Pace, Probe, Tick, Watched};
pub use probe::{Strategy, Target, Verdict};

use blue_green::BlueGreenProbe;
use probe::{RollingProbe, Rollout};

use tokio::time::Instant;

use super::error::Error;
use super::hooks::{self, Decision, Pause};
use super::report::{short, BackendReport};
use crate::config::Config;
use crate::github::commands;
use crate::report::section::{Outcome, Timeline};
use crate::steps::Clients;

/// What following a rollout saw, also when it failed.
#[derive(Debug)]
pub struct Followed {
    /// How it ended; `outcome: None` when the timeout passed first.
    pub result: Result<Watched<Verdict>, Error>,
    /// The service events printed, in order.
    pub events: Vec<String>,
    /// The service deployment watched (blue/green, linear, canary), once found.
    pub service_deployment_arn: Option<String>,
}

/// What answers a pause of the service deployment this run started: judges the new revision, answers
/// ECS (see `deploy::hooks::answer`) and says what it decided (`None`: nothing to record, as for a
/// traffic step judged "wait for more traffic").
pub trait AtPause {
    fn at_pause(
        &mut self,
        pause: &Pause,
        timeline: &mut Timeline,
    ) -> impl Future<Output = Result<Option<Decision>, Error>>;
}

/// Answers every pause with CONTINUE: a rollback to the revision that ran before is not judged again.
pub struct ContinueAll<'a>(pub &'a aws_sdk_ecs::Client);

impl AtPause for ContinueAll<'_> {
    async fn at_pause(
        &mut self,
        pause: &Pause,
        _: &mut Timeline,
    ) -> Result<Option<Decision>, Error> {
        if pause.stage == hooks::Stage::TrafficStep {
            return Ok(None);
        }
        let started = Instant::now();
        let action = hooks::Action::Continue;
        let answered = hooks::answer(self.0, pause, action, started.elapsed()).await?;
        Ok(Some(Decision {
            pause: pause.clone(),
            action,
            why: "a rollback to the revision that ran before".into(),
            judged: false,
            answered,
        }))
    }
}

/// Follow the rollout with `probe` to its end; each pause of our service deployment is handed to
/// `handler` (the service's pause slot set while it judges, for the cancel path) and the watch goes on
/// with what is left of `timeout`.
async fn observe<P: Rollout, H: AtPause>(
    mut probe: P,
    base: Duration,
    timeout: Duration,
    section: &mut BackendReport,
    timeline: &mut Timeline,
    handler: &mut H,
) -> Followed {
    let deadline = poller::deadline_after(Instant::now(), timeout);
    let mut calls = 0;
    let result = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match poll(&mut probe, base, left).await {
            Ok(Watched {
                outcome: Some(Verdict::Paused(p)),
                calls: c,
            }) => {
                calls += c;
                probe.answered(p.hook_id.clone());
                section.paused = Some(p.clone());
                let decided = handler.at_pause(&p, timeline).await;
                section.paused = None;
                match decided {
                    Ok(Some(d)) => {
                        tracing::info!("pause: {}", d.line());
                        section.pauses.push(d);
                    }
                    Ok(None) => {}
                    Err(e) => break Err(e),
                }
            }
            Ok(mut w) => {
                w.calls += calls;
                break Ok(w);
            }
            Err(e) => break Err(e),
        }
    };
    Followed {
        result,
        events: probe.take_events(),
        service_deployment_arn: probe.service_deployment_arn().map(str::to_string),
    }
}

/// Why a rollout did not succeed (before any rollback).
pub(crate) enum Failure {
    Failed(String),
    ByEcs(String),
    /// ECS's own rollback failed: the service may be down.
    EcsRollbackFailed(String),
    Timeout,
    Superseded(String),
    /// The action (or a pause's timeout) answered ROLLBACK and ECS's rollback finished.
    Rejected {
        /// Where: at a pause, or during a traffic step (the error's wording).
        place: String,
        why: String,
        before_production: bool,
    },
}

/// The pause the rollout was rejected at, when the last answer was ROLLBACK (sent, or applied by the
/// hook's timeout).
fn rejected(pauses: &[Decision]) -> Option<Failure> {
    let d = pauses.last()?;
    // Expired: ECS applied ROLLBACK, or CONTINUE and the action stopped the deployment after it.
    let (sent, by_ecs) = match &d.answered {
        hooks::Answered::Sent => (true, false),
        hooks::Answered::Expired { applied, .. } => (false, applied == "ROLLBACK"),
    };
    let why = match (sent, by_ecs, d.action) {
        (true, _, hooks::Action::Rollback) => d.why.clone(),
        (false, true, _) | (false, false, hooks::Action::Rollback) => d.line(),
        _ => return None,
    };
    let place = match d.pause.stage {
        // A traffic step has no pause: the action stopped the deployment while it baked.
        hooks::Stage::TrafficStep => format!(
            "stopped during the traffic step at {}%",
            d.pause.weight.unwrap_or(0.0)
        ),
        stage => format!("rolled back at the `{}` pause", stage.as_str()),
    };
    Some(Failure::Rejected {
        place,
        why,
        // A pause that expired into CONTINUE let traffic move before the action could stop it.
        before_production: d.pause.stage == hooks::Stage::PostTestTrafficShift && (sent || by_ecs),
    })
}

/// Wait for the rollout to `target.task_definition` to end, recording its log group, timed phase,
/// events, calls and pauses in the backend section; `Ok(())` when it completed. The probe is picked
/// once here, from the service's strategy; `handler` answers the pauses of a service deployment.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn wait<H: AtPause>(
    clients: &Clients,
    cfg: &Config,
    target: Target,
    seen: HashSet<String>,
    section: &mut BackendReport,
    timeline: &mut Timeline,
    phase: &str,
    handler: &mut H,
) -> Result<Result<(), Failure>, Error> {
    let started = Instant::now();
    let _group = commands::group(&format!("Rollout of {}", short(&target.task_definition)));
    let (ecs, base, timeout) = (
        &clients.ecs,
        cfg.backend.poll_interval,
        cfg.backend.wait_timeout,
    );
    let mut watch = match target.strategy {
        Strategy::ServiceDeployments => {
            let probe = BlueGreenProbe::new(ecs, target, seen);
            observe(probe, base, timeout, section, timeline, handler).await
        }
        Strategy::Rolling | Strategy::RollingWithRollback => {
            let probe = RollingProbe::new(ecs, target, seen);
            observe(probe, base, timeout, section, timeline, handler).await
        }
    };
    section.events.append(&mut watch.events);
    // Blue/green users look a rollout up by its service deployment ARN, not the `ecs-svc/...` id.
    if watch.service_deployment_arn.is_some() {
        section.deployment_id = watch.service_deployment_arn;
    }
    let watched = match watch.result {
        Ok(w) => w,
        Err(e) => {
            timeline.record(phase, started, Outcome::Failed);
            return Err(e);
        }
    };
    section.watch_calls += watched.calls;
    let outcome = match watched.outcome {
        Some(Verdict::Completed) => Ok(()),
        Some(Verdict::Failed(s)) => Err(Failure::Failed(s)),
        Some(Verdict::RolledBackByEcs(s)) => {
            Err(rejected(&section.pauses).unwrap_or(Failure::ByEcs(s)))
        }
        Some(Verdict::Superseded(s)) => Err(Failure::Superseded(s)),
        Some(Verdict::EcsRollbackFailed(s)) => Err(Failure::EcsRollbackFailed(s)),
        Some(Verdict::Pending { .. } | Verdict::Paused(_)) | None => Err(Failure::Timeout),
    };
    timeline.record(phase, started, Outcome::of(&outcome));
    Ok(outcome)
}
