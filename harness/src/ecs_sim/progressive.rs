//! Progressive service deployments in the ECS simulator: the `BLUE_GREEN`, `LINEAR` and `CANARY`
//! strategies of the ECS deployment controller with an ALB (two target groups, a production and a test
//! listener rule), PAUSE lifecycle hooks, `ContinueServiceDeployment` and `StopServiceDeployment`, because
//! moto has no service deployments at all. Chosen with [`Scenario::Progressive`](super::Scenario).
//!
//! Every `UpdateService` starts a service deployment that walks, on the wall clock (never per poll, so
//! polling faster cannot finish sooner), through RECONCILE_SERVICE (PENDING), PRE_SCALE_UP, SCALE_UP,
//! POST_SCALE_UP, TEST_TRAFFIC_SHIFT (the test rule: 100 on the new revision's group),
//! POST_TEST_TRAFFIC_SHIFT, then per traffic step PRE_PRODUCTION_TRAFFIC_SHIFT, PRODUCTION_TRAFFIC_SHIFT
//! (the production weight moves at the start of the stage; the step's bake is spent in it) and
//! POST_PRODUCTION_TRAFFIC_SHIFT, then BAKE_TIME and CLEAN_UP, and ends SUCCESSFUL (the new revision's
//! group becomes the production one). Each stage lasts [`Plan::stage`]; bakes and hook timeouts are in
//! "minutes" of [`Plan::minute`] each.
//!
//! A stage with a PAUSE hook stops the deployment on entry with a new `hookId` (AWAITING_ACTION, its
//! `expiresAt`), until `ContinueServiceDeployment` (CONTINUE: the hook SUCCEEDED and the stage goes on;
//! ROLLBACK: the hook FAILED and ECS rolls back) or the expiry (TIMED_OUT, then its `timeoutAction`).
//! A rollback goes ROLLBACK_REQUESTED, then ROLLBACK_IN_PROGRESS (all traffic back on the source revision)
//! one stage later, then ROLLBACK_SUCCESSFUL one stage after that (the service back on the source task
//! definition). The listener rules' weights are shared with the ELBv2 simulator and the loopback ALB
//! through [`Progress`].

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use super::{error, State, ACCOUNT, REGION};

mod plan;
pub use plan::{HookAction, PauseHook, Plan, Strategy};

/// A service revision: its ARN, task definition and target group.
#[derive(Debug, Clone)]
struct Rev {
    arn: String,
    td: String,
    group: String,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Effect {
    None,
    ScaleUp,
    TestShift,
    ProductionShift(f64),
    CleanUp,
}

#[derive(Debug, Clone)]
struct Phase {
    stage: &'static str,
    length: Duration,
    effect: Effect,
}

#[derive(Debug, Clone)]
struct Hook {
    id: String,
    stage: &'static str,
    status: &'static str,
    expires: Instant,
    expires_at: f64,
    timeout_action: HookAction,
}

/// One service deployment.
#[derive(Debug, Clone)]
struct Sd {
    arn: String,
    created_at: f64,
    finished_at: Option<f64>,
    status: &'static str,
    reason: String,
    stage: &'static str,
    target: Rev,
    source: Option<Rev>,
    desired: i32,
    phases: Vec<Phase>,
    at: usize,
    /// When the current phase (or rollback step) ends; `None` while a hook awaits action.
    until: Option<Instant>,
    hook: Option<Hook>,
    production_new: f64,
    test_new: f64,
    target_running: bool,
    source_running: bool,
    rollback: Option<(String, f64)>,
    stages_seen: Vec<&'static str>,
    max_new: f64,
}

/// The traffic weights of both listener rules: `(target group ARN, weight)` for each group.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleWeights {
    pub production: Vec<(String, f64)>,
    pub test: Vec<(String, f64)>,
}

impl RuleWeights {
    /// The production weight of `group` (0 when absent).
    pub fn production_of(&self, group: &str) -> f64 {
        weight_of(&self.production, group)
    }

    /// The test weight of `group` (0 when absent).
    pub fn test_of(&self, group: &str) -> f64 {
        weight_of(&self.test, group)
    }
}

