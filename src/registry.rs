//! A small OCI distribution (registry v2) client and the image copy built on it: manifests byte for byte
//! (so digests never change), blobs checked with HEAD, mounted across repositories of one registry, else
//! streamed from the source into a chunked upload (never a whole layer in memory), several at once.
//!
//! APIs: the OCI distribution spec over HTTPS (`/v2/<repo>/manifests/<ref>`, `/v2/<repo>/blobs/<digest>`,
//! `/v2/<repo>/blobs/uploads/`, `/v2/<repo>/tags/list`), authenticated with the basic token of ECR
//! `GetAuthorizationToken` (fetched by the caller). No AWS API is called here.

pub mod archive;
pub mod artifact;

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};
use reqwest::header::{HeaderMap, ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use reqwest::{Method, StatusCode};
use serde::Serialize;
use sha2::{Digest as _, Sha256};

/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// Docker manifest list.
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker image manifest, schema 2.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// Registries refuse manifests over 4 MiB; refusing to read more keeps a broken server from filling memory.
const MAX_MANIFEST: usize = 4 * 1024 * 1024;
/// A child manifest of an index is an image; deeper nesting is not something images do.
const MAX_DEPTH: usize = 2;

/// A registry operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request did not complete (connection, TLS, timeout).
    #[error("failed to {verb} `{object}`: {message}")]
    Transport {
        /// What was being done (`get manifest`, `upload blob`...).
        verb: &'static str,
        /// The repository, reference or digest.
        object: String,
        /// reqwest's error chain.
        message: String,
    },
    /// The registry answered with an unexpected status.
    #[error("failed to {verb} `{object}`: HTTP {status}: {code}: {message}")]
    Status {
        /// What was being done.
        verb: &'static str,
        /// The repository, reference or digest.
        object: String,
        /// HTTP status.
        status: u16,
        /// The registry's error code (`MANIFEST_UNKNOWN`, `DENIED`...), or `-`.
        code: String,
        /// The registry's message.
        message: String,
    },
    /// Bytes that do not hash to the digest they were asked for (or reported with).
    #[error("failed to verify `{object}`: expected digest {expected}, got {actual}")]
    DigestMismatch {
        /// What was checked.
        object: String,
        /// The digest it should have.
        expected: String,
        /// The digest it has.
        actual: String,
    },
    /// A manifest that cannot be copied (bad JSON, unknown type, too big, too deep).
    #[error("failed to read manifest `{object}`: {message}")]
    Manifest {
        /// The manifest reference.
        object: String,
        /// What is wrong.
        message: String,
    },
    /// A manifest the copy needs is not in the source.
    #[error("failed to find manifest `{0}` in the source")]
    MissingManifest(String),
    /// The local archive could not be read.
    #[error(transparent)]
    Archive(#[from] archive::Error),
}

impl Error {
    /// One line telling the reader how to fix it.
    pub fn hint(&self) -> String {
        match self {
            Error::Transport { .. } => "check that the registry is reachable from the runner (and `registry-url`, if set); the copy is safe to re-run".into(),
            Error::Status { status: 401 | 403, .. } => "the role needs ecr:GetAuthorizationToken, ecr:BatchGetImage and ecr:GetDownloadUrlForLayer on the source repository, and ecr:BatchCheckLayerAvailability, ecr:InitiateLayerUpload, ecr:UploadLayerPart, ecr:CompleteLayerUpload and ecr:PutImage on the target (cross-account: a repository policy on the source)".into(),
            Error::Status { status: 404, .. } => "the repository or image is not in the registry: check the repository names and `registry-url`".into(),
            Error::Status { .. } => "the registry refused the request; the copy is idempotent, so re-running the job is safe".into(),
            Error::DigestMismatch { .. } => "the bytes changed in transit or in the source; re-run, and if it persists check the source image".into(),
            Error::Manifest { .. } | Error::MissingManifest(_) => "the source image is not a well-formed OCI/Docker image; push it again from the build".into(),
            Error::Archive(e) => e.hint(),
        }
    }
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
    /// Media type.
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
    pub fn from_bytes(bytes: Bytes, fallback: &str) -> Result<Manifest, Error> {
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
    pub fn parse(&self) -> Result<Parsed, Error> {
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
                .filter(|d| d.starts_with("sha256:") && d.len() == 71)
                .ok_or_else(|| bad("a descriptor has no sha256 `digest`".into()))?;
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

/// Timeouts and limits of registry traffic.
#[derive(Debug, Clone)]
pub struct Options {
    /// TCP connect timeout.
    pub connect_timeout: Duration,
    /// Whole-request timeout of the small requests (manifests, HEADs, upload sessions).
    pub request_timeout: Duration,
    /// Longest wait for the next piece of a blob from the source (a whole layer can take minutes, so there
    /// is no whole-transfer timeout on the download).
    pub stall_timeout: Duration,
    /// Slowest upload tolerated, in bytes per second: an upload's timeout is `request_timeout` plus its
    /// size at this rate.
    pub min_throughput: u64,
    /// Blobs transferred at once.
    pub concurrency: usize,
    /// Attempts per blob (a failed attempt starts a new upload session).
    pub attempts: u32,
    /// Base delay between attempts (jittered, doubling).
    pub backoff: Duration,
    /// Try a cross-repository mount when source and target are one registry.
    pub mount: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
            stall_timeout: Duration::from_secs(60),
            min_throughput: 256 * 1024,
            concurrency: 4,
            attempts: 3,
            backoff: Duration::from_millis(500),
            mount: true,
        }
    }
}

/// One registry: a base URL and its credentials.
#[derive(Clone)]
pub struct Registry {
    http: reqwest::Client,
    base: url::Url,
    request_timeout: Duration,
    stall_timeout: Duration,
    min_throughput: u64,
    /// `Basic <token>`; never printed (see the `Debug` impl).
    authorization: Option<String>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("base", &self.base.as_str())
            .field(
                "authorization",
                &self.authorization.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// What a mount attempt gave.
enum Mount {
    Mounted,
    /// The registry did not mount; it opened an upload session instead.
    Upload(url::Url),
}

/// How one blob reached the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BlobOutcome {
    Present,
    Mounted,
    Copied(u64),
}

fn transport(verb: &'static str, object: &str, e: reqwest::Error) -> Error {
    let mut message = e.to_string();
    let mut src = std::error::Error::source(&e);
    while let Some(cause) = src {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        src = cause.source();
    }
    Error::Transport {
        verb,
        object: object.to_string(),
        message,
    }
}

/// Turn a non-success response into an [`Error::Status`] with the registry's own error code.
async fn status_error(verb: &'static str, object: &str, resp: reqwest::Response) -> Error {
    let status = resp.status().as_u16();
    let body = resp.bytes().await.unwrap_or_default();
    let parsed: Option<serde_json::Value> = serde_json::from_slice(&body).ok();
    let first = parsed
        .as_ref()
        .and_then(|v| v.get("errors"))
        .and_then(|e| e.get(0));
    let field = |k: &str| {
        first
            .and_then(|e| e.get(k))
            .and_then(|v| v.as_str())
            .map(str::to_string)
    };
    Error::Status {
        verb,
        object: object.to_string(),
        status,
        code: field("code").unwrap_or_else(|| "-".into()),
        message: field("message").unwrap_or_else(|| {
            String::from_utf8_lossy(&body[..body.len().min(200)])
                .trim()
                .to_string()
        }),
    }
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

fn accept_all() -> String {
    [OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST].join(", ")
}

impl Registry {
    /// A client for the registry at `base` (`https://ACCOUNT.dkr.ecr.REGION.amazonaws.com`, or a
    /// `registry-url` override). `basic_token` is ECR's `authorizationToken` (base64 of `AWS:password`);
    /// the caller masks it before it gets here.
    pub fn new(
        base: url::Url,
        basic_token: Option<&str>,
        options: &Options,
    ) -> Result<Registry, Error> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("cloudshop-deploy/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(options.connect_timeout)
            .build()
            .map_err(|e| transport("build a client for", base.as_str(), e))?;
        Ok(Registry {
            http,
            base,
            request_timeout: options.request_timeout,
            stall_timeout: options.stall_timeout,
            min_throughput: options.min_throughput.max(1),
            authorization: basic_token.map(|t| format!("Basic {t}")),
        })
    }

    /// The base URL.
    pub fn base(&self) -> &url::Url {
        &self.base
    }

    /// `host[:port]` of the registry, as it appears in image URIs.
    pub fn host(&self) -> String {
        let host = self.base.host_str().unwrap_or_default();
        match self.base.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_string(),
        }
    }

    fn url(&self, path: &str) -> Result<url::Url, Error> {
        self.base.join(path).map_err(|e| Error::Manifest {
            object: path.to_string(),
            message: format!("not a valid registry path: {e}"),
        })
    }

    /// A request with the small-request timeout.
    fn request(&self, method: Method, url: url::Url) -> reqwest::RequestBuilder {
        self.streaming(method, url).timeout(self.request_timeout)
    }

    /// A request without a whole-request timeout (blob bodies); callers bound it another way.
    fn streaming(&self, method: Method, url: url::Url) -> reqwest::RequestBuilder {
        let rb = self.http.request(method, url);
        match &self.authorization {
            // reqwest drops Authorization on a redirect to another host (ECR sends blob GETs to S3).
            Some(a) => rb.header(AUTHORIZATION, a),
            None => rb,
        }
    }

    /// GET a manifest by tag or digest; `None` when the registry does not have it.
    pub async fn get_manifest(
        &self,
        repo: &str,
        reference: &str,
    ) -> Result<Option<Manifest>, Error> {
        let object = format!("{repo}:{reference}");
        let url = self.url(&format!("/v2/{repo}/manifests/{reference}"))?;
        let resp = self
            .request(Method::GET, url)
            .header(ACCEPT, accept_all())
            .send()
            .await
            .map_err(|e| transport("get manifest", &object, e))?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !resp.status().is_success() {
            return Err(status_error("get manifest", &object, resp).await);
        }
        if resp
            .content_length()
            .is_some_and(|l| l > MAX_MANIFEST as u64)
        {
            return Err(Error::Manifest {
                object,
                message: "larger than 4 MiB".into(),
            });
        }
        let content_type = header(resp.headers(), CONTENT_TYPE.as_str()).unwrap_or_default();
        let reported = header(resp.headers(), "docker-content-digest");
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| transport("get manifest", &object, e))?;
        if bytes.len() > MAX_MANIFEST {
            return Err(Error::Manifest {
                object,
                message: "larger than 4 MiB".into(),
            });
        }
        let content_type = content_type
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_string();
        let manifest = Manifest::from_bytes(bytes, &content_type)?;
        // The registry's header and our own hash must agree, and a digest reference must be what we got.
        for expected in reported
            .iter()
            .map(String::as_str)
            .chain(reference.starts_with("sha256:").then_some(reference))
        {
            if expected != manifest.digest {
                return Err(Error::DigestMismatch {
                    object,
                    expected: expected.to_string(),
                    actual: manifest.digest,
                });
            }
        }
        Ok(Some(manifest))
    }

    /// HEAD a manifest: its digest, or `None` when absent.
    pub async fn manifest_digest(
        &self,
        repo: &str,
        reference: &str,
    ) -> Result<Option<String>, Error> {
        let object = format!("{repo}:{reference}");
        let url = self.url(&format!("/v2/{repo}/manifests/{reference}"))?;
        let resp = self
            .request(Method::HEAD, url)
            .header(ACCEPT, accept_all())
            .send()
            .await
            .map_err(|e| transport("check manifest", &object, e))?;
        match resp.status() {
            StatusCode::NOT_FOUND => Ok(None),
            s if s.is_success() => match header(resp.headers(), "docker-content-digest") {
                Some(d) => Ok(Some(d)),
                // No header (some proxies strip it): fall back to reading the manifest.
                None => Ok(self.get_manifest(repo, reference).await?.map(|m| m.digest)),
            },
            _ => Err(status_error("check manifest", &object, resp).await),
        }
    }

    /// PUT a manifest under a tag or its digest; checks the digest the registry computed.
    pub async fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        manifest: &Manifest,
    ) -> Result<(), Error> {
        let object = format!("{repo}:{reference}");
        let url = self.url(&format!("/v2/{repo}/manifests/{reference}"))?;
        let resp = self
            .request(Method::PUT, url)
            .header(CONTENT_TYPE, &manifest.media_type)
            .body(manifest.bytes.clone())
            .send()
            .await
            .map_err(|e| transport("put manifest", &object, e))?;
        if !resp.status().is_success() {
            return Err(status_error("put manifest", &object, resp).await);
        }
        if let Some(d) = header(resp.headers(), "docker-content-digest") {
            if d != manifest.digest {
                return Err(Error::DigestMismatch {
                    object,
                    expected: manifest.digest.clone(),
                    actual: d,
                });
            }
        }
        Ok(())
    }

    /// Tags of a repository (one page of up to `limit`); empty when the repository is unknown.
    pub async fn list_tags(&self, repo: &str, limit: usize) -> Result<Vec<String>, Error> {
        let mut url = self.url(&format!("/v2/{repo}/tags/list"))?;
        url.query_pairs_mut().append_pair("n", &limit.to_string());
        let resp = self
            .request(Method::GET, url)
            .send()
            .await
            .map_err(|e| transport("list tags of", repo, e))?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Ok(Vec::new());
        }
        if !resp.status().is_success() {
            return Err(status_error("list tags of", repo, resp).await);
        }
        let v: serde_json::Value = resp
            .json()
            .await
            .map_err(|e| transport("list tags of", repo, e))?;
        Ok(v.get("tags")
            .and_then(|t| t.as_array())
            .into_iter()
            .flatten()
            .filter_map(|t| t.as_str().map(str::to_string))
            .take(limit)
            .collect())
    }

    /// Is the blob in the repository?
    pub async fn blob_exists(&self, repo: &str, digest: &str) -> Result<bool, Error> {
        let object = format!("{repo}@{digest}");
        let url = self.url(&format!("/v2/{repo}/blobs/{digest}"))?;
        let resp = self
            .request(Method::HEAD, url)
            .send()
            .await
            .map_err(|e| transport("check blob", &object, e))?;
        match resp.status() {
            StatusCode::NOT_FOUND => Ok(false),
            s if s.is_success() => Ok(true),
            _ => Err(status_error("check blob", &object, resp).await),
        }
    }

    /// Stream a blob (the response body, read chunk by chunk).
    pub async fn get_blob(
        &self,
        repo: &str,
        digest: &str,
    ) -> Result<BoxStream<'static, std::io::Result<Bytes>>, Error> {
        let object = format!("{repo}@{digest}");
        let url = self.url(&format!("/v2/{repo}/blobs/{digest}"))?;
        let resp = tokio::time::timeout(
            self.request_timeout,
            self.streaming(Method::GET, url).send(),
        )
        .await
        .map_err(|_| Error::Transport {
            verb: "get blob",
            object: object.clone(),
            message: format!("no answer within {:?}", self.request_timeout),
        })?
        .map_err(|e| transport("get blob", &object, e))?;
        if !resp.status().is_success() {
            return Err(status_error("get blob", &object, resp).await);
        }
        Ok(stall_guard(
            resp.bytes_stream().map_err(std::io::Error::other).boxed(),
            self.stall_timeout,
        ))
    }

    fn location(
        &self,
        verb: &'static str,
        object: &str,
        headers: &HeaderMap,
    ) -> Result<url::Url, Error> {
        let raw = header(headers, LOCATION.as_str()).ok_or_else(|| Error::Status {
            verb,
            object: object.to_string(),
            status: 202,
            code: "-".into(),
            message: "the registry sent no upload Location".into(),
        })?;
        self.base.join(&raw).map_err(|e| Error::Status {
            verb,
            object: object.to_string(),
            status: 202,
            code: "-".into(),
            message: format!("bad upload Location `{raw}`: {e}"),
        })
    }

    /// Ask the registry to mount a blob from another repository of the same registry.
    async fn mount(&self, repo: &str, digest: &str, from: &str) -> Result<Mount, Error> {
        let object = format!("{repo}@{digest}");
        let mut url = self.url(&format!("/v2/{repo}/blobs/uploads/"))?;
        url.query_pairs_mut()
            .append_pair("mount", digest)
            .append_pair("from", from);
        let resp = self
            .request(Method::POST, url)
            .header(CONTENT_LENGTH, 0)
            .send()
            .await
            .map_err(|e| transport("mount blob", &object, e))?;
        match resp.status() {
            StatusCode::CREATED => Ok(Mount::Mounted),
            StatusCode::ACCEPTED => Ok(Mount::Upload(self.location(
                "mount blob",
                &object,
                resp.headers(),
            )?)),
            _ => Err(status_error("mount blob", &object, resp).await),
        }
    }

    /// Open an upload session.
    async fn start_upload(&self, repo: &str, digest: &str) -> Result<url::Url, Error> {
        let object = format!("{repo}@{digest}");
        let url = self.url(&format!("/v2/{repo}/blobs/uploads/"))?;
        let resp = self
            .request(Method::POST, url)
            .header(CONTENT_LENGTH, 0)
            .send()
            .await
            .map_err(|e| transport("start upload of", &object, e))?;
        if resp.status() != StatusCode::ACCEPTED {
            return Err(status_error("start upload of", &object, resp).await);
        }
        self.location("start upload of", &object, resp.headers())
    }

    /// Stream `size` bytes into an upload session (one PATCH, as docker does), check their sha256 on the
    /// way, then close the session with `PUT ?digest=`. Returns the bytes sent.
    async fn upload(
        &self,
        location: url::Url,
        repo: &str,
        digest: &str,
        size: u64,
        body: BoxStream<'static, std::io::Result<Bytes>>,
    ) -> Result<u64, Error> {
        let object = format!("{repo}@{digest}");
        let hasher = Arc::new(Mutex::new(Sha256::new()));
        let sent = Arc::new(AtomicU64::new(0));
        let (h, s) = (hasher.clone(), sent.clone());
        let counted = body.map_ok(move |chunk| {
            if let Ok(mut h) = h.lock() {
                h.update(&chunk);
            }
            s.fetch_add(chunk.len() as u64, Ordering::Relaxed);
            chunk
        });
        let budget = self.request_timeout + Duration::from_secs(size / self.min_throughput);
        let resp = self
            .streaming(Method::PATCH, location.clone())
            .timeout(budget)
            .header(CONTENT_TYPE, "application/octet-stream")
            .header(CONTENT_LENGTH, size)
            .body(reqwest::Body::wrap_stream(counted))
            .send()
            .await
            .map_err(|e| transport("upload blob", &object, e))?;
        if resp.status() != StatusCode::ACCEPTED {
            return Err(status_error("upload blob", &object, resp).await);
        }
        let next = self.location("upload blob", &object, resp.headers())?;
        let actual = hasher
            .lock()
            .map(|h| format!("sha256:{}", hex::encode(h.clone().finalize())))
            .unwrap_or_default();
        if actual != digest {
            // Never commit bytes that are not the blob; the registry would refuse them too.
            let _ = self.request(Method::DELETE, next).send().await;
            return Err(Error::DigestMismatch {
                object,
                expected: digest.to_string(),
                actual,
            });
        }
        let mut close = next;
        close.query_pairs_mut().append_pair("digest", digest);
        let resp = self
            .request(Method::PUT, close)
            .header(CONTENT_LENGTH, 0)
            .send()
            .await
            .map_err(|e| transport("complete upload of", &object, e))?;
        if resp.status() != StatusCode::CREATED {
            return Err(status_error("complete upload of", &object, resp).await);
        }
        Ok(sent.load(Ordering::Relaxed))
    }
}

