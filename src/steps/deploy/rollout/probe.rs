//! What the rollout watch looks at, chosen once per watch from the service's deployment strategy (as
//! ecspresso's `WaitFunc(sv)`): [`RollingProbe`] reads the service's deployments and decides with
//! [`evaluate`]; `blue_green::BlueGreenProbe` follows the ECS service deployment (blue/green, linear,
//! canary). Both read the service on every poll (the shared `ServiceReader` here) and stream each new
//! service event once.
//!
//! APIs: ECS `DescribeServices`.

use std::collections::HashSet;
use std::fmt;

use aws_sdk_ecs::types::Service;
use serde::Serialize;

use super::poller::{Pace, Probe, Tick};
use crate::steps::deploy::error::Error;
use crate::steps::deploy::hooks::Pause;

/// Transient errors (throttling, 5xx, network) in a row that end the watch.
const MAX_TRANSIENT: u32 = 8;

// ---------------------------------------------------------------- rolling: the verdict

/// A deployment as the verdict needs it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DeploymentView {
    /// `ecs-svc/...`.
    pub id: String,
    /// PRIMARY, ACTIVE, INACTIVE.
    pub status: String,
    /// Task definition ARN.
    pub task_definition: String,
    /// IN_PROGRESS, COMPLETED, FAILED (absent on old services).
    pub rollout_state: Option<String>,
    /// Why it is in that state.
    pub rollout_reason: Option<String>,
    pub running: i32,
    pub desired: i32,
    pub pending: i32,
    /// Failed tasks so far.
    pub failed: i32,
}

impl From<&aws_sdk_ecs::types::Deployment> for DeploymentView {
    fn from(d: &aws_sdk_ecs::types::Deployment) -> Self {
        DeploymentView {
            id: d.id().unwrap_or_default().to_string(),
            status: d.status().unwrap_or_default().to_string(),
            task_definition: d.task_definition().unwrap_or_default().to_string(),
            rollout_state: d.rollout_state().map(|s| s.as_str().to_string()),
            rollout_reason: d.rollout_state_reason().map(str::to_string),
            running: d.running_count(),
            desired: d.desired_count(),
            pending: d.pending_count(),
            failed: d.failed_tasks(),
        }
    }
}

/// How a rollout ended (or that it has not).
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Still going; `hot` when all new tasks run and ECS only waits for steady state.
    Pending {
        /// Completion is imminent.
        hot: bool,
    },
    /// Our deployment is PRIMARY and COMPLETED.
    Completed,
    /// Our deployment FAILED and nothing replaced it.
    Failed(String),
    /// ECS's circuit breaker (or ECS's own blue/green rollback) went back, and that rollback finished.
    RolledBackByEcs(String),
    /// ECS's own rollback failed: the service may be down.
    EcsRollbackFailed(String),
    /// Another deployment (not ours, not a rollback) took over.
    Superseded(String),
    /// Our service deployment waits at a PAUSE hook for an answer.
    Paused(Pause),
}

/// Decide from the service's deployments whether the deployment `id` (of task definition `td`) is done.
pub fn evaluate(
    deployments: &[DeploymentView],
    id: Option<&str>,
    td: &str,
    cb_rollback: bool,
) -> Verdict {
    evaluate_with(deployments, id, td, cb_rollback, &Seen::default())
}

/// What the watch knows beyond the deployments list: the revision the update replaced and what the
/// service's events said. A PRIMARY deployment of the replaced revision, while the events say ours
/// failed or ECS is rolling back, is ECS's rollback, also when our deployment is already gone from the
/// list (a circuit breaker that went back within one poll interval): never "superseded".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Seen {
    /// The revision the service ran before the update.
    pub replaced: Option<String>,
    /// The last event saying a deployment failed (its text: the reason), or that ECS is rolling back.
    pub rollback_event: Option<String>,
}

impl Seen {
    /// Note an event line: ECS's "deployment failed" and "rolling back" messages.
    pub fn note(&mut self, event: &str) {
        let lower = event.to_ascii_lowercase();
        // "deployment failed: <why>" says why; "rolling back" only that ECS went back.
        if lower.contains("deployment failed")
            || (lower.contains("rolling back") && self.rollback_event.is_none())
        {
            self.rollback_event = Some(event.to_string());
        }
    }

    /// `p` is ECS going back to the revision the update replaced.
    fn is_ecs_rollback(&self, p: &DeploymentView, td: &str) -> bool {
        p.task_definition != td
            && self.rollback_event.is_some()
            && self.replaced.as_deref() == Some(p.task_definition.as_str())
    }
}

