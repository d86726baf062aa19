//! cloudshop-deploy: deploy CloudShop (ECS Fargate backend, S3 website frontend) from GitHub Actions.
//!
//! # Layout
//! - `main.rs`: reads the process environment once and calls [`main_with`].
//! - [`inputs`]: `INPUT_*` variables (both spellings) -> raw strings, `""` = unset.
//! - [`config`]: raw inputs + the YAML environments file -> a validated [`config::Config`] (pure).
//! - [`github`]: workflow commands, the output and summary files, the OIDC token.
//! - [`aws`]: the HTTPS client, `SdkConfig`, OIDC role credentials, error helpers.
//! - [`run`]: the pipeline: load, connect, dispatch the command, write outputs and summary; the one
//!   place that turns the steps' outcomes into the run's [`report::Status`].
//! - [`steps`]: async functions over SDK clients, each writing only its own report section and the
//!   run's timeline:
//!   - `steps/deploy/`: `mod.rs` (prepare, apply), `image` (ECR), `task_def` (the JSON definition),
//!     `service` (DescribeServices, UpdateService, health), `rollback` (after a failure and
//!     `command: rollback`), `wait/` (`poller`: pacing and the watch loop; `probe`: rolling and
//!     blue/green probes and verdicts; `diagnosis`: stopped tasks and fixes), `watch` (one watch as
//!     the step records it), `report` (the backend section and its typed outcome), `error` (errors
//!     and hints).
//!   - `steps/smoke`: the HTTP checks, the website check, the post-deploy watch (`check`: requests and
//!     judgement; `result`: what the requests got; `report`: the smoke section; `schedule`: timing).
//!   - `steps/frontend`, `steps/promote`: the S3 sync, the image promotion.
//! - [`registry`]: an OCI distribution client and the image copy (promotion, archive push).
//! - [`report`]: one [`report::Report`] -> step outputs and the job summary; `report/section` is the
//!   leaf every step shares (the `Section` trait, Markdown escaping, the timed phases), importing nothing
//!   from the crate.
//!
//! Nothing mutating happens before every input, the environments file and the live AWS state it depends
//! on have been checked: a bad input costs a clear error and no change.

/// A section of `docs/troubleshooting.md` an error links to, by its anchor. Every use is checked
/// against the document's headings by a test, so a hint never links to a section that is not there.
macro_rules! troubleshooting {
    ($anchor:literal) => {
        Some($anchor)
    };
}

pub mod aws;
pub mod config;
pub mod github;
pub mod inputs;
pub mod registry;
pub mod report;
pub mod run;
pub mod steps;

use std::process::ExitCode;

pub use run::main_with;

/// An error the action can explain: its message plus one hint line with the fix.
pub trait Diagnose: std::error::Error + Send + Sync + 'static {
    /// One line telling the reader how to fix it.
    fn hint(&self) -> String;

    /// The anchor of its section in `docs/troubleshooting.md`, when it has one.
    fn anchor(&self) -> Option<&'static str> {
        None
    }
}

/// The run's error: any module error that can explain itself.
#[derive(Debug)]
pub struct Error(Box<dyn Diagnose>);

impl Error {
    /// The fix, in one line.
    pub fn hint(&self) -> String {
        self.0.hint()
    }

    /// The hint, ending with a link to its section of `docs/troubleshooting.md`: on github.com
    /// (`base` is `{GITHUB_SERVER_URL}/{GITHUB_ACTION_REPOSITORY}/blob/{GITHUB_ACTION_REF}/`) or, without
    /// those variables, the path in the action's repository.
    pub fn hint_with_link(&self, base: Option<&str>) -> String {
        let hint = self.0.hint();
        match self.0.anchor() {
            Some(anchor) => format!(
                "{hint}; see {}docs/troubleshooting.md#{anchor}",
                base.unwrap_or("")
            ),
            None => hint,
        }
    }
}

/// The section for a failed AWS call, from its `<AWS code>: <message>` detail.
pub(crate) fn aws_anchor(detail: &str) -> Option<&'static str> {
    if detail.starts_with("AccessDenied") {
        troubleshooting!("access-denied-on-an-aws-operation")
    } else if detail.contains("Throttl") {
        troubleshooting!("ecs-throttling")
    } else {
        None
    }
}

