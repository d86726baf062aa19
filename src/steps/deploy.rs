//! The backend deploy (issue #3): resolve the image by git SHA in ECR, render a new task-definition revision
//! from the live one, update the service, watch the rollout to its end, roll back on failure.
//!
//! `prepare` is read-only (the preflight and the plan); `apply` makes the changes. Sub-modules:
//! [`task_def`] (the raw JSON definition), [`wait`] (the rollout watch and its diagnosis); the image is
//! found and tagged by [`image`].
//!
//! APIs: ECR (see [`image`]); ECS `DescribeServices`, `DescribeTaskDefinition`, `RegisterTaskDefinition`,
//! `UpdateService`, `ListTaskDefinitions`, `ListTasks`, `DescribeTasks`, `ListServiceDeployments`,
//! `DescribeServiceDeployments`.

pub mod task_def;
pub mod wait;

use std::collections::HashSet;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

use aws_sdk_ecs::types::{DeploymentControllerType, DeploymentStrategy, DesiredStatus, SortOrder};
use serde::Serialize;
use serde_json::Value;
use tokio::time::Instant;

use crate::config::Config;
use crate::github::commands;
use crate::report::section::md_escape;
use crate::report::{Report, Status};
use crate::steps::{image, Clients};

/// Errors of the backend deploy.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An AWS call failed.
    #[error("failed to {verb} `{object}`: {detail}")]
    Aws {
        /// What was being done.
        verb: &'static str,
        /// To what.
        object: String,
        /// `<AWS code>: <message>`.
        detail: String,
        /// The fix.
        hint: String,
    },
    /// Finding or tagging the image failed.
    #[error(transparent)]
    Image(#[from] image::Error),
    /// The cluster does not exist.
    #[error("failed to describe cluster `{0}`: ClusterNotFoundException")]
    ClusterNotFound(String),
    /// The service does not exist in the cluster.
    #[error("failed to find service `{service}` in cluster `{cluster}`: MISSING")]
    ServiceNotFound {
        /// Cluster.
        cluster: String,
        /// Service.
        service: String,
    },
    /// The service was deleted (or is draining).
    #[error("service `{service}` in cluster `{cluster}` is gone (deleted, draining or inactive)")]
    ServiceGone {
        /// Cluster.
        cluster: String,
        /// Service.
        service: String,
    },
    /// The service is deployed by CodeDeploy or an external controller.
    #[error("service `{service}` uses the `{controller}` deployment controller, which this action does not drive")]
    Controller {
        /// Service.
        service: String,
        /// Controller type.
        controller: String,
    },
    /// A container named in `container` is not in the task definition.
    #[error("container `{name}` is not in task definition `{task_definition}` (containers: {})", .available.join(", "))]
    ContainerNotFound {
        /// Name asked for.
        name: String,
        /// Task definition.
        task_definition: String,
        /// Names there are.
        available: Vec<String>,
    },
    /// No container named, several to choose from.
    #[error("task definition `{task_definition}` has several containers ({}); which one runs the image?", .available.join(", "))]
    AmbiguousContainer {
        /// Task definition.
        task_definition: String,
        /// Names there are.
        available: Vec<String>,
    },
    /// The `task-definition` file is unreadable.
    #[error("failed to read task definition file `{path}`: {message}")]
    TaskDefFile {
        /// Path.
        path: String,
        /// Why.
        message: String,
    },
    /// The rollout failed.
    #[error("rollout of `{task_definition}` on service `{service}` failed: {reason}{}", diag(.diagnosis))]
    RolloutFailed {
        /// Service.
        service: String,
        /// New revision.
        task_definition: String,
        /// Why.
        reason: String,
        /// Stopped tasks and reasons.
        diagnosis: Vec<String>,
    },
    /// The circuit breaker (or ECS blue/green) rolled back already.
    #[error("rollout of `{task_definition}` on service `{service}` failed and ECS rolled it back: {reason}{}", diag(.diagnosis))]
    RolledBackByEcs {
        /// Service.
        service: String,
        /// New revision.
        task_definition: String,
        /// Why.
        reason: String,
        /// Stopped tasks and reasons.
        diagnosis: Vec<String>,
    },
    /// The rollout did not end in time.
    #[error("rollout of `{task_definition}` on service `{service}` did not finish within {}{}", humantime::format_duration(*.after), diag(.diagnosis))]
    Timeout {
        /// Service.
        service: String,
        /// New revision.
        task_definition: String,
        /// The timeout.
        after: Duration,
        /// Stopped tasks and reasons.
        diagnosis: Vec<String>,
    },
    /// Another deployment took over during the watch.
    #[error("rollout on service `{service}` was superseded: {reason}")]
    Superseded {
        /// Service.
        service: String,
        /// What happened.
        reason: String,
    },
    /// The rollback itself failed.
    #[error("failed to roll back service `{service}` to `{target}` after `{cause}`: {reason}")]
    RollbackFailed {
        /// Service.
        service: String,
        /// Revision rolled back to.
        target: String,
        /// Why a rollback was started.
        cause: String,
        /// Why it failed.
        reason: String,
    },
    /// `command: rollback` found nothing to go back to.
    #[error("failed to find a revision of `{family}` before `{current}`")]
    NoPreviousRevision {
        /// Family.
        family: String,
        /// Current revision.
        current: String,
    },
    /// `revision` is malformed.
    #[error("invalid `revision` `{0}`: expected a task definition ARN, `family:revision` or a revision number")]
    BadRevision(String),
}

