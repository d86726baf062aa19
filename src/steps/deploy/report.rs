//! The backend's part of the run report: what the deploy (or rollback) found and did, as the
//! `image-*`/`task-definition-arn`/`deployment-id` outputs and the "Backend (ECS)" summary section.
//!
//! APIs: none.

use std::fmt::{self, Write as _};

use serde::{Serialize, Serializer};

use super::rollout::diagnosis::Diagnosis;
use super::rollout::probe::Strategy;
use crate::report::section::{html_text, md_code, md_escape, Section};

/// Where the backend step got to, and how it ended; the run's status is derived from it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum BackendOutcome {
    /// Not yet known (a rollback before its preflight finished).
    #[default]
    Started,
    /// The preflight is running.
    Preflight,
    /// The preflight failed with this error.
    PreflightFailed(String),
    /// A dry run: the plan is all there is.
    Planned,
    /// The preflight passed; nothing changed yet.
    Ready,
    /// Adding the extra tags failed, before any change to the service.
    TagsFailed,
    /// The service already runs this image (or revision).
    NoChange,
    /// The new revision is live; `watched: false` with `wait-timeout: 0`.
    Deployed { watched: bool },
    /// The rollout failed and ECS (circuit breaker, blue/green) went back by itself.
    RolledBackByEcs,
    /// Another deployment took over during the watch.
    Superseded,
    /// The rollout failed; `rolled_back` when this run went back to the previous revision.
    Failed { rolled_back: bool },
    /// Rolled back after the rollout, for this reason (smoke tests, watch).
    RolledBackAfter(String),
    /// `command: rollback` went back to the revision asked for.
    RolledBack,
}

impl fmt::Display for BackendOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BackendOutcome::Started => Ok(()),
            BackendOutcome::Preflight => f.write_str("preflight"),
            BackendOutcome::PreflightFailed(e) => write!(f, "preflight failed: {e}"),
            BackendOutcome::Planned => f.write_str("planned (dry run)"),
            BackendOutcome::Ready => f.write_str("preflight ok"),
            BackendOutcome::TagsFailed => f.write_str("failed to add extra tags"),
            BackendOutcome::NoChange => f.write_str("no change"),
            BackendOutcome::Deployed { watched: true } => f.write_str("deployed"),
            BackendOutcome::Deployed { watched: false } => {
                f.write_str("deployed (rollout not watched)")
            }
            BackendOutcome::RolledBackByEcs => f.write_str("failed; ECS rolled back"),
            BackendOutcome::Superseded => f.write_str("superseded by another deployment"),
            BackendOutcome::Failed { rolled_back: true } => f.write_str("failed; rolled back"),
            BackendOutcome::Failed { rolled_back: false } => f.write_str("failed"),
            BackendOutcome::RolledBackAfter(reason) => write!(f, "rolled back: {reason}"),
            BackendOutcome::RolledBack => f.write_str("rolled back"),
        }
    }
}

