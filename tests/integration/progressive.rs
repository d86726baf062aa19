//! A blue/green service with PAUSE hooks, through the real binary, against the ECS simulator's
//! progressive deployments and the loopback ALB: the checks on test traffic at `POST_TEST_TRAFFIC_SHIFT`
//! decide CONTINUE or ROLLBACK before any production request reaches the new revision; pauses the action
//! would not answer are refused before any write; an expired pause is reported as such; a cancel during
//! a pause answers ROLLBACK.

use harness as common;

use std::time::Duration;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::alb::Alb;
use common::app::{App, Mode};
use common::cw_sim::CwSim;
use common::ecs_sim::{EcsSim, HookAction, Plan, Scenario};
use common::elb_sim::ElbSim;
use common::{Action, Moto, RunResult};

const REPO: &str = "stage-cloudshop-backend";
const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

/// A fast blue/green plan (a minute lasts 200 ms, a stage 20 ms) pausing at `stages`.
fn plan(stages: &[&str], timeout_minutes: u32, action: HookAction) -> Plan {
    Plan {
        minute: Duration::from_millis(200),
        stage: Duration::from_millis(20),
        ..Plan::blue_green()
    }
    .pause(stages, timeout_minutes, action)
}

/// The service's two revisions behind the loopback ALB: the old one healthy, the new one in `mode`.
struct Stage {
    sim: EcsSim,
    alb: Alb,
    _apps: (App, App),
}

fn stage(plan: Plan, mode: Mode) -> Stage {
    let sim = EcsSim::start(Scenario::Progressive(plan.clone()));
    let progress = sim.progress().expect("a progressive simulator");
    let (old, new) = (App::start(), App::start());
    new.set_mode(mode);
    let alb = Alb::progressive(
        progress,
        vec![
            (plan.production_group.clone(), old.base_url()),
            (plan.alternate_group.clone(), new.base_url()),
        ],
        None,
    );
    Stage {
        sim,
        alb,
        _apps: (old, new),
    }
}

/// This test's repository, with the image to deploy.
fn seed(moto: &Moto) {
    common::seed::seed_ecr(moto, &moto.name(REPO), &[SHA], false);
}

fn action(moto: &Moto, s: &Stage, test_url: Option<&str>) -> Action {
    action_with(moto, s, test_url, "")
}

/// [`action`] with `smoke` lines added (indented as under `smoke:`).
fn action_with(moto: &Moto, s: &Stage, test_url: Option<&str>, smoke: &str) -> Action {
    let test_url = test_url
        .map(|u| format!("\n      test-url: {u}"))
        .unwrap_or_default();
    let config = format!(
        "
region: us-east-1
environments:
  stage:
    cluster: stage-cluster
    service: stage-backend
    container: backend
    ecr-repository: {}
    api-url: {}
    smoke:
      timeout: 2s
      retry-interval: 50ms{test_url}{smoke}
",
        moto.name(REPO),
        s.alb.production_url
    );
    Action::new()
        .with_moto(moto)
        .env("AWS_ENDPOINT_URL_ECS", &s.sim.endpoint)
        .file(".github/cloudshop-deploy.yml", &config)
        .input("environment", "stage")
        .input("poll-interval", "30ms")
        .input("wait-timeout", "60s")
}

fn run(a: Action) -> RunResult {
    a.run_within(Duration::from_secs(120))
}

