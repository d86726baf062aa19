//! The local default: run cloudshop-deploy end to end against emulated AWS and the sample CloudShop app.
//!
//! Starts moto (STS, ECR, S3), one ECS simulator per environment, the miniature CloudShop API (`/health`,
//! `/products` with Laptop, Mouse, Keyboard, CORS, a website page) and a local OCI registry, all on
//! loopback, with CloudShop's real names (`stage-cluster`, `stage-backend-blue`, `stage-cloudshop-backend`,
//! `stage-cloudshop-frontend-746669238399`, and the same for prod). Then runs the real binary twice:
//! 1. "Deploy to Stage" from a terminal, as the command line (`cloudshop-deploy deploy --environment
//!    stage ...`): push the backend image (an OCI archive, tagged with the git SHA), new task-definition
//!    revision, rollout watched to the end, smoke tests, frontend sync to S3; the frontend build
//!    published beside the image as `<sha>-frontend`;
//! 2. "Promote to Production" as the action, as the workflow would: the same image and frontend (same
//!    digests) copied to the prod repository, deployed, and the prod bucket synced from the artifact with
//!    prod's API URL (no build in this job).
//!
//! Run it with `scripts/demo` (which builds the binary and sets `CLOUDSHOP_DEPLOY_BIN`).
//!
//! It leaves no process behind. The program is a small supervisor that re-runs itself as a worker in a
//! process group of its own; everything the worker starts (moto, the registry, the action binary) inherits
//! that group. When the worker ends (success, failure, panic) or the supervisor gets SIGINT/SIGTERM, the
//! supervisor signals the whole group: SIGTERM, a grace period, then SIGKILL. Drop guards alone are not
//! enough: a signal's default action ends the process without running them.

use harness as common;

use std::process::ExitCode;
use std::time::{Duration, Instant};

use common::app::App;
use common::ecs_sim::{EcsSim, Scenario, Seed};
use common::registry::{write_layout, LocalRegistry};
use common::seed::{create_bucket, rt};
use common::{Action, Moto, RunResult};

const SHA: &str = "c10d5a0e3f7b9d2c4e6a8b0d1f3e5a7c9b1d3f5e";

/// CloudShop's website buckets (bucket names are global, so they carry the account).
const STAGE_BUCKET: &str = "stage-cloudshop-frontend-746669238399";
const PROD_BUCKET: &str = "prod-cloudshop-frontend-746669238399";

fn config(app: &App) -> String {
    format!(
        r#"region: us-east-1
environments:
  stage:
    cluster: stage-cluster
    service: stage-backend-blue
    container: backend
    ecr-repository: stage-cloudshop-backend
    api-url: {api}
    website-url: {web}
    frontend: {{ bucket: {STAGE_BUCKET}, dir: frontend/build }}
  prod:
    promote-from: stage
    cluster: prod-cluster
    service: prod-backend-blue
    container: backend
    ecr-repository: prod-cloudshop-backend
    api-url: {api}
    website-url: {web}
    frontend: {{ bucket: {PROD_BUCKET}, dir: frontend/build }}
"#,
        api = app.base_url(),
        web = app.website_url(),
    )
}

fn with_frontend(a: Action) -> Action {
    a.file(
        "frontend/build/index.html",
        "<!doctype html><html><head><script src=\"/static/js/main.5f1c2e.js\"></script></head><body><div id=\"root\"></div></body></html>",
    )
    .file("frontend/build/static/js/main.5f1c2e.js", "fetch('__CLOUDSHOP_API_URL__/products').then(r => r.json())")
    .file("frontend/build/static/css/main.9a8b7c.css", "body { font-family: sans-serif }")
    .file("frontend/build/asset-manifest.json", "{\"files\":{\"main.js\":\"/static/js/main.5f1c2e.js\"}}")
    .file("frontend/build/favicon.ico", "icon")
}

/// An ECS simulator for `env` serving CloudShop's service (`<env>-backend-blue` in `<env>-cluster`).
fn ecs(env: &str) -> EcsSim {
    EcsSim::start_with(
        Seed {
            cluster: format!("{env}-cluster"),
            service: format!("{env}-backend-blue"),
            containers: vec![(
                "backend".into(),
                format!(
                    "123456789012.dkr.ecr.us-east-1.amazonaws.com/{env}-cloudshop-backend:previous"
                ),
            )],
            ..Seed::default()
        },
        Scenario::Succeed { after: 4 },
    )
}

/// An empty AWS config file: the runs read it instead of the operator's own `~/.aws`, and the SDK finds
/// the file it is pointed at (a missing one is worth a warning).
fn empty_aws_config(dir: &std::path::Path) -> String {
    let path = dir.join("aws-config");
    std::fs::write(&path, "").expect("write the empty AWS config");
    path.display().to_string()
}

/// Run the command line in `workspace`, as a person at a terminal would, with `env` only; the outputs
/// go to `outputs` (`--output-file`), what a person would read to the screen.
fn terminal(
    workspace: &std::path::Path,
    args: &[&str],
    env: &[(&str, &str)],
    outputs: &std::path::Path,
) -> RunResult {
    let bin = std::env::var("CLOUDSHOP_DEPLOY_BIN").unwrap_or_else(|_| "cloudshop-deploy".into());
    println!("\n$ cloudshop-deploy {}", args.join(" "));
    let out = std::process::Command::new(bin)
        .args(args)
        .arg("--output-file")
        .arg(outputs)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().copied())
        .current_dir(workspace)
        .output()
        .expect("run cloudshop-deploy");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let outputs_raw = std::fs::read_to_string(outputs).unwrap_or_default();
    RunResult {
        code: out.status.code().unwrap_or(-1),
        outputs: common::parse_outputs(&outputs_raw),
        outputs_raw,
        summary: String::new(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        stdout,
    }
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
    // The command line printed its summary on the terminal, above.
    if !res.summary.is_empty() {
        println!("---- job summary (Markdown) ----\n{}", res.summary);
    }
}

