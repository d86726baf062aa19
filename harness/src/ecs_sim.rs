//! A loopback ECS simulator speaking the ECS JSON 1.1 protocol (POST /, `X-Amz-Target:
//! AmazonEC2ContainerServiceV20141113.<Op>`) to the real SDK client, because moto's ECS deployments never
//! progress. One cluster, one service, one task-definition family; every deployment follows a script
//! ([`Scenario`]) advanced by each `DescribeServices` (or `DescribeServiceDeployments`) call. Every call is
//! recorded, so tests can prove that no mutating call was made. Rolling deployments are kept as a history
//! (`ListServiceDeployments` with their target service revision, `DescribeServiceRevisions`).
//!
//! Opt-in, so the scripted scenarios above keep their per-poll behaviour: [`EcsSim::set_timing`] makes
//! deployments progress with the clock (one scenario step per [`Timing::step`]) and models the tasks: a
//! deployment's tasks go PROVISIONING -> PENDING -> RUNNING with time (a rolling deployment completes
//! only once all of them run), a failing task is stop-requested (`desiredStatus` STOPPED, `lastStatus`
//! DEPROVISIONING, `stoppingAt`) and STOPPED after [`Timing::stopping`] (`stoppedAt`), the tasks a
//! completed deployment replaced stop with `ServiceSchedulerInitiated`, and a blue/green service
//! deployment that a newer update supersedes goes STOP_REQUESTED, then STOPPED. [`EcsSim::append_text`]
//! appends text (hostile, in tests) to every later service event and stop reason.
//!
//! Public API: [`EcsSim::start`] / [`EcsSim::start_with`] -> `endpoint`, [`EcsSim::calls`],
//! [`EcsSim::mutating_calls`], [`EcsSim::service_task_definition`], [`EcsSim::task_definition`];
//! [`EcsSim::set_timing`], [`EcsSim::append_text`], [`EcsSim::tasks`],
//! [`EcsSim::service_deployment_statuses`]; one-off tasks (`RunTask`, `StopTask`) in `run_task`, scripted
//! with [`EcsSim::set_one_off`]. Progressive services (blue/green, linear, canary with PAUSE hooks and
//! traffic weights, `ContinueServiceDeployment`, `StopServiceDeployment`) are [`Scenario::Progressive`],
//! modelled in [`progressive`] and observed through [`EcsSim::progress`].

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub mod progressive;
mod run_task;
pub use progressive::{DeploymentView, HookAction, Plan, Progress, RuleWeights};
pub use run_task::{one_off_task_id, OneOff};

/// Why the simulated tasks stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// The image cannot be pulled.
    CannotPull,
    /// Secrets / network could not be set up.
    ResourceInit,
    /// The app exited.
    EssentialExited,
    /// The target group health check failed.
    ElbHealth,
}

impl StopReason {
    /// The task's `stoppedReason` (and the container's reason / exit code).
    fn task_json(self, arn: &str, td: &str) -> Value {
        let (reason, code, container) = match self {
            StopReason::CannotPull => (
                "CannotPullContainerError: pull image manifest has been retried 5 time(s): failed to resolve ref: not found",
                "TaskFailedToStart",
                json!({"name": "backend", "reason": "CannotPullContainerError: ref not found", "lastStatus": "STOPPED"}),
            ),
            StopReason::ResourceInit => (
                "ResourceInitializationError: unable to pull secrets or registry auth: execution resource retrieval failed",
                "TaskFailedToStart",
                json!({"name": "backend", "lastStatus": "STOPPED"}),
            ),
            StopReason::EssentialExited => (
                "Essential container in task exited",
                "EssentialContainerExited",
                json!({"name": "backend", "exitCode": 3, "reason": "ModuleNotFoundError: No module named 'fastapi'", "lastStatus": "STOPPED"}),
            ),
            StopReason::ElbHealth => (
                "Task failed ELB health checks in (target-group arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/stage-tg/abc)",
                "ServiceSchedulerInitiated",
                json!({"name": "backend", "exitCode": 137, "lastStatus": "STOPPED"}),
            ),
        };
        json!({
            "taskArn": arn, "taskDefinitionArn": td, "lastStatus": "STOPPED", "desiredStatus": "STOPPED",
            "stoppedReason": reason, "stopCode": code, "containers": [container]
        })
    }

    /// A fragment of the reason, for assertions.
    pub fn needle(self) -> &'static str {
        match self {
            StopReason::CannotPull => "CannotPullContainerError",
            StopReason::ResourceInit => "ResourceInitializationError",
            StopReason::EssentialExited => "exit code 3",
            StopReason::ElbHealth => "ELB health checks",
        }
    }
}

/// Clock-based progress ([`EcsSim::set_timing`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// One scenario step (what one poll did without timing): `Succeed { after: 3 }` completes 3 steps
    /// after the update (and not before its tasks run).
    pub step: Duration,
    /// A new task's time in PROVISIONING.
    pub provisioning: Duration,
    /// Then in PENDING, before RUNNING.
    pub pending: Duration,
    /// A stop-requested task's time before STOPPED.
    pub stopping: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            step: Duration::from_millis(200),
            provisioning: Duration::from_millis(150),
            pending: Duration::from_millis(150),
            stopping: Duration::from_millis(300),
        }
    }
}

/// A task the simulator started (with [`Timing`] only).
#[derive(Debug, Clone)]
struct Task {
    arn: String,
    td: String,
    /// The deployment that started it.
    dep: String,
    created: Instant,
    created_at: f64,
    /// When the stop was requested, why (`stoppedReason`, `stopCode`) and the epoch time.
    stop: Option<(Instant, f64, String, String)>,
}

/// How the FIRST deployment (the deploy) goes; later ones (rollbacks) complete after two polls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scenario {
    /// COMPLETED after this many polls (all tasks running one poll before).
    Succeed { after: u32 },
    /// Tasks fail; after `after` polls the circuit breaker marks it FAILED and rolls back by itself.
    CircuitBreaker { after: u32 },
    /// Like [`Scenario::CircuitBreaker`], but the failed deployment is gone from the service's list by
    /// the next poll (visible for less than one poll interval), and the service's configuration does not
    /// show the breaker's rollback flag: only the new PRIMARY deployment of the previous revision and the
    /// events ("deployment failed", "rolling back") tell that ECS went back.
    CircuitBreakerGone { after: u32 },
    /// Tasks stop with `reason`; after `after` polls the deployment is FAILED (no automatic rollback).
    TasksFail { reason: StopReason, after: u32 },
    /// IN_PROGRESS forever.
    NeverEnds,
    /// The first `times` DescribeServices after the update are throttled, then COMPLETED after `after`.
    Throttle { times: u32, after: u32 },
    /// The service is deleted after `after` polls.
    DeletedMidway { after: u32 },
    /// Blue/green: the service deployment goes through lifecycle stages, then SUCCESSFUL (or ECS rolls
    /// back: ROLLBACK_REQUESTED, ROLLBACK_IN_PROGRESS, then ROLLBACK_SUCCESSFUL).
    BlueGreen { after: u32, rollback: bool },
    /// Blue/green whose ECS rollback ends ROLLBACK_FAILED (the service may be down).
    BlueGreenRollbackFails { after: u32 },
    /// Blue/green where, for the first `lag` DescribeServices after the update, ECS does not show the new
    /// service deployment yet (`currentServiceDeployment` and the list still show the previous SUCCESSFUL
    /// one), then SUCCESSFUL after `after` polls.
    BlueGreenLagging { after: u32, lag: u32 },
    /// Every update is a progressive service deployment (blue/green, linear or canary, PAUSE hooks,
    /// traffic weights) on the wall clock: see [`progressive`].
    Progressive(Plan),
}

