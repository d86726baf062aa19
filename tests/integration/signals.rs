//! The watch reads the app, not only its two URLs: the target group's 5xx rate and p95 response time
//! (the CloudWatch simulator, seeded with `PutMetricData` through the real SDK) and the error lines of
//! the service's log group (moto's `FilterLogEvents`), each compared with the window before the deploy,
//! through the real binary with the ECS and ELB simulators and the miniature CloudShop API.

use harness as common;

use std::time::{Duration, SystemTime};

use aws_sdk_cloudwatch::types::{Dimension, MetricDatum};
use cloudshop_deploy::report::section::md_escape;
use common::app::App;
use common::cw_sim::CwSim;
use common::ecs_sim::{EcsSim, Scenario, Seed};
use common::elb_sim::ElbSim;
use common::faults::{Fault, FaultPlan, FaultProxy};
use common::seed::{rt, seed_ecr};
use common::{Action, Moto, RunResult};

const SHA: &str = "0123456789abcdef0123456789abcdef01234567";
const REV2: &str = "arn:aws:ecs:us-east-1:123456789012:task-definition/cloudshop-backend:2";

struct Env {
    moto: Moto,
    sim: EcsSim,
    elb: ElbSim,
    cw: CwSim,
    app: App,
    log_group: Option<String>,
    /// When the "after" data is stamped and when the run's clock starts (`test-clock-start`): 5 s into
    /// the minute before the real one, so the deploy starts in that minute without waiting for one.
    now: SystemTime,
}

/// 5 s into the previous minute: a time the run's clock can start at, whatever the real second is.
fn start_of_run() -> SystemTime {
    let secs = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs - secs % 60 - 60 + 5)
}

fn env(with_logs: bool) -> Env {
    let moto = Moto::shared();
    seed_ecr(&moto, &moto.name("stage-cloudshop-backend"), &[SHA], false);
    let elb = ElbSim::start("stage-backend-blue", Vec::new());
    let log_group = with_logs.then(|| moto.name("/ecs/stage/backend-blue"));
    let seed = Seed {
        target_group: Some(elb.target_group_arn.clone()),
        log_group: log_group.clone(),
        ..Seed::default()
    };
    Env {
        sim: EcsSim::start_with(seed, Scenario::Succeed { after: 2 }),
        moto,
        elb,
        cw: CwSim::start(),
        app: App::start(),
        log_group,
        now: start_of_run(),
    }
}

fn config(e: &Env, signals: &str) -> String {
    format!(
        r#"
region: us-east-1
environments:
  stage:
    cluster: stage-cluster
    service: stage-backend
    container: backend
    ecr-repository: {repo}
    api-url: {api}
    smoke:
      cors: false
      timeout: 2s
      request-timeout: 500ms
      retry-interval: 50ms
      watch: 2s
      watch-interval: 200ms
      watch-failures: 3
      watch-signals: {{ {signals} }}
"#,
        signals = [
            signals,
            &format!("test-clock-start: '{}'", humantime::format_rfc3339(e.now))
        ]
        .iter()
        .filter(|s| !s.is_empty())
        .cloned()
        .collect::<Vec<_>>()
        .join(", "),
        api = e.app.base_url(),
        repo = e.moto.name("stage-cloudshop-backend"),
    )
}

fn action(e: &Env, signals: &str) -> Action {
    Action::new()
        .with_moto(&e.moto)
        .env("AWS_ENDPOINT_URL_ECS", &e.sim.endpoint)
        .env(
            "AWS_ENDPOINT_URL_ELASTIC_LOAD_BALANCING_V2",
            &e.elb.endpoint,
        )
        .env("AWS_ENDPOINT_URL_CLOUDWATCH", &e.cw.endpoint)
        .file(".github/cloudshop-deploy.yml", &config(e, signals))
        .input("environment", "stage")
        .input("poll-interval", "30ms")
        .input("wait-timeout", "30s")
}

fn run(a: Action) -> RunResult {
    a.run_within(Duration::from_secs(120))
}

