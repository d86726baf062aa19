//! The sync state: one small JSON object in the bucket (`<prefix>.cloudshop-deploy/sync-state.json`)
//! recording, for each object this action wrote, the SHA-256 of its bytes and the Content-Type and
//! Cache-Control it was given, together with the ETag, size and LastModified the bucket listed for it.
//!
//! Why: `ListObjectsV2` returns no metadata, so without this every file whose MD5 matches would need a
//! `HeadObject` to compare headers (2,000 HEADs for an unchanged build). An entry is trusted only while
//! the listing still shows the same ETag, size and LastModified: any later write to the object (another
//! tool, a copy in place with new headers) changes LastModified, and the sync falls back to `HeadObject`
//! for that key. A lost or corrupt state file only costs HEADs, never a wrong skip.
//!
//! AWS APIs: S3 `GetObject`, `PutObject` (of the state object only).

use std::collections::BTreeMap;

use aws_sdk_s3::primitives::ByteStream;
use serde::{Deserialize, Serialize};

use super::Error;
use crate::aws::describe;

/// The state object's name, relative to the prefix. Reserved: never uploaded from the build, never
/// deleted as stale.
pub const STATE_NAME: &str = ".cloudshop-deploy/sync-state.json";

/// What the bucket listed for an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// ETag without quotes.
    pub etag: String,
    /// Size in bytes.
    pub size: i64,
    /// LastModified, as `seconds.nanoseconds` since the epoch.
    pub last_modified: String,
}

/// One object as this action left it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// ETag the listing showed after the write.
    pub etag: String,
    pub size: i64,
    /// LastModified the listing showed after the write.
    pub last_modified: String,
    /// SHA-256 of the bytes.
    pub sha256: String,
    /// Content-Type it was given.
    pub content_type: String,
    /// Cache-Control it was given.
    pub cache_control: String,
}

impl Entry {
    /// Does the listing still show the very object this entry describes?
    pub fn matches(&self, listed: &Listed) -> bool {
        self.etag == listed.etag
            && self.size == listed.size
            && self.last_modified == listed.last_modified
    }
}

/// The state: key -> entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncState {
    /// Format version.
    pub version: u32,
    /// By full key.
    pub objects: BTreeMap<String, Entry>,
}

const VERSION: u32 = 1;

/// Read the state object; `None` when there is none (first run) or it cannot be used.
pub async fn read(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
) -> Result<Option<SyncState>, Error> {
    let out = match s3.get_object().bucket(bucket).key(key).send().await {
        Ok(o) => o,
        Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => return Ok(None),
        // A missing bucket is reported, once and clearly, by the listing that runs alongside.
        Err(e) if crate::aws::code(&e) == Some("NoSuchBucket") => return Ok(None),
        Err(e) => return Err(super::s3::object_error("read", bucket, key, &e)),
    };
    let bytes = match out.body.collect().await {
        Ok(b) => b.into_bytes(),
        Err(e) => {
            tracing::warn!("could not read the sync state `{key}` ({e}); every object will be checked with HeadObject");
            return Ok(None);
        }
    };
    match serde_json::from_slice::<SyncState>(&bytes) {
        Ok(s) if s.version == VERSION => Ok(Some(s)),
        Ok(s) => {
            tracing::warn!(
                version = s.version,
                "unknown sync state version; ignoring it"
            );
            Ok(None)
        }
        Err(e) => {
            tracing::warn!("the sync state `{key}` does not parse ({e}); ignoring it");
            Ok(None)
        }
    }
}

/// Write the state object. A failure is only a warning: the sync is done, the next run checks with HEAD.
pub async fn write(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    objects: BTreeMap<String, Entry>,
) {
    let state = SyncState {
        version: VERSION,
        objects,
    };
    let body = match serde_json::to_vec(&state) {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!("could not encode the sync state: {e}");
            return;
        }
    };
    let res = s3
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(body))
        .content_type("application/json")
        .cache_control("no-store")
        .send()
        .await;
    match res {
        Ok(_) => tracing::info!(objects = state.objects.len(), "sync state written to `{key}`"),
        Err(e) => crate::github::commands::emit(
            crate::github::commands::Level::Warning,
            None,
            &format!(
                "failed to write the sync state `s3://{bucket}/{key}`: {}; the next run compares with HeadObject instead",
                describe(&e)
            ),
        ),
    }
}

/// Is this state the same as `objects` (so writing it would change nothing)?
pub fn same(old: Option<&SyncState>, objects: &BTreeMap<String, Entry>) -> bool {
    old.is_some_and(|s| s.version == VERSION && &s.objects == objects)
}
