//! Frontend sync (issue #5): the React build to the S3 website bucket, compared by content, HTML entry
//! points last, stale objects deleted after, optional CloudFront invalidation.
//!
//! [`prepare`] is read-only: it walks the build folder (see [`local`]), lists the bucket and decides what
//! to upload and delete; a missing bucket or a denied read fails there, before any write. [`apply`] then
//! uploads new and changed assets (concurrently, large files multipart, streamed from disk), then the
//! HTML pages, then the root `index.html`, and only then deletes stale objects, so a visitor never gets a
//! page whose assets are missing, even when the run dies half-way.
//!
//! A file is unchanged when its MD5 equals the object's single-part ETag, or (multipart objects) when its
//! SHA-256 equals the `x-amz-meta-sha256` this action stores on every upload, and when the object's
//! Content-Type and Cache-Control are the ones the rules give today. The headers are compared through
//! the [`state`] object this action keeps in the bucket, so an unchanged build costs one listing and one
//! `GetObject`, not a `HeadObject` per file; `HeadObject` is the fallback for objects the state does
//! not vouch for.
//!
//! AWS APIs: S3 `ListObjectsV2`, `GetObject`, `HeadObject`, `PutObject`, `CreateMultipartUpload`, `UploadPart`,
//! `CompleteMultipartUpload`, `AbortMultipartUpload`, `DeleteObjects`; CloudFront `GetDistribution`,
//! `CreateInvalidation`.

pub mod local;
pub mod state;
pub mod values;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use aws_sdk_s3::primitives::{ByteStream, Length};
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, Delete, ObjectIdentifier};
use base64::Engine;
use futures::{StreamExt, TryStreamExt};
use serde::Serialize;
use tokio::time::Instant;

use crate::aws::{code, describe};
use crate::config::Frontend;
use crate::github::commands;
use crate::report::section::md_escape;
use crate::report::Report;
use crate::steps::Clients;
use local::{CacheRules, LocalFile};
use state::{Entry, Listed, SyncState};

/// Uploads (and HEAD requests) in flight at once.
pub const CONCURRENCY: usize = 16;
/// Files larger than this are uploaded in parts.
pub const MULTIPART_THRESHOLD: u64 = 16 * 1024 * 1024;
/// Size of one part (S3 allows at most 10,000 parts; the size grows for larger files).
pub const PART_SIZE: u64 = 8 * 1024 * 1024;
/// Changed files listed in the job summary.
pub const SUMMARY_CAP: usize = 50;
/// Changed files kept in the report (and logged).
const REPORT_CAP: usize = 500;
/// The metadata key (`x-amz-meta-sha256`) holding the SHA-256 of the object's bytes.
pub const SHA256_META: &str = "sha256";
/// More changed HTML paths than this are invalidated as `/*` (CloudFront bills per path).
const INVALIDATION_PATH_CAP: usize = 50;

/// Errors of the frontend sync.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The build folder is missing or unreadable.
    #[error("failed to read the frontend folder `{}`: {message}", dir.display())]
    Dir {
        /// The folder.
        dir: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A file or folder inside the build could not be read.
    #[error("failed to read `{}`: {message}", path.display())]
    Walk {
        /// The path.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A symbolic link leads out of the build folder (or the build folder out of the workspace).
    #[error("refusing to follow `{}`: the symbolic link points to `{}`, outside `{}`", link.display(), target.display(), root.display())]
    SymlinkEscapes {
        /// The link.
        link: PathBuf,
        /// Where it leads.
        target: PathBuf,
        /// The build folder.
        root: PathBuf,
    },
    /// A file name that is not UTF-8 cannot become an S3 key faithfully.
    #[error("failed to name `{}` as an S3 key: the file name is not UTF-8", path.display())]
    NotUtf8 {
        /// The path.
        path: PathBuf,
    },
    /// A glob of `exclude` or `cache-control` does not parse.
    #[error("failed to parse the frontend glob `{glob}`: {message}")]
    Glob {
        /// The glob.
        glob: String,
        /// The parser's message.
        message: String,
    },
    /// Nothing to upload: syncing would empty the website.
    #[error("failed to sync `{}`: the folder holds no file to upload", dir.display())]
    EmptyBuild {
        /// The folder.
        dir: PathBuf,
    },
    /// The bucket does not exist.
    #[error("failed to list `s3://{bucket}`: NoSuchBucket: the bucket does not exist")]
    NoSuchBucket {
        /// The bucket.
        bucket: String,
    },
    /// The credentials may not read (or write) the bucket.
    #[error("failed to {verb} `{object}`: {detail}")]
    AccessDenied {
        /// `list`, `read`, `upload`, `delete`.
        verb: &'static str,
        /// `s3://bucket/key`.
        object: String,
        /// AWS code and message.
        detail: String,
    },
    /// Any other failed S3 or CloudFront call.
    #[error("failed to {verb} `{object}`: {detail}")]
    Aws {
        /// What was being done.
        verb: &'static str,
        /// On what.
        object: String,
        /// AWS code and message.
        detail: String,
    },
    /// A build file has the name of the sync state object.
    #[error("failed to upload `{}`: its name is reserved for the sync state (`{}`)", path.display(), state::STATE_NAME)]
    Reserved {
        /// The file.
        path: PathBuf,
    },
    /// The CloudFront distribution does not exist.
    #[error(
        "failed to read `{id}`: NoSuchDistribution: the CloudFront distribution does not exist"
    )]
    NoSuchDistribution {
        /// The distribution id.
        id: String,
    },
}