#[test]
fn a_version_failing_on_test_traffic_is_rolled_back_before_any_production_request() {
    let moto = Moto::shared();
    seed(&moto);
    let s = stage(
        plan(&["POST_TEST_TRAFFIC_SHIFT"], 100, HookAction::Rollback),
        Mode::ProductsFail,
    );
    let url = s.alb.test_url.clone();
    let res = run(action(&moto, &s, Some(&url)));
    assert_ne!(res.code, 0, "{}", res.dump());
    assert_eq!(res.output("status"), "rolled-back", "{}", res.dump());
    let errors = res.error_lines().join("\n");
    assert_eq!(res.error_lines().len(), 1, "{}", res.dump());
    assert!(
        errors.contains("rolled back at the `POST_TEST_TRAFFIC_SHIFT` pause")
            && errors.contains("products got 500")
            && errors.contains("never took production traffic"),
        "{}",
        res.dump()
    );
    let progress = s.sim.progress().unwrap();
    assert_eq!(
        progress
            .hook_actions()
            .iter()
            .map(|(_, a)| a.as_str())
            .collect::<Vec<_>>(),
        ["ROLLBACK"]
    );
    assert!(
        !progress
            .stages_seen()
            .iter()
            .any(|st| st == "PRODUCTION_TRAFFIC_SHIFT"),
        "{:?}",
        progress.stages_seen()
    );
    assert_eq!(progress.max_new_weight(), 0.0);
    assert_eq!(s.alb.served(false, &progress.new_group()).requests, 0);
    // Our answer came after the checks, which went to the new revision through the test listener.
    assert!(s.alb.served(true, &progress.new_group()).requests > 0);
    assert_eq!(
        s.sim.count("UpdateService"),
        1,
        "no rollback of our own on top"
    );
    let summary = &res.summary;
    assert!(
        summary.contains("Smoke tests on test traffic, before production: failed")
            && summary.contains("| `POST_TEST_TRAFFIC_SHIFT` |")
            && summary.contains("`ROLLBACK`"),
        "{summary}"
    );
}

#[test]
fn a_good_version_continues_at_the_test_traffic_pause_and_deploys() {
    let moto = Moto::shared();
    seed(&moto);
    let s = stage(
        plan(&["POST_TEST_TRAFFIC_SHIFT"], 100, HookAction::Rollback),
        Mode::Healthy,
    );
    let url = s.alb.test_url.clone();
    let res = run(action(&moto, &s, Some(&url)));
    assert_eq!(res.code, 0, "{}", res.dump());
    assert_eq!(res.output("status"), "deployed", "{}", res.dump());
    let progress = s.sim.progress().unwrap();
    assert_eq!(
        progress
            .hook_actions()
            .iter()
            .map(|(_, a)| a.as_str())
            .collect::<Vec<_>>(),
        ["CONTINUE"]
    );
    assert_eq!(progress.status().0, "SUCCESSFUL", "{:?}", progress.status());
    let summary = &res.summary;
    assert!(
        summary.contains("Smoke tests on test traffic, before production: passed")
            && summary
                .contains("100 requests on test traffic: 0 answered 5xx or failed (0%), limit 1%")
            && summary.contains("`CONTINUE`"),
        "{summary}"
    );
}

/// A version answering one request in five on `/products` with a 500 passes checks that retry; the
/// traffic sample on the test listener (none retried) fails it, so it never takes a production request.
#[test]
fn a_version_failing_one_request_in_five_is_rolled_back_at_the_test_traffic_pause() {
    let moto = Moto::shared();
    seed(&moto);
    let s = stage(
        plan(&["POST_TEST_TRAFFIC_SHIFT"], 100, HookAction::Rollback),
        Mode::ErrorShare(20),
    );
    let url = s.alb.test_url.clone();
    let res = run(action(&moto, &s, Some(&url)));
    assert_ne!(res.code, 0, "{}", res.dump());
    assert_eq!(res.output("status"), "rolled-back", "{}", res.dump());
    let errors = res.error_lines().join("\n");
    assert_eq!(res.error_lines().len(), 1, "{}", res.dump());
    assert!(
        errors.contains("rolled back at the `POST_TEST_TRAFFIC_SHIFT` pause")
            && errors.contains("the traffic sample failed on test traffic")
            && errors.contains("requests answered 5xx or failed")
            && errors.contains("never took production traffic"),
        "{}",
        res.dump()
    );
    let progress = s.sim.progress().unwrap();
    assert_eq!(
        progress
            .hook_actions()
            .iter()
            .map(|(_, a)| a.as_str())
            .collect::<Vec<_>>(),
        ["ROLLBACK"]
    );
    assert_eq!(progress.max_new_weight(), 0.0);
    assert_eq!(s.alb.served(false, &progress.new_group()).requests, 0);
    // The checks and the sample: more than the checks' few attempts reached the new revision.
    assert!(s.alb.served(true, &progress.new_group()).requests >= 100);
    let summary = &res.summary;
    assert!(
        summary.contains("Smoke tests on test traffic, before production: failed")
            && summary.contains("❌ 100 requests on test traffic: ")
            && summary.contains("limit 1%")
            && summary.contains("got 500"),
        "{summary}"
    );
}

