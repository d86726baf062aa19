//! How much production traffic a bad version takes before it is gone (prints figures, asserts nothing):
//! a steady load generator against the production listener of a loopback ALB (`harness::alb`) while the
//! real binary deploys a bad new version (`/health` stays fine, so its tasks pass their health checks). The ALB forwards each request to the old
//! or the new app by the current weights. Printed per strategy: the run's status, the production requests
//! from the start of the deploy to the end of the run (the rollback's end when there is one), how many of
//! them the bad version served, its share, the 5xx the users got, how long the bad version had
//! production traffic (first to last request it served, in simulated minutes) and its share of the
//! production requests in that time.
//!
//! - (a) rolling + watch, as today: the ECS simulator's rolling deployment (tasks start and stop with the
//!   clock; the ALB's weights are the share of RUNNING tasks per revision), smoke checks, then the watch
//!   (smoke rounds and the signals: the target group's 5xx rate and p95 from the CloudWatch simulator,
//!   which the ALB feeds per request, so the metrics arrive at once instead of CloudWatch's minute or
//!   so; every strategy's watch reads them, as by default).
//! - (b) blue/green with the test-traffic gate: a PAUSE at POST_TEST_TRAFFIC_SHIFT; the action runs the
//!   smoke checks against `smoke.test-url` (the test listener, new revision only) and continues or rolls
//!   back. Needs `smoke.test-url` and the hook handling in the binary.
//! - (a2) blue/green with no hook, as the action handles it without the gate: smoke checks and the watch
//!   after all traffic moved.
//! - (c) canary 10% with the analysis every minute: the canary bakes one minute at 10%, then the
//!   action judges it at the PAUSE before the rest of the traffic moves (`PRE_PRODUCTION_TRAFFIC_SHIFT`),
//!   again every minute (`canary.interval`) while the traffic is too little to judge; no test-traffic
//!   gate, so the analysis alone decides.
//! - (b+c) both: the test-traffic gate (checks and the traffic sample), then the canary.
//!
//! `progressive_bench a b` runs only those strategies (`a`, `a2`, `b`, `c`, `bc`).
//!
//! Each strategy runs twice: against a version answering 20% 5xx, and against one whose `/products`
//! answers 500 (a hard failure the smoke checks see at once).
//!
//! Time scale: one simulated minute lasts five seconds (12x): ECS stages of 15 s last 1.25 s, the
//! 5-minute bake 25 s, the watch interval of 15 s 1.25 s, the 5-minute watch 25 s, a canary analysis
//! every simulated minute every 5 s. The load is 100 production requests per real second, so 500 per
//! simulated minute (50 on a 10% canary: the analysis' default minimum per side).
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
use common::ecs_sim::{EcsSim, HookAction, Plan, RuleWeights, Scenario, Seed, Timing};
use common::elb_sim::ElbSim;
use common::seed::seed_ecr;
use common::{Action, Moto, RunResult};

const SHA: &str = "0123456789abcdef0123456789abcdef01234567";
/// The revision the deploy registers (the seed has 1 and 2; the service runs 2).
const NEW_TD: &str = "arn:aws:ecs:us-east-1:123456789012:task-definition/cloudshop-backend:3";
/// One simulated minute.
const MINUTE: Duration = Duration::from_secs(5);
/// Production requests per real second (500 per simulated minute: 50 on a 10% canary).
const RATE: u64 = 100;

/// How the new version is bad.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bad {
    /// 20% of its answers are 500s (`/health` is fine).
    Share20,
    /// `/products` answers 500 (`/health` is fine).
    ProductsDown,
}

impl Bad {
    fn mode(self) -> Mode {
        match self {
            Bad::Share20 => Mode::ErrorShare(20),
            Bad::ProductsDown => Mode::ProductsFail,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Bad::Share20 => "20% 5xx",
            Bad::ProductsDown => "/products 500",
        }
    }
}