impl crate::Diagnose for Error {
    fn hint(&self) -> String {
        match self {
            Error::Dir { .. } => {
                "build the frontend first (`npm ci && npm run build`) and point `frontend-dir` at the output folder".into()
            }
            Error::Walk { .. } => "check the permissions of the build output".into(),
            Error::SymlinkEscapes { .. } => {
                "copy the file into the build folder instead of linking to it, or exclude the link with `frontend-exclude`".into()
            }
            Error::NotUtf8 { .. } => "rename the file, or exclude it with `frontend-exclude`".into(),
            Error::Glob { .. } => "fix the glob (globset syntax: `*`, `**`, `?`, `{a,b}`, `[ab]`)".into(),
            Error::EmptyBuild { .. } => {
                "the build produced no files (or `frontend-exclude` excludes all of them); check the build step and `frontend-dir`".into()
            }
            Error::NoSuchBucket { bucket } => format!(
                "create the bucket `{bucket}` (the infrastructure stack does this) or fix `frontend-bucket`"
            ),
            Error::AccessDenied { .. } => {
                "grant the deploy role s3:ListBucket on the bucket and s3:GetObject, s3:PutObject, s3:DeleteObject on its objects".into()
            }
            Error::Aws { .. } => "the AWS error above says what failed; re-run the job if it was transient".into(),
            Error::Reserved { .. } => "exclude it with `frontend-exclude` or rename it".into(),
            Error::NoSuchDistribution { .. } => "fix `cloudfront-distribution-id` (the ID, e.g. `E2QWRUHAPOMQZL`, not the domain name)".into(),
        }
    }
}

/// Why a file is uploaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reason {
    /// No object with this key.
    New,
    /// The bytes differ.
    Changed,
    /// Same bytes, but Content-Type or Cache-Control differ from the rules.
    Metadata,
}

impl Reason {
    fn as_str(self) -> &'static str {
        match self {
            Reason::New => "new",
            Reason::Changed => "changed",
            Reason::Metadata => "metadata",
        }
    }
}

/// One upload of the plan.
#[derive(Debug, Clone)]
pub struct Upload {
    /// The file, hashed.
    pub file: LocalFile,
    /// The S3 key (prefix + relative path).
    pub key: String,
    /// Content-Type to set.
    pub content_type: String,
    /// Cache-Control to set.
    pub cache_control: String,
    /// Why.
    pub reason: Reason,
}

/// What will be uploaded, deleted and left alone (computed read-only by [`prepare`]).
#[derive(Debug)]
pub struct SyncPlan {
    /// Assets (everything but HTML), uploaded first.
    pub assets: Vec<Upload>,
    /// HTML pages other than the root `index.html`, uploaded once every asset is in place.
    pub pages: Vec<Upload>,
    /// The root `index.html`, uploaded last.
    pub entry: Option<Upload>,
    /// Keys to delete, after the entry point.
    pub deletes: Vec<String>,
    /// Files already in place.
    pub unchanged: usize,
    /// State entries of the files already in place (carried into the new state).
    known: BTreeMap<String, Entry>,
    /// The state object as read.
    old_state: Option<SyncState>,
    /// Its key.
    state_key: String,
    started: Instant,
}

impl SyncPlan {
    /// Every upload, in the order they will happen (by phase).
    pub fn uploads(&self) -> impl Iterator<Item = &Upload> {
        self.assets
            .iter()
            .chain(self.pages.iter())
            .chain(self.entry.iter())
    }
}

/// One changed object, for the summary.
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    /// The key.
    pub key: String,
    /// `new`, `changed`, `metadata`, `delete`.
    pub action: &'static str,
    /// Bytes uploaded (0 for a delete).
    pub bytes: u64,
}

/// How far the sync got.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Stage {
    /// Planned by `prepare`; nothing written (a dry run, or a run that stopped before the sync).
    #[default]
    Planned,
    /// `apply` started and failed part-way: the counts say what was done.
    Failed,
    /// `apply` ran to the end.
    Done,
}

/// Outcome of the sync, for outputs and the summary. Until `apply` runs, the counts are the plan's;
/// `apply` resets them and counts what it does.
#[derive(Debug, Default, Serialize)]
pub struct SyncReport {
    /// The bucket.
    pub bucket: String,
    /// The key prefix.
    pub prefix: String,
    /// How far the sync got.
    pub stage: Stage,
    /// A dry run (the counts are what would change).
    pub dry_run: bool,
    /// Files in the build (not excluded).
    pub files: usize,
    /// Files skipped by `exclude`.
    pub excluded: usize,
    /// Objects uploaded (planned, before `apply`).
    pub uploaded: usize,
    /// Objects deleted (planned, before `apply`).
    pub deleted: usize,
    /// Files already in place.
    pub unchanged: usize,
    /// Bytes uploaded (planned, before `apply`).
    pub bytes: u64,
    /// Wall time of the sync.
    pub seconds: f64,
    /// The changed objects, in order (capped).
    pub changes: Vec<Change>,
    /// How many changes there were in all.
    pub changes_total: usize,
    /// The CloudFront invalidation, when one was created.
    pub invalidation_id: Option<String>,
    /// The invalidated paths.
    pub invalidated_paths: Vec<String>,
}