/// `requests: 0` turns the sample off (the summary says so): the same version then passes the
/// checks, which retry, and deploys.
#[test]
fn a_sample_of_zero_requests_is_skipped_and_said_so() {
    let moto = Moto::shared();
    seed(&moto);
    let s = stage(
        plan(&["POST_TEST_TRAFFIC_SHIFT"], 100, HookAction::Rollback),
        Mode::ErrorShare(20),
    );
    let url = s.alb.test_url.clone();
    let res = run(action_with(
        &moto,
        &s,
        Some(&url),
        "\n      test-sample: { requests: 0 }",
    ));
    assert_eq!(res.output("status"), "deployed", "{}", res.dump());
    let progress = s.sim.progress().unwrap();
    assert_eq!(
        progress
            .hook_actions()
            .iter()
            .map(|(_, a)| a.as_str())
            .collect::<Vec<_>>(),
        ["CONTINUE"]
    );
    assert!(
        res.summary
            .contains("No traffic sample on test traffic (`smoke.test-sample.requests: 0`)."),
        "{}",
        res.summary
    );
}

#[test]
fn pauses_the_action_would_not_answer_are_refused_before_any_write() {
    let moto = Moto::shared();
    seed(&moto);
    for (stages, test_url, want) in [
        (
            &["POST_SCALE_UP"][..],
            Some("http://127.0.0.1:9"),
            "pauses its deployments at `POST_SCALE_UP`, where cloudshop-deploy does not act",
        ),
        (
            &["POST_TEST_TRAFFIC_SHIFT"][..],
            None,
            "pauses its deployments at `POST_TEST_TRAFFIC_SHIFT`, but `smoke.test-url` is not set",
        ),
    ] {
        let s = stage(plan(stages, 100, HookAction::Rollback), Mode::Healthy);
        let res = run(action(&moto, &s, test_url));
        assert_ne!(res.code, 0, "{}", res.dump());
        assert_eq!(res.error_lines().len(), 1, "{}", res.dump());
        assert!(
            res.error_lines()[0].contains(want),
            "{want}\n{}",
            res.dump()
        );
        assert!(
            s.sim.mutating_calls().is_empty(),
            "{:?}",
            s.sim.mutating_calls()
        );
    }
}

#[test]
fn a_pause_that_expires_while_the_checks_run_is_reported_as_such() {
    let moto = Moto::shared();
    seed(&moto);
    // The hook times out after one simulated minute (200 ms); the new revision answers after 600 ms.
    let s = stage(
        plan(&["POST_TEST_TRAFFIC_SHIFT"], 1, HookAction::Rollback),
        Mode::Slow(Duration::from_millis(600)),
    );
    let url = s.alb.test_url.clone();
    let res = run(action(&moto, &s, Some(&url)));
    assert_ne!(res.code, 0, "{}", res.dump());
    assert_eq!(res.output("status"), "rolled-back", "{}", res.dump());
    let errors = res.error_lines().join("\n");
    assert!(
        errors.contains("the pause expired after") && errors.contains("ECS applied ROLLBACK"),
        "{}",
        res.dump()
    );
    // Nothing was sent: the hook was no longer waiting.
    assert!(s.sim.progress().unwrap().hook_actions().is_empty());
    assert_eq!(s.sim.count("ContinueServiceDeployment"), 0);
}

#[test]
fn a_pause_that_expires_into_continue_while_the_checks_fail_is_stopped_and_rolled_back() {
    let moto = Moto::shared();
    seed(&moto);
    // The hook continues by itself after one simulated minute; the checks fail for their 2 s; a long bake
    // keeps the deployment in progress so it can still be stopped.
    let s = stage(
        Plan {
            bake_minutes: 100,
            ..plan(&["POST_TEST_TRAFFIC_SHIFT"], 1, HookAction::Continue)
        },
        Mode::ProductsFail,
    );
    let url = s.alb.test_url.clone();
    let res = run(action(&moto, &s, Some(&url)));
    assert_eq!(res.output("status"), "rolled-back", "{}", res.dump());
    let errors = res.error_lines().join("\n");
    assert!(
        errors.contains("the pause expired after")
            && errors.contains("ECS applied CONTINUE")
            && errors.contains("StopServiceDeployment")
            && !errors.contains("never took production traffic"),
        "{}",
        res.dump()
    );
    assert_eq!(
        s.sim.count("StopServiceDeployment"),
        1,
        "{:?}",
        s.sim.calls()
    );
    assert_eq!(s.sim.count("ContinueServiceDeployment"), 0);
}

