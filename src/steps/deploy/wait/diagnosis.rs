//! Why a rollout failed: the stopped tasks of the new revision with their reasons and container exit
//! codes, and the likely fix for each known cause.
//!
//! APIs: ECS `ListTasks`, `DescribeTasks`.

use aws_sdk_ecs::types::DesiredStatus;
use serde::Serialize;

/// Stopped tasks described at most (one `DescribeTasks` call).
const MAX_TASKS: usize = 20;
/// Distinct stop reasons kept, so the error message stays readable.
const MAX_LINES: usize = 8;

/// What the stopped tasks say: one line per distinct stop reason, and the fixes for the known ones.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Diagnosis {
    /// `stopped task: <reason> (<stop code>); container `x`: exit code 1`, with `(xN)` for repeats.
    pub lines: Vec<String>,
    /// One fix per known cause, each once, in the order the causes were seen.
    pub hints: Vec<&'static str>,
}

impl Diagnosis {
    /// Nothing found (no stopped task of the revision, or the calls failed).
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty() && self.hints.is_empty()
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
    let mut out = Diagnosis::default();
    for (line, n) in lines.into_iter().take(MAX_LINES) {
        if let Some(h) = hint_for(&line) {
            if !out.hints.contains(&h) {
                out.hints.push(h);
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
            hints: vec!["fix a"],
        };
        assert_eq!(
            d.display_lines().collect::<Vec<_>>(),
            ["stopped task: a", "hint: fix a"]
        );
        assert!(Diagnosis::default().is_empty());
    }
}