/// The diagnosis for the error message; its `hint:` lines go to the hint line instead.
fn diag(lines: &[String]) -> String {
    let facts: Vec<&str> = lines
        .iter()
        .map(String::as_str)
        .filter(|l| !l.starts_with("hint: "))
        .collect();
    if facts.is_empty() {
        String::new()
    } else {
        format!("; {}", facts.join("; "))
    }
}

impl Error {
    fn aws(verb: &'static str, object: &str, detail: String, hint: &str) -> Self {
        Error::Aws {
            verb,
            object: object.to_string(),
            detail,
            hint: hint.to_string(),
        }
    }
}

impl crate::Diagnose for Error {
    fn hint(&self) -> String {
        match self {
            Error::Aws { hint, .. } => hint.clone(),
            Error::Image(e) => e.hint(),
            Error::ClusterNotFound(_) => "fix `cluster` (input or environments file), and check `aws-region`".into(),
            Error::ServiceNotFound { .. } => "fix `service` (input or environments file); `aws ecs list-services --cluster CLUSTER` lists them".into(),
            Error::ServiceGone { .. } => "the service was deleted or is being deleted; recreate it (Terraform) and deploy again".into(),
            Error::Controller { .. } => "deploy this service with its controller (CodeDeploy), or switch it to the ECS deployment controller".into(),
            Error::ContainerNotFound { .. } | Error::AmbiguousContainer { .. } => "set `container` (input or environments file) to the container(s) that run the image".into(),
            Error::TaskDefFile { .. } => "give `task-definition` a JSON file as printed by `aws ecs describe-task-definition` or accepted by `register-task-definition`".into(),
            Error::RolloutFailed { diagnosis, .. } | Error::RolledBackByEcs { diagnosis, .. } | Error::Timeout { diagnosis, .. } => {
                diagnosis
                    .iter()
                    .find_map(|l| l.strip_prefix("hint: ").map(str::to_string))
                    .unwrap_or_else(|| "read the service events and the stopped tasks' reasons in the job summary".into())
            }
            Error::Superseded { .. } => "another deploy ran at the same time; use a `concurrency:` group per environment in the workflow".into(),
            Error::RollbackFailed { .. } => "the service may be down: check it in the ECS console and deploy a known-good revision (`command: rollback` with `revision`)".into(),
            Error::NoPreviousRevision { .. } => "give the revision to go back to with `revision` (ARN, `family:revision` or a number)".into(),
            Error::BadRevision(_) => "write `revision` as `arn:aws:ecs:...:task-definition/family:12`, `family:12` or `12`".into(),
        }
    }
}

/// What the preflight found (all read-only): the image, the service, its current task definition, the
/// plan of what will change. Nothing has been changed when this exists.
#[derive(Debug)]
pub struct Prepared {
    /// Whether `apply` adds the extra tags: not when the image arrives through a promotion or an
    /// archive push, whose copy step writes every tag itself.
    add_extra_tags: bool,
    repo: image::Repository,
    image: image::Resolved,
    live_arn: String,
    register_body: Option<Value>,
    update: bool,
    target: wait::Target,
    seen_events: HashSet<String>,
}

/// What `apply` did: enough to roll back and to watch the service afterwards.
#[derive(Debug)]
pub struct Deployed {
    /// A new revision went live (false for `no-change`): only then is there anything to roll back.
    pub changed: bool,
    /// The revision the service ran before.
    pub previous_task_definition: String,
    /// The revision it runs now.
    pub task_definition: String,
    /// Stopped tasks already reported by `service_health`.
    reported_stops: Mutex<HashSet<String>>,
}

/// Service health for the post-deploy watch.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceHealth {
    /// Running tasks.
    pub running: i32,
    /// Desired tasks.
    pub desired: i32,
    /// Tasks of the new revision that stopped since the last call, with their reasons.
    pub new_stopped: Vec<String>,
}

