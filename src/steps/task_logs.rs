//! A failed rollout's stopped tasks, in their own words: where a task's log lines are (the task
//! definition's `awslogs` configuration: group, region, stream prefix -> `prefix/container/task-id`) and
//! their last lines, masked and trimmed, with the known causes they show. FireLens or no logging is
//! reported as "no logs configured" with the fix; a role that may not read the logs gets a note, never a
//! failure.
//!
//! APIs: CloudWatch Logs `GetLogEvents`.

use serde::Serialize;
use serde_json::Value;

use crate::steps::known_causes::{known_causes, Cause};
use crate::steps::masking::Masker;

/// Where a container's log lines go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Logging {
    /// The `awslogs` driver: readable with CloudWatch Logs.
    Awslogs {
        group: String,
        region: Option<String>,
        stream_prefix: Option<String>,
    },
    /// Another driver (`awsfirelens`, `splunk`, ...): the action cannot read it.
    Other { driver: String },
    /// No `logConfiguration` at all.
    None,
}

impl Logging {
    /// What to tell the reader when the lines cannot be shown.
    pub fn missing_note(&self, container: &str) -> Option<String> {
        match self {
            Logging::Awslogs {
                stream_prefix: None,
                ..
            } => Some(format!(
                "no logs configured for `{container}` that can be found: set `awslogs-stream-prefix` in \
                 its `logConfiguration` (Fargate names streams `prefix/container/task-id`)"
            )),
            Logging::Awslogs { .. } => None,
            Logging::Other { driver } => Some(format!(
                "no logs configured for `{container}` that the action can read (log driver `{driver}`): \
                 read them where that driver sends them, or use `awslogs`"
            )),
            Logging::None => Some(format!(
                "no logs configured for `{container}`: add a `logConfiguration` with the `awslogs` \
                 driver (group `/ecs/<env>/<service>`, `awslogs-stream-prefix`) to see why it stopped"
            )),
        }
    }

    /// The log stream of one task's container, when it can be known.
    pub fn stream(&self, container: &str, task_id: &str) -> Option<(String, String)> {
        match self {
            Logging::Awslogs {
                group,
                stream_prefix: Some(prefix),
                ..
            } => Some((group.clone(), format!("{prefix}/{container}/{task_id}"))),
            _ => None,
        }
    }
}

/// The logging of `container` in a task definition (the raw `DescribeTaskDefinition` JSON or the SDK's
/// task definition turned into JSON).
pub fn logging_of(task_definition: &Value, container: &str) -> Logging {
    let Some(def) = task_definition
        .get("containerDefinitions")
        .and_then(Value::as_array)
        .and_then(|cs| {
            cs.iter()
                .find(|c| c.get("name").and_then(Value::as_str) == Some(container))
        })
    else {
        return Logging::None;
    };
    let Some(conf) = def.get("logConfiguration") else {
        return Logging::None;
    };
    let driver = conf
        .get("logDriver")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if driver != "awslogs" {
        return Logging::Other { driver };
    }
    let opt = |k: &str| {
        conf.get("options")
            .and_then(|o| o.get(k))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    match opt("awslogs-group") {
        Some(group) => Logging::Awslogs {
            group,
            region: opt("awslogs-region"),
            stream_prefix: opt("awslogs-stream-prefix"),
        },
        None => Logging::None,
    }
}

/// The task id of a task ARN (`arn:...:task/cluster/ID` or the old `arn:...:task/ID`).
pub fn task_id(task_arn: &str) -> &str {
    task_arn.rsplit('/').next().unwrap_or(task_arn)
}

/// The last lines of one stopped task's container, with why there are none when there are none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TaskLogs {
    pub task_id: String,
    pub container: String,
    /// `group` and `stream`, when known.
    pub stream: Option<(String, String)>,
    /// The last lines, oldest first, masked.
    pub lines: Vec<String>,
    /// Why there are no lines (no logs configured, access denied, stream gone).
    pub note: Option<String>,
    pub causes: Vec<Cause>,
}

