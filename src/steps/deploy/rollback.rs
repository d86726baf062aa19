//! Going back to an earlier revision: after a failed rollout or failed checks (to the revision the
//! service ran before), and as `command: rollback` (to the previous or a given revision).
//!
//! `command: rollback` goes to a revision chosen by the caller (`crate::steps::release` picks the newest
//! verified release) or given as `revision`.
//!
//! APIs: ECS `DescribeServices`, `UpdateService`, `DescribeTaskDefinition`, `ListServiceDeployments`,
//! `DescribeServiceRevisions`, and the rollout wait's calls (see `rollout`).

use aws_sdk_ecs::types::Service;
use serde_json::Value;
use tokio::time::Instant;

use super::error::Error;
use super::report::{short, BackendOutcome, BackendReport};
use super::rollout::probe::Target;
use super::rollout::{self, Failure};
use super::service::{self, Deployed};
use super::task_def;
use crate::config::Config;
use crate::github::commands;
use crate::report::section::{Outcome, Timeline};
use crate::steps::Clients;

/// Point the service at `to`, watch that rollout; an error when it does not complete. Only when the
/// service still runs `from` (this run's revision): otherwise another deploy changed it, and nothing is
/// changed.
#[allow(clippy::too_many_arguments)]
pub(super) async fn roll_back_to(
    clients: &Clients,
    cfg: &Config,
    from: &str,
    to: &str,
    target: &Target,
    cause: &str,
    section: &mut BackendReport,
    timeline: &mut Timeline,
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
    let svc = still_ours(clients, cfg, from).await?;
    let seen = service::event_ids(&svc);
    let previous_sd = svc.current_service_deployment().map(str::to_string);
    let interrupted = |section: &mut BackendReport, at: String| interrupted(section, cfg, to, at);
    if crate::interrupt::stop_requested() {
        let at = format!(
            "before `UpdateService`: the service still runs `{}`",
            short(from)
        );
        return Err(interrupted(section, at));
    }
    let id = service::update(&clients.ecs, cfg, to, None, false)
        .await
        .map_err(|e| failed(e.to_string()))?;
    timeline.record("rollback update", started, Outcome::Ok);
    section.rolled_back_to = Some(to.to_string());
    let sent = format!(
        "after `UpdateService` to `{}` was sent: ECS carries the rollback on",
        short(to)
    );
    if crate::interrupt::stop_requested() {
        return Err(interrupted(section, sent));
    }
    if b.wait_timeout.is_zero() {
        return Ok(());
    }
    let mut t = target.clone();
    t.task_definition = to.to_string();
    t.deployment_id = id;
    t.previous_service_deployment = previous_sd;
    // A signal stops the wait (read-only) at once; the update above is what mattered.
    let mut continue_all = rollout::ContinueAll(&clients.ecs);
    let waited = tokio::select! {
        w = rollout::wait(
            clients,
            cfg,
            t,
            seen,
            section,
            timeline,
            "rollback rollout",
            &mut continue_all,
        ) => Some(w),
        () = crate::interrupt::stop() => None,
    };
    let Some(waited) = waited else {
        return Err(interrupted(section, sent));
    };
    match waited? {
        Ok(()) => {
            tracing::info!("rolled back to {}", short(to));
            Ok(())
        }
        Err(f) => Err(failed(why_not(f, b.wait_timeout))),
    }
}

/// Why the rollback's rollout did not complete, in words.
fn why_not(failure: Failure, wait_timeout: std::time::Duration) -> String {
    match failure {
        Failure::Timeout => format!(
            "did not finish within {}",
            humantime::format_duration(wait_timeout)
        ),
        Failure::Failed(s)
        | Failure::ByEcs(s)
        | Failure::Superseded(s)
        | Failure::EcsRollbackFailed(s) => s,
        Failure::Rejected { why, .. } => why,
    }
}

/// A signal stopped the rollback to `to` at `at`: the section says where, and how to finish it.
fn interrupted(section: &mut BackendReport, cfg: &Config, to: &str, at: String) -> Error {
    section.rollback_interrupted = Some(format!(
        "rollback interrupted {at}; finish it with `command: rollback` (revision `{}`)",
        short(to)
    ));
    Error::RollbackInterrupted {
        service: cfg.backend.service.clone(),
        target: short(to).to_string(),
    }
}

