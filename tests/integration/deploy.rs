//! The backend deploy against moto (ECR, STS) and the loopback ECS simulator, through the real binary.

use harness as common;

use cloudshop_deploy::report::section::md_escape;
use common::ecs_sim::{EcsSim, Scenario, Seed, StopReason, Timing};
use common::{Action, Moto, RunResult};

const REPO: &str = "stage-cloudshop-backend";

fn seed_ecr(moto: &Moto, tags: &[&str], immutable: bool) -> String {
    common::seed::seed_ecr(moto, &moto.name(REPO), tags, immutable)
}

fn digest_of_tag(moto: &Moto, tag: &str) -> Option<String> {
    common::seed::digest_of_tag(moto, &moto.name(REPO), tag)
}

const CONFIG: &str = r#"
region: us-east-1
environments:
  stage:
    cluster: stage-cluster
    service: stage-backend
    container: backend
    ecr-repository: stage-cloudshop-backend
"#;

const SHA: &str = "0123456789abcdef0123456789abcdef01234567";
/// The repository of the service's current image (the simulator's seed).
const REPO_URI: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com/stage-cloudshop-backend";

/// This test's repository in the shared moto.
fn repo_uri(moto: &Moto) -> String {
    format!(
        "123456789012.dkr.ecr.us-east-1.amazonaws.com/{}",
        moto.name(REPO)
    )
}

fn action(moto: &Moto, sim: &EcsSim) -> Action {
    Action::new()
        .with_moto(moto)
        .env("AWS_ENDPOINT_URL_ECS", &sim.endpoint)
        .file(
            ".github/cloudshop-deploy.yml",
            &CONFIG.replace(REPO, &moto.name(REPO)),
        )
        .input("environment", "stage")
        .input("poll-interval", "30ms")
        .input("wait-timeout", "30s")
}

/// The `poll-interval` of [`action`].
const POLL: std::time::Duration = std::time::Duration::from_millis(30);

/// The simulator on its own clock: the rollout completes when its time comes, however often it is
/// polled, so polling faster cannot make a test pass sooner.
fn clocked(sim: EcsSim) -> EcsSim {
    sim.set_timing(Timing::default());
    sim
}

/// The rollout's polls average at most one per base interval (the poller's promise; one free first
/// call and one of rounding allowed): on the simulator's clock a poller that calls more often fails here.
fn assert_paced(sim: &EcsSim, res: &RunResult) {
    let Some(update) = sim.call_times("UpdateService").first().copied() else {
        panic!("no UpdateService\n{}", res.dump());
    };
    let polls: Vec<std::time::Instant> = sim
        .call_times("DescribeServices")
        .into_iter()
        .filter(|t| *t > update)
        .collect();
    let span = polls.last().map(|t| *t - update).unwrap_or_default();
    let allowed = (span.as_secs_f64() / POLL.as_secs_f64()).floor() as usize + 2;
    assert!(
        polls.len() >= 2 && polls.len() <= allowed,
        "{} DescribeServices in {span:?} after the update (at most {allowed} at one per {POLL:?})\n{}",
        polls.len(),
        res.dump()
    );
}

fn run(a: Action) -> RunResult {
    a.run_within(std::time::Duration::from_secs(120))
}

const REV2: &str = "arn:aws:ecs:us-east-1:123456789012:task-definition/cloudshop-backend:2";
const REV3: &str = "arn:aws:ecs:us-east-1:123456789012:task-definition/cloudshop-backend:3";

