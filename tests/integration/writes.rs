//! Write sequences (`smoke.sequences`): the CloudShop product sequence (create, read back, list, delete,
//! confirm gone) against the miniature CloudShop API, which persists products. First through the smoke
//! step on a paused clock (config compiled from YAML as the binary does), then through the real binary:
//! a failed write rolls the deploy back, and the cleanup step still deletes what was created.

use harness as common;

use std::time::Duration;

use cloudshop_deploy::config::{self, Smoke};
use cloudshop_deploy::github::Context;
use cloudshop_deploy::inputs::Inputs;
use cloudshop_deploy::report::{Report, Section};
use cloudshop_deploy::steps::smoke::{self, Error, SmokeReport, SmokeStatus, StepOutcome};
use common::app::{App, Mode};
use common::ecs_sim::{EcsSim, Scenario};
use common::seed::{create_bucket, seed_ecr};
use common::{Action, Moto, RunResult};

/// The README's CloudShop sequence, indented to sit under `smoke:`.
const CRUD: &str = r#"
      sequences:
        - name: product-crud
          steps:
            - name: create
              method: POST
              path: /products
              body:
                name: "smoke-{unique}"
                description: "created by deploy run {run_id}"
                price: 1.0
                stock: 1
              status: 201
              capture: { id: $.id }
            - name: read back
              path: /products/{id}
              body-contains: "smoke-{unique}"
            - name: listed
              path: /products
              json: { array: true, contains-names: ["smoke-{unique}"] }
            - name: delete
              method: DELETE
              path: /products/{id}
              status: [200, 204]
              cleanup: true
            - name: gone
              path: /products/{id}
              status: 404
"#;

/// The environments file: environment `env` at `api`, `smoke_extra` lines under `smoke:`, then the
/// sequence.
fn file(env: &str, api: &str, smoke_extra: &str) -> String {
    format!(
        r#"
region: us-east-1
environments:
  {env}:
    cluster: stage-cluster
    service: stage-backend-blue
    container: backend
    ecr-repository: stage-cloudshop-backend
    api-url: {api}
    smoke:
      cors: false
      request-timeout: 2s
{smoke_extra}{CRUD}"#
    )
}

/// The smoke config the binary would compile for `env`.
fn compiled(env: &str, api: &str, smoke_extra: &str) -> Smoke {
    let parsed = config::parse_file("test.yml", &file(env, api, smoke_extra)).unwrap();
    let inputs = Inputs::from_env([("INPUT_ENVIRONMENT", env)]).unwrap();
    let ctx = Context {
        run_id: Some("4242".into()),
        sha: Some(SHA.into()),
        workspace: std::path::PathBuf::from("/github/workspace"),
        ..Default::default()
    };
    config::build(&inputs, &parsed, &ctx).unwrap().smoke
}

async fn run(cfg: &Smoke, report: &mut Report) -> Result<(), Error> {
    let Report { smoke, phases, .. } = report;
    smoke::run(cfg, smoke.get_or_insert_with(SmokeReport::default), phases).await
}

fn summary(report: &Report) -> String {
    let mut md = String::new();
    report.smoke.as_ref().unwrap().summary(&mut md);
    md
}

fn outcomes(report: &Report) -> Vec<StepOutcome> {
    report.smoke.as_ref().unwrap().sequences[0]
        .steps
        .iter()
        .map(|s| s.outcome)
        .collect()
}

/// Filters for the run-specific parts of a summary: the port and the random part of `{unique}`.
const FILTERS: &[(&str, &str)] = &[
    (r"127\.0\.0\.1:\d+", "127.0.0.1:[port]"),
    (r"smoke-4242-1-[0-9a-f]{8}", "smoke-[unique]"),
    (r"\b\d+ ms\b", "[duration]"),
];

