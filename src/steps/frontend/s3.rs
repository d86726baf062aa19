//! The S3 side of the frontend sync: list the objects under the prefix, HEAD the ones the listing does
//! not settle, upload files streamed from disk (one request; `multipart` has the uploads in parts),
//! delete stale objects in batches, and read and write the sync state object. Every failed request
//! becomes an [`Error`] through one classifier.
//!
//! AWS APIs: S3 `ListObjectsV2`, `HeadObject`, `GetObject`, `PutObject`, `CopyObject`,
//! `DeleteObjects`.

use std::collections::BTreeMap;

use aws_sdk_s3::operation::put_object::PutObjectError;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{Delete, ObjectIdentifier};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use base64::Engine;

use super::error::Error;
use super::pending::{self, Pending};
use super::plan::{Head, Upload};
use super::state::{self, Listed, SyncState};
use crate::aws::describe;

/// `DeleteObjects` takes at most this many keys.
const DELETE_BATCH: usize = 1000;
/// The metadata key (`x-amz-meta-sha256`) holding the SHA-256 of the object's bytes.
pub(super) const SHA256_META: &str = "sha256";
/// The most of the sync state object read: a state of 100,000 objects is about 12 MiB; anything larger
/// is not ours, and reading it whole could exhaust the runner's memory.
const MAX_STATE: usize = 16 * 1024 * 1024;

/// The error for a failed S3 request on `object`: access denied when S3 says `AccessDenied` or answers
/// 403 (HEAD replies carry no code, so the status is the one signal that works for every request).
fn classify(
    verb: &'static str,
    object: String,
    status: Option<u16>,
    code: Option<&str>,
    detail: String,
) -> Error {
    if status == Some(403) || code == Some("AccessDenied") {
        Error::AccessDenied {
            verb,
            object,
            detail,
        }
    } else {
        Error::Aws {
            verb,
            object,
            detail,
        }
    }
}

/// [`classify`] an SDK error of a request on `s3://bucket/key`.
pub(super) fn object_error<E>(
    verb: &'static str,
    bucket: &str,
    key: &str,
    e: &SdkError<E, HttpResponse>,
) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    classify(
        verb,
        format!("s3://{bucket}/{key}"),
        e.raw_response().map(|r| r.status().as_u16()),
        e.as_service_error().and_then(|s| s.code()),
        describe(e),
    )
}

/// Every object under the prefix (all pages of `ListObjectsV2`).
pub(super) async fn list(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
) -> Result<BTreeMap<String, Listed>, Error> {
    let mut out = BTreeMap::new();
    let mut pages = s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| {
            if e.as_service_error().is_some_and(|s| s.is_no_such_bucket()) {
                Error::NoSuchBucket {
                    bucket: bucket.to_string(),
                }
            } else {
                object_error("list", bucket, prefix, &e)
            }
        })?;
        for o in page.contents() {
            if let Some(key) = o.key() {
                out.insert(
                    key.to_string(),
                    Listed {
                        etag: etag_of(o.e_tag()),
                        size: o.size().unwrap_or(-1),
                        last_modified: o
                            .last_modified()
                            .map(|t| format!("{}.{:09}", t.secs(), t.subsec_nanos()))
                            .unwrap_or_default(),
                    },
                );
            }
        }
    }
    Ok(out)
}

/// `HeadObject`; `None` when the object is gone (deleted since the listing).
pub(super) async fn head(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
) -> Result<Option<Head>, Error> {
    match s3.head_object().bucket(bucket).key(key).send().await {
        Ok(h) => Ok(Some(Head {
            etag: h.e_tag().map(|t| t.trim_matches('"').to_string()),
            sha256: h
                .metadata()
                .and_then(|m| m.get(SHA256_META))
                .map(String::from),
            content_type: h.content_type().map(String::from),
            cache_control: h.cache_control().map(String::from),
        })),
        Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(None),
        Err(e) => Err(object_error("read", bucket, key, &e)),
    }
}

/// Upload one file in one `PutObject`, streamed from disk (larger ones go through `multipart`).
/// Returns the ETag S3 gave it (without quotes).
pub(super) async fn put(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    up: &Upload,
) -> Result<String, Error> {
    let body = ByteStream::from_path(&up.file.path)
        .await
        .map_err(|e| Error::Walk {
            path: up.file.path.clone(),
            message: e.to_string(),
        })?;
    let md5 = hex::decode(&up.file.md5).unwrap_or_default();
    let out = s3
        .put_object()
        .bucket(bucket)
        .key(&up.key)
        .body(body)
        .content_length(up.file.size as i64)
        .content_md5(base64::engine::general_purpose::STANDARD.encode(md5))
        .content_type(&up.content_type)
        .cache_control(&up.cache_control)
        .metadata(SHA256_META, &up.file.sha256)
        .send()
        .await
        .map_err(|e| object_error("upload", bucket, &up.key, &e))?;
    Ok(etag_of(out.e_tag()))
}

