//! How a sync is taken back, decided before its first write: every object the sync overwrites (and the
//! sync state object) is first copied to a backup key under `<prefix>.cloudshop-deploy/previous/`, every
//! key it creates is remembered. Restoring copies the backups back (assets, then HTML pages, then the
//! root `index.html`), deletes the created keys and the backups; afterwards the bucket holds exactly
//! the previous release's objects, byte for byte and with their headers (a server-side copy keeps both).
//! The stale objects of the previous release are only deleted once the release is final (after the
//! watch), so nothing the previous `index.html` references is ever missing. Pure; no AWS API.

use std::collections::BTreeMap;

use super::local;
use super::state::{Listed, STATE_DIR};

/// Where the previous bytes of overwritten objects are kept, relative to the prefix.
pub const BACKUP_DIR: &str = ".cloudshop-deploy/previous/";

/// The undo of one sync.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Undo {
    /// `(key, backup key)` of each object the sync overwrites, in the order a restore copies them back:
    /// assets, then HTML pages, then the root `index.html`.
    pub backups: Vec<(String, String)>,
    /// Keys the sync creates: deleted by a restore.
    pub created: Vec<String>,
    /// The state object's key.
    pub state_key: String,
    /// Its backup key when there was a state object (else a restore deletes the one the sync wrote).
    pub state_backup: Option<String>,
    /// Backup keys already in the bucket that this sync does not write (left by an interrupted run):
    /// deleted with the backups once the release is final.
    pub leftovers: Vec<String>,
}

/// The backup key of `key` (a key under `prefix`).
pub fn backup_key(prefix: &str, key: &str) -> String {
    format!(
        "{prefix}{BACKUP_DIR}{}",
        key.strip_prefix(prefix).unwrap_or(key)
    )
}

/// Is `key` the action's own bookkeeping (the state object, backups), never part of the website?
pub fn is_bookkeeping(prefix: &str, key: &str) -> bool {
    key.strip_prefix(prefix)
        .is_some_and(|rel| rel.starts_with(STATE_DIR))
}

/// Rank of a key in the restore order: assets, pages, the root `index.html`.
fn rank(prefix: &str, key: &str) -> u8 {
    let rel = key.strip_prefix(prefix).unwrap_or(key);
    if rel == "index.html" {
        2
    } else if local::is_html(rel) {
        1
    } else {
        0
    }
}

/// The undo of a sync that uploads `uploads` (keys) over the bucket as `remote` listed it (and may
/// write the state object `state_key`).
pub fn plan<'a>(
    uploads: impl IntoIterator<Item = &'a str>,
    remote: &BTreeMap<String, Listed>,
    prefix: &str,
    state_key: &str,
) -> Undo {
    let mut undo = Undo::default();
    let mut overwritten = Vec::new();
    for key in uploads {
        if remote.contains_key(key) {
            overwritten.push(key.to_string());
        } else {
            undo.created.push(key.to_string());
        }
    }
    overwritten.sort_by(|a, b| rank(prefix, a).cmp(&rank(prefix, b)).then(a.cmp(b)));
    undo.backups = overwritten
        .into_iter()
        .map(|k| {
            let b = backup_key(prefix, &k);
            (k, b)
        })
        .collect();
    undo.state_key = state_key.to_string();
    undo.state_backup = remote
        .contains_key(state_key)
        .then(|| backup_key(prefix, state_key));
    let written: std::collections::BTreeSet<&str> = undo
        .backups
        .iter()
        .map(|(_, b)| b.as_str())
        .chain(undo.state_backup.as_deref())
        .collect();
    let backup_dir = format!("{prefix}{BACKUP_DIR}");
    undo.leftovers = remote
        .keys()
        .filter(|k| k.starts_with(&backup_dir) && !written.contains(k.as_str()))
        .cloned()
        .collect();
    undo.created.sort();
    undo
}

impl Undo {
    /// Every backup key, this sync's (the state's only when the sync wrote the state) and the
    /// leftovers: what the release, once final, deletes.
    pub fn backup_keys(&self, state_written: bool) -> Vec<String> {
        self.backups
            .iter()
            .map(|(_, b)| b.clone())
            .chain(self.state_backup.iter().filter(|_| state_written).cloned())
            .chain(self.leftovers.iter().cloned())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(keys: &[&str]) -> BTreeMap<String, Listed> {
        keys.iter()
            .map(|k| {
                (
                    k.to_string(),
                    Listed {
                        etag: "e".into(),
                        size: 1,
                        last_modified: "1.0".into(),
                    },
                )
            })
            .collect()
    }

    const STATE: &str = "web/.cloudshop-deploy/sync-state.json";

    #[test]
    fn overwritten_objects_are_kept_and_new_ones_are_remembered() {
        let remote = listed(&[
            "web/index.html",
            "web/about/index.html",
            "web/manifest.json",
            "web/static/js/main.old.js",
            STATE,
            "web/.cloudshop-deploy/previous/stale-from-a-cancelled-run.js",
        ]);
        let undo = plan(
            [
                "web/index.html",
                "web/about/index.html",
                "web/manifest.json",
                "web/static/js/main.new.js",
            ],
            &remote,
            "web/",
            STATE,
        );
        // Copied back assets first, the root index.html last; the state on its own.
        assert_eq!(
            undo.backups,
            vec![
                (
                    "web/manifest.json".to_string(),
                    "web/.cloudshop-deploy/previous/manifest.json".to_string()
                ),
                (
                    "web/about/index.html".to_string(),
                    "web/.cloudshop-deploy/previous/about/index.html".to_string()
                ),
                (
                    "web/index.html".to_string(),
                    "web/.cloudshop-deploy/previous/index.html".to_string()
                ),
            ]
        );
        assert_eq!(
            undo.state_backup.as_deref(),
            Some("web/.cloudshop-deploy/previous/.cloudshop-deploy/sync-state.json")
        );
        // The new hashed asset is deleted by a restore; the old one was never touched.
        assert_eq!(undo.created, vec!["web/static/js/main.new.js"]);
        assert_eq!(
            undo.leftovers,
            vec!["web/.cloudshop-deploy/previous/stale-from-a-cancelled-run.js"]
        );
        assert_eq!(undo.backup_keys(true).len(), 5);
        assert_eq!(undo.backup_keys(false).len(), 4);
    }

    #[test]
    fn a_first_sync_only_creates() {
        let undo = plan(
            ["index.html", "a.js"],
            &BTreeMap::new(),
            "",
            ".cloudshop-deploy/sync-state.json",
        );
        assert!(undo.backups.is_empty());
        assert_eq!(undo.created, vec!["a.js", "index.html"]);
        assert_eq!(undo.state_backup, None);
        assert!(undo.leftovers.is_empty());
    }

    #[test]
    fn bookkeeping_is_recognised_under_the_prefix_only() {
        assert!(is_bookkeeping("web/", STATE));
        assert!(is_bookkeeping(
            "web/",
            "web/.cloudshop-deploy/previous/index.html"
        ));
        assert!(!is_bookkeeping("web/", "web/index.html"));
        assert!(!is_bookkeeping("web/", ".cloudshop-deploy/sync-state.json"));
        assert_eq!(
            backup_key("", "index.html"),
            ".cloudshop-deploy/previous/index.html"
        );
    }
}
