//! How much production traffic a bad version takes before it is gone (prints figures, asserts nothing):
//! a steady load generator against the production listener of a loopback ALB (`harness::alb`) while the
//! real binary deploys a new version that answers 20% of its requests with a 500 (`Mode::ErrorShare(20)`;
//! `/health` stays fine, so its tasks pass their health checks). The ALB forwards each request to the old
//! or the new app by the current weights. Printed per strategy: the run's status, the production requests
//! from the start of the deploy to the end of the run (the rollback's end when there is one), how many of
//! them the bad version served, its share, the 5xx the users got, and how long the bad version had
//! production traffic.
//!
//! - (a) rolling + watch, as today: the ECS simulator's rolling deployment (tasks start and stop with the
//!   clock; the ALB's weights are the share of RUNNING tasks per revision), smoke checks, then the watch
//!   (smoke rounds; the CloudWatch signals are off: their windows are whole CloudWatch minutes, which do
//!   not shrink with the time scale).
//! - (b) blue/green with the test-traffic gate: a PAUSE at POST_TEST_TRAFFIC_SHIFT; the action runs the
//!   smoke checks against `smoke.test-url` (the test listener, new revision only) and continues or rolls
//!   back.
//! - (c) canary 10% with analysis every minute: needs the canary branch's analysis in the binary.
//!
//! Time scale: one simulated minute lasts one second (60x): ECS stages of 15 s last 250 ms, the watch
//! interval of 15 s lasts 250 ms, a 5-minute watch lasts 5 s, the load of 40 requests per second runs at
//! 40 per real second (2400 per simulated minute).
//!
//! ```sh
//! cargo build --bin cloudshop-deploy && cargo run -q --example progressive_bench
//! ```
//!
//! The binary it runs is the debug build next to the example (or `CLOUDSHOP_DEPLOY_BIN`); a moto is
//! started for the run (or `CLOUDSHOP_TEST_MOTO` under nextest).

use harness as common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::alb::{Alb, Route};
use common::app::{App, Mode};
use common::cw_sim::CwSim;
use common::ecs_sim::{EcsSim, HookAction, Plan, RuleWeights, Scenario, Timing};
use common::elb_sim::ElbSim;
use common::seed::seed_ecr;
use common::{Action, Moto, RunResult};

const SHA: &str = "0123456789abcdef0123456789abcdef01234567";
/// The revision the deploy registers (the seed has 1 and 2; the service runs 2).
const NEW_TD: &str = "arn:aws:ecs:us-east-1:123456789012:task-definition/cloudshop-backend:3";
/// One simulated minute.
const MINUTE: Duration = Duration::from_secs(1);
/// Production requests per real second.
const RATE: u64 = 40;

/// What one strategy's run gave.
struct Row {
    name: &'static str,
    status: String,
    requests: u64,
    bad: u64,
    errors: u64,
    /// Real time from the first to the last production request the bad version served.
    exposure: Duration,
    wall: Duration,
    note: String,
}

