//! The decisions of the frontend sync, with no I/O: which build files to upload and why, which objects
//! are already in place, which only a `HeadObject` can settle, which stale objects to delete, in what
//! order the writes happen, and what the sync state records afterwards. No AWS API: the caller lists,
//! reads the state, sends the HEAD requests and writes; this module only decides.
//!
//! A file is unchanged when its MD5 equals the object's single-part ETag, or (multipart objects) when
//! its SHA-256 equals the one this action stored in the object's metadata, and when the object's
//! Content-Type and Cache-Control are the ones the rules give today. The [`SyncState`] vouches for the
//! headers of objects this action wrote, as long as the listing still shows the very object it recorded.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::local::{self, LocalFile};
use super::state::{Entry, Listed, SyncState};

/// Why a file is uploaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reason {
    /// No object with this key.
    New,
    /// The bytes differ.
    Changed,
    /// Same bytes, but Content-Type or Cache-Control differ from the rules.
    Metadata,
}

impl Reason {
    /// The spelling in the log and the summary.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::New => "new",
            Reason::Changed => "changed",
            Reason::Metadata => "metadata",
        }
    }
}

/// A build file with the key and headers it should have in the bucket; once planned, why it goes up.
#[derive(Debug, Clone, PartialEq)]
pub struct Upload {
    pub file: LocalFile,
    /// The prefix followed by the path relative to the build folder.
    pub key: String,
    pub content_type: String,
    pub cache_control: String,
    /// [`Reason::New`] until [`triage`] or [`judge`] says otherwise.
    pub reason: Reason,
}

impl Upload {
    /// The file as it should be in the bucket under `prefix`.
    pub fn new(file: LocalFile, prefix: &str, content_type: String, cache_control: String) -> Self {
        Upload {
            key: format!("{prefix}{}", file.rel),
            file,
            content_type,
            cache_control,
            reason: Reason::New,
        }
    }
}

/// What the listing and the state object settle, before any `HeadObject`.
#[derive(Debug, Default)]
pub struct Triage {
    /// Files the listing or the state proves different.
    pub uploads: Vec<Upload>,
    /// Files the state proves in place, by key.
    pub known: BTreeMap<String, Entry>,
    /// Files whose listed object only a `HeadObject` can compare (a multipart ETag, or a matching MD5
    /// with headers nobody recorded).
    pub to_check: Vec<(Upload, Listed)>,
}

/// Compare every build file with the listing and the state. Objects whose listing already proves a
/// difference need no HEAD, nor do those the state describes (same ETag, size and LastModified as when
/// this action wrote them).
pub fn triage(
    files: Vec<Upload>,
    remote: &BTreeMap<String, Listed>,
    state: Option<&SyncState>,
) -> Triage {
    let mut t = Triage::default();
    for mut up in files {
        let listed = remote.get(&up.key);
        let recorded = state
            .and_then(|s| s.objects.get(&up.key))
            .zip(listed)
            .filter(|(e, listed)| e.matches(listed))
            .map(|(e, _)| e);
        if let Some(e) = recorded {
            if e.sha256 != up.file.sha256 {
                up.reason = Reason::Changed;
                t.uploads.push(up);
            } else if e.content_type != up.content_type || e.cache_control != up.cache_control {
                up.reason = Reason::Metadata;
                t.uploads.push(up);
            } else {
                t.known.insert(up.key.clone(), e.clone());
            }
            continue;
        }
        match listed {
            None => t.uploads.push(up),
            Some(r) if r.size != up.file.size as i64 => {
                up.reason = Reason::Changed;
                t.uploads.push(up);
            }
            Some(r) if !is_multipart(&r.etag) && r.etag != up.file.md5 => {
                up.reason = Reason::Changed;
                t.uploads.push(up);
            }
            Some(r) => t.to_check.push((up, r.clone())),
        }
    }
    t
}

/// A multipart ETag (`<md5 of the part MD5s>-<parts>`) is not the MD5 of the bytes.
fn is_multipart(etag: &str) -> bool {
    etag.contains('-')
}

/// What `HeadObject` said about an object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Head {
    /// Without quotes.
    pub etag: Option<String>,
    /// The SHA-256 this action stores in the object's metadata, when present.
    pub sha256: Option<String>,
    pub content_type: Option<String>,
    pub cache_control: Option<String>,
}

/// The verdict on a file that needed a `HeadObject`.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// In place: the entry the new state records for it.
    InPlace { key: String, entry: Entry },
    /// Upload, with the reason set.
    Upload(Upload),
}

