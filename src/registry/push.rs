//! Artifacts in and out of a repository: push an artifact (its blobs, a packed build streamed from its
//! file, then its manifest under a tag, read back), and read one artifact's layer, whole or streamed
//! into a file (bounded, digest checked).
//!
//! APIs: through [`Registry`] only.

use std::path::Path;

use bytes::Bytes;
use futures::StreamExt;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::artifact::Blob;
use super::client::Registry;
use super::copy::{retryable, CopyStats, Target};
use super::error::Error;
use super::manifest::{Manifest, Parsed, OCI_MANIFEST};
use crate::retry::{self, Outcome};

/// An artifact's manifest from the bytes [`super::artifact::manifest`] made.
pub fn artifact_manifest(bytes: Bytes) -> Result<Manifest, Error> {
    Manifest::from_bytes(bytes, OCI_MANIFEST)
}

/// Push `blobs` (those the repository lacks), then `manifest` under `tag`, and check the tag now names
/// it. Idempotent: a re-run sends nothing but the checks.
pub async fn push_artifact(
    target: &Target,
    blobs: &[&Blob],
    manifest: &Manifest,
    tag: &str,
) -> Result<CopyStats, Error> {
    let (reg, repo) = (&target.registry, target.repo.as_str());
    let mut stats = CopyStats::default();
    if reg.manifest_digest(repo, tag).await?.as_deref() == Some(manifest.digest.as_str()) {
        stats.manifests_skipped += 1;
        stats.blobs_skipped += blobs.len() as u64;
        stats.tags_unchanged.push(tag.to_string());
        return Ok(stats);
    }
    for blob in blobs {
        let sent = match &blob.file {
            Some(path) => push_file_blob(reg, repo, blob, path).await?,
            None => reg.push_blob(repo, blob).await?,
        };
        if sent {
            stats.blobs_copied += 1;
            stats.bytes_copied += blob.size;
        } else {
            stats.blobs_skipped += 1;
        }
    }
    reg.put_manifest(repo, tag, manifest).await?;
    stats.manifests_put += 1;
    stats.tags_put.push(tag.to_string());
    let now = reg.manifest_digest(repo, tag).await?;
    if now.as_deref() != Some(manifest.digest.as_str()) {
        return Err(Error::DigestMismatch {
            object: format!("{repo}:{tag}"),
            expected: manifest.digest.clone(),
            actual: now.unwrap_or_else(|| "nothing".into()),
        });
    }
    Ok(stats)
}

/// The one layer of media type `media_type` of an artifact, read whole: at most `limit` bytes, and
/// exactly the bytes its digest names.
pub async fn read_layer(
    registry: &Registry,
    repo: &str,
    manifest: &Manifest,
    media_type: &str,
    limit: u64,
) -> Result<Bytes, Error> {
    let digest = layer_of(repo, manifest, media_type, limit)?;
    registry.read_blob(repo, &digest, limit as usize).await
}

/// The digest of the one layer of media type `media_type`, refused when larger than `limit`.
fn layer_of(
    repo: &str,
    manifest: &Manifest,
    media_type: &str,
    limit: u64,
) -> Result<String, Error> {
    let Parsed::Image(blobs) = manifest.parse()? else {
        return Err(Error::Manifest {
            object: manifest.digest.clone(),
            message: "an index, not an artifact".into(),
        });
    };
    let layer = blobs
        .into_iter()
        .find(|b| b.media_type == media_type)
        .ok_or_else(|| Error::Manifest {
            object: manifest.digest.clone(),
            message: format!("no `{media_type}` layer"),
        })?;
    if layer.size > limit {
        return Err(Error::TooLarge {
            verb: "get blob",
            object: format!("{repo}@{}", layer.digest),
            limit: limit as usize,
        });
    }
    Ok(layer.digest)
}

// ---- Streamed to and from disk: a packed build of any size in flat memory. Each attempt starts again
// ---- from the file, under the registry's small-request policy.

