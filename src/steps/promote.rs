//! Promotion (issue #6): resolve the tested image in the source environment's repository and bring it into
//! the target repository by digest (the manifest byte for byte, so what ran on stage is exactly what runs in
//! prod), under the tag plus `extra-tags`; or push an OCI layout / `docker save` archive from the workspace.
//!
//! Same repository: a retag with ECR `BatchGetImage` + `PutImage`. Other repository (same or other account
//! or region): the OCI distribution API of the registries through [`crate::registry`], authenticated with
//! ECR `GetAuthorizationToken`. Read-only APIs in [`resolve_source`]: `DescribeRepositories`,
//! `GetAuthorizationToken`, `BatchGetImage`, `DescribeImages`, registry manifest GETs/HEADs. Writes only in
//! [`copy`]: `PutImage` or registry blob uploads and manifest PUTs.

use std::fmt::Write as _;
use std::sync::Arc;

use aws_sdk_ecr::types::{ImageIdentifier, ImageTagMutability, TagStatus};
use base64::Engine;
use serde::Serialize;
use tokio::time::Instant;

use crate::config::{Command, Config};
use crate::github::commands;
use crate::registry::{self, archive::Archive, CopyStats, Manifest, Registry, Source, Target};
use crate::report::section::md_escape;
use crate::report::Report;
use crate::steps::Clients;

/// Media types asked of `BatchGetImage`, so ECR hands back the manifest as stored (no conversion).
const ACCEPTED: [&str; 4] = [
    registry::OCI_INDEX,
    registry::DOCKER_LIST,
    registry::OCI_MANIFEST,
    registry::DOCKER_MANIFEST,
];
/// Tags listed when the asked-for tag is missing.
const NEWEST_TAGS: usize = 10;

