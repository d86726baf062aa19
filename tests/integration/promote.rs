//! `command: promote` and archive pushes against a real OCI registry on loopback (`docker-registry`), with
//! ECR API calls (DescribeRepositories, GetAuthorizationToken, BatchGetImage, PutImage) going to moto and
//! blob/manifest traffic sent to the local registry through `registry-url`. Copies are checked with
//! `skopeo inspect --raw` (sha256 of the bytes the registry serves) and against the generated digests.

use harness as common;

use cloudshop_deploy::config::{self, Config};
use cloudshop_deploy::github::Context;
use cloudshop_deploy::inputs::Inputs;
use cloudshop_deploy::report::{Report, Section};
use cloudshop_deploy::steps::image::{self, Mode, SourceImage};
use cloudshop_deploy::steps::Clients;

use common::registry::{tar_dir, write_layout, LocalRegistry};
use common::Moto;

const STAGE: &common::TestName = &common::TestName("cloudshop-stage");
const PROD: &common::TestName = &common::TestName("cloudshop-prod");

struct World {
    moto: Moto,
    reg: LocalRegistry,
    clients: Clients,
    workspace: tempfile::TempDir,
}

/// moto with the two repositories (`prod_immutable` makes the target IMMUTABLE), a local registry.
async fn world(prod_immutable: bool) -> World {
    std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
    let moto = Moto::shared();
    let reg = LocalRegistry::start();
    let sdk = moto.sdk_config().await;
    let ecr = aws_sdk_ecr::Client::new(&sdk);
    for (name, immutable) in [(STAGE, false), (PROD, prod_immutable)] {
        ecr.create_repository()
            .repository_name(name)
            .image_tag_mutability(if immutable {
                aws_sdk_ecr::types::ImageTagMutability::Immutable
            } else {
                aws_sdk_ecr::types::ImageTagMutability::Mutable
            })
            .send()
            .await
            .unwrap();
    }
    World {
        clients: Clients::new(sdk, true),
        moto,
        reg,
        workspace: tempfile::tempdir().unwrap(),
    }
}

impl World {
    /// A validated config, built the way the binary builds it.
    fn config(&self, inputs: &[(&str, &str)], prod_repo: &str) -> Config {
        let yaml = format!(
            r#"
region: us-east-1
environments:
  stage:
    cluster: stage
    service: backend
    ecr-repository: {STAGE}
  prod:
    cluster: prod
    service: backend
    ecr-repository: {prod_repo}
    promote-from: stage
"#
        );
        let vars: Vec<(String, String)> = inputs
            .iter()
            .map(|(k, v)| (format!("INPUT_{}", k.to_ascii_uppercase()), v.to_string()))
            .chain([
                ("INPUT_ENVIRONMENT".to_string(), "prod".to_string()),
                ("INPUT_REGISTRY-URL".to_string(), self.reg.url.clone()),
            ])
            .collect();
        let inputs = Inputs::from_env(vars).unwrap();
        let file = config::parse_file("test.yml", &yaml).unwrap();
        let ws = self.workspace.path().display().to_string();
        let ctx = Context::from_env(|k| match k {
            "GITHUB_WORKSPACE" => Some(ws.clone()),
            "GITHUB_SHA" => Some("0123456789abcdef0123456789abcdef01234567".into()),
            _ => None,
        });
        config::build(&inputs, &file, &ctx).unwrap()
    }

    fn promote_cfg(&self, tag: &str) -> Config {
        self.config(
            &[
                ("command", "promote"),
                ("image-tag", tag),
                ("extra-tags", "prod-current"),
            ],
            PROD,
        )
    }

