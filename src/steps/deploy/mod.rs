//! The backend deploy: resolve the image by git SHA in ECR, render a new task-definition revision from
//! the live one, update the service, watch the rollout to its end, roll back on failure.
//!
//! [`prepare`] is read-only (the preflight and the plan); [`apply`] makes the changes. Each writes only
//! its own [`BackendReport`] and the run's [`Timeline`]; the run derives its status from the report's
//! [`BackendOutcome`]. The image is found and tagged by [`image`]. Sub-modules: [`task_def`] (the raw JSON definition), `service`
//! (the ECS service calls and [`Deployed`]), [`wait`] (the rollout watch and its diagnosis), `watch`
//! (one watch as the step records it), `rollback`, `report` (the summary section), `error` (errors
//! and their hints).
//!
//! APIs: ECR (see [`image`]); ECS `DescribeServices`, `DescribeTaskDefinition`, `RegisterTaskDefinition`,
//! `UpdateService`, `ListTasks`, `DescribeTasks`, `ListServiceDeployments`,
//! `DescribeServiceDeployments`.

mod error;
mod report;
mod rollback;
mod service;
pub mod task_def;
pub mod wait;
mod watch;

use std::collections::HashSet;
use std::sync::Mutex;

use serde_json::Value;
use tokio::time::Instant;

pub use error::Error;
pub use report::{BackendOutcome, BackendReport};
pub use rollback::{
    last_completed_revision, revision_for, revision_ref, rollback, rollback_command, running,
    RollbackTo, Running,
};
pub use service::{health as service_health, Deployed};

use crate::config::Config;
use crate::github::commands;
use crate::report::section::{Outcome, Timeline};
use crate::steps::{image, migrate, Clients};
use report::short;

/// `family:revision` of a task-definition ARN.
pub fn short_arn(arn: &str) -> &str {
    short(arn)
}
use watch::{watch_rollout, Failure};

/// What the preflight found (all read-only): the image, the service, its current task definition, the
/// plan of what will change. Nothing has been changed when this exists.
#[derive(Debug)]
pub struct Prepared {
    image: image::Resolved,
    live_arn: String,
    register_body: Option<Value>,
    /// The definition the new tasks run (rendered, or the live one reused): where their logs go.
    rendered: Value,
    /// The service's target groups and health-check grace period (seconds), for a failure's diagnosis.
    target_groups: Vec<String>,
    grace_period: Option<i32>,
    update: bool,
    target: wait::Target,
    seen_events: HashSet<String>,
    /// How the service runs its tasks, and the containers whose image is swapped: what a migration
    /// task copies.
    network: migrate::ServiceNetwork,
    containers: Vec<String>,
}

impl Prepared {
    /// What the migration's preflight reads: the service's network, the definition the new tasks run,
    /// the deployed containers, and whether the service will be updated (else no migration runs).
    pub fn migration_inputs(&self) -> (&migrate::ServiceNetwork, &Value, &[String], bool) {
        (&self.network, &self.rendered, &self.containers, self.update)
    }
}

// ---------------------------------------------------------------- prepare

/// Preflight, read-only. `expected_digest`: for `promote` (and archives), the digest that will be in the
/// target repository once copied; the target repository is then not asked for the tag.
pub async fn prepare(
    clients: &Clients,
    cfg: &Config,
    expected_digest: Option<&str>,
    section: &mut BackendReport,
    timeline: &mut Timeline,
) -> Result<Prepared, Error> {
    let started = Instant::now();
    let _group = commands::group("Backend preflight");
    let b = &cfg.backend;
    section.cluster = b.cluster.clone();
    section.service = b.service.clone();
    section.repository = b.repository.clone();
    section.outcome = BackendOutcome::Preflight;
    let result = prepare_inner(clients, cfg, expected_digest, section).await;
    timeline.record("backend preflight", started, Outcome::of(&result));
    if let Err(e) = &result {
        section.outcome = BackendOutcome::PreflightFailed(e.to_string());
    }
    result
}