#[tokio::test(start_paused = true)]
async fn the_cloudshop_sequence_passes_and_leaves_nothing_behind() {
    let app = App::start_local().await;
    let cfg = compiled("stage", &app.base_url(), "");
    assert!(cfg.writes.enabled, "stage writes by default");
    let mut report = Report::default();
    run(&cfg, &mut report).await.unwrap();

    let s = report.smoke.as_ref().unwrap();
    assert_eq!(s.status, SmokeStatus::Passed);
    let seq = &s.sequences[0];
    assert!(seq.passed, "{seq:#?}");
    assert_eq!(outcomes(&report), vec![StepOutcome::Passed; 5]);
    assert_eq!(seq.steps[0].captured, vec!["id"]);
    assert_eq!(seq.steps[0].status, Some(201));
    assert_eq!((seq.cleanup_steps, seq.cleanup_ran), (1, 1));
    // What the app saw: one POST with a unique name, then the id in the later paths.
    let seen = app.seen();
    let writes: Vec<String> = seen
        .iter()
        .filter(|r| r.method != "GET")
        .map(|r| format!("{} {}", r.method, r.uri))
        .collect();
    assert_eq!(writes, vec!["POST /products", "DELETE /products/4"]);
    let post = seen.iter().find(|r| r.method == "POST").unwrap();
    assert_eq!(post.header("content-type"), Some("application/json"));
    assert!(app.products().is_empty(), "the product was left behind");
    assert_eq!(app.requests_to("/products/4"), 3, "read back, delete, gone");
    assert_eq!(
        report.phases.phases().last().unwrap().name,
        "write sequences"
    );
    let mut out = Vec::new();
    report.smoke.as_ref().unwrap().outputs(&mut out);
    let v: serde_json::Value = serde_json::from_str(&out[1].1).unwrap();
    assert_eq!(v["sequences"][0]["passed"], true, "{v}");
    assert_eq!(v["sequences"][0]["cleanup_ran"], 1, "{v}");
    let md = summary(&report);
    assert!(
        !md.contains("/products/4"),
        "a captured value was printed:\n{md}"
    );
    insta::with_settings!({ filters => FILTERS.iter().copied() }, {
        insta::assert_snapshot!(md);
    });
}