/// Errors of the promotion.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An ECR API call failed.
    #[error("failed to {verb} `{object}`: {detail}")]
    Ecr {
        /// What was being done.
        verb: &'static str,
        /// The repository or image.
        object: String,
        /// AWS code and message.
        detail: String,
    },
    /// A repository does not exist.
    #[error("failed to find ECR repository `{repo}`: {detail}")]
    RepositoryNotFound {
        /// The repository.
        repo: String,
        /// AWS code and message.
        detail: String,
        /// `source` or `target`.
        role: &'static str,
    },
    /// The tag to promote is not in the source repository.
    #[error("failed to find image `{repo}:{tag}` in the source repository: no such tag (newest tags: {})", list_or_none(.newest))]
    TagNotFound {
        /// Source repository.
        repo: String,
        /// The tag asked for.
        tag: String,
        /// The newest tags there, newest first.
        newest: Vec<String>,
    },
    /// An immutable target repository already has the tag on another image.
    #[error("failed to tag `{repo}:{tag}`: ImageTagAlreadyExistsException: the repository is immutable and the tag points at {existing}, not {wanted}")]
    TagImmutable {
        /// Target repository.
        repo: String,
        /// The tag.
        tag: String,
        /// The digest it has.
        existing: String,
        /// The digest being promoted.
        wanted: String,
    },
    /// The config does not say what to promote.
    #[error("failed to resolve the image to promote: {0}")]
    NoSource(&'static str),
    /// `registry-url` is not a URL.
    #[error("invalid `registry-url` `{url}`: {message}")]
    RegistryUrl {
        /// The value.
        url: String,
        /// The parse error.
        message: String,
    },
    /// Registry traffic failed.
    #[error(transparent)]
    Registry(#[from] registry::Error),
}

fn list_or_none(v: &[String]) -> String {
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

impl crate::Diagnose for Error {
    fn hint(&self) -> String {
        match self {
            Error::Ecr { .. } => "check the role's ECR permissions (ecr:DescribeRepositories, ecr:GetAuthorizationToken, ecr:BatchGetImage, ecr:DescribeImages, ecr:PutImage) and the region".into(),
            Error::RepositoryNotFound { role: "source", .. } => "check `ecr-repository` of the source environment (`promote-from` / `source-environment`) and its region".into(),
            Error::RepositoryNotFound { .. } => "create the target repository (or fix `ecr-repository` of the environment) before promoting".into(),
            Error::TagNotFound { .. } => "promote a tag that was deployed to the source environment (the git SHA of that deploy); the newest tags are listed above".into(),
            Error::TagImmutable { .. } => "an immutable tag cannot move: promote a new tag, or remove it from `extra-tags`".into(),
            Error::NoSource(_) => "set `command: promote` with `source-environment` (or `promote-from` in the environments file), or `image-archive`".into(),
            Error::RegistryUrl { .. } => "set `registry-url` to the registry's base URL, e.g. `https://123456789012.dkr.ecr.us-east-1.amazonaws.com`".into(),
            Error::Registry(e) => e.hint(),
        }
    }
}

/// What `copy` will do.
#[derive(Debug)]
enum Plan {
    /// Same repository: `PutImage` the manifest under more tags.
    Retag {
        manifest: String,
        media_type: String,
    },
    /// Registry-to-registry (or archive-to-registry) copy.
    Copy(Box<CopyPlan>),
}

/// Registry-to-registry (or archive-to-registry) copy.
#[derive(Debug)]
struct CopyPlan {
    source: Source,
    target: Target,
    top: Manifest,
}

/// The image to bring into the target repository (resolved read-only).
#[derive(Debug)]
pub struct SourceImage {
    /// Its manifest digest (`sha256:...`): what the target will run.
    pub digest: String,
    /// Where it comes from (`REPO_URI@DIGEST`, or the archive path).
    pub uri: String,
    /// The target repository URI.
    pub target_uri: String,
    /// The tags it gets in the target (the image tag first).
    pub tags: Vec<String>,
    /// Registry traffic settings (tests and benchmarks turn mounting off).
    pub options: registry::Options,
    plan: Plan,
}

/// Outcome of the promotion, for outputs and the summary.
#[derive(Debug, Default, Serialize)]
pub struct PromoteReport {
    /// `retag`, `copy` or `archive`.
    pub mode: String,
    /// The source image.
    pub source_image_uri: String,
    /// The target repository.
    pub target_uri: String,
    /// The digest (same in source and target).
    pub digest: String,
    /// Tags the image gets.
    pub tags: Vec<String>,
    /// What the copy moved (once done).
    pub stats: Option<CopyStats>,
    /// Time of the copy.
    pub seconds: f64,
}

impl crate::report::section::Section for PromoteReport {
    fn outputs(&self, out: &mut Vec<(String, String)>) {
        out.push(("source-image-uri".into(), self.source_image_uri.clone()));
        out.push(("promoted-digest".into(), self.digest.clone()));
        if let Some(s) = &self.stats {
            out.push(("blobs-copied".into(), s.blobs_copied.to_string()));
            out.push(("bytes-copied".into(), s.bytes_copied.to_string()));
        }
    }

    fn summary(&self, md: &mut String) {
        let title = if self.mode == "archive" {
            "Image push"
        } else {
            "Image promotion"
        };
        let _ = writeln!(md, "### {title}\n\n| | |\n|---|---|");
        let _ = writeln!(md, "| source | `{}` |", md_escape(&self.source_image_uri));
        let _ = writeln!(
            md,
            "| target | `{}` ({}) |",
            md_escape(&self.target_uri),
            self.tags
                .iter()
                .map(|t| format!("`{}`", md_escape(t)))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let _ = writeln!(md, "| digest | `{}` |", self.digest);
        let _ = writeln!(md, "| mode | {} |", self.mode);
        match &self.stats {
            Some(s) => {
                let _ = writeln!(
                    md,
                    "| blobs | {} copied, {} mounted, {} already there |",
                    s.blobs_copied, s.blobs_mounted, s.blobs_skipped
                );
                let _ = writeln!(md, "| bytes copied | {} |", human_bytes(s.bytes_copied));
                let _ = writeln!(
                    md,
                    "| manifests | {} written, {} already there |",
                    s.manifests_put, s.manifests_skipped
                );
                let _ = writeln!(md, "| time | {:.1} s |", self.seconds);
            }
            None => {
                let _ = writeln!(md, "| copy | not run |");
            }
        }
        md.push('\n');
    }
}

/// `12.3 MiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// A repository as ECR describes it.
struct Repo {
    name: String,
    registry_id: String,
    uri: String,
    immutable: bool,
}

/// `ACCOUNT.dkr.ecr.REGION.amazonaws.com/name` -> (registry id, region, name); a plain name -> (None, None, name).
fn split_repository(spec: &str) -> (Option<String>, Option<String>, String) {
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

async fn describe_repo(
    ecr: &aws_sdk_ecr::Client,
    name: &str,
    registry_id: Option<&str>,
    role: &'static str,
) -> Result<Repo, Error> {
    let out = ecr
        .describe_repositories()
        .repository_names(name)
        .set_registry_id(registry_id.map(str::to_string))
        .send()
        .await
        .map_err(|e| {
            let detail = crate::aws::describe(&e);
            match e.as_service_error() {
                Some(se) if se.is_repository_not_found_exception() => Error::RepositoryNotFound {
                    repo: name.to_string(),
                    detail,
                    role,
                },
                _ => Error::Ecr {
                    verb: "describe ECR repository",
                    object: name.to_string(),
                    detail,
                },
            }
        })?;
    let r = out
        .repositories()
        .first()
        .ok_or_else(|| Error::RepositoryNotFound {
            repo: name.to_string(),
            detail: "RepositoryNotFoundException: not in the reply".into(),
            role,
        })?;
    Ok(Repo {
        name: name.to_string(),
        registry_id: r.registry_id().unwrap_or_default().to_string(),
        uri: r.repository_uri().unwrap_or_default().to_string(),
        immutable: r.image_tag_mutability() == Some(&ImageTagMutability::Immutable),
    })
}

/// A registry client for an ECR repository: `GetAuthorizationToken` (masked at once), base URL from the
/// repository URI unless `registry-url` overrides it.
async fn registry_for(
    ecr: &aws_sdk_ecr::Client,
    repo: &Repo,
    override_url: Option<&url::Url>,
    options: &registry::Options,
) -> Result<Registry, Error> {
    let out = ecr
        .get_authorization_token()
        .send()
        .await
        .map_err(|e| Error::Ecr {
            verb: "get an ECR authorization token for",
            object: repo.uri.clone(),
            detail: crate::aws::describe(&e),
        })?;
    let token = out
        .authorization_data()
        .first()
        .and_then(|d| d.authorization_token())
        .map(str::to_string);
    if let Some(t) = &token {
        // Both the token and the password inside it are secrets; mask them before anything can print them.
        commands::mask(t);
        if let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(t) {
            if let Some((_, password)) = String::from_utf8_lossy(&decoded).split_once(':') {
                commands::mask(password);
            }
        }
    }
    let base = match override_url {
        Some(u) => u.clone(),
        None => {
            let host = repo.uri.split('/').next().unwrap_or_default();
            url::Url::parse(&format!("https://{host}")).map_err(|e| Error::RegistryUrl {
                url: host.to_string(),
                message: e.to_string(),
            })?
        }
    };
    Ok(Registry::new(base, token.as_deref(), options)?)
}

/// The newest tags of an ECR repository (one page, newest first).
async fn newest_tags(ecr: &aws_sdk_ecr::Client, repo: &Repo) -> Vec<String> {
    let out = ecr
        .describe_images()
        .repository_name(&repo.name)
        .registry_id(&repo.registry_id)
        .filter(
            aws_sdk_ecr::types::DescribeImagesFilter::builder()
                .tag_status(TagStatus::Tagged)
                .build(),
        )
        .max_results(1000)
        .send()
        .await;
    let Ok(out) = out else { return Vec::new() };
    let mut images: Vec<_> = out.image_details().to_vec();
    images.sort_by_key(|d| std::cmp::Reverse(d.image_pushed_at().map(|t| t.as_nanos())));
    images
        .iter()
        .flat_map(|d| d.image_tags().to_vec())
        .take(NEWEST_TAGS)
        .collect()
}

/// The image tag and extra tags, in order, without repeats.
fn target_tags(cfg: &Config) -> Result<Vec<String>, Error> {
    let tag = cfg
        .backend
        .image_tag
        .clone()
        .ok_or(Error::NoSource("no `image-tag`"))?;
    let mut tags = vec![tag];
    for t in &cfg.backend.extra_tags {
        if !tags.contains(t) {
            tags.push(t.clone());
        }
    }
    Ok(tags)
}

/// Read-only: find the tag in the source repository (or read the archive) and take its digest. Also checks
/// the target repository exists and that no immutable tag would have to move.
pub async fn resolve_source(
    clients: &Clients,
    cfg: &Config,
    report: &mut Report,
) -> Result<SourceImage, Error> {
    let started = Instant::now();
    let _group = commands::group("Resolve the image to promote");
    let result = resolve(clients, cfg).await;
    report.phase(
        "resolve image",
        started,
        crate::report::section::Outcome::of(&result),
    );
    let source = result?;
    tracing::info!(source = %source.uri, digest = %source.digest, target = %source.target_uri, tags = ?source.tags, "image resolved");
    report.promote = Some(PromoteReport {
        mode: match (&source.plan, cfg.image_archive.is_some()) {
            (Plan::Retag { .. }, _) => "retag",
            (_, true) => "archive",
            _ => "copy",
        }
        .into(),
        source_image_uri: source.uri.clone(),
        target_uri: source.target_uri.clone(),
        digest: source.digest.clone(),
        tags: source.tags.clone(),
        stats: None,
        seconds: 0.0,
    });
    Ok(source)
}

async fn resolve(clients: &Clients, cfg: &Config) -> Result<SourceImage, Error> {
    let tags = target_tags(cfg)?;
    let tag = tags[0].clone();
    let options = registry::Options::default();
    let override_url = cfg.backend.registry_url.clone();
    let target = describe_repo(&clients.ecr, &cfg.backend.repository, None, "target").await?;

    // An archive from the workspace (a deploy that pushes its own image, or a promotion of an archive).
    if let Some(path) = &cfg.image_archive {
        let (p, t) = (path.clone(), tag.clone());
        let archive = tokio::task::spawn_blocking(move || Archive::open(&p, &t))
            .await
            .map_err(|e| {
                Error::Registry(registry::Error::Manifest {
                    object: path.display().to_string(),
                    message: format!("reading the archive stopped: {e}"),
                })
            })?
            .map_err(registry::Error::from)?;
        let top = archive.top().clone();
        let target_reg =
            registry_for(&clients.ecr, &target, override_url.as_ref(), &options).await?;
        let target_t = Target {
            registry: target_reg,
            repo: target.name.clone(),
        };
        check_immutable_registry(&target_t, &tags, &top.digest, target.immutable).await?;
        return Ok(SourceImage {
            digest: top.digest.clone(),
            uri: path.display().to_string(),
            target_uri: target_uri(&target_t, &target.uri, override_url.is_some()),
            tags,
            options,
            plan: Plan::Copy(Box::new(CopyPlan {
                source: Source::Archive(Arc::new(archive)),
                target: target_t,
                top,
            })),
        });
    }

    if cfg.command != Command::Promote {
        return Err(Error::NoSource("not a promotion and no `image-archive`"));
    }
    let promote = cfg
        .promote
        .as_ref()
        .ok_or(Error::NoSource("no source environment"))?;
    let (registry_id, uri_region, name) = split_repository(&promote.source_repository);
    let source_region = uri_region.unwrap_or_else(|| promote.source_region.clone());
    let source_ecr = if source_region == cfg.region {
        clients.ecr.clone()
    } else {
        aws_sdk_ecr::Client::from_conf(
            aws_sdk_ecr::config::Builder::from(&clients.sdk)
                .region(aws_types::region::Region::new(source_region.clone()))
                .build(),
        )
    };
    let source = describe_repo(&source_ecr, &name, registry_id.as_deref(), "source").await?;

    if source.uri == target.uri && source_region == cfg.region {
        return resolve_retag(clients, &source, &target, tags, options).await;
    }

    let source_reg = registry_for(&source_ecr, &source, override_url.as_ref(), &options).await?;
    let Some(top) = source_reg.get_manifest(&source.name, &tag).await? else {
        // Through a `registry-url` the registry holds the images; otherwise ECR knows the push dates.
        let newest = if override_url.is_some() {
            source_reg
                .list_tags(&source.name, NEWEST_TAGS)
                .await
                .unwrap_or_default()
        } else {
            newest_tags(&source_ecr, &source).await
        };
        return Err(Error::TagNotFound {
            repo: source.uri.clone(),
            tag,
            newest,
        });
    };
    let target_reg = registry_for(&clients.ecr, &target, override_url.as_ref(), &options).await?;
    let target_t = Target {
        registry: target_reg,
        repo: target.name.clone(),
    };
    check_immutable_registry(&target_t, &tags, &top.digest, target.immutable).await?;
    Ok(SourceImage {
        digest: top.digest.clone(),
        uri: format!("{}@{}", source.uri, top.digest),
        target_uri: target_uri(&target_t, &target.uri, override_url.is_some()),
        tags,
        options,
        plan: Plan::Copy(Box::new(CopyPlan {
            source: Source::Registry {
                registry: source_reg,
                repo: source.name.clone(),
            },
            target: target_t,
            top,
        })),
    })
}

fn target_uri(target: &Target, ecr_uri: &str, overridden: bool) -> String {
    if overridden {
        format!("{}/{}", target.registry.host(), target.repo)
    } else {
        ecr_uri.to_string()
    }
}

/// Fail before any write when a tag of an immutable repository would have to move. Mutable repositories
/// pass; so does an immutable one whose tags already point at the digest.
async fn check_immutable_registry(
    target: &Target,
    tags: &[String],
    digest: &str,
    immutable: bool,
) -> Result<(), Error> {
    if !immutable {
        return Ok(());
    }
    for tag in tags {
        if let Some(existing) = target.registry.manifest_digest(&target.repo, tag).await? {
            if existing != digest {
                return Err(Error::TagImmutable {
                    repo: target.repo.clone(),
                    tag: tag.clone(),
                    existing,
                    wanted: digest.to_string(),
                });
            }
        }
    }
    Ok(())
}

/// `BatchGetImage` of one tag (one per call: the reply's `imageId` is not always the tag asked for).
async fn get_image(
    clients: &Clients,
    repo: &Repo,
    tag: &str,
) -> Result<Option<aws_sdk_ecr::types::Image>, Error> {
    let out = clients
        .ecr
        .batch_get_image()
        .repository_name(&repo.name)
        .registry_id(&repo.registry_id)
        .image_ids(ImageIdentifier::builder().image_tag(tag).build())
        .set_accepted_media_types(Some(ACCEPTED.iter().map(|s| s.to_string()).collect()))
        .send()
        .await
        .map_err(|e| Error::Ecr {
            verb: "get image",
            object: format!("{}:{tag}", repo.name),
            detail: crate::aws::describe(&e),
        })?;
    Ok(out.images().first().cloned())
}

/// Same repository: the manifest from `BatchGetImage`, digest as ECR reports it.
async fn resolve_retag(
    clients: &Clients,
    source: &Repo,
    target: &Repo,
    tags: Vec<String>,
    options: registry::Options,
) -> Result<SourceImage, Error> {
    let tag = tags[0].clone();
    let Some(image) = get_image(clients, source, &tag).await? else {
        return Err(Error::TagNotFound {
            repo: source.uri.clone(),
            tag,
            newest: newest_tags(&clients.ecr, source).await,
        });
    };
    let digest = image
        .image_id()
        .and_then(|id| id.image_digest())
        .unwrap_or_default()
        .to_string();
    let manifest = image.image_manifest().unwrap_or_default().to_string();
    let media_type = image
        .image_manifest_media_type()
        .map(str::to_string)
        .or_else(|| {
            serde_json::from_str::<serde_json::Value>(&manifest)
                .ok()
                .and_then(|v| {
                    v.get("mediaType")
                        .and_then(|m| m.as_str().map(str::to_string))
                })
        })
        .unwrap_or_else(|| registry::DOCKER_MANIFEST.to_string());
    if target.immutable {
        for t in &tags[1..] {
            if let Some(other) = get_image(clients, source, t).await? {
                let existing = other
                    .image_id()
                    .and_then(|id| id.image_digest())
                    .unwrap_or_default();
                if existing != digest {
                    return Err(Error::TagImmutable {
                        repo: target.name.clone(),
                        tag: t.clone(),
                        existing: existing.to_string(),
                        wanted: digest.clone(),
                    });
                }
            }
        }
    }
    Ok(SourceImage {
        uri: format!("{}@{digest}", source.uri),
        digest,
        target_uri: target.uri.clone(),
        tags,
        options,
        plan: Plan::Retag {
            manifest,
            media_type,
        },
    })
}

/// Copy the image into the target repository under the tag (plus extra tags), keeping the digest.
pub async fn copy(
    clients: &Clients,
    cfg: &Config,
    source: &SourceImage,
    report: &mut Report,
) -> Result<(), Error> {
    let started = Instant::now();
    let _group = commands::group(&format!("Copy {} -> {}", source.uri, source.target_uri));
    let result = match &source.plan {
        Plan::Retag {
            manifest,
            media_type,
        } => retag(clients, cfg, source, manifest, media_type).await,
        Plan::Copy(plan) => registry::copy_image(
            &plan.source,
            &plan.target,
            &plan.top,
            &source.tags,
            &source.options,
        )
        .await
        .map_err(Error::from),
    };
    let seconds = started.elapsed().as_secs_f64();
    report.phase(
        "promote image",
        started,
        crate::report::section::Outcome::of(&result),
    );
    let stats = result?;
    tracing::info!(
        digest = %source.digest,
        blobs_copied = stats.blobs_copied,
        blobs_mounted = stats.blobs_mounted,
        blobs_skipped = stats.blobs_skipped,
        bytes = stats.bytes_copied,
        seconds,
        "image in the target repository under {:?}",
        source.tags
    );
    if let Some(p) = &mut report.promote {
        p.stats = Some(stats);
        p.seconds = seconds;
    }
    Ok(())
}

/// `PutImage` the same manifest under each tag the repository lacks.
async fn retag(
    clients: &Clients,
    cfg: &Config,
    source: &SourceImage,
    manifest: &str,
    media_type: &str,
) -> Result<CopyStats, Error> {
    let mut stats = CopyStats::default();
    for tag in &source.tags {
        let put = clients
            .ecr
            .put_image()
            .repository_name(&cfg.backend.repository)
            .image_manifest(manifest)
            .image_manifest_media_type(media_type)
            .image_tag(tag)
            .send()
            .await;
        match put {
            Ok(_) => stats.tags_put.push(tag.clone()),
            Err(e) => match e.as_service_error() {
                Some(se) if se.is_image_already_exists_exception() => {
                    stats.tags_unchanged.push(tag.clone())
                }
                Some(se) if se.is_image_tag_already_exists_exception() => {
                    return Err(Error::TagImmutable {
                        repo: cfg.backend.repository.clone(),
                        tag: tag.clone(),
                        existing: "another image".into(),
                        wanted: source.digest.clone(),
                    })
                }
                _ => {
                    return Err(Error::Ecr {
                        verb: "tag image",
                        object: format!("{}:{tag}", cfg.backend.repository),
                        detail: crate::aws::describe(&e),
                    })
                }
            },
        }
    }
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn report_outputs_and_summary() {
        use crate::report::section::Section;
        let mut r = PromoteReport {
            mode: "copy".into(),
            source_image_uri: "1.dkr.ecr.us-east-1.amazonaws.com/stage@sha256:ab".into(),
            target_uri: "1.dkr.ecr.us-east-1.amazonaws.com/prod".into(),
            digest: "sha256:ab".into(),
            tags: vec!["abc".into(), "prod|x".into()],
            stats: None,
            seconds: 0.0,
        };
        let mut out = Vec::new();
        r.outputs(&mut out);
        assert_eq!(
            out.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
            ["source-image-uri", "promoted-digest"]
        );
        r.stats = Some(CopyStats {
            blobs_copied: 2,
            blobs_skipped: 1,
            blobs_mounted: 3,
            bytes_copied: 5 * 1024 * 1024,
            manifests_put: 1,
            ..CopyStats::default()
        });
        r.seconds = 1.25;
        let mut out = Vec::new();
        r.outputs(&mut out);
        assert_eq!(out[2], ("blobs-copied".into(), "2".into()));
        assert_eq!(out[3], ("bytes-copied".into(), "5242880".into()));
        let mut md = String::new();
        r.summary(&mut md);
        assert_eq!(
            md,
            "### Image promotion\n\n| | |\n|---|---|\n\
             | source | `1.dkr.ecr.us-east-1.amazonaws.com/stage@sha256:ab` |\n\
             | target | `1.dkr.ecr.us-east-1.amazonaws.com/prod` (`abc`, `prod\\|x`) |\n\
             | digest | `sha256:ab` |\n| mode | copy |\n\
             | blobs | 2 copied, 3 mounted, 1 already there |\n| bytes copied | 5.0 MiB |\n\
             | manifests | 1 written, 0 already there |\n| time | 1.2 s |\n\n"
        );
    }

    #[test]
    fn bytes_are_human() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(3 * 1024 * 1024 + 512 * 1024), "3.5 MiB");
    }

    #[test]
    fn missing_tag_message_lists_newest() {
        let e = Error::TagNotFound {
            repo: "r".into(),
            tag: "abc".into(),
            newest: vec!["n1".into(), "n2".into()],
        };
        assert!(e.to_string().contains("newest tags: n1, n2"), "{e}");
    }
}
