//! Tagging inside one repository: the manifest is read with `BatchGetImage` (asking for every manifest
//! type, so ECR returns it as stored) and put back byte for byte under each new tag, so the digest never
//! changes. A tag already on the image is done (`ImageAlreadyExistsException`); a tag an immutable
//! repository holds for another image is an error (`ImageTagAlreadyExistsException`).
//!
//! APIs: ECR `BatchGetImage`, `PutImage`.

use aws_sdk_ecr::types::{Image, ImageIdentifier};

use super::error::Error;
use super::resolve::Repository;
use crate::registry::{ACCEPTED, DOCKER_MANIFEST};

/// How a tag ended up on the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Tagged {
    Added,
    AlreadyThere,
}

impl Tagged {
    /// The spelling in the log and the report.
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Tagged::Added => "added",
            Tagged::AlreadyThere => "already there",
        }
    }
}

/// A manifest as ECR stores it, ready to be put under more tags.
#[derive(Debug, Clone)]
pub(super) struct StoredManifest {
    pub(super) digest: String,
    pub(super) manifest: String,
    pub(super) media_type: String,
}

/// `BatchGetImage` of one image (one per call: the reply's `imageId` is not always the reference asked
/// for); `None` when the repository does not have it.
pub(super) async fn get_manifest(
    ecr: &aws_sdk_ecr::Client,
    repo: &Repository,
    id: ImageIdentifier,
    object: &str,
) -> Result<Option<StoredManifest>, Error> {
    let out = ecr
        .batch_get_image()
        .repository_name(&repo.name)
        .set_registry_id(repo.owner())
        .image_ids(id)
        .set_accepted_media_types(Some(ACCEPTED.iter().map(|s| s.to_string()).collect()))
        .send()
        .await
        .map_err(|e| Error::Aws {
            verb: "get image manifest",
            object: object.to_string(),
            detail: crate::aws::describe(&e),
            hint: "check that the role may call `ecr:BatchGetImage`",
        })?;
    let image = out.images().first().map(stored);
    match image {
        // ECR's digest goes into image URIs and registry paths: only the canonical form.
        Some(i) if !i.digest.is_empty() && !crate::registry::is_digest(&i.digest) => Err(
            super::error::not_a_digest("get image manifest", object.to_string(), &i.digest),
        ),
        i => Ok(i),
    }
}

fn stored(image: &Image) -> StoredManifest {
    let manifest = image.image_manifest().unwrap_or_default().to_string();
    // ECR names the type; when it does not, the manifest's own `mediaType` does (schema 2 has one).
    let media_type = image
        .image_manifest_media_type()
        .map(str::to_string)
        .or_else(|| {
            serde_json::from_str::<serde_json::Value>(&manifest)
                .ok()
                .and_then(|v| v.get("mediaType")?.as_str().map(str::to_string))
        })
        .unwrap_or_else(|| DOCKER_MANIFEST.to_string());
    StoredManifest {
        digest: image
            .image_id()
            .and_then(|id| id.image_digest())
            .unwrap_or_default()
            .to_string(),
        manifest,
        media_type,
    }
}

/// `PutImage` the manifest under each tag, in order.
pub(super) async fn put_tags(
    ecr: &aws_sdk_ecr::Client,
    repo: &Repository,
    image: &StoredManifest,
    tags: &[String],
) -> Result<Vec<(String, Tagged)>, Error> {
    let mut done = Vec::new();
    for tag in tags {
        let res = ecr
            .put_image()
            .repository_name(&repo.name)
            .set_registry_id(repo.owner())
            .image_manifest(&image.manifest)
            .image_manifest_media_type(&image.media_type)
            .set_image_digest(Some(image.digest.clone()).filter(|d| !d.is_empty()))
            .image_tag(tag)
            .send()
            .await;
        match res {
            Ok(_) => done.push((tag.clone(), Tagged::Added)),
            Err(e) => match e.as_service_error() {
                Some(se) if se.is_image_already_exists_exception() => {
                    done.push((tag.clone(), Tagged::AlreadyThere))
                }
                Some(se) if se.is_image_tag_already_exists_exception() => {
                    return Err(Error::TagTaken {
                        repo: repo.name.clone(),
                        tag: tag.clone(),
                    })
                }
                _ => {
                    return Err(Error::Aws {
                        verb: "tag image",
                        object: format!("{}:{tag}", repo.name),
                        detail: crate::aws::describe(&e),
                        hint: "check that the role may call `ecr:PutImage` on the repository",
                    })
                }
            },
        }
    }
    Ok(done)
}

