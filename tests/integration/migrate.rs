//! The migration gate through the real binary: moto (ECR, STS, the task's CloudWatch log lines) and the
//! ECS simulator's one-off tasks (`RunTask`, `DescribeTasks`, `StopTask` with scripted exits).

use std::time::Duration;

use harness as common;

use common::ecs_sim::{one_off_task_id, EcsSim, OneOff, Scenario, Seed};
use common::{Action, Moto, RunResult};

const REPO: &str = "stage-cloudshop-backend";
const SHA: &str = "0123456789abcdef0123456789abcdef01234567";
const REV2: &str = "arn:aws:ecs:us-east-1:123456789012:task-definition/cloudshop-backend:2";
const REV3: &str = "arn:aws:ecs:us-east-1:123456789012:task-definition/cloudshop-backend:3";

const CONFIG: &str = r#"
region: us-east-1
environments:
  stage:
    cluster: stage-cluster
    service: stage-backend
    container: backend
    ecr-repository: stage-cloudshop-backend
    migrate:
MIGRATE
"#;

/// The default migration block.
const MIGRATE: &str = "      command: [alembic, upgrade, head]\n      timeout: 20s";

struct World {
    moto: Moto,
    sim: EcsSim,
    digest: String,
    group: String,
}

/// ECR with the image, a simulator whose task definition logs to `group` (stream prefix `ecs`).
fn world(seed: Seed, one_off: OneOff) -> World {
    let moto = Moto::shared();
    let digest = common::seed::seed_ecr(&moto, &moto.name(REPO), &[SHA], false);
    let group = format!("/ecs/{}", moto.name("stage-backend"));
    let sim = EcsSim::start_with(
        Seed {
            log_group: Some(group.clone()),
            ..seed
        },
        Scenario::Succeed { after: 2 },
    );
    sim.set_one_off(one_off);
    World {
        moto,
        sim,
        digest,
        group,
    }
}

impl World {
    /// The migration task's log lines, written before the run under the stream its first task gets.
    fn logs(&self, lines: &[&str]) {
        let stream = format!("ecs/backend/{}", one_off_task_id(1));
        common::seed::rt().block_on(self.moto.put_log_lines(&self.group, &stream, lines));
    }

    fn action(&self, migrate: &str) -> Action {
        Action::new()
            .with_moto(&self.moto)
            .env("AWS_ENDPOINT_URL_ECS", &self.sim.endpoint)
            .file(
                ".github/cloudshop-deploy.yml",
                &CONFIG
                    .replace(REPO, &self.moto.name(REPO))
                    .replace("MIGRATE", migrate),
            )
            .input("environment", "stage")
            .input("image-tag", SHA)
            .input("poll-interval", "30ms")
            .input("wait-timeout", "30s")
    }
}

fn run(a: Action) -> RunResult {
    a.run_within(Duration::from_secs(120))
}

fn position(calls: &[String], op: &str) -> Option<usize> {
    calls.iter().position(|c| c == op)
}

/// A failed migration: one `::error::`, no service update, the service on the old revision.
fn assert_stopped_before_the_update(res: &RunResult, sim: &EcsSim) {
    assert_ne!(res.code, 0, "{}", res.dump());
    assert_eq!(res.output("status"), "failed", "{}", res.dump());
    assert_eq!(sim.count("UpdateService"), 0, "{:?}", sim.calls());
    assert_eq!(sim.service_task_definition(), REV2);
    assert_eq!(res.error_lines().len(), 1, "{}", res.dump());
}

