//! Frontend sync: the React build to the S3 website bucket, compared by content, HTML entry points last,
//! the previous release's stale objects deleted only once the release is final, optional CloudFront
//! invalidation; the previous release put back whole on a rollback.
//!
//! [`prepare`] is read-only: it walks the build folder (or, [`prepare_from`], a release artifact unpacked
//! by `artifact`), lists the bucket and decides what to upload and delete and how to undo it; a missing
//! bucket or a denied read fails there, before any write. [`apply`] then copies aside every object it
//! will overwrite, uploads new and changed assets (concurrently, large files multipart, streamed from
//! disk), then the HTML pages, then the root `index.html`, and records the sync state, so a visitor never
//! gets a page whose assets are missing, even when the run dies half-way. Nothing is deleted there:
//! [`finalize`] deletes the stale objects after the watch; [`restore`] puts the previous release back.
//!
//! The step writes only its own [`SyncReport`] and its phases on the run's [`Timeline`]. Layout:
//! - `local`: walk and hash the build folder, Content-Type and Cache-Control per file (no AWS).
//! - `plan`: every decision (upload and why, skip, HEAD, delete, order, next state), pure.
//! - `undo`: what a rollback copies back and deletes, decided before the first write, pure.
//! - `pending`: the journal of a restore or cleanup, finished by the next run when one stops half-way.
//! - `state`: the model of the sync state object that spares a `HeadObject` per unchanged file and names
//!   the live and the previous release.
//! - `s3`: listing, HEAD, uploads, copies, deletes, the state object, and the one classifier of S3 errors.
//! - `multipart`: large files in parts, each upload aborted on every way out but success.
//! - `cloudfront`: the distribution check and the invalidation.
//! - `release`: the end of a release: [`finalize`] or [`restore`].
//! - [`artifact`]: the build as a release artifact in ECR (publish, promote, restore from it).
//! - `report`: the `frontend-*` outputs and the summary section.
//! - `error`: the errors every stage shares, with their hints.
//!
//! AWS APIs: S3 `ListObjectsV2`, `GetObject`, `HeadObject`, `PutObject`, `CopyObject`,
//! `CreateMultipartUpload`, `UploadPart`, `CompleteMultipartUpload`, `AbortMultipartUpload`,
//! `DeleteObjects`; CloudFront `GetDistribution`, `CreateInvalidation`; the registry through `artifact`.

pub mod artifact;
mod cloudfront;
mod error;
mod local;
mod multipart;
mod pending;
mod plan;
mod release;
mod report;
mod s3;
mod state;
mod throttle;
mod undo;
pub mod values;

use std::collections::{BTreeMap, BTreeSet};

use futures::{StreamExt, TryStreamExt};
use tokio::time::Instant;

use crate::config::Frontend;
use crate::github::commands;
use crate::report::section::{Outcome, Timeline};
use crate::steps::Clients;
use local::CacheRules;
use plan::Verdict;

pub use error::Error;
pub use local::LocalFile;
pub use multipart::{open_uploads, settle_aborts};
pub use plan::{Reason, SyncPlan, Upload};
pub use release::{finalize, restore, Synced};

pub use report::{Action, Change, Stage, SyncReport};
pub use state::Release;
pub use undo::Undo;

/// Uploads (and HEAD requests) in flight at once.
const CONCURRENCY: usize = 16;
/// How long the aborts of dropped multipart uploads are waited for (a cancel must exit within 5 s).
pub const ABORT_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// What [`prepare`] decided, for [`apply`].
#[derive(Debug)]
pub struct Prepared {
    pub plan: SyncPlan,
    /// How to take the sync back, decided from the listing before any write.
    undo: Undo,
    /// The build's files as built (placeholders intact), by relative path: what an artifact packs.
    pub(crate) built: Vec<(String, std::path::PathBuf)>,
    /// The release being synced, once its artifact is known (recorded in the sync state).
    pub release: Option<Release>,
    /// When `prepare` started: the report's time covers the whole sync.
    started: Instant,
    /// What an earlier run's restore or cleanup left, finished before this sync's first write.
    left: Option<pending::Pending>,
    /// Every build file as it should be in the bucket: planned again once `left` is finished.
    wanted: Vec<Upload>,
    /// The substituted copies of text files, read by the uploads; removed when the sync is done.
    _staging: tempfile::TempDir,
}

