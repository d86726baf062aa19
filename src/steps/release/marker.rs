//! The verification markers of one repository, through the registry client: write one (its config blob,
//! the OCI empty blob as its one layer, the manifest under `verified-<env>-<sha>`), read one back, list
//! an environment's markers. A marker is written once per tag and never moved, so it works in repositories
//! with immutable tags.
//!
//! APIs: OCI distribution (blob HEAD/GET/upload, manifest GET/PUT, `tags/list`) through
//! [`crate::registry::Registry`].

use futures::stream::{self, StreamExt};

use crate::registry::artifact::{self, Blob, Verification, VERIFICATION_ARTIFACT};
use crate::registry::{self, Registry};

/// The largest marker config read (a real one is a few hundred bytes).
const MAX_MARKER: usize = 64 * 1024;
/// Tags listed at most when looking for an environment's markers (ECR's page size).
pub(super) const MAX_TAGS: usize = 1000;
/// Markers read at most when looking for the newest one.
pub(super) const MAX_MARKERS: usize = 200;
/// Markers read at once.
const CONCURRENCY: usize = 8;

/// One repository of one registry.
#[derive(Debug, Clone)]
pub struct Store {
    pub registry: Registry,
    pub repo: String,
}

/// What [`Store::write`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    /// A new marker under this tag.
    New,
    /// A marker for the same digest was already there (a re-run): kept as it is.
    AlreadyThere(Box<Verification>),
}

impl Store {
    /// Write the marker for `v` under `verified-<env>-<sha>`, unless one for the same digest is there.
    pub async fn write(&self, v: &Verification) -> Result<Written, registry::Error> {
        let tag = artifact::verified_tag(&v.environment, &v.sha);
        if let Some(existing) = self.read(&tag).await? {
            if existing.digest == v.digest {
                return Ok(Written::AlreadyThere(Box::new(existing)));
            }
        }
        let config = v.blob();
        let empty = Blob::empty();
        self.registry.push_blob(&self.repo, &config).await?;
        self.registry.push_blob(&self.repo, &empty).await?;
        let (bytes, _) = artifact::manifest(
            VERIFICATION_ARTIFACT,
            &config,
            &[&empty],
            &[
                ("org.opencontainers.image.created", &v.verified_at),
                ("org.opencontainers.image.revision", &v.sha),
                ("com.cloudshop.verified.digest", &v.digest),
            ],
        );
        let manifest = registry::artifact_manifest(bytes)?;
        self.registry
            .put_manifest(&self.repo, &tag, &manifest)
            .await?;
        Ok(Written::New)
    }

    /// The marker under `tag`; `None` when there is none (or the tag names something else).
    pub async fn read(&self, tag: &str) -> Result<Option<Verification>, registry::Error> {
        let Some(manifest) = self.registry.get_manifest(&self.repo, tag).await? else {
            return Ok(None);
        };
        let Some(config) = marker_config(&manifest.bytes) else {
            return Ok(None);
        };
        let bytes = self
            .registry
            .read_blob(&self.repo, &config, MAX_MARKER)
            .await?;
        Ok(Verification::from_blob(&bytes).ok())
    }

    /// The markers of `environment` (at most [`MAX_MARKERS`] of the first [`MAX_TAGS`] tags), in no
    /// particular order. A marker that cannot be read is left out with a warning in the log.
    pub async fn list(&self, environment: &str) -> Result<Vec<Verification>, registry::Error> {
        let prefix = artifact::verified_tag(environment, "");
        let tags: Vec<String> = self
            .registry
            .list_tags(&self.repo, MAX_TAGS)
            .await?
            .into_iter()
            .filter(|t| t.starts_with(&prefix))
            .take(MAX_MARKERS)
            .collect();
        let read: Vec<(String, Result<Option<Verification>, registry::Error>)> = stream::iter(tags)
            .map(|t| async move {
                let r = self.read(&t).await;
                (t, r)
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        let mut out = Vec::new();
        for (tag, r) in read {
            match r {
                Ok(Some(v)) if v.environment == environment => out.push(v),
                Ok(_) => tracing::warn!("`{tag}` is not a verification marker of `{environment}`"),
                Err(e) => tracing::warn!("failed to read the marker `{tag}`: {e}"),
            }
        }
        Ok(out)
    }
}

/// The config digest of a marker manifest; `None` for anything that is not one.
pub(super) fn marker_config(manifest: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(manifest).ok()?;
    let config = v.get("config")?;
    if config.get("mediaType")?.as_str()? != VERIFICATION_ARTIFACT {
        return None;
    }
    let digest = config.get("digest")?.as_str()?;
    registry::is_digest(digest).then(|| digest.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_marker_manifests_name_a_config() {
        let v = Verification {
            environment: "stage".into(),
            digest: format!("sha256:{}", "b".repeat(64)),
            sha: "abc".into(),
            frontend: None,
            task_definition: None,
            run_url: None,
            verified_at: "2026-11-26T12:00:00.000Z".into(),
            smoke: "passed".into(),
            gates: Default::default(),
        };
        let config = v.blob();
        let (bytes, _) = artifact::manifest(VERIFICATION_ARTIFACT, &config, &[&Blob::empty()], &[]);
        assert_eq!(marker_config(&bytes), Some(config.digest.clone()));
        let (image, _) = artifact::manifest(
            artifact::FRONTEND_ARTIFACT,
            &Blob::empty(),
            &[&Blob::empty()],
            &[],
        );
        assert_eq!(marker_config(&image), None);
        assert_eq!(marker_config(b"not json"), None);
        let hostile = format!(
            r#"{{"config":{{"mediaType":"{VERIFICATION_ARTIFACT}","digest":"sha256:../../x"}}}}"#
        );
        assert_eq!(marker_config(hostile.as_bytes()), None);
    }
}
