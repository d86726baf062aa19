//! One rollout watched for the backend step: a log group, a timed phase, the events and the watch's
//! calls in the backend section, and the verdict reduced to what the caller acts on.
//!
//! APIs: see `wait`.

use std::collections::HashSet;

use tokio::time::Instant;

use super::error::Error;
use super::report::{short, BackendReport};
use super::wait;
use crate::config::Config;
use crate::github::commands;
use crate::report::section::{Outcome, Timeline};
use crate::steps::Clients;

/// Why a watch did not succeed (before any rollback).
pub(super) enum Failure {
    Failed(String),
    ByEcs(String),
    /// ECS's own rollback failed: the service may be down.
    EcsRollbackFailed(String),
    Timeout,
    Superseded(String),
}

/// Watch a rollout to `target.task_definition`; `Ok(())` when it completed.
pub(super) async fn watch_rollout(
    clients: &Clients,
    cfg: &Config,
    target: wait::Target,
    seen: HashSet<String>,
    section: &mut BackendReport,
    timeline: &mut Timeline,
    phase: &str,
) -> Result<Result<(), Failure>, Error> {
    let started = Instant::now();
    let _group = commands::group(&format!("Rollout of {}", short(&target.task_definition)));
    let mut watch = wait::rollout(
        &clients.ecs,
        target,
        seen,
        cfg.backend.poll_interval,
        cfg.backend.wait_timeout,
    )
    .await;
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
        Some(wait::Verdict::Completed) => Ok(()),
        Some(wait::Verdict::Failed(s)) => Err(Failure::Failed(s)),
        Some(wait::Verdict::RolledBackByEcs(s)) => Err(Failure::ByEcs(s)),
        Some(wait::Verdict::Superseded(s)) => Err(Failure::Superseded(s)),
        Some(wait::Verdict::EcsRollbackFailed(s)) => Err(Failure::EcsRollbackFailed(s)),
        Some(wait::Verdict::Pending { .. }) | None => Err(Failure::Timeout),
    };
    timeline.record(phase, started, Outcome::of(&outcome));
    Ok(outcome)
}
