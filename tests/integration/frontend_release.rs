//! A release is built once and moves as one, through the real binary: the stage deploy publishes the
//! frontend build (placeholders intact) as `<sha>-frontend` in a real OCI registry on loopback; the
//! promotion copies it by digest and syncs prod's bucket from it with prod's values, with no build folder
//! in the workspace; a rollback after the sync puts the previous site back byte for byte; a promotion
//! whose artifact is missing changes nothing. ECR and S3 API calls go to moto, ECS to the simulator.

use harness as common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::app::{App, Mode};
use common::ecs_sim::{EcsSim, Scenario, Seed};
use common::registry::LocalRegistry;
use common::seed::{create_bucket, rt, seed_ecr};
use common::{Action, Moto, RunResult};

const SHA_A: &str = "a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1";
const SHA_B: &str = "b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2";

/// A CRA-like build made with `REACT_APP_API_URL=__CLOUDSHOP_API_URL__ npm run build`.
const INDEX_A: &str = "<!doctype html><script>window.API=\"__CLOUDSHOP_API_URL__\";window.ENV=\"__CLOUDSHOP_SENTRY_ENV__\"</script><script src=\"/static/js/main.a1a1a1.js\"></script><link href=\"/static/css/main.c3c3c3.css\" rel=\"stylesheet\">";
const JS_A: &str = "fetch(\"__CLOUDSHOP_API_URL__/products\").then(r=>r.json())";
const CSS: &str = "body{margin:0}";

/// Every object of a bucket (the action's bookkeeping included): key -> (bytes, Content-Type,
/// Cache-Control).
type Objects = BTreeMap<String, (Vec<u8>, Option<String>, Option<String>)>;

fn objects(moto: &Moto, bucket: &str) -> Objects {
    rt().block_on(async {
        let s3 = moto.s3().await;
        let list = s3.list_objects_v2().bucket(bucket).send().await.unwrap();
        let mut out = BTreeMap::new();
        for o in list.contents() {
            let key = o.key().unwrap().to_string();
            let got = s3
                .get_object()
                .bucket(bucket)
                .key(&key)
                .send()
                .await
                .unwrap();
            let (ct, cc) = (
                got.content_type().map(str::to_string),
                got.cache_control().map(str::to_string),
            );
            let bytes = got.body.collect().await.unwrap().into_bytes().to_vec();
            out.insert(key, (bytes, ct, cc));
        }
        out
    })
}

fn text(objects: &Objects, key: &str) -> String {
    String::from_utf8(objects[key].0.clone()).unwrap()
}

fn website_keys(objects: &Objects) -> Vec<&str> {
    objects
        .keys()
        .map(String::as_str)
        .filter(|k| !k.starts_with(".cloudshop-deploy/"))
        .collect()
}

/// The IAM actions behind the calls the proxies recorded, and those `policy` does not grant.
fn not_granted(proxies: &[&common::faults::FaultProxy], policy: &str) -> Vec<String> {
    let called: std::collections::BTreeSet<String> = proxies
        .iter()
        .flat_map(|p| p.ops())
        .filter_map(|op| common::faults::iam_action(&op))
        .collect();
    assert!(called.contains("s3:PutObject"), "{called:?}");
    let granted = common::policy_actions(policy);
    called.difference(&granted).cloned().collect()
}

fn smoke() -> &'static str {
    "{ timeout: 5s, request-timeout: 1s, retry-interval: 50ms, frontend-check: false }"
}

// ---------------------------------------------------------------- (a) built once, promoted by digest

struct Stages {
    moto: Moto,
    reg: LocalRegistry,
    stage: String,
    prod: String,
    stage_bucket: String,
    prod_bucket: String,
    stage_api: App,
    prod_api: App,
}

fn stages() -> Stages {
    let moto = Moto::shared();
    let (stage, prod) = (
        moto.name("stage-cloudshop-backend"),
        moto.name("prod-cloudshop-backend"),
    );
    // The stage deploy resolves the image through the ECR API (moto); the registry holds the same
    // image (one digest) for the promotion.
    seed_ecr(&moto, &stage, &[], false);
    seed_ecr(&moto, &prod, &[], false);
    let reg = LocalRegistry::start();
    reg.push_image_known_to_ecr(&moto, &stage, SHA_A, 2, 64 * 1024);
    let (stage_bucket, prod_bucket) = (moto.name("stage-web"), moto.name("prod-web"));
    create_bucket(&moto, &stage_bucket);
    create_bucket(&moto, &prod_bucket);
    Stages {
        moto,
        reg,
        stage,
        prod,
        stage_bucket,
        prod_bucket,
        stage_api: App::start(),
        prod_api: App::start(),
    }
}

