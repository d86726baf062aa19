//! The wire rules of registry traffic, shared by the client's requests: bounded reads (manifests,
//! tag lists, error bodies), the registry's own error codes, origin comparison and the redirect policy
//! (bounded, never to http, never carrying the token elsewhere), and digest checks. No AWS API.

use std::time::Duration;

use bytes::Bytes;
use reqwest::header::HeaderMap;

use super::error::Error;
use super::manifest::ACCEPTED;

/// Registries refuse manifests over 4 MiB; refusing to read more keeps a broken server from filling memory.
pub(super) const MAX_MANIFEST: usize = 4 * 1024 * 1024;
/// The most of a registry error body read (the code and message sit at its start).
pub(super) const MAX_ERROR_BODY: usize = 64 * 1024;
/// The most of a tag list read (a page of `n` tags is far smaller).
pub(super) const MAX_TAG_LIST: usize = 4 * 1024 * 1024;
/// Redirects followed per request (ECR sends a blob GET to S3 once).
pub(super) const MAX_REDIRECTS: usize = 5;
/// Longest wait for an error body of a streaming request (the small requests have their own timeout).
pub(super) const ERROR_BODY_TIMEOUT: Duration = Duration::from_secs(30);

pub(super) fn transport(verb: &'static str, object: &str, e: reqwest::Error) -> Error {
    Error::Transport {
        verb,
        object: object.to_string(),
        message: crate::report::section::error_chain(&e),
    }
}

/// Read a body of at most `cap` bytes, chunk by chunk (a missing or false `Content-Length` cannot make it
/// read more); `None` when the body is larger.
pub(super) async fn read_capped(
    resp: &mut reqwest::Response,
    cap: usize,
) -> Result<Option<Vec<u8>>, reqwest::Error> {
    if resp.content_length().is_some_and(|l| l > cap as u64) {
        return Ok(None);
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        if body.len() + chunk.len() > cap {
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body))
}

/// A body bounded by `cap`, or the error naming the bound.
pub(super) async fn read_bounded(
    resp: &mut reqwest::Response,
    cap: usize,
    verb: &'static str,
    object: &str,
) -> Result<Bytes, Error> {
    match read_capped(resp, cap)
        .await
        .map_err(|e| transport(verb, object, e))?
    {
        Some(b) => Ok(Bytes::from(b)),
        None => Err(Error::TooLarge {
            verb,
            object: object.to_string(),
            limit: cap,
        }),
    }
}

/// The start of an error body: at most [`MAX_ERROR_BODY`] bytes, within [`ERROR_BODY_TIMEOUT`].
pub(super) async fn error_body(mut resp: reqwest::Response) -> Vec<u8> {
    let mut body = Vec::new();
    let read = async {
        while let Ok(Some(chunk)) = resp.chunk().await {
            let room = MAX_ERROR_BODY - body.len();
            body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if body.len() >= MAX_ERROR_BODY {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(ERROR_BODY_TIMEOUT, read).await;
    body
}

/// The target of a `Link: <URL>; rel="next"` header (the OCI distribution tag list's next page), as
/// written (often relative to the request).
pub(super) fn next_link(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(reqwest::header::LINK)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|link| {
            let (target, params) = link.trim().split_once(';')?;
            let is_next = params.split(';').any(|p| {
                let p = p.trim().replace(' ', "");
                p == "rel=\"next\"" || p == "rel=next"
            });
            let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
            is_next.then(|| target.to_string())
        })
}

/// Same scheme, host and port: where the registry's credentials may go.
pub(super) fn same_origin(a: &url::Url, b: &url::Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
}

/// Follow at most [`MAX_REDIRECTS`] redirects, never from https to http, and never to another scheme on
/// the same host and port: reqwest drops `Authorization` only when the host or port changes, so a scheme
/// change alone would carry the token along (in clear, for a downgrade).
pub(super) fn redirect_policy() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let refusal = attempt.previous().last().and_then(|previous| {
            let next = attempt.url();
            if attempt.previous().len() > MAX_REDIRECTS {
                Some(format!("more than {MAX_REDIRECTS} redirects"))
            } else if previous.scheme() == "https" && next.scheme() != "https" {
                Some(format!(
                    "refused a redirect from https to `{}`",
                    next.scheme()
                ))
            } else if previous.scheme() != next.scheme()
                && previous.host_str() == next.host_str()
                && previous.port_or_known_default() == next.port_or_known_default()
            {
                Some("refused a redirect that changes only the scheme".to_string())
            } else {
                None
            }
        });
        match refusal {
            Some(r) => attempt.error(r),
            None => attempt.follow(),
        }
    })
}

/// A digest from outside that goes into a URL: `sha256:` + 64 lowercase hex, or an error.
pub(super) fn checked_digest(object: &str, digest: &str) -> Result<(), Error> {
    if super::manifest::is_digest(digest) {
        Ok(())
    } else {
        Err(Error::Manifest {
            object: object.to_string(),
            message: format!(
                "`{}` is not a digest of the form `sha256:` + 64 lowercase hex",
                digest.escape_debug()
            ),
        })
    }
}

/// Turn a non-success response into an [`Error::Status`] with the registry's own error code.
pub(super) async fn status_error(
    verb: &'static str,
    object: &str,
    resp: reqwest::Response,
) -> Error {
    let status = resp.status().as_u16();
    let body = error_body(resp).await;
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

pub(super) fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

pub(super) fn accept_all() -> String {
    ACCEPTED.join(", ")
}
