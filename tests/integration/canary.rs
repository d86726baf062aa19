//! Canary analysis reads both revisions over the same minutes: each target group's metrics from the
//! CloudWatch simulator (seeded per target group with the SDK's `PutMetricData`), each revision's error
//! lines from its tasks' `awslogs` streams in moto, the tasks and task definitions from ECS, and which
//! group is the new revision's from the listener rules. ECS and ELBv2 are a small stub here that
//! answers exactly the reads the analysis makes for two revisions side by side (the ECS simulator runs
//! one revision's tasks at a time); CloudWatch denied or throttled goes through the fault proxy. The
//! `simulated` tests run against the progressive ECS and ELBv2 simulators and the weighted ALB.

use harness as common;

use std::time::{Duration, SystemTime};

use aws_sdk_cloudwatch::types::{Dimension, MetricDatum};
use axum::body::Bytes;
use axum::http::{header, HeaderMap, StatusCode};
use axum::Router;
use cloudshop_deploy::config::{self, Config};
use cloudshop_deploy::github::Context;
use cloudshop_deploy::inputs::Inputs;
use cloudshop_deploy::steps::canary::{self, Decision, Groups, StepVerdict, Verdict, Window};
use cloudshop_deploy::steps::Clients;
use common::cw_sim::CwSim;
use common::faults::{Fault, FaultPlan, FaultProxy};
use common::seed::rt;
use common::Moto;

const ACCOUNT: &str = "123456789012";
const BLUE: &str =
    "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/stage-backend-blue/73e2d6bc24d8a067";
const GREEN: &str =
    "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/stage-backend-green/1f0c9a2b3d4e5f60";
const ALB: &str =
    "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/stage-alb/50dc6c495c0c9188";
const PROD_RULE: &str = "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener-rule/app/stage-alb/50dc6c495c0c9188/f2f7dc8efc522ab2/9683b2d02a6cabee";
const TEST_RULE: &str = "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener-rule/app/stage-alb/50dc6c495c0c9188/3e9a2b8c1d7f4a60/1a2b3c4d5e6f7a8b";
const OLD_TD: &str = "arn:aws:ecs:us-east-1:123456789012:task-definition/cloudshop-backend:7";
const NEW_TD: &str = "arn:aws:ecs:us-east-1:123456789012:task-definition/cloudshop-backend:8";
/// Two tasks of each revision.
const NEW_TASKS: [&str; 2] = [
    "0a1b2c3d4e5f60718293a4b5c6d7e8f9",
    "1b2c3d4e5f60718293a4b5c6d7e8f90a",
];
const OLD_TASKS: [&str; 2] = [
    "2c3d4e5f60718293a4b5c6d7e8f90a1b",
    "3d4e5f60718293a4b5c6d7e8f90a1b2c",
];

fn task_arn(id: &str) -> String {
    format!("arn:aws:ecs:us-east-1:{ACCOUNT}:task/stage-cluster/{id}")
}

fn elb_reply(action: &str, result: &str) -> String {
    format!(
        "<{action}Response xmlns=\"http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/\">\
         <{action}Result>{result}</{action}Result>\
         <ResponseMetadata><RequestId>stub</RequestId></ResponseMetadata></{action}Response>"
    )
}

fn forward(weights: &[(&str, i32)]) -> String {
    let tgs: String = weights
        .iter()
        .map(|(arn, w)| {
            format!("<member><TargetGroupArn>{arn}</TargetGroupArn><Weight>{w}</Weight></member>")
        })
        .collect();
    format!(
        "<Actions><member><Type>forward</Type><Order>1</Order><ForwardConfig><TargetGroups>{tgs}</TargetGroups></ForwardConfig></member></Actions>"
    )
}

