//! The whole `deploy` pipeline through the real binary: moto (ECR, STS, S3), the ECS simulator and the
//! miniature CloudShop API on loopback. A new version that fails its smoke tests or its post-deploy watch
//! must be rolled back, so the previous revision serves again.

use harness as common;

use std::time::Duration;

use common::app::{App, Mode};
use common::ecs_sim::{EcsSim, Scenario};
use common::seed::{create_bucket, rt, seed_ecr};
use common::{Action, Moto, RunResult};

const SHA: &str = "0123456789abcdef0123456789abcdef01234567";
const REV2: &str = "arn:aws:ecs:us-east-1:123456789012:task-definition/cloudshop-backend:2";
const REV3: &str = "arn:aws:ecs:us-east-1:123456789012:task-definition/cloudshop-backend:3";

fn config(e: &Env, watch: &str) -> String {
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
    website-url: {web}
    frontend: {{ bucket: {bucket}, dir: build }}
    smoke:
      timeout: 2s
      request-timeout: 500ms
      retry-interval: 50ms
      watch: {watch}
      watch-interval: 50ms
      watch-failures: 3
"#,
        api = e.app.base_url(),
        web = e.app.website_url(),
        repo = e.moto.name("stage-cloudshop-backend"),
        bucket = e.moto.name("stage-frontend"),
    )
}

struct Env {
    moto: Moto,
    sim: EcsSim,
    app: App,
}

fn env() -> Env {
    let moto = Moto::shared();
    seed_ecr(&moto, &moto.name("stage-cloudshop-backend"), &[SHA], false);
    create_bucket(&moto, &moto.name("stage-frontend"));
    Env {
        moto,
        sim: EcsSim::start(Scenario::Succeed { after: 2 }),
        app: App::start(),
    }
}

fn run(e: &Env, watch: &str) -> RunResult {
    Action::new()
        .with_moto(&e.moto)
        .env("AWS_ENDPOINT_URL_ECS", &e.sim.endpoint)
        .file(".github/cloudshop-deploy.yml", &config(e, watch))
        .file(
            "build/index.html",
            "<!doctype html><script src=\"/static/js/main.3f2a1b.js\"></script>",
        )
        .file("build/static/js/main.3f2a1b.js", "console.log('cloudshop')")
        .file("build/asset-manifest.json", "{}")
        .input("environment", "stage")
        .input("poll-interval", "30ms")
        .input("wait-timeout", "30s")
        .run_within(Duration::from_secs(120))
}

#[test]
fn a_healthy_new_version_is_deployed_and_verified() {
    let e = env();
    let res = run(&e, "0");
    assert_eq!(res.code, 0, "{}", res.dump());
    assert_eq!(res.output("status"), "deployed");
    assert_eq!(res.output("rolled-back"), "false");
    assert_eq!(res.output("smoke-status"), "passed");
    assert_eq!(res.output("task-definition-arn"), REV3);
    assert_eq!(e.sim.service_task_definition(), REV3);
    let report: serde_json::Value = serde_json::from_str(res.output("smoke-report")).unwrap();
    let names: Vec<&str> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"health") && names.contains(&"products"),
        "{names:?}"
    );
    assert!(e.app.requests_to("/health") >= 1 && e.app.requests_to("/products") >= 1);
    // The health check's row: what was asked, what was expected, what came back.
    let row = format!(
        "| ✅ | health | `GET {}/health` | 200 | 200 | ",
        e.app.base_url()
    );
    assert!(
        res.summary.lines().any(|l| l.starts_with(&row)),
        "{row}\n{}",
        res.summary
    );
    // The frontend went out after the API was verified, and the website was checked.
    assert_eq!(res.output("frontend-uploaded"), "3", "{}", res.dump());
    assert_eq!(
        bucket_keys(&e.moto),
        vec![
            "asset-manifest.json",
            "index.html",
            "static/js/main.3f2a1b.js"
        ]
    );
    assert!(e.app.requests_to("/") >= 1, "the website check did not run");
    insta::with_settings!({ filters => common::SNAPSHOT_FILTERS.iter().copied() }, {
        insta::assert_snapshot!(res.snapshot());
    });
}

/// Website keys in the bucket (without the action's own bookkeeping).
fn bucket_keys(moto: &Moto) -> Vec<String> {
    rt().block_on(async {
        let out = moto
            .s3()
            .await
            .list_objects_v2()
            .bucket(moto.name("stage-frontend"))
            .send()
            .await
            .unwrap();
        let mut keys: Vec<String> = out
            .contents()
            .iter()
            .filter_map(|o| o.key())
            .filter(|k| !k.starts_with(".cloudshop-deploy/"))
            .map(str::to_string)
            .collect();
        keys.sort();
        keys
    })
}