/// [`evaluate`], with what the watch saw on the way.
pub fn evaluate_with(
    deployments: &[DeploymentView],
    id: Option<&str>,
    td: &str,
    cb_rollback: bool,
    seen: &Seen,
) -> Verdict {
    let ours = deployments
        .iter()
        .find(|d| id.is_some_and(|i| i == d.id))
        .or_else(|| {
            deployments
                .iter()
                .find(|d| d.task_definition == td && d.status == "PRIMARY")
        });
    let primary = deployments.iter().find(|d| d.status == "PRIMARY");
    let other_primary = primary.filter(|p| ours.is_none_or(|o| o.id != p.id));
    let event_reason = || seen.rollback_event.clone();
    let Some(ours) = ours else {
        return match other_primary {
            Some(p) if (p.task_definition != td && cb_rollback) || seen.is_ecs_rollback(p, td) => {
                let reason = event_reason().unwrap_or_else(|| "the deployment is gone".to_string());
                rollback_of(p, reason)
            }
            Some(p) => Verdict::Superseded(format!(
                "deployment `{}` of `{}` replaced it",
                p.id, p.task_definition
            )),
            None => Verdict::Failed("the deployment disappeared from the service".into()),
        };
    };
    let reason = || {
        ours.rollout_reason
            .clone()
            .unwrap_or_else(|| "no reason given".to_string())
    };
    if ours.rollout_state.as_deref() == Some("FAILED") {
        return match other_primary {
            Some(p) if p.task_definition != td => rollback_of(p, reason()),
            // ECS marks the deployment FAILED a moment before it starts its own rollback: wait for it.
            _ if cb_rollback => Verdict::Pending { hot: false },
            _ => Verdict::Failed(reason()),
        };
    }
    if let Some(p) = other_primary.filter(|p| seen.is_ecs_rollback(p, td)) {
        // Ours is not FAILED yet: ECS's event says why it went back.
        let reason = event_reason().or_else(|| ours.rollout_reason.clone());
        return rollback_of(p, reason.unwrap_or_else(|| "no reason given".to_string()));
    }
    if let Some(p) = other_primary {
        return Verdict::Superseded(format!(
            "deployment `{}` of `{}` is now PRIMARY",
            p.id, p.task_definition
        ));
    }
    match ours.rollout_state.as_deref() {
        Some("COMPLETED") => Verdict::Completed,
        None if deployments.len() == 1 && ours.running == ours.desired => Verdict::Completed,
        _ => Verdict::Pending {
            hot: ours.desired > 0 && ours.running >= ours.desired && ours.pending == 0,
        },
    }
}

/// The state of ECS's own rollback deployment `p`: done only once it COMPLETED.
fn rollback_of(p: &DeploymentView, reason: String) -> Verdict {
    match p.rollout_state.as_deref() {
        Some("COMPLETED") => Verdict::RolledBackByEcs(format!(
            "{reason} (ECS rolled back to `{}`)",
            p.task_definition
        )),
        Some("FAILED") => Verdict::EcsRollbackFailed(format!(
            "{reason}; then ECS's rollback to `{}` failed too: {}",
            p.task_definition,
            p.rollout_reason.as_deref().unwrap_or("no reason given")
        )),
        _ => Verdict::Pending { hot: false },
    }
}

// ---------------------------------------------------------------- the ECS probe
// ---------------------------------------------------------------- what is watched

/// How ECS rolls the service out, read once from its deployment configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// Rolling update; a failed deployment is ours to handle.
    Rolling,
    /// Rolling update whose circuit breaker rolls back by itself.
    RollingWithRollback,
    /// Blue/green, linear or canary: progress is a service deployment.
    ServiceDeployments,
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Strategy::Rolling => "rolling",
            Strategy::RollingWithRollback => "rolling (circuit breaker with rollback)",
            Strategy::ServiceDeployments => "blue/green (service deployments)",
        })
    }
}

/// Where the watch looks.
#[derive(Debug, Clone)]
pub struct Target {
    pub cluster: String,
    pub service: String,
    /// The task definition the rollout goes to.
    pub task_definition: String,
    /// The deployment id from `UpdateService`, when known.
    pub deployment_id: Option<String>,
    /// The service's `currentServiceDeployment` before the update: never the one this run watches.
    pub previous_service_deployment: Option<String>,
    /// The revision the service ran before this rollout (when known): a new PRIMARY deployment of it,
    /// with ECS's rollback events, is ECS going back.
    pub replaced: Option<String>,
    pub strategy: Strategy,
    /// While a service deployment holds the new revision at a production share between 0 and 100 with
    /// no pause, hand it to the canary analysis this often (`None`: never).
    pub judge_every: Option<std::time::Duration>,
}

