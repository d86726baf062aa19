//! "Promote to Production" through the real binary: the image tested on stage (in a real OCI registry on
//! loopback) is copied to the prod repository by digest, then the prod service is deployed with it,
//! smoke-tested, and ends on exactly that digest. ECR API calls go to moto, ECS to the simulator.

use harness as common;

use std::time::Duration;

use common::app::App;
use common::ecs_sim::{EcsSim, Scenario, Seed};
use common::registry::LocalRegistry;
use common::seed::rt;
use common::{Action, Moto, RunResult};

const STAGE: &str = "stage-cloudshop-backend";
const PROD: &str = "prod-cloudshop-backend";
const SHA: &str = "89abcdef0123456789abcdef0123456789abcdef";

struct World {
    moto: Moto,
    /// The stage and prod repository names, unique to this test in the shared moto.
    stage: String,
    prod: String,
    reg: LocalRegistry,
    sim: EcsSim,
    app: App,
}

fn world() -> World {
    let moto = Moto::shared();
    let (stage, prod) = (moto.name(STAGE), moto.name(PROD));
    rt().block_on(async {
        let ecr = aws_sdk_ecr::Client::new(&moto.sdk_config().await);
        for repo in [&stage, &prod] {
            ecr.create_repository()
                .repository_name(repo)
                .send()
                .await
                .unwrap();
        }
    });
    let seed = Seed {
        cluster: "prod-cluster".into(),
        service: "prod-backend".into(),
        containers: vec![(
            "backend".into(),
            format!("123456789012.dkr.ecr.us-east-1.amazonaws.com/{prod}:previous"),
        )],
        ..Seed::default()
    };
    World {
        moto,
        stage,
        prod,
        reg: LocalRegistry::start(),
        sim: EcsSim::start_with(seed, Scenario::Succeed { after: 2 }),
        app: App::start(),
    }
}

fn promote(w: &World) -> RunResult {
    let config = format!(
        r#"
region: us-east-1
environments:
  stage:
    cluster: stage-cluster
    service: stage-backend
    ecr-repository: {stage}
  prod:
    promote-from: stage
    cluster: prod-cluster
    service: prod-backend
    container: backend
    ecr-repository: {prod}
    api-url: {api}
    smoke: {{ timeout: 5s, request-timeout: 1s, retry-interval: 50ms }}
"#,
        stage = w.stage,
        prod = w.prod,
        api = w.app.base_url(),
    );
    Action::new()
        .with_moto(&w.moto)
        .env("AWS_ENDPOINT_URL_ECS", &w.sim.endpoint)
        .file(".github/cloudshop-deploy.yml", &config)
        .input("command", "promote")
        .input("environment", "prod")
        .input("image-tag", SHA)
        .input("extra-tags", "prod-current")
        .input("registry-url", &w.reg.url)
        .input("poll-interval", "30ms")
        .run_within(Duration::from_secs(180))
}

