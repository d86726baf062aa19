//! The errors of registry traffic and of local image archives, with their hints: a leaf that the
//! manifest model, the client, the copy and the archive reader all share. No API.

/// A registry operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request did not complete (connection, TLS, timeout).
    #[error("failed to {verb} `{object}`: {message}")]
    Transport {
        /// What was being done (`get manifest`, `upload blob`...).
        verb: &'static str,
        /// The repository, reference or digest.
        object: String,
        /// reqwest's error chain.
        message: String,
    },
    /// The registry answered with an unexpected status.
    #[error("failed to {verb} `{object}`: HTTP {status}: {code}: {message}")]
    Status {
        /// What was being done.
        verb: &'static str,
        /// The repository, reference or digest.
        object: String,
        status: u16,
        /// The registry's error code (`MANIFEST_UNKNOWN`, `DENIED`...), or `-`.
        code: String,
        /// The registry's message.
        message: String,
    },
    /// Bytes that do not hash to the digest they were asked for (or reported with).
    #[error("failed to verify `{object}`: expected digest {expected}, got {actual}")]
    DigestMismatch {
        /// What was checked.
        object: String,
        /// The digest it should have.
        expected: String,
        /// The digest it has.
        actual: String,
    },
    /// A manifest that cannot be copied (bad JSON, unknown type, too big, too deep).
    #[error("failed to read manifest `{object}`: {message}")]
    Manifest {
        /// The manifest reference.
        object: String,
        /// What is wrong.
        message: String,
    },
    /// A reply larger than the bound this crate reads.
    #[error("failed to {verb} `{object}`: the registry sent more than {limit} bytes")]
    TooLarge {
        verb: &'static str,
        object: String,
        /// The bound, in bytes.
        limit: usize,
    },
    /// A manifest the copy needs is not in the source.
    #[error("failed to find manifest `{0}` in the source")]
    MissingManifest(String),
    /// The local archive could not be read.
    #[error(transparent)]
    Archive(#[from] ArchiveError),
}

impl crate::error::Diagnose for Error {
    fn hint(&self) -> String {
        match self {
            Error::Transport { .. } => "check that the registry is reachable from the runner (and `registry-url`, if set); the copy is safe to re-run".into(),
            Error::Status { status: 401 | 403, .. } => "the role needs ecr:GetAuthorizationToken, ecr:BatchGetImage and ecr:GetDownloadUrlForLayer on the source repository, and ecr:BatchCheckLayerAvailability, ecr:InitiateLayerUpload, ecr:UploadLayerPart, ecr:CompleteLayerUpload and ecr:PutImage on the target (cross-account: a repository policy on the source)".into(),
            Error::Status { status: 404, .. } => "the repository or image is not in the registry: check the repository names and `registry-url`".into(),
            Error::Status { .. } => "the registry refused the request; the copy is idempotent, so re-running the job is safe".into(),
            Error::TooLarge { .. } => "the registry sent far more than a registry sends; check `registry-url` and what answers there".into(),
            Error::DigestMismatch { .. } => "the bytes changed in transit or in the source; re-run, and if it persists check the source image".into(),
            Error::Manifest { .. } | Error::MissingManifest(_) => "the source image is not a well-formed OCI/Docker image; push it again from the build".into(),
            Error::Archive(e) => e.hint(),
        }
    }

    fn anchor(&self) -> Option<&'static str> {
        troubleshooting!("promotion-failed")
    }
}

/// An archive that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// Reading failed.
    #[error("failed to read image archive `{path}`: {message}")]
    Io { path: String, message: String },
    /// Not an OCI layout or docker-save archive, or an inconsistent one.
    #[error("failed to read image archive `{path}`: {message}")]
    Format {
        path: String,
        /// What is wrong.
        message: String,
    },
}

impl crate::error::Diagnose for ArchiveError {
    fn hint(&self) -> String {
        match self {
            ArchiveError::Io { .. } => "check that `image-archive` names a file or directory the build step wrote into the workspace".into(),
            ArchiveError::Format { .. } => "write the archive with `docker save -o image.tar IMAGE`, `docker buildx build --output type=oci,dest=image.tar`, or `skopeo copy ... oci:DIR:TAG`".into(),
        }
    }
}