#[test]
fn a_cancel_during_a_pause_answers_rollback_before_exiting() {
    let moto = Moto::shared();
    seed(&moto);
    // The checks keep failing (and retrying) for their 2 s budget: the run is cancelled meanwhile.
    let s = stage(
        plan(&["POST_TEST_TRAFFIC_SHIFT"], 100, HookAction::Continue),
        Mode::ProductsFail,
    );
    let url = s.alb.test_url.clone();
    let progress = s.sim.progress().unwrap();
    let a = action(&moto, &s, Some(&url));
    let running = a.start();
    let res = running.sigterm_when("the test-traffic pause", || {
        progress
            .hook()
            .is_some_and(|(_, status)| status == "AWAITING_ACTION")
            && s.alb.served(true, &progress.new_group()).requests > 0
    });
    assert_eq!(res.output("status"), "cancelled", "{}", res.dump());
    assert_eq!(
        progress
            .hook_actions()
            .iter()
            .map(|(_, a)| a.as_str())
            .collect::<Vec<_>>(),
        ["ROLLBACK"],
        "{}",
        res.dump()
    );
}

/// Production requests through the ALB as fast as one client goes, until dropped.
struct Traffic(Arc<AtomicBool>, Option<std::thread::JoinHandle<()>>);

impl Traffic {
    fn start(url: String) -> Traffic {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let http = reqwest::Client::new();
                while !flag.load(Ordering::SeqCst) {
                    let _ = http.get(format!("{url}/products")).send().await;
                }
            });
        });
        Traffic(stop, Some(handle))
    }
}

impl Drop for Traffic {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
        if let Some(h) = self.1.take() {
            let _ = h.join();
        }
    }
}

/// A canary (10%, one simulated minute of bake) pausing before each production step, with the new
/// revision in `mode`, under steady production traffic: how the run ended, the hook answers and the
/// highest weight the new revision got.
fn canary_run(moto: &Moto, mode: Mode) -> (RunResult, Vec<String>, f64) {
    let plan = Plan {
        minute: Duration::from_millis(200),
        stage: Duration::from_millis(20),
        ..Plan::canary(10.0, 1)
    }
    .pause(&["PRE_PRODUCTION_TRAFFIC_SHIFT"], 100, HookAction::Rollback);
    canary_plan_run(moto, mode, plan)
}

/// [`canary_run`] with any plan.
fn canary_plan_run(moto: &Moto, mode: Mode, plan: Plan) -> (RunResult, Vec<String>, f64) {
    let sim = EcsSim::start(Scenario::Progressive(plan.clone()));
    let progress = sim.progress().unwrap();
    let (old, new) = (App::start(), App::start());
    new.set_mode(mode);
    let cw = CwSim::start();
    let alb = Alb::progressive(
        progress.clone(),
        vec![
            (plan.production_group.clone(), old.base_url()),
            (plan.alternate_group.clone(), new.base_url()),
        ],
        Some(cw.sink()),
    );
    let elb = ElbSim::start_with_rules("stage-blue", Vec::new(), progress.clone());
    let s = Stage {
        sim,
        alb,
        _apps: (old, new),
    };
    let _traffic = Traffic::start(s.alb.production_url.clone());
    let a = action(moto, &s, None)
        .env("AWS_ENDPOINT_URL_ELASTIC_LOAD_BALANCING_V2", &elb.endpoint)
        .env("AWS_ENDPOINT_URL_CLOUDWATCH", &cw.endpoint);
    let config = std::fs::read_to_string(a.workspace_path().join(".github/cloudshop-deploy.yml"))
        .unwrap()
        .replace(
            "    smoke:",
            "    canary:\n      min-requests: 50\n      interval: 1s\n      p95-ratio: 100\n    smoke:",
        );
    let a = a.file(".github/cloudshop-deploy.yml", &config);
    let res = run(a);
    let answers = progress
        .hook_actions()
        .into_iter()
        .map(|(_, a)| a)
        .collect();
    (res, answers, progress.max_new_weight())
}

