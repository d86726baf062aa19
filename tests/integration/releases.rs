//! Promotion picks through the real binary: with an empty `image-tag`, `command: promote` ships the
//! newest release verified on stage that prod does not run yet (never one that failed stage), and says
//! what prod ran, how many commits GitHub counts between the two (a loopback API) and the compare
//! link; when prod already runs the newest verified release it prints
//! "nothing to promote", ends `no-change` with exit 0 and makes no mutating call (recorded by fault
//! proxies on ECR/S3, ECS and the registry). moto, the ECS simulator, docker-registry, the CloudShop API.

use harness as common;

use std::time::Duration;

use common::app::Mode;
use common::faults::{FaultPlan, FaultProxy};
use common::github_api::{GithubApi, TOKEN};

use super::release::{marker, world};

const SHA_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa1";
const SHA_B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb2";
const SHA_C: &str = "ccccccccccccccccccccccccccccccccccccccc3";

#[test]
fn an_empty_image_tag_promotes_the_newest_release_that_passed_stage() {
    let w = world();
    let a = w.build(SHA_A);
    let b = w.build(SHA_B);
    let c = w.build(SHA_C);

    // A passes stage and goes to prod by an empty `image-tag`.
    assert_eq!(w.deploy_stage(SHA_A, true).output("status"), "deployed");
    w.app.set_mode(Mode::Healthy);
    let res = w
        .action("prod", "")
        .input("command", "promote")
        .run_within(Duration::from_secs(120));
    assert_eq!(res.output("status"), "deployed", "{}", res.dump());
    assert_eq!(res.output("promoted-digest"), a);
    assert!(
        res.summary.contains(&format!(
            "| promotion | `{SHA_A}` (the live release has no marker) |"
        )),
        "{}",
        res.summary
    );

    // C passes, then B fails its smoke tests (newer, but never verified): C is what gets promoted.
    // GitHub (loopback) counts the commits from A to C in the history A, B, C.
    assert_eq!(w.deploy_stage(SHA_C, true).output("status"), "deployed");
    assert_eq!(w.deploy_stage(SHA_B, false).output("status"), "rolled-back");
    w.app.set_mode(Mode::Healthy);
    let api = GithubApi::start();
    api.history(&[SHA_A, SHA_B, SHA_C]);
    let res = w
        .action("prod", "")
        .env("GITHUB_API_URL", &api.url)
        .input("github-token", TOKEN)
        .input("command", "promote")
        .run_within(Duration::from_secs(120));
    assert_eq!(res.output("status"), "deployed", "{}", res.dump());
    assert_eq!(res.output("promoted-digest"), c);
    assert_ne!(res.output("promoted-digest"), b);
    assert!(
        res.summary.contains(&format!(
            "| promotion | `{SHA_A}` -> `{SHA_C}`, 2 new commits ([compare](https://github.com/acme/cloudshop/compare/{SHA_A}...{SHA_C})) |"
        )),
        "{}",
        res.summary
    );
    assert!(
        api.requests()
            .contains(&format!("/repos/acme/cloudshop/compare/{SHA_A}...{SHA_C}")),
        "{:?}",
        api.requests()
    );
    assert_eq!(marker(&w.reg, &w.prod, "prod", SHA_C).unwrap().digest, c);

    // Prod runs C, the newest verified stage release: nothing to promote, no write anywhere.
    let aws = FaultProxy::start(&w.moto.endpoint, FaultPlan::none());
    let ecs = FaultProxy::start(&w.prod_sim.endpoint, FaultPlan::none());
    let reg = FaultProxy::start(&w.reg.url, FaultPlan::none());
    let prod_writes = w.prod_sim.mutating_calls().len();
    let res = w
        .action("prod", "")
        .env("AWS_ENDPOINT_URL", &aws.endpoint)
        .env("AWS_ENDPOINT_URL_ECS", &ecs.endpoint)
        .input("command", "promote")
        .input("registry-url", &reg.endpoint)
        .run_within(Duration::from_secs(120));
    assert_eq!(res.code, 0, "{}", res.dump());
    assert_eq!(res.output("status"), "no-change", "{}", res.dump());
    assert!(res.error_lines().is_empty(), "{}", res.dump());
    assert!(
        res.summary.contains(&format!(
            "| promotion | nothing to promote: `prod` already runs `{SHA_C}`, the newest release verified on the source |"
        )),
        "{}",
        res.summary
    );
    assert!(
        reg.ops().iter().any(|o| o == "registry:GET manifest"),
        "the markers were read: {:?}",
        reg.ops()
    );
    for (name, proxy) in [("ECR/S3", &aws), ("ECS", &ecs), ("registry", &reg)] {
        assert!(
            proxy.mutating_calls().is_empty(),
            "{name}: {:?}",
            proxy.mutating_calls()
        );
    }
    assert_eq!(w.prod_sim.mutating_calls().len(), prod_writes);
}