/// Read-only: walk the build folder, list the bucket, decide. A missing bucket or access denied fails
/// here. On success the plan's counts go into `sr` (and the log), so a dry run shows what would change,
/// and the phase `frontend plan` into `timeline`; on failure both are left alone.
pub async fn prepare(
    clients: &Clients,
    cfg: &Frontend,
    dry_run: bool,
    sr: &mut SyncReport,
    timeline: &mut Timeline,
) -> Result<Prepared, Error> {
    let Some(dir) = cfg.dir.clone() else {
        return Err(Error::NoFolder);
    };
    prepare_from(clients, cfg, &dir, &cfg.workspace, dry_run, sr, timeline).await
}

/// [`prepare`] with the files taken from `dir`, whose links must stay inside `root` (the workspace, or
/// the folder an artifact was unpacked into).
pub async fn prepare_from(
    clients: &Clients,
    cfg: &Frontend,
    dir: &std::path::Path,
    root: &std::path::Path,
    dry_run: bool,
    sr: &mut SyncReport,
    timeline: &mut Timeline,
) -> Result<Prepared, Error> {
    let started = Instant::now();
    let _group = commands::group("Frontend: plan the sync");
    let local = stage_build(cfg, dir, root).await?;
    // The local side is hashed while the bucket is read.
    let state_key = format!("{}{}", cfg.prefix, state::STATE_NAME);
    let pending_key = format!("{}{}", cfg.prefix, pending::PENDING_NAME);
    let (files, remote, old_state) = tokio::try_join!(
        hash_all(local.staged),
        s3::list(&clients.s3, &cfg.bucket, &cfg.prefix),
        s3::read_state(&clients.s3, &cfg.bucket, &state_key)
    )?;
    // The listing shows whether an earlier run left a journal: read it only then.
    let left = match remote.contains_key(&pending_key) {
        true => s3::read_pending(&clients.s3, &cfg.bucket, &pending_key).await?,
        false => None,
    };
    if let Some(f) = files.iter().find(|f| f.rel.starts_with(state::STATE_DIR)) {
        return Err(Error::Reserved {
            path: f.path.clone(),
        });
    }
    if let Some(id) = &cfg.cloudfront_distribution_id {
        cloudfront::check_distribution(&clients.cloudfront, id).await?;
    }
    let file_count = files.len();
    let rules = CacheRules::new(&cfg.cache_rules);
    let wanted: Vec<Upload> = files
        .into_iter()
        .map(|f| {
            let (content_type, cache_control) =
                (local::content_type(&f.rel), rules.for_path(&f.rel));
            Upload::new(f, &cfg.prefix, content_type, cache_control)
        })
        .collect();
    let (plan, undo) = plan_against(clients, cfg, wanted.clone(), &remote, old_state).await?;
    if let Some(left) = &left {
        tracing::info!(
            "an earlier run left the {} unfinished: the sync finishes it before its first write",
            left.describe()
        );
    }
    *sr = report_plan(cfg, &plan, dry_run, file_count, local.excluded, started);
    timeline.record("frontend plan", started, Outcome::Ok);
    Ok(Prepared {
        plan,
        undo,
        built: local.built,
        release: None,
        started,
        left,
        wanted,
        _staging: local.staging,
    })
}

/// The build folder walked and its placeholders substituted (in copies), before any hashing.
struct Staged {
    /// The substituted copies to hash and upload.
    staged: Vec<local::Found>,
    /// The files as built, by relative path.
    built: Vec<(String, std::path::PathBuf)>,
    /// Files skipped by `exclude`.
    excluded: usize,
    staging: tempfile::TempDir,
}

/// Walk the build folder (blocking I/O) and put the environment's values in copies: hashes and uploads
/// are of the substituted bytes, and a leftover placeholder stops the run here, before any write.
async fn stage_build(
    cfg: &Frontend,
    dir: &std::path::Path,
    root: &std::path::Path,
) -> Result<Staged, Error> {
    let joined = |e: tokio::task::JoinError| Error::Dir {
        dir: dir.to_path_buf(),
        message: e.to_string(),
    };
    let (walk_dir, workspace) = (dir.to_path_buf(), root.to_path_buf());
    let exclude = cfg.exclude.set().clone();
    let (found, excluded) =
        tokio::task::spawn_blocking(move || local::walk(&walk_dir, &workspace, &exclude))
            .await
            .map_err(joined)??;
    if found.is_empty() {
        return Err(Error::EmptyBuild {
            dir: dir.to_path_buf(),
        });
    }
    let staging = tempfile::Builder::new()
        .prefix("cloudshop-frontend-")
        .tempdir()
        .map_err(|e| Error::Dir {
            dir: std::env::temp_dir(),
            message: e.to_string(),
        })?;
    let (dest, values) = (staging.path().to_path_buf(), cfg.values.clone());
    let built: Vec<(String, std::path::PathBuf)> =
        found.into_iter().map(|f| (f.rel, f.path)).collect();
    let pairs = built.clone();
    let staged = tokio::task::spawn_blocking(move || values::stage(pairs, &dest, &values))
        .await
        .map_err(joined)??;
    if staged.replacements > 0 {
        tracing::info!(
            files = staged.substituted_files,
            placeholders = staged.replacements,
            "environment values substituted"
        );
    }
    let staged = staged
        .files
        .into_iter()
        .map(|(rel, path)| local::Found { rel, path })
        .collect();
    Ok(Staged {
        staged,
        built,
        excluded,
        staging,
    })
}

