//! A whole release through the real binary, every AWS and registry request behind a
//! [`FaultProxy`](crate::faults::FaultProxy): a stage deploy (ECR in moto, the stage ECS simulator, a
//! frontend of `files` files synced to a moto bucket), then a promotion of the same image tag to prod (the
//! image copied in a local registry, the prod ECS simulator). Used by the fault tests and by
//! `examples/fault_bench.rs`, which compare a clean run with runs under injected faults.
//!
//! Public API: [`Release::new`] sets the world up, [`Release::run`] runs both commands and returns a
//! [`Ran`] with the results, the wall times and what the proxies and simulators recorded.

use std::time::{Duration, Instant};

use crate::ecs_sim::{EcsSim, Scenario, Seed};
use crate::faults::{Call, FaultPlan, FaultProxy};
use crate::registry::LocalRegistry;
use crate::seed::{create_bucket, rt, seed_ecr};
use crate::{Action, Moto, RunResult};

/// The commit both commands release.
pub const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

/// Which proxy a fault plan is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upstream {
    /// moto: STS, ECR, S3.
    Aws,
    /// The stage ECS simulator.
    StageEcs,
    /// The prod ECS simulator.
    ProdEcs,
    /// The OCI registry.
    Registry,
}

/// The services of one release, fresh names in the shared moto.
pub struct Release {
    pub moto: Moto,
    /// The stage and prod ECR repositories (in moto and in the registry).
    pub stage_repo: String,
    pub prod_repo: String,
    /// The website buckets of stage and prod.
    pub bucket: String,
    pub prod_bucket: String,
    pub registry: LocalRegistry,
    pub stage: EcsSim,
    pub prod: EcsSim,
    /// How many frontend files.
    pub files: usize,
}

/// What a [`Release::run`] left.
pub struct Ran {
    pub deploy: RunResult,
    pub promote: RunResult,
    /// Wall time of each command.
    pub deploy_time: Duration,
    pub promote_time: Duration,
    /// The calls each proxy saw (moto, stage ECS, prod ECS, registry).
    pub aws: Vec<Call>,
    pub stage_ecs: Vec<Call>,
    pub prod_ecs: Vec<Call>,
    pub registry: Vec<Call>,
}

impl Ran {
    /// Both commands' wall time.
    pub fn total(&self) -> Duration {
        self.deploy_time + self.promote_time
    }

    /// How many faults were injected, all proxies together.
    pub fn faults(&self) -> usize {
        [&self.aws, &self.stage_ecs, &self.prod_ecs, &self.registry]
            .iter()
            .flat_map(|c| c.iter())
            .filter(|c| c.fault.is_some())
            .count()
    }

    /// How many requests reached the proxies, all together.
    pub fn requests(&self) -> usize {
        self.aws.len() + self.stage_ecs.len() + self.prod_ecs.len() + self.registry.len()
    }

    /// Successful `PutObject`s per object key (path without the bucket), from the moto proxy's record.
    pub fn puts_per_key(&self, bucket: &str) -> std::collections::BTreeMap<String, usize> {
        let mut out = std::collections::BTreeMap::new();
        for c in &self.aws {
            if c.op != "s3:PutObject" || c.status != Some(200) {
                continue;
            }
            // Path-style addressing: `/bucket/key`; another bucket's writes are not counted.
            let Some(key) = c
                .path
                .trim_start_matches('/')
                .strip_prefix(bucket)
                .and_then(|rest| rest.strip_prefix('/'))
            else {
                continue;
            };
            *out.entry(key.to_string()).or_default() += 1;
        }
        out
    }
}

impl Release {
    /// Seed moto (stage repository with the image, prod repository, bucket), the registry (the stage
    /// image) and the two simulators; `files` frontend files. `tag` makes the names unique when one
    /// process runs several releases.
    pub fn new(tag: &str, files: usize) -> Release {
        let moto = Moto::shared();
        let stage_repo = moto.name(&format!("{tag}-stage-cloudshop-backend"));
        let prod_repo = moto.name(&format!("{tag}-prod-cloudshop-backend"));
        let bucket = moto.name(&format!("{tag}-stage-frontend"));
        seed_ecr(&moto, &stage_repo, &[], false);
        rt().block_on(async {
            let ecr = aws_sdk_ecr::Client::new(&moto.sdk_config().await);
            ecr.create_repository()
                .repository_name(&prod_repo)
                .send()
                .await
                .expect("create the prod repository");
        });
        let prod_bucket = moto.name(&format!("{tag}-prod-frontend"));
        create_bucket(&moto, &bucket);
        create_bucket(&moto, &prod_bucket);
        let registry = LocalRegistry::start();
        // One image, one digest, in ECR (the deploy's view) and the registry (the promotion's).
        registry.push_image_known_to_ecr(&moto, &stage_repo, SHA, 2, 256 * 1024);
        let prod_seed = Seed {
            cluster: "prod-cluster".into(),
            service: "prod-backend".into(),
            containers: vec![(
                "backend".into(),
                format!("123456789012.dkr.ecr.us-east-1.amazonaws.com/{prod_repo}:previous"),
            )],
            ..Seed::default()
        };
        Release {
            stage: EcsSim::start(Scenario::Succeed { after: 2 }),
            prod: EcsSim::start_with(prod_seed, Scenario::Succeed { after: 2 }),
            moto,
            stage_repo,
            prod_repo,
            bucket,
            prod_bucket,
            registry,
            files,
        }
    }

