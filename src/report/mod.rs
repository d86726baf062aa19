//! One [`Report`] per run feeds the step outputs and the job summary, so they never disagree. On failure
//! the partial report is still written. Each step fills only its own section; `run.rs` sets the
//! [`Status`].
//!
//! APIs: none.

use std::fmt::Write as _;

use serde::Serialize;

pub mod section;

pub use section::{md_code, md_escape, Outcome, Section, Timeline};

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
    /// Stopped by SIGTERM or SIGINT at the next safe point; the summary says what was left.
    Cancelled,
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
            Status::Cancelled => "cancelled",
        }
    }
}

/// Everything that happened in this run.
#[derive(Debug, Clone, Default, Serialize)]
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
    /// The migration task run before the service update.
    pub migration: Option<crate::steps::migrate::MigrationReport>,
    pub promote: Option<crate::steps::image::PromoteReport>,
    /// The approval gate of a promotion: the GitHub environment's rules and the verdict.
    pub approval: Option<crate::steps::approval::ApprovalReport>,
    /// Where the rollout's time went.
    pub deploy_time: Option<crate::steps::deploy_time::DeployTimeReport>,
    pub smoke: Option<crate::steps::smoke::SmokeReport>,
    /// The checks at a `POST_TEST_TRAFFIC_SHIFT` pause, against the test listener.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_traffic: Option<crate::steps::smoke::OnTestTraffic>,
    /// What the watch read besides its checks (metrics, error lines).
    pub signals: Option<crate::steps::signals::SignalsReport>,
    /// The new revision against the old one, per traffic step of a canary or linear deployment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub canary: Option<crate::steps::canary::CanaryReport>,
    pub frontend: Option<crate::steps::frontend::SyncReport>,
    pub release: Option<crate::steps::release::ReleaseReport>,
    /// `command: releases`: what runs and the verified releases.
    pub releases: Option<crate::steps::release::ReleasesReport>,
    /// The release's gates as they ended, in order.
    #[serde(skip)]
    pub gates: Vec<crate::gates::record::GateRecord>,
    /// Where a signal stopped a rollback, and how to finish it.
    #[serde(skip)]
    pub rollback_interrupted: Vec<String>,
    /// The error, when the run failed: message and hint.
    pub error: Option<(String, String)>,
    /// The signal that cancelled the run.
    pub cancelled_by: Option<String>,
    /// The environment's website URL (for a workflow's `environment.url`).
    pub website_url: Option<String>,
    /// The environment's API URL (the `api-url` output).
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

    /// Record a finished phase in the timeline, timed from `started`.
    pub fn phase(&mut self, name: &str, started: tokio::time::Instant, outcome: Outcome) {
        self.phases.record(name, started, outcome);
    }

    /// What a cancelled run left: the service's deployment as last seen, the bucket's sync stage.
    fn left_behind(&self, signal: &str, md: &mut String) {
        let _ = writeln!(
            md,
            "### Cancelled\n\nThe run stopped on `{}` at the next safe point. It left:\n",
            md_escape(signal)
        );
        if let Some(b) = &self.backend {
            let _ = writeln!(
                md,
                "- service `{}`: {}",
                md_escape(&b.service),
                b.left_behind()
            );
        }
        if let Some(m) = &self.migration {
            if let (Some(arn), Some(why)) = (&m.task_arn, &m.stopped_by_run) {
                let _ = writeln!(
                    md,
                    "- migration task {}: stopped (`StopTask`: {})",
                    md_code(arn),
                    md_escape(why)
                );
            }
        }
        if let Some(f) = &self.frontend {
            let _ = writeln!(
                md,
                "- bucket `{}`: {}",
                md_escape(&f.bucket),
                f.left_behind()
            );
        }
        for note in &self.rollback_interrupted {
            // Our own text around revision names: Markdown as written.
            let _ = writeln!(md, "- {note}");
        }
        if self.backend.is_none() && self.frontend.is_none() {
            let _ = writeln!(md, "- nothing: no step had started");
        }
        md.push('\n');
    }

    fn sections(&self) -> Vec<&dyn Section> {
        let mut v: Vec<&dyn Section> = Vec::new();
        if let Some(p) = &self.promote {
            v.push(p);
        }
        if let Some(a) = &self.approval {
            v.push(a);
        }
        if let Some(b) = &self.backend {
            v.push(b);
        }
        if let Some(m) = &self.migration {
            v.push(m);
        }
        if let Some(t) = &self.test_traffic {
            v.push(t);
        }
        if let Some(t) = &self.deploy_time {
            v.push(t);
        }
        if let Some(s) = &self.smoke {
            v.push(s);
        }
        if let Some(s) = &self.signals {
            v.push(s);
        }
        if let Some(c) = &self.canary {
            v.push(c);
        }
        if let Some(f) = &self.frontend {
            v.push(f);
        }
        if let Some(r) = &self.release {
            v.push(r);
        }
        if let Some(r) = &self.releases {
            v.push(r);
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
            Some(Status::Cancelled) => "⏹️",
            Some(Status::Failed) | None => "❌",
        };
        let status = self.status.map(Status::as_str).unwrap_or("failed");
        let _ = writeln!(
            md,
            "## {icon} cloudshop-deploy: `{}` to {}: {status}\n",
            self.command,
            md_code(&self.environment)
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
        let _ = writeln!(md, "| environment | {} |", md_code(&self.environment));
        if let Some(a) = &self.aws_account_id {
            let _ = writeln!(md, "| AWS account | `{a}` |");
        }
        let _ = writeln!(md, "| outcome | **{status}** |");
        let _ = writeln!(md, "| duration | {:.0} s |", self.duration_seconds);
        md.push('\n');
        if let Some(signal) = &self.cancelled_by {
            self.left_behind(signal, &mut md);
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::steps::deploy::BackendReport;
    use crate::steps::frontend::{Change, SyncReport};
    use crate::steps::smoke::{CheckResult, SmokeReport};
    use pulldown_cmark::{Event, Options, Parser, Tag};

    /// Text from AWS and registries that tries every kind of Markdown and HTML there is.
    const HOSTILE: [&str; 6] = [
        "![x](http://evil/a.png)",
        "[click](http://evil) `code` ``two``",
        "<img src=x onerror=alert(1)>",
        "a | b | c",
        "*bold* __strong__ ~~gone~~ # not a heading",
        "line\n## forged heading\n<script>x</script>",
    ];

    /// The report of a run whose S3 keys, service events, stopped reasons, errors and smoke replies are
    /// all hostile.
    fn hostile_report() -> Report {
        let mut r = Report::new("deploy", "stage", false);
        r.status = Some(Status::Failed);
        r.error = Some((HOSTILE[0].into(), HOSTILE[2].into()));
        let mut b = BackendReport {
            cluster: HOSTILE[3].into(),
            service: HOSTILE[1].into(),
            deployment_id: Some(HOSTILE[1].into()),
            events: HOSTILE.iter().map(|s| s.to_string()).collect(),
            ..BackendReport::default()
        };
        b.diagnosis.lines = HOSTILE.iter().map(|s| s.to_string()).collect();
        r.backend = Some(b);
        r.frontend = Some(SyncReport {
            bucket: "b".into(),
            prefix: HOSTILE[1].into(),
            changes: HOSTILE
                .iter()
                .map(|k| Change {
                    key: k.to_string(),
                    action: crate::steps::frontend::Action::Delete,
                    bytes: 0,
                })
                .collect(),
            changes_total: HOSTILE.len(),
            invalidation_id: Some(HOSTILE[4].into()),
            invalidated_paths: vec![HOSTILE[0].into()],
            ..SyncReport::default()
        });
        r.signals = Some(crate::steps::signals::SignalsReport {
            enabled: true,
            target_group: Some(HOSTILE[1].into()),
            log_group: Some(HOSTILE[5].into()),
            error_pattern: HOSTILE[2].into(),
            rounds: vec![crate::steps::signals::Round {
                round: 1,
                regressions: vec![HOSTILE[0].into()],
                ..Default::default()
            }],
            notes: HOSTILE.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        });
        r.deploy_time = Some(crate::steps::deploy_time::DeployTimeReport {
            total_seconds: 10.0,
            tasks: 1,
            parts: Vec::new(),
            advice: HOSTILE.iter().map(|s| s.to_string()).collect(),
        });
        r.smoke = Some(SmokeReport {
            checks: HOSTILE
                .iter()
                .map(|h| CheckResult {
                    name: h.to_string(),
                    method: "GET".into(),
                    url: h.to_string(),
                    expected: "200".into(),
                    got: h.to_string(),
                    passed: false,
                    attempts: Vec::new(),
                })
                .collect(),
            ..SmokeReport::default()
        });
        r
    }

    /// Parsed as GitHub parses it (tables, strikethrough): no link, no image, no HTML, no heading but the
    /// action's own, no emphasis; and every hostile text is still there to read, character for character
    /// (line breaks aside).
    #[test]
    fn hostile_text_renders_inert_in_the_summary() {
        let md = hostile_report().summary_markdown();
        let own_html = [
            "<details>",
            "</details>",
            "<summary>",
            "</summary>",
            "<code>",
            "</code>",
        ];
        let mut text = String::new();
        let mut strong = false;
        for event in Parser::new_ext(&md, Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH) {
            match event {
                Event::Start(Tag::Link { dest_url, .. })
                | Event::Start(Tag::Image { dest_url, .. }) => {
                    panic!("a link or image to `{dest_url}`:\n{md}")
                }
                // The action's own: `| outcome | **failed** |`.
                Event::Start(Tag::Strong) => strong = true,
                Event::Start(Tag::Emphasis | Tag::Strikethrough) => {
                    panic!("emphasis from outside text:\n{md}")
                }
                Event::Text(t) if strong => {
                    assert_eq!(&*t, "failed", "strong text from outside:\n{md}");
                    strong = false;
                }
                Event::Start(Tag::Heading { .. }) => text.push_str("\n#HEADING "),
                Event::Html(h) | Event::InlineHtml(h) => {
                    let h = h.trim();
                    assert!(
                        own_html.iter().any(|o| h.starts_with(o))
                            && !h.contains("<img")
                            && !h.contains("<script"),
                        "HTML from outside text: `{h}`\n{md}"
                    );
                }
                Event::Text(t) | Event::Code(t) => text.push_str(&t),
                Event::SoftBreak | Event::HardBreak => text.push(' '),
                _ => text.push('\n'),
            }
        }
        // Only the action's own headings: the title and its sections.
        for line in text.lines().filter(|l| l.starts_with("#HEADING ")) {
            assert!(!line.contains("forged"), "{line}\n{md}");
        }
        for h in HOSTILE {
            let flat = h.replace('\n', " ");
            assert!(
                text.contains(&flat),
                "`{flat}` is not shown as text:\n{text}\n---\n{md}"
            );
        }
    }
}
