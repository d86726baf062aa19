//! The `command` input: deploy, promote, rollback or releases. No AWS API.

use serde::Serialize;

use super::error::{invalid, Error};

/// What the action was asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Command {
    /// Build output -> environment.
    Deploy,
    /// Copy a tested image from the source environment, then deploy it.
    Promote,
    /// Point the service back at the previous (or a given) revision.
    Rollback,
    /// List what runs and the verified releases (read-only).
    Releases,
}

impl Command {
    /// Its input spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Command::Deploy => "deploy",
            Command::Promote => "promote",
            Command::Rollback => "rollback",
            Command::Releases => "releases",
        }
    }

    /// The `command` input, any case; unset is `deploy`.
    pub(super) fn parse(input: Option<&str>) -> Result<Command, Error> {
        match input.map(str::to_ascii_lowercase).as_deref() {
            None | Some("deploy") => Ok(Command::Deploy),
            Some("promote") => Ok(Command::Promote),
            Some("rollback") => Ok(Command::Rollback),
            Some("releases") => Ok(Command::Releases),
            Some(other) => Err(invalid(
                "command",
                format!("`{other}` is not a command (use `deploy`, `promote`, `rollback` or `releases`)"),
            )),
        }
    }
}