fn weight_of(list: &[(String, f64)], group: &str) -> f64 {
    list.iter()
        .find(|(g, _)| g == group)
        .map(|(_, w)| *w)
        .unwrap_or(0.0)
}

/// One service deployment as a test sees it ([`Progress::deployments`]).
#[derive(Debug, Clone, PartialEq)]
pub struct DeploymentView {
    pub arn: String,
    pub status: String,
    /// Its target revision's task definition.
    pub task_definition: String,
    pub stages_seen: Vec<String>,
    pub max_new_weight: f64,
}

/// The model behind [`Progress`].
#[derive(Debug)]
pub(super) struct Model {
    plan: Plan,
    cluster: String,
    service: String,
    born: Instant,
    born_epoch: f64,
    /// The revision production traffic goes to when no deployment is under way.
    live: Rev,
    sds: Vec<Sd>,
    seq: u32,
    actions: Vec<(String, String)>,
}

impl Model {
    pub(super) fn new(plan: Plan, cluster: &str, service: &str, td: &str) -> Model {
        let born_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(1.8e9);
        let live = Rev {
            arn: revision_arn(cluster, service, 1),
            td: td.to_string(),
            group: plan.production_group.clone(),
        };
        let previous = Sd {
            arn: sd_arn(cluster, service, "sd-previous"),
            created_at: born_epoch - 3600.0,
            finished_at: Some(born_epoch - 3000.0),
            status: "SUCCESSFUL",
            reason: "Service deployment completed".into(),
            stage: "CLEAN_UP",
            target: live.clone(),
            source: None,
            desired: 0,
            phases: Vec::new(),
            at: 0,
            until: None,
            hook: None,
            production_new: 100.0,
            test_new: 100.0,
            target_running: true,
            source_running: false,
            rollback: None,
            stages_seen: Vec::new(),
            max_new: 100.0,
        };
        Model {
            plan,
            cluster: cluster.into(),
            service: service.into(),
            born: Instant::now(),
            born_epoch,
            live,
            sds: vec![previous],
            seq: 1,
            actions: Vec::new(),
        }
    }

    /// Wall-clock epoch seconds of `at`.
    fn epoch(&self, at: Instant) -> f64 {
        self.born_epoch + at.saturating_duration_since(self.born).as_secs_f64()
    }

