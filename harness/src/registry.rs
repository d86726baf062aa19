//! A real OCI registry on loopback (Debian's `docker-registry`, the CNCF distribution registry) and test
//! images generated on disk as OCI layouts (random gzip layers, a config, a manifest; optionally an index of
//! two platforms), pushed with `skopeo` so the images under test never went through the code under test.
//!
//! Public API for other tests: [`LocalRegistry::start`] (`.url`), [`LocalRegistry::push_random_image`],
//! [`LocalRegistry::push_random_index`], [`LocalRegistry::digest_of`], [`write_layout`].

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use rand::RngCore;
use sha2::{Digest, Sha256};

use super::{free_port, spawn_listening};

/// The registry binary (Debian package `docker-registry`).
const REGISTRY_BIN: &str = "/usr/bin/docker-registry";

/// A `docker-registry` on 127.0.0.1 with its storage in a temp dir; killed on drop.
pub struct LocalRegistry {
    child: Child,
    storage: tempfile::TempDir,
    /// `http://127.0.0.1:PORT`
    pub url: String,
    /// `127.0.0.1:PORT` (as in image references).
    pub host: String,
}

impl LocalRegistry {
    /// Start a registry on a free port, no auth, and wait (bounded) until it listens.
    pub fn start() -> LocalRegistry {
        let storage = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let config = storage.path().join("config.yml");
        let root = storage.path().join("data");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n  secret: test-only-secret\n",
                root.display()
            ),
        )
        .expect("write registry config");
        let log = storage.path().join("registry.log");
        let mut cmd = Command::new(REGISTRY_BIN);
        cmd.arg("serve").arg(&config);
        let child = spawn_listening(cmd, &log, port, Duration::from_secs(30));
        LocalRegistry {
            child,
            storage,
            url: format!("http://127.0.0.1:{port}"),
            host: format!("127.0.0.1:{port}"),
        }
    }

    /// Generate an image (`layers` random layers of `size` bytes each) and push it as `repo:tag`.
    /// Returns the manifest digest.
    pub fn push_random_image(&self, repo: &str, tag: &str, layers: usize, size: usize) -> String {
        let dir = tempfile::tempdir().expect("tempdir");
        let layout = write_layout(dir.path(), tag, layers, size, false);
        self.push_layout(dir.path(), tag, repo, tag);
        layout.digest
    }

    /// An image pushed to `repo` here and put into moto's ECR repository of the same name (which must
    /// exist) under the same digest and tag, as one `docker push` to ECR gives both: a deploy resolving
    /// the tag through the ECR API and a promotion reading the registry then see one digest.
    pub fn push_image_known_to_ecr(
        &self,
        moto: &crate::Moto,
        repo: &str,
        tag: &str,
        layers: usize,
        size: usize,
    ) -> String {
        let digest = self.push_random_image(repo, tag, layers, size);
        let out = Command::new("skopeo")
            .args(["inspect", "--raw", "--tls-verify=false"])
            .arg(format!("docker://{}/{repo}:{tag}", self.host))
            .output()
            .expect("run skopeo");
        assert!(out.status.success(), "skopeo inspect failed");
        let manifest = String::from_utf8(out.stdout).expect("manifest is UTF-8");
        crate::seed::rt().block_on(async {
            let ecr = aws_sdk_ecr::Client::new(&moto.sdk_config().await);
            ecr.put_image()
                .repository_name(repo)
                .image_manifest(manifest)
                .image_digest(&digest)
                .image_tag(tag)
                .send()
                .await
                .expect("put the image into moto's ECR");
        });
        digest
    }

    /// Generate a two-platform OCI index (each child with `layers` layers) and push it whole.
    pub fn push_random_index(&self, repo: &str, tag: &str, layers: usize, size: usize) -> Layout {
        let dir = tempfile::tempdir().expect("tempdir");
        let layout = write_layout(dir.path(), tag, layers, size, true);
        self.push_layout(dir.path(), tag, repo, tag);
        layout
    }

    /// `skopeo copy --all --preserve-digests oci:DIR:TAG docker://HOST/REPO:DEST_TAG`.
    pub fn push_layout(&self, dir: &Path, tag: &str, repo: &str, dest_tag: &str) {
        let out = Command::new("skopeo")
            .args(["copy", "--all", "--preserve-digests", "--quiet"])
            .args(["--dest-tls-verify=false"])
            .arg(format!("oci:{}:{tag}", dir.display()))
            .arg(format!("docker://{}/{repo}:{dest_tag}", self.host))
            .output()
            .expect("run skopeo");
        assert!(
            out.status.success(),
            "skopeo copy failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The digest the registry serves for `repo` at `reference` (tag or digest), checked with
    /// `skopeo inspect --raw` (sha256 of the exact bytes). `None` when skopeo cannot find it.
    pub fn digest_of(&self, repo: &str, reference: &str) -> Option<String> {
        let sep = if reference.starts_with("sha256:") {
            "@"
        } else {
            ":"
        };
        let out = Command::new("skopeo")
            .args(["inspect", "--raw", "--tls-verify=false"])
            .arg(format!("docker://{}/{repo}{sep}{reference}", self.host))
            .output()
            .expect("run skopeo");
        out.status
            .success()
            .then(|| format!("sha256:{}", hex::encode(Sha256::digest(&out.stdout))))
    }

    /// The tags of a repository, by `skopeo list-tags` (empty when the repository does not exist).
    pub fn tags(&self, repo: &str) -> Vec<String> {
        let out = Command::new("skopeo")
            .args(["list-tags", "--tls-verify=false"])
            .arg(format!("docker://{}/{repo}", self.host))
            .output()
            .expect("run skopeo");
        if !out.status.success() {
            return Vec::new();
        }
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        v["Tags"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t.as_str().map(str::to_string))
            .collect()
    }

    /// Does the registry's storage hold anything for `repo` (a write of any kind: blob link, upload, tag)?
    pub fn repository_exists_on_disk(&self, repo: &str) -> bool {
        self.storage
            .path()
            .join("data/docker/registry/v2/repositories")
            .join(repo)
            .exists()
    }

    /// Blobs stored, all repositories together.
    pub fn blob_count(&self) -> usize {
        walk_files(
            &self
                .storage
                .path()
                .join("data/docker/registry/v2/blobs/sha256"),
        )
    }
}

fn walk_files(dir: &Path) -> usize {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.flatten()
        .map(|e| {
            let p = e.path();
            if p.is_dir() {
                walk_files(&p)
            } else {
                1
            }
        })
        .sum()
}

impl Drop for LocalRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An image written as an OCI layout.
#[derive(Debug, Clone)]
pub struct Layout {
    /// The top manifest (image or index) digest.
    pub digest: String,
    /// Child manifest digests (index only).
    pub children: Vec<String>,
    /// Every blob digest with its size (configs and layers).
    pub blobs: Vec<(String, u64)>,
}

fn write_blob(dir: &Path, bytes: &[u8]) -> (String, u64) {
    let hex = hex::encode(Sha256::digest(bytes));
    std::fs::write(dir.join("blobs/sha256").join(&hex), bytes).expect("write blob");
    (format!("sha256:{hex}"), bytes.len() as u64)
}

/// A gzip stream of `size` random bytes (stored, not compressed: random data does not compress), written
/// to the layout in 1 MiB pieces so big layers never sit in memory.
fn write_random_layer(dir: &Path, size: usize) -> (String, u64) {
    let tmp = dir.join("blobs/sha256/.tmp-layer");
    {
        let file = std::fs::File::create(&tmp).expect("create layer");
        let mut gz = flate2::write::GzEncoder::new(
            std::io::BufWriter::new(file),
            flate2::Compression::none(),
        );
        let mut rng = rand::rng();
        let mut chunk = vec![0u8; 1024 * 1024];
        let mut left = size;
        while left > 0 {
            let n = left.min(chunk.len());
            rng.fill_bytes(&mut chunk[..n]);
            gz.write_all(&chunk[..n]).expect("write layer");
            left -= n;
        }
        gz.finish().expect("finish gzip").flush().expect("flush");
    }
    let mut h = Sha256::new();
    let mut f = std::fs::File::open(&tmp).expect("open layer");
    let len = std::io::copy(&mut f, &mut h).expect("hash layer");
    let hex = hex::encode(h.finalize());
    std::fs::rename(&tmp, dir.join("blobs/sha256").join(&hex)).expect("rename layer");
    (format!("sha256:{hex}"), len)
}

fn write_image(
    dir: &Path,
    layers: usize,
    size: usize,
    arch: &str,
    blobs: &mut Vec<(String, u64)>,
) -> (String, u64) {
    let mut layer_descs = Vec::new();
    for _ in 0..layers {
        let (d, s) = write_random_layer(dir, size);
        blobs.push((d.clone(), s));
        layer_descs.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d, "size": s
        }));
    }
    let mut nonce = [0u8; 8];
    rand::rng().fill_bytes(&mut nonce);
    let config = serde_json::json!({
        "architecture": arch, "os": "linux",
        "config": { "Labels": { "nonce": hex::encode(nonce) } },
        "rootfs": { "type": "layers", "diff_ids": [] }
    });
    let (cd, cs) = write_blob(dir, config.to_string().as_bytes());
    blobs.push((cd.clone(), cs));
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": { "mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cs },
        "layers": layer_descs,
    });
    write_blob(
        dir,
        serde_json::to_vec_pretty(&manifest).unwrap().as_slice(),
    )
}

