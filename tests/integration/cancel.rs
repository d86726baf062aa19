//! Cancellation: SIGTERM mid-rollout stops the run within 5 s with `status=cancelled` in the outputs
//! and the summary, also as PID 1 of its own PID namespace (a `FROM scratch` container), where the
//! kernel drops a signal the process has no handler for.

use std::time::Duration;

use harness as common;

use common::ecs_sim::{EcsSim, Scenario};
use common::{Action, Moto, RunResult, Running};

const REPO: &str = "stage-cloudshop-backend";
const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

const CONFIG: &str = r#"
region: us-east-1
environments:
  stage:
    cluster: stage-cluster
    service: stage-backend
    container: backend
    ecr-repository: stage-cloudshop-backend
"#;

/// A deploy whose rollout never ends (the wait alone would last 10 minutes).
fn action(moto: &Moto, sim: &EcsSim) -> Action {
    common::seed::seed_ecr(moto, &moto.name(REPO), &[SHA], false);
    Action::new()
        .with_moto(moto)
        .env("AWS_ENDPOINT_URL_ECS", &sim.endpoint)
        .file(
            ".github/cloudshop-deploy.yml",
            &CONFIG.replace(REPO, &moto.name(REPO)),
        )
        .input("environment", "stage")
        .input("poll-interval", "50ms")
        .input("wait-timeout", "10m")
}

/// Wait (bounded) until the rollout is under way, send SIGTERM to `pid`, and give the run 5 s to exit.
fn cancel_mid_rollout(
    mut running: Running,
    sim: &EcsSim,
    pid: impl Fn(&Running) -> Option<u32>,
) -> RunResult {
    let mut tries = 0;
    while sim.count("DescribeServices") < 3 {
        assert!(
            !running.exited() && tries < 1500,
            "the rollout never started\n{}",
            running.finish().dump()
        );
        tries += 1;
        std::thread::sleep(Duration::from_millis(20));
    }
    let target = pid(&running).expect("the action's pid");
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &target.to_string()])
        .status()
        .expect("kill");
    assert!(sent.success());
    let exited = running.wait_within(Duration::from_secs(5));
    let res = running.finish();
    assert!(exited, "still running 5 s after SIGTERM\n{}", res.dump());
    res
}

fn assert_cancelled(res: &RunResult, sim: &EcsSim) {
    assert_ne!(res.code, 0, "{}", res.dump());
    assert_eq!(res.output("status"), "cancelled", "{}", res.dump());
    assert_eq!(res.output("rolled-back"), "false", "{}", res.dump());
    assert_eq!(res.output("smoke-status"), "skipped", "{}", res.dump());
    assert!(
        res.summary.contains(": cancelled") && res.summary.contains("### Cancelled"),
        "{}",
        res.summary
    );
    assert!(
        res.summary
            .contains("rollout of `cloudshop-backend:3` in progress"),
        "{}",
        res.summary
    );
    let errors = res.error_lines();
    assert_eq!(errors.len(), 1, "{}", res.dump());
    assert!(
        errors[0].contains("cancelled by `SIGTERM`"),
        "{}",
        errors[0]
    );
    // Stopped, not rolled back: one update only.
    assert_eq!(sim.count("UpdateService"), 1);
}

#[test]
fn sigterm_mid_rollout_stops_the_run_with_a_report() {
    let moto = Moto::shared();
    let sim = EcsSim::start(Scenario::NeverEnds);
    // The action owns the workspace: it lives until the run ends.
    let action = action(&moto, &sim);
    let running = action.start();
    let res = cancel_mid_rollout(running, &sim, |r| Some(r.pid()));
    assert_cancelled(&res, &sim);
}

#[test]
fn sigterm_to_pid_1_stops_the_run_with_a_report() {
    let probe = std::process::Command::new("unshare")
        .args(["-fp", "--mount-proc", "true"])
        .status();
    assert!(
        probe.is_ok_and(|s| s.success()),
        "`unshare -fp --mount-proc` failed: this test needs util-linux's unshare and root (CI runs as root)"
    );
    let moto = Moto::shared();
    let sim = EcsSim::start(Scenario::NeverEnds);
    let action = action(&moto, &sim);
    let running = action.start_under(&["unshare", "-fp", "--mount-proc", "--kill-child"]);
    // `unshare -f` forks: the action is its child, PID 1 in the new namespace.
    let res = cancel_mid_rollout(running, &sim, Running::child_pid);
    assert_cancelled(&res, &sim);
}

