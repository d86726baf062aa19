//! The migration gate: a one-off task run with the revision the deploy registered (so the exact image
//! digest, environment and secrets that will serve), the command override of `migrate:`, and the live
//! service's network configuration and launch type or capacity provider strategy, after every read-only
//! check and before `UpdateService`. Only a task whose essential containers all exit 0 lets the deploy
//! go on; anything else (no start, a non-zero exit, the timeout) stops it with the old version serving.
//!
//! [`prepare`] is pure (the preflight: the container checked against the task definition, the network
//! copied from the service, the plan a dry run shows); [`run`] starts the task, streams its log lines
//! (masked) while [`poller::watch`] polls it on the rollout's schedule, and stops it at the timeout;
//! [`stop_on_cancel`] stops it when the run is cancelled. Sub-modules: `task` (the ECS and CloudWatch
//! Logs calls), `report` (the summary section and outputs), `error` (errors, hints, known causes).
//!
//! APIs: ECS `RunTask` (tagged on create), `DescribeTasks`, `StopTask`; CloudWatch Logs
//! `GetLogEvents`.

mod error;
mod plan;
mod report;
mod task;

use serde_json::Value;
use tokio::time::Instant;

pub use error::{Cause, Error};
pub use plan::{MigratePlan, ServiceNetwork, STARTED_BY};
pub use report::{MigrationOutcome, MigrationReport};

use crate::config::Config;
use crate::github::commands;
use crate::report::section::{Outcome, Timeline};
use crate::steps::deploy::rollout::poller;
use crate::steps::masking::{self, Masker};
use crate::steps::task_logs;
use crate::steps::Clients;

/// The preflight of the migration, pure: `None` without `migrate:` (or for `rollback`). `definition`
/// is the task definition the deploy will register (or reuse), `deployed` its containers whose image
/// the deploy swaps (the default container). Fills `section` with the plan, also for a dry run. Without
/// an `update` of the service (it already runs the image) the input is checked and nothing is planned:
/// the migration ran with that image before.
pub fn prepare(
    cfg: &Config,
    service: &ServiceNetwork,
    definition: &Value,
    deployed: &[String],
    update: bool,
    section: &mut Option<MigrationReport>,
) -> Result<Option<MigratePlan>, Error> {
    let Some(m) = &cfg.migrate else {
        return Ok(None);
    };
    let family = definition
        .get("family")
        .and_then(Value::as_str)
        .unwrap_or("?");
    let container = plan::container(definition, m.container.as_deref(), deployed)?;
    let awsvpc = definition.get("networkMode").and_then(Value::as_str) == Some("awsvpc");
    let has_subnets = service
        .network
        .as_ref()
        .and_then(|n| n.awsvpc_configuration())
        .is_some_and(|v| !v.subnets().is_empty());
    if awsvpc && !has_subnets {
        return Err(Error::NoNetwork {
            service: cfg.backend.service.clone(),
        });
    }
    let plan = MigratePlan {
        cluster: cfg.backend.cluster.clone(),
        logging: task_logs::logging_of(definition, &container),
        container,
        command: m.command.clone(),
        timeout: m.timeout,
        poll_interval: cfg.backend.poll_interval,
        service: service.clone(),
        essential: plan::essential(definition),
        masker: Masker::new(masking::secret_values(definition)),
        run_tag: cfg.auth.session_name.clone(),
        sha_tag: cfg.backend.image_tag.clone().unwrap_or_default(),
    };
    if !update {
        tracing::info!("plan: no migration: the service already runs this image");
        return Ok(None);
    }
    let network = plan.service.describe();
    tracing::info!(
        "plan: run migration `{}` in container `{}` on cluster `{}` with the new revision of `{family}` ({}), before the service update, within {}",
        plan.command.join(" "),
        plan.container,
        plan.cluster,
        if network.is_empty() { "the cluster's default capacity".to_string() } else { network.join(", ") },
        humantime::format_duration(plan.timeout)
    );
    *section = Some(MigrationReport {
        cluster: plan.cluster.clone(),
        container: plan.container.clone(),
        command: plan.command.clone(),
        network,
        ..MigrationReport::default()
    });
    Ok(Some(plan))
}

