//! PAUSE lifecycle hooks of a blue/green, linear or canary service: which stages the service pauses at
//! (read in the preflight, before any write: a pause the action would not answer fails the run there),
//! the pause the service deployment this run started waits at, and the answer to it.
//!
//! Only the deployment this run started is ever answered: a pause is taken from a service deployment
//! only when its ARN is the one the rollout watch found (never the service's newest or another run's).
//!
//! APIs: ECS `DescribeServiceDeployments`, `ContinueServiceDeployment`, `StopServiceDeployment`.

use std::time::{Duration, SystemTime};

use aws_sdk_ecs::types::{
    DeploymentConfiguration, DeploymentLifecycleHookAction, DeploymentLifecycleHookStatus,
    DeploymentLifecycleHookTargetType, ServiceDeployment, StopServiceDeploymentStopType,
};
use serde::Serialize;

use super::error::Error;

/// A stage the action acts at when the service pauses there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Stage {
    /// The new revision takes only the test listener's traffic: the smoke checks run against
    /// `smoke.test-url`.
    PostTestTrafficShift,
    /// Before production traffic moves (once per step of linear and canary): the canary analysis.
    PreProductionTrafficShift,
    /// Not a hook: a canary bake or linear step holds the new revision at a share of production
    /// traffic, judged every `canary.interval`, and stopped (`StopServiceDeployment`) on a regression.
    TrafficStep,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::PostTestTrafficShift => "POST_TEST_TRAFFIC_SHIFT",
            Stage::PreProductionTrafficShift => "PRE_PRODUCTION_TRAFFIC_SHIFT",
            Stage::TrafficStep => "PRODUCTION_TRAFFIC_SHIFT",
        }
    }

    fn of(name: &str) -> Option<Stage> {
        match name {
            "POST_TEST_TRAFFIC_SHIFT" => Some(Stage::PostTestTrafficShift),
            "PRE_PRODUCTION_TRAFFIC_SHIFT" => Some(Stage::PreProductionTrafficShift),
            _ => None,
        }
    }
}

/// The PAUSE hooks a service has, by the stages the action handles.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pauses {
    pub test_traffic: bool,
    pub pre_production: bool,
    /// The strategy moves production traffic in steps (`CANARY`, `LINEAR`): each step is judged.
    pub steps: bool,
}

/// The service's PAUSE hooks, checked: a pause at a stage the action does not act at would hold every
/// deploy until its timeout, and a test-traffic pause without `smoke.test-url` would have no checks to
/// run. Hooks of other types (Lambda) are ECS's to call.
pub fn check(
    dc: Option<&DeploymentConfiguration>,
    service: &str,
    test_url: bool,
) -> Result<Pauses, Error> {
    let mut pauses = Pauses {
        steps: dc
            .and_then(|d| d.strategy())
            .is_some_and(|s| matches!(s.as_str(), "CANARY" | "LINEAR")),
        ..Pauses::default()
    };
    let hooks = dc.map(|d| d.lifecycle_hooks()).unwrap_or_default();
    for hook in hooks {
        if hook.target_type() != Some(&DeploymentLifecycleHookTargetType::Pause) {
            continue;
        }
        for stage in hook.lifecycle_stages() {
            match Stage::of(stage.as_str()) {
                Some(Stage::PostTestTrafficShift) => pauses.test_traffic = true,
                Some(Stage::PreProductionTrafficShift) => pauses.pre_production = true,
                Some(Stage::TrafficStep) | None => {
                    return Err(Error::UnhandledPause {
                        service: service.to_string(),
                        stage: stage.as_str().to_string(),
                    })
                }
            }
        }
    }
    if pauses.test_traffic && !test_url {
        return Err(Error::NoTestUrl {
            service: service.to_string(),
        });
    }
    Ok(pauses)
}

/// How the load balancer reaches the service's two revisions (blue/green, linear, canary): the target
/// groups (`targetGroupArn`, `alternateTargetGroupArn`) and the listener rules ECS moves traffic with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routing {
    pub pair: (String, String),
    pub production_rule: String,
    pub test_rule: Option<String>,
}