#[test]
fn a_migration_that_exits_0_runs_before_the_service_update_with_the_deployed_image() {
    let w = world(Seed::default(), OneOff::Exits { code: 0, polls: 2 });
    w.logs(&[
        "INFO  [alembic.runtime.migration] Context impl PostgresqlImpl.",
        "INFO  [alembic.runtime.migration] Running upgrade 3a1f -> 9c2e, add products.discount",
        "connected with password s3cr3t-db-pass",
    ]);
    let res = run(w.action(MIGRATE));
    assert_eq!(res.code, 0, "{}", res.dump());
    assert_eq!(res.output("status"), "deployed");
    let calls = w.sim.calls();
    let (reg, run_task, update) = (
        position(&calls, "RegisterTaskDefinition").expect("registered"),
        position(&calls, "RunTask").expect("the migration ran"),
        position(&calls, "UpdateService").expect("the service was updated"),
    );
    assert!(reg < run_task && run_task < update, "{calls:?}");
    // The task ended before the update: the last poll of it saw it stopped.
    let last_describe = calls[..update]
        .iter()
        .rposition(|c| c == "DescribeTasks")
        .expect("polled");
    assert!(last_describe > run_task, "{calls:?}");
    let body = &w.sim.bodies("RunTask")[0];
    assert_eq!(body["taskDefinition"], REV3);
    assert_eq!(body["cluster"], "stage-cluster");
    assert_eq!(body["count"], 1);
    assert_eq!(body["startedBy"], "cloudshop-deploy");
    assert_eq!(body["launchType"], "FARGATE");
    let o = &body["overrides"]["containerOverrides"][0];
    assert_eq!(o["name"], "backend");
    assert_eq!(
        o["command"],
        serde_json::json!(["alembic", "upgrade", "head"])
    );
    let vpc = &body["networkConfiguration"]["awsvpcConfiguration"];
    assert_eq!(
        vpc["subnets"],
        serde_json::json!(["subnet-0a1", "subnet-0b2"])
    );
    assert_eq!(vpc["securityGroups"], serde_json::json!(["sg-0c3"]));
    assert_eq!(vpc["assignPublicIp"], "DISABLED");
    let tags = body["tags"].as_array().expect("tags");
    assert!(
        tags.iter()
            .any(|t| t["key"] == "cloudshop-deploy:sha" && t["value"] == SHA),
        "{tags:?}"
    );
    assert!(
        tags.iter().any(|t| t["key"] == "cloudshop-deploy:run"),
        "{tags:?}"
    );
    // The revision it ran is the one deployed, with the image by digest.
    let td = w.sim.task_definition(REV3).unwrap();
    let uri = format!(
        "123456789012.dkr.ecr.us-east-1.amazonaws.com/{}@{}",
        w.moto.name(REPO),
        w.digest
    );
    assert_eq!(td["containerDefinitions"][0]["image"], uri.as_str());
    assert_eq!(res.output("migration-exit-code"), "0");
    assert!(
        res.output("migration-task-arn")
            .ends_with(&format!("/stage-cluster/{}", one_off_task_id(1))),
        "{}",
        res.dump()
    );
    // The lines, streamed into the log and in the summary, masked.
    assert!(
        res.stderr.contains("Running upgrade 3a1f -> 9c2e"),
        "{}",
        res.dump()
    );
    assert!(res.summary.contains("### Migration"), "{}", res.summary);
    assert!(
        res.summary
            .contains("Running upgrade 3a1f -> 9c2e, add products.discount"),
        "{}",
        res.summary
    );
    assert!(
        res.summary
            .contains("<details><summary>Last log lines (3 of 3)"),
        "{}",
        res.summary
    );
    assert!(
        !res.everything().contains("s3cr3t-db-pass"),
        "{}",
        res.dump()
    );
    assert!(res.summary.contains("| exit code | 0 |"), "{}", res.summary);
    // The ECS calls are those the documented policies grant.
    let called: std::collections::BTreeSet<String> =
        calls.iter().map(|c| format!("ecs:{c}")).collect();
    for policy in ["deploy-stage.json", "promote-prod.json"] {
        let granted = common::policy_actions(policy);
        let missing: Vec<&String> = called.difference(&granted).collect();
        assert!(missing.is_empty(), "{policy} does not grant {missing:?}");
    }
}

#[test]
fn a_migration_that_exits_1_stops_the_deploy_with_its_last_lines() {
    let w = world(Seed::default(), OneOff::Exits { code: 1, polls: 1 });
    w.logs(&[
        "INFO  [alembic.runtime.migration] Running upgrade 3a1f -> 9c2e, add products",
        "sqlalchemy.exc.ProgrammingError: (psycopg2.errors.DuplicateTable) relation \"products\" already exists",
    ]);
    let res = run(w.action(MIGRATE));
    assert_stopped_before_the_update(&res, &w.sim);
    let error = res.error_lines()[0];
    assert!(error.contains("migration task"), "{error}");
    assert!(error.contains("exited with code 1"), "{error}");
    assert!(error.contains("sqlalchemy.exc.ProgrammingError"), "{error}");
    assert!(
        res.stdout.contains("hint: the migration conflicts"),
        "{}",
        res.dump()
    );
    assert_eq!(res.output("migration-exit-code"), "1");
    assert!(res.summary.contains("| exit code | 1 |"), "{}", res.summary);
    assert!(res.summary.contains("DuplicateTable"), "{}", res.summary);
    assert_eq!(w.sim.count("StopTask"), 0);
}

