//! Multipart uploads of large build files: the parts streamed from disk, a few at a time, and the
//! upload aborted on every way out but success: its own error, a sibling upload's error and a cancel
//! (both drop the future that owns it: see [`OpenUpload`]). A panic aborts the process before any request
//! could be sent: [`open_uploads`] names what it left open.
//!
//! AWS APIs: S3 `CreateMultipartUpload`, `UploadPart`, `CompleteMultipartUpload`,
//! `AbortMultipartUpload`.

use std::collections::BTreeMap;
use std::sync::Mutex;

use aws_sdk_s3::primitives::{ByteStream, Length};
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use futures::{StreamExt, TryStreamExt};

use super::error::Error;
use super::plan::Upload;
use super::s3::{etag_of, object_error, SHA256_META};
use crate::aws::describe;

/// Files larger than this are uploaded in parts.
pub(super) const THRESHOLD: u64 = 16 * 1024 * 1024;
/// Size of one part (S3 allows at most 10,000 parts; the size grows for larger files).
const PART_SIZE: u64 = 8 * 1024 * 1024;
/// Parts of one file in flight at once.
const PART_CONCURRENCY: usize = 4;

/// The part size for a file: [`PART_SIZE`], grown so no file needs more than 10,000 parts.
fn part_size(size: u64) -> u64 {
    PART_SIZE.max(size.div_ceil(10_000))
}

/// One file in parts; the upload is aborted on every way out but success (see [`OpenUpload`]).
pub(super) async fn put(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    up: &Upload,
) -> Result<String, Error> {
    let created = s3
        .create_multipart_upload()
        .bucket(bucket)
        .key(&up.key)
        .content_type(&up.content_type)
        .cache_control(&up.cache_control)
        .metadata(SHA256_META, &up.file.sha256)
        .send()
        .await
        .map_err(|e| object_error("upload", bucket, &up.key, &e))?;
    let Some(upload_id) = created.upload_id() else {
        return Err(Error::Aws {
            verb: "upload",
            object: format!("s3://{bucket}/{}", up.key),
            detail: "CreateMultipartUpload returned no UploadId".into(),
        });
    };
    let open = OpenUpload::new(s3, bucket, &up.key, upload_id);
    let completed = match upload_parts(s3, bucket, up, upload_id).await {
        Ok(parts) => s3
            .complete_multipart_upload()
            .bucket(bucket)
            .key(&up.key)
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .map(|out| etag_of(out.e_tag()))
            .map_err(|e| object_error("upload", bucket, &up.key, &e)),
        Err(e) => Err(e),
    };
    match &completed {
        Ok(_) => open.completed(),
        Err(_) => open.abort().await,
    }
    completed
}

/// Every part of `up`, [`PART_CONCURRENCY`] at a time, streamed from disk.
async fn upload_parts(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    up: &Upload,
    upload_id: &str,
) -> Result<Vec<CompletedPart>, Error> {
    let part = part_size(up.file.size);
    let count = up.file.size.div_ceil(part);
    futures::stream::iter(0..count)
        .map(|i| async move {
            let offset = i * part;
            let len = part.min(up.file.size - offset);
            let body = ByteStream::read_from()
                .path(&up.file.path)
                .offset(offset)
                .length(Length::Exact(len))
                .build()
                .await
                .map_err(|e| Error::Walk {
                    path: up.file.path.clone(),
                    message: e.to_string(),
                })?;
            let number = (i + 1) as i32;
            let out = s3
                .upload_part()
                .bucket(bucket)
                .key(&up.key)
                .upload_id(upload_id)
                .part_number(number)
                .content_length(len as i64)
                .body(body)
                .send()
                .await
                .map_err(|e| object_error("upload", bucket, &up.key, &e))?;
            Ok::<_, Error>(
                CompletedPart::builder()
                    .part_number(number)
                    .set_e_tag(out.e_tag().map(str::to_string))
                    .build(),
            )
        })
        .buffered(PART_CONCURRENCY)
        .try_collect()
        .await
}