/// The [`Routing`] of the service's first load balancer with an advanced configuration.
pub fn routing(svc: &aws_sdk_ecs::types::Service) -> Option<Routing> {
    svc.load_balancers().iter().find_map(|lb| {
        let adv = lb.advanced_configuration()?;
        Some(Routing {
            pair: (
                lb.target_group_arn()?.to_string(),
                adv.alternate_target_group_arn()?.to_string(),
            ),
            production_rule: adv.production_listener_rule()?.to_string(),
            test_rule: adv.test_listener_rule().map(str::to_string),
        })
    })
}

/// A pause the service deployment waits at (`AWAITING_ACTION`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Pause {
    pub service_deployment: String,
    pub hook_id: String,
    pub stage: Stage,
    /// When ECS applies `timeout_action` by itself.
    #[serde(skip)]
    pub expires_at: Option<SystemTime>,
    /// `CONTINUE` or `ROLLBACK`, as ECS names it.
    pub timeout_action: Option<String>,
    /// The new revision's share of production traffic at the pause, in percent (0 before the first
    /// production step).
    pub weight: Option<f64>,
}

/// The pause `sd` waits at, when `sd` is the deployment `ours` and it waits at a stage the action
/// handles with a hook not in `answered`.
pub fn awaiting(sd: &ServiceDeployment, ours: &str, answered: &[String]) -> Option<Pause> {
    if sd.service_deployment_arn() != Some(ours) {
        return None;
    }
    let stage = Stage::of(sd.lifecycle_stage()?.as_str())?;
    let hook = sd.lifecycle_hook_details().iter().find(|h| {
        h.status() == Some(&DeploymentLifecycleHookStatus::AwaitingAction)
            && h.target_type()
                .is_none_or(|t| *t == DeploymentLifecycleHookTargetType::Pause)
            && h.hook_id()
                .is_some_and(|id| !answered.iter().any(|a| a == id))
    })?;
    Some(Pause {
        service_deployment: ours.to_string(),
        hook_id: hook.hook_id()?.to_string(),
        stage,
        expires_at: hook
            .expires_at()
            .and_then(|t| SystemTime::try_from(*t).ok()),
        timeout_action: hook.timeout_action().map(|a| a.as_str().to_string()),
        weight: sd
            .target_service_revision()
            .and_then(|r| r.requested_production_traffic_weight()),
    })
}

/// A traffic step of `sd` (ours) to judge: the new revision holds a share of production traffic between
/// 0 and 100 and the deployment is not paused.
pub fn stepping(sd: &ServiceDeployment, ours: &str) -> Option<Pause> {
    let weight = sd
        .target_service_revision()
        .and_then(|r| r.requested_production_traffic_weight())?;
    let running = sd.status().is_some_and(|s| s.as_str() == "IN_PROGRESS");
    (sd.service_deployment_arn() == Some(ours) && running && weight > 0.0 && weight < 100.0).then(
        || Pause {
            service_deployment: ours.to_string(),
            hook_id: String::new(),
            stage: Stage::TrafficStep,
            expires_at: None,
            timeout_action: None,
            weight: Some(weight),
        },
    )
}

/// What the action tells ECS at a pause.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Action {
    Continue,
    Rollback,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Continue => "CONTINUE",
            Action::Rollback => "ROLLBACK",
        }
    }
}

/// How the answer to a pause went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Answered {
    /// `ContinueServiceDeployment` with the action was accepted.
    Sent,
    /// The hook was no longer waiting: its timeout passed and ECS applied its timeout action.
    Expired {
        /// How long the pause had lasted when the action found it expired.
        after_ms: u64,
        applied: String,
    },
}