fn stages_config(s: &Stages) -> String {
    format!(
        r#"
region: us-east-1
environments:
  stage:
    cluster: stage-cluster
    service: stage-backend
    container: backend
    ecr-repository: {stage}
    api-url: {stage_api}
    frontend: {{ bucket: {stage_bucket}, dir: build, values: {{ SENTRY_ENV: staging }} }}
    smoke: {smoke}
  prod:
    promote-from: stage
    cluster: prod-cluster
    service: prod-backend
    container: backend
    ecr-repository: {prod}
    api-url: {prod_api}
    frontend: {{ bucket: {prod_bucket}, dir: build, values: {{ SENTRY_ENV: production }} }}
    smoke: {smoke}
"#,
        stage = s.stage,
        prod = s.prod,
        stage_api = s.stage_api.base_url(),
        prod_api = s.prod_api.base_url(),
        stage_bucket = s.stage_bucket,
        prod_bucket = s.prod_bucket,
        smoke = smoke(),
    )
}

fn prod_sim(prod: &str) -> EcsSim {
    let seed = Seed {
        cluster: "prod-cluster".into(),
        service: "prod-backend".into(),
        containers: vec![(
            "backend".into(),
            format!("123456789012.dkr.ecr.us-east-1.amazonaws.com/{prod}:previous"),
        )],
        ..Seed::default()
    };
    EcsSim::start_with(seed, Scenario::Succeed { after: 2 })
}

fn promote(s: &Stages, sim_endpoint: &str, aws_endpoint: Option<&str>, reg: &str) -> RunResult {
    let mut action = Action::new()
        .with_moto(&s.moto)
        .env("AWS_ENDPOINT_URL_ECS", sim_endpoint)
        // Only the environments file: no app code, no build folder.
        .file(".github/cloudshop-deploy.yml", &stages_config(s))
        .input("command", "promote")
        .input("environment", "prod")
        .input("image-tag", SHA_A)
        .input("registry-url", reg)
        .input("poll-interval", "30ms");
    if let Some(e) = aws_endpoint {
        action = action.env("AWS_ENDPOINT_URL", e);
    }
    action.run_within(Duration::from_secs(180))
}