impl crate::report::section::Section for SyncReport {
    fn outputs(&self, out: &mut Vec<(String, String)>) {
        // A run that stopped before the sync changed nothing; a dry run reports what would change.
        let nothing_done = self.stage == Stage::Planned && !self.dry_run;
        let (up, del, bytes) = if nothing_done {
            (0, 0, 0)
        } else {
            (self.uploaded, self.deleted, self.bytes)
        };
        out.push(("frontend-uploaded".into(), up.to_string()));
        out.push(("frontend-deleted".into(), del.to_string()));
        out.push(("frontend-unchanged".into(), self.unchanged.to_string()));
        out.push(("frontend-bytes".into(), bytes.to_string()));
    }

    fn summary(&self, md: &mut String) {
        let (title, up, del) = match (self.stage, self.dry_run) {
            (Stage::Done, _) => ("Frontend", "uploaded", "deleted"),
            (Stage::Failed, _) => ("Frontend (failed part-way)", "uploaded", "deleted"),
            (Stage::Planned, true) => ("Frontend (dry run: the plan)", "to upload", "to delete"),
            (Stage::Planned, false) => (
                "Frontend (not synced: the run stopped before the sync)",
                "to upload",
                "to delete",
            ),
        };
        let _ = writeln!(
            md,
            "### {title}\n\n`s3://{}/{}`\n\n| {up} | {del} | unchanged | excluded | bytes | time |\n|---:|---:|---:|---:|---:|---:|\n| {} | {} | {} | {} | {} | {:.1} s |\n",
            md_escape(&self.bucket),
            md_escape(&self.prefix),
            self.uploaded,
            self.deleted,
            self.unchanged,
            self.excluded,
            human_bytes(self.bytes),
            self.seconds,
        );
        if !self.changes.is_empty() {
            let _ = writeln!(md, "<details><summary>{} changed objects</summary>\n\n| object | change | bytes |\n|---|---|---:|", self.changes_total);
            for c in self.changes.iter().take(SUMMARY_CAP) {
                let _ = writeln!(
                    md,
                    "| `{}` | {} | {} |",
                    md_escape(&c.key),
                    c.action,
                    c.bytes
                );
            }
            if self.changes_total > SUMMARY_CAP {
                let _ = writeln!(
                    md,
                    "| ... and {} more | | |",
                    self.changes_total - SUMMARY_CAP
                );
            }
            md.push_str("\n</details>\n\n");
        }
        if let Some(id) = &self.invalidation_id {
            let _ = writeln!(
                md,
                "CloudFront invalidation `{}`: {}\n",
                md_escape(id),
                self.invalidated_paths
                    .iter()
                    .map(|p| format!("`{}`", md_escape(p)))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
}

fn human_bytes(b: u64) -> String {
    match b {
        b if b >= 1 << 30 => format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64),
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{b} B"),
    }
}

/// Read-only: walk the build folder, list the bucket, decide. A missing bucket or access denied fails
/// here. The plan goes into `report.frontend` (and the log), so a dry run shows what would change.
pub async fn prepare(
    clients: &Clients,
    cfg: &Frontend,
    report: &mut Report,
) -> Result<SyncPlan, Error> {
    let started = Instant::now();
    let _group = commands::group("Frontend: plan the sync");
    let exclude = local::glob_set(&cfg.exclude)?;
    let rules = CacheRules::new(&cfg.cache_rules)?;

    // The local side: walk (blocking I/O) and hash, a few files at a time.
    let (dir, workspace) = (cfg.dir.clone(), cfg.workspace.clone());
    let walk_exclude = exclude.clone();
    let (found, excluded) =
        tokio::task::spawn_blocking(move || local::walk(&dir, &workspace, &walk_exclude))
            .await
            .map_err(|e| Error::Dir {
                dir: cfg.dir.clone(),
                message: e.to_string(),
            })??;
    if found.is_empty() {
        return Err(Error::EmptyBuild {
            dir: cfg.dir.clone(),
        });
    }
    let hashing = futures::stream::iter(found)
        .map(|f| async move {
            let path = f.path.clone();
            tokio::task::spawn_blocking(move || local::hash_file(&f))
                .await
                .map_err(|e| Error::Walk {
                    path,
                    message: e.to_string(),
                })?
        })
        .buffered(4);
    // The remote side, meanwhile.
    let state_key = format!("{}{}", cfg.prefix, state::STATE_NAME);
    let (files, mut remote, old_state) = tokio::try_join!(
        hashing.try_collect::<Vec<LocalFile>>(),
        list(clients, cfg),
        state::read(&clients.s3, &cfg.bucket, &state_key)
    )?;
    remote.remove(&state_key);
    if let Some(f) = files.iter().find(|f| f.rel == state::STATE_NAME) {
        return Err(Error::Reserved {
            path: f.path.clone(),
        });
    }
    if let Some(id) = &cfg.cloudfront_distribution_id {
        check_distribution(clients, id).await?;
    }

    // Decide. Objects whose listing already proves a difference need no HEAD, nor do those the state
    // object describes (same ETag, size and LastModified as when this action wrote them).
    let mut uploads = Vec::new();
    let mut to_check = Vec::new();
    let mut known = BTreeMap::new();
    for file in &files {
        let key = format!("{}{}", cfg.prefix, file.rel);
        let content_type = local::content_type(&file.rel);
        let cache_control = rules.for_path(&file.rel);
        let mut up = Upload {
            file: file.clone(),
            key,
            content_type,
            cache_control,
            reason: Reason::New,
        };
        let recorded = old_state
            .as_ref()
            .and_then(|s| s.objects.get(&up.key))
            .zip(remote.get(&up.key))
            .filter(|(e, listed)| e.matches(listed))
            .map(|(e, _)| e);
        if let Some(e) = recorded {
            if e.sha256 != up.file.sha256 {
                up.reason = Reason::Changed;
                uploads.push(up);
            } else if e.content_type != up.content_type || e.cache_control != up.cache_control {
                up.reason = Reason::Metadata;
                uploads.push(up);
            } else {
                known.insert(up.key.clone(), e.clone());
            }
            continue;
        }
        match remote.get(&up.key) {
            None => uploads.push(up),
            Some(r) if r.size != up.file.size as i64 => {
                up.reason = Reason::Changed;
                uploads.push(up);
            }
            Some(r) if !r.etag.contains('-') && r.etag != up.file.md5 => {
                up.reason = Reason::Changed;
                uploads.push(up);
            }
            Some(r) => to_check.push((up, r.clone())),
        }
    }
    let heads = to_check.len();
    let checks = futures::stream::iter(to_check)
        .map(|(up, listed)| check_object(clients, &cfg.bucket, up, listed))
        .buffer_unordered(CONCURRENCY);
    let checked: Vec<Result<(String, Entry), Upload>> = checks.try_collect().await?;
    for c in checked {
        match c {
            Err(up) => uploads.push(up),
            Ok((key, entry)) => {
                known.insert(key, entry);
            }
        }
    }
    let unchanged = known.len();
    tracing::info!(heads, "objects checked with HeadObject");

    // Stale objects: in the bucket under the prefix, not in the build, not excluded.
    let local_keys: BTreeSet<String> = files
        .iter()
        .map(|f| format!("{}{}", cfg.prefix, f.rel))
        .collect();
    let deletes: Vec<String> = if cfg.delete {
        remote
            .keys()
            .filter(|k| !local_keys.contains(*k))
            .filter(|k| {
                let rel = k.strip_prefix(&cfg.prefix).unwrap_or(k);
                !exclude.is_match(rel)
            })
            .cloned()
            .collect()
    } else {
        Vec::new()
    };

    // Order: assets, then pages, then the root entry point.
    uploads.sort_by(|a, b| a.key.cmp(&b.key));
    let mut assets = Vec::new();
    let mut pages = Vec::new();
    let mut entry = None;
    for up in uploads {
        if up.file.rel == "index.html" {
            entry = Some(up);
        } else if local::is_html(&up.file.rel) {
            pages.push(up);
        } else {
            assets.push(up);
        }
    }
    let plan = SyncPlan {
        assets,
        pages,
        entry,
        deletes,
        unchanged,
        known,
        old_state,
        state_key,
        started,
    };

    let mut sr = SyncReport {
        bucket: cfg.bucket.clone(),
        prefix: cfg.prefix.clone(),
        dry_run: report.dry_run,
        files: files.len(),
        excluded,
        unchanged,
        ..SyncReport::default()
    };
    for up in plan.uploads() {
        sr.uploaded += 1;
        sr.bytes += up.file.size;
        push_change(&mut sr, &up.key, up.reason.as_str(), up.file.size);
    }
    for key in &plan.deletes {
        sr.deleted += 1;
        push_change(&mut sr, key, "delete", 0);
    }
    sr.seconds = started.elapsed().as_secs_f64();
    tracing::info!(
        bucket = %cfg.bucket,
        prefix = %cfg.prefix,
        files = sr.files,
        excluded,
        upload = sr.uploaded,
        delete = sr.deleted,
        unchanged,
        bytes = sr.bytes,
        "frontend sync planned"
    );
    for c in &sr.changes {
        tracing::info!("  {:<8} {} ({} bytes)", c.action, c.key, c.bytes);
    }
    if sr.changes_total > sr.changes.len() {
        tracing::info!("  ... and {} more", sr.changes_total - sr.changes.len());
    }
    report.frontend = Some(sr);
    report.phase(
        "frontend plan",
        started,
        crate::report::section::Outcome::Ok,
    );
    Ok(plan)
}

fn push_change(sr: &mut SyncReport, key: &str, action: &'static str, bytes: u64) {
    sr.changes_total += 1;
    if sr.changes.len() < REPORT_CAP {
        sr.changes.push(Change {
            key: key.to_string(),
            action,
            bytes,
        });
    }
}

/// Every object under the prefix (all pages of `ListObjectsV2`).
async fn list(clients: &Clients, cfg: &Frontend) -> Result<BTreeMap<String, Listed>, Error> {
    let mut out = BTreeMap::new();
    let mut pages = clients
        .s3
        .list_objects_v2()
        .bucket(&cfg.bucket)
        .prefix(&cfg.prefix)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| {
            let object = format!("s3://{}/{}", cfg.bucket, cfg.prefix);
            if e.as_service_error().is_some_and(|s| s.is_no_such_bucket()) {
                Error::NoSuchBucket {
                    bucket: cfg.bucket.clone(),
                }
            } else if code(&e) == Some("AccessDenied") {
                Error::AccessDenied {
                    verb: "list",
                    object,
                    detail: describe(&e),
                }
            } else {
                Error::Aws {
                    verb: "list",
                    object,
                    detail: describe(&e),
                }
            }
        })?;
        for o in page.contents() {
            if let Some(key) = o.key() {
                out.insert(
                    key.to_string(),
                    Listed {
                        etag: o.e_tag().unwrap_or_default().trim_matches('"').to_string(),
                        size: o.size().unwrap_or(-1),
                        last_modified: o
                            .last_modified()
                            .map(|t| format!("{}.{:09}", t.secs(), t.subsec_nanos()))
                            .unwrap_or_default(),
                    },
                );
            }
        }
    }
    Ok(out)
}