/// One pause and what was done at it, for the summary.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    pub pause: Pause,
    pub action: Action,
    /// Why (the checks' or the analysis's verdict).
    pub why: String,
    /// Something judged the new revision (false: the checks are off, or nothing analyses the step).
    pub judged: bool,
    pub answered: Answered,
}

impl Decision {
    /// One line for the log and the summary.
    pub fn line(&self) -> String {
        let p = &self.pause;
        match &self.answered {
            Answered::Sent => format!(
                "{} (hook `{}`): {}: {}",
                p.stage.as_str(),
                p.hook_id,
                self.action.as_str(),
                self.why
            ),
            Answered::Expired {
                after_ms,
                applied,
            } => format!(
                "{} (hook `{}`): the pause expired after {}; ECS applied {applied} (the action's verdict, not sent: {} because {})",
                p.stage.as_str(),
                p.hook_id,
                humantime::format_duration(Duration::from_millis(*after_ms)),
                self.action.as_str(),
                self.why
            ),
        }
    }
}

/// Answer `pause` with `action`, unless its timeout passed first (then ECS applied the timeout
/// action, and that is what happened). `waited`: how long the pause has lasted.
pub async fn answer(
    ecs: &aws_sdk_ecs::Client,
    pause: &Pause,
    action: Action,
    waited: Duration,
) -> Result<Answered, Error> {
    if let Some(expired) = expired(ecs, pause, waited).await? {
        return Ok(expired);
    }
    let sent = ecs
        .continue_service_deployment()
        .service_deployment_arn(&pause.service_deployment)
        .hook_id(&pause.hook_id)
        .action(match action {
            Action::Continue => DeploymentLifecycleHookAction::Continue,
            Action::Rollback => DeploymentLifecycleHookAction::Rollback,
        })
        .send()
        .await;
    tracing::info!(
        "{} at {} (hook {}): ContinueServiceDeployment {}",
        pause.service_deployment,
        pause.stage.as_str(),
        pause.hook_id,
        action.as_str()
    );
    match sent {
        Ok(_) => Ok(Answered::Sent),
        Err(e) => {
            // Refused because the hook timed out between the read and the call: that is the answer.
            if let Some(expired) = expired(ecs, pause, waited).await? {
                return Ok(expired);
            }
            Err(Error::aws(
                "continue service deployment",
                &pause.service_deployment,
                crate::aws::describe(&e),
                "check that the role may call `ecs:ContinueServiceDeployment` on the service deployment",
            ))
        }
    }
}

/// `Some` when the hook of `pause` is no longer waiting (its timeout action applied).
async fn expired(
    ecs: &aws_sdk_ecs::Client,
    pause: &Pause,
    waited: Duration,
) -> Result<Option<Answered>, Error> {
    let out = ecs
        .describe_service_deployments()
        .service_deployment_arns(&pause.service_deployment)
        .send()
        .await
        .map_err(|e| {
            Error::aws(
                "describe service deployment",
                &pause.service_deployment,
                crate::aws::describe(&e),
                "check that the role may call `ecs:DescribeServiceDeployments`",
            )
        })?;
    let still = out.service_deployments().first().is_some_and(|sd| {
        sd.lifecycle_hook_details().iter().any(|h| {
            h.hook_id() == Some(pause.hook_id.as_str())
                && h.status() == Some(&DeploymentLifecycleHookStatus::AwaitingAction)
        })
    });
    Ok(expiry(still, pause, waited))
}

/// The pure decision of [`expired`]: ECS's word on the hook decides (its clock, not ours, applies the
/// timeout), so a hook still awaiting is answered and one that is not has expired.
fn expiry(still_waiting: bool, pause: &Pause, waited: Duration) -> Option<Answered> {
    (!still_waiting).then(|| Answered::Expired {
        after_ms: u64::try_from(waited.as_millis()).unwrap_or(u64::MAX),
        applied: pause
            .timeout_action
            .clone()
            .unwrap_or_else(|| "its timeout action".into()),
    })
}

