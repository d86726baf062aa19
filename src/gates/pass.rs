//! Each gate's body: call its step, hand its result on in the [`Release`], record what a failure
//! later undoes, and say how the gate ended.
//!
//! APIs: those of the steps called (see `crate::steps`).

use tokio::time::Instant;

use super::list::{Cx, Kind, Release, Undo};
use super::pauses;
use super::record::GateOutcome;
use super::undo::{Failure, Stage};
use crate::config::Command;
use crate::error::Error;
use crate::report::Report;
use crate::steps::deploy::{self, BackendReport};
use crate::steps::smoke::{self, SmokeReport};
use crate::steps::{approval, deploy_time, frontend, image, migrate, release, signals, watch};

type Passed = Result<GateOutcome, Failure>;

/// Run one gate.
pub(super) async fn pass(
    kind: Kind,
    cx: &Cx<'_>,
    rel: &mut Release,
    report: &mut Report,
) -> Passed {
    match kind {
        Kind::Preflight => preflight(cx, rel, report).await,
        Kind::Approval => approval(cx, report).await,
        Kind::Image => copy_image(cx, rel, report).await,
        Kind::FrontendArtifact => publish_artifact(rel, report).await,
        Kind::Register => register(cx, rel, report).await,
        Kind::Migration => migrate(cx, rel, report).await,
        Kind::ServiceUpdate => update_service(cx, rel, report).await,
        Kind::Rollout => rollout(cx, rel, report).await,
        Kind::SmokeChecks => smoke_checks(cx, report).await,
        Kind::DeployTime => measure_deploy_time(cx, rel, report).await,
        Kind::FrontendSync => sync_frontend(cx, rel, report).await,
        Kind::WebsiteCheck => website_check(cx, rel, report).await,
        Kind::Watch => watch(cx, rel, report).await,
        Kind::Finalize => finalize(cx, rel, report).await,
        Kind::Marker => marker(cx, rel, report).await,
    }
}

/// Every read-only check: the source release (promotion, archive), the backend plan, the frontend plan.
async fn preflight(cx: &Cx<'_>, rel: &mut Release, report: &mut Report) -> Passed {
    let (clients, cfg) = (cx.clients, cx.cfg);
    if cfg.command == Command::Promote || cfg.image_archive.is_some() {
        let source = image::resolve_source(clients, cfg, &mut report.phases)
            .await
            .map_err(Failure::before_service)?;
        report.promote = Some(source.report());
        // A promotion takes only what passed the source environment.
        let section = report.release.get_or_insert_with(Default::default);
        release::check_source(
            clients,
            cfg,
            cx.settings,
            &source.digest,
            section,
            &mut report.phases,
        )
        .await
        .map_err(Failure::before_service)?;
        crate::shutdown::snapshot(report);
        rel.source = Some(source);
    }
    let expected = rel.source.as_ref().map(|s| s.digest.as_str());
    let section = report.backend.get_or_insert_with(BackendReport::default);
    let prepared = deploy::prepare(clients, cfg, expected, section, &mut report.phases)
        .await
        .map_err(Failure::before_service)?;
    // The migration's preflight: its container and the service's network checked, the task planned
    // (a dry run shows it).
    let (network, definition, containers, update) = prepared.migration_inputs();
    rel.migration = migrate::prepare(
        cfg,
        network,
        definition,
        containers,
        update,
        &mut report.migration,
    )
    .map_err(Failure::before_service)?;
    rel.prepared = Some(prepared);
    crate::shutdown::snapshot(report);
    if let Some(f) = &cfg.frontend {
        let mut sr = frontend::SyncReport::default();
        let plan = frontend::artifact::prepare(clients, cfg, f, &mut sr, &mut report.phases)
            .await
            .map_err(Failure::before_service)?;
        report.frontend = Some(sr);
        rel.frontend = Some(plan);
    }
    Ok(GateOutcome::Passed)
}

/// A promotion's approval, read from the job's GitHub environment before anything is written.
async fn approval(cx: &Cx<'_>, report: &mut Report) -> Passed {
    let (Some(promote), Some(sha)) = (&cx.cfg.promote, &cx.cfg.backend.image_tag) else {
        return Ok(GateOutcome::NotConfigured);
    };
    let section = report.approval.get_or_insert_with(Default::default);
    approval::check(&promote.approval, cx.settings, sha, section)
        .await
        .map_err(Failure::before_service)?;
    Ok(GateOutcome::Passed)
}