/// Judge a file from its listing and its HEAD reply (`None`: the object was deleted since the listing).
pub fn judge(mut up: Upload, listed: Listed, head: Option<&Head>) -> Verdict {
    let Some(head) = head else {
        return Verdict::Upload(up);
    };
    let same_bytes = match &head.sha256 {
        // The SHA-256 this action stored is exact, multipart or not.
        Some(sha) => sha.eq_ignore_ascii_case(&up.file.sha256),
        // No SHA-256: only a single-part ETag (the MD5) can prove the bytes equal.
        None => !is_multipart(&listed.etag) && listed.etag == up.file.md5,
    };
    // Rewritten between the listing and the HEAD: our build is the truth, put it back.
    let raced = head.etag.as_deref() != Some(listed.etag.as_str());
    if !same_bytes || raced {
        up.reason = Reason::Changed;
        return Verdict::Upload(up);
    }
    // Without our SHA-256 the object was written by someone else: rewrite it so the next run can trust it.
    let same_meta = head.content_type.as_deref() == Some(up.content_type.as_str())
        && head.cache_control.as_deref() == Some(up.cache_control.as_str())
        && head.sha256.is_some();
    if !same_meta {
        up.reason = Reason::Metadata;
        return Verdict::Upload(up);
    }
    Verdict::InPlace {
        key: up.key,
        entry: Entry {
            etag: listed.etag,
            size: listed.size,
            last_modified: listed.last_modified,
            sha256: up.file.sha256,
            content_type: up.content_type,
            cache_control: up.cache_control,
        },
    }
}

/// Stale objects: listed under the prefix, not a build file, not excluded, not the state object.
/// `excluded` is matched against the key without the prefix, as the build's paths are.
pub fn stale(
    remote: &BTreeMap<String, Listed>,
    local_keys: &BTreeSet<String>,
    prefix: &str,
    state_key: &str,
    excluded: impl Fn(&str) -> bool,
) -> Vec<String> {
    remote
        .keys()
        .filter(|k| k.as_str() != state_key && !local_keys.contains(*k))
        .filter(|k| !excluded(k.strip_prefix(prefix).unwrap_or(k)))
        .cloned()
        .collect()
}

/// What will be uploaded, deleted and left alone, in the order of the writes: assets, then HTML pages,
/// then the root `index.html`, then the deletes, then the state object. A visitor never gets a page
/// whose assets are missing, even when the run dies half-way.
#[derive(Debug)]
pub struct SyncPlan {
    /// Everything but HTML.
    pub assets: Vec<Upload>,
    /// HTML pages other than the root `index.html`, uploaded once every asset is in place.
    pub pages: Vec<Upload>,
    /// The root `index.html`, uploaded last.
    pub entry: Option<Upload>,
    /// Keys to delete, after the entry point.
    pub deletes: Vec<String>,
    /// Files already in place.
    pub unchanged: usize,
    /// State entries of the files already in place (carried into the new state).
    pub(super) known: BTreeMap<String, Entry>,
    /// The state object as read.
    pub(super) old_state: Option<SyncState>,
    pub(super) state_key: String,
}

impl SyncPlan {
    /// Sort the uploads into their phases (each by key).
    pub fn new(
        mut uploads: Vec<Upload>,
        deletes: Vec<String>,
        known: BTreeMap<String, Entry>,
        old_state: Option<SyncState>,
        state_key: String,
    ) -> Self {
        uploads.sort_by(|a, b| a.key.cmp(&b.key));
        let mut assets = Vec::new();
        let mut pages = Vec::new();
        let mut entry = None;
        for up in uploads {
            if up.file.rel == "index.html" {
                entry = Some(up);
            } else if local::is_html(&up.file.rel) {
                pages.push(up);
            } else {
                assets.push(up);
            }
        }
        SyncPlan {
            assets,
            pages,
            entry,
            deletes,
            unchanged: known.len(),
            known,
            old_state,
            state_key,
        }
    }

    /// Every upload, in the order they will happen (by phase).
    pub fn uploads(&self) -> impl Iterator<Item = &Upload> {
        self.assets
            .iter()
            .chain(self.pages.iter())
            .chain(self.entry.iter())
    }

    /// The upload phases, in order: each completes before the next starts.
    pub fn phases(&self) -> [&[Upload]; 3] {
        [&self.assets, &self.pages, self.entry.as_slice()]
    }
}

/// The state entries after a sync: the plan's known entries the listing still shows, and each write of
/// this run (`key -> (ETag S3 gave the write, the upload)`) that the listing shows with that ETag, with
/// the ETag and LastModified S3 gave it. Someone else's write since ours is not recorded as ours.
pub fn next_state(
    known: &BTreeMap<String, Entry>,
    written: &BTreeMap<String, (String, &Upload)>,
    listing: &BTreeMap<String, Listed>,
) -> BTreeMap<String, Entry> {
    let mut objects = BTreeMap::new();
    for (key, entry) in known {
        if listing.get(key).is_some_and(|l| entry.matches(l)) {
            objects.insert(key.clone(), entry.clone());
        }
    }
    for (key, (etag, up)) in written {
        if let Some(l) = listing.get(key).filter(|l| &l.etag == etag) {
            objects.insert(
                key.clone(),
                Entry {
                    etag: l.etag.clone(),
                    size: l.size,
                    last_modified: l.last_modified.clone(),
                    sha256: up.file.sha256.clone(),
                    content_type: up.content_type.clone(),
                    cache_control: up.cache_control.clone(),
                },
            );
        }
    }
    objects
}