/// The service, when it still runs `from` (this run's revision); else another deploy changed it.
async fn still_ours(clients: &Clients, cfg: &Config, from: &str) -> Result<Service, Error> {
    let b = &cfg.backend;
    let svc = service::describe(&clients.ecs, &b.cluster, &b.service).await?;
    let runs = svc.task_definition().unwrap_or_default();
    if runs != from {
        return Err(Error::NotOurs {
            service: b.service.clone(),
            runs: short(runs).to_string(),
            expected: short(from).to_string(),
        });
    }
    Ok(svc)
}

/// Roll the service back to the revision it ran before `deployed` (after failed smoke tests or watch).
pub async fn rollback(
    clients: &Clients,
    cfg: &Config,
    deployed: &Deployed,
    reason: &str,
    section: &mut BackendReport,
    timeline: &mut Timeline,
) -> Result<(), Error> {
    let _group = commands::group("Backend rollback");
    let svc = service::describe(&clients.ecs, &cfg.backend.cluster, &cfg.backend.service).await?;
    let target = service::target_of(&svc, cfg, &deployed.previous_task_definition)?;
    roll_back_to(
        clients,
        cfg,
        &deployed.task_definition,
        &deployed.previous_task_definition,
        &target,
        reason,
        section,
        timeline,
    )
    .await?;
    section.outcome = BackendOutcome::RolledBackAfter(reason.to_string());
    Ok(())
}

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

/// What the service runs now: its revision and the image digests of that revision's containers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Running {
    pub task_definition: String,
    /// `sha256:...` of every container image given by digest.
    pub digests: Vec<String>,
}

/// The service's current revision and its image digests (read-only: `DescribeServices`,
/// `DescribeTaskDefinition`).
pub async fn running(clients: &Clients, cfg: &Config) -> Result<Running, Error> {
    let b = &cfg.backend;
    let svc = service::describe(&clients.ecs, &b.cluster, &b.service).await?;
    let current = svc.task_definition().unwrap_or_default().to_string();
    let live = task_def::describe(&clients.ecs, &current).await?;
    let digests = live
        .definition
        .get("containerDefinitions")
        .and_then(|c| c.as_array())
        .into_iter()
        .flatten()
        .filter_map(|c| c.get("image").and_then(|i| i.as_str()))
        .filter_map(|i| i.rsplit_once('@').map(|(_, d)| d.to_string()))
        .collect();
    Ok(Running {
        task_definition: current,
        digests,
    })
}

/// Where `command: rollback` goes when no `revision` is given, decided without changing anything.
#[derive(Debug, Clone, PartialEq)]
pub enum RollbackTo {
    /// An existing revision (ARN or `family:revision`).
    Revision(String),
    /// The release's revision was deregistered: this body (rendered from `template`, the revision the
    /// service ran when it was read, with the image swapped to `image`) is registered only after the
    /// rollback's preflight passed.
    Render {
        body: Value,
        template: String,
        image: String,
    },
}

/// Where to run `digest` again, read-only: `recorded` when ECS still has it ACTIVE, else (the revision was
/// deregistered) a new revision to render from the live one with the image swapped to
/// `REPOSITORY_URI@digest` (registered by [`rollback_command`] after its preflight). Refused when the
/// repository no longer has `digest`.
pub async fn revision_for(
    clients: &Clients,
    cfg: &Config,
    recorded: Option<&str>,
    digest: &str,
) -> Result<RollbackTo, Error> {
    let b = &cfg.backend;
    let repo = crate::steps::image::repository(&clients.ecr, &b.repository).await?;
    if !crate::steps::image::has_digest(&clients.ecr, &repo, digest).await? {
        return Err(Error::DigestGone {
            repository: repo.name.clone(),
            digest: digest.to_string(),
        });
    }
    if let Some(r) = recorded {
        match task_def::describe(&clients.ecs, r).await {
            Ok(live)
                if live.definition.get("status").and_then(|s| s.as_str()) == Some("ACTIVE") =>
            {
                return Ok(RollbackTo::Revision(live.arn().to_string()))
            }
            _ => tracing::warn!(
                "the revision {} that ran {digest} is gone: a new one will be rendered for that digest",
                short(r)
            ),
        }
    }
    let svc = service::describe(&clients.ecs, &b.cluster, &b.service).await?;
    let current = svc.task_definition().unwrap_or_default().to_string();
    let live = task_def::describe(&clients.ecs, &current).await?;
    let containers =
        task_def::choose_containers(&live.definition, &b.containers).map_err(|e| match e {
            task_def::SwapError::Unknown { name, available } => Error::ContainerNotFound {
                name,
                task_definition: short(&current).to_string(),
                available,
            },
            task_def::SwapError::Ambiguous(available) => Error::AmbiguousContainer {
                task_definition: short(&current).to_string(),
                available,
            },
        })?;
    let image = format!("{}@{digest}", repo.uri);
    let mut rendered = task_def::strip(&live.definition);
    task_def::swap_images(&mut rendered, &containers, &image);
    Ok(RollbackTo::Render {
        body: task_def::register_body(&rendered, &live.tags),
        template: live.arn().to_string(),
        image,
    })
}