/// Hash the staged files (blocking I/O), a few at a time.
async fn hash_all(found: Vec<local::Found>) -> Result<Vec<LocalFile>, Error> {
    futures::stream::iter(found)
        .map(|f| async move {
            let path = f.path.clone();
            tokio::task::spawn_blocking(move || local::hash_file(&f))
                .await
                .map_err(|e| Error::Walk {
                    path,
                    message: e.to_string(),
                })?
        })
        .buffered(4)
        .try_collect()
        .await
}

/// The plan of the uploads `wanted` over the bucket as listed, and its undo.
async fn plan_against(
    clients: &Clients,
    cfg: &Frontend,
    wanted: Vec<Upload>,
    remote: &BTreeMap<String, state::Listed>,
    old_state: Option<state::SyncState>,
) -> Result<(SyncPlan, Undo), Error> {
    let state_key = format!("{}{}", cfg.prefix, state::STATE_NAME);
    let exclude = cfg.exclude.set();
    let excluded = |rel: &str| exclude.is_match(rel);
    let plan = decide(clients, cfg, wanted, remote, old_state, state_key, excluded).await?;
    let undo = undo::plan(
        plan.uploads().map(|u| u.key.as_str()),
        remote,
        &cfg.prefix,
        &plan.state_key,
    );
    Ok((plan, undo))
}

/// The plan's counts as what would change (logged), for the report until `apply` counts what it does.
fn report_plan(
    cfg: &Frontend,
    plan: &SyncPlan,
    dry_run: bool,
    files: usize,
    excluded: usize,
    started: Instant,
) -> SyncReport {
    let mut planned = SyncReport {
        bucket: cfg.bucket.clone(),
        prefix: cfg.prefix.clone(),
        dry_run,
        files,
        excluded,
        unchanged: plan.unchanged,
        ..SyncReport::default()
    };
    planned.count_plan(plan);
    planned.seconds = started.elapsed().as_secs_f64();
    tracing::info!(
        bucket = %cfg.bucket,
        prefix = %cfg.prefix,
        files = planned.files,
        excluded,
        upload = planned.uploaded,
        delete = planned.deleted,
        unchanged = planned.unchanged,
        bytes = planned.bytes,
        "frontend sync planned"
    );
    for c in &planned.changes {
        tracing::info!("  {:<8} {} ({} bytes)", c.action, c.key, c.bytes);
    }
    if planned.changes_total > planned.changes.len() {
        tracing::info!(
            "  ... and {} more",
            planned.changes_total - planned.changes.len()
        );
    }
    planned
}

/// Finish what an earlier run left (see `pending`), then plan `wanted` again over the bucket as that
/// left it: the first plan was made over the bucket before it.
async fn resume(
    clients: &Clients,
    cfg: &Frontend,
    left: &pending::Pending,
    wanted: Vec<Upload>,
    sr: &mut SyncReport,
) -> Result<(SyncPlan, Undo), Error> {
    release::finish_pending(clients, cfg, left, sr).await?;
    let state_key = format!("{}{}", cfg.prefix, state::STATE_NAME);
    let (remote, old_state) = tokio::try_join!(
        s3::list(&clients.s3, &cfg.bucket, &cfg.prefix),
        s3::read_state(&clients.s3, &cfg.bucket, &state_key)
    )?;
    plan_against(clients, cfg, wanted, &remote, old_state).await
}

