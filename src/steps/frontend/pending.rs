//! What a restore still has to do, written to the bucket before it starts
//! (`<prefix>.cloudshop-deploy/pending.json`) and deleted once it is done. A run that dies or is
//! cancelled half-way, or a restore that could not put every object back, leaves it; the next sync
//! (a deploy, a promotion, `command: rollback`) finishes it before its own first write and says so.
//! A cleanup (the stale files and backups of a final release) has the same shape but needs no journal:
//! the next sync finds what it left in its listing and deletes it once its own release is final.
//!
//! Every step is idempotent (a copy from a backup that is still there, a delete), so finishing a
//! journal that was partly done already is safe. A backup is deleted only once the object it keeps has
//! been copied back, so a failed copy never loses the previous bytes. The model only; `s3` reads and
//! writes the object. No AWS API.

use serde::{Deserialize, Serialize};

/// The journal's name, relative to the prefix (under the action's own folder, never synced or deleted
/// as stale).
pub const PENDING_NAME: &str = ".cloudshop-deploy/pending.json";

const VERSION: u32 = 1;

/// What is being finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// Putting the previous release back after a failure.
    Restore,
    /// Deleting a final release's stale objects and the backups.
    Cleanup,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Restore => "restore of the previous release",
            Kind::Cleanup => "cleanup of the previous release's files",
        }
    }
}

/// The journal: copies first (in order), then deletes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    pub version: u32,
    pub kind: Kind,
    /// `(from, to)`: server-side copies, in the order they run (assets, pages, the root `index.html`,
    /// the state object).
    pub copies: Vec<(String, String)>,
    /// Keys deleted once the copies are done; a key some failed copy reads from is kept.
    pub deletes: Vec<String>,
}

impl Pending {
    pub fn new(kind: Kind, copies: Vec<(String, String)>, deletes: Vec<String>) -> Pending {
        Pending {
            version: VERSION,
            kind,
            copies,
            deletes,
        }
    }

    /// Nothing to do.
    pub fn is_empty(&self) -> bool {
        self.copies.is_empty() && self.deletes.is_empty()
    }

    /// The deletes that may run once the copies from `failed` sources did not: every one but those
    /// sources (a backup whose object was not put back stays, for the next attempt).
    pub fn safe_deletes(&self, failed: &[&str]) -> Vec<String> {
        self.deletes
            .iter()
            .filter(|k| !failed.contains(&k.as_str()))
            .cloned()
            .collect()
    }

    /// One line for the log and the summary.
    pub fn describe(&self) -> String {
        format!(
            "{} ({} copies back, {} deletes)",
            self.kind.as_str(),
            self.copies.len(),
            self.deletes.len()
        )
    }
}

/// Parse the journal read from `key`; `None` (with a warning) when it is not one this version wrote.
pub fn decode(key: &str, bytes: &[u8]) -> Option<Pending> {
    match serde_json::from_slice::<Pending>(bytes) {
        Ok(p) if p.version == VERSION => Some(p),
        Ok(p) => {
            tracing::warn!(
                version = p.version,
                "unknown journal `{key}` version; ignoring it"
            );
            None
        }
        Err(e) => {
            tracing::warn!("the journal `{key}` does not parse ({e}); ignoring it");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backup_whose_copy_failed_is_kept_and_the_journal_round_trips() {
        let p = Pending::new(
            Kind::Restore,
            vec![
                ("p/.cloudshop-deploy/previous/a.js".into(), "p/a.js".into()),
                (
                    "p/.cloudshop-deploy/previous/index.html".into(),
                    "p/index.html".into(),
                ),
            ],
            vec![
                "p/new.js".into(),
                "p/.cloudshop-deploy/previous/a.js".into(),
                "p/.cloudshop-deploy/previous/index.html".into(),
            ],
        );
        assert_eq!(
            p.safe_deletes(&["p/.cloudshop-deploy/previous/index.html"]),
            vec![
                "p/new.js".to_string(),
                "p/.cloudshop-deploy/previous/a.js".to_string()
            ]
        );
        assert_eq!(p.safe_deletes(&[]), p.deletes);
        let bytes = serde_json::to_vec(&p).unwrap();
        assert_eq!(decode("k", &bytes), Some(p.clone()));
        assert_eq!(decode("k", b"{}"), None);
        let future = Pending { version: 2, ..p };
        assert_eq!(decode("k", &serde_json::to_vec(&future).unwrap()), None);
        assert!(Pending::new(Kind::Cleanup, vec![], vec![]).is_empty());
    }
}
