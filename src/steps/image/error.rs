//! Errors of finding, tagging and copying images, worded by whose repository they are about, with the
//! hint for each: a leaf that every image stage shares. No AWS API.

use crate::registry;

/// Whose repository an error is about: the wording and the fix differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The environment's own repository, in a plain deploy.
    Deploy,
    /// The source environment's repository, in a promotion.
    Source,
    /// The repository a promotion or an archive push writes to.
    Target,
}

/// Errors of finding, tagging and copying images.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An ECR call failed.
    #[error("failed to {verb} `{object}`: {detail}")]
    Aws {
        verb: &'static str,
        object: String,
        /// `<AWS code>: <message>`.
        detail: String,
        /// The permission or the setting to check.
        hint: &'static str,
    },
    /// The repository does not exist.
    #[error("failed to find ECR repository `{repo}`: {detail}")]
    RepositoryNotFound {
        repo: String,
        /// `<AWS code>[: <message>]`.
        detail: String,
        role: Role,
    },
    /// No tag to deploy.
    #[error("no `image-tag` to deploy")]
    NoImageTag,
    /// The tag is not in the repository.
    #[error("{}", image_not_found(.repo, .tag, .newest, *.role))]
    ImageNotFound {
        repo: String,
        tag: String,
        /// The newest tags there, newest first.
        newest: Vec<String>,
        role: Role,
    },
    /// Extra tags of a plain deploy already name another image in an immutable repository.
    #[error("failed to tag image `{repo}:{tag}`: ImageTagAlreadyExistsException: the repository's tags are immutable and `{tag}` already names another image")]
    TagTaken {
        repo: String,
        /// One tag, or several joined with `, `.
        tag: String,
    },
    /// A promotion would have to move a tag of an immutable target repository.
    #[error("failed to tag `{repo}:{tag}`: ImageTagAlreadyExistsException: the repository is immutable and the tag points at {existing}, not {wanted}")]
    TagImmutable {
        repo: String,
        tag: String,
        /// The digest the tag has.
        existing: String,
        /// The digest being promoted.
        wanted: String,
    },
    /// The config does not say what to promote.
    #[error("failed to resolve the image to promote: {0}")]
    NoSource(&'static str),
    /// `registry-url` (or a repository URI's host) is not a URL.
    #[error("invalid `registry-url` `{url}`: {message}")]
    RegistryUrl { url: String, message: String },
    /// Registry traffic failed.
    #[error(transparent)]
    Registry(#[from] registry::Error),
}

/// ECR answered with a digest that is not `sha256:` + 64 lowercase hex.
pub(super) fn not_a_digest(verb: &'static str, object: String, digest: &str) -> Error {
    Error::Aws {
        verb,
        object,
        detail: format!(
            "ECR returned `{}`, not a digest of the form `sha256:` + 64 lowercase hex",
            digest.escape_debug()
        ),
        hint: "check the ECR endpoint the action talks to (`AWS_ENDPOINT_URL_ECR`); ECR itself only returns sha256 digests",
    }
}

fn image_not_found(repo: &str, tag: &str, newest: &[String], role: Role) -> String {
    match role {
        Role::Deploy if newest.is_empty() => format!(
            "failed to find image `{repo}:{tag}` in ECR: ImageNotFoundException (the repository has no tagged images)"
        ),
        Role::Deploy => format!(
            "failed to find image `{repo}:{tag}` in ECR: ImageNotFoundException (newest tags: {})",
            newest.join(", ")
        ),
        Role::Source | Role::Target => format!(
            "failed to find image `{repo}:{tag}` in the source repository: no such tag (newest tags: {})",
            if newest.is_empty() {
                "none".to_string()
            } else {
                newest.join(", ")
            }
        ),
    }
}

impl crate::error::Diagnose for Error {
    fn hint(&self) -> String {
        match self {
            Error::Aws { hint, .. } => (*hint).into(),
            Error::RepositoryNotFound { repo, role: Role::Deploy, .. } => format!("create the repository `{repo}` (Terraform) or fix `ecr-repository`"),
            Error::RepositoryNotFound { role: Role::Source, .. } => "check `ecr-repository` of the source environment (`promote-from` / `source-environment`) and its region".into(),
            Error::RepositoryNotFound { role: Role::Target, .. } => "create the target repository (or fix `ecr-repository` of the environment) before promoting".into(),
            Error::NoImageTag => "set `image-tag` (default: the commit SHA)".into(),
            Error::ImageNotFound { role: Role::Deploy, .. } => "push the image (tagged with the commit SHA) in an earlier step, or set `image-tag` to one of the tags listed".into(),
            Error::ImageNotFound { .. } => "promote a tag that was deployed to the source environment (the git SHA of that deploy); the newest tags are listed above".into(),
            Error::TagTaken { tag, .. } => format!("drop `{tag}` from `extra-tags`, or make the repository's tags mutable"),
            Error::TagImmutable { .. } => "an immutable tag cannot move: promote a new tag, or remove it from `extra-tags`".into(),
            Error::NoSource(_) => "set `command: promote` with `source-environment` (or `promote-from` in the environments file), or `image-archive`".into(),
            Error::RegistryUrl { .. } => "set `registry-url` to the registry's base URL, e.g. `https://123456789012.dkr.ecr.us-east-1.amazonaws.com`".into(),
            Error::Registry(e) => e.hint(),
        }
    }

    fn anchor(&self) -> Option<&'static str> {
        match self {
            Error::RepositoryNotFound { .. } => troubleshooting!("ecr-repository-not-found"),
            Error::NoImageTag | Error::ImageNotFound { .. } => troubleshooting!("image-not-found"),
            Error::TagTaken { .. } | Error::TagImmutable { .. } => {
                troubleshooting!("tag-immutable")
            }
            Error::RegistryUrl { .. } | Error::Registry { .. } => {
                troubleshooting!("promotion-failed")
            }
            Error::Aws { detail, .. } => crate::error::aws_anchor(detail),
            Error::NoSource { .. } => None,
        }
    }
}