async fn prepare_inner(
    clients: &Clients,
    cfg: &Config,
    expected_digest: Option<&str>,
    r: &mut BackendReport,
) -> Result<Prepared, Error> {
    let b = &cfg.backend;
    let repo = image::repository(&clients.ecr, &b.repository).await?;
    let img = image::resolve(&clients.ecr, &repo, b.image_tag.as_deref(), expected_digest).await?;
    tracing::info!(
        "image: {} ({})",
        img.uri,
        img.tag.as_deref().unwrap_or("given digest")
    );
    r.image_tag = img.tag.clone().or_else(|| b.image_tag.clone());
    r.image_digest = Some(img.digest.clone());
    r.image_uri = Some(img.uri.clone());
    if expected_digest.is_none() {
        image::check_tags_free(&clients.ecr, &repo, &img.digest, &b.extra_tags).await?;
    }

    let svc = service::describe(&clients.ecs, &b.cluster, &b.service).await?;
    let live_arn = svc.task_definition().unwrap_or_default().to_string();
    let target = service::target_of(&svc, cfg, &live_arn)?;
    if svc.deployments().len() > 1 {
        tracing::warn!(
            "service `{}` has {} deployments in progress: another deploy may be running (use a `concurrency:` group per environment)",
            b.service,
            svc.deployments().len()
        );
    }
    let live = task_def::describe(&clients.ecs, &live_arn).await?;
    let source = match &b.task_definition_file {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| Error::TaskDefFile {
                path: path.display().to_string(),
                message: e.to_string(),
            })?;
            task_def::from_file_text(&text).map_err(|message| Error::TaskDefFile {
                path: path.display().to_string(),
                message,
            })?
        }
        None => live.clone(),
    };
    // A file without tags keeps the live revision's tags (Terraform's `managed-by` and the like).
    let tags = if source.tags.is_empty() {
        &live.tags
    } else {
        &source.tags
    };
    let containers =
        task_def::choose_containers(&source.definition, &b.containers).map_err(|e| match e {
            task_def::SwapError::Unknown { name, available } => Error::ContainerNotFound {
                name,
                task_definition: short(&live_arn).to_string(),
                available,
            },
            task_def::SwapError::Ambiguous(available) => Error::AmbiguousContainer {
                task_definition: short(&live_arn).to_string(),
                available,
            },
        })?;
    let live_stripped = task_def::strip(&live.definition);
    let mut rendered = task_def::strip(&source.definition);
    task_def::swap_images(&mut rendered, &containers, &img.uri);
    let changes = task_def::diff(&live_stripped, &rendered);

    let desired_changes = b.desired_count.is_some_and(|d| d != svc.desired_count());
    let register = !changes.is_empty();
    let update = register || desired_changes || b.force_new_deployment;
    let mut plan: Vec<String> = Vec::new();
    if register {
        plan.push(format!(
            "register a new revision of `{}` from `{}`:",
            task_def::family(&rendered).unwrap_or("?"),
            if b.task_definition_file.is_some() {
                "the task-definition file"
            } else {
                short(&live_arn)
            }
        ));
        plan.extend(changes.iter().map(ToString::to_string));
    }
    if update {
        let mut what = vec![format!(
            "taskDefinition: {}",
            if register {
                "the new revision".to_string()
            } else {
                short(&live_arn).to_string()
            }
        )];
        if let Some(d) = b.desired_count.filter(|_| desired_changes) {
            what.push(format!("desiredCount: {} -> {d}", svc.desired_count()));
        }
        if b.force_new_deployment {
            what.push("forceNewDeployment: true".into());
        }
        plan.push(format!(
            "update service `{}` in `{}` ({})",
            b.service,
            b.cluster,
            what.join(", ")
        ));
    } else {
        plan.push(format!(
            "no change: `{}` already runs {}",
            short(&live_arn),
            img.digest
        ));
    }
    for line in &plan {
        tracing::info!("plan: {line}");
    }
    let seen_events = service::event_ids(&svc);
    r.previous_task_definition_arn = Some(live_arn.clone());
    r.strategy = Some(target.strategy);
    r.plan = plan;
    r.outcome = if cfg.dry_run {
        BackendOutcome::Planned
    } else {
        BackendOutcome::Ready
    };
    if !update {
        r.task_definition_arn = Some(live_arn.clone());
    }
    Ok(Prepared {
        image: img,
        live_arn,
        register_body: register.then(|| task_def::register_body(&rendered, tags)),
        rendered,
        update,
        target,
        seen_events,
        target_groups: svc
            .load_balancers()
            .iter()
            .filter_map(|lb| lb.target_group_arn().map(str::to_string))
            .collect(),
        grace_period: svc.health_check_grace_period_seconds(),
        network: migrate::ServiceNetwork::of(&svc),
        containers,
    })
}

