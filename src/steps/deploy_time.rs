//! Where the deploy time went: from the new tasks' timestamps (created, pull started and stopped,
//! started), the old tasks' (stopping, stopped) and the service's events (draining begun, steady
//! state), the rollout broken into provisioning, image pull, container start, health checks and
//! draining, with what the team could change: a deregistration delay far above what the app's requests
//! take, an image whose pull is most of the rollout, a health-check grace period far above the time to
//! healthy. Best effort: what cannot be read leaves the section out. Writes only its own
//! [`DeployTimeReport`].
//!
//! APIs: ECS `DescribeServices`, `ListTasks`, `DescribeTasks`; ELBv2 `DescribeTargetGroupAttributes`.

use std::fmt::Write as _;

use aws_sdk_ecs::types::{DesiredStatus, Task};
use serde::Serialize;

use crate::config::Config;
use crate::report::section::{md_escape, Section};
use crate::steps::deploy::Deployed;
use crate::steps::Clients;

/// A new task's (created, pull started, pull stopped, started), epoch seconds.
pub type TaskTimes = (f64, Option<f64>, Option<f64>, Option<f64>);

/// The timestamps of one rollout, epoch seconds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Facts {
    /// The deployment's creation.
    pub start: f64,
    /// New tasks: (created, pull started, pull stopped, started).
    pub new: Vec<TaskTimes>,
    /// Old tasks stopped by the rollout: stopped (or stopping).
    pub old_stopped: Vec<f64>,
    /// The first event after the start saying the old tasks are draining (targets deregistered).
    pub draining_at: Option<f64>,
    /// The first steady-state event after the start.
    pub steady_at: Option<f64>,
    /// The target group's `deregistration_delay.timeout_seconds`.
    pub deregistration_delay: Option<f64>,
    pub grace_period: Option<f64>,
    /// The slowest answer of the smoke tests, milliseconds.
    pub request_ms: Option<u64>,
}

/// One part of the rollout.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Part {
    pub name: &'static str,
    pub seconds: f64,
}

/// Where the rollout's time went, part by part, with advice: the report section.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DeployTimeReport {
    pub total_seconds: f64,
    pub tasks: usize,
    pub parts: Vec<Part>,
    pub advice: Vec<String>,
}

fn span(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    Some((b? - a?).max(0.0))
}

/// The breakdown along the slowest new task (the one that started last), and the advice.
pub fn breakdown(f: &Facts) -> Option<DeployTimeReport> {
    let slowest = f
        .new
        .iter()
        .max_by(|a, b| a.3.unwrap_or(a.0).total_cmp(&b.3.unwrap_or(b.0)))?;
    let (created, pull_start, pull_stop, started) = *slowest;
    let old_end = f.old_stopped.iter().copied().reduce(f64::max);
    let healthy = f
        .draining_at
        .filter(|d| started.is_some_and(|s| *d >= s))
        .or(if old_end.is_none() { f.steady_at } else { None });
    let end = [f.steady_at, old_end, started, healthy]
        .into_iter()
        .flatten()
        .fold(created, f64::max);
    let mut parts = Vec::new();
    let mut push = |name, v: Option<f64>| {
        if let Some(s) = v {
            parts.push(Part { name, seconds: s });
        }
    };
    push(
        "waiting for the new tasks",
        span(Some(f.start), Some(created)),
    );
    push("provisioning", span(Some(created), pull_start));
    push("image pull", span(pull_start, pull_stop));
    push("container start", span(pull_stop.or(pull_start), started));
    push("health checks", span(started, healthy));
    push("draining", span(f.draining_at.or(healthy), old_end));
    let total = (end - f.start).max(0.0);
    let part = |n: &str| {
        parts
            .iter()
            .find(|p| p.name == n)
            .map(|p| p.seconds)
            .unwrap_or(0.0)
    };
    let mut advice = Vec::new();
    let drain = part("draining");
    if let Some(delay) = f.deregistration_delay.filter(|d| *d >= 60.0) {
        if drain >= delay * 0.5 {
            let fast = match f.request_ms {
                Some(ms) if ms < 1000 => format!("while the app answers in {ms} ms"),
                Some(_) => String::from("(check how long the app's slowest requests take)"),
                None => String::from("when the app's requests take milliseconds"),
            };
            if f.request_ms.is_none_or(|ms| ms < 1000) {
                advice.push(format!(
                    "draining the old tasks took {drain:.0} s because the target group waits {delay:.0} s (`deregistration_delay.timeout_seconds`) {fast}: set it to 30 s or less (Terraform `deregistration_delay = 30` on the `aws_lb_target_group`)"
                ));
            }
        }
    }
    let pull = part("image pull");
    if total > 0.0 && pull >= 10.0 && pull >= total * 0.4 {
        advice.push(format!(
            "the image pull took {pull:.0} s of the {total:.0} s rollout: make the image smaller (a multi-stage build on `python:3.x-slim`, no build tools or caches in the final stage)"
        ));
    }
    let to_healthy = span(Some(created), healthy);
    if let (Some(grace), Some(h)) = (f.grace_period, to_healthy) {
        if grace >= 60.0 && grace > 2.0 * h {
            advice.push(format!(
                "the health-check grace period ({grace:.0} s) is far above the time the new tasks took to be healthy ({h:.0} s): lower `health_check_grace_period_seconds` to about {:.0} s so a broken version is caught sooner",
                (2.0 * h).max(30.0).ceil()
            ));
        }
    }
    Some(DeployTimeReport {
        total_seconds: total,
        tasks: f.new.len(),
        parts,
        advice,
    })
}

