//! The errors of the backend deploy and rollback, each with the one-line fix the Actions log shows.
//!
//! APIs: none (the calls that fail are in the sibling modules).

use std::time::Duration;

use super::rollout::diagnosis::Diagnosis;

/// Errors of the backend deploy.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An AWS call failed (after the SDK's retries); the message names the API operation.
    #[error("failed to {verb} `{object}`{}: {detail}", api_of(verb))]
    Aws {
        /// What was being done (`describe service`).
        verb: &'static str,
        object: String,
        /// `<AWS code>: <message>`.
        detail: String,
        hint: String,
    },
    /// Finding or tagging the image failed.
    #[error(transparent)]
    Image(#[from] crate::steps::image::Error),
    #[error("failed to describe cluster `{0}`: ClusterNotFoundException")]
    ClusterNotFound(String),
    #[error("failed to find service `{service}` in cluster `{cluster}`: MISSING")]
    ServiceNotFound { cluster: String, service: String },
    /// The service was deleted (or is draining).
    #[error("service `{service}` in cluster `{cluster}` is gone (deleted, draining or inactive)")]
    ServiceGone { cluster: String, service: String },
    /// The service is deployed by CodeDeploy or an external controller.
    #[error("service `{service}` uses the `{controller}` deployment controller, which this action does not drive")]
    Controller { service: String, controller: String },
    /// A container named in `container` is not in the task definition.
    #[error("container `{name}` is not in task definition `{task_definition}` (containers: {})", .available.join(", "))]
    ContainerNotFound {
        /// The name asked for.
        name: String,
        task_definition: String,
        /// The names there are.
        available: Vec<String>,
    },
    /// No container named, several to choose from.
    #[error("task definition `{task_definition}` has several containers ({}); which one runs the image?", .available.join(", "))]
    AmbiguousContainer {
        task_definition: String,
        available: Vec<String>,
    },
    #[error("failed to read task definition file `{path}`: {message}")]
    TaskDefFile { path: String, message: String },
    #[error("rollout of `{task_definition}` on service `{service}` failed: {reason}{}", diag(.diagnosis))]
    RolloutFailed {
        service: String,
        /// The new revision (`family:revision`).
        task_definition: String,
        reason: String,
        diagnosis: Box<Diagnosis>,
    },
    /// The circuit breaker (or ECS blue/green) rolled back already.
    #[error("rollout of `{task_definition}` on service `{service}` failed and ECS rolled it back: {reason}{}", diag(.diagnosis))]
    RolledBackByEcs {
        service: String,
        /// The new revision (`family:revision`).
        task_definition: String,
        reason: String,
        diagnosis: Box<Diagnosis>,
    },
    #[error("rollout of `{task_definition}` on service `{service}` did not finish within {}{}", humantime::format_duration(*.after), diag(.diagnosis))]
    Timeout {
        service: String,
        /// The new revision (`family:revision`).
        task_definition: String,
        /// The `wait-timeout`.
        after: Duration,
        diagnosis: Box<Diagnosis>,
    },
    /// Another deployment took over during the watch.
    #[error("rollout on service `{service}` was superseded: {reason}")]
    Superseded { service: String, reason: String },
    /// Before a rollback: the service no longer runs this run's revision.
    #[error("service `{service}` now runs `{runs}`, not `{expected}`: another deploy changed the service, so this rollback changed nothing")]
    NotOurs {
        service: String,
        runs: String,
        expected: String,
    },
    #[error("failed to roll back service `{service}` to `{target}` after `{cause}`: {reason}")]
    RollbackFailed {
        service: String,
        /// The revision rolled back to.
        target: String,
        /// Why a rollback was started (at most 300 characters).
        cause: String,
        /// Why it failed.
        reason: String,
    },
    /// `command: rollback` found nothing to go back to.
    #[error("failed to find a revision of `{family}` before `{current}`")]
    NoPreviousRevision { family: String, current: String },
    /// `command: rollback`: the release to go back to names an image the repository no longer has.
    #[error("the image `{repository}@{digest}` of the release to roll back to is no longer in the repository, so this rollback changed nothing")]
    DigestGone { repository: String, digest: String },
    /// A signal stopped a rollback (what it left is in the section).
    #[error("the rollback of service `{service}` to `{target}` was interrupted by a signal")]
    RollbackInterrupted { service: String, target: String },
    /// The service pauses its deployments at a stage where the action would never answer.
    #[error("service `{service}` pauses its deployments at `{stage}`, where cloudshop-deploy does not act")]
    UnhandledPause { service: String, stage: String },
    /// A test-traffic pause with nowhere for the checks to go.
    #[error("service `{service}` pauses its deployments at `POST_TEST_TRAFFIC_SHIFT`, but `smoke.test-url` is not set")]
    NoTestUrl { service: String },
    /// The action answered a pause with ROLLBACK (or its timeout did), or stopped a traffic step, and
    /// ECS's rollback finished.
    #[error("the new revision `{task_definition}` of service `{service}` was {place}: {why}{}", if *.before_production { "; it never took production traffic" } else { "" })]
    RejectedAtPause {
        service: String,
        task_definition: String,
        /// `rolled back at the `STAGE` pause`, or `stopped during the traffic step at N%` (no pause).
        place: String,
        why: String,
        /// The pause came before any production traffic moved to the new revision.
        before_production: bool,
    },
    #[error("invalid `revision` `{0}`: expected a task definition ARN, `family:revision` or a revision number")]
    BadRevision(String),
}

