//! The migration task's calls: start it (`RunTask` with the command override, the service's network and
//! the run's tags), poll it (`DescribeTasks`) while its log lines stream in (`GetLogEvents` from the
//! head, forward token by token, masked), judge how it stopped, and stop it (`StopTask`).
//!
//! APIs: ECS `RunTask`, `DescribeTasks`, `StopTask`; CloudWatch Logs `GetLogEvents`.

use std::collections::VecDeque;

use aws_sdk_ecs::types::{ContainerOverride, Tag, Task, TaskOverride};

use super::error::{causes, Error};
use super::plan::{MigratePlan, LAST_LINES, STARTED_BY};
use super::report::MigrationReport;
use crate::steps::deploy::rollout::poller::{Pace, PollError, Probe, Tick};
use crate::steps::task_logs;
use crate::steps::Clients;

/// Start the task; its ARN.
pub(super) async fn start(
    ecs: &aws_sdk_ecs::Client,
    plan: &MigratePlan,
    task_definition_arn: &str,
) -> Result<String, Error> {
    let s = &plan.service;
    let overrides = TaskOverride::builder()
        .container_overrides(
            ContainerOverride::builder()
                .name(&plan.container)
                .set_command(Some(plan.command.clone()))
                .build(),
        )
        .build();
    let tags = [
        ("cloudshop-deploy:run", &plan.run_tag),
        ("cloudshop-deploy:sha", &plan.sha_tag),
    ]
    .into_iter()
    .filter(|(_, v)| !v.is_empty())
    .map(|(k, v)| Tag::builder().key(k).value(v.as_str()).build())
    .collect();
    let mut req = ecs
        .run_task()
        .cluster(&plan.cluster)
        .task_definition(task_definition_arn)
        .count(1)
        .started_by(STARTED_BY)
        .overrides(overrides)
        .set_tags(Some(tags))
        .set_network_configuration(s.network.clone())
        .set_platform_version(s.platform_version.clone());
    // A strategy and a launch type exclude each other; the service's strategy wins as it does there.
    req = if s.capacity_provider_strategy.is_empty() {
        req.set_launch_type(s.launch_type.clone())
    } else {
        req.set_capacity_provider_strategy(Some(s.capacity_provider_strategy.clone()))
    };
    let out = req.send().await.map_err(|e| {
        Error::aws(
            "run migration task on cluster",
            &plan.cluster,
            "ecs:RunTask",
            crate::aws::describe(&e),
            "check that the role may call `ecs:RunTask` on the cluster, `ecs:TagResource`, and `iam:PassRole` for the task and execution roles",
        )
    })?;
    if let Some(arn) = out.tasks().first().and_then(|t| t.task_arn()) {
        return Ok(arn.to_string());
    }
    let reason = out
        .failures()
        .iter()
        .map(|f| {
            format!(
                "{}{}",
                f.reason().unwrap_or("no reason given"),
                f.detail().map(|d| format!(" ({d})")).unwrap_or_default()
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    Err(Error::NotStarted {
        cluster: plan.cluster.clone(),
        reason: if reason.is_empty() {
            "`RunTask` returned no task".into()
        } else {
            reason
        },
    })
}

/// Stop the task, best effort: a failure is logged, the run's error is the one that made it stop.
pub(super) async fn stop(ecs: &aws_sdk_ecs::Client, cluster: &str, arn: &str, why: &str) {
    let reason: String = format!("cloudshop-deploy: {why}")
        .chars()
        .take(255)
        .collect();
    if let Err(e) = ecs
        .stop_task()
        .cluster(cluster)
        .task(arn)
        .reason(reason)
        .send()
        .await
    {
        tracing::warn!(
            "failed to stop migration task `{arn}` (ecs:StopTask): {}; stop it in the ECS console",
            crate::aws::describe(&e)
        );
    }
}

/// Polls the task and streams its log lines; done once the task is STOPPED.
pub(super) struct Watcher<'a> {
    clients: &'a Clients,
    plan: &'a MigratePlan,
    arn: &'a str,
    status: String,
    stream: Option<(String, String)>,
    token: Option<String>,
    last: VecDeque<String>,
    read: usize,
    exit_code: Option<i32>,
}

impl<'a> Watcher<'a> {
    pub(super) fn new(clients: &'a Clients, plan: &'a MigratePlan, arn: &'a str) -> Self {
        let id = task_logs::task_id(arn);
        let stream = plan.logging.stream(&plan.container, id);
        if let Some(note) = plan.logging.missing_note(&plan.container) {
            tracing::warn!("{note}");
        }
        Watcher {
            clients,
            plan,
            arn,
            status: String::new(),
            stream,
            token: None,
            last: VecDeque::new(),
            read: 0,
            exit_code: None,
        }
    }

    /// Print the lines written since the last read. A stream not there yet (the container has not
    /// started) is read again next time.
    pub(super) async fn read_logs(&mut self) {
        let Some((group, stream)) = &self.stream else {
            return;
        };
        // Bounded: a task that writes faster than this is read on the next poll.
        for _ in 0..10 {
            let out = match self
                .clients
                .logs
                .get_log_events()
                .log_group_name(group)
                .log_stream_name(stream)
                .start_from_head(true)
                .set_next_token(self.token.clone())
                .send()
                .await
            {
                Ok(out) => out,
                Err(e) => {
                    if crate::aws::code(&e) == Some("AccessDeniedException") {
                        tracing::warn!("the role may not read `{group}` (add `logs:GetLogEvents` on it to see the migration's lines)");
                        self.stream = None;
                    }
                    return;
                }
            };
            let events = out.events();
            for line in events.iter().filter_map(|e| e.message()) {
                let line = self.plan.masker.line(line);
                if line.is_empty() {
                    continue;
                }
                tracing::info!("| {line}");
                self.read += 1;
                self.last.push_back(line);
                if self.last.len() > LAST_LINES {
                    self.last.pop_front();
                }
            }
            let next = out.next_forward_token().map(str::to_string);
            let more = !events.is_empty() && next.is_some() && next != self.token;
            self.token = next.or(self.token.take());
            if !more {
                return;
            }
        }
    }

    /// The lines and the causes they show into the section.
    pub(super) fn finish(&self, section: &mut MigrationReport) {
        section.last_lines = self.last.iter().cloned().collect();
        section.lines_read = self.read;
        section.causes = causes(&section.last_lines, section.exit_code.or(self.exit_code));
    }
}

impl Probe for Watcher<'_> {
    type Output = Result<Task, Error>;

    async fn probe(&mut self) -> Result<Tick<Self::Output>, PollError> {
        let answer = self
            .clients
            .ecs
            .describe_tasks()
            .cluster(&self.plan.cluster)
            .tasks(self.arn)
            .send()
            .await;
        self.read_logs().await;
        let out = match answer {
            Ok(out) => out,
            Err(e) if crate::aws::is_throttling(&e) => return Ok(Tick::Pending(Pace::Throttled)),
            Err(e) => {
                return Ok(Tick::Done(Err(Error::aws(
                    "describe migration task",
                    self.arn,
                    "ecs:DescribeTasks",
                    crate::aws::describe(&e),
                    "check that the role may call `ecs:DescribeTasks` on the cluster",
                ))))
            }
        };
        let Some(task) = out.tasks().first() else {
            // Just started: DescribeTasks may not see it yet.
            return Ok(Tick::Pending(Pace::Quiet));
        };
        let status = task.last_status().unwrap_or("").to_string();
        if status == "STOPPED" {
            return Ok(Tick::Done(Ok(task.clone())));
        }
        let pace = if status == self.status {
            Pace::Quiet
        } else {
            tracing::info!("migration task: {status}");
            Pace::Changed
        };
        self.status = status;
        Ok(Tick::Pending(pace))
    }
}

/// Why a stopped migration failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Failure {
    /// The task never ran its containers (image pull, ENI, secrets).
    NotStarted(String),
    /// An essential container exited non-zero (or without a code).
    Exited(String),
}