/// Outcome of the backend deploy, for outputs and the summary.
#[derive(Debug, Default, Serialize)]
pub struct BackendReport {
    /// Cluster.
    pub cluster: String,
    /// Service.
    pub service: String,
    /// ECR repository.
    pub repository: String,
    /// The tag found.
    pub image_tag: Option<String>,
    /// `sha256:...`.
    pub image_digest: Option<String>,
    /// `REGISTRY/REPO@sha256:...`.
    pub image_uri: Option<String>,
    /// The revision the service runs after this run (or would, in a plan).
    pub task_definition_arn: Option<String>,
    /// The revision it ran before.
    pub previous_task_definition_arn: Option<String>,
    /// The ECS deployment id (rolling) or service deployment ARN.
    pub deployment_id: Option<String>,
    /// `rolling`, `blue/green`, ...
    pub strategy: String,
    /// What happened, in a few words.
    pub outcome: String,
    /// The plan: task-definition changes and the service update.
    pub plan: Vec<String>,
    /// Extra tags added.
    pub extra_tags: Vec<String>,
    /// Why it failed: stopped tasks, reasons, hints.
    pub diagnosis: Vec<String>,
    /// Service events seen during the watch.
    pub events: Vec<String>,
    /// Rolled back to this revision.
    pub rolled_back_to: Option<String>,
    /// ECS calls made by the rollout watch.
    pub watch_calls: u32,
}

/// `family:revision` of an ARN (the readable part).
fn short(arn: &str) -> &str {
    arn.rsplit_once('/').map(|(_, s)| s).unwrap_or(arn)
}

impl crate::report::section::Section for BackendReport {
    fn outputs(&self, out: &mut Vec<(String, String)>) {
        let mut push = |k: &str, v: &Option<String>| {
            if let Some(v) = v {
                out.push((k.to_string(), v.clone()));
            }
        };
        push("image-uri", &self.image_uri);
        push("image-digest", &self.image_digest);
        push("task-definition-arn", &self.task_definition_arn);
        push(
            "previous-task-definition-arn",
            &self.previous_task_definition_arn,
        );
        push("deployment-id", &self.deployment_id);
    }

    fn summary(&self, md: &mut String) {
        let _ = writeln!(md, "### Backend (ECS)\n\n| | |\n|---|---|");
        let _ = writeln!(
            md,
            "| cluster / service | `{}` / `{}` |",
            md_escape(&self.cluster),
            md_escape(&self.service)
        );
        if let Some(d) = &self.image_digest {
            let _ = writeln!(
                md,
                "| image | `{}:{}` `{}` |",
                md_escape(&self.repository),
                md_escape(self.image_tag.as_deref().unwrap_or("-")),
                md_escape(d)
            );
        }
        let old = self
            .previous_task_definition_arn
            .as_deref()
            .map(short)
            .unwrap_or("-");
        let new = self
            .task_definition_arn
            .as_deref()
            .map(short)
            .unwrap_or("-");
        let _ = writeln!(
            md,
            "| revision | `{}` -> `{}` |",
            md_escape(old),
            md_escape(new)
        );
        if let Some(d) = &self.deployment_id {
            let _ = writeln!(md, "| deployment | `{}` |", md_escape(d));
        }
        if !self.strategy.is_empty() {
            let _ = writeln!(md, "| strategy | {} |", md_escape(&self.strategy));
        }
        if !self.extra_tags.is_empty() {
            let _ = writeln!(
                md,
                "| extra tags | {} |",
                md_escape(&self.extra_tags.join(", "))
            );
        }
        if let Some(r) = &self.rolled_back_to {
            let _ = writeln!(md, "| rolled back to | `{}` |", md_escape(short(r)));
        }
        let _ = writeln!(md, "| outcome | {} |\n", md_escape(&self.outcome));
        if !self.plan.is_empty() {
            let _ = writeln!(md, "#### Plan\n\n```diff");
            for l in &self.plan {
                let _ = writeln!(md, "{}", l.replace("```", "'''"));
            }
            let _ = writeln!(md, "```\n");
        }
        if !self.diagnosis.is_empty() {
            let _ = writeln!(md, "#### Diagnosis\n");
            for l in &self.diagnosis {
                let _ = writeln!(md, "- {}", md_escape(l));
            }
            md.push('\n');
        }
        if !self.events.is_empty() {
            let _ = writeln!(
                md,
                "<details><summary>Service events ({})</summary>\n",
                self.events.len()
            );
            for e in self.events.iter().rev().take(20) {
                let _ = writeln!(md, "- {}", md_escape(e));
            }
            let _ = writeln!(md, "\n</details>\n");
        }
    }
}

fn backend(report: &mut Report) -> &mut BackendReport {
    report.backend.get_or_insert_with(BackendReport::default)
}

// ---------------------------------------------------------------- the service