#[test]
fn an_empty_image_tag_with_no_verified_stage_release_is_refused_without_writes() {
    let w = world();
    w.build(SHA_B);
    assert_eq!(w.deploy_stage(SHA_B, false).output("status"), "rolled-back");
    w.app.set_mode(Mode::Healthy);
    let res = w
        .action("prod", "")
        .input("command", "promote")
        .run_within(Duration::from_secs(120));
    assert_ne!(res.code, 0, "{}", res.dump());
    let errors = res.error_lines();
    assert_eq!(errors.len(), 1, "{}", res.dump());
    assert!(
        errors[0].contains("failed to find a verified release of `stage` to promote"),
        "{}",
        errors[0]
    );
    assert!(w.prod_sim.mutating_calls().is_empty());
    assert!(!w.reg.repository_exists_on_disk(&w.prod));
}

/// `command: releases` after three stage deploys (B failed) and one promotion: every environment of the
/// file is listed, the run's first: stage runs C and lists its two verified releases newest first;
/// prod runs A; the listing writes nothing anywhere. An environment the run cannot reach is listed
/// with the reason, not a failed run.
#[test]
fn releases_lists_what_runs_and_the_verified_releases_without_writing() {
    let w = world();
    let a = w.build(SHA_A);
    w.build(SHA_B);
    let c = w.build(SHA_C);
    assert_eq!(w.deploy_stage(SHA_A, true).output("status"), "deployed");
    assert_eq!(w.deploy_stage(SHA_B, false).output("status"), "rolled-back");
    assert_eq!(w.deploy_stage(SHA_C, true).output("status"), "deployed");
    w.app.set_mode(Mode::Healthy);
    let res = w
        .action("prod", SHA_A)
        .input("command", "promote")
        .run_within(Duration::from_secs(120));
    assert_eq!(res.output("status"), "deployed", "{}", res.dump());

    let aws = FaultProxy::start(&w.moto.endpoint, FaultPlan::none());
    let ecs = FaultProxy::start(&w.prod_sim.endpoint, both_clusters(&w));
    let reg = FaultProxy::start(&w.reg.url, FaultPlan::none());
    let prod_writes = w.prod_sim.mutating_calls().len();
    let stage_writes = w.stage_sim.mutating_calls().len();
    let res = w
        .action("prod", "")
        .env("AWS_ENDPOINT_URL", &aws.endpoint)
        .env("AWS_ENDPOINT_URL_ECS", &ecs.endpoint)
        .input("command", "releases")
        .input("registry-url", &reg.endpoint)
        .run_within(Duration::from_secs(120));
    assert_eq!(res.code, 0, "{}", res.dump());
    assert_eq!(res.output("status"), "no-change", "{}", res.dump());
    let json: serde_json::Value = serde_json::from_str(res.output("releases")).unwrap();
    let envs = json.as_array().unwrap();
    assert_eq!(envs.len(), 2, "{json}");
    let (prod, stage) = (&envs[0], &envs[1]);
    assert_eq!(prod["environment"], "prod");
    assert_eq!(prod["running"]["sha"], SHA_A, "{json}");
    assert_eq!(prod["running"]["digests"], serde_json::json!([a]));
    assert!(prod["running"]["task-definition"]
        .as_str()
        .unwrap()
        .contains("task-definition/"));
    let prod_shas: Vec<&str> = prod["verified"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["sha"].as_str().unwrap())
        .collect();
    assert_eq!(prod_shas, [SHA_A]);
    assert_eq!(stage["environment"], "stage");
    assert_eq!(stage["running"]["sha"], SHA_C, "{json}");
    assert_eq!(stage["running"]["digests"], serde_json::json!([c]));
    let stage_list: Vec<(&str, &str)> = stage["verified"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["sha"].as_str().unwrap(), v["digest"].as_str().unwrap()))
        .collect();
    assert_eq!(
        stage_list,
        [(SHA_C, c.as_str()), (SHA_A, a.as_str())],
        "newest first, never the failed B: {json}"
    );
    assert!(!res.output("releases").contains('\n'));
    assert!(
        res.summary.contains("### Releases of `prod`")
            && res.summary.contains("### Releases of `stage`")
            && res.summary.contains(&format!(", release `{SHA_A}`")),
        "{}",
        res.summary
    );
    for (name, proxy) in [("ECR/S3", &aws), ("ECS", &ecs), ("registry", &reg)] {
        assert!(
            proxy.mutating_calls().is_empty(),
            "{name}: {:?}",
            proxy.mutating_calls()
        );
    }
    assert_eq!(w.prod_sim.mutating_calls().len(), prod_writes);
    assert_eq!(w.stage_sim.mutating_calls().len(), stage_writes);
    let called: std::collections::BTreeSet<String> = aws
        .ops()
        .into_iter()
        .chain(ecs.ops())
        .chain(reg.ops())
        .filter_map(|op| common::faults::iam_action(&op))
        .collect();
    assert!(called.contains("ecs:DescribeServices"), "{called:?}");
    let granted = common::policy_actions("releases-prod.json");
    let missing: Vec<&String> = called.difference(&granted).collect();
    assert!(
        missing.is_empty(),
        "`releases` calls what releases-prod.json does not grant: {missing:?}"
    );

    // Listed from stage: stage first, then every other environment of the file (prod runs A).
    let ecs = FaultProxy::start(&w.stage_sim.endpoint, both_clusters(&w));
    let res = w
        .action("stage", "")
        .env("AWS_ENDPOINT_URL_ECS", &ecs.endpoint)
        .input("command", "releases")
        .run_within(Duration::from_secs(120));
    assert_eq!(res.code, 0, "{}", res.dump());
    let json: serde_json::Value = serde_json::from_str(res.output("releases")).unwrap();
    let names: Vec<&str> = json
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["environment"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["stage", "prod"], "{json}");
    assert_eq!(json[0]["running"]["sha"], SHA_C, "{json}");
    assert_eq!(json[0]["running"]["digests"], serde_json::json!([c]));
    assert_eq!(json[1]["running"]["sha"], SHA_A, "{json}");
    assert_eq!(json[1]["verified"][0]["sha"], SHA_A, "{json}");

    // Without a way to reach prod's service (the run's ECS endpoint has only stage's cluster), prod is
    // listed with the reason and its markers; the run still succeeds.
    let res = w
        .action("stage", "")
        .input("command", "releases")
        .run_within(Duration::from_secs(120));
    assert_eq!(res.code, 0, "{}", res.dump());
    let json: serde_json::Value = serde_json::from_str(res.output("releases")).unwrap();
    assert_eq!(json[1]["environment"], "prod", "{json}");
    assert!(json[1]["running"].is_null(), "{json}");
    assert!(
        json[1]["running-problem"]
            .as_str()
            .is_some_and(|p| p.contains("`prod-cluster`")),
        "{json}"
    );
    assert_eq!(json[1]["verified"][0]["sha"], SHA_A, "{json}");
    assert!(
        res.summary.contains("⚠️ what runs could not be read:"),
        "{}",
        res.summary
    );
}

