//! Finding images: a repository as ECR describes it, a tag's digest (the git SHA, then its 7-character
//! short form), the newest tags of a repository for a "not found" message, and the tags an immutable
//! repository would refuse to move. Read-only.
//!
//! APIs: ECR `DescribeRepositories`, `DescribeImages`.

use aws_sdk_ecr::types::{DescribeImagesFilter, ImageIdentifier, ImageTagMutability, TagStatus};
use serde::Serialize;

use super::error::{Error, Role};

/// How many of the newest tags to list when the wanted one is missing.
pub(super) const NEWEST_TAGS: usize = 10;
/// Bound on the pages read when listing the newest tags.
const MAX_PAGES: usize = 5;
/// Images per `DescribeImages` page (the API's maximum).
const PAGE_SIZE: i32 = 1000;

/// A repository, as ECR describes it.
#[derive(Debug, Clone, Serialize)]
pub struct Repository {
    pub name: String,
    /// The account that owns it (another account's, for a cross-account promotion).
    pub registry_id: String,
    /// `<account>.dkr.ecr.<region>.amazonaws.com/<name>`.
    pub uri: String,
    /// Which tags ECR refuses to move.
    pub mutability: Mutability,
}

/// Which tags of a repository cannot be moved, from its tag mutability and exclusion filters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mutability {
    /// Every tag can be moved.
    Mutable,
    /// No tag can be moved.
    Immutable,
    /// Every tag except those matching a filter cannot be moved (`IMMUTABLE_WITH_EXCLUSION`).
    ImmutableExcept(Vec<String>),
    /// Only tags matching a filter cannot be moved (`MUTABLE_WITH_EXCLUSION`).
    MutableExcept(Vec<String>),
}

impl Mutability {
    fn of(repo: &aws_sdk_ecr::types::Repository) -> Self {
        let filters = || {
            repo.image_tag_mutability_exclusion_filters()
                .iter()
                .map(|f| f.filter().to_string())
                .collect()
        };
        match repo.image_tag_mutability() {
            Some(ImageTagMutability::Immutable) => Mutability::Immutable,
            Some(ImageTagMutability::ImmutableWithExclusion) => {
                Mutability::ImmutableExcept(filters())
            }
            Some(ImageTagMutability::MutableWithExclusion) => Mutability::MutableExcept(filters()),
            _ => Mutability::Mutable,
        }
    }

    /// Does ECR refuse to move `tag`?
    pub fn is_immutable(&self, tag: &str) -> bool {
        let matches = |filters: &[String]| filters.iter().any(|f| wildcard_match(f, tag));
        match self {
            Mutability::Mutable => false,
            Mutability::Immutable => true,
            Mutability::ImmutableExcept(filters) => !matches(filters),
            Mutability::MutableExcept(filters) => matches(filters),
        }
    }
}