async fn describe_service(
    ecs: &aws_sdk_ecs::Client,
    cluster: &str,
    service: &str,
) -> Result<aws_sdk_ecs::types::Service, Error> {
    let out = ecs
        .describe_services()
        .cluster(cluster)
        .services(service)
        .send()
        .await
        .map_err(|e| {
            if e.as_service_error()
                .is_some_and(|s| s.is_cluster_not_found_exception())
            {
                Error::ClusterNotFound(cluster.to_string())
            } else {
                Error::aws(
                    "describe service",
                    service,
                    crate::aws::describe(&e),
                    "check that the role may call `ecs:DescribeServices`",
                )
            }
        })?;
    match out.services().first() {
        Some(s) if s.status() == Some("ACTIVE") => Ok(s.clone()),
        Some(_) => Err(Error::ServiceGone {
            cluster: cluster.into(),
            service: service.into(),
        }),
        None => Err(Error::ServiceNotFound {
            cluster: cluster.into(),
            service: service.into(),
        }),
    }
}

fn target_of(
    svc: &aws_sdk_ecs::types::Service,
    cfg: &Config,
    td: &str,
) -> Result<wait::Target, Error> {
    if let Some(t) = svc.deployment_controller().map(|c| c.r#type()) {
        if *t != DeploymentControllerType::Ecs {
            return Err(Error::Controller {
                service: cfg.backend.service.clone(),
                controller: t.as_str().to_string(),
            });
        }
    }
    let dc = svc.deployment_configuration();
    let strategy = dc.and_then(|d| d.strategy());
    Ok(wait::Target {
        cluster: cfg.backend.cluster.clone(),
        service: cfg.backend.service.clone(),
        task_definition: td.to_string(),
        deployment_id: None,
        service_deployments: strategy.is_some_and(|s| *s != DeploymentStrategy::Rolling),
        cb_rollback: dc
            .and_then(|d| d.deployment_circuit_breaker())
            .is_some_and(|c| c.enable() && c.rollback()),
    })
}

fn strategy_name(t: &wait::Target) -> String {
    if t.service_deployments {
        "blue/green (service deployments)".into()
    } else if t.cb_rollback {
        "rolling (circuit breaker with rollback)".into()
    } else {
        "rolling".into()
    }
}

// ---------------------------------------------------------------- prepare

/// Preflight, read-only. `expected_digest`: for `promote` (and archives), the digest that will be in the
/// target repository once copied; the target repository is then not asked for the tag.
pub async fn prepare(
    clients: &Clients,
    cfg: &Config,
    expected_digest: Option<&str>,
    report: &mut Report,
) -> Result<Prepared, Error> {
    let started = Instant::now();
    let _group = commands::group("Backend preflight");
    let b = &cfg.backend;
    {
        let r = backend(report);
        r.cluster = b.cluster.clone();
        r.service = b.service.clone();
        r.repository = b.repository.clone();
        r.outcome = "preflight".into();
    }
    let result = prepare_inner(clients, cfg, expected_digest, report).await;
    report.phase(
        "backend preflight",
        started,
        crate::report::section::Outcome::of(&result),
    );
    if let Err(e) = &result {
        backend(report).outcome = format!("preflight failed: {e}");
    }
    result
}

async fn prepare_inner(
    clients: &Clients,
    cfg: &Config,
    expected_digest: Option<&str>,
    report: &mut Report,
) -> Result<Prepared, Error> {
    let b = &cfg.backend;
    let repo = image::repository(&clients.ecr, &b.repository).await?;
    let img = image::resolve(&clients.ecr, &repo, b.image_tag.as_deref(), expected_digest).await?;
    tracing::info!(
        "image: {} ({})",
        img.uri,
        img.tag.as_deref().unwrap_or("given digest")
    );
    {
        let r = backend(report);
        r.image_tag = img.tag.clone().or_else(|| b.image_tag.clone());
        r.image_digest = Some(img.digest.clone());
        r.image_uri = Some(img.uri.clone());
    }
    if expected_digest.is_none() {
        image::check_tags_free(&clients.ecr, &repo, &img.digest, &b.extra_tags).await?;
    }

    let svc = describe_service(&clients.ecs, &b.cluster, &b.service).await?;
    let live_arn = svc.task_definition().unwrap_or_default().to_string();
    let target = target_of(&svc, cfg, &live_arn)?;
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
    let seen_events = svc
        .events()
        .iter()
        .filter_map(|e| e.id().map(str::to_string))
        .collect();
    {
        let r = backend(report);
        r.previous_task_definition_arn = Some(live_arn.clone());
        r.strategy = strategy_name(&target);
        r.plan = plan;
        r.outcome = if cfg.dry_run {
            "planned (dry run)".into()
        } else {
            "preflight ok".into()
        };
        if !update {
            r.task_definition_arn = Some(live_arn.clone());
        }
    }
    Ok(Prepared {
        add_extra_tags: expected_digest.is_none(),
        repo,
        image: img,
        live_arn,
        register_body: register.then(|| task_def::register_body(&rendered, tags)),
        update,
        target,
        seen_events,
    })
}