    async fn promote(&self, cfg: &Config, mount: bool) -> (Result<(), String>, Report) {
        let mut report = Report::new("promote", "prod", false);
        let result = async {
            let mut source = resolve(&self.clients, cfg, &mut report)
                .await
                .map_err(|e| e.to_string())?;
            source.options.mount = mount;
            copy(&self.clients, &source, &mut report)
                .await
                .map_err(|e| e.to_string())?;
            // The run moves the extra tags once the release passed; here, right after the copy.
            image::add_extra_tags(&self.clients, &source)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
        .await;
        (result, report)
    }
}

/// Resolve as `run.rs` does: the timeline and the promotion's report go into the run report.
async fn resolve(
    clients: &Clients,
    cfg: &Config,
    report: &mut Report,
) -> Result<SourceImage, image::Error> {
    let source = image::resolve_source(clients, cfg, &mut report.phases).await?;
    report.promote = Some(source.report());
    Ok(source)
}

/// Copy as `run.rs` does.
async fn copy(
    clients: &Clients,
    source: &SourceImage,
    report: &mut Report,
) -> Result<(), image::Error> {
    let copied = image::copy(clients, source, &mut report.phases).await?;
    if let Some(p) = &mut report.promote {
        p.record(copied);
    }
    Ok(())
}

fn outputs(report: &Report) -> std::collections::BTreeMap<String, String> {
    let mut v = Vec::new();
    report
        .promote
        .as_ref()
        .expect("promote report")
        .outputs(&mut v);
    v.into_iter().collect()
}

#[tokio::test]
async fn copy_between_repositories_keeps_the_digest_and_a_second_run_moves_nothing() {
    let w = world(false).await;
    let digest = w.reg.push_random_image(STAGE, "abc123", 3, 2 * 1024 * 1024);
    let cfg = w.promote_cfg("abc123");

    // Streaming (no mount): every blob's bytes really move.
    let (res, report) = w.promote(&cfg, false).await;
    res.unwrap();
    let out = outputs(&report);
    assert_eq!(out["promoted-digest"], digest);
    assert_eq!(out["blobs-copied"], "4", "3 layers + config: {out:?}");
    let bytes: u64 = out["bytes-copied"].parse().unwrap();
    assert!(bytes > 3 * 2 * 1024 * 1024, "{bytes}");
    assert!(
        out["source-image-uri"].ends_with(&format!("{STAGE}@{digest}")),
        "{out:?}"
    );
    assert_eq!(
        w.reg.digest_of(PROD, "abc123").as_deref(),
        Some(digest.as_str())
    );
    assert_eq!(
        w.reg.digest_of(PROD, "prod-current").as_deref(),
        Some(digest.as_str())
    );
    assert_eq!(
        w.reg.digest_of(PROD, &digest).as_deref(),
        Some(digest.as_str())
    );

    // Again: nothing to move, the tags already point at the digest.
    let (res, report) = w.promote(&cfg, false).await;
    res.unwrap();
    let out = outputs(&report);
    assert_eq!(out["blobs-copied"], "0");
    assert_eq!(out["bytes-copied"], "0");
    let stats = report.promote.as_ref().unwrap().stats.clone().unwrap();
    assert_eq!(stats.manifests_put, 0, "{stats:?}");
    assert_eq!(stats.tags_put, Vec::<String>::new());
    // The copy itself writes only the image tag; the extra tags follow the verification.
    assert_eq!(stats.tags_unchanged, ["abc123"]);

    let md = {
        let mut s = String::new();
        report.promote.as_ref().unwrap().summary(&mut s);
        s
    };
    assert!(md.contains("0 copied, 0 mounted, 4 already there"), "{md}");
}

#[tokio::test]
async fn same_registry_copy_mounts_blobs_instead_of_moving_bytes() {
    let w = world(false).await;
    let digest = w.reg.push_random_image(STAGE, "m1", 2, 1024 * 1024);
    let (res, report) = w.promote(&w.promote_cfg("m1"), true).await;
    res.unwrap();
    let stats = report.promote.as_ref().unwrap().stats.clone().unwrap();
    assert_eq!(
        (stats.blobs_mounted, stats.blobs_copied, stats.bytes_copied),
        (3, 0, 0),
        "{stats:?}"
    );
    assert_eq!(
        w.reg.digest_of(PROD, "m1").as_deref(),
        Some(digest.as_str())
    );
}

#[tokio::test]
async fn a_multi_arch_index_is_copied_whole() {
    let w = world(false).await;
    let layout = w.reg.push_random_index(STAGE, "multi", 2, 1024 * 1024);
    let (res, report) = w.promote(&w.promote_cfg("multi"), false).await;
    res.unwrap();
    assert_eq!(outputs(&report)["promoted-digest"], layout.digest);
    assert_eq!(
        w.reg.digest_of(PROD, "multi").as_deref(),
        Some(layout.digest.as_str())
    );
    for child in &layout.children {
        assert_eq!(
            w.reg.digest_of(PROD, child).as_deref(),
            Some(child.as_str())
        );
    }
    let stats = report.promote.as_ref().unwrap().stats.clone().unwrap();
    // Two images of (config + 2 layers) and the index.
    assert_eq!(
        (stats.blobs_copied, stats.manifests_put),
        (6, 3),
        "{stats:?}"
    );
    // skopeo can pull each platform from the target.
    let out = std::process::Command::new("skopeo")
        .args(["inspect", "--tls-verify=false", "--override-arch", "arm64"])
        .arg(format!("docker://{}/{PROD}:multi", w.reg.host))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["Architecture"], "arm64");
    // skopeo reports the digest of what the tag names: the index, as in the source.
    assert_eq!(v["Digest"], layout.digest.as_str());
}

