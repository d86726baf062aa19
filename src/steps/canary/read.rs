//! What one canary step reads, for both revisions over the same window: each target group's load
//! balancer metrics (through the watch's `metrics`), and the error lines of each revision's running
//! tasks (through the watch's `loglines`, narrowed to the tasks' `awslogs` streams
//! `<prefix>/<container>/<task-id>`).
//!
//! APIs: ELBv2 `DescribeTargetGroups`; CloudWatch `GetMetricData`; ECS `ListTasks`, `DescribeTasks`,
//! `DescribeTaskDefinition`; CloudWatch Logs `FilterLogEvents`.

use std::time::SystemTime;

use aws_sdk_ecs::types::{DesiredStatus, LogDriver};

use crate::config::Config;
use crate::steps::signals::compare::Metrics;
use crate::steps::signals::{bounded, loglines, metrics, ReadError};
use crate::steps::task_logs::task_id;
use crate::steps::Clients;

/// Pages of `ListTasks` read: 1000 tasks, far more than a canary runs.
const MAX_TASK_PAGES: usize = 10;

/// `FilterLogEvents` takes at most this many stream names.
const STREAMS_PER_CALL: usize = 100;

/// Why a signal could not be read, as a step's verdict or note says it.
pub fn reason(e: &ReadError, what: &str) -> String {
    match e {
        ReadError::Denied(action) => format!(
            "no {what}: the role may not call `{action}` (add it to the deploy role's policy, see docs/iam)"
        ),
        ReadError::NotFound(detail) => format!("no {what}: {detail}"),
        ReadError::Other(detail) => format!("no {what}: could not read them: {detail}"),
    }
}

/// One target group's metrics over `[from, to)`.
async fn group_metrics(
    clients: &Clients,
    group: &str,
    from: SystemTime,
    to: SystemTime,
) -> Result<Metrics, String> {
    let what = "load balancer metrics";
    let dims = bounded(metrics::find(&clients.elb, &[group.to_string()]))
        .await
        .map_err(|e| reason(&e, what))?
        .ok_or_else(|| format!("no {what}: target group `{group}` is behind no load balancer"))?;
    bounded(metrics::read(&clients.cloudwatch, &dims, from, to))
        .await
        .map_err(|e| reason(&e, what))
}

/// Both groups' metrics over `[from, to)`, `(new, old)`; why they could not be read.
pub async fn metrics_of(
    clients: &Clients,
    groups: (&str, &str),
    from: SystemTime,
    to: SystemTime,
) -> Result<(Metrics, Metrics), String> {
    let (new, old) = tokio::join!(
        group_metrics(clients, groups.0, from, to),
        group_metrics(clients, groups.1, from, to)
    );
    Ok((new?, old?))
}

/// The running tasks of the service, `(task id, task definition ARN)`.
async fn running_tasks(
    clients: &Clients,
    cfg: &Config,
) -> Result<Vec<(String, String)>, ReadError> {
    let (cluster, service) = (&cfg.backend.cluster, &cfg.backend.service);
    let mut arns = Vec::new();
    let mut token: Option<String> = None;
    for _ in 0..MAX_TASK_PAGES {
        let out = clients
            .ecs
            .list_tasks()
            .cluster(cluster)
            .service_name(service)
            .desired_status(DesiredStatus::Running)
            .set_next_token(token.take())
            .send()
            .await
            .map_err(|e| ReadError::of(&e, "ecs:ListTasks"))?;
        arns.extend(out.task_arns().iter().cloned());
        match out.next_token() {
            Some(t) if !t.is_empty() => token = Some(t.to_string()),
            _ => break,
        }
    }
    let mut tasks = Vec::new();
    for chunk in arns.chunks(100) {
        let out = clients
            .ecs
            .describe_tasks()
            .cluster(cluster)
            .set_tasks(Some(chunk.to_vec()))
            .send()
            .await
            .map_err(|e| ReadError::of(&e, "ecs:DescribeTasks"))?;
        tasks.extend(out.tasks().iter().filter_map(|t| {
            Some((
                task_id(t.task_arn()?).to_string(),
                t.task_definition_arn()?.to_string(),
            ))
        }));
    }
    Ok(tasks)
}

