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
//! The model and its format only; `s3` reads and writes the object. No AWS API.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The state object's name, relative to the prefix. Reserved: never uploaded from the build, never
/// deleted as stale.
pub const STATE_NAME: &str = ".cloudshop-deploy/sync-state.json";
/// The folder of the action's bookkeeping (the state, the backups of a sync), relative to the prefix:
/// never uploaded from the build, never deleted as stale.
pub const STATE_DIR: &str = ".cloudshop-deploy/";

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

/// A release of the site: the frontend artifact it was synced from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    /// The artifact's manifest digest (`sha256:...`) in the environment's ECR repository.
    pub artifact: String,
    /// The image tag (git SHA) it was built with.
    pub tag: String,
}

/// The state: key -> entry, and which release is live (and which was before it), so a rollback can
/// find the previous release's artifact.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncState {
    /// Format version.
    pub version: u32,
    /// By full key.
    pub objects: BTreeMap<String, Entry>,
    /// The release the bucket serves; `None` when it was synced from a folder with no artifact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live: Option<Release>,
    /// The release served before `live`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<Release>,
}

const VERSION: u32 = 1;

/// The state of `objects`, in the current format, with no release recorded.
pub fn new(objects: BTreeMap<String, Entry>) -> SyncState {
    SyncState {
        version: VERSION,
        objects,
        live: None,
        previous: None,
    }
}

/// The releases after syncing `live` over a bucket whose state was `old`: the old live release
/// becomes the previous one, unless the same release is synced again (a re-run), which keeps both.
pub fn releases(
    old: Option<&SyncState>,
    live: Option<Release>,
) -> (Option<Release>, Option<Release>) {
    let old_live = old.and_then(|s| s.live.clone());
    let old_previous = old.and_then(|s| s.previous.clone());
    match (&live, &old_live) {
        (Some(new), Some(was)) if new.artifact == was.artifact => (live, old_previous),
        // Synced from a folder: the release is unknown, the one it replaced is still the previous.
        (None, None) => (None, old_previous),
        _ => (live, old_live),
    }
}

/// Parse the state object read from `key`; `None` (with a warning) when it cannot be used, which only
/// costs HEAD requests.
pub fn decode(key: &str, bytes: &[u8]) -> Option<SyncState> {
    match serde_json::from_slice::<SyncState>(bytes) {
        Ok(s) if s.version == VERSION => Some(s),
        Ok(s) => {
            tracing::warn!(
                version = s.version,
                "unknown sync state version; ignoring it"
            );
            None
        }
        Err(e) => {
            tracing::warn!("the sync state `{key}` does not parse ({e}); ignoring it");
            None
        }
    }
}

/// Is this state the same as `new` (so writing it would change nothing)?
pub fn same(old: Option<&SyncState>, new: &SyncState) -> bool {
    old.is_some_and(|s| s == new)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn objects() -> BTreeMap<String, Entry> {
        let e = Entry {
            etag: "900150983cd24fb0d6963f7d28e17f72".into(),
            size: 3,
            last_modified: "1700000000.000000000".into(),
            sha256: "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad".into(),
            content_type: "text/plain; charset=utf-8".into(),
            cache_control: "public, max-age=300".into(),
        };
        [("web/a.txt".to_string(), e)].into()
    }

    #[test]
    fn the_state_round_trips_and_a_foreign_one_is_ignored() {
        let bytes = serde_json::to_vec(&new(objects())).unwrap();
        let back = decode("k", &bytes).unwrap();
        assert_eq!(back.objects, objects());
        assert!(same(Some(&back), &new(objects())));
        assert!(!same(Some(&back), &new(BTreeMap::new())));
        assert!(!same(None, &new(objects())));
        let future = serde_json::to_vec(&SyncState {
            version: VERSION + 1,
            objects: objects(),
            ..SyncState::default()
        })
        .unwrap();
        assert_eq!(decode("k", &future), None);
        assert_eq!(decode("k", b"not json"), None);
    }

    fn release(n: u8) -> Release {
        Release {
            artifact: format!("sha256:{}", format!("{n:x}").repeat(64)),
            tag: format!("sha{n}"),
        }
    }

    #[test]
    fn the_live_release_becomes_the_previous_one() {
        let old = SyncState {
            live: Some(release(1)),
            previous: Some(release(0)),
            ..new(objects())
        };
        // A new release: 1 is now the previous one.
        assert_eq!(
            releases(Some(&old), Some(release(2))),
            (Some(release(2)), Some(release(1)))
        );
        // The same release again (a re-run) keeps the previous one.
        assert_eq!(
            releases(Some(&old), Some(release(1))),
            (Some(release(1)), Some(release(0)))
        );
        // A sync from a folder: no live release, the one it replaced is the previous.
        assert_eq!(releases(Some(&old), None), (None, Some(release(1))));
        let unknown = SyncState {
            previous: Some(release(1)),
            ..new(objects())
        };
        assert_eq!(releases(Some(&unknown), None), (None, Some(release(1))));
        assert_eq!(releases(None, Some(release(3))), (Some(release(3)), None));
        // A state without releases (an older run) still parses.
        let bytes = serde_json::to_vec(&new(objects())).unwrap();
        assert!(!String::from_utf8_lossy(&bytes).contains("live"));
        let with = serde_json::to_vec(&old).unwrap();
        assert_eq!(decode("k", &with), Some(old));
    }
}
