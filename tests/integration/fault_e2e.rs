//! A whole release (stage deploy with a 100-file frontend, then promotion to prod) through the real binary
//! with every AWS, ECS and registry request behind a fault proxy ([`common::pipeline`]):
//! - at 20% injected faults on every operation (500s, throttling, dropped connections, stalls) it
//!   succeeds, changes each thing once (one new task-definition revision per environment, one
//!   successful upload per file) and reports what a clean run reports. Both wall times are printed
//!   (`--nocapture`), never asserted; `examples/fault_bench.rs` measures the ratios.
//! - an operation that keeps failing (`UpdateService`, `RegisterTaskDefinition`) ends the run in one
//!   error naming it, within the retry bound, with the service on its old revision and the outputs saying
//!   so.

use harness as common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::faults::{Fault, FaultPlan, FaultProxy};
use common::pipeline::{every_fault, Ran, Release, Upstream};

const FILES: usize = 100;
const REV2: &str = "cloudshop-backend:2";
const REV3: &str = "cloudshop-backend:3";
/// Attempts per AWS operation (`CallLimits::max_attempts`).
const MAX_ATTEMPTS: usize = 6;

/// What a good release left, whatever was injected on the way.
fn assert_released(r: &Release, ran: &Ran) {
    let (d, p) = (&ran.deploy, &ran.promote);
    assert_eq!(d.code, 0, "stage deploy\n{}", d.dump());
    assert_eq!(d.output("status"), "deployed", "{}", d.dump());
    assert_eq!(d.output("rolled-back"), "false");
    assert!(d.output("task-definition-arn").ends_with(REV3));
    assert!(d.output("previous-task-definition-arn").ends_with(REV2));
    assert_eq!(d.output("frontend-uploaded"), FILES.to_string());
    assert_eq!(d.output("frontend-deleted"), "0");
    assert!(d.error_lines().is_empty(), "{}", d.dump());
    assert_eq!(p.code, 0, "promotion\n{}", p.dump());
    assert_eq!(p.output("status"), "deployed", "{}", p.dump());
    let digest = r
        .registry
        .digest_of(&r.stage_repo, common::pipeline::SHA)
        .expect("the stage image");
    assert_eq!(p.output("promoted-digest"), digest);
    assert_eq!(
        r.registry
            .digest_of(&r.prod_repo, common::pipeline::SHA)
            .as_deref(),
        Some(digest.as_str())
    );
    assert!(p.output("task-definition-arn").ends_with(REV3));

    // Exactly one new revision per environment, and the service on it.
    for (name, sim) in [("stage", &r.stage), ("prod", &r.prod)] {
        assert_eq!(
            sim.count("RegisterTaskDefinition"),
            1,
            "{name}: {:?}",
            sim.calls()
        );
        assert!(
            sim.task_definition("cloudshop-backend:4").is_none(),
            "{name}"
        );
        assert!(
            sim.service_task_definition().ends_with(REV3),
            "{name}: {}",
            sim.service_task_definition()
        );
    }
    // Each file written once (a faulted attempt never reached moto; a retry is not a second write).
    let puts = ran.puts_per_key(&r.bucket);
    let site: BTreeMap<&String, &usize> = puts
        .iter()
        .filter(|(k, _)| !k.starts_with(".cloudshop-deploy/"))
        .collect();
    assert_eq!(site.len(), FILES, "{site:?}");
    let twice: Vec<_> = site.iter().filter(|(_, n)| ***n != 1).collect();
    assert!(twice.is_empty(), "uploaded more than once: {twice:?}");
}

#[test]
fn a_release_at_20_percent_faults_succeeds_and_changes_each_thing_once() {
    let clean = Release::new("clean", FILES);
    let base = clean.run(|_| FaultPlan::none());
    assert_released(&clean, &base);
    assert_eq!(base.faults(), 0);

    let faulty = Release::new("faults", FILES);
    let ran = faulty.run(|u| {
        let seed = match u {
            Upstream::Aws => 11,
            Upstream::StageEcs => 12,
            Upstream::ProdEcs => 13,
            Upstream::Registry => 14,
        };
        let mut plan = every_fault(0.2, Duration::from_secs(1), seed);
        // The ECS and registry proxies see few requests: one sure fault each on top of the rate.
        plan.nth = match u {
            Upstream::Aws => vec![],
            Upstream::StageEcs | Upstream::ProdEcs => {
                vec![("ecs:DescribeServices".into(), 1, Fault::ServerError)]
            }
            Upstream::Registry => vec![("registry:HEAD manifest".into(), 1, Fault::Reset)],
        };
        plan
    });
    eprintln!(
        "release (stage deploy + {FILES}-file frontend + promote): clean {:.1}s (deploy {:.1}s, \
         promote {:.1}s; {} requests); 20% faults {:.1}s (deploy {:.1}s, promote {:.1}s; {} requests, \
         {} faults): {:.2}x",
        base.total().as_secs_f64(),
        base.deploy_time.as_secs_f64(),
        base.promote_time.as_secs_f64(),
        base.requests(),
        ran.total().as_secs_f64(),
        ran.deploy_time.as_secs_f64(),
        ran.promote_time.as_secs_f64(),
        ran.requests(),
        ran.faults(),
        ran.total().as_secs_f64() / base.total().as_secs_f64()
    );
    assert_released(&faulty, &ran);
    // The faults were really there, of every kind, on every upstream.
    for (name, calls) in [
        ("moto", &ran.aws),
        ("stage ECS", &ran.stage_ecs),
        ("prod ECS", &ran.prod_ecs),
        ("registry", &ran.registry),
    ] {
        assert!(
            calls.iter().any(|c| c.fault.is_some()),
            "no fault injected in front of {name}"
        );
    }
    let all: Vec<_> = [&ran.aws, &ran.stage_ecs, &ran.prod_ecs, &ran.registry]
        .into_iter()
        .flatten()
        .collect();
    for kind in [
        Fault::ServerError,
        Fault::Throttle,
        Fault::Reset,
        Fault::Stall,
    ] {
        assert!(
            all.iter().any(|c| c.fault == Some(kind)),
            "no {kind:?} injected"
        );
    }
    assert!(
        all.iter().any(|c| c.op == "s3:PutObject"
            && c.fault == Some(Fault::Throttle)
            && !c.path.contains(".cloudshop-deploy")),
        "no upload was throttled"
    );
    // ... and the uploads slowed down for it (the frontend's concurrency cut).
    assert!(
        ran.deploy.stderr.contains("fewer in flight"),
        "{}",
        ran.deploy.stderr
    );
    // What the reader sees is what a clean run shows: the same outputs, bar times and ids.
    for name in [
        "status",
        "rolled-back",
        "frontend-uploaded",
        "frontend-deleted",
        "frontend-unchanged",
        "frontend-bytes",
    ] {
        assert_eq!(
            ran.deploy.output(name),
            base.deploy.output(name),
            "deploy output {name}"
        );
    }
}