/// HEAD an object whose listing does not settle it: `None` when it is in place (same bytes, same
/// Content-Type and Cache-Control), else the upload with its reason.
async fn check_object(
    clients: &Clients,
    bucket: &str,
    mut up: Upload,
    listed: Listed,
) -> Result<Result<(String, Entry), Upload>, Error> {
    let head = match clients
        .s3
        .head_object()
        .bucket(bucket)
        .key(&up.key)
        .send()
        .await
    {
        Ok(h) => h,
        Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => {
            // Deleted since the listing.
            return Ok(Err(up));
        }
        Err(e) => {
            let status = e.raw_response().map(|r| r.status().as_u16());
            return Err(object_error("read", bucket, &up.key, status, describe(&e)));
        }
    };
    let stored_sha = head.metadata().and_then(|m| m.get(SHA256_META));
    let same_bytes = match stored_sha {
        // The SHA-256 this action stored is exact, multipart or not.
        Some(sha) => sha.eq_ignore_ascii_case(&up.file.sha256),
        // No SHA-256: only a single-part ETag (the MD5) can prove the bytes equal.
        None => !listed.etag.contains('-') && listed.etag == up.file.md5,
    };
    // Rewritten between the listing and the HEAD: our build is the truth, put it back.
    let raced = head.e_tag().map(|t| t.trim_matches('"')) != Some(listed.etag.as_str());
    if !same_bytes || raced {
        up.reason = Reason::Changed;
        return Ok(Err(up));
    }
    let same_meta = head.content_type() == Some(up.content_type.as_str())
        && head.cache_control() == Some(up.cache_control.as_str())
        && stored_sha.is_some();
    if !same_meta {
        up.reason = Reason::Metadata;
        return Ok(Err(up));
    }
    Ok(Ok((
        up.key,
        Entry {
            etag: listed.etag,
            size: listed.size,
            last_modified: listed.last_modified,
            sha256: up.file.sha256,
            content_type: up.content_type,
            cache_control: up.cache_control,
        },
    )))
}

