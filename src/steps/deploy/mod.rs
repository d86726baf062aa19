//! The backend deploy: resolve the image by git SHA in ECR, render a new task-definition revision from
//! the live one, update the service, wait for the rollout to end; the rollback is the caller's decision
//! (see `crate::gates::undo`).
//!
//! [`prepare`] is read-only (the preflight and the plan); [`register`], [`update`] and [`rollout`] make
//! the changes, one gate each. Each writes only its own [`BackendReport`] and the run's [`Timeline`]; the
//! run derives its status from the report's [`BackendOutcome`]. The image is found and tagged by
//! [`image`]. Sub-modules: [`task_def`] (the raw JSON definition), `service` (the ECS service calls and
//! [`Deployed`]), [`rollout`] (the rollout wait and its diagnosis), `rollback`, `report` (the summary
//! section), `error` (errors and their hints).
//!
//! APIs: ECR (see [`image`]); ECS `DescribeServices`, `DescribeTaskDefinition`, `RegisterTaskDefinition`,
//! `UpdateService`, `ListTasks`, `DescribeTasks`, `ListServiceDeployments`,
//! `DescribeServiceDeployments`.

mod error;
pub mod hooks;
mod plan;
mod report;
mod rollback;
pub mod rollout;
mod service;
pub mod task_def;

use std::collections::HashSet;
use std::sync::Mutex;

use serde_json::Value;
use tokio::time::Instant;

pub use error::Error;
pub use report::{BackendOutcome, BackendReport, UpdateSent};
pub use rollback::{
    last_completed_revision, revision_for, revision_ref, rollback, rollback_command, running,
    RollbackTo, Running,
};
pub use service::{health as service_health, Deployed};

use crate::config::Config;
use crate::github::commands;
use crate::report::section::{Outcome, Timeline};
use crate::steps::{image, migrate, Clients};
use plan::{plan_lines, render, PlanFacts};
use report::short;

/// `family:revision` of a task-definition ARN.
pub fn short_arn(arn: &str) -> &str {
    short(arn)
}
use rollout::Failure;

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
    target: rollout::Target,
    seen_events: HashSet<String>,
    /// How the service runs its tasks, and the containers whose image is swapped: what a migration
    /// task copies.
    network: migrate::ServiceNetwork,
    containers: Vec<String>,
    /// The stages the service's deployments pause at (checked: the action answers each).
    pauses: hooks::Pauses,
    /// The target groups and listener rules of a blue/green, linear or canary service.
    routing: Option<hooks::Routing>,
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
    let img = resolve_image(clients, cfg, expected_digest, r).await?;
    let svc = service::describe(&clients.ecs, &b.cluster, &b.service).await?;
    let live_arn = svc.task_definition().unwrap_or_default().to_string();
    let target = service::target_of(&svc, cfg, &live_arn)?;
    let test_url = cfg.smoke.test_url.is_some();
    let pauses = hooks::check(svc.deployment_configuration(), &b.service, test_url)?;
    if svc.deployments().len() > 1 {
        tracing::warn!(
            "service `{}` has {} deployments in progress: another deploy may be running (use a `concurrency:` group per environment)",
            b.service,
            svc.deployments().len()
        );
    }
    let (live, source) = read_definitions(clients, cfg, &live_arn).await?;
    // A file without tags keeps the live revision's tags (Terraform's `managed-by` and the like).
    let tags = if source.tags.is_empty() {
        &live.tags
    } else {
        &source.tags
    };
    let (rendered, containers) = render(cfg, &source.definition, &live_arn, &img.uri)?;
    let changes = task_def::diff(&task_def::strip(&live.definition), &rendered);
    let desired_changes = b.desired_count.is_some_and(|d| d != svc.desired_count());
    let register = !changes.is_empty();
    let update = register || desired_changes || b.force_new_deployment;
    let plan = plan_lines(
        cfg,
        &PlanFacts {
            rendered: &rendered,
            live_arn: &live_arn,
            changes: &changes,
            register,
            update,
            desired_from: desired_changes.then(|| svc.desired_count()),
            digest: &img.digest,
        },
    );
    for line in &plan {
        tracing::info!("plan: {line}");
    }
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
        register_body: register.then(|| task_def::register_body(&rendered, tags)),
        image: img,
        rendered,
        update,
        target,
        seen_events: service::event_ids(&svc),
        target_groups: svc
            .load_balancers()
            .iter()
            .filter_map(|lb| lb.target_group_arn().map(str::to_string))
            .collect(),
        grace_period: svc.health_check_grace_period_seconds(),
        network: migrate::ServiceNetwork::of(&svc),
        containers,
        live_arn,
        pauses,
        routing: hooks::routing(&svc),
    })
}