/// A run cancelled while it judged `paused` leaves no deployment waiting on it: the pause is answered
/// ROLLBACK (nothing found the new revision good), within the grace a cancelled run has before the
/// runner's kill. A failure is a warning: the hook's own timeout action then applies.
pub async fn roll_back_on_cancel(
    ecs: &aws_sdk_ecs::Client,
    paused: Option<Pause>,
    signal: &str,
) -> Option<Decision> {
    let pause = paused?;
    let grace = crate::interrupt::ROLLBACK_GRACE;
    let sent = tokio::time::timeout(grace, answer(ecs, &pause, Action::Rollback, Duration::ZERO));
    let left = pause.timeout_action.as_deref().unwrap_or("?");
    match sent.await {
        Ok(Ok(answered)) => Some(Decision {
            why: format!("the run was cancelled by `{signal}` while it judged the pause"),
            pause,
            action: Action::Rollback,
            judged: false,
            answered,
        }),
        Ok(Err(e)) => {
            tracing::warn!("failed to answer the pause with ROLLBACK after `{signal}`: {e}; ECS applies its timeout action ({left})");
            None
        }
        Err(_) => {
            tracing::warn!(
                "no answer to ROLLBACK at the pause within {}; ECS applies its timeout action ({left})",
                humantime::format_duration(grace)
            );
            None
        }
    }
}