/// Add `tags` to the image `digest` in its own repository. Returns a line per tag (`added`, `already
/// there`).
pub async fn add_tags(
    ecr: &aws_sdk_ecr::Client,
    repo: &Repository,
    digest: &str,
    tags: &[String],
) -> Result<Vec<String>, Error> {
    if tags.is_empty() {
        return Ok(Vec::new());
    }
    let object = format!("{}@{digest}", repo.name);
    let id = ImageIdentifier::builder().image_digest(digest).build();
    let Some(image) = get_manifest(ecr, repo, id, &object).await? else {
        return Err(Error::Aws {
            verb: "get image manifest",
            object,
            detail: "no image returned".into(),
            hint: "check that the image still exists (a lifecycle policy may have expired it)",
        });
    };
    let image = StoredManifest {
        digest: digest.to_string(),
        ..image
    };
    Ok(put_tags(ecr, repo, &image, tags)
        .await?
        .into_iter()
        .map(|(tag, how)| format!("{tag}: {}", how.as_str()))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::steps::image::{mock_ecr, Mutability};
    use aws_sdk_ecr::operation::put_image::{PutImageError, PutImageOutput};
    use aws_sdk_ecr::types::error::{ImageAlreadyExistsException, ImageTagAlreadyExistsException};
    use aws_smithy_mocks::mock;

    fn repo() -> Repository {
        Repository {
            name: "app".into(),
            registry_id: "123456789012".into(),
            uri: "123456789012.dkr.ecr.us-east-1.amazonaws.com/app".into(),
            mutability: Mutability::Immutable,
        }
    }

    fn image() -> StoredManifest {
        StoredManifest {
            digest: "sha256:ab".into(),
            manifest: "{}".into(),
            media_type: DOCKER_MANIFEST.into(),
        }
    }

    #[tokio::test]
    async fn no_tags_means_no_request() {
        let get = mock!(aws_sdk_ecr::Client::batch_get_image).then_error(|| {
            aws_sdk_ecr::operation::batch_get_image::BatchGetImageError::unhandled("called")
        });
        let put =
            mock!(aws_sdk_ecr::Client::put_image).then_output(|| PutImageOutput::builder().build());
        let ecr = mock_ecr(&[&get, &put]);
        assert!(add_tags(&ecr, &repo(), "sha256:ab", &[])
            .await
            .unwrap()
            .is_empty());
        assert_eq!(get.num_calls() + put.num_calls(), 0);
    }

    /// `PutImage` answers: added, already there, then refused by an immutable repository.
    fn put_rule() -> aws_smithy_mocks::Rule {
        mock!(aws_sdk_ecr::Client::put_image)
            .sequence()
            .output(|| PutImageOutput::builder().build())
            .error(|| {
                PutImageError::ImageAlreadyExistsException(
                    ImageAlreadyExistsException::builder().build(),
                )
            })
            .error(|| {
                PutImageError::ImageTagAlreadyExistsException(
                    ImageTagAlreadyExistsException::builder().build(),
                )
            })
            .build()
    }

    #[tokio::test]
    async fn an_existing_tag_is_done_and_an_immutable_one_stops_the_tagging() {
        let tags: Vec<String> = ["new", "same", "taken", "never"].map(String::from).to_vec();

        let put = put_rule();
        let done = put_tags(&mock_ecr(&[&put]), &repo(), &image(), &tags[..2])
            .await
            .unwrap();
        assert_eq!(
            done,
            [
                ("new".to_string(), Tagged::Added),
                ("same".to_string(), Tagged::AlreadyThere)
            ]
        );

        let put = put_rule();
        let err = put_tags(&mock_ecr(&[&put]), &repo(), &image(), &tags)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, Error::TagTaken { tag, .. } if tag == "taken"),
            "{err}"
        );
        assert_eq!(put.num_calls(), 3, "no tag is tried after the refused one");
    }
}
