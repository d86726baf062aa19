//! The error lines of the service's log group in a window: where its lines go (the task definition's
//! `awslogs` group) and how many match the configured filter pattern.
//!
//! APIs: CloudWatch Logs `FilterLogEvents`.

use std::time::SystemTime;

use serde_json::Value;

use super::unreadable::ReadError;
use crate::steps::task_logs::{logging_of, Logging};

/// Pages read per window: a service that logs more errors than this is in trouble either way, and the
/// count is then a lower bound.
const MAX_PAGES: usize = 20;

/// The log group of the first of `containers` (all when empty) that logs with `awslogs`, or why there is
/// none.
pub fn log_group(task_definition: &Value, containers: &[String]) -> Result<String, String> {
    let names: Vec<String> = if containers.is_empty() {
        task_definition
            .get("containerDefinitions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|c| c.get("name").and_then(Value::as_str).map(str::to_string))
            .collect()
    } else {
        containers.to_vec()
    };
    let mut why = None;
    for name in &names {
        match logging_of(task_definition, name) {
            Logging::Awslogs { group, .. } => return Ok(group),
            other => {
                why.get_or_insert_with(|| match other {
                    Logging::Other { driver } => {
                        format!("container `{name}` logs with `{driver}`, not `awslogs`")
                    }
                    _ => format!("container `{name}` has no `logConfiguration`"),
                });
            }
        }
    }
    Err(why.unwrap_or_else(|| "the task definition has no container".into()))
}

fn millis(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// How many lines of `group` match `pattern` in `[start, end)`.
pub async fn count(
    logs: &aws_sdk_cloudwatchlogs::Client,
    group: &str,
    pattern: &str,
    start: SystemTime,
    end: SystemTime,
) -> Result<u64, ReadError> {
    count_in(logs, group, None, pattern, start, end).await
}

/// How many lines of `group` match `pattern` in `[start, end)`, in `streams` only when given (at most
/// 100 names, `FilterLogEvents`' limit).
pub async fn count_in(
    logs: &aws_sdk_cloudwatchlogs::Client,
    group: &str,
    streams: Option<&[String]>,
    pattern: &str,
    start: SystemTime,
    end: SystemTime,
) -> Result<u64, ReadError> {
    let (start, end) = (millis(start), millis(end));
    if end <= start || streams.is_some_and(<[String]>::is_empty) {
        return Ok(0);
    }
    let mut n = 0u64;
    let mut token: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let out = logs
            .filter_log_events()
            .log_group_name(group)
            .set_log_stream_names(streams.map(<[String]>::to_vec))
            .filter_pattern(pattern)
            .start_time(start)
            // FilterLogEvents' end is inclusive.
            .end_time(end - 1)
            .set_next_token(token.take())
            .send()
            .await
            .map_err(|e| ReadError::of(&e, "logs:FilterLogEvents"))?;
        n += out.events().len() as u64;
        match out.next_token() {
            Some(t) if !t.is_empty() => token = Some(t.to_string()),
            _ => break,
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_log_group_of_the_deployed_containers() {
        let td = json!({"containerDefinitions": [
            {"name": "router", "logConfiguration": {"logDriver": "awsfirelens"}},
            {"name": "backend", "logConfiguration": {"logDriver": "awslogs", "options": {
                "awslogs-group": "/ecs/stage/backend-blue", "awslogs-stream-prefix": "ecs"}}},
            {"name": "sidecar"}
        ]});
        assert_eq!(
            log_group(&td, &[]).as_deref(),
            Ok("/ecs/stage/backend-blue")
        );
        assert_eq!(
            log_group(&td, &["backend".into()]).as_deref(),
            Ok("/ecs/stage/backend-blue")
        );
        assert_eq!(
            log_group(&td, &["router".into()]).unwrap_err(),
            "container `router` logs with `awsfirelens`, not `awslogs`"
        );
        assert_eq!(
            log_group(&td, &["sidecar".into()]).unwrap_err(),
            "container `sidecar` has no `logConfiguration`"
        );
        assert!(log_group(&json!({}), &[]).is_err());
    }
}