#[test]
fn a_new_version_answering_500_is_rolled_back() {
    let e = env();
    e.app.set_mode(Mode::Status(500));
    let res = run(&e, "0");
    assert_ne!(res.code, 0, "{}", res.dump());
    assert_eq!(res.output("status"), "rolled-back", "{}", res.dump());
    assert_eq!(res.output("rolled-back"), "true");
    assert_eq!(res.output("smoke-status"), "failed");
    // The deploy went out (revision 3) and was taken back: revision 2 serves again.
    assert_eq!(e.sim.count("UpdateService"), 2);
    assert_eq!(e.sim.service_task_definition(), REV2);
    assert_eq!(res.error_lines().len(), 1, "{}", res.dump());
    // The frontend that calls the API is not published on top of a failed backend.
    assert!(
        bucket_keys(&e.moto).is_empty(),
        "frontend synced despite failed smoke tests"
    );
    insta::with_settings!({ filters => common::SNAPSHOT_FILTERS.iter().copied() }, {
        insta::assert_snapshot!(res.snapshot());
    });
}

#[test]
fn wrong_json_on_products_is_rolled_back() {
    let e = env();
    e.app.set_mode(Mode::WrongJson);
    let res = run(&e, "0");
    assert_eq!(res.output("status"), "rolled-back", "{}", res.dump());
    assert_eq!(e.sim.service_task_definition(), REV2);
    let report: serde_json::Value = serde_json::from_str(res.output("smoke-report")).unwrap();
    let failed: Vec<&str> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["passed"] == false)
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(failed, vec!["products"], "{report}");
}

#[test]
fn missing_cors_headers_are_caught_and_rolled_back() {
    let e = env();
    e.app.set_mode(Mode::NoCors);
    let res = run(&e, "0");
    assert_eq!(res.output("status"), "rolled-back", "{}", res.dump());
    // The annotation names the check and what was missing; the summary's row says what was expected.
    let base = e.app.base_url();
    let error = format!(
        "::error title=cloudshop-deploy::failed to verify `{base}/`: 1 of 3 smoke checks failed: cors got 200, no Access-Control-Allow-Origin ("
    );
    let errors = res.error_lines();
    assert!(
        errors.len() == 1 && errors[0].starts_with(&error) && errors[0].ends_with(" attempts)"),
        "{error}\n{}",
        res.dump()
    );
    let row = format!(
        "| ❌ | cors | `OPTIONS {base}/products` | 2xx + Access-Control-Allow-Origin \\`{base}\\` or \\`\\*\\` | 200, no Access-Control-Allow-Origin | "
    );
    assert!(
        res.summary.lines().any(|l| l.starts_with(&row)),
        "{row}\n{}",
        res.summary
    );
    assert_eq!(e.sim.service_task_definition(), REV2);
}

#[test]
fn a_sustained_failure_during_the_watch_rolls_back() {
    let e = env();
    // Passes the smoke tests (3 requests with CORS), then fails for good while watched.
    e.app.set_mode(Mode::FailAfter(6));
    let res = run(&e, "3s");
    assert_ne!(res.code, 0, "{}", res.dump());
    assert_eq!(res.output("status"), "rolled-back", "{}", res.dump());
    assert_eq!(e.sim.count("UpdateService"), 2, "{:?}", e.sim.calls());
    assert_eq!(e.sim.service_task_definition(), REV2);
    let report: serde_json::Value = serde_json::from_str(res.output("smoke-report")).unwrap();
    assert_eq!(report["watch"]["passed"], false, "{report}");
}

#[test]
fn a_clean_watch_keeps_the_new_version() {
    let e = env();
    let res = run(&e, "500ms");
    assert_eq!(res.code, 0, "{}", res.dump());
    assert_eq!(res.output("status"), "deployed");
    assert_eq!(e.sim.service_task_definition(), REV3);
    let report: serde_json::Value = serde_json::from_str(res.output("smoke-report")).unwrap();
    assert_eq!(report["watch"]["passed"], true, "{report}");
    assert!(report["watch"]["rounds"].as_u64().unwrap() >= 2, "{report}");
}

