//! The rollout watch: poll until the deployment this run created is PRIMARY and COMPLETED, fail fast on
//! FAILED or on a circuit-breaker rollback, stream each new service event once, and on failure say why
//! (the stopped tasks of the new revision with their reasons and exit codes).
//!
//! Polling is adaptive ([`Poller`]): fast when completion is imminent (the new tasks all run and ECS is
//! waiting for steady state), slower when nothing moves, never above one call per base interval on
//! average (a token bucket), exponential backoff on throttling.
//!
//! APIs: ECS `DescribeServices`, `ListServiceDeployments`, `DescribeServiceDeployments` (blue/green,
//! linear, canary), `ListTasks`, `DescribeTasks` (diagnosis).

use std::collections::HashSet;
use std::future::Future;
use std::time::Duration;

use aws_sdk_ecs::types::{DesiredStatus, ServiceDeploymentStatus};
use tokio::time::Instant;

use super::Error;

/// Tokens the bucket holds at most: how many fast polls a quiet stretch can pay for.
const BUCKET: f64 = 10.0;
/// Quiet polls in a row before the interval doubles (ECS cannot complete a rollout while new tasks
/// are still starting, so a quiet stretch costs no detection time, and it banks tokens for the hot end).
const QUIET_AFTER: u32 = 1;
/// Transient errors (throttling, 5xx, network) in a row that end the watch.
const MAX_TRANSIENT: u32 = 8;

/// What the last poll showed, which sets the pace of the next one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pace {
    /// Completion is imminent: poll fast (a third of the base interval).
    Hot,
    /// Something moved (tasks starting): poll at 1.5 times the base interval.
    Changed,
    /// Nothing moved: poll at twice the base interval.
    Quiet,
    /// The API throttled (or failed transiently): back off exponentially.
    Throttled,
}

/// The adaptive poll schedule. Pure: the caller passes the clock.
#[derive(Debug, Clone)]
pub struct Poller {
    base: Duration,
    tokens: f64,
    last: Instant,
    quiet: u32,
    throttled: u32,
    /// Calls made so far.
    pub calls: u32,
}

impl Poller {
    /// A schedule around `base` (the configured poll interval), starting at `now`.
    pub fn new(base: Duration, now: Instant) -> Self {
        Poller {
            base: base.max(Duration::from_millis(1)),
            tokens: 1.0,
            last: now,
            quiet: 0,
            throttled: 0,
            calls: 0,
        }
    }

    /// Record a call made at `now` that showed `pace`; return how long to wait before the next call.
    pub fn after_call(&mut self, now: Instant, pace: Pace) -> Duration {
        let base = self.base.as_secs_f64();
        self.tokens = (self.tokens + now.saturating_duration_since(self.last).as_secs_f64() / base)
            .min(BUCKET)
            - 1.0;
        self.last = now;
        self.calls += 1;
        let want = match pace {
            Pace::Hot => {
                self.quiet = 0;
                self.throttled = 0;
                base / 3.0
            }
            Pace::Changed => {
                // Tasks are starting: completion is still at least a health check away.
                self.quiet = 0;
                self.throttled = 0;
                base * 1.5
            }
            Pace::Quiet => {
                self.quiet += 1;
                self.throttled = 0;
                if self.quiet >= QUIET_AFTER {
                    base * 2.0
                } else {
                    base
                }
            }
            Pace::Throttled => {
                self.throttled += 1;
                let cap = (base * 20.0).min(60.0).max(base);
                (base * f64::from(1u32 << self.throttled.min(10))).min(cap)
            }
        };
        // The bucket refills one token per base interval; the next call needs a whole token.
        let budget = (1.0 - self.tokens).max(0.0) * base;
        Duration::from_secs_f64(want.max(budget))
    }
}

/// One poll's result.
#[derive(Debug)]
pub enum Tick<T> {
    /// Not over yet.
    Pending(Pace),
    /// Over (successfully or not: `T` says).
    Done(T),
}

/// Something to poll.
pub trait Probe {
    /// What a finished watch yields.
    type Output;
    /// Poll once.
    fn probe(&mut self) -> impl Future<Output = Result<Tick<Self::Output>, Error>>;
}

/// How a watch ended.
#[derive(Debug)]
pub struct Watched<T> {
    /// `None`: the timeout passed first.
    pub outcome: Option<T>,
    /// Calls made.
    pub calls: u32,
}