/// What one strategy's run gave.
struct Row {
    name: &'static str,
    bad_label: &'static str,
    status: String,
    requests: u64,
    bad: u64,
    errors: u64,
    /// Real time from the first to the last production request the bad version served.
    exposure: Duration,
    /// Production requests in that time (both versions).
    during: u64,
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

fn config(repo: &str, api: &str, test_url: Option<&str>, canary: bool) -> String {
    let test = test_url
        .map(|u| format!("      test-url: {u}\n"))
        .unwrap_or_default();
    // One analysis per simulated minute; the other limits are the defaults (99%, 50 requests a side).
    let canary = if canary {
        format!("    canary:\n      interval: {}ms\n", MINUTE.as_millis())
    } else {
        String::new()
    };
    let (watch, interval) = (MINUTE * 5, MINUTE / 4);
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
      watch: {watch}ms
      watch-interval: {interval}ms
      watch-failures: 3
{canary}"#,
        watch = watch.as_millis(),
        interval = interval.as_millis(),
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
        .input("wait-timeout", "300s")
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
    let (exposure, during) = match (bad_hits.first(), bad_hits.last()) {
        (Some(a), Some(b)) => (
            b.at.duration_since(a.at),
            hits.iter().filter(|h| h.at >= a.at && h.at <= b.at).count() as u64,
        ),
        _ => (Duration::ZERO, 0),
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
        bad_label: "",
        status,
        requests: hits.len() as u64,
        bad: bad_hits.len() as u64,
        errors: hits.iter().filter(|h| h.status >= 500).count() as u64,
        exposure,
        during,
        wall: end - start,
        note: String::new(),
    }
}

fn rolling(moto: &Moto, old: &App, new: &App) -> Row {
    let repo = fresh_repo(moto);
    // The service behind one target group, whose metrics the watch's signals read.
    let elb = ElbSim::start("stage-tg", Vec::new());
    let seed = Seed {
        target_group: Some(elb.target_group_arn.clone()),
        ..Seed::default()
    };
    let cw = CwSim::start();
    let sim = Arc::new(EcsSim::start_with(seed, Scenario::Succeed { after: 2 }));
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
    let tg = elb.target_group_arn.clone();
    let alb = Alb::start_grouped(
        route,
        vec![
            ("old".into(), old.base_url(), tg.clone()),
            ("new".into(), new.base_url(), tg),
        ],
        Some(cw.sink()),
    );
    let cfg = config(&repo, &alb.production_url, None, false);
    let act = action(moto, &sim, &cfg)
        .env("AWS_ENDPOINT_URL_ELASTIC_LOAD_BALANCING_V2", &elb.endpoint)
        .env("AWS_ENDPOINT_URL_CLOUDWATCH", &cw.endpoint);
    let mut row = measure("(a) rolling + watch (today)", &alb, "new", || {
        act.run_within(Duration::from_secs(600))
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
    canary: bool,
) -> Row {
    let repo = fresh_repo(moto);
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
    let cfg = config(&repo, &alb.production_url, test_url, canary);
    let act = action(moto, &sim, &cfg)
        .env("AWS_ENDPOINT_URL_ELASTIC_LOAD_BALANCING_V2", &elb.endpoint)
        .env("AWS_ENDPOINT_URL_CLOUDWATCH", &cw.endpoint);
    let mut row = measure(name, &alb, &plan.alternate_group, || {
        act.run_within(Duration::from_secs(600))
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

/// A new ECR repository with the image, named uniquely for this run.
fn fresh_repo(moto: &Moto) -> String {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::SeqCst);
    let repo = moto.name(&format!("bench{n}-cloudshop-backend"));
    seed_ecr(moto, &repo, &[SHA], false);
    repo
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
    // ECS's own defaults, scaled: 15 s stages, 5 minutes' bake after all traffic moved.
    let scaled = |plan: Plan| Plan {
        minute: MINUTE,
        stage: MINUTE / 4,
        bake_minutes: 5,
        ..plan
    };
    let test_pause =
        |plan: Plan| plan.pause(&["POST_TEST_TRAFFIC_SHIFT"], 60, HookAction::Rollback);
    for bad in [Bad::Share20, Bad::ProductsDown] {
        let apps = || {
            let (old, new) = (App::start(), App::start());
            new.set_mode(bad.mode());
            (old, new)
        };
        let mut run = |key: &str, f: &dyn Fn(&Moto, (&App, &App)) -> Row| {
            if wanted(key) {
                let (old, new) = apps();
                let mut row = f(&moto, (&old, &new));
                row.bad_label = bad.label();
                rows.push(row);
            }
        };
        run("a", &|moto, (old, new)| rolling(moto, old, new));
        run("a2", &|moto, apps| {
            let name = "(a2) blue/green + watch, no hook";
            progressive(name, moto, apps, scaled(Plan::blue_green()), false, false)
        });
        run("b", &|moto, apps| {
            let name = "(b) blue/green + test-traffic gate";
            let plan = test_pause(scaled(Plan::blue_green()));
            progressive(name, moto, apps, plan, true, false)
        });
        run("c", &|moto, apps| {
            let name = "(c) canary 10% + analysis/min";
            // 10% for a minute, then judged at the pause before the rest moves (again every minute
            // while the traffic is too little to judge). No test-traffic gate: the analysis alone.
            let plan = scaled(Plan::canary(10.0, 1)).pause(
                &["PRE_PRODUCTION_TRAFFIC_SHIFT"],
                60,
                HookAction::Rollback,
            );
            progressive(name, moto, apps, plan, false, true)
        });
        run("bc", &|moto, apps| {
            let name = "(b+c) test-traffic gate, then canary";
            let plan = test_pause(scaled(Plan::canary(10.0, 1))).pause(
                &["PRE_PRODUCTION_TRAFFIC_SHIFT"],
                60,
                HookAction::Rollback,
            );
            progressive(name, moto, apps, plan, true, true)
        });
    }
    println!(
        "time scale: 1 simulated minute = {MINUTE:?} real; load {RATE} production requests/s ({} per simulated minute)",
        RATE * MINUTE.as_secs()
    );
    println!(
        "{:<36} {:<14} {:>12} {:>9} {:>7} {:>7} {:>9} {:>14} {:>13} {:>7}",
        "strategy",
        "bad version",
        "status",
        "requests",
        "bad",
        "share",
        "user 5xx",
        "exposure (min)",
        "share exposed",
        "wall s"
    );
    for r in &rows {
        let exposed = if r.during == 0 {
            0.0
        } else {
            100.0 * r.bad as f64 / r.during as f64
        };
        let share = if r.requests == 0 {
            0.0
        } else {
            100.0 * r.bad as f64 / r.requests as f64
        };
        println!(
            "{:<36} {:<14} {:>12} {:>9} {:>7} {:>6.1}% {:>9} {:>14.1} {:>12.1}% {:>7.1}  {}",
            r.name,
            r.bad_label,
            r.status,
            r.requests,
            r.bad,
            share,
            r.errors,
            r.exposure.as_secs_f64() / MINUTE.as_secs_f64(),
            exposed,
            r.wall.as_secs_f64(),
            r.note
        );
    }
}