/// A steady load on `url` (`RATE` per second) until dropped.
struct Load {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Load {
    fn start(url: String) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let http = reqwest::Client::new();
                let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / RATE));
                while !s.load(Ordering::SeqCst) {
                    tick.tick().await;
                    let (http, url) = (http.clone(), url.clone());
                    tokio::spawn(async move {
                        let _ = http.get(format!("{url}/products")).send().await;
                    });
                }
            });
        });
        Load {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn config(repo: &str, api: &str, test_url: Option<&str>, watch: &str) -> String {
    let test = test_url
        .map(|u| format!("      test-url: {u}\n"))
        .unwrap_or_default();
    format!(
        r#"
region: us-east-1
environments:
  stage:
    cluster: stage-cluster
    service: stage-backend
    container: backend
    ecr-repository: {repo}
    api-url: {api}
    smoke:
{test}      timeout: 2s
      request-timeout: 500ms
      retry-interval: 50ms
      watch: {watch}
      watch-interval: 250ms
      watch-failures: 3
      watch-signals: {{ enabled: false }}
"#
    )
}

fn action(moto: &Moto, ecs: &EcsSim, cfg: &str) -> Action {
    Action::new()
        .with_moto(moto)
        .env("AWS_ENDPOINT_URL_ECS", &ecs.endpoint)
        .file(".github/cloudshop-deploy.yml", cfg)
        .input("environment", "stage")
        .input("image-tag", SHA)
        .input("poll-interval", "100ms")
        .input("wait-timeout", "60s")
}

/// Run `act` under the load on `alb`, and count what the bad version (`bad`) served in production.
fn measure(name: &'static str, alb: &Alb, bad: &str, act: impl FnOnce() -> RunResult) -> Row {
    let load = Load::start(alb.production_url.clone());
    // Let the load settle on the old version first.
    std::thread::sleep(Duration::from_millis(500));
    let start = Instant::now();
    let res = act();
    let end = Instant::now();
    drop(load);
    let hits: Vec<_> = alb
        .hits()
        .into_iter()
        .filter(|h| !h.test && h.at >= start && h.at <= end)
        .collect();
    let bad_hits: Vec<_> = hits.iter().filter(|h| h.target == bad).collect();
    let exposure = match (bad_hits.first(), bad_hits.last()) {
        (Some(a), Some(b)) => b.at.duration_since(a.at),
        _ => Duration::ZERO,
    };
    let status = match res.outputs.get("status") {
        Some(s) => s.clone(),
        None => format!("exit {}", res.code),
    };
    if res.code != 0 && status != "rolled-back" {
        eprintln!("{name}: {}", res.dump());
    }
    Row {
        name,
        status,
        requests: hits.len() as u64,
        bad: bad_hits.len() as u64,
        errors: hits.iter().filter(|h| h.status >= 500).count() as u64,
        exposure,
        wall: end - start,
        note: String::new(),
    }
}

fn rolling(moto: &Moto, old: &App, new: &App) -> Row {
    let repo = moto.name("bench-a-cloudshop-backend");
    seed_ecr(moto, &repo, &[SHA], false);
    let sim = Arc::new(EcsSim::start(Scenario::Succeed { after: 2 }));
    // Tasks take 45 s to run, old ones 30 s to drain (scaled).
    sim.set_timing(Timing {
        step: MINUTE / 4,
        provisioning: MINUTE / 2,
        pending: MINUTE / 4,
        stopping: MINUTE / 2,
    });
    let s = sim.clone();
    // One target per revision; each revision's weight is its share of the RUNNING tasks.
    let route: Route = Arc::new(move || {
        let (mut o, mut n) = (0.0, 0.0);
        for t in s.tasks() {
            if t["lastStatus"] == "RUNNING" {
                if t["taskDefinitionArn"] == NEW_TD {
                    n += 1.0;
                } else {
                    o += 1.0;
                }
            }
        }
        let w = vec![("old".to_string(), o), ("new".to_string(), n)];
        RuleWeights {
            production: w.clone(),
            test: w,
        }
    });
    let alb = Alb::start(
        route,
        vec![
            ("old".into(), old.base_url()),
            ("new".into(), new.base_url()),
        ],
        None,
    );
    let cfg = config(&repo, &alb.production_url, None, "5s");
    let act = action(moto, &sim, &cfg);
    let mut row = measure("(a) rolling + watch (today)", &alb, "new", || {
        act.run_within(Duration::from_secs(180))
    });
    row.note = format!("service ends on {}", short(&sim.service_task_definition()));
    row
}

/// A progressive service deployed with `plan` (scaled), the test listener given to the action when
/// `gate`.
fn progressive(
    name: &'static str,
    moto: &Moto,
    (old, new): (&App, &App),
    plan: Plan,
    gate: bool,
) -> Row {
    let repo = moto.name(&format!("bench-{}-cloudshop-backend", &name[1..2]));
    seed_ecr(moto, &repo, &[SHA], false);
    let sim = EcsSim::start(Scenario::Progressive(plan.clone()));
    let progress = sim.progress().expect("a progressive service");
    let elb = ElbSim::start_with_rules("stage-blue", Vec::new(), progress.clone());
    let cw = CwSim::start();
    let alb = Alb::progressive(
        progress.clone(),
        vec![
            (plan.production_group.clone(), old.base_url()),
            (plan.alternate_group.clone(), new.base_url()),
        ],
        Some(cw.sink()),
    );
    let test_url = gate.then_some(alb.test_url.as_str());
    let cfg = config(&repo, &alb.production_url, test_url, "5s");
    let act = action(moto, &sim, &cfg)
        .env("AWS_ENDPOINT_URL_ELASTIC_LOAD_BALANCING_V2", &elb.endpoint)
        .env("AWS_ENDPOINT_URL_CLOUDWATCH", &cw.endpoint);
    let mut row = measure(name, &alb, &plan.alternate_group, || {
        act.run_within(Duration::from_secs(180))
    });
    row.note = format!(
        "max production weight {}%, hook actions {:?}, stages {}",
        progress.max_new_weight(),
        progress
            .hook_actions()
            .iter()
            .map(|(_, a)| a.as_str())
            .collect::<Vec<_>>(),
        progress.stages_seen().len()
    );
    row
}

fn short(td: &str) -> &str {
    td.rsplit('/').next().unwrap_or(td)
}

fn main() {
    if std::env::var_os("CLOUDSHOP_DEPLOY_BIN").is_none() {
        // target/debug/examples/progressive_bench -> target/debug/cloudshop-deploy
        if let Some(dir) = std::env::current_exe()
            .ok()
            .and_then(|p| p.parent()?.parent().map(|d| d.to_path_buf()))
        {
            std::env::set_var("CLOUDSHOP_DEPLOY_BIN", dir.join("cloudshop-deploy"));
        }
    }
    let only: Vec<String> = std::env::args().skip(1).collect();
    let wanted = |k: &str| only.is_empty() || only.iter().any(|o| o == k);
    let moto = Moto::shared();
    let mut rows = Vec::new();
    let fresh = || {
        let (old, new) = (App::start(), App::start());
        new.set_mode(Mode::ErrorShare(20));
        (old, new)
    };
    if wanted("a") {
        let (old, new) = fresh();
        rows.push(rolling(&moto, &old, &new));
    }
    // Blue/green as ECS does it today without a gate: 5 minutes' bake, no hook.
    let scaled = |plan: Plan| Plan {
        minute: MINUTE,
        stage: MINUTE / 4,
        bake_minutes: 5,
        ..plan
    };
    if wanted("a2") {
        let (old, new) = fresh();
        let plan = scaled(Plan::blue_green());
        let name = "(a2) blue/green + watch, no hook";
        rows.push(progressive(name, &moto, (&old, &new), plan, false));
    }
    if wanted("b") {
        let (old, new) = fresh();
        let plan = scaled(Plan::blue_green()).pause(
            &["POST_TEST_TRAFFIC_SHIFT"],
            60,
            HookAction::Rollback,
        );
        let name = "(b) blue/green + test-traffic gate";
        rows.push(progressive(name, &moto, (&old, &new), plan, true));
    }
    println!("time scale: 1 simulated minute = {MINUTE:?} real; load {RATE} production requests/s; bad version: 20% 5xx");
    println!(
        "{:<36} {:>12} {:>9} {:>7} {:>7} {:>9} {:>14} {:>7}",
        "strategy", "status", "requests", "bad", "share", "user 5xx", "exposure (min)", "wall s"
    );
    for r in &rows {
        let share = if r.requests == 0 {
            0.0
        } else {
            100.0 * r.bad as f64 / r.requests as f64
        };
        println!(
            "{:<36} {:>12} {:>9} {:>7} {:>6.1}% {:>9} {:>14.1} {:>7.1}  {}",
            r.name,
            r.status,
            r.requests,
            r.bad,
            share,
            r.errors,
            r.exposure.as_secs_f64() / MINUTE.as_secs_f64(),
            r.wall.as_secs_f64(),
            r.note
        );
    }
}