/// Poll `probe` on the adaptive schedule until it is done or `timeout` passes (a last poll is made at
/// the deadline, so a rollout that completes just in time is not reported as a timeout).
pub async fn watch<P: Probe>(
    probe: &mut P,
    base: Duration,
    timeout: Duration,
) -> Result<Watched<P::Output>, Error> {
    let start = Instant::now();
    let deadline = start + timeout;
    let mut poller = Poller::new(base, start);
    loop {
        let tick = probe.probe().await?;
        let now = Instant::now();
        let pace = match tick {
            Tick::Done(t) => {
                return Ok(Watched {
                    outcome: Some(t),
                    calls: poller.calls + 1,
                })
            }
            Tick::Pending(p) => p,
        };
        let delay = poller.after_call(now, pace);
        if now >= deadline {
            return Ok(Watched {
                outcome: None,
                calls: poller.calls,
            });
        }
        tokio::time::sleep(delay.min(deadline - now)).await;
    }
}

// ---------------------------------------------------------------- rolling: the verdict

/// A deployment as the verdict needs it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DeploymentView {
    /// `ecs-svc/...`.
    pub id: String,
    /// PRIMARY, ACTIVE, INACTIVE.
    pub status: String,
    /// Task definition ARN.
    pub task_definition: String,
    /// IN_PROGRESS, COMPLETED, FAILED (absent on old services).
    pub rollout_state: Option<String>,
    /// Why it is in that state.
    pub rollout_reason: Option<String>,
    /// Running tasks.
    pub running: i32,
    /// Desired tasks.
    pub desired: i32,
    /// Pending tasks.
    pub pending: i32,
    /// Failed tasks so far.
    pub failed: i32,
}

impl From<&aws_sdk_ecs::types::Deployment> for DeploymentView {
    fn from(d: &aws_sdk_ecs::types::Deployment) -> Self {
        DeploymentView {
            id: d.id().unwrap_or_default().to_string(),
            status: d.status().unwrap_or_default().to_string(),
            task_definition: d.task_definition().unwrap_or_default().to_string(),
            rollout_state: d.rollout_state().map(|s| s.as_str().to_string()),
            rollout_reason: d.rollout_state_reason().map(str::to_string),
            running: d.running_count(),
            desired: d.desired_count(),
            pending: d.pending_count(),
            failed: d.failed_tasks(),
        }
    }
}

/// How a rollout ended (or that it has not).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Still going; `hot` when all new tasks run and ECS only waits for steady state.
    Pending {
        /// Completion is imminent.
        hot: bool,
    },
    /// Our deployment is PRIMARY and COMPLETED.
    Completed,
    /// Our deployment FAILED and nothing replaced it.
    Failed(String),
    /// ECS's circuit breaker (or ECS's own blue/green rollback) already went back.
    RolledBackByEcs(String),
    /// Another deployment (not ours, not a rollback) took over.
    Superseded(String),
}

/// Decide from the service's deployments whether the deployment `id` (of task definition `td`) is done.
pub fn evaluate(
    deployments: &[DeploymentView],
    id: Option<&str>,
    td: &str,
    cb_rollback: bool,
) -> Verdict {
    let ours = deployments
        .iter()
        .find(|d| id.is_some_and(|i| i == d.id))
        .or_else(|| {
            deployments
                .iter()
                .find(|d| d.task_definition == td && d.status == "PRIMARY")
        });
    let primary = deployments.iter().find(|d| d.status == "PRIMARY");
    let other_primary = primary.filter(|p| ours.is_none_or(|o| o.id != p.id));
    let Some(ours) = ours else {
        return match other_primary {
            Some(p) if p.task_definition != td && cb_rollback => Verdict::RolledBackByEcs(format!(
                "the deployment is gone and ECS went back to `{}`",
                p.task_definition
            )),
            Some(p) => Verdict::Superseded(format!(
                "deployment `{}` of `{}` replaced it",
                p.id, p.task_definition
            )),
            None => Verdict::Failed("the deployment disappeared from the service".into()),
        };
    };
    let reason = || {
        ours.rollout_reason
            .clone()
            .unwrap_or_else(|| "no reason given".to_string())
    };
    if ours.rollout_state.as_deref() == Some("FAILED") {
        return match other_primary {
            Some(p) if p.task_definition != td => Verdict::RolledBackByEcs(format!(
                "{} (ECS rolled back to `{}`)",
                reason(),
                p.task_definition
            )),
            // ECS marks the deployment FAILED a moment before it starts its own rollback: don't race it.
            _ if cb_rollback => Verdict::RolledBackByEcs(format!(
                "{} (the circuit breaker is rolling back)",
                reason()
            )),
            _ => Verdict::Failed(reason()),
        };
    }
    if let Some(p) = other_primary {
        return Verdict::Superseded(format!(
            "deployment `{}` of `{}` is now PRIMARY",
            p.id, p.task_definition
        ));
    }
    match ours.rollout_state.as_deref() {
        Some("COMPLETED") => Verdict::Completed,
        None if deployments.len() == 1 && ours.running == ours.desired => Verdict::Completed,
        _ => Verdict::Pending {
            hot: ours.desired > 0 && ours.running >= ours.desired && ours.pending == 0,
        },
    }
}

