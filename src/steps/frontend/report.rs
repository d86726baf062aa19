//! What the frontend sync tells the run: the [`SyncReport`] behind the `frontend-*` outputs and the
//! summary section. No AWS API.

use std::fmt::Write as _;

use serde::Serialize;

use super::plan::{Reason, SyncPlan};
use crate::report::section::{human_bytes, md_code, md_escape, Section};

/// Changed files listed in the job summary.
const SUMMARY_CAP: usize = 50;
/// Changed files kept in the report (and logged).
const REPORT_CAP: usize = 500;

/// What happened to a changed object; serialised (and shown in the summary) in kebab-case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Uploaded: no object had this key.
    New,
    /// Uploaded: the bytes differed.
    Changed,
    /// Uploaded: same bytes, other Content-Type or Cache-Control.
    Metadata,
    /// Deleted: not in the build.
    Delete,
}

impl Action {
    /// The spelling in the log and the summary.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::New => "new",
            Action::Changed => "changed",
            Action::Metadata => "metadata",
            Action::Delete => "delete",
        }
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `pad`, so width flags line the log up.
        f.pad(self.as_str())
    }
}

impl From<Reason> for Action {
    fn from(reason: Reason) -> Self {
        match reason {
            Reason::New => Action::New,
            Reason::Changed => Action::Changed,
            Reason::Metadata => Action::Metadata,
        }
    }
}

/// One changed object, for the summary.
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    pub key: String,
    pub action: Action,
    /// Bytes uploaded (0 for a delete).
    pub bytes: u64,
}

/// How far the sync got.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Stage {
    /// Planned by `prepare`; nothing written (a dry run, or a run that stopped before the sync).
    #[default]
    Planned,
    /// `apply` started and failed part-way: the counts say what was done.
    Failed,
    /// `apply` ran to the end.
    Done,
    /// `apply` started and has not ended (the run was cancelled during it): the counts say what was
    /// done; deletes run only after every upload, so the site serves the old or the new version.
    Syncing,
}

/// Outcome of the sync, for outputs and the summary. Until `apply` runs, the counts are the plan's;
/// `apply` resets them and counts what it does.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SyncReport {
    pub bucket: String,
    /// The key prefix.
    pub prefix: String,
    pub stage: Stage,
    /// A dry run (the counts are what would change).
    pub dry_run: bool,
    /// Files in the build (not excluded).
    pub files: usize,
    /// Files skipped by `exclude`.
    pub excluded: usize,
    /// Objects uploaded (planned, before `apply`).
    pub uploaded: usize,
    /// Objects deleted (planned, before `apply`).
    pub deleted: usize,
    /// Files already in place.
    pub unchanged: usize,
    /// Bytes uploaded (planned, before `apply`).
    pub bytes: u64,
    /// Wall time of the sync, from the start of `prepare`.
    pub seconds: f64,
    /// The changed objects, in order (capped).
    pub changes: Vec<Change>,
    /// How many changes there were in all.
    pub changes_total: usize,
    /// The CloudFront invalidation, when one was created.
    pub invalidation_id: Option<String>,
    pub invalidated_paths: Vec<String>,
    /// The frontend artifact (manifest digest) the bucket was synced from, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub artifact: Option<String>,
    /// Objects put back (or removed) when the release was rolled back; `None` when it was not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restored: Option<usize>,
    /// What a restore or a cleanup could not do (each problem, one line), left for the next run.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unfinished: Vec<String>,
}

impl SyncReport {
    /// Count the plan's uploads and deletes as what would change.
    pub(super) fn count_plan(&mut self, plan: &SyncPlan) {
        for up in plan.uploads() {
            self.uploaded(&up.key, up.reason, up.file.size);
        }
        for key in &plan.deletes {
            self.deleted(key);
        }
    }

    /// Forget the plan's counts, so `apply` counts what it does.
    pub(super) fn reset_counts(&mut self) {
        self.uploaded = 0;
        self.deleted = 0;
        self.bytes = 0;
        self.changes.clear();
        self.changes_total = 0;
    }

    pub(super) fn uploaded(&mut self, key: &str, reason: Reason, bytes: u64) {
        self.uploaded += 1;
        self.bytes += bytes;
        self.push_change(key, reason.into(), bytes);
    }

    pub(super) fn deleted(&mut self, key: &str) {
        self.deleted += 1;
        self.push_change(key, Action::Delete, 0);
    }

