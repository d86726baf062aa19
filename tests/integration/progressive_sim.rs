//! The ECS simulator's progressive service deployments ([`Scenario::Progressive`]) through the real SDK
//! client: the stages in order, PAUSE hooks (a new hookId per pause, AWAITING_ACTION until
//! `ContinueServiceDeployment` or the expiry's timeout action), the traffic weights of each revision,
//! ECS's rollback, and the errors the API gives for a hook or a deployment in the wrong state.

use harness as common;

use std::time::{Duration, Instant};

use aws_sdk_ecs::types::{
    DeploymentLifecycleHookAction, DeploymentLifecycleHookStatus, DeploymentStrategy,
    ServiceDeployment, ServiceDeploymentStatus, StopServiceDeploymentStopType,
};
use common::ecs_sim::{EcsSim, HookAction, Plan, Scenario};
use common::seed::rt;

fn client(sim: &EcsSim) -> aws_sdk_ecs::Client {
    aws_sdk_ecs::Client::from_conf(
        aws_sdk_ecs::Config::builder()
            .behavior_version(aws_sdk_ecs::config::BehaviorVersion::latest())
            .region(aws_sdk_ecs::config::Region::new("us-east-1"))
            .endpoint_url(&sim.endpoint)
            .credentials_provider(aws_sdk_ecs::config::Credentials::new(
                "testing", "testing", None, None, "test",
            ))
            .http_client(cloudshop_deploy::aws::http_client())
            .build(),
    )
}

/// A fast plan: a minute lasts 200 ms, a stage 20 ms.
fn fast(plan: Plan) -> Plan {
    Plan {
        minute: Duration::from_millis(200),
        stage: Duration::from_millis(20),
        ..plan
    }
}

const NEW_TD: &str = "arn:aws:ecs:us-east-1:123456789012:task-definition/cloudshop-backend:1";
const OLD_TD: &str = "arn:aws:ecs:us-east-1:123456789012:task-definition/cloudshop-backend:2";

/// Update the service to revision 1; the new service deployment's ARN.
async fn update(ecs: &aws_sdk_ecs::Client) -> String {
    let out = ecs
        .update_service()
        .cluster("stage-cluster")
        .service("stage-backend")
        .task_definition("cloudshop-backend:1")
        .send()
        .await
        .unwrap();
    out.service()
        .and_then(|s| s.current_service_deployment())
        .unwrap()
        .to_string()
}

async fn describe(ecs: &aws_sdk_ecs::Client, arn: &str) -> ServiceDeployment {
    let out = ecs
        .describe_service_deployments()
        .service_deployment_arns(arn)
        .send()
        .await
        .unwrap();
    out.service_deployments()[0].clone()
}

