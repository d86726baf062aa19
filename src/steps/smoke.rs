//! Smoke tests (issue #4): prove the deployed API answers (`/health`, `/products`, CORS), check the
//! website after the frontend sync, and watch the service for a while after the deploy.
//!
//! PLACEHOLDER: signatures are the contract with `run.rs`; bodies are being written.

use serde::Serialize;

use crate::config::Smoke;
use crate::report::Report;

/// Errors of the smoke tests.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Not written yet.
    #[error("smoke tests are not implemented yet")]
    NotImplemented,
}

impl crate::Diagnose for Error {
    fn hint(&self) -> String {
        String::new()
    }
}

/// Outcome of the smoke tests, for outputs and the summary.
#[derive(Debug, Default, Serialize)]
pub struct SmokeReport {}

impl crate::report::Section for SmokeReport {
    fn outputs(&self, _out: &mut Vec<(String, String)>) {}
    fn summary(&self, _md: &mut String) {}
}

/// Run the API checks (and the CORS check) within `cfg.timeout`; `Err` when any failed.
pub async fn run(_cfg: &Smoke, _report: &mut Report) -> Result<(), Error> {
    Err(Error::NotImplemented)
}

/// After the frontend sync: the website URL answers 200 HTML.
pub async fn check_frontend(_cfg: &Smoke, _report: &mut Report) -> Result<(), Error> {
    Err(Error::NotImplemented)
}

/// Keep running the checks and reading the service (through `probe`) for `cfg.watch`; `Err` on a
/// sustained failure.
pub async fn watch<F, Fut>(_cfg: &Smoke, _probe: F, _report: &mut Report) -> Result<(), Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<
        Output = Result<crate::steps::deploy::ServiceHealth, crate::steps::deploy::Error>,
    >,
{
    Err(Error::NotImplemented)
}