#[test]
fn a_release_built_once_is_promoted_with_its_frontend_and_each_environments_values() {
    use common::faults::{FaultPlan, FaultProxy};
    let s = stages();
    let stage_sim = EcsSim::start(Scenario::Succeed { after: 2 });
    // Every call of the deploy and of the promotion is recorded, to compare with their policies.
    let (aws, reg) = (
        FaultProxy::start(&s.moto.endpoint, FaultPlan::none()),
        FaultProxy::start(&s.reg.url, FaultPlan::none()),
    );
    let deployed = Action::new()
        .with_moto(&s.moto)
        .env("AWS_ENDPOINT_URL", &aws.endpoint)
        .env("AWS_ENDPOINT_URL_ECS", &stage_sim.endpoint)
        .file(".github/cloudshop-deploy.yml", &stages_config(&s))
        .file("build/index.html", INDEX_A)
        .file("build/static/js/main.a1a1a1.js", JS_A)
        .file("build/static/css/main.c3c3c3.css", CSS)
        .input("environment", "stage")
        .input("image-tag", SHA_A)
        .input("registry-url", &reg.endpoint)
        .input("poll-interval", "30ms")
        .input("wait-timeout", "30s")
        .run_within(Duration::from_secs(180));
    assert_eq!(deployed.output("status"), "deployed", "{}", deployed.dump());
    assert_eq!(
        not_granted(&[&aws, &reg], "deploy-stage.json"),
        Vec::<String>::new()
    );
    let frontend = deployed.output("frontend-digest").to_string();
    let tag = format!("{SHA_A}-frontend");
    assert_eq!(
        s.reg.digest_of(&s.stage, &tag).as_deref(),
        Some(frontend.as_str()),
        "the stage deploy published its build"
    );
    let marker = crate::release::marker(&s.reg, &s.stage, "stage", SHA_A)
        .expect("the stage release passed and is marked");
    assert_eq!(
        marker.frontend.as_deref(),
        Some(frontend.as_str()),
        "the marker records the frontend that passed with the image"
    );

    // The image stage ran, in the registry the promotion reads.
    let image = s.reg.digest_of(&s.stage, SHA_A).expect("the stage image");
    let sim = prod_sim(&s.prod);
    let (aws, reg) = (
        FaultProxy::start(&s.moto.endpoint, FaultPlan::none()),
        FaultProxy::start(&s.reg.url, FaultPlan::none()),
    );
    let promoted = promote(&s, &sim.endpoint, Some(&aws.endpoint), &reg.endpoint);
    assert_eq!(promoted.code, 0, "{}", promoted.dump());
    assert_eq!(
        not_granted(&[&aws, &reg], "promote-prod.json"),
        Vec::<String>::new()
    );
    assert_eq!(promoted.output("status"), "deployed");
    assert_eq!(promoted.output("image-digest"), image);
    assert_eq!(promoted.output("frontend-digest"), frontend);
    assert_eq!(
        s.reg.digest_of(&s.prod, &tag).as_deref(),
        Some(frontend.as_str()),
        "the artifact was copied by digest"
    );
    let td = sim
        .task_definition(&sim.service_task_definition())
        .expect("task definition");
    let running = td["containerDefinitions"][0]["image"].as_str().unwrap();
    assert!(
        running.ends_with(&format!("/{}@{image}", s.prod)),
        "{running}"
    );

    // Both buckets hold A's files, each with its own environment's values.
    let (stage, prod) = (
        objects(&s.moto, &s.stage_bucket),
        objects(&s.moto, &s.prod_bucket),
    );
    let keys = vec![
        "index.html",
        "static/css/main.c3c3c3.css",
        "static/js/main.a1a1a1.js",
    ];
    assert_eq!(website_keys(&stage), keys);
    assert_eq!(website_keys(&prod), keys);
    let (stage_api, prod_api) = (s.stage_api.base_url(), s.prod_api.base_url());
    assert_eq!(
        text(&stage, "index.html"),
        INDEX_A
            .replace("__CLOUDSHOP_API_URL__", &stage_api)
            .replace("__CLOUDSHOP_SENTRY_ENV__", "staging")
    );
    assert_eq!(
        text(&prod, "index.html"),
        INDEX_A
            .replace("__CLOUDSHOP_API_URL__", &prod_api)
            .replace("__CLOUDSHOP_SENTRY_ENV__", "production")
    );
    assert_eq!(
        text(&prod, "static/js/main.a1a1a1.js"),
        JS_A.replace("__CLOUDSHOP_API_URL__", &prod_api)
    );
    assert_eq!(text(&prod, "static/css/main.c3c3c3.css"), CSS);
    for (bucket, objects) in [("stage", &stage), ("prod", &prod)] {
        for key in website_keys(objects) {
            assert!(
                !text(objects, key).contains("__CLOUDSHOP_"),
                "{bucket}: a placeholder is left in {key}"
            );
        }
    }
    // Prod's state names the live release.
    let state = text(&prod, ".cloudshop-deploy/sync-state.json");
    assert!(state.contains(&frontend), "{state}");
}

// ---------------------------------------------------------------- (c) a missing artifact

#[test]
fn a_promotion_without_the_frontend_artifact_changes_nothing() {
    use common::faults::{FaultPlan, FaultProxy};
    let s = stages();
    // The image is there and passed stage, its frontend never was published (deployed without one).
    let digest = s.reg.digest_of(&s.stage, SHA_A).expect("the stage image");
    crate::release::mark_verified(&s.reg, &s.stage, "stage", SHA_A, &digest);
    let aws = FaultProxy::start(&s.moto.endpoint, FaultPlan::none());
    let reg = FaultProxy::start(&s.reg.url, FaultPlan::none());
    let sim = prod_sim(&s.prod);
    let res = promote(&s, &sim.endpoint, Some(&aws.endpoint), &reg.endpoint);
    assert_ne!(res.code, 0, "{}", res.dump());
    assert_eq!(res.output("status"), "failed");
    let errors = res.error_lines();
    assert_eq!(errors.len(), 1, "{}", res.dump());
    assert!(
        errors[0].contains(&format!("{SHA_A}-frontend")),
        "{}",
        res.dump()
    );
    assert!(
        res.stdout
            .contains("hint: deploy this commit to `stage` first"),
        "{}",
        res.dump()
    );
    let writes: Vec<String> = aws
        .mutating_calls()
        .into_iter()
        .chain(reg.mutating_calls())
        .chain(sim.mutating_calls())
        .collect();
    assert!(writes.is_empty(), "{writes:?}");
    assert!(!s.reg.repository_exists_on_disk(&s.prod));
    assert!(objects(&s.moto, &s.prod_bucket).is_empty());
}