/// Run the migration with `task_definition_arn` and wait for it to stop; `Ok` only when every essential
/// container exited 0. On the timeout the task is stopped. The section records the task as soon as
/// `RunTask` answers, so a cancelled run can stop it ([`stop_on_cancel`]).
pub async fn run(
    clients: &Clients,
    plan: &MigratePlan,
    task_definition_arn: &str,
    section: &mut MigrationReport,
    timeline: &mut Timeline,
) -> Result<(), Error> {
    let started = Instant::now();
    let _group = commands::group(&format!("Migration: {}", plan.command.join(" ")));
    section.task_definition_arn = Some(task_definition_arn.to_string());
    let result = run_inner(clients, plan, task_definition_arn, section, started).await;
    section.duration_seconds = Some(started.elapsed().as_secs_f64());
    match &result {
        Ok(()) => section.outcome = MigrationOutcome::Succeeded,
        Err(e) => section.outcome = MigrationOutcome::Failed(e.to_string()),
    }
    timeline.record("migration", started, Outcome::of(&result));
    result
}

async fn run_inner(
    clients: &Clients,
    plan: &MigratePlan,
    task_definition_arn: &str,
    section: &mut MigrationReport,
    started: Instant,
) -> Result<(), Error> {
    let arn = task::start(&clients.ecs, plan, task_definition_arn).await?;
    tracing::info!("started migration task {arn}");
    section.task_arn = Some(arn.clone());
    section.outcome = MigrationOutcome::Running;
    let mut watcher = task::Watcher::new(clients, plan, &arn);
    let watched = poller::poll(&mut watcher, plan.poll_interval, plan.timeout).await;
    let stopped = match watched {
        Ok(w) => w.outcome,
        Err(e) => Some(Err(Error::aws(
            "describe",
            &arn,
            "ecs:DescribeTasks",
            e.to_string(),
            "check that the role may call `ecs:DescribeTasks` on the cluster",
        ))),
    };
    // The lines written after the last poll (a task's last words come just before it stops).
    watcher.read_logs().await;
    let id = task_logs::task_id(&arn).to_string();
    let Some(stopped) = stopped else {
        let why = format!(
            "the migration ran past `migrate.timeout` ({})",
            humantime::format_duration(plan.timeout)
        );
        task::stop(&clients.ecs, &plan.cluster, &arn, &why).await;
        tracing::error!("stopped migration task {arn}: {why}");
        section.stopped_by_run = Some(why);
        watcher.finish(section);
        return Err(Error::Timeout {
            task: id,
            after: plan.timeout,
            lines: section.last_lines.clone(),
            causes: section.causes.clone(),
        });
    };
    let verdict = task::verdict(&stopped?, plan);
    section.exit_code = verdict.exit_code;
    section.stopped_reason = verdict.stopped_reason.clone();
    let exit_code = verdict.exit_code;
    watcher.finish(section);
    tracing::info!(
        "migration task {id} stopped after {:.1} s: exit code {}",
        started.elapsed().as_secs_f64(),
        exit_code.map_or("none".to_string(), |c| c.to_string())
    );
    match verdict.failure {
        None => Ok(()),
        Some(task::Failure::NotStarted(reason)) => Err(Error::NotStarted {
            cluster: plan.cluster.clone(),
            reason,
        }),
        Some(task::Failure::Exited(reason)) => Err(Error::Failed {
            task: id,
            reason,
            lines: section.last_lines.clone(),
            causes: section.causes.clone(),
        }),
    }
}

/// A cancelled run: stop the migration task it left running, and say so.
pub async fn stop_on_cancel(clients: &Clients, section: &mut MigrationReport, signal: &str) {
    let Some(arn) = section.running_task().map(str::to_string) else {
        return;
    };
    let why = format!("the run was cancelled by `{signal}`");
    task::stop(&clients.ecs, &section.cluster, &arn, &why).await;
    tracing::warn!("stopped migration task {arn}: {why}");
    section.stopped_by_run = Some(why);
    section.outcome = MigrationOutcome::Cancelled;
}
