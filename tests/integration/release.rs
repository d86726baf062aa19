//! Verified releases through the real binary: a stage deploy that passes writes the marker
//! `verified-stage-<sha>` (and only then moves `extra-tags`), one that fails writes none; a promotion of a
//! digest without the marker is refused with zero writes (recorded by fault proxies on ECR/S3, ECS and the
//! registry), and goes ahead with `allow-unverified: true`; `command: rollback` goes back to the newest
//! verified release, not to a revision that failed. moto (ECR, STS), the ECS simulator, docker-registry
//! (markers, images) and the miniature CloudShop API.

use harness as common;

use std::time::Duration;

use cloudshop_deploy::registry::artifact::{verified_tag, Verification};
use cloudshop_deploy::registry::{Options, Registry};
use cloudshop_deploy::steps::release::Store;
use common::app::{App, Mode};
use common::ecs_sim::{EcsSim, Scenario, Seed};
use common::faults::{FaultPlan, FaultProxy};
use common::registry::LocalRegistry;
use common::seed::rt;
use common::{Action, Moto, RunResult};

const SHA_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa1";
const SHA_B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb2";
const RUN_URL: &str = "https://github.com/acme/cloudshop/actions/runs/4242";

fn rev(n: u32) -> String {
    format!("arn:aws:ecs:us-east-1:123456789012:task-definition/cloudshop-backend:{n}")
}

/// The marker `verified-<env>-<sha>` in `repo` of the registry, if any.
pub fn marker(reg: &LocalRegistry, repo: &str, env: &str, sha: &str) -> Option<Verification> {
    rt().block_on(async {
        let registry = Registry::new(
            url::Url::parse(&reg.url).unwrap(),
            None,
            &Options::default(),
        )
        .unwrap();
        let store = Store {
            registry,
            repo: repo.to_string(),
        };
        store.read(&verified_tag(env, sha)).await.unwrap()
    })
}

/// Record in the registry that `digest` passed `env` (what a passing stage deploy leaves behind).
pub fn mark_verified(reg: &LocalRegistry, repo: &str, env: &str, sha: &str, digest: &str) {
    rt().block_on(async {
        let registry = Registry::new(
            url::Url::parse(&reg.url).unwrap(),
            None,
            &Options::default(),
        )
        .unwrap();
        let store = Store {
            registry,
            repo: repo.to_string(),
        };
        store
            .write(&Verification {
                environment: env.into(),
                digest: digest.into(),
                sha: sha.into(),
                frontend: None,
                task_definition: Some(rev(3)),
                run_url: Some(RUN_URL.into()),
                verified_at: "2026-11-26T12:00:00.000Z".into(),
                smoke: "passed".into(),
                gates: Default::default(),
            })
            .await
            .unwrap();
    })
}

pub(crate) struct World {
    pub(crate) moto: Moto,
    pub(crate) stage: String,
    pub(crate) prod: String,
    pub(crate) reg: LocalRegistry,
    pub(crate) stage_sim: EcsSim,
    pub(crate) prod_sim: EcsSim,
    pub(crate) app: App,
}

pub(crate) fn world() -> World {
    let moto = Moto::shared();
    let (stage, prod) = (
        moto.name("stage-cloudshop-backend"),
        moto.name("prod-cloudshop-backend"),
    );
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
    let prod_seed = Seed {
        cluster: "prod-cluster".into(),
        service: "prod-backend".into(),
        ..Seed::default()
    };
    World {
        moto,
        stage,
        prod,
        reg: LocalRegistry::start(),
        stage_sim: EcsSim::start(Scenario::Succeed { after: 2 }),
        prod_sim: EcsSim::start_with(prod_seed, Scenario::Succeed { after: 2 }),
        app: App::start(),
    }
}

impl World {
    /// An image in the stage registry repository, also known to ECR (moto) under the same digest, as one
    /// `docker push` to ECR gives both.
    pub(crate) fn build(&self, sha: &str) -> String {
        self.reg
            .push_image_known_to_ecr(&self.moto, &self.stage, sha, 1, 4096)
    }