/// One policy for a release that is live and passed its checks but whose bookkeeping failed: the stale
/// files of the previous release cannot be deleted, and the run still says `deployed`, warns with what
/// is left, and records the verified release (before, it failed and skipped the marker).
#[test]
fn a_stale_file_delete_that_fails_after_a_good_release_is_a_warning_and_the_marker_is_written() {
    use common::faults::{Fault, FaultPlan, FaultProxy};
    let s = stages();
    s.reg
        .push_image_known_to_ecr(&s.moto, &s.stage, SHA_B, 2, 64 * 1024);
    let sim = EcsSim::start(Scenario::Succeed { after: 2 });
    let deploy = |sha: &str, aws: &str, js: (&str, &str)| {
        Action::new()
            .with_moto(&s.moto)
            .env("AWS_ENDPOINT_URL", aws)
            .env("AWS_ENDPOINT_URL_ECS", &sim.endpoint)
            .file(".github/cloudshop-deploy.yml", &stages_config(&s))
            .file("build/index.html", &INDEX_A.replace("main.a1a1a1.js", js.0))
            .file(&format!("build/static/js/{}", js.0), js.1)
            .file("build/static/css/main.c3c3c3.css", CSS)
            .input("environment", "stage")
            .input("image-tag", sha)
            .input("registry-url", &s.reg.url)
            .input("poll-interval", "30ms")
            .input("wait-timeout", "30s")
            .run_within(Duration::from_secs(180))
    };
    let a = deploy(SHA_A, &s.moto.endpoint, ("main.a1a1a1.js", JS_A));
    assert_eq!(a.output("status"), "deployed", "{}", a.dump());
    // B no longer has A's bundle: deleting it (and B's backups) is refused.
    let proxy = FaultProxy::start(
        &s.moto.endpoint,
        FaultPlan {
            always: vec![("s3:DeleteObjects".into(), Fault::Denied)],
            ..FaultPlan::none()
        },
    );
    let b = deploy(
        SHA_B,
        &proxy.endpoint,
        ("main.b2b2b2.js", "console.log('B')"),
    );
    assert_eq!(b.code, 0, "{}", b.dump());
    assert_eq!(b.output("status"), "deployed", "{}", b.dump());
    assert!(b.error_lines().is_empty(), "{}", b.dump());
    let warnings: Vec<&str> = b
        .stdout
        .lines()
        .filter(|l| l.starts_with("::warning") && l.contains("its cleanup did not finish"))
        .collect();
    assert_eq!(warnings.len(), 1, "{}", b.dump());
    assert!(warnings[0].contains("AccessDenied"), "{}", warnings[0]);
    assert!(b.summary.contains("Left unfinished"), "{}", b.summary);
    assert!(
        crate::release::marker(&s.reg, &s.stage, "stage", SHA_B).is_some(),
        "the release passed and is marked\n{}",
        b.dump()
    );
    let keys = objects(&s.moto, &s.stage_bucket);
    assert!(
        keys.contains_key("static/js/main.a1a1a1.js"),
        "{:?}",
        keys.keys()
    );
}

// ---------------------------------------------------------------- (b) a rollback after the sync

const REV3: &str = "arn:aws:ecs:us-east-1:123456789012:task-definition/cloudshop-backend:3";

#[test]
fn a_watch_failure_after_the_sync_puts_the_previous_site_back_byte_for_byte() {
    rolled_back_after_the_sync(Check::Watch);
}

#[test]
fn a_failed_website_check_puts_the_previous_site_back_byte_for_byte() {
    rolled_back_after_the_sync(Check::Website);
}

#[test]
fn a_sync_that_fails_part_way_puts_the_previous_site_back_byte_for_byte() {
    rolled_back_after_the_sync(Check::Sync);
}

/// The sync state is the ledger a later rollback reads: when it cannot be written, the release does not
/// count as done and is taken back (before, the run went on and reported `deployed` over a state that
/// still named the previous release as live).
#[test]
fn a_sync_state_that_cannot_be_written_puts_the_previous_site_back() {
    rolled_back_after_the_sync(Check::State);
}