/// End a byte stream with a `TimedOut` error when the next piece takes longer than `stall`.
fn stall_guard(
    inner: BoxStream<'static, std::io::Result<Bytes>>,
    stall: Duration,
) -> BoxStream<'static, std::io::Result<Bytes>> {
    stream::unfold(Some(inner), move |state| async move {
        let mut s = state?;
        match tokio::time::timeout(stall, s.next()).await {
            Ok(Some(item)) => Some((item, Some(s))),
            Ok(None) => None,
            Err(_) => Some((
                Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("the source sent nothing for {stall:?}"),
                )),
                None,
            )),
        }
    })
    .boxed()
}

/// Where the image comes from: a repository of a registry, or a local archive.
#[derive(Debug, Clone)]
pub enum Source {
    /// `repo` in `registry`.
    Registry {
        /// The registry.
        registry: Registry,
        /// The repository.
        repo: String,
    },
    /// An OCI layout or `docker save` archive.
    Archive(Arc<archive::Archive>),
}

impl Source {
    async fn manifest(&self, digest: &str) -> Result<Manifest, Error> {
        match self {
            Source::Registry { registry, repo } => registry
                .get_manifest(repo, digest)
                .await?
                .ok_or_else(|| Error::MissingManifest(format!("{repo}@{digest}"))),
            Source::Archive(a) => Ok(a.manifest(digest).await?),
        }
    }

