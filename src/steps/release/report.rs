//! The release section of the summary: which stage run verified a promoted digest (or that it was
//! promoted unverified), the marker this run wrote (or why none), the extra tags moved after verification,
//! and which release `command: rollback` went back to. Outputs: `verified` (deploy and promote).

use std::fmt::Write as _;

use serde::Serialize;

use crate::registry::artifact::Verification;
use crate::report::section::{md_code, md_escape, Section};

/// How the source environment's verification of a promoted digest was found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SourceCheck {
    /// The marker names the digest: the run that verified it.
    Verified(Box<Verification>),
    /// No marker (or one for another digest), promoted with `allow-unverified: true`: why.
    Overridden(String),
}

/// What the run did about releases: the source's verification, the marker, the extra tags, a
/// rollback's choice.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReleaseReport {
    /// A promotion: the source environment's verification.
    pub source: Option<SourceCheck>,
    /// The marker tag this run wrote (or found for the same digest).
    pub marker: Option<String>,
    /// Why this run wrote no marker although it passed (a warning).
    pub not_recorded: Option<String>,
    /// The extra tags moved once the release passed (`tag: added|already there`).
    pub extra_tags: Vec<String>,
    /// A promotion (of a commit SHA, or without `image-tag`): the target's live SHA -> the promoted SHA,
    /// the commits between them and the compare link (Markdown), or that there was nothing new.
    pub promotion: Option<String>,
    /// `command: rollback`: the release chosen, in words.
    pub rollback_to: Option<String>,
}

impl ReleaseReport {
    /// Nothing to say (a run that ended before any of it).
    pub fn is_empty(&self) -> bool {
        *self == ReleaseReport::default()
    }
}

/// `<time> by <run>` of a marker, as Markdown.
pub(super) fn verified_by(v: &Verification) -> String {
    let run = match &v.run_url {
        Some(u) if u.starts_with("https://") => {
            format!("[{}]({})", md_escape(u), u.replace(')', "%29"))
        }
        Some(u) => md_code(u),
        None => "an unnamed run".into(),
    };
    format!(
        "{} at {} by {run} (smoke tests: {})",
        md_code(&v.environment),
        md_escape(&v.verified_at),
        md_escape(&v.smoke)
    )
}

impl Section for ReleaseReport {
    fn outputs(&self, out: &mut Vec<(String, String)>) {
        if self.marker.is_some() || self.not_recorded.is_some() {
            out.push(("verified".into(), self.marker.is_some().to_string()));
        }
    }

    fn summary(&self, md: &mut String) {
        if self.is_empty() {
            return;
        }
        let _ = writeln!(md, "### Release\n\n| | |\n|---|---|");
        if let Some(p) = &self.promotion {
            let _ = writeln!(md, "| promotion | {p} |");
        }
        match &self.source {
            Some(SourceCheck::Verified(v)) => {
                let _ = writeln!(md, "| verified on | {} |", verified_by(v));
            }
            Some(SourceCheck::Overridden(why)) => {
                let _ = writeln!(
                    md,
                    "| verified on | ⚠️ **not verified**: {}; promoted with `allow-unverified: true` |",
                    md_escape(why)
                );
            }
            None => {}
        }
        if let Some(tag) = &self.marker {
            let _ = writeln!(md, "| marker | {} |", md_code(tag));
        }
        if let Some(why) = &self.not_recorded {
            let _ = writeln!(md, "| marker | ⚠️ not written: {} |", md_escape(why));
        }
        if !self.extra_tags.is_empty() {
            let _ = writeln!(
                md,
                "| extra tags | {} |",
                md_escape(&self.extra_tags.join(", "))
            );
        }
        if let Some(to) = &self.rollback_to {
            let _ = writeln!(md, "| rolled back to | {to} |");
        }
        md.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v() -> Verification {
        Verification {
            environment: "stage".into(),
            digest: format!("sha256:{}", "c".repeat(64)),
            sha: "abc".into(),
            frontend: None,
            task_definition: None,
            run_url: Some("https://github.com/acme/cloudshop/actions/runs/42".into()),
            verified_at: "2026-11-26T12:00:00.000Z".into(),
            smoke: "passed".into(),
            gates: Default::default(),
        }
    }

    #[test]
    fn the_summary_names_the_verifying_run_or_the_override() {
        let mut md = String::new();
        ReleaseReport::default().summary(&mut md);
        assert_eq!(md, "");
        let r = ReleaseReport {
            source: Some(SourceCheck::Verified(Box::new(v()))),
            marker: Some("verified-prod-abc".into()),
            extra_tags: vec!["prod-current: added".into()],
            ..ReleaseReport::default()
        };
        r.summary(&mut md);
        assert!(
            md.contains("| verified on | `stage` at 2026-11-26T12:00:00.000Z by [https://github.com/acme/cloudshop/actions/runs/42](https://github.com/acme/cloudshop/actions/runs/42) (smoke tests: passed) |"),
            "{md}"
        );
        assert!(md.contains("| marker | `verified-prod-abc` |"), "{md}");
        let mut out = Vec::new();
        r.outputs(&mut out);
        assert_eq!(out, [("verified".to_string(), "true".to_string())]);

        let mut md = String::new();
        ReleaseReport {
            source: Some(SourceCheck::Overridden(
                "no marker `verified-stage-abc`".into(),
            )),
            not_recorded: Some("the registry refused".into()),
            ..ReleaseReport::default()
        }
        .summary(&mut md);
        assert!(md.contains("**not verified**"), "{md}");
        assert!(md.contains("`allow-unverified: true`"), "{md}");
        assert!(
            md.contains("| marker | ⚠️ not written: the registry refused |"),
            "{md}"
        );
    }
}