/// A restore goes on past an object it cannot copy back, lists it, and leaves its journal in the
/// bucket; the next run finishes it first (says so) and plans over the bucket as that left it.
#[test]
fn a_restore_goes_on_past_a_failed_copy_and_the_next_run_finishes_it() {
    rolled_back_after_the_sync(Check::Restore);
}

/// What fails after the sync.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Check {
    /// The API, for good, while watched.
    Watch,
    /// The website check (the API passed its smoke tests).
    Website,
    /// The sync itself: the root `index.html` cannot be uploaded, after the assets were.
    Sync,
    /// The sync state cannot be written, after every file was uploaded.
    State,
    /// The API fails while watched, and the restore cannot copy `manifest.json` back.
    Restore,
}

fn rolled_back_after_the_sync(check: Check) {
    let moto = Moto::shared();
    let repo = moto.name("stage-cloudshop-backend");
    let bucket = moto.name("stage-web");
    seed_ecr(&moto, &repo, &[SHA_A, SHA_B], false);
    create_bucket(&moto, &bucket);
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
    website-url: {web}
    frontend: {{ bucket: {bucket}, dir: build, values: {{ SENTRY_ENV: staging }} }}
    smoke:
      timeout: 2s
      request-timeout: 500ms
      retry-interval: 50ms
      frontend-check: {website}
      watch: {watch}
      watch-interval: 50ms
      watch-failures: 3
"#,
        api = app.base_url(),
        web = app.website_url(),
        website = check == Check::Website,
        watch = if matches!(check, Check::Watch | Check::Restore) {
            "3s"
        } else {
            "0s"
        },
    );
    let deploy = |sha: &str, aws: Option<&str>, files: &[(&str, &str)]| {
        let mut action = Action::new()
            .with_moto(&moto)
            .env("AWS_ENDPOINT_URL_ECS", &sim.endpoint)
            .file(".github/cloudshop-deploy.yml", &config)
            .input("environment", "stage")
            .input("image-tag", sha)
            .input("poll-interval", "30ms")
            .input("wait-timeout", "30s");
        if let Some(e) = aws {
            action = action.env("AWS_ENDPOINT_URL", e);
        }
        for (rel, body) in files {
            action = action.file(&format!("build/{rel}"), body);
        }
        action.run_within(Duration::from_secs(180))
    };

    // Release A passes its watch.
    let a = deploy(
        SHA_A,
        None,
        &[
            ("index.html", INDEX_A),
            ("static/js/main.a1a1a1.js", JS_A),
            ("static/css/main.c3c3c3.css", CSS),
            ("robots.txt", "User-agent: *\n"),
            ("manifest.json", "{\"name\":\"CloudShop\"}"),
        ],
    );
    assert_eq!(a.output("status"), "deployed", "{}", a.dump());
    assert_eq!(sim.service_task_definition(), REV3);
    let before = objects(&moto, &bucket);
    assert!(before.contains_key(".cloudshop-deploy/sync-state.json"));

    // Release B: a new bundle, a new index.html, changed robots.txt and manifest.json, A's bundle gone
    // from the build. Its smoke tests pass; then the API fails for good while watched, or the website
    // check fails.
    let smoke_requests = app.requests() - app.requests_to("/") as u64;
    let passing = match check {
        Check::Watch | Check::Restore => 6,
        Check::Website => smoke_requests,
        Check::Sync | Check::State => 1_000_000,
    };
    app.set_mode(Mode::FailAfter(app.requests() + passing));
    use common::faults::Fault;
    let nth = match check {
        // B uploads 4 assets (2 new, 2 overwriting A's), then `index.html`: the 5th `PutObject` and
        // every retry of it fail.
        Check::Sync => (5..=12)
            .map(|n| ("s3:PutObject".to_string(), n, Fault::ServerError))
            .collect(),
        // The 6th `PutObject`, after the 5 files: the state object.
        Check::State => vec![("s3:PutObject".to_string(), 6, Fault::Denied)],
        // The sync copies aside `manifest.json`, `robots.txt`, `index.html` and the state; the restore
        // copies them back in that order: the 5th `CopyObject` is `manifest.json`'s.
        Check::Restore => vec![("s3:CopyObject".to_string(), 5, Fault::Denied)],
        Check::Watch | Check::Website => Vec::new(),
    };
    let faults = common::faults::FaultPlan {
        nth,
        ..common::faults::FaultPlan::none()
    };
    let proxy = common::faults::FaultProxy::start(&moto.endpoint, faults);
    let proxied = matches!(check, Check::Sync | Check::State | Check::Restore);
    let b = deploy(
        SHA_B,
        proxied.then_some(proxy.endpoint.as_str()),
        &[
            (
                "index.html",
                "<!doctype html><script src=\"/static/js/main.b2b2b2.js\"></script><link href=\"/static/css/main.c3c3c3.css\" rel=\"stylesheet\">",
            ),
            ("static/js/main.b2b2b2.js", "console.log('B')"),
            ("static/css/main.c3c3c3.css", CSS),
            ("robots.txt", "User-agent: *\nDisallow: /admin\n"),
            ("manifest.json", "{\"name\":\"CloudShop B\"}"),
            ("favicon.ico", "icon"),
        ],
    );
    assert_ne!(b.code, 0, "{}", b.dump());
    assert_eq!(b.output("status"), "rolled-back", "{}", b.dump());
    match check {
        Check::Watch => {
            assert_eq!(b.output("frontend-uploaded"), "5", "{}", b.dump());
            let report: serde_json::Value = serde_json::from_str(b.output("smoke-report")).unwrap();
            assert_eq!(report["watch"]["passed"], false, "{report}");
        }
        Check::Website => {
            assert_eq!(b.output("frontend-uploaded"), "5", "{}", b.dump());
            assert!(b.error_lines()[0].contains("website"), "{}", b.dump());
        }
        Check::Sync => {
            assert_eq!(b.output("frontend-uploaded"), "4", "{}", b.dump());
            assert!(b.error_lines()[0].contains("index.html"), "{}", b.dump());
        }
        Check::State => {
            assert_eq!(b.output("frontend-uploaded"), "5", "{}", b.dump());
            assert!(
                b.error_lines()[0]
                    .contains("failed to write the sync state `s3://{bucket}/.cloudshop-deploy/sync-state.json`".replace("{bucket}", &bucket).as_str()),
                "{}",
                b.dump()
            );
        }
        Check::Restore => {
            // ECS is back on A's revision.
            assert_eq!(sim.service_task_definition(), REV3, "{:?}", sim.calls());
            return restore_left_unfinished(&moto, &bucket, &before, &b, || {
                app.set_mode(Mode::Healthy);
                deploy(
                    SHA_A,
                    None,
                    &[
                        ("index.html", INDEX_A),
                        ("static/js/main.a1a1a1.js", JS_A),
                        ("static/css/main.c3c3c3.css", CSS),
                        ("robots.txt", "User-agent: *\n"),
                        ("manifest.json", "{\"name\":\"CloudShop\"}"),
                    ],
                )
            });
        }
    }
    // ECS is back on A's revision.
    assert_eq!(sim.service_task_definition(), REV3, "{:?}", sim.calls());

    // The bucket is A's, byte for byte and header for header: same keys (the state included, no
    // backups left), same bytes.
    let after = objects(&moto, &bucket);
    assert_eq!(
        after.keys().collect::<Vec<_>>(),
        before.keys().collect::<Vec<_>>()
    );
    for (key, was) in &before {
        assert_eq!(&after[key], was, "{key} differs from release A");
    }
    // Every file A's index.html references is there.
    let index = text(&after, "index.html");
    for asset in ["static/js/main.a1a1a1.js", "static/css/main.c3c3c3.css"] {
        assert!(
            index.contains(asset) && after.contains_key(asset),
            "{asset}"
        );
    }
    assert!(
        b.summary.contains("the previous release's files are back"),
        "{}",
        b.summary
    );
}