// ---------------------------------------------------------------- the ECS probe

/// Where the watch looks.
#[derive(Debug, Clone)]
pub struct Target {
    /// Cluster.
    pub cluster: String,
    /// Service.
    pub service: String,
    /// The task definition the rollout goes to.
    pub task_definition: String,
    /// The deployment id from `UpdateService`, when known.
    pub deployment_id: Option<String>,
    /// Watch through service deployments (blue/green, linear, canary).
    pub service_deployments: bool,
    /// The circuit breaker rolls back by itself.
    pub cb_rollback: bool,
}

/// Polls ECS for one rollout and streams new service events.
#[derive(Debug)]
pub struct EcsProbe<'a> {
    ecs: &'a aws_sdk_ecs::Client,
    target: Target,
    seen: HashSet<String>,
    last: Option<(i32, i32, i32, String)>,
    transient: u32,
    sd_arn: Option<String>,
    /// Every event line printed, in order (for the summary).
    pub events: Vec<String>,
    /// DescribeServices calls made.
    pub describe_calls: u32,
}

impl EcsProbe<'_> {
    /// The service deployment watched (blue/green, linear, canary), once found.
    pub fn service_deployment_arn(&self) -> Option<&str> {
        self.sd_arn.as_deref()
    }
}

impl<'a> EcsProbe<'a> {
    /// A probe; events with ids in `seen` (those before the update) are not printed again.
    pub fn new(ecs: &'a aws_sdk_ecs::Client, target: Target, seen: HashSet<String>) -> Self {
        EcsProbe {
            ecs,
            target,
            seen,
            last: None,
            transient: 0,
            sd_arn: None,
            events: Vec::new(),
            describe_calls: 0,
        }
    }

    fn transient(&mut self, what: String) -> Result<Tick<Verdict>, Error> {
        self.transient += 1;
        tracing::warn!(
            "{what} (attempt {} of {MAX_TRANSIENT}; backing off)",
            self.transient
        );
        if self.transient >= MAX_TRANSIENT {
            return Err(Error::aws(
                "watch service",
                &self.target.service,
                what,
                "ECS kept throttling or failing; re-run the job, or raise `poll-interval` when many deploys run at once",
            ));
        }
        Ok(Tick::Pending(Pace::Throttled))
    }