    async fn blob(
        &self,
        digest: &str,
        size: u64,
    ) -> Result<BoxStream<'static, std::io::Result<Bytes>>, Error> {
        match self {
            Source::Registry { registry, repo } => registry.get_blob(repo, digest).await,
            Source::Archive(a) => Ok(a.blob(digest, size).await?),
        }
    }
}

/// What a copy moved.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CopyStats {
    /// Blobs streamed into the target.
    pub blobs_copied: u64,
    /// Blobs the target already had.
    pub blobs_skipped: u64,
    /// Blobs mounted from the source repository (no bytes moved).
    pub blobs_mounted: u64,
    /// Blob bytes streamed.
    pub bytes_copied: u64,
    /// Manifests written (children and the top one; tags not counted).
    pub manifests_put: u64,
    /// Manifests the target already had.
    pub manifests_skipped: u64,
    /// Tags written.
    pub tags_put: Vec<String>,
    /// Tags already pointing at the digest.
    pub tags_unchanged: Vec<String>,
}

/// The target of a copy.
#[derive(Debug, Clone)]
pub struct Target {
    /// The registry.
    pub registry: Registry,
    /// The repository.
    pub repo: String,
}

/// Copy `top` (already read from `source`) and everything it refers to into `target`, then point `tags` at
/// it. Idempotent: what the target has is checked first and never sent again.
pub async fn copy_image(
    source: &Source,
    target: &Target,
    top: &Manifest,
    tags: &[String],
    options: &Options,
) -> Result<CopyStats, Error> {
    let mut stats = CopyStats::default();
    copy_tree(source, target, top, options, 0, &mut stats).await?;
    for tag in tags {
        match target.registry.manifest_digest(&target.repo, tag).await? {
            Some(d) if d == top.digest => stats.tags_unchanged.push(tag.clone()),
            _ => {
                target.registry.put_manifest(&target.repo, tag, top).await?;
                stats.tags_put.push(tag.clone());
            }
        }
    }
    // The truth is what the target now serves under the tag.
    if let Some(tag) = tags.first() {
        let now = target.registry.manifest_digest(&target.repo, tag).await?;
        if now.as_deref() != Some(top.digest.as_str()) {
            return Err(Error::DigestMismatch {
                object: format!("{}:{tag}", target.repo),
                expected: top.digest.clone(),
                actual: now.unwrap_or_else(|| "nothing".into()),
            });
        }
    }
    Ok(stats)
}

