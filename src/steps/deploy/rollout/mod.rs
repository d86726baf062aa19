//! The rollout wait: poll until the deployment this run created is PRIMARY and COMPLETED, fail fast on
//! FAILED or on a circuit-breaker rollback, stream each new service event once, and on failure say why.
//!
//! - [`poller`]: the adaptive pacing and the generic watch loop over any [`Probe`].
//! - [`probe`]: what is polled, one probe type per deployment strategy, and the verdicts.
//! - [`diagnosis`]: the stopped tasks of a failed revision and the likely fixes.
//!
//! APIs: ECS `DescribeServices`, `ListServiceDeployments`, `DescribeServiceDeployments` (see
//! [`probe`]), `ListTasks`, `DescribeTasks` (see [`diagnosis`]).

pub mod diagnosis;
pub mod poller;
pub mod probe;

use std::collections::HashSet;
use std::time::Duration;

pub use diagnosis::{diagnose, Diagnosis};
pub use poller::{poll, Pace, Probe, Tick, Watched};
pub use probe::{Strategy, Target, Verdict};

use probe::{BlueGreenProbe, RollingProbe, Rollout};

use tokio::time::Instant;

use super::error::Error;
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

/// Follow the rollout to `target`, with the probe for its strategy, picked once here. Events with ids in
/// `seen` (those before the update) are not printed again.
pub async fn follow(
    ecs: &aws_sdk_ecs::Client,
    target: Target,
    seen: HashSet<String>,
    base: Duration,
    timeout: Duration,
) -> Followed {
    match target.strategy {
        Strategy::ServiceDeployments => {
            observe(BlueGreenProbe::new(ecs, target, seen), base, timeout).await
        }
        Strategy::Rolling | Strategy::RollingWithRollback => {
            observe(RollingProbe::new(ecs, target, seen), base, timeout).await
        }
    }
}

async fn observe<P: Rollout>(mut probe: P, base: Duration, timeout: Duration) -> Followed {
    let result = poll(&mut probe, base, timeout).await;
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
}

/// Wait for the rollout to `target.task_definition` to end, recording its log group, timed phase,
/// events and calls in the backend section; `Ok(())` when it completed.
pub(crate) async fn wait(
    clients: &Clients,
    cfg: &Config,
    target: Target,
    seen: HashSet<String>,
    section: &mut BackendReport,
    timeline: &mut Timeline,
    phase: &str,
) -> Result<Result<(), Failure>, Error> {
    let started = Instant::now();
    let _group = commands::group(&format!("Rollout of {}", short(&target.task_definition)));
    let mut watch = follow(
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
        Some(Verdict::Completed) => Ok(()),
        Some(Verdict::Failed(s)) => Err(Failure::Failed(s)),
        Some(Verdict::RolledBackByEcs(s)) => Err(Failure::ByEcs(s)),
        Some(Verdict::Superseded(s)) => Err(Failure::Superseded(s)),
        Some(Verdict::EcsRollbackFailed(s)) => Err(Failure::EcsRollbackFailed(s)),
        Some(Verdict::Pending { .. }) | None => Err(Failure::Timeout),
    };
    timeline.record(phase, started, Outcome::of(&outcome));
    Ok(outcome)
}