    fn phases(&self) -> Vec<Phase> {
        let stage = self.plan.stage;
        let p = |stage: &'static str, length: Duration, effect: Effect| Phase {
            stage,
            length,
            effect,
        };
        let mut out = vec![
            p("RECONCILE_SERVICE", stage, Effect::None),
            p("PRE_SCALE_UP", stage, Effect::None),
            p("SCALE_UP", stage, Effect::ScaleUp),
            p("POST_SCALE_UP", stage, Effect::None),
            p("TEST_TRAFFIC_SHIFT", stage, Effect::TestShift),
            p("POST_TEST_TRAFFIC_SHIFT", stage, Effect::None),
        ];
        for (weight, bake) in self.plan.strategy.steps() {
            out.push(p("PRE_PRODUCTION_TRAFFIC_SHIFT", stage, Effect::None));
            out.push(p(
                "PRODUCTION_TRAFFIC_SHIFT",
                stage + self.plan.minutes(bake),
                Effect::ProductionShift(weight),
            ));
            out.push(p("POST_PRODUCTION_TRAFFIC_SHIFT", stage, Effect::None));
        }
        out.push(p(
            "BAKE_TIME",
            stage + self.plan.minutes(self.plan.bake_minutes),
            Effect::None,
        ));
        out.push(p("CLEAN_UP", stage, Effect::CleanUp));
        out
    }

    /// Why ECS refuses an update of this service, if it does.
    pub(super) fn refusal(&self) -> Option<String> {
        self.plan
            .refused_stage()
            .map(|s| format!("lifecycleHooks: a hook cannot be configured at lifecycle stage {s}"))
    }

    /// A new service deployment to `td` with `desired` tasks; a deployment under way is superseded.
    pub(super) fn start(&mut self, td: &str, desired: i32) -> String {
        let now = Instant::now();
        self.advance(now);
        for sd in self.sds.iter_mut() {
            if sd.status == "PENDING" || sd.status == "IN_PROGRESS" {
                sd.status = "STOPPED";
                sd.reason = "Service deployment stopped: a newer deployment replaced it".into();
                sd.until = None;
            }
        }
        self.seq += 1;
        let group = if self.live.group == self.plan.production_group {
            self.plan.alternate_group.clone()
        } else {
            self.plan.production_group.clone()
        };
        let target = Rev {
            arn: revision_arn(&self.cluster, &self.service, self.seq),
            td: td.to_string(),
            group,
        };
        let arn = sd_arn(&self.cluster, &self.service, &format!("sd{}", self.seq));
        let phases = self.phases();
        let first = phases[0].clone();
        self.sds.push(Sd {
            arn: arn.clone(),
            created_at: self.epoch(now),
            finished_at: None,
            status: "PENDING",
            reason: String::new(),
            stage: first.stage,
            target,
            source: Some(self.live.clone()),
            desired,
            phases,
            at: 0,
            until: Some(now + first.length),
            hook: None,
            production_new: 0.0,
            test_new: 0.0,
            target_running: false,
            source_running: true,
            rollback: None,
            stages_seen: vec![first.stage],
            max_new: 0.0,
        });
        arn
    }

    /// Bring every deployment up to `now`, each transition at the instant it was due.
    pub(super) fn advance(&mut self, now: Instant) {
        for i in 0..self.sds.len() {
            while self.step(i, now) {}
            if self.sds[i].status == "SUCCESSFUL" && self.sds[i].source.is_some() {
                self.live = self.sds[i].target.clone();
            }
        }
    }

    /// One transition of deployment `i` if one is due by `now`; false when nothing was due.
    fn step(&mut self, i: usize, now: Instant) -> bool {
        let stage_len = self.plan.stage;
        let epoch_of = |m: &Model, t: Instant| m.epoch(t);
        let sd = &self.sds[i];
        match sd.status {
            "PENDING" | "IN_PROGRESS" => {
                if let Some(h) = sd.hook.clone().filter(|h| h.status == "AWAITING_ACTION") {
                    if now < h.expires {
                        return false;
                    }
                    let len = sd.phases[sd.at].length;
                    let sd = &mut self.sds[i];
                    if let Some(hook) = sd.hook.as_mut() {
                        hook.status = "TIMED_OUT";
                    }
                    match h.timeout_action {
                        HookAction::Continue => sd.until = Some(h.expires + len),
                        HookAction::Rollback => {
                            let why = format!(
                                "lifecycle hook `{}` at {} timed out (timeout action ROLLBACK)",
                                h.id, h.stage
                            );
                            self.rollback(i, h.expires, why);
                        }
                    }
                    return true;
                }
                let Some(until) = sd.until.filter(|u| now >= *u) else {
                    return false;
                };
                if sd.at + 1 >= sd.phases.len() {
                    let at = epoch_of(self, until);
                    let sd = &mut self.sds[i];
                    sd.status = "SUCCESSFUL";
                    sd.reason = "Service deployment completed".into();
                    sd.finished_at = Some(at);
                    sd.until = None;
                    return true;
                }
                self.enter(i, sd.at + 1, until);
                true
            }
            "ROLLBACK_REQUESTED" => {
                let Some(until) = sd.until.filter(|u| now >= *u) else {
                    return false;
                };
                let sd = &mut self.sds[i];
                sd.status = "ROLLBACK_IN_PROGRESS";
                sd.production_new = 0.0;
                sd.test_new = 0.0;
                sd.source_running = true;
                sd.until = Some(until + stage_len);
                true
            }
            "ROLLBACK_IN_PROGRESS" => {
                let Some(until) = sd.until.filter(|u| now >= *u) else {
                    return false;
                };
                let at = epoch_of(self, until);
                let sd = &mut self.sds[i];
                sd.status = "ROLLBACK_SUCCESSFUL";
                sd.target_running = false;
                sd.finished_at = Some(at);
                sd.until = None;
                true
            }
            _ => false,
        }
    }

    /// Enter phase `at` of deployment `i` at instant `t`: its effect, then its hook or its clock.
    fn enter(&mut self, i: usize, at: usize, t: Instant) {
        let hook = self
            .plan
            .hook_at(self.sds[i].phases[at].stage)
            .map(|h| (h.timeout_minutes, h.timeout_action));
        let minute = self.plan.minute;
        let expires_at = |n: u32| self.epoch(t + minute * n);
        let hook_id = format!("hook-{}-{}", self.seq, self.sds[i].stages_seen.len());
        let expiry = hook.map(|(n, _)| (t + minute * n, expires_at(n)));
        let sd = &mut self.sds[i];
        let phase = sd.phases[at].clone();
        sd.at = at;
        sd.stage = phase.stage;
        sd.status = "IN_PROGRESS";
        sd.stages_seen.push(phase.stage);
        match phase.effect {
            Effect::None => {}
            Effect::ScaleUp => sd.target_running = true,
            Effect::TestShift => sd.test_new = 100.0,
            Effect::ProductionShift(w) => {
                sd.production_new = w;
                sd.max_new = sd.max_new.max(w);
            }
            Effect::CleanUp => sd.source_running = false,
        }
        match (hook, expiry) {
            (Some((_, action)), Some((expires, expires_at))) => {
                sd.hook = Some(Hook {
                    id: hook_id,
                    stage: phase.stage,
                    status: "AWAITING_ACTION",
                    expires,
                    expires_at,
                    timeout_action: action,
                });
                sd.until = None;
            }
            _ => sd.until = Some(t + phase.length),
        }
    }

    /// ECS's own rollback of deployment `i`, requested at `t`.
    fn rollback(&mut self, i: usize, t: Instant, why: String) {
        let at = self.epoch(t);
        let stage = self.plan.stage;
        let sd = &mut self.sds[i];
        // A stop while a hook awaits action ends the hook too: nothing can continue it any more.
        if let Some(h) = sd.hook.as_mut().filter(|h| h.status == "AWAITING_ACTION") {
            h.status = "FAILED";
        }
        sd.status = "ROLLBACK_REQUESTED";
        sd.reason = format!("Service deployment rolled back: {why}");
        let to = sd
            .source
            .as_ref()
            .map(|s| s.arn.clone())
            .unwrap_or_default();
        sd.rollback = Some((to, at));
        sd.until = Some(t + stage);
    }

    fn find(&self, arn: &str) -> Option<usize> {
        self.sds.iter().position(|s| s.arn == arn)
    }

    /// The service's `currentServiceDeployment`.
    pub(super) fn current(&self) -> Option<String> {
        self.sds.last().map(|s| s.arn.clone())
    }

    /// The newest deployment's status and source task definition (for the service's own view).
    pub(super) fn outcome(&self) -> Option<(&'static str, String)> {
        let sd = self.sds.last()?;
        Some((sd.status, sd.source.as_ref()?.td.clone()))
    }

    pub(super) fn plan(&self) -> &Plan {
        &self.plan
    }

    fn rev_json(&self, rev: &Rev, desired: i32, running: bool, prod: f64, test: f64) -> Value {
        json!({"arn": rev.arn, "requestedTaskCount": desired,
               "runningTaskCount": if running { desired } else { 0 }, "pendingTaskCount": 0,
               "requestedProductionTrafficWeight": prod, "requestedTestTrafficWeight": test})
    }

    fn sd_json(&self, sd: &Sd, service_arn: &str, cluster_arn: &str) -> Value {
        let mut v = json!({
            "serviceDeploymentArn": sd.arn, "serviceArn": service_arn, "clusterArn": cluster_arn,
            "createdAt": sd.created_at, "startedAt": sd.created_at, "updatedAt": self.epoch(Instant::now()),
            "status": sd.status, "statusReason": sd.reason, "lifecycleStage": sd.stage,
            "targetServiceRevision": self.rev_json(&sd.target, sd.desired, sd.target_running,
                sd.production_new, sd.test_new),
            "sourceServiceRevisions": sd.source.iter().map(|s| self.rev_json(s, sd.desired,
                sd.source_running, 100.0 - sd.production_new, 100.0 - sd.test_new)).collect::<Vec<_>>(),
            "deploymentConfiguration": self.plan.deployment_configuration(),
        });
        if let Some(t) = sd.finished_at {
            v["finishedAt"] = json!(t);
        }
        if let Some(h) = sd.hook.as_ref().filter(|h| h.stage == sd.stage) {
            v["lifecycleHookDetails"] = json!([{"hookId": h.id, "targetType": "PAUSE",
                "status": h.status, "expiresAt": h.expires_at, "timeoutAction": h.timeout_action.as_str()}]);
        }
        if let Some((to, at)) = &sd.rollback {
            v["rollback"] = json!({"reason": sd.reason, "startedAt": at, "serviceRevisionArn": to});
        }
        v
    }

    /// The listener rules' weights now.
    fn weights(&self) -> RuleWeights {
        let (live, other) = (&self.plan.production_group, &self.plan.alternate_group);
        let pair =
            |old: &str, new: &str, w: f64| vec![(old.to_string(), 100.0 - w), (new.to_string(), w)];
        match self.sds.last() {
            Some(sd) if sd.source.is_some() => {
                let old = sd.source.as_ref().map(|s| s.group.as_str()).unwrap_or(live);
                RuleWeights {
                    production: pair(old, &sd.target.group, sd.production_new),
                    test: pair(old, &sd.target.group, sd.test_new),
                }
            }
            _ => RuleWeights {
                production: pair(other, live, 100.0),
                test: pair(other, live, 100.0),
            },
        }
    }
}