/// Multipart uploads begun and not yet completed or aborted, `upload id -> s3://bucket/key`: what a
/// panic leaves open (see [`open_uploads`]).
static OPEN: Mutex<BTreeMap<String, String>> = Mutex::new(BTreeMap::new());
/// Aborts sent for uploads whose future was dropped, awaited by [`settle_aborts`].
static ABORTS: Mutex<Vec<tokio::task::JoinHandle<()>>> = Mutex::new(Vec::new());

fn locked<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic elsewhere aborts the process (see `shutdown`), so a poisoned lock still holds good data.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A multipart upload S3 has begun. Its parts are billed until it is completed or aborted, so it is
/// aborted on every way out but success: its own error ([`OpenUpload::abort`]), and a drop, which is
/// how a sibling upload's failure (the stream of uploads is dropped) and a cancel (the run's future
/// is dropped) reach it: the drop sends the abort on the runtime, and [`settle_aborts`] waits for it.
struct OpenUpload {
    s3: aws_sdk_s3::Client,
    bucket: String,
    key: String,
    id: String,
    open: bool,
}

impl OpenUpload {
    fn new(s3: &aws_sdk_s3::Client, bucket: &str, key: &str, id: &str) -> OpenUpload {
        locked(&OPEN).insert(id.to_string(), format!("s3://{bucket}/{key}"));
        OpenUpload {
            s3: s3.clone(),
            bucket: bucket.to_string(),
            key: key.to_string(),
            id: id.to_string(),
            open: true,
        }
    }

    fn completed(mut self) {
        self.open = false;
        locked(&OPEN).remove(&self.id);
    }

    async fn abort(mut self) {
        self.open = false;
        locked(&OPEN).remove(&self.id);
        abort(self.request()).await;
    }

    fn request(
        &self,
    ) -> aws_sdk_s3::operation::abort_multipart_upload::builders::AbortMultipartUploadFluentBuilder
    {
        self.s3
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(&self.id)
    }
}

impl Drop for OpenUpload {
    fn drop(&mut self) {
        if !self.open {
            return;
        }
        locked(&OPEN).remove(&self.id);
        // Outside a runtime (it is shutting down) nothing can be sent; the panic hook names the rest.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let task = rt.spawn(abort(self.request()));
            locked(&ABORTS).push(task);
        }
    }
}

async fn abort(
    req: aws_sdk_s3::operation::abort_multipart_upload::builders::AbortMultipartUploadFluentBuilder,
) {
    let what = format!(
        "s3://{}/{}",
        req.get_bucket().as_deref().unwrap_or_default(),
        req.get_key().as_deref().unwrap_or_default()
    );
    match req.send().await {
        Ok(_) => tracing::info!("multipart upload of {what} aborted"),
        Err(e) => tracing::warn!(
            "could not abort the multipart upload of {what} ({}); its parts are billed until a lifecycle rule removes them",
            describe(&e)
        ),
    }
}

/// Wait, at most `limit`, for the aborts of uploads that were dropped (a sibling failed, the run was
/// cancelled).
pub async fn settle_aborts(limit: std::time::Duration) {
    let tasks = std::mem::take(&mut *locked(&ABORTS));
    if tasks.is_empty() {
        return;
    }
    tracing::info!(
        uploads = tasks.len(),
        "aborting unfinished multipart uploads"
    );
    if tokio::time::timeout(limit, futures::future::join_all(tasks))
        .await
        .is_err()
    {
        tracing::warn!("multipart aborts still in flight after {limit:?}");
    }
}

/// The multipart uploads still open (`s3://bucket/key` and upload id), for a panic report: a panic
/// aborts the process before any request could be sent.
pub fn open_uploads() -> Vec<(String, String)> {
    locked(&OPEN)
        .iter()
        .map(|(id, object)| (object.clone(), id.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_size_grows_for_huge_files() {
        assert_eq!(part_size(20 << 20), PART_SIZE);
        assert!(part_size(200 << 30).div_ceil(1) * 10_000 >= 200 << 30);
    }
}