    async fn service_deployment(&mut self) -> Result<Option<Verdict>, Error> {
        if self.sd_arn.is_none() {
            let res = self
                .ecs
                .list_service_deployments()
                .cluster(&self.target.cluster)
                .service(&self.target.service)
                .send()
                .await
                .map_err(|e| {
                    Error::aws(
                        "list service deployments",
                        &self.target.service,
                        crate::aws::describe(&e),
                        "check that the role may call `ecs:ListServiceDeployments`",
                    )
                })?;
            self.sd_arn = res
                .service_deployments()
                .iter()
                .max_by(|a, b| {
                    let t = |x: &aws_sdk_ecs::types::ServiceDeploymentBrief| {
                        x.created_at().map(|t| t.as_secs_f64()).unwrap_or(0.0)
                    };
                    t(a).total_cmp(&t(b))
                })
                .and_then(|b| b.service_deployment_arn())
                .map(str::to_string);
            if let Some(a) = &self.sd_arn {
                tracing::info!("watching service deployment {a}");
            }
        }
        let Some(arn) = self.sd_arn.clone() else {
            return Ok(None);
        };
        let res = self
            .ecs
            .describe_service_deployments()
            .service_deployment_arns(&arn)
            .send()
            .await
            .map_err(|e| {
                Error::aws(
                    "describe service deployment",
                    &arn,
                    crate::aws::describe(&e),
                    "check that the role may call `ecs:DescribeServiceDeployments`",
                )
            })?;
        let Some(sd) = res.service_deployments().first() else {
            return Ok(Some(Verdict::Failed(format!(
                "service deployment `{arn}` not found"
            ))));
        };
        let reason = sd.status_reason().unwrap_or("no reason given").to_string();
        let stage = sd
            .lifecycle_stage()
            .map(|s| s.as_str().to_string())
            .unwrap_or_default();
        let status = sd.status().cloned();
        let verdict = match status {
            Some(ServiceDeploymentStatus::Successful) => Verdict::Completed,
            Some(
                ServiceDeploymentStatus::RollbackRequested
                | ServiceDeploymentStatus::RollbackInProgress
                | ServiceDeploymentStatus::RollbackSuccessful
                | ServiceDeploymentStatus::RollbackFailed,
            ) => Verdict::RolledBackByEcs(format!(
                "{reason} (service deployment {})",
                status.as_ref().map(|s| s.as_str()).unwrap_or("")
            )),
            Some(ServiceDeploymentStatus::Stopped | ServiceDeploymentStatus::StopRequested) => {
                Verdict::Failed(reason)
            }
            _ => Verdict::Pending {
                hot: matches!(
                    stage.as_str(),
                    "BAKE_TIME" | "CLEAN_UP" | "POST_PRODUCTION_TRAFFIC_SHIFT"
                ),
            },
        };
        let key = (0, 0, 0, stage.clone());
        if self.last.as_ref() != Some(&key) && !stage.is_empty() {
            tracing::info!("lifecycle stage: {stage}");
        }
        self.last = Some(key);
        Ok(Some(verdict))
    }
}

impl Probe for EcsProbe<'_> {
    type Output = Verdict;

    async fn probe(&mut self) -> Result<Tick<Verdict>, Error> {
        self.describe_calls += 1;
        let res = self
            .ecs
            .describe_services()
            .cluster(&self.target.cluster)
            .services(&self.target.service)
            .customize()
            // The poller owns the pacing: a throttled poll comes back at once and the next one is
            // pushed back by the schedule, instead of the SDK retrying (and rate-limiting) inside it.
            .config_override(aws_sdk_ecs::config::Builder::default().retry_config(
                aws_smithy_types::retry::RetryConfig::standard().with_max_attempts(1),
            ))
            .send()
            .await;
        let out = match res {
            Ok(o) => o,
            Err(e) if crate::aws::is_throttling(&e) || is_transient(&e) => {
                return self.transient(crate::aws::describe(&e))
            }
            Err(e) => return Err(Error::aws(
                "describe service",
                &self.target.service,
                crate::aws::describe(&e),
                "check the cluster and service and that the role may call `ecs:DescribeServices`",
            )),
        };
        self.transient = 0;
        let Some(svc) = out
            .services()
            .iter()
            .find(|s| s.status() != Some("INACTIVE"))
        else {
            return Err(Error::ServiceGone {
                cluster: self.target.cluster.clone(),
                service: self.target.service.clone(),
            });
        };
        // Newest first from ECS; print oldest first, each once.
        let mut fresh = false;
        for ev in svc.events().iter().rev() {
            let id = ev.id().unwrap_or_default().to_string();
            if self.seen.insert(id) {
                let msg = ev.message().unwrap_or_default().to_string();
                tracing::info!("event: {msg}");
                self.events.push(msg);
                fresh = true;
            }
        }
        if self.target.service_deployments {
            let verdict = self.service_deployment().await?;
            return Ok(match verdict {
                Some(Verdict::Pending { hot: true }) => Tick::Pending(Pace::Hot),
                Some(Verdict::Pending { .. }) | None if fresh => Tick::Pending(Pace::Changed),
                Some(Verdict::Pending { .. }) | None => Tick::Pending(Pace::Quiet),
                Some(v) => Tick::Done(v),
            });
        }
        let views: Vec<DeploymentView> =
            svc.deployments().iter().map(DeploymentView::from).collect();
        let verdict = evaluate(
            &views,
            self.target.deployment_id.as_deref(),
            &self.target.task_definition,
            self.target.cb_rollback,
        );
        let ours = views
            .iter()
            .find(|d| d.task_definition == self.target.task_definition);
        let key = ours
            .map(|d| {
                (
                    d.running,
                    d.pending,
                    d.failed,
                    d.rollout_state.clone().unwrap_or_default(),
                )
            })
            .unwrap_or_default();
        let moved = self.last.as_ref() != Some(&key);
        if moved {
            if let Some(d) = ours {
                tracing::info!(
                    "new revision: {} running, {} pending, {} desired, {} failed ({})",
                    d.running,
                    d.pending,
                    d.desired,
                    d.failed,
                    d.rollout_state.as_deref().unwrap_or("no rollout state")
                );
            }
        }
        self.last = Some(key);
        Ok(match verdict {
            Verdict::Pending { hot: true } => Tick::Pending(Pace::Hot),
            Verdict::Pending { hot: false } if moved || fresh => Tick::Pending(Pace::Changed),
            Verdict::Pending { hot: false } => Tick::Pending(Pace::Quiet),
            v => Tick::Done(v),
        })
    }
}