// ---------------------------------------------------------------- apply

async fn update_service(
    ecs: &aws_sdk_ecs::Client,
    cfg: &Config,
    td: &str,
    desired: Option<i32>,
    force: bool,
) -> Result<Option<String>, Error> {
    let out = ecs
        .update_service()
        .cluster(&cfg.backend.cluster)
        .service(&cfg.backend.service)
        .task_definition(td)
        .set_desired_count(desired)
        .force_new_deployment(force)
        .send()
        .await
        .map_err(|e| {
            Error::aws(
                "update service",
                &cfg.backend.service,
                crate::aws::describe(&e),
                "check that the role may call `ecs:UpdateService` and `iam:PassRole` on the task roles",
            )
        })?;
    Ok(out
        .service()
        .and_then(|s| {
            s.deployments()
                .iter()
                .find(|d| d.status() == Some("PRIMARY") && d.task_definition() == Some(td))
        })
        .and_then(|d| d.id())
        .map(str::to_string))
}

/// Why a watch did not succeed (before any rollback).
enum Failure {
    Failed(String),
    ByEcs(String),
    Timeout,
    Superseded(String),
}

/// Watch a rollout to `target.task_definition`; `Ok(())` when it completed.
async fn watch_rollout(
    clients: &Clients,
    cfg: &Config,
    target: wait::Target,
    seen: HashSet<String>,
    report: &mut Report,
    phase: &str,
) -> Result<Result<(), Failure>, Error> {
    let started = Instant::now();
    let _group = commands::group(&format!("Rollout of {}", short(&target.task_definition)));
    let mut probe = wait::EcsProbe::new(&clients.ecs, target, seen);
    let res = wait::watch(
        &mut probe,
        cfg.backend.poll_interval,
        cfg.backend.wait_timeout,
    )
    .await;
    let r = backend(report);
    r.events.append(&mut probe.events);
    if let (None, Some(arn)) = (&r.deployment_id, probe.service_deployment_arn()) {
        r.deployment_id = Some(arn.to_string());
    }
    let watched = match res {
        Ok(w) => w,
        Err(e) => {
            report.phase(phase, started, crate::report::section::Outcome::Failed);
            return Err(e);
        }
    };
    r.watch_calls += watched.calls;
    let outcome = match watched.outcome {
        Some(wait::Verdict::Completed) => Ok(()),
        Some(wait::Verdict::Failed(s)) => Err(Failure::Failed(s)),
        Some(wait::Verdict::RolledBackByEcs(s)) => Err(Failure::ByEcs(s)),
        Some(wait::Verdict::Superseded(s)) => Err(Failure::Superseded(s)),
        Some(wait::Verdict::Pending { .. }) | None => Err(Failure::Timeout),
    };
    report.phase(
        phase,
        started,
        crate::report::section::Outcome::of(&outcome),
    );
    Ok(outcome)
}