    fn push_change(&mut self, key: &str, action: Action, bytes: u64) {
        self.changes_total += 1;
        if self.changes.len() < REPORT_CAP {
            self.changes.push(Change {
                key: key.to_string(),
                action,
                bytes,
            });
        }
    }
}

impl SyncReport {
    /// One line on the state of the bucket, for a cancelled run.
    pub fn left_behind(&self) -> String {
        match self.stage {
            Stage::Planned if self.dry_run => "unchanged (dry run)".into(),
            Stage::Planned => "unchanged: the sync had not started".into(),
            Stage::Syncing => format!(
                "sync stopped part-way: {} uploaded, {} deleted; old files stay until the next sync deletes them, so the site serves either version",
                self.uploaded, self.deleted
            ),
            Stage::Failed => format!(
                "sync failed part-way: {} uploaded, {} deleted",
                self.uploaded, self.deleted
            ),
            Stage::Done => format!(
                "synced: {} uploaded, {} deleted",
                self.uploaded, self.deleted
            ),
        }
    }
}

impl Section for SyncReport {
    fn outputs(&self, out: &mut Vec<(String, String)>) {
        // A run that stopped before the sync changed nothing; a dry run reports what would change.
        let nothing_done = self.stage == Stage::Planned && !self.dry_run;
        let (up, del, bytes) = if nothing_done {
            (0, 0, 0)
        } else {
            (self.uploaded, self.deleted, self.bytes)
        };
        out.push(("frontend-uploaded".into(), up.to_string()));
        out.push(("frontend-deleted".into(), del.to_string()));
        out.push(("frontend-unchanged".into(), self.unchanged.to_string()));
        out.push(("frontend-bytes".into(), bytes.to_string()));
        if let Some(digest) = &self.artifact {
            out.push(("frontend-digest".into(), digest.clone()));
        }
    }

