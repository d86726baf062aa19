//! Why a rollout failed: the stopped tasks of the new revision with their reasons and container exit
//! codes, their containers' last log lines, and the likely fix for each known cause.
//!
//! APIs: ECS `ListTasks`, `DescribeTasks`; CloudWatch Logs `GetLogEvents` (see [`crate::steps::task_logs`]).

use aws_sdk_ecs::types::DesiredStatus;
use serde::Serialize;

/// Stopped tasks described at most (one `DescribeTasks` call).
const MAX_TASKS: usize = 20;
/// Distinct stop reasons kept, so the error message stays readable.
const MAX_LINES: usize = 8;
/// Stopped tasks whose logs are read: the first ones tell the story, the rest repeat it.
const MAX_LOGGED_TASKS: usize = 3;
/// Log lines quoted in the error annotation (the summary shows them all).
pub const ANNOTATION_LOG_LINES: usize = 3;

/// Where the stopped tasks' log lines can be read, and how to mask them.
pub struct LogContext<'a> {
    pub client: &'a aws_sdk_cloudwatchlogs::Client,
    /// The task definition the new tasks ran (its containers' `logConfiguration`).
    pub task_definition: &'a serde_json::Value,
    /// Last lines per task; 0 reads none.
    pub lines: u32,
    pub masker: crate::steps::masking::Masker,
}

/// What the stopped tasks say: one line per distinct stop reason, and the fixes for the known ones.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Diagnosis {
    /// `stopped task: <reason> (<stop code>); container `x`: exit code 1`, with `(xN)` for repeats.
    pub lines: Vec<String>,
    /// One fix per known cause, each once: causes shown by the logs first, then by the stop reasons.
    pub hints: Vec<String>,
    /// The last log lines of the first stopped tasks' containers.
    pub logs: Vec<crate::steps::task_logs::TaskLogs>,
}

impl Diagnosis {
    /// Nothing found (no stopped task of the revision, or the calls failed).
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty() && self.hints.is_empty() && self.logs.is_empty()
    }

    /// The last few log lines (or why there are none) for the error annotation, from the first task
    /// that has any.
    pub fn log_excerpt(&self) -> Option<String> {
        if let Some(t) = self.logs.iter().find(|t| !t.lines.is_empty()) {
            let from = t.lines.len().saturating_sub(ANNOTATION_LOG_LINES);
            return Some(format!(
                "last lines of `{}` in task `{}`: {}",
                t.container,
                t.task_id,
                t.lines[from..].join(" | ")
            ));
        }
        self.logs.iter().find_map(|t| t.note.clone())
    }

    /// Every line as the log and the job summary show it: the facts, then `hint: ` per fix.
    pub fn display_lines(&self) -> impl Iterator<Item = String> + '_ {
        self.lines
            .iter()
            .cloned()
            .chain(self.hints.iter().map(|h| format!("hint: {h}")))
    }
}

/// The stopped tasks of revision `td` with their reasons and container exit codes, deduplicated, plus a
/// hint per known cause. Best effort: a failing call yields what is known so far.
pub async fn diagnose(
    ecs: &aws_sdk_ecs::Client,
    cluster: &str,
    service: &str,
    td: &str,
    logs: Option<&LogContext<'_>>,
) -> Diagnosis {
    let Ok(list) = ecs
        .list_tasks()
        .cluster(cluster)
        .service_name(service)
        .desired_status(DesiredStatus::Stopped)
        .send()
        .await
    else {
        return Diagnosis::default();
    };
    let arns: Vec<String> = list.task_arns().iter().take(MAX_TASKS).cloned().collect();
    if arns.is_empty() {
        return Diagnosis::default();
    }
    let Ok(described) = ecs
        .describe_tasks()
        .cluster(cluster)
        .set_tasks(Some(arns))
        .send()
        .await
    else {
        return Diagnosis::default();
    };
    let mut lines: Vec<(String, u32)> = Vec::new();
    let mut task_logs = Vec::new();
    for t in described.tasks() {
        if t.task_definition_arn() != Some(td) {
            continue;
        }
        if let Some(ctx) = logs.filter(|c| c.lines > 0) {
            if task_logs.len() < MAX_LOGGED_TASKS {
                task_logs.extend(read_task_logs(ctx, t).await);
            }
        }
        let line = stopped_line(t);
        match lines.iter_mut().find(|(l, _)| *l == line) {
            Some((_, n)) => *n += 1,
            None => lines.push((line, 1)),
        }
    }
    summarize(task_logs, lines)
}

/// One stopped task as a line: its reason and stop code, each container's exit code and reason.
fn stopped_line(t: &aws_sdk_ecs::types::Task) -> String {
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
    line
}

/// The diagnosis: the causes the tasks' own logs show first, then the stop reasons (counted) with the
/// fix each suggests.
fn summarize(
    task_logs: Vec<crate::steps::task_logs::TaskLogs>,
    lines: Vec<(String, u32)>,
) -> Diagnosis {
    let mut out = Diagnosis::default();
    for cause in task_logs.iter().flat_map(|t| t.causes.iter()) {
        let h = format!("{}: {}", cause.what, cause.fix);
        if !out.hints.contains(&h) {
            out.hints.push(h);
        }
    }
    out.logs = task_logs;
    for (line, n) in lines.into_iter().take(MAX_LINES) {
        if let Some(h) = hint_for(&line) {
            if !out.hints.iter().any(|x| x == h) {
                out.hints.push(h.to_string());
            }
        }
        out.lines.push(if n > 1 {
            format!("{line} (x{n})")
        } else {
            line
        });
    }
    out
}

/// The last log lines of a stopped task's containers that exited with an error (or, when none says so,
/// of every container).
async fn read_task_logs(
    ctx: &LogContext<'_>,
    task: &aws_sdk_ecs::types::Task,
) -> Vec<crate::steps::task_logs::TaskLogs> {
    let Some(arn) = task.task_arn() else {
        return Vec::new();
    };
    let failed: Vec<&aws_sdk_ecs::types::Container> = task
        .containers()
        .iter()
        .filter(|c| c.exit_code().is_some_and(|code| code != 0))
        .collect();
    let chosen: Vec<&aws_sdk_ecs::types::Container> = if failed.is_empty() {
        task.containers().iter().collect()
    } else {
        failed
    };
    // A container the scheduler stopped (health checks, scale-in) exits 137 from SIGKILL, not from memory.
    let killed_by_scheduler = matches!(
        task.stop_code(),
        Some(aws_sdk_ecs::types::TaskStopCode::ServiceSchedulerInitiated)
    );
    let mut out = Vec::new();
    for c in chosen {
        let name = c.name().unwrap_or("?");
        let logging = crate::steps::task_logs::logging_of(ctx.task_definition, name);
        let limit = i32::try_from(ctx.lines).unwrap_or(i32::MAX);
        out.push(
            crate::steps::task_logs::task_logs(
                ctx.client,
                &logging,
                name,
                arn,
                c.exit_code().filter(|_| !killed_by_scheduler),
                limit,
                &ctx.masker,
            )
            .await,
        );
    }
    out
}

/// The likely fix for a known stop reason.
fn hint_for(reason: &str) -> Option<&'static str> {
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

    #[test]
    fn display_lines_put_the_hints_after_the_facts() {
        let d = Diagnosis {
            lines: vec!["stopped task: a".into()],
            hints: vec!["fix a".into()],
            logs: Vec::new(),
        };
        assert_eq!(
            d.display_lines().collect::<Vec<_>>(),
            ["stopped task: a", "hint: fix a"]
        );
        assert!(Diagnosis::default().is_empty());
    }
}
