//! The ECS simulator's clock-based mode ([`EcsSim::set_timing`]), through the real SDK client: tasks go
//! PROVISIONING -> PENDING -> RUNNING with time and never back, a rolling deployment completes only once
//! its tasks run (however often it is polled), the tasks it replaced are stop-requested
//! (`ServiceSchedulerInitiated`, `stoppingAt`) and then STOPPED (`stoppedAt`), failing tasks go the same
//! way with their reasons, and a blue/green service deployment a newer update supersedes goes
//! STOP_REQUESTED, then STOPPED. The assertions are on the order of states, never on durations.

use harness as common;

use std::time::{Duration, Instant};

use aws_sdk_ecs::types::DesiredStatus;
use common::ecs_sim::{EcsSim, Scenario, StopReason, Timing};
use common::seed::rt;
use serde_json::Value;

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

const TIMING: Timing = Timing {
    step: Duration::from_millis(100),
    provisioning: Duration::from_millis(1000),
    pending: Duration::from_millis(500),
    stopping: Duration::from_millis(1000),
};

fn rank(status: &str) -> u8 {
    match status {
        "PROVISIONING" => 0,
        "PENDING" => 1,
        "RUNNING" => 2,
        "DEPROVISIONING" => 3,
        "STOPPED" => 4,
        other => panic!("unexpected lastStatus {other}"),
    }
}

fn by_arn(tasks: &[Value], arn: &str) -> Value {
    tasks
        .iter()
        .find(|t| t["taskArn"] == arn)
        .cloned()
        .unwrap_or_else(|| panic!("no task {arn}"))
}

#[test]
fn tasks_and_a_rolling_deployment_progress_with_the_clock() {
    let sim = EcsSim::start(Scenario::Succeed { after: 2 });
    sim.set_timing(TIMING);
    rt().block_on(rolling(&sim));
}

