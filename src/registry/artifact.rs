//! OCI artifacts that travel beside the image in the environment's repository: the built frontend (one
//! tar+gzip layer, so a promotion copies exactly the files that passed stage) and the verification marker
//! (a small JSON config saying which digest passed which environment, when, in which run). Both are plain
//! OCI image manifests with an `artifactType`, stored under a tag (`<sha>-frontend`,
//! `verified-<env>-<sha>`): a tag works on every registry, where pushing OCI 1.1 referrers (`subject`) is
//! still refused by some.
//!
//! Packing is deterministic (sorted entries, zero times and owners, fixed modes), so the same build gives
//! the same digest. Unpacking accepts regular files and folders with relative, normal paths only, within
//! size and count bounds. Pure; no network.

use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::json;

use sha2::{Digest, Sha256};

use super::manifest::{sha256_digest, OCI_MANIFEST};

/// `artifactType` of a packed frontend build.
pub const FRONTEND_ARTIFACT: &str = "application/vnd.cloudshop.frontend.v1+tar";
/// `artifactType` and config media type of a verification marker.
pub const VERIFICATION_ARTIFACT: &str = "application/vnd.cloudshop.verification.v1+json";
/// The layer media type of a packed build.
pub const TAR_GZIP_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// The OCI 1.1 empty descriptor's media type (`{}`), for an artifact with no config of its own.
pub const EMPTY_JSON: &str = "application/vnd.oci.empty.v1+json";

/// Bounds on what an artifact may unpack to: a build larger than this is not a website.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of all files together.
    pub total_bytes: u64,
    /// Files and folders.
    pub entries: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            total_bytes: 2 << 30,
            entries: 100_000,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to read `{file}` for the frontend artifact: {message}")]
    Read { file: String, message: String },
    #[error("the frontend artifact is damaged: {0}")]
    Damaged(String),
    #[error("the frontend artifact holds `{0}`, which is not a plain relative path")]
    UnsafePath(String),
    #[error("the frontend artifact holds `{0}`, which is neither a file nor a folder")]
    UnsafeEntry(String),
    #[error("the frontend artifact is larger than {limit} {what}")]
    TooLarge { what: &'static str, limit: u64 },
    #[error("failed to write `{file}`: {message}")]
    Write { file: String, message: String },
}

impl Error {
    pub fn hint(&self) -> String {
        match self {
            Error::Read { .. } => "check that the frontend build finished before this step".into(),
            Error::Write { .. } => "check that the runner's temporary folder is writable".into(),
            _ => "push the frontend again from a deploy of the source environment; an artifact is \
                  only ever written by this action"
                .into(),
        }
    }
}

/// A blob ready to push: its bytes (in memory, or in a file for a packed build) and descriptor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob {
    /// The bytes, when held in memory; empty when they are in `file`.
    pub bytes: Bytes,
    /// `sha256:<hex>` of the bytes.
    pub digest: String,
    pub media_type: String,
    /// Where the bytes are when they are not in memory: a packed build, streamed from disk.
    pub file: Option<PathBuf>,
    /// Bytes in all.
    pub size: u64,
}

impl Blob {
    pub fn new(bytes: impl Into<Bytes>, media_type: &str) -> Blob {
        let bytes = bytes.into();
        Blob {
            digest: sha256_digest(&bytes),
            size: bytes.len() as u64,
            bytes,
            media_type: media_type.to_string(),
            file: None,
        }
    }

    /// The OCI 1.1 empty config `{}`.
    pub fn empty() -> Blob {
        Blob::new(Bytes::from_static(b"{}"), EMPTY_JSON)
    }

    fn descriptor(&self) -> serde_json::Value {
        json!({
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": self.size,
        })
    }
}

