//! One-off tasks of the ECS simulator: `RunTask`, `DescribeTasks` of those tasks, `StopTask`. Each task
//! follows the script set with [`EcsSim::set_one_off`](super::EcsSim::set_one_off): it exits with a
//! code after some `DescribeTasks` polls, never stops, or fails to start (`TaskFailedToStart` with a
//! reason such as `CannotPullContainerError`). The request is checked as ECS would (a known revision,
//! subnets for an `awsvpc` task, not both a launch type and a capacity provider strategy, an override
//! of a container the revision has) and recorded by the simulator like every call.
//!
//! Task ids are deterministic ([`one_off_task_id`]), so a test can write the task's log lines to moto
//! before the run, under the `awslogs` stream name `prefix/container/task-id`.

use serde_json::{json, Value};

/// How a one-off task goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OneOff {
    /// PROVISIONING, RUNNING for `polls` DescribeTasks, then STOPPED with this exit code.
    Exits { code: i32, polls: u32 },
    /// RUNNING until `StopTask`.
    NeverStops,
    /// STOPPED at the first DescribeTasks with `stopCode` TaskFailedToStart and this reason.
    FailsToStart { reason: String },
}

/// The id of the nth one-off task (1-based): `m` and 31 digits.
pub fn one_off_task_id(n: u32) -> String {
    format!("m{n:031}")
}

#[derive(Debug, Clone)]
struct OneOffTask {
    arn: String,
    td: String,
    group: Option<String>,
    containers: Vec<String>,
    script: OneOff,
    polls: u32,
    /// `stoppedReason`, `stopCode` and the exit code once stopped.
    stopped: Option<(String, String, Option<i32>)>,
}

/// The one-off tasks of the simulator.
#[derive(Debug, Clone)]
pub(super) struct OneOffs {
    pub(super) script: OneOff,
    tasks: Vec<OneOffTask>,
}

impl Default for OneOffs {
    fn default() -> Self {
        OneOffs {
            script: OneOff::Exits { code: 0, polls: 2 },
            tasks: Vec::new(),
        }
    }
}

fn invalid(message: &str) -> (u16, Value) {
    (
        400,
        json!({"__type": "com.amazonaws.ecs#InvalidParameterException", "message": message}),
    )
}

impl OneOffs {
    /// `RunTask` with `td` the revision asked for (`None`: unknown), in `cluster_arn`.
    pub(super) fn run_task(
        &mut self,
        body: &Value,
        td: Option<&Value>,
        cluster_arn: &str,
    ) -> (u16, Value) {
        let Some(td) = td else {
            return (
                400,
                json!({"__type": "com.amazonaws.ecs#ClientException", "message": "TaskDefinition not found."}),
            );
        };
        let subnets = body["networkConfiguration"]["awsvpcConfiguration"]["subnets"]
            .as_array()
            .map_or(0, Vec::len);
        if td["networkMode"] == "awsvpc" && subnets == 0 {
            return invalid(
                "Network Configuration must be provided when networkMode 'awsvpc' is specified.",
            );
        }
        if body.get("launchType").is_some() && body.get("capacityProviderStrategy").is_some() {
            return invalid(
                "Specifying both a launch type and capacity provider strategy is not supported.",
            );
        }
        let containers: Vec<String> = td["containerDefinitions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["name"].as_str().map(str::to_string))
            .collect();
        for o in body["overrides"]["containerOverrides"]
            .as_array()
            .into_iter()
            .flatten()
        {
            if !containers.iter().any(|c| o["name"] == c.as_str()) {
                return invalid(
                    "Override for container named x is not a container in the TaskDefinition.",
                );
            }
        }
        let id = one_off_task_id(self.tasks.len() as u32 + 1);
        let cluster = cluster_arn.rsplit('/').next().unwrap_or("");
        let arn = format!(
            "{}:task/{cluster}/{id}",
            cluster_arn.split(":cluster/").next().unwrap_or("")
        );
        let task = OneOffTask {
            arn,
            td: td["taskDefinitionArn"].as_str().unwrap_or("").to_string(),
            group: body["startedBy"].as_str().map(str::to_string),
            containers,
            script: self.script.clone(),
            polls: 0,
            stopped: None,
        };
        let shown = task_json(&task, cluster_arn);
        self.tasks.push(task);
        (200, json!({"tasks": [shown], "failures": []}))
    }

    /// The one-off tasks among `wanted`, each advanced by one poll.
    pub(super) fn describe(&mut self, wanted: &[&str], cluster_arn: &str) -> Vec<Value> {
        let mut out = Vec::new();
        for t in self.tasks.iter_mut() {
            if !wanted.contains(&t.arn.as_str()) {
                continue;
            }
            if t.stopped.is_none() {
                t.polls += 1;
                match &t.script {
                    OneOff::Exits { code, polls } if t.polls > *polls => {
                        t.stopped = Some((
                            "Essential container in task exited".into(),
                            "EssentialContainerExited".into(),
                            Some(*code),
                        ));
                    }
                    OneOff::FailsToStart { reason } => {
                        t.stopped = Some((reason.clone(), "TaskFailedToStart".into(), None));
                    }
                    _ => {}
                }
            }
            out.push(task_json(t, cluster_arn));
        }
        out
    }

    /// `StopTask`.
    pub(super) fn stop(&mut self, body: &Value, cluster_arn: &str) -> (u16, Value) {
        let wanted = body["task"].as_str().unwrap_or("");
        let Some(t) = self.tasks.iter_mut().find(|t| t.arn == wanted) else {
            return invalid("The referenced task was not found.");
        };
        if t.stopped.is_none() {
            let reason = body["reason"].as_str().unwrap_or("Task stopped by user");
            t.stopped = Some((reason.to_string(), "UserInitiated".into(), Some(143)));
        }
        (200, json!({"task": task_json(t, cluster_arn)}))
    }
}

fn task_json(t: &OneOffTask, cluster_arn: &str) -> Value {
    let (status, reason, code, exit) = match &t.stopped {
        Some((r, c, e)) => ("STOPPED", Some(r.clone()), Some(c.clone()), *e),
        None if t.polls == 0 => ("PROVISIONING", None, None, None),
        None => ("RUNNING", None, None, None),
    };
    let containers: Vec<Value> = t
        .containers
        .iter()
        .map(|n| {
            let mut c = json!({"name": n, "lastStatus": status, "taskArn": t.arn});
            if let Some(e) = exit {
                c["exitCode"] = json!(e);
            }
            if code.as_deref() == Some("TaskFailedToStart") {
                c["reason"] = json!(reason);
            }
            c
        })
        .collect();
    let mut v = json!({"taskArn": t.arn, "clusterArn": cluster_arn, "taskDefinitionArn": t.td,
        "lastStatus": status, "desiredStatus": if t.stopped.is_some() { "STOPPED" } else { "RUNNING" },
        "launchType": "FARGATE", "containers": containers, "createdAt": 1.8e9});
    if let Some(g) = &t.group {
        v["startedBy"] = json!(g);
    }
    if let Some(r) = reason {
        v["stoppedReason"] = json!(r);
        v["stopCode"] = json!(code);
        v["stoppedAt"] = json!(1.8e9 + 10.0);
    }
    v
}
