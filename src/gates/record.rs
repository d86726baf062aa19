//! How each gate of a release ended, as the report and the marker record it. A leaf: the report names
//! these types without importing the gate runner.
//!
//! APIs: none.

use serde::Serialize;

/// How a gate ended, as the report and the marker record it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum GateOutcome {
    Passed,
    Failed,
    /// Configured, but not run (for this reason).
    Skipped(String),
    /// Its needs are not configured.
    NotConfigured,
}

/// One gate as the run recorded it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GateRecord {
    pub name: &'static str,
    pub outcome: GateOutcome,
}

impl GateOutcome {
    /// The word the marker records.
    pub fn word(&self) -> &'static str {
        match self {
            GateOutcome::Passed => "passed",
            GateOutcome::Failed => "failed",
            GateOutcome::Skipped(_) => "skipped",
            GateOutcome::NotConfigured => "not-configured",
        }
    }
}