/// The initial state.
#[derive(Debug, Clone)]
pub struct Seed {
    /// Cluster name.
    pub cluster: String,
    /// Service name.
    pub service: String,
    /// Task-definition family (revisions 1 and 2 exist; the service runs 2).
    pub family: String,
    /// Containers of the task definition: (name, image).
    pub containers: Vec<(String, String)>,
    /// Running tasks.
    pub desired: i32,
    /// An `awslogs` log group for every container (stream prefix `ecs`), or no logging at all.
    pub log_group: Option<String>,
    /// The target group the service registers its tasks in (behind a load balancer), if any.
    pub target_group: Option<String>,
    /// How long each part of a successful rollout takes (seconds): with it, a completed deployment leaves
    /// RUNNING tasks with their timestamps, the old tasks stopped after draining, and the events of it.
    pub task_times: Option<TaskTimes>,
    /// The service's `awsvpc` subnets and security groups (`None`: no network configuration).
    pub network: Option<(Vec<String>, Vec<String>)>,
}

/// The parts of a simulated rollout, in seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TaskTimes {
    /// From the task's creation to the start of the image pull (ENI, scheduling).
    pub provision: f64,
    pub pull: f64,
    /// From the pulled image to the container running.
    pub start: f64,
    /// From running to healthy in the target group.
    pub health: f64,
    /// The old tasks' draining (the target group's deregistration delay).
    pub drain: f64,
}

impl Default for Seed {
    fn default() -> Self {
        Seed {
            cluster: "stage-cluster".into(),
            service: "stage-backend".into(),
            family: "cloudshop-backend".into(),
            containers: vec![(
                "backend".into(),
                "123456789012.dkr.ecr.us-east-1.amazonaws.com/stage-cloudshop-backend:old".into(),
            )],
            desired: 2,
            log_group: None,
            target_group: None,
            task_times: None,
            network: Some((
                vec!["subnet-0a1".into(), "subnet-0b2".into()],
                vec!["sg-0c3".into()],
            )),
        }
    }
}

const ACCOUNT: &str = "123456789012";
const REGION: &str = "us-east-1";
/// Operations that change something.
const MUTATING: &[&str] = &[
    "RegisterTaskDefinition",
    "UpdateService",
    "DeregisterTaskDefinition",
    "CreateService",
    "DeleteService",
    "StopTask",
    "RunTask",
    "ContinueServiceDeployment",
    "StopServiceDeployment",
];

#[derive(Debug, Clone)]
struct Dep {
    id: String,
    status: String,
    td: String,
    rollout: String,
    reason: String,
    running: i32,
    desired: i32,
    failed: i32,
    polls: u32,
    script: Scenario,
    created: f64,
}

#[derive(Debug, Clone)]
struct Sd {
    arn: String,
    status: String,
    reason: String,
    stage: String,
    polls: u32,
    after: u32,
    rollback: bool,
    rollback_fails: bool,
    created: f64,
}

#[derive(Debug)]
struct State {
    seed: Seed,
    scenario: Scenario,
    service_status: String,
    desired: i32,
    td: String,
    deps: Vec<Dep>,
    sds: Vec<Sd>,
    events: Vec<(String, f64, String)>,
    tds: Vec<Value>,
    tags: Vec<(String, Value)>,
    stopped: Vec<Value>,
    /// Tasks of the current revision (only with `Seed::task_times`).
    running: Vec<Value>,
    calls: Vec<(String, Value)>,
    /// When each of `calls` arrived.
    call_times: Vec<Instant>,
    updates: u32,
    throttle_left: u32,
    clock: f64,
    seq: u32,
    /// DescribeServices calls left during which a new service deployment is not shown yet.
    sd_lag: u32,
    /// How updates after the first go (default: complete after two polls).
    later: Option<Scenario>,
    /// After this many DescribeServices, another deploy points the service at revision 1.
    foreign_after: Option<u32>,
    describes: u32,
    /// Every rolling deployment ever made, oldest first: (id, revision, status, createdAt), for
    /// `ListServiceDeployments` / `DescribeServiceRevisions`. Seeded with revision 1, then 2, SUCCESSFUL.
    history: Vec<(String, String, String, f64)>,
    /// Clock-based progress and task modelling, when set.
    timing: Option<Timing>,
    /// The last rolling step and the last service-deployment step (with timing).
    tick: Option<Instant>,
    sd_tick: Option<Instant>,
    /// Tasks started by deployments (with timing).
    tasks: Vec<Task>,
    /// Stopped tasks of `stopped` still stopping: (index, requested at), with timing.
    stopping: Vec<(usize, Instant)>,
    /// Appended to every later event message and stop reason.
    append: String,
    /// The sim's epoch start, for `createdAt`/`startedAt`/`stoppingAt`/`stoppedAt` of modelled tasks.
    born: Instant,
    /// Tasks started by `RunTask`.
    one_offs: run_task::OneOffs,
    /// The service deployments of a progressive service.
    progressive: Option<Progress>,
}

fn td_arn(family: &str, rev: u32) -> String {
    format!("arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/{family}:{rev}")
}