fn revision_arn(cluster: &str, service: &str, n: u32) -> String {
    format!(
        "arn:aws:ecs:{REGION}:{ACCOUNT}:service-revision/{cluster}/{service}/{}",
        9000 + n
    )
}

fn sd_arn(cluster: &str, service: &str, id: &str) -> String {
    format!("arn:aws:ecs:{REGION}:{ACCOUNT}:service-deployment/{cluster}/{service}/{id}")
}

/// A handle on the progressive model, shared by the ECS simulator, the ELBv2 simulator and the loopback
/// ALB; every read first brings the model up to now.
#[derive(Debug, Clone)]
pub struct Progress(pub(super) Arc<Mutex<Model>>);

impl Progress {
    fn now(&self) -> std::sync::MutexGuard<'_, Model> {
        let mut m = self.0.lock().unwrap();
        m.advance(Instant::now());
        m
    }

    /// The listener rules' weights now.
    pub fn weights(&self) -> RuleWeights {
        self.now().weights()
    }

    /// The plan the service was seeded with.
    pub fn plan(&self) -> Plan {
        self.0.lock().unwrap().plan.clone()
    }

    /// The lifecycle stages the newest deployment entered, in order (a stage repeats per traffic step).
    pub fn stages_seen(&self) -> Vec<String> {
        let m = self.now();
        m.sds
            .last()
            .map(|s| s.stages_seen.iter().map(|s| s.to_string()).collect())
            .unwrap_or_default()
    }

    /// The highest production weight the newest deployment's revision ever had (0 before any update).
    pub fn max_new_weight(&self) -> f64 {
        self.now()
            .sds
            .last()
            .filter(|s| s.source.is_some())
            .map(|s| s.max_new)
            .unwrap_or(0.0)
    }

    /// Every service deployment started by an update (the seeded previous one left out), oldest first:
    /// a deploy's own and, after it, e.g. the action's rollback to the previous revision.
    pub fn deployments(&self) -> Vec<DeploymentView> {
        let m = self.now();
        m.sds
            .iter()
            .filter(|s| s.source.is_some())
            .map(|s| DeploymentView {
                arn: s.arn.clone(),
                status: s.status.to_string(),
                task_definition: s.target.td.clone(),
                stages_seen: s.stages_seen.iter().map(|x| x.to_string()).collect(),
                max_new_weight: s.max_new,
            })
            .collect()
    }

    /// Every `ContinueServiceDeployment` the model accepted: (hookId, action).
    pub fn hook_actions(&self) -> Vec<(String, String)> {
        self.0.lock().unwrap().actions.clone()
    }

    /// The newest deployment's status and lifecycle stage.
    pub fn status(&self) -> (String, String) {
        let m = self.now();
        m.sds
            .last()
            .map(|s| (s.status.to_string(), s.stage.to_string()))
            .unwrap_or_default()
    }

    /// The newest deployment's hook at its current stage: (hookId, status).
    pub fn hook(&self) -> Option<(String, String)> {
        let m = self.now();
        let sd = m.sds.last()?;
        sd.hook
            .as_ref()
            .filter(|h| h.stage == sd.stage)
            .map(|h| (h.id.clone(), h.status.to_string()))
    }

    /// The newest service deployment's ARN (the service's `currentServiceDeployment`).
    pub fn deployment_arn(&self) -> Option<String> {
        self.0.lock().unwrap().current()
    }

    /// The target group the newest deployment's revision serves from (the live one at rest).
    pub fn new_group(&self) -> String {
        let m = self.now();
        match m.sds.last() {
            Some(sd) if sd.source.is_some() => sd.target.group.clone(),
            _ => m.live.group.clone(),
        }
    }
}

