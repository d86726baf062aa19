//! The copy engine: bring an image (and, for an index, every child manifest) from a registry repository or
//! a local archive into a target repository, keeping every digest. Blobs go several at once and are never
//! sent twice (HEAD first, mount within one registry, else a streamed upload retried with a fresh session);
//! children are written before the index that names them, tags last, and the first tag is read back.
//!
//! APIs: through [`Registry`] only.

use std::sync::Arc;

use bytes::Bytes;
use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};
use serde::Serialize;

use super::archive;
use super::client::{Mount, Options, Registry};
use super::error::Error;
use super::manifest::{Descriptor, Manifest, Parsed};
use crate::retry;

/// A child manifest of an index is an image; deeper nesting is not something images do.
const MAX_DEPTH: usize = 2;

/// How one blob reached the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BlobOutcome {
    Present,
    Mounted,
    Copied(u64),
}

/// Where the image comes from: a repository of a registry, or a local archive.
#[derive(Debug, Clone)]
pub enum Source {
    /// `repo` in `registry`.
    Registry { registry: Registry, repo: String },
    /// An OCI layout or `docker save` archive.
    Archive(Arc<archive::Archive>),
}

impl Source {
    async fn manifest(&self, digest: &str) -> Result<Manifest, Error> {
        match self {
            Source::Registry { registry, repo } => registry
                .get_manifest(repo, digest)
                .await?
                .ok_or_else(|| Error::MissingManifest(format!("{repo}@{digest}"))),
            Source::Archive(a) => Ok(a.manifest(digest).await?),
        }
    }

    async fn blob(
        &self,
        digest: &str,
        size: u64,
    ) -> Result<BoxStream<'static, std::io::Result<Bytes>>, Error> {
        match self {
            Source::Registry { registry, repo } => registry.get_blob(repo, digest).await,
            Source::Archive(a) => Ok(a.blob(digest, size).await?),
        }
    }
}

/// What a copy moved.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CopyStats {
    /// Blobs streamed into the target.
    pub blobs_copied: u64,
    /// Blobs the target already had.
    pub blobs_skipped: u64,
    /// Blobs mounted from the source repository (no bytes moved).
    pub blobs_mounted: u64,
    /// Blob bytes streamed.
    pub bytes_copied: u64,
    /// Manifests written (children and the top one; tags not counted).
    pub manifests_put: u64,
    /// Manifests the target already had.
    pub manifests_skipped: u64,
    /// Tags written.
    pub tags_put: Vec<String>,
    /// Tags already pointing at the digest.
    pub tags_unchanged: Vec<String>,
}

/// The target of a copy.
#[derive(Debug, Clone)]
pub struct Target {
    pub registry: Registry,
    pub repo: String,
}

/// Copy `top` (already read from `source`) and everything it refers to into `target`, then point `tags` at
/// it. Idempotent: what the target has is checked first and never sent again.
pub async fn copy_image(
    source: &Source,
    target: &Target,
    top: &Manifest,
    tags: &[String],
    options: &Options,
) -> Result<CopyStats, Error> {
    let mut stats = CopyStats::default();
    copy_tree(source, target, top, options, 0, &mut stats).await?;
    for tag in tags {
        match target.registry.manifest_digest(&target.repo, tag).await? {
            Some(d) if d == top.digest => stats.tags_unchanged.push(tag.clone()),
            _ => {
                target.registry.put_manifest(&target.repo, tag, top).await?;
                stats.tags_put.push(tag.clone());
            }
        }
    }
    // The truth is what the target now serves under the tag.
    if let Some(tag) = tags.first() {
        let now = target.registry.manifest_digest(&target.repo, tag).await?;
        if now.as_deref() != Some(top.digest.as_str()) {
            return Err(Error::DigestMismatch {
                object: format!("{}:{tag}", target.repo),
                expected: top.digest.clone(),
                actual: now.unwrap_or_else(|| "nothing".into()),
            });
        }
    }
    Ok(stats)
}