/// B's restore could not copy `manifest.json` back: every other object is A's again, the one left is
/// listed in the summary, and the journal with the backup it needs stays; `next` (A deployed again)
/// finishes it first, says so, and then finds nothing to upload.
fn restore_left_unfinished(
    moto: &Moto,
    bucket: &str,
    before: &Objects,
    b: &RunResult,
    next: impl FnOnce() -> RunResult,
) {
    const JOURNAL: &str = ".cloudshop-deploy/pending.json";
    assert_eq!(b.output("status"), "rolled-back", "{}", b.dump());
    assert!(
        b.summary.contains("Left unfinished") && b.summary.contains("manifest.json"),
        "{}",
        b.summary
    );
    let after = objects(moto, bucket);
    for key in [
        "index.html",
        "robots.txt",
        ".cloudshop-deploy/sync-state.json",
    ] {
        assert_eq!(after[key], before[key], "{key} was not put back");
    }
    assert_ne!(after["manifest.json"], before["manifest.json"]);
    assert!(after.contains_key(JOURNAL), "{:?}", after.keys());
    assert!(after.contains_key(".cloudshop-deploy/previous/manifest.json"));
    assert!(
        !after.contains_key("static/js/main.b2b2b2.js"),
        "created keys go"
    );

    let c = next();
    // The backend already runs A again.
    assert_eq!(c.output("status"), "no-change", "{}", c.dump());
    assert!(
        c.stdout.lines().any(|l| l.starts_with("::notice")
            && l.contains("an earlier run left the restore of the previous release")
            && l.contains("it is finished first")),
        "{}",
        c.dump()
    );
    // Planned again once the restore was finished: A's files are all in place.
    assert_eq!(c.output("frontend-uploaded"), "0", "{}", c.dump());
    // A's site byte for byte, no journal and no backup left (the state records the copies' new
    // LastModified).
    let last = objects(moto, bucket);
    assert_eq!(
        last.keys().collect::<Vec<_>>(),
        before.keys().collect::<Vec<_>>()
    );
    assert_eq!(website(last), website(before.clone()));
}