/// Apply the plan: extra tags, register the revision, update the service, wait; on a failed rollout roll
/// back (when enabled). Sets `report.status` (`deployed`, `no-change`, `rolled-back`).
pub async fn apply(
    clients: &Clients,
    cfg: &Config,
    prepared: Prepared,
    report: &mut Report,
) -> Result<Deployed, Error> {
    let b = &cfg.backend;
    let started = Instant::now();
    let group = commands::group("Backend deploy");
    let no_tags: &[String] = &[];
    let extra_tags = if prepared.add_extra_tags {
        &b.extra_tags[..]
    } else {
        no_tags
    };
    let tagged = image::add_tags(
        &clients.ecr,
        &prepared.repo,
        &prepared.image.digest,
        extra_tags,
    )
    .await;
    match tagged {
        Ok(lines) => {
            for l in &lines {
                tracing::info!("extra tag {l}");
            }
            backend(report).extra_tags = lines;
        }
        Err(e) => {
            backend(report).outcome = "failed to add extra tags".into();
            return Err(e.into());
        }
    }
    if !prepared.update {
        tracing::info!("no change: the service already runs this image");
        report.status = Some(Status::NoChange);
        backend(report).outcome = "no change".into();
        report.phase(
            "backend deploy",
            started,
            crate::report::section::Outcome::NoChange,
        );
        return Ok(Deployed {
            changed: false,
            previous_task_definition: prepared.live_arn.clone(),
            task_definition: prepared.live_arn,
            reported_stops: Mutex::default(),
        });
    }
    let new_arn = match &prepared.register_body {
        Some(body) => {
            let arn = task_def::register(&clients.ecs, body).await?;
            tracing::info!("registered {arn}");
            arn
        }
        None => prepared.live_arn.clone(),
    };
    backend(report).task_definition_arn = Some(new_arn.clone());
    let changed = new_arn != prepared.live_arn;
    let deployment_id = update_service(
        &clients.ecs,
        cfg,
        &new_arn,
        b.desired_count,
        b.force_new_deployment,
    )
    .await?;
    tracing::info!(
        "updated service {} to {} (deployment {})",
        b.service,
        short(&new_arn),
        deployment_id.as_deref().unwrap_or("?")
    );
    backend(report).deployment_id = deployment_id.clone();
    report.phase(
        "register and update",
        started,
        crate::report::section::Outcome::Ok,
    );
    group.end();
    let deployed = Deployed {
        changed,
        previous_task_definition: prepared.live_arn.clone(),
        task_definition: new_arn.clone(),
        reported_stops: Mutex::default(),
    };
    if b.wait_timeout.is_zero() {
        tracing::info!("`wait-timeout: 0`: not waiting for the rollout");
        report.status = Some(Status::Deployed);
        backend(report).outcome = "deployed (rollout not watched)".into();
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
        report,
        "rollout",
    )
    .await?
    {
        Ok(()) => {
            report.status = Some(Status::Deployed);
            backend(report).outcome = "deployed".into();
            return Ok(deployed);
        }
        Err(f) => f,
    };
    let diagnosis = wait::diagnose(&clients.ecs, &b.cluster, &b.service, &new_arn).await;
    for l in &diagnosis {
        tracing::error!("{l}");
    }
    backend(report).diagnosis = diagnosis.clone();
    let err = match failure {
        Failure::ByEcs(reason) => {
            backend(report).outcome = "failed; ECS rolled back".into();
            backend(report).rolled_back_to = Some(prepared.live_arn.clone());
            report.status = Some(Status::RolledBack);
            return Err(Error::RolledBackByEcs {
                service: b.service.clone(),
                task_definition: short(&new_arn).to_string(),
                reason,
                diagnosis,
            });
        }
        Failure::Superseded(reason) => {
            backend(report).outcome = "superseded by another deployment".into();
            return Err(Error::Superseded {
                service: b.service.clone(),
                reason,
            });
        }
        Failure::Failed(reason) => Error::RolloutFailed {
            service: b.service.clone(),
            task_definition: short(&new_arn).to_string(),
            reason,
            diagnosis,
        },
        Failure::Timeout => Error::Timeout {
            service: b.service.clone(),
            task_definition: short(&new_arn).to_string(),
            after: b.wait_timeout,
            diagnosis,
        },
    };
    if b.rollback_on_failure && changed {
        let cause = err.to_string();
        roll_back_to(
            clients,
            cfg,
            &prepared.live_arn,
            &prepared.target,
            &cause,
            report,
        )
        .await?;
        report.status = Some(Status::RolledBack);
        backend(report).outcome = "failed; rolled back".into();
    } else {
        backend(report).outcome = "failed".into();
    }
    Err(err)
}

/// Point the service at `to`, watch that rollout; an error when it does not complete.
async fn roll_back_to(
    clients: &Clients,
    cfg: &Config,
    to: &str,
    target: &wait::Target,
    cause: &str,
    report: &mut Report,
) -> Result<(), Error> {
    let b = &cfg.backend;
    let started = Instant::now();
    tracing::warn!("rolling back `{}` to {} ({cause})", b.service, short(to));
    let failed = |reason: String| Error::RollbackFailed {
        service: b.service.clone(),
        target: short(to).to_string(),
        cause: cause.chars().take(300).collect(),
        reason,
    };
    let seen = describe_service(&clients.ecs, &b.cluster, &b.service)
        .await?
        .events()
        .iter()
        .filter_map(|e| e.id().map(str::to_string))
        .collect();
    let id = update_service(&clients.ecs, cfg, to, None, false)
        .await
        .map_err(|e| failed(e.to_string()))?;
    report.phase(
        "rollback update",
        started,
        crate::report::section::Outcome::Ok,
    );
    backend(report).rolled_back_to = Some(to.to_string());
    if b.wait_timeout.is_zero() {
        return Ok(());
    }
    let mut t = target.clone();
    t.task_definition = to.to_string();
    t.deployment_id = id;
    match watch_rollout(clients, cfg, t, seen, report, "rollback rollout").await? {
        Ok(()) => {
            tracing::info!("rolled back to {}", short(to));
            Ok(())
        }
        Err(Failure::Timeout) => Err(failed(format!(
            "did not finish within {}",
            humantime::format_duration(b.wait_timeout)
        ))),
        Err(Failure::Failed(s) | Failure::ByEcs(s) | Failure::Superseded(s)) => Err(failed(s)),
    }
}

