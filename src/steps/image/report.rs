//! The promotion's (or archive push's) outcome: its step outputs and its job summary section.

use std::fmt::Write as _;

use serde::Serialize;

use crate::registry::CopyStats;
use crate::report::section::{human_bytes, md_code, Section};

/// How the image reaches the target repository.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Same repository: the manifest put under more tags.
    Retag,
    /// Another repository: blobs and manifests copied through the registry API.
    #[default]
    Copy,
    /// An OCI layout or `docker save` archive from the workspace pushed to the repository.
    Archive,
}

impl Mode {
    /// The spelling in the summary (the same as in JSON).
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Retag => "retag",
            Mode::Copy => "copy",
            Mode::Archive => "archive",
        }
    }
}

/// Outcome of the promotion, for outputs and the summary.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PromoteReport {
    pub mode: Mode,
    pub source_image_uri: String,
    /// The target repository's URI (`REGISTRY/REPO`), where the image was copied to.
    pub target_uri: String,
    /// The digest (same in source and target).
    pub digest: String,
    /// Tags the image gets, the image tag first.
    pub tags: Vec<String>,
    /// What the copy moved (once done).
    pub stats: Option<CopyStats>,
    /// Wall time of the copy.
    pub seconds: f64,
}

impl Section for PromoteReport {
    fn outputs(&self, out: &mut Vec<(String, String)>) {
        out.push(("source-image-uri".into(), self.source_image_uri.clone()));
        out.push(("promoted-digest".into(), self.digest.clone()));
        if let Some(s) = &self.stats {
            out.push(("blobs-copied".into(), s.blobs_copied.to_string()));
            out.push(("bytes-copied".into(), s.bytes_copied.to_string()));
        }
    }

    fn summary(&self, md: &mut String) {
        let title = match self.mode {
            Mode::Archive => "Image push",
            Mode::Retag | Mode::Copy => "Image promotion",
        };
        let _ = writeln!(md, "### {title}\n\n| | |\n|---|---|");
        let _ = writeln!(md, "| source | {} |", md_code(&self.source_image_uri));
        let _ = writeln!(
            md,
            "| target | {} ({}) |",
            md_code(&self.target_uri),
            self.tags
                .iter()
                .map(|t| md_code(t))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let _ = writeln!(md, "| digest | {} |", md_code(&self.digest));
        let _ = writeln!(md, "| mode | {} |", self.mode.as_str());
        match &self.stats {
            Some(s) => {
                let _ = writeln!(
                    md,
                    "| blobs | {} copied, {} mounted, {} already there |",
                    s.blobs_copied, s.blobs_mounted, s.blobs_skipped
                );
                let _ = writeln!(md, "| bytes copied | {} |", human_bytes(s.bytes_copied));
                let _ = writeln!(
                    md,
                    "| manifests | {} written, {} already there |",
                    s.manifests_put, s.manifests_skipped
                );
                let _ = writeln!(md, "| time | {:.1} s |", self.seconds);
            }
            None => {
                let _ = writeln!(md, "| copy | not run |");
            }
        }
        md.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_serialise_as_before() {
        for m in [Mode::Retag, Mode::Copy, Mode::Archive] {
            assert_eq!(
                serde_json::to_value(m).unwrap(),
                serde_json::Value::String(m.as_str().into())
            );
        }
    }

    #[test]
    fn report_outputs_and_summary() {
        let mut r = PromoteReport {
            mode: Mode::Copy,
            source_image_uri: "1.dkr.ecr.us-east-1.amazonaws.com/stage@sha256:ab".into(),
            target_uri: "1.dkr.ecr.us-east-1.amazonaws.com/prod".into(),
            digest: "sha256:ab".into(),
            tags: vec!["abc".into(), "prod|x".into()],
            stats: None,
            seconds: 0.0,
        };
        let mut out = Vec::new();
        r.outputs(&mut out);
        assert_eq!(
            out.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
            ["source-image-uri", "promoted-digest"]
        );
        r.stats = Some(CopyStats {
            blobs_copied: 2,
            blobs_skipped: 1,
            blobs_mounted: 3,
            bytes_copied: 5 * 1024 * 1024,
            manifests_put: 1,
            ..CopyStats::default()
        });
        r.seconds = 1.25;
        let mut out = Vec::new();
        r.outputs(&mut out);
        assert_eq!(out[2], ("blobs-copied".into(), "2".into()));
        assert_eq!(out[3], ("bytes-copied".into(), "5242880".into()));
        let mut md = String::new();
        r.summary(&mut md);
        assert_eq!(
            md,
            "### Image promotion\n\n| | |\n|---|---|\n\
             | source | `1.dkr.ecr.us-east-1.amazonaws.com/stage@sha256:ab` |\n\
             | target | `1.dkr.ecr.us-east-1.amazonaws.com/prod` (`abc`, `prod\\|x`) |\n\
             | digest | `sha256:ab` |\n| mode | copy |\n\
             | blobs | 2 copied, 3 mounted, 1 already there |\n| bytes copied | 5.0 MiB |\n\
             | manifests | 1 written, 0 already there |\n| time | 1.2 s |\n\n"
        );
    }

    #[test]
    fn bytes_are_human() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(3 * 1024 * 1024 + 512 * 1024), "3.5 MiB");
    }
}