/// Read the distribution, so a wrong ID fails before any write. A role allowed to invalidate but not to
/// read the distribution is common: that is only a warning.
async fn check_distribution(clients: &Clients, id: &str) -> Result<(), Error> {
    match clients.cloudfront.get_distribution().id(id).send().await {
        Ok(_) => Ok(()),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_no_such_distribution()) =>
        {
            Err(Error::NoSuchDistribution { id: id.to_string() })
        }
        Err(e) if e.as_service_error().is_some_and(|s| s.is_access_denied()) => {
            commands::emit(
                commands::Level::Warning,
                None,
                &format!("cannot read CloudFront distribution `{id}` (cloudfront:GetDistribution denied); the invalidation will be tried after the sync"),
            );
            Ok(())
        }
        Err(e) => Err(Error::Aws {
            verb: "read",
            object: id.to_string(),
            detail: describe(&e),
        }),
    }
}

/// Upload assets, then HTML pages, then the root `index.html`; then delete stale objects; then
/// invalidate CloudFront when configured. The report counts what was actually done, also on failure.
pub async fn apply(
    clients: &Clients,
    cfg: &Frontend,
    plan: SyncPlan,
    report: &mut Report,
) -> Result<(), Error> {
    let phase = Instant::now();
    let _group = commands::group("Frontend: sync");
    let mut sr = SyncReport {
        bucket: cfg.bucket.clone(),
        prefix: cfg.prefix.clone(),
        unchanged: plan.unchanged,
        ..report.frontend.take().unwrap_or_default()
    };
    sr.uploaded = 0;
    sr.deleted = 0;
    sr.bytes = 0;
    sr.changes.clear();
    sr.changes_total = 0;
    let result = sync(clients, cfg, &plan, &mut sr).await;
    sr.stage = if result.is_ok() {
        Stage::Done
    } else {
        Stage::Failed
    };
    sr.seconds = plan.started.elapsed().as_secs_f64();
    tracing::info!(
        uploaded = sr.uploaded,
        deleted = sr.deleted,
        unchanged = sr.unchanged,
        bytes = sr.bytes,
        seconds = sr.seconds,
        "frontend sync {}",
        if result.is_ok() { "done" } else { "failed" }
    );
    report.frontend = Some(sr);
    report.phase(
        "frontend sync",
        phase,
        crate::report::section::Outcome::of(&result),
    );
    result
}

