//! Artifacts in and out of a repository: push a small artifact built in memory (its blobs, then its
//! manifest under a tag, read back), and read one artifact's layer whole (bounded, digest checked).
//!
//! APIs: through [`Registry`] only.

use bytes::Bytes;
use futures::stream::{self, StreamExt};

use super::artifact::Blob;
use super::client::Registry;
use super::copy::{CopyStats, Target};
use super::error::Error;
use super::manifest::{sha256_digest, Manifest, Parsed, OCI_MANIFEST};

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
        if reg.blob_exists(repo, &blob.digest).await? {
            stats.blobs_skipped += 1;
            continue;
        }
        let session = reg.start_upload(repo, &blob.digest).await?;
        let body = stream::iter([Ok::<_, std::io::Error>(blob.bytes.clone())]).boxed();
        let n = reg
            .upload(session, repo, &blob.digest, blob.bytes.len() as u64, body)
            .await?;
        stats.blobs_copied += 1;
        stats.bytes_copied += n;
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
    let object = format!("{repo}@{}", layer.digest);
    if layer.size > limit {
        return Err(Error::TooLarge {
            verb: "get blob",
            object,
            limit: limit as usize,
        });
    }
    let mut body = registry.get_blob(repo, &layer.digest).await?;
    let mut out = Vec::with_capacity(layer.size as usize);
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| Error::Transport {
            verb: "get blob",
            object: object.clone(),
            message: e.to_string(),
        })?;
        if (out.len() + chunk.len()) as u64 > limit {
            return Err(Error::TooLarge {
                verb: "get blob",
                object,
                limit: limit as usize,
            });
        }
        out.extend_from_slice(&chunk);
    }
    let actual = sha256_digest(&out);
    if actual != layer.digest {
        return Err(Error::DigestMismatch {
            object,
            expected: layer.digest,
            actual,
        });
    }
    Ok(Bytes::from(out))
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
