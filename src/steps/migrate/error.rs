//! The migration step's errors, each with the one-line fix the Actions log shows, and the causes a
//! migration's own log lines show (the database ones of the task-log table, plus a migration that
//! conflicts with the schema). A leaf of the step.
//!
//! APIs: none (the calls that fail are in the sibling modules).

use std::time::Duration;

use serde::Serialize;

/// A cause recognised in a migration's log lines, with its fix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cause {
    pub what: String,
    pub fix: String,
}

/// Needles (lowercase) that show a migration at odds with the schema it found.
const CONFLICT: &[&str] = &[
    "multiple head revisions",
    "multiple heads",
    "can't locate revision",
    "duplicatetable",
    "duplicatecolumn",
    "duplicateobject",
    "already exists",
];

/// The causes shown by a migration's lines and exit code: a conflicting migration first, then the
/// task-log table's (database credentials, an unreachable host, memory, ...). The table's "a migration
/// did not run" is left out: this is the migration.
pub fn causes(lines: &[String], exit_code: Option<i32>) -> Vec<Cause> {
    let lower: Vec<String> = lines.iter().map(|l| l.to_lowercase()).collect();
    let mut out = Vec::new();
    if lower.iter().any(|l| CONFLICT.iter().any(|n| l.contains(n))) {
        out.push(Cause {
            what: "the migration conflicts with the database's schema or history".into(),
            fix: "make the migration idempotent and linear (one head: `alembic heads`; `alembic merge` two branches), and check what a previous run already applied (`alembic current`)".into(),
        });
    }
    out.extend(
        crate::steps::known_causes::known_causes(lines, exit_code)
            .into_iter()
            .filter(|c| !c.what.contains("a migration did not run"))
            .map(|c| Cause {
                what: c.what.to_string(),
                fix: c.fix.to_string(),
            }),
    );
    out
}

/// Errors of the migration step. Every one of them stops the deploy before `UpdateService`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The container named by `migrate.container` is not in the task definition.
    #[error("invalid `migrate.container`: container `{name}` is not in task definition `{task_definition}` (containers: {})", .available.join(", "))]
    ContainerNotFound {
        name: String,
        task_definition: String,
        available: Vec<String>,
    },
    /// An `awsvpc` task needs subnets, and the service has none to copy.
    #[error("invalid `migrate`: service `{service}` has no network configuration to run the `awsvpc` migration task with")]
    NoNetwork { service: String },
    /// An AWS call failed (after the SDK's retries).
    #[error("failed to {verb} `{object}` ({api}): {detail}")]
    Aws {
        verb: &'static str,
        object: String,
        api: &'static str,
        /// `<AWS code>: <message>`.
        detail: String,
        hint: String,
    },
    /// `RunTask` answered with a failure instead of a task, or the task stopped before its container ran.
    #[error("failed to start migration task on cluster `{cluster}`: {reason}")]
    NotStarted { cluster: String, reason: String },
    /// The task stopped and an essential container did not exit 0.
    #[error("migration task `{task}` failed: {reason}{}", last(.lines))]
    Failed {
        task: String,
        reason: String,
        /// The last log lines, masked.
        lines: Vec<String>,
        causes: Vec<Cause>,
    },
    /// The task ran past `migrate.timeout`; it was stopped.
    #[error("migration task `{task}` did not stop within {}; it was stopped (StopTask){}", humantime::format_duration(*.after), last(.lines))]
    Timeout {
        task: String,
        after: Duration,
        lines: Vec<String>,
        causes: Vec<Cause>,
    },
}

/// How many log lines an error message carries (the summary has more).
const MESSAGE_LINES: usize = 5;

fn last(lines: &[String]) -> String {
    if lines.is_empty() {
        return String::new();
    }
    let from = lines.len().saturating_sub(MESSAGE_LINES);
    format!("; last log lines: {}", lines[from..].join(" | "))
}

impl Error {
    pub(super) fn aws(
        verb: &'static str,
        object: &str,
        api: &'static str,
        detail: String,
        hint: &str,
    ) -> Self {
        Error::Aws {
            verb,
            object: object.to_string(),
            api,
            detail,
            hint: hint.to_string(),
        }
    }
}

impl crate::error::Diagnose for Error {
    fn hint(&self) -> String {
        match self {
            Error::ContainerNotFound { .. } => "set `migrate.container` to a container of the task definition, or leave it out to use the deployed container".into(),
            Error::NoNetwork { .. } => "give the service a network configuration (subnets, security groups), or remove `migrate` from the environment".into(),
            Error::Aws { hint, .. } => hint.clone(),
            Error::NotStarted { .. } => "the service still runs the previous version; fix the image or the task definition (the stop reason says which) and deploy again".into(),
            Error::Failed { causes, .. } | Error::Timeout { causes, .. } => match causes.first() {
                Some(c) => format!("{}: {}; the service still runs the previous version", c.what, c.fix),
                None => "read the migration's log lines in the job summary and fix the migration; the service still runs the previous version".into(),
            },
        }
    }

    fn anchor(&self) -> Option<&'static str> {
        match self {
            Error::Aws { detail, .. } => crate::error::aws_anchor(detail),
            _ => troubleshooting!("migration-failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Diagnose;

    #[test]
    fn a_conflicting_migration_comes_first_and_not_as_a_missing_migration() {
        let lines = vec![
            "sqlalchemy.exc.ProgrammingError: (psycopg2.errors.DuplicateTable) relation \"products\" already exists".to_string(),
        ];
        let c = causes(&lines, Some(1));
        assert_eq!(c.len(), 1, "{c:?}");
        assert!(c[0].what.contains("conflicts"), "{c:?}");
        let c = causes(
            &["FATAL:  password authentication failed for user \"app\"".into()],
            Some(1),
        );
        assert!(c[0].what.contains("credentials"), "{c:?}");
        let c = causes(
            &["could not translate host name \"db.internal\" to address".into()],
            Some(1),
        );
        assert!(c[0].what.contains("reach its database"), "{c:?}");
        assert!(causes(&["INFO done".into()], Some(0)).is_empty());
    }

    #[test]
    fn a_failure_shows_its_last_lines_and_the_first_fix() {
        let e = Error::Failed {
            task: "abc".into(),
            reason: "container `backend` exited with code 1".into(),
            lines: (1..=7).map(|i| format!("l{i}")).collect(),
            causes: causes(&["relation \"x\" already exists".into()], Some(1)),
        };
        assert_eq!(
            e.to_string(),
            "migration task `abc` failed: container `backend` exited with code 1; last log lines: l3 | l4 | l5 | l6 | l7"
        );
        assert!(
            e.hint().starts_with("the migration conflicts"),
            "{}",
            e.hint()
        );
        assert!(e.hint().ends_with("still runs the previous version"));
    }
}