#[test]
fn deploys_a_new_revision_and_waits_for_completion() {
    let moto = Moto::shared();
    let digest = seed_ecr(&moto, &["older", SHA], false);
    let sim = clocked(EcsSim::start(Scenario::Succeed { after: 4 }));
    let res = run(action(&moto, &sim).input("extra-tags", "stage-latest"));
    assert_eq!(res.code, 0, "{}", res.dump());
    assert_paced(&sim, &res);
    assert_eq!(res.output("status"), "deployed");
    assert_eq!(res.output("rolled-back"), "false");
    let uri = format!("{}@{digest}", repo_uri(&moto));
    assert_eq!(res.output("image-uri"), uri);
    assert_eq!(res.output("image-digest"), digest);
    assert_eq!(res.output("task-definition-arn"), REV3);
    assert_eq!(res.output("previous-task-definition-arn"), REV2);
    assert!(
        res.output("deployment-id").starts_with("ecs-svc/"),
        "{}",
        res.dump()
    );
    assert_eq!(sim.service_task_definition(), REV3);
    // The new revision is the live one with only the image swapped: unknown fields and tags kept.
    let new = sim.task_definition(REV3).unwrap();
    let old = sim.task_definition(REV2).unwrap();
    assert_eq!(new["containerDefinitions"][0]["image"], uri.as_str());
    assert_eq!(new["futureSetting"], old["futureSetting"]);
    assert_eq!(
        new["containerDefinitions"][0]["environment"],
        old["containerDefinitions"][0]["environment"]
    );
    let reg = &sim.bodies("RegisterTaskDefinition")[0];
    assert_eq!(reg["tags"][0]["key"], "managed-by");
    // Each new service event is printed once.
    assert_eq!(
        res.stderr.matches("has reached a steady state").count(),
        1,
        "{}",
        res.dump()
    );
    // The extra tag points at the same image (manifest put byte for byte).
    assert_eq!(
        digest_of_tag(&moto, "stage-latest").as_deref(),
        Some(digest.as_str())
    );
    assert!(
        res.summary
            .contains("| revision | `cloudshop-backend:2` -> `cloudshop-backend:3` |"),
        "{}",
        res.summary
    );
    assert!(
        res.summary.contains("| outcome | deployed |"),
        "{}",
        res.summary
    );
    // The rollout is a phase of its own, timed and ok, and the steady state ends the events shown.
    let rollout: Vec<&str> = res
        .summary
        .lines()
        .filter(|l| l.starts_with("| rollout | "))
        .collect();
    let seconds = rollout
        .first()
        .and_then(|l| l.strip_prefix("| rollout | "))
        .and_then(|l| l.strip_suffix(" s | ok |"))
        .and_then(|t| t.parse::<f64>().ok());
    assert!(
        rollout.len() == 1 && seconds.is_some_and(|s| s < 30.0),
        "{}",
        res.summary
    );
    assert!(
        res.summary
            .contains("<summary>Service events (4)</summary>\n\n- \\(service stage-backend\\) has reached a steady state.\n"),
        "{}",
        res.summary
    );
}

#[test]
fn same_image_is_no_change_and_no_mutating_call() {
    let moto = Moto::shared();
    let digest = seed_ecr(&moto, &[SHA], false);
    let seed = Seed {
        containers: vec![("backend".into(), format!("{}@{digest}", repo_uri(&moto)))],
        ..Seed::default()
    };
    let sim = EcsSim::start_with(seed, Scenario::Succeed { after: 1 });
    let res = run(action(&moto, &sim));
    assert_eq!(res.code, 0, "{}", res.dump());
    assert_eq!(res.output("status"), "no-change");
    assert_eq!(res.output("task-definition-arn"), REV2);
    assert!(sim.mutating_calls().is_empty(), "{:?}", sim.calls());
}

#[test]
fn short_sha_tag_is_found_as_a_fallback() {
    let moto = Moto::shared();
    let digest = seed_ecr(&moto, &["0123456"], false);
    let sim = clocked(EcsSim::start(Scenario::Succeed { after: 2 }));
    let res = run(action(&moto, &sim));
    assert_eq!(res.code, 0, "{}", res.dump());
    assert_eq!(res.output("image-digest"), digest);
    assert!(
        res.summary
            .contains(&format!("{}:0123456", moto.name(REPO))),
        "{}",
        res.summary
    );
}

#[test]
fn circuit_breaker_rollback_is_reported_not_fought() {
    let moto = Moto::shared();
    seed_ecr(&moto, &[SHA], false);
    let sim = EcsSim::start(Scenario::CircuitBreaker { after: 3 });
    let res = run(action(&moto, &sim));
    assert_ne!(res.code, 0, "{}", res.dump());
    assert_eq!(res.output("status"), "rolled-back");
    assert_eq!(res.output("rolled-back"), "true");
    assert_eq!(sim.count("UpdateService"), 1, "{:?}", sim.calls());
    assert_eq!(sim.service_task_definition(), REV2);
    let err = res.error_lines().join("\n");
    assert!(err.contains("ECS rolled it back"), "{}", res.dump());
    assert!(err.contains("CannotPullContainerError"), "{}", res.dump());
    assert!(res.summary.contains("#### Diagnosis"), "{}", res.summary);
    // ECS's rollback was watched to its end: its steady state is seen after the failure.
    let failed_at = res.stderr.find("deployment failed").unwrap_or(usize::MAX);
    let steady_at = res.stderr.rfind("has reached a steady state").unwrap_or(0);
    assert!(
        steady_at > failed_at && failed_at != usize::MAX,
        "{}",
        res.dump()
    );
}