#[tokio::test]
async fn a_missing_source_tag_fails_before_any_write_and_lists_the_newest_tags() {
    let w = world(false).await;
    w.reg.push_random_image(STAGE, "old1", 1, 1024);
    w.reg.push_random_image(STAGE, "old2", 1, 1024);
    let blobs_before = w.reg.blob_count();
    let (res, report) = w.promote(&w.promote_cfg("does-not-exist"), true).await;
    let err = res.unwrap_err();
    assert!(
        err.contains("failed to find image") && err.contains(":does-not-exist"),
        "{err}"
    );
    assert!(err.contains("old1") && err.contains("old2"), "{err}");
    assert!(
        !w.reg.repository_exists_on_disk(PROD),
        "the target was written to"
    );
    assert_eq!(w.reg.blob_count(), blobs_before);
    assert!(report.promote.is_none());
    assert_eq!(
        report.phases.phases().last().unwrap().outcome,
        cloudshop_deploy::report::Outcome::Failed
    );
}

#[tokio::test]
async fn an_immutable_tag_that_would_move_fails_before_any_write() {
    let w = world(true).await;
    let old = w.reg.push_random_image(PROD, "v1", 1, 1024);
    let new = w.reg.push_random_image(STAGE, "v1", 1, 1024);
    let blobs_before = w.reg.blob_count();
    let (res, _) = w.promote(&w.promote_cfg("v1"), false).await;
    let err = res.unwrap_err();
    assert!(
        err.contains("immutable") && err.contains(&old) && err.contains(&new),
        "{err}"
    );
    assert_eq!(w.reg.blob_count(), blobs_before);
    assert_eq!(w.reg.digest_of(PROD, "v1").as_deref(), Some(old.as_str()));
}

#[tokio::test]
async fn an_oci_layout_archive_is_pushed_with_its_own_digest() {
    let w = world(false).await;
    // A layout directory in the workspace, and the same layout as a tar.
    let dir = w.workspace.path().join("image");
    let layout = write_layout(&dir, "sha-1", 2, 1024 * 1024, false);
    tar_dir(&dir, &w.workspace.path().join("image.tar"));

    for (archive, tag) in [("image", "sha-1"), ("image.tar", "sha-1-tar")] {
        let cfg = w.config(&[("image-archive", archive), ("image-tag", tag)], PROD);
        let mut report = Report::new("deploy", "prod", false);
        let source = resolve(&w.clients, &cfg, &mut report).await.unwrap();
        // The digest is known before anything is pushed.
        assert_eq!(source.digest, layout.digest);
        assert!(w.reg.digest_of(PROD, tag).is_none());
        copy(&w.clients, &source, &mut report).await.unwrap();
        assert_eq!(
            w.reg.digest_of(PROD, tag).as_deref(),
            Some(layout.digest.as_str())
        );
        let p = report.promote.as_ref().unwrap();
        assert_eq!(p.mode, Mode::Archive);
        let stats = p.stats.clone().unwrap();
        if tag == "sha-1" {
            assert_eq!(stats.blobs_copied, 3, "{stats:?}");
            let total: u64 = layout.blobs.iter().map(|b| b.1).sum();
            assert_eq!(stats.bytes_copied, total);
        } else {
            // The tar holds the same image: only the new tag is written.
            assert_eq!(
                (stats.blobs_copied, stats.tags_put.len()),
                (0, 1),
                "{stats:?}"
            );
        }
    }
}