/// One minute of the load balancer's metrics at `at`: requests, 5xx answers, response times (seconds).
fn put_minute(e: &Env, at: SystemTime, requests: f64, errors: f64, latency: &[f64]) {
    rt().block_on(async {
        let cw = e.cw.client().await;
        let dims = [
            (
                "TargetGroup",
                "targetgroup/stage-backend-blue/0123456789abcdef",
            ),
            ("LoadBalancer", "app/stage-alb/50dc6c495c0c9188"),
        ];
        let datum = |name: &str| {
            let mut d = MetricDatum::builder()
                .metric_name(name)
                .timestamp(at.into());
            for (n, v) in dims {
                d = d.dimensions(Dimension::builder().name(n).value(v).build());
            }
            d
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
    });
}

/// The minute two minutes before the run, and the run's own.
fn before(e: &Env) -> SystemTime {
    e.now - Duration::from_secs(120)
}

fn put_log_lines(e: &Env, stream: &str, at: SystemTime, lines: &[&str]) {
    let group = e.log_group.clone().expect("a log group");
    rt().block_on(async {
        let logs = aws_sdk_cloudwatchlogs::Client::new(&e.moto.sdk_config().await);
        let _ = logs.create_log_group().log_group_name(&group).send().await;
        logs.create_log_stream()
            .log_group_name(&group)
            .log_stream_name(stream)
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
            .log_group_name(&group)
            .log_stream_name(stream)
            .set_log_events(Some(events))
            .send()
            .await
            .expect("put log events");
    });
}

const CALM: [f64; 5] = [0.03, 0.04, 0.04, 0.05, 0.04];

#[test]
fn a_5xx_rate_that_jumps_after_the_deploy_rolls_back() {
    let e = env(false);
    put_minute(&e, before(&e), 1000.0, 1.0, &CALM);
    put_minute(&e, e.now, 200.0, 40.0, &CALM);
    let res = run(action(&e, ""));
    assert_ne!(res.code, 0, "{}", res.dump());
    assert_eq!(res.output("status"), "rolled-back", "{}", res.dump());
    assert_eq!(e.sim.service_task_definition(), REV2);
    // The annotation escapes `%` as the runner wants it; the summary shows the text.
    let error = res.error_lines().join("\n");
    assert!(
        error.contains("3 bad watch rounds in a row"),
        "{}",
        res.dump()
    );
    assert!(
        res.summary.contains(&md_escape(
            "5xx rate 20.0% (before the deploy 0.1%; limit 1.0% and 2x before)"
        )),
        "{}",
        res.dump()
    );
    for shown in [
        "#### ❌ Watch signals",
        "target group `targetgroup/stage-backend-blue/0123456789abcdef`",
        "| 5xx rate | 0.1% (1 of 1000) | 20.0% | 20.0% | > 1.0% and > 2x before |",
        "```mermaid\nxychart-beta",
    ] {
        assert!(res.summary.contains(shown), "{shown}\n{}", res.summary);
    }
    // The API itself answered all along: the metrics alone saw the regression.
    assert!(e.app.requests_to("/health") >= 3);
    let calls = e.cw.calls();
    assert!(
        calls
            .iter()
            .all(|c| c == "GetMetricData" || c == "PutMetricData"),
        "{calls:?}"
    );
}

#[test]
fn a_watch_at_the_baseline_passes_and_shows_before_and_after() {
    let e = env(false);
    put_minute(&e, before(&e), 1000.0, 2.0, &CALM);
    put_minute(&e, e.now, 300.0, 1.0, &CALM);
    let res = run(action(&e, ""));
    assert_eq!(res.code, 0, "{}", res.dump());
    assert_eq!(res.output("status"), "deployed");
    eprintln!(
        "SUMMARY>>>{}<<<\nSMOKE>>>{}<<<",
        res.summary,
        res.output("smoke-report")
    );
    for shown in [
        "#### 📈 Watch signals",
        "| 5xx rate | 0.2% (2 of 1000) | 0.3% | 0.3% | > 1.0% and > 2x before |",
        "| p95 response time | 50 ms | 50 ms | 50 ms | > 2x before |",
    ] {
        assert!(res.summary.contains(shown), "{shown}\n{}", res.summary);
    }
    // Every round of the watch read the signals, and none of them regressed.
    let w: serde_json::Value = serde_json::from_str(res.output("smoke-report")).unwrap();
    let rounds = w["watch"]["rounds"].as_u64().unwrap();
    assert!(rounds >= 5, "{w}");
    let line = format!(
        "Each round compared with the 5m before the deploy: target group `targetgroup/stage-backend-blue/0123456789abcdef`. 0 of {rounds} rounds regressed."
    );
    assert!(
        res.summary.lines().any(|l| l == line),
        "{line}\n{}",
        res.summary
    );
    // No log configuration in the task definition: said so, as a warning, not a failure.
    assert!(
        res.stdout.contains("::warning")
            && res
                .stdout
                .contains("no error-line count: container `backend` has no `logConfiguration`"),
        "{}",
        res.dump()
    );
}

#[test]
fn a_slower_p95_rolls_back() {
    let e = env(false);
    put_minute(&e, before(&e), 1000.0, 0.0, &CALM);
    put_minute(&e, e.now, 300.0, 0.0, &[0.4, 0.5, 0.6, 0.7, 0.9]);
    let res = run(action(&e, ""));
    assert_eq!(res.output("status"), "rolled-back", "{}", res.dump());
    assert!(
        res.error_lines()
            .join("\n")
            .contains("p95 response time 900 ms (before the deploy 50 ms; limit 2x)"),
        "{}",
        res.dump()
    );
}

#[test]
fn error_lines_in_the_log_group_are_counted_against_the_baseline() {
    let e = env(true);
    // Five quiet minutes before: a few errors among the info lines.
    put_log_lines(
        &e,
        "ecs/backend/old-task",
        before(&e),
        &[
            "INFO: GET /products 200",
            "ERROR: payment provider timeout",
            "INFO: GET /health 200",
        ],
    );
    let after: Vec<String> = (0..30)
        .map(|i| format!("ERROR: sqlalchemy.exc.OperationalError #{i}"))
        .chain((0..20).map(|i| format!("INFO: GET /products 200 #{i}")))
        .collect();
    let after: Vec<&str> = after.iter().map(String::as_str).collect();
    put_log_lines(&e, "ecs/backend/new-task", e.now, &after);
    // moto's filter understands single terms, not `?A ?B` alternatives: count the lines with `ERROR`.
    let res = run(action(&e, "error-pattern: ERROR"));
    assert_eq!(res.output("status"), "rolled-back", "{}", res.dump());
    let error = res.error_lines().join("\n");
    assert!(
        error.contains("30 error lines since the deploy (before the deploy 1 in 5m; limit 10)"),
        "{}",
        res.dump()
    );
    assert!(
        res.summary
            .contains("| error lines | 1 | 30 | 30 | > 3x before (for as long) + 10 |"),
        "{}",
        res.summary
    );
}

/// A role without CloudWatch permissions (and without `logs:FilterLogEvents`): a warning per signal,
/// and the smoke-only watch, which passes.
#[test]
fn a_role_without_cloudwatch_permissions_gets_a_warning_and_the_smoke_only_watch() {
    let e = env(true);
    put_log_lines(&e, "ecs/backend/new-task", e.now, &["ERROR: boom"; 40]);
    put_minute(&e, e.now, 200.0, 100.0, &CALM);
    let deny = |upstream: &str, op: &str| {
        FaultProxy::start(
            upstream,
            FaultPlan {
                always: vec![(op.to_string(), Fault::Denied)],
                ..FaultPlan::none()
            },
        )
    };
    let cw = deny(&e.cw.endpoint, "cloudwatch:GetMetricData");
    let logs = deny(&e.moto.endpoint, "logs:FilterLogEvents");
    let res = run(action(&e, "")
        .env("AWS_ENDPOINT_URL_CLOUDWATCH", &cw.endpoint)
        .env("AWS_ENDPOINT_URL_CLOUDWATCH_LOGS", &logs.endpoint));
    assert_eq!(res.code, 0, "{}", res.dump());
    assert_eq!(res.output("status"), "deployed");
    for warning in [
        "the watch goes on without the load balancer metrics: the role may not call `cloudwatch:GetMetricData`",
        "the watch goes on without the error lines: the role may not call `logs:FilterLogEvents`",
    ] {
        assert!(
            res.stdout
                .lines()
                .any(|l| l.starts_with("::warning") && l.contains(warning)),
            "{warning}\n{}",
            res.dump()
        );
    }
    // Asked once each (at the start), then left alone.
    assert_eq!(cw.ops(), ["cloudwatch:GetMetricData"]);
    assert_eq!(logs.ops(), ["logs:FilterLogEvents"]);
    let w: serde_json::Value = serde_json::from_str(res.output("smoke-report")).unwrap();
    assert!(w["watch"]["rounds"].as_u64().unwrap() >= 5, "{w}");
}

/// A rollout whose old tasks drained for the target group's default 300 s: the summary breaks the
/// rollout down from the tasks' timestamps and says to shorten the deregistration delay.
#[test]
fn the_deploy_time_breakdown_advises_a_shorter_deregistration_delay() {
    use common::ecs_sim::TaskTimes;
    let moto = Moto::shared();
    seed_ecr(&moto, &moto.name("stage-cloudshop-backend"), &[SHA], false);
    let elb = ElbSim::start("stage-backend-blue", Vec::new());
    let seed = Seed {
        target_group: Some(elb.target_group_arn.clone()),
        task_times: Some(TaskTimes {
            provision: 6.0,
            pull: 20.0,
            start: 4.0,
            health: 25.0,
            drain: 300.0,
        }),
        ..Seed::default()
    };
    let e = Env {
        sim: EcsSim::start_with(seed, Scenario::Succeed { after: 2 }),
        moto,
        elb,
        cw: CwSim::start(),
        app: App::start(),
        log_group: None,
        now: SystemTime::now(),
    };
    let res = run(action(&e, "enabled: false"));
    assert_eq!(res.code, 0, "{}", res.dump());
    for shown in [
        "#### ⏱️ Where the deploy time went",
        "The rollout took 360 s (2 new tasks; the parts of the one that started last).",
        "| provisioning | 6 s | 2% |",
        "| image pull | 20 s | 6% |",
        "| container start | 4 s | 1% |",
        "| health checks | 25 s | 7% |",
        "| draining | 302 s | 84% |",
        "pie title Rollout time (s)",
        "draining the old tasks took 302 s because the target group waits 300 s \\(\\`deregistration\\_delay.timeout\\_seconds\\`\\) while the app answers in ",
        "set it to 30 s or less",
    ] {
        assert!(res.summary.contains(shown), "{shown}\n{}", res.summary);
    }
    assert!(
        e.elb
            .calls
            .lock()
            .unwrap()
            .contains(&"DescribeTargetGroupAttributes".to_string()),
        "{:?}",
        e.elb.calls
    );
    // With the signals turned off, the watch says so and reads nothing.
    assert!(res
        .summary
        .contains("Turned off (`smoke.watch-signals.enabled: false`)."));
    assert!(e.cw.calls().is_empty());
}

/// SIGTERM mid-watch: the run stops with `status=cancelled`, and the summary still has the watch signals
/// read in the rounds before the signal (the section is kept after every round, not only at the end).
#[test]
fn a_run_cancelled_mid_watch_keeps_the_signals_read_so_far() {
    let e = env(false);
    put_minute(&e, before(&e), 1000.0, 2.0, &CALM);
    put_minute(&e, e.now, 300.0, 1.0, &CALM);
    let a = action(&e, "").file(
        ".github/cloudshop-deploy.yml",
        &config(&e, "").replace("watch: 2s", "watch: 10m"),
    );
    // The window before, then at least two rounds.
    let reads = || {
        e.cw.calls()
            .iter()
            .filter(|c| c.contains("GetMetricData"))
            .count()
    };
    let res = a
        .start()
        .sigterm_when("the watch reading the signals", || reads() >= 3);
    assert_eq!(res.output("status"), "cancelled", "{}", res.dump());
    for shown in [
        "#### 📈 Watch signals",
        "Each round compared with the 10m before the deploy",
        "| 5xx rate | 0.2% (2 of 1000) |",
    ] {
        assert!(res.summary.contains(shown), "{shown}\n{}", res.summary);
    }
    // "0 of N rounds regressed.": the rounds read before the signal, at least the two waited for.
    let rounds: u32 = res
        .summary
        .split(" rounds regressed")
        .next()
        .and_then(|s| s.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(rounds >= 2, "{}", res.summary);
}
