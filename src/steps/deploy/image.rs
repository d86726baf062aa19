//! The image to deploy: find the git-SHA tag in ECR (with the 7-character short SHA as a fallback), take
//! its digest, and name it immutably as `REGISTRY/REPO@sha256:...`. Adds extra tags by re-putting the
//! manifest byte for byte.
//!
//! APIs: ECR `DescribeRepositories`, `DescribeImages`, `BatchGetImage`, `PutImage`.

use aws_sdk_ecr::types::{ImageIdentifier, TagStatus};
use serde::Serialize;

use super::Error;

/// How many of the newest tags to list when the wanted one is missing.
const RECENT_TAGS: usize = 10;
/// Bound on the pages read when listing recent tags (1000 images per page).
const MAX_PAGES: usize = 5;

/// The repository, as ECR describes it.
#[derive(Debug, Clone, Serialize)]
pub struct Repository {
    /// Name.
    pub name: String,
    /// `<account>.dkr.ecr.<region>.amazonaws.com/<name>`.
    pub uri: String,
    /// Tags cannot be moved.
    pub immutable: bool,
}

/// The image found.
#[derive(Debug, Clone, Serialize)]
pub struct Resolved {
    /// The tag that matched (the full or the short SHA); `None` when the digest was given.
    pub tag: Option<String>,
    /// `sha256:...`.
    pub digest: String,
    /// `REGISTRY/REPO@sha256:...`.
    pub uri: String,
}

/// Look up the repository.
pub async fn repository(ecr: &aws_sdk_ecr::Client, name: &str) -> Result<Repository, Error> {
    let res = ecr
        .describe_repositories()
        .repository_names(name)
        .send()
        .await;
    let out = match res {
        Ok(o) => o,
        Err(e) => {
            if e.as_service_error()
                .is_some_and(|s| s.is_repository_not_found_exception())
            {
                return Err(Error::RepositoryNotFound(name.to_string()));
            }
            return Err(Error::aws(
                "describe ECR repository",
                name,
                crate::aws::describe(&e),
                "check the `ecr-repository` name and that the role may call `ecr:DescribeRepositories`",
            ));
        }
    };
    let repo = out
        .repositories()
        .first()
        .ok_or_else(|| Error::RepositoryNotFound(name.to_string()))?;
    Ok(Repository {
        name: name.to_string(),
        uri: repo.repository_uri().unwrap_or_default().to_string(),
        immutable: repo
            .image_tag_mutability()
            .is_some_and(|m| m.as_str().starts_with("IMMUTABLE")),
    })
}

/// The tags to try for `tag`: itself, then its 7-character prefix when it looks like a full git SHA.
pub fn candidate_tags(tag: &str) -> Vec<String> {
    let mut v = vec![tag.to_string()];
    if tag.len() == 40 && tag.chars().all(|c| c.is_ascii_hexdigit()) {
        v.push(tag[..7].to_string());
    }
    v
}

/// The digest of `tag` in the repository, or `None` when no such tag.
async fn digest_of(
    ecr: &aws_sdk_ecr::Client,
    repo: &str,
    tag: &str,
) -> Result<Option<String>, Error> {
    let res = ecr
        .describe_images()
        .repository_name(repo)
        .image_ids(ImageIdentifier::builder().image_tag(tag).build())
        .send()
        .await;
    match res {
        Ok(out) => Ok(out
            .image_details()
            .first()
            .and_then(|d| d.image_digest())
            .map(str::to_string)),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_image_not_found_exception()) =>
        {
            Ok(None)
        }
        Err(e) => Err(Error::aws(
            "describe image",
            &format!("{repo}:{tag}"),
            crate::aws::describe(&e),
            "check that the role may call `ecr:DescribeImages` on the repository",
        )),
    }
}

/// Find the image by tag (full SHA, then short SHA), or use `expected_digest` (promotion: the image is
/// copied in later). A missing image is an error that lists the newest tags of the repository.
pub async fn resolve(
    ecr: &aws_sdk_ecr::Client,
    repo: &Repository,
    tag: Option<&str>,
    expected_digest: Option<&str>,
) -> Result<Resolved, Error> {
    let registry_uri = repo.uri.clone();
    if let Some(d) = expected_digest {
        return Ok(Resolved {
            tag: tag.map(str::to_string),
            digest: d.to_string(),
            uri: format!("{registry_uri}@{d}"),
        });
    }
    let Some(tag) = tag else {
        return Err(Error::NoImageTag);
    };
    for candidate in candidate_tags(tag) {
        if let Some(digest) = digest_of(ecr, &repo.name, &candidate).await? {
            return Ok(Resolved {
                tag: Some(candidate),
                uri: format!("{registry_uri}@{digest}"),
                digest,
            });
        }
    }
    Err(Error::ImageNotFound {
        repository: repo.name.clone(),
        tag: tag.to_string(),
        recent: recent_tags(ecr, &repo.name).await,
    })
}