#[test]
fn a_migration_that_never_stops_is_stopped_at_the_timeout() {
    let w = world(Seed::default(), OneOff::NeverStops);
    let res = run(w.action("      command: [alembic, upgrade, head]\n      timeout: 1s"));
    assert_stopped_before_the_update(&res, &w.sim);
    assert_eq!(w.sim.count("StopTask"), 1, "{:?}", w.sim.calls());
    let stop = &w.sim.bodies("StopTask")[0];
    assert_eq!(stop["task"], res.output("migration-task-arn"));
    assert!(
        stop["reason"]
            .as_str()
            .unwrap_or("")
            .contains("migrate.timeout"),
        "{stop}"
    );
    assert!(
        res.error_lines()[0].contains("did not stop within 1s"),
        "{}",
        res.dump()
    );
    assert!(
        res.summary.contains("stopped by this run"),
        "{}",
        res.summary
    );
}

#[test]
fn a_migration_whose_image_cannot_be_pulled_stops_the_deploy() {
    let reason = "CannotPullContainerError: pull image manifest has been retried 5 time(s)";
    let w = world(
        Seed::default(),
        OneOff::FailsToStart {
            reason: reason.into(),
        },
    );
    let res = run(w.action(MIGRATE));
    assert_stopped_before_the_update(&res, &w.sim);
    assert!(
        res.error_lines()[0].contains("CannotPullContainerError"),
        "{}",
        res.dump()
    );
    assert!(
        !res.outputs.contains_key("migration-exit-code"),
        "{}",
        res.dump()
    );
}

#[test]
fn a_cancel_during_the_migration_stops_its_task() {
    let w = world(Seed::default(), OneOff::NeverStops);
    let action = w.action("      command: [alembic, upgrade, head]\n      timeout: 10m");
    let res = action.start().sigterm_when("the migration started", || {
        w.sim.count("DescribeTasks") >= 2
    });
    assert_eq!(res.output("status"), "cancelled", "{}", res.dump());
    assert_eq!(w.sim.count("StopTask"), 1, "{:?}", w.sim.calls());
    assert_eq!(w.sim.count("UpdateService"), 0);
    assert_eq!(
        w.sim.bodies("StopTask")[0]["task"],
        res.output("migration-task-arn")
    );
    assert!(
        res.summary
            .contains("stopped (`StopTask`: the run was cancelled by \\`SIGTERM\\`)"),
        "{}",
        res.summary
    );
    assert!(
        res.summary.contains("| outcome | cancelled |"),
        "{}",
        res.summary
    );
}

#[test]
fn a_dry_run_shows_the_migration_task_and_changes_nothing() {
    let w = world(Seed::default(), OneOff::Exits { code: 0, polls: 1 });
    let res = run(w.action(MIGRATE).input("dry-run", "true"));
    assert_eq!(res.code, 0, "{}", res.dump());
    assert_eq!(res.output("status"), "planned");
    assert!(w.sim.mutating_calls().is_empty(), "{:?}", w.sim.calls());
    assert!(
        res.stderr.contains(
            "plan: run migration `alembic upgrade head` in container `backend` on cluster `stage-cluster`"
        ),
        "{}",
        res.dump()
    );
    assert!(
        res.stderr.contains("subnets subnet-0a1 subnet-0b2"),
        "{}",
        res.dump()
    );
    assert!(
        res.summary.contains("| outcome | planned |"),
        "{}",
        res.summary
    );
}

/// Bad input: one `::error::` naming the key, and no task started (nothing changed at all).
#[test]
fn bad_migration_input_names_the_key_and_starts_no_task() {
    let cases = [
        ("      command: []", "`migrate.command`"),
        (
            "      command: [alembic, upgrade, head]\n      timeout: 7h",
            "`migrate.timeout`",
        ),
        (
            "      command: [alembic, upgrade, head]\n      container: worker",
            "`migrate.container`",
        ),
    ];
    let w = world(Seed::default(), OneOff::Exits { code: 0, polls: 1 });
    for (migrate, key) in cases {
        let res = run(w.action(migrate));
        assert_ne!(res.code, 0, "{}", res.dump());
        let errors = res.error_lines();
        assert_eq!(errors.len(), 1, "{}", res.dump());
        assert!(errors[0].contains(key), "{migrate}: {}", errors[0]);
    }
    assert!(w.sim.mutating_calls().is_empty(), "{:?}", w.sim.calls());
}

/// An `awsvpc` task needs the service's subnets: without them, one error and no change.
#[test]
fn a_service_without_network_configuration_starts_no_task() {
    let no_network = world(
        Seed {
            network: None,
            ..Seed::default()
        },
        OneOff::Exits { code: 0, polls: 1 },
    );
    let res = run(no_network.action(MIGRATE));
    let errors = res.error_lines();
    assert_eq!(errors.len(), 1, "{}", res.dump());
    assert!(
        errors[0].contains("`migrate`") && errors[0].contains("no network configuration"),
        "{}",
        errors[0]
    );
    assert!(
        no_network.sim.mutating_calls().is_empty(),
        "{:?}",
        no_network.sim.calls()
    );
}