pub(super) fn etag_of(tag: Option<&str>) -> String {
    tag.unwrap_or_default().trim_matches('"').to_string()
}

/// Delete keys in batches (`DeleteObjects`), calling `deleted` for each key S3 removed; a key S3
/// refuses fails the run once the rest of its batch is counted.
pub(super) async fn delete_all(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    keys: &[String],
    mut deleted: impl FnMut(&str),
) -> Result<(), Error> {
    let batch_error = |detail: String| Error::Aws {
        verb: "delete",
        object: format!("s3://{bucket}"),
        detail,
    };
    for batch in keys.chunks(DELETE_BATCH) {
        let objects = batch
            .iter()
            .map(|k| ObjectIdentifier::builder().key(k).build())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| batch_error(e.to_string()))?;
        let delete = Delete::builder()
            .set_objects(Some(objects))
            .quiet(true)
            .build()
            .map_err(|e| batch_error(e.to_string()))?;
        let out = s3
            .delete_objects()
            .bucket(bucket)
            .delete(delete)
            .send()
            .await
            .map_err(|e| object_error("delete", bucket, &batch[0], &e))?;
        // Refused keys, with S3's code (for the classifier) and `code: message` (for the reader).
        let mut failed: BTreeMap<&str, (Option<&str>, String)> = out
            .errors()
            .iter()
            .filter_map(|e| {
                e.key().map(|k| {
                    let detail = format!(
                        "{}: {}",
                        e.code().unwrap_or("Error"),
                        e.message().unwrap_or_default()
                    );
                    (k, (e.code(), detail))
                })
            })
            .collect();
        for key in batch {
            if !failed.contains_key(key.as_str()) {
                tracing::info!("deleted {key}");
                deleted(key);
            }
        }
        if let Some((key, (code, detail))) = failed.pop_first() {
            return Err(classify(
                "delete",
                format!("s3://{bucket}/{key}"),
                None,
                code,
                detail,
            ));
        }
    }
    Ok(())
}

/// Server-side copy of `from` to `to` in one bucket, bytes and headers as they are (`CopyObject` with
/// the metadata copied: needs `s3:GetObject` on the source and `s3:PutObject` on the target).
pub(super) async fn copy(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    from: &str,
    to: &str,
) -> Result<(), Error> {
    // The copy source is URL-encoded, `/` kept.
    const KEEP: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'/')
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    let source = format!(
        "{bucket}/{}",
        percent_encoding::utf8_percent_encode(from, KEEP)
    );
    s3.copy_object()
        .bucket(bucket)
        .key(to)
        .copy_source(source)
        .metadata_directive(aws_sdk_s3::types::MetadataDirective::Copy)
        .send()
        .await
        .map_err(|e| object_error("copy", bucket, from, &e))?;
    tracing::info!("copied {from} -> {to}");
    Ok(())
}

/// [`copy`] from a backup back to its key, for a restore's journal: a backup that is gone was copied
/// back and deleted by an earlier attempt (a backup goes only after its copy), so there is nothing to do.
pub(super) async fn copy_back(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    from: &str,
    to: &str,
) -> Result<(), Error> {
    match head(s3, bucket, from).await? {
        Some(_) => copy(s3, bucket, from, to).await,
        None => {
            tracing::info!("{from} is gone: {to} was put back before");
            Ok(())
        }
    }
}

/// GET one of the action's own small objects (the sync state, the journal); `None` when it is not there.
async fn get_ours(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
) -> Result<Option<aws_sdk_s3::operation::get_object::GetObjectOutput>, Error> {
    match s3.get_object().bucket(bucket).key(key).send().await {
        Ok(o) => Ok(Some(o)),
        Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => Ok(None),
        // A missing bucket is reported, once and clearly, by the listing that runs alongside.
        Err(e) if crate::aws::code(&e) == Some("NoSuchBucket") => Ok(None),
        Err(e) => Err(object_error("read", bucket, key, &e)),
    }
}