/// A probe of one rollout that also hands back what it saw on the way.
pub trait Rollout: Probe<Output = Verdict> {
    /// Every service event line printed so far, in order (for the summary); drains them.
    fn take_events(&mut self) -> Vec<String>;
    /// The service deployment watched (blue/green, linear, canary), once found.
    fn service_deployment_arn(&self) -> Option<&str>;
    /// The pause with `hook_id` was answered: never report it again (ECS may show it a moment longer).
    fn answered(&mut self, hook_id: String) {
        let _ = hook_id;
    }
}

/// One `DescribeServices` per poll, shared by both probes: new events are printed once, transient
/// failures back off until [`MAX_TRANSIENT`] in a row.
#[derive(Debug)]
pub(super) struct ServiceReader<'a> {
    pub(super) ecs: &'a aws_sdk_ecs::Client,
    pub(super) target: Target,
    seen: HashSet<String>,
    transient: u32,
    pub(super) events: Vec<String>,
}

impl<'a> ServiceReader<'a> {
    pub(super) fn new(ecs: &'a aws_sdk_ecs::Client, target: Target, seen: HashSet<String>) -> Self {
        ServiceReader {
            ecs,
            target,
            seen,
            transient: 0,
            events: Vec::new(),
        }
    }

    fn transient(&mut self, what: String) -> Result<(), Error> {
        self.transient += 1;
        tracing::warn!(
            "{what} (attempt {} of {MAX_TRANSIENT}; backing off)",
            self.transient
        );
        if self.transient >= MAX_TRANSIENT {
            return Err(Error::aws(
                "watch service",
                &self.target.service,
                what,
                "ECS kept throttling or failing; re-run the job, or raise `poll-interval` when many deploys run at once",
            ));
        }
        Ok(())
    }

    /// The service and whether it had new events; `None` when the call failed transiently (the poll
    /// backs off).
    pub(super) async fn read(&mut self) -> Result<Option<(Service, bool)>, Error> {
        let res = self
            .ecs
            .describe_services()
            .cluster(&self.target.cluster)
            .services(&self.target.service)
            .customize()
            // The poller owns the pacing: a throttled poll comes back at once and the next one is
            // pushed back by the schedule, instead of the SDK retrying (and rate-limiting) inside it.
            .config_override(aws_sdk_ecs::config::Builder::default().retry_config(
                aws_smithy_types::retry::RetryConfig::standard().with_max_attempts(1),
            ))
            .send()
            .await;
        let out = match res {
            Ok(o) => o,
            Err(e) if crate::aws::is_throttling(&e) || is_transient(&e) => {
                self.transient(crate::aws::describe(&e))?;
                return Ok(None);
            }
            Err(e) => return Err(Error::aws(
                "describe service",
                &self.target.service,
                crate::aws::describe(&e),
                "check the cluster and service and that the role may call `ecs:DescribeServices`",
            )),
        };
        self.transient = 0;
        let Some(svc) = out
            .services()
            .iter()
            .find(|s| s.status() != Some("INACTIVE"))
        else {
            return Err(Error::ServiceGone {
                cluster: self.target.cluster.clone(),
                service: self.target.service.clone(),
            });
        };
        // Newest first from ECS; print oldest first, each once.
        let mut fresh = false;
        for ev in svc.events().iter().rev() {
            let id = ev.id().unwrap_or_default().to_string();
            if self.seen.insert(id) {
                let msg = ev.message().unwrap_or_default().to_string();
                tracing::info!("event: {msg}");
                self.events.push(msg);
                fresh = true;
            }
        }
        Ok(Some((svc.clone(), fresh)))
    }
}

// ---------------------------------------------------------------- rolling

/// Watches a rolling update through the service's deployments.
#[derive(Debug)]
pub struct RollingProbe<'a> {
    reader: ServiceReader<'a>,
    cb_rollback: bool,
    seen: Seen,
    /// How many of the reader's events `seen` has noted.
    noted: usize,
    /// Running, pending, failed and rollout state of our deployment at the last poll.
    last: Option<(i32, i32, i32, String)>,
}

impl<'a> RollingProbe<'a> {
    /// A probe; events with ids in `seen` (those before the update) are not printed again.
    pub fn new(ecs: &'a aws_sdk_ecs::Client, target: Target, seen: HashSet<String>) -> Self {
        RollingProbe {
            cb_rollback: target.strategy == Strategy::RollingWithRollback,
            seen: Seen {
                replaced: target.replaced.clone(),
                rollback_event: None,
            },
            noted: 0,
            reader: ServiceReader::new(ecs, target, seen),
            last: None,
        }
    }
}