fn secs(t: Option<&aws_sdk_ecs::primitives::DateTime>) -> Option<f64> {
    t.map(|d| d.as_secs_f64())
}

async fn tasks(clients: &Clients, cfg: &Config, status: DesiredStatus) -> Vec<Task> {
    let b = &cfg.backend;
    let Ok(list) = clients
        .ecs
        .list_tasks()
        .cluster(&b.cluster)
        .service_name(&b.service)
        .desired_status(status)
        .send()
        .await
    else {
        return Vec::new();
    };
    let arns: Vec<String> = list.task_arns().iter().take(100).cloned().collect();
    if arns.is_empty() {
        return Vec::new();
    }
    match clients
        .ecs
        .describe_tasks()
        .cluster(&b.cluster)
        .set_tasks(Some(arns))
        .send()
        .await
    {
        Ok(out) => out.tasks().to_vec(),
        Err(_) => Vec::new(),
    }
}

/// Read the finished rollout of `deployed` and break it down; `None` when there is nothing to show
/// (no change, or its tasks and deployment cannot be read).
pub async fn measure(
    clients: &Clients,
    cfg: &Config,
    deployed: &Deployed,
    request_ms: Option<u64>,
) -> Option<DeployTimeReport> {
    // Nothing changed, or the rollout was not waited for (`wait-timeout: 0`): no finished rollout.
    if !deployed.changed || cfg.backend.wait_timeout.is_zero() {
        return None;
    }
    let b = &cfg.backend;
    let svc = clients
        .ecs
        .describe_services()
        .cluster(&b.cluster)
        .services(&b.service)
        .send()
        .await
        .ok()?
        .services()
        .first()?
        .clone();
    let dep = svc
        .deployments()
        .iter()
        .find(|d| d.task_definition() == Some(deployed.task_definition.as_str()))?;
    let start = secs(dep.created_at())?;
    let new = new_task_times(clients, cfg, deployed).await;
    if new.is_empty() {
        return None;
    }
    let old_stopped = tasks(clients, cfg, DesiredStatus::Stopped)
        .await
        .iter()
        .filter(|t| t.task_definition_arn() == Some(deployed.previous_task_definition.as_str()))
        .filter_map(|t| secs(t.stopped_at()).or(secs(t.stopping_at())))
        .filter(|t| *t >= start)
        .collect();
    let facts = Facts {
        start,
        new,
        old_stopped,
        draining_at: first_event(&svc, start, &["begun draining", "deregistered"]),
        steady_at: first_event(&svc, start, &["reached a steady state"]),
        deregistration_delay: deregistration_delay(clients, deployed).await,
        grace_period: svc.health_check_grace_period_seconds().map(f64::from),
        request_ms,
    };
    let r = breakdown(&facts)?;
    for a in &r.advice {
        tracing::info!("deploy time: {a}");
    }
    Some(r)
}

/// When the first of the service's events since `start` saying any of `needles` came.
fn first_event(svc: &aws_sdk_ecs::types::Service, start: f64, needles: &[&str]) -> Option<f64> {
    svc.events()
        .iter()
        .filter(|e| secs(e.created_at()).is_some_and(|t| t >= start))
        .filter(|e| {
            e.message()
                .is_some_and(|m| needles.iter().any(|n| m.contains(n)))
        })
        .filter_map(|e| secs(e.created_at()))
        .reduce(f64::min)
}

/// The timestamps of the running tasks of the new revision.
async fn new_task_times(clients: &Clients, cfg: &Config, deployed: &Deployed) -> Vec<TaskTimes> {
    tasks(clients, cfg, DesiredStatus::Running)
        .await
        .iter()
        .filter(|t| t.task_definition_arn() == Some(deployed.task_definition.as_str()))
        .filter_map(|t| {
            Some((
                secs(t.created_at())?,
                secs(t.pull_started_at()),
                secs(t.pull_stopped_at()),
                secs(t.started_at()),
            ))
        })
        .collect()
}

/// The first target group's `deregistration_delay.timeout_seconds`, when it can be read.
async fn deregistration_delay(clients: &Clients, deployed: &Deployed) -> Option<f64> {
    let arn = deployed.target_groups.first()?;
    let out = clients
        .elb
        .describe_target_group_attributes()
        .target_group_arn(arn)
        .send()
        .await
        .ok()?;
    out.attributes()
        .iter()
        .find(|a| a.key() == Some("deregistration_delay.timeout_seconds"))
        .and_then(|a| a.value()?.parse::<f64>().ok())
}

impl Section for DeployTimeReport {
    fn outputs(&self, _out: &mut Vec<(String, String)>) {}