/// Copy one manifest (children first) by digest.
fn copy_tree<'a>(
    source: &'a Source,
    target: &'a Target,
    manifest: &'a Manifest,
    options: &'a Options,
    depth: usize,
    stats: &'a mut CopyStats,
) -> futures::future::BoxFuture<'a, Result<(), Error>> {
    Box::pin(async move {
        let parsed = manifest.parse()?;
        if target
            .registry
            .manifest_digest(&target.repo, &manifest.digest)
            .await?
            .is_some()
        {
            // A registry only accepts a manifest whose blobs it has, so all of them are there.
            stats.manifests_skipped += 1;
            if let Parsed::Image(blobs) = &parsed {
                stats.blobs_skipped += blobs.len() as u64;
            }
            return Ok(());
        }
        match parsed {
            Parsed::Index(children) => {
                if depth >= MAX_DEPTH {
                    return Err(Error::Manifest {
                        object: manifest.digest.clone(),
                        message: "indexes nested deeper than an index of images".into(),
                    });
                }
                for child in children {
                    let m = source.manifest(&child.digest).await?;
                    if m.digest != child.digest {
                        return Err(Error::DigestMismatch {
                            object: child.digest.clone(),
                            expected: child.digest,
                            actual: m.digest,
                        });
                    }
                    copy_tree(source, target, &m, options, depth + 1, stats).await?;
                }
            }
            Parsed::Image(blobs) => {
                let outcomes: Vec<BlobOutcome> = stream::iter(blobs)
                    .map(|b| copy_blob(source, target, b, options))
                    .buffer_unordered(options.concurrency.max(1))
                    .try_collect()
                    .await?;
                for o in outcomes {
                    match o {
                        BlobOutcome::Present => stats.blobs_skipped += 1,
                        BlobOutcome::Mounted => stats.blobs_mounted += 1,
                        BlobOutcome::Copied(n) => {
                            stats.blobs_copied += 1;
                            stats.bytes_copied += n;
                        }
                    }
                }
            }
        }
        target
            .registry
            .put_manifest(&target.repo, &manifest.digest, manifest)
            .await?;
        stats.manifests_put += 1;
        Ok(())
    })
}