/// How the stopped task went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Verdict {
    /// The migration container's exit code.
    pub exit_code: Option<i32>,
    pub stopped_reason: Option<String>,
    pub failure: Option<Failure>,
}

/// Success only when every essential container exited 0.
pub(super) fn verdict(task: &Task, plan: &MigratePlan) -> Verdict {
    let stopped_reason = task.stopped_reason().map(str::to_string);
    let exit_code = task
        .containers()
        .iter()
        .find(|c| c.name() == Some(plan.container.as_str()))
        .and_then(|c| c.exit_code());
    let failed_to_start = task
        .stop_code()
        .is_some_and(|c| c.as_str() == "TaskFailedToStart");
    let bad: Vec<String> = plan
        .essential
        .iter()
        .filter_map(|name| {
            let c = task.containers().iter().find(|c| c.name() == Some(name));
            match c.and_then(|c| c.exit_code()) {
                Some(0) => None,
                Some(code) => Some(format!("container `{name}` exited with code {code}")),
                None => Some(format!(
                    "container `{name}` has no exit code{}",
                    c.and_then(|c| c.reason())
                        .map(|r| format!(" ({r})"))
                        .unwrap_or_default()
                )),
            }
        })
        .collect();
    let failure = if bad.is_empty() {
        None
    } else if failed_to_start || exit_code.is_none() {
        Some(Failure::NotStarted(
            stopped_reason.clone().unwrap_or_else(|| bad.join("; ")),
        ))
    } else {
        Some(Failure::Exited(bad.join("; ")))
    };
    Verdict {
        exit_code,
        stopped_reason,
        failure,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_ecs::types::{Container, TaskStopCode};

    fn plan(essential: &[&str]) -> MigratePlan {
        MigratePlan {
            cluster: "c".into(),
            container: "backend".into(),
            command: vec!["alembic".into()],
            timeout: std::time::Duration::from_secs(60),
            poll_interval: std::time::Duration::from_secs(1),
            service: Default::default(),
            essential: essential.iter().map(|s| s.to_string()).collect(),
            logging: task_logs::Logging::None,
            masker: Default::default(),
            run_tag: String::new(),
            sha_tag: String::new(),
        }
    }

    fn task(containers: &[(&str, Option<i32>)], stop: Option<TaskStopCode>) -> Task {
        let cs = containers
            .iter()
            .map(|(n, code)| Container::builder().name(*n).set_exit_code(*code).build())
            .collect();
        Task::builder()
            .set_containers(Some(cs))
            .set_stop_code(stop)
            .stopped_reason("Essential container in task exited")
            .build()
    }

    #[test]
    fn only_every_essential_container_at_zero_is_a_success() {
        let p = plan(&["backend", "proxy"]);
        let ok = verdict(
            &task(
                &[("backend", Some(0)), ("proxy", Some(0)), ("log", Some(3))],
                None,
            ),
            &p,
        );
        assert_eq!(ok.failure, None);
        assert_eq!(ok.exit_code, Some(0));
        let bad = verdict(&task(&[("backend", Some(0)), ("proxy", Some(2))], None), &p);
        assert_eq!(
            bad.failure,
            Some(Failure::Exited(
                "container `proxy` exited with code 2".into()
            ))
        );
        let one = verdict(&task(&[("backend", Some(1)), ("proxy", Some(0))], None), &p);
        assert_eq!(one.exit_code, Some(1));
        assert!(matches!(one.failure, Some(Failure::Exited(_))));
        let never = verdict(
            &task(
                &[("backend", None), ("proxy", None)],
                Some(TaskStopCode::TaskFailedToStart),
            ),
            &p,
        );
        assert!(
            matches!(never.failure, Some(Failure::NotStarted(_))),
            "{never:?}"
        );
    }
}