    fn summary(&self, md: &mut String) {
        let _ = writeln!(
            md,
            "#### ⏱️ Where the deploy time went\n\nThe rollout took {:.0} s ({} new task{}; the parts of the one that started last).\n\n| part | time | share |\n|---|---:|---:|",
            self.total_seconds,
            self.tasks,
            if self.tasks == 1 { "" } else { "s" }
        );
        for p in &self.parts {
            let share = if self.total_seconds > 0.0 {
                100.0 * p.seconds / self.total_seconds
            } else {
                0.0
            };
            let _ = writeln!(md, "| {} | {:.0} s | {share:.0}% |", p.name, p.seconds);
        }
        md.push('\n');
        let shown: Vec<&Part> = self.parts.iter().filter(|p| p.seconds >= 0.5).collect();
        if shown.len() > 1 {
            let _ = writeln!(md, "```mermaid\npie title Rollout time (s)");
            for p in shown {
                let _ = writeln!(md, "  \"{}\" : {:.0}", p.name, p.seconds);
            }
            md.push_str("```\n\n");
        }
        if !self.advice.is_empty() {
            let _ = writeln!(md, "What could make it faster:\n");
            for a in &self.advice {
                let _ = writeln!(md, "- {}", md_escape(a));
            }
            md.push('\n');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> Facts {
        Facts {
            start: 1000.0,
            new: vec![
                (1002.0, Some(1008.0), Some(1028.0), Some(1032.0)),
                (1001.0, Some(1006.0), Some(1020.0), Some(1025.0)),
            ],
            old_stopped: vec![1359.0, 1358.0],
            draining_at: Some(1057.0),
            steady_at: Some(1360.0),
            deregistration_delay: Some(300.0),
            grace_period: Some(0.0),
            request_ms: Some(12),
        }
    }

    #[test]
    fn the_parts_of_the_slowest_task() {
        let r = breakdown(&facts()).unwrap();
        let parts: Vec<(&str, f64)> = r.parts.iter().map(|p| (p.name, p.seconds)).collect();
        assert_eq!(
            parts,
            [
                ("waiting for the new tasks", 2.0),
                ("provisioning", 6.0),
                ("image pull", 20.0),
                ("container start", 4.0),
                ("health checks", 25.0),
                ("draining", 302.0),
            ]
        );
        assert_eq!(r.total_seconds, 360.0);
        assert_eq!(r.tasks, 2);
        assert_eq!(r.advice.len(), 1);
        assert!(
            r.advice[0].starts_with("draining the old tasks took 302 s because the target group waits 300 s (`deregistration_delay.timeout_seconds`) while the app answers in 12 ms: set it to 30 s or less"),
            "{:?}",
            r.advice
        );
    }

    #[test]
    fn advice_table() {
        // A slow app keeps its long delay; a 30 s delay is fine.
        let mut f = facts();
        f.request_ms = Some(4000);
        assert!(breakdown(&f).unwrap().advice.is_empty());
        f.deregistration_delay = Some(30.0);
        f.request_ms = Some(5);
        assert!(breakdown(&f).unwrap().advice.is_empty());
        // A big image on a quick drain.
        let f = Facts {
            new: vec![(1001.0, Some(1003.0), Some(1090.0), Some(1094.0))],
            old_stopped: vec![1120.0],
            draining_at: Some(1110.0),
            steady_at: Some(1121.0),
            deregistration_delay: Some(10.0),
            ..facts()
        };
        let r = breakdown(&f).unwrap();
        assert_eq!(r.advice.len(), 1, "{:?}", r.advice);
        assert!(r.advice[0].starts_with("the image pull took 87 s of the 121 s rollout"));
        // A grace period far above the time to healthy.
        let f = Facts {
            grace_period: Some(300.0),
            deregistration_delay: None,
            ..facts()
        };
        let r = breakdown(&f).unwrap();
        assert!(
            r.advice.iter().any(|a| a.starts_with(
                "the health-check grace period (300 s) is far above the time the new tasks took to be healthy (55 s): lower `health_check_grace_period_seconds` to about 110 s"
            )),
            "{:?}",
            r.advice
        );
        // No new task: nothing to show.
        assert!(breakdown(&Facts::default()).is_none());
    }

    #[test]
    fn the_section_escapes_and_charts() {
        let r = DeployTimeReport {
            total_seconds: 100.0,
            tasks: 1,
            parts: vec![
                Part {
                    name: "image pull",
                    seconds: 60.0,
                },
                Part {
                    name: "draining",
                    seconds: 40.0,
                },
            ],
            advice: vec!["set `x` [y](z)".into()],
        };
        let mut md = String::new();
        r.summary(&mut md);
        for want in [
            "The rollout took 100 s (1 new task; the parts of the one that started last).",
            "| image pull | 60 s | 60% |",
            "pie title Rollout time (s)\n  \"image pull\" : 60\n  \"draining\" : 40\n",
            "- set \\`x\\` \\[y\\]\\(z\\)",
        ] {
            assert!(md.contains(want), "{want}\n---\n{md}");
        }
    }
}
