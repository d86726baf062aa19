//! One registry over HTTP: basic auth with the ECR token, manifest GET/HEAD/PUT, tag listing, blob HEAD
//! and streaming GET, cross-repository mounts and chunked uploads checked against their digest.
//! The token goes only to the registry's own origin (scheme, host, port), never to an upload `Location`
//! or a redirect elsewhere; redirects are bounded and never downgrade to http. Every digest put into a
//! URL is `sha256:` + 64 lowercase hex, and every body read has a byte bound (manifests 4 MiB, tag
//! lists 4 MiB, error bodies 64 KiB).
//!
//! APIs: OCI distribution `/v2/<repo>/manifests/<ref>`, `/v2/<repo>/blobs/<digest>`,
//! `/v2/<repo>/blobs/uploads/`, `/v2/<repo>/tags/list`.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};
use reqwest::header::{HeaderMap, ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use reqwest::{Method, StatusCode};
use sha2::{Digest as _, Sha256};

use super::error::Error;
use super::http::{
    accept_all, checked_digest, header, read_bounded, redirect_policy, same_origin, status_error,
    transport, MAX_MANIFEST, MAX_TAG_LIST,
};
use super::manifest::Manifest;
use crate::retry;

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
    /// Base delay between attempts (doubling, with equal jitter).
    pub backoff: Duration,
    /// Try a cross-repository mount when source and target are one registry.
    pub mount: bool,
    /// Tags asked for per page of a tag listing (`n`); the listing follows the registry's `Link` pages.
    pub tag_page: usize,
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
            backoff: Duration::from_millis(100),
            mount: true,
            tag_page: 1000,
        }
    }
}

/// Attempts of a small request (manifests, HEADs, tag lists, upload sessions), the first included.
pub(super) const SMALL_ATTEMPTS: u32 = 5;

/// One registry: a base URL and its credentials.
#[derive(Clone)]
pub struct Registry {
    http: reqwest::Client,
    base: url::Url,
    request_timeout: Duration,
    stall_timeout: Duration,
    min_throughput: u64,
    pub(super) tag_page: usize,
    /// Base delay between attempts of a small request.
    backoff: Duration,
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
pub(super) enum Mount {
    Mounted,
    /// The registry did not mount; it opened an upload session instead.
    Upload(url::Url),
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
            .user_agent(crate::aws::USER_AGENT)
            .connect_timeout(options.connect_timeout)
            .redirect(redirect_policy())
            .build()
            .map_err(|e| transport("build a client for", base.as_str(), e))?;
        Ok(Registry {
            http,
            base,
            request_timeout: options.request_timeout,
            stall_timeout: options.stall_timeout,
            min_throughput: options.min_throughput.max(1),
            tag_page: options.tag_page.max(1),
            backoff: options.backoff,
            authorization: basic_token.map(|t| format!("Basic {t}")),
        })
    }

    pub(super) fn base(&self) -> &url::Url {
        &self.base
    }