fn is_transient<E>(
    e: &aws_smithy_runtime_api::client::result::SdkError<
        E,
        aws_smithy_runtime_api::client::orchestrator::HttpResponse,
    >,
) -> bool {
    use aws_smithy_runtime_api::client::result::SdkError;
    match e {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => true,
        SdkError::ResponseError(_) => true,
        SdkError::ServiceError(s) => {
            let status = s.raw().status().as_u16();
            status >= 500
        }
        _ => false,
    }
}

// ---------------------------------------------------------------- diagnosis

/// Max stopped tasks described.
const MAX_TASKS: usize = 20;
/// Max diagnosis lines.
const MAX_LINES: usize = 8;

/// The stopped tasks of revision `td` with their reasons and container exit codes, deduplicated, plus a
/// hint per known cause. Best effort: a failing call yields what is known so far.
pub async fn diagnose(
    ecs: &aws_sdk_ecs::Client,
    cluster: &str,
    service: &str,
    td: &str,
) -> Vec<String> {
    let Ok(list) = ecs
        .list_tasks()
        .cluster(cluster)
        .service_name(service)
        .desired_status(DesiredStatus::Stopped)
        .send()
        .await
    else {
        return Vec::new();
    };
    let arns: Vec<String> = list.task_arns().iter().take(MAX_TASKS).cloned().collect();
    if arns.is_empty() {
        return Vec::new();
    }
    let Ok(described) = ecs
        .describe_tasks()
        .cluster(cluster)
        .set_tasks(Some(arns))
        .send()
        .await
    else {
        return Vec::new();
    };
    let mut lines: Vec<(String, u32)> = Vec::new();
    for t in described.tasks() {
        if t.task_definition_arn() != Some(td) {
            continue;
        }
        let mut line = format!(
            "stopped task: {}",
            t.stopped_reason().unwrap_or("no reason given")
        );
        if let Some(code) = t.stop_code() {
            line.push_str(&format!(" ({})", code.as_str()));
        }
        for c in t.containers() {
            let mut parts = Vec::new();
            if let Some(code) = c.exit_code() {
                parts.push(format!("exit code {code}"));
            }
            if let Some(r) = c.reason() {
                parts.push(r.to_string());
            }
            if !parts.is_empty() {
                line.push_str(&format!(
                    "; container `{}`: {}",
                    c.name().unwrap_or("?"),
                    parts.join(": ")
                ));
            }
        }
        match lines.iter_mut().find(|(l, _)| *l == line) {
            Some((_, n)) => *n += 1,
            None => lines.push((line, 1)),
        }
    }
    let mut out: Vec<String> = Vec::new();
    let mut hints: Vec<&str> = Vec::new();
    for (line, n) in lines.into_iter().take(MAX_LINES) {
        if let Some(h) = hint_for(&line) {
            if !hints.contains(&h) {
                hints.push(h);
            }
        }
        out.push(if n > 1 {
            format!("{line} (x{n})")
        } else {
            line
        });
    }
    out.extend(hints.into_iter().map(|h| format!("hint: {h}")));
    out
}

