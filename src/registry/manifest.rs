//! The manifest model: a manifest kept byte for byte with its media type and digest, what it refers to
//! (an index's child manifests, an image's config and layers), and the media types this crate reads and
//! asks for. Pure: no I/O.

use std::fmt;

use bytes::Bytes;
use sha2::{Digest as _, Sha256};

use super::error::Error;

pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker image manifest, schema 2.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Every manifest type this crate copies: the `Accept` of registry manifest requests and the
/// `acceptedMediaTypes` of ECR `BatchGetImage`, so the manifest comes back as stored (no conversion).
pub const ACCEPTED: [&str; 4] = [OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST];

/// `sha256:` and 64 lowercase hex digits: the only digest form this crate puts into a URL, a path or an
/// image URI (anything else from a registry, ECR or an archive could walk a path or forge a URL).
pub fn is_digest(s: &str) -> bool {
    s.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    })
}

/// `sha256:<hex>` of some bytes.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// A manifest exactly as the registry stores it.
#[derive(Clone)]
pub struct Manifest {
    /// The bytes (never re-serialised: the digest is their hash).
    pub bytes: Bytes,
    /// Its media type (`Content-Type`).
    pub media_type: String,
    /// `sha256:` of the bytes.
    pub digest: String,
}

impl fmt::Debug for Manifest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Manifest")
            .field("media_type", &self.media_type)
            .field("digest", &self.digest)
            .field("len", &self.bytes.len())
            .finish()
    }
}

/// A blob or manifest named by a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    /// `sha256:...`
    pub digest: String,
    /// Size in bytes.
    pub size: u64,
    pub media_type: String,
}

/// What a manifest refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// An image index / manifest list: its child manifests.
    Index(Vec<Descriptor>),
    /// An image: its config and layers (blobs), foreign layers left out.
    Image(Vec<Descriptor>),
}