/// The `awslogs` group and `(container, stream prefix)` of each container of `revision` that logs
/// there (the configured containers only, when any are).
async fn log_streams_of(
    clients: &Clients,
    cfg: &Config,
    revision: &str,
) -> Result<(String, Vec<(String, String)>), ReadError> {
    let out = clients
        .ecs
        .describe_task_definition()
        .task_definition(revision)
        .send()
        .await
        .map_err(|e| ReadError::of(&e, "ecs:DescribeTaskDefinition"))?;
    let mut group: Option<String> = None;
    let mut containers = Vec::new();
    let defs = out
        .task_definition()
        .map(|td| td.container_definitions())
        .unwrap_or_default();
    for c in defs {
        let Some(name) = c.name() else { continue };
        if !cfg.backend.containers.is_empty() && !cfg.backend.containers.iter().any(|n| n == name) {
            continue;
        }
        let Some(lc) = c.log_configuration() else {
            continue;
        };
        let options = lc.options();
        let opt = |k: &str| options.and_then(|o| o.get(k)).cloned();
        if lc.log_driver() != &LogDriver::Awslogs {
            continue;
        }
        if let (Some(g), Some(prefix)) = (opt("awslogs-group"), opt("awslogs-stream-prefix")) {
            // One group per revision: streams of another group are left out.
            if group.get_or_insert_with(|| g.clone()) == &g {
                containers.push((name.to_string(), prefix));
            }
        }
    }
    match group {
        Some(g) => Ok((g, containers)),
        None => Err(ReadError::NotFound(format!(
            "task definition `{revision}` has no container logging with `awslogs` and an `awslogs-stream-prefix`"
        ))),
    }
}

/// The error lines of `revision`'s running tasks over `[from, to)`, and how many tasks they are.
async fn revision_lines(
    clients: &Clients,
    cfg: &Config,
    revision: &str,
    tasks: &[(String, String)],
    from: SystemTime,
    to: SystemTime,
) -> Result<(u64, u64), ReadError> {
    let ids: Vec<&str> = tasks
        .iter()
        .filter(|(_, td)| td == revision)
        .map(|(id, _)| id.as_str())
        .collect();
    if ids.is_empty() {
        return Ok((0, 0));
    }
    let (group, containers) = log_streams_of(clients, cfg, revision).await?;
    let streams: Vec<String> = ids
        .iter()
        .flat_map(|id| {
            containers
                .iter()
                .map(move |(c, prefix)| format!("{prefix}/{c}/{id}"))
        })
        .collect();
    let mut n = 0;
    for chunk in streams.chunks(STREAMS_PER_CALL) {
        n += loglines::count_in(
            &clients.logs,
            &group,
            Some(chunk),
            &cfg.signals.error_pattern,
            from,
            to,
        )
        .await?;
    }
    Ok((n, ids.len() as u64))
}

/// `(error lines, tasks)` of the new and the old revision over `[from, to)`.
pub async fn lines_of(
    clients: &Clients,
    cfg: &Config,
    revisions: (&str, &str),
    from: SystemTime,
    to: SystemTime,
) -> Result<((u64, u64), (u64, u64)), String> {
    let what = "error-line counts";
    let tasks = bounded(running_tasks(clients, cfg))
        .await
        .map_err(|e| reason(&e, what))?;
    let (new, old) = tokio::join!(
        bounded(revision_lines(clients, cfg, revisions.0, &tasks, from, to)),
        bounded(revision_lines(clients, cfg, revisions.1, &tasks, from, to))
    );
    Ok((
        new.map_err(|e| reason(&e, what))?,
        old.map_err(|e| reason(&e, what))?,
    ))
}