/// A writer that hashes and counts what goes through it.
struct Hashing<W> {
    inner: W,
    sha: Sha256,
    size: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.sha.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Pack files (`(relative path, file to read)`) into one deterministic tar+gzip layer, in memory.
pub fn pack(files: &[(String, PathBuf)]) -> Result<Blob, Error> {
    let (bytes, _, _) = pack_into(files, Vec::new())?;
    Ok(Blob::new(bytes, TAR_GZIP_LAYER))
}

/// [`pack`] into the file `out`, streamed: memory stays flat whatever the build's size.
pub fn pack_to(files: &[(String, PathBuf)], out: &Path) -> Result<Blob, Error> {
    let write = |e: std::io::Error| Error::Write {
        file: out.display().to_string(),
        message: e.to_string(),
    };
    let file =
        std::io::BufWriter::with_capacity(64 * 1024, std::fs::File::create(out).map_err(write)?);
    let (file, digest, size) = pack_into(files, file)?;
    file.into_inner()
        .map_err(|e| write(e.into_error()))?
        .sync_all()
        .map_err(write)?;
    Ok(Blob {
        bytes: Bytes::new(),
        digest,
        media_type: TAR_GZIP_LAYER.to_string(),
        file: Some(out.to_path_buf()),
        size,
    })
}

/// The deterministic tar+gzip of `files` written to `out`, each file streamed from disk; returns `out`
/// with the layer's digest and size.
fn pack_into<W: Write>(files: &[(String, PathBuf)], out: W) -> Result<(W, String, u64), Error> {
    let mut sorted: Vec<&(String, PathBuf)> = files.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let hashing = Hashing {
        inner: out,
        sha: Sha256::new(),
        size: 0,
    };
    let gz = flate2::write::GzEncoder::new(hashing, flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    tar.mode(tar::HeaderMode::Deterministic);
    for (rel, path) in sorted {
        let read = |e: std::io::Error| Error::Read {
            file: rel.clone(),
            message: e.to_string(),
        };
        let file = std::fs::File::open(path).map_err(read)?;
        let len = file.metadata().map_err(read)?.len();
        let mut header = tar::Header::new_gnu();
        header.set_size(len);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        header.set_entry_type(tar::EntryType::Regular);
        // At most the size the header promised, should the file grow while it is read.
        tar.append_data(&mut header, rel, file.take(len))
            .map_err(read)?;
    }
    let archive = |e: std::io::Error| Error::Read {
        file: "(archive)".into(),
        message: e.to_string(),
    };
    let gz = tar.into_inner().map_err(archive)?;
    let hashing = gz.finish().map_err(archive)?;
    let digest = format!("sha256:{}", hex::encode(hashing.sha.finalize()));
    Ok((hashing.inner, digest, hashing.size))
}

/// Is this a relative path of normal components only (no `..`, no root, no prefix)?
fn plain_relative(p: &Path) -> bool {
    p.components().count() > 0 && p.components().all(|c| matches!(c, Component::Normal(_)))
}

/// Unpack a layer made by [`pack`] into `dest` (which should be empty); returns the relative paths of
/// the files written, sorted. Links, devices and paths leaving `dest` are refused before anything of
/// theirs is written.
pub fn unpack(layer: &[u8], dest: &Path, limits: Limits) -> Result<Vec<String>, Error> {
    unpack_from(layer, dest, limits)
}

/// [`unpack`] a layer kept in the file `layer`, streamed: memory stays flat whatever its size.
pub fn unpack_file(layer: &Path, dest: &Path, limits: Limits) -> Result<Vec<String>, Error> {
    let file = std::fs::File::open(layer).map_err(|e| Error::Read {
        file: layer.display().to_string(),
        message: e.to_string(),
    })?;
    unpack_from(
        std::io::BufReader::with_capacity(64 * 1024, file),
        dest,
        limits,
    )
}

fn unpack_from(layer: impl Read, dest: &Path, limits: Limits) -> Result<Vec<String>, Error> {
    let gz = flate2::read::GzDecoder::new(layer);
    let mut archive = tar::Archive::new(gz);
    let mut written = Vec::new();
    let mut total: u64 = 0;
    let entries = archive
        .entries()
        .map_err(|e| Error::Damaged(e.to_string()))?;
    for (n, entry) in entries.enumerate() {
        if n >= limits.entries {
            return Err(Error::TooLarge {
                what: "entries",
                limit: limits.entries as u64,
            });
        }
        let mut entry = entry.map_err(|e| Error::Damaged(e.to_string()))?;
        let path = entry
            .path()
            .map_err(|e| Error::Damaged(e.to_string()))?
            .into_owned();
        let shown = path.to_string_lossy().to_string();
        if !plain_relative(&path) {
            return Err(Error::UnsafePath(shown));
        }
        let target = dest.join(&path);
        let write = |e: std::io::Error| Error::Write {
            file: shown.clone(),
            message: e.to_string(),
        };
        match entry.header().entry_type() {
            tar::EntryType::Directory => {
                std::fs::create_dir_all(&target).map_err(write)?;
            }
            tar::EntryType::Regular => {
                let size = entry
                    .header()
                    .size()
                    .map_err(|e| Error::Damaged(e.to_string()))?;
                total = total.saturating_add(size);
                if total > limits.total_bytes {
                    return Err(Error::TooLarge {
                        what: "bytes",
                        limit: limits.total_bytes,
                    });
                }
                if let Some(parent) = target.parent() {
                    std::fs::create_dir_all(parent).map_err(write)?;
                }
                let mut out = std::fs::File::create(&target).map_err(write)?;
                // Read no more than the header promised, whatever the stream holds.
                let mut limited = (&mut entry).take(size);
                std::io::copy(&mut limited, &mut out).map_err(write)?;
                out.flush().map_err(write)?;
                written.push(
                    path.components()
                        .map(|c| c.as_os_str().to_string_lossy().to_string())
                        .collect::<Vec<_>>()
                        .join("/"),
                );
            }
            _ => return Err(Error::UnsafeEntry(shown)),
        }
    }
    written.sort();
    Ok(written)
}

/// An OCI image manifest for an artifact: `artifactType`, a config blob and layers, with annotations.
/// Serialised once; its bytes are what the registry stores and what the digest is of.
pub fn manifest(
    artifact_type: &str,
    config: &Blob,
    layers: &[&Blob],
    annotations: &[(&str, &str)],
) -> (Bytes, String) {
    let mut m = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": config.descriptor(),
        "layers": layers.iter().map(|l| l.descriptor()).collect::<Vec<_>>(),
    });
    if !annotations.is_empty() {
        let map: serde_json::Map<String, serde_json::Value> = annotations
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect();
        m["annotations"] = serde_json::Value::Object(map);
    }
    let bytes = Bytes::from(m.to_string());
    let digest = sha256_digest(&bytes);
    (bytes, digest)
}