/// Roll the service back to the revision it ran before `deployed` (after failed smoke tests or watch).
pub async fn rollback(
    clients: &Clients,
    cfg: &Config,
    deployed: &Deployed,
    reason: &str,
    report: &mut Report,
) -> Result<(), Error> {
    let _group = commands::group("Backend rollback");
    let svc = describe_service(&clients.ecs, &cfg.backend.cluster, &cfg.backend.service).await?;
    let target = target_of(&svc, cfg, &deployed.previous_task_definition)?;
    roll_back_to(
        clients,
        cfg,
        &deployed.previous_task_definition,
        &target,
        reason,
        report,
    )
    .await?;
    backend(report).outcome = format!("rolled back: {reason}");
    Ok(())
}

// ---------------------------------------------------------------- command: rollback

/// A `revision` input resolved against the current ARN: a full ARN, `family:rev`, or a number.
pub fn revision_ref(revision: &str, current_arn: &str) -> Result<String, Error> {
    let r = revision.trim();
    if r.starts_with("arn:") && r.contains(":task-definition/") {
        return Ok(r.to_string());
    }
    if let Ok(n) = r.parse::<u32>() {
        let family = short(current_arn)
            .rsplit_once(':')
            .map(|(f, _)| f)
            .unwrap_or("");
        if n == 0 || family.is_empty() {
            return Err(Error::BadRevision(r.to_string()));
        }
        return Ok(format!("{family}:{n}"));
    }
    match r.rsplit_once(':') {
        Some((f, n))
            if !f.is_empty()
                && n.parse::<u32>().is_ok_and(|n| n > 0)
                && !f.contains(['/', ' ']) =>
        {
            Ok(r.to_string())
        }
        _ => Err(Error::BadRevision(r.to_string())),
    }
}

fn revision_number(arn: &str) -> Option<u32> {
    short(arn)
        .rsplit_once(':')
        .and_then(|(_, n)| n.parse().ok())
}

async fn previous_revision(ecs: &aws_sdk_ecs::Client, current: &str) -> Result<String, Error> {
    let (family, cur) = match short(current).rsplit_once(':') {
        Some((f, n)) => (f.to_string(), n.parse::<u32>().unwrap_or(0)),
        None => (short(current).to_string(), 0),
    };
    let mut token: Option<String> = None;
    for _ in 0..20 {
        let out = ecs
            .list_task_definitions()
            .family_prefix(&family)
            .status(aws_sdk_ecs::types::TaskDefinitionStatus::Active)
            .sort(SortOrder::Desc)
            .set_next_token(token.take())
            .send()
            .await
            .map_err(|e| {
                Error::aws(
                    "list task definitions",
                    &family,
                    crate::aws::describe(&e),
                    "check that the role may call `ecs:ListTaskDefinitions`",
                )
            })?;
        let found = out.task_definition_arns().iter().find(|a| {
            short(a).rsplit_once(':').map(|(f, _)| f) == Some(family.as_str())
                && revision_number(a).is_some_and(|n| n < cur)
        });
        if let Some(a) = found {
            return Ok(a.clone());
        }
        match out.next_token() {
            Some(t) => token = Some(t.to_string()),
            None => break,
        }
    }
    Err(Error::NoPreviousRevision {
        family,
        current: short(current).to_string(),
    })
}

/// `command: rollback`: go back to the previous (or the given) revision and watch it.
pub async fn rollback_command(
    clients: &Clients,
    cfg: &Config,
    report: &mut Report,
) -> Result<(), Error> {
    let started = Instant::now();
    let b = &cfg.backend;
    {
        let r = backend(report);
        r.cluster = b.cluster.clone();
        r.service = b.service.clone();
        r.repository = b.repository.clone();
    }
    let group = commands::group("Rollback preflight");
    let svc = describe_service(&clients.ecs, &b.cluster, &b.service).await?;
    let current = svc.task_definition().unwrap_or_default().to_string();
    backend(report).previous_task_definition_arn = Some(current.clone());
    let wanted = match &b.revision {
        Some(r) => revision_ref(r, &current)?,
        None => previous_revision(&clients.ecs, &current).await?,
    };
    // Resolve to a full ARN (and prove it exists) before changing anything.
    let to = task_def::describe(&clients.ecs, &wanted)
        .await?
        .arn()
        .to_string();
    let target = target_of(&svc, cfg, &to)?;
    backend(report).strategy = strategy_name(&target);
    backend(report).task_definition_arn = Some(to.clone());
    let plan = format!(
        "update service `{}` in `{}` (taskDefinition: {} -> {})",
        b.service,
        b.cluster,
        short(&current),
        short(&to)
    );
    tracing::info!("plan: {plan}");
    backend(report).plan = vec![plan];
    report.phase(
        "rollback preflight",
        started,
        crate::report::section::Outcome::Ok,
    );
    group.end();
    if to == current {
        tracing::info!("the service already runs {}", short(&to));
        report.status = Some(Status::NoChange);
        backend(report).outcome = "no change".into();
        return Ok(());
    }
    if cfg.dry_run {
        report.status = Some(Status::Planned);
        backend(report).outcome = "planned (dry run)".into();
        return Ok(());
    }
    let _group = commands::group("Rollback");
    roll_back_to(clients, cfg, &to, &target, "`command: rollback`", report).await?;
    report.status = Some(Status::RolledBack);
    backend(report).outcome = "rolled back".into();
    Ok(())
}