/// [`read_layer`] streamed into the file `dest` (created or truncated): at most `limit` bytes, and
/// exactly the bytes its digest names. A read that fails on the way is started again under
/// [`Registry::small_policy`].
pub async fn read_layer_to(
    registry: &Registry,
    repo: &str,
    manifest: &Manifest,
    media_type: &str,
    limit: u64,
    dest: &Path,
) -> Result<(), Error> {
    let digest = layer_of(repo, manifest, media_type, limit)?;
    let object = format!("{repo}@{digest}");
    let what = format!("layer read `{object}`");
    retry::run(registry.small_policy(), &what, |_| async {
        Outcome::classify(
            read_once_to(registry, repo, &digest, &object, limit, dest).await,
            retryable,
        )
    })
    .await
}

async fn read_once_to(
    registry: &Registry,
    repo: &str,
    digest: &str,
    object: &str,
    limit: u64,
    dest: &Path,
) -> Result<(), Error> {
    let io = |e: std::io::Error| Error::Transport {
        verb: "write blob to",
        object: dest.display().to_string(),
        message: e.to_string(),
    };
    let mut body = registry.get_blob(repo, digest).await?;
    let mut out = tokio::io::BufWriter::new(tokio::fs::File::create(dest).await.map_err(io)?);
    let (mut sha, mut size) = (Sha256::new(), 0u64);
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| Error::Transport {
            verb: "get blob",
            object: object.to_string(),
            message: e.to_string(),
        })?;
        size += chunk.len() as u64;
        if size > limit {
            return Err(Error::TooLarge {
                verb: "get blob",
                object: object.to_string(),
                limit: limit as usize,
            });
        }
        sha.update(&chunk);
        out.write_all(&chunk).await.map_err(io)?;
    }
    out.flush().await.map_err(io)?;
    let actual = format!("sha256:{}", hex::encode(sha.finalize()));
    if actual != digest {
        return Err(Error::DigestMismatch {
            object: object.to_string(),
            expected: digest.to_string(),
            actual,
        });
    }
    Ok(())
}

/// Push a blob kept in the file `path` unless the repository has it, streamed from disk (64 KiB at a
/// time). Returns whether bytes were sent. A failed upload is tried again in a fresh session, reading
/// the file again, under [`Registry::small_policy`].
async fn push_file_blob(
    registry: &Registry,
    repo: &str,
    blob: &Blob,
    path: &Path,
) -> Result<bool, Error> {
    if registry.blob_exists(repo, &blob.digest).await? {
        return Ok(false);
    }
    let what = format!("blob upload `{repo}@{}`", blob.digest);
    retry::run(registry.small_policy(), &what, |_| async {
        Outcome::classify(
            push_file_blob_once(registry, repo, blob, path).await,
            retryable,
        )
    })
    .await?;
    Ok(true)
}

/// One upload session reading the file from its start: open, send, close.
async fn push_file_blob_once(
    registry: &Registry,
    repo: &str,
    blob: &Blob,
    path: &Path,
) -> Result<u64, Error> {
    let file = tokio::fs::File::open(path)
        .await
        .map_err(|e| Error::Transport {
            verb: "read blob from",
            object: path.display().to_string(),
            message: e.to_string(),
        })?;
    let body = tokio_util::io::ReaderStream::with_capacity(file, 64 * 1024).boxed();
    let location = registry.start_upload(repo, &blob.digest).await?;
    registry
        .upload(location, repo, &blob.digest, blob.size, body)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::artifact::{self, FRONTEND_ARTIFACT, TAR_GZIP_LAYER};

    #[tokio::test]
    async fn a_layer_larger_than_the_bound_is_refused_before_any_request() {
        let layer = Blob::new(Bytes::from(vec![7u8; 2048]), TAR_GZIP_LAYER);
        let (bytes, digest) = artifact::manifest(FRONTEND_ARTIFACT, &Blob::empty(), &[&layer], &[]);
        let manifest = artifact_manifest(bytes).unwrap();
        assert_eq!(manifest.digest, digest);
        // Nothing listens there: a request would fail with a transport error, not `TooLarge`.
        let registry = Registry::new(
            url::Url::parse("http://127.0.0.1:9").unwrap(),
            None,
            &super::super::client::Options::default(),
        )
        .unwrap();
        let err = read_layer(&registry, "r", &manifest, TAR_GZIP_LAYER, 1024)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::TooLarge { limit: 1024, .. }), "{err}");
        let err = read_layer(&registry, "r", &manifest, "application/x-other", 1 << 20)
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("no `application/x-other` layer"),
            "{err}"
        );
    }
}