/// A circuit breaker that went back within one poll interval: by the next poll the run's own deployment
/// is gone and a PRIMARY deployment of the previous revision runs, with ECS's "deployment failed" and
/// "rolling back" events. That is ECS's rollback (status, `::error::` and diagnosis), never "superseded".
#[test]
fn a_circuit_breaker_rollback_faster_than_a_poll_is_not_reported_as_superseded() {
    let moto = Moto::shared();
    seed_ecr(&moto, &[SHA], false);
    let sim = EcsSim::start(Scenario::CircuitBreakerGone { after: 2 });
    let res = run(action(&moto, &sim));
    assert_ne!(res.code, 0, "{}", res.dump());
    assert_eq!(res.output("status"), "rolled-back", "{}", res.dump());
    assert_eq!(sim.count("UpdateService"), 1, "{:?}", sim.calls());
    assert_eq!(sim.service_task_definition(), REV2);
    let err = res.error_lines().join("\n");
    assert!(!err.contains("superseded"), "{}", res.dump());
    assert!(err.contains("ECS rolled it back"), "{}", res.dump());
    assert!(err.contains("tasks failed to start"), "{}", res.dump());
    // The failed tasks' stop reasons are in the annotation, not only in the summary.
    assert!(err.contains("CannotPullContainerError"), "{}", res.dump());
    assert!(res.summary.contains("#### Diagnosis"), "{}", res.summary);
}

#[test]
fn failed_tasks_are_diagnosed_and_rolled_back() {
    let moto = Moto::shared();
    seed_ecr(&moto, &[SHA], false);
    for reason in [
        StopReason::CannotPull,
        StopReason::ResourceInit,
        StopReason::EssentialExited,
        StopReason::ElbHealth,
    ] {
        let sim = EcsSim::start(Scenario::TasksFail { reason, after: 3 });
        let res = run(action(&moto, &sim));
        assert_ne!(res.code, 0, "{}", res.dump());
        assert_eq!(
            res.output("status"),
            "rolled-back",
            "{reason:?}\n{}",
            res.dump()
        );
        let err = res.error_lines().join("\n");
        assert!(
            err.contains("failed: ECS deployment circuit breaker"),
            "{reason:?}\n{}",
            res.dump()
        );
        assert!(err.contains(reason.needle()), "{reason:?}\n{}", res.dump());
        assert!(
            res.summary.contains(reason.needle()),
            "{reason:?}\n{}",
            res.summary
        );
        // Rolled back to the revision that ran before, and that rollout was watched to completion.
        assert_eq!(sim.count("UpdateService"), 2);
        assert_eq!(sim.bodies("UpdateService")[1]["taskDefinition"], REV2);
        assert_eq!(sim.service_task_definition(), REV2);
        assert!(res.summary.contains("rollback rollout"), "{}", res.summary);
    }
}

#[test]
fn failed_rollout_without_rollback_stays_failed() {
    let moto = Moto::shared();
    seed_ecr(&moto, &[SHA], false);
    let sim = EcsSim::start(Scenario::TasksFail {
        reason: StopReason::ElbHealth,
        after: 2,
    });
    let res = run(action(&moto, &sim).input("rollback-on-failure", "false"));
    assert_ne!(res.code, 0);
    assert_eq!(res.output("status"), "failed");
    assert_eq!(sim.count("UpdateService"), 1);
    assert!(
        res.stdout
            .contains("hint: the new tasks failed the load balancer health check"),
        "{}",
        res.dump()
    );
    // The hint is said once, on its own line, not repeated inside the error.
    assert!(
        !res.error_lines().join("\n").contains("hint:"),
        "{}",
        res.dump()
    );
}