// ---------------------------------------------------------------- `command: rollback`

/// The website objects (bookkeeping left out).
fn website(objects: Objects) -> Objects {
    objects
        .into_iter()
        .filter(|(k, _)| !k.starts_with(".cloudshop-deploy/"))
        .collect()
}

#[test]
fn command_rollback_puts_the_previous_release_back_from_its_artifact() {
    let moto = Moto::shared();
    let repo = moto.name("stage-cloudshop-backend");
    let bucket = moto.name("stage-web");
    seed_ecr(&moto, &repo, &[SHA_A, SHA_B], false);
    create_bucket(&moto, &bucket);
    let reg = LocalRegistry::start();
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
    frontend: {{ bucket: {bucket}, dir: build, values: {{ SENTRY_ENV: staging }} }}
    smoke: {smoke}
"#,
        api = app.base_url(),
        smoke = smoke(),
    );
    let run = |command: &str, sha: &str, files: &[(&str, &str)]| {
        let mut action = Action::new()
            .with_moto(&moto)
            .env("AWS_ENDPOINT_URL_ECS", &sim.endpoint)
            .file(".github/cloudshop-deploy.yml", &config)
            .input("environment", "stage")
            .input("command", command)
            .input("registry-url", &reg.url)
            .input("poll-interval", "30ms")
            .input("wait-timeout", "30s");
        if !sha.is_empty() {
            action = action.input("image-tag", sha);
        }
        for (rel, body) in files {
            action = action.file(&format!("build/{rel}"), body);
        }
        action.run_within(Duration::from_secs(180))
    };
    let a = run(
        "deploy",
        SHA_A,
        &[
            ("index.html", INDEX_A),
            ("static/js/main.a1a1a1.js", JS_A),
            ("robots.txt", "User-agent: *\n"),
        ],
    );
    assert_eq!(a.output("status"), "deployed", "{}", a.dump());
    let site_a = website(objects(&moto, &bucket));
    let b = run(
        "deploy",
        SHA_B,
        &[
            (
                "index.html",
                "<script src=\"/static/js/main.b2b2b2.js\"></script>",
            ),
            ("static/js/main.b2b2b2.js", "console.log('B')"),
            ("robots.txt", "User-agent: *\nDisallow: /\n"),
        ],
    );
    assert_eq!(b.output("status"), "deployed", "{}", b.dump());
    assert_ne!(a.output("frontend-digest"), b.output("frontend-digest"));
    assert_ne!(website(objects(&moto, &bucket)), site_a);

    // No build folder: the previous release comes from its artifact. Every call it makes is granted by
    // the documented rollback policy.
    let (aws, proxy) = (
        common::faults::FaultProxy::start(&moto.endpoint, common::faults::FaultPlan::none()),
        common::faults::FaultProxy::start(&reg.url, common::faults::FaultPlan::none()),
    );
    let back = Action::new()
        .with_moto(&moto)
        .env("AWS_ENDPOINT_URL", &aws.endpoint)
        .env("AWS_ENDPOINT_URL_ECS", &sim.endpoint)
        .file(".github/cloudshop-deploy.yml", &config)
        .input("environment", "stage")
        .input("command", "rollback")
        .input("registry-url", &proxy.endpoint)
        .input("poll-interval", "30ms")
        .input("wait-timeout", "30s")
        .run_within(Duration::from_secs(180));
    assert_eq!(back.output("status"), "rolled-back", "{}", back.dump());
    assert_eq!(
        not_granted(&[&aws, &proxy], "rollback-stage.json"),
        Vec::<String>::new()
    );
    assert_eq!(sim.service_task_definition(), REV3, "{:?}", sim.calls());
    assert_eq!(back.output("frontend-digest"), a.output("frontend-digest"));
    let after = objects(&moto, &bucket);
    assert!(
        !after
            .keys()
            .any(|k| k.starts_with(".cloudshop-deploy/previous/")),
        "backups left: {:?}",
        after.keys()
    );
    assert_eq!(website(after), site_a, "the site is not release A's");
}