    pub(crate) fn config(&self) -> String {
        format!(
            r#"
region: us-east-1
environments:
  stage:
    cluster: stage-cluster
    service: stage-backend
    container: backend
    ecr-repository: {stage}
    api-url: {api}
    smoke: {{ timeout: 2s, request-timeout: 500ms, retry-interval: 50ms }}
  prod:
    promote-from: stage
    cluster: prod-cluster
    service: prod-backend
    container: backend
    ecr-repository: {prod}
    api-url: {api}
    smoke: {{ timeout: 2s, request-timeout: 500ms, retry-interval: 50ms }}
"#,
            stage = self.stage,
            prod = self.prod,
            api = self.app.base_url(),
        )
    }

    pub(crate) fn action(&self, environment: &str, sha: &str) -> Action {
        let sim = if environment == "stage" {
            &self.stage_sim
        } else {
            &self.prod_sim
        };
        Action::new()
            .with_moto(&self.moto)
            .env("AWS_ENDPOINT_URL_ECS", &sim.endpoint)
            .env("GITHUB_SERVER_URL", "https://github.com")
            .file(".github/cloudshop-deploy.yml", &self.config())
            .input("environment", environment)
            .input("image-tag", sha)
            .input("registry-url", &self.reg.url)
            .input("poll-interval", "30ms")
            .input("wait-timeout", "30s")
    }

    pub(crate) fn deploy_stage(&self, sha: &str, healthy: bool) -> RunResult {
        self.app.set_mode(if healthy {
            Mode::Healthy
        } else {
            Mode::Status(500)
        });
        self.action("stage", sha)
            .input("extra-tags", "stage-latest")
            .run_within(Duration::from_secs(120))
    }

    fn ecr_digest(&self, tag: &str) -> Option<String> {
        common::seed::digest_of_tag(&self.moto, &self.stage, tag)
    }
}

/// (c) A passing deploy writes the marker and then moves `stage-latest`; a failing one writes no marker
/// and leaves `stage-latest` where it was.
#[test]
fn only_a_release_that_passed_gets_the_marker_and_the_extra_tags() {
    let w = world();
    let a = w.build(SHA_A);
    let b = w.build(SHA_B);

    let res = w.deploy_stage(SHA_A, true);
    assert_eq!(res.output("status"), "deployed", "{}", res.dump());
    assert_eq!(res.output("verified"), "true", "{}", res.dump());
    let m = marker(&w.reg, &w.stage, "stage", SHA_A).expect("the marker of A");
    assert_eq!(m.digest, a);
    assert_eq!(m.sha, SHA_A);
    assert_eq!(m.task_definition.as_deref(), Some(rev(3).as_str()));
    assert_eq!(m.run_url.as_deref(), Some(RUN_URL));
    assert_eq!(m.smoke, "passed");
    assert!(
        humantime::parse_rfc3339_weak(&m.verified_at).is_ok(),
        "{}",
        m.verified_at
    );
    assert_eq!(w.ecr_digest("stage-latest").as_deref(), Some(a.as_str()));
    assert!(
        res.summary
            .contains(&format!("| marker | `verified-stage-{SHA_A}` |")),
        "{}",
        res.summary
    );

    // B fails its smoke tests: rolled back, no marker, `stage-latest` still names A.
    let res = w.deploy_stage(SHA_B, false);
    assert_eq!(res.output("status"), "rolled-back", "{}", res.dump());
    assert_eq!(res.outputs.get("verified"), None, "{}", res.dump());
    assert_eq!(marker(&w.reg, &w.stage, "stage", SHA_B), None);
    assert!(
        !w.reg.tags(&w.stage).contains(&verified_tag("stage", SHA_B)),
        "{:?}",
        w.reg.tags(&w.stage)
    );
    assert_eq!(w.ecr_digest("stage-latest").as_deref(), Some(a.as_str()));
    assert_ne!(a, b);
}