async fn sync(
    clients: &Clients,
    cfg: &Frontend,
    plan: &SyncPlan,
    sr: &mut SyncReport,
) -> Result<(), Error> {
    // Each phase completes before the next starts: no page goes up before all its assets are in place.
    let mut written = BTreeMap::new();
    upload_all(clients, &cfg.bucket, &plan.assets, sr, &mut written).await?;
    upload_all(clients, &cfg.bucket, &plan.pages, sr, &mut written).await?;
    upload_all(
        clients,
        &cfg.bucket,
        plan.entry.as_slice(),
        sr,
        &mut written,
    )
    .await?;
    delete_all(clients, &cfg.bucket, &plan.deletes, sr).await?;
    save_state(clients, cfg, plan, written).await;
    if let Some(id) = &cfg.cloudfront_distribution_id {
        let paths = invalidation_paths(
            plan.uploads().map(|u| u.file.rel.as_str()),
            plan.deletes
                .iter()
                .map(|k| k.strip_prefix(&cfg.prefix).unwrap_or(k)),
        );
        if !paths.is_empty() {
            let inv = invalidate(&clients.cloudfront, id, &paths).await?;
            tracing::info!(distribution = %id, invalidation = %inv, paths = ?paths, "CloudFront invalidation created");
            sr.invalidation_id = Some(inv);
            sr.invalidated_paths = paths;
        }
    }
    Ok(())
}

async fn upload_all<'a>(
    clients: &Clients,
    bucket: &str,
    uploads: &'a [Upload],
    sr: &mut SyncReport,
    written: &mut BTreeMap<String, (String, &'a Upload)>,
) -> Result<(), Error> {
    let mut done = futures::stream::iter(uploads)
        .map(|up| async move { put(&clients.s3, bucket, up).await.map(|etag| (etag, up)) })
        .buffer_unordered(CONCURRENCY);
    while let Some(r) = done.next().await {
        let (etag, up) = r?;
        written.insert(up.key.clone(), (etag, up));
        tracing::info!(
            "uploaded {} ({}, {} bytes)",
            up.key,
            up.reason.as_str(),
            up.file.size
        );
        sr.uploaded += 1;
        sr.bytes += up.file.size;
        push_change(sr, &up.key, up.reason.as_str(), up.file.size);
    }
    Ok(())
}

/// The error for an object request: a 403 status is access denied (HEAD replies carry no code, so the
/// status is the one signal that works for every request).
fn object_error(
    verb: &'static str,
    bucket: &str,
    key: &str,
    status: Option<u16>,
    detail: String,
) -> Error {
    let object = format!("s3://{bucket}/{key}");
    if status == Some(403) {
        Error::AccessDenied {
            verb,
            object,
            detail,
        }
    } else {
        Error::Aws {
            verb,
            object,
            detail,
        }
    }
}

/// Record what this run left in the bucket (see [`state`]), when it differs from what was there. The
/// entries come from a fresh listing, so they hold the ETag and LastModified S3 gave each write.
async fn save_state(
    clients: &Clients,
    cfg: &Frontend,
    plan: &SyncPlan,
    written: BTreeMap<String, (String, &Upload)>,
) {
    let objects = if written.is_empty() && plan.deletes.is_empty() {
        plan.known.clone()
    } else {
        let listing = match list(clients, cfg).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!("could not list the bucket to record the sync state: {e}");
                return;
            }
        };
        let mut objects = BTreeMap::new();
        for (key, entry) in &plan.known {
            if listing.get(key).is_some_and(|l| entry.matches(l)) {
                objects.insert(key.clone(), entry.clone());
            }
        }
        for (key, (etag, up)) in written {
            // Someone else's write since ours must not be recorded as ours.
            if let Some(l) = listing.get(&key).filter(|l| l.etag == etag) {
                objects.insert(
                    key,
                    Entry {
                        etag: l.etag.clone(),
                        size: l.size,
                        last_modified: l.last_modified.clone(),
                        sha256: up.file.sha256.clone(),
                        content_type: up.content_type.clone(),
                        cache_control: up.cache_control.clone(),
                    },
                );
            }
        }
        objects
    };
    if !state::same(plan.old_state.as_ref(), &objects) {
        state::write(&clients.s3, &cfg.bucket, &plan.state_key, objects).await;
    }
}

