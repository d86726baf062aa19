//! Frontend sync (issue #5): the React build to the S3 website bucket, compared by content, HTML entry
//! points last, stale objects deleted after, optional CloudFront invalidation.
//!
//! PLACEHOLDER: signatures are the contract with `run.rs`; bodies are being written.

use serde::Serialize;

use crate::config::Frontend;
use crate::report::Report;
use crate::steps::Clients;

/// Errors of the frontend sync.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Not written yet.
    #[error("the frontend sync is not implemented yet")]
    NotImplemented,
}

impl crate::Diagnose for Error {
    fn hint(&self) -> String {
        String::new()
    }
}

/// What will be uploaded, deleted and left alone (computed read-only).
#[derive(Debug)]
pub struct SyncPlan {}

/// Outcome of the sync, for outputs and the summary.
#[derive(Debug, Default, Serialize)]
pub struct SyncReport {}

impl crate::report::Section for SyncReport {
    fn outputs(&self, _out: &mut Vec<(String, String)>) {}
    fn summary(&self, _md: &mut String) {}
}

/// Read-only: walk the build folder, list the bucket, decide. A missing bucket or access denied fails here.
pub async fn prepare(
    _clients: &Clients,
    _cfg: &Frontend,
    _report: &mut Report,
) -> Result<SyncPlan, Error> {
    Err(Error::NotImplemented)
}

/// Upload, then the HTML entry points, then delete; invalidate CloudFront when configured.
pub async fn apply(
    _clients: &Clients,
    _cfg: &Frontend,
    _plan: SyncPlan,
    _report: &mut Report,
) -> Result<(), Error> {
    Err(Error::NotImplemented)
}
