//! The migration's part of the run report: the task it ran (or would run), how it ended, its last log
//! lines, as the `migration-exit-code` and `migration-task-arn` outputs and the "Migration" summary
//! section. Also what a cancelled run must still stop.
//!
//! APIs: none.

use std::fmt::{self, Write as _};

use serde::{Serialize, Serializer};

use super::error::Cause;
use crate::report::section::{md_code, md_escape, Section};

/// How the migration got on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum MigrationOutcome {
    /// Planned in the preflight; not run yet.
    #[default]
    Planned,
    /// `RunTask` accepted it; it has not stopped yet.
    Running,
    /// Every essential container exited 0.
    Succeeded,
    /// It failed (did not start, a non-zero exit, timed out): why.
    Failed(String),
    /// The run was cancelled while it ran.
    Cancelled,
}

impl fmt::Display for MigrationOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MigrationOutcome::Planned => f.write_str("planned"),
            MigrationOutcome::Running => f.write_str("running"),
            MigrationOutcome::Succeeded => f.write_str("succeeded"),
            MigrationOutcome::Failed(why) => write!(f, "failed: {why}"),
            MigrationOutcome::Cancelled => f.write_str("cancelled"),
        }
    }
}

impl Serialize for MigrationOutcome {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// The migration task, for outputs and the summary.
#[derive(Debug, Clone, Default, Serialize)]
pub struct MigrationReport {
    pub cluster: String,
    pub container: String,
    pub command: Vec<String>,
    /// The revision it runs (the one the deploy registered); `None` before registration.
    pub task_definition_arn: Option<String>,
    /// Subnets, security groups, public IP, launch type or capacity providers, one item each.
    pub network: Vec<String>,
    pub outcome: MigrationOutcome,
    pub task_arn: Option<String>,
    /// The essential container's exit code, once it stopped.
    pub exit_code: Option<i32>,
    pub stopped_reason: Option<String>,
    pub duration_seconds: Option<f64>,
    /// Why this run called `StopTask` (the timeout, a cancel), once it did.
    pub stopped_by_run: Option<String>,
    /// The last log lines, masked, oldest first.
    pub last_lines: Vec<String>,
    /// Lines read in all.
    pub lines_read: usize,
    pub causes: Vec<Cause>,
}

impl MigrationReport {
    /// The task to stop when the run is cancelled: started, and not seen stopped.
    pub fn running_task(&self) -> Option<&str> {
        match self.outcome {
            MigrationOutcome::Running => self.task_arn.as_deref(),
            _ => None,
        }
    }
}

impl Section for MigrationReport {
    fn outputs(&self, out: &mut Vec<(String, String)>) {
        if let Some(code) = self.exit_code {
            out.push(("migration-exit-code".into(), code.to_string()));
        }
        if let Some(arn) = &self.task_arn {
            out.push(("migration-task-arn".into(), arn.clone()));
        }
    }

    fn summary(&self, md: &mut String) {
        let _ = writeln!(md, "### Migration\n\n| | |\n|---|---|");
        let _ = writeln!(md, "| command | {} |", md_code(&self.command.join(" ")));
        let _ = writeln!(
            md,
            "| cluster / container | {} / {} |",
            md_code(&self.cluster),
            md_code(&self.container)
        );
        if let Some(td) = &self.task_definition_arn {
            let _ = writeln!(md, "| revision | {} |", md_code(super::plan::short(td)));
        }
        if !self.network.is_empty() {
            let _ = writeln!(md, "| network | {} |", md_escape(&self.network.join(", ")));
        }
        let _ = writeln!(md, "| outcome | {} |", md_escape(&self.outcome.to_string()));
        if let Some(arn) = &self.task_arn {
            let _ = writeln!(md, "| task | {} |", md_code(arn));
        }
        if let Some(code) = self.exit_code {
            let _ = writeln!(md, "| exit code | {code} |");
        }
        if let Some(s) = self.duration_seconds {
            let _ = writeln!(md, "| duration | {s:.1} s |");
        }
        if let Some(r) = &self.stopped_reason {
            let _ = writeln!(md, "| stop reason | {} |", md_escape(r));
        }
        if let Some(r) = &self.stopped_by_run {
            let _ = writeln!(md, "| stopped by this run | {} |", md_escape(r));
        }
        md.push('\n');
        for c in &self.causes {
            let _ = writeln!(md, "- {}: {}", md_escape(&c.what), md_escape(&c.fix));
        }
        if !self.causes.is_empty() {
            md.push('\n');
        }
        if !self.last_lines.is_empty() {
            let _ = writeln!(
                md,
                "<details><summary>Last log lines ({} of {})</summary>\n\n~~~~text",
                self.last_lines.len(),
                self.lines_read
            );
            for l in &self.last_lines {
                // A line cannot close the fence: runs of backticks or tildes are broken up.
                let _ = writeln!(md, "{}", l.replace("~~~", "~ ~ ~").replace("```", "` ` `"));
            }
            let _ = writeln!(md, "~~~~\n\n</details>\n");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_migration_shows_its_task_its_fix_and_its_last_lines() {
        let r = MigrationReport {
            cluster: "stage-cluster".into(),
            container: "backend".into(),
            command: vec!["alembic".into(), "upgrade".into(), "head".into()],
            task_definition_arn: Some(
                "arn:aws:ecs:us-east-1:1:task-definition/cloudshop-backend:3".into(),
            ),
            network: vec!["subnets subnet-1".into(), "launch type FARGATE".into()],
            outcome: MigrationOutcome::Failed("exit 1".into()),
            task_arn: Some("arn:aws:ecs:us-east-1:1:task/stage-cluster/abc".into()),
            exit_code: Some(1),
            stopped_reason: Some("Essential container in task exited".into()),
            duration_seconds: Some(12.34),
            stopped_by_run: None,
            last_lines: vec!["ok".into(), "boom ~~~ `x`".into()],
            lines_read: 40,
            causes: vec![Cause {
                what: "w".into(),
                fix: "f".into(),
            }],
        };
        let mut md = String::new();
        r.summary(&mut md);
        assert_eq!(
            md,
            "### Migration\n\n| | |\n|---|---|\n\
             | command | `alembic upgrade head` |\n\
             | cluster / container | `stage-cluster` / `backend` |\n\
             | revision | `cloudshop-backend:3` |\n\
             | network | subnets subnet-1, launch type FARGATE |\n\
             | outcome | failed: exit 1 |\n\
             | task | `arn:aws:ecs:us-east-1:1:task/stage-cluster/abc` |\n\
             | exit code | 1 |\n\
             | duration | 12.3 s |\n\
             | stop reason | Essential container in task exited |\n\n\
             - w: f\n\n\
             <details><summary>Last log lines (2 of 40)</summary>\n\n~~~~text\nok\nboom ~ ~ ~ `x`\n~~~~\n\n</details>\n\n"
        );
        let mut out = Vec::new();
        r.outputs(&mut out);
        assert_eq!(
            out,
            vec![
                ("migration-exit-code".to_string(), "1".to_string()),
                (
                    "migration-task-arn".to_string(),
                    "arn:aws:ecs:us-east-1:1:task/stage-cluster/abc".to_string()
                ),
            ]
        );
        assert_eq!(r.running_task(), None);
    }
}