/// Deployments of the service's history read at most when looking for the last completed one.
const MAX_DEPLOYMENTS: usize = 20;

/// The revision of the newest SUCCESSFUL service deployment whose revision is not `current`; `None` when
/// ECS keeps none. APIs: `ListServiceDeployments`, `DescribeServiceRevisions`.
pub async fn last_completed_revision(
    clients: &Clients,
    cfg: &Config,
    current: &str,
) -> Result<Option<String>, Error> {
    use aws_sdk_ecs::types::ServiceDeploymentStatus;
    let b = &cfg.backend;
    let aws = |verb: &'static str, action: &'static str| {
        move |e: String| Error::aws(verb, &b.service, e, action)
    };
    let list = clients
        .ecs
        .list_service_deployments()
        .cluster(&b.cluster)
        .service(&b.service)
        .status(ServiceDeploymentStatus::Successful)
        .max_results(MAX_DEPLOYMENTS as i32)
        .send()
        .await
        .map_err(|e| crate::aws::describe(&e))
        .map_err(aws(
            "list service deployments of",
            "check that the role may call `ecs:ListServiceDeployments`",
        ))?;
    let mut brief: Vec<_> = list.service_deployments().to_vec();
    // Newest first, whatever order ECS answers in.
    brief.sort_by(|a, b| {
        b.created_at()
            .map(|t| t.as_secs_f64())
            .partial_cmp(&a.created_at().map(|t| t.as_secs_f64()))
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    for d in brief.iter().take(MAX_DEPLOYMENTS) {
        let Some(arn) = d.service_deployment_arn() else {
            continue;
        };
        let Some(revision) = d.target_service_revision_arn() else {
            continue;
        };
        let out = clients
            .ecs
            .describe_service_revisions()
            .service_revision_arns(revision)
            .send()
            .await
            .map_err(|e| crate::aws::describe(&e))
            .map_err(aws(
                "describe the service revision of",
                "check that the role may call `ecs:DescribeServiceRevisions`",
            ))?;
        let td = out
            .service_revisions()
            .first()
            .and_then(|r| r.task_definition())
            .map(str::to_string);
        match td {
            Some(td) if td != current => {
                tracing::info!(
                    "last completed deployment before the current one: {arn} ({})",
                    short(&td)
                );
                return Ok(Some(td));
            }
            _ => continue,
        }
    }
    Ok(None)
}

/// `command: rollback`: go back to the given `revision`, else to `default_to` (the release chosen by the
/// caller: the newest verified one, or the last completed deployment), and watch it. Every check comes
/// first; a revision to render is registered only then, just before the service update. The section's
/// outcome says `no change`, `planned (dry run)` or `rolled back`.
pub async fn rollback_command(
    clients: &Clients,
    cfg: &Config,
    default_to: Option<RollbackTo>,
    section: &mut BackendReport,
    timeline: &mut Timeline,
) -> Result<(), Error> {
    let started = Instant::now();
    let b = &cfg.backend;
    section.cluster = b.cluster.clone();
    section.service = b.service.clone();
    section.repository = b.repository.clone();
    let group = commands::group("Rollback preflight");
    let svc = service::describe(&clients.ecs, &b.cluster, &b.service).await?;
    let current = svc.task_definition().unwrap_or_default().to_string();
    section.previous_task_definition_arn = Some(current.clone());
    let dest = destination(clients, cfg, default_to, &current).await?;
    let to = dest.as_ref().ok().cloned();
    let target = service::target_of(&svc, cfg, to.as_deref().unwrap_or_default())?;
    section.strategy = Some(target.strategy);
    section.task_definition_arn = to.clone();
    let plan = rollback_plan(cfg, &current, to.as_deref(), &dest);
    for p in &plan {
        tracing::info!("plan: {p}");
    }
    section.plan = plan;
    timeline.record("rollback preflight", started, Outcome::Ok);
    group.end();
    if to.as_deref() == Some(current.as_str()) {
        tracing::info!("the service already runs {}", short(&current));
        section.outcome = BackendOutcome::NoChange;
        return Ok(());
    }
    if cfg.dry_run {
        section.outcome = BackendOutcome::Planned;
        return Ok(());
    }
    let _group = commands::group("Rollback");
    let to = match dest {
        Ok(to) => to,
        Err((body, image)) => {
            let arn = task_def::register(&clients.ecs, &body).await?;
            tracing::info!("registered {arn} for {image}");
            section.task_definition_arn = Some(arn.clone());
            arn
        }
    };
    roll_back_to(
        clients,
        cfg,
        &current,
        &to,
        &target,
        "`command: rollback`",
        section,
        timeline,
    )
    .await?;
    section.outcome = BackendOutcome::RolledBack;
    Ok(())
}

/// Where a rollback goes: `Ok` an existing revision (its full ARN, proven to exist), `Err` the body to
/// register and its image (the release's revision was deregistered).
type Destination = Result<String, (Value, String)>;

/// The destination of `command: rollback`: `revision` when given, else the caller's default; checked
/// before anything changes.
async fn destination(
    clients: &Clients,
    cfg: &Config,
    default_to: Option<RollbackTo>,
    current: &str,
) -> Result<Destination, Error> {
    let b = &cfg.backend;
    let wanted = match (&b.revision, default_to) {
        (Some(r), _) => RollbackTo::Revision(revision_ref(r, current)?),
        (None, Some(to)) => to,
        (None, None) => {
            return Err(Error::NoPreviousRevision {
                family: short(current)
                    .rsplit_once(':')
                    .map(|(f, _)| f.to_string())
                    .unwrap_or_default(),
                current: short(current).to_string(),
            })
        }
    };
    match wanted {
        // Resolve to a full ARN (and prove it exists) before changing anything.
        RollbackTo::Revision(r) => Ok(Ok(task_def::describe(&clients.ecs, &r)
            .await?
            .arn()
            .to_string())),
        RollbackTo::Render {
            body,
            template,
            image,
        } => {
            // Rendered from what the service ran when it was read: it must still run that.
            if template != current {
                return Err(Error::NotOurs {
                    service: b.service.clone(),
                    runs: short(current).to_string(),
                    expected: short(&template).to_string(),
                });
            }
            Ok(Err((body, image)))
        }
    }
}

/// The rollback's plan lines.
fn rollback_plan(cfg: &Config, current: &str, to: Option<&str>, dest: &Destination) -> Vec<String> {
    let b = &cfg.backend;
    let mut plan = Vec::new();
    if let Err((_, image)) = dest {
        plan.push(format!(
            "register a new revision of {} with image `{image}` (the release's revision was deregistered)",
            short(current).rsplit_once(':').map_or("", |(f, _)| f)
        ));
    }
    plan.push(format!(
        "update service `{}` in `{}` (taskDefinition: {} -> {})",
        b.service,
        b.cluster,
        short(current),
        to.map_or("the new revision", short)
    ));
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    const CUR: &str = "arn:aws:ecs:us-east-1:123456789012:task-definition/cloudshop-backend:7";

    #[test]
    fn revisions() {
        assert_eq!(revision_ref("5", CUR).unwrap(), "cloudshop-backend:5");
        assert_eq!(revision_ref("other:3", CUR).unwrap(), "other:3");
        assert_eq!(revision_ref(CUR, CUR).unwrap(), CUR);
        for bad in ["0", "x", "a:b", ":3", "a b:1"] {
            assert!(revision_ref(bad, CUR).is_err(), "{bad}");
        }
    }
}
