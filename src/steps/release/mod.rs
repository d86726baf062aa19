//! Verified releases. A deploy (or promotion) that passed everything the run checks (rollout, smoke tests,
//! frontend check, watch) records it with a marker `verified-<env>-<sha>` in the environment's
//! repository ([`settle`]), and only then moves the `extra-tags`. A promotion refuses, before any write,
//! a digest the source environment has no marker for ([`check_source`]); `command: rollback` goes back
//! to the newest verified release other than the one running ([`pick`]).
//!
//! Where markers live: the registry of the repository, through the registry client (`registry-url`
//! when set, else the repository URI's registry host). When the ECR endpoint is overridden (an emulator:
//! `AWS_ENDPOINT_URL` or `AWS_ENDPOINT_URL_ECR`) and no `registry-url` names its registry, there is no
//! registry to address: a deploy writes no marker (a warning), a promotion is refused unless
//! `allow-unverified: true`, a rollback falls back to the last completed deployment.
//!
//! A marker that cannot be written after a good deploy is a warning, not an error: the release is live
//! and passed, and failing the run would report `failed` for a service that runs the new version; the
//! only effect is that a promotion of it is refused until it is deployed again, which is the safe side,
//! and that a later `command: rollback` does not pick it as a verified release. The same policy holds
//! for every piece of bookkeeping after the release passed (the frontend's stale files too); the sync
//! state, written before the release counts as done, is part of the release (see `docs/reliability.md`).
//!
//! Layout: `marker` (marker I/O), `pick` (the rollback target), `promotable` (what a promotion
//! without `image-tag` ships, and the commits it adds), `listing` (`command: releases`, every
//! environment of the file), `report` (the summary section), `error`.
//!
//! APIs: ECR `DescribeRepositories`, `GetAuthorizationToken`, `PutImage` (extra tags of a plain deploy
//! or a retag); the registry API; ECS (see `pick`); S3 `GetObject` (see `listing`); GitHub REST compare
//! (see `promotable`).

mod error;
mod listing;
mod marker;
mod pick;
mod promotable;
mod report;
mod settings;

use tokio::time::Instant;

pub use error::Error;
pub use listing::{releases, EnvReleases, Live, ReleasesReport};
pub use marker::{Store, Written};
pub use pick::{pick, revision_of, Choice};
pub use promotable::{
    commits_between, explain, explanation, is_commit_sha, live_sha, promotable, Commits, Promotable,
};
pub use report::{ReleaseReport, SourceCheck};
pub use settings::{store, Settings};

use settings::NO_REGISTRY;

use crate::config::{Command, Config};
use crate::github::commands;
use crate::registry::artifact::{verified_tag, Verification};
use crate::report::section::{Outcome, Timeline};
use crate::steps::{image, Clients};

/// A promotion, before any write: the source environment's marker for the image tag must name `digest`.
/// Refused otherwise, unless `allow-unverified: true` (then a warning and a line in the summary).
pub async fn check_source(
    clients: &Clients,
    cfg: &Config,
    settings: &Settings,
    digest: &str,
    section: &mut ReleaseReport,
    timeline: &mut Timeline,
) -> Result<(), Error> {
    let Some(promote) = cfg
        .promote
        .as_ref()
        .filter(|_| cfg.command == Command::Promote)
    else {
        return Ok(());
    };
    let started = Instant::now();
    let _group = commands::group("Check the release passed the source environment");
    let sha = cfg.backend.image_tag.clone().ok_or(Error::NoTag)?;
    let source_env = &promote.source_environment;
    let tag = verified_tag(source_env, &sha);
    let store = store(clients, cfg, settings, image::Side::Source).await;
    let no_registry = matches!(store, Ok(None));
    let found = match store {
        Ok(Some(s)) => s.read(&tag).await.map_err(|e| e.to_string()),
        Ok(None) => Err(NO_REGISTRY.to_string()),
        Err(e) => Err(e.to_string()),
    };
    let (problem, missing_gates) =
        match judge(found, digest, &sha, source_env, &tag, &promote.require) {
            Ok(v) => {
                tracing::info!(
                    "`{sha}` ({digest}) passed `{source_env}` at {} in {}",
                    v.verified_at,
                    v.run_url.as_deref().unwrap_or("an unnamed run")
                );
                section.source = Some(SourceCheck::Verified(Box::new(v)));
                timeline.record("release check", started, Outcome::Ok);
                return Ok(());
            }
            Err(refused) => refused,
        };
    if promote.allow_unverified {
        commands::emit(
            commands::Level::Warning,
            Some("cloudshop-deploy"),
            &format!("promoting `{sha}` unverified (`allow-unverified: true`): {problem}"),
        );
        section.source = Some(SourceCheck::Overridden(problem));
        timeline.record("release check", started, Outcome::Ok);
        return Ok(());
    }
    timeline.record("release check", started, Outcome::Failed);
    if !missing_gates.is_empty() {
        return Err(Error::GatesMissing {
            sha,
            source_env: source_env.clone(),
            missing: missing_gates,
            reason: problem,
        });
    }
    Err(Error::Unverified {
        sha,
        source_env: source_env.clone(),
        reason: problem,
        no_registry,
    })
}