/// Poll (every 5 ms) until `done` holds, at most 10 s.
async fn until(
    ecs: &aws_sdk_ecs::Client,
    arn: &str,
    what: &str,
    mut done: impl FnMut(&ServiceDeployment) -> bool,
) -> ServiceDeployment {
    let start = Instant::now();
    loop {
        let sd = describe(ecs, arn).await;
        if done(&sd) {
            return sd;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "never {what}: {sd:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The hook awaiting action at `stage`, once there is one: (hookId, the deployment then).
async fn paused_at(
    ecs: &aws_sdk_ecs::Client,
    arn: &str,
    stage: &str,
) -> (String, ServiceDeployment) {
    paused_again(ecs, arn, stage, "").await
}

/// Like [`paused_at`], for a hook other than `not`.
async fn paused_again(
    ecs: &aws_sdk_ecs::Client,
    arn: &str,
    stage: &str,
    not: &str,
) -> (String, ServiceDeployment) {
    let sd = until(ecs, arn, &format!("paused at {stage}"), |sd| {
        sd.lifecycle_stage().map(|s| s.as_str()) == Some(stage)
            && sd.lifecycle_hook_details().first().is_some_and(|h| {
                h.status() == Some(&DeploymentLifecycleHookStatus::AwaitingAction)
                    && h.hook_id() != Some(not)
            })
    })
    .await;
    let id = sd.lifecycle_hook_details()[0]
        .hook_id()
        .unwrap()
        .to_string();
    (id, sd)
}

/// The new revision's production and test weights.
fn new_weights(sd: &ServiceDeployment) -> (f64, f64) {
    let t = sd.target_service_revision().unwrap();
    (
        t.requested_production_traffic_weight().unwrap(),
        t.requested_test_traffic_weight().unwrap(),
    )
}

fn old_production_weight(sd: &ServiceDeployment) -> f64 {
    sd.source_service_revisions()[0]
        .requested_production_traffic_weight()
        .unwrap()
}

async fn act(
    ecs: &aws_sdk_ecs::Client,
    arn: &str,
    hook: &str,
    action: DeploymentLifecycleHookAction,
) {
    ecs.continue_service_deployment()
        .service_deployment_arn(arn)
        .hook_id(hook)
        .action(action)
        .send()
        .await
        .unwrap();
}

fn terminal(sd: &ServiceDeployment) -> bool {
    matches!(
        sd.status(),
        Some(ServiceDeploymentStatus::Successful | ServiceDeploymentStatus::RollbackSuccessful)
    )
}

#[test]
fn a_canary_paused_after_test_traffic_and_before_each_step_is_continued_to_success() {
    let plan = fast(Plan::canary(10.0, 1)).pause(
        &["POST_TEST_TRAFFIC_SHIFT", "PRE_PRODUCTION_TRAFFIC_SHIFT"],
        10,
        HookAction::Rollback,
    );
    let sim = EcsSim::start(Scenario::Progressive(plan));
    let ecs = client(&sim);
    rt().block_on(async {
        let svc = ecs
            .describe_services()
            .cluster("stage-cluster")
            .services("stage-backend")
            .send()
            .await
            .unwrap();
        let svc = &svc.services()[0];
        let dc = svc.deployment_configuration().unwrap();
        assert_eq!(dc.strategy(), Some(&DeploymentStrategy::Canary));
        assert_eq!(
            dc.canary_configuration().unwrap().canary_percent(),
            Some(10.0)
        );
        assert_eq!(dc.lifecycle_hooks()[0].lifecycle_stages().len(), 2);
        let adv = svc.load_balancers()[0].advanced_configuration().unwrap();
        assert!(adv
            .test_listener_rule()
            .unwrap()
            .contains(":listener-rule/"));
        let previous = svc.current_service_deployment().unwrap().to_string();

        let arn = update(&ecs).await;
        assert_ne!(arn, previous, "a new service deployment");
        let (test_hook, sd) = paused_at(&ecs, &arn, "POST_TEST_TRAFFIC_SHIFT").await;
        assert_eq!(new_weights(&sd), (0.0, 100.0), "test traffic only");
        assert_eq!(old_production_weight(&sd), 100.0);
        let detail = &sd.lifecycle_hook_details()[0];
        assert_eq!(
            detail.timeout_action(),
            Some(&DeploymentLifecycleHookAction::Rollback)
        );
        assert!(detail.expires_at().is_some());
        // The deployment does not move while the hook awaits action.
        tokio::time::sleep(Duration::from_millis(150)).await;
        let still = describe(&ecs, &arn).await;
        assert_eq!(
            still.lifecycle_stage().unwrap().as_str(),
            "POST_TEST_TRAFFIC_SHIFT"
        );
        act(
            &ecs,
            &arn,
            &test_hook,
            DeploymentLifecycleHookAction::Continue,
        )
        .await;

        let (first, sd) = paused_at(&ecs, &arn, "PRE_PRODUCTION_TRAFFIC_SHIFT").await;
        assert_ne!(first, test_hook);
        assert_eq!(new_weights(&sd).0, 0.0, "before the first step");
        act(&ecs, &arn, &first, DeploymentLifecycleHookAction::Continue).await;

        let (second, sd) = paused_again(&ecs, &arn, "PRE_PRODUCTION_TRAFFIC_SHIFT", &first).await;
        assert_eq!(new_weights(&sd).0, 10.0, "the canary slice");
        assert_eq!(old_production_weight(&sd), 90.0);
        act(&ecs, &arn, &second, DeploymentLifecycleHookAction::Continue).await;

        let sd = until(&ecs, &arn, "terminal", terminal).await;
        assert_eq!(sd.status(), Some(&ServiceDeploymentStatus::Successful));
        assert_eq!(new_weights(&sd), (100.0, 100.0));
    });
    let p = sim.progress().unwrap();
    assert_eq!(
        p.stages_seen(),
        [
            "RECONCILE_SERVICE",
            "PRE_SCALE_UP",
            "SCALE_UP",
            "POST_SCALE_UP",
            "TEST_TRAFFIC_SHIFT",
            "POST_TEST_TRAFFIC_SHIFT",
            "PRE_PRODUCTION_TRAFFIC_SHIFT",
            "PRODUCTION_TRAFFIC_SHIFT",
            "POST_PRODUCTION_TRAFFIC_SHIFT",
            "PRE_PRODUCTION_TRAFFIC_SHIFT",
            "PRODUCTION_TRAFFIC_SHIFT",
            "POST_PRODUCTION_TRAFFIC_SHIFT",
            "BAKE_TIME",
            "CLEAN_UP",
        ]
    );
    assert_eq!(p.max_new_weight(), 100.0);
    let actions: Vec<String> = p.hook_actions().into_iter().map(|(_, a)| a).collect();
    assert_eq!(actions, ["CONTINUE", "CONTINUE", "CONTINUE"]);
    assert_eq!(sim.service_task_definition(), NEW_TD);
    // The new revision's group is the production one now.
    let w = p.weights();
    assert_eq!(w.production_of(&p.plan().alternate_group), 100.0);
    assert_eq!(w.production_of(&p.plan().production_group), 0.0);
    assert_eq!(
        sim.mutating_calls(),
        [
            "UpdateService",
            "ContinueServiceDeployment",
            "ContinueServiceDeployment",
            "ContinueServiceDeployment"
        ]
    );
}

#[test]
fn a_rollback_at_the_test_traffic_pause_never_reaches_production_traffic() {
    // Stages of 250 ms, so that a 5 ms poll sees each step of the rollback.
    let plan = Plan {
        stage: Duration::from_millis(250),
        ..fast(Plan::blue_green())
    }
    .pause(&["POST_TEST_TRAFFIC_SHIFT"], 10, HookAction::Continue);
    let sim = EcsSim::start(Scenario::Progressive(plan));
    let ecs = client(&sim);
    let p = sim.progress().unwrap();
    let statuses = rt().block_on(async {
        let arn = update(&ecs).await;
        let (hook, _) = paused_at(&ecs, &arn, "POST_TEST_TRAFFIC_SHIFT").await;
        assert_eq!(p.weights().test_of(&p.new_group()), 100.0);
        assert_eq!(p.weights().production_of(&p.new_group()), 0.0);
        act(&ecs, &arn, &hook, DeploymentLifecycleHookAction::Rollback).await;
        let mut statuses: Vec<String> = Vec::new();
        until(&ecs, &arn, "rolled back", |sd| {
            let s = sd.status().unwrap().as_str().to_string();
            if statuses.last() != Some(&s) {
                statuses.push(s);
            }
            terminal(sd)
        })
        .await;
        let sd = describe(&ecs, &arn).await;
        let rb = sd.rollback().unwrap();
        assert!(rb.reason().unwrap().contains("ROLLBACK"), "{rb:?}");
        assert_eq!(
            sd.lifecycle_hook_details()[0].status(),
            Some(&DeploymentLifecycleHookStatus::Failed)
        );
        statuses
    });
    assert_eq!(
        statuses,
        [
            "ROLLBACK_REQUESTED",
            "ROLLBACK_IN_PROGRESS",
            "ROLLBACK_SUCCESSFUL"
        ]
    );
    let stages = p.stages_seen();
    assert!(
        !stages.iter().any(|s| s == "PRODUCTION_TRAFFIC_SHIFT"),
        "{stages:?}"
    );
    assert_eq!(p.max_new_weight(), 0.0);
    assert_eq!(p.status().0, "ROLLBACK_SUCCESSFUL");
    assert_eq!(sim.service_task_definition(), OLD_TD);
    let w = p.weights();
    assert_eq!(w.production_of(&p.plan().production_group), 100.0);
    assert_eq!(w.test_of(&p.plan().production_group), 100.0);
}

#[test]
fn an_expired_hook_applies_its_timeout_action() {
    for (action, want, td) in [
        (
            HookAction::Rollback,
            ServiceDeploymentStatus::RollbackSuccessful,
            OLD_TD,
        ),
        (
            HookAction::Continue,
            ServiceDeploymentStatus::Successful,
            NEW_TD,
        ),
    ] {
        let plan = fast(Plan::blue_green()).pause(&["POST_TEST_TRAFFIC_SHIFT"], 1, action);
        let sim = EcsSim::start(Scenario::Progressive(plan));
        let ecs = client(&sim);
        rt().block_on(async {
            let arn = update(&ecs).await;
            let (hook, sd) = paused_at(&ecs, &arn, "POST_TEST_TRAFFIC_SHIFT").await;
            let expires = sd.lifecycle_hook_details()[0]
                .expires_at()
                .unwrap()
                .as_secs_f64();
            let created = sd.created_at().unwrap().as_secs_f64();
            assert!(
                expires > created && expires < created + 5.0,
                "{expires} vs {created}"
            );
            let sd = until(&ecs, &arn, "terminal", terminal).await;
            assert_eq!(sd.status(), Some(&want), "{action:?}");
            // Nobody acted on the hook: it expired.
            let p = sim.progress().unwrap();
            assert!(p.hook_actions().is_empty());
            if action == HookAction::Rollback {
                let detail = &sd.lifecycle_hook_details()[0];
                assert_eq!(detail.hook_id(), Some(hook.as_str()));
                assert_eq!(
                    detail.status(),
                    Some(&DeploymentLifecycleHookStatus::TimedOut)
                );
                assert_eq!(p.max_new_weight(), 0.0);
            } else {
                assert_eq!(p.max_new_weight(), 100.0);
            }
        });
        assert_eq!(sim.service_task_definition(), td, "{action:?}");
    }
}

#[test]
fn continue_is_refused_for_a_hook_not_awaiting_action_and_an_unknown_deployment() {
    let plan =
        fast(Plan::blue_green()).pause(&["POST_TEST_TRAFFIC_SHIFT"], 10, HookAction::Rollback);
    let sim = EcsSim::start(Scenario::Progressive(plan));
    let ecs = client(&sim);
    rt().block_on(async {
        let arn = update(&ecs).await;
        let cont = |arn: &str, hook: &str| {
            ecs.continue_service_deployment()
                .service_deployment_arn(arn)
                .hook_id(hook)
                .action(DeploymentLifecycleHookAction::Continue)
                .send()
        };
        // Before the pause: no hook awaits action.
        let e = cont(&arn, "hook-none").await.unwrap_err();
        assert!(
            e.as_service_error()
                .unwrap()
                .is_invalid_parameter_exception(),
            "{e:?}"
        );
        let (hook, _) = paused_at(&ecs, &arn, "POST_TEST_TRAFFIC_SHIFT").await;
        let e = cont(&arn, "hook-unknown").await.unwrap_err();
        assert!(
            e.as_service_error()
                .unwrap()
                .is_invalid_parameter_exception(),
            "{e:?}"
        );
        let missing = arn.replace("/sd", "/missing");
        let e = cont(&missing, &hook).await.unwrap_err();
        assert!(
            e.as_service_error()
                .unwrap()
                .is_service_deployment_not_found_exception(),
            "{e:?}"
        );
        cont(&arn, &hook).await.unwrap();
        // Twice: the hook no longer awaits action.
        let e = cont(&arn, &hook).await.unwrap_err();
        assert!(
            e.as_service_error()
                .unwrap()
                .is_invalid_parameter_exception(),
            "{e:?}"
        );
        until(&ecs, &arn, "terminal", terminal).await;
        let e = cont(&arn, &hook).await.unwrap_err();
        assert!(
            e.as_service_error()
                .unwrap()
                .is_invalid_parameter_exception(),
            "{e:?}"
        );
    });
    assert_eq!(sim.progress().unwrap().hook_actions().len(), 1);
}

#[test]
fn stop_rolls_back_an_in_progress_deployment_and_is_refused_after_the_end() {
    let plan = fast(Plan::linear(50.0, 5));
    let sim = EcsSim::start(Scenario::Progressive(plan));
    let ecs = client(&sim);
    let p = sim.progress().unwrap();
    rt().block_on(async {
        let arn = update(&ecs).await;
        // At the first linear step (50% for five minutes), stop it.
        until(&ecs, &arn, "at 50%", |sd| new_weights(sd).0 == 50.0).await;
        let stop = || {
            ecs.stop_service_deployment()
                .service_deployment_arn(&arn)
                .stop_type(StopServiceDeploymentStopType::Rollback)
                .send()
        };
        stop().await.unwrap();
        let sd = describe(&ecs, &arn).await;
        // At once (a loaded machine may already show the next step).
        assert!(
            matches!(
                sd.status(),
                Some(
                    ServiceDeploymentStatus::RollbackRequested
                        | ServiceDeploymentStatus::RollbackInProgress
                )
            ),
            "{sd:?}"
        );
        let sd = until(&ecs, &arn, "terminal", terminal).await;
        assert_eq!(
            sd.status(),
            Some(&ServiceDeploymentStatus::RollbackSuccessful)
        );
        assert_eq!(new_weights(&sd), (0.0, 0.0));
        assert_eq!(old_production_weight(&sd), 100.0);
        let e = stop().await.unwrap_err();
        assert!(
            e.as_service_error().unwrap().is_conflict_exception(),
            "{e:?}"
        );
    });
    assert_eq!(p.max_new_weight(), 50.0);
    assert_eq!(sim.service_task_definition(), OLD_TD);
    let d = p.deployments();
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].status, "ROLLBACK_SUCCESSFUL");
    assert_eq!(d[0].task_definition, NEW_TD);
    assert_eq!(
        sim.mutating_calls(),
        [
            "UpdateService",
            "StopServiceDeployment",
            "StopServiceDeployment"
        ]
    );
}

#[test]
fn linear_steps_move_the_production_weight_step_by_step() {
    let plan = fast(Plan::linear(30.0, 0)).pause(
        &["PRE_PRODUCTION_TRAFFIC_SHIFT"],
        10,
        HookAction::Rollback,
    );
    let sim = EcsSim::start(Scenario::Progressive(plan));
    let ecs = client(&sim);
    let p = sim.progress().unwrap();
    let weights = rt().block_on(async {
        let arn = update(&ecs).await;
        let mut seen = Vec::new();
        let mut last = String::new();
        for _ in 0..4 {
            let (hook, sd) = paused_again(&ecs, &arn, "PRE_PRODUCTION_TRAFFIC_SHIFT", &last).await;
            seen.push(new_weights(&sd).0);
            // The ELB's view agrees with the service deployment's.
            assert_eq!(
                p.weights().production_of(&p.new_group()),
                new_weights(&sd).0
            );
            act(&ecs, &arn, &hook, DeploymentLifecycleHookAction::Continue).await;
            last = hook;
        }
        let sd = until(&ecs, &arn, "terminal", terminal).await;
        seen.push(new_weights(&sd).0);
        seen
    });
    assert_eq!(weights, [0.0, 30.0, 60.0, 90.0, 100.0]);
    let shifts = p
        .stages_seen()
        .iter()
        .filter(|s| *s == "PRODUCTION_TRAFFIC_SHIFT")
        .count();
    assert_eq!(shifts, 4);
}

#[test]
fn a_pause_hook_at_a_stage_ecs_refuses_fails_the_update() {
    let plan = fast(Plan::blue_green()).pause(&["TEST_TRAFFIC_SHIFT"], 10, HookAction::Rollback);
    let sim = EcsSim::start(Scenario::Progressive(plan));
    let ecs = client(&sim);
    rt().block_on(async {
        let e = ecs
            .update_service()
            .cluster("stage-cluster")
            .service("stage-backend")
            .task_definition("cloudshop-backend:1")
            .send()
            .await
            .unwrap_err();
        assert!(
            e.as_service_error()
                .unwrap()
                .is_invalid_parameter_exception(),
            "{e:?}"
        );
    });
    assert_eq!(sim.service_task_definition(), OLD_TD);
}

#[test]
fn the_listener_rules_follow_the_service_deployment() {
    use aws_sdk_elasticloadbalancingv2 as elbv2;
    use common::elb_sim::ElbSim;
    let plan = fast(Plan::canary(10.0, 1)).pause(
        &["POST_TEST_TRAFFIC_SHIFT", "PRE_PRODUCTION_TRAFFIC_SHIFT"],
        10,
        HookAction::Rollback,
    );
    let sim = EcsSim::start(Scenario::Progressive(plan.clone()));
    let elb = ElbSim::start_with_rules("stage-blue", Vec::new(), sim.progress().unwrap());
    let ecs = client(&sim);
    let lb = elbv2::Client::from_conf(
        elbv2::Config::builder()
            .behavior_version(elbv2::config::BehaviorVersion::latest())
            .region(elbv2::config::Region::new("us-east-1"))
            .endpoint_url(&elb.endpoint)
            .credentials_provider(elbv2::config::Credentials::new(
                "testing", "testing", None, None, "test",
            ))
            .http_client(cloudshop_deploy::aws::http_client())
            .build(),
    );
    let (blue, green) = (plan.production_group.clone(), plan.alternate_group.clone());
    // (rule, group) -> weight, from DescribeRules of both rules.
    let rules = |lb: elbv2::Client, plan: Plan| async move {
        let out = lb
            .describe_rules()
            .rule_arns(&plan.production_rule)
            .rule_arns(&plan.test_rule)
            .send()
            .await
            .unwrap();
        let mut w = Vec::new();
        for r in out.rules() {
            let action = &r.actions()[0];
            assert_eq!(action.r#type().map(|t| t.as_str()), Some("forward"));
            for tg in action.forward_config().unwrap().target_groups() {
                let rule = if r.rule_arn() == Some(plan.production_rule.as_str()) {
                    "production"
                } else {
                    "test"
                };
                w.push((
                    rule,
                    tg.target_group_arn().unwrap().to_string(),
                    tg.weight().unwrap(),
                ));
            }
        }
        w
    };
    rt().block_on(async {
        let at_rest = rules(lb.clone(), plan.clone()).await;
        assert_eq!(
            at_rest,
            [
                ("production", green.clone(), 0),
                ("production", blue.clone(), 100),
                ("test", green.clone(), 0),
                ("test", blue.clone(), 100),
            ]
        );
        let arn = update(&ecs).await;
        let (hook, _) = paused_at(&ecs, &arn, "POST_TEST_TRAFFIC_SHIFT").await;
        let w = rules(lb.clone(), plan.clone()).await;
        assert_eq!(
            w,
            [
                ("production", blue.clone(), 100),
                ("production", green.clone(), 0),
                ("test", blue.clone(), 0),
                ("test", green.clone(), 100),
            ]
        );
        act(&ecs, &arn, &hook, DeploymentLifecycleHookAction::Continue).await;
        let (first, _) = paused_at(&ecs, &arn, "PRE_PRODUCTION_TRAFFIC_SHIFT").await;
        act(&ecs, &arn, &first, DeploymentLifecycleHookAction::Continue).await;
        let (second, _) = paused_again(&ecs, &arn, "PRE_PRODUCTION_TRAFFIC_SHIFT", &first).await;
        let w = rules(lb.clone(), plan.clone()).await;
        assert_eq!(w[0], ("production", blue.clone(), 90));
        assert_eq!(w[1], ("production", green.clone(), 10));
        act(&ecs, &arn, &second, DeploymentLifecycleHookAction::Continue).await;
        until(&ecs, &arn, "terminal", terminal).await;
        // The roles swapped: green is the production group.
        let w = rules(lb.clone(), plan.clone()).await;
        assert_eq!(w[0], ("production", blue.clone(), 0));
        assert_eq!(w[1], ("production", green.clone(), 100));
        let e = lb
            .describe_rules()
            .rule_arns(format!("{}0", plan.test_rule))
            .send()
            .await
            .unwrap_err();
        assert!(
            e.as_service_error().unwrap().is_rule_not_found_exception(),
            "{e:?}"
        );
        let tgs = lb
            .describe_target_groups()
            .target_group_arns(&green)
            .send()
            .await
            .unwrap();
        let tg = &tgs.target_groups()[0];
        assert_eq!(tg.target_group_name(), Some("stage-green"));
        assert_eq!(tg.load_balancer_arns(), [common::elb_sim::LOAD_BALANCER]);
    });
}

#[test]
fn a_stop_at_a_pause_ends_the_hook_and_a_newer_update_supersedes_the_deployment() {
    let plan =
        fast(Plan::blue_green()).pause(&["POST_TEST_TRAFFIC_SHIFT"], 10, HookAction::Continue);
    let sim = EcsSim::start(Scenario::Progressive(plan));
    let ecs = client(&sim);
    let p = sim.progress().unwrap();
    rt().block_on(async {
        let arn = update(&ecs).await;
        let (hook, _) = paused_at(&ecs, &arn, "POST_TEST_TRAFFIC_SHIFT").await;
        ecs.stop_service_deployment()
            .service_deployment_arn(&arn)
            .stop_type(StopServiceDeploymentStopType::Rollback)
            .send()
            .await
            .unwrap();
        let sd = describe(&ecs, &arn).await;
        assert_eq!(
            sd.lifecycle_hook_details()[0].status(),
            Some(&DeploymentLifecycleHookStatus::Failed)
        );
        let e = ecs
            .continue_service_deployment()
            .service_deployment_arn(&arn)
            .hook_id(&hook)
            .action(DeploymentLifecycleHookAction::Continue)
            .send()
            .await
            .unwrap_err();
        assert!(
            e.as_service_error()
                .unwrap()
                .is_invalid_parameter_exception(),
            "{e:?}"
        );
        until(&ecs, &arn, "terminal", terminal).await;
        // Two more updates: the first is superseded by the second while under way.
        let second = update(&ecs).await;
        let third = update(&ecs).await;
        assert_ne!(second, third);
        let sd = describe(&ecs, &second).await;
        assert_eq!(sd.status(), Some(&ServiceDeploymentStatus::Stopped));
        let listed = ecs
            .list_service_deployments()
            .cluster("stage-cluster")
            .service("stage-backend")
            .status(ServiceDeploymentStatus::Successful)
            .send()
            .await
            .unwrap();
        // Only the seeded deployment is SUCCESSFUL so far.
        assert_eq!(listed.service_deployments().len(), 1);
        let rev = listed.service_deployments()[0]
            .target_service_revision_arn()
            .unwrap()
            .to_string();
        let revs = ecs
            .describe_service_revisions()
            .service_revision_arns(rev)
            .send()
            .await
            .unwrap();
        assert_eq!(revs.service_revisions()[0].task_definition(), Some(OLD_TD));
    });
    let statuses: Vec<String> = p.deployments().into_iter().map(|d| d.status).collect();
    assert_eq!(statuses[..2], ["ROLLBACK_SUCCESSFUL", "STOPPED"]);
}
