//! Multipart uploads are aborted on every way out, through the real binary: a sibling upload's failure
//! and a SIGTERM both drop an upload whose parts are in flight (they stall at the fault proxy), and
//! afterwards moto lists no incomplete multipart upload in the bucket (their parts would be billed until
//! a lifecycle rule removed them).

use std::time::Duration;

use harness as common;

use common::app::App;
use common::ecs_sim::{EcsSim, Scenario};
use common::faults::{Fault, FaultPlan, FaultProxy};
use common::seed::{create_bucket, rt, seed_ecr};
use common::{Action, Moto, RunResult};

const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

/// Above the 16 MiB multipart threshold.
const BIG: usize = 20 * 1024 * 1024;

struct Setup {
    moto: Moto,
    bucket: String,
    sim: EcsSim,
    _app: App,
    action: Action,
}

/// A deploy whose build has one large asset (uploaded in parts) beside a small one; every AWS call
/// goes through `proxy`, whose plan stalls every `UploadPart`.
fn setup(proxy: &FaultProxy, moto: Moto) -> Setup {
    let repo = moto.name("stage-cloudshop-backend");
    let bucket = moto.name("stage-multipart");
    seed_ecr(&moto, &repo, &[SHA], false);
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
        .file("build/static/media/video.bin", &"v".repeat(BIG))
        .input("environment", "stage")
        .input("image-tag", SHA)
        .input("poll-interval", "30ms")
        .input("wait-timeout", "30s");
    Setup {
        moto,
        bucket,
        sim,
        _app: app,
        action,
    }
}

fn stalled_parts(extra: Vec<(String, usize, Fault)>) -> FaultPlan {
    FaultPlan {
        always: vec![("s3:UploadPart".into(), Fault::Stall)],
        nth: extra,
        stall: Duration::from_secs(60),
        ..FaultPlan::none()
    }
}

/// The incomplete multipart uploads moto lists in `bucket`.
fn incomplete(moto: &Moto, bucket: &str) -> Vec<String> {
    rt().block_on(async {
        let out = moto
            .s3()
            .await
            .list_multipart_uploads()
            .bucket(bucket)
            .send()
            .await
            .unwrap();
        out.uploads()
            .iter()
            .map(|u| format!("{:?} {:?}", u.key(), u.upload_id()))
            .collect()
    })
}

fn assert_aborted(s: &Setup, proxy: &FaultProxy, res: &RunResult) {
    let ops = proxy.ops();
    assert!(
        ops.iter().any(|o| o == "s3:CreateMultipartUpload"),
        "no multipart upload began: {ops:?}\n{}",
        res.dump()
    );
    assert!(
        ops.iter().any(|o| o == "s3:AbortMultipartUpload"),
        "{ops:?}\n{}",
        res.dump()
    );
    assert_eq!(incomplete(&s.moto, &s.bucket), Vec::<String>::new());
}

#[test]
fn a_sibling_upload_failure_aborts_the_multipart_upload_in_flight() {
    // Every attempt at the small asset fails (6 attempts, a few seconds of backoff), while the large
    // one's parts hang.
    let plan = stalled_parts(
        (1..=6)
            .map(|n| ("s3:PutObject".to_string(), n, Fault::ServerError))
            .collect(),
    );
    let moto = Moto::shared();
    let proxy = FaultProxy::start(&moto.endpoint, plan);
    let s = setup(&proxy, moto);
    let res = s.action.run_within(Duration::from_secs(120));
    assert_ne!(res.code, 0, "{}", res.dump());
    assert!(
        res.error_lines()[0].contains("static/js/main.js"),
        "{}",
        res.dump()
    );
    assert_aborted(&s, &proxy, &res);
    drop(s.sim);
}

#[test]
fn sigterm_during_a_multipart_upload_aborts_it() {
    let moto = Moto::shared();
    let proxy = FaultProxy::start(&moto.endpoint, stalled_parts(Vec::new()));
    let s = setup(&proxy, moto);
    let res = s.action.start().sigterm_when("the upload started", || {
        proxy.ops().iter().any(|o| o == "s3:UploadPart")
    });
    assert_eq!(res.output("status"), "cancelled", "{}", res.dump());
    assert_aborted(&s, &proxy, &res);
}
