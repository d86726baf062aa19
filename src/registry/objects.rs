//! Small objects through the registry client: push a blob held in memory (a marker's config), put an
//! artifact manifest under a tag, read a small blob back within a byte bound, and point another tag at a
//! manifest already in the repository. What [`super::artifact`] builds travels through these.
//!
//! APIs: OCI distribution `/v2/<repo>/blobs/<digest>` (HEAD, GET), `/v2/<repo>/blobs/uploads/` (POST,
//! PATCH, PUT), `/v2/<repo>/manifests/<ref>` (PUT).

use bytes::Bytes;
use futures::stream::{self, StreamExt};

use super::artifact::Blob;
use super::client::Registry;
use super::error::Error;
use super::http::checked_digest;
use super::manifest::Manifest;

impl Registry {
    /// Push a blob held in memory unless the repository has it. Returns whether bytes were sent.
    pub async fn push_blob(&self, repo: &str, blob: &Blob) -> Result<bool, Error> {
        if self.blob_exists(repo, &blob.digest).await? {
            return Ok(false);
        }
        let location = self.start_upload(repo, &blob.digest).await?;
        let body = stream::iter([Ok(blob.bytes.clone())]).boxed();
        self.upload(location, repo, &blob.digest, blob.bytes.len() as u64, body)
            .await?;
        Ok(true)
    }

    /// Put manifest bytes (an artifact built by [`super::artifact::manifest`]) under `tag`.
    pub async fn put_manifest_bytes(
        &self,
        repo: &str,
        tag: &str,
        bytes: Bytes,
        media_type: &str,
    ) -> Result<String, Error> {
        let manifest = Manifest::from_bytes(bytes, media_type)?;
        self.put_manifest(repo, tag, &manifest).await?;
        Ok(manifest.digest)
    }

    /// Point `tag` at `manifest` (already in the repository, or whose blobs are).
    pub async fn put_tag(&self, repo: &str, tag: &str, manifest: &Manifest) -> Result<(), Error> {
        self.put_manifest(repo, tag, manifest).await
    }

    /// A small blob, whole: at most `max` bytes, checked against its digest.
    pub async fn read_blob(&self, repo: &str, digest: &str, max: usize) -> Result<Bytes, Error> {
        let object = format!("{repo}@{digest}");
        checked_digest(&object, digest)?;
        let mut body = self.get_blob(repo, digest).await?;
        let mut out = Vec::new();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| Error::Transport {
                verb: "get blob",
                object: object.clone(),
                message: e.to_string(),
            })?;
            if out.len() + chunk.len() > max {
                return Err(Error::TooLarge {
                    verb: "get blob",
                    object,
                    limit: max,
                });
            }
            out.extend_from_slice(&chunk);
        }
        let actual = super::manifest::sha256_digest(&out);
        if actual != digest {
            return Err(Error::DigestMismatch {
                object,
                expected: digest.to_string(),
                actual,
            });
        }
        Ok(Bytes::from(out))
    }
}