/// ` (ecs:Operation)` for the verbs of [`Error::Aws`], so an error names the API call that failed (what
/// to look up in CloudTrail or grant in IAM).
fn api_of(verb: &str) -> &'static str {
    match verb {
        "describe task definition" => " (ecs:DescribeTaskDefinition)",
        "register task definition" => " (ecs:RegisterTaskDefinition)",
        "watch service" | "describe service" => " (ecs:DescribeServices)",
        "describe service deployment" => " (ecs:DescribeServiceDeployments)",
        "update service" => " (ecs:UpdateService)",
        "list tasks" => " (ecs:ListTasks)",
        "describe tasks" => " (ecs:DescribeTasks)",
        "list service deployments of" => " (ecs:ListServiceDeployments)",
        "describe the service revision of" => " (ecs:DescribeServiceRevisions)",
        "continue service deployment" => " (ecs:ContinueServiceDeployment)",
        "stop service deployment" => " (ecs:StopServiceDeployment)",
        _ => "",
    }
}

/// The diagnosis for the error message; its hints go to the hint line instead.
fn diag(d: &Diagnosis) -> String {
    let mut parts: Vec<String> = d.lines.clone();
    parts.extend(d.log_excerpt());
    if parts.is_empty() {
        String::new()
    } else {
        format!("; {}", parts.join("; "))
    }
}

impl Error {
    pub(crate) fn aws(verb: &'static str, object: &str, detail: String, hint: &str) -> Self {
        Error::Aws {
            verb,
            object: object.to_string(),
            detail,
            hint: hint.to_string(),
        }
    }
}

impl crate::error::Diagnose for Error {
    fn hint(&self) -> String {
        match self {
            Error::Aws { hint, .. } => hint.clone(),
            Error::Image(e) => crate::error::Diagnose::hint(e),
            Error::ClusterNotFound(_) => "fix `cluster` (input or environments file), and check `aws-region`".into(),
            Error::ServiceNotFound { .. } => "fix `service` (input or environments file); `aws ecs list-services --cluster CLUSTER` lists them".into(),
            Error::ServiceGone { .. } => "the service was deleted or is being deleted; recreate it (Terraform) and deploy again".into(),
            Error::Controller { .. } => "deploy this service with its controller (CodeDeploy), or switch it to the ECS deployment controller".into(),
            Error::ContainerNotFound { .. } | Error::AmbiguousContainer { .. } => "set `container` (input or environments file) to the container(s) that run the image".into(),
            Error::TaskDefFile { .. } => "give `task-definition` a JSON file as printed by `aws ecs describe-task-definition` or accepted by `register-task-definition`".into(),
            Error::RolloutFailed { diagnosis, .. } | Error::RolledBackByEcs { diagnosis, .. } | Error::Timeout { diagnosis, .. } => {
                diagnosis
                    .hints
                    .first()
                    .map(|h| h.to_string())
                    .unwrap_or_else(|| "read the service events and the stopped tasks' reasons in the job summary".into())
            }
            Error::Superseded { .. } => "another deploy ran at the same time; use a `concurrency:` group per environment in the workflow".into(),
            Error::NotOurs { .. } => "check which deploy changed the service; to go back anyway, run `command: rollback` with `revision`".into(),
            Error::RollbackInterrupted { target, .. } => format!("check the service, then finish the rollback with `command: rollback` and `revision: {target}`"),
            Error::RollbackFailed { .. } => "the service may be down: check it in the ECS console and deploy a known-good revision (`command: rollback` with `revision`)".into(),
            Error::NoPreviousRevision { .. } => "give the revision to go back to with `revision` (ARN, `family:revision` or a number)".into(),
            Error::DigestGone { .. } => "push that image again (or restore it), or give the revision to go back to with `revision`".into(),
            Error::UnhandledPause { stage, .. } => format!("remove the PAUSE hook at `{stage}` from the service's `deployment_configuration.lifecycle_hook` (Terraform), or move it to `POST_TEST_TRAFFIC_SHIFT` (smoke checks on the test listener) or `PRE_PRODUCTION_TRAFFIC_SHIFT` (canary analysis)"),
            Error::NoTestUrl { .. } => "set `smoke:` `test-url:` to the load balancer's test listener (for example `http://stage-alb-458962299.us-east-1.elb.amazonaws.com:8080`), or remove the PAUSE hook at `POST_TEST_TRAFFIC_SHIFT`".into(),
            Error::RejectedAtPause { .. } => "the previous revision serves; the summary shows what failed at the pause or traffic step: fix the new version and deploy again".into(),
            Error::BadRevision(_) => "write `revision` as `arn:aws:ecs:...:task-definition/family:12`, `family:12` or `12`".into(),
        }
    }