/// The newest tags of the repository, newest first (best effort: an error gives an empty list).
pub async fn recent_tags(ecr: &aws_sdk_ecr::Client, repo: &str) -> Vec<String> {
    let mut images: Vec<(f64, Vec<String>)> = Vec::new();
    let mut token: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let res = ecr
            .describe_images()
            .repository_name(repo)
            .filter(
                aws_sdk_ecr::types::DescribeImagesFilter::builder()
                    .tag_status(TagStatus::Tagged)
                    .build(),
            )
            .set_next_token(token.take())
            .send()
            .await;
        let Ok(out) = res else { break };
        for d in out.image_details() {
            let at = d.image_pushed_at().map(|t| t.as_secs_f64()).unwrap_or(0.0);
            images.push((at, d.image_tags().to_vec()));
        }
        match out.next_token() {
            Some(t) => token = Some(t.to_string()),
            None => break,
        }
    }
    images.sort_by(|a, b| b.0.total_cmp(&a.0));
    images
        .into_iter()
        .flat_map(|(_, tags)| tags)
        .take(RECENT_TAGS)
        .collect()
}

/// Tags that would be moved on an immutable repository (checked before any change).
pub async fn conflicting_tags(
    ecr: &aws_sdk_ecr::Client,
    repo: &Repository,
    digest: &str,
    tags: &[String],
) -> Result<Vec<String>, Error> {
    let mut conflicts = Vec::new();
    if !repo.immutable {
        return Ok(conflicts);
    }
    for t in tags {
        if let Some(d) = digest_of(ecr, &repo.name, t).await? {
            if d != digest {
                conflicts.push(t.clone());
            }
        }
    }
    Ok(conflicts)
}

/// Add `tags` to the image `digest`: the manifest is fetched and put back byte for byte, so the digest
/// does not change. Returns a line per tag (`added`, `already there`).
pub async fn add_tags(
    ecr: &aws_sdk_ecr::Client,
    repo: &Repository,
    digest: &str,
    tags: &[String],
) -> Result<Vec<String>, Error> {
    if tags.is_empty() {
        return Ok(Vec::new());
    }
    let res = ecr
        .batch_get_image()
        .repository_name(&repo.name)
        .image_ids(ImageIdentifier::builder().image_digest(digest).build())
        .set_accepted_media_types(Some(
            [
                "application/vnd.docker.distribution.manifest.v2+json",
                "application/vnd.docker.distribution.manifest.list.v2+json",
                "application/vnd.oci.image.manifest.v1+json",
                "application/vnd.oci.image.index.v1+json",
            ]
            .map(String::from)
            .to_vec(),
        ))
        .send()
        .await
        .map_err(|e| {
            Error::aws(
                "get image manifest",
                &format!("{}@{digest}", repo.name),
                crate::aws::describe(&e),
                "check that the role may call `ecr:BatchGetImage`",
            )
        })?;
    let image = res.images().first().ok_or_else(|| {
        Error::aws(
            "get image manifest",
            &format!("{}@{digest}", repo.name),
            "no image returned".into(),
            "check that the image still exists (a lifecycle policy may have expired it)",
        )
    })?;
    let manifest = image.image_manifest().unwrap_or_default().to_string();
    let media_type = image.image_manifest_media_type().map(str::to_string);
    let mut lines = Vec::new();
    for tag in tags {
        let res = ecr
            .put_image()
            .repository_name(&repo.name)
            .image_manifest(&manifest)
            .set_image_manifest_media_type(media_type.clone())
            .image_digest(digest)
            .image_tag(tag)
            .send()
            .await;
        match res {
            Ok(_) => lines.push(format!("{tag}: added")),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_image_already_exists_exception()) =>
            {
                lines.push(format!("{tag}: already there"))
            }
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_image_tag_already_exists_exception()) =>
            {
                return Err(Error::TagImmutable {
                    repository: repo.name.clone(),
                    tag: tag.clone(),
                })
            }
            Err(e) => {
                return Err(Error::aws(
                    "tag image",
                    &format!("{}:{tag}", repo.name),
                    crate::aws::describe(&e),
                    "check that the role may call `ecr:PutImage` on the repository",
                ))
            }
        }
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_sha_fallback_only_for_full_shas() {
        assert_eq!(
            candidate_tags("0123456789abcdef0123456789abcdef01234567"),
            ["0123456789abcdef0123456789abcdef01234567", "0123456"]
        );
        assert_eq!(candidate_tags("v1.2.3"), ["v1.2.3"]);
        assert_eq!(candidate_tags("0123456"), ["0123456"]);
    }
}