/// Upload one file, streamed from disk: one `PutObject`, or a multipart upload above the threshold.
/// Returns the ETag S3 gave it (without quotes).
async fn put(s3: &aws_sdk_s3::Client, bucket: &str, up: &Upload) -> Result<String, Error> {
    if up.file.size > MULTIPART_THRESHOLD {
        return put_multipart(s3, bucket, up).await;
    }
    let body = ByteStream::from_path(&up.file.path)
        .await
        .map_err(|e| Error::Walk {
            path: up.file.path.clone(),
            message: e.to_string(),
        })?;
    let md5 = hex::decode(&up.file.md5).unwrap_or_default();
    let out = s3
        .put_object()
        .bucket(bucket)
        .key(&up.key)
        .body(body)
        .content_length(up.file.size as i64)
        .content_md5(base64::engine::general_purpose::STANDARD.encode(md5))
        .content_type(&up.content_type)
        .cache_control(&up.cache_control)
        .metadata(SHA256_META, &up.file.sha256)
        .send()
        .await
        .map_err(|e| {
            let status = e.raw_response().map(|r| r.status().as_u16());
            object_error("upload", bucket, &up.key, status, describe(&e))
        })?;
    Ok(etag_of(out.e_tag()))
}

fn etag_of(tag: Option<&str>) -> String {
    tag.unwrap_or_default().trim_matches('"').to_string()
}

/// The part size for a file: [`PART_SIZE`], grown so no file needs more than 10,000 parts.
fn part_size(size: u64) -> u64 {
    PART_SIZE.max(size.div_ceil(10_000))
}

async fn put_multipart(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    up: &Upload,
) -> Result<String, Error> {
    let created = s3
        .create_multipart_upload()
        .bucket(bucket)
        .key(&up.key)
        .content_type(&up.content_type)
        .cache_control(&up.cache_control)
        .metadata(SHA256_META, &up.file.sha256)
        .send()
        .await
        .map_err(|e| {
            let status = e.raw_response().map(|r| r.status().as_u16());
            object_error("upload", bucket, &up.key, status, describe(&e))
        })?;
    let Some(upload_id) = created.upload_id() else {
        return Err(Error::Aws {
            verb: "upload",
            object: format!("s3://{bucket}/{}", up.key),
            detail: "CreateMultipartUpload returned no UploadId".into(),
        });
    };
    let part = part_size(up.file.size);
    let count = up.file.size.div_ceil(part);
    let parts = futures::stream::iter(0..count)
        .map(|i| async move {
            let offset = i * part;
            let len = part.min(up.file.size - offset);
            let body = ByteStream::read_from()
                .path(&up.file.path)
                .offset(offset)
                .length(Length::Exact(len))
                .build()
                .await
                .map_err(|e| Error::Walk {
                    path: up.file.path.clone(),
                    message: e.to_string(),
                })?;
            let number = (i + 1) as i32;
            let out = s3
                .upload_part()
                .bucket(bucket)
                .key(&up.key)
                .upload_id(upload_id)
                .part_number(number)
                .content_length(len as i64)
                .body(body)
                .send()
                .await
                .map_err(|e| {
                    let status = e.raw_response().map(|r| r.status().as_u16());
                    object_error("upload", bucket, &up.key, status, describe(&e))
                })?;
            Ok::<_, Error>(
                CompletedPart::builder()
                    .part_number(number)
                    .set_e_tag(out.e_tag().map(str::to_string))
                    .build(),
            )
        })
        .buffered(4)
        .try_collect::<Vec<_>>()
        .await;
    let completed = match parts {
        Ok(parts) => s3
            .complete_multipart_upload()
            .bucket(bucket)
            .key(&up.key)
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .map(|out| etag_of(out.e_tag()))
            .map_err(|e| {
                let status = e.raw_response().map(|r| r.status().as_u16());
                object_error("upload", bucket, &up.key, status, describe(&e))
            }),
        Err(e) => Err(e),
    };
    if completed.is_err() {
        // Parts of an abandoned upload are billed until aborted.
        let _ = s3
            .abort_multipart_upload()
            .bucket(bucket)
            .key(&up.key)
            .upload_id(upload_id)
            .send()
            .await;
    }
    completed
}

