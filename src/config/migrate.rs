//! The migration part: the one-off task a deploy runs with the new revision before the service update
//! (`migrate:` of an environment). No AWS API (the container is checked against the task definition by
//! the step's preflight).

use std::time::Duration;

use serde::Deserialize;

use super::command::Command;
use super::error::{invalid, Error};
use super::validate::parse_duration;

/// `migrate:` as written in the environments file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct MigrateFile {
    /// The container's command override, one argument per item (`["alembic", "upgrade", "head"]`).
    pub command: Option<Vec<String>>,
    /// The container that runs it (default: the deployed container).
    pub container: Option<String>,
    /// How long the task may take from `RunTask` to stopped (humantime; default 10 min).
    pub timeout: Option<String>,
}

/// The migration task of an environment, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Migrate {
    /// Never empty, no empty argument.
    pub command: Vec<String>,
    /// `None`: the container whose image the deploy swaps.
    pub container: Option<String>,
    /// From `RunTask` to the task stopped; at most [`MAX_TIMEOUT`].
    pub timeout: Duration,
}

/// A GitHub-hosted job is cancelled after 6 h: a longer migration could never finish inside the job.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(6 * 60 * 60);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10 * 60);

/// Build [`Migrate`]; `None` when the environment has no `migrate:` or the command never runs one
/// (`rollback` runs the old image against the schema as it is).
pub(super) fn build(
    file: Option<&MigrateFile>,
    command: Command,
) -> Result<Option<Migrate>, Error> {
    let Some(m) = file else {
        return Ok(None);
    };
    let args = m.command.clone().unwrap_or_default();
    if args.is_empty() || args.iter().any(|a| a.trim().is_empty()) {
        return Err(invalid(
            "migrate.command",
            "it is empty or has an empty argument; write the command as a list, e.g. `[\"alembic\", \"upgrade\", \"head\"]`",
        ));
    }
    let container = match m.container.as_deref().map(str::trim) {
        Some("") => return Err(invalid("migrate.container", "it is empty")),
        other => other.map(str::to_string),
    };
    let timeout = match m.timeout.as_deref() {
        Some(v) => parse_duration("migrate.timeout", v)?,
        None => DEFAULT_TIMEOUT,
    };
    if timeout.is_zero() {
        return Err(invalid("migrate.timeout", "must be greater than zero"));
    }
    if timeout > MAX_TIMEOUT {
        return Err(invalid(
            "migrate.timeout",
            format!(
                "`{}` is longer than the 6h a GitHub-hosted job may run; write at most `6h`",
                humantime::format_duration(timeout)
            ),
        ));
    }
    Ok(match command {
        Command::Rollback | Command::Releases => None,
        Command::Deploy | Command::Promote => Some(Migrate {
            command: args,
            container,
            timeout,
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(yaml: &str) -> MigrateFile {
        yaml_serde::from_str(yaml).unwrap()
    }

    #[test]
    fn a_migration_gets_the_defaults_and_rollback_runs_none() {
        let f = file("command: [alembic, upgrade, head]");
        let m = build(Some(&f), Command::Deploy).unwrap().unwrap();
        assert_eq!(m.command, vec!["alembic", "upgrade", "head"]);
        assert_eq!(m.container, None);
        assert_eq!(m.timeout, Duration::from_secs(600));
        assert!(build(Some(&f), Command::Promote).unwrap().is_some());
        assert_eq!(build(Some(&f), Command::Rollback).unwrap(), None);
        assert_eq!(build(None, Command::Deploy).unwrap(), None);
    }

    #[test]
    fn bad_values_name_their_key() {
        let cases = [
            ("command: []", "migrate.command"),
            ("timeout: 1m", "migrate.command"),
            ("command: [alembic, '']", "migrate.command"),
            ("command: [a]\ncontainer: ''", "migrate.container"),
            ("command: [a]\ntimeout: 7h", "migrate.timeout"),
            ("command: [a]\ntimeout: 0s", "migrate.timeout"),
            ("command: [a]\ntimeout: soon", "migrate.timeout"),
        ];
        for (yaml, key) in cases {
            let err = build(Some(&file(yaml)), Command::Deploy).unwrap_err();
            assert!(
                err.to_string().contains(&format!("`{key}`")),
                "{yaml}: {err}"
            );
        }
        // Bad input is refused for a rollback too: the file is wrong whatever the command.
        assert!(build(Some(&file("command: []")), Command::Rollback).is_err());
    }
}
