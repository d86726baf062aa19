//! Errors of the frontend sync, shared by every stage (walking the build, S3, CloudFront), with the hint
//! for each. No AWS API.

use std::path::PathBuf;

use super::state;

/// Errors of the frontend sync.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The build folder is missing or unreadable.
    #[error("failed to read the frontend folder `{}`: {message}", dir.display())]
    Dir { dir: PathBuf, message: String },
    /// A file or folder inside the build could not be read.
    #[error("failed to read `{}`: {message}", path.display())]
    Walk { path: PathBuf, message: String },
    /// A symbolic link leads out of the build folder (or the build folder out of the workspace).
    #[error("refusing to follow `{}`: the symbolic link points to `{}`, outside `{}`", link.display(), target.display(), root.display())]
    SymlinkEscapes {
        link: PathBuf,
        /// Where it leads.
        target: PathBuf,
        /// The build folder.
        root: PathBuf,
    },
    /// A file name that is not UTF-8 cannot become an S3 key faithfully.
    #[error("failed to name `{}` as an S3 key: the file name is not UTF-8", path.display())]
    NotUtf8 { path: PathBuf },
    /// Nothing to upload: syncing would empty the website.
    #[error("failed to sync `{}`: the folder holds no file to upload", dir.display())]
    EmptyBuild { dir: PathBuf },
    /// The bucket does not exist.
    #[error("failed to list `s3://{bucket}`: NoSuchBucket: the bucket does not exist")]
    NoSuchBucket { bucket: String },
    /// The credentials may not read (or write) the bucket.
    #[error("failed to {verb} `{object}`: {detail}")]
    AccessDenied {
        /// `list`, `read`, `upload`, `delete`.
        verb: &'static str,
        /// `s3://bucket/key`.
        object: String,
        /// AWS code and message.
        detail: String,
    },
    /// Any other failed S3 or CloudFront call.
    #[error("failed to {verb} `{object}`: {detail}")]
    Aws {
        /// What was being done.
        verb: &'static str,
        /// On what.
        object: String,
        /// AWS code and message.
        detail: String,
    },
    /// The sync state (the ledger a rollback reads) could not be recorded: the sync is not done.
    #[error("failed to write the sync state `{object}`: {detail}")]
    State {
        /// `s3://bucket/key`.
        object: String,
        /// AWS code and message.
        detail: String,
    },
    /// A restore (or an earlier run's unfinished restore or cleanup) went on past its failures; every
    /// one is in `errors`, the journal keeps what is left.
    #[error("failed to finish the {what}: {} step(s) failed ({}){}", errors.len(), first(errors), more(errors))]
    Restore {
        what: &'static str,
        /// `s3://bucket/<prefix>.cloudshop-deploy/pending.json`.
        journal: String,
        errors: Vec<Error>,
    },
    /// A placeholder is left after substitution, or staging failed.
    #[error(transparent)]
    Values(#[from] super::values::Error),
    /// A build file has the name of the sync state object.
    #[error("failed to upload `{}`: its name is reserved for the sync state (`{}`)", path.display(), state::STATE_NAME)]
    Reserved { path: PathBuf },
    /// A deploy has a frontend bucket but no build folder.
    #[error("failed to sync the frontend: no `frontend-dir` (and no artifact to sync from)")]
    NoFolder,
    /// The frontend artifact of a release is not in the repository.
    #[error("failed to find the frontend artifact `{repo}:{tag}`: the registry does not have it")]
    ArtifactMissing {
        repo: String,
        tag: String,
        /// The environment that should have published it.
        environment: String,
    },
    /// The commit's frontend was published before with other files, and the tag cannot move.
    #[error("failed to publish the frontend as `{repo}:{tag}`: the tag already holds {existing} (this build is {wanted}) and the repository's tags are immutable")]
    ArtifactImmutable {
        repo: String,
        tag: String,
        existing: String,
        wanted: String,
    },
    /// Packing, reading or unpacking the artifact.
    #[error(transparent)]
    Artifact(#[from] crate::registry::artifact::Error),
    /// Registry traffic of the artifact.
    #[error(transparent)]
    Registry(#[from] crate::registry::Error),
    /// Finding the repository or its token.
    #[error(transparent)]
    Image(#[from] crate::steps::image::Error),
    /// The CloudFront distribution does not exist.
    #[error(
        "failed to read `{id}`: NoSuchDistribution: the CloudFront distribution does not exist"
    )]
    NoSuchDistribution { id: String },
}

fn first(errors: &[Error]) -> String {
    errors.first().map(Error::to_string).unwrap_or_default()
}

fn more(errors: &[Error]) -> String {
    match errors.len() {
        0 | 1 => String::new(),
        n => format!(" and {} more, listed in the summary", n - 1),
    }
}

impl Error {
    /// Every problem of a [`Error::Restore`], for the caller to put beneath the failure that caused
    /// the restore; empty for any other error.
    pub fn problems(&self) -> &[Error] {
        match self {
            Error::Restore { errors, .. } => errors,
            _ => &[],
        }
    }
}

impl crate::error::Diagnose for Error {
    fn hint(&self) -> String {
        match self {
            Error::Dir { .. } => {
                "build the frontend first (`npm ci && npm run build`) and point `frontend-dir` at the output folder".into()
            }
            Error::Walk { .. } => "check the permissions of the build output".into(),
            Error::SymlinkEscapes { .. } => {
                "copy the file into the build folder instead of linking to it, or exclude the link with `frontend-exclude`".into()
            }
            Error::NotUtf8 { .. } => "rename the file, or exclude it with `frontend-exclude`".into(),
            Error::EmptyBuild { .. } => {
                "the build produced no files (or `frontend-exclude` excludes all of them); check the build step and `frontend-dir`".into()
            }
            Error::NoSuchBucket { bucket } => format!(
                "create the bucket `{bucket}` (the infrastructure stack does this) or fix `frontend-bucket`"
            ),
            Error::AccessDenied { .. } => {
                "grant the deploy role s3:ListBucket on the bucket and s3:GetObject, s3:PutObject, s3:DeleteObject on its objects".into()
            }
            Error::Aws { .. } => "the AWS error above says what failed; re-run the job if it was transient".into(),
            Error::State { .. } => "without its sync state a later `command: rollback` would restore the wrong release, so the sync counts as failed (rolled back with `rollback-on-failure`); check s3:PutObject on `.cloudshop-deploy/` under the prefix and re-run the job".into(),
            Error::Restore { journal, .. } => format!(
                "`{journal}` keeps what is left: the next deploy or `command: rollback` finishes it first; fix the cause above and re-run"
            ),
            Error::Reserved { .. } => "exclude it with `frontend-exclude` or rename it".into(),
            Error::Values(e) => e.hint(),
            Error::NoSuchDistribution { .. } => "fix `cloudfront-distribution-id` (the ID, e.g. `E2QWRUHAPOMQZL`, not the domain name)".into(),
            Error::NoFolder => "build the frontend and set `frontend-dir` (or `frontend.dir`) to the output folder".into(),
            Error::ArtifactMissing { environment, tag, .. } => format!(
                "deploy this commit to `{environment}` first: a deploy with `frontend-dir` publishes the build as `{tag}`; an environment that builds its own frontend sets `frontend.artifact: false` and `frontend.dir`"
            ),
            Error::ArtifactImmutable { .. } => "an earlier run published this commit's frontend with a different build: deploy the build that was published (re-run that run), or make the build reproducible; `frontend.artifact: false` deploys without publishing".into(),
            Error::Artifact(e) => e.hint(),
            Error::Registry(e) => crate::error::Diagnose::hint(e),
            Error::Image(e) => crate::error::Diagnose::hint(e),
        }
    }

    fn anchor(&self) -> Option<&'static str> {
        match self {
            Error::AccessDenied { .. } => troubleshooting!("access-denied-on-an-aws-operation"),
            Error::Aws { detail, .. } | Error::State { detail, .. } => {
                crate::error::aws_anchor(detail)
            }
            Error::NoSuchDistribution { .. } => None,
            _ => troubleshooting!("frontend-bucket-or-folder"),
        }
    }
}