/// Delete keys in batches of 1,000 (`DeleteObjects`); a key S3 refuses fails the run.
async fn delete_all(
    clients: &Clients,
    bucket: &str,
    keys: &[String],
    sr: &mut SyncReport,
) -> Result<(), Error> {
    for batch in keys.chunks(1000) {
        let objects = batch
            .iter()
            .map(|k| ObjectIdentifier::builder().key(k).build())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Error::Aws {
                verb: "delete",
                object: format!("s3://{bucket}"),
                detail: e.to_string(),
            })?;
        let delete = Delete::builder()
            .set_objects(Some(objects))
            .quiet(true)
            .build()
            .map_err(|e| Error::Aws {
                verb: "delete",
                object: format!("s3://{bucket}"),
                detail: e.to_string(),
            })?;
        let out = clients
            .s3
            .delete_objects()
            .bucket(bucket)
            .delete(delete)
            .send()
            .await
            .map_err(|e| {
                let status = e.raw_response().map(|r| r.status().as_u16());
                object_error("delete", bucket, &batch[0], status, describe(&e))
            })?;
        let failed: BTreeMap<String, String> = out
            .errors()
            .iter()
            .filter_map(|e| {
                e.key().map(|k| {
                    (
                        k.to_string(),
                        format!(
                            "{}: {}",
                            e.code().unwrap_or("Error"),
                            e.message().unwrap_or_default()
                        ),
                    )
                })
            })
            .collect();
        for key in batch {
            if !failed.contains_key(key) {
                tracing::info!("deleted {key}");
                sr.deleted += 1;
                push_change(sr, key, "delete", 0);
            }
        }
        if let Some((key, detail)) = failed.into_iter().next() {
            let object = format!("s3://{bucket}/{key}");
            return Err(if detail.starts_with("AccessDenied") {
                Error::AccessDenied {
                    verb: "delete",
                    object,
                    detail,
                }
            } else {
                Error::Aws {
                    verb: "delete",
                    object,
                    detail,
                }
            });
        }
    }
    Ok(())
}

/// The CloudFront paths of changed HTML: each uploaded or deleted page, its folder path for an
/// `index.html` (`/` for the root one), `/*` when there are many. Paths are relative to the build
/// folder: a distribution serving a prefix has that prefix as its origin path.
pub fn invalidation_paths<'a>(
    uploaded: impl Iterator<Item = &'a str>,
    deleted: impl Iterator<Item = &'a str>,
) -> Vec<String> {
    let mut paths = BTreeSet::new();
    for rel in uploaded.chain(deleted).filter(|r| local::is_html(r)) {
        let encoded = encode_path(rel);
        paths.insert(format!("/{encoded}"));
        if rel == "index.html" {
            paths.insert("/".to_string());
        } else if let Some(folder) = encoded.strip_suffix("/index.html") {
            paths.insert(format!("/{folder}/"));
        }
    }
    if paths.len() > INVALIDATION_PATH_CAP {
        return vec!["/*".to_string()];
    }
    paths.into_iter().collect()
}

/// Percent-encode a relative path for CloudFront (which wants the encoded form), keeping `/`.
fn encode_path(rel: &str) -> String {
    let mut out = String::with_capacity(rel.len());
    for b in rel.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(b as char)
            }
            other => {
                let _ = write!(out, "%{other:02X}");
            }
        }
    }
    out
}

/// `CreateInvalidation` of `paths`; returns the invalidation ID.
pub async fn invalidate(
    cf: &aws_sdk_cloudfront::Client,
    distribution_id: &str,
    paths: &[String],
) -> Result<String, Error> {
    use aws_sdk_cloudfront::types::{InvalidationBatch, Paths};
    let err = |detail: String| Error::Aws {
        verb: "invalidate",
        object: format!("cloudfront distribution {distribution_id}"),
        detail,
    };
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_nanos();
    let batch = InvalidationBatch::builder()
        .caller_reference(format!("cloudshop-deploy-{nanos}"))
        .paths(
            Paths::builder()
                .quantity(paths.len() as i32)
                .set_items(Some(paths.to_vec()))
                .build()
                .map_err(|e| err(e.to_string()))?,
        )
        .build()
        .map_err(|e| err(e.to_string()))?;
    let out = cf
        .create_invalidation()
        .distribution_id(distribution_id)
        .invalidation_batch(batch)
        .send()
        .await
        .map_err(|e| {
            if e.as_service_error()
                .is_some_and(|s| s.is_no_such_distribution())
            {
                Error::NoSuchDistribution {
                    id: distribution_id.to_string(),
                }
            } else {
                err(describe(&e))
            }
        })?;
    Ok(out
        .invalidation()
        .map(|i| i.id().to_string())
        .unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalidation_paths_cover_pages_and_folders() {
        let up = [
            "index.html",
            "static/js/main.1234abcd.js",
            "about/index.html",
            "a b.html",
        ];
        let del = ["old.html", "static/old.css"];
        assert_eq!(
            invalidation_paths(up.into_iter(), del.into_iter()),
            vec![
                "/",
                "/a%20b.html",
                "/about/",
                "/about/index.html",
                "/index.html",
                "/old.html"
            ]
        );
        let many: Vec<String> = (0..60).map(|i| format!("p{i}.html")).collect();
        assert_eq!(
            invalidation_paths(many.iter().map(String::as_str), std::iter::empty()),
            vec!["/*"]
        );
        assert!(invalidation_paths(["x.js"].into_iter(), std::iter::empty()).is_empty());
    }

    #[test]
    fn part_size_grows_for_huge_files() {
        assert_eq!(part_size(20 << 20), PART_SIZE);
        assert!(part_size(200 << 30).div_ceil(1) * 10_000 >= 200 << 30);
    }
}