    fn summary(&self, md: &mut String) {
        let (title, up, del) = match (self.stage, self.dry_run) {
            (Stage::Done, _) => ("Frontend", "uploaded", "deleted"),
            (Stage::Failed, _) => ("Frontend (failed part-way)", "uploaded", "deleted"),
            (Stage::Syncing, _) => ("Frontend (stopped part-way)", "uploaded", "deleted"),
            (Stage::Planned, true) => ("Frontend (dry run: the plan)", "to upload", "to delete"),
            (Stage::Planned, false) => (
                "Frontend (not synced: the run stopped before the sync)",
                "to upload",
                "to delete",
            ),
        };
        let _ = writeln!(
            md,
            "### {title}\n\n{}\n\n| {up} | {del} | unchanged | excluded | bytes | time |\n|---:|---:|---:|---:|---:|---:|\n| {} | {} | {} | {} | {} | {:.1} s |\n",
            md_code(&format!("s3://{}/{}", self.bucket, self.prefix)),
            self.uploaded,
            self.deleted,
            self.unchanged,
            self.excluded,
            human_bytes(self.bytes),
            self.seconds,
        );
        if !self.changes.is_empty() {
            let _ = writeln!(md, "<details><summary>{} changed objects</summary>\n\n| object | change | bytes |\n|---|---|---:|", self.changes_total);
            for c in self.changes.iter().take(SUMMARY_CAP) {
                let _ = writeln!(
                    md,
                    "| {} | {} | {} |",
                    md_code(&c.key),
                    c.action.as_str(),
                    c.bytes
                );
            }
            if self.changes_total > SUMMARY_CAP {
                let _ = writeln!(
                    md,
                    "| ... and {} more | | |",
                    self.changes_total - SUMMARY_CAP
                );
            }
            md.push_str("\n</details>\n\n");
        }
        if let Some(digest) = &self.artifact {
            let _ = writeln!(
                md,
                "Synced from the frontend artifact {}.\n",
                md_code(digest)
            );
        }
        if let Some(n) = self.restored {
            let _ = writeln!(
                md,
                "Rolled back: the previous release's files are back ({n} objects put back or removed).\n"
            );
        }
        if !self.unfinished.is_empty() {
            md.push_str("Left unfinished (the next run finishes it first):\n\n");
            for line in &self.unfinished {
                let _ = writeln!(md, "- {}", md_escape(line));
            }
            md.push('\n');
        }
        if let Some(id) = &self.invalidation_id {
            let _ = writeln!(
                md,
                "CloudFront invalidation {}: {}\n",
                md_code(id),
                self.invalidated_paths
                    .iter()
                    .map(|p| md_code(p))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sync that uploaded 60 files of 1.5 KiB each and deleted one, with an invalidation.
    fn done() -> SyncReport {
        let mut sr = SyncReport {
            bucket: "cloudshop-web".into(),
            prefix: "web/".into(),
            stage: Stage::Done,
            files: 62,
            excluded: 2,
            unchanged: 2,
            seconds: 3.04,
            invalidation_id: Some("I2J0I21PCUYOIK".into()),
            invalidated_paths: vec!["/".into(), "/index.html".into()],
            ..SyncReport::default()
        };
        for i in 0..60 {
            sr.uploaded(&format!("web/static/js/{i}.8a7b6c5d.js"), Reason::New, 1536);
        }
        sr.deleted("web/old|name.js");
        sr
    }

    fn outputs(sr: &SyncReport) -> Vec<(String, String)> {
        let mut out = Vec::new();
        sr.outputs(&mut out);
        out
    }

    #[test]
    fn summary_of_a_sync_is_pinned() {
        let mut md = String::new();
        done().summary(&mut md);
        let mut lines = md.lines();
        let head: Vec<&str> = lines.by_ref().take(9).collect();
        assert_eq!(
            head,
            [
                "### Frontend",
                "",
                "`s3://cloudshop-web/web/`",
                "",
                "| uploaded | deleted | unchanged | excluded | bytes | time |",
                "|---:|---:|---:|---:|---:|---:|",
                "| 60 | 1 | 2 | 2 | 90.0 KiB | 3.0 s |",
                "",
                "<details><summary>61 changed objects</summary>",
            ]
        );
        let tail: Vec<&str> = md.lines().skip(12).collect();
        assert_eq!(tail[0], "| `web/static/js/0.8a7b6c5d.js` | new | 1536 |");
        assert_eq!(tail[49], "| `web/static/js/49.8a7b6c5d.js` | new | 1536 |");
        assert_eq!(
            tail[50..],
            [
                "| ... and 11 more | | |",
                "",
                "</details>",
                "",
                "CloudFront invalidation `I2J0I21PCUYOIK`: `/`, `/index.html`",
                "",
            ]
        );
        assert_eq!(
            outputs(&done()),
            [
                ("frontend-uploaded".to_string(), "60".to_string()),
                ("frontend-deleted".into(), "1".into()),
                ("frontend-unchanged".into(), "2".into()),
                ("frontend-bytes".into(), "92160".into()),
            ]
        );
    }

    #[test]
    fn a_plan_reports_what_would_change_only_in_a_dry_run() {
        let planned = SyncReport {
            stage: Stage::Planned,
            ..done()
        };
        let mut md = String::new();
        planned.summary(&mut md);
        assert!(md.starts_with(
            "### Frontend (not synced: the run stopped before the sync)\n\n`s3://cloudshop-web/web/`\n\n| to upload | to delete |"
        ));
        assert_eq!(outputs(&planned)[0].1, "0");
        assert_eq!(outputs(&planned)[3].1, "0");
        let dry = SyncReport {
            dry_run: true,
            ..planned
        };
        let mut md = String::new();
        dry.summary(&mut md);
        assert!(md.starts_with("### Frontend (dry run: the plan)\n"));
        assert_eq!(outputs(&dry)[0].1, "60");
        let failed = SyncReport {
            stage: Stage::Failed,
            ..done()
        };
        let mut md = String::new();
        failed.summary(&mut md);
        assert!(md.starts_with("### Frontend (failed part-way)\n"));
    }

    #[test]
    fn the_report_keeps_a_bounded_list_of_changes() {
        let mut sr = SyncReport::default();
        for i in 0..REPORT_CAP + 5 {
            sr.uploaded(&format!("f{i}"), Reason::Changed, 1);
        }
        assert_eq!(sr.changes.len(), REPORT_CAP);
        assert_eq!(sr.changes_total, REPORT_CAP + 5);
        assert_eq!(
            (sr.uploaded, sr.bytes),
            (REPORT_CAP + 5, (REPORT_CAP + 5) as u64)
        );
        sr.reset_counts();
        assert_eq!(
            (
                sr.uploaded,
                sr.deleted,
                sr.bytes,
                sr.changes.len(),
                sr.changes_total
            ),
            (0, 0, 0, 0, 0)
        );
    }
}