#[tokio::test(start_paused = true)]
async fn a_failed_create_is_sent_once_and_fails_the_smoke_tests() {
    let app = App::start_local().await;
    app.set_mode(Mode::FailWrites);
    let cfg = compiled("stage", &app.base_url(), "");
    let mut report = Report::default();
    let err = run(&cfg, &mut report).await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("sequence `product-crud` failed at step `create`: got 500: Internal Server Error; cleanup: ran 0 of 1 step"),
        "{text}"
    );
    assert!(matches!(err, Error::Sequence { .. }));
    use StepOutcome::*;
    assert_eq!(
        outcomes(&report),
        vec![Failed, NotRun, NotRun, NotRun, NotRun]
    );
    let seq = &report.smoke.as_ref().unwrap().sequences[0];
    assert_eq!(seq.steps[3].got, "not run: `{id}` was never captured");
    assert_eq!(seq.steps[0].attempts, 1);
    assert_eq!(report.smoke.as_ref().unwrap().status, SmokeStatus::Failed);
    let posts = app.seen().iter().filter(|r| r.method == "POST").count();
    assert_eq!(posts, 1, "a write answered 500 must not be sent again");
    assert!(app.products().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_later_failure_still_runs_the_cleanup() {
    let app = App::start_local().await;
    app.set_mode(Mode::StaleList);
    let cfg = compiled("stage", &app.base_url(), "");
    let mut report = Report::default();
    let err = run(&cfg, &mut report).await.unwrap_err().to_string();
    assert!(err.contains("failed at step `listed`"), "{err}");
    assert!(err.ends_with("cleanup: ran 1 of 1 step"), "{err}");
    use StepOutcome::*;
    assert_eq!(
        outcomes(&report),
        vec![Passed, Passed, Failed, Passed, NotRun]
    );
    assert!(
        app.products().is_empty(),
        "cleanup did not delete the product"
    );
    let md = summary(&report);
    insta::with_settings!({ filters => FILTERS.iter().copied() }, {
        insta::assert_snapshot!(md);
    });
}

/// Every step passes but the cleanup's DELETE answers 500: the sequence and the smoke tests fail, and
/// the error and the summary say the cleanup failed and name what was left (the created product's
/// request and this run's `{unique}`, which its name carries), never the step's body or headers.
#[tokio::test(start_paused = true)]
async fn a_failed_cleanup_fails_the_sequence_and_names_what_was_left() {
    let app = App::start_local().await;
    app.set_mode(Mode::FailDeletes);
    let cfg = compiled("stage", &app.base_url(), "");
    let mut report = Report::default();
    let err = run(&cfg, &mut report).await.unwrap_err().to_string();
    let left = app.products();
    assert_eq!(left.len(), 1, "{left:?}");
    let id = left[0].id;
    let unique = left[0].name().trim_start_matches("smoke-").to_string();
    assert!(err.contains("failed at step `delete`"), "{err}");
    assert!(
        err.contains(&format!(
            "cleanup: ran 1 of 1 step, and it FAILED: left behind: DELETE /products/{id}"
        )) && err.contains(&unique),
        "{err}"
    );
    use StepOutcome::*;
    assert_eq!(
        outcomes(&report),
        vec![Passed, Passed, Passed, Failed, NotRun]
    );
    let s = report.smoke.as_ref().unwrap();
    assert_eq!(s.status, SmokeStatus::Failed);
    assert_eq!(
        s.sequences[0].left_behind,
        [format!("DELETE /products/{id}")]
    );
    let md = summary(&report);
    assert!(
        md.contains(&format!(
            "⚠️ **Cleanup failed**: left behind: `DELETE /products/{id}` (this run's `{{unique}}` is `{unique}`)"
        )),
        "{md}"
    );
}

#[tokio::test(start_paused = true)]
async fn production_and_write_false_skip_the_sequences_with_a_line() {
    let app = App::start_local().await;
    for (env, extra, why) in [
        (
            "prod",
            "",
            "`prod` is a production environment (set `smoke.write: true` to run them there)",
        ),
        ("stage", "      write: false\n", "`smoke.write` is false"),
    ] {
        let cfg = compiled(env, &app.base_url(), extra);
        let mut report = Report::default();
        run(&cfg, &mut report).await.unwrap();
        let s = report.smoke.as_ref().unwrap();
        assert_eq!(s.status, SmokeStatus::Passed);
        assert!(s.sequences.is_empty());
        assert_eq!(s.sequences_skipped.as_deref(), Some(why));
        let md = summary(&report);
        let line = format!(
            "Write sequences skipped: {}.",
            cloudshop_deploy::report::md_escape(why)
        );
        assert!(md.contains(&line), "{md}");
    }
    // `write: true` runs them in production too.
    let cfg = compiled("prod", &app.base_url(), "      write: true\n");
    let mut report = Report::default();
    run(&cfg, &mut report).await.unwrap();
    assert!(report.smoke.as_ref().unwrap().sequences[0].passed);
    let posts = app.seen().iter().filter(|r| r.method == "POST").count();
    assert_eq!(posts, 1, "only the `write: true` run wrote");
}

#[tokio::test(start_paused = true)]
async fn failed_checks_leave_the_sequences_unrun() {
    let app = App::start_local().await;
    app.set_mode(Mode::Status(503));
    let mut cfg = compiled("stage", &app.base_url(), "      timeout: 2s\n");
    cfg.retry_interval = Duration::from_millis(500);
    let mut report = Report::default();
    let err = run(&cfg, &mut report).await.unwrap_err();
    assert!(matches!(err, Error::Checks { .. }), "{err}");
    let s = report.smoke.as_ref().unwrap();
    assert_eq!(s.sequences_skipped.as_deref(), Some("the checks failed"));
    assert!(app.seen().iter().all(|r| r.method == "GET"));
}

/// A connection that cannot be made is the one thing a write step retries (nothing was sent); a write
/// that got no answer in time is never sent again.
#[tokio::test(start_paused = true)]
async fn only_a_refused_connection_is_retried() {
    // A port nothing listens on.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut cfg = compiled("stage", &format!("http://127.0.0.1:{closed}"), "");
    cfg.checks.clear();
    let mut report = Report::default();
    run(&cfg, &mut report).await.unwrap_err();
    let step = &report.smoke.as_ref().unwrap().sequences[0].steps[0];
    assert_eq!(step.attempts, smoke::CONNECT_ATTEMPTS);
    assert!(step.got.starts_with("could not connect"), "{}", step.got);

    let app = App::start_local().await;
    app.set_mode(Mode::Hang);
    let mut cfg = compiled("stage", &app.base_url(), "");
    cfg.checks.clear();
    let mut report = Report::default();
    run(&cfg, &mut report).await.unwrap_err();
    let step = &report.smoke.as_ref().unwrap().sequences[0].steps[0];
    assert_eq!(step.attempts, 1);
    assert_eq!(step.got, "no answer within 2s");
    assert_eq!(app.seen().len(), 1, "the POST was sent again");
}

// ------------------------------------------------------------ through the real binary

const REV2: &str = "arn:aws:ecs:us-east-1:123456789012:task-definition/cloudshop-backend:2";
const REV3: &str = "arn:aws:ecs:us-east-1:123456789012:task-definition/cloudshop-backend:3";
const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

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

fn deploy(e: &Env) -> RunResult {
    action(e).run_within(Duration::from_secs(120))
}

/// The deploy of `deploy`, not yet run.
fn action(e: &Env) -> Action {
    let cfg = file(
        "stage",
        &e.app.base_url(),
        "      timeout: 2s\n      retry-interval: 50ms\n",
    )
    .replace(
        "stage-cloudshop-backend",
        &e.moto.name("stage-cloudshop-backend"),
    )
    .replace("stage-backend-blue", "stage-backend");
    Action::new()
        .with_moto(&e.moto)
        .env("AWS_ENDPOINT_URL_ECS", &e.sim.endpoint)
        .env("GITHUB_RUN_ID", "4242")
        .file(".github/cloudshop-deploy.yml", &cfg)
        .input("environment", "stage")
        .input("poll-interval", "30ms")
        .input("wait-timeout", "30s")
}

#[test]
fn a_deploy_whose_writes_work_is_kept_and_leaves_no_product() {
    let e = env();
    let res = deploy(&e);
    assert_eq!(res.code, 0, "{}", res.dump());
    assert_eq!(res.output("status"), "deployed");
    assert_eq!(e.sim.service_task_definition(), REV3);
    let report: serde_json::Value = serde_json::from_str(res.output("smoke-report")).unwrap();
    assert_eq!(report["sequences"][0]["passed"], true, "{report}");
    assert!(e.app.products().is_empty());
    assert!(
        res.summary
            .contains("Write sequence `product-crud`: passed"),
        "{}",
        res.summary
    );
}

#[test]
fn a_deploy_whose_writes_fail_is_rolled_back() {
    let e = env();
    e.app.set_mode(Mode::FailWrites);
    let res = deploy(&e);
    assert_ne!(res.code, 0, "{}", res.dump());
    assert_eq!(res.output("status"), "rolled-back", "{}", res.dump());
    assert_eq!(res.output("smoke-status"), "failed");
    assert_eq!(e.sim.service_task_definition(), REV2);
    assert_eq!(res.error_lines().len(), 1, "{}", res.dump());
    assert!(
        res.error_lines()[0].contains("sequence `product-crud` failed at step `create`"),
        "{}",
        res.dump()
    );
    assert!(e.app.products().is_empty());
    insta::with_settings!({ filters => common::SNAPSHOT_FILTERS.iter().copied() }, {
        insta::assert_snapshot!(res.snapshot());
    });
}

#[test]
fn a_deploy_whose_write_does_not_show_up_is_rolled_back_after_cleanup() {
    let e = env();
    e.app.set_mode(Mode::StaleList);
    let res = deploy(&e);
    assert_eq!(res.output("status"), "rolled-back", "{}", res.dump());
    assert_eq!(e.sim.service_task_definition(), REV2);
    let report: serde_json::Value = serde_json::from_str(res.output("smoke-report")).unwrap();
    assert_eq!(report["sequences"][0]["failed_step"], "listed", "{report}");
    assert_eq!(report["sequences"][0]["cleanup_ran"], 1, "{report}");
    assert!(
        e.app.products().is_empty(),
        "the created product was left behind"
    );
    assert!(
        e.app.seen().iter().any(|r| r.method == "DELETE"),
        "no cleanup request"
    );
    assert!(
        res.summary.contains("cleanup ran (1 of 1)"),
        "{}",
        res.summary
    );
}

/// Through the binary: the cleanup's DELETE fails after every other step passed; the deploy is rolled
/// back, the one error line and the summary name the product left behind.
#[test]
fn a_deploy_whose_cleanup_fails_is_rolled_back_and_names_what_was_left() {
    let e = env();
    e.app.set_mode(Mode::FailDeletes);
    let res = deploy(&e);
    assert_eq!(res.output("status"), "rolled-back", "{}", res.dump());
    assert_eq!(res.output("smoke-status"), "failed");
    assert_eq!(e.sim.service_task_definition(), REV2);
    let left = e.app.products();
    assert_eq!(left.len(), 1, "{left:?}");
    let request = format!("DELETE /products/{}", left[0].id);
    assert_eq!(res.error_lines().len(), 1, "{}", res.dump());
    assert!(
        res.error_lines()[0].contains(&format!("FAILED: left behind: {request}")),
        "{}",
        res.dump()
    );
    assert!(
        res.summary
            .contains(&format!("**Cleanup failed**: left behind: `{request}`")),
        "{}",
        res.summary
    );
    let report: serde_json::Value = serde_json::from_str(res.output("smoke-report")).unwrap();
    assert_eq!(
        report["sequences"][0]["left_behind"][0], request,
        "{report}"
    );
}

/// A dry run lists the write sequences a deploy would run, with their step counts and whether
/// `smoke.write` lets them run here, and sends none of them.
#[test]
fn a_dry_run_lists_the_write_sequences_it_would_run() {
    let e = env();
    let res = action(&e)
        .input("dry-run", "true")
        .run_within(Duration::from_secs(120));
    assert_eq!(res.code, 0, "{}", res.dump());
    assert_eq!(res.output("status"), "planned", "{}", res.dump());
    assert!(
        res.summary.contains(
            "Write sequences (dry run: none sent; `smoke.write` is on here: a deploy would run them \
             after the checks):\n\n- `product-crud`: 5 steps, 1 cleanup\n"
        ),
        "{}",
        res.summary
    );
    let report: serde_json::Value = serde_json::from_str(res.output("smoke-report")).unwrap();
    let plan = &report["planned_sequences"];
    assert_eq!(plan["write"], true, "{report}");
    assert_eq!(plan["sequences"][0]["name"], "product-crud", "{report}");
    assert_eq!(plan["sequences"][0]["steps"], 5, "{report}");
    assert_eq!(e.app.requests(), 0, "a dry run sent a request");
}

/// In production (`smoke.write` off by default) the plan says a deploy would skip them, and why.
#[test]
fn a_dry_runs_plan_says_when_writes_are_off() {
    let cfg = compiled("production", "http://127.0.0.1:9", "");
    let s = smoke::dry_run(&cfg);
    let mut md = String::new();
    s.summary(&mut md);
    assert!(
        md.contains("Write sequences (dry run: none sent; a deploy would skip them: ")
            && md.contains("is a production environment")
            && md.contains("- `product-crud`: 5 steps, 1 cleanup"),
        "{md}"
    );
    assert!(!s.planned_writes.as_ref().unwrap().write);
}