/// The plan from the build files (with the keys and headers they should have), the listing and the
/// state: what they settle, then a `HeadObject` for the rest (the only requests here, all reads).
async fn decide(
    clients: &Clients,
    cfg: &Frontend,
    wanted: Vec<Upload>,
    remote: &BTreeMap<String, state::Listed>,
    old_state: Option<state::SyncState>,
    state_key: String,
    excluded: impl Fn(&str) -> bool,
) -> Result<SyncPlan, Error> {
    let local_keys: BTreeSet<String> = wanted.iter().map(|up| up.key.clone()).collect();
    let plan::Triage {
        mut uploads,
        mut known,
        to_check,
    } = plan::triage(wanted, remote, old_state.as_ref());
    let heads = to_check.len();
    let verdicts: Vec<Verdict> = futures::stream::iter(to_check)
        .map(|(up, listed)| async move {
            let head = s3::head(&clients.s3, &cfg.bucket, &up.key).await?;
            Ok::<_, Error>(plan::judge(up, listed, head.as_ref()))
        })
        .buffer_unordered(CONCURRENCY)
        .try_collect()
        .await?;
    for v in verdicts {
        match v {
            Verdict::Upload(up) => uploads.push(up),
            Verdict::InPlace { key, entry } => {
                known.insert(key, entry);
            }
        }
    }
    tracing::info!(heads, "objects checked with HeadObject");
    let deletes = if cfg.delete {
        plan::stale(remote, &local_keys, &cfg.prefix, &state_key, excluded)
    } else {
        Vec::new()
    };
    Ok(SyncPlan::new(uploads, deletes, known, old_state, state_key))
}

/// Keep the objects the sync overwrites (server-side copies under `.cloudshop-deploy/previous/`), upload
/// assets, then HTML pages, then the root `index.html`, record the sync state, and invalidate CloudFront
/// when configured. Nothing is deleted here: the stale objects of the previous release stay until
/// [`finalize`] (after the watch), or are left as they were by [`restore`]. `sr` (as `prepare` left it)
/// then counts what was actually done, also on failure; the phase `frontend sync` goes into `timeline`
/// either way.
pub async fn apply(
    clients: &Clients,
    cfg: &Frontend,
    prepared: Prepared,
    sr: &mut SyncReport,
    timeline: &mut Timeline,
) -> Result<Synced, Failed> {
    let phase = Instant::now();
    let _group = commands::group("Frontend: sync");
    // `staging` lives until the uploads that read it are done.
    let Prepared {
        plan,
        undo,
        release,
        started,
        left,
        wanted,
        _staging: staging,
        ..
    } = prepared;
    let (plan, undo) = match left {
        None => (plan, undo),
        Some(left) => match resume(clients, cfg, &left, wanted, sr).await {
            Ok(replanned) => replanned,
            Err(error) => {
                timeline.record("frontend sync", phase, Outcome::Failed);
                let synced = Synced::new(Undo::default(), Vec::new(), Default::default());
                return Err(Failed { error, synced });
            }
        },
    };
    sr.bucket = cfg.bucket.clone();
    sr.prefix = cfg.prefix.clone();
    sr.unchanged = plan.unchanged;
    sr.reset_counts();
    sr.stage = Stage::Syncing;
    let mut progress = release::Progress::default();
    let result = sync(clients, cfg, &plan, &undo, release, sr, &mut progress).await;
    sr.stage = if result.is_ok() {
        Stage::Done
    } else {
        Stage::Failed
    };
    sr.seconds = started.elapsed().as_secs_f64();
    tracing::info!(
        uploaded = sr.uploaded,
        unchanged = sr.unchanged,
        bytes = sr.bytes,
        seconds = sr.seconds,
        "frontend sync {}",
        if result.is_ok() { "done" } else { "failed" }
    );
    timeline.record("frontend sync", phase, Outcome::of(&result));
    drop(staging);
    let synced = Synced::new(undo, plan.deletes, progress);
    match result {
        Ok(()) => Ok(synced),
        Err(error) => Err(Failed { error, synced }),
    }
}

/// A sync that failed part-way, with what [`restore`] needs to take back what it wrote.
#[derive(Debug)]
pub struct Failed {
    pub error: Error,
    pub synced: Synced,
}

impl From<Failed> for Error {
    fn from(f: Failed) -> Error {
        f.error
    }
}