/// Read the last `limit` lines of one stream, oldest first, masked.
pub async fn tail(
    logs: &aws_sdk_cloudwatchlogs::Client,
    group: &str,
    stream: &str,
    limit: i32,
    masker: &Masker,
) -> Result<Vec<String>, String> {
    let out = logs
        .get_log_events()
        .log_group_name(group)
        .log_stream_name(stream)
        .start_from_head(false)
        .limit(limit.clamp(1, 10_000))
        .send()
        .await
        .map_err(|e| {
            let code = crate::aws::code(&e).unwrap_or("").to_string();
            match code.as_str() {
                "AccessDeniedException" => format!(
                    "the role may not read `{group}` (add `logs:GetLogEvents` on it to see the app's lines)"
                ),
                "ResourceNotFoundException" => {
                    format!("no log stream `{stream}` in `{group}`: the container never started")
                }
                _ => format!(
                    "failed to read `{group}`: {}",
                    crate::aws::describe(&e)
                ),
            }
        })?;
    Ok(out
        .events()
        .iter()
        .filter_map(|e| e.message())
        .map(|m| masker.line(m))
        .filter(|l| !l.is_empty())
        .collect())
}

/// Read the last `limit` lines of one stopped task's container and the causes they show; a read that
/// fails becomes the note.
pub async fn task_logs(
    logs: &aws_sdk_cloudwatchlogs::Client,
    logging: &Logging,
    container: &str,
    task_arn: &str,
    exit_code: Option<i32>,
    limit: i32,
    masker: &Masker,
) -> TaskLogs {
    let id = task_id(task_arn).to_string();
    let stream = logging.stream(container, &id);
    let (lines, note) = match (&stream, logging.missing_note(container)) {
        (Some((group, name)), _) => match tail(logs, group, name, limit, masker).await {
            Ok(lines) if lines.is_empty() => (lines, Some(format!("`{group}/{name}` is empty"))),
            Ok(lines) => (lines, None),
            Err(note) => (Vec::new(), Some(note)),
        },
        (None, note) => (Vec::new(), note),
    };
    let causes = known_causes(&lines, exit_code);
    TaskLogs {
        task_id: id,
        container: container.to_string(),
        stream,
        lines,
        note,
        causes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn logging_from_the_task_definition() {
        let td = json!({"containerDefinitions": [
            {"name": "backend", "logConfiguration": {"logDriver": "awslogs", "options": {
                "awslogs-group": "/ecs/stage/backend-blue", "awslogs-region": "us-east-1",
                "awslogs-stream-prefix": "ecs"}}},
            {"name": "router", "logConfiguration": {"logDriver": "awsfirelens"}},
            {"name": "sidecar"}
        ]});
        let backend = logging_of(&td, "backend");
        assert_eq!(
            backend.stream("backend", "0a1b2c"),
            Some((
                "/ecs/stage/backend-blue".to_string(),
                "ecs/backend/0a1b2c".to_string()
            ))
        );
        assert_eq!(backend.missing_note("backend"), None);
        let router = logging_of(&td, "router");
        assert_eq!(
            router,
            Logging::Other {
                driver: "awsfirelens".into()
            }
        );
        assert!(router
            .missing_note("router")
            .unwrap()
            .starts_with("no logs configured for `router`"));
        assert_eq!(logging_of(&td, "sidecar"), Logging::None);
        assert_eq!(logging_of(&td, "absent"), Logging::None);
        assert!(logging_of(&td, "sidecar")
            .missing_note("sidecar")
            .unwrap()
            .contains("awslogs"));
        assert_eq!(
            task_id("arn:aws:ecs:us-east-1:746669238399:task/stage-cluster/0a1b2c3d"),
            "0a1b2c3d"
        );
    }
}