impl State {
    fn new(seed: Seed, scenario: Scenario) -> State {
        let mut tds = Vec::new();
        for rev in 1..=2u32 {
            let containers: Vec<Value> = seed
                .containers
                .iter()
                .map(|(n, i)| {
                    let mut c = json!({"name": n, "image": if rev == 1 { format!("{i}-rev1") } else { i.clone() },
                           "essential": true, "portMappings": [{"containerPort": 8000, "protocol": "tcp"}],
                           "environment": [{"name": "ENV", "value": "stage"},
                                           {"name": "DB_PASSWORD", "value": "s3cr3t-db-pass"}]});
                    if let Some(group) = &seed.log_group {
                        c["logConfiguration"] = json!({"logDriver": "awslogs", "options": {
                            "awslogs-group": group, "awslogs-region": REGION,
                            "awslogs-stream-prefix": "ecs"}});
                    }
                    c
                })
                .collect();
            tds.push(json!({
                "taskDefinitionArn": td_arn(&seed.family, rev),
                "family": seed.family, "revision": rev, "status": "ACTIVE",
                "containerDefinitions": containers,
                "cpu": "256", "memory": "512", "networkMode": "awsvpc",
                "requiresCompatibilities": ["FARGATE"],
                "executionRoleArn": format!("arn:aws:iam::{ACCOUNT}:role/ecsTaskExecutionRole"),
                // A field newer than any SDK model: it must survive a deploy untouched.
                "futureSetting": {"mode": "strict", "levels": [1, 2]},
                "requiresAttributes": [{"name": "com.amazonaws.ecs.capability.ecr-auth"}],
                "compatibilities": ["EC2", "FARGATE"],
                "registeredAt": 1.7e9, "registeredBy": format!("arn:aws:iam::{ACCOUNT}:role/terraform")
            }));
        }
        let td = td_arn(&seed.family, 2);
        let progressive = match &scenario {
            Scenario::Progressive(plan) => Some(Progress(Arc::new(Mutex::new(
                progressive::Model::new(plan.clone(), &seed.cluster, &seed.service, &td),
            )))),
            _ => None,
        };
        let seed_family = seed.family.clone();
        let tags = vec![(
            td.clone(),
            json!([{"key": "managed-by", "value": "terraform"}]),
        )];
        let throttle_left = match scenario {
            Scenario::Throttle { times, .. } => times,
            _ => 0,
        };
        let sds = if matches!(
            scenario,
            Scenario::BlueGreen { .. }
                | Scenario::BlueGreenRollbackFails { .. }
                | Scenario::BlueGreenLagging { .. }
        ) {
            vec![Sd {
                arn: format!(
                    "arn:aws:ecs:{REGION}:{ACCOUNT}:service-deployment/{}/{}/sd-previous",
                    seed.cluster, seed.service
                ),
                status: "SUCCESSFUL".into(),
                reason: "Service deployment completed".into(),
                stage: "CLEAN_UP".into(),
                polls: 0,
                after: 0,
                rollback: false,
                rollback_fails: false,
                created: 1.7e9,
            }]
        } else {
            Vec::new()
        };
        State {
            desired: seed.desired,
            deps: vec![Dep {
                id: "ecs-svc/1000".into(),
                status: "PRIMARY".into(),
                td: td.clone(),
                rollout: "COMPLETED".into(),
                reason: "ECS deployment ecs-svc/1000 completed.".into(),
                running: seed.desired,
                desired: seed.desired,
                failed: 0,
                polls: 0,
                script: Scenario::Succeed { after: 0 },
                created: 1.7e9,
            }],
            events: vec![(
                "ev-0".into(),
                1.7e9,
                format!("(service {}) has reached a steady state.", seed.service),
            )],
            seed,
            scenario,
            service_status: "ACTIVE".into(),
            td,
            sds,
            tds,
            tags,
            stopped: Vec::new(),
            running: Vec::new(),
            calls: Vec::new(),
            call_times: Vec::new(),
            updates: 0,
            throttle_left,
            clock: 1.8e9,
            seq: 0,
            sd_lag: 0,
            later: None,
            foreign_after: None,
            describes: 0,
            history: vec![
                (
                    "ecs-svc/0999".into(),
                    td_arn(&seed_family, 1),
                    "SUCCESSFUL".into(),
                    1.6e9,
                ),
                (
                    "ecs-svc/1000".into(),
                    td_arn(&seed_family, 2),
                    "SUCCESSFUL".into(),
                    1.7e9,
                ),
            ],
            timing: None,
            tick: None,
            sd_tick: None,
            tasks: Vec::new(),
            stopping: Vec::new(),
            append: String::new(),
            born: Instant::now(),
            one_offs: run_task::OneOffs::default(),
            progressive,
        }
    }

    /// Epoch seconds of an instant (the sim's clock starts at 1.8e9).
    fn epoch(&self, at: Instant) -> f64 {
        1.8e9 + at.saturating_duration_since(self.born).as_secs_f64()
    }

    /// How many scenario steps are due: one per call without timing, else one per elapsed `step`.
    fn due(timing: Option<Timing>, tick: &mut Option<Instant>) -> u32 {
        let Some(t) = timing else { return 1 };
        let now = Instant::now();
        let last = *tick.get_or_insert(now);
        let step = t.step.max(Duration::from_millis(1));
        let n = (now.saturating_duration_since(last).as_nanos() / step.as_nanos()) as u32;
        *tick = Some(last + step * n);
        n
    }