/// The writes of [`apply`], with how far they got in `progress`.
async fn sync(
    clients: &Clients,
    cfg: &Frontend,
    plan: &SyncPlan,
    undo: &Undo,
    release: Option<Release>,
    sr: &mut SyncReport,
    progress: &mut release::Progress,
) -> Result<(), Error> {
    // The previous bytes first, so a rollback can put every overwritten object back.
    futures::stream::iter(&undo.backups)
        .map(|(key, backup)| s3::copy(&clients.s3, &cfg.bucket, key, backup))
        .buffer_unordered(CONCURRENCY)
        .try_collect::<Vec<()>>()
        .await?;
    progress.writing = true;
    // Each phase completes before the next starts: no page goes up before all its assets are in place.
    let mut written = BTreeMap::new();
    for phase in plan.phases() {
        upload_all(clients, &cfg.bucket, phase, sr, &mut written).await?;
    }
    sr.artifact = release.as_ref().map(|r| r.artifact.clone());
    save_state(clients, cfg, plan, undo, release, &written, progress).await?;
    if let Some(id) = &cfg.cloudfront_distribution_id {
        let paths = cloudfront::invalidation_paths(
            plan.uploads().map(|u| u.file.rel.as_str()),
            std::iter::empty(),
        );
        release::invalidate(clients, id, paths, sr).await?;
    }
    Ok(())
}

/// Upload one phase, at most [`CONCURRENCY`] files at a time (fewer while S3 throttles, see
/// `throttle`), recording the ETag S3 gave each write.
async fn upload_all<'a>(
    clients: &Clients,
    bucket: &str,
    uploads: &'a [Upload],
    sr: &mut SyncReport,
    written: &mut BTreeMap<String, (String, &'a Upload)>,
) -> Result<(), Error> {
    let limiter = throttle::Limiter::new(CONCURRENCY, throttle::FLOOR);
    let s3 = &limiter.client(&clients.s3);
    let limiter = &limiter;
    let mut done = futures::stream::iter(uploads)
        .map(|up| async move {
            limiter
                .run(put(s3, bucket, up))
                .await
                .map(|etag| (etag, up))
        })
        .buffer_unordered(CONCURRENCY);
    while let Some(r) = done.next().await {
        let (etag, up) = match r {
            Ok(written) => written,
            Err(e) => {
                // The siblings still in flight are dropped with the stream: their multipart uploads
                // are aborted before the error goes on (to a restore that lists the bucket).
                drop(done);
                multipart::settle_aborts(ABORT_WAIT).await;
                return Err(e);
            }
        };
        written.insert(up.key.clone(), (etag, up));
        tracing::info!(
            "uploaded {} ({}, {} bytes)",
            up.key,
            up.reason.as_str(),
            up.file.size
        );
        sr.uploaded(&up.key, up.reason, up.file.size);
    }
    if limiter.cuts() > 0 {
        tracing::info!(
            cuts = limiter.cuts(),
            in_flight = limiter.limit(),
            "uploads slowed down for S3 throttling"
        );
    }
    Ok(())
}

/// Upload one file: one `PutObject`, or in parts above [`multipart::THRESHOLD`]. Returns the ETag S3
/// gave it (without quotes).
async fn put(s3: &aws_sdk_s3::Client, bucket: &str, up: &Upload) -> Result<String, Error> {
    if up.file.size > multipart::THRESHOLD {
        multipart::put(s3, bucket, up).await
    } else {
        s3::put(s3, bucket, up).await
    }
}

/// Record what this run left in the bucket (see [`state`]) and the release it serves, when that differs
/// from what was recorded; the previous state object is copied aside first, so a rollback can put it
/// back. The entries come from a fresh listing, so they hold the ETag and LastModified S3 gave each
/// write. The state is the ledger a later rollback reads, so any failure here fails the sync; once the
/// write is attempted, `progress` says so, and a restore puts the previous state back.
async fn save_state(
    clients: &Clients,
    cfg: &Frontend,
    plan: &SyncPlan,
    undo: &Undo,
    release: Option<Release>,
    written: &BTreeMap<String, (String, &Upload)>,
    progress: &mut release::Progress,
) -> Result<(), Error> {
    let objects = if written.is_empty() {
        plan::vouched(&plan.known)
    } else {
        let listing = s3::list(&clients.s3, &cfg.bucket, &cfg.prefix).await?;
        plan::next_state(&plan.known, written, &listing)
    };
    let (live, previous) = state::releases(plan.old_state.as_ref(), release);
    let new = state::SyncState {
        live,
        previous,
        ..state::new(objects)
    };
    if state::same(plan.old_state.as_ref(), &new) {
        return Ok(());
    }
    if let Some(backup) = &undo.state_backup {
        s3::copy(&clients.s3, &cfg.bucket, &plan.state_key, backup).await?;
    }
    // A write that failed on its answer may still have landed: from here a restore puts the old state
    // back (or deletes the new one).
    progress.state_written = true;
    s3::write_state(&clients.s3, &cfg.bucket, &plan.state_key, &new).await
}
