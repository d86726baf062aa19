//! The frontend as a release artifact: a deploy packs the build folder as it was built (placeholders
//! intact) and pushes it to the environment's ECR repository as `<image tag>-frontend`; a promotion
//! copies the source environment's artifact by digest and syncs the bucket from it, so prod gets the very
//! files that passed stage with prod's values substituted, and no build or checkout in the promote job;
//! `command: rollback` syncs the previous release's artifact back.
//!
//! An artifact needs a registry: the repository's own (real ECR) or `registry-url`. With an AWS
//! endpoint override (an emulator) and no `registry-url` there is none, and a deploy syncs its folder
//! without publishing (as with `frontend.artifact: false`).
//!
//! Read-only in [`prepare`] and [`live_release`] (S3 `GetObject` of the sync state) (`DescribeRepositories`, `GetAuthorizationToken`, manifest and blob GETs);
//! writes in [`publish`] (blob uploads, manifest PUT: ECR `InitiateLayerUpload`, `UploadLayerPart`,
//! `CompleteLayerUpload`, `PutImage`, `BatchCheckLayerAvailability`).

use tokio::time::Instant;

use super::error::Error;
use super::report::SyncReport;
use super::s3;
use super::state;
use super::state::Release;
use super::{apply, finalize, prepare_from, Prepared};
use crate::config::{Command, Config, Frontend};
use crate::github::commands;
use crate::registry::artifact::{self as oci, Blob, Limits, FRONTEND_ARTIFACT, TAR_GZIP_LAYER};
use crate::registry::{self, Manifest, Source, Target};
use crate::report::section::{Outcome, Timeline};
use crate::steps::{image, Clients};

/// The largest packed build read from a registry.
const MAX_LAYER: u64 = 1 << 30;

/// What the run does with the frontend artifact, decided read-only in [`prepare`].
#[derive(Debug)]
pub enum Plan {
    /// No artifact: synced from the folder only.
    None,
    /// A deploy: push the build to the environment's repository.
    Publish(Box<Publish>),
    /// A promotion: copy the source's artifact (already read and unpacked) by digest.
    Copy(Box<Copy>),
}

/// A deploy's artifact push: the build packed in preflight, so its digest is known before any write.
#[derive(Debug)]
pub struct Publish {
    target: Target,
    tag: String,
    sha: String,
    config: Blob,
    /// Its bytes in a file of `_packed`.
    layer: Blob,
    manifest: Manifest,
    _packed: tempfile::TempDir,
}

/// Pack the build and check it can go under `tag`: a repository whose tags are immutable keeps what an
/// earlier run published there, so a different build of the same commit is refused here, before any
/// write. Read-only.
async fn plan_publish(
    clients: &Clients,
    cfg: &Config,
    prepared: &Prepared,
    tag: String,
    sha: String,
) -> Result<Publish, Error> {
    // Packed to disk, so memory does not grow with the build; pushed from there.
    let packed = temp_dir("cloudshop-packed-")?;
    let (files, out) = (prepared.built.clone(), packed.path().join("layer.tar.gz"));
    let layer = tokio::task::spawn_blocking(move || oci::pack_to(&files, &out))
        .await
        .map_err(|e| oci::Error::Damaged(e.to_string()))??;
    let config = Blob::empty();
    let (bytes, _) = oci::manifest(
        FRONTEND_ARTIFACT,
        &config,
        &[&layer],
        &[("org.opencontainers.image.revision", &sha)],
    );
    let manifest = registry::artifact_manifest(bytes)?;
    let (repo, registry) = image::open_repository(clients, cfg, false).await?;
    if repo.mutability.is_immutable(&tag) {
        if let Some(existing) = registry.manifest_digest(&repo.name, &tag).await? {
            if existing != manifest.digest {
                return Err(Error::ArtifactImmutable {
                    repo: repo.uri,
                    tag,
                    existing,
                    wanted: manifest.digest,
                });
            }
        }
    }
    tracing::info!(artifact = %manifest.digest, tag = %tag, bytes = layer.size, "frontend packed");
    Ok(Publish {
        target: Target {
            registry,
            repo: repo.name,
        },
        tag,
        sha,
        config,
        layer,
        manifest,
        _packed: packed,
    })
}

/// A new temporary folder.
fn temp_dir(prefix: &str) -> Result<tempfile::TempDir, Error> {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .map_err(|e| {
            oci::Error::Write {
                file: std::env::temp_dir().display().to_string(),
                message: e.to_string(),
            }
            .into()
        })
}