/// ECR's exclusion filters: `*` stands for any run of characters; everything else is literal.
fn wildcard_match(pattern: &str, tag: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = tag.strip_prefix(first) else {
        return false;
    };
    let middle: Vec<&str> = parts.collect();
    let Some((last, middle)) = middle.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

impl Repository {
    /// The owning account for a request, when ECR named one.
    pub(super) fn owner(&self) -> Option<String> {
        Some(self.registry_id.clone()).filter(|id| !id.is_empty())
    }
}

/// The image a tag or digest resolved to in one repository.
#[derive(Debug, Clone, Serialize)]
pub struct Resolved {
    /// The tag that matched (the full or the short SHA); `None` when the digest was given.
    pub tag: Option<String>,
    /// `sha256:...`.
    pub digest: String,
    /// `REGISTRY/REPO@sha256:...`.
    pub uri: String,
}

/// Look up the environment's own repository.
pub async fn repository(ecr: &aws_sdk_ecr::Client, name: &str) -> Result<Repository, Error> {
    lookup(ecr, name, None, Role::Deploy).await
}

/// Look up a repository, in another account when `registry_id` says so.
pub(super) async fn lookup(
    ecr: &aws_sdk_ecr::Client,
    name: &str,
    registry_id: Option<&str>,
    role: Role,
) -> Result<Repository, Error> {
    let not_found = |detail: String| Error::RepositoryNotFound {
        repo: name.to_string(),
        detail,
        role,
    };
    let out = ecr
        .describe_repositories()
        .repository_names(name)
        .set_registry_id(registry_id.map(str::to_string))
        .send()
        .await
        .map_err(|e| match e.as_service_error() {
            // A plain deploy has always named only the code; a promotion adds ECR's message.
            Some(se) if se.is_repository_not_found_exception() => not_found(match role {
                Role::Deploy => "RepositoryNotFoundException".into(),
                Role::Source | Role::Target => crate::aws::describe(&e),
            }),
            _ => Error::Aws {
                verb: "describe ECR repository",
                object: name.to_string(),
                detail: crate::aws::describe(&e),
                hint: "check the `ecr-repository` name and that the role may call `ecr:DescribeRepositories`",
            },
        })?;
    let repo = out.repositories().first().ok_or_else(|| {
        not_found(match role {
            Role::Deploy => "RepositoryNotFoundException".into(),
            Role::Source | Role::Target => "RepositoryNotFoundException: not in the reply".into(),
        })
    })?;
    Ok(Repository {
        name: name.to_string(),
        registry_id: repo.registry_id().unwrap_or_default().to_string(),
        uri: repo.repository_uri().unwrap_or_default().to_string(),
        mutability: Mutability::of(repo),
    })
}

/// `ACCOUNT.dkr.ecr.REGION.amazonaws.com/name` -> (registry id, region, name); a plain name -> (None, None, name).
pub(super) fn split_repository(spec: &str) -> (Option<String>, Option<String>, String) {
    if let Some((host, name)) = spec.split_once('/') {
        let parts: Vec<&str> = host.split('.').collect();
        if parts.len() >= 6 && parts[1] == "dkr" && parts[2] == "ecr" {
            return (
                Some(parts[0].to_string()),
                Some(parts[3].to_string()),
                name.to_string(),
            );
        }
    }
    (None, None, spec.to_string())
}

/// The tags to try for `tag`: itself, then its 7-character prefix when it looks like a full git SHA.
fn candidate_tags(tag: &str) -> Vec<String> {
    let mut v = vec![tag.to_string()];
    if tag.len() == 40 && tag.chars().all(|c| c.is_ascii_hexdigit()) {
        v.push(tag[..7].to_string());
    }
    v
}

/// The digest of `tag` in the repository, or `None` when no such tag.
pub(super) async fn digest_of(
    ecr: &aws_sdk_ecr::Client,
    repo: &Repository,
    tag: &str,
) -> Result<Option<String>, Error> {
    let res = ecr
        .describe_images()
        .repository_name(&repo.name)
        .set_registry_id(repo.owner())
        .image_ids(ImageIdentifier::builder().image_tag(tag).build())
        .send()
        .await;
    match res {
        Ok(out) => match out.image_details().first().and_then(|d| d.image_digest()) {
            Some(d) if !crate::registry::is_digest(d) => Err(super::error::not_a_digest(
                "describe image",
                format!("{}:{tag}", repo.name),
                d,
            )),
            d => Ok(d.map(str::to_string)),
        },
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_image_not_found_exception()) =>
        {
            Ok(None)
        }
        Err(e) => Err(Error::Aws {
            verb: "describe image",
            object: format!("{}:{tag}", repo.name),
            detail: crate::aws::describe(&e),
            hint: "check that the role may call `ecr:DescribeImages` on the repository",
        }),
    }
}

/// Whether the repository still has the image `digest` (read-only: `DescribeImages` by digest).
pub async fn has_digest(
    ecr: &aws_sdk_ecr::Client,
    repo: &Repository,
    digest: &str,
) -> Result<bool, Error> {
    let res = ecr
        .describe_images()
        .repository_name(&repo.name)
        .set_registry_id(repo.owner())
        .image_ids(ImageIdentifier::builder().image_digest(digest).build())
        .send()
        .await;
    match res {
        Ok(out) => Ok(out
            .image_details()
            .iter()
            .any(|d| d.image_digest() == Some(digest))),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_image_not_found_exception()) =>
        {
            Ok(false)
        }
        Err(e) => Err(Error::Aws {
            verb: "describe image",
            object: format!("{}@{digest}", repo.name),
            detail: crate::aws::describe(&e),
            hint: "check that the role may call `ecr:DescribeImages` on the repository",
        }),
    }
}