    /// `host[:port]` of the registry, as it appears in image URIs.
    pub(crate) fn host(&self) -> String {
        let host = self.base.host_str().unwrap_or_default();
        match self.base.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_string(),
        }
    }

    pub(super) fn url(&self, path: &str) -> Result<url::Url, Error> {
        self.base.join(path).map_err(|e| Error::Manifest {
            object: path.to_string(),
            message: format!("not a valid registry path: {e}"),
        })
    }

    /// A request with the small-request timeout.
    fn request(&self, method: Method, url: url::Url) -> reqwest::RequestBuilder {
        self.streaming(method, url).timeout(self.request_timeout)
    }

    /// The policy of one small request, and of one in-memory blob pushed or read whole: [`SMALL_ATTEMPTS`]
    /// attempts, doubling from the options' `backoff`.
    pub(super) fn small_policy(&self) -> retry::Policy {
        retry::Policy::new(SMALL_ATTEMPTS, self.backoff)
    }

    /// Send a small request, built anew for each attempt by `build`, under [`Registry::small_policy`]: a
    /// transport failure, 429 or a 5xx gets another attempt (after the reply's `Retry-After` when it
    /// gives one); the last reply or error is the caller's. Every such request is idempotent (manifests,
    /// HEADs, tag pages); the requests of a blob transfer are sent once, the transfer being retried as a
    /// whole, and so is this one when a retried operation sends it.
    async fn send(
        &self,
        build: impl Fn() -> reqwest::RequestBuilder,
        verb: &'static str,
        object: &str,
    ) -> Result<reqwest::Response, Error> {
        let sent = retry::run(self.small_policy(), &format!("{verb} `{object}`"), |_| {
            let request = build();
            async move {
                match request.send().await {
                    // Throttling and server errors pass; anything else is the answer.
                    Ok(r) if r.status() == 429 || r.status().is_server_error() => {
                        match retry_after(r.headers()) {
                            Some(after) => retry::Outcome::TransientAfter(Failed::Reply(r), after),
                            None => retry::Outcome::Transient(Failed::Reply(r)),
                        }
                    }
                    Ok(r) => retry::Outcome::Done(r),
                    Err(e) => retry::Outcome::Transient(Failed::Transport(e)),
                }
            }
        })
        .await;
        match sent {
            Ok(r) | Err(Failed::Reply(r)) => Ok(r),
            Err(Failed::Transport(e)) => Err(transport(verb, object, e)),
        }
    }

    /// A request without a whole-request timeout (blob bodies); callers bound it another way. The token
    /// goes only to the registry's own origin: an upload `Location` elsewhere gets none (and reqwest drops
    /// it on a redirect to another host, e.g. ECR's blob GETs to S3; [`redirect_policy`] covers the rest).
    fn streaming(&self, method: Method, url: url::Url) -> reqwest::RequestBuilder {
        let own = same_origin(&url, &self.base);
        let rb = self.http.request(method, url);
        match &self.authorization {
            Some(a) if own => rb.header(AUTHORIZATION, a),
            _ => rb,
        }
    }

    /// Send `method` for a manifest, accepting every manifest type; the `repo:reference` the errors name,
    /// and the response whatever its status.
    async fn manifest_request(
        &self,
        method: Method,
        verb: &'static str,
        repo: &str,
        reference: &str,
    ) -> Result<(String, reqwest::Response), Error> {
        let object = format!("{repo}:{reference}");
        if reference.starts_with("sha256:") {
            checked_digest(&object, reference)?;
        }
        let url = self.url(&format!("/v2/{repo}/manifests/{reference}"))?;
        let resp = self
            .send(
                || {
                    self.request(method.clone(), url.clone())
                        .header(ACCEPT, accept_all())
                },
                verb,
                &object,
            )
            .await?;
        Ok((object, resp))
    }

    /// GET a manifest by tag or digest; `None` when the registry does not have it.
    pub async fn get_manifest(
        &self,
        repo: &str,
        reference: &str,
    ) -> Result<Option<Manifest>, Error> {
        let (object, mut resp) = self
            .manifest_request(Method::GET, "get manifest", repo, reference)
            .await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !resp.status().is_success() {
            return Err(status_error("get manifest", &object, resp).await);
        }
        let content_type = header(resp.headers(), CONTENT_TYPE.as_str()).unwrap_or_default();
        let reported = header(resp.headers(), "docker-content-digest");
        if let Some(d) = &reported {
            checked_digest(&object, d)?;
        }
        let bytes = read_bounded(&mut resp, MAX_MANIFEST, "get manifest", &object).await?;
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
    pub(crate) async fn manifest_digest(
        &self,
        repo: &str,
        reference: &str,
    ) -> Result<Option<String>, Error> {
        let (object, resp) = self
            .manifest_request(Method::HEAD, "check manifest", repo, reference)
            .await?;
        match resp.status() {
            StatusCode::NOT_FOUND => Ok(None),
            s if s.is_success() => match header(resp.headers(), "docker-content-digest") {
                Some(d) => checked_digest(&object, &d).map(|()| Some(d)),
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
            .send(
                || {
                    self.request(Method::PUT, url.clone())
                        .header(CONTENT_TYPE, &manifest.media_type)
                        .body(manifest.bytes.clone())
                },
                "put manifest",
                &object,
            )
            .await?;
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

    /// One page of a tag listing at `url` (a `/v2/<repo>/tags/list` URL of this registry) and the next
    /// page's URL from the `Link: <...>; rel="next"` header, if any; `None` when the repository is unknown.
    pub(super) async fn tags_page(
        &self,
        repo: &str,
        url: url::Url,
    ) -> Result<Option<(Vec<String>, Option<String>)>, Error> {
        let mut resp = self
            .send(
                || self.request(Method::GET, url.clone()),
                "list tags of",
                repo,
            )
            .await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !resp.status().is_success() {
            return Err(status_error("list tags of", repo, resp).await);
        }
        let next = super::http::next_link(resp.headers());
        let body = read_bounded(&mut resp, MAX_TAG_LIST, "list tags of", repo).await?;
        let v: serde_json::Value = serde_json::from_slice(&body).map_err(|e| Error::Status {
            verb: "list tags of",
            object: repo.to_string(),
            status: 200,
            code: "-".into(),
            message: format!("the tag list is not JSON: {e}"),
        })?;
        let tags = v
            .get("tags")
            .and_then(|t| t.as_array())
            .into_iter()
            .flatten()
            .filter_map(|t| t.as_str().map(str::to_string))
            .collect();
        Ok(Some((tags, next)))
    }

    /// Is the blob in the repository?
    pub(super) async fn blob_exists(&self, repo: &str, digest: &str) -> Result<bool, Error> {
        let object = format!("{repo}@{digest}");
        checked_digest(&object, digest)?;
        let url = self.url(&format!("/v2/{repo}/blobs/{digest}"))?;
        let resp = self
            .send(
                || self.request(Method::HEAD, url.clone()),
                "check blob",
                &object,
            )
            .await?;
        match resp.status() {
            StatusCode::NOT_FOUND => Ok(false),
            s if s.is_success() => Ok(true),
            _ => Err(status_error("check blob", &object, resp).await),
        }
    }

    /// Stream a blob (the response body, read chunk by chunk).
    pub(super) async fn get_blob(
        &self,
        repo: &str,
        digest: &str,
    ) -> Result<BoxStream<'static, std::io::Result<Bytes>>, Error> {
        let object = format!("{repo}@{digest}");
        checked_digest(&object, digest)?;
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

    /// The `Location` of an upload reply, resolved against the URL of the request that got it.
    fn location(
        &self,
        verb: &'static str,
        object: &str,
        request: &url::Url,
        headers: &HeaderMap,
    ) -> Result<url::Url, Error> {
        let raw = header(headers, LOCATION.as_str()).ok_or_else(|| Error::Status {
            verb,
            object: object.to_string(),
            status: 202,
            code: "-".into(),
            message: "the registry sent no upload Location".into(),
        })?;
        request.join(&raw).map_err(|e| Error::Status {
            verb,
            object: object.to_string(),
            status: 202,
            code: "-".into(),
            message: format!("bad upload Location `{raw}`: {e}"),
        })
    }

    /// Ask the registry to mount a blob from another repository of the same registry. One attempt: a
    /// mount opens a blob transfer, and the transfer is what is retried, as a whole.
    pub(super) async fn mount(&self, repo: &str, digest: &str, from: &str) -> Result<Mount, Error> {
        let object = format!("{repo}@{digest}");
        checked_digest(&object, digest)?;
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
                resp.url(),
                resp.headers(),
            )?)),
            _ => Err(status_error("mount blob", &object, resp).await),
        }
    }

    /// Open an upload session. One attempt: the transfer it opens is what is retried, as a whole, in a
    /// fresh session.
    pub(super) async fn start_upload(&self, repo: &str, digest: &str) -> Result<url::Url, Error> {
        let object = format!("{repo}@{digest}");
        checked_digest(&object, digest)?;
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
        self.location("start upload of", &object, resp.url(), resp.headers())
    }

    /// Stream `size` bytes into an upload session (one PATCH, as docker does), check their sha256 on the
    /// way, then close the session with `PUT ?digest=`. Returns the bytes sent.
    pub(super) async fn upload(
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
        let budget = self
            .request_timeout
            .saturating_add(Duration::from_secs(size / self.min_throughput.max(1)));
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
        let next = self.location("upload blob", &object, resp.url(), resp.headers())?;
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

/// Why an attempt of a small request did not give the caller its reply.
#[derive(Debug, thiserror::Error)]
enum Failed {
    /// A reply worth another attempt (429, 5xx); the caller gets the last one.
    #[error("HTTP {}", .0.status())]
    Reply(reqwest::Response),
    #[error(transparent)]
    Transport(reqwest::Error),
}

/// A `Retry-After` in seconds (registries send seconds, not dates; a date is ignored).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    header(headers, "retry-after")?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_stalled_source_ends_the_stream_with_a_timeout() {
        let pieces = stream::iter([Ok(Bytes::from_static(b"ab"))]).chain(stream::pending());
        let mut s = stall_guard(pieces.boxed(), Duration::from_secs(60));
        assert_eq!(s.next().await.unwrap().unwrap(), Bytes::from_static(b"ab"));
        let err = s.next().await.unwrap().unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
        assert!(s.next().await.is_none());
    }

    /// What a loopback server saw: method, path and whether `Authorization` arrived.
    type Seen = Arc<Mutex<Vec<(String, String, bool)>>>;

    /// Serve `answer` on `ip` (port chosen by the OS), recording every request; returns the base URL.
    async fn serve(
        ip: &str,
        answer: impl Fn(&Method, &str) -> axum::response::Response + Clone + Send + Sync + 'static,
    ) -> (url::Url, Seen) {
        let listener = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
        let base = url::Url::parse(&format!("http://{}", listener.local_addr().unwrap())).unwrap();
        let seen: Seen = Arc::default();
        let log = seen.clone();
        let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
            let (log, answer) = (log.clone(), answer.clone());
            async move {
                let path = req.uri().path().to_string();
                let auth = req.headers().contains_key(AUTHORIZATION);
                log.lock()
                    .unwrap()
                    .push((req.method().to_string(), path.clone(), auth));
                // Drain the body so uploads complete.
                let _ = axum::body::to_bytes(req.into_body(), usize::MAX).await;
                answer(&Method::GET, &path)
            }
        });
        tokio::spawn(async move { axum::serve(listener, app).await });
        (base, seen)
    }

    fn reply(
        status: u16,
        headers: &[(&str, String)],
        body: &'static str,
    ) -> axum::response::Response {
        let mut r = axum::response::Response::builder().status(status);
        for (k, v) in headers {
            r = r.header(*k, v);
        }
        r.body(axum::body::Body::from(body)).unwrap()
    }

    const TOKEN: &str = "QVdTOnNlY3JldA==";

    fn registry(base: &url::Url) -> Registry {
        Registry::new(base.clone(), Some(TOKEN), &Options::default()).unwrap()
    }

    /// A registry on 127.0.0.1 that sends the upload to another origin (127.0.0.2): the upload goes there,
    /// the ECR token does not; the registry itself still gets it.
    #[tokio::test]
    async fn a_foreign_upload_location_never_receives_the_token() {
        let (foreign, foreign_seen) = serve("127.0.0.2", |_, path: &str| {
            let next = format!("{path}?state=2");
            match path {
                _ if path.ends_with("/done") => reply(201, &[], ""),
                _ => reply(202, &[("location", next.replace("session", "done"))], ""),
            }
        })
        .await;
        let upload_at = foreign.join("/upload/session").unwrap().to_string();
        let (base, seen) = serve("127.0.0.1", move |_, _: &str| {
            reply(202, &[("location", upload_at.clone())], "")
        })
        .await;
        let reg = registry(&base);
        let data = Bytes::from_static(b"layer bytes");
        let digest = super::super::manifest::sha256_digest(&data);
        let location = reg.start_upload("app", &digest).await.unwrap();
        assert_eq!(location.host_str(), Some("127.0.0.2"));
        let body = stream::iter([Ok(data.clone())]).boxed();
        let sent = reg
            .upload(location, "app", &digest, data.len() as u64, body)
            .await
            .unwrap();
        assert_eq!(sent, data.len() as u64);
        let foreign_seen = foreign_seen.lock().unwrap().clone();
        assert_eq!(foreign_seen.len(), 2, "{foreign_seen:?}");
        assert!(
            foreign_seen.iter().all(|(_, _, auth)| !auth),
            "the token went to another origin: {foreign_seen:?}"
        );
        assert!(seen.lock().unwrap().iter().all(|(_, _, auth)| *auth));
    }

    /// A redirect to another origin gets no token either (reqwest's own rule, kept by the policy).
    #[tokio::test]
    async fn a_redirect_to_another_origin_never_receives_the_token() {
        let (foreign, foreign_seen) = serve("127.0.0.2", |_, _: &str| reply(404, &[], "")).await;
        let target = foreign.join("/v2/app/manifests/v1").unwrap().to_string();
        let (base, _) = serve("127.0.0.1", move |_, _: &str| {
            reply(307, &[("location", target.clone())], "")
        })
        .await;
        assert!(registry(&base)
            .get_manifest("app", "v1")
            .await
            .unwrap()
            .is_none());
        let foreign_seen = foreign_seen.lock().unwrap().clone();
        assert_eq!(foreign_seen.len(), 1);
        assert!(!foreign_seen[0].2, "{foreign_seen:?}");
    }

    #[test]
    fn origins_compare_scheme_host_and_port() {
        let u = |s: &str| url::Url::parse(s).unwrap();
        assert!(same_origin(
            &u("https://r.example.com/v2/x"),
            &u("https://r.example.com:443")
        ));
        assert!(!same_origin(
            &u("http://r.example.com"),
            &u("https://r.example.com")
        ));
        assert!(!same_origin(
            &u("https://r.example.com:444"),
            &u("https://r.example.com")
        ));
        assert!(!same_origin(
            &u("https://r.example.com.evil"),
            &u("https://r.example.com")
        ));
        assert!(!same_origin(
            &u("http://127.0.0.2:5000"),
            &u("http://127.0.0.1:5000")
        ));
    }

    /// A hostile registry answers a HEAD with a digest that walks paths: refused before it reaches a URL.
    #[tokio::test]
    async fn a_hostile_reported_digest_is_refused() {
        let (base, seen) = serve("127.0.0.1", |_, _: &str| {
            reply(
                200,
                &[(
                    "docker-content-digest",
                    "sha256:../../../v2/other/manifests/x".into(),
                )],
                "",
            )
        })
        .await;
        let err = registry(&base)
            .manifest_digest("app", "v1")
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("64 lowercase hex"), "{err}");
        let err = registry(&base)
            .blob_exists("app", "sha256:../../x")
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("64 lowercase hex"), "{err}");
        assert_eq!(
            seen.lock().unwrap().len(),
            1,
            "the bad digest was requested"
        );
    }

    /// A body that never ends, without `Content-Length`.
    fn endless(status: u16) -> axum::response::Response {
        let chunk = Bytes::from(vec![b'{'; 64 * 1024]);
        let body = stream::repeat_with(move || Ok::<_, std::io::Error>(chunk.clone()));
        axum::response::Response::builder()
            .status(status)
            .body(axum::body::Body::from_stream(body))
            .unwrap()
    }

    /// Manifests and tag lists that never end are refused at their bound; an endless error body is cut.
    #[tokio::test]
    async fn endless_replies_are_cut_at_their_bound() {
        let (base, _) = serve("127.0.0.1", |_, path: &str| match path {
            p if p.contains("/manifests/") => endless(200),
            p if p.ends_with("/tags/list") => endless(200),
            _ => endless(500),
        })
        .await;
        let reg = registry(&base);
        let err = reg.get_manifest("app", "v1").await.unwrap_err();
        assert!(
            matches!(
                err,
                Error::TooLarge {
                    limit: MAX_MANIFEST,
                    ..
                }
            ),
            "{err}"
        );
        assert!(
            err.to_string().contains("sent more than 4194304 bytes"),
            "{err}"
        );
        let err = reg.list_tags("app", 10).await.unwrap_err();
        assert!(matches!(err, Error::TooLarge { .. }), "{err}");
        // The POST of an upload gets the endless 500: its message is read from a bounded start.
        let err = reg
            .start_upload("app", &format!("sha256:{}", "a".repeat(64)))
            .await
            .unwrap_err();
        match err {
            Error::Status {
                status: 500,
                message,
                ..
            } => assert!(message.len() <= 200, "{message}"),
            e => panic!("{e}"),
        }
    }

    /// A tag list's next page is followed on the registry's origin (relative or absolute), with the
    /// token; a next page on another origin is refused and never requested.
    #[tokio::test]
    async fn tag_pages_are_followed_only_on_the_registry_origin() {
        let (other, other_seen) = serve("127.0.0.1", |_, _: &str| {
            reply(200, &[], r#"{"tags":["stolen"]}"#)
        })
        .await;
        let elsewhere = format!("{}v2/app/tags/list?n=2&last=b", other);
        let page = |tags: &'static str, next: Option<String>| {
            let mut h = Vec::new();
            if let Some(n) = next {
                h.push(("link", format!("<{n}>; rel=\"next\"")));
            }
            reply(200, &h, tags)
        };
        let elsewhere2 = elsewhere.clone();
        let (base, seen) = serve("127.0.0.1", move |_, path: &str| match path {
            "/v2/app/tags/list" => page(r#"{"tags":["a","b"]}"#, Some("/v2/app/p2".into())),
            "/v2/app/p2" => page(r#"{"tags":["c","d"]}"#, Some("/v2/app/p3".into())),
            "/v2/app/p3" => page(r#"{"tags":["e"]}"#, None),
            "/v2/evil/tags/list" => page(r#"{"tags":["x"]}"#, Some(elsewhere2.clone())),
            _ => reply(404, &[], ""),
        })
        .await;
        let reg = registry(&base);
        assert_eq!(
            reg.list_tags("app", 100).await.unwrap(),
            ["a", "b", "c", "d", "e"]
        );
        // The limit stops the listing early.
        assert_eq!(reg.list_tags("app", 3).await.unwrap(), ["a", "b", "c"]);
        let log = seen.lock().unwrap().clone();
        assert!(log.iter().all(|(_, _, auth)| *auth), "{log:?}");
        assert_eq!(log.len(), 3 + 2, "{log:?}");
        let err = reg.list_tags("evil", 100).await.unwrap_err().to_string();
        assert!(err.contains("another origin"), "{err}");
        assert!(other_seen.lock().unwrap().is_empty());
    }

    /// A small request that meets a 503, a 429 and a dropped connection is tried again, and a registry
    /// that keeps failing gets [`SMALL_ATTEMPTS`] requests, then the error.
    #[tokio::test]
    async fn small_requests_are_retried_to_their_bound() {
        use std::sync::atomic::AtomicUsize;
        let digest = format!("sha256:{}", "b".repeat(64));
        let n = Arc::new(AtomicUsize::new(0));
        let (count, d) = (n.clone(), digest.clone());
        let (base, seen) = serve("127.0.0.1", move |_, path: &str| {
            if path.contains("/always/") {
                return reply(500, &[], "{}");
            }
            match count.fetch_add(1, Ordering::SeqCst) {
                0 => reply(503, &[], "{}"),
                1 => reply(429, &[], "{}"),
                _ => reply(200, &[("docker-content-digest", d.clone())], ""),
            }
        })
        .await;
        let options = Options {
            backoff: Duration::from_millis(1),
            ..Options::default()
        };
        let reg = Registry::new(base.clone(), Some(TOKEN), &options).unwrap();
        assert_eq!(
            reg.manifest_digest("app", "v1").await.unwrap().as_deref(),
            Some(digest.as_str())
        );
        assert_eq!(seen.lock().unwrap().len(), 3);
        let err = reg.manifest_digest("always", "v1").await.unwrap_err();
        assert!(matches!(err, Error::Status { status: 500, .. }), "{err}");
        assert_eq!(seen.lock().unwrap().len(), 3 + SMALL_ATTEMPTS as usize);
        // A registry that is not there at all: the transport error after the same bound.
        let gone = Registry::new(
            url::Url::parse("http://127.0.0.1:9").unwrap(),
            None,
            &options,
        )
        .unwrap();
        let err = gone.blob_exists("app", &digest).await.unwrap_err();
        assert!(matches!(err, Error::Transport { .. }), "{err}");
    }

    /// Retries never nest: a blob push whose upload session keeps failing opens exactly
    /// [`SMALL_ATTEMPTS`] sessions (the session's POST is not retried inside the push's retries, which
    /// made 25), and one whose upload keeps failing sends one PATCH per session.
    #[tokio::test]
    async fn a_failing_blob_push_costs_one_session_per_attempt() {
        let blob = crate::registry::artifact::Blob::new(
            Bytes::from_static(b"marker config"),
            "application/json",
        );
        let count = |seen: &Seen, method: &str| {
            seen.lock()
                .unwrap()
                .iter()
                .filter(|(m, _, _)| m == method)
                .count()
        };
        let options = Options {
            backoff: Duration::from_millis(1),
            ..Options::default()
        };
        let (base, seen) = serve("127.0.0.1", |_, path: &str| match path {
            p if p.ends_with("/blobs/uploads/") => reply(500, &[], "{}"),
            _ => reply(404, &[], ""),
        })
        .await;
        let reg = Registry::new(base, Some(TOKEN), &options).unwrap();
        let err = reg.push_blob("app", &blob).await.unwrap_err();
        assert!(matches!(err, Error::Status { status: 500, .. }), "{err}");
        assert_eq!(count(&seen, "POST"), SMALL_ATTEMPTS as usize);
        assert_eq!(count(&seen, "HEAD"), 1, "the presence check is made once");

        let (base, seen) = serve("127.0.0.1", |_, path: &str| match path {
            p if p.ends_with("/blobs/uploads/") => {
                reply(202, &[("location", "/v2/app/blobs/uploads/s1".into())], "")
            }
            p if p.ends_with("/uploads/s1") => reply(503, &[], "{}"),
            _ => reply(404, &[], ""),
        })
        .await;
        let reg = Registry::new(base, Some(TOKEN), &options).unwrap();
        let err = reg.push_blob("app", &blob).await.unwrap_err();
        assert!(matches!(err, Error::Status { status: 503, .. }), "{err}");
        assert_eq!(count(&seen, "POST"), SMALL_ATTEMPTS as usize);
        assert_eq!(count(&seen, "PATCH"), SMALL_ATTEMPTS as usize);
    }

    #[test]
    fn a_retry_after_is_read_in_seconds() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert("retry-after", " 3 ".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(3)));
        h.insert(
            "retry-after",
            "Wed, 21 Oct 2026 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&h), None);
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