/// `command: rollback` never runs a migration, even with `migrate:` configured.
#[test]
fn a_rollback_never_runs_the_migration() {
    let w = world(Seed::default(), OneOff::Exits { code: 0, polls: 1 });
    let res = run(w
        .action(MIGRATE)
        .input("command", "rollback")
        .input("revision", "1"));
    assert_eq!(res.output("status"), "rolled-back", "{}", res.dump());
    assert_eq!(w.sim.count("RunTask"), 0, "{:?}", w.sim.calls());
}

/// The quick start and the sample environments file show the migration step.
#[test]
fn the_quick_start_and_the_sample_file_show_the_migration() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/");
    for doc in ["docs/quick-start.md", "docs/environments.md"] {
        let text = std::fs::read_to_string(format!("{root}{doc}")).unwrap();
        assert!(
            text.contains("migrate:")
                && text.contains("command: [\"alembic\", \"upgrade\", \"head\"]"),
            "{doc} shows no migration"
        );
    }
}

/// A promotion runs prod's migration with prod's new revision, which names the promoted digest in prod's
/// repository, before prod's service update.
#[test]
fn a_promotion_runs_prods_migration_with_the_promoted_digest() {
    use common::pipeline::{Release, SHA as RELEASE_SHA};
    let r = Release::new("migrate", 2);
    let deploy = r
        .deploy_action(&r.moto.endpoint, &r.stage.endpoint, &r.registry.url)
        .run_within(Duration::from_secs(120));
    assert_eq!(deploy.output("status"), "deployed", "{}", deploy.dump());
    assert_eq!(r.stage.count("RunTask"), 0, "stage has no `migrate:`");
    let config = r.config().replace(
        "    frontend: { bucket: ",
        "    migrate: { command: [alembic, upgrade, head] }\n    frontend: { bucket: ",
    );
    // Only prod's entry gains it (stage's frontend has a `dir`, prod's has none).
    let config = config.replacen(
        "    migrate: { command: [alembic, upgrade, head] }\n    frontend: { bucket: ",
        "    frontend: { bucket: ",
        1,
    );
    assert_eq!(config.matches("migrate:").count(), 1, "{config}");
    let res = r
        .promote_action(&r.moto.endpoint, &r.prod.endpoint, &r.registry.url)
        .file(".github/cloudshop-deploy.yml", &config)
        .run_within(Duration::from_secs(120));
    assert_eq!(res.output("status"), "deployed", "{}", res.dump());
    let calls = r.prod.calls();
    let run_task = position(&calls, "RunTask").expect("prod's migration ran");
    assert!(
        run_task < position(&calls, "UpdateService").expect("updated"),
        "{calls:?}"
    );
    let body = &r.prod.bodies("RunTask")[0];
    assert_eq!(body["cluster"], "prod-cluster");
    assert_eq!(body["taskDefinition"], REV3);
    let td = r.prod.task_definition(REV3).unwrap();
    assert_eq!(
        td["containerDefinitions"][0]["image"],
        format!(
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/{}@{}",
            r.prod_repo,
            res.output("promoted-digest")
        )
        .as_str()
    );
    let tags = body["tags"].as_array().expect("tags");
    assert!(
        tags.iter()
            .any(|t| t["key"] == "cloudshop-deploy:sha" && t["value"] == RELEASE_SHA),
        "{tags:?}"
    );
    assert_eq!(res.output("migration-exit-code"), "0");
}

/// The service already runs the image: no change, and no migration.
#[test]
fn no_change_runs_no_migration() {
    let moto = Moto::shared();
    let digest = common::seed::seed_ecr(&moto, &moto.name(REPO), &[SHA], false);
    let image = format!(
        "123456789012.dkr.ecr.us-east-1.amazonaws.com/{}@{digest}",
        moto.name(REPO)
    );
    let w = World {
        sim: EcsSim::start_with(
            Seed {
                containers: vec![("backend".into(), image)],
                ..Seed::default()
            },
            Scenario::Succeed { after: 1 },
        ),
        moto,
        digest,
        group: String::new(),
    };
    let res = run(w.action(MIGRATE));
    assert_eq!(res.output("status"), "no-change", "{}", res.dump());
    assert!(w.sim.mutating_calls().is_empty(), "{:?}", w.sim.calls());
    assert!(!res.summary.contains("### Migration"), "{}", res.summary);
}
