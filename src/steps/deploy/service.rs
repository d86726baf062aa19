//! The ECS service itself: read it (and the strategy its rollouts follow), point it at a revision, and
//! read its health for the post-deploy watch.
//!
//! APIs: ECS `DescribeServices`, `UpdateService`, `ListTasks`, `DescribeTasks`.

use aws_sdk_ecs::types::{DeploymentControllerType, DeploymentStrategy, DesiredStatus, Service};

use std::collections::HashSet;
use std::sync::Mutex;

use super::error::Error;
use super::rollout::probe::{Strategy, Target};
use crate::config::Config;
use crate::steps::watch::ServiceHealth;
use crate::steps::Clients;

/// What `apply` did: enough to roll back and to watch the service afterwards.
#[derive(Debug)]
pub struct Deployed {
    /// A new revision went live (false for `no-change`): only then is there anything to roll back.
    pub changed: bool,
    /// The revision the service ran before.
    pub previous_task_definition: String,
    /// The revision it runs now.
    pub task_definition: String,
    /// The image digest it runs (the one deployed).
    pub image_digest: String,
    /// The definition the new tasks run (where their logs go) and the service's target groups, as the
    /// preflight read them.
    pub definition: serde_json::Value,
    pub target_groups: Vec<String>,
    /// The two target groups and listener rules of a blue/green, linear or canary service: its live
    /// group moves from one to the other with each deployment.
    pub routing: Option<super::hooks::Routing>,
    /// Stopped tasks already reported by [`health`].
    pub(super) reported_stops: Mutex<HashSet<String>>,
}

/// The service, when it exists and is ACTIVE.
pub(super) async fn describe(
    ecs: &aws_sdk_ecs::Client,
    cluster: &str,
    service: &str,
) -> Result<Service, Error> {
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

/// The ids of the service's current events, so the watch prints only newer ones.
pub(super) fn event_ids(svc: &Service) -> HashSet<String> {
    svc.events()
        .iter()
        .filter_map(|e| e.id().map(str::to_string))
        .collect()
}

/// What a rollout of `svc` to `td` is watched through; an error for a service this action cannot drive
/// (CodeDeploy or external controller). The strategy is read here, once.
pub(super) fn target_of(svc: &Service, cfg: &Config, td: &str) -> Result<Target, Error> {
    let strategy = strategy_of(svc).map_err(|controller| Error::Controller {
        service: cfg.backend.service.clone(),
        controller,
    })?;
    Ok(Target {
        cluster: cfg.backend.cluster.clone(),
        service: cfg.backend.service.clone(),
        task_definition: td.to_string(),
        deployment_id: None,
        previous_service_deployment: svc.current_service_deployment().map(str::to_string),
        replaced: svc.task_definition().map(str::to_string),
        strategy,
        judge_every: None,
    })
}

/// The strategy rollouts of `svc` follow, or the name of its deployment controller when that is not
/// ECS (CodeDeploy, external).
fn strategy_of(svc: &Service) -> Result<Strategy, String> {
    if let Some(t) = svc.deployment_controller().map(|c| c.r#type()) {
        if *t != DeploymentControllerType::Ecs {
            return Err(t.as_str().to_string());
        }
    }
    let dc = svc.deployment_configuration();
    let service_deployments = dc
        .and_then(|d| d.strategy())
        .is_some_and(|s| *s != DeploymentStrategy::Rolling);
    let cb_rollback = dc
        .and_then(|d| d.deployment_circuit_breaker())
        .is_some_and(|c| c.enable() && c.rollback());
    Ok(if service_deployments {
        Strategy::ServiceDeployments
    } else if cb_rollback {
        Strategy::RollingWithRollback
    } else {
        Strategy::Rolling
    })
}

/// Point the service at `td`; the id of the PRIMARY deployment that started, when ECS names it.
pub(super) async fn update(
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

/// Read the service for the post-deploy watch: running and desired tasks, and the tasks of the new
/// revision that stopped since the last call (each reported once).
pub async fn health(
    clients: &Clients,
    cfg: &Config,
    deployed: &Deployed,
) -> Result<ServiceHealth, Error> {
    let b = &cfg.backend;
    let svc = describe(&clients.ecs, &b.cluster, &b.service).await?;
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
    use aws_sdk_ecs::types::{
        DeploymentCircuitBreaker, DeploymentConfiguration, DeploymentController,
    };

    use super::*;

    fn service(
        controller: Option<DeploymentControllerType>,
        strategy: Option<DeploymentStrategy>,
        breaker: Option<(bool, bool)>,
    ) -> Service {
        let mut dc = DeploymentConfiguration::builder().set_strategy(strategy);
        if let Some((enable, rollback)) = breaker {
            dc = dc.deployment_circuit_breaker(
                DeploymentCircuitBreaker::builder()
                    .enable(enable)
                    .rollback(rollback)
                    .build(),
            );
        }
        Service::builder()
            .set_deployment_controller(
                controller.map(|c| DeploymentController::builder().r#type(c).build().unwrap()),
            )
            .deployment_configuration(dc.build())
            .build()
    }

    #[test]
    fn the_strategy_is_read_from_the_deployment_configuration() {
        use DeploymentStrategy as S;
        let cases = [
            (service(None, None, None), Ok(Strategy::Rolling)),
            (
                service(None, None, Some((true, true))),
                Ok(Strategy::RollingWithRollback),
            ),
            (
                service(None, Some(S::Rolling), Some((true, false))),
                Ok(Strategy::Rolling),
            ),
            (
                service(
                    Some(DeploymentControllerType::Ecs),
                    Some(S::Rolling),
                    Some((true, true)),
                ),
                Ok(Strategy::RollingWithRollback),
            ),
            (
                service(None, Some(S::BlueGreen), Some((true, true))),
                Ok(Strategy::ServiceDeployments),
            ),
            (
                service(None, Some(S::Linear), None),
                Ok(Strategy::ServiceDeployments),
            ),
            (
                service(Some(DeploymentControllerType::CodeDeploy), None, None),
                Err("CODE_DEPLOY".to_string()),
            ),
        ];
        for (i, (svc, want)) in cases.into_iter().enumerate() {
            assert_eq!(strategy_of(&svc), want, "case {i}");
        }
    }
}
