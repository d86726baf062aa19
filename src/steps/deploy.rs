//! The backend deploy (issue #3): resolve the image by git SHA in ECR, render a new task-definition revision
//! from the live one, update the service, watch the rollout to its end, roll back on failure.
//!
//! PLACEHOLDER: signatures are the contract with `run.rs`; bodies are being written.

use serde::Serialize;

use crate::config::Config;
use crate::report::Report;
use crate::steps::Clients;

/// Errors of the backend deploy.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Not written yet.
    #[error("the backend deploy is not implemented yet")]
    NotImplemented,
}

impl crate::Diagnose for Error {
    fn hint(&self) -> String {
        String::new()
    }
}

/// What the preflight found (all read-only): the image, the service, its current task definition, the
/// plan of what will change. Nothing has been changed when this exists.
#[derive(Debug)]
pub struct Prepared {}

/// What `apply` did: enough to roll back and to watch the service afterwards.
#[derive(Debug)]
pub struct Deployed {
    /// A new revision went live (false for `no-change`): only then is there anything to roll back.
    pub changed: bool,
}

/// Service health for the post-deploy watch.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceHealth {
    /// Running tasks.
    pub running: i32,
    /// Desired tasks.
    pub desired: i32,
    /// Tasks of the new revision that stopped since the last call, with their reasons.
    pub new_stopped: Vec<String>,
}

/// Outcome of the backend deploy, for outputs and the summary.
#[derive(Debug, Default, Serialize)]
pub struct BackendReport {}

impl crate::report::Section for BackendReport {
    fn outputs(&self, _out: &mut Vec<(String, String)>) {}
    fn summary(&self, _md: &mut String) {}
}

/// Preflight, read-only. `expected_digest`: for `promote` (and archives), the digest that will be in the
/// target repository once copied; the target repository is then not asked for the tag.
pub async fn prepare(
    _clients: &Clients,
    _cfg: &Config,
    _expected_digest: Option<&str>,
    _report: &mut Report,
) -> Result<Prepared, Error> {
    Err(Error::NotImplemented)
}

/// Apply the plan: extra tags, register the revision, update the service, wait; on a failed rollout roll
/// back (when enabled). Sets `report.status` (`deployed`, `no-change`, `rolled-back`).
pub async fn apply(
    _clients: &Clients,
    _cfg: &Config,
    _prepared: Prepared,
    _report: &mut Report,
) -> Result<Deployed, Error> {
    Err(Error::NotImplemented)
}

/// Roll the service back to the revision it ran before `deployed` (after failed smoke tests or watch).
pub async fn rollback(
    _clients: &Clients,
    _cfg: &Config,
    _deployed: &Deployed,
    _reason: &str,
    _report: &mut Report,
) -> Result<(), Error> {
    Err(Error::NotImplemented)
}

/// `command: rollback`: go back to the previous (or the given) revision and watch it.
pub async fn rollback_command(
    _clients: &Clients,
    _cfg: &Config,
    _report: &mut Report,
) -> Result<(), Error> {
    Err(Error::NotImplemented)
}

/// Read the service for the post-deploy watch.
pub async fn service_health(
    _clients: &Clients,
    _cfg: &Config,
    _deployed: &Deployed,
) -> Result<ServiceHealth, Error> {
    Err(Error::NotImplemented)
}