/// The source environment's marker for the release: `Ok` when it names `digest` and records every
/// required gate as passed; else why not, and the required gates it does not record as passed.
fn judge(
    found: Result<Option<Verification>, String>,
    digest: &str,
    sha: &str,
    source_env: &str,
    tag: &str,
    required: &[String],
) -> Result<Verification, (String, Vec<String>)> {
    let v = match found {
        Ok(Some(v)) if v.digest == digest => v,
        Ok(Some(v)) => {
            return Err((
                format!(
                    "the marker `{tag}` of `{source_env}` names {}, not the digest to promote \
                     ({digest}): the tag was pushed again after that release passed",
                    v.digest
                ),
                Vec::new(),
            ))
        }
        Ok(None) => {
            return Err((
                format!(
                    "`{source_env}` has no marker `{tag}`: this digest ({digest}) never passed \
                     `{source_env}` (its deploy failed or was rolled back, or it was never deployed there)"
                ),
                Vec::new(),
            ))
        }
        Err(e) => {
            let why = format!("the marker `{tag}` of `{source_env}` could not be read: {e}");
            return Err((why, Vec::new()));
        }
    };
    let missing = passed_required(&v, required);
    if missing.is_empty() {
        return Ok(v);
    }
    let recorded: Vec<String> = missing
        .iter()
        .map(|g| format!("{g}: {}", v.gate(g)))
        .collect();
    let why = format!(
        "`{sha}` passed `{source_env}` without the gates this environment requires ({}): the marker \
         `{tag}` records {}",
        missing.join(", "),
        recorded.join(", ")
    );
    Err((why, missing))
}

/// The gates of `required` that the marker does not record as passed.
fn passed_required(v: &Verification, required: &[String]) -> Vec<String> {
    required
        .iter()
        .filter(|g| v.gate(g) != "passed")
        .cloned()
        .collect()
}

/// What the run deployed, for [`settle`].
#[derive(Debug)]
pub struct Passed<'a> {
    /// The digest the service runs.
    pub digest: &'a str,
    /// The revision that ran it.
    pub task_definition: &'a str,
    /// The rollout was watched to its end (not `wait-timeout: 0`).
    pub watched: bool,
    /// Smoke tests ran and passed (else they were off).
    pub smoke_passed: bool,
    /// The promotion or archive push (its extra tags move here), if any.
    pub source: Option<&'a image::SourceImage>,
    /// The frontend artifact digest deployed with the image (pushed or promoted), when known.
    pub frontend_digest: Option<&'a str>,
    /// Each recorded gate (see `registry::artifact::RECORDED_GATES`) as `passed`, `skipped` or `not-configured`.
    pub gates: std::collections::BTreeMap<String, String>,
}

/// After a run that passed everything: write the marker, then move the extra tags. Failures are
/// warnings (see the module's documentation).
pub async fn settle(
    clients: &Clients,
    cfg: &Config,
    settings: &Settings,
    passed: Passed<'_>,
    section: &mut ReleaseReport,
    timeline: &mut Timeline,
) {
    let started = Instant::now();
    let _group = commands::group("Record the verified release");
    let warn = |what: &str| {
        commands::emit(commands::Level::Warning, Some("cloudshop-deploy"), what);
    };
    match record(clients, cfg, settings, &passed).await {
        Ok(Some((tag, written))) => {
            match written {
                Written::New => tracing::info!("recorded the verified release as `{tag}`"),
                Written::AlreadyThere(v) => tracing::info!(
                    "`{tag}` already records this digest (verified at {})",
                    v.verified_at
                ),
            }
            section.marker = Some(tag);
        }
        Ok(None) => {}
        Err(why) => {
            warn(&format!(
                "the release passed but was not recorded as verified: {why}; a promotion of it will be \
                 refused (deploy it again, or promote with `allow-unverified: true`), and a later \
                 `command: rollback` will not pick it as a verified release"
            ));
            section.not_recorded = Some(why);
        }
    }
    let tags = match passed.source {
        Some(source) => image::add_extra_tags(clients, source).await,
        None if cfg.backend.extra_tags.is_empty() => Ok(Vec::new()),
        None => match image::repository(&clients.ecr, &cfg.backend.repository).await {
            Ok(repo) => {
                image::add_tags(&clients.ecr, &repo, passed.digest, &cfg.backend.extra_tags).await
            }
            Err(e) => Err(e),
        },
    };
    match tags {
        Ok(lines) => {
            for l in &lines {
                tracing::info!("extra tag {l}");
            }
            section.extra_tags = lines;
        }
        Err(e) => warn(&format!(
            "the release passed but its extra tags were not moved: {e}"
        )),
    }
    timeline.record("record release", started, Outcome::Ok);
}

/// Write the marker; `Ok(None)` when the run verified nothing a marker should say (rollout not watched).
async fn record(
    clients: &Clients,
    cfg: &Config,
    settings: &Settings,
    passed: &Passed<'_>,
) -> Result<Option<(String, Written)>, String> {
    if !passed.watched {
        tracing::info!("`wait-timeout: 0`: the rollout was not watched, so no verification marker");
        return Ok(None);
    }
    let sha = cfg
        .backend
        .image_tag
        .clone()
        .ok_or_else(|| Error::NoTag.to_string())?;
    let Some(store) = store(clients, cfg, settings, image::Side::Own)
        .await
        .map_err(|e| e.to_string())?
    else {
        return Err(NO_REGISTRY.into());
    };
    let v = Verification {
        environment: cfg.environment.clone(),
        digest: passed.digest.to_string(),
        sha: sha.clone(),
        frontend: passed.frontend_digest.map(str::to_string),
        task_definition: Some(passed.task_definition.to_string()),
        run_url: settings.run_url.clone(),
        verified_at: humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
        smoke: if passed.smoke_passed {
            "passed"
        } else {
            "skipped"
        }
        .into(),
        gates: passed.gates.clone(),
    };
    let written = store.write(&v).await.map_err(|e| e.to_string())?;
    Ok(Some((verified_tag(&cfg.environment, &sha), written)))
}
