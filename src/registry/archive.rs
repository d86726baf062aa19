//! Local image archives as a copy source: an OCI image layout (a directory, or a tar of one: `oci-layout`,
//! `index.json`, `blobs/sha256/...`) or a `docker save` tar (`manifest.json`), which gets a Docker v2
//! schema 2 manifest built for it. Blobs are streamed from the file, never loaded whole.
//!
//! `docker save` writes its layers uncompressed; pushed as they are, the image would be several times
//! larger in ECR than a `docker push` makes it, and Fargate would pull it that much slower. So each
//! uncompressed layer is gzipped (streamed, into a scratch folder next to the archive, removed with the
//! [`Archive`]) and the manifest lists the compressed blob. The config, and so its `rootfs.diff_ids`
//! (the digests of the uncompressed layers), stay as they are: the image runs the same content.
//!
//! APIs: none (local files only).

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Component, Path, PathBuf};

use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt};
use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

pub use super::error::ArchiveError as Error;
use super::manifest::{is_digest, sha256_digest, Manifest, DOCKER_MANIFEST, OCI_MANIFEST};

/// Docker's config media type.
const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// A gzip layer.
const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// Small JSON files of an archive are read whole; anything bigger is not what it claims to be.
const MAX_JSON: u64 = 4 * 1024 * 1024;

/// Where a file of the archive is.
#[derive(Debug, Clone)]
enum Loc {
    /// A file of a layout directory.
    File(PathBuf),
    /// A byte range of the tar.
    Range { offset: u64, size: u64 },
}

/// An opened archive: its top manifest and where every blob is.
#[derive(Debug)]
pub struct Archive {
    path: PathBuf,
    blobs: HashMap<String, Loc>,
    /// Manifests built here (docker save) rather than stored in the archive.
    built: HashMap<String, Manifest>,
    top: Manifest,
    /// The gzipped layers of a `docker save` archive; removed when the archive is dropped.
    _scratch: Option<tempfile::TempDir>,
}

/// The files of the archive by their normalised path.
struct Files {
    root: PathBuf,
    is_dir: bool,
    entries: HashMap<String, Loc>,
}