impl Serialize for BackendOutcome {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Whether `UpdateService` was sent, as far as this run knows: a cancel reports it exactly.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum UpdateSent {
    #[default]
    NotSent,
    /// Sent; its answer had not arrived.
    InFlight,
    /// Answered.
    Answered,
    /// It failed; whether it took effect is not known.
    Unknown,
}

/// Outcome of the backend deploy, for outputs and the summary.
#[derive(Debug, Clone, Default, Serialize)]
pub struct BackendReport {
    pub cluster: String,
    pub service: String,
    pub repository: String,
    /// The tag found (or asked for, when a digest was given).
    pub image_tag: Option<String>,
    /// `sha256:...`.
    pub image_digest: Option<String>,
    /// `REGISTRY/REPO@sha256:...`.
    pub image_uri: Option<String>,
    /// The revision the service runs after this run (or would, in a plan).
    pub task_definition_arn: Option<String>,
    /// The revision it ran before.
    pub previous_task_definition_arn: Option<String>,
    /// The ECS deployment id (rolling) or service deployment ARN.
    pub deployment_id: Option<String>,
    /// How ECS rolls the service out, once the service was read.
    pub strategy: Option<Strategy>,
    pub outcome: BackendOutcome,
    /// The plan: task-definition changes and the service update.
    pub plan: Vec<String>,
    /// Tags added besides the image tag.
    pub extra_tags: Vec<String>,
    /// Why the rollout failed: stopped tasks, reasons, fixes.
    pub diagnosis: Diagnosis,
    /// Service events seen during the watch.
    pub events: Vec<String>,
    /// Rolled back to this revision.
    pub rolled_back_to: Option<String>,
    /// ECS calls made by the rollout watch.
    pub watch_calls: u32,
    #[serde(skip)]
    pub update: UpdateSent,
    /// Where a signal stopped this run's rollback, and how to finish it.
    #[serde(skip)]
    pub rollback_interrupted: Option<String>,
    /// The revision `UpdateService` was asked to run.
    #[serde(skip)]
    pub update_to: Option<String>,
    /// The pauses of the service deployment and how each was answered, in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pauses: Vec<super::hooks::Decision>,
    /// The pause being judged right now: a cancelled run answers it with ROLLBACK before it exits.
    #[serde(skip)]
    pub paused: Option<super::hooks::Pause>,
}

impl BackendReport {
    /// One line on the state of the service as last seen, for a cancelled run.
    pub fn left_behind(&self) -> String {
        // Our own text around revision names (letters, digits, `-` and `_`): Markdown as written.
        if let Some(note) = &self.rollback_interrupted {
            return note.clone();
        }
        let revision = self
            .task_definition_arn
            .as_deref()
            .map(short)
            .unwrap_or("?");
        match (&self.outcome, &self.deployment_id) {
            (BackendOutcome::Started | BackendOutcome::Ready, Some(id)) => format!(
                "rollout of `{}` in progress (deployment `{}`): ECS carries it on (its circuit breaker still applies); the last event seen: {}",
                md_escape(revision),
                md_escape(id),
                self.events
                    .last()
                    .map(|e| format!("`{}`", md_escape(e)))
                    .unwrap_or_else(|| "none".into())
            ),
            (BackendOutcome::Started | BackendOutcome::Preflight | BackendOutcome::Ready, None) => {
                let revision = self.update_to.as_deref().map(short).unwrap_or(revision);
                match self.update {
                    UpdateSent::NotSent => "unchanged: no update had been sent".into(),
                    UpdateSent::InFlight => format!(
                        "`UpdateService` to `{}` was sent; its answer did not arrive: the service may be rolling it out (check its deployments, then re-run or `command: rollback`)",
                        md_escape(revision)
                    ),
                    UpdateSent::Answered => format!(
                        "`UpdateService` to `{}` was answered, but no deployment of it was identified: the service may be rolling it out (check its deployments)",
                        md_escape(revision)
                    ),
                    UpdateSent::Unknown => format!(
                        "`UpdateService` to `{}` failed; whether it took effect is unknown (check the service)",
                        md_escape(revision)
                    ),
                }
            }
            (outcome, _) => format!("{outcome} (`{}`)", md_escape(revision)),
        }
    }
}

/// `family:revision` of an ARN (the readable part).
pub(crate) fn short(arn: &str) -> &str {
    arn.rsplit_once('/').map(|(_, s)| s).unwrap_or(arn)
}

impl Section for BackendReport {
    fn outputs(&self, out: &mut Vec<(String, String)>) {
        let mut push = |k: &str, v: &Option<String>| {
            if let Some(v) = v {
                out.push((k.to_string(), v.clone()));
            }
        };
        push("image-uri", &self.image_uri);
        push("image-digest", &self.image_digest);
        push("task-definition-arn", &self.task_definition_arn);
        push(
            "previous-task-definition-arn",
            &self.previous_task_definition_arn,
        );
        push("deployment-id", &self.deployment_id);
    }

    fn summary(&self, md: &mut String) {
        self.write_table(md);
        self.write_plan(md);
        self.write_pauses(md);
        self.write_diagnosis(md);
        self.write_events(md);
    }
}

impl BackendReport {
    /// The pauses of the service deployment and each answer: stage, hook, action, why.
    fn write_pauses(&self, md: &mut String) {
        if self.pauses.is_empty() {
            return;
        }
        let _ = writeln!(
            md,
            "#### Pauses\n\n| stage | hook | answer | why |\n|---|---|---|---|"
        );
        for d in &self.pauses {
            let answer = match &d.answered {
                super::hooks::Answered::Sent => format!("`{}`", d.action.as_str()),
                super::hooks::Answered::Expired { after_ms, applied } => format!(
                    "expired after {}; ECS applied `{}`",
                    humantime::format_duration(std::time::Duration::from_millis(*after_ms)),
                    md_escape(applied)
                ),
            };
            let _ = writeln!(
                md,
                "| `{}` | {} | {answer} | {} |",
                d.pause.stage.as_str(),
                md_code(&d.pause.hook_id),
                md_escape(&d.why)
            );
        }
        md.push('\n');
    }

    /// The facts: service, image, revisions, deployment, strategy, tags, rollback, outcome.
    fn write_table(&self, md: &mut String) {
        let _ = writeln!(md, "### Backend (ECS)\n\n| | |\n|---|---|");
        let _ = writeln!(
            md,
            "| cluster / service | {} / {} |",
            md_code(&self.cluster),
            md_code(&self.service)
        );
        if let Some(d) = &self.image_digest {
            let _ = writeln!(
                md,
                "| image | {} {} |",
                md_code(&format!(
                    "{}:{}",
                    self.repository,
                    self.image_tag.as_deref().unwrap_or("-")
                )),
                md_code(d)
            );
        }
        let old = self
            .previous_task_definition_arn
            .as_deref()
            .map(short)
            .unwrap_or("-");
        let new = self
            .task_definition_arn
            .as_deref()
            .map(short)
            .unwrap_or("-");
        let _ = writeln!(md, "| revision | {} -> {} |", md_code(old), md_code(new));
        if let Some(d) = &self.deployment_id {
            let _ = writeln!(md, "| deployment | {} |", md_code(d));
        }
        if let Some(s) = self.strategy {
            let _ = writeln!(md, "| strategy | {} |", md_escape(&s.to_string()));
        }
        if !self.extra_tags.is_empty() {
            let _ = writeln!(
                md,
                "| extra tags | {} |",
                md_escape(&self.extra_tags.join(", "))
            );
        }
        if let Some(r) = &self.rolled_back_to {
            let _ = writeln!(md, "| rolled back to | {} |", md_code(short(r)));
        }
        let _ = writeln!(
            md,
            "| outcome | {} |\n",
            md_escape(&self.outcome.to_string())
        );
    }