/// Find the image by tag (full SHA, then short SHA), or use `expected_digest` (an image a promotion or an
/// archive push brings in later). A missing image is an error that lists the newest tags of the
/// repository.
pub async fn resolve(
    ecr: &aws_sdk_ecr::Client,
    repo: &Repository,
    tag: Option<&str>,
    expected_digest: Option<&str>,
) -> Result<Resolved, Error> {
    if let Some(d) = expected_digest {
        return Ok(Resolved {
            tag: tag.map(str::to_string),
            digest: d.to_string(),
            uri: format!("{}@{d}", repo.uri),
        });
    }
    let Some(tag) = tag else {
        return Err(Error::NoImageTag);
    };
    for candidate in candidate_tags(tag) {
        if let Some(digest) = digest_of(ecr, repo, &candidate).await? {
            return Ok(Resolved {
                tag: Some(candidate),
                uri: format!("{}@{digest}", repo.uri),
                digest,
            });
        }
    }
    Err(Error::ImageNotFound {
        repo: repo.name.clone(),
        tag: tag.to_string(),
        newest: newest_tags(ecr, repo).await,
        role: Role::Deploy,
    })
}

/// The newest tags of the repository, newest first. Best effort, for an error message: a failed page
/// ends the listing with what was read so far.
pub(super) async fn newest_tags(ecr: &aws_sdk_ecr::Client, repo: &Repository) -> Vec<String> {
    let mut pages = ecr
        .describe_images()
        .repository_name(&repo.name)
        .set_registry_id(repo.owner())
        .filter(
            DescribeImagesFilter::builder()
                .tag_status(TagStatus::Tagged)
                .build(),
        )
        .into_paginator()
        .page_size(PAGE_SIZE)
        .send();
    let mut images: Vec<(Option<i128>, Vec<String>)> = Vec::new();
    for _ in 0..MAX_PAGES {
        let Some(Ok(page)) = pages.next().await else {
            break;
        };
        for d in page.image_details() {
            let pushed = d.image_pushed_at().map(|t| t.as_nanos());
            images.push((pushed, d.image_tags().to_vec()));
        }
    }
    images.sort_by_key(|(pushed, _)| std::cmp::Reverse(*pushed));
    images
        .into_iter()
        .flat_map(|(_, tags)| tags)
        .take(NEWEST_TAGS)
        .collect()
}

/// Tags of `tags` that ECR will not move and that name another image than `digest`, with the digest each
/// names. Read-only, so a conflict is found before any change.
pub(super) async fn moved_tags(
    ecr: &aws_sdk_ecr::Client,
    repo: &Repository,
    digest: &str,
    tags: &[String],
) -> Result<Vec<(String, String)>, Error> {
    let mut moved = Vec::new();
    for t in tags.iter().filter(|t| repo.mutability.is_immutable(t)) {
        if let Some(d) = digest_of(ecr, repo, t).await? {
            if d != digest {
                moved.push((t.clone(), d));
            }
        }
    }
    Ok(moved)
}