/// Set in the worker's environment: the same executable then runs the demo instead of supervising it.
const WORKER_ENV: &str = "CLOUDSHOP_DEMO_WORKER";

/// How long the group gets to exit on SIGTERM before SIGKILL.
const GRACE: Duration = Duration::from_secs(5);

fn main() -> ExitCode {
    if std::env::var_os(WORKER_ENV).is_some() {
        return demo();
    }
    match supervise() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("demo: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Run the worker in its own process group, and end that group whichever way the worker ends.
fn supervise() -> std::io::Result<ExitCode> {
    let exe = std::env::current_exe()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        use tokio::signal::unix::{signal, SignalKind};
        // Signal streams first: a SIGINT that arrives while the worker starts must not kill us before
        // the group is cleaned up.
        let mut int = signal(SignalKind::interrupt())?;
        let mut term = signal(SignalKind::terminate())?;
        let mut child = tokio::process::Command::new(exe)
            .env(WORKER_ENV, "1")
            .process_group(0)
            .spawn()?;
        let pgid = child.id().unwrap_or_default();
        let code = tokio::select! {
            status = child.wait() => status.ok().and_then(|s| s.code()).unwrap_or(1),
            _ = int.recv() => { eprintln!("demo: interrupted, stopping the servers"); 130 }
            _ = term.recv() => { eprintln!("demo: terminated, stopping the servers"); 143 }
        };
        if pgid != 0 {
            end_group(pgid, &mut child).await;
        }
        let _ = child.wait().await;
        Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
    })
}

/// SIGTERM to every process of the group, then SIGKILL to whatever is still there after [`GRACE`].
async fn end_group(pgid: u32, worker: &mut tokio::process::Child) {
    let group = format!("-{pgid}");
    let send = |sig: &str| {
        std::process::Command::new("kill")
            .args([sig, "--", &group])
            .stderr(std::process::Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    };
    // `kill` fails when no process is left in the group: nothing to do.
    if !send("-TERM") {
        return;
    }
    let deadline = Instant::now() + GRACE;
    while Instant::now() < deadline {
        // Reap the worker as soon as it exits: a zombie still counts as a member of the group.
        let _ = worker.try_wait();
        if !send("-0") {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    send("-KILL");
}

/// The demo itself. Returns instead of calling `std::process::exit`, so the server guards drop.
fn demo() -> ExitCode {
    std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
    println!("starting moto, two ECS simulators, the sample CloudShop API and a local OCI registry on 127.0.0.1 ...");
    let moto = Moto::start();
    let reg = LocalRegistry::start();
    let app = App::start();
    let stage_ecs = ecs("stage");
    let prod_ecs = ecs("prod");
    let home = tempfile::tempdir().expect("tempdir");
    let aws_config = empty_aws_config(home.path());
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
    create_bucket(&moto, STAGE_BUCKET);
    create_bucket(&moto, PROD_BUCKET);
    let cfg = config(&app);

    // 1. The backend image was built as an OCI archive tagged with the SHA; the on-call engineer deploys
    // it to stage from a terminal in the checkout, with the command line.
    let stage = with_frontend(Action::new().file(".github/cloudshop-deploy.yml", &cfg));
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
    let res = terminal(
        stage.workspace_path(),
        &[
            "deploy",
            "--environment",
            "stage",
            "--sha",
            SHA,
            "--image-archive",
            "backend-image",
            "--registry-url",
            &reg.url,
            "--poll-interval",
            "500ms",
        ],
        &[
            ("AWS_EC2_METADATA_DISABLED", "true"),
            ("AWS_CONFIG_FILE", &aws_config),
            ("AWS_SHARED_CREDENTIALS_FILE", &aws_config),
            ("AWS_ENDPOINT_URL", &moto.endpoint),
            ("AWS_ENDPOINT_URL_ECS", &stage_ecs.endpoint),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
        ],
        &home.path().join("stage-outputs"),
    );
    show("Deploy to Stage (command line)", &res);
    if res.code != 0 {
        return ExitCode::FAILURE;
    }

    let stage_frontend = res
        .outputs
        .get("frontend-digest")
        .cloned()
        .unwrap_or_default();

    // 2. Promote to Production: enter the tag; the same digests go to prod. Only the environments file
    // is checked out: the frontend comes from the artifact stage published.
    let prod = Action::new()
        .with_moto(&moto)
        .env("AWS_CONFIG_FILE", &aws_config)
        .env("AWS_SHARED_CREDENTIALS_FILE", &aws_config)
        .env("AWS_ENDPOINT_URL_ECS", &prod_ecs.endpoint)
        .file(".github/cloudshop-deploy.yml", &cfg)
        .input("command", "promote")
        .input("environment", "prod")
        .input("image-tag", SHA)
        .input("registry-url", &reg.url)
        .input("poll-interval", "500ms");
    let res = prod.run_within(Duration::from_secs(300));
    show("Promote to Production (action)", &res);
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
    let prod_frontend = res
        .outputs
        .get("frontend-digest")
        .cloned()
        .unwrap_or_default();
    println!(
        "stage frontend {stage_frontend} -> prod frontend {prod_frontend} ({})",
        if !prod_frontend.is_empty() && prod_frontend == stage_frontend {
            "same digest"
        } else {
            "DIFFERENT"
        }
    );
    if res.code == 0 && prod_digest == layout.digest && prod_frontend == stage_frontend {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