/// (a) B failed stage: promoting B is refused before any write, on every API and the registry; with
/// `allow-unverified: true` it goes ahead and says so. A, which passed, is promoted and the summary names
/// the stage run that verified it.
#[test]
fn a_digest_that_failed_stage_is_not_promoted_unless_allowed() {
    let w = world();
    let a = w.build(SHA_A);
    let b = w.build(SHA_B);
    assert_eq!(w.deploy_stage(SHA_A, true).output("status"), "deployed");
    assert_eq!(w.deploy_stage(SHA_B, false).output("status"), "rolled-back");
    w.app.set_mode(Mode::Healthy);

    // Every call of the refused promotion goes through recording proxies.
    let aws = FaultProxy::start(&w.moto.endpoint, FaultPlan::none());
    let ecs = FaultProxy::start(&w.prod_sim.endpoint, FaultPlan::none());
    let reg = FaultProxy::start(&w.reg.url, FaultPlan::none());
    let app_requests = w.app.requests();
    let res = w
        .action("prod", SHA_B)
        .env("AWS_ENDPOINT_URL", &aws.endpoint)
        .env("AWS_ENDPOINT_URL_ECS", &ecs.endpoint)
        .input("command", "promote")
        .input("extra-tags", "prod-current")
        .input("registry-url", &reg.endpoint)
        .run_within(Duration::from_secs(120));
    assert_ne!(res.code, 0, "{}", res.dump());
    assert_eq!(res.output("status"), "failed");
    let errors = res.error_lines();
    assert_eq!(errors.len(), 1, "{}", res.dump());
    assert!(
        errors[0].contains(&format!("refusing to promote `{SHA_B}`"))
            && errors[0].contains(&verified_tag("stage", SHA_B)),
        "{}",
        errors[0]
    );
    assert!(
        res.stdout.contains("allow-unverified: true") && res.stdout.contains("deploy `"),
        "the hint says how to fix it: {}",
        res.dump()
    );
    assert!(res.summary.contains(SHA_B), "{}", res.summary);
    // It looked (the marker lookup reached the registry) and wrote nothing anywhere.
    assert!(
        reg.ops().iter().any(|o| o == "registry:GET manifest"),
        "{:?}",
        reg.ops()
    );
    for (name, proxy) in [("ECR/S3", &aws), ("ECS", &ecs), ("registry", &reg)] {
        assert!(
            proxy.mutating_calls().is_empty(),
            "{name}: {:?}",
            proxy.mutating_calls()
        );
    }
    assert!(w.prod_sim.mutating_calls().is_empty());
    assert!(!w.reg.repository_exists_on_disk(&w.prod));
    assert_eq!(w.app.requests(), app_requests, "no smoke test ran");

    // A passed stage: promoted, and the summary names the run that verified it.
    let res = w
        .action("prod", SHA_A)
        .input("command", "promote")
        .input("extra-tags", "prod-current")
        .run_within(Duration::from_secs(120));
    assert_eq!(res.output("status"), "deployed", "{}", res.dump());
    assert_eq!(res.output("promoted-digest"), a);
    let stage_marker = marker(&w.reg, &w.stage, "stage", SHA_A).unwrap();
    assert!(
        res.summary.contains(&format!(
            "| verified on | `stage` at {} by [{RUN_URL}]({RUN_URL}) (smoke tests: passed) |",
            stage_marker.verified_at
        )),
        "{}",
        res.summary
    );
    // Prod records its own verification, and `prod-current` follows it.
    assert_eq!(marker(&w.reg, &w.prod, "prod", SHA_A).unwrap().digest, a);
    assert_eq!(
        w.reg.digest_of(&w.prod, "prod-current").as_deref(),
        Some(a.as_str())
    );

    // B with `allow-unverified: true`: promoted, with a warning and a line in the summary.
    let res = w
        .action("prod", SHA_B)
        .input("command", "promote")
        .input("allow-unverified", "true")
        .run_within(Duration::from_secs(120));
    assert_eq!(res.output("status"), "deployed", "{}", res.dump());
    assert_eq!(res.output("promoted-digest"), b);
    assert!(
        res.stdout.lines().any(|l| l.starts_with("::warning")
            && l.contains(&format!("promoting `{SHA_B}` unverified"))),
        "{}",
        res.dump()
    );
    assert!(
        res.summary.contains("**not verified**")
            && res.summary.contains("`allow-unverified: true`"),
        "{}",
        res.summary
    );
    let td = w
        .prod_sim
        .task_definition(&w.prod_sim.service_task_definition())
        .unwrap();
    assert!(
        td["containerDefinitions"][0]["image"]
            .as_str()
            .unwrap()
            .ends_with(&format!("@{b}")),
        "{td}"
    );
}

