//! The end of a synced release: [`finalize`] once the release is final (after the watch, or at the end of
//! a run without one) deletes the previous release's stale objects and the backups; [`restore`] after a
//! rollback puts the previous release back exactly as it was (see `undo`).
//!
//! AWS APIs: S3 `CopyObject`, `DeleteObjects`; CloudFront `CreateInvalidation`.

use tokio::time::Instant;

use super::cloudfront;
use super::error::Error;
use super::report::SyncReport;
use super::s3;
use super::undo::Undo;
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
pub async fn finalize(
    clients: &Clients,
    cfg: &Frontend,
    synced: Synced,
    sr: &mut SyncReport,
    timeline: &mut Timeline,
) -> Result<(), Error> {
    let backups = synced.undo.backup_keys(synced.progress.state_written);
    if synced.stale.is_empty() && backups.is_empty() {
        return Ok(());
    }
    let started = Instant::now();
    let _group = commands::group("Frontend: delete the previous release's stale files");
    let result = async {
        s3::delete_all(&clients.s3, &cfg.bucket, &synced.stale, |key| {
            sr.deleted(key)
        })
        .await?;
        s3::delete_all(&clients.s3, &cfg.bucket, &backups, |_| {}).await?;
        if let Some(id) = &cfg.cloudfront_distribution_id {
            let paths = cloudfront::invalidation_paths(
                std::iter::empty(),
                synced
                    .stale
                    .iter()
                    .map(|k| k.strip_prefix(&cfg.prefix).unwrap_or(k)),
            );
            invalidate(clients, id, paths, sr).await?;
        }
        Ok(())
    }
    .await;
    tracing::info!(deleted = sr.deleted, "frontend release final");
    timeline.record("frontend finalize", started, Outcome::of(&result));
    result
}

/// Take the release back: copy every overwritten object back from its backup (assets, pages, then the
/// root `index.html`), delete the keys the sync created, put the previous state object back, delete the
/// backups, and invalidate CloudFront. Afterwards the bucket holds the previous release byte for byte.
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
    let result = async {
        if writing {
            for (key, backup) in &undo.backups {
                s3::copy(&clients.s3, &cfg.bucket, backup, key).await?;
            }
            s3::delete_all(&clients.s3, &cfg.bucket, &undo.created, |_| {}).await?;
        }
        if synced.progress.state_written {
            match &undo.state_backup {
                Some(backup) => {
                    s3::copy(&clients.s3, &cfg.bucket, backup, &undo.state_key).await?;
                }
                None => {
                    s3::delete_all(
                        &clients.s3,
                        &cfg.bucket,
                        std::slice::from_ref(&undo.state_key),
                        |_| {},
                    )
                    .await?
                }
            }
        }
        let backups = undo.backup_keys(synced.progress.state_written);
        s3::delete_all(&clients.s3, &cfg.bucket, &backups, |_| {}).await?;
        if let Some(id) = cfg.cloudfront_distribution_id.as_ref().filter(|_| writing) {
            let rel = |k: &String| k.strip_prefix(&cfg.prefix).unwrap_or(k).to_string();
            let restored: Vec<String> = undo.backups.iter().map(|(k, _)| rel(k)).collect();
            let created: Vec<String> = undo.created.iter().map(rel).collect();
            let paths = cloudfront::invalidation_paths(
                restored.iter().map(String::as_str),
                created.iter().map(String::as_str),
            );
            invalidate(clients, id, paths, sr).await?;
        }
        Ok(())
    }
    .await;
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