fn arns(body: &Value, key: &str) -> Vec<String> {
    body[key]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

impl State {
    /// The progressive model's answer to `op`, when the service has one and `op` is about service
    /// deployments or revisions.
    pub(super) fn progressive_op(&mut self, op: &str, body: &Value) -> Option<(u16, Value)> {
        let p = self.progressive.clone()?;
        let mut m = p.0.lock().unwrap();
        m.advance(Instant::now());
        let (service_arn, cluster_arn) = (self.service_arn(), self.cluster_arn());
        Some(match op {
            "ListServiceDeployments" => {
                let wanted = arns(body, "status");
                let list: Vec<Value> = m.sds.iter().rev()
                    .filter(|s| wanted.is_empty() || wanted.iter().any(|w| w == s.status))
                    .map(|s| json!({"serviceDeploymentArn": s.arn, "serviceArn": service_arn,
                        "clusterArn": cluster_arn, "createdAt": s.created_at, "startedAt": s.created_at,
                        "finishedAt": s.finished_at, "status": s.status, "statusReason": s.reason,
                        "targetServiceRevisionArn": s.target.arn}))
                    .collect();
                (200, json!({"serviceDeployments": list}))
            }
            "DescribeServiceDeployments" => {
                let wanted = arns(body, "serviceDeploymentArns");
                let (mut found, mut failures) = (Vec::new(), Vec::new());
                for w in &wanted {
                    match m.find(w) {
                        Some(i) => found.push(m.sd_json(&m.sds[i], &service_arn, &cluster_arn)),
                        None => failures.push(json!({"arn": w, "reason": "MISSING"})),
                    }
                }
                (
                    200,
                    json!({"serviceDeployments": found, "failures": failures}),
                )
            }
            "DescribeServiceRevisions" => {
                let wanted = arns(body, "serviceRevisionArns");
                let revs: Vec<Value> = wanted
                    .iter()
                    .filter_map(|w| {
                        m.sds
                            .iter()
                            .map(|s| &s.target)
                            .find(|r| r.arn == *w)
                            .map(|r| json!({"serviceRevisionArn": r.arn, "serviceArn": service_arn,
                                "clusterArn": cluster_arn, "taskDefinition": r.td,
                                "loadBalancers": [{"targetGroupArn": r.group, "containerName": "backend",
                                                   "containerPort": 8000}]}))
                    })
                    .collect();
                (200, json!({"serviceRevisions": revs, "failures": []}))
            }
            "ContinueServiceDeployment" => continue_deployment(&mut m, body),
            "StopServiceDeployment" => stop_deployment(&mut m, body),
            _ => return None,
        })
    }

    /// Why ECS refuses an update of a progressive service, if it does.
    pub(super) fn progressive_refusal(&self) -> Option<String> {
        self.progressive.as_ref()?.0.lock().unwrap().refusal()
    }

    /// Mirror the newest service deployment's outcome on the service, as ECS does: SUCCESSFUL completes
    /// the PRIMARY deployment; ROLLBACK_SUCCESSFUL puts the service back on the source task definition.
    pub(super) fn mirror_progressive(&mut self) {
        let Some(p) = self.progressive.clone() else {
            return;
        };
        let outcome = {
            let mut m = p.0.lock().unwrap();
            m.advance(Instant::now());
            m.outcome()
        };
        match outcome {
            Some(("SUCCESSFUL", _)) => {
                if let Some(d) = self.deps.first_mut() {
                    d.rollout = "COMPLETED".into();
                    d.running = d.desired;
                }
                self.deps.truncate(1);
            }
            Some(("ROLLBACK_SUCCESSFUL", source)) if self.deps.len() > 1 => {
                self.deps.remove(0);
                self.deps[0].status = "PRIMARY".into();
                self.td = source;
            }
            _ => {}
        }
    }

    /// The service's view of the model: its deployment configuration, load balancer and current
    /// service deployment.
    pub(super) fn decorate_service(&self, svc: &mut Value) {
        let Some(p) = &self.progressive else {
            return;
        };
        let m = p.0.lock().unwrap();
        svc["deploymentConfiguration"] = m.plan().deployment_configuration();
        svc["loadBalancers"] = json!([m.plan().load_balancer()]);
        svc["currentServiceDeployment"] = json!(m.current());
    }
}

fn continue_deployment(m: &mut Model, body: &Value) -> (u16, Value) {
    let arn = body["serviceDeploymentArn"].as_str().unwrap_or("");
    let Some(i) = m.find(arn) else {
        return error(
            "ServiceDeploymentNotFoundException",
            &format!("The service deployment {arn} does not exist."),
        );
    };
    let action = match body["action"].as_str() {
        Some("CONTINUE") => HookAction::Continue,
        Some("ROLLBACK") => HookAction::Rollback,
        other => {
            return error(
                "InvalidParameterException",
                &format!("Invalid action: {}", other.unwrap_or("(none)")),
            )
        }
    };
    if m.sds[i].status != "IN_PROGRESS" {
        return error(
            "InvalidParameterException",
            &format!(
                "The service deployment is in status {}; only an IN_PROGRESS deployment can be continued.",
                m.sds[i].status
            ),
        );
    }
    let hook_id = body["hookId"].as_str().unwrap_or("");
    let awaiting = m.sds[i]
        .hook
        .as_ref()
        .filter(|h| h.id == hook_id && h.status == "AWAITING_ACTION")
        .cloned();
    let Some(h) = awaiting else {
        return error(
            "InvalidParameterException",
            &format!("The lifecycle hook {hook_id} is not awaiting action."),
        );
    };
    m.actions.push((h.id.clone(), action.as_str().to_string()));
    let now = Instant::now();
    let sd = &mut m.sds[i];
    match action {
        HookAction::Continue => {
            if let Some(hook) = sd.hook.as_mut() {
                hook.status = "SUCCEEDED";
            }
            sd.until = Some(now + sd.phases[sd.at].length);
        }
        HookAction::Rollback => {
            if let Some(hook) = sd.hook.as_mut() {
                hook.status = "FAILED";
            }
            let why = format!("ContinueServiceDeployment ROLLBACK at {}", h.stage);
            m.rollback(i, now, why);
        }
    }
    (200, json!({"serviceDeploymentArn": arn}))
}

fn stop_deployment(m: &mut Model, body: &Value) -> (u16, Value) {
    let arn = body["serviceDeploymentArn"].as_str().unwrap_or("");
    let Some(i) = m.find(arn) else {
        return error(
            "ServiceDeploymentNotFoundException",
            &format!("The service deployment {arn} does not exist."),
        );
    };
    match body["stopType"].as_str() {
        None | Some("ROLLBACK") => {}
        Some(other) => {
            return error(
                "InvalidParameterException",
                &format!("the simulator models stopType ROLLBACK only, not {other}"),
            )
        }
    }
    if !matches!(m.sds[i].status, "PENDING" | "IN_PROGRESS") {
        return error(
            "ConflictException",
            &format!(
                "The service deployment is in status {}; only a PENDING or IN_PROGRESS deployment can be stopped.",
                m.sds[i].status
            ),
        );
    }
    m.rollback(i, Instant::now(), "StopServiceDeployment ROLLBACK".into());
    (200, json!({"serviceDeploymentArn": arn}))
}