/// The image into the target repository (promotion or archive).
async fn copy_image(cx: &Cx<'_>, rel: &mut Release, report: &mut Report) -> Passed {
    let Some(source) = &rel.source else {
        return Ok(GateOutcome::NotConfigured);
    };
    let copied = image::copy(cx.clients, source, &mut report.phases)
        .await
        .map_err(Failure::before_service)?;
    if let Some(p) = &mut report.promote {
        p.record(copied);
    }
    Ok(GateOutcome::Passed)
}

/// The frontend artifact beside the image (published by a deploy, copied by a promotion).
async fn publish_artifact(rel: &mut Release, report: &mut Report) -> Passed {
    let Some((prepared, artifact)) = &mut rel.frontend else {
        return Ok(GateOutcome::NotConfigured);
    };
    let sr = report.frontend.get_or_insert_with(Default::default);
    frontend::artifact::publish(artifact, prepared, sr, &mut report.phases)
        .await
        .map_err(Failure::before_service)?;
    Ok(GateOutcome::Passed)
}

fn prepared(rel: &Release) -> Result<&deploy::Prepared, Failure> {
    rel.prepared
        .as_ref()
        .ok_or_else(|| Failure::before_service(NotReached("the backend preflight")))
}

/// The new task-definition revision (when the definition changes).
async fn register(cx: &Cx<'_>, rel: &mut Release, report: &mut Report) -> Passed {
    rel.update_started = Some(Instant::now());
    let p = prepared(rel)?;
    if !p.changes_service() {
        let section = report.backend.get_or_insert_with(BackendReport::default);
        let deployed = deploy::unchanged(p, section, &mut report.phases);
        rel.deployed = Some(deployed);
        return Ok(GateOutcome::NotConfigured);
    }
    let section = report.backend.get_or_insert_with(BackendReport::default);
    let arn = deploy::register(cx.clients, p, section)
        .await
        .map_err(Failure::before_service)?;
    rel.registered = Some(arn);
    Ok(GateOutcome::Passed)
}

/// The migration task with the registered revision (the exact digest the service will run), before
/// any task of it serves; a failure stops the release with the old version serving.
async fn migrate(cx: &Cx<'_>, rel: &Release, report: &mut Report) -> Passed {
    let (Some(plan), Some(arn)) = (&rel.migration, &rel.registered) else {
        return Ok(GateOutcome::NotConfigured);
    };
    let Some(section) = report.migration.as_mut() else {
        return Ok(GateOutcome::NotConfigured);
    };
    if let Err(e) = migrate::run(cx.clients, plan, arn, section, &mut report.phases).await {
        let backend = report.backend.get_or_insert_with(BackendReport::default);
        backend.task_definition_arn = backend.previous_task_definition_arn.clone();
        backend.outcome = deploy::BackendOutcome::Failed { rolled_back: false };
        return Err(Failure::before_service(e));
    }
    Ok(GateOutcome::Passed)
}

/// `UpdateService` to the new revision; from here a failure rolls the service back.
async fn update_service(cx: &Cx<'_>, rel: &mut Release, report: &mut Report) -> Passed {
    let Some(arn) = rel.registered.clone() else {
        return Ok(GateOutcome::NotConfigured);
    };
    let p = prepared(rel)?;
    let started = rel.update_started.unwrap_or_else(Instant::now);
    let section = report.backend.get_or_insert_with(BackendReport::default);
    let deployed = deploy::update(
        cx.clients,
        cx.cfg,
        p,
        &arn,
        started,
        section,
        &mut report.phases,
    )
    .await
    .map_err(Failure::before_service)?;
    rel.deploy_started = Some(cx.cfg.signals.clock.now());
    rel.deployed = Some(deployed);
    rel.done.push(Undo::Service);
    Ok(GateOutcome::Passed)
}

/// The rollout watched to its end, diagnosed when it fails; the pauses of a blue/green, linear or canary
/// deployment answered on the way (the test-traffic and canary gates, recorded before this one).
async fn rollout(cx: &Cx<'_>, rel: &mut Release, report: &mut Report) -> Passed {
    if rel.registered.is_none() {
        return Ok(GateOutcome::NotConfigured);
    }
    if cx.cfg.backend.wait_timeout.is_zero() {
        return Ok(GateOutcome::Skipped("`wait-timeout: 0`".into()));
    }
    let (Some(p), Some(deployed)) = (&rel.prepared, &rel.deployed) else {
        return Ok(GateOutcome::NotConfigured);
    };
    let section = report.backend.get_or_insert_with(BackendReport::default);
    let mut judge = pauses::Judge {
        cx,
        test_traffic: &mut report.test_traffic,
        canary: &mut report.canary,
        revisions: (
            deployed.task_definition.clone(),
            deployed.previous_task_definition.clone(),
        ),
        routing: p.routing().cloned(),
        groups: None,
        step_from: None,
    };
    let result = deploy::rollout(
        cx.clients,
        cx.cfg,
        p,
        deployed,
        section,
        &mut report.phases,
        &mut judge,
    )
    .await;
    report
        .gates
        .extend(pauses::records(p.pauses(), &section.pauses));
    match result {
        Ok(()) => Ok(GateOutcome::Passed),
        Err(f) => Err(Failure {
            error: f.error.into(),
            stage: Stage::Rollout {
                ecs_rolled_back: f.ecs_rolled_back,
                hands_off: f.hands_off,
            },
        }),
    }
}