// ---------------------------------------------------------------- publishing is reproducible

#[test]
fn the_same_build_publishes_the_same_digest_and_an_immutable_tag_never_takes_another() {
    use common::faults::{FaultPlan, FaultProxy};
    let moto = Moto::shared();
    let repo = moto.name("stage-cloudshop-backend");
    let bucket = moto.name("stage-web");
    seed_ecr(&moto, &repo, &[SHA_A], true);
    create_bucket(&moto, &bucket);
    let reg = LocalRegistry::start();
    let sim = EcsSim::start(Scenario::Succeed { after: 2 });
    let app = App::start();
    let config = format!(
        "region: us-east-1\nenvironments:\n  stage:\n    cluster: stage-cluster\n    service: stage-backend\n    container: backend\n    ecr-repository: {repo}\n    api-url: {api}\n    frontend: {{ bucket: {bucket}, dir: build, values: {{ SENTRY_ENV: staging }} }}\n    smoke: {smoke}\n",
        api = app.base_url(),
        smoke = smoke(),
    );
    let deploy = |aws: Option<&str>, registry: &str, js: &str| {
        let mut action = Action::new()
            .with_moto(&moto)
            .env("AWS_ENDPOINT_URL_ECS", &sim.endpoint)
            .file(".github/cloudshop-deploy.yml", &config)
            .file("build/index.html", INDEX_A)
            .file("build/static/js/main.a1a1a1.js", js)
            .input("environment", "stage")
            .input("image-tag", SHA_A)
            .input("registry-url", registry)
            .input("poll-interval", "30ms")
            .input("wait-timeout", "30s");
        if let Some(e) = aws {
            action = action.env("AWS_ENDPOINT_URL", e);
        }
        action.run_within(Duration::from_secs(180))
    };
    let first = deploy(None, &reg.url, JS_A);
    assert_eq!(first.output("status"), "deployed", "{}", first.dump());
    let digest = first.output("frontend-digest").to_string();

    // The same build again (a fresh checkout, new mtimes): the same digest, nothing pushed.
    let proxy = FaultProxy::start(&reg.url, FaultPlan::none());
    let again = deploy(None, &proxy.endpoint, JS_A);
    assert_eq!(again.code, 0, "{}", again.dump());
    assert_eq!(again.output("frontend-digest"), digest);
    assert!(
        proxy.mutating_calls().is_empty(),
        "{:?}",
        proxy.mutating_calls()
    );

    // Another build of the same commit cannot take the immutable tag: refused before any write.
    let ecs_before = sim.mutating_calls().len();
    let aws = FaultProxy::start(&moto.endpoint, FaultPlan::none());
    let proxy = FaultProxy::start(&reg.url, FaultPlan::none());
    let other = deploy(
        Some(&aws.endpoint),
        &proxy.endpoint,
        "fetch(\"__CLOUDSHOP_API_URL__/products?v=2\")",
    );
    assert_ne!(other.code, 0, "{}", other.dump());
    let errors = other.error_lines();
    assert_eq!(errors.len(), 1, "{}", other.dump());
    assert!(
        errors[0].contains(&format!("{SHA_A}-frontend")) && errors[0].contains("immutable"),
        "{}",
        other.dump()
    );
    let writes: Vec<String> = aws
        .mutating_calls()
        .into_iter()
        .chain(proxy.mutating_calls())
        .collect();
    assert!(writes.is_empty(), "{writes:?}");
    assert_eq!(sim.mutating_calls().len(), ecs_before);
    assert_eq!(
        reg.digest_of(&repo, &format!("{SHA_A}-frontend")),
        Some(digest)
    );
}
