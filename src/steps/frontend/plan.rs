//! The decisions of the frontend sync, with no I/O: which build files to upload and why, which objects
//! are already in place, which only a `HeadObject` can settle, which stale objects to delete, in what
//! order the writes happen, and what the sync state records afterwards. No AWS API: the caller lists,
//! reads the state, sends the HEAD requests and writes; this module only decides.
//!
//! A file is unchanged when its MD5 equals the object's single-part ETag, or (multipart objects) when
//! its SHA-256 equals the one this action stored in the object's metadata, and when the object's
//! Content-Type and Cache-Control are the ones the rules give today. The [`SyncState`] vouches for the
//! headers of objects this action wrote, as long as the listing still shows the very object it recorded.
//! A listing without ETags (some S3-compatible servers) proves only a size difference: the other
//! objects are compared by `HeadObject`, never re-uploaded blindly, and the state does not vouch for them.

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
    /// [`Reason::New`] until the plan says otherwise.
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
    /// Files whose listed object only a `HeadObject` can compare (a multipart ETag, no ETag listed, or a
    /// matching MD5 with headers nobody recorded).
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
        // A listing without an ETag (some S3-compatible servers) cannot confirm the state's entry.
        let recorded = state
            .and_then(|s| s.objects.get(&up.key))
            .zip(listed)
            .filter(|(e, listed)| !listed.etag.is_empty() && e.matches(listed))
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
            // No ETag listed: the bytes are unknown, not different; only a HEAD can tell.
            Some(r) if !r.etag.is_empty() && !is_multipart(&r.etag) && r.etag != up.file.md5 => {
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
/// When the listing showed no ETag, the HEAD reply's ETag stands in for it (and the entry, recorded as
/// listed, is one no later listing can confirm: see [`vouched`]).
pub fn judge(mut up: Upload, listed: Listed, head: Option<&Head>) -> Verdict {
    let Some(head) = head else {
        return Verdict::Upload(up);
    };
    let etag = match head.etag.as_deref() {
        Some(h) if listed.etag.is_empty() => h,
        _ => listed.etag.as_str(),
    };
    let same_bytes = match &head.sha256 {
        // The SHA-256 this action stored is exact, multipart or not.
        Some(sha) => sha.eq_ignore_ascii_case(&up.file.sha256),
        // No SHA-256: only a single-part ETag (the MD5) can prove the bytes equal.
        None => !is_multipart(etag) && etag == up.file.md5,
    };
    // Rewritten between the listing and the HEAD: our build is the truth, put it back.
    let raced = head.etag.as_deref() != Some(etag);
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

/// The entries a sync state can vouch for: those with an ETag. An entry from a listing without ETags
/// would never be trusted (see [`triage`]), so it is not recorded.
pub fn vouched(known: &BTreeMap<String, Entry>) -> BTreeMap<String, Entry> {
    known
        .iter()
        .filter(|(_, e)| !e.etag.is_empty())
        .map(|(k, e)| (k.clone(), e.clone()))
        .collect()
}

/// Stale objects: listed under the prefix, not a build file, not excluded, not the action's bookkeeping
/// (the state object, the backups of a sync).
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
        .filter(|k| !super::undo::is_bookkeeping(prefix, k))
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
    for (key, entry) in vouched(known) {
        if listing.get(&key).is_some_and(|l| entry.matches(l)) {
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

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use md5::Md5;
    use sha2::{Digest, Sha256};

    use super::*;

    const JS: &str = "text/javascript; charset=utf-8";
    const SHORT: &str = "public, max-age=300";
    const LISTED_AT: &str = "1700000000.000000000";

    /// A build file `rel` holding `bytes`, hashed as the walk would.
    fn file(rel: &str, bytes: &[u8]) -> LocalFile {
        LocalFile {
            rel: rel.into(),
            path: PathBuf::from("/build").join(rel),
            size: bytes.len() as u64,
            md5: hex::encode(Md5::digest(bytes)),
            sha256: hex::encode(Sha256::digest(bytes)),
        }
    }

    fn wanted(prefix: &str, rel: &str, bytes: &[u8]) -> Upload {
        Upload::new(file(rel, bytes), prefix, JS.into(), SHORT.into())
    }

    /// The listing of a single-part object holding `bytes` (its ETag is their MD5).
    fn single(bytes: &[u8]) -> Listed {
        Listed {
            etag: hex::encode(Md5::digest(bytes)),
            size: bytes.len() as i64,
            last_modified: LISTED_AT.into(),
        }
    }

    /// The listing of a multipart object holding `bytes` (its ETag is no MD5 of them).
    fn multipart(bytes: &[u8]) -> Listed {
        Listed {
            etag: "0f343b0931126a20f133d67c2b018a3b-3".into(),
            ..single(bytes)
        }
    }

    /// The listing of an object holding `bytes` by a server that lists no ETag.
    fn no_etag(bytes: &[u8]) -> Listed {
        Listed {
            etag: String::new(),
            ..single(bytes)
        }
    }

    /// The state's entry for `listed`, written with `bytes` and these headers.
    fn entry(listed: &Listed, bytes: &[u8], content_type: &str, cache_control: &str) -> Entry {
        Entry {
            etag: listed.etag.clone(),
            size: listed.size,
            last_modified: listed.last_modified.clone(),
            sha256: hex::encode(Sha256::digest(bytes)),
            content_type: content_type.into(),
            cache_control: cache_control.into(),
        }
    }

    fn state(objects: &[(&str, Entry)]) -> SyncState {
        SyncState {
            version: 1,
            objects: objects
                .iter()
                .map(|(k, e)| (k.to_string(), e.clone()))
                .collect(),
            ..SyncState::default()
        }
    }

    /// What [`triage`] made of the one file of a case.
    #[derive(Debug, PartialEq)]
    enum Triaged {
        Upload(Reason),
        Known,
        Head,
    }

    /// Name, the build file, the listing, the state, the verdict.
    type TriageCase = (
        &'static str,
        Upload,
        Vec<(&'static str, Listed)>,
        Option<SyncState>,
        Triaged,
    );

    fn triage_one(up: Upload, remote: &[(&str, Listed)], state: Option<&SyncState>) -> Triaged {
        let remote: BTreeMap<String, Listed> = remote
            .iter()
            .map(|(k, l)| (k.to_string(), l.clone()))
            .collect();
        let t = triage(vec![up], &remote, state);
        match (t.uploads.as_slice(), t.known.len(), t.to_check.as_slice()) {
            ([up], 0, []) => Triaged::Upload(up.reason),
            ([], 1, []) => Triaged::Known,
            ([], 0, [_]) => Triaged::Head,
            _ => panic!("one file, several outcomes: {t:?}"),
        }
    }

    #[test]
    fn triage_decides_what_the_listing_and_the_state_settle() {
        let (v1, v2) = (b"console.log(1)".as_slice(), b"console.log(2)".as_slice());
        let v1_listed = single(v1);
        let v1_later = Listed {
            last_modified: "1700000999.000000000".into(),
            ..single(v1)
        };
        let ours = entry(&v1_listed, v1, JS, SHORT);
        let v1_no_etag = no_etag(v1);
        // The state written after a listing without ETags: it matches that listing field for field.
        let ours_no_etag = entry(&v1_no_etag, v1, JS, SHORT);
        let cases: Vec<TriageCase> = vec![
            (
                "no object: new",
                wanted("", "app.js", v1),
                vec![],
                None,
                Triaged::Upload(Reason::New),
            ),
            (
                "unchanged, vouched for by the state: no request",
                wanted("", "app.js", v1),
                vec![("app.js", v1_listed.clone())],
                Some(state(&[("app.js", ours.clone())])),
                Triaged::Known,
            ),
            (
                "changed content, the state knows the old bytes",
                wanted("", "app.js", v2),
                vec![("app.js", v1_listed.clone())],
                Some(state(&[("app.js", ours.clone())])),
                Triaged::Upload(Reason::Changed),
            ),
            (
                "same bytes, another Cache-Control",
                wanted("", "app.js", v1),
                vec![("app.js", v1_listed.clone())],
                Some(state(&[("app.js", entry(&v1_listed, v1, JS, "no-cache"))])),
                Triaged::Upload(Reason::Metadata),
            ),
            (
                "same bytes, another Content-Type",
                wanted("", "app.js", v1),
                vec![("app.js", v1_listed.clone())],
                Some(state(&[(
                    "app.js",
                    entry(&v1_listed, v1, "text/plain", SHORT),
                )])),
                Triaged::Upload(Reason::Metadata),
            ),
            (
                "state not matching the listing (rewritten since), same MD5: HEAD",
                wanted("", "app.js", v1),
                vec![("app.js", v1_later.clone())],
                Some(state(&[("app.js", ours.clone())])),
                Triaged::Head,
            ),
            (
                "state not matching the listing, other MD5: changed",
                wanted("", "app.js", v2),
                vec![("app.js", v1_later.clone())],
                Some(state(&[("app.js", ours.clone())])),
                Triaged::Upload(Reason::Changed),
            ),
            (
                "state records an object the listing no longer has: new",
                wanted("", "app.js", v1),
                vec![],
                Some(state(&[("app.js", ours.clone())])),
                Triaged::Upload(Reason::New),
            ),
            (
                "state of another key only: HEAD",
                wanted("", "app.js", v1),
                vec![("app.js", v1_listed.clone())],
                Some(state(&[("other.js", ours.clone())])),
                Triaged::Head,
            ),
            (
                "missing state, same MD5: only a HEAD shows the headers",
                wanted("", "app.js", v1),
                vec![("app.js", v1_listed.clone())],
                None,
                Triaged::Head,
            ),
            (
                "missing state, other size: changed without a HEAD",
                wanted("", "app.js", b"console.log(10)"),
                vec![("app.js", v1_listed.clone())],
                None,
                Triaged::Upload(Reason::Changed),
            ),
            (
                "missing state, same size, other MD5: changed without a HEAD",
                wanted("", "app.js", v2),
                vec![("app.js", v1_listed.clone())],
                None,
                Triaged::Upload(Reason::Changed),
            ),
            (
                "multipart ETag, same size: only the stored SHA-256 can tell",
                wanted("", "app.js", v2),
                vec![("app.js", multipart(v1))],
                None,
                Triaged::Head,
            ),
            (
                "multipart ETag, other size: changed",
                wanted("", "app.js", b"console.log(10)"),
                vec![("app.js", multipart(v1))],
                None,
                Triaged::Upload(Reason::Changed),
            ),
            (
                "no ETag listed, no state: HEAD, not a blind upload",
                wanted("", "app.js", v1),
                vec![("app.js", v1_no_etag.clone())],
                None,
                Triaged::Head,
            ),
            (
                "no ETag listed, other bytes of the same size: HEAD",
                wanted("", "app.js", v2),
                vec![("app.js", v1_no_etag.clone())],
                None,
                Triaged::Head,
            ),
            (
                "no ETag listed, other size: changed without a HEAD",
                wanted("", "app.js", b"console.log(10)"),
                vec![("app.js", v1_no_etag.clone())],
                None,
                Triaged::Upload(Reason::Changed),
            ),
            (
                "no ETag listed, a state entry matching it otherwise: not trusted, HEAD",
                wanted("", "app.js", v1),
                vec![("app.js", v1_no_etag.clone())],
                Some(state(&[("app.js", ours_no_etag.clone())])),
                Triaged::Head,
            ),
            (
                "no ETag listed, a state entry saying other bytes: not trusted, HEAD",
                wanted("", "app.js", v2),
                vec![("app.js", v1_no_etag.clone())],
                Some(state(&[("app.js", ours_no_etag.clone())])),
                Triaged::Head,
            ),
            (
                "no ETag listed, the state's entry with its ETag: HEAD",
                wanted("", "app.js", v1),
                vec![("app.js", v1_no_etag.clone())],
                Some(state(&[("app.js", ours.clone())])),
                Triaged::Head,
            ),
            (
                "prefix: the object without it is another object",
                wanted("web/", "app.js", v1),
                vec![("app.js", v1_listed.clone())],
                None,
                Triaged::Upload(Reason::New),
            ),
            (
                "prefix: the state is keyed by the full key",
                wanted("web/", "app.js", v1),
                vec![("web/app.js", v1_listed.clone())],
                Some(state(&[("web/app.js", ours.clone())])),
                Triaged::Known,
            ),
        ];
        for (name, up, remote, state, want) in cases {
            assert_eq!(triage_one(up, &remote, state.as_ref()), want, "{name}");
        }
    }

    #[test]
    fn triage_keys_carry_the_prefix() {
        let up = wanted("web/", "static/a.js", b"a");
        assert_eq!(up.key, "web/static/a.js");
        let t = triage(vec![up], &BTreeMap::new(), None);
        assert_eq!(t.uploads[0].key, "web/static/a.js");
    }

    /// What [`judge`] made of a case.
    #[derive(Debug, PartialEq)]
    enum Judged {
        Upload(Reason),
        InPlace,
    }

    /// Name, the build file's bytes, the listing, the HEAD reply, the verdict.
    type JudgeCase = (&'static str, &'static [u8], Listed, Option<Head>, Judged);

    fn head(listed: &Listed, sha256: Option<&[u8]>, content_type: &str) -> Head {
        Head {
            etag: Some(listed.etag.clone()),
            sha256: sha256.map(|b| hex::encode(Sha256::digest(b))),
            content_type: Some(content_type.into()),
            cache_control: Some(SHORT.into()),
        }
    }

    #[test]
    fn judge_decides_from_the_head_reply() {
        let (v1, v2) = (b"console.log(1)".as_slice(), b"console.log(2)".as_slice());
        let upper = Head {
            sha256: Some(hex::encode(Sha256::digest(v1)).to_uppercase()),
            ..head(&multipart(v1), None, JS)
        };
        let raced = Head {
            etag: Some("another-write".into()),
            ..head(&single(v1), Some(v1), JS)
        };
        let no_cache_control = Head {
            cache_control: None,
            ..head(&single(v1), Some(v1), JS)
        };
        let cases: Vec<JudgeCase> = vec![
            (
                "gone since the listing: new",
                v1,
                single(v1),
                None,
                Judged::Upload(Reason::New),
            ),
            (
                "single part, our SHA-256, same headers: in place",
                v1,
                single(v1),
                Some(head(&single(v1), Some(v1), JS)),
                Judged::InPlace,
            ),
            (
                "multipart ETag with our SHA-256: in place",
                v1,
                multipart(v1),
                Some(head(&multipart(v1), Some(v1), JS)),
                Judged::InPlace,
            ),
            (
                "multipart ETag, the SHA-256 of other bytes: changed",
                v2,
                multipart(v1),
                Some(head(&multipart(v1), Some(v1), JS)),
                Judged::Upload(Reason::Changed),
            ),
            (
                "multipart ETag without a SHA-256: the bytes cannot be proven equal",
                v1,
                multipart(v1),
                Some(head(&multipart(v1), None, JS)),
                Judged::Upload(Reason::Changed),
            ),
            (
                "SHA-256 in upper case still matches",
                v1,
                multipart(v1),
                Some(upper),
                Judged::InPlace,
            ),
            (
                "same MD5, written by another tool (no SHA-256): rewritten with ours",
                v1,
                single(v1),
                Some(head(&single(v1), None, JS)),
                Judged::Upload(Reason::Metadata),
            ),
            (
                "same bytes, another Content-Type",
                v1,
                single(v1),
                Some(head(&single(v1), Some(v1), "text/plain")),
                Judged::Upload(Reason::Metadata),
            ),
            (
                "no Cache-Control on the object",
                v1,
                single(v1),
                Some(no_cache_control),
                Judged::Upload(Reason::Metadata),
            ),
            (
                "no ETag listed, our SHA-256 and headers on the HEAD: in place",
                v1,
                no_etag(v1),
                Some(head(&single(v1), Some(v1), JS)),
                Judged::InPlace,
            ),
            (
                "no ETag listed, the SHA-256 of other bytes on the HEAD: changed",
                v2,
                no_etag(v1),
                Some(head(&single(v1), Some(v1), JS)),
                Judged::Upload(Reason::Changed),
            ),
            (
                "no ETag listed, same MD5 on the HEAD, not written by us: rewritten with ours",
                v1,
                no_etag(v1),
                Some(head(&single(v1), None, JS)),
                Judged::Upload(Reason::Metadata),
            ),
            (
                "no ETag listed nor on the HEAD: nothing pins the object, put ours",
                v1,
                no_etag(v1),
                Some(Head {
                    etag: None,
                    ..head(&single(v1), Some(v1), JS)
                }),
                Judged::Upload(Reason::Changed),
            ),
            (
                "rewritten between the listing and the HEAD: put ours back",
                v1,
                single(v1),
                Some(raced),
                Judged::Upload(Reason::Changed),
            ),
        ];
        for (name, bytes, listed, head, want) in cases {
            let got = match judge(wanted("", "app.js", bytes), listed, head.as_ref()) {
                Verdict::Upload(up) => Judged::Upload(up.reason),
                Verdict::InPlace { .. } => Judged::InPlace,
            };
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn judge_records_the_listed_object_for_the_state() {
        let v1 = b"console.log(1)";
        let listed = multipart(v1);
        let Verdict::InPlace { key, entry: got } = judge(
            wanted("web/", "app.js", v1),
            listed.clone(),
            Some(&head(&listed, Some(v1), JS)),
        ) else {
            panic!("not in place");
        };
        assert_eq!(key, "web/app.js");
        assert_eq!(got, entry(&listed, v1, JS, SHORT));
    }

    #[test]
    fn an_object_listed_without_etag_is_in_place_but_not_recorded_in_the_state() {
        let v1 = b"console.log(1)";
        let Verdict::InPlace { key, entry: got } = judge(
            wanted("", "app.js", v1),
            no_etag(v1),
            Some(&head(&single(v1), Some(v1), JS)),
        ) else {
            panic!("not in place");
        };
        assert_eq!(got, entry(&no_etag(v1), v1, JS, SHORT));
        let with_etag = entry(&single(v1), v1, JS, SHORT);
        let known: BTreeMap<String, Entry> =
            [(key, got), ("other.js".to_string(), with_etag.clone())].into();
        assert_eq!(
            vouched(&known),
            BTreeMap::from([("other.js".to_string(), with_etag)])
        );
        let listing: BTreeMap<String, Listed> = [
            ("app.js".to_string(), no_etag(v1)),
            ("other.js".to_string(), single(v1)),
        ]
        .into();
        let next = next_state(&known, &BTreeMap::new(), &listing);
        assert_eq!(next.keys().collect::<Vec<_>>(), ["other.js"]);
    }

    /// Name, the exclusion, the keys to delete.
    type StaleCase<'a> = (&'static str, &'a dyn Fn(&str) -> bool, Vec<&'static str>);

    #[test]
    fn stale_objects_are_deleted_except_build_files_excluded_ones_and_the_state() {
        let state_key = "web/.cloudshop-deploy/sync-state.json";
        let remote: BTreeMap<String, Listed> = [
            "web/index.html",
            "web/old.js",
            "web/uploads/user.png",
            "web/static/old.css",
            state_key,
        ]
        .into_iter()
        .map(|k| (k.to_string(), single(b"x")))
        .collect();
        let local: BTreeSet<String> = ["web/index.html".to_string()].into();
        let cases: Vec<StaleCase> = vec![
            (
                "nothing excluded",
                &|_| false,
                vec!["web/old.js", "web/static/old.css", "web/uploads/user.png"],
            ),
            (
                "exclusions match the key without the prefix",
                &|rel| rel.starts_with("uploads/"),
                vec!["web/old.js", "web/static/old.css"],
            ),
            (
                "a glob for the prefixed key does not match",
                &|rel| rel.starts_with("web/uploads/"),
                vec!["web/old.js", "web/static/old.css", "web/uploads/user.png"],
            ),
        ];
        for (name, excluded, want) in cases {
            assert_eq!(
                stale(&remote, &local, "web/", state_key, excluded),
                want,
                "{name}"
            );
        }
    }

    #[test]
    fn uploads_go_assets_then_pages_then_the_root_index() {
        let ups = [
            "index.html",
            "z.css",
            "about/index.html",
            "404.htm",
            "static/js/a.js",
            "Page.HTML",
            "favicon.ico",
        ]
        .into_iter()
        .map(|rel| wanted("web/", rel, rel.as_bytes()))
        .collect();
        let known: BTreeMap<String, Entry> = [(
            "web/robots.txt".to_string(),
            entry(&single(b"r"), b"r", JS, SHORT),
        )]
        .into();
        let plan = SyncPlan::new(
            ups,
            vec!["web/old.js".into()],
            known,
            None,
            "web/.cloudshop-deploy/sync-state.json".into(),
        );
        let keys = |ups: &[Upload]| ups.iter().map(|u| u.key.clone()).collect::<Vec<_>>();
        assert_eq!(
            keys(&plan.assets),
            ["web/favicon.ico", "web/static/js/a.js", "web/z.css"]
        );
        assert_eq!(
            keys(&plan.pages),
            ["web/404.htm", "web/Page.HTML", "web/about/index.html"]
        );
        assert_eq!(
            plan.entry.as_ref().map(|u| u.key.as_str()),
            Some("web/index.html")
        );
        assert_eq!(plan.deletes, ["web/old.js"]);
        assert_eq!(plan.unchanged, 1);
        let in_order: Vec<&str> = plan.uploads().map(|u| u.key.as_str()).collect();
        let by_phase: Vec<&str> = plan
            .phases()
            .iter()
            .flat_map(|p| p.iter().map(|u| u.key.as_str()))
            .collect();
        assert_eq!(in_order, by_phase);
        assert_eq!(in_order.last(), Some(&"web/index.html"));
    }

    #[test]
    fn a_build_without_a_root_index_has_no_entry_phase() {
        let plan = SyncPlan::new(
            vec![wanted("", "docs/index.html", b"d")],
            vec![],
            BTreeMap::new(),
            None,
            String::new(),
        );
        assert!(plan.entry.is_none() && plan.assets.is_empty());
        assert_eq!(plan.phases().map(<[Upload]>::len), [0, 1, 0]);
    }

    #[test]
    fn next_state_records_our_writes_and_the_entries_still_listed() {
        let (a, b) = (b"a".as_slice(), b"b".as_slice());
        let known: BTreeMap<String, Entry> = [
            ("kept.js".to_string(), entry(&single(a), a, JS, SHORT)),
            ("touched.js".to_string(), entry(&single(a), a, JS, SHORT)),
            ("gone.js".to_string(), entry(&single(a), a, JS, SHORT)),
        ]
        .into();
        let (ours, theirs, lost) = (
            wanted("", "ours.js", b),
            wanted("", "theirs.js", b),
            wanted("", "lost.js", b),
        );
        let written: BTreeMap<String, (String, &Upload)> = [
            ("ours.js".to_string(), (single(b).etag, &ours)),
            ("theirs.js".to_string(), (single(b).etag, &theirs)),
            ("lost.js".to_string(), (single(b).etag, &lost)),
        ]
        .into();
        let after_write = Listed {
            last_modified: "1700000500.000000000".into(),
            ..single(b)
        };
        let listing: BTreeMap<String, Listed> = [
            ("kept.js".to_string(), single(a)),
            (
                "touched.js".to_string(),
                Listed {
                    last_modified: "1700000600.000000000".into(),
                    ..single(a)
                },
            ),
            ("ours.js".to_string(), after_write.clone()),
            // Someone else wrote other bytes after our write.
            ("theirs.js".to_string(), single(b"c")),
        ]
        .into();
        let got = next_state(&known, &written, &listing);
        assert_eq!(
            got.keys().map(String::as_str).collect::<Vec<_>>(),
            ["kept.js", "ours.js"]
        );
        assert_eq!(got["ours.js"], entry(&after_write, b, JS, SHORT));
        assert_eq!(got["kept.js"], known["kept.js"]);
    }
}
