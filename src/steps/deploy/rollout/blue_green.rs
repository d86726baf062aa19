//! The probe of a service deployment (blue/green, linear, canary): the service's
//! `currentServiceDeployment` once it differs from the one before the update, followed through its
//! lifecycle stages; a PAUSE hook it waits at is handed back as [`Verdict::Paused`] (ours only), and
//! ECS's own rollback (`ROLLBACK_*`) is followed to its end.
//!
//! APIs: ECS `DescribeServices` (see [`probe`](super::probe)), `DescribeServiceDeployments`.

use std::collections::HashSet;

use tokio::time::Instant;

use aws_sdk_ecs::types::ServiceDeploymentStatus;

use super::poller::{Pace, Probe, Tick};
use super::probe::{Rollout, ServiceReader, Target, Verdict};
use crate::steps::deploy::error::Error;
use crate::steps::deploy::hooks;

/// Watches a service deployment (blue/green, linear, canary) to its end.
#[derive(Debug)]
pub struct BlueGreenProbe<'a> {
    reader: ServiceReader<'a>,
    sd_arn: Option<String>,
    /// The lifecycle stage at the last poll, printed when it changes.
    last_stage: Option<String>,
    /// The hooks answered so far.
    answered: Vec<String>,
    /// When the traffic step under way is next handed to the canary analysis.
    next_judgement: Option<Instant>,
}

impl<'a> BlueGreenProbe<'a> {
    /// A probe; events with ids in `seen` (those before the update) are not printed again.
    pub fn new(ecs: &'a aws_sdk_ecs::Client, target: Target, seen: HashSet<String>) -> Self {
        BlueGreenProbe {
            reader: ServiceReader::new(ecs, target, seen),
            sd_arn: None,
            last_stage: None,
            answered: Vec::new(),
            next_judgement: None,
        }
    }

    async fn service_deployment(
        &mut self,
        current: Option<String>,
    ) -> Result<Option<Verdict>, Error> {
        let ecs = self.reader.ecs;
        let target = &self.reader.target;
        if self.sd_arn.is_none() {
            // Ours is the service's current service deployment once it is not the one from before the
            // update; until ECS shows it, the rollout is "not yet" (never the newest of a list, which may
            // still be the previous, SUCCESSFUL one).
            self.sd_arn = current
                .filter(|c| target.previous_service_deployment.as_deref() != Some(c.as_str()));
            if let Some(a) = &self.sd_arn {
                tracing::info!("watching service deployment {a}");
            }
        }
        let Some(arn) = self.sd_arn.clone() else {
            return Ok(None);
        };
        let res = ecs
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
        // Only a pause of the deployment this run started (`arn`) is ever answered.
        let paused = hooks::awaiting(sd, &arn, &self.answered).or_else(|| self.step_due(sd, &arn));
        let verdict = match status {
            Some(ServiceDeploymentStatus::Successful) => Verdict::Completed,
            // ECS's rollback is watched to its end.
            Some(
                ServiceDeploymentStatus::RollbackRequested
                | ServiceDeploymentStatus::RollbackInProgress,
            ) => Verdict::Pending { hot: false },
            Some(ServiceDeploymentStatus::RollbackSuccessful) => Verdict::RolledBackByEcs(format!(
                "{reason} (service deployment ROLLBACK_SUCCESSFUL)"
            )),
            Some(ServiceDeploymentStatus::RollbackFailed) => Verdict::EcsRollbackFailed(format!(
                "{reason} (service deployment `{arn}` ROLLBACK_FAILED)"
            )),
            Some(ServiceDeploymentStatus::Stopped | ServiceDeploymentStatus::StopRequested) => {
                Verdict::Failed(reason)
            }
            _ if paused.is_some() => {
                paused.map_or(Verdict::Pending { hot: false }, Verdict::Paused)
            }
            _ => Verdict::Pending {
                hot: matches!(
                    stage.as_str(),
                    "BAKE_TIME" | "CLEAN_UP" | "POST_PRODUCTION_TRAFFIC_SHIFT"
                ),
            },
        };
        self.show_stage(stage, status.as_ref());
        Ok(Some(verdict))
    }

    /// A traffic step of ours to judge now: one `judge_every` after the step was first seen, then every
    /// `judge_every` while it lasts.
    fn step_due(
        &mut self,
        sd: &aws_sdk_ecs::types::ServiceDeployment,
        arn: &str,
    ) -> Option<hooks::Pause> {
        let every = self.reader.target.judge_every?;
        let Some(step) = hooks::stepping(sd, arn) else {
            self.next_judgement = None;
            return None;
        };
        let now = Instant::now();
        let next = *self.next_judgement.get_or_insert(now + every);
        (now >= next).then(|| {
            self.next_judgement = Some(now + every);
            step
        })
    }

    /// Print the lifecycle stage (with ECS's rollback status) when it changed.
    fn show_stage(&mut self, stage: String, status: Option<&ServiceDeploymentStatus>) {
        let shown = match status {
            Some(st) if st.as_str().starts_with("ROLLBACK") => format!("{stage} ({})", st.as_str()),
            _ => stage,
        };
        if self.last_stage.as_ref() != Some(&shown) && !shown.is_empty() {
            tracing::info!("lifecycle stage: {shown}");
        }
        self.last_stage = Some(shown);
    }
}

impl Probe for BlueGreenProbe<'_> {
    type Output = Verdict;

    async fn probe(&mut self) -> Result<Tick<Verdict>, Error> {
        let Some((svc, fresh)) = self.reader.read().await? else {
            return Ok(Tick::Pending(Pace::Throttled));
        };
        let current = svc.current_service_deployment().map(str::to_string);
        let verdict = self.service_deployment(current).await?;
        Ok(match verdict {
            Some(Verdict::Pending { hot: true }) => Tick::Pending(Pace::Hot),
            Some(Verdict::Pending { .. }) | None if fresh => Tick::Pending(Pace::Changed),
            Some(Verdict::Pending { .. }) | None => Tick::Pending(Pace::Quiet),
            Some(v) => Tick::Done(v),
        })
    }
}

impl Rollout for BlueGreenProbe<'_> {
    fn take_events(&mut self) -> Vec<String> {
        std::mem::take(&mut self.reader.events)
    }

    fn service_deployment_arn(&self) -> Option<&str> {
        self.sd_arn.as_deref()
    }

    fn answered(&mut self, hook_id: String) {
        self.answered.push(hook_id);
    }
}