/// Roll back the service deployment `arn` outside a pause (`StopServiceDeployment` ROLLBACK).
pub async fn stop(ecs: &aws_sdk_ecs::Client, arn: &str) -> Result<(), Error> {
    tracing::info!("{arn}: StopServiceDeployment ROLLBACK");
    ecs.stop_service_deployment()
        .service_deployment_arn(arn)
        .stop_type(StopServiceDeploymentStopType::Rollback)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| {
            Error::aws(
                "stop service deployment",
                arn,
                crate::aws::describe(&e),
                "check that the role may call `ecs:StopServiceDeployment`; roll back in the ECS console",
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_ecs::types::{
        DeploymentLifecycleHook, DeploymentLifecycleHookDetail, DeploymentLifecycleHookStage,
        ServiceDeploymentLifecycleStage,
    };

    fn config(stages: &[&str], kind: DeploymentLifecycleHookTargetType) -> DeploymentConfiguration {
        let mut hook = DeploymentLifecycleHook::builder().target_type(kind);
        for s in stages {
            hook = hook.lifecycle_stages(DeploymentLifecycleHookStage::from(*s));
        }
        DeploymentConfiguration::builder()
            .lifecycle_hooks(hook.build())
            .build()
    }

    #[test]
    fn the_preflight_refuses_pauses_it_would_not_answer() {
        let pause = DeploymentLifecycleHookTargetType::Pause;
        let ok = config(
            &["POST_TEST_TRAFFIC_SHIFT", "PRE_PRODUCTION_TRAFFIC_SHIFT"],
            pause.clone(),
        );
        assert_eq!(
            check(Some(&ok), "s", true).unwrap(),
            Pauses {
                test_traffic: true,
                pre_production: true,
                steps: false,
            }
        );
        assert_eq!(check(None, "s", false).unwrap(), Pauses::default());
        let e = check(Some(&config(&["POST_SCALE_UP"], pause.clone())), "s", true).unwrap_err();
        assert_eq!(
            e.to_string(),
            "service `s` pauses its deployments at `POST_SCALE_UP`, where cloudshop-deploy does not act"
        );
        assert!(crate::error::Diagnose::hint(&e).contains("POST_TEST_TRAFFIC_SHIFT"));
        let e = check(
            Some(&config(&["POST_TEST_TRAFFIC_SHIFT"], pause)),
            "s",
            false,
        )
        .unwrap_err();
        assert!(e.to_string().contains("`smoke.test-url` is not set"), "{e}");
        assert!(crate::error::Diagnose::hint(&e).contains("smoke:"));
        // A Lambda hook at any stage is ECS's to call.
        let lambda = config(
            &["POST_SCALE_UP"],
            DeploymentLifecycleHookTargetType::from("LAMBDA_FUNCTION"),
        );
        assert_eq!(check(Some(&lambda), "s", false).unwrap(), Pauses::default());
    }

    fn sd(
        arn: &str,
        stage: &str,
        hooks: &[(&str, DeploymentLifecycleHookStatus)],
    ) -> ServiceDeployment {
        let mut b = ServiceDeployment::builder()
            .service_deployment_arn(arn)
            .lifecycle_stage(ServiceDeploymentLifecycleStage::from(stage));
        for (id, status) in hooks {
            b = b.lifecycle_hook_details(
                DeploymentLifecycleHookDetail::builder()
                    .hook_id(*id)
                    .target_type(DeploymentLifecycleHookTargetType::Pause)
                    .status(status.clone())
                    .timeout_action(DeploymentLifecycleHookAction::Rollback)
                    .build(),
            );
        }
        b.build()
    }

    #[test]
    fn only_our_deployments_waiting_hooks_are_answered() {
        let waiting = DeploymentLifecycleHookStatus::AwaitingAction;
        let ours = sd(
            "arn:ours",
            "POST_TEST_TRAFFIC_SHIFT",
            &[("h1", waiting.clone())],
        );
        let p = awaiting(&ours, "arn:ours", &[]).unwrap();
        assert_eq!(p.hook_id, "h1");
        assert_eq!(p.stage, Stage::PostTestTrafficShift);
        assert_eq!(p.timeout_action.as_deref(), Some("ROLLBACK"));
        // Another deployment's awaiting hook is left alone.
        assert_eq!(awaiting(&ours, "arn:other", &[]), None);
        let theirs = sd(
            "arn:other",
            "POST_TEST_TRAFFIC_SHIFT",
            &[("h9", waiting.clone())],
        );
        assert_eq!(awaiting(&theirs, "arn:ours", &[]), None);
        // A hook already answered is not answered twice (ECS may show it a moment longer).
        assert_eq!(awaiting(&ours, "arn:ours", &["h1".into()]), None);
        // A later step's new hook is.
        let step = sd(
            "arn:ours",
            "PRE_PRODUCTION_TRAFFIC_SHIFT",
            &[
                ("h1", DeploymentLifecycleHookStatus::Succeeded),
                ("h2", waiting),
            ],
        );
        let p = awaiting(&step, "arn:ours", &["h1".into()]).unwrap();
        assert_eq!(
            (p.hook_id.as_str(), p.stage),
            ("h2", Stage::PreProductionTrafficShift)
        );
        // Not waiting: nothing to answer.
        let done = sd(
            "arn:ours",
            "POST_TEST_TRAFFIC_SHIFT",
            &[("h1", DeploymentLifecycleHookStatus::TimedOut)],
        );
        assert_eq!(awaiting(&done, "arn:ours", &[]), None);
    }

    #[test]
    fn an_expired_pause_is_reported_as_such_never_as_answered() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let pause = Pause {
            service_deployment: "arn:ours".into(),
            hook_id: "h1".into(),
            stage: Stage::PostTestTrafficShift,
            expires_at: Some(now + Duration::from_secs(60)),
            timeout_action: Some("ROLLBACK".into()),
            weight: None,
        };
        let waited = Duration::from_secs(300);
        assert_eq!(expiry(true, &pause, waited), None);
        let gone = expiry(false, &pause, waited).unwrap();
        assert_eq!(
            gone,
            Answered::Expired {
                after_ms: 300_000,
                applied: "ROLLBACK".into()
            }
        );
        let d = Decision {
            pause,
            action: Action::Continue,
            why: "the checks passed".into(),
            judged: true,
            answered: gone,
        };
        assert_eq!(
            d.line(),
            "POST_TEST_TRAFFIC_SHIFT (hook `h1`): the pause expired after 5m; ECS applied ROLLBACK (the action's verdict, not sent: CONTINUE because the checks passed)"
        );
    }
}
