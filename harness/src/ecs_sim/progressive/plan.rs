//! The configuration of a progressive service: its strategy and traffic steps, PAUSE hooks, the two
//! target groups and listener rules, and the simulator's time scale.

use std::time::Duration;

use serde_json::{json, Value};

use crate::ecs_sim::{ACCOUNT, REGION};

/// The traffic steps of a deployment.
#[derive(Debug, Clone, PartialEq)]
pub enum Strategy {
    /// All production traffic in one step.
    BlueGreen,
    /// `percent` for `bake_minutes`, then the rest.
    Canary { percent: f64, bake_minutes: u32 },
    /// `step_percent` more at each step, `bake_minutes` after each step but the last.
    Linear {
        step_percent: f64,
        bake_minutes: u32,
    },
}

impl Strategy {
    /// `deploymentConfiguration.strategy`.
    pub fn name(&self) -> &'static str {
        match self {
            Strategy::BlueGreen => "BLUE_GREEN",
            Strategy::Canary { .. } => "CANARY",
            Strategy::Linear { .. } => "LINEAR",
        }
    }

    /// The production weight of the new revision after each step, and the bake after it (minutes).
    pub(super) fn steps(&self) -> Vec<(f64, u32)> {
        match *self {
            Strategy::BlueGreen => vec![(100.0, 0)],
            Strategy::Canary {
                percent,
                bake_minutes,
            } => vec![(percent.min(100.0), bake_minutes), (100.0, 0)],
            Strategy::Linear {
                step_percent,
                bake_minutes,
            } => {
                let step = step_percent.max(1.0);
                let mut out = Vec::new();
                let mut w = step;
                while w < 100.0 {
                    out.push((w, bake_minutes));
                    w += step;
                }
                out.push((100.0, 0));
                out
            }
        }
    }
}

/// What a hook does when it expires, or what `ContinueServiceDeployment` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookAction {
    Continue,
    Rollback,
}

impl HookAction {
    pub fn as_str(self) -> &'static str {
        match self {
            HookAction::Continue => "CONTINUE",
            HookAction::Rollback => "ROLLBACK",
        }
    }
}

/// A PAUSE lifecycle hook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PauseHook {
    /// Lifecycle stages, as ECS spells them (`POST_TEST_TRAFFIC_SHIFT`).
    pub stages: Vec<String>,
    pub timeout_minutes: u32,
    pub timeout_action: HookAction,
}

/// The service's progressive deployment configuration and its load balancing.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub strategy: Strategy,
    /// `bakeTimeInMinutes`: after all production traffic moved.
    pub bake_minutes: u32,
    pub hooks: Vec<PauseHook>,
    /// How long one simulated minute lasts (bakes, hook timeouts).
    pub minute: Duration,
    /// How long each stage without a bake lasts.
    pub stage: Duration,
    /// The target group the live revision serves from (`targetGroupArn`).
    pub production_group: String,
    /// `advancedConfiguration.alternateTargetGroupArn`.
    pub alternate_group: String,
    pub production_rule: String,
    /// Empty: the service has no test listener rule.
    pub test_rule: String,
    pub role_arn: String,
}

// Weights are compared as configured values, never computed ones.
impl Eq for Plan {}

impl Plan {
    /// Blue/green with no bake and no hooks; a minute lasts one second, a stage 50 ms.
    pub fn blue_green() -> Plan {
        let elb = format!("arn:aws:elasticloadbalancing:{REGION}:{ACCOUNT}");
        Plan {
            strategy: Strategy::BlueGreen,
            bake_minutes: 0,
            hooks: Vec::new(),
            minute: Duration::from_secs(1),
            stage: Duration::from_millis(50),
            production_group: format!("{elb}:targetgroup/stage-blue/0123456789abcdef"),
            alternate_group: format!("{elb}:targetgroup/stage-green/fedcba9876543210"),
            production_rule: format!(
                "{elb}:listener-rule/app/stage-alb/50dc6c495c0c9188/f2f7dc8efc522ab2/9683b2d02a6cabee"
            ),
            test_rule: format!(
                "{elb}:listener-rule/app/stage-alb/50dc6c495c0c9188/1a2b3c4d5e6f7a8b/0b1c2d3e4f5a6b7c"
            ),
            role_arn: format!("arn:aws:iam::{ACCOUNT}:role/ecsInfrastructureRoleForLoadBalancers"),
        }
    }