/// Write an OCI image layout into `dir` with one image named `tag` (or, with `index`, an OCI index of an
/// amd64 and an arm64 image).
pub fn write_layout(dir: &Path, tag: &str, layers: usize, size: usize, index: bool) -> Layout {
    std::fs::create_dir_all(dir.join("blobs/sha256")).expect("mkdir");
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#)
        .expect("oci-layout");
    let mut blobs = Vec::new();
    let (top, size_top, media, children) = if index {
        let mut children = Vec::new();
        let mut descs = Vec::new();
        for arch in ["amd64", "arm64"] {
            let (d, s) = write_image(dir, layers, size, arch, &mut blobs);
            children.push(d.clone());
            descs.push(serde_json::json!({
                "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": d, "size": s,
                "platform": { "architecture": arch, "os": "linux" }
            }));
        }
        let idx = serde_json::json!({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": descs
        });
        let (d, s) = write_blob(dir, serde_json::to_vec(&idx).unwrap().as_slice());
        (d, s, "application/vnd.oci.image.index.v1+json", children)
    } else {
        let (d, s) = write_image(dir, layers, size, "amd64", &mut blobs);
        (
            d,
            s,
            "application/vnd.oci.image.manifest.v1+json",
            Vec::new(),
        )
    };
    let index_json = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": media, "digest": top, "size": size_top,
            "annotations": { "org.opencontainers.image.ref.name": tag }
        }]
    });
    std::fs::write(dir.join("index.json"), index_json.to_string()).expect("index.json");
    Layout {
        digest: top,
        children,
        blobs,
    }
}

/// Tar a directory (for the archive-as-a-file case).
pub fn tar_dir(dir: &Path, dest: &Path) -> PathBuf {
    let mut b = tar::Builder::new(std::fs::File::create(dest).expect("create tar"));
    b.append_dir_all(".", dir).expect("tar dir");
    b.finish().expect("finish tar");
    dest.to_path_buf()
}