/// (b) Releases 8 (passed), 9 (failed its smoke tests, rolled back), 10 (passed); `command: rollback`
/// goes to 8's revision and digest, never to 9's.
#[test]
fn rollback_goes_to_the_last_release_that_passed() {
    let w = world();
    let shas: Vec<String> = (8..=10).map(|n| format!("{n:0>40}")).collect();
    let digests: Vec<String> = shas.iter().map(|s| w.build(s)).collect();

    let res = w.deploy_stage(&shas[0], true);
    assert_eq!(res.output("task-definition-arn"), rev(3), "{}", res.dump());
    let res = w.deploy_stage(&shas[1], false);
    assert_eq!(res.output("status"), "rolled-back", "{}", res.dump());
    assert_eq!(w.stage_sim.service_task_definition(), rev(3));
    let res = w.deploy_stage(&shas[2], true);
    assert_eq!(res.output("task-definition-arn"), rev(5), "{}", res.dump());

    // Revision 4 is release 9's (so what follows tests the release it is about), still ACTIVE, the highest
    // below the current one: not where we go.
    let image_of = |r: &str| {
        w.stage_sim.task_definition(r).unwrap()["containerDefinitions"][0]["image"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert!(image_of(&rev(4)).ends_with(&format!("@{}", digests[1])));
    let updates_before = w.stage_sim.bodies("UpdateService").len();
    let res = w
        .action("stage", &shas[2])
        .input("command", "rollback")
        .run_within(Duration::from_secs(120));
    assert_eq!(res.output("status"), "rolled-back", "{}", res.dump());
    assert_eq!(res.output("task-definition-arn"), rev(3), "{}", res.dump());
    assert_eq!(w.stage_sim.service_task_definition(), rev(3));
    let td = w.stage_sim.task_definition(&rev(3)).unwrap();
    assert!(
        td["containerDefinitions"][0]["image"]
            .as_str()
            .unwrap()
            .ends_with(&format!("@{}", digests[0])),
        "{td}"
    );
    assert!(
        res.summary.contains(&format!("`{}`", shas[0]))
            && res.summary.contains("newest verified release"),
        "{}",
        res.summary
    );
    assert_eq!(w.stage_sim.count("ListTaskDefinitions"), 0);
    // Release 9 is never what the rollback picks: every service update it sent names 8's revision, the
    // service runs 8's digest, and 9's digest and commit appear nowhere in what it reports.
    let updates = w.stage_sim.bodies("UpdateService");
    let sent: Vec<&str> = updates[updates_before..]
        .iter()
        .map(|b| b["taskDefinition"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(sent, [rev(3).as_str()], "{}", res.dump());
    let running = image_of(&w.stage_sim.service_task_definition());
    assert!(!running.ends_with(&format!("@{}", digests[1])), "{running}");
    for never in [&digests[1], &shas[1]] {
        assert!(
            !res.summary.contains(never.as_str()),
            "{never}\n{}",
            res.summary
        );
        assert!(
            !res.stdout.contains(never.as_str()),
            "{never}\n{}",
            res.dump()
        );
    }
}

/// Without a registry to read markers from, `command: rollback` takes the revision of the last completed
/// deployment before the current one: after 8, 9 (rolled back) and 10 that is the rollback's, 8's revision.
#[test]
fn without_markers_rollback_takes_the_last_completed_deployment() {
    let w = world();
    let shas: Vec<String> = (8..=10).map(|n| format!("{n:0>40}")).collect();
    for s in &shas {
        w.build(s);
    }
    w.deploy_stage(&shas[0], true);
    w.deploy_stage(&shas[1], false);
    w.deploy_stage(&shas[2], true);
    assert_eq!(w.stage_sim.service_task_definition(), rev(5));
    let res = w
        .action("stage", &shas[2])
        .without("INPUT_REGISTRY-URL")
        .input("command", "rollback")
        .run_within(Duration::from_secs(120));
    assert_eq!(res.output("status"), "rolled-back", "{}", res.dump());
    assert_eq!(w.stage_sim.service_task_definition(), rev(3));
    assert!(
        res.summary.contains("the last completed deployment"),
        "{}",
        res.summary
    );
}

/// The verified release's revision was deregistered since: a new revision is rendered from the live one
/// with that release's digest, and the service runs it.
#[test]
fn rollback_renders_a_revision_when_the_verified_one_is_gone() {
    let w = world();
    let shas: Vec<String> = (8..=9).map(|n| format!("{n:0>40}")).collect();
    let digests: Vec<String> = shas.iter().map(|s| w.build(s)).collect();
    assert_eq!(
        w.deploy_stage(&shas[0], true).output("task-definition-arn"),
        rev(3)
    );
    assert_eq!(
        w.deploy_stage(&shas[1], true).output("task-definition-arn"),
        rev(4)
    );
    w.stage_sim.deregister(&rev(3));
    // Every call recorded on the wire (AWS, ECS, registry), to hold against the documented policy.
    let aws = FaultProxy::start(&w.moto.endpoint, FaultPlan::none());
    let ecs = FaultProxy::start(&w.stage_sim.endpoint, FaultPlan::none());
    let reg = FaultProxy::start(&w.reg.url, FaultPlan::none());
    let res = w
        .action("stage", &shas[1])
        .env("AWS_ENDPOINT_URL", &aws.endpoint)
        .env("AWS_ENDPOINT_URL_ECS", &ecs.endpoint)
        .input("registry-url", &reg.endpoint)
        .input("command", "rollback")
        .run_within(Duration::from_secs(120));
    assert_eq!(res.output("status"), "rolled-back", "{}", res.dump());
    assert_eq!(res.output("task-definition-arn"), rev(5), "{}", res.dump());
    // Every check before the first write: the registration, then the service update (after the
    // last look at the service), and no revision read after the registration.
    let ecs_ops = ecs.ops();
    let writes: Vec<&String> = ecs_ops
        .iter()
        .filter(|o| common::faults::is_mutating(o))
        .collect();
    assert_eq!(
        writes,
        ["ecs:RegisterTaskDefinition", "ecs:UpdateService"],
        "{ecs_ops:?}"
    );
    let registered = ecs_ops
        .iter()
        .position(|o| o == "ecs:RegisterTaskDefinition");
    assert!(
        !ecs_ops[registered.unwrap()..].contains(&"ecs:DescribeTaskDefinition".to_string()),
        "{ecs_ops:?}"
    );
    let called: std::collections::BTreeSet<String> = aws
        .ops()
        .into_iter()
        .chain(ecs_ops)
        .chain(reg.ops())
        .filter_map(|op| common::faults::iam_action(&op))
        .collect();
    assert!(called.contains("ecr:DescribeImages"), "{called:?}");
    let granted = common::policy_actions("rollback-stage.json");
    let missing: Vec<&String> = called.difference(&granted).collect();
    assert!(
        missing.is_empty(),
        "the rollback calls what rollback-stage.json does not grant: {missing:?}"
    );
    assert_eq!(w.stage_sim.service_task_definition(), rev(5));
    let td = w.stage_sim.task_definition(&rev(5)).unwrap();
    assert_eq!(
        td["containerDefinitions"][0]["image"],
        format!(
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/{}@{}",
            w.stage, digests[0]
        )
    );
    // Everything else is the live revision's (9's), unknown fields included.
    let live = w.stage_sim.task_definition(&rev(4)).unwrap();
    assert_eq!(td["futureSetting"], live["futureSetting"]);
}

/// The release passed but the registry refuses the marker: a warning, not a failure (the service runs
/// the new version, `status=deployed`), `verified=false`, and the extra tags still move.
#[test]
fn a_marker_the_registry_refuses_is_a_warning_after_a_good_deploy() {
    use common::faults::Fault;
    let w = world();
    let a = w.build(SHA_A);
    let plan = FaultPlan {
        always: vec![("registry:PUT manifest".into(), Fault::ServerError)],
        ..FaultPlan::none()
    };
    let reg = FaultProxy::start(&w.reg.url, plan);
    w.app.set_mode(Mode::Healthy);
    let res = w
        .action("stage", SHA_A)
        .input("extra-tags", "stage-latest")
        .input("registry-url", &reg.endpoint)
        .run_within(Duration::from_secs(120));
    assert_eq!(res.code, 0, "{}", res.dump());
    assert_eq!(res.output("status"), "deployed");
    assert_eq!(res.output("verified"), "false");
    assert!(
        res.stdout.lines().any(|l| l.starts_with("::warning")
            && l.contains("the release passed but was not recorded as verified")),
        "{}",
        res.dump()
    );
    assert!(
        res.summary.contains("| marker | ⚠️ not written:"),
        "{}",
        res.summary
    );
    assert!(reg.ops().iter().any(|o| o == "registry:PUT manifest"));
    assert_eq!(marker(&w.reg, &w.stage, "stage", SHA_A), None);
    assert_eq!(w.ecr_digest("stage-latest").as_deref(), Some(a.as_str()));
}

/// The verified release's revision was deregistered and its image deleted from the repository since: the
/// rollback's preflight refuses with one clear error before any change (no revision registered, the
/// service not updated), and the service keeps running what it ran.
#[test]
fn a_rollback_to_an_image_no_longer_in_the_repository_changes_nothing() {
    let w = world();
    let shas: Vec<String> = (8..=9).map(|n| format!("{n:0>40}")).collect();
    let digests: Vec<String> = shas.iter().map(|s| w.build(s)).collect();
    assert_eq!(
        w.deploy_stage(&shas[0], true).output("task-definition-arn"),
        rev(3)
    );
    assert_eq!(
        w.deploy_stage(&shas[1], true).output("task-definition-arn"),
        rev(4)
    );
    w.stage_sim.deregister(&rev(3));
    rt().block_on(async {
        let ecr = aws_sdk_ecr::Client::new(&w.moto.sdk_config().await);
        ecr.batch_delete_image()
            .repository_name(&w.stage)
            .image_ids(
                aws_sdk_ecr::types::ImageIdentifier::builder()
                    .image_digest(&digests[0])
                    .build(),
            )
            .send()
            .await
            .unwrap();
    });
    let writes_before = w.stage_sim.mutating_calls().len();
    let res = w
        .action("stage", &shas[1])
        .input("command", "rollback")
        .run_within(Duration::from_secs(120));
    assert_ne!(res.code, 0, "{}", res.dump());
    assert_eq!(
        w.stage_sim.mutating_calls()[writes_before..],
        [] as [String; 0],
        "{}",
        res.dump()
    );
    assert_eq!(w.stage_sim.service_task_definition(), rev(4));
    let errors: Vec<&str> = res
        .stdout
        .lines()
        .filter(|l| l.starts_with("::error"))
        .collect();
    assert_eq!(errors.len(), 1, "{}", res.dump());
    assert!(
        errors[0].contains(&digests[0]) && errors[0].contains("no longer in the repository"),
        "{}",
        res.dump()
    );
}

/// The rollback target's markers are read from every page of the registry's tag list: docker-registry's
/// 7 markers (6 of `stage`, one of `prod`), paged 2 at a time (the fault proxy pages them as ECR and the
/// OCI distribution spec do; Debian's docker-registry 2.8 does not), each next page followed through
/// its `Link` header: all of `stage`'s markers are found.
#[test]
fn markers_are_listed_across_the_tag_list_pages() {
    let w = world();
    let shas: Vec<String> = (1..=6).map(|n| format!("{n:0>40}")).collect();
    let digest = format!("sha256:{}", "c".repeat(64));
    for s in &shas {
        mark_verified(&w.reg, &w.stage, "stage", s, &digest);
    }
    mark_verified(&w.reg, &w.stage, "prod", &shas[0], &digest);
    let plan = FaultPlan {
        tag_page: Some(2),
        ..FaultPlan::none()
    };
    let proxy = FaultProxy::start(&w.reg.url, plan);
    let found = rt().block_on(async {
        let options = Options {
            tag_page: 2,
            ..Options::default()
        };
        let registry =
            Registry::new(url::Url::parse(&proxy.endpoint).unwrap(), None, &options).unwrap();
        let store = Store {
            registry,
            repo: w.stage.clone(),
        };
        store.list("stage").await.unwrap()
    });
    let mut got: Vec<String> = found.into_iter().map(|v| v.sha).collect();
    got.sort();
    assert_eq!(got, shas);
    let pages = proxy
        .ops()
        .iter()
        .filter(|o| *o == "registry:GET tags")
        .count();
    assert_eq!(pages, 4, "{:?}", proxy.ops());
}

/// "Verified" means tested: a stage release whose smoke tests were switched off still gets its marker,
/// which records each gate, but prod refuses it by default (rollout and smoke required) with one
/// `::error::` naming the gate and no write anywhere; `promote.require` can ask for more (the watch),
/// and `allow-unverified: true` overrides with a warning.
#[test]
fn a_release_whose_stage_smoke_tests_were_off_is_not_promoted_as_verified() {
    let w = world();
    let a = w.build(SHA_A);
    w.app.set_mode(Mode::Healthy);
    let res = w
        .action("stage", SHA_A)
        .input("smoke-tests", "false")
        .run_within(Duration::from_secs(120));
    assert_eq!(res.output("status"), "deployed", "{}", res.dump());
    let m = marker(&w.reg, &w.stage, "stage", SHA_A).expect("the marker is written");
    assert_eq!(m.digest, a);
    assert_eq!(m.gate("rollout"), "passed", "{m:?}");
    assert_eq!(m.gate("smoke"), "skipped", "{m:?}");
    assert_eq!(m.gate("watch"), "skipped", "{m:?}");

    let aws = FaultProxy::start(&w.moto.endpoint, FaultPlan::none());
    let ecs = FaultProxy::start(&w.prod_sim.endpoint, FaultPlan::none());
    let reg = FaultProxy::start(&w.reg.url, FaultPlan::none());
    let res = w
        .action("prod", SHA_A)
        .env("AWS_ENDPOINT_URL", &aws.endpoint)
        .env("AWS_ENDPOINT_URL_ECS", &ecs.endpoint)
        .input("command", "promote")
        .input("registry-url", &reg.endpoint)
        .run_within(Duration::from_secs(120));
    assert_ne!(res.code, 0, "{}", res.dump());
    assert_eq!(res.output("status"), "failed");
    let errors = res.error_lines();
    assert_eq!(errors.len(), 1, "{}", res.dump());
    assert!(
        errors[0].contains(&format!("refusing to promote `{SHA_A}`"))
            && errors[0].contains("requires (smoke)")
            && errors[0].contains("smoke: skipped"),
        "{}",
        errors[0]
    );
    for (name, proxy) in [("ECR/S3", &aws), ("ECS", &ecs), ("registry", &reg)] {
        assert!(
            proxy.mutating_calls().is_empty(),
            "{name}: {:?}",
            proxy.mutating_calls()
        );
    }
    assert!(w.prod_sim.mutating_calls().is_empty());

    // An unknown gate in `promote.require` is a config error before anything is read.
    let bad = w.config().replace(
        "    promote-from: stage\n",
        "    promote-from: stage\n    promote: { require: [rollout, smok] }\n",
    );
    let res = w
        .action("prod", SHA_A)
        .file(".github/cloudshop-deploy.yml", &bad)
        .input("command", "promote")
        .run_within(Duration::from_secs(60));
    let errors = res.error_lines();
    assert_eq!(errors.len(), 1, "{}", res.dump());
    assert!(
        errors[0].contains("promote.require") && errors[0].contains("`smok`"),
        "{}",
        errors[0]
    );
    assert!(w.prod_sim.mutating_calls().is_empty());

    // Overridden: promoted, with a warning that says what was missing.
    let res = w
        .action("prod", SHA_A)
        .input("command", "promote")
        .input("allow-unverified", "true")
        .run_within(Duration::from_secs(120));
    assert_eq!(res.output("status"), "deployed", "{}", res.dump());
    assert!(
        res.stdout.contains("::warning") && res.stdout.contains("smoke: skipped"),
        "{}",
        res.dump()
    );
}

/// A release that passed its rollout and smoke tests on stage is promoted by default, and refused when
/// prod requires a gate stage does not run (the watch: stage has no `watch`).
#[test]
fn promote_require_asks_for_the_gates_prod_needs() {
    let w = world();
    w.build(SHA_A);
    assert_eq!(w.deploy_stage(SHA_A, true).output("status"), "deployed");
    let m = marker(&w.reg, &w.stage, "stage", SHA_A).expect("the marker is written");
    assert_eq!(m.gate("smoke"), "passed", "{m:?}");
    assert_eq!(m.gate("watch"), "not-configured", "{m:?}");
    let strict = w.config().replace(
        "    promote-from: stage\n",
        "    promote-from: stage\n    promote: { require: [rollout, smoke, watch] }\n",
    );
    let res = w
        .action("prod", SHA_A)
        .file(".github/cloudshop-deploy.yml", &strict)
        .input("command", "promote")
        .run_within(Duration::from_secs(120));
    assert_eq!(res.output("status"), "failed", "{}", res.dump());
    let errors = res.error_lines();
    assert_eq!(errors.len(), 1, "{}", res.dump());
    assert!(
        errors[0].contains("requires (watch)") && errors[0].contains("watch: not-configured"),
        "{}",
        errors[0]
    );
    assert!(w.prod_sim.mutating_calls().is_empty());
    // The default (rollout, smoke) promotes it.
    let res = w
        .action("prod", SHA_A)
        .input("command", "promote")
        .run_within(Duration::from_secs(120));
    assert_eq!(res.output("status"), "deployed", "{}", res.dump());
}
