//! One [`Report`] per run feeds the step outputs and the job summary, so they never disagree. On failure
//! the partial report is still written. Each step fills only its own section; `run.rs` sets the
//! [`Status`].
//!
//! APIs: none.

use std::fmt::Write as _;

use serde::Serialize;

pub mod section;

pub use section::{md_escape, Outcome, Section, Timeline};

/// How the run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// The new version is live and verified.
    Deployed,
    /// Nothing to change: the environment already runs this image.
    NoChange,
    /// The new version failed and the previous one is serving again.
    RolledBack,
    /// The run failed (and nothing was rolled back, or the rollback failed too).
    Failed,
    /// Dry run: the plan was printed, nothing changed.
    Planned,
}

impl Status {
    /// The output spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Deployed => "deployed",
            Status::NoChange => "no-change",
            Status::RolledBack => "rolled-back",
            Status::Failed => "failed",
            Status::Planned => "planned",
        }
    }
}

/// Everything that happened in this run.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    /// `deploy`, `promote`, `rollback`.
    pub command: String,
    pub environment: String,
    pub dry_run: bool,
    /// Final status, set by the run once the command ended.
    pub status: Option<Status>,
    /// The account the credentials belong to.
    pub aws_account_id: Option<String>,
    /// Total wall time.
    pub duration_seconds: f64,
    /// Timed phases, in the order they ended.
    pub phases: Timeline,
    pub backend: Option<crate::steps::deploy::BackendReport>,
    pub promote: Option<crate::steps::image::PromoteReport>,
    pub smoke: Option<crate::steps::smoke::SmokeReport>,
    pub frontend: Option<crate::steps::frontend::SyncReport>,
    /// The error, when the run failed: message and hint.
    pub error: Option<(String, String)>,
    /// The environment's website URL (for a workflow's `environment.url`).
    pub website_url: Option<String>,
    /// The environment's API URL.
    pub api_url: Option<String>,
}

impl Report {
    /// A new report for a command and environment.
    pub fn new(command: &str, environment: &str, dry_run: bool) -> Self {
        Report {
            command: command.into(),
            environment: environment.into(),
            dry_run,
            ..Report::default()
        }
    }

    /// Record a finished phase.
    pub fn phase(&mut self, name: &str, started: tokio::time::Instant, outcome: Outcome) {
        self.phases.record(name, started, outcome);
    }

    fn sections(&self) -> Vec<&dyn Section> {
        let mut v: Vec<&dyn Section> = Vec::new();
        if let Some(p) = &self.promote {
            v.push(p);
        }
        if let Some(b) = &self.backend {
            v.push(b);
        }
        if let Some(s) = &self.smoke {
            v.push(s);
        }
        if let Some(f) = &self.frontend {
            v.push(f);
        }
        v
    }

    /// Every step output, in a stable order.
    pub fn outputs(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if let Some(a) = &self.aws_account_id {
            out.push(("aws-account-id".to_string(), a.clone()));
        }
        if let Some(s) = self.status {
            out.push(("status".to_string(), s.as_str().to_string()));
        }
        out.push((
            "rolled-back".to_string(),
            (self.status == Some(Status::RolledBack)).to_string(),
        ));
        out.push((
            "duration-seconds".to_string(),
            format!("{}", self.duration_seconds.round() as u64),
        ));
        for (name, value) in [
            ("website-url", &self.website_url),
            ("api-url", &self.api_url),
        ] {
            if let Some(v) = value {
                out.push((name.to_string(), v.clone()));
            }
        }
        for s in self.sections() {
            s.outputs(&mut out);
        }
        out
    }

    /// The job summary as GitHub-flavoured Markdown.
    pub fn summary_markdown(&self) -> String {
        let mut md = String::new();
        let icon = match self.status {
            Some(Status::Deployed) => "✅",
            Some(Status::NoChange) => "⏸️",
            Some(Status::Planned) => "📝",
            Some(Status::RolledBack) => "↩️",
            Some(Status::Failed) | None => "❌",
        };
        let status = self.status.map(Status::as_str).unwrap_or("failed");
        let _ = writeln!(
            md,
            "## {icon} cloudshop-deploy: `{}` to `{}`: {status}\n",
            self.command,
            md_escape(&self.environment)
        );
        if let Some((message, hint)) = &self.error {
            let _ = writeln!(
                md,
                "> [!CAUTION]\n> {}\n>\n> {}\n",
                md_escape(message),
                md_escape(hint)
            );
        }
        let _ = writeln!(md, "| | |\n|---|---|");
        let _ = writeln!(md, "| environment | `{}` |", md_escape(&self.environment));
        if let Some(a) = &self.aws_account_id {
            let _ = writeln!(md, "| AWS account | `{a}` |");
        }
        let _ = writeln!(md, "| outcome | **{status}** |");
        let _ = writeln!(md, "| duration | {:.0} s |", self.duration_seconds);
        md.push('\n');
        for s in self.sections() {
            s.summary(&mut md);
        }
        if !self.phases.phases().is_empty() {
            let _ = writeln!(
                md,
                "### Phases\n\n| phase | time | outcome |\n|---|---:|---|"
            );
            for p in self.phases.phases() {
                let _ = writeln!(
                    md,
                    "| {} | {:.1} s | {} |",
                    p.name,
                    p.seconds,
                    p.outcome.as_str()
                );
            }
            let _ = writeln!(md, "\n```mermaid\ngantt\n  dateFormat X\n  axisFormat %s s");
            let mut at = 0.0f64;
            for p in self.phases.phases() {
                let secs = p.seconds.max(0.5);
                let tag = if p.outcome == Outcome::Failed {
                    "crit, "
                } else {
                    ""
                };
                let _ = writeln!(
                    md,
                    "  {} : {tag}{}, {}",
                    p.name.replace([':', '#', ';'], " "),
                    at.round() as u64,
                    (at + secs).round().max(at.round() + 1.0) as u64
                );
                at += secs;
            }
            md.push_str("```\n");
        }
        md
    }
}
