//! What injected faults cost a whole release (prints figures, asserts nothing): a stage deploy with a
//! 100-file frontend, then a promotion to prod, through the real binary with every AWS, ECS and registry
//! request behind a fault proxy (`harness::pipeline`), against moto, the ECS simulators and a local
//! registry. Each setting runs `RUNS` times on fresh names; the median wall time and its ratio to the clean
//! median are printed, with the requests and faults seen:
//!
//! - clean (a recording proxy, no fault);
//! - 20% of every operation: 500s, throttling, dropped connections and 1 s stalls;
//! - 20% of every operation without stalls;
//! - 20% of S3 requests answered `SlowDown` (503) only;
//! - 20% of S3 requests answered `InternalError` (500) only.
//!
//! Every setting lets a request target fail at most twice in a row (`max_in_a_row`): a transient fault
//! passes by the third try, so the figures measure the cost of faults, not the odds of a streak.
//!
//! ```sh
//! cargo build --bin cloudshop-deploy && cargo run -q --example fault_bench
//! ```
//!
//! The binary it runs is the debug build next to the example (or `CLOUDSHOP_DEPLOY_BIN`).

use harness as common;

use std::time::Duration;

use common::faults::{Fault, FaultPlan};
use common::pipeline::{every_fault, Ran, Release, Upstream};

const FILES: usize = 100;
const RUNS: usize = 3;

fn seed(u: Upstream, run: usize) -> u64 {
    100 * run as u64
        + match u {
            Upstream::Aws => 1,
            Upstream::StageEcs => 2,
            Upstream::ProdEcs => 3,
            Upstream::Registry => 4,
        }
}

fn s3_only(kind: Fault, u: Upstream, run: usize) -> FaultPlan {
    FaultPlan {
        rate: if u == Upstream::Aws { 0.2 } else { 0.0 },
        kinds: vec![kind],
        only: vec!["s3:".into()],
        seed: seed(u, run),
        max_in_a_row: 2,
        ..FaultPlan::default()
    }
}

fn plan(setting: &str, u: Upstream, run: usize) -> FaultPlan {
    match setting {
        "clean" => FaultPlan::none(),
        "20% all faults (1 s stalls)" => every_fault(0.2, Duration::from_secs(1), seed(u, run)),
        "20% 500/throttle/reset" => FaultPlan {
            rate: 0.2,
            seed: seed(u, run),
            max_in_a_row: 2,
            ..FaultPlan::default()
        },
        "20% S3 SlowDown only" => s3_only(Fault::Throttle, u, run),
        "20% S3 InternalError only" => s3_only(Fault::ServerError, u, run),
        other => panic!("{other}"),
    }
}

fn ok(ran: &Ran) -> bool {
    ran.deploy.code == 0 && ran.promote.code == 0
}

fn main() {
    if std::env::var_os("CLOUDSHOP_DEPLOY_BIN").is_none() {
        // target/debug/examples/fault_bench -> target/debug/cloudshop-deploy
        if let Some(dir) = std::env::current_exe()
            .ok()
            .and_then(|p| p.parent()?.parent().map(|d| d.to_path_buf()))
        {
            std::env::set_var("CLOUDSHOP_DEPLOY_BIN", dir.join("cloudshop-deploy"));
        }
    }
    let settings = [
        "clean",
        "20% all faults (1 s stalls)",
        "20% 500/throttle/reset",
        "20% S3 SlowDown only",
        "20% S3 InternalError only",
    ];
    let mut clean = None;
    println!(
        "{:<30} {:>9} {:>7} {:>9} {:>7} {:>6}  runs (s)",
        "setting", "median s", "ratio", "requests", "faults", "ok"
    );
    for (i, setting) in settings.iter().enumerate() {
        let mut times = Vec::new();
        let mut requests = 0;
        let mut faults = 0;
        let mut good = 0;
        for run in 0..RUNS {
            let release = Release::new(&format!("b{i}r{run}"), FILES);
            let ran = release.run(|u| plan(setting, u, run));
            if ok(&ran) {
                good += 1;
            } else {
                eprintln!(
                    "{setting} run {run} failed:\n{}\n{}",
                    ran.deploy.dump(),
                    ran.promote.dump()
                );
            }
            times.push(ran.total().as_secs_f64());
            requests += ran.requests();
            faults += ran.faults();
        }
        let mut sorted = times.clone();
        sorted.sort_by(f64::total_cmp);
        let median = sorted[sorted.len() / 2];
        let base = *clean.get_or_insert(median);
        println!(
            "{:<30} {:>9.1} {:>6.2}x {:>9} {:>7} {:>4}/{}  {}",
            setting,
            median,
            median / base,
            requests / RUNS,
            faults / RUNS,
            good,
            RUNS,
            times
                .iter()
                .map(|t| format!("{t:.1}"))
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
}