/// Fail when extra tags of a plain deploy would have to move in an immutable repository.
pub async fn check_tags_free(
    ecr: &aws_sdk_ecr::Client,
    repo: &Repository,
    digest: &str,
    tags: &[String],
) -> Result<(), Error> {
    let moved = moved_tags(ecr, repo, digest, tags).await?;
    if moved.is_empty() {
        return Ok(());
    }
    Err(Error::TagTaken {
        repo: repo.name.clone(),
        tag: moved
            .into_iter()
            .map(|(t, _)| t)
            .collect::<Vec<_>>()
            .join(", "),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An ECR (or something answering as one) that returns a digest which is not a digest: refused before
    /// it becomes part of an image URI.
    #[tokio::test]
    async fn a_hostile_ecr_digest_is_refused() {
        use aws_sdk_ecr::types::ImageDetail;
        use aws_smithy_mocks::{mock, mock_client, RuleMode};
        let rule = mock!(aws_sdk_ecr::Client::describe_images).then_output(|| {
            aws_sdk_ecr::operation::describe_images::DescribeImagesOutput::builder()
                .image_details(
                    ImageDetail::builder()
                        .image_digest("sha256:../../evil@x")
                        .build(),
                )
                .build()
        });
        let ecr = mock_client!(aws_sdk_ecr, RuleMode::Sequential, [&rule]);
        let repo = Repository {
            name: "app".into(),
            registry_id: String::new(),
            uri: "1.dkr.ecr.us-east-1.amazonaws.com/app".into(),
            mutability: Mutability::Mutable,
        };
        let err = digest_of(&ecr, &repo, "v1").await.unwrap_err().to_string();
        assert!(
            err.contains("not a digest of the form `sha256:` + 64 lowercase hex"),
            "{err}"
        );
    }

    #[test]
    fn short_sha_fallback_only_for_full_shas() {
        assert_eq!(
            candidate_tags("0123456789abcdef0123456789abcdef01234567"),
            ["0123456789abcdef0123456789abcdef01234567", "0123456"]
        );
        assert_eq!(candidate_tags("v1.2.3"), ["v1.2.3"]);
        assert_eq!(candidate_tags("0123456"), ["0123456"]);
    }

    #[test]
    fn repository_uris_split_into_account_region_name() {
        assert_eq!(
            split_repository("123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/app"),
            (
                Some("123456789012".into()),
                Some("eu-west-1".into()),
                "team/app".into()
            )
        );
        assert_eq!(
            split_repository("team/app"),
            (None, None, "team/app".into())
        );
        assert_eq!(split_repository("app"), (None, None, "app".into()));
    }

    fn details(tags: &[(&str, i64)]) -> Vec<aws_sdk_ecr::types::ImageDetail> {
        tags.iter()
            .map(|(tag, at)| {
                aws_sdk_ecr::types::ImageDetail::builder()
                    .image_tags(*tag)
                    .image_pushed_at(aws_smithy_types::DateTime::from_secs(*at))
                    .build()
            })
            .collect()
    }

    fn repo(mutability: Mutability) -> Repository {
        Repository {
            name: "app".into(),
            registry_id: "123456789012".into(),
            uri: "123456789012.dkr.ecr.us-east-1.amazonaws.com/app".into(),
            mutability,
        }
    }

    #[tokio::test]
    async fn newest_tags_read_every_page_and_sort_by_push_time() {
        use aws_sdk_ecr::operation::describe_images::DescribeImagesOutput;
        let rule = aws_smithy_mocks::mock!(aws_sdk_ecr::Client::describe_images)
            .sequence()
            .output(|| {
                DescribeImagesOutput::builder()
                    .set_image_details(Some(details(&[("old", 1), ("newest", 9)])))
                    .next_token("page-2")
                    .build()
            })
            .output(|| {
                DescribeImagesOutput::builder()
                    .set_image_details(Some(details(&[("middle", 5)])))
                    .build()
            })
            .build();
        let ecr = crate::steps::image::mock_ecr(&[&rule]);
        let tags = newest_tags(&ecr, &repo(Mutability::Mutable)).await;
        assert_eq!(tags, ["newest", "middle", "old"]);
        assert_eq!(rule.num_calls(), 2);
    }

    #[tokio::test]
    async fn a_mutable_repository_is_not_asked_about_its_tags() {
        use aws_sdk_ecr::operation::describe_images::DescribeImagesOutput;
        let rule = aws_smithy_mocks::mock!(aws_sdk_ecr::Client::describe_images)
            .then_output(|| DescribeImagesOutput::builder().build());
        let ecr = crate::steps::image::mock_ecr(&[&rule]);
        let tags = ["prod-current".to_string()];
        check_tags_free(&ecr, &repo(Mutability::Mutable), "sha256:ab", &tags)
            .await
            .unwrap();
        assert_eq!(rule.num_calls(), 0);
    }

    #[test]
    fn exclusion_filters_decide_per_tag() {
        let cases = [
            ("latest", "latest", true),
            ("latest", "latest2", false),
            ("prod-*", "prod-current", true),
            ("prod-*", "stage-current", false),
            ("*-current", "prod-current", true),
            ("*", "anything", true),
            ("a*b*c", "aXbYc", true),
            ("a*b*c", "aXcYb", false),
            ("ab*ba", "aba", false),
        ];
        for (pattern, tag, want) in cases {
            assert_eq!(wildcard_match(pattern, tag), want, "{pattern} ~ {tag}");
        }
        let keep = Mutability::ImmutableExcept(vec!["prod-*".into()]);
        assert!(keep.is_immutable("abc123"));
        assert!(!keep.is_immutable("prod-current"));
        let pin = Mutability::MutableExcept(vec!["v*".into()]);
        assert!(pin.is_immutable("v1.2.3"));
        assert!(!pin.is_immutable("prod-current"));
        assert!(Mutability::Immutable.is_immutable("x"));
        assert!(!Mutability::Mutable.is_immutable("x"));
    }
}
