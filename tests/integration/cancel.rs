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
fn cancel_mid_rollout(mut running: Running, sim: &EcsSim, pid: impl Fn(&Running) -> Option<u32>) -> RunResult {
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
    assert!(
        res.summary.contains(": cancelled") && res.summary.contains("### Cancelled"),
        "{}",
        res.summary
    );
    assert!(
        res.summary.contains("rollout of `cloudshop-backend:3` in progress"),
        "{}",
        res.summary
    );
    let errors = res.error_lines();
    assert_eq!(errors.len(), 1, "{}", res.dump());
    assert!(errors[0].contains("cancelled by `SIGTERM`"), "{}", errors[0]);
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
    if !probe.is_ok_and(|s| s.success()) {
        eprintln!("`unshare -fp` is not available here (needs root): PID 1 case not run");
        return;
    }
    let moto = Moto::shared();
    let sim = EcsSim::start(Scenario::NeverEnds);
    let action = action(&moto, &sim);
    let running = action.start_under(&["unshare", "-fp", "--mount-proc", "--kill-child"]);
    // `unshare -f` forks: the action is its child, PID 1 in the new namespace.
    let res = cancel_mid_rollout(running, &sim, Running::child_pid);
    assert_cancelled(&res, &sim);
}