    /// The environments file.
    pub fn config(&self) -> String {
        format!(
            r#"
region: us-east-1
environments:
  stage:
    cluster: stage-cluster
    service: stage-backend
    container: backend
    ecr-repository: {stage}
    frontend: {{ bucket: {bucket}, dir: build }}
    smoke: {{ enabled: false }}
  prod:
    promote-from: stage
    # Stage has no smoke tests here (the release under faults is about the writes): promote what
    # passed its rollout.
    promote: {{ require: [rollout] }}
    cluster: prod-cluster
    service: prod-backend
    container: backend
    ecr-repository: {prod}
    frontend: {{ bucket: {prod_bucket} }}
    smoke: {{ enabled: false }}
"#,
            stage = self.stage_repo,
            prod = self.prod_repo,
            bucket = self.bucket,
            prod_bucket = self.prod_bucket,
        )
    }

    /// The stage deploy, with its build folder, through the given proxies: it publishes the build and,
    /// once it passed, the verification marker the promotion requires.
    pub fn deploy_action(&self, aws: &str, ecs: &str, registry: &str) -> Action {
        let mut action = Action::new()
            .with_moto(&self.moto)
            .env("AWS_ENDPOINT_URL", aws)
            .env("AWS_ENDPOINT_URL_ECS", ecs)
            .file(".github/cloudshop-deploy.yml", &self.config())
            .input("environment", "stage")
            .input("image-tag", SHA)
            .input("registry-url", registry)
            .input("poll-interval", "30ms")
            .input("wait-timeout", "120s");
        for (rel, text) in frontend_files(self.files) {
            action = action.file(&format!("build/{rel}"), &text);
        }
        action
    }

    /// The promotion to prod through the given proxies.
    pub fn promote_action(&self, aws: &str, ecs: &str, registry: &str) -> Action {
        Action::new()
            .with_moto(&self.moto)
            .env("AWS_ENDPOINT_URL", aws)
            .env("AWS_ENDPOINT_URL_ECS", ecs)
            .file(".github/cloudshop-deploy.yml", &self.config())
            .input("command", "promote")
            .input("environment", "prod")
            .input("image-tag", SHA)
            .input("registry-url", registry)
            .input("poll-interval", "30ms")
            .input("wait-timeout", "120s")
    }

    /// Run the deploy, then (when it succeeded) the promotion, each proxy with `plan(upstream)`.
    pub fn run(&self, plan: impl Fn(Upstream) -> FaultPlan) -> Ran {
        let aws = FaultProxy::start(&self.moto.endpoint, plan(Upstream::Aws));
        let stage_ecs = FaultProxy::start(&self.stage.endpoint, plan(Upstream::StageEcs));
        let prod_ecs = FaultProxy::start(&self.prod.endpoint, plan(Upstream::ProdEcs));
        let registry = FaultProxy::start(&self.registry.url, plan(Upstream::Registry));
        let limit = Duration::from_secs(600);

        let started = Instant::now();
        let deploy = self
            .deploy_action(&aws.endpoint, &stage_ecs.endpoint, &registry.endpoint)
            .run_within(limit);
        let deploy_time = started.elapsed();

        let started = Instant::now();
        let promote = if deploy.code == 0 {
            self.promote_action(&aws.endpoint, &prod_ecs.endpoint, &registry.endpoint)
                .run_within(limit)
        } else {
            RunResult {
                code: -1,
                stdout: String::new(),
                stderr: "not run: the stage deploy failed".into(),
                outputs: Default::default(),
                outputs_raw: String::new(),
                summary: String::new(),
            }
        };
        let promote_time = started.elapsed();
        Ran {
            deploy,
            promote,
            deploy_time,
            promote_time,
            aws: aws.calls(),
            stage_ecs: stage_ecs.calls(),
            prod_ecs: prod_ecs.calls(),
            registry: registry.calls(),
        }
    }
}

/// A React-like build of `n` files (an `index.html`, a few pages, hashed JS/CSS chunks, media), paths
/// relative to the build folder, deterministic.
pub fn frontend_files(n: usize) -> Vec<(String, String)> {
    let mut out = vec![(
        "index.html".to_string(),
        "<!doctype html><script src=\"/static/js/main.js\"></script>".to_string(),
    )];
    for i in 1..n {
        let rel = match i % 5 {
            0 => format!("static/css/chunk.{i:04x}.css"),
            1 => format!("static/media/img.{i:04x}.svg"),
            2 => format!("pages/p{i}.html"),
            _ => format!("static/js/chunk.{i:04x}.js"),
        };
        let body = format!("/* file {i} */ {}", "x".repeat(200 + (i * 37) % 4000));
        out.push((rel, body));
    }
    out
}

/// A fault plan at `rate` for every operation, drawn from server errors, throttling, resets and stalls
/// (a stall answers nothing for `stall`, then closes the connection), at most two in a row per request
/// target; `seed` varies the draws.
pub fn every_fault(rate: f64, stall: Duration, seed: u64) -> FaultPlan {
    FaultPlan {
        rate,
        kinds: vec![
            crate::faults::Fault::ServerError,
            crate::faults::Fault::Throttle,
            crate::faults::Fault::Reset,
            crate::faults::Fault::Stall,
        ],
        stall,
        seed,
        // A transient fault passes by its third try; the retry bounds (6 AWS attempts, 5 registry
        // ones) are then never what decides the run.
        max_in_a_row: 2,
        ..FaultPlan::default()
    }
}