/// ELBv2 (query protocol): the two target groups behind one load balancer, and the listener rules of a
/// 10% canary on green.
fn elb(form: &str) -> (StatusCode, String) {
    let action = form
        .split('&')
        .find_map(|kv| kv.strip_prefix("Action="))
        .unwrap_or("");
    let decoded = percent_encoding::percent_decode_str(form).decode_utf8_lossy();
    match action {
        "DescribeTargetGroups" => {
            let groups: String = [BLUE, GREEN]
                .iter()
                .filter(|arn| decoded.contains(*arn))
                .map(|arn| {
                    format!("<member><TargetGroupArn>{arn}</TargetGroupArn><LoadBalancerArns><member>{ALB}</member></LoadBalancerArns></member>")
                })
                .collect();
            (
                StatusCode::OK,
                elb_reply(action, &format!("<TargetGroups>{groups}</TargetGroups>")),
            )
        }
        "DescribeRules" => {
            let rules = format!(
                "<Rules><member><RuleArn>{PROD_RULE}</RuleArn><Priority>1</Priority>{}</member>\
                 <member><RuleArn>{TEST_RULE}</RuleArn><Priority>2</Priority>{}</member></Rules>",
                forward(&[(BLUE, 90), (GREEN, 10)]),
                forward(&[(GREEN, 100)])
            );
            (StatusCode::OK, elb_reply(action, &rules))
        }
        other => (
            StatusCode::BAD_REQUEST,
            format!("<ErrorResponse><Error><Type>Sender</Type><Code>InvalidAction</Code><Message>{other} is not stubbed</Message></Error></ErrorResponse>"),
        ),
    }
}

/// ECS (JSON protocol): two running tasks of each revision, and their task definitions logging to
/// `log_group` with the stream prefix `ecs`.
fn ecs(op: &str, body: &serde_json::Value, log_group: &str) -> serde_json::Value {
    use serde_json::json;
    match op {
        "ListTasks" => {
            assert_eq!(body["serviceName"], "stage-backend");
            assert_eq!(body["desiredStatus"], "RUNNING");
            let arns: Vec<String> = NEW_TASKS
                .iter()
                .chain(&OLD_TASKS)
                .map(|t| task_arn(t))
                .collect();
            json!({ "taskArns": arns })
        }
        "DescribeTasks" => {
            let tasks: Vec<serde_json::Value> = body["tasks"]
                .as_array()
                .unwrap()
                .iter()
                .map(|arn| {
                    let arn = arn.as_str().unwrap();
                    let td = if NEW_TASKS.iter().any(|t| arn.ends_with(t)) {
                        NEW_TD
                    } else {
                        OLD_TD
                    };
                    json!({"taskArn": arn, "taskDefinitionArn": td, "lastStatus": "RUNNING"})
                })
                .collect();
            json!({ "tasks": tasks, "failures": [] })
        }
        "DescribeTaskDefinition" => json!({"taskDefinition": {
            "taskDefinitionArn": body["taskDefinition"],
            "containerDefinitions": [{"name": "backend", "image": "backend:x", "logConfiguration": {
                "logDriver": "awslogs",
                "options": {"awslogs-group": log_group, "awslogs-region": "us-east-1", "awslogs-stream-prefix": "ecs"}
            }}]
        }}),
        other => panic!("{other} is not stubbed"),
    }
}

/// The ECS and ELBv2 stub on one port (told apart by the JSON protocol's target header).
fn stub(log_group: String) -> (String, tokio::runtime::Runtime) {
    let app = Router::new().fallback(move |headers: HeaderMap, body: Bytes| {
        let log_group = log_group.clone();
        async move {
            match headers.get("x-amz-target").and_then(|v| v.to_str().ok()) {
                Some(target) => {
                    let op = target.rsplit('.').next().unwrap_or("");
                    let req: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                    (
                        StatusCode::OK,
                        [(header::CONTENT_TYPE, "application/x-amz-json-1.1")],
                        ecs(op, &req, &log_group).to_string(),
                    )
                }
                None => {
                    let (status, xml) = elb(&String::from_utf8_lossy(&body));
                    (status, [(header::CONTENT_TYPE, "text/xml")], xml)
                }
            }
        }
    });
    let (port, rt) = common::serve_on_own_thread(app);
    (format!("http://127.0.0.1:{port}"), rt)
}