    /// The task-definition diff, fenced so no line can close the fence.
    fn write_plan(&self, md: &mut String) {
        if !self.plan.is_empty() {
            let _ = writeln!(md, "#### Plan\n\n```diff");
            for l in &self.plan {
                let _ = writeln!(md, "{}", l.replace("```", "'''"));
            }
            let _ = writeln!(md, "```\n");
        }
    }

    /// Why a failed rollout failed, and each stopped task's last log lines.
    fn write_diagnosis(&self, md: &mut String) {
        if !self.diagnosis.is_empty() {
            let _ = writeln!(md, "#### Diagnosis\n");
            for l in self.diagnosis.display_lines() {
                let _ = writeln!(md, "- {}", md_escape(&l));
            }
            md.push('\n');
            for t in &self.diagnosis.logs {
                let _ = writeln!(
                    md,
                    "<details><summary>Logs of <code>{}</code> in task <code>{}</code> ({} lines)</summary>\n",
                    html_text(&t.container),
                    html_text(&t.task_id),
                    t.lines.len()
                );
                if let Some((group, stream)) = &t.stream {
                    let _ = writeln!(md, "{}\n", md_escape(&format!("{group} / {stream}")));
                }
                if let Some(note) = &t.note {
                    let _ = writeln!(md, "{}\n", md_escape(note));
                }
                if !t.lines.is_empty() {
                    // A line cannot close the fence: runs of backticks or tildes are broken up.
                    let _ = writeln!(md, "~~~~text");
                    for l in &t.lines {
                        let _ =
                            writeln!(md, "{}", l.replace("~~~", "~ ~ ~").replace("```", "` ` `"));
                    }
                    let _ = writeln!(md, "~~~~");
                }
                let _ = writeln!(md, "\n</details>\n");
            }
        }
    }

    /// The service's latest events, newest first.
    fn write_events(&self, md: &mut String) {
        if !self.events.is_empty() {
            let _ = writeln!(
                md,
                "<details><summary>Service events ({})</summary>\n",
                self.events.len()
            );
            for e in self.events.iter().rev().take(20) {
                let _ = writeln!(md, "- {}", md_escape(e));
            }
            let _ = writeln!(md, "\n</details>\n");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CUR: &str = "arn:aws:ecs:us-east-1:123456789012:task-definition/cloudshop-backend:7";

    #[test]
    fn outputs_and_summary() {
        let r = BackendReport {
            cluster: "c".into(),
            service: "s".into(),
            repository: "repo".into(),
            image_tag: Some("abc".into()),
            image_digest: Some("sha256:1".into()),
            image_uri: Some("r/repo@sha256:1".into()),
            task_definition_arn: Some(CUR.replace(":7", ":8")),
            previous_task_definition_arn: Some(CUR.into()),
            deployment_id: Some("ecs-svc/1".into()),
            outcome: BackendOutcome::Failed { rolled_back: true },
            diagnosis: Diagnosis {
                lines: vec!["stopped task: CannotPullContainerError".into()],
                hints: vec!["check ECR".into()],
                logs: Vec::new(),
            },
            ..BackendReport::default()
        };
        let mut out = Vec::new();
        r.outputs(&mut out);
        let names: Vec<&str> = out.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            names,
            [
                "image-uri",
                "image-digest",
                "task-definition-arn",
                "previous-task-definition-arn",
                "deployment-id"
            ]
        );
        let mut md = String::new();
        r.summary(&mut md);
        assert!(
            md.contains("| revision | `cloudshop-backend:7` -> `cloudshop-backend:8` |"),
            "{md}"
        );
        assert!(
            md.contains("#### Diagnosis\n\n- stopped task: CannotPullContainerError"),
            "{md}"
        );
        assert!(
            md.contains("- stopped task: CannotPullContainerError\n- hint: check ECR\n"),
            "{md}"
        );
        assert!(md.contains("| outcome | failed; rolled back |\n"), "{md}");
    }

    #[test]
    fn outcomes_read_as_before() {
        assert_eq!(BackendOutcome::Started.to_string(), "");
        assert_eq!(
            BackendOutcome::Deployed { watched: false }.to_string(),
            "deployed (rollout not watched)"
        );
        assert_eq!(
            BackendOutcome::RolledBackAfter("smoke tests failed".into()).to_string(),
            "rolled back: smoke tests failed"
        );
        assert_eq!(
            Strategy::RollingWithRollback.to_string(),
            "rolling (circuit breaker with rollback)"
        );
    }
}