/// A promotion's artifact copy.
#[derive(Debug)]
pub struct Copy {
    source: Source,
    target: Target,
    top: Manifest,
    tag: String,
    sha: String,
    /// The unpacked files the sync reads.
    _unpacked: tempfile::TempDir,
}

/// Can this run use artifacts: enabled, a repository, and a registry to reach it.
pub fn usable(cfg: &Config, clients: &Clients) -> bool {
    cfg.frontend.as_ref().is_some_and(|f| f.artifact)
        && !cfg.backend.repository.is_empty()
        && (cfg.backend.registry_url.is_some() || clients.sdk.endpoint_url().is_none())
}

/// The frontend's preflight: where its files come from (the build folder, or in a promotion the source
/// environment's artifact, read and unpacked here) and the sync plan. A promotion whose artifact is
/// missing fails here, before any write.
pub async fn prepare(
    clients: &Clients,
    cfg: &Config,
    f: &Frontend,
    sr: &mut SyncReport,
    timeline: &mut Timeline,
) -> Result<(Prepared, Plan), Error> {
    let sha = cfg.backend.image_tag.clone().unwrap_or_default();
    let tag = oci::frontend_tag(&sha);
    let from_artifact = cfg.command == Command::Promote && usable(cfg, clients);
    if !from_artifact {
        let prepared = super::prepare(clients, f, cfg.dry_run, sr, timeline).await?;
        if !usable(cfg, clients) || sha.is_empty() || cfg.command != Command::Deploy {
            tracing::info!("the frontend is synced from its folder; no artifact is published");
            return Ok((prepared, Plan::None));
        }
        let publish = plan_publish(clients, cfg, &prepared, tag, sha).await?;
        return Ok((prepared, Plan::Publish(Box::new(publish))));
    }

    let started = Instant::now();
    let fetched = async {
        let _group = commands::group("Frontend: read the release artifact");
        let (source_repo, source_reg) = image::open_repository(clients, cfg, true).await?;
        let environment = cfg
            .promote
            .as_ref()
            .map(|p| p.source_environment.clone())
            .unwrap_or_default();
        let Some(top) = source_reg.get_manifest(&source_repo.name, &tag).await? else {
            return Err(Error::ArtifactMissing {
                repo: source_repo.uri.clone(),
                tag: tag.clone(),
                environment,
            });
        };
        let unpacked = unpack(&source_reg, &source_repo.name, &top).await?;
        tracing::info!(artifact = %top.digest, from = %source_repo.uri, "frontend artifact read");
        Ok((
            Source::Registry {
                registry: source_reg,
                repo: source_repo.name,
            },
            top,
            unpacked,
        ))
    }
    .await;
    timeline.record("read frontend artifact", started, Outcome::of(&fetched));
    let (source, top, unpacked) = fetched?;
    if f.dir.is_some() {
        tracing::info!("a promotion syncs the source's artifact; `frontend.dir` is not read");
    }
    let dir = unpacked.path().to_path_buf();
    let mut prepared = prepare_from(clients, f, &dir, &dir, cfg.dry_run, sr, timeline).await?;
    prepared.release = Some(Release {
        artifact: top.digest.clone(),
        tag: sha.clone(),
    });
    sr.artifact = Some(top.digest.clone());
    let (repo, registry) = image::open_repository(clients, cfg, false).await?;
    let target = Target {
        registry,
        repo: repo.name,
    };
    Ok((
        prepared,
        Plan::Copy(Box::new(Copy {
            source,
            target,
            top,
            tag,
            sha,
            _unpacked: unpacked,
        })),
    ))
}

/// Read an artifact's layer into a temporary file and unpack it from there into a new temporary folder:
/// streamed both ways, so memory does not grow with the build.
async fn unpack(
    registry: &registry::Registry,
    repo: &str,
    top: &Manifest,
) -> Result<tempfile::TempDir, Error> {
    let packed = temp_dir("cloudshop-layer-")?;
    let layer = packed.path().join("layer.tar.gz");
    registry::read_layer_to(registry, repo, top, TAR_GZIP_LAYER, MAX_LAYER, &layer).await?;
    let dir = temp_dir("cloudshop-release-")?;
    let dest = dir.path().to_path_buf();
    let files =
        tokio::task::spawn_blocking(move || oci::unpack_file(&layer, &dest, Limits::default()))
            .await
            .map_err(|e| oci::Error::Damaged(e.to_string()))??;
    drop(packed);
    tracing::info!(files = files.len(), "frontend artifact unpacked");
    Ok(dir)
}