    /// A task's `lastStatus` now.
    fn task_status(&self, t: &Task) -> &'static str {
        let timing = self.timing.unwrap_or_default();
        if let Some((at, ..)) = &t.stop {
            return if at.elapsed() >= timing.stopping {
                "STOPPED"
            } else {
                "DEPROVISIONING"
            };
        }
        let age = t.created.elapsed();
        if age < timing.provisioning {
            "PROVISIONING"
        } else if age < timing.provisioning + timing.pending {
            "PENDING"
        } else {
            "RUNNING"
        }
    }

    fn task_json(&self, t: &Task) -> Value {
        let timing = self.timing.unwrap_or_default();
        let status = self.task_status(t);
        let mut v = json!({
            "taskArn": t.arn, "taskDefinitionArn": t.td, "clusterArn": self.cluster_arn(),
            "group": format!("service:{}", self.seed.service), "startedBy": t.dep,
            "launchType": "FARGATE", "lastStatus": status,
            "desiredStatus": if t.stop.is_some() { "STOPPED" } else { "RUNNING" },
            "createdAt": t.created_at,
            "containers": [{"name": "backend", "lastStatus": status}]
        });
        let started = t.created + timing.provisioning + timing.pending;
        if started <= Instant::now() {
            v["pullStartedAt"] = json!(self.epoch(t.created + timing.provisioning));
            v["startedAt"] = json!(self.epoch(started));
        }
        if let Some((at, at_epoch, reason, code)) = &t.stop {
            v["stoppingAt"] = json!(at_epoch);
            v["stoppedReason"] = json!(reason);
            v["stopCode"] = json!(code);
            if status == "STOPPED" {
                v["stoppedAt"] = json!(self.epoch(*at + timing.stopping));
                v["executionStoppedAt"] = json!(self.epoch(*at + timing.stopping));
            }
        }
        v
    }

    /// Start `n` tasks of deployment `dep` (with timing).
    fn start_tasks(&mut self, dep: &str, td: &str, n: i32) {
        for _ in 0..n.max(0) {
            let now = Instant::now();
            self.tasks.push(Task {
                arn: format!(
                    "arn:aws:ecs:{REGION}:{ACCOUNT}:task/{}/r{:031}",
                    self.seed.cluster,
                    self.tasks.len() + 1
                ),
                td: td.to_string(),
                dep: dep.to_string(),
                created: now,
                created_at: self.epoch(now),
                stop: None,
            });
        }
    }

    /// Request the stop of every live task of the deployments other than `keep` (with timing): the
    /// scheduler scales the replaced deployments in.
    fn scale_in_except(&mut self, keep: &str) {
        let now = Instant::now();
        let at = self.epoch(now);
        for t in self.tasks.iter_mut() {
            if t.dep != keep && t.stop.is_none() {
                t.stop = Some((
                    now,
                    at,
                    format!("Scaling activity initiated by (deployment {keep})"),
                    "ServiceSchedulerInitiated".into(),
                ));
            }
        }
    }

    /// Stopping tasks whose time is up become STOPPED (with timing).
    fn refresh_stopping(&mut self) {
        let Some(timing) = self.timing else { return };
        let due: Vec<(usize, Instant)> = self
            .stopping
            .iter()
            .filter(|(_, at)| at.elapsed() >= timing.stopping)
            .copied()
            .collect();
        self.stopping
            .retain(|(_, at)| at.elapsed() < timing.stopping);
        for (i, at) in due {
            let stopped_at = self.epoch(at + timing.stopping);
            if let Some(t) = self.stopped.get_mut(i) {
                t["lastStatus"] = json!("STOPPED");
                t["stoppedAt"] = json!(stopped_at);
                t["executionStoppedAt"] = json!(stopped_at);
            }
        }
    }

    /// Bring the deployment history up to date with the deployments ECS shows.
    fn sync_history(&mut self) {
        for d in &self.deps {
            let status = match d.rollout.as_str() {
                "COMPLETED" => "SUCCESSFUL",
                "FAILED" => "FAILED",
                _ => "IN_PROGRESS",
            };
            match self.history.iter_mut().find(|h| h.0 == d.id) {
                Some(h) => h.2 = status.into(),
                None => self
                    .history
                    .push((d.id.clone(), d.td.clone(), status.into(), d.created)),
            }
        }
    }

    fn revision_arn(&self, n: usize) -> String {
        format!(
            "arn:aws:ecs:{REGION}:{ACCOUNT}:service-revision/{}/{}/{n}",
            self.seed.cluster, self.seed.service
        )
    }

    fn now(&mut self) -> f64 {
        self.clock += 1.0;
        self.clock
    }

    fn event(&mut self, msg: String) {
        self.seq += 1;
        let t = self.now();
        let msg = format!("{msg}{}", self.append);
        self.events.insert(0, (format!("ev-{}", self.seq), t, msg));
    }

    fn cluster_arn(&self) -> String {
        format!(
            "arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/{}",
            self.seed.cluster
        )
    }

    fn service_arn(&self) -> String {
        format!(
            "arn:aws:ecs:{REGION}:{ACCOUNT}:service/{}/{}",
            self.seed.cluster, self.seed.service
        )
    }

    fn find_td(&self, r: &str) -> Option<&Value> {
        let family = &self.seed.family;
        self.tds.iter().rev().find(|t| {
            let arn = t["taskDefinitionArn"].as_str().unwrap_or("");
            let rev = t["revision"].as_u64().unwrap_or(0);
            arn == r
                || format!("{}:{rev}", t["family"].as_str().unwrap_or("")) == r
                || (r == family && t["status"] == "ACTIVE")
        })
    }

    fn strategy(&self) -> &'static str {
        match &self.scenario {
            Scenario::Progressive(plan) => plan.strategy.name(),
            Scenario::BlueGreen { .. }
            | Scenario::BlueGreenRollbackFails { .. }
            | Scenario::BlueGreenLagging { .. } => "BLUE_GREEN",
            _ => "ROLLING",
        }
    }

    fn service_json(&self) -> Value {
        let deployments: Vec<Value> = self
            .deps
            .iter()
            .map(|d| {
                let (running, pending) = self.counts(d);
                json!({"id": d.id, "status": d.status, "taskDefinition": d.td, "desiredCount": d.desired,
                       "pendingCount": pending,
                       "runningCount": running, "failedTasks": d.failed, "createdAt": d.created,
                       "updatedAt": d.created, "launchType": "FARGATE", "rolloutState": d.rollout,
                       "rolloutStateReason": d.reason})
            })
            .collect();
        let events: Vec<Value> = self
            .events
            .iter()
            .map(|(id, t, m)| json!({"id": id, "createdAt": t, "message": m}))
            .collect();
        let cb_rollback = matches!(self.scenario, Scenario::CircuitBreaker { .. });
        let load_balancers: Vec<Value> = self
            .seed
            .target_group
            .iter()
            .map(|tg| json!({"targetGroupArn": tg, "containerName": "backend", "containerPort": 8000}))
            .collect();
        // The service deployments ECS shows: a new one only once the lag is over.
        let shown = self
            .sds
            .len()
            .saturating_sub(if self.sd_lag > 0 { 1 } else { 0 });
        let current = self.sds[..shown].last().map(|s| s.arn.clone());
        let network = self.seed.network.as_ref().map(|(subnets, groups)| {
            json!({"awsvpcConfiguration": {"subnets": subnets, "securityGroups": groups,
                   "assignPublicIp": "DISABLED"}})
        });
        let mut svc = json!({
            "networkConfiguration": network, "platformVersion": "LATEST",
            "currentServiceDeployment": current,
            "loadBalancers": load_balancers, "healthCheckGracePeriodSeconds": 0,
            "serviceArn": self.service_arn(), "serviceName": self.seed.service, "clusterArn": self.cluster_arn(),
            "status": self.service_status, "desiredCount": self.desired,
            "runningCount": self.deps.iter().map(|d| d.running).sum::<i32>(), "pendingCount": 0,
            "launchType": "FARGATE", "taskDefinition": self.td,
            "deploymentConfiguration": {
                "deploymentCircuitBreaker": {"enable": true, "rollback": cb_rollback},
                "maximumPercent": 200, "minimumHealthyPercent": 100, "strategy": self.strategy()
            },
            "deploymentController": {"type": "ECS"},
            "deployments": deployments, "events": events, "createdAt": 1.7e9
        });
        self.decorate_service(&mut svc);
        svc
    }

    /// A deployment's running and pending task counts: from its tasks with timing (the ones it started;
    /// the first deployment's are all running), else from its script.
    fn counts(&self, d: &Dep) -> (i32, i32) {
        let pending = if d.rollout == "IN_PROGRESS" {
            d.desired - d.running
        } else {
            0
        };
        if self.timing.is_none() || !self.tasks.iter().any(|t| t.dep == d.id) {
            return (d.running, pending);
        }
        let mut running = 0;
        let mut pending = 0;
        for t in self.tasks.iter().filter(|t| t.dep == d.id) {
            match self.task_status(t) {
                "RUNNING" => running += 1,
                "PROVISIONING" | "PENDING" => pending += 1,
                _ => {}
            }
        }
        (running, pending)
    }

    /// Whether every task deployment `id` started is RUNNING (always true without timing).
    fn tasks_running(&self, id: &str) -> bool {
        self.timing.is_none()
            || self
                .tasks
                .iter()
                .filter(|t| t.dep == id)
                .all(|t| self.task_status(t) == "RUNNING")
    }

    /// One poll's worth of progress for every deployment in progress.
    fn advance(&mut self) {
        let service = self.seed.service.clone();
        let n = self.deps.len();
        for i in 0..n {
            if self.deps[i].rollout != "IN_PROGRESS" {
                continue;
            }
            self.deps[i].polls += 1;
            let d = self.deps[i].clone();
            match d.script {
                Scenario::Succeed { after }
                | Scenario::Throttle { after, .. }
                | Scenario::BlueGreen { after, .. }
                | Scenario::BlueGreenRollbackFails { after }
                | Scenario::BlueGreenLagging { after, .. } => {
                    if d.polls >= after && self.tasks_running(&d.id) {
                        self.deps[i].rollout = "COMPLETED".into();
                        self.deps[i].running = d.desired;
                        self.deps[i].reason = format!("ECS deployment {} completed.", d.id);
                        let old: Vec<String> = self
                            .deps
                            .iter()
                            .filter(|x| x.status != "PRIMARY")
                            .map(|x| x.td.clone())
                            .collect();
                        self.deps.retain(|x| x.status == "PRIMARY");
                        if let Some(times) = self.seed.task_times {
                            self.timeline(&d, &old, times);
                        }
                        if self.timing.is_some() {
                            self.scale_in_except(&d.id);
                        }
                        self.event(format!("(service {service}) has reached a steady state."));
                        return;
                    } else if d.polls + 1 >= after {
                        self.deps[i].running = d.desired;
                        self.event(format!(
                            "(service {service}) registered {} targets in (target-group stage-tg)",
                            d.desired
                        ));
                    } else {
                        self.deps[i].running = (d.running + 1).min(d.desired);
                        self.event(format!(
                            "(service {service}) has started 1 tasks: (task t{}).",
                            self.seq
                        ));
                    }
                }
                Scenario::CircuitBreakerGone { after } => {
                    self.stop_task(&d.td, StopReason::CannotPull);
                    self.deps[i].failed += 1;
                    if d.polls >= after {
                        let previous = self
                            .deps
                            .iter()
                            .find(|x| x.id != d.id)
                            .map(|x| x.td.clone())
                            .unwrap_or_default();
                        let rollback = self.ecs_rollback(&previous, d.desired, 1);
                        let rollback_id = rollback.id.clone();
                        self.deps.clear();
                        self.deps.push(rollback);
                        self.td = previous;
                        self.event(format!(
                            "(service {service}) (deployment {}) deployment failed: tasks failed to start.",
                            d.id
                        ));
                        self.event(format!(
                            "(service {service}) rolling back to deployment {rollback_id}."
                        ));
                        return;
                    }
                }
                Scenario::CircuitBreaker { after } => {
                    self.stop_task(&d.td, StopReason::CannotPull);
                    self.deps[i].failed += 1;
                    if d.polls >= after {
                        let reason =
                            "ECS deployment circuit breaker: tasks failed to start.".to_string();
                        self.deps[i].rollout = "FAILED".into();
                        self.deps[i].status = "ACTIVE".into();
                        self.deps[i].reason = reason.clone();
                        let previous = self
                            .deps
                            .iter()
                            .find(|x| x.id != d.id)
                            .map(|x| x.td.clone())
                            .unwrap_or_default();
                        self.deps.retain(|x| x.id == d.id);
                        let rollback = self.ecs_rollback(&previous, d.desired, 2);
                        self.deps.insert(0, rollback);
                        self.td = previous;
                        self.event(format!(
                            "(service {service}) (deployment {}) deployment failed: {reason}",
                            d.id
                        ));
                        return;
                    }
                }
                Scenario::TasksFail { reason, after } => {
                    self.stop_task(&d.td, reason);
                    self.deps[i].failed += 1;
                    self.event(format!(
                        "(service {service}) has stopped 1 running tasks: (task t{}).",
                        self.seq
                    ));
                    if d.polls >= after {
                        self.deps[i].rollout = "FAILED".into();
                        self.deps[i].reason =
                            "ECS deployment circuit breaker: tasks failed to start.".into();
                    }
                }
                Scenario::NeverEnds | Scenario::Progressive(_) => {}
                Scenario::DeletedMidway { after } => {
                    if d.polls >= after {
                        self.service_status = "INACTIVE".into();
                    }
                }
            }
        }
    }

    /// The PRIMARY deployment ECS's circuit breaker starts to go back to `previous`, complete after
    /// `after` polls.
    fn ecs_rollback(&self, previous: &str, desired: i32, after: u32) -> Dep {
        Dep {
            id: format!("ecs-svc/{}", 2000 + self.seq),
            status: "PRIMARY".into(),
            td: previous.to_string(),
            rollout: "IN_PROGRESS".into(),
            reason: "ECS deployment circuit breaker: rolling back to the previous deployment."
                .into(),
            running: 0,
            desired,
            failed: 0,
            polls: 0,
            script: Scenario::Succeed { after },
            created: self.clock,
        }
    }

    /// The tasks and events of a rollout of `d` that replaced the tasks of `old`, with `times`.
    fn timeline(&mut self, d: &Dep, old: &[String], times: TaskTimes) {
        let service = self.seed.service.clone();
        let c = d.created + 1.0;
        let started = c + times.provision + times.pull + times.start;
        let healthy = started + times.health;
        let n = d.desired.max(0) as u64;
        self.running.clear();
        for k in 0..n {
            let arn = format!(
                "arn:aws:ecs:{REGION}:{ACCOUNT}:task/{}/r{:031}",
                self.seed.cluster,
                k + 1
            );
            self.running.push(json!({
                "taskArn": arn, "taskDefinitionArn": d.td, "lastStatus": "RUNNING",
                "desiredStatus": "RUNNING", "healthStatus": "HEALTHY", "createdAt": c,
                "connectivityAt": c + times.provision / 2.0, "pullStartedAt": c + times.provision,
                "pullStoppedAt": c + times.provision + times.pull, "startedAt": started,
                "containers": [{"name": "backend", "lastStatus": "RUNNING", "healthStatus": "HEALTHY"}]
            }));
        }
        for (k, td) in old.iter().enumerate() {
            for j in 0..n {
                let arn = format!(
                    "arn:aws:ecs:{REGION}:{ACCOUNT}:task/{}/o{:031}",
                    self.seed.cluster,
                    (k as u64) * 100 + j + 1
                );
                self.stopped.push(json!({
                    "taskArn": arn, "taskDefinitionArn": td, "lastStatus": "STOPPED",
                    "desiredStatus": "STOPPED", "stopCode": "ServiceSchedulerInitiated",
                    "stoppedReason": format!("Scaling activity initiated by (deployment {})", d.id),
                    "createdAt": 1.7e9, "startedAt": 1.7e9 + 30.0,
                    "stoppingAt": healthy + times.drain, "executionStoppedAt": healthy + times.drain + 1.0,
                    "stoppedAt": healthy + times.drain + 2.0,
                    "containers": [{"name": "backend", "exitCode": 0, "lastStatus": "STOPPED"}]
                }));
            }
        }
        let mut ev = |t: f64, msg: String| {
            self.seq += 1;
            self.events.insert(0, (format!("ev-{}", self.seq), t, msg));
        };
        ev(
            c,
            format!("(service {service}) has started {n} tasks: (task r1)."),
        );
        ev(
            started + 1.0,
            format!("(service {service}) registered {n} targets in (target-group stage-tg)"),
        );
        if !old.is_empty() {
            ev(
                healthy,
                format!("(service {service}) has begun draining connections on {n} tasks."),
            );
            ev(
                healthy,
                format!("(service {service}) deregistered {n} targets in (target-group stage-tg)"),
            );
            ev(
                healthy + times.drain + 2.0,
                format!("(service {service}) has stopped {n} running tasks: (task o1)."),
            );
        }
        self.clock = self.clock.max(healthy + times.drain + 3.0);
    }

    fn stop_task(&mut self, td: &str, reason: StopReason) {
        self.seq += 1;
        let arn = format!(
            "arn:aws:ecs:{REGION}:{ACCOUNT}:task/{}/{}",
            self.seed.cluster,
            EcsSim::stopped_task_id(self.stopped.len() as u64 + 1)
        );
        let mut task = reason.task_json(&arn, td);
        if !self.append.is_empty() {
            let r = format!(
                "{}{}",
                task["stoppedReason"].as_str().unwrap_or(""),
                self.append
            );
            task["stoppedReason"] = json!(r);
            let c = format!(
                "{}{}",
                task["containers"][0]["reason"].as_str().unwrap_or(""),
                self.append
            );
            task["containers"][0]["reason"] = json!(c);
        }
        let now = Instant::now();
        let at = self.epoch(now);
        task["stoppingAt"] = json!(at);
        task["createdAt"] = json!(at - 30.0);
        task["group"] = json!(format!("service:{}", self.seed.service));
        if self.timing.is_some() {
            // Stop requested: STOPPED once `stopping` has passed.
            task["lastStatus"] = json!("DEPROVISIONING");
            self.stopping.push((self.stopped.len(), now));
        } else {
            task["stoppedAt"] = json!(at);
        }
        self.stopped.push(task);
    }

    fn advance_sd(&mut self, sd: usize) {
        let s = &mut self.sds[sd];
        // ECS's rollback takes its time: requested, in progress, then its end.
        match s.status.as_str() {
            "STOP_REQUESTED" => {
                s.status = "STOPPED".into();
                s.reason = "Service deployment stopped: a newer deployment replaced it".into();
                return;
            }
            "ROLLBACK_REQUESTED" => {
                s.status = "ROLLBACK_IN_PROGRESS".into();
                return;
            }
            "ROLLBACK_IN_PROGRESS" => {
                if s.rollback_fails {
                    s.status = "ROLLBACK_FAILED".into();
                    s.reason =
                        "Rollback failed: tasks of the previous revision failed to start".into();
                } else {
                    s.status = "ROLLBACK_SUCCESSFUL".into();
                }
                return;
            }
            "PENDING" | "IN_PROGRESS" => {}
            _ => return,
        }
        s.polls += 1;
        let stages = [
            "SCALE_UP",
            "TEST_TRAFFIC_SHIFT",
            "PRODUCTION_TRAFFIC_SHIFT",
            "BAKE_TIME",
        ];
        if s.polls >= s.after {
            if s.rollback {
                s.status = "ROLLBACK_REQUESTED".into();
                s.reason = "Rolled back: alarm `stage-5xx` went into ALARM during BAKE_TIME".into();
            } else {
                s.status = "SUCCESSFUL".into();
                s.stage = "CLEAN_UP".into();
                s.reason = "Service deployment completed".into();
            }
        } else {
            s.status = "IN_PROGRESS".into();
            s.stage = stages[(s.polls as usize).min(stages.len() - 1)].into();
        }
    }
}

