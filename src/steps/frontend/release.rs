//! The end of a synced release: [`finalize`] once the release is final (after the watch, or at the end of
//! a run without one) deletes the previous release's stale objects and the backups; [`restore`] after a
//! rollback puts the previous release back exactly as it was (see `undo`). Both write what they will do
//! to the bucket first (see `pending`), so what a cancelled or failed one left is finished by the next
//! run ([`finish_pending`]).
//!
//! AWS APIs: S3 `PutObject` (the journal), `CopyObject`, `DeleteObjects`; CloudFront
//! `CreateInvalidation`.

use tokio::time::Instant;

use super::cloudfront;
use super::error::Error;
use super::pending::{Kind, Pending, PENDING_NAME};
use super::report::SyncReport;
use super::s3;
use super::undo::{self, Undo};
use crate::config::Frontend;
use crate::github::commands;
use crate::report::section::{Outcome, Timeline};
use crate::steps::Clients;

/// How far [`super::apply`] got.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Progress {
    /// Every backup is made and the uploads have started: objects may be overwritten.
    pub writing: bool,
    /// The state object was written.
    pub state_written: bool,
}

/// A release [`super::apply`] put in the bucket (or began to), not yet final: what [`finalize`]
/// deletes and what [`restore`] takes back.
#[derive(Debug)]
pub struct Synced {
    undo: Undo,
    /// The previous release's objects this one no longer has (deleted once final).
    stale: Vec<String>,
    progress: Progress,
}

impl Synced {
    pub(super) fn new(undo: Undo, stale: Vec<String>, progress: Progress) -> Synced {
        Synced {
            undo,
            stale,
            progress,
        }
    }
}

/// The release passed: delete the previous release's stale objects, then the backups. `sr` counts the
/// deletes; the phase `frontend finalize` goes into `timeline`.
///
/// The release is live and passed its checks, so a failure here does not fail the run (the policy for
/// every piece of bookkeeping after that point, see `docs/reliability.md`): it is a `::warning::` that
/// says what is left. No journal is written for it: the next sync lists the stale files (not in its
/// build) and the leftover backups, and deletes them once its own release is final.
pub async fn finalize(
    clients: &Clients,
    cfg: &Frontend,
    synced: Synced,
    sr: &mut SyncReport,
    timeline: &mut Timeline,
) {
    let backups = synced.undo.backup_keys(synced.progress.state_written);
    if synced.stale.is_empty() && backups.is_empty() {
        return;
    }
    let started = Instant::now();
    let _group = commands::group("Frontend: delete the previous release's stale files");
    let deletes = synced.stale.iter().chain(&backups).cloned().collect();
    let cleanup = Pending::new(Kind::Cleanup, Vec::new(), deletes);
    let mut errors = steps(clients, cfg, &cleanup, sr).await;
    if let Some(id) = cfg.cloudfront_distribution_id.as_ref() {
        let paths = cloudfront::invalidation_paths(
            std::iter::empty(),
            synced
                .stale
                .iter()
                .map(|k| k.strip_prefix(&cfg.prefix).unwrap_or(k)),
        );
        if let Err(e) = invalidate(clients, id, paths, sr).await {
            errors.push(e);
        }
    }
    tracing::info!(deleted = sr.deleted, "frontend release final");
    let outcome = if errors.is_empty() {
        Outcome::Ok
    } else {
        Outcome::Failed
    };
    timeline.record("frontend finalize", started, outcome);
    for e in errors {
        let line = format!(
            "the release is live and passed its checks, but its cleanup did not finish: {e}; the previous \
             release's stale files (harmless to visitors) and backups stay until the next deploy deletes \
             them, and a rollback still restores from the sync state"
        );
        commands::emit(commands::Level::Warning, Some("cloudshop-deploy"), &line);
        sr.unfinished.push(line);
    }
}

/// Take the release back: copy every overwritten object back from its backup (assets, pages, then the
/// root `index.html`), delete the keys the sync created, put the previous state object back, delete the
/// backups, and invalidate CloudFront. Afterwards the bucket holds the previous release byte for byte.
///
/// What it has to do is written to the bucket first (see `pending`); it goes on past an object it
/// cannot put back, and then fails with every problem ([`Error::Restore`]), the journal left for the
/// next run to finish.
pub async fn restore(
    clients: &Clients,
    cfg: &Frontend,
    synced: Synced,
    sr: &mut SyncReport,
    timeline: &mut Timeline,
) -> Result<(), Error> {
    let started = Instant::now();
    let _group = commands::group("Frontend: restore the previous release");
    let undo = &synced.undo;
    // A sync that stopped while making its backups overwrote nothing: only its copies go.
    let writing = synced.progress.writing;
    let plan = restore_journal(undo, synced.progress);
    let mut errors = journal(clients, cfg, &plan, true, sr).await;
    if let Some(id) = cfg.cloudfront_distribution_id.as_ref().filter(|_| writing) {
        let rel = |k: &String| k.strip_prefix(&cfg.prefix).unwrap_or(k).to_string();
        let restored: Vec<String> = undo.backups.iter().map(|(k, _)| rel(k)).collect();
        let created: Vec<String> = undo.created.iter().map(rel).collect();
        let paths = cloudfront::invalidation_paths(
            restored.iter().map(String::as_str),
            created.iter().map(String::as_str),
        );
        if let Err(e) = invalidate(clients, id, paths, sr).await {
            errors.push(e);
        }
    }
    let result = unfinished(cfg, &plan, errors, sr);
    if result.is_ok() {
        sr.restored = Some(undo.backups.len() + undo.created.len());
        tracing::info!(
            restored = undo.backups.len(),
            removed = undo.created.len(),
            "the previous frontend release is back"
        );
    }
    timeline.record("frontend restore", started, Outcome::of(&result));
    result
}