impl Probe for RollingProbe<'_> {
    type Output = Verdict;

    async fn probe(&mut self) -> Result<Tick<Verdict>, Error> {
        let Some((svc, fresh)) = self.reader.read().await? else {
            return Ok(Tick::Pending(Pace::Throttled));
        };
        for line in self.reader.events.get(self.noted..).unwrap_or_default() {
            self.seen.note(line);
        }
        self.noted = self.reader.events.len();
        let target = &self.reader.target;
        let views: Vec<DeploymentView> =
            svc.deployments().iter().map(DeploymentView::from).collect();
        let verdict = evaluate_with(
            &views,
            target.deployment_id.as_deref(),
            &target.task_definition,
            self.cb_rollback,
            &self.seen,
        );
        let ours = views
            .iter()
            .find(|d| d.task_definition == target.task_definition);
        let key = ours
            .map(|d| {
                (
                    d.running,
                    d.pending,
                    d.failed,
                    d.rollout_state.clone().unwrap_or_default(),
                )
            })
            .unwrap_or_default();
        let moved = self.last.as_ref() != Some(&key);
        if moved {
            if let Some(d) = ours {
                tracing::info!(
                    "new revision: {} running, {} pending, {} desired, {} failed ({})",
                    d.running,
                    d.pending,
                    d.desired,
                    d.failed,
                    d.rollout_state.as_deref().unwrap_or("no rollout state")
                );
            }
        }
        self.last = Some(key);
        Ok(match verdict {
            Verdict::Pending { hot: true } => Tick::Pending(Pace::Hot),
            Verdict::Pending { hot: false } if moved || fresh => Tick::Pending(Pace::Changed),
            Verdict::Pending { hot: false } => Tick::Pending(Pace::Quiet),
            v => Tick::Done(v),
        })
    }
}

impl Rollout for RollingProbe<'_> {
    fn take_events(&mut self) -> Vec<String> {
        std::mem::take(&mut self.reader.events)
    }

    fn service_deployment_arn(&self) -> Option<&str> {
        None
    }
}

