//! Small objects through the registry client: push a blob held in memory (a marker's config), read a
//! small blob back within a byte bound, and list a repository's tags across pages. What
//! [`super::artifact`] builds travels through these (its manifests through `Registry::put_manifest`).
//!
//! APIs: OCI distribution `/v2/<repo>/blobs/<digest>` (HEAD, GET), `/v2/<repo>/blobs/uploads/` (POST,
//! PATCH, PUT), `/v2/<repo>/manifests/<ref>` (PUT), `/v2/<repo>/tags/list` (GET).

use bytes::Bytes;
use futures::stream::{self, StreamExt};

use super::artifact::Blob;
use super::client::Registry;
use super::copy::retryable;
use super::error::Error;
use super::http::{checked_digest, same_origin};
use crate::retry::{self, Outcome};

/// Pages of a tag listing followed at most.
pub const MAX_TAG_PAGES: usize = 50;

impl Registry {
    /// Tags of a repository, at most `limit`, following the registry's pages (at most [`MAX_TAG_PAGES`]);
    /// empty when the repository is unknown. A next page on another origin is refused: the token goes
    /// only to the registry's own.
    pub(crate) async fn list_tags(&self, repo: &str, limit: usize) -> Result<Vec<String>, Error> {
        let mut url = self.url(&format!("/v2/{repo}/tags/list"))?;
        url.query_pairs_mut()
            .append_pair("n", &self.tag_page.min(limit).max(1).to_string());
        let mut out = Vec::new();
        for page in 1..=MAX_TAG_PAGES {
            let Some((tags, next)) = self.tags_page(repo, url.clone()).await? else {
                break;
            };
            out.extend(tags);
            let Some(next) = next.filter(|_| out.len() < limit) else {
                break;
            };
            let refused = |message: String| Error::Status {
                verb: "list tags of",
                object: repo.to_string(),
                status: 200,
                code: "-".into(),
                message,
            };
            let next_url = url
                .join(&next)
                .map_err(|e| refused(format!("the next page `{next}` is not a URL: {e}")))?;
            if !same_origin(&next_url, &url) {
                return Err(refused(format!(
                    "refused the next page on another origin (`{}`)",
                    next_url.origin().ascii_serialization()
                )));
            }
            if page == MAX_TAG_PAGES {
                tracing::warn!(
                    "the tag list of `{repo}` has more than {MAX_TAG_PAGES} pages: read the first {}",
                    out.len()
                );
            }
            url = next_url;
        }
        out.truncate(limit);
        Ok(out)
    }

    /// Push a blob held in memory unless the repository has it. Returns whether bytes were sent. A
    /// failed upload (a dropped connection, throttling, a 5xx) is tried again as a whole, in a fresh
    /// session, under [`Registry::small_policy`]: the bytes are at hand, and a session left unused
    /// expires. The session's requests are not retried on their own inside it, so a blob costs at most
    /// [`SMALL_ATTEMPTS`](super::client::SMALL_ATTEMPTS) sessions.
    pub async fn push_blob(&self, repo: &str, blob: &Blob) -> Result<bool, Error> {
        if self.blob_exists(repo, &blob.digest).await? {
            return Ok(false);
        }
        let what = format!("blob upload `{repo}@{}`", blob.digest);
        retry::run(self.small_policy(), &what, |_| async {
            Outcome::classify(self.push_blob_once(repo, blob).await, retryable)
        })
        .await?;
        Ok(true)
    }

    /// One upload session for an in-memory blob: open, send, close.
    async fn push_blob_once(&self, repo: &str, blob: &Blob) -> Result<u64, Error> {
        let location = self.start_upload(repo, &blob.digest).await?;
        let body = stream::iter([Ok(blob.bytes.clone())]).boxed();
        self.upload(location, repo, &blob.digest, blob.bytes.len() as u64, body)
            .await
    }

    /// A small blob, whole: at most `max` bytes, checked against its digest. A read that fails on the
    /// way (a dropped connection, throttling, a 5xx) is started again under [`Registry::small_policy`].
    pub async fn read_blob(&self, repo: &str, digest: &str, max: usize) -> Result<Bytes, Error> {
        let object = format!("{repo}@{digest}");
        checked_digest(&object, digest)?;
        let what = format!("blob read `{object}`");
        retry::run(self.small_policy(), &what, |_| async {
            Outcome::classify(
                self.read_blob_once(repo, digest, &object, max).await,
                retryable,
            )
        })
        .await
    }

    async fn read_blob_once(
        &self,
        repo: &str,
        digest: &str,
        object: &str,
        max: usize,
    ) -> Result<Bytes, Error> {
        let mut body = self.get_blob(repo, digest).await?;
        let mut out = Vec::new();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| Error::Transport {
                verb: "get blob",
                object: object.to_string(),
                message: e.to_string(),
            })?;
            if out.len() + chunk.len() > max {
                return Err(Error::TooLarge {
                    verb: "get blob",
                    object: object.to_string(),
                    limit: max,
                });
            }
            out.extend_from_slice(&chunk);
        }
        let actual = super::manifest::sha256_digest(&out);
        if actual != digest {
            return Err(Error::DigestMismatch {
                object: object.to_string(),
                expected: digest.to_string(),
                actual,
            });
        }
        Ok(Bytes::from(out))
    }
}
