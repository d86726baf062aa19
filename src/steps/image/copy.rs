//! Bringing the image into the target repository by digest: a promotion (the image tested in the source
//! environment's repository, the manifest byte for byte, so what ran on stage is exactly what runs in
//! prod) or an archive push (an OCI layout or `docker save` archive from the workspace), under the image
//! tag plus `extra-tags`.
//!
//! Same repository: a retag ([`super::tag`]). Other repository (same or other account or region), or an
//! archive: the registry API through [`crate::registry`], authenticated with ECR
//! `GetAuthorizationToken`. Read-only in [`resolve_source`]: `DescribeRepositories`,
//! `GetAuthorizationToken`, `BatchGetImage`, `DescribeImages`, registry manifest GETs/HEADs. Writes only
//! in [`copy`]: `PutImage`, or registry blob uploads and manifest PUTs.

use std::sync::Arc;

use aws_sdk_ecr::types::ImageIdentifier;
use base64::Engine;
use tokio::time::Instant;

use super::error::{Error, Role};
use super::report::{Mode, PromoteReport};
use super::resolve::{self, Mutability, Repository};
use super::tag::{self, StoredManifest, Tagged};
use crate::config::{Command, Config};
use crate::github::commands;
use crate::registry::{self, archive::Archive, CopyStats, Manifest, Registry, Source, Target};
use crate::report::section::{Outcome, Timeline};
use crate::steps::Clients;

/// What `copy` will do.
#[derive(Debug)]
enum Plan {
    /// Same repository: `PutImage` the manifest under more tags.
    Retag {
        repo: Repository,
        image: StoredManifest,
    },
    /// Registry-to-registry (or archive-to-registry) copy.
    Copy(Box<CopyPlan>),
}

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
    pub mode: Mode,
    plan: Plan,
}

impl SourceImage {
    /// The promotion's report before the copy: what will be copied where.
    pub fn report(&self) -> PromoteReport {
        PromoteReport {
            mode: self.mode,
            source_image_uri: self.uri.clone(),
            target_uri: self.target_uri.clone(),
            digest: self.digest.clone(),
            tags: self.tags.clone(),
            stats: None,
            seconds: 0.0,
        }
    }
}

/// What [`copy`] did.
#[derive(Debug, Clone)]
pub struct Copied {
    pub stats: CopyStats,
    /// Wall time of the copy.
    pub seconds: f64,
}

impl PromoteReport {
    /// Record the finished copy.
    pub fn record(&mut self, copied: Copied) {
        self.stats = Some(copied.stats);
        self.seconds = copied.seconds;
    }
}