/// Copy one manifest (children first) by digest.
fn copy_tree<'a>(
    source: &'a Source,
    target: &'a Target,
    manifest: &'a Manifest,
    options: &'a Options,
    depth: usize,
    stats: &'a mut CopyStats,
) -> futures::future::BoxFuture<'a, Result<(), Error>> {
    Box::pin(async move {
        let parsed = manifest.parse()?;
        if target
            .registry
            .manifest_digest(&target.repo, &manifest.digest)
            .await?
            .is_some()
        {
            // A registry only accepts a manifest whose blobs it has, so all of them are there.
            stats.manifests_skipped += 1;
            if let Parsed::Image(blobs) = &parsed {
                stats.blobs_skipped += blobs.len() as u64;
            }
            return Ok(());
        }
        match parsed {
            Parsed::Index(children) => {
                if depth >= MAX_DEPTH {
                    return Err(Error::Manifest {
                        object: manifest.digest.clone(),
                        message: "indexes nested deeper than an index of images".into(),
                    });
                }
                for child in children {
                    let m = source.manifest(&child.digest).await?;
                    if m.digest != child.digest {
                        return Err(Error::DigestMismatch {
                            object: child.digest.clone(),
                            expected: child.digest,
                            actual: m.digest,
                        });
                    }
                    copy_tree(source, target, &m, options, depth + 1, stats).await?;
                }
            }
            Parsed::Image(blobs) => {
                let outcomes: Vec<BlobOutcome> = stream::iter(blobs)
                    .map(|b| copy_blob(source, target, b, options))
                    .buffer_unordered(options.concurrency.max(1))
                    .try_collect()
                    .await?;
                for o in outcomes {
                    match o {
                        BlobOutcome::Present => stats.blobs_skipped += 1,
                        BlobOutcome::Mounted => stats.blobs_mounted += 1,
                        BlobOutcome::Copied(n) => {
                            stats.blobs_copied += 1;
                            stats.bytes_copied += n;
                        }
                    }
                }
            }
        }
        target
            .registry
            .put_manifest(&target.repo, &manifest.digest, manifest)
            .await?;
        stats.manifests_put += 1;
        Ok(())
    })
}

/// Bring one blob into the target: present, mounted, or streamed. A failed transfer is tried again as a
/// whole (a new mount or session, the source read again) under the options' `attempts` and `backoff`;
/// its requests are sent once inside it.
async fn copy_blob(
    source: &Source,
    target: &Target,
    blob: Descriptor,
    options: &Options,
) -> Result<BlobOutcome, Error> {
    let (reg, repo) = (&target.registry, target.repo.as_str());
    if reg.blob_exists(repo, &blob.digest).await? {
        return Ok(BlobOutcome::Present);
    }
    let policy =
        retry::Policy::new(options.attempts, options.backoff).log_retries_at(tracing::Level::WARN);
    let what = format!("blob copy `{repo}@{}`", blob.digest);
    retry::run(policy, &what, |_| async {
        retry::Outcome::classify(
            transfer_blob(source, target, &blob, options).await,
            retryable,
        )
    })
    .await
}

/// One transfer of a blob the target lacks: a mount when source and target are one registry, else a
/// session that streams the source's bytes.
async fn transfer_blob(
    source: &Source,
    target: &Target,
    blob: &Descriptor,
    options: &Options,
) -> Result<BlobOutcome, Error> {
    let (reg, repo) = (&target.registry, target.repo.as_str());
    let session = match source {
        Source::Registry {
            registry,
            repo: from,
        } if options.mount && registry.base() == reg.base() && from != repo => {
            match reg.mount(repo, &blob.digest, from).await? {
                Mount::Mounted => return Ok(BlobOutcome::Mounted),
                Mount::Upload(location) => location,
            }
        }
        _ => reg.start_upload(repo, &blob.digest).await?,
    };
    let body = source.blob(&blob.digest, blob.size).await?;
    let n = reg
        .upload(session, repo, &blob.digest, blob.size, body)
        .await?;
    tracing::debug!(digest = %blob.digest, bytes = n, "blob copied");
    Ok(BlobOutcome::Copied(n))
}

/// Worth another attempt: transport failures, throttling and server errors.
pub(super) fn retryable(e: &Error) -> bool {
    match e {
        Error::Transport { .. } => true,
        Error::Status { status, .. } => *status == 429 || *status >= 500,
        _ => false,
    }
}