struct Env {
    moto: Moto,
    cw: CwSim,
    log_group: String,
    stub: String,
    _stub_rt: tokio::runtime::Runtime,
    /// The minute judged: two minutes before the real one (moto keeps recent log events only).
    from: SystemTime,
}

fn env() -> Env {
    let moto = Moto::shared();
    let log_group = moto.name("/ecs/stage/backend");
    let (stub, rt) = stub(log_group.clone());
    let secs = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    Env {
        moto,
        cw: CwSim::start(),
        log_group,
        stub,
        _stub_rt: rt,
        from: SystemTime::UNIX_EPOCH + Duration::from_secs(secs - secs % 60 - 120),
    }
}

fn config(canary: &str) -> Config {
    let file = config::parse_file(
        "f.yml",
        &format!(
            "region: us-east-1\nenvironments:\n  stage:\n    cluster: stage-cluster\n    service: stage-backend\n    container: backend\n    ecr-repository: stage-cloudshop-backend\n    smoke: {{ watch-signals: {{ error-pattern: ERROR }} }}\n    canary: {{ {canary} }}\n"
        ),
    )
    .unwrap();
    let inputs =
        Inputs::from_env([("INPUT_ENVIRONMENT".to_string(), "stage".to_string())]).unwrap();
    let ctx = Context {
        sha: Some("0123456789abcdef0123456789abcdef01234567".into()),
        ..Context::default()
    };
    config::build(&inputs, &file, &ctx).unwrap()
}

/// The clients of a run: moto for logs, the other services at their endpoints.
async fn clients_at(moto: &Moto, ecs: &str, elb: &str, cloudwatch: &str) -> Clients {
    let sdk = moto.sdk_config().await;
    let mut c = Clients::new(sdk.clone(), true);
    c.ecs = aws_sdk_ecs::Client::from_conf(
        aws_sdk_ecs::config::Builder::from(&sdk)
            .endpoint_url(ecs)
            .build(),
    );
    c.elb = aws_sdk_elasticloadbalancingv2::Client::from_conf(
        aws_sdk_elasticloadbalancingv2::config::Builder::from(&sdk)
            .endpoint_url(elb)
            .build(),
    );
    c.cloudwatch = aws_sdk_cloudwatch::Client::from_conf(
        aws_sdk_cloudwatch::config::Builder::from(&sdk)
            .endpoint_url(cloudwatch)
            .build(),
    );
    c
}

/// The clients of a run against the stub (ECS and ELBv2) and `cloudwatch`.
async fn clients(e: &Env, cloudwatch: &str) -> Clients {
    clients_at(&e.moto, &e.stub, &e.stub, cloudwatch).await
}

/// One minute of a target group's metrics at `at`: requests, 5xx answers, response times (seconds).
async fn put_minute(
    e: &Env,
    group: &str,
    at: SystemTime,
    requests: f64,
    errors: f64,
    latency: &[f64],
) {
    let cw = e.cw.client().await;
    let tg = group.rsplit_once(':').unwrap().1;
    let datum = |name: &str| {
        MetricDatum::builder()
            .metric_name(name)
            .timestamp(at.into())
            .dimensions(Dimension::builder().name("TargetGroup").value(tg).build())
            .dimensions(
                Dimension::builder()
                    .name("LoadBalancer")
                    .value("app/stage-alb/50dc6c495c0c9188")
                    .build(),
            )
    };
    cw.put_metric_data()
        .namespace("AWS/ApplicationELB")
        .metric_data(datum("RequestCount").value(requests).build())
        .metric_data(datum("HTTPCode_Target_5XX_Count").value(errors).build())
        .metric_data(
            datum("TargetResponseTime")
                .set_values(Some(latency.to_vec()))
                .build(),
        )
        .send()
        .await
        .expect("put metric data");
}

