//! Promotion (issue #6): resolve the tested image in the source environment's repository and copy it into
//! the target repository by digest (manifest byte for byte), or push an OCI/docker archive from the
//! workspace.
//!
//! PLACEHOLDER: signatures are the contract with `run.rs`; bodies are being written.

use serde::Serialize;

use crate::config::Config;
use crate::report::Report;
use crate::steps::Clients;

/// Errors of the promotion.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Not written yet.
    #[error("promotion is not implemented yet")]
    NotImplemented,
}

impl crate::Diagnose for Error {
    fn hint(&self) -> String {
        String::new()
    }
}

/// The image to bring into the target repository (resolved read-only).
#[derive(Debug)]
pub struct SourceImage {
    /// Its manifest digest (`sha256:...`): what the target will run.
    pub digest: String,
}

/// Outcome of the promotion, for outputs and the summary.
#[derive(Debug, Default, Serialize)]
pub struct PromoteReport {}

impl crate::report::Section for PromoteReport {
    fn outputs(&self, _out: &mut Vec<(String, String)>) {}
    fn summary(&self, _md: &mut String) {}
}

/// Read-only: find the tag in the source repository (or read the archive) and take its digest.
pub async fn resolve_source(
    _clients: &Clients,
    _cfg: &Config,
    _report: &mut Report,
) -> Result<SourceImage, Error> {
    Err(Error::NotImplemented)
}

/// Copy the image into the target repository under the tag (plus extra tags), keeping the digest.
pub async fn copy(
    _clients: &Clients,
    _cfg: &Config,
    _source: &SourceImage,
    _report: &mut Report,
) -> Result<(), Error> {
    Err(Error::NotImplemented)
}