/// Bring one blob into the target: present, mounted, or streamed (retried with a fresh session).
async fn copy_blob(
    source: &Source,
    target: &Target,
    blob: Descriptor,
    options: &Options,
) -> Result<BlobOutcome, Error> {
    let (reg, repo) = (&target.registry, target.repo.as_str());
    if reg.blob_exists(repo, &blob.digest).await? {
        return Ok(BlobOutcome::Present);
    }
    let mut attempt = 0;
    loop {
        attempt += 1;
        let result = async {
            let session = match source {
                Source::Registry {
                    registry,
                    repo: from,
                } if options.mount && registry.base == reg.base && from != repo => {
                    match reg.mount(repo, &blob.digest, from).await? {
                        Mount::Mounted => return Ok(BlobOutcome::Mounted),
                        Mount::Upload(location) => location,
                    }
                }
                _ => reg.start_upload(repo, &blob.digest).await?,
            };
            let body = source.blob(&blob.digest, blob.size).await?;
            let n = reg
                .upload(session, repo, &blob.digest, blob.size, body)
                .await?;
            tracing::debug!(digest = %blob.digest, bytes = n, "blob copied");
            Ok(BlobOutcome::Copied(n))
        }
        .await;
        match result {
            Ok(o) => return Ok(o),
            Err(e) if attempt < options.attempts.max(1) && retryable(&e) => {
                tracing::warn!(digest = %blob.digest, attempt, error = %e, "blob copy failed; retrying");
                tokio::time::sleep(crate::aws::jittered(options.backoff, attempt)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Worth another attempt: transport failures, throttling and server errors.
fn retryable(e: &Error) -> bool {
    match e {
        Error::Transport { .. } => true,
        Error::Status { status, .. } => *status == 429 || *status >= 500,
        _ => false,
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

    #[tokio::test(start_paused = true)]
    async fn a_stalled_source_ends_the_stream_with_a_timeout() {
        let pieces = stream::iter([Ok(Bytes::from_static(b"ab"))]).chain(stream::pending());
        let mut s = stall_guard(pieces.boxed(), Duration::from_secs(60));
        assert_eq!(s.next().await.unwrap().unwrap(), Bytes::from_static(b"ab"));
        let err = s.next().await.unwrap().unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
        assert!(s.next().await.is_none());
    }

    #[test]
    fn debug_never_shows_the_token() {
        let r = Registry::new(
            url::Url::parse("https://1.dkr.ecr.us-east-1.amazonaws.com").unwrap(),
            Some("QVdTOnNlY3JldA=="),
            &Options::default(),
        )
        .unwrap();
        let s = format!("{r:?}");
        assert!(!s.contains("QVdTOnNlY3JldA=="), "{s}");
        assert_eq!(r.host(), "1.dkr.ecr.us-east-1.amazonaws.com");
    }
}