#[test]
fn timeout_rolls_back() {
    let moto = Moto::shared();
    seed_ecr(&moto, &[SHA], false);
    let sim = EcsSim::start(Scenario::NeverEnds);
    let res = run(action(&moto, &sim).input("wait-timeout", "1s"));
    assert_ne!(res.code, 0, "{}", res.dump());
    assert_eq!(res.output("status"), "rolled-back");
    assert!(
        res.error_lines()
            .join("\n")
            .contains("did not finish within 1s"),
        "{}",
        res.dump()
    );
    assert_eq!(sim.service_task_definition(), REV2);
}

#[test]
fn throttled_polls_are_retried() {
    let moto = Moto::shared();
    seed_ecr(&moto, &[SHA], false);
    let sim = EcsSim::start(Scenario::Throttle { times: 2, after: 2 });
    let res = run(action(&moto, &sim));
    assert_eq!(res.code, 0, "{}", res.dump());
    assert_eq!(res.output("status"), "deployed");
    // The watch saw the throttling and backed off itself.
    assert_eq!(
        res.stderr.matches("ThrottlingException").count(),
        2,
        "{}",
        res.dump()
    );
}

#[test]
fn service_deleted_mid_rollout_fails_clearly() {
    let moto = Moto::shared();
    seed_ecr(&moto, &[SHA], false);
    let sim = EcsSim::start(Scenario::DeletedMidway { after: 2 });
    let res = run(action(&moto, &sim));
    assert_ne!(res.code, 0);
    assert_eq!(res.output("status"), "failed");
    assert!(
        res.error_lines().join("\n").contains("is gone"),
        "{}",
        res.dump()
    );
    assert_eq!(sim.count("UpdateService"), 1);
}

#[test]
fn blue_green_success_and_ecs_rollback() {
    let moto = Moto::shared();
    seed_ecr(&moto, &[SHA], false);
    let sim = EcsSim::start(Scenario::BlueGreen {
        after: 4,
        rollback: false,
    });
    let res = run(action(&moto, &sim));
    assert_eq!(res.code, 0, "{}", res.dump());
    assert_eq!(res.output("status"), "deployed");
    assert!(sim.count("DescribeServiceDeployments") >= 4);
    assert!(
        res.stderr.contains("lifecycle stage: BAKE_TIME"),
        "{}",
        res.dump()
    );

    let sim = EcsSim::start(Scenario::BlueGreen {
        after: 3,
        rollback: true,
    });
    let res = run(action(&moto, &sim));
    assert_ne!(res.code, 0);
    assert_eq!(res.output("status"), "rolled-back");
    assert!(
        res.error_lines().join("\n").contains("stage-5xx"),
        "{}",
        res.dump()
    );
    assert_eq!(sim.count("UpdateService"), 1);
}

#[test]
fn blue_green_rollback_is_watched_to_its_end() {
    let moto = Moto::shared();
    seed_ecr(&moto, &[SHA], false);
    // ECS's rollback succeeds: only after ROLLBACK_IN_PROGRESS gives way to ROLLBACK_SUCCESSFUL.
    let sim = EcsSim::start(Scenario::BlueGreen {
        after: 2,
        rollback: true,
    });
    let res = run(action(&moto, &sim));
    assert_ne!(res.code, 0);
    assert_eq!(res.output("status"), "rolled-back", "{}", res.dump());
    assert!(
        res.stderr.contains("ROLLBACK_IN_PROGRESS"),
        "the rollback's progress is shown: {}",
        res.dump()
    );
    let sd = res.output("deployment-id");
    assert!(
        sd.starts_with("arn:aws:ecs:")
            && sd.contains(":service-deployment/")
            && !sd.ends_with("sd-previous"),
        "deployment-id is this rollout's service deployment ARN: {sd}"
    );

    // ECS's rollback fails: `failed`, loudly, never `rolled-back`, and no rollback of our own on top.
    let sim = EcsSim::start(Scenario::BlueGreenRollbackFails { after: 2 });
    let res = run(action(&moto, &sim));
    assert_ne!(res.code, 0);
    assert_eq!(res.output("status"), "failed", "{}", res.dump());
    assert_eq!(res.output("rolled-back"), "false", "{}", res.dump());
    let errors = res.error_lines().join("\n");
    assert!(
        errors.contains("ECS's rollback failed") && errors.contains("may be down"),
        "{}",
        res.dump()
    );
    assert_eq!(sim.count("UpdateService"), 1, "{:?}", sim.calls());
}