/// The base of links into the action's repository at the running version, from the variables the
/// runner sets for a `uses:` action; `None` when any is missing.
pub fn docs_base(get: impl Fn(&str) -> Option<String>) -> Option<String> {
    let server = get("GITHUB_SERVER_URL").filter(|v| !v.is_empty())?;
    let repo = get("GITHUB_ACTION_REPOSITORY").filter(|v| !v.is_empty())?;
    let reference = get("GITHUB_ACTION_REF").filter(|v| !v.is_empty())?;
    Some(format!(
        "{}/{repo}/blob/{reference}/",
        server.trim_end_matches('/')
    ))
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl<E: Diagnose> From<E> for Error {
    fn from(e: E) -> Self {
        Error(Box::new(e))
    }
}

impl Diagnose for inputs::Error {
    fn hint(&self) -> String {
        "check the `with:` block of the step".into()
    }

    fn anchor(&self) -> Option<&'static str> {
        troubleshooting!("missing-or-invalid-setting")
    }
}

impl Diagnose for config::Error {
    fn hint(&self) -> String {
        config::Error::hint(self)
    }

    fn anchor(&self) -> Option<&'static str> {
        use config::Error as E;
        match self {
            E::File { .. } => troubleshooting!("environments-file-error"),
            E::FileMissing { .. } => troubleshooting!("environments-file-not-found"),
            E::NoEnvironment | E::UnknownEnvironment { .. } => {
                troubleshooting!("unknown-environment")
            }
            E::Unverifiable { .. } => troubleshooting!("github-environment-without-role"),
            E::Missing { .. } | E::Invalid { .. } => troubleshooting!("missing-or-invalid-setting"),
        }
    }
}

impl Diagnose for aws::credentials::Error {
    fn hint(&self) -> String {
        aws::credentials::Error::hint(self)
    }

    fn anchor(&self) -> Option<&'static str> {
        use aws::credentials::Error as E;
        use github::oidc::Error as O;
        match self {
            E::Oidc(O::NoPermission) => troubleshooting!("id-token-permission-missing"),
            E::Oidc(O::WrongEnvironment { .. }) => troubleshooting!("wrong-github-environment"),
            E::Oidc(O::BadUrl { .. } | O::Request { .. }) => {
                troubleshooting!("oidc-token-request-failed")
            }
            E::AccessDenied { .. } => troubleshooting!("not-authorized-to-assume-the-role"),
            E::Sts { .. } => troubleshooting!("assume-role-failed"),
            E::Identity { .. } => troubleshooting!("no-aws-credentials"),
        }
    }
}

impl Diagnose for github::files::Error {
    fn hint(&self) -> String {
        "the runner's file commands could not be written; check the disk of the runner".into()
    }
}

/// Exit code for a run result.
pub fn exit_code(ok: bool) -> ExitCode {
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

#[cfg(test)]
mod link_tests {
    use super::*;

    #[test]
    fn links_end_the_hint_and_follow_the_running_version() {
        let e = Error::from(config::Error::NoEnvironment);
        assert!(e
            .hint_with_link(None)
            .ends_with("; see docs/troubleshooting.md#unknown-environment"));
        let vars = |k: &str| {
            Some(
                match k {
                    "GITHUB_SERVER_URL" => "https://github.com/",
                    "GITHUB_ACTION_REPOSITORY" => "o/a",
                    _ => "v1.2.0",
                }
                .to_string(),
            )
        };
        let base = docs_base(vars);
        assert_eq!(base.as_deref(), Some("https://github.com/o/a/blob/v1.2.0/"));
        assert!(e.hint_with_link(base.as_deref()).ends_with(
            "; see https://github.com/o/a/blob/v1.2.0/docs/troubleshooting.md#unknown-environment"
        ));
        assert_eq!(docs_base(|_| None), None);
        assert_eq!(
            aws_anchor("AccessDeniedException: no"),
            Some("access-denied-on-an-aws-operation")
        );
        assert_eq!(
            aws_anchor("ThrottlingException: slow"),
            Some("ecs-throttling")
        );
        assert_eq!(aws_anchor("InvalidParameterException: x"), None);
    }
}