/// The journal of a restore: the backups copied back (when the sync had started writing), the state
/// object put back (or the new one deleted), then the created keys and the backups deleted.
fn restore_journal(undo: &Undo, progress: Progress) -> Pending {
    let mut copies = Vec::new();
    let mut deletes = Vec::new();
    if progress.writing {
        copies.extend(undo.backups.iter().map(|(k, b)| (b.clone(), k.clone())));
        deletes.extend(undo.created.iter().cloned());
    }
    if progress.state_written {
        match &undo.state_backup {
            Some(backup) => copies.push((backup.clone(), undo.state_key.clone())),
            None => deletes.push(undo.state_key.clone()),
        }
    }
    deletes.extend(undo.backup_keys(progress.state_written));
    Pending::new(Kind::Restore, copies, deletes)
}

/// An earlier run's journal, found by `prepare`: finish it before this sync's first write, and say so.
pub(super) async fn finish_pending(
    clients: &Clients,
    cfg: &Frontend,
    left: &Pending,
    sr: &mut SyncReport,
) -> Result<(), Error> {
    let _group = commands::group("Frontend: finish what an earlier run left");
    commands::emit(
        commands::Level::Notice,
        Some("cloudshop-deploy"),
        &format!(
            "an earlier run left the {} unfinished; it is finished first",
            left.describe()
        ),
    );
    let errors = journal(clients, cfg, left, false, sr).await;
    unfinished(cfg, left, errors, sr)
}

/// `Ok` when `errors` is empty; else every problem in the summary and one [`Error::Restore`].
fn unfinished(
    cfg: &Frontend,
    plan: &Pending,
    errors: Vec<Error>,
    sr: &mut SyncReport,
) -> Result<(), Error> {
    if errors.is_empty() {
        return Ok(());
    }
    sr.unfinished.extend(errors.iter().map(|e| e.to_string()));
    Err(Error::Restore {
        what: plan.kind.as_str(),
        journal: format!("s3://{}/{}{PENDING_NAME}", cfg.bucket, cfg.prefix),
        errors,
    })
}

/// Run a journal: record it in the bucket first (`record`: not when it is already there), then its
/// [`steps`]; the journal goes once every step is done. Returns every problem.
async fn journal(
    clients: &Clients,
    cfg: &Frontend,
    plan: &Pending,
    record: bool,
    sr: &mut SyncReport,
) -> Vec<Error> {
    if plan.is_empty() {
        return Vec::new();
    }
    let (bucket, key) = (&cfg.bucket, format!("{}{PENDING_NAME}", cfg.prefix));
    if record {
        if let Err(e) = s3::write_pending(&clients.s3, bucket, &key, plan).await {
            commands::emit(
                commands::Level::Warning,
                Some("cloudshop-deploy"),
                &format!(
                    "the {} goes ahead unrecorded ({e}): if it stops half-way, no run will know to finish it",
                    plan.kind.as_str()
                ),
            );
        }
    }
    let errors = steps(clients, cfg, plan, sr).await;
    if errors.is_empty() {
        let done = s3::delete_all(&clients.s3, bucket, std::slice::from_ref(&key), |_| {});
        if let Err(e) = done.await {
            tracing::warn!(
                "the finished journal `{key}` stays ({e}); the next run finds its work done"
            );
        }
    }
    errors
}

/// The copies in order, past any failure, then the deletes that lose nothing. Returns every problem;
/// `sr` counts the website objects a cleanup deletes.
async fn steps(
    clients: &Clients,
    cfg: &Frontend,
    plan: &Pending,
    sr: &mut SyncReport,
) -> Vec<Error> {
    let bucket = &cfg.bucket;
    let mut errors = Vec::new();
    let mut failed = Vec::new();
    for (from, to) in &plan.copies {
        if let Err(e) = s3::copy_back(&clients.s3, bucket, from, to).await {
            failed.push(from.as_str());
            errors.push(e);
        }
    }
    let deletes = plan.safe_deletes(&failed);
    let (prefix, counted) = (&cfg.prefix, plan.kind == Kind::Cleanup);
    let deleted = s3::delete_all(&clients.s3, bucket, &deletes, |k| {
        if counted && !undo::is_bookkeeping(prefix, k) {
            sr.deleted(k);
        }
    });
    if let Err(e) = deleted.await {
        errors.push(e);
    }
    errors
}

/// Invalidate `paths` (when there are any), recorded in `sr`.
pub(super) async fn invalidate(
    clients: &Clients,
    id: &str,
    paths: Vec<String>,
    sr: &mut SyncReport,
) -> Result<(), Error> {
    if paths.is_empty() {
        return Ok(());
    }
    let inv = cloudfront::invalidate(&clients.cloudfront, id, &paths).await?;
    tracing::info!(distribution = %id, invalidation = %inv, paths = ?paths, "CloudFront invalidation created");
    sr.invalidation_id = Some(inv);
    for p in paths {
        if !sr.invalidated_paths.contains(&p) {
            sr.invalidated_paths.push(p);
        }
    }
    Ok(())
}