/// How a gate that needs the smoke checks ends when they are off: switched off (`smoke.enabled:
/// false`), or not configured (no API URL).
fn smoke_off(cx: &Cx<'_>) -> GateOutcome {
    if cx.cfg.smoke.enabled {
        GateOutcome::NotConfigured
    } else {
        GateOutcome::Skipped("the smoke tests are switched off".into())
    }
}

/// Whether smoke checks run in this release.
fn smoke_on(cx: &Cx<'_>) -> bool {
    cx.cfg.smoke.enabled && cx.cfg.smoke.base_url.is_some()
}

/// The smoke checks and write sequences against the API: a new version that does not answer is rolled
/// back.
async fn smoke_checks(cx: &Cx<'_>, report: &mut Report) -> Passed {
    let section = report.smoke.get_or_insert_with(SmokeReport::default);
    if !smoke_on(cx) {
        smoke::skip(&cx.cfg.smoke, section);
        return Ok(smoke_off(cx));
    }
    smoke::run(&cx.cfg.smoke, section, &mut report.phases)
        .await
        .map_err(|e| Failure::after("smoke tests failed", e))?;
    Ok(GateOutcome::Passed)
}

/// Where the rollout's time went (read-only, best effort), with how fast the app answered.
async fn measure_deploy_time(cx: &Cx<'_>, rel: &Release, report: &mut Report) -> Passed {
    let Some(deployed) = &rel.deployed else {
        return Ok(GateOutcome::NotConfigured);
    };
    let answer_ms = report
        .smoke
        .as_ref()
        .and_then(|s| s.checks.iter().map(|c| c.latency().0).max());
    report.deploy_time = deploy_time::measure(cx.clients, cx.cfg, deployed, answer_ms).await;
    Ok(GateOutcome::Passed)
}

/// The frontend, only once the API it calls is known good. Nothing of the previous release is deleted
/// until the release is final; a failure puts the previous release back.
async fn sync_frontend(cx: &Cx<'_>, rel: &mut Release, report: &mut Report) -> Passed {
    let (Some(f), Some((plan, artifact))) = (&cx.cfg.frontend, rel.frontend.take()) else {
        return Ok(GateOutcome::NotConfigured);
    };
    let sr = report.frontend.get_or_insert_with(Default::default);
    let applied = frontend::apply(cx.clients, f, plan, sr, &mut report.phases).await;
    drop(artifact);
    rel.done.push(Undo::Site);
    match applied {
        Ok(synced) => {
            rel.synced = Some(synced);
            Ok(GateOutcome::Passed)
        }
        Err(failed) => {
            rel.synced = Some(failed.synced);
            Err(Failure::after("the frontend sync failed", failed.error))
        }
    }
}

/// The website serves the new release.
async fn website_check(cx: &Cx<'_>, rel: &Release, report: &mut Report) -> Passed {
    let s = &cx.cfg.smoke;
    if rel.synced.is_none() || !(s.enabled && s.frontend_check && s.website_url.is_some()) {
        return Ok(GateOutcome::NotConfigured);
    }
    let section = report.smoke.get_or_insert_with(SmokeReport::default);
    smoke::check_frontend(s, section, &mut report.phases)
        .await
        .map_err(|e| Failure::after("the website check failed", e))?;
    Ok(GateOutcome::Passed)
}