    /// Canary: `percent` of production traffic for `bake_minutes`, then all of it.
    pub fn canary(percent: f64, bake_minutes: u32) -> Plan {
        Plan {
            strategy: Strategy::Canary {
                percent,
                bake_minutes,
            },
            ..Plan::blue_green()
        }
    }

    /// Linear: `step_percent` more per step, `bake_minutes` after each step.
    pub fn linear(step_percent: f64, bake_minutes: u32) -> Plan {
        Plan {
            strategy: Strategy::Linear {
                step_percent,
                bake_minutes,
            },
            ..Plan::blue_green()
        }
    }

    /// Add a PAUSE hook at `stages` that applies `timeout_action` after `timeout_minutes`.
    pub fn pause(
        mut self,
        stages: &[&str],
        timeout_minutes: u32,
        timeout_action: HookAction,
    ) -> Plan {
        self.hooks.push(PauseHook {
            stages: stages.iter().map(|s| s.to_string()).collect(),
            timeout_minutes,
            timeout_action,
        });
        self
    }

    /// The service's `deploymentConfiguration` (and the service deployment's).
    pub fn deployment_configuration(&self) -> Value {
        let hooks: Vec<Value> = self
            .hooks
            .iter()
            .map(|h| {
                json!({"targetType": "PAUSE", "lifecycleStages": h.stages,
                       "timeoutConfiguration": {"timeoutInMinutes": h.timeout_minutes,
                                                "action": h.timeout_action.as_str()}})
            })
            .collect();
        let mut dc = json!({
            "deploymentCircuitBreaker": {"enable": false, "rollback": false},
            "maximumPercent": 200, "minimumHealthyPercent": 100,
            "strategy": self.strategy.name(), "bakeTimeInMinutes": self.bake_minutes,
            "lifecycleHooks": hooks
        });
        match self.strategy {
            Strategy::Canary {
                percent,
                bake_minutes,
            } => {
                dc["canaryConfiguration"] =
                    json!({"canaryPercent": percent, "canaryBakeTimeInMinutes": bake_minutes});
            }
            Strategy::Linear {
                step_percent,
                bake_minutes,
            } => {
                dc["linearConfiguration"] =
                    json!({"stepPercent": step_percent, "stepBakeTimeInMinutes": bake_minutes});
            }
            Strategy::BlueGreen => {}
        }
        dc
    }

    /// The service's `loadBalancers` entry.
    pub fn load_balancer(&self) -> Value {
        let mut adv = json!({"alternateTargetGroupArn": self.alternate_group,
            "productionListenerRule": self.production_rule, "roleArn": self.role_arn});
        if !self.test_rule.is_empty() {
            adv["testListenerRule"] = json!(self.test_rule);
        }
        json!({"targetGroupArn": self.production_group, "containerName": "backend", "containerPort": 8000,
               "advancedConfiguration": adv})
    }

    /// A hook stage ECS refuses (`TEST_TRAFFIC_SHIFT`, `PRODUCTION_TRAFFIC_SHIFT`), if configured.
    pub(super) fn refused_stage(&self) -> Option<&str> {
        self.hooks
            .iter()
            .flat_map(|h| h.stages.iter())
            .find(|s| *s == "TEST_TRAFFIC_SHIFT" || *s == "PRODUCTION_TRAFFIC_SHIFT")
            .map(String::as_str)
    }

    pub(super) fn hook_at(&self, stage: &str) -> Option<&PauseHook> {
        self.hooks
            .iter()
            .find(|h| h.stages.iter().any(|s| s == stage))
    }

    pub(super) fn minutes(&self, n: u32) -> Duration {
        self.minute * n
    }
}