/// Read the journal of an unfinished restore or cleanup; `None` when there is none (or not one of ours).
pub(super) async fn read_pending(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
) -> Result<Option<Pending>, Error> {
    let Some(out) = get_ours(s3, bucket, key).await? else {
        return Ok(None);
    };
    match read_capped(out.body, MAX_STATE).await {
        Ok(Some(bytes)) => Ok(pending::decode(key, &bytes)),
        Ok(None) => {
            tracing::warn!("the journal `{key}` is larger than {MAX_STATE} bytes; ignoring it");
            Ok(None)
        }
        Err(e) => Err(Error::Aws {
            verb: "read",
            object: format!("s3://{bucket}/{key}"),
            detail: e.to_string(),
        }),
    }
}

/// PUT one of the action's own small JSON objects (the sync state, the journal), never cached;
/// `failed` says what a refused upload means to the caller.
async fn put_ours(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    value: &impl serde::Serialize,
    failed: impl FnOnce(&SdkError<PutObjectError, HttpResponse>) -> Error,
) -> Result<(), Error> {
    let body = serde_json::to_vec(value).map_err(|e| Error::Aws {
        verb: "encode",
        object: format!("s3://{bucket}/{key}"),
        detail: e.to_string(),
    })?;
    s3.put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(body))
        .content_type("application/json")
        .cache_control("no-store")
        .send()
        .await
        .map(|_| ())
        .map_err(|e| failed(&e))
}

/// Write the journal of a restore or cleanup before it starts.
pub(super) async fn write_pending(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    pending: &Pending,
) -> Result<(), Error> {
    put_ours(s3, bucket, key, pending, |e| {
        object_error("upload", bucket, key, e)
    })
    .await?;
    tracing::info!("{} recorded in `{key}`", pending.describe());
    Ok(())
}

/// Read the sync state object; `None` when there is none (first run) or it cannot be used.
pub(super) async fn read_state(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
) -> Result<Option<SyncState>, Error> {
    let Some(out) = get_ours(s3, bucket, key).await? else {
        return Ok(None);
    };
    if out.content_length().is_some_and(|l| l > MAX_STATE as i64) {
        tracing::warn!(
            "the sync state `{key}` is larger than {MAX_STATE} bytes; every object will be checked with HeadObject"
        );
        return Ok(None);
    }
    let bytes = match read_capped(out.body, MAX_STATE).await {
        Ok(Some(b)) => b,
        Ok(None) => {
            tracing::warn!(
                "the sync state `{key}` is larger than {MAX_STATE} bytes; every object will be checked with HeadObject"
            );
            return Ok(None);
        }
        Err(e) => {
            tracing::warn!("could not read the sync state `{key}` ({e}); every object will be checked with HeadObject");
            return Ok(None);
        }
    };
    Ok(state::decode(key, &bytes))
}

/// Read a body of at most `cap` bytes piece by piece, whatever its `Content-Length` said; `None` when it
/// is larger.
async fn read_capped(
    mut body: ByteStream,
    cap: usize,
) -> Result<Option<Vec<u8>>, aws_smithy_types::byte_stream::error::Error> {
    let mut out = Vec::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk?;
        if out.len() + chunk.len() > cap {
            return Ok(None);
        }
        out.extend_from_slice(&chunk);
    }
    Ok(Some(out))
}

/// Write the sync state object. It is the ledger a later rollback reads (which release is live, which
/// came before), so a failure is an error: the caller fails the sync rather than go on as if it were
/// saved.
pub(super) async fn write_state(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    state: &SyncState,
) -> Result<(), Error> {
    put_ours(s3, bucket, key, state, |e| Error::State {
        object: format!("s3://{bucket}/{key}"),
        detail: describe(e),
    })
    .await?;
    tracing::info!(
        objects = state.objects.len(),
        "sync state written to `{key}`"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_state_read_stops_at_its_bound() {
        let small = ByteStream::from(vec![b'{'; 1000]);
        assert_eq!(read_capped(small, 1000).await.unwrap().unwrap().len(), 1000);
        let big = ByteStream::from(vec![b'{'; 1001]);
        assert!(read_capped(big, 1000).await.unwrap().is_none());
    }

    #[test]
    fn denied_by_status_or_code() {
        let denied = |status, code| {
            matches!(
                classify("read", "s3://b/k".into(), status, code, "x".into()),
                Error::AccessDenied { .. }
            )
        };
        assert!(denied(Some(403), None));
        assert!(denied(None, Some("AccessDenied")));
        assert!(denied(Some(403), Some("AccessDenied")));
        assert!(!denied(Some(500), Some("InternalError")));
        assert!(!denied(None, Some("NoSuchKey")));
        assert!(!denied(None, None));
    }
}