#[test]
fn blue_green_watch_waits_for_its_own_service_deployment() {
    let moto = Moto::shared();
    seed_ecr(&moto, &[SHA], false);
    // For two polls ECS still shows only the previous, SUCCESSFUL service deployment: that is "not yet".
    let sim = EcsSim::start(Scenario::BlueGreenLagging { after: 4, lag: 2 });
    let res = run(action(&moto, &sim));
    assert_eq!(res.code, 0, "{}", res.dump());
    assert_eq!(res.output("status"), "deployed");
    assert!(
        res.stderr.contains("lifecycle stage: BAKE_TIME"),
        "the new service deployment was followed to its end: {}",
        res.dump()
    );
    let sd = res.output("deployment-id");
    assert!(
        sd.contains(":service-deployment/") && !sd.ends_with("sd-previous"),
        "{sd}"
    );
}

#[test]
fn rollback_leaves_a_service_another_deploy_changed() {
    let moto = Moto::shared();
    seed_ecr(&moto, &[SHA], false);
    let sim = clocked(EcsSim::start(Scenario::Succeed { after: 1 }));
    // The preflight reads revision 2; then another deploy moves the service before the rollback's update.
    // (Two reads: choosing the release to go back to, then the rollback's preflight.)
    sim.change_service_after(2);
    let res = run(action(&moto, &sim).input("command", "rollback"));
    assert_ne!(res.code, 0, "{}", res.dump());
    let errors = res.error_lines();
    assert_eq!(errors.len(), 1, "{}", res.dump());
    assert!(
        errors[0].contains("another deploy changed the service"),
        "{}",
        res.dump()
    );
    assert!(sim.mutating_calls().is_empty(), "{:?}", sim.calls());
}

#[test]
fn dry_run_prints_the_plan_and_changes_nothing() {
    let moto = Moto::shared();
    let digest = seed_ecr(&moto, &[SHA], false);
    let sim = clocked(EcsSim::start(Scenario::Succeed { after: 1 }));
    let res = run(action(&moto, &sim)
        .input("dry-run", "true")
        .input("desired-count", "3"));
    assert_eq!(res.code, 0, "{}", res.dump());
    assert_eq!(res.output("status"), "planned");
    assert!(sim.mutating_calls().is_empty(), "{:?}", sim.calls());
    assert!(res.summary.contains("#### Plan"), "{}", res.summary);
    assert!(
        res.summary.contains(&format!(
            "~ containerDefinitions[backend].image: \"{REPO_URI}:old\" -> \"{}@{digest}\"",
            repo_uri(&moto)
        )),
        "{}",
        res.summary
    );
    assert!(
        res.summary.contains("desiredCount: 2 -> 3"),
        "{}",
        res.summary
    );
    // Only the image changes: no other field is in the diff.
    assert_eq!(res.summary.matches("\n~ ").count(), 1, "{}", res.summary);
    assert!(
        res.stderr.contains("plan: update service `stage-backend`"),
        "{}",
        res.dump()
    );
}

#[test]
fn rollback_command_goes_to_the_previous_revision() {
    let moto = Moto::shared();
    let sim = clocked(EcsSim::start(Scenario::Succeed { after: 1 }));
    let res = run(action(&moto, &sim).input("command", "rollback"));
    assert_eq!(res.code, 0, "{}", res.dump());
    assert_eq!(res.output("status"), "rolled-back");
    assert_eq!(res.output("task-definition-arn"), REV2.replace(":2", ":1"));
    assert_eq!(res.output("previous-task-definition-arn"), REV2);
    assert_eq!(sim.service_task_definition(), REV2.replace(":2", ":1"));

    // A given revision that is the current one: nothing to do.
    let sim = clocked(EcsSim::start(Scenario::Succeed { after: 1 }));
    let res = run(action(&moto, &sim)
        .input("command", "rollback")
        .input("revision", "2"));
    assert_eq!(res.code, 0, "{}", res.dump());
    assert_eq!(res.output("status"), "no-change");
    assert!(sim.mutating_calls().is_empty());
}

/// A preflight failure: non-zero exit, the error contains `want`, and no mutating ECS call.
fn assert_preflight_fails(moto: &Moto, sim: &EcsSim, a: Action, want: &str) {
    let _ = moto;
    let res = run(a);
    assert_ne!(res.code, 0, "{}", res.dump());
    let err = res.error_lines().join("\n");
    assert!(err.contains(want), "`{err}` lacks `{want}`\n{}", res.dump());
    assert!(res.stdout.contains("hint: "), "{}", res.dump());
    assert!(sim.mutating_calls().is_empty(), "{:?}", sim.calls());
    assert_eq!(res.output("status"), "failed");
}