/// A registry client for an ECR repository: `GetAuthorizationToken` (masked at once), base URL from the
/// repository URI unless `registry-url` overrides it.
async fn registry_for(
    ecr: &aws_sdk_ecr::Client,
    repo: &Repository,
    override_url: Option<&url::Url>,
    options: &registry::Options,
) -> Result<Registry, Error> {
    let out = ecr
        .get_authorization_token()
        .send()
        .await
        .map_err(|e| Error::Aws {
            verb: "get an ECR authorization token for",
            object: repo.uri.clone(),
            detail: crate::aws::describe(&e),
            hint: "check that the role may call `ecr:GetAuthorizationToken`",
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

/// A promotion's source side: the ECR client for the source region, and the source repository as ECR
/// describes it. Read-only: `DescribeRepositories`.
async fn source_repository(
    clients: &Clients,
    cfg: &Config,
    promote: &crate::config::Promote,
) -> Result<(aws_sdk_ecr::Client, Repository, String), Error> {
    let (registry_id, uri_region, name) = resolve::split_repository(&promote.source_repository);
    let region = uri_region.unwrap_or_else(|| promote.source_region.clone());
    let ecr = if region == cfg.region {
        clients.ecr.clone()
    } else {
        aws_sdk_ecr::Client::from_conf(
            aws_sdk_ecr::config::Builder::from(&clients.sdk)
                .region(aws_types::region::Region::new(region.clone()))
                .build(),
        )
    };
    let repo = resolve::lookup(&ecr, &name, registry_id.as_deref(), Role::Source).await?;
    Ok((ecr, repo, region))
}

/// A registry client for the environment's own repository, or (`source`) for the source repository of a
/// promotion (in its own region), with the repository as ECR describes it. Read-only:
/// `DescribeRepositories`, `GetAuthorizationToken`.
pub async fn open_repository(
    clients: &Clients,
    cfg: &Config,
    source: bool,
) -> Result<(Repository, Registry), Error> {
    let options = registry::Options::default();
    let override_url = cfg.backend.registry_url.as_ref();
    let promote = cfg.promote.as_ref().filter(|_| source);
    let Some(promote) = promote else {
        let role = match cfg.command {
            Command::Promote => Role::Target,
            Command::Deploy | Command::Rollback | Command::Releases => Role::Deploy,
        };
        let repo = resolve::lookup(&clients.ecr, &cfg.backend.repository, None, role).await?;
        let reg = registry_for(&clients.ecr, &repo, override_url, &options).await?;
        return Ok((repo, reg));
    };
    let (ecr, repo, _) = source_repository(clients, cfg, promote).await?;
    let reg = registry_for(&ecr, &repo, override_url, &options).await?;
    Ok((repo, reg))
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
    timeline: &mut Timeline,
) -> Result<SourceImage, Error> {
    let started = Instant::now();
    let _group = commands::group("Resolve the image to promote");
    let result = resolve(clients, cfg).await;
    timeline.record("resolve image", started, Outcome::of(&result));
    let source = result?;
    tracing::info!(source = %source.uri, digest = %source.digest, target = %source.target_uri, tags = ?source.tags, "image resolved");
    Ok(source)
}

/// The image to promote or push and how: from an archive, by re-tagging within one repository, or by
/// copying between registries.
async fn resolve(clients: &Clients, cfg: &Config) -> Result<SourceImage, Error> {
    let tags = target_tags(cfg)?;
    let options = registry::Options::default();
    let target = resolve::lookup(&clients.ecr, &cfg.backend.repository, None, Role::Target).await?;

    // An archive from the workspace (a deploy that pushes its own image, or a promotion of an archive).
    if let Some(path) = &cfg.image_archive {
        return resolve_archive(clients, cfg, path, target, tags).await;
    }

    if cfg.command != Command::Promote {
        return Err(Error::NoSource("not a promotion and no `image-archive`"));
    }
    let promote = cfg
        .promote
        .as_ref()
        .ok_or(Error::NoSource("no source environment"))?;
    let (source_ecr, source, source_region) = source_repository(clients, cfg, promote).await?;

    if source.uri == target.uri && source_region == cfg.region {
        return resolve_retag(&clients.ecr, source, target, tags, options).await;
    }
    resolve_copy(clients, cfg, (&source_ecr, source), target, tags).await
}

/// The archive at `path`, opened off the async threads, to push to `target`.
async fn resolve_archive(
    clients: &Clients,
    cfg: &Config,
    path: &std::path::Path,
    target: Repository,
    tags: Vec<String>,
) -> Result<SourceImage, Error> {
    let (p, t) = (path.to_path_buf(), tags[0].clone());
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
    let options = registry::Options::default();
    let target_t = push_target(clients, cfg, &target, &tags, &top.digest, &options).await?;
    Ok(SourceImage {
        digest: top.digest.clone(),
        uri: path.display().to_string(),
        target_uri: target_uri(&target_t, &target.uri, cfg.backend.registry_url.is_some()),
        tags,
        options,
        mode: Mode::Archive,
        plan: Plan::Copy(Box::new(CopyPlan {
            source: Source::Archive(Arc::new(archive)),
            target: target_t,
            top,
        })),
    })
}

/// The tag in the `source` repository (read through its ECR client), to copy to `target`.
async fn resolve_copy(
    clients: &Clients,
    cfg: &Config,
    (source_ecr, source): (&aws_sdk_ecr::Client, Repository),
    target: Repository,
    tags: Vec<String>,
) -> Result<SourceImage, Error> {
    let tag = tags[0].clone();
    let options = registry::Options::default();
    let override_url = cfg.backend.registry_url.as_ref();
    let source_reg = registry_for(source_ecr, &source, override_url, &options).await?;
    let Some(top) = source_reg.get_manifest(&source.name, &tag).await? else {
        // Through a `registry-url` the registry holds the images; otherwise ECR knows the push dates.
        let newest = if override_url.is_some() {
            source_reg
                .list_tags(&source.name, resolve::NEWEST_TAGS)
                .await
                .unwrap_or_default()
        } else {
            resolve::newest_tags(source_ecr, &source).await
        };
        return Err(Error::ImageNotFound {
            repo: source.uri.clone(),
            tag,
            newest,
            role: Role::Source,
        });
    };
    let target_t = push_target(clients, cfg, &target, &tags, &top.digest, &options).await?;
    Ok(SourceImage {
        digest: top.digest.clone(),
        uri: format!("{}@{}", source.uri, top.digest),
        target_uri: target_uri(&target_t, &target.uri, override_url.is_some()),
        tags,
        options,
        mode: Mode::Copy,
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

/// The `target` repository as a registry to push to, once no immutable tag in it would have to move
/// from `digest`.
async fn push_target(
    clients: &Clients,
    cfg: &Config,
    target: &Repository,
    tags: &[String],
    digest: &str,
    options: &registry::Options,
) -> Result<Target, Error> {
    let override_url = cfg.backend.registry_url.as_ref();
    let registry = registry_for(&clients.ecr, target, override_url, options).await?;
    let t = Target {
        registry,
        repo: target.name.clone(),
    };
    check_immutable_registry(&t, tags, digest, &target.mutability).await?;
    Ok(t)
}

fn target_uri(target: &Target, ecr_uri: &str, overridden: bool) -> String {
    if overridden {
        format!("{}/{}", target.registry.host(), target.repo)
    } else {
        ecr_uri.to_string()
    }
}

/// Fail before any write when a tag ECR will not move would have to move. Movable tags pass; so do
/// immutable ones that already point at the digest.
async fn check_immutable_registry(
    target: &Target,
    tags: &[String],
    digest: &str,
    mutability: &Mutability,
) -> Result<(), Error> {
    for tag in tags.iter().filter(|t| mutability.is_immutable(t)) {
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

/// Same repository: the manifest from `BatchGetImage`, digest as ECR reports it.
async fn resolve_retag(
    ecr: &aws_sdk_ecr::Client,
    source: Repository,
    target: Repository,
    tags: Vec<String>,
    options: registry::Options,
) -> Result<SourceImage, Error> {
    let tag = tags[0].clone();
    let id = ImageIdentifier::builder().image_tag(&tag).build();
    let object = format!("{}:{tag}", source.name);
    let Some(image) = tag::get_manifest(ecr, &source, id, &object).await? else {
        return Err(Error::ImageNotFound {
            repo: source.uri.clone(),
            tag,
            newest: resolve::newest_tags(ecr, &source).await,
            role: Role::Source,
        });
    };
    if let Some((tag, existing)) = resolve::moved_tags(ecr, &target, &image.digest, &tags[1..])
        .await?
        .into_iter()
        .next()
    {
        return Err(Error::TagImmutable {
            repo: target.name.clone(),
            tag,
            existing,
            wanted: image.digest.clone(),
        });
    }
    Ok(SourceImage {
        uri: format!("{}@{}", source.uri, image.digest),
        digest: image.digest.clone(),
        target_uri: target.uri.clone(),
        tags,
        options,
        mode: Mode::Retag,
        plan: Plan::Retag {
            repo: target,
            image,
        },
    })
}

/// Which environment's repository [`repository_registry`] opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// This environment's own repository.
    Own,
    /// The repository of the environment a promotion copies from.
    Source,
}

/// A registry client for an environment's repository and the repository's name in it (read-only:
/// `DescribeRepositories`, `GetAuthorizationToken`). The base URL is `registry-url` when set, else the
/// registry host of the repository URI.
pub async fn repository_registry(
    clients: &Clients,
    cfg: &Config,
    side: Side,
) -> Result<(Registry, String), Error> {
    if side == Side::Source && cfg.promote.is_none() {
        return Err(Error::NoSource("no source environment"));
    }
    let (repo, reg) = open_repository(clients, cfg, side == Side::Source).await?;
    Ok((reg, repo.name))
}

/// Copy the image into the target repository under the image tag, keeping the digest. The extra tags
/// follow later, once the release is verified ([`add_extra_tags`]).
pub async fn copy(
    clients: &Clients,
    source: &SourceImage,
    timeline: &mut Timeline,
) -> Result<Copied, Error> {
    let started = Instant::now();
    let _group = commands::group(&format!("Copy {} -> {}", source.uri, source.target_uri));
    let first = &source.tags[..source.tags.len().min(1)];
    let result = match &source.plan {
        Plan::Retag { repo, image } => retag(&clients.ecr, repo, image, first).await,
        Plan::Copy(plan) => registry::copy_image(
            &plan.source,
            &plan.target,
            &plan.top,
            first,
            &source.options,
        )
        .await
        .map_err(Error::from),
    };
    let seconds = started.elapsed().as_secs_f64();
    timeline.record("promote image", started, Outcome::of(&result));
    let stats = result?;
    tracing::info!(
        digest = %source.digest,
        blobs_copied = stats.blobs_copied,
        blobs_mounted = stats.blobs_mounted,
        blobs_skipped = stats.blobs_skipped,
        bytes = stats.bytes_copied,
        seconds,
        "image in the target repository under {:?}",
        first
    );
    Ok(Copied { stats, seconds })
}

/// Point the extra tags at the copied image (after the release passed): one line per tag, `added` or
/// `already there`. `PutImage` for a retag, else manifest PUTs through the registry.
pub async fn add_extra_tags(clients: &Clients, source: &SourceImage) -> Result<Vec<String>, Error> {
    let extra = source.tags.get(1..).unwrap_or_default();
    if extra.is_empty() {
        return Ok(Vec::new());
    }
    let mut lines = Vec::new();
    match &source.plan {
        Plan::Retag { repo, image } => {
            for (tag, how) in tag::put_tags(&clients.ecr, repo, image, extra).await? {
                lines.push(format!("{tag}: {}", how.as_str()));
            }
        }
        Plan::Copy(plan) => {
            let (reg, repo) = (&plan.target.registry, &plan.target.repo);
            for tag in extra {
                let how = match reg.manifest_digest(repo, tag).await? {
                    Some(d) if d == plan.top.digest => "already there",
                    _ => {
                        reg.put_manifest(repo, tag, &plan.top).await?;
                        "added"
                    }
                };
                lines.push(format!("{tag}: {how}"));
            }
        }
    }
    Ok(lines)
}

/// `PutImage` the same manifest under each tag the repository lacks.
async fn retag(
    ecr: &aws_sdk_ecr::Client,
    repo: &Repository,
    image: &StoredManifest,
    tags: &[String],
) -> Result<CopyStats, Error> {
    let mut stats = CopyStats::default();
    for (tag, how) in tag::put_tags(ecr, repo, image, tags).await? {
        match how {
            Tagged::Added => stats.tags_put.push(tag),
            Tagged::AlreadyThere => stats.tags_unchanged.push(tag),
        }
    }
    Ok(stats)
}