async fn rolling(sim: &EcsSim) {
    let ecs = client(sim);
    let old: Vec<String> = sim
        .tasks()
        .iter()
        .map(|t| t["taskArn"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(old.len(), 2, "the seed deployment's tasks");
    assert!(sim.tasks().iter().all(|t| t["lastStatus"] == "RUNNING"));

    ecs.update_service()
        .cluster("stage-cluster")
        .service("stage-backend")
        .task_definition("cloudshop-backend:1")
        .send()
        .await
        .unwrap();
    let mut polls = 0;
    let mut seen: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        assert!(Instant::now() < deadline, "never completed");
        let svc = ecs
            .describe_services()
            .cluster("stage-cluster")
            .services("stage-backend")
            .send()
            .await
            .unwrap();
        polls += 1;
        let primary = svc.services()[0]
            .deployments()
            .iter()
            .find(|d| d.status() == Some("PRIMARY"))
            .cloned()
            .unwrap();
        let tasks = sim.tasks();
        for t in tasks
            .iter()
            .filter(|t| !old.contains(&t["taskArn"].as_str().unwrap().to_string()))
        {
            if t["startedBy"] == primary.id().unwrap() {
                seen.entry(t["taskArn"].as_str().unwrap().into())
                    .or_default()
                    .push(t["lastStatus"].as_str().unwrap().into());
            }
        }
        let done = primary.rollout_state().map(|r| r.as_str()) == Some("COMPLETED");
        // The counts the service shows follow the tasks.
        let running_now = tasks
            .iter()
            .filter(|t| t["startedBy"] == primary.id().unwrap() && t["lastStatus"] == "RUNNING")
            .count();
        assert!(
            primary.running_count() as usize <= running_now,
            "{} running shown, {running_now} tasks running",
            primary.running_count()
        );
        if done {
            // Completed only once every new task runs.
            assert_eq!(primary.running_count(), 2);
            assert_eq!(primary.pending_count(), 0);
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Time, not polls, moved it: a per-poll script would have completed at the 2nd poll.
    assert!(polls > 2, "completed after {polls} polls");
    assert_eq!(seen.len(), 2, "{seen:?}");
    for (arn, statuses) in &seen {
        let ranks: Vec<u8> = statuses.iter().map(|s| rank(s)).collect();
        assert!(
            ranks.windows(2).all(|w| w[0] <= w[1]),
            "{arn}: {statuses:?}"
        );
        assert_eq!(
            statuses.first().map(String::as_str),
            Some("PROVISIONING"),
            "{arn}: {statuses:?}"
        );
        assert_eq!(
            statuses.last().map(String::as_str),
            Some("RUNNING"),
            "{arn}: {statuses:?}"
        );
        let t = by_arn(&sim.tasks(), arn);
        assert!(t["startedAt"].as_f64().unwrap() > t["createdAt"].as_f64().unwrap());
    }

    // The replaced tasks: stop requested first, STOPPED later, listed under desiredStatus STOPPED.
    let listed = ecs
        .list_tasks()
        .cluster("stage-cluster")
        .service_name("stage-backend")
        .desired_status(DesiredStatus::Stopped)
        .send()
        .await
        .unwrap();
    for arn in &old {
        assert!(
            listed.task_arns().contains(arn),
            "{arn} not listed as stopped"
        );
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut statuses = Vec::new();
    loop {
        assert!(
            Instant::now() < deadline,
            "the old tasks never stopped: {statuses:?}"
        );
        let out = ecs
            .describe_tasks()
            .cluster("stage-cluster")
            .set_tasks(Some(old.clone()))
            .send()
            .await
            .unwrap();
        let t = &out.tasks()[0];
        assert_eq!(t.desired_status(), Some("STOPPED"));
        assert_eq!(
            t.stop_code().map(|c| c.as_str()),
            Some("ServiceSchedulerInitiated")
        );
        assert!(t
            .stopped_reason()
            .unwrap()
            .starts_with("Scaling activity initiated by"));
        assert!(t.stopping_at().is_some());
        statuses.push(t.last_status().unwrap().to_string());
        if t.last_status() == Some("STOPPED") {
            let (stopping, stopped) = (t.stopping_at().unwrap(), t.stopped_at().unwrap());
            assert!(stopped.as_secs_f64() > stopping.as_secs_f64());
            break;
        }
        assert!(t.stopped_at().is_none(), "stoppedAt before STOPPED");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let running = ecs
        .list_tasks()
        .cluster("stage-cluster")
        .service_name("stage-backend")
        .send()
        .await
        .unwrap();
    assert_eq!(running.task_arns().len(), 2, "the new tasks run on");
}

#[test]
fn failing_tasks_are_stop_requested_then_stopped_with_their_reason() {
    let sim = EcsSim::start(Scenario::TasksFail {
        reason: StopReason::EssentialExited,
        after: 3,
    });
    sim.set_timing(TIMING);
    rt().block_on(failing(&sim));
}

async fn failing(sim: &EcsSim) {
    let ecs = client(sim);
    ecs.update_service()
        .cluster("stage-cluster")
        .service("stage-backend")
        .task_definition("cloudshop-backend:1")
        .send()
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut first_seen = None;
    let mut stopped = None;
    while stopped.is_none() {
        assert!(Instant::now() < deadline, "no failing task stopped");
        ecs.describe_services()
            .cluster("stage-cluster")
            .services("stage-backend")
            .send()
            .await
            .unwrap();
        let tasks = sim.tasks();
        if let Some(t) = tasks
            .iter()
            .find(|t| t["stopCode"] == "EssentialContainerExited")
        {
            let status = t["lastStatus"].as_str().unwrap().to_string();
            first_seen.get_or_insert(status.clone());
            assert_eq!(t["desiredStatus"], "STOPPED");
            assert!(t["stoppingAt"].is_number());
            if status == "STOPPED" {
                stopped = Some(t.clone());
            } else {
                assert!(t["stoppedAt"].is_null(), "{t}");
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let t = stopped.unwrap();
    assert!(t["stoppedAt"].as_f64().unwrap() > t["stoppingAt"].as_f64().unwrap());
    assert_eq!(t["stoppedReason"], "Essential container in task exited");
    // The first sight of it was the stop request, not the end (polled every 10 ms, stopping takes 1 s).
    assert_eq!(first_seen.as_deref(), Some("DEPROVISIONING"));
}

#[test]
fn a_superseded_blue_green_deployment_is_stop_requested_then_stopped() {
    let sim = EcsSim::start(Scenario::BlueGreen {
        after: 1000,
        rollback: false,
    });
    sim.set_timing(TIMING);
    rt().block_on(superseded(&sim));
}

async fn superseded(sim: &EcsSim) {
    let ecs = client(sim);
    for td in ["cloudshop-backend:1", "cloudshop-backend:2"] {
        ecs.update_service()
            .cluster("stage-cluster")
            .service("stage-backend")
            .task_definition(td)
            .send()
            .await
            .unwrap();
    }
    let statuses = sim.service_deployment_statuses();
    assert_eq!(
        statuses,
        ["SUCCESSFUL", "STOP_REQUESTED", "PENDING"],
        "{statuses:?}"
    );
    let listed = ecs
        .list_service_deployments()
        .cluster("stage-cluster")
        .service("stage-backend")
        .send()
        .await
        .unwrap();
    let arns: Vec<String> = listed
        .service_deployments()
        .iter()
        .filter_map(|s| s.service_deployment_arn().map(str::to_string))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        assert!(
            Instant::now() < deadline,
            "{:?}",
            sim.service_deployment_statuses()
        );
        let out = ecs
            .describe_service_deployments()
            .set_service_deployment_arns(Some(arns.clone()))
            .send()
            .await
            .unwrap();
        let superseded = out
            .service_deployments()
            .iter()
            .find(|s| {
                s.service_deployment_arn()
                    .is_some_and(|a| a.ends_with("/sd1"))
            })
            .cloned();
        if let Some(s) = superseded {
            if s.status().map(|x| x.as_str()) == Some("STOPPED") {
                assert!(s.status_reason().unwrap().contains("newer deployment"));
                break;
            }
            assert_eq!(s.status().map(|x| x.as_str()), Some("STOP_REQUESTED"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The real binary against the clock-mode simulator: a good rollout is reported deployed only once its
/// tasks run (the simulator completes it no earlier), and failing tasks still being stopped
/// (DEPROVISIONING, no `stoppedAt` yet) are diagnosed with their reason.
#[test]
fn the_binary_follows_a_rollout_in_clock_mode() {
    use common::{Action, Moto};
    let moto = Moto::shared();
    let repo = moto.name("stage-cloudshop-backend");
    common::seed::seed_ecr(&moto, &repo, &[common::pipeline::SHA], false);
    let config = format!(
        "region: us-east-1\nenvironments:\n  stage:\n    cluster: stage-cluster\n    service: stage-backend\n    container: backend\n    ecr-repository: {repo}\n    smoke: {{ enabled: false }}\n"
    );
    let run = |sim: &EcsSim| {
        Action::new()
            .with_moto(&moto)
            .env("AWS_ENDPOINT_URL_ECS", &sim.endpoint)
            .file(".github/cloudshop-deploy.yml", &config)
            .input("environment", "stage")
            .input("poll-interval", "30ms")
            .input("wait-timeout", "60s")
            .input("rollback-on-failure", "false")
            .run_within(Duration::from_secs(120))
    };

    let good = EcsSim::start(Scenario::Succeed { after: 2 });
    good.set_timing(TIMING);
    let res = run(&good);
    assert_eq!(res.code, 0, "{}", res.dump());
    assert_eq!(res.output("status"), "deployed");
    assert!(good
        .service_task_definition()
        .ends_with("cloudshop-backend:3"));
    // Reported only after the new tasks ran: every task of revision 3 is RUNNING now.
    let new: Vec<Value> = good
        .tasks()
        .into_iter()
        .filter(|t| {
            t["taskDefinitionArn"]
                .as_str()
                .is_some_and(|a| a.ends_with(":3"))
        })
        .collect();
    assert_eq!(new.len(), 2, "{new:?}");
    assert!(new.iter().all(|t| t["lastStatus"] == "RUNNING"), "{new:?}");

    let bad = EcsSim::start(Scenario::TasksFail {
        reason: StopReason::EssentialExited,
        after: 2,
    });
    bad.set_timing(Timing {
        stopping: Duration::from_secs(600),
        ..TIMING
    });
    let res = run(&bad);
    assert_ne!(res.code, 0, "{}", res.dump());
    assert_eq!(res.output("status"), "failed", "{}", res.dump());
    let errors = res.error_lines();
    assert_eq!(errors.len(), 1, "{}", res.dump());
    assert!(
        errors[0].contains("Essential container in task exited"),
        "{}",
        errors[0]
    );
    // They were still stopping when diagnosed.
    assert!(bad.tasks().iter().any(
        |t| t["stopCode"] == "EssentialContainerExited" && t["lastStatus"] == "DEPROVISIONING"
    ));
}
