//! Why a signal could not be read, and the warning that says so. A leaf of the signals step.

use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

/// Why a signal could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadError {
    /// The role lacks the permission (the IAM action).
    Denied(String),
    /// The resource is not there (a log group never written to).
    NotFound(String),
    Other(String),
}

impl ReadError {
    pub(crate) fn of<E, R>(e: &SdkError<E, R>, action: &str) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug + 'static,
    {
        match crate::aws::code(e) {
            Some(
                "AccessDenied"
                | "AccessDeniedException"
                | "UnauthorizedOperation"
                | "NotAuthorized",
            ) => ReadError::Denied(action.to_string()),
            Some("ResourceNotFoundException") => ReadError::NotFound(crate::aws::describe(e)),
            _ => ReadError::Other(format!("{action}: {}", crate::aws::describe(e))),
        }
    }

    /// The warning for a signal left out because of this error.
    pub(super) fn warning(&self, signal: &str) -> String {
        match self {
            ReadError::Denied(action) => format!(
                "the watch goes on without the {signal}: the role may not call `{action}` (add it to the deploy role's policy, see docs/iam)"
            ),
            ReadError::NotFound(what) => {
                format!("the watch goes on without the {signal}: {what}")
            }
            ReadError::Other(what) => {
                format!("the watch goes on without the {signal}: could not read it: {what}")
            }
        }
    }
}