/// `lines` in the `backend` container's stream of task `id`, at `at`.
async fn put_lines(e: &Env, id: &str, at: SystemTime, lines: &[&str]) {
    let logs = aws_sdk_cloudwatchlogs::Client::new(&e.moto.sdk_config().await);
    let _ = logs
        .create_log_group()
        .log_group_name(&e.log_group)
        .send()
        .await;
    let stream = format!("ecs/backend/{id}");
    logs.create_log_stream()
        .log_group_name(&e.log_group)
        .log_stream_name(&stream)
        .send()
        .await
        .expect("create log stream");
    let ms = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let events: Vec<_> = lines
        .iter()
        .enumerate()
        .map(|(i, l)| {
            aws_sdk_cloudwatchlogs::types::InputLogEvent::builder()
                .timestamp(ms + i as i64)
                .message(*l)
                .build()
                .unwrap()
        })
        .collect();
    logs.put_log_events()
        .log_group_name(&e.log_group)
        .log_stream_name(&stream)
        .set_log_events(Some(events))
        .send()
        .await
        .expect("put log events");
}

const CALM: [f64; 5] = [0.03, 0.04, 0.04, 0.05, 0.04];

/// Seed one minute: green (new) and blue (old) with their requests and 5xx, and error lines in every
/// task's stream (3 per new task, 1 per old task; an INFO line each that does not count).
async fn seed(e: &Env, new: (f64, f64), old: (f64, f64)) {
    let at = e.from + Duration::from_secs(10);
    put_minute(e, GREEN, at, new.0, new.1, &CALM).await;
    put_minute(e, BLUE, at, old.0, old.1, &CALM).await;
    for id in NEW_TASKS {
        put_lines(
            e,
            id,
            at,
            &["ERROR boom", "INFO ok", "ERROR again", "ERROR third"],
        )
        .await;
    }
    for id in OLD_TASKS {
        put_lines(e, id, at, &["INFO ok", "ERROR once"]).await;
    }
}

async fn step(e: &Env, cfg: &Config, cloudwatch: &str) -> StepVerdict {
    let c = clients(e, cloudwatch).await;
    let groups = canary::groups(&c.elb, Some(TEST_RULE), PROD_RULE, (BLUE, GREEN))
        .await
        .expect("groups");
    assert_eq!(
        groups,
        Groups {
            new: GREEN.into(),
            old: BLUE.into()
        }
    );
    let window = Window {
        from: e.from,
        to: e.from + Duration::from_secs(60),
    };
    canary::analyse(&c, cfg, &groups, (NEW_TD, OLD_TD), window, 10.0).await
}

#[test]
fn a_canary_at_8_percent_5xx_against_0_1_is_rolled_back_in_its_first_step() {
    let e = env();
    let cfg = config("");
    let s = rt().block_on(async {
        seed(&e, (100.0, 8.0), (1000.0, 1.0)).await;
        step(&e, &cfg, &e.cw.endpoint).await
    });
    assert!(
        matches!(&s.verdict, Verdict::Regression(w) if w.len() == 1 && w[0].starts_with("5xx share 8.0% against 0.1%")),
        "{s:#?}"
    );
    assert_eq!(s.verdict.decision(&cfg.canary, false), Decision::Rollback);
    assert_eq!((s.new.sample.requests, s.new.sample.errors_5xx), (100, 8));
    assert_eq!((s.old.sample.requests, s.old.sample.errors_5xx), (1000, 1));
    assert_eq!(s.new.target_group, GREEN);
    assert_eq!(s.new.revision, NEW_TD);
    assert_eq!(s.weight, 10.0);
    assert_eq!(s.to_epoch - s.from_epoch, 60);
    // Each revision's lines, from its own tasks' streams only.
    assert_eq!(
        (s.new.sample.error_lines, s.new.sample.tasks),
        (Some(6), Some(2))
    );
    assert_eq!(
        (s.old.sample.error_lines, s.old.sample.tasks),
        (Some(2), Some(2))
    );
    assert!(s.notes.is_empty(), "{:?}", s.notes);
}

