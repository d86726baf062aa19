//! The local default: run cloudshop-deploy end to end against emulated AWS and the sample CloudShop app.
//!
//! Starts moto (STS, ECR, S3), one ECS simulator per environment, the miniature CloudShop API (`/health`,
//! `/products` with Laptop, Mouse, Keyboard, CORS, a website page) and a local OCI registry, all on
//! loopback. Then runs the real binary twice, as the workflows would:
//! 1. "Deploy to Stage": push the backend image (an OCI archive, tagged with the git SHA), new
//!    task-definition revision, rollout watched to the end, smoke tests, frontend sync to S3;
//! 2. "Promote to Production": the same image (same digest) copied to the prod repository and deployed.
//!
//! Run it with `scripts/demo` (which builds the binary and sets `CLOUDSHOP_DEPLOY_BIN`).

use harness as common;

use std::time::Duration;

use common::app::App;
use common::ecs_sim::{EcsSim, Scenario, Seed};
use common::registry::{write_layout, LocalRegistry};
use common::seed::{create_bucket, rt};
use common::{Action, Moto, RunResult};

const SHA: &str = "c10d5a0e3f7b9d2c4e6a8b0d1f3e5a7c9b1d3f5e";

fn config(reg: &LocalRegistry, app: &App) -> String {
    format!(
        r#"region: us-east-1
environments:
  stage:
    cluster: stage-cluster
    service: stage-backend
    container: backend
    ecr-repository: stage-cloudshop-backend
    registry-url: {reg}
    api-url: {api}
    website-url: {web}
    frontend: {{ bucket: stage-cloudshop-frontend, dir: frontend/build }}
  prod:
    promote-from: stage
    cluster: prod-cluster
    service: prod-backend
    container: backend
    ecr-repository: prod-cloudshop-backend
    registry-url: {reg}
    api-url: {api}
    website-url: {web}
    frontend: {{ bucket: prod-cloudshop-frontend, dir: frontend/build }}
"#,
        reg = reg.url,
        api = app.base_url(),
        web = app.website_url(),
    )
}

fn with_frontend(a: Action) -> Action {
    a.file(
        "frontend/build/index.html",
        "<!doctype html><html><head><script src=\"/static/js/main.5f1c2e.js\"></script></head><body><div id=\"root\"></div></body></html>",
    )
    .file("frontend/build/static/js/main.5f1c2e.js", "fetch(API_URL + '/products').then(r => r.json())")
    .file("frontend/build/static/css/main.9a8b7c.css", "body { font-family: sans-serif }")
    .file("frontend/build/asset-manifest.json", "{\"files\":{\"main.js\":\"/static/js/main.5f1c2e.js\"}}")
    .file("frontend/build/favicon.ico", "icon")
}

fn show(title: &str, res: &RunResult) {
    println!(
        "\n==================== {title} (exit {}) ====================",
        res.code
    );
    println!("---- log ----\n{}{}", res.stderr, res.stdout);
    println!("---- outputs ----");
    for (k, v) in &res.outputs {
        println!("{k}={v}");
    }
    println!("---- job summary (Markdown) ----\n{}", res.summary);
}

fn main() {
    std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
    println!("starting moto, two ECS simulators, the sample CloudShop API and a local OCI registry on 127.0.0.1 ...");
    let moto = Moto::start();
    let reg = LocalRegistry::start();
    let app = App::start();
    let stage_ecs = EcsSim::start(Scenario::Succeed { after: 4 });
    let prod_ecs = EcsSim::start_with(
        Seed {
            cluster: "prod-cluster".into(),
            service: "prod-backend".into(),
            containers: vec![(
                "backend".into(),
                "123456789012.dkr.ecr.us-east-1.amazonaws.com/prod-cloudshop-backend:previous"
                    .into(),
            )],
            ..Seed::default()
        },
        Scenario::Succeed { after: 4 },
    );
    rt().block_on(async {
        let ecr = aws_sdk_ecr::Client::new(&moto.sdk_config().await);
        for repo in ["stage-cloudshop-backend", "prod-cloudshop-backend"] {
            ecr.create_repository()
                .repository_name(repo)
                .send()
                .await
                .expect("create repository");
        }
    });
    create_bucket(&moto, "stage-cloudshop-frontend");
    create_bucket(&moto, "prod-cloudshop-frontend");
    let cfg = config(&reg, &app);

    // 1. Push to main: the workflow built the backend image as an OCI archive tagged with the SHA.
    let stage = with_frontend(
        Action::new()
            .with_moto(&moto)
            .env("AWS_ENDPOINT_URL_ECS", &stage_ecs.endpoint)
            .env("GITHUB_SHA", SHA)
            .file(".github/cloudshop-deploy.yml", &cfg),
    )
    .input("environment", "stage")
    .input("image-archive", "backend-image")
    .input("poll-interval", "500ms");
    let layout = write_layout(
        &stage.workspace_path().join("backend-image"),
        SHA,
        2,
        512 * 1024,
        false,
    );
    println!(
        "backend image {SHA} = {} (OCI archive in the workspace)",
        layout.digest
    );
    let res = stage.run_within(Duration::from_secs(300));
    show("Deploy to Stage", &res);
    if res.code != 0 {
        std::process::exit(1);
    }

    // 2. Promote to Production: enter the tag; the same digest goes to prod.
    let prod = with_frontend(
        Action::new()
            .with_moto(&moto)
            .env("AWS_ENDPOINT_URL_ECS", &prod_ecs.endpoint)
            .file(".github/cloudshop-deploy.yml", &cfg),
    )
    .input("command", "promote")
    .input("environment", "prod")
    .input("image-tag", SHA)
    .input("poll-interval", "500ms");
    let res = prod.run_within(Duration::from_secs(300));
    show("Promote to Production", &res);
    let prod_digest = reg
        .digest_of("prod-cloudshop-backend", SHA)
        .unwrap_or_default();
    println!(
        "\nstage image {} -> prod image {} ({})",
        layout.digest,
        prod_digest,
        if prod_digest == layout.digest {
            "same digest"
        } else {
            "DIFFERENT"
        }
    );
    std::process::exit(if res.code == 0 && prod_digest == layout.digest {
        0
    } else {
        1
    });
}