/// One ECS endpoint in front of both simulators, routed by cluster.
fn both_clusters(w: &super::release::World) -> FaultPlan {
    FaultPlan {
        routes: vec![
            ("stage-cluster".into(), w.stage_sim.endpoint.clone()),
            ("prod-cluster".into(), w.prod_sim.endpoint.clone()),
        ],
        ..FaultPlan::none()
    }
}

/// With a frontend bucket, `releases` names the site release its sync state records as live.
#[test]
fn releases_names_the_site_release_the_sync_state_records() {
    let w = world();
    let a = w.build(SHA_A);
    assert_eq!(w.deploy_stage(SHA_A, true).output("status"), "deployed");
    let bucket = w.moto.name("stage-frontend");
    common::seed::create_bucket(&w.moto, &bucket);
    let artifact = format!("sha256:{}", "f".repeat(64));
    let state = serde_json::json!({
        "version": 1,
        "objects": {},
        "live": { "artifact": artifact, "tag": SHA_A },
    });
    common::seed::rt().block_on(async {
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&w.moto.sdk_config().await)
                .force_path_style(true)
                .build(),
        );
        s3.put_object()
            .bucket(&bucket)
            .key(".cloudshop-deploy/sync-state.json")
            .body(state.to_string().into_bytes().into())
            .send()
            .await
            .unwrap();
    });
    let config = w.config().replacen(
        "    container: backend\n",
        &format!("    container: backend\n    frontend: {{ bucket: {bucket} }}\n"),
        1,
    );
    let res = w
        .action("stage", "")
        .file(".github/cloudshop-deploy.yml", &config)
        .input("command", "releases")
        .run_within(Duration::from_secs(120));
    assert_eq!(res.code, 0, "{}", res.dump());
    let json: serde_json::Value = serde_json::from_str(res.output("releases")).unwrap();
    let live = &json[0]["running"];
    assert_eq!(live["sha"], SHA_A, "{json}");
    assert_eq!(live["digests"], serde_json::json!([a]));
    assert_eq!(live["frontend"], artifact.as_str(), "{json}");
    assert_eq!(live["frontend-sha"], SHA_A, "{json}");
    assert!(
        res.summary
            .contains(&format!("; the site serves `{SHA_A}` (`{artifact}`)")),
        "{}",
        res.summary
    );
}