#[test]
fn a_canary_at_the_old_revisions_rate_passes() {
    let e = env();
    let cfg = config("");
    let s = rt().block_on(async {
        seed(&e, (100.0, 0.0), (900.0, 1.0)).await;
        step(&e, &cfg, &e.cw.endpoint).await
    });
    assert_eq!(s.verdict, Verdict::Pass, "{s:#?}");
    assert_eq!(s.verdict.decision(&cfg.canary, false), Decision::Continue);
    assert_eq!(s.new.sample.p95_ms, Some(50.0));
    assert_eq!(s.new.sample.error_lines, Some(6));
}

#[test]
fn ten_requests_are_not_enough_traffic() {
    let e = env();
    let cfg = config("");
    let s = rt().block_on(async {
        seed(&e, (10.0, 0.0), (90.0, 0.0)).await;
        step(&e, &cfg, &e.cw.endpoint).await
    });
    assert_eq!(s.verdict, Verdict::NotEnoughTraffic { new: 10, old: 90 });
    assert_eq!(
        s.why,
        "10 requests to the new revision and 90 to the old one; 50 each are needed to judge"
    );
    assert_eq!(s.verdict.decision(&cfg.canary, false), Decision::Wait);
    assert_eq!(s.verdict.decision(&cfg.canary, true), Decision::Rollback);
}

#[test]
fn cloudwatch_denied_or_throttled_is_no_data_never_a_pass() {
    let e = env();
    rt().block_on(seed(&e, (100.0, 0.0), (900.0, 1.0)));
    for (fault, words) in [
        (
            Fault::Denied,
            "no load balancer metrics: the role may not call `cloudwatch:GetMetricData`",
        ),
        (
            // The proxy's throttling reply carries no code the CBOR protocol reads: the SDK retries
            // it and then reports it unhandled.
            Fault::Throttle,
            "no load balancer metrics: could not read them: cloudwatch:GetMetricData: ",
        ),
    ] {
        let proxy = FaultProxy::start(
            &e.cw.endpoint,
            FaultPlan {
                always: vec![("cloudwatch:GetMetricData".into(), fault)],
                ..FaultPlan::none()
            },
        );
        let cfg = config("");
        let s = rt().block_on(step(&e, &cfg, &proxy.endpoint));
        let Verdict::NoData(why) = &s.verdict else {
            panic!("{fault:?}: {s:#?}")
        };
        assert!(why.starts_with(words), "{fault:?}: {why}");
        assert_eq!(s.why, *why);
        assert_eq!(s.verdict.decision(&cfg.canary, false), Decision::Rollback);
        let go_on = config("on-no-data: continue");
        assert_eq!(s.verdict.decision(&go_on.canary, false), Decision::Continue);
    }
}

mod simulated {
    //! The simulators of a progressive service: the ECS simulator's canary paused before each
    //! production step, the ELBv2 simulator's listener rules following it, and (for real traffic) the
    //! loopback weighted ALB writing each target group's metrics into the CloudWatch simulator.

    use super::*;
    use aws_sdk_ecs::types::{DeploymentLifecycleHookAction, DeploymentLifecycleHookStatus};
    use common::alb::Alb;
    use common::app::{App, Mode};
    use common::ecs_sim::{EcsSim, HookAction, Plan, Scenario};
    use common::elb_sim::ElbSim;

    /// A 10% canary paused before each production step; a simulated minute lasts 200 ms.
    pub fn plan() -> Plan {
        Plan {
            minute: Duration::from_millis(200),
            stage: Duration::from_millis(20),
            ..Plan::canary(10.0, 1)
        }
        .pause(&["PRE_PRODUCTION_TRAFFIC_SHIFT"], 100, HookAction::Rollback)
    }

    /// What the rollout reads from the service: `(target group, alternate)`, test rule, production rule.
    async fn load_balancing(ecs: &aws_sdk_ecs::Client) -> ((String, String), String, String) {
        let svc = ecs
            .describe_services()
            .cluster("stage-cluster")
            .services("stage-backend")
            .send()
            .await
            .unwrap();
        let lb = &svc.services()[0].load_balancers()[0];
        let adv = lb.advanced_configuration().unwrap();
        (
            (
                lb.target_group_arn().unwrap().to_string(),
                adv.alternate_target_group_arn().unwrap().to_string(),
            ),
            adv.test_listener_rule().unwrap().to_string(),
            adv.production_listener_rule().unwrap().to_string(),
        )
    }