#[test]
fn a_canary_with_a_higher_5xx_share_is_rolled_back_in_its_first_step_and_a_good_one_continues() {
    let moto = Moto::shared();
    seed(&moto);
    let (res, answers, weight) = canary_run(&moto, Mode::ErrorShare(8));
    assert_eq!(res.output("status"), "rolled-back", "{}", res.dump());
    // The first pause (no production traffic yet) goes on; the one after the 10% step rolls back.
    assert_eq!(answers, ["CONTINUE", "ROLLBACK"], "{}", res.dump());
    assert_eq!(weight, 10.0, "never past the canary's share");
    let errors = res.error_lines().join("\n");
    assert!(
        errors.contains("rolled back at the `PRE_PRODUCTION_TRAFFIC_SHIFT` pause")
            && errors.contains("regression: 5xx share"),
        "{}",
        res.dump()
    );
    assert!(
        res.summary.contains("### Canary analysis"),
        "{}",
        res.summary
    );

    let (res, answers, weight) = canary_run(&moto, Mode::Healthy);
    assert_eq!(res.output("status"), "deployed", "{}", res.dump());
    assert_eq!(answers, ["CONTINUE", "CONTINUE"], "{}", res.dump());
    assert_eq!(weight, 100.0);
}

#[test]
fn a_canary_step_without_a_pause_is_judged_while_it_bakes_and_stopped_on_a_regression() {
    let moto = Moto::shared();
    seed(&moto);
    // Fifty simulated minutes (10 s) at 10%, no pause before the next step: judged every second, so a
    // loaded machine's slower traffic still reaches the analysis' minimum well within the step.
    let plan = Plan {
        minute: Duration::from_millis(200),
        stage: Duration::from_millis(20),
        ..Plan::canary(10.0, 50)
    };
    let (res, answers, weight) = canary_plan_run(&moto, Mode::ErrorShare(8), plan);
    assert_eq!(res.output("status"), "rolled-back", "{}", res.dump());
    assert!(answers.is_empty(), "no pause to answer: {answers:?}");
    assert_eq!(weight, 10.0, "stopped during the 10% step");
    let errors = res.error_lines().join("\n");
    assert!(
        errors.contains("stopped during the traffic step at 10%25:")
            && !errors.contains("rolled back at the")
            && errors.contains("canary at 10%25: regression: 5xx share"),
        "{}",
        res.dump()
    );
    assert!(
        res.summary.contains("### Canary analysis"),
        "{}",
        res.summary
    );
}

#[test]
fn without_a_test_listener_rule_the_groups_are_told_apart_at_the_first_pause() {
    let moto = Moto::shared();
    seed(&moto);
    // The service names no test listener rule: only before the first production step does the new
    // group stand out (no production weight), so the action reads the groups at the first pause.
    let plan = |_: ()| {
        Plan {
            minute: Duration::from_millis(200),
            stage: Duration::from_millis(20),
            test_rule: String::new(),
            ..Plan::canary(10.0, 1)
        }
        .pause(&["PRE_PRODUCTION_TRAFFIC_SHIFT"], 100, HookAction::Rollback)
    };
    let (res, answers, weight) = canary_plan_run(&moto, Mode::ErrorShare(8), plan(()));
    assert_eq!(res.output("status"), "rolled-back", "{}", res.dump());
    assert_eq!(answers, ["CONTINUE", "ROLLBACK"], "{}", res.dump());
    assert_eq!(weight, 10.0, "never past the canary's share");
    let errors = res.error_lines().join("\n");
    assert!(
        errors.contains("regression: 5xx share"),
        "judged on its numbers, not as no data: {}",
        res.dump()
    );

    let (res, answers, weight) = canary_plan_run(&moto, Mode::Healthy, plan(()));
    assert_eq!(res.output("status"), "deployed", "{}", res.dump());
    assert_eq!(answers, ["CONTINUE", "CONTINUE"], "{}", res.dump());
    assert_eq!(weight, 100.0);
}