/// The image by tag (or the digest a promotion will copy), recorded in the section; for a plain deploy,
/// the extra tags must be free for it.
async fn resolve_image(
    clients: &Clients,
    cfg: &Config,
    expected_digest: Option<&str>,
    r: &mut BackendReport,
) -> Result<image::Resolved, Error> {
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
    Ok(img)
}

/// The live revision, and the definition the new one starts from: the task-definition file when one is
/// given, else the live revision.
async fn read_definitions(
    clients: &Clients,
    cfg: &Config,
    live_arn: &str,
) -> Result<(task_def::Live, task_def::Live), Error> {
    let live = task_def::describe(&clients.ecs, live_arn).await?;
    let Some(path) = &cfg.backend.task_definition_file else {
        return Ok((live.clone(), live));
    };
    let file_error = |message: String| Error::TaskDefFile {
        path: path.display().to_string(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| file_error(e.to_string()))?;
    let source = task_def::from_file_text(&text).map_err(file_error)?;
    Ok((live, source))
}

// ---------------------------------------------------------------- apply

/// How a rollout this run started ended badly, with what the rollback decision needs to know.
#[derive(Debug)]
pub struct RolloutFailed {
    pub error: Error,
    /// ECS already went back (circuit breaker, blue/green): nothing for this run to roll back.
    pub ecs_rolled_back: bool,
    /// Leave the service alone: another deployment took over, or ECS's own rollback failed.
    pub hands_off: bool,
}

impl From<Error> for RolloutFailed {
    fn from(error: Error) -> Self {
        RolloutFailed {
            error,
            ecs_rolled_back: false,
            hands_off: false,
        }
    }
}

/// The service already runs what the plan asks for: nothing is registered or updated.
pub fn unchanged(
    prepared: &Prepared,
    section: &mut BackendReport,
    timeline: &mut Timeline,
) -> Deployed {
    tracing::info!("no change: the service already runs this image");
    section.outcome = BackendOutcome::NoChange;
    timeline.record("backend deploy", Instant::now(), Outcome::NoChange);
    prepared.deployed(prepared.live_arn.clone())
}

/// Register the new task-definition revision when the plan has one; its ARN (the live one when the
/// definition did not change).
pub async fn register(
    clients: &Clients,
    prepared: &Prepared,
    section: &mut BackendReport,
) -> Result<String, Error> {
    let Some(body) = &prepared.register_body else {
        return Ok(prepared.live_arn.clone());
    };
    let _group = commands::group("Backend deploy: register");
    match task_def::register(&clients.ecs, body).await {
        Ok(arn) => {
            tracing::info!("registered {arn}");
            Ok(arn)
        }
        Err(e) => {
            // Nothing was registered: the service runs what it ran.
            section.task_definition_arn = Some(prepared.live_arn.clone());
            Err(e)
        }
    }
}

/// Point the service at `new_arn` (`UpdateService`). `started`: when the register gate began, so the
/// phase `register and update` spans both.
pub async fn update(
    clients: &Clients,
    cfg: &Config,
    prepared: &Prepared,
    new_arn: &str,
    started: Instant,
    section: &mut BackendReport,
    timeline: &mut Timeline,
) -> Result<Deployed, Error> {
    let b = &cfg.backend;
    let _group = commands::group("Backend deploy: update the service");
    section.update = UpdateSent::InFlight;
    section.update_to = Some(new_arn.to_string());
    let sent = service::update(
        &clients.ecs,
        cfg,
        new_arn,
        b.desired_count,
        b.force_new_deployment,
    )
    .await;
    let deployment_id = match sent {
        Ok(id) => id,
        Err(e) => {
            // The service is where it was unless the update got through after all: say what it runs.
            section.update = UpdateSent::Unknown;
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
    section.update = UpdateSent::Answered;
    section.task_definition_arn = Some(new_arn.to_string());
    tracing::info!(
        "updated service {} to {} (deployment {})",
        b.service,
        short(new_arn),
        deployment_id.as_deref().unwrap_or("?")
    );
    section.deployment_id = deployment_id;
    timeline.record("register and update", started, Outcome::Ok);
    if b.wait_timeout.is_zero() {
        tracing::info!("`wait-timeout: 0`: not waiting for the rollout");
        section.outcome = BackendOutcome::Deployed { watched: false };
    }
    Ok(prepared.deployed(new_arn.to_string()))
}

/// Watch the rollout `update` started to its end, each pause of it answered by `handler`; on a failure,
/// diagnose it (the failed tasks' logs and stop reasons, the target groups' health) into the section.
/// The rollback is the caller's decision.
pub async fn rollout<H: rollout::AtPause>(
    clients: &Clients,
    cfg: &Config,
    prepared: &Prepared,
    deployed: &Deployed,
    section: &mut BackendReport,
    timeline: &mut Timeline,
    handler: &mut H,
) -> Result<(), RolloutFailed> {
    let new_arn = &deployed.task_definition;
    let mut target = prepared.target.clone();
    target.task_definition = new_arn.clone();
    target.deployment_id = section.deployment_id.clone();
    // Steps without a pause before them are judged while they bake.
    let p = prepared.pauses;
    target.judge_every = (p.steps && !p.pre_production).then_some(cfg.canary.interval);
    let watched = rollout::wait(
        clients,
        cfg,
        target,
        prepared.seen_events.clone(),
        section,
        timeline,
        "rollout",
        handler,
    )
    .await;
    let failure = match watched {
        Ok(Ok(())) => {
            section.outcome = BackendOutcome::Deployed { watched: true };
            return Ok(());
        }
        Ok(Err(f)) => f,
        // The watch itself could not go on (ECS kept failing): the new revision may be live.
        Err(e) => return Err(e.into()),
    };
    // A rejection at a pause is the checks' verdict on a revision that ran: no stopped tasks to read.
    let diagnosis = if matches!(failure, Failure::Rejected { .. }) {
        rollout::Diagnosis::default()
    } else {
        diagnose_failure(clients, cfg, prepared, new_arn).await
    };
    section.diagnosis = diagnosis.clone();
    Err(failed_rollout(
        failure,
        cfg,
        new_arn,
        &prepared.live_arn,
        Box::new(diagnosis),
        section,
    ))
}

/// The error of a failed rollout, and whether ECS already went back or the service is not ours to
/// touch; the section's outcome says how it ended where that is final.
fn failed_rollout(
    failure: Failure,
    cfg: &Config,
    new_arn: &str,
    live_arn: &str,
    diagnosis: Box<rollout::Diagnosis>,
    section: &mut BackendReport,
) -> RolloutFailed {
    let service = cfg.backend.service.clone();
    let task_definition = short(new_arn).to_string();
    let (error, ecs_rolled_back, hands_off) = match failure {
        Failure::ByEcs(reason) => {
            section.outcome = BackendOutcome::RolledBackByEcs;
            section.rolled_back_to = Some(live_arn.to_string());
            let e = Error::RolledBackByEcs {
                service,
                task_definition,
                reason,
                diagnosis,
            };
            (e, true, false)
        }
        Failure::EcsRollbackFailed(reason) => {
            // Never `rolled-back`, and no rollback of our own on top of ECS's failed one.
            section.outcome = BackendOutcome::Failed { rolled_back: false };
            let reason = format!("ECS's rollback failed and the service may be down: {reason}");
            let e = Error::RolloutFailed {
                service,
                task_definition,
                reason,
                diagnosis,
            };
            (e, false, true)
        }
        Failure::Rejected {
            place,
            why,
            before_production,
        } => {
            section.outcome = BackendOutcome::RolledBackByEcs;
            section.rolled_back_to = Some(live_arn.to_string());
            let e = Error::RejectedAtPause {
                service,
                task_definition,
                place,
                why,
                before_production,
            };
            (e, true, false)
        }
        Failure::Superseded(reason) => {
            section.outcome = BackendOutcome::Superseded;
            (Error::Superseded { service, reason }, false, true)
        }
        Failure::Failed(reason) => {
            let e = Error::RolloutFailed {
                service,
                task_definition,
                reason,
                diagnosis,
            };
            (e, false, false)
        }
        Failure::Timeout => {
            let after = cfg.backend.wait_timeout;
            let e = Error::Timeout {
                service,
                task_definition,
                after,
                diagnosis,
            };
            (e, false, false)
        }
    };
    RolloutFailed {
        error,
        ecs_rolled_back,
        hands_off,
    }
}

/// Why the new revision's tasks failed: their stop reasons and log lines, then the target groups'
/// health, with the load balancer's fixes after the causes the app's own logs show and before the
/// generic ones of the stop reasons.
async fn diagnose_failure(
    clients: &Clients,
    cfg: &Config,
    prepared: &Prepared,
    new_arn: &str,
) -> rollout::Diagnosis {
    let b = &cfg.backend;
    let logs = rollout::diagnosis::LogContext {
        client: &clients.logs,
        task_definition: &prepared.rendered,
        lines: b.diagnosis_log_lines,
        masker: crate::steps::masking::Masker::new(crate::steps::masking::secret_values(
            &prepared.rendered,
        )),
    };
    let mut diagnosis =
        rollout::diagnose(&clients.ecs, &b.cluster, &b.service, new_arn, Some(&logs)).await;
    let lb = crate::steps::target_health::health(
        &clients.elb,
        &prepared.target_groups,
        prepared.grace_period,
    )
    .await;
    diagnosis.lines.extend(lb.lines());
    let from_logs: usize = diagnosis.logs.iter().map(|t| t.causes.len()).sum();
    let at = from_logs.min(diagnosis.hints.len());
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
    diagnosis
}

/// Roll back after the rollout this run started failed: to the revision the service ran before, with
/// the rollout's target (no second read of the service).
pub async fn roll_back_rollout(
    clients: &Clients,
    cfg: &Config,
    prepared: &Prepared,
    deployed: &Deployed,
    cause: &str,
    section: &mut BackendReport,
    timeline: &mut Timeline,
) -> Result<(), Error> {
    rollback::roll_back_to(
        clients,
        cfg,
        &deployed.task_definition,
        &prepared.live_arn,
        &prepared.target,
        cause,
        section,
        timeline,
    )
    .await
}

impl Prepared {
    /// Whether the plan changes the service at all.
    pub fn changes_service(&self) -> bool {
        self.update
    }

    /// The stages the service's deployments pause at.
    pub fn pauses(&self) -> hooks::Pauses {
        self.pauses
    }

    /// The target groups and listener rules of a blue/green, linear or canary service.
    pub fn routing(&self) -> Option<&hooks::Routing> {
        self.routing.as_ref()
    }

    /// The image digest the service will run.
    pub fn digest(&self) -> &str {
        &self.image.digest
    }

    fn deployed(&self, task_definition: String) -> Deployed {
        Deployed {
            changed: task_definition != self.live_arn,
            previous_task_definition: self.live_arn.clone(),
            task_definition,
            image_digest: self.image.digest.clone(),
            definition: self.rendered.clone(),
            target_groups: self.target_groups.clone(),
            routing: self.routing.clone(),
            reported_stops: Mutex::default(),
        }
    }
}