/// `ecs:UpdateService` answers 500 every time: the deploy ends in one error naming it after the retry
/// bound, the service stays on its old revision, no frontend file goes out, and the outputs say so.
#[test]
fn an_update_service_that_keeps_failing_leaves_the_old_revision() {
    let r = Release::new("keepsfailing", 10);
    let aws = FaultProxy::start(&r.moto.endpoint, FaultPlan::none());
    let ecs = FaultProxy::start(
        &r.stage.endpoint,
        FaultPlan {
            always: vec![("ecs:UpdateService".into(), Fault::ServerError)],
            ..FaultPlan::none()
        },
    );
    let res = r
        .deploy_action(&aws.endpoint, &ecs.endpoint)
        .run_within(Duration::from_secs(300));
    assert_ne!(res.code, 0, "{}", res.dump());
    let errors = res.error_lines();
    assert_eq!(errors.len(), 1, "{}", res.dump());
    assert!(errors[0].contains("UpdateService"), "{}", errors[0]);
    // Retried to the bound, then stopped.
    let updates = ecs
        .ops()
        .iter()
        .filter(|o| *o == "ecs:UpdateService")
        .count();
    assert_eq!(updates, MAX_ATTEMPTS, "{:?}", ecs.ops());
    // The service never left revision 2; the outputs say the run failed and where the service is.
    assert_eq!(r.stage.count("UpdateService"), 0);
    assert!(r.stage.service_task_definition().ends_with(REV2));
    assert_eq!(res.output("status"), "failed", "{}", res.dump());
    // `task-definition-arn` is the revision serving: still 2, although 3 was registered.
    assert!(
        res.output("task-definition-arn").ends_with(REV2),
        "{}",
        res.dump()
    );
    assert!(
        res.output("previous-task-definition-arn").ends_with(REV2),
        "{}",
        res.dump()
    );
    assert!(r.stage.task_definition(REV3).is_some());
    assert_eq!(res.output("rolled-back"), "false");
    // Nothing of the frontend went out on top of a backend that did not change.
    assert!(
        !aws.ops().iter().any(|o| o == "s3:PutObject"),
        "{:?}",
        aws.ops()
    );
}

/// `ecs:RegisterTaskDefinition` throttled every time: one error naming it after the retry bound, no
/// revision registered, no update sent, the outputs on revision 2.
#[test]
fn a_register_task_definition_that_keeps_failing_changes_nothing() {
    let r = Release::new("regfails", 5);
    let aws = FaultProxy::start(&r.moto.endpoint, FaultPlan::none());
    let ecs = FaultProxy::start(
        &r.stage.endpoint,
        FaultPlan {
            always: vec![("ecs:RegisterTaskDefinition".into(), Fault::Throttle)],
            ..FaultPlan::none()
        },
    );
    let res = r
        .deploy_action(&aws.endpoint, &ecs.endpoint)
        .run_within(Duration::from_secs(300));
    assert_ne!(res.code, 0, "{}", res.dump());
    let errors = res.error_lines();
    assert_eq!(errors.len(), 1, "{}", res.dump());
    assert!(
        errors[0].contains("ecs:RegisterTaskDefinition")
            && errors[0].contains("ThrottlingException"),
        "{}",
        errors[0]
    );
    let registers = ecs
        .ops()
        .iter()
        .filter(|o| *o == "ecs:RegisterTaskDefinition")
        .count();
    assert_eq!(registers, MAX_ATTEMPTS, "{:?}", ecs.ops());
    assert!(r.stage.mutating_calls().is_empty(), "{:?}", r.stage.calls());
    assert!(r.stage.task_definition(REV3).is_none());
    assert_eq!(res.output("status"), "failed", "{}", res.dump());
    assert!(
        res.output("task-definition-arn").ends_with(REV2),
        "{}",
        res.dump()
    );
    assert!(
        !aws.ops().iter().any(|o| o == "s3:PutObject"),
        "{:?}",
        aws.ops()
    );
}