fn normalise(name: &str) -> Option<String> {
    let mut parts = Vec::new();
    for c in Path::new(name).components() {
        match c {
            Component::Normal(p) => parts.push(p.to_str()?.to_string()),
            Component::CurDir => {}
            Component::ParentDir => {
                parts.pop()?;
            }
            // Absolute names in a tar are not ours to follow.
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(parts.join("/"))
}

impl Files {
    fn open(path: &Path) -> Result<Files, Error> {
        let io = |e: std::io::Error| Error::Io {
            path: path.display().to_string(),
            message: e.to_string(),
        };
        let meta = std::fs::metadata(path).map_err(io)?;
        if meta.is_dir() {
            return Ok(Files {
                root: path.to_path_buf(),
                is_dir: true,
                entries: HashMap::new(),
            });
        }
        let file = std::fs::File::open(path).map_err(io)?;
        let mut tar = tar::Archive::new(file);
        let mut entries = HashMap::new();
        let mut links = Vec::new();
        for entry in tar.entries_with_seek().map_err(io)? {
            let entry = entry.map_err(io)?;
            let raw = entry.path().map_err(io)?.to_string_lossy().to_string();
            let Some(name) = normalise(&raw) else {
                continue;
            };
            match entry.header().entry_type() {
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    entries.insert(
                        name,
                        Loc::Range {
                            offset: entry.raw_file_position(),
                            size: entry.size(),
                        },
                    );
                }
                // Old `docker save` links repeated layers to their first copy.
                tar::EntryType::Symlink | tar::EntryType::Link => {
                    if let Some(target) = entry.link_name().map_err(io)? {
                        let target = target.to_string_lossy().to_string();
                        let joined = if entry.header().entry_type() == tar::EntryType::Symlink {
                            match name.rsplit_once('/') {
                                Some((dir, _)) => format!("{dir}/{target}"),
                                None => target,
                            }
                        } else {
                            target
                        };
                        if let Some(t) = normalise(&joined) {
                            links.push((name, t));
                        }
                    }
                }
                _ => {}
            }
        }
        for (name, target) in links {
            if let Some(loc) = entries.get(&target).cloned() {
                entries.insert(name, loc);
            }
        }
        Ok(Files {
            root: path.to_path_buf(),
            is_dir: false,
            entries,
        })
    }

    fn loc(&self, name: &str) -> Option<Loc> {
        let name = normalise(name)?;
        if self.is_dir {
            let p = self.root.join(&name);
            // A symlink out of the layout is refused like a `..` would be.
            let real = p.canonicalize().ok()?;
            let root = self.root.canonicalize().ok()?;
            (real.starts_with(&root) && real.is_file()).then_some(Loc::File(real))
        } else {
            self.entries.get(&name).cloned()
        }
    }

    fn exists(&self, name: &str) -> bool {
        self.loc(name).is_some()
    }

    fn size(&self, loc: &Loc) -> Result<u64, Error> {
        match loc {
            Loc::Range { size, .. } => Ok(*size),
            Loc::File(p) => std::fs::metadata(p)
                .map(|m| m.len())
                .map_err(|e| self.io(e)),
        }
    }

    fn io(&self, e: std::io::Error) -> Error {
        Error::Io {
            path: self.root.display().to_string(),
            message: e.to_string(),
        }
    }

    fn format(&self, message: impl Into<String>) -> Error {
        Error::Format {
            path: self.root.display().to_string(),
            message: message.into(),
        }
    }

    fn reader(&self, loc: &Loc) -> Result<Box<dyn Read>, Error> {
        match loc {
            Loc::File(p) => Ok(Box::new(std::fs::File::open(p).map_err(|e| self.io(e))?)),
            Loc::Range { offset, size } => {
                let mut f = std::fs::File::open(&self.root).map_err(|e| self.io(e))?;
                f.seek(SeekFrom::Start(*offset)).map_err(|e| self.io(e))?;
                Ok(Box::new(f.take(*size)))
            }
        }
    }

    fn read_small(&self, name: &str) -> Result<Vec<u8>, Error> {
        let loc = self
            .loc(name)
            .ok_or_else(|| self.format(format!("`{name}` is missing")))?;
        if self.size(&loc)? > MAX_JSON {
            return Err(self.format(format!("`{name}` is larger than 4 MiB")));
        }
        let mut buf = Vec::new();
        self.reader(&loc)?
            .read_to_end(&mut buf)
            .map_err(|e| self.io(e))?;
        Ok(buf)
    }

    /// sha256 and size of a file, read in chunks.
    fn hash(&self, loc: &Loc) -> Result<(String, u64, bool), Error> {
        let mut r = self.reader(loc)?;
        let mut h = Sha256::new();
        let mut buf = vec![0u8; 256 * 1024];
        let mut total = 0u64;
        let mut gzip = false;
        loop {
            let n = r.read(&mut buf).map_err(|e| self.io(e))?;
            if n == 0 {
                break;
            }
            if total == 0 && n >= 2 && buf[0] == 0x1f && buf[1] == 0x8b {
                gzip = true;
            }
            h.update(&buf[..n]);
            total += n as u64;
        }
        Ok((format!("sha256:{}", hex::encode(h.finalize())), total, gzip))
    }
}

impl Files {
    /// Is the file gzip (its first two bytes `1f 8b`)?
    fn is_gzip(&self, loc: &Loc) -> Result<bool, Error> {
        super::gzip::is_gzip(self.reader(loc)?).map_err(|e| self.io(e))
    }

    /// Gzip the file at `loc` into `dest`, streamed; the sha256 and size of the compressed file.
    fn gzip_to(&self, loc: &Loc, dest: &Path) -> Result<(String, u64), Error> {
        super::gzip::compress_to(self.reader(loc)?, dest).map_err(|e| self.io(e))
    }
}

fn blob_name(digest: &str) -> Option<String> {
    let hex = digest
        .strip_prefix("sha256:")
        .filter(|_| is_digest(digest))?;
    Some(format!("blobs/sha256/{hex}"))
}

/// Where a file is, as a key: two names of one file (a link) give the same key.
fn loc_key(loc: &Loc) -> String {
    match loc {
        Loc::File(p) => p.display().to_string(),
        Loc::Range { offset, .. } => offset.to_string(),
    }
}

/// A scratch folder next to the archive (the workspace is writable; a scratch image has no `/tmp`).
fn scratch_dir(files: &Files) -> Result<tempfile::TempDir, Error> {
    let parent = match files.root.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    tempfile::Builder::new()
        .prefix(".cloudshop-deploy-layers-")
        .tempdir_in(parent)
        .map_err(|e| files.io(e))
}

impl Archive {
    /// Open an archive and pick the image for `tag` (the only image, or the one named with the tag).
    /// Blocking: hashes `docker save` layers; call it on a blocking thread.
    pub(crate) fn open(path: &Path, tag: &str) -> Result<Archive, Error> {
        let files = Files::open(path)?;
        if files.exists("oci-layout") && files.exists("index.json") {
            // Docker 25+ writes both an OCI layout and `manifest.json`, with uncompressed layers: read
            // it as a `docker save` archive, so its layers are compressed.
            let layout = Self::open_layout(files, tag)?;
            if layout.has_uncompressed_layers() {
                let files = Files::open(path)?;
                if files.exists("manifest.json") {
                    return Self::open_docker(files, tag);
                }
            }
            Ok(layout)
        } else if files.exists("manifest.json") {
            Self::open_docker(files, tag)
        } else {
            Err(files.format("neither an OCI image layout (`oci-layout`, `index.json`) nor a `docker save` archive (`manifest.json`)"))
        }
    }

    fn open_layout(files: Files, tag: &str) -> Result<Archive, Error> {
        let index: serde_json::Value = serde_json::from_slice(&files.read_small("index.json")?)
            .map_err(|e| files.format(format!("`index.json` is not JSON: {e}")))?;
        let list = index
            .get("manifests")
            .and_then(|m| m.as_array())
            .cloned()
            .unwrap_or_default();
        let name_of = |d: &serde_json::Value| {
            d.pointer("/annotations/org.opencontainers.image.ref.name")
                .and_then(|v| v.as_str())
                .map(str::to_string)
        };
        let named: Vec<&serde_json::Value> = list
            .iter()
            .filter(|d| name_of(d).is_some_and(|n| n == tag || n.ends_with(&format!(":{tag}"))))
            .collect();
        let chosen = match (named.as_slice(), list.as_slice()) {
            ([one], _) => *one,
            ([], [only]) => only,
            _ => {
                let names: Vec<String> = list.iter().filter_map(name_of).collect();
                return Err(files.format(format!(
                    "`index.json` has {} images and none is named `{tag}` (names: {})",
                    list.len(),
                    if names.is_empty() {
                        "none".into()
                    } else {
                        names.join(", ")
                    }
                )));
            }
        };
        let digest = chosen
            .get("digest")
            .and_then(|d| d.as_str())
            .ok_or_else(|| files.format("an `index.json` entry has no digest"))?
            .to_string();
        let media_type = chosen
            .get("mediaType")
            .and_then(|d| d.as_str())
            .unwrap_or(OCI_MANIFEST)
            .to_string();
        let mut blobs = HashMap::new();
        if files.is_dir {
            let dir = files.root.join("blobs/sha256");
            let read = std::fs::read_dir(&dir).map_err(|e| files.io(e))?;
            for e in read.flatten() {
                let name = e.file_name().to_string_lossy().to_string();
                let d = format!("sha256:{name}");
                if let Some(loc) = blob_name(&d).and_then(|n| files.loc(&n)) {
                    blobs.insert(d, loc);
                }
            }
        } else {
            for (name, loc) in &files.entries {
                if let Some(hex) = name.strip_prefix("blobs/sha256/") {
                    blobs.insert(format!("sha256:{hex}"), loc.clone());
                }
            }
        }
        let mut archive = Archive {
            path: files.root.clone(),
            blobs,
            built: HashMap::new(),
            top: Manifest {
                bytes: Bytes::new(),
                media_type: String::new(),
                digest: String::new(),
            },
            _scratch: None,
        };
        let top = archive.read_manifest(&files, &digest, &media_type)?;
        archive.top = top;
        Ok(archive)
    }

    fn read_manifest(
        &self,
        files: &Files,
        digest: &str,
        media_type: &str,
    ) -> Result<Manifest, Error> {
        let name = blob_name(digest)
            .ok_or_else(|| files.format(format!("`{digest}` is not a sha256 digest")))?;
        let bytes = Bytes::from(files.read_small(&name)?);
        let m = Manifest::from_bytes(bytes, media_type).map_err(|e| files.format(e.to_string()))?;
        if m.digest != digest {
            return Err(files.format(format!("blob `{digest}` hashes to {}", m.digest)));
        }
        Ok(m)
    }

    /// A `docker save` tarball: the image tagged `tag` (or the only one), its layers gzipped where
    /// they are plain tars, under a Docker manifest built here.
    fn open_docker(files: Files, tag: &str) -> Result<Archive, Error> {
        let chosen = Self::docker_image(&files, tag)?;
        let mut blobs = HashMap::new();
        let config_name = chosen
            .get("Config")
            .and_then(|c| c.as_str())
            .ok_or_else(|| files.format("`manifest.json` has no `Config`"))?;
        let config_loc = files
            .loc(config_name)
            .ok_or_else(|| files.format(format!("`{config_name}` is missing")))?;
        let config = files.read_small(config_name)?;
        let config_digest = sha256_digest(&config);
        blobs.insert(config_digest.clone(), config_loc);
        let (layers, scratch) = Self::docker_layers(&files, &chosen, &mut blobs)?;
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST,
            "config": { "mediaType": DOCKER_CONFIG, "size": config.len(), "digest": config_digest },
            "layers": layers,
        });
        let bytes =
            serde_json::to_vec_pretty(&manifest).map_err(|e| files.format(e.to_string()))?;
        let top = Manifest::from_bytes(Bytes::from(bytes), DOCKER_MANIFEST)
            .map_err(|e| files.format(e.to_string()))?;
        let mut built = HashMap::new();
        built.insert(top.digest.clone(), top.clone());
        Ok(Archive {
            path: files.root,
            blobs,
            built,
            top,
            _scratch: scratch,
        })
    }

    /// The entry of `manifest.json` tagged `tag`, or the only entry.
    fn docker_image(files: &Files, tag: &str) -> Result<serde_json::Value, Error> {
        let list: serde_json::Value =
            serde_json::from_slice(&files.read_small("manifest.json")?)
                .map_err(|e| files.format(format!("`manifest.json` is not JSON: {e}")))?;
        let list = list.as_array().cloned().unwrap_or_default();
        let tags_of = |d: &serde_json::Value| -> Vec<String> {
            d.get("RepoTags")
                .and_then(|t| t.as_array())
                .into_iter()
                .flatten()
                .filter_map(|t| t.as_str().map(str::to_string))
                .collect()
        };
        let named: Vec<&serde_json::Value> = list
            .iter()
            .filter(|d| tags_of(d).iter().any(|t| t.ends_with(&format!(":{tag}"))))
            .collect();
        match (named.as_slice(), list.as_slice()) {
            ([one], _) => Ok((*one).clone()),
            ([], [only]) => Ok(only.clone()),
            _ => Err(files.format(format!(
                "`manifest.json` has {} images and none is tagged `{tag}`",
                list.len()
            ))),
        }
    }

    /// The layers of the `chosen` image as manifest descriptors, each gzipped (into a scratch folder,
    /// returned to live as long as the archive) unless it already is; every layer joins `blobs`.
    fn docker_layers(
        files: &Files,
        chosen: &serde_json::Value,
        blobs: &mut HashMap<String, Loc>,
    ) -> Result<(Vec<serde_json::Value>, Option<tempfile::TempDir>), Error> {
        let mut layers = Vec::new();
        let mut scratch: Option<tempfile::TempDir> = None;
        let mut compressed: HashMap<String, (String, u64, Loc)> = HashMap::new();
        for layer in chosen
            .get("Layers")
            .and_then(|l| l.as_array())
            .into_iter()
            .flatten()
        {
            let name = layer
                .as_str()
                .ok_or_else(|| files.format("a layer path is not a string"))?;
            let loc = files
                .loc(name)
                .ok_or_else(|| files.format(format!("layer `{name}` is missing")))?;
            let (digest, size, loc) = match compressed.get(&loc_key(&loc)) {
                // Old `docker save` links a repeated layer to its first copy: compress it once.
                Some(done) => done.clone(),
                None if files.is_gzip(&loc)? => {
                    let (digest, size, _) = files.hash(&loc)?;
                    (digest, size, loc)
                }
                None => {
                    let dir = match &scratch {
                        Some(d) => d,
                        None => scratch.insert(scratch_dir(files)?),
                    };
                    let dest = dir.path().join(format!("layer-{}.tar.gz", layers.len()));
                    let (digest, size) = files.gzip_to(&loc, &dest)?;
                    let done = (digest, size, Loc::File(dest));
                    compressed.insert(loc_key(&loc), done.clone());
                    done
                }
            };
            layers.push(serde_json::json!({
                "mediaType": DOCKER_LAYER_GZIP,
                "size": size,
                "digest": digest,
            }));
            blobs.insert(digest, loc);
        }
        Ok((layers, scratch))
    }

    /// Is the top an image whose layers include an uncompressed tar?
    fn has_uncompressed_layers(&self) -> bool {
        match self.top.parse() {
            Ok(super::manifest::Parsed::Image(blobs)) => blobs.iter().any(|b| {
                b.media_type == "application/vnd.oci.image.layer.v1.tar"
                    || b.media_type == "application/vnd.docker.image.rootfs.diff.tar"
            }),
            _ => false,
        }
    }

    /// The image's top manifest (an image or an index).
    pub(crate) fn top(&self) -> &Manifest {
        &self.top
    }

    fn missing(&self, digest: &str) -> Error {
        Error::Format {
            path: self.path.display().to_string(),
            message: format!("blob `{digest}` is not in the archive"),
        }
    }

    async fn open_blob(&self, digest: &str) -> Result<(tokio::fs::File, u64), Error> {
        let loc = self.blobs.get(digest).ok_or_else(|| self.missing(digest))?;
        let io = |e: std::io::Error| Error::Io {
            path: self.path.display().to_string(),
            message: e.to_string(),
        };
        match loc {
            Loc::File(p) => {
                let f = tokio::fs::File::open(p).await.map_err(io)?;
                let len = f.metadata().await.map_err(io)?.len();
                Ok((f, len))
            }
            Loc::Range { offset, size } => {
                let mut f = tokio::fs::File::open(&self.path).await.map_err(io)?;
                f.seek(SeekFrom::Start(*offset)).await.map_err(io)?;
                Ok((f, *size))
            }
        }
    }

    /// A manifest of the archive by digest (verified).
    pub(super) async fn manifest(&self, digest: &str) -> Result<Manifest, Error> {
        if let Some(m) = self.built.get(digest) {
            return Ok(m.clone());
        }
        let (f, len) = self.open_blob(digest).await?;
        if len > MAX_JSON {
            return Err(self.missing(digest));
        }
        let mut buf = Vec::new();
        f.take(len)
            .read_to_end(&mut buf)
            .await
            .map_err(|e| Error::Io {
                path: self.path.display().to_string(),
                message: e.to_string(),
            })?;
        let m =
            Manifest::from_bytes(Bytes::from(buf), OCI_MANIFEST).map_err(|e| Error::Format {
                path: self.path.display().to_string(),
                message: e.to_string(),
            })?;
        if m.digest != digest {
            return Err(Error::Format {
                path: self.path.display().to_string(),
                message: format!("blob `{digest}` hashes to {}", m.digest),
            });
        }
        Ok(m)
    }

    /// Stream a blob from the file (64 KiB reads).
    pub(super) async fn blob(
        &self,
        digest: &str,
        size: u64,
    ) -> Result<BoxStream<'static, std::io::Result<Bytes>>, Error> {
        let (f, len) = self.open_blob(digest).await?;
        if size != 0 && size != len {
            return Err(Error::Format {
                path: self.path.display().to_string(),
                message: format!("blob `{digest}` has {len} bytes, the manifest says {size}"),
            });
        }
        Ok(tokio_util::io::ReaderStream::with_capacity(f.take(len), 64 * 1024).boxed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_normalised_and_escapes_refused() {
        assert_eq!(
            normalise("./blobs/sha256/ab").as_deref(),
            Some("blobs/sha256/ab")
        );
        assert_eq!(normalise("a/../b").as_deref(), Some("b"));
        assert_eq!(normalise("../x"), None);
        assert_eq!(normalise("/etc/passwd"), None);
        assert!(blob_name("sha256:../../etc").is_none());
    }

    #[tokio::test]
    async fn docker_save_tar_gets_a_schema2_manifest_with_gzip_layers() {
        let dir = tempfile::tempdir().unwrap();
        let tar_path = dir.path().join("image.tar");
        let config =
            br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
        let layer = vec![7u8; 300_000];
        {
            let mut b = tar::Builder::new(std::fs::File::create(&tar_path).unwrap());
            let mut add = |name: &str, data: &[u8]| {
                let mut h = tar::Header::new_gnu();
                h.set_size(data.len() as u64);
                h.set_mode(0o644);
                h.set_cksum();
                b.append_data(&mut h, name, data).unwrap();
            };
            add("abc.json", config);
            add("l1/layer.tar", &layer);
            add(
                "manifest.json",
                br#"[{"Config":"abc.json","RepoTags":["app:v1"],"Layers":["l1/layer.tar","l2/layer.tar"]}]"#,
            );
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_size(0);
            h.set_cksum();
            b.append_link(&mut h, "l2/layer.tar", "../l1/layer.tar")
                .unwrap();
            b.finish().unwrap();
        }
        let a = Archive::open(&tar_path, "v1").unwrap();
        let top = a.top().clone();
        assert_eq!(top.media_type, DOCKER_MANIFEST);
        let super::super::manifest::Parsed::Image(blobs) = top.parse().unwrap() else {
            panic!()
        };
        // The symlinked second layer is the same blob: listed once.
        assert_eq!(blobs.len(), 2);
        assert_eq!(blobs[0].digest, sha256_digest(config));
        assert_eq!(blobs[1].media_type, DOCKER_LAYER_GZIP);
        let mut s = a.blob(&blobs[1].digest, blobs[1].size).await.unwrap();
        let mut got = Vec::new();
        while let Some(c) = s.next().await {
            got.extend_from_slice(&c.unwrap());
        }
        assert_eq!(sha256_digest(&got), blobs[1].digest);
        assert_eq!(got.len() as u64, blobs[1].size);
        assert!(got.len() < layer.len() / 10, "not compressed");
        let mut plain = Vec::new();
        flate2::read::GzDecoder::new(&got[..])
            .read_to_end(&mut plain)
            .unwrap();
        assert_eq!(plain, layer);
        assert_eq!(a.manifest(&top.digest).await.unwrap().digest, top.digest);
        // The same archive gives the same manifest (the digest a rerun compares), and the scratch
        // folder goes with the archive.
        let scratch: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(".cloudshop"))
            .collect();
        assert_eq!(scratch.len(), 1);
        drop(a);
        assert_eq!(
            Archive::open(&tar_path, "v1").unwrap().top().digest,
            top.digest
        );
        assert!(!scratch[0].path().exists());
    }

    /// Docker 25+ `docker save`: an OCI layout with uncompressed layers, plus `manifest.json`.
    #[test]
    fn a_docker_25_save_is_read_as_docker_save_and_its_layers_compressed() {
        let dir = tempfile::tempdir().unwrap();
        let tar_path = dir.path().join("image.tar");
        let config =
            br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
        let layer = vec![5u8; 200_000];
        let hex_of = |d: String| d.trim_start_matches("sha256:").to_string();
        let (c, l) = (hex_of(sha256_digest(config)), hex_of(sha256_digest(&layer)));
        let manifest = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:{c}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:{l}","size":{}}}]}}"#,
            config.len(),
            layer.len()
        );
        let m = hex_of(sha256_digest(manifest.as_bytes()));
        let index = format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"sha256:{m}","size":{},"annotations":{{"org.opencontainers.image.ref.name":"v1"}}}}]}}"#,
            manifest.len()
        );
        let docker = format!(
            r#"[{{"Config":"blobs/sha256/{c}","RepoTags":["app:v1"],"Layers":["blobs/sha256/{l}"]}}]"#
        );
        {
            let mut b = tar::Builder::new(std::fs::File::create(&tar_path).unwrap());
            for (name, data) in [
                (
                    "oci-layout".to_string(),
                    &br#"{"imageLayoutVersion":"1.0.0"}"#[..],
                ),
                ("index.json".to_string(), index.as_bytes()),
                ("manifest.json".to_string(), docker.as_bytes()),
                (format!("blobs/sha256/{c}"), &config[..]),
                (format!("blobs/sha256/{l}"), &layer[..]),
                (format!("blobs/sha256/{m}"), manifest.as_bytes()),
            ] {
                let mut h = tar::Header::new_gnu();
                h.set_size(data.len() as u64);
                h.set_mode(0o644);
                h.set_cksum();
                b.append_data(&mut h, name, data).unwrap();
            }
            b.finish().unwrap();
        }
        let a = Archive::open(&tar_path, "v1").unwrap();
        assert_eq!(a.top().media_type, DOCKER_MANIFEST);
        let super::super::manifest::Parsed::Image(blobs) = a.top().parse().unwrap() else {
            panic!()
        };
        assert_eq!(blobs[0].digest, sha256_digest(config));
        assert_eq!(blobs[1].media_type, DOCKER_LAYER_GZIP);
        assert!(blobs[1].size < layer.len() as u64 / 10);
    }

    #[test]
    fn not_an_archive_is_a_format_error() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            Archive::open(dir.path(), "v1"),
            Err(Error::Format { .. })
        ));
        assert!(matches!(
            Archive::open(&dir.path().join("nope.tar"), "v1"),
            Err(Error::Io { .. })
        ));
    }
}