#[test]
fn dry_run_plans_backend_and_frontend_and_changes_nothing() {
    let e = env();
    let res = Action::new()
        .with_moto(&e.moto)
        .env("AWS_ENDPOINT_URL_ECS", &e.sim.endpoint)
        .file(".github/cloudshop-deploy.yml", &config(&e, "0"))
        .file("build/index.html", "<!doctype html>")
        .input("environment", "stage")
        .input("dry-run", "true")
        .run_within(Duration::from_secs(120));
    assert_eq!(res.code, 0, "{}", res.dump());
    assert_eq!(res.output("status"), "planned");
    assert!(
        e.sim.mutating_calls().is_empty(),
        "{:?}",
        e.sim.mutating_calls()
    );
    assert!(bucket_keys(&e.moto).is_empty());
    assert_eq!(e.app.requests(), 0, "a dry run must not smoke-test");
    assert!(
        res.summary.contains("index.html"),
        "the plan lists the upload\n{}",
        res.summary
    );
    insta::with_settings!({ filters => common::SNAPSHOT_FILTERS.iter().copied() }, {
        insta::assert_snapshot!(res.snapshot());
    });
}

#[test]
fn a_frontend_problem_found_in_preflight_stops_before_the_backend_changes() {
    let e = env();
    // The bucket does not exist: found while planning, before any ECS change.
    let cfg = config(&e, "0").replace(
        &format!("bucket: {}", e.moto.name("stage-frontend")),
        "bucket: no-such-bucket",
    );
    let res = Action::new()
        .with_moto(&e.moto)
        .env("AWS_ENDPOINT_URL_ECS", &e.sim.endpoint)
        .file(".github/cloudshop-deploy.yml", &cfg)
        .file("build/index.html", "<!doctype html>")
        .input("environment", "stage")
        .run_within(Duration::from_secs(120));
    assert_ne!(res.code, 0, "{}", res.dump());
    assert_eq!(res.output("status"), "failed");
    assert!(
        res.error_lines()[0].contains("no-such-bucket"),
        "{}",
        res.dump()
    );
    assert!(
        e.sim.mutating_calls().is_empty(),
        "{:?}",
        e.sim.mutating_calls()
    );
}

/// Every AWS operation the binary really calls, recorded on the wire, is granted by the documented
/// policy of that command: a deploy (image, task definition, service, rollout, smoke, frontend) by
/// `deploy-stage.json`, then `command: rollback` by `rollback-stage.json`.
#[test]
fn every_call_a_command_makes_is_in_its_documented_policy() {
    use common::faults::{FaultPlan, FaultProxy};
    let e = env();
    // One command through fresh recording proxies: its result and the IAM actions it needed.
    let recorded = |command: &str| {
        let aws = FaultProxy::start(&e.moto.endpoint, FaultPlan::none());
        let ecs = FaultProxy::start(&e.sim.endpoint, FaultPlan::none());
        let res = Action::new()
            .with_moto(&e.moto)
            .env("AWS_ENDPOINT_URL", &aws.endpoint)
            .env("AWS_ENDPOINT_URL_ECS", &ecs.endpoint)
            .file(".github/cloudshop-deploy.yml", &config(&e, "0s"))
            .file(
                "build/index.html",
                "<!doctype html><script src=\"/static/js/main.3f2a1b.js\"></script>",
            )
            .file("build/static/js/main.3f2a1b.js", "console.log('cloudshop')")
            .input("environment", "stage")
            .input("command", command)
            .input("poll-interval", "30ms")
            .input("wait-timeout", "30s")
            .run_within(Duration::from_secs(120));
        let actions: std::collections::BTreeSet<String> = aws
            .ops()
            .into_iter()
            .chain(ecs.ops())
            .filter_map(|op| common::faults::iam_action(&op))
            .collect();
        (res, actions)
    };

    let (res, deploy) = recorded("deploy");
    assert_eq!(res.output("status"), "deployed", "{}", res.dump());
    assert!(
        deploy.contains("ecs:UpdateService") && deploy.contains("s3:PutObject"),
        "the recording saw the deploy: {deploy:?}"
    );
    let granted = common::policy_actions("deploy-stage.json");
    let missing: Vec<&String> = deploy.difference(&granted).collect();
    assert!(
        missing.is_empty(),
        "a deploy calls what deploy-stage.json does not grant: {missing:?}"
    );

    let (res, rollback) = recorded("rollback");
    assert_eq!(res.output("status"), "rolled-back", "{}", res.dump());
    assert!(rollback.contains("ecs:UpdateService"), "{rollback:?}");
    let granted = common::policy_actions("rollback-stage.json");
    let missing: Vec<&String> = rollback.difference(&granted).collect();
    assert!(
        missing.is_empty(),
        "a rollback calls what rollback-stage.json does not grant: {missing:?}"
    );
}