/// The likely fix for a known stop reason.
pub fn hint_for(reason: &str) -> Option<&'static str> {
    if reason.contains("CannotPullContainerError") {
        Some("the task could not pull the image: check the task execution role's ECR permissions and the subnets' route to ECR (NAT gateway or VPC endpoints)")
    } else if reason.contains("ResourceInitializationError") {
        Some("the task could not start: check the execution role's access to Secrets Manager/SSM parameters and the log group, and the subnets' network path to them")
    } else if reason.contains("ELB health checks") {
        Some("the new tasks failed the load balancer health check: check `/health`, the container port, and the service's health-check grace period")
    } else if reason.contains("Essential container in task exited") || reason.contains("exit code")
    {
        Some(
            "the application exited at start: read the container's logs (CloudWatch) for the error",
        )
    } else if reason.contains("OutOfMemory") {
        Some("a container ran out of memory: raise its memory in the task definition")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(
        id: &str,
        status: &str,
        td: &str,
        state: Option<&str>,
        running: i32,
        desired: i32,
    ) -> DeploymentView {
        DeploymentView {
            id: id.into(),
            status: status.into(),
            task_definition: td.into(),
            rollout_state: state.map(str::to_string),
            rollout_reason: Some("r".into()),
            running,
            desired,
            pending: 0,
            failed: 0,
        }
    }

    #[test]
    fn verdicts() {
        let new = "td:2";
        let cases: Vec<(Vec<DeploymentView>, Verdict)> = vec![
            (
                vec![
                    d("a", "PRIMARY", new, Some("IN_PROGRESS"), 0, 2),
                    d("o", "ACTIVE", "td:1", Some("COMPLETED"), 2, 2),
                ],
                Verdict::Pending { hot: false },
            ),
            (
                vec![
                    d("a", "PRIMARY", new, Some("IN_PROGRESS"), 2, 2),
                    d("o", "ACTIVE", "td:1", Some("COMPLETED"), 2, 2),
                ],
                Verdict::Pending { hot: true },
            ),
            (
                vec![d("a", "PRIMARY", new, Some("COMPLETED"), 2, 2)],
                Verdict::Completed,
            ),
            (vec![d("a", "PRIMARY", new, None, 2, 2)], Verdict::Completed),
            (
                vec![
                    d("a", "PRIMARY", new, None, 2, 2),
                    d("o", "ACTIVE", "td:1", None, 1, 0),
                ],
                Verdict::Pending { hot: true },
            ),
            (
                vec![d("a", "PRIMARY", new, Some("FAILED"), 0, 2)],
                Verdict::RolledBackByEcs("r (the circuit breaker is rolling back)".into()),
            ),
            (
                vec![
                    d("b", "PRIMARY", "td:1", Some("IN_PROGRESS"), 1, 2),
                    d("a", "ACTIVE", new, Some("FAILED"), 0, 2),
                ],
                Verdict::RolledBackByEcs("r (ECS rolled back to `td:1`)".into()),
            ),
            (
                vec![d("b", "PRIMARY", "td:1", Some("COMPLETED"), 2, 2)],
                Verdict::RolledBackByEcs(
                    "the deployment is gone and ECS went back to `td:1`".into(),
                ),
            ),
            (
                vec![
                    d("c", "PRIMARY", "td:3", Some("IN_PROGRESS"), 0, 2),
                    d("a", "ACTIVE", new, Some("IN_PROGRESS"), 1, 2),
                ],
                Verdict::Superseded("deployment `c` of `td:3` is now PRIMARY".into()),
            ),
        ];
        for (i, (deps, want)) in cases.into_iter().enumerate() {
            assert_eq!(evaluate(&deps, Some("a"), new, true), want, "case {i}");
        }
        // Without circuit-breaker rollback, FAILED is ours to handle, and a vanished deployment replaced
        // by another is "superseded".
        assert_eq!(
            evaluate(
                &[d("a", "PRIMARY", new, Some("FAILED"), 0, 2)],
                Some("a"),
                new,
                false
            ),
            Verdict::Failed("r".into())
        );
        assert!(matches!(
            evaluate(
                &[d("b", "PRIMARY", "td:1", Some("COMPLETED"), 2, 2)],
                Some("a"),
                new,
                false
            ),
            Verdict::Superseded(_)
        ));
    }

    #[test]
    fn hints_for_known_reasons() {
        assert!(hint_for("CannotPullContainerError: pull access denied")
            .unwrap()
            .contains("ECR"));
        assert!(
            hint_for("ResourceInitializationError: unable to pull secrets")
                .unwrap()
                .contains("Secrets Manager")
        );
        assert!(
            hint_for("Task failed ELB health checks in (target-group x)")
                .unwrap()
                .contains("/health")
        );
        assert!(hint_for("Essential container in task exited")
            .unwrap()
            .contains("logs"));
        assert_eq!(hint_for("Scaling activity initiated by deployment"), None);
    }

    /// A scripted rollout: ECS reports COMPLETED at `done_at`; all tasks run from `running_at`.
    struct Scripted {
        start: Instant,
        running_at: Duration,
        done_at: Duration,
        calls: u32,
        seen_done: Option<Duration>,
        throttle_first: u32,
    }

    impl Probe for Scripted {
        type Output = Duration;
        async fn probe(&mut self) -> Result<Tick<Duration>, Error> {
            self.calls += 1;
            if self.calls <= self.throttle_first {
                return Ok(Tick::Pending(Pace::Throttled));
            }
            let t = Instant::now() - self.start;
            if t >= self.done_at {
                self.seen_done = Some(t);
                return Ok(Tick::Done(t - self.done_at));
            }
            Ok(Tick::Pending(if t >= self.running_at {
                Pace::Hot
            } else {
                Pace::Quiet
            }))
        }
    }

    fn scripted(running_at: u64, done_at: u64) -> Scripted {
        Scripted {
            start: Instant::now(),
            running_at: Duration::from_secs(running_at),
            done_at: Duration::from_secs(done_at),
            calls: 0,
            seen_done: None,
            throttle_first: 0,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn detects_completion_fast_within_budget() {
        let base = Duration::from_secs(3);
        let mut p = scripted(45, 60);
        let w = watch(&mut p, base, Duration::from_secs(600)).await.unwrap();
        let lag = w.outcome.unwrap();
        assert!(lag <= Duration::from_secs(1), "lag {lag:?}");
        let elapsed = p.seen_done.unwrap().as_secs_f64();
        // Average at most one call per base interval (plus the first, free one).
        assert!(
            f64::from(w.calls) <= elapsed / 3.0 + 1.0,
            "{} calls in {elapsed} s",
            w.calls
        );
    }

    #[tokio::test(start_paused = true)]
    async fn quiet_rollouts_poll_slower_but_notice_within_two_intervals() {
        let base = Duration::from_secs(3);
        // Never "hot": completion comes out of the blue.
        let mut p = scripted(10_000, 120);
        let w = watch(&mut p, base, Duration::from_secs(600)).await.unwrap();
        assert!(w.outcome.unwrap() <= Duration::from_secs(6));
        assert!(w.calls <= 120 / 6 + 3, "{} calls", w.calls);
    }

    #[tokio::test(start_paused = true)]
    async fn times_out_with_a_last_poll_at_the_deadline() {
        let mut p = scripted(10_000, 10_000);
        let start = Instant::now();
        let w = watch(&mut p, Duration::from_secs(3), Duration::from_secs(30))
            .await
            .unwrap();
        assert!(w.outcome.is_none());
        assert_eq!(Instant::now() - start, Duration::from_secs(30));
    }

    #[test]
    fn throttling_backs_off_exponentially_and_recovers() {
        let t0 = Instant::now();
        let mut p = Poller::new(Duration::from_secs(3), t0);
        let mut now = t0;
        let mut delays = Vec::new();
        for _ in 0..6 {
            let d = p.after_call(now, Pace::Throttled);
            delays.push(d.as_secs());
            now += d;
        }
        assert_eq!(delays, [6, 12, 24, 48, 60, 60]);
        // Back to the normal pace after a normal reply.
        assert_eq!(
            p.after_call(now, Pace::Changed),
            Duration::from_millis(4500)
        );
    }

    #[test]
    fn hot_polls_are_paid_for_by_the_bucket() {
        let t0 = Instant::now();
        let mut p = Poller::new(Duration::from_secs(3), t0);
        let mut now = t0;
        // Hot from the start: the bucket is empty, so the pace stays at one call per 3 s.
        for _ in 0..5 {
            let d = p.after_call(now, Pace::Hot);
            assert!(d >= Duration::from_secs(2), "{d:?}");
            now += d;
        }
        // A quiet minute fills it: the next hot polls are 1 s apart.
        now += Duration::from_secs(60);
        let d = p.after_call(now, Pace::Hot);
        assert_eq!(d, Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn throttled_start_still_completes() {
        let mut p = scripted(45, 60);
        p.throttle_first = 4;
        let w = watch(&mut p, Duration::from_secs(3), Duration::from_secs(600))
            .await
            .unwrap();
        assert!(w.outcome.is_some());
    }
}