impl Manifest {
    /// Wrap bytes read from somewhere, computing the digest. The media type comes from the JSON when it has
    /// one (what registries and ECR trust), else from `fallback`.
    pub(super) fn from_bytes(bytes: Bytes, fallback: &str) -> Result<Manifest, Error> {
        let value: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| Error::Manifest {
                object: sha256_digest(&bytes),
                message: format!("not JSON: {e}"),
            })?;
        let media_type = value
            .get("mediaType")
            .and_then(|v| v.as_str())
            .unwrap_or(fallback)
            .to_string();
        Ok(Manifest {
            digest: sha256_digest(&bytes),
            bytes,
            media_type,
        })
    }

    /// The descriptors this manifest refers to.
    pub(super) fn parse(&self) -> Result<Parsed, Error> {
        let bad = |message: String| Error::Manifest {
            object: self.digest.clone(),
            message,
        };
        let value: serde_json::Value =
            serde_json::from_slice(&self.bytes).map_err(|e| bad(format!("not JSON: {e}")))?;
        let descriptor = |v: &serde_json::Value| -> Result<Descriptor, Error> {
            let digest = v
                .get("digest")
                .and_then(|d| d.as_str())
                .filter(|d| is_digest(d))
                .ok_or_else(|| {
                    bad(
                        "a descriptor has no `digest` of the form `sha256:` + 64 lowercase hex"
                            .into(),
                    )
                })?;
            Ok(Descriptor {
                digest: digest.to_string(),
                size: v.get("size").and_then(|s| s.as_u64()).unwrap_or(0),
                media_type: v
                    .get("mediaType")
                    .and_then(|m| m.as_str())
                    .unwrap_or_default()
                    .to_string(),
            })
        };
        let is_index = matches!(self.media_type.as_str(), OCI_INDEX | DOCKER_LIST)
            || (value.get("manifests").is_some() && value.get("layers").is_none());
        if is_index {
            let list = value
                .get("manifests")
                .and_then(|m| m.as_array())
                .ok_or_else(|| bad("an index without `manifests`".into()))?;
            return Ok(Parsed::Index(
                list.iter().map(descriptor).collect::<Result<_, _>>()?,
            ));
        }
        if value.get("schemaVersion").and_then(|v| v.as_u64()) == Some(1) {
            return Err(bad(
                "Docker schema 1 manifests are deprecated and not copied".into(),
            ));
        }
        let config = value
            .get("config")
            .ok_or_else(|| bad("an image manifest without `config`".into()))?;
        let mut blobs = vec![descriptor(config)?];
        for layer in value
            .get("layers")
            .and_then(|l| l.as_array())
            .into_iter()
            .flatten()
        {
            // Foreign layers (Windows base layers) live elsewhere and are never pushed.
            if layer.get("urls").is_some_and(|u| u.is_array()) {
                continue;
            }
            let d = descriptor(layer)?;
            if !blobs.iter().any(|b| b.digest == d.digest) {
                blobs.push(d);
            }
        }
        Ok(Parsed::Image(blobs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(json: &str, mt: &str) -> Manifest {
        Manifest::from_bytes(Bytes::from(json.to_string()), mt).unwrap()
    }

    const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

    #[test]
    fn image_manifest_lists_config_then_unique_layers_without_foreign() {
        let json = format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST}",
            "config":{{"mediaType":"c","digest":"{D1}","size":3}},
            "layers":[{{"mediaType":"l","digest":"{D2}","size":5}},{{"mediaType":"l","digest":"{D2}","size":5}},
                      {{"mediaType":"f","digest":"{D1}","size":9,"urls":["https://x"]}}]}}"#
        );
        let m = manifest(&json, "ignored");
        assert_eq!(m.media_type, DOCKER_MANIFEST);
        assert_eq!(m.digest, sha256_digest(json.as_bytes()));
        let Parsed::Image(blobs) = m.parse().unwrap() else {
            panic!("not an image")
        };
        assert_eq!(
            blobs.iter().map(|b| b.digest.as_str()).collect::<Vec<_>>(),
            [D1, D2]
        );
        assert_eq!(blobs[1].size, 5);
    }

    #[test]
    fn index_without_media_type_is_recognised_by_its_manifests() {
        let json = format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"{D1}","size":1}}]}}"#
        );
        let m = manifest(&json, OCI_INDEX);
        assert!(matches!(m.parse().unwrap(), Parsed::Index(c) if c.len() == 1));
    }

    #[test]
    fn schema1_and_bad_digests_are_refused() {
        assert!(manifest(r#"{"schemaVersion":1,"fsLayers":[]}"#, "x")
            .parse()
            .is_err());
        let bad = r#"{"schemaVersion":2,"config":{"digest":"md5:abc","size":1},"layers":[]}"#;
        assert!(matches!(
            manifest(bad, OCI_MANIFEST).parse(),
            Err(Error::Manifest { .. })
        ));
        assert!(Manifest::from_bytes(Bytes::from_static(b"not json"), OCI_MANIFEST).is_err());
    }

    #[test]
    fn digests_are_sha256_and_64_lowercase_hex() {
        let hex64 = "0123456789abcdef".repeat(4);
        let cases: &[(String, bool)] = &[
            (format!("sha256:{hex64}"), true),
            (D1.to_string(), true),
            (format!("sha256:{}", hex64.to_uppercase()), false),
            (format!("sha256:{}", &hex64[..63]), false),
            (format!("sha256:{hex64}0"), false),
            (format!("sha512:{hex64}"), false),
            (format!("SHA256:{hex64}"), false),
            (hex64.clone(), false),
            (format!("sha256:{}", "../".repeat(21) + "a"), false),
            (format!("sha256:{}%2F", &hex64[..61]), false),
            (format!("sha256:{}?x", &hex64[..62]), false),
            (format!(" sha256:{hex64}"), false),
            (format!("sha256:{hex64}\n"), false),
            (String::new(), false),
            ("sha256:".into(), false),
        ];
        for (d, want) in cases {
            assert_eq!(is_digest(d), *want, "{d:?}");
        }
    }

    #[test]
    fn a_hostile_descriptor_digest_is_refused() {
        // 71 characters starting with `sha256:`, as the old check wanted, but a path walk.
        let evil = format!("sha256:{}", "../".repeat(21) + "a");
        assert_eq!(evil.len(), 71);
        let json = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"digest":"{D1}","size":1}},"layers":[{{"digest":"{evil}","size":1}}]}}"#
        );
        let err = manifest(&json, OCI_MANIFEST)
            .parse()
            .unwrap_err()
            .to_string();
        assert!(err.contains("64 lowercase hex"), "{err}");
        let index =
            format!(r#"{{"schemaVersion":2,"manifests":[{{"digest":"{evil}","size":1}}]}}"#);
        assert!(manifest(&index, OCI_INDEX).parse().is_err());
    }
}