#[test]
fn failed_preflights_change_nothing() {
    let moto = Moto::shared();
    seed_ecr(&moto, &["v1", "v2", "feature-x"], false);
    // Missing image: the newest tags are listed, and ECS is not even asked.
    let sim = clocked(EcsSim::start(Scenario::Succeed { after: 1 }));
    assert_preflight_fails(
        &moto,
        &sim,
        action(&moto, &sim),
        &format!(
            "failed to find image `{}:{SHA}` in ECR: ImageNotFoundException (newest tags: ",
            moto.name(REPO)
        ),
    );
    assert!(sim.calls().is_empty(), "{:?}", sim.calls());
    let res = run(action(&moto, &sim));
    let err = res.error_lines().join("\n");
    for t in ["v1", "v2", "feature-x"] {
        assert!(err.contains(t), "{err}");
    }

    // Unknown cluster, service, container.
    let seed_other = |cluster: &str, service: &str| Seed {
        cluster: cluster.into(),
        service: service.into(),
        ..Seed::default()
    };
    let sim = EcsSim::start_with(
        seed_other("other", "stage-backend"),
        Scenario::Succeed { after: 1 },
    );
    assert_preflight_fails(
        &moto,
        &sim,
        action(&moto, &sim).input("image-tag", "v2"),
        "ClusterNotFoundException",
    );
    let sim = EcsSim::start_with(
        seed_other("stage-cluster", "other"),
        Scenario::Succeed { after: 1 },
    );
    assert_preflight_fails(
        &moto,
        &sim,
        action(&moto, &sim).input("image-tag", "v2"),
        "failed to find service `stage-backend` in cluster `stage-cluster`",
    );
    let sim = clocked(EcsSim::start(Scenario::Succeed { after: 1 }));
    assert_preflight_fails(
        &moto,
        &sim,
        action(&moto, &sim)
            .input("image-tag", "v2")
            .input("container", "api"),
        "container `api` is not in task definition `cloudshop-backend:2` (containers: backend)",
    );
    // Unknown repository.
    let sim = clocked(EcsSim::start(Scenario::Succeed { after: 1 }));
    assert_preflight_fails(
        &moto,
        &sim,
        action(&moto, &sim).input("ecr-repository", "nope"),
        "failed to find ECR repository `nope`",
    );
}

#[test]
fn immutable_tag_conflict_fails_before_any_change() {
    let moto = Moto::shared();
    seed_ecr(&moto, &["stage-latest", SHA], true);
    let sim = clocked(EcsSim::start(Scenario::Succeed { after: 1 }));
    assert_preflight_fails(
        &moto,
        &sim,
        action(&moto, &sim).input("extra-tags", "stage-latest"),
        "ImageTagAlreadyExistsException",
    );
}

#[test]
fn task_definition_file_is_rendered_instead_of_the_live_one() {
    let moto = Moto::shared();
    let digest = seed_ecr(&moto, &[SHA], false);
    let sim = clocked(EcsSim::start(Scenario::Succeed { after: 2 }));
    let file = r#"{"family": "cloudshop-backend", "cpu": "512", "memory": "1024",
        "containerDefinitions": [{"name": "backend", "image": "placeholder", "essential": true}]}"#;
    let res = run(action(&moto, &sim)
        .file("ecs/task-def.json", file)
        .input("task-definition", "ecs/task-def.json"));
    assert_eq!(res.code, 0, "{}", res.dump());
    let new = sim.task_definition(REV3).unwrap();
    assert_eq!(new["cpu"], "512");
    assert_eq!(
        new["containerDefinitions"][0]["image"],
        format!("{}@{digest}", repo_uri(&moto))
    );
    assert!(new.get("futureSetting").is_none());
    // The file has no tags: the live revision's are kept.
    assert_eq!(
        sim.bodies("RegisterTaskDefinition")[0]["tags"][0]["key"],
        "managed-by"
    );
}