/// A `docker save` tar (legacy layout, uncompressed layers) gets a schema 2 manifest the registry accepts,
/// with every layer gzipped: each pushed layer starts with the gzip magic and unpacks to the saved layer,
/// whose sha256 is the config's `diff_id`; the config is pushed unchanged.
#[tokio::test]
async fn a_docker_save_archive_is_pushed_as_a_schema2_image_with_gzip_layers() {
    use sha2::Digest as _;
    let w = world(false).await;
    let path = w.workspace.path().join("saved.tar");
    // Two layers as `docker save` writes them: uncompressed tars of a filesystem.
    let layer = |files: &[(&str, Vec<u8>)]| {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, name, &data[..]).unwrap();
        }
        b.into_inner().unwrap()
    };
    let mut random = vec![0u8; 256 * 1024];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut random);
    let layers = [
        layer(&[(
            "app/server.js",
            b"console.log('cloudshop');\n".repeat(20_000),
        )]),
        layer(&[("app/data.bin", random)]),
    ];
    let sha = |b: &[u8]| format!("sha256:{}", hex::encode(sha2::Sha256::digest(b)));
    let diff_ids: Vec<String> = layers.iter().map(|l| sha(l)).collect();
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "rootfs": { "type": "layers", "diff_ids": diff_ids },
    }))
    .unwrap();
    {
        let mut b = tar::Builder::new(std::fs::File::create(&path).unwrap());
        for (name, data) in [
            ("cfg.json", &config[..]),
            ("aaa/layer.tar", &layers[0][..]),
            ("bbb/layer.tar", &layers[1][..]),
            (
                "manifest.json",
                br#"[{"Config":"cfg.json","RepoTags":["cloudshop:sha-2"],"Layers":["aaa/layer.tar","bbb/layer.tar"]}]"#,
            ),
        ] {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, name, data).unwrap();
        }
        b.finish().unwrap();
    }
    let cfg = w.config(
        &[("image-archive", "saved.tar"), ("image-tag", "sha-2")],
        PROD,
    );
    let mut report = Report::new("deploy", "prod", false);
    let source = resolve(&w.clients, &cfg, &mut report).await.unwrap();
    copy(&w.clients, &source, &mut report).await.unwrap();
    assert_eq!(
        w.reg.digest_of(PROD, "sha-2").as_deref(),
        Some(source.digest.as_str())
    );
    let out = std::process::Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{}/{PROD}:sha-2", w.reg.host))
        .output()
        .unwrap();
    let m: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        m["mediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    let http = reqwest::Client::new();
    let blob = |digest: String| {
        let url = format!("http://{}/v2/{PROD}/blobs/{digest}", w.reg.host);
        let http = http.clone();
        async move {
            let r = http.get(url).send().await.unwrap();
            assert!(r.status().is_success(), "{}", r.status());
            r.bytes().await.unwrap().to_vec()
        }
    };
    // The config is the saved one, byte for byte.
    assert_eq!(m["config"]["digest"], sha(&config));
    assert_eq!(blob(sha(&config)).await, config);
    let pushed = m["layers"].as_array().unwrap();
    assert_eq!(pushed.len(), 2);
    for (i, l) in pushed.iter().enumerate() {
        assert_eq!(
            l["mediaType"],
            "application/vnd.docker.image.rootfs.diff.tar.gzip"
        );
        let digest = l["digest"].as_str().unwrap().to_string();
        let bytes = blob(digest.clone()).await;
        assert_eq!(&bytes[..2], &[0x1f, 0x8b], "layer {i} is not gzip");
        assert_eq!(sha(&bytes), digest);
        assert_eq!(l["size"], bytes.len() as u64);
        let mut plain = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&bytes[..]), &mut plain)
            .unwrap();
        assert_eq!(
            plain, layers[i],
            "layer {i} does not unpack to the saved layer"
        );
        assert_eq!(sha(&plain), diff_ids[i]);
    }
    // The text layer shrank.
    assert!(pushed[0]["size"].as_u64().unwrap() < layers[0].len() as u64 / 10);
}

#[tokio::test]
async fn same_repository_promotion_is_a_retag_through_ecr() {
    let w = world(false).await;
    let ecr = aws_sdk_ecr::Client::new(&w.moto.sdk_config().await);
    let manifest = r#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{"mediaType":"application/vnd.docker.container.image.v1+json","size":2,"digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"},"layers":[]}"#;
    ecr.put_image()
        .repository_name(STAGE)
        .image_manifest(manifest)
        .image_tag("r1")
        .send()
        .await
        .unwrap();
    let cfg = w.config(
        &[
            ("command", "promote"),
            ("image-tag", "r1"),
            ("extra-tags", "prod-current"),
        ],
        STAGE,
    );
    for _ in 0..2 {
        let (res, report) = w.promote(&cfg, true).await;
        res.unwrap();
        assert_eq!(report.promote.as_ref().unwrap().mode, Mode::Retag);
    }
    let images = ecr
        .describe_images()
        .repository_name(STAGE)
        .send()
        .await
        .unwrap();
    let details = images.image_details();
    assert_eq!(details.len(), 1, "{details:?}");
    let mut tags = details[0].image_tags().to_vec();
    tags.sort();
    assert_eq!(tags, ["prod-current", "r1"]);
    // Nothing went through the registry.
    assert!(!w.reg.repository_exists_on_disk(STAGE));
}