#[test]
fn the_tested_digest_is_what_prod_runs_and_a_rerun_moves_nothing() {
    let w = world();
    let digest = w.reg.push_random_image(&w.stage, SHA, 3, 1024 * 1024);
    crate::release::mark_verified(&w.reg, &w.stage, "stage", SHA, &digest);

    let res = promote(&w);
    assert_eq!(res.code, 0, "{}", res.dump());
    assert_eq!(res.output("status"), "deployed");
    assert_eq!(res.output("promoted-digest"), digest);
    assert_eq!(res.output("image-digest"), digest);
    // Stage and prod share the registry here, so the blobs are mounted, not moved.
    assert_eq!(res.output("blobs-copied"), "0");
    assert!(
        res.summary
            .contains("| blobs | 0 copied, 4 mounted, 0 already there |"),
        "{}",
        res.summary
    );
    assert_eq!(res.output("smoke-status"), "passed");
    // The prod repository has the same manifest under both tags.
    assert_eq!(
        w.reg.digest_of(&w.prod, SHA).as_deref(),
        Some(digest.as_str())
    );
    assert_eq!(
        w.reg.digest_of(&w.prod, "prod-current").as_deref(),
        Some(digest.as_str())
    );
    // The prod service ends on that digest.
    let td = w
        .sim
        .task_definition(&w.sim.service_task_definition())
        .expect("task definition");
    let image = td["containerDefinitions"][0]["image"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(image.ends_with(&format!("/{}@{digest}", w.prod)), "{image}");
    assert_eq!(res.output("image-uri"), image);
    // Every output the binary wrote is declared in action.yml.
    let declared = common::action_yml_keys("outputs");
    for name in res.outputs.keys() {
        assert!(
            declared.contains(name),
            "output `{name}` is not declared in action.yml"
        );
    }
    assert!(res.summary.contains(&digest), "{}", res.summary);
    insta::with_settings!({ filters => common::SNAPSHOT_FILTERS.iter().copied() }, {
        insta::assert_snapshot!(res.snapshot());
    });

    // The same promotion again: nothing to copy, nothing to deploy.
    let mutating_before = w.sim.mutating_calls().len();
    let again = promote(&w);
    assert_eq!(again.code, 0, "{}", again.dump());
    assert_eq!(again.output("status"), "no-change", "{}", again.dump());
    assert_eq!(again.output("blobs-copied"), "0");
    assert_eq!(again.output("bytes-copied"), "0");
    assert!(
        again
            .summary
            .contains("| blobs | 0 copied, 0 mounted, 4 already there |"),
        "{}",
        again.summary
    );
    assert_eq!(
        w.sim.mutating_calls().len(),
        mutating_before,
        "{:?}",
        w.sim.calls()
    );
}

#[test]
fn a_tag_never_deployed_on_stage_changes_nothing_in_prod() {
    let w = world();
    w.reg.push_random_image(&w.stage, "some-other-tag", 1, 1024);
    let res = promote(&w);
    assert_ne!(res.code, 0, "{}", res.dump());
    assert_eq!(res.error_lines().len(), 1, "{}", res.dump());
    assert!(res.error_lines()[0].contains(SHA), "{}", res.dump());
    assert!(w.sim.mutating_calls().is_empty(), "{:?}", w.sim.calls());
    assert!(
        !w.reg.repository_exists_on_disk(&w.prod),
        "something was written to prod"
    );
    assert_eq!(w.app.requests(), 0);
}

/// Every call a promotion makes, on the AWS APIs and on the registry, is granted by
/// `docs/iam/promote-prod.json`.
#[test]
fn every_call_a_promotion_makes_is_in_its_documented_policy() {
    use common::faults::{FaultPlan, FaultProxy};
    let w = world();
    let digest = w.reg.push_random_image(&w.stage, SHA, 2, 64 * 1024);
    crate::release::mark_verified(&w.reg, &w.stage, "stage", SHA, &digest);
    let aws = FaultProxy::start(&w.moto.endpoint, FaultPlan::none());
    let ecs = FaultProxy::start(&w.sim.endpoint, FaultPlan::none());
    let reg = FaultProxy::start(&w.reg.url, FaultPlan::none());
    let config = format!(
        "region: us-east-1\nenvironments:\n  stage:\n    cluster: stage-cluster\n    service: stage-backend\n    ecr-repository: {}\n  prod:\n    promote-from: stage\n    cluster: prod-cluster\n    service: prod-backend\n    container: backend\n    ecr-repository: {}\n    smoke: {{ enabled: false }}\n",
        w.stage, w.prod
    );
    let res = Action::new()
        .with_moto(&w.moto)
        .env("AWS_ENDPOINT_URL", &aws.endpoint)
        .env("AWS_ENDPOINT_URL_ECS", &ecs.endpoint)
        .file(".github/cloudshop-deploy.yml", &config)
        .input("command", "promote")
        .input("environment", "prod")
        .input("image-tag", SHA)
        .input("registry-url", &reg.endpoint)
        .input("poll-interval", "30ms")
        .run_within(Duration::from_secs(180));
    assert_eq!(res.output("status"), "deployed", "{}", res.dump());
    // Without `image-tag` the promotion lists the markers of both repositories to pick the release
    // (here: the one prod already runs, so nothing to promote).
    let res = Action::new()
        .with_moto(&w.moto)
        .env("AWS_ENDPOINT_URL", &aws.endpoint)
        .env("AWS_ENDPOINT_URL_ECS", &ecs.endpoint)
        .file(".github/cloudshop-deploy.yml", &config)
        .input("command", "promote")
        .input("environment", "prod")
        .input("registry-url", &reg.endpoint)
        .input("poll-interval", "30ms")
        .run_within(Duration::from_secs(180));
    assert_eq!(res.output("status"), "no-change", "{}", res.dump());
    let called: std::collections::BTreeSet<String> = aws
        .ops()
        .iter()
        .chain(ecs.ops().iter())
        .chain(reg.ops().iter())
        .filter_map(|op| common::faults::iam_action(op))
        .collect();
    assert!(
        called.contains("ecr:PutImage")
            && called.contains("ecs:UpdateService")
            && called.contains("ecr:ListImages"),
        "the recording saw the promotion: {called:?}"
    );
    let granted = common::policy_actions("promote-prod.json");
    let missing: Vec<&String> = called.difference(&granted).collect();
    assert!(
        missing.is_empty(),
        "a promotion calls what promote-prod.json does not grant: {missing:?}"
    );
}