// ---------------------------------------------------------------- apply

/// Apply the plan: register the revision, run the migration (when planned) with it, update the
/// service, wait; on a failed rollout roll back (when enabled). The section's outcome says how it
/// ended (deployed, no change, rolled back, ...).
pub async fn apply(
    clients: &Clients,
    cfg: &Config,
    prepared: Prepared,
    migration: Option<(&migrate::MigratePlan, &mut migrate::MigrationReport)>,
    section: &mut BackendReport,
    timeline: &mut Timeline,
) -> Result<Deployed, Error> {
    let b = &cfg.backend;
    let started = Instant::now();
    let mut group = commands::group("Backend deploy");
    if !prepared.update {
        tracing::info!("no change: the service already runs this image");
        section.outcome = BackendOutcome::NoChange;
        timeline.record("backend deploy", started, Outcome::NoChange);
        return Ok(Deployed {
            changed: false,
            previous_task_definition: prepared.live_arn.clone(),
            task_definition: prepared.live_arn,
            image_digest: prepared.image.digest.clone(),
            definition: prepared.rendered,
            target_groups: prepared.target_groups,
            reported_stops: Mutex::default(),
        });
    }
    let new_arn = match &prepared.register_body {
        Some(body) => match task_def::register(&clients.ecs, body).await {
            Ok(arn) => {
                tracing::info!("registered {arn}");
                arn
            }
            Err(e) => {
                // Nothing was registered: the service runs what it ran.
                section.task_definition_arn = Some(prepared.live_arn.clone());
                return Err(e);
            }
        },
        None => prepared.live_arn.clone(),
    };
    let changed = new_arn != prepared.live_arn;
    // MIGRATION GATE: a failed migration stops here, before the service update; the new revision is
    // left unused and the service runs what it ran.
    if let Some((plan, report)) = migration {
        // The runner does not nest groups: the migration's lines get their own.
        group.end();
        let result = migrate::run(clients, plan, &new_arn, report, timeline).await;
        group = commands::group("Backend deploy");
        if let Err(e) = result {
            section.task_definition_arn = Some(prepared.live_arn.clone());
            section.outcome = BackendOutcome::Failed { rolled_back: false };
            return Err(Error::Migration {
                message: e.to_string(),
                hint: crate::error::Diagnose::hint(&e),
                anchor: crate::error::Diagnose::anchor(&e),
            });
        }
    }
    let deployment_id = match service::update(
        &clients.ecs,
        cfg,
        &new_arn,
        b.desired_count,
        b.force_new_deployment,
    )
    .await
    {
        Ok(id) => id,
        Err(e) => {
            // The service is where it was unless the update got through after all: say what it runs.
            section.task_definition_arn = Some(
                match service::describe(&clients.ecs, &b.cluster, &b.service).await {
                    Ok(svc) => svc
                        .task_definition()
                        .map(str::to_string)
                        .unwrap_or_else(|| prepared.live_arn.clone()),
                    Err(_) => prepared.live_arn.clone(),
                },
            );
            return Err(e);
        }
    };
    section.task_definition_arn = Some(new_arn.clone());
    tracing::info!(
        "updated service {} to {} (deployment {})",
        b.service,
        short(&new_arn),
        deployment_id.as_deref().unwrap_or("?")
    );
    section.deployment_id = deployment_id.clone();
    timeline.record("register and update", started, Outcome::Ok);
    group.end();
    let deployed = Deployed {
        changed,
        previous_task_definition: prepared.live_arn.clone(),
        task_definition: new_arn.clone(),
        image_digest: prepared.image.digest.clone(),
        definition: prepared.rendered.clone(),
        target_groups: prepared.target_groups.clone(),
        reported_stops: Mutex::default(),
    };
    if b.wait_timeout.is_zero() {
        tracing::info!("`wait-timeout: 0`: not waiting for the rollout");
        section.outcome = BackendOutcome::Deployed { watched: false };
        return Ok(deployed);
    }
    let mut target = prepared.target.clone();
    target.task_definition = new_arn.clone();
    target.deployment_id = deployment_id;
    let failure = match watch_rollout(
        clients,
        cfg,
        target.clone(),
        prepared.seen_events.clone(),
        section,
        timeline,
        "rollout",
    )
    .await?
    {
        Ok(()) => {
            section.outcome = BackendOutcome::Deployed { watched: true };
            return Ok(deployed);
        }
        Err(f) => f,
    };
    let logs = wait::diagnosis::LogContext {
        client: &clients.logs,
        task_definition: &prepared.rendered,
        lines: b.diagnosis_log_lines,
        masker: crate::steps::logs::Masker::new(crate::steps::logs::secret_values(
            &prepared.rendered,
        )),
    };
    let diagnosis =
        wait::diagnose(&clients.ecs, &b.cluster, &b.service, &new_arn, Some(&logs)).await;
    let lb = crate::steps::lb::health(&clients.elb, &prepared.target_groups, prepared.grace_period)
        .await;
    let mut diagnosis = diagnosis;
    diagnosis.lines.extend(lb.lines());
    // After the causes the app's own logs show, before the generic ones of the stop reasons.
    let mut at = 0;
    for t in &diagnosis.logs {
        at += t.causes.len();
    }
    let at = at.min(diagnosis.hints.len());
    for (i, h) in lb.hints().into_iter().enumerate() {
        if !diagnosis.hints.contains(&h) {
            diagnosis
                .hints
                .insert((at + i).min(diagnosis.hints.len()), h);
        }
    }
    for l in diagnosis.display_lines() {
        tracing::error!("{l}");
    }
    section.diagnosis = diagnosis.clone();
    let err = match failure {
        Failure::ByEcs(reason) => {
            section.outcome = BackendOutcome::RolledBackByEcs;
            section.rolled_back_to = Some(prepared.live_arn.clone());
            return Err(Error::RolledBackByEcs {
                service: b.service.clone(),
                task_definition: short(&new_arn).to_string(),
                reason,
                diagnosis: Box::new(diagnosis),
            });
        }
        Failure::EcsRollbackFailed(reason) => {
            // Never `rolled-back`, and no rollback of our own on top of ECS's failed one.
            section.outcome = BackendOutcome::Failed { rolled_back: false };
            return Err(Error::RolloutFailed {
                service: b.service.clone(),
                task_definition: short(&new_arn).to_string(),
                reason: format!("ECS's rollback failed and the service may be down: {reason}"),
                diagnosis: Box::new(diagnosis),
            });
        }
        Failure::Superseded(reason) => {
            section.outcome = BackendOutcome::Superseded;
            return Err(Error::Superseded {
                service: b.service.clone(),
                reason,
            });
        }
        Failure::Failed(reason) => Error::RolloutFailed {
            service: b.service.clone(),
            task_definition: short(&new_arn).to_string(),
            reason,
            diagnosis: Box::new(diagnosis),
        },
        Failure::Timeout => Error::Timeout {
            service: b.service.clone(),
            task_definition: short(&new_arn).to_string(),
            after: b.wait_timeout,
            diagnosis: Box::new(diagnosis),
        },
    };
    let rolled_back = b.rollback_on_failure && changed;
    if rolled_back {
        let cause = err.to_string();
        rollback::roll_back_to(
            clients,
            cfg,
            &new_arn,
            &prepared.live_arn,
            &prepared.target,
            &cause,
            section,
            timeline,
        )
        .await?;
    }
    section.outcome = BackendOutcome::Failed { rolled_back };
    Err(err)
}
