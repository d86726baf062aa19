//! The config's one error type, its hints and the `invalid` shorthand every builder uses. A leaf: the
//! builders import it, it imports none of them. No AWS API.

/// A configuration problem, found before anything is changed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The YAML did not parse or had an unknown key.
    #[error("invalid environments file `{path}`: {message}")]
    File {
        path: String,
        /// The YAML parser's message (it carries the line and column).
        message: String,
    },
    /// A file named by `config` is missing.
    #[error("environments file `{0}` not found")]
    FileMissing(String),
    #[error("input `environment` is required")]
    NoEnvironment,
    /// The environment is not in the file.
    #[error("unknown environment `{name}`{}", known_list(.known))]
    UnknownEnvironment {
        name: String,
        /// The names the file has.
        known: Vec<String>,
    },
    /// A required value is missing.
    #[error("`{key}` is required for environment `{environment}`")]
    Missing {
        /// Kebab-case, as in the inputs and the file.
        key: &'static str,
        environment: String,
    },
    /// `github-environment` is set but there is no OIDC token whose claim could prove it.
    #[error("environment `{environment}` sets `github-environment: {github_environment}`, but without `role-to-assume` there is no GitHub OIDC token to check it against")]
    Unverifiable {
        environment: String,
        github_environment: String,
    },
    /// A value is malformed.
    #[error("invalid `{key}`: {message}")]
    Invalid {
        key: &'static str,
        /// What is wrong with it (never a secret value).
        message: String,
    },
}

fn known_list(known: &[String]) -> String {
    if known.is_empty() {
        " (no environments are configured)".to_string()
    } else {
        format!(" (configured: {})", known.join(", "))
    }
}

impl crate::error::Diagnose for Error {
    fn hint(&self) -> String {
        match self {
            Error::File { .. } => "fix the key named above; see the README's environments-file reference for the allowed keys".into(),
            Error::FileMissing(p) => format!("commit `{p}`, or point the `config` input at the environments file (check out the repository before this step)"),
            Error::NoEnvironment => "set `with: environment: stage` (or another environment of the environments file)".into(),
            Error::UnknownEnvironment { .. } => "use one of the configured environments, or add it under `environments:` in the environments file".into(),
            Error::Missing { key, .. } => format!("set `{key}` under the environment in the environments file, or as the `{key}` input"),
            Error::Unverifiable { github_environment, .. } => format!("set `role-to-assume` for the environment (its trust policy should require `sub` = `repo:OWNER/REPO:environment:{github_environment}`), or remove `github-environment`"),
            Error::Invalid { key, .. } => format!("fix `{key}` (see the README's input reference)"),
        }
    }

    fn anchor(&self) -> Option<&'static str> {
        match self {
            Error::File { .. } => troubleshooting!("environments-file-error"),
            Error::FileMissing { .. } => troubleshooting!("environments-file-not-found"),
            Error::NoEnvironment | Error::UnknownEnvironment { .. } => {
                troubleshooting!("unknown-environment")
            }
            Error::Unverifiable { .. } => troubleshooting!("github-environment-without-role"),
            Error::Missing { .. } | Error::Invalid { .. } => {
                troubleshooting!("missing-or-invalid-setting")
            }
        }
    }
}

/// An [`Error::Invalid`] for `key`.
pub(super) fn invalid(key: &'static str, message: impl Into<String>) -> Error {
    Error::Invalid {
        key,
        message: message.into(),
    }
}