/// The record a verification marker carries: this digest passed this environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Verification {
    pub environment: String,
    /// The image digest that passed.
    pub digest: String,
    /// The git SHA it was built from (the image tag).
    pub sha: String,
    /// The frontend artifact digest deployed with it, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frontend: Option<String>,
    /// The task-definition revision (ARN) that ran it when it passed: where `command: rollback` goes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_definition: Option<String>,
    /// The workflow run that verified it (`GITHUB_SERVER_URL/REPO/actions/runs/ID`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_url: Option<String>,
    /// RFC 3339.
    pub verified_at: String,
    /// `passed`, or `skipped` when the environment has no smoke tests.
    pub smoke: String,
    /// Each gate of the release (`rollout`, `smoke`, `writes`, `website`, `watch`, `signals`) as
    /// `passed`, `skipped` or `not-configured`; empty in markers written before gates were recorded.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub gates: std::collections::BTreeMap<String, String>,
}

/// The gates a promotion requires of the source release unless the target environment says otherwise.
pub const DEFAULT_REQUIRED: &[&str] = &["rollout", "smoke"];

/// The gates a promotion can require of the source release, as the marker names them.
pub const RECORDED_GATES: &[&str] = &[
    "rollout",
    "test-traffic",
    "canary",
    "smoke",
    "writes",
    "website",
    "watch",
    "signals",
];

impl Verification {
    /// How gate `name` ended on the source environment; a marker from before gates were recorded knows
    /// the rollout (a marker is only written after a watched rollout) and the smoke tests.
    pub fn gate(&self, name: &str) -> &str {
        match (self.gates.get(name), name) {
            (Some(v), _) => v,
            (None, "rollout") => "passed",
            (None, "smoke") => &self.smoke,
            (None, _) => "not recorded",
        }
    }
}