    /// Update the service to revision 1; the service deployment's ARN.
    async fn update(ecs: &aws_sdk_ecs::Client) -> String {
        ecs.update_service()
            .cluster("stage-cluster")
            .service("stage-backend")
            .task_definition("cloudshop-backend:1")
            .send()
            .await
            .unwrap()
            .service()
            .and_then(|s| s.current_service_deployment())
            .unwrap()
            .to_string()
    }

    /// The hook awaiting action other than `not`, and the new revision's production weight then.
    async fn paused(ecs: &aws_sdk_ecs::Client, arn: &str, not: &str) -> (String, f64) {
        for _ in 0..2000 {
            let out = ecs
                .describe_service_deployments()
                .service_deployment_arns(arn)
                .send()
                .await
                .unwrap();
            let sd = &out.service_deployments()[0];
            if let Some(h) = sd.lifecycle_hook_details().first() {
                let id = h.hook_id().unwrap_or_default();
                if h.status() == Some(&DeploymentLifecycleHookStatus::AwaitingAction) && id != not {
                    let weight = sd
                        .target_service_revision()
                        .and_then(|t| t.requested_production_traffic_weight())
                        .unwrap();
                    return (id.to_string(), weight);
                }
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("never paused");
    }

    async fn answer(ecs: &aws_sdk_ecs::Client, arn: &str, hook: &str, d: Decision) {
        let action = match d {
            Decision::Continue => DeploymentLifecycleHookAction::Continue,
            Decision::Rollback => DeploymentLifecycleHookAction::Rollback,
            Decision::Wait => panic!("a decided step"),
        };
        ecs.continue_service_deployment()
            .service_deployment_arn(arn)
            .hook_id(hook)
            .action(action)
            .send()
            .await
            .unwrap();
    }

    /// At the first pause (no production weight yet) the rules name the new revision's group with or
    /// without the test rule; at the second (10% on the new revision) only the test rule tells the
    /// groups apart, and the groups' metrics (8% against 0.1%) roll the canary back at that pause: the
    /// new revision never above 10%.
    #[test]
    fn the_canary_is_judged_at_its_pause_and_rolled_back() {
        let plan = plan();
        let sim = EcsSim::start(Scenario::Progressive(plan.clone()));
        let elb = ElbSim::start_with_rules("stage-blue", Vec::new(), sim.progress().unwrap());
        let e = env();
        let cfg = config("");
        rt().block_on(async {
            put_minute(&e, &plan.alternate_group, e.from, 100.0, 8.0, &CALM).await;
            put_minute(&e, &plan.production_group, e.from, 1000.0, 1.0, &CALM).await;
            let c = clients_at(&e.moto, &sim.endpoint, &elb.endpoint, &e.cw.endpoint).await;
            let (pair, test_rule, prod_rule) = load_balancing(&c.ecs).await;
            let pair = (pair.0.as_str(), pair.1.as_str());
            let arn = update(&c.ecs).await;
            let (first, weight) = paused(&c.ecs, &arn, "").await;
            assert_eq!(weight, 0.0);
            let by_test = canary::groups(&c.elb, Some(&test_rule), &prod_rule, pair)
                .await
                .unwrap();
            assert_eq!(by_test.new, plan.alternate_group);
            assert_eq!(by_test.old, plan.production_group);
            let by_weight = canary::groups(&c.elb, None, &prod_rule, pair)
                .await
                .unwrap();
            assert_eq!(by_weight, by_test);
            answer(&c.ecs, &arn, &first, Decision::Continue).await;
            let (second, weight) = paused(&c.ecs, &arn, &first).await;
            assert_eq!(weight, 10.0);
            let err = canary::groups(&c.elb, None, &prod_rule, pair)
                .await
                .unwrap_err();
            assert!(err.to_string().contains("no test listener rule"), "{err}");
            let window = Window {
                from: e.from,
                to: e.from + Duration::from_secs(60),
            };
            let s = canary::analyse(&c, &cfg, &by_test, (NEW_TD, OLD_TD), window, weight).await;
            assert!(matches!(s.verdict, Verdict::Regression(_)), "{s:#?}");
            assert_eq!((s.new.sample.requests, s.old.sample.requests), (100, 1000));
            let decision = s.verdict.decision(&cfg.canary, false);
            assert_eq!(decision, Decision::Rollback);
            answer(&c.ecs, &arn, &second, decision).await;
        });
        let progress = sim.progress().unwrap();
        assert!(
            progress.max_new_weight() <= 10.0,
            "{}",
            progress.max_new_weight()
        );
        assert!(
            progress.hook_actions().iter().any(|(_, a)| a == "ROLLBACK"),
            "{:?}",
            progress.hook_actions()
        );
    }

    /// Requests through the weighted ALB at the canary's 10%: a new version answering 20% 5xx is a
    /// regression on the numbers the ALB wrote for each target group; the same version healthy passes.
    #[test]
    fn real_traffic_at_ten_percent_is_judged_by_its_own_numbers() {
        let moto = Moto::shared();
        for (bad, want) in [(true, "regression"), (false, "pass")] {
            let plan = plan();
            let sim = EcsSim::start(Scenario::Progressive(plan.clone()));
            let elb = ElbSim::start_with_rules("stage-blue", Vec::new(), sim.progress().unwrap());
            let cw = CwSim::start();
            let (old, new) = (App::start(), App::start());
            if bad {
                new.set_mode(Mode::ErrorShare(20));
            }
            let alb = Alb::progressive(
                sim.progress().unwrap(),
                vec![
                    (plan.production_group.clone(), old.base_url()),
                    (plan.alternate_group.clone(), new.base_url()),
                ],
                Some(cw.sink()),
            );
            // Loopback latencies are a millisecond or two: their ratio says nothing here.
            let cfg = config("p95-ratio: 1000");
            let s = rt().block_on(async {
                let c = clients_at(&moto, &sim.endpoint, &elb.endpoint, &cw.endpoint).await;
                let (pair, test_rule, prod_rule) = load_balancing(&c.ecs).await;
                let arn = update(&c.ecs).await;
                let (first, _) = paused(&c.ecs, &arn, "").await;
                let groups =
                    canary::groups(&c.elb, Some(&test_rule), &prod_rule, (&pair.0, &pair.1))
                        .await
                        .unwrap();
                answer(&c.ecs, &arn, &first, Decision::Continue).await;
                let (second, weight) = paused(&c.ecs, &arn, &first).await;
                let since = SystemTime::now();
                let http = reqwest::Client::new();
                for _ in 0..25 {
                    let batch = (0..40)
                        .map(|_| http.get(format!("{}/products", alb.production_url)).send());
                    for r in futures::future::join_all(batch).await {
                        r.unwrap();
                    }
                }
                let window = Window {
                    from: since,
                    to: SystemTime::now(),
                };
                let s = canary::analyse(&c, &cfg, &groups, (NEW_TD, OLD_TD), window, weight).await;
                answer(&c.ecs, &arn, &second, s.verdict.decision(&cfg.canary, true)).await;
                s
            });
            assert_eq!(s.verdict.label(), want, "{s:#?}");
            // The ALB's own counts are what the analysis read.
            let (n, o) = (
                alb.served(false, &plan.alternate_group),
                alb.served(false, &plan.production_group),
            );
            assert_eq!(
                (s.new.sample.requests, s.new.sample.errors_5xx),
                (n.requests, n.errors)
            );
            assert_eq!(
                (s.old.sample.requests, s.old.sample.errors_5xx),
                (o.requests, o.errors)
            );
            assert_eq!(n.requests + o.requests, 1000);
            assert!(n.requests >= 50 && n.requests <= 160, "{n:?}");
            assert_eq!(o.errors, 0);
            let progress = sim.progress().unwrap();
            assert!(progress.max_new_weight() <= 10.0 || !bad);
        }
    }
}