fn error(kind: &str, message: &str) -> (u16, Value) {
    (
        400,
        json!({"__type": format!("com.amazonaws.ecs#{kind}"), "message": message}),
    )
}

fn handle(st: &mut State, op: &str, body: &Value) -> (u16, Value) {
    let cluster_ok = |st: &State| {
        let c = body["cluster"].as_str().unwrap_or("default");
        c == st.seed.cluster || c == st.cluster_arn()
    };
    st.refresh_stopping();
    st.mirror_progressive();
    if let Some(reply) = st.progressive_op(op, body) {
        return reply;
    }
    match op {
        "DescribeServices" => {
            if st.foreign_after.is_some_and(|n| st.describes >= n) {
                st.td = td_arn(&st.seed.family, 1);
                st.foreign_after = None;
            }
            st.describes += 1;
            if !cluster_ok(st) {
                return error("ClusterNotFoundException", "Cluster not found.");
            }
            let wanted: Vec<String> = body["services"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect();
            let known = wanted
                .iter()
                .any(|w| *w == st.seed.service || *w == st.service_arn());
            if !known {
                let failures: Vec<Value> = wanted.iter().map(|w| json!({"arn": format!("arn:aws:ecs:{REGION}:{ACCOUNT}:service/{}/{w}", st.seed.cluster), "reason": "MISSING"})).collect();
                return (200, json!({"services": [], "failures": failures}));
            }
            if st.updates > 0 {
                if st.throttle_left > 0 {
                    st.throttle_left -= 1;
                    return error("ThrottlingException", "Rate exceeded");
                }
                if st.strategy() == "ROLLING" {
                    for _ in 0..State::due(st.timing, &mut st.tick) {
                        st.advance();
                    }
                }
                st.sd_lag = st.sd_lag.saturating_sub(1);
            }
            (
                200,
                json!({"services": [st.service_json()], "failures": []}),
            )
        }
        "DescribeTaskDefinition" => {
            let r = body["taskDefinition"].as_str().unwrap_or("");
            match st.find_td(r).cloned() {
                Some(td) => {
                    let arn = td["taskDefinitionArn"].as_str().unwrap_or("").to_string();
                    let tags = st
                        .tags
                        .iter()
                        .find(|(a, _)| *a == arn)
                        .map(|(_, t)| t.clone())
                        .unwrap_or(json!([]));
                    (200, json!({"taskDefinition": td, "tags": tags}))
                }
                None => error("ClientException", "Unable to describe task definition."),
            }
        }
        "RegisterTaskDefinition" => {
            let Value::Object(mut map) = body.clone() else {
                return error("ClientException", "body is not an object");
            };
            for k in [
                "taskDefinitionArn",
                "revision",
                "status",
                "requiresAttributes",
                "compatibilities",
                "registeredAt",
                "registeredBy",
            ] {
                if map.contains_key(k) {
                    return error(
                        "ClientException",
                        &format!("Unexpected key '{k}' found in params"),
                    );
                }
            }
            let family = map
                .get("family")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            if family.is_empty() || !map.get("containerDefinitions").is_some_and(Value::is_array) {
                return error(
                    "ClientException",
                    "family and containerDefinitions are required",
                );
            }
            let tags = map.remove("tags").unwrap_or(json!([]));
            let rev = st
                .tds
                .iter()
                .filter(|t| t["family"] == family.as_str())
                .count() as u32
                + 1;
            let arn = td_arn(&family, rev);
            map.insert("taskDefinitionArn".into(), json!(arn));
            map.insert("revision".into(), json!(rev));
            map.insert("status".into(), json!("ACTIVE"));
            map.insert("compatibilities".into(), json!(["EC2", "FARGATE"]));
            map.insert("registeredAt".into(), json!(st.now()));
            let td = Value::Object(map);
            st.tds.push(td.clone());
            st.tags.push((arn, tags.clone()));
            (200, json!({"taskDefinition": td, "tags": tags}))
        }
        "UpdateService" => {
            if !cluster_ok(st) {
                return error("ClusterNotFoundException", "Cluster not found.");
            }
            if body["service"].as_str() != Some(st.seed.service.as_str())
                || st.service_status != "ACTIVE"
            {
                return error("ServiceNotFoundException", "Service not found.");
            }
            if let Some(why) = st.progressive_refusal() {
                return error("InvalidParameterException", &why);
            }
            let r = body["taskDefinition"].as_str().unwrap_or("");
            let Some(arn) = st
                .find_td(r)
                .and_then(|t| t["taskDefinitionArn"].as_str())
                .map(str::to_string)
            else {
                return error("ClientException", "TaskDefinition not found.");
            };
            if let Some(d) = body["desiredCount"].as_i64() {
                st.desired = d as i32;
            }
            st.updates += 1;
            let script = if st.updates == 1 || st.progressive.is_some() {
                st.scenario.clone()
            } else if st.timing.is_some() && st.strategy() == "BLUE_GREEN" {
                // With timing, a later update of a blue/green service is a service deployment too.
                Scenario::BlueGreen {
                    after: 2,
                    rollback: false,
                }
            } else if let Some(later) = st.later.clone() {
                later
            } else {
                Scenario::Succeed { after: 2 }
            };
            for d in st.deps.iter_mut() {
                d.status = "ACTIVE".into();
            }
            st.seq += 1;
            let id = format!("ecs-svc/{}", 3000 + st.seq);
            let created = st.now();
            st.deps.insert(
                0,
                Dep {
                    id: id.clone(),
                    status: "PRIMARY".into(),
                    td: arn.clone(),
                    rollout: "IN_PROGRESS".into(),
                    reason: "ECS deployment in progress.".into(),
                    running: 0,
                    desired: st.desired,
                    failed: 0,
                    polls: 0,
                    script: script.clone(),
                    created,
                },
            );
            st.td = arn.clone();
            if let Some(p) = &st.progressive {
                p.0.lock().unwrap().start(&arn, st.desired);
            }
            if st.timing.is_some() {
                let desired = st.desired;
                st.start_tasks(&id, &arn, desired);
                st.tick = Some(Instant::now());
                st.sd_tick = Some(Instant::now());
                // A newer update supersedes a service deployment still under way.
                for sd in st.sds.iter_mut() {
                    if sd.status == "PENDING" || sd.status == "IN_PROGRESS" {
                        sd.status = "STOP_REQUESTED".into();
                    }
                }
            }
            let bg = match script {
                Scenario::BlueGreen { after, rollback } => Some((after, rollback, false, 0)),
                Scenario::BlueGreenRollbackFails { after } => Some((after, true, true, 0)),
                Scenario::BlueGreenLagging { after, lag } => Some((after, false, false, lag)),
                _ => None,
            };
            if let Some((after, rollback, rollback_fails, lag)) = bg {
                // +1: the UpdateService response itself counts as a read.
                st.sd_lag = lag + 1;
                st.sds.push(Sd {
                    arn: format!(
                        "arn:aws:ecs:{REGION}:{ACCOUNT}:service-deployment/{}/{}/sd{}",
                        st.seed.cluster, st.seed.service, st.seq
                    ),
                    status: "PENDING".into(),
                    reason: String::new(),
                    stage: "RECONCILE_SERVICE".into(),
                    polls: 0,
                    after,
                    rollback,
                    rollback_fails,
                    created,
                });
            }
            (200, json!({"service": st.service_json()}))
        }
        "ListTasks" => {
            let stopped = body["desiredStatus"] == "STOPPED";
            let mut arns: Vec<Value> = if stopped {
                st.stopped
                    .iter()
                    .rev()
                    .map(|t| t["taskArn"].clone())
                    .collect()
            } else {
                st.running.iter().map(|t| t["taskArn"].clone()).collect()
            };
            arns.extend(
                st.tasks
                    .iter()
                    .filter(|t| t.stop.is_some() == stopped)
                    .map(|t| json!(t.arn)),
            );
            (200, json!({"taskArns": arns}))
        }
        "DescribeTasks" => {
            let wanted: Vec<&str> = body["tasks"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let mut tasks: Vec<Value> = st
                .stopped
                .iter()
                .chain(st.running.iter())
                .filter(|t| wanted.contains(&t["taskArn"].as_str().unwrap_or("")))
                .cloned()
                .collect();
            tasks.extend(
                st.tasks
                    .iter()
                    .filter(|t| wanted.contains(&t.arn.as_str()))
                    .map(|t| st.task_json(t)),
            );
            let cluster = st.cluster_arn();
            tasks.extend(st.one_offs.describe(&wanted, &cluster));
            (200, json!({"tasks": tasks, "failures": []}))
        }
        "RunTask" => {
            if !cluster_ok(st) {
                return error("ClusterNotFoundException", "Cluster not found.");
            }
            let td = st
                .find_td(body["taskDefinition"].as_str().unwrap_or(""))
                .cloned();
            let cluster = st.cluster_arn();
            st.one_offs.run_task(body, td.as_ref(), &cluster)
        }
        "StopTask" => {
            let cluster = st.cluster_arn();
            st.one_offs.stop(body, &cluster)
        }
        "ListTaskDefinitions" => {
            let prefix = body["familyPrefix"].as_str().unwrap_or("");
            let mut arns: Vec<Value> = st
                .tds
                .iter()
                .filter(|t| {
                    t["family"].as_str().unwrap_or("").starts_with(prefix)
                        && t["status"] == "ACTIVE"
                })
                .map(|t| t["taskDefinitionArn"].clone())
                .collect();
            if body["sort"] == "DESC" {
                arns.reverse();
            }
            (200, json!({"taskDefinitionArns": arns}))
        }
        "ListServiceDeployments" if st.sds.is_empty() => {
            let wanted: Vec<&str> = body["status"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let sds: Vec<Value> = st
                .history
                .iter()
                .enumerate()
                .rev()
                .filter(|(_, h)| wanted.is_empty() || wanted.contains(&h.2.as_str()))
                .map(|(i, h)| json!({
                    "serviceDeploymentArn": format!("arn:aws:ecs:{REGION}:{ACCOUNT}:service-deployment/{}/{}/{}",
                        st.seed.cluster, st.seed.service, h.0.replace('/', "-")),
                    "serviceArn": st.service_arn(), "clusterArn": st.cluster_arn(),
                    "createdAt": h.3, "status": h.2, "targetServiceRevisionArn": st.revision_arn(i)}))
                .collect();
            (200, json!({"serviceDeployments": sds}))
        }
        "DescribeServiceRevisions" => {
            let wanted: Vec<&str> = body["serviceRevisionArns"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let revs: Vec<Value> = (0..st.history.len())
                .filter(|i| wanted.contains(&st.revision_arn(*i).as_str()))
                .map(|i| {
                    json!({"serviceRevisionArn": st.revision_arn(i), "serviceArn": st.service_arn(),
                    "clusterArn": st.cluster_arn(), "taskDefinition": st.history[i].1})
                })
                .collect();
            (200, json!({"serviceRevisions": revs, "failures": []}))
        }
        "ListServiceDeployments" => {
            let shown = st
                .sds
                .len()
                .saturating_sub(if st.sd_lag > 0 { 1 } else { 0 });
            let sds: Vec<Value> = st.sds[..shown].iter().rev().map(|s| json!({
                "serviceDeploymentArn": s.arn, "serviceArn": st.service_arn(), "clusterArn": st.cluster_arn(),
                "createdAt": s.created, "status": s.status})).collect();
            (200, json!({"serviceDeployments": sds}))
        }
        "DescribeServiceDeployments" => {
            let wanted: Vec<String> = body["serviceDeploymentArns"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            let mut out = Vec::new();
            let steps = State::due(st.timing, &mut st.sd_tick);
            for i in 0..st.sds.len() {
                if wanted.contains(&st.sds[i].arn) {
                    for _ in 0..steps {
                        st.advance_sd(i);
                    }
                    let s = &st.sds[i];
                    out.push(json!({"serviceDeploymentArn": s.arn, "serviceArn": st.service_arn(), "clusterArn": st.cluster_arn(),
                        "status": s.status, "statusReason": s.reason, "lifecycleStage": s.stage, "createdAt": s.created}));
                }
            }
            // Mirror the outcome on the service, as ECS does.
            if let Some(s) = st.sds.last().cloned() {
                if s.status == "SUCCESSFUL" {
                    if let Some(d) = st.deps.first_mut() {
                        d.rollout = "COMPLETED".into();
                        d.running = d.desired;
                    }
                    st.deps.truncate(1);
                } else if s.status == "ROLLBACK_SUCCESSFUL" && st.deps.len() > 1 {
                    let prev = st.deps[1].td.clone();
                    st.deps.remove(0);
                    st.deps[0].status = "PRIMARY".into();
                    st.td = prev;
                }
            }
            (200, json!({"serviceDeployments": out, "failures": []}))
        }
        "DescribeClusters" => (
            200,
            json!({"clusters": [{"clusterName": st.seed.cluster, "clusterArn": st.cluster_arn(), "status": "ACTIVE"}], "failures": []}),
        ),
        other => error(
            "InvalidParameterException",
            &format!("the simulator does not implement {other}"),
        ),
    }
}

/// The running simulator (stopped on drop).
pub struct EcsSim {
    /// `http://127.0.0.1:PORT`: set it as `AWS_ENDPOINT_URL_ECS`.
    pub endpoint: String,
    state: Arc<Mutex<State>>,
    _rt: tokio::runtime::Runtime,
}

impl EcsSim {
    /// The id of the nth stopped task (1-based): `t` and 32 digits, as in its ARN.
    pub fn stopped_task_id(n: u64) -> String {
        format!("t{n:032}")
    }

    /// Start with the default seed (cluster `stage-cluster`, service `stage-backend`, family
    /// `cloudshop-backend` at revision 2, container `backend`).
    pub fn start(scenario: Scenario) -> EcsSim {
        EcsSim::start_with(Seed::default(), scenario)
    }

    /// Start with a seed.
    pub fn start_with(seed: Seed, scenario: Scenario) -> EcsSim {
        use axum::{body::Bytes, http::HeaderMap, response::IntoResponse, routing::post, Router};
        let state = Arc::new(Mutex::new(State::new(seed, scenario)));
        let s = state.clone();
        let app = Router::new().route(
            "/",
            post(move |headers: HeaderMap, body: Bytes| {
                let s = s.clone();
                async move {
                    let op = headers
                        .get("x-amz-target")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|t| t.strip_prefix("AmazonEC2ContainerServiceV20141113."))
                        .unwrap_or("")
                        .to_string();
                    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    let (status, reply) = {
                        let mut st = s.lock().unwrap();
                        st.calls.push((op.clone(), body.clone()));
                        st.call_times.push(Instant::now());
                        let reply = handle(&mut st, &op, &body);
                        st.mirror_progressive();
                        st.sync_history();
                        reply
                    };
                    (
                        axum::http::StatusCode::from_u16(status).unwrap(),
                        [("content-type", "application/x-amz-json-1.1")],
                        reply.to_string(),
                    )
                        .into_response()
                }
            }),
        );
        let (port, rt) = super::serve_on_own_thread(app);
        EcsSim {
            endpoint: format!("http://127.0.0.1:{port}"),
            state,
            _rt: rt,
        }
    }

    /// Every call's operation name, in order.
    pub fn calls(&self) -> Vec<String> {
        self.state
            .lock()
            .unwrap()
            .calls
            .iter()
            .map(|(o, _)| o.clone())
            .collect()
    }

    /// The request bodies of one operation.
    pub fn bodies(&self, op: &str) -> Vec<Value> {
        self.state
            .lock()
            .unwrap()
            .calls
            .iter()
            .filter(|(o, _)| o == op)
            .map(|(_, b)| b.clone())
            .collect()
    }

    /// When each call of `op` arrived, in order: with [`EcsSim::set_timing`], a test bounds how often a
    /// poller called (faster polling must not make a rollout finish sooner, nor pass unnoticed).
    pub fn call_times(&self, op: &str) -> Vec<Instant> {
        let st = self.state.lock().unwrap();
        st.calls
            .iter()
            .zip(&st.call_times)
            .filter(|((o, _), _)| o == op)
            .map(|(_, t)| *t)
            .collect()
    }

    /// The calls that would have changed something.
    pub fn mutating_calls(&self) -> Vec<String> {
        self.calls()
            .into_iter()
            .filter(|c| MUTATING.contains(&c.as_str()))
            .collect()
    }

    /// How many times `op` was called.
    pub fn count(&self, op: &str) -> usize {
        self.calls().iter().filter(|c| *c == op).count()
    }

    /// How the tasks `RunTask` starts go (default: exit 0 after two polls).
    pub fn set_one_off(&self, script: OneOff) {
        self.state.lock().unwrap().one_offs.script = script;
    }

    /// Another deploy (outside the action) points the service at revision 1 after `describes`
    /// DescribeServices calls.
    pub fn change_service_after(&self, describes: u32) {
        self.state.lock().unwrap().foreign_after = Some(describes);
    }

    /// Updates after the first (the rollbacks) follow `scenario` instead of completing after two polls.
    pub fn set_later_updates(&self, scenario: Scenario) {
        self.state.lock().unwrap().later = Some(scenario);
    }

    /// Progress with the clock instead of per poll, and model the tasks (see the module doc). Call it
    /// before the run; without it the scenarios advance one step per poll, as before.
    pub fn set_timing(&self, timing: Timing) {
        let mut st = self.state.lock().unwrap();
        st.timing = Some(timing);
        // The tasks of the deployment the service runs, RUNNING since before the run.
        if st.tasks.is_empty() {
            let (id, td, n) = match st.deps.first() {
                Some(d) => (d.id.clone(), d.td.clone(), d.running),
                None => return,
            };
            st.start_tasks(&id, &td, n);
            let back = timing.provisioning + timing.pending + Duration::from_secs(60);
            let born = st.born;
            for t in st.tasks.iter_mut() {
                t.created = t.created.checked_sub(back).unwrap_or(born);
                t.created_at -= back.as_secs_f64();
            }
        }
    }

    /// Append `text` to every later service event message and stopped-task reason (the task's and its
    /// container's), e.g. hostile text that must never reach the log raw.
    pub fn append_text(&self, text: &str) {
        self.state.lock().unwrap().append = text.to_string();
    }

    /// Every task the simulator shows now (started by deployments with timing, and stopped ones), as
    /// `DescribeTasks` would.
    pub fn tasks(&self) -> Vec<Value> {
        let mut st = self.state.lock().unwrap();
        st.refresh_stopping();
        let mut out: Vec<Value> = st.tasks.iter().map(|t| st.task_json(t)).collect();
        out.extend(st.stopped.iter().cloned());
        out
    }

    /// The status of every service deployment, oldest first.
    pub fn service_deployment_statuses(&self) -> Vec<String> {
        self.state
            .lock()
            .unwrap()
            .sds
            .iter()
            .map(|s| s.status.clone())
            .collect()
    }

    /// The progressive model of a [`Scenario::Progressive`] service (stages seen, weights, hook
    /// actions), shared with the ELBv2 simulator and the loopback ALB; `None` for other scenarios.
    pub fn progress(&self) -> Option<Progress> {
        self.state.lock().unwrap().progressive.clone()
    }

    /// The task definition the service runs now.
    pub fn service_task_definition(&self) -> String {
        self.state.lock().unwrap().td.clone()
    }

    /// Deregister a revision (ARN or `family:rev`): it stays describable, INACTIVE.
    pub fn deregister(&self, r: &str) {
        let mut st = self.state.lock().unwrap();
        let arn = st.find_td(r).map(|t| t["taskDefinitionArn"].clone());
        for t in st.tds.iter_mut() {
            if Some(&t["taskDefinitionArn"]) == arn.as_ref() {
                t["status"] = json!("INACTIVE");
            }
        }
    }

    /// A task definition by ARN or `family:rev`.
    pub fn task_definition(&self, r: &str) -> Option<Value> {
        self.state.lock().unwrap().find_td(r).cloned()
    }
}