/// The plan shows that a secret changed, never what it is: not in the log, not in the summary.
#[test]
fn dry_run_plan_never_prints_environment_values() {
    let moto = Moto::shared();
    seed_ecr(&moto, &[SHA], false);
    let sim = clocked(EcsSim::start(Scenario::Succeed { after: 1 }));
    let file = r#"{"family": "cloudshop-backend", "cpu": "256", "memory": "512",
        "containerDefinitions": [{"name": "backend", "image": "placeholder", "essential": true,
          "portMappings": [{"containerPort": 8000, "protocol": "tcp"}],
          "environment": [{"name": "ENV", "value": "hunter2-env-value"},
                          {"name": "DB_PASSWORD", "value": "hunter2-db-password"}],
          "secrets": [{"name": "API_KEY", "valueFrom": "arn:aws:ssm:us-east-1:123456789012:parameter/hunter2-ref"}],
          "dockerLabels": {"token": "hunter2-label"}}]}"#;
    let res = run(action(&moto, &sim)
        .file("ecs/task-def.json", file)
        .input("task-definition", "ecs/task-def.json")
        .input("dry-run", "true"));
    assert_eq!(res.code, 0, "{}", res.dump());
    assert_eq!(res.output("status"), "planned");
    let all = res.everything();
    assert!(
        !all.contains("hunter2"),
        "a secret value was printed\n{}",
        res.dump()
    );
    assert!(
        res.summary
            .contains("~ containerDefinitions[backend].environment[ENV].value: changed ("),
        "{}",
        res.summary
    );
    assert!(
        res.stderr
            .contains("containerDefinitions[backend].environment[ENV].value: changed ("),
        "{}",
        res.dump()
    );
}

#[test]
fn failed_smoke_tests_roll_the_service_back() {
    let moto = Moto::shared();
    seed_ecr(&moto, &[SHA], false);
    let sim = clocked(EcsSim::start(Scenario::Succeed { after: 2 }));
    // Nothing listens on the API URL: the smoke tests fail, whatever they check.
    let dead = format!("http://127.0.0.1:{}", common::free_port());
    let res = run(action(&moto, &sim)
        .input("smoke-url", &dead)
        .input("smoke-timeout", "2s"));
    assert_ne!(res.code, 0, "{}", res.dump());
    assert_eq!(res.output("status"), "rolled-back", "{}", res.dump());
    assert_eq!(res.output("task-definition-arn"), REV3);
    assert_eq!(sim.count("UpdateService"), 2);
    assert_eq!(sim.service_task_definition(), REV2);
    assert!(
        res.summary
            .contains("| rolled back to | `cloudshop-backend:2` |"),
        "{}",
        res.summary
    );
}

/// A rollout whose tasks die on a database error: the failure quotes the app's own last lines (masked)
/// in the annotation, shows them per task in the summary, and names the fix; a task definition without
/// `awslogs` says so instead.
#[test]
fn failed_tasks_show_their_own_log_lines_masked_with_the_fix() {
    let moto = Moto::shared();
    seed_ecr(&moto, &[SHA], false);
    let group = format!("/ecs/stage/{}", moto.name("backend-blue"));
    let stream = format!("ecs/backend/{}", EcsSim::stopped_task_id(1));
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(moto.put_log_lines(
        &group,
        &stream,
        &[
            "INFO:     Started server process [1]",
            "connecting with DB_PASSWORD=s3cr3t-db-pass",
            "  File \"/app/main.py\", line 12, in <module>",
            "sqlalchemy.exc.OperationalError: (psycopg2.OperationalError) could not connect to server: Connection refused (postgresql://cloudshop:hunter22@db.internal:5432/shop)",
        ],
    ));
    let seed = Seed {
        log_group: Some(group.clone()),
        ..Seed::default()
    };
    let sim = EcsSim::start_with(
        seed,
        Scenario::TasksFail {
            reason: StopReason::EssentialExited,
            after: 3,
        },
    );
    let res = run(action(&moto, &sim));
    assert_ne!(res.code, 0, "{}", res.dump());
    let err = res.error_lines().join("\n");
    assert!(
        err.contains("could not connect to server"),
        "the annotation quotes the app's last lines\n{}",
        res.dump()
    );
    assert!(err.contains("last lines of `backend`"), "{}", res.dump());
    assert!(
        res.stdout.contains("security group ECS -> RDS"),
        "the hint names the fix\n{}",
        res.dump()
    );
    assert!(
        res.summary
            .contains("<details><summary>Logs of <code>backend</code>"),
        "{}",
        res.summary
    );
    assert!(
        res.summary.contains("sqlalchemy.exc.OperationalError"),
        "{}",
        res.summary
    );
    let everything = res.everything();
    for secret in ["s3cr3t-db-pass", "hunter22"] {
        assert!(
            !everything.contains(secret),
            "`{secret}` printed\n{}",
            res.dump()
        );
    }

    // Without `logConfiguration`: said so, with the fix.
    let sim = EcsSim::start(Scenario::TasksFail {
        reason: StopReason::EssentialExited,
        after: 3,
    });
    let res = run(action(&moto, &sim));
    assert_ne!(res.code, 0, "{}", res.dump());
    assert!(
        res.summary
            .contains(&md_escape("no logs configured for `backend`")),
        "{}",
        res.summary
    );
}