/// A cancel during the frontend sync stops between whole requests and never runs the deletes: the
/// stale object the new build no longer has is still there, so the old pages keep working.
#[test]
fn sigterm_during_the_frontend_sync_never_deletes() {
    use common::app::App;
    use common::faults::{Fault, FaultPlan, FaultProxy};
    use common::seed::{create_bucket, rt, seed_ecr};

    let moto = Moto::shared();
    let repo = moto.name(REPO);
    let bucket = moto.name("stage-frontend");
    seed_ecr(&moto, &repo, &[SHA], false);
    create_bucket(&moto, &bucket);
    rt().block_on(async {
        moto.s3()
            .await
            .put_object()
            .bucket(&bucket)
            .key("static/js/stale.js")
            .body(aws_sdk_s3::primitives::ByteStream::from_static(b"old"))
            .send()
            .await
            .unwrap();
    });
    // Every upload hangs: the run is inside the sync when the signal comes.
    let proxy = FaultProxy::start(
        &moto.endpoint,
        FaultPlan {
            always: vec![("s3:PutObject".into(), Fault::Stall)],
            stall: Duration::from_secs(60),
            ..FaultPlan::none()
        },
    );
    let sim = EcsSim::start(Scenario::Succeed { after: 2 });
    let app = App::start();
    let config = format!(
        r#"
region: us-east-1
environments:
  stage:
    cluster: stage-cluster
    service: stage-backend
    container: backend
    ecr-repository: {repo}
    api-url: {api}
    frontend: {{ bucket: {bucket}, dir: build }}
    smoke: {{ timeout: 5s, request-timeout: 1s, retry-interval: 50ms, frontend-check: false }}
"#,
        api = app.base_url(),
    );
    let action = Action::new()
        .with_moto(&moto)
        .env("AWS_ENDPOINT_URL", &proxy.endpoint)
        .env("AWS_ENDPOINT_URL_ECS", &sim.endpoint)
        .file(".github/cloudshop-deploy.yml", &config)
        .file("build/index.html", "<!doctype html><p>new</p>")
        .file("build/static/js/main.js", "console.log('new')")
        .input("environment", "stage")
        .input("poll-interval", "30ms")
        .input("wait-timeout", "30s");
    let res = action.start().sigterm_when("the sync started", || {
        proxy.ops().iter().any(|o| o == "s3:PutObject")
    });
    assert_eq!(res.output("status"), "cancelled", "{}", res.dump());
    assert!(
        res.summary.contains("sync stopped part-way"),
        "{}",
        res.summary
    );
    let deletes: Vec<String> = proxy
        .ops()
        .into_iter()
        .filter(|o| o.starts_with("s3:Delete"))
        .collect();
    assert!(deletes.is_empty(), "deletes ran: {deletes:?}");
    let stale = rt().block_on(async {
        moto.s3()
            .await
            .head_object()
            .bucket(&bucket)
            .key("static/js/stale.js")
            .send()
            .await
    });
    assert!(stale.is_ok(), "the stale object was deleted");
}

/// SIGTERM while the run rolls back (its rollout timed out; the rollback's own rollout never ends): the
/// run does not drop the rollback mid-request. `UpdateService` to the previous revision was sent, and the
/// summary says the rollback was interrupted after it, with the command that finishes it; the run still
/// exits within 5 s.
#[test]
fn sigterm_during_a_rollback_says_where_it_stopped() {
    let moto = Moto::shared();
    let sim = EcsSim::start(Scenario::NeverEnds);
    sim.set_later_updates(Scenario::NeverEnds);
    let action = action(&moto, &sim).input("wait-timeout", "1s");
    let res = action
        .start()
        .sigterm_when("the rollback started", || sim.count("UpdateService") >= 2);
    assert_eq!(res.output("status"), "cancelled", "{}", res.dump());
    assert!(
        res.summary.contains(
            "rollback interrupted after `UpdateService` to `cloudshop-backend:2` was sent"
        ) && res.summary.contains("`command: rollback`"),
        "{}",
        res.summary
    );
    // The rollback's update went out exactly once; nothing after the signal.
    assert_eq!(sim.count("UpdateService"), 2, "{:?}", sim.calls());
}

/// SIGTERM while `UpdateService` is in flight (its answer never comes): the summary says the update was
/// sent and its answer did not arrive, never "no update had been sent".
#[test]
fn sigterm_while_update_service_is_in_flight_says_it_was_sent() {
    use common::faults::{Fault, FaultPlan, FaultProxy};
    let moto = Moto::shared();
    let sim = EcsSim::start(Scenario::Succeed { after: 2 });
    let ecs = FaultProxy::start(
        &sim.endpoint,
        FaultPlan {
            always: vec![("ecs:UpdateService".into(), Fault::Stall)],
            stall: Duration::from_secs(60),
            ..FaultPlan::none()
        },
    );
    let action = action(&moto, &sim).env("AWS_ENDPOINT_URL_ECS", &ecs.endpoint);
    let res = action.start().sigterm_when("the update was sent", || {
        ecs.ops().iter().any(|o| o == "ecs:UpdateService")
    });
    assert_eq!(res.output("status"), "cancelled", "{}", res.dump());
    assert!(
        res.summary.contains(
            "`UpdateService` to `cloudshop-backend:3` was sent; its answer did not arrive"
        ),
        "{}",
        res.summary
    );
    assert!(
        !res.summary.contains("no update had been sent"),
        "{}",
        res.summary
    );
}