/// Publish (a deploy) or copy (a promotion) the artifact into the environment's repository, and record
/// it as the release the sync puts in the bucket. A write: runs after every check.
pub async fn publish(
    plan: &Plan,
    prepared: &mut Prepared,
    sr: &mut SyncReport,
    timeline: &mut Timeline,
) -> Result<(), Error> {
    let started = Instant::now();
    let result = match plan {
        Plan::None => return Ok(()),
        Plan::Publish(p) => {
            let _group = commands::group(&format!("Frontend: publish {}:{}", p.target.repo, p.tag));
            push_build(p).await
        }
        Plan::Copy(c) => {
            let _group = commands::group(&format!("Frontend: copy {} to {}", c.tag, c.target.repo));
            let top = &c.top;
            registry::copy_image(
                &c.source,
                &c.target,
                top,
                std::slice::from_ref(&c.tag),
                &registry::Options::default(),
            )
            .await
            .map(|_| top.digest.clone())
            .map_err(Error::from)
        }
    };
    timeline.record("publish frontend", started, Outcome::of(&result));
    let digest = result?;
    let sha = match plan {
        Plan::Publish(p) => p.sha.clone(),
        Plan::Copy(c) => c.sha.clone(),
        Plan::None => String::new(),
    };
    tracing::info!(artifact = %digest, "frontend artifact in the environment's repository");
    sr.artifact = Some(digest.clone());
    prepared.release = Some(Release {
        artifact: digest,
        tag: sha,
    });
    Ok(())
}

/// Push the packed build (deterministic: the same build gives the same digest) under its tag.
async fn push_build(p: &Publish) -> Result<String, Error> {
    let stats =
        registry::push_artifact(&p.target, &[&p.config, &p.layer], &p.manifest, &p.tag).await?;
    tracing::info!(
        digest = %p.manifest.digest,
        bytes = stats.bytes_copied,
        blobs_copied = stats.blobs_copied,
        "frontend artifact pushed as {}:{}",
        p.target.repo,
        p.tag
    );
    Ok(p.manifest.digest.clone())
}

/// `command: rollback`: sync the release the bucket served before the live one back from its artifact
/// (the sync state names it), with this environment's values, and make it final. `Ok(false)` when there
/// is nothing to restore from (no previous release recorded, or no registry).
pub async fn restore_previous(
    clients: &Clients,
    cfg: &Config,
    sr: &mut SyncReport,
    timeline: &mut Timeline,
) -> Result<bool, Error> {
    let Some(f) = &cfg.frontend else {
        return Ok(false);
    };
    let state_key = format!("{}{}", f.prefix, state::STATE_NAME);
    let old = s3::read_state(&clients.s3, &f.bucket, &state_key).await?;
    let Some(previous) = old.and_then(|s| s.previous) else {
        commands::emit(
            commands::Level::Warning,
            None,
            "the frontend is left as it is: its sync state names no previous release",
        );
        return Ok(false);
    };
    if !usable(cfg, clients) {
        commands::emit(
            commands::Level::Warning,
            None,
            "the frontend is left as it is: no registry to read the previous release from",
        );
        return Ok(false);
    }
    restore_release(clients, cfg, f, &previous, sr, timeline).await?;
    Ok(true)
}

/// Sync the bucket from the artifact `release` names (in the environment's repository), with this
/// environment's values, and make it final: the site of that release, as a deploy of it left it.
pub async fn restore_release(
    clients: &Clients,
    cfg: &Config,
    f: &Frontend,
    release: &Release,
    sr: &mut SyncReport,
    timeline: &mut Timeline,
) -> Result<(), Error> {
    let (repo, registry) = image::open_repository(clients, cfg, false).await?;
    let Some(top) = registry.get_manifest(&repo.name, &release.artifact).await? else {
        return Err(Error::ArtifactMissing {
            repo: repo.uri.clone(),
            tag: release.artifact.clone(),
            environment: cfg.environment.clone(),
        });
    };
    let unpacked = unpack(&registry, &repo.name, &top).await?;
    let dir = unpacked.path().to_path_buf();
    let mut prepared = prepare_from(clients, f, &dir, &dir, false, sr, timeline).await?;
    prepared.release = Some(release.clone());
    let synced = apply(clients, f, prepared, sr, timeline).await?;
    finalize(clients, f, synced, sr, timeline).await;
    Ok(())
}
/// The release the bucket serves, as its sync state records it (read-only: S3 `GetObject`); `None`
/// without a state or a live release in it.
pub async fn live_release(clients: &Clients, f: &Frontend) -> Result<Option<Release>, Error> {
    let state_key = format!("{}{}", f.prefix, state::STATE_NAME);
    let found = s3::read_state(&clients.s3, &f.bucket, &state_key).await?;
    Ok(found.and_then(|s| s.live))
}
