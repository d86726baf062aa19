//! Errors of verified releases (the promotion gate, the markers, the rollback target) and their hints.
//! A leaf; no AWS API.

use crate::steps::{deploy, image};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The digest to promote has not passed the source environment.
    #[error("refusing to promote `{sha}`: {reason}")]
    Unverified {
        sha: String,
        source_env: String,
        /// What the marker lookup found (none, another digest, no registry).
        reason: String,
        /// No registry could be addressed to read markers from (an emulator without `registry-url`).
        no_registry: bool,
    },
    /// The release passed the source environment, but not every gate the target requires.
    #[error("refusing to promote `{sha}`: {reason}")]
    GatesMissing {
        sha: String,
        source_env: String,
        /// The required gates the marker does not record as passed.
        missing: Vec<String>,
        reason: String,
    },
    /// No `image-tag` to name the release by.
    #[error("no `image-tag`: a release is named by its image tag (the git SHA)")]
    NoTag,
    /// A promotion without `image-tag` found no verified release on the source environment.
    #[error("failed to find a verified release of `{source_env}` to promote: {reason}")]
    NothingVerified { source_env: String, reason: String },
    /// `command: rollback` found neither a verified release nor a completed deployment to go back to.
    #[error("failed to find a release of `{environment}` to roll back to: {reason}")]
    NoRollbackTarget { environment: String, reason: String },
    /// Resolving a repository or talking to its registry failed.
    #[error(transparent)]
    Image(#[from] image::Error),
    /// An ECS call failed.
    #[error(transparent)]
    Deploy(#[from] deploy::Error),
}

impl crate::error::Diagnose for Error {
    fn hint(&self) -> String {
        match self {
            Error::Unverified {
                no_registry: true, ..
            } => "set the `registry-url` input to the registry that holds the repositories (the markers \
                  live there), or set `allow-unverified: true` to promote without the check"
                .into(),
            Error::Unverified { sha, source_env, .. } => format!(
                "deploy `{sha}` to `{source_env}` and let it pass (rollout, smoke tests, watch), then promote \
                 it again; or set `allow-unverified: true` to promote it anyway"
            ),
            Error::GatesMissing {
                sha,
                source_env,
                missing,
                ..
            } => format!(
                "turn on {} for `{source_env}` and deploy `{sha}` there again, or lower this environment's \
                 `promote.require`; or set `allow-unverified: true` to promote it anyway",
                missing
                    .iter()
                    .map(|g| format!("`{g}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Error::NoTag => "set `image-tag` to the git SHA of the release".into(),
            Error::NothingVerified { source_env, .. } => format!(
                "deploy a release to `{source_env}` and let it pass, or name one with `image-tag`"
            ),
            Error::NoRollbackTarget { .. } => {
                "pass `revision:` (a number, `family:revision` or an ARN) to pick the revision yourself"
                    .into()
            }
            Error::Image(e) => crate::error::Diagnose::hint(e),
            Error::Deploy(e) => crate::error::Diagnose::hint(e),
        }
    }

    fn anchor(&self) -> Option<&'static str> {
        match self {
            Error::Unverified { .. } | Error::GatesMissing { .. } => {
                troubleshooting!("promotion-refused-unverified")
            }
            Error::NoRollbackTarget { .. } => troubleshooting!("no-release-to-roll-back-to"),
            Error::Image(e) => crate::error::Diagnose::anchor(e),
            Error::Deploy(e) => crate::error::Diagnose::anchor(e),
            Error::NoTag => None,
            Error::NothingVerified { .. } => troubleshooting!("promotion-refused-unverified"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Diagnose;

    #[test]
    fn an_unverified_promotion_says_how_to_fix_it_for_its_cause() {
        let unverified = |no_registry| Error::Unverified {
            sha: "abc".into(),
            source_env: "stage".into(),
            reason: "r".into(),
            no_registry,
        };
        assert!(unverified(false)
            .hint()
            .starts_with("deploy `abc` to `stage`"));
        let hint = unverified(true).hint();
        assert!(hint.contains("`registry-url`"), "{hint}");
        assert!(hint.contains("allow-unverified"), "{hint}");
    }
}