// ---------------------------------------------------------------- health

/// Read the service for the post-deploy watch.
pub async fn service_health(
    clients: &Clients,
    cfg: &Config,
    deployed: &Deployed,
) -> Result<ServiceHealth, Error> {
    let b = &cfg.backend;
    let svc = describe_service(&clients.ecs, &b.cluster, &b.service).await?;
    let list = clients
        .ecs
        .list_tasks()
        .cluster(&b.cluster)
        .service_name(&b.service)
        .desired_status(DesiredStatus::Stopped)
        .send()
        .await
        .map_err(|e| {
            Error::aws(
                "list tasks",
                &b.service,
                crate::aws::describe(&e),
                "check that the role may call `ecs:ListTasks`",
            )
        })?;
    let fresh: Vec<String> = {
        let seen = deployed
            .reported_stops
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default();
        list.task_arns()
            .iter()
            .filter(|a| !seen.contains(*a))
            .take(100)
            .cloned()
            .collect()
    };
    let mut new_stopped = Vec::new();
    if !fresh.is_empty() {
        let out = clients
            .ecs
            .describe_tasks()
            .cluster(&b.cluster)
            .set_tasks(Some(fresh.clone()))
            .send()
            .await
            .map_err(|e| {
                Error::aws(
                    "describe tasks",
                    &b.service,
                    crate::aws::describe(&e),
                    "check that the role may call `ecs:DescribeTasks`",
                )
            })?;
        for t in out.tasks() {
            if t.task_definition_arn() == Some(deployed.task_definition.as_str()) {
                new_stopped.push(t.stopped_reason().unwrap_or("no reason given").to_string());
            }
        }
        if let Ok(mut seen) = deployed.reported_stops.lock() {
            seen.extend(fresh);
        }
    }
    Ok(ServiceHealth {
        running: svc.running_count(),
        desired: svc.desired_count(),
        new_stopped,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::section::Section;

    const CUR: &str = "arn:aws:ecs:us-east-1:123456789012:task-definition/cloudshop-backend:7";

    #[test]
    fn revisions() {
        assert_eq!(revision_ref("5", CUR).unwrap(), "cloudshop-backend:5");
        assert_eq!(revision_ref("other:3", CUR).unwrap(), "other:3");
        assert_eq!(revision_ref(CUR, CUR).unwrap(), CUR);
        for bad in ["0", "x", "a:b", ":3", "a b:1"] {
            assert!(revision_ref(bad, CUR).is_err(), "{bad}");
        }
        assert_eq!(revision_number(CUR), Some(7));
    }

    #[test]
    fn outputs_and_summary() {
        let r = BackendReport {
            cluster: "c".into(),
            service: "s".into(),
            repository: "repo".into(),
            image_tag: Some("abc".into()),
            image_digest: Some("sha256:1".into()),
            image_uri: Some("r/repo@sha256:1".into()),
            task_definition_arn: Some(CUR.replace(":7", ":8")),
            previous_task_definition_arn: Some(CUR.into()),
            deployment_id: Some("ecs-svc/1".into()),
            outcome: "failed; rolled back".into(),
            diagnosis: vec!["stopped task: CannotPullContainerError".into()],
            ..BackendReport::default()
        };
        let mut out = Vec::new();
        r.outputs(&mut out);
        let names: Vec<&str> = out.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            names,
            [
                "image-uri",
                "image-digest",
                "task-definition-arn",
                "previous-task-definition-arn",
                "deployment-id"
            ]
        );
        let mut md = String::new();
        r.summary(&mut md);
        assert!(
            md.contains("| revision | `cloudshop-backend:7` -> `cloudshop-backend:8` |"),
            "{md}"
        );
        assert!(
            md.contains("#### Diagnosis\n\n- stopped task: CannotPullContainerError"),
            "{md}"
        );
    }
}