fn is_transient<E>(
    e: &aws_smithy_runtime_api::client::result::SdkError<
        E,
        aws_smithy_runtime_api::client::orchestrator::HttpResponse,
    >,
) -> bool {
    use aws_smithy_runtime_api::client::result::SdkError;
    match e {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => true,
        SdkError::ResponseError(_) => true,
        SdkError::ServiceError(s) => {
            let status = s.raw().status().as_u16();
            status >= 500
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(
        id: &str,
        status: &str,
        td: &str,
        state: Option<&str>,
        running: i32,
        desired: i32,
    ) -> DeploymentView {
        DeploymentView {
            id: id.into(),
            status: status.into(),
            task_definition: td.into(),
            rollout_state: state.map(str::to_string),
            rollout_reason: Some("r".into()),
            running,
            desired,
            pending: 0,
            failed: 0,
        }
    }

    /// A circuit breaker that went back within one poll: by the next poll our deployment is gone (or
    /// still IN_PROGRESS beside the new PRIMARY), the PRIMARY runs the revision we replaced, and the
    /// events said the deployment failed. That is ECS's rollback, never "superseded", whether or not the
    /// service's configuration showed the breaker's rollback flag.
    #[test]
    fn a_fast_circuit_breaker_rollback_is_ecs_rollback_not_a_superseding_deploy() {
        let new = "td:2";
        let seen = Seen {
            replaced: Some("td:1".into()),
            rollback_event: Some("(deployment a) deployment failed: tasks failed to start.".into()),
        };
        let gone = vec![d("b", "PRIMARY", "td:1", Some("COMPLETED"), 2, 2)];
        let beside = vec![
            d("b", "PRIMARY", "td:1", Some("COMPLETED"), 2, 2),
            d("a", "ACTIVE", new, Some("IN_PROGRESS"), 0, 2),
        ];
        for cb in [true, false] {
            for deps in [&gone, &beside] {
                let v = evaluate_with(deps, Some("a"), new, cb, &seen);
                assert!(
                    matches!(&v, Verdict::RolledBackByEcs(r) if r.contains("tasks failed to start")),
                    "cb={cb} {deps:?}: {v:?}"
                );
            }
        }
        // In progress: watched to its end, still not "superseded".
        let rolling = vec![d("b", "PRIMARY", "td:1", Some("IN_PROGRESS"), 1, 2)];
        assert_eq!(
            evaluate_with(&rolling, Some("a"), new, false, &seen),
            Verdict::Pending { hot: false }
        );
        // Without ECS's events, another revision taking over is someone else's deploy.
        let quiet = Seen {
            replaced: Some("td:1".into()),
            rollback_event: None,
        };
        assert!(matches!(
            evaluate_with(&beside, Some("a"), new, false, &quiet),
            Verdict::Superseded(_)
        ));
        // A third revision is never ECS's rollback.
        let third = vec![
            d("c", "PRIMARY", "td:3", Some("IN_PROGRESS"), 0, 2),
            d("a", "ACTIVE", new, Some("IN_PROGRESS"), 0, 2),
        ];
        assert!(matches!(
            evaluate_with(&third, Some("a"), new, true, &seen),
            Verdict::Superseded(_)
        ));
    }

    #[test]
    fn verdicts() {
        let new = "td:2";
        let cases: Vec<(Vec<DeploymentView>, Verdict)> = vec![
            (
                vec![
                    d("a", "PRIMARY", new, Some("IN_PROGRESS"), 0, 2),
                    d("o", "ACTIVE", "td:1", Some("COMPLETED"), 2, 2),
                ],
                Verdict::Pending { hot: false },
            ),
            (
                vec![
                    d("a", "PRIMARY", new, Some("IN_PROGRESS"), 2, 2),
                    d("o", "ACTIVE", "td:1", Some("COMPLETED"), 2, 2),
                ],
                Verdict::Pending { hot: true },
            ),
            (
                vec![d("a", "PRIMARY", new, Some("COMPLETED"), 2, 2)],
                Verdict::Completed,
            ),
            (vec![d("a", "PRIMARY", new, None, 2, 2)], Verdict::Completed),
            (
                vec![
                    d("a", "PRIMARY", new, None, 2, 2),
                    d("o", "ACTIVE", "td:1", None, 1, 0),
                ],
                Verdict::Pending { hot: true },
            ),
            // FAILED, ECS's rollback not started yet: not done.
            (
                vec![d("a", "PRIMARY", new, Some("FAILED"), 0, 2)],
                Verdict::Pending { hot: false },
            ),
            // ECS's rollback in progress: watched to its end.
            (
                vec![
                    d("b", "PRIMARY", "td:1", Some("IN_PROGRESS"), 1, 2),
                    d("a", "ACTIVE", new, Some("FAILED"), 0, 2),
                ],
                Verdict::Pending { hot: false },
            ),
            (
                vec![
                    d("b", "PRIMARY", "td:1", Some("COMPLETED"), 2, 2),
                    d("a", "ACTIVE", new, Some("FAILED"), 0, 2),
                ],
                Verdict::RolledBackByEcs("r (ECS rolled back to `td:1`)".into()),
            ),
            (
                vec![
                    d("b", "PRIMARY", "td:1", Some("FAILED"), 0, 2),
                    d("a", "ACTIVE", new, Some("FAILED"), 0, 2),
                ],
                Verdict::EcsRollbackFailed("r; then ECS's rollback to `td:1` failed too: r".into()),
            ),
            (
                vec![d("b", "PRIMARY", "td:1", Some("COMPLETED"), 2, 2)],
                Verdict::RolledBackByEcs(
                    "the deployment is gone (ECS rolled back to `td:1`)".into(),
                ),
            ),
            (
                vec![d("b", "PRIMARY", "td:1", Some("IN_PROGRESS"), 1, 2)],
                Verdict::Pending { hot: false },
            ),
            (
                vec![
                    d("c", "PRIMARY", "td:3", Some("IN_PROGRESS"), 0, 2),
                    d("a", "ACTIVE", new, Some("IN_PROGRESS"), 1, 2),
                ],
                Verdict::Superseded("deployment `c` of `td:3` is now PRIMARY".into()),
            ),
        ];
        for (i, (deps, want)) in cases.into_iter().enumerate() {
            assert_eq!(evaluate(&deps, Some("a"), new, true), want, "case {i}");
        }
        // Without circuit-breaker rollback, FAILED is ours to handle, and a vanished deployment replaced
        // by another is "superseded".
        assert_eq!(
            evaluate(
                &[d("a", "PRIMARY", new, Some("FAILED"), 0, 2)],
                Some("a"),
                new,
                false
            ),
            Verdict::Failed("r".into())
        );
        assert!(matches!(
            evaluate(
                &[d("b", "PRIMARY", "td:1", Some("COMPLETED"), 2, 2)],
                Some("a"),
                new,
                false
            ),
            Verdict::Superseded(_)
        ));
    }
}