/// The real binary: a missing tag is one clear `::error::`, the target untouched, the ECR token masked
/// before anything else could print it and never printed otherwise.
#[tokio::test]
async fn binary_promote_of_a_missing_tag_fails_cleanly_and_never_prints_the_token() {
    let w = world(false).await;
    w.reg.push_random_image(STAGE, "tested-1", 1, 1024);
    let yaml = format!(
        "region: us-east-1\nenvironments:\n  stage:\n    cluster: stage\n    service: backend\n    ecr-repository: {STAGE}\n  prod:\n    cluster: prod\n    service: backend\n    ecr-repository: {PROD}\n    promote-from: stage\n"
    );
    let res = common::Action::new()
        .with_moto(&w.moto)
        .file(".github/cloudshop-deploy.yml", &yaml)
        .input("command", "promote")
        .input("environment", "prod")
        .input("image-tag", "never-built")
        .input("registry-url", &w.reg.url)
        .run();
    assert_ne!(res.code, 0, "{}", res.dump());
    let errors = res.error_lines();
    assert_eq!(errors.len(), 1, "{}", res.dump());
    assert!(
        errors[0].contains("failed to find image") && errors[0].contains("tested-1"),
        "{}",
        errors[0]
    );
    assert!(!w.reg.repository_exists_on_disk(PROD));
    // moto's token is base64("AWS:<account>-auth-token").
    let password = "123456789012-auth-token";
    let token = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        format!("AWS:{password}"),
    );
    let all = res.everything();
    let masks: Vec<&str> = all
        .lines()
        .filter(|l| l.starts_with("::add-mask::"))
        .collect();
    assert!(
        masks.contains(&format!("::add-mask::{token}").as_str()),
        "{}",
        res.dump()
    );
    assert!(
        masks.contains(&format!("::add-mask::{password}").as_str()),
        "{}",
        res.dump()
    );
    for line in all.lines().filter(|l| !l.starts_with("::add-mask::")) {
        assert!(
            !line.contains(password) && !line.contains(&token),
            "secret printed: {line}"
        );
    }
}

/// Registry to registry (two hosts, so no mount), resumed after a partial copy: only what is missing moves.
#[tokio::test]
async fn a_cross_registry_copy_resumes_with_only_the_missing_parts() {
    use cloudshop_deploy::registry::{copy_image, Options, Registry, Source, Target};
    let (a, b) = (LocalRegistry::start(), LocalRegistry::start());
    let layout = a.push_random_index("app", "v1", 2, 512 * 1024);
    let opts = Options::default();
    let ra = Registry::new(url::Url::parse(&a.url).unwrap(), None, &opts).unwrap();
    let rb = Registry::new(url::Url::parse(&b.url).unwrap(), None, &opts).unwrap();
    let source = Source::Registry {
        registry: ra.clone(),
        repo: "app".into(),
    };
    let target = Target {
        registry: rb,
        repo: "mirror/app".into(),
    };
    // A first, interrupted run got one platform across.
    let child = ra
        .get_manifest("app", &layout.children[0])
        .await
        .unwrap()
        .unwrap();
    let first = copy_image(&source, &target, &child, &["partial".into()], &opts)
        .await
        .unwrap();
    assert_eq!(
        (first.blobs_copied, first.blobs_mounted),
        (3, 0),
        "{first:?}"
    );
    // The full copy moves only the other platform.
    let top = ra.get_manifest("app", "v1").await.unwrap().unwrap();
    let stats = copy_image(&source, &target, &top, &["v1".into()], &opts)
        .await
        .unwrap();
    assert_eq!(
        (
            stats.blobs_copied,
            stats.blobs_skipped,
            stats.manifests_put,
            stats.manifests_skipped
        ),
        (3, 3, 2, 1),
        "{stats:?}"
    );
    assert_eq!(
        b.digest_of("mirror/app", "v1").as_deref(),
        Some(layout.digest.as_str())
    );
    for c in &layout.children {
        assert_eq!(b.digest_of("mirror/app", c).as_deref(), Some(c.as_str()));
    }
}

#[tokio::test]
async fn an_archive_cannot_move_an_immutable_tag() {
    let w = world(true).await;
    let old = w.reg.push_random_image(PROD, "sha-9", 1, 1024);
    let layout = write_layout(&w.workspace.path().join("img"), "sha-9", 1, 4096, false);
    let cfg = w.config(&[("image-archive", "img"), ("image-tag", "sha-9")], PROD);
    let mut report = Report::new("deploy", "prod", false);
    let err = resolve(&w.clients, &cfg, &mut report)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("immutable") && err.contains(&old) && err.contains(&layout.digest),
        "{err}"
    );
    assert_eq!(
        w.reg.digest_of(PROD, "sha-9").as_deref(),
        Some(old.as_str())
    );
}