/// Keep checking for a while, with the app's signals; a sustained failure rolls back.
async fn watch(cx: &Cx<'_>, rel: &Release, report: &mut Report) -> Passed {
    let (clients, cfg) = (cx.clients, cx.cfg);
    if !smoke_on(cx) {
        return Ok(smoke_off(cx));
    }
    if cfg.smoke.watch.is_zero() {
        return Ok(GateOutcome::NotConfigured);
    }
    let Some(deployed) = &rel.deployed else {
        return Ok(GateOutcome::NotConfigured);
    };
    let probe = || async {
        deploy::service_health(clients, cfg, deployed)
            .await
            .map_err(Error::from)
    };
    let started = rel
        .deploy_started
        .unwrap_or_else(|| cfg.signals.clock.now());
    let signals = signals::Signals::start(clients, cfg, deployed, started).await;
    // The signals section after every round: a run cancelled mid-watch still reports them.
    report.signals = Some(signals.report());
    let slot = std::cell::RefCell::new(&mut report.signals);
    let section = report.smoke.get_or_insert_with(SmokeReport::default);
    let watched = watch::run(
        &cfg.smoke,
        probe,
        || async {
            let bad = signals.round().await;
            if let Ok(mut s) = slot.try_borrow_mut() {
                **s = Some(signals.report());
            }
            bad
        },
        section,
        &mut report.phases,
    )
    .await;
    report.signals = Some(signals.report());
    watched.map_err(|e| Failure::after("the post-deploy watch saw a sustained failure", e))?;
    Ok(GateOutcome::Passed)
}

/// The release is final: the previous release's stale files and the backups go.
async fn finalize(cx: &Cx<'_>, rel: &mut Release, report: &mut Report) -> Passed {
    let (Some(f), Some(synced)) = (&cx.cfg.frontend, rel.synced.take()) else {
        return Ok(GateOutcome::NotConfigured);
    };
    // Final: nothing of the site is undone after this.
    rel.done.retain(|u| *u != Undo::Site);
    let sr = report.frontend.get_or_insert_with(Default::default);
    // Its failures are warnings (the release is live and passed): see `frontend::finalize`.
    frontend::finalize(cx.clients, f, synced, sr, &mut report.phases).await;
    Ok(GateOutcome::Passed)
}

/// Record the verified release and move the extra tags (failures are warnings: the release is live).
async fn marker(cx: &Cx<'_>, rel: &Release, report: &mut Report) -> Passed {
    let Some(deployed) = &rel.deployed else {
        return Ok(GateOutcome::NotConfigured);
    };
    let watched = matches!(
        report.backend.as_ref().map(|b| &b.outcome),
        Some(deploy::BackendOutcome::Deployed { watched: true } | deploy::BackendOutcome::NoChange)
    );
    let frontend_digest = report.frontend.as_ref().and_then(|f| f.artifact.clone());
    let passed = release::Passed {
        digest: &deployed.image_digest,
        task_definition: &deployed.task_definition,
        watched,
        smoke_passed: smoke_on(cx),
        source: rel.source.as_ref(),
        frontend_digest: frontend_digest.as_deref(),
        gates: recorded_gates(report),
    };
    let section = report.release.get_or_insert_with(Default::default);
    release::settle(
        cx.clients,
        cx.cfg,
        cx.settings,
        passed,
        section,
        &mut report.phases,
    )
    .await;
    Ok(GateOutcome::Passed)
}

/// A gate ran before the gate it needs (a bug in the gate list, not a user error).
#[derive(Debug, thiserror::Error)]
#[error("the release reached a gate before {0}")]
struct NotReached(&'static str);

impl crate::error::Diagnose for NotReached {
    fn hint(&self) -> String {
        "this is a bug in cloudshop-deploy: please report it with the log".into()
    }
}

/// The gates the marker records, each `passed`, `skipped` or `not-configured`, from the gate records
/// and the sections of what ran within them (write sequences, the watch's signals).
fn recorded_gates(report: &Report) -> std::collections::BTreeMap<String, String> {
    let of = |name: &str| {
        report
            .gates
            .iter()
            .find(|g| g.name == name)
            .map_or("not-configured", |g| g.outcome.word())
    };
    let unchanged = matches!(
        report.backend.as_ref().map(|b| &b.outcome),
        Some(deploy::BackendOutcome::NoChange)
    );
    // An unchanged service already ran this release stably: its rollout passed before.
    let rollout = if unchanged { "passed" } else { of("rollout") };
    let smoke = report.smoke.as_ref();
    let writes = match smoke {
        Some(s) if !s.sequences.is_empty() => "passed",
        Some(s) if s.sequences_skipped.is_some() => "skipped",
        _ => "not-configured",
    };
    let signals = match &report.signals {
        Some(s) if s.enabled && s.notes.is_empty() && s.round_count > 0 => "passed",
        Some(s) if s.enabled => "skipped",
        _ => "not-configured",
    };
    [
        ("rollout", rollout),
        ("test-traffic", of(pauses::TEST_TRAFFIC)),
        ("canary", of(pauses::CANARY)),
        ("smoke", of("smoke checks")),
        ("writes", writes),
        ("website", of("website check")),
        ("watch", of("watch")),
        ("signals", signals),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}