impl Verification {
    /// The marker's config blob.
    pub fn blob(&self) -> Blob {
        Blob::new(
            Bytes::from(serde_json::to_vec(self).unwrap_or_default()),
            VERIFICATION_ARTIFACT,
        )
    }

    /// Read a marker's config blob.
    pub fn from_blob(bytes: &[u8]) -> Result<Verification, Error> {
        serde_json::from_slice(bytes).map_err(|e| Error::Damaged(e.to_string()))
    }
}

/// A tag-safe form of a name: `[A-Za-z0-9_.-]`, anything else as `-`, at most `max` characters.
fn tag_part(s: &str, max: usize) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '-'
            }
        })
        .take(max)
        .collect()
}

/// The tag of the frontend artifact built with an image tag: `<tag>-frontend`.
pub fn frontend_tag(image_tag: &str) -> String {
    format!("{}-frontend", tag_part(image_tag, 100))
}

/// The tag of the marker that says an image tag passed an environment: `verified-<env>-<tag>`.
pub fn verified_tag(environment: &str, image_tag: &str) -> String {
    format!(
        "verified-{}-{}",
        tag_part(environment, 20),
        tag_part(image_tag, 100)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(dir: &Path, list: &[(&str, &[u8])]) -> Vec<(String, PathBuf)> {
        list.iter()
            .map(|(rel, data)| {
                let p = dir.join(rel);
                std::fs::create_dir_all(p.parent().unwrap()).unwrap();
                std::fs::write(&p, data).unwrap();
                (rel.to_string(), p)
            })
            .collect()
    }

    #[test]
    fn packing_to_a_file_gives_the_same_layer_and_unpacks_from_it() {
        let src = tempfile::tempdir().unwrap();
        let list = files(
            src.path(),
            &[("index.html", b"<html></html>"), ("a/b.js", &[7u8; 70_000])],
        );
        let memory = pack(&list).unwrap();
        let out = src.path().join("layer.tar.gz");
        let file = pack_to(&list, &out).unwrap();
        assert_eq!((&file.digest, file.size), (&memory.digest, memory.size));
        assert!(file.bytes.is_empty() && file.file.as_deref() == Some(out.as_path()));
        assert_eq!(std::fs::read(&out).unwrap(), memory.bytes);
        let dest = tempfile::tempdir().unwrap();
        let written = unpack_file(&out, dest.path(), Limits::default()).unwrap();
        assert_eq!(
            written,
            vec!["a/b.js".to_string(), "index.html".to_string()]
        );
        assert_eq!(
            std::fs::read(dest.path().join("a/b.js")).unwrap(),
            [7u8; 70_000]
        );
    }

    #[test]
    fn pack_is_deterministic_and_round_trips() {
        let src = tempfile::tempdir().unwrap();
        let list = files(
            src.path(),
            &[
                ("index.html", b"<html>__CLOUDSHOP_API_URL__</html>"),
                ("static/js/main.1a2b.js", b"console.log(1)"),
                ("logo.png", &[0x89, b'P', b'N', b'G', 0, 255]),
            ],
        );
        let a = pack(&list).unwrap();
        let mut reversed = list.clone();
        reversed.reverse();
        let b = pack(&reversed).unwrap();
        assert_eq!(a.digest, b.digest, "same files, same digest");
        assert_eq!(a.media_type, TAR_GZIP_LAYER);

        let dest = tempfile::tempdir().unwrap();
        let written = unpack(&a.bytes, dest.path(), Limits::default()).unwrap();
        assert_eq!(
            written,
            vec!["index.html", "logo.png", "static/js/main.1a2b.js"]
        );
        for (rel, path) in &list {
            assert_eq!(
                std::fs::read(dest.path().join(rel)).unwrap(),
                std::fs::read(path).unwrap(),
                "{rel}"
            );
        }
    }

    fn hostile(entries: &[(&str, tar::EntryType, &[u8])]) -> Vec<u8> {
        let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let mut tar = tar::Builder::new(gz);
        for (name, kind, data) in entries {
            let mut h = tar::Header::new_gnu();
            // Write the name bytes directly: `append_data` itself refuses `..`.
            let bytes = name.as_bytes();
            h.as_old_mut().name[..bytes.len()].copy_from_slice(bytes);
            h.set_size(data.len() as u64);
            h.set_entry_type(*kind);
            if *kind == tar::EntryType::Symlink {
                h.set_link_name("/etc/passwd").unwrap();
                h.set_size(0);
            }
            h.set_mode(0o644);
            h.set_cksum();
            tar.append(&h, *data).unwrap();
        }
        tar.into_inner().unwrap().finish().unwrap()
    }

    #[test]
    fn unpack_refuses_what_could_leave_the_folder() {
        let cases: Vec<(&str, Vec<u8>)> = vec![
            (
                "parent",
                hostile(&[("../escape.js", tar::EntryType::Regular, b"x")]),
            ),
            (
                "absolute",
                hostile(&[("/tmp/abs.js", tar::EntryType::Regular, b"x")]),
            ),
            (
                "symlink",
                hostile(&[("link", tar::EntryType::Symlink, b"")]),
            ),
            ("device", hostile(&[("dev", tar::EntryType::Char, b"")])),
            ("not gzip", b"plain bytes".to_vec()),
        ];
        for (what, layer) in cases {
            let dest = tempfile::tempdir().unwrap();
            let err = unpack(&layer, dest.path(), Limits::default());
            assert!(err.is_err(), "{what}: {err:?}");
            assert_eq!(
                std::fs::read_dir(dest.path()).unwrap().count(),
                0,
                "{what}: something was written"
            );
        }
    }

    #[test]
    fn unpack_is_bounded() {
        let src = tempfile::tempdir().unwrap();
        let list = files(src.path(), &[("a.js", &[1u8; 600]), ("b.js", &[2u8; 600])]);
        let layer = pack(&list).unwrap();
        let small = Limits {
            total_bytes: 1000,
            entries: 10,
        };
        assert!(matches!(
            unpack(&layer.bytes, tempfile::tempdir().unwrap().path(), small),
            Err(Error::TooLarge { what: "bytes", .. })
        ));
        let few = Limits {
            total_bytes: 1 << 20,
            entries: 1,
        };
        assert!(matches!(
            unpack(&layer.bytes, tempfile::tempdir().unwrap().path(), few),
            Err(Error::TooLarge {
                what: "entries",
                ..
            })
        ));
    }

    #[test]
    fn manifests_name_their_blobs() {
        let layer = Blob::new(Bytes::from_static(b"layer"), TAR_GZIP_LAYER);
        let config = Blob::empty();
        assert_eq!(
            config.digest,
            "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
        let (bytes, digest) = manifest(
            FRONTEND_ARTIFACT,
            &config,
            &[&layer],
            &[("org.opencontainers.image.revision", "abc")],
        );
        assert_eq!(digest, sha256_digest(&bytes));
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["artifactType"], FRONTEND_ARTIFACT);
        assert_eq!(v["mediaType"], OCI_MANIFEST);
        assert_eq!(v["layers"][0]["digest"], layer.digest);
        assert_eq!(v["layers"][0]["size"], 5);
        assert_eq!(v["config"]["mediaType"], EMPTY_JSON);
        assert_eq!(v["annotations"]["org.opencontainers.image.revision"], "abc");
    }

    #[test]
    fn verification_round_trips_and_tags_are_safe() {
        let v = Verification {
            environment: "stage".into(),
            digest: format!("sha256:{}", "a".repeat(64)),
            sha: "0123456789abcdef0123456789abcdef01234567".into(),
            frontend: None,
            task_definition: Some(
                "arn:aws:ecs:us-east-1:746669238399:task-definition/stage-cloudshop-backend:8"
                    .into(),
            ),
            run_url: Some("https://github.com/acme/cloudshop/actions/runs/1".into()),
            verified_at: "2026-11-26T12:00:00Z".into(),
            smoke: "passed".into(),
            gates: Default::default(),
        };
        assert_eq!(Verification::from_blob(&v.blob().bytes).unwrap(), v);
        assert_eq!(
            verified_tag("stage", &v.sha),
            "verified-stage-0123456789abcdef0123456789abcdef01234567"
        );
        assert_eq!(frontend_tag("abc123"), "abc123-frontend");
        assert_eq!(verified_tag("my env/x", "t:1"), "verified-my-env-x-t-1");
    }
}