/// A rollout that fails the load balancer's health checks names each target's reason and the health
/// check in effect, with the fix.
#[test]
fn failed_health_checks_show_the_target_groups_view() {
    use common::elb_sim::{ElbSim, TargetState};
    let moto = Moto::shared();
    seed_ecr(&moto, &[SHA], false);
    let elb = ElbSim::start(
        "stage-backend-tg",
        vec![
            TargetState::code_mismatch("10.0.1.5", 404),
            TargetState::code_mismatch("10.0.2.7", 404),
        ],
    );
    let seed = Seed {
        target_group: Some(elb.target_group_arn.clone()),
        ..Seed::default()
    };
    let sim = EcsSim::start_with(
        seed,
        Scenario::TasksFail {
            reason: StopReason::ElbHealth,
            after: 3,
        },
    );
    let res =
        run(action(&moto, &sim).env("AWS_ENDPOINT_URL_ELASTIC_LOAD_BALANCING_V2", &elb.endpoint));
    assert_ne!(res.code, 0, "{}", res.dump());
    for shown in [
        "target group `stage-backend-tg`: 0 healthy, 2 not",
        "Target.ResponseCodeMismatch (Health checks failed with these codes: [404])",
        "HTTP /health on port traffic-port, expects 200",
    ] {
        assert!(
            res.summary.contains(&md_escape(shown)),
            "{shown}\n{}",
            res.summary
        );
    }
    assert!(
        res.summary.contains("service grace period 0 s"),
        "{}",
        res.summary
    );
    assert!(
        res.stdout
            .contains("hint: the app answers the health-check path with another status"),
        "{}",
        res.dump()
    );
    let calls = elb.calls.lock().unwrap().clone();
    assert_eq!(calls, ["DescribeTargetGroups", "DescribeTargetHealth"]);
}

/// The rollout wait itself fails (ECS throttles `DescribeServices` past the wait's bound) after the
/// service was pointed at the new revision: that goes through the same rollback decision as a failed
/// rollout, so the service is put back on the revision it ran, and the throttling stays the headline.
#[test]
fn a_rollout_wait_that_errors_still_rolls_back() {
    use common::faults::{Fault, FaultPlan, FaultProxy};
    let moto = Moto::shared();
    seed_ecr(&moto, &[SHA], false);
    let sim = EcsSim::start(Scenario::NeverEnds);
    // Call 1 is the preflight's; the next eight are the rollout's polls, throttled in a row.
    let ecs = FaultProxy::start(
        &sim.endpoint,
        FaultPlan {
            nth: (2..=9)
                .map(|n| ("ecs:DescribeServices".to_string(), n, Fault::Throttle))
                .collect(),
            ..FaultPlan::none()
        },
    );
    let res = run(action(&moto, &sim).env("AWS_ENDPOINT_URL_ECS", &ecs.endpoint));
    assert_ne!(res.code, 0, "{}", res.dump());
    assert_eq!(res.output("status"), "rolled-back", "{}", res.dump());
    assert_eq!(res.output("rolled-back"), "true", "{}", res.dump());
    assert_eq!(sim.count("UpdateService"), 2, "{:?}", sim.calls());
    assert_eq!(sim.service_task_definition(), REV2);
    let errors = res.error_lines();
    assert_eq!(errors.len(), 1, "{}", res.dump());
    assert!(
        errors[0].contains("failed to watch service `stage-backend`")
            && errors[0].contains("Throttl"),
        "{}",
        errors[0]
    );
}