    fn anchor(&self) -> Option<&'static str> {
        match self {
            Error::Aws { verb, detail, .. } => {
                crate::error::aws_anchor(detail).or(if verb.contains("register task definition") {
                    troubleshooting!("task-definition-rejected")
                } else {
                    None
                })
            }
            Error::Image(e) => crate::error::Diagnose::anchor(e),
            Error::ClusterNotFound { .. }
            | Error::ServiceNotFound { .. }
            | Error::ServiceGone { .. } => troubleshooting!("cluster-or-service-not-found"),
            Error::Controller { .. } => troubleshooting!("deployment-controller"),
            Error::ContainerNotFound { .. } | Error::AmbiguousContainer { .. } => {
                troubleshooting!("container-not-found")
            }
            Error::TaskDefFile { .. } => troubleshooting!("task-definition-rejected"),
            Error::RolloutFailed { .. } => troubleshooting!("rollout-failed"),
            Error::RolledBackByEcs { .. } => troubleshooting!("rolled-back-by-ecs"),
            Error::Timeout { .. } => troubleshooting!("rollout-timeout"),
            Error::UnhandledPause { .. }
            | Error::NoTestUrl { .. }
            | Error::RejectedAtPause { .. } => {
                troubleshooting!("pause-hooks")
            }
            Error::Superseded { .. } | Error::NotOurs { .. } => troubleshooting!("superseded"),
            Error::RollbackFailed { .. } | Error::RollbackInterrupted { .. } => {
                troubleshooting!("rollback-failed")
            }
            Error::NoPreviousRevision { .. }
            | Error::BadRevision { .. }
            | Error::DigestGone { .. } => {
                troubleshooting!("no-previous-revision")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Diagnose;

    #[test]
    fn the_diagnosis_splits_into_message_and_hint() {
        let diagnosis = Diagnosis {
            lines: vec!["stopped task: a".into(), "stopped task: b".into()],
            hints: vec!["fix a".into()],
            logs: Vec::new(),
        };
        let e = Error::RolloutFailed {
            service: "s".into(),
            task_definition: "td:2".into(),
            reason: "r".into(),
            diagnosis: Box::new(diagnosis),
        };
        assert_eq!(
            e.to_string(),
            "rollout of `td:2` on service `s` failed: r; stopped task: a; stopped task: b"
        );
        assert_eq!(e.hint(), "fix a");
        let e = Error::Timeout {
            service: "s".into(),
            task_definition: "td:2".into(),
            after: Duration::from_secs(60),
            diagnosis: Box::default(),
        };
        assert_eq!(
            e.to_string(),
            "rollout of `td:2` on service `s` did not finish within 1m"
        );
        assert!(e.hint().contains("job summary"));
    }

    /// Every verb the deploy's AWS calls use names its API operation in the message.
    #[test]
    fn an_aws_error_names_its_operation() {
        let e = Error::aws(
            "update service",
            "stage-backend-blue",
            "ServerException: boom".into(),
            "h",
        );
        assert_eq!(
            e.to_string(),
            "failed to update service `stage-backend-blue` (ecs:UpdateService): ServerException: boom"
        );
        let src = [
            include_str!("service.rs"),
            include_str!("task_def.rs"),
            include_str!("rollback.rs"),
            include_str!("rollout/probe.rs"),
            include_str!("hooks.rs"),
        ]
        .concat();
        let verbs: Vec<&str> = src
            .split("Error::aws(")
            .skip(1)
            .filter_map(|rest| rest.split('"').nth(1))
            .collect();
        assert!(verbs.len() >= 8, "{verbs:?}");
        for verb in verbs {
            assert!(!api_of(verb).is_empty(), "`{verb}` names no operation");
        }
    }
}
