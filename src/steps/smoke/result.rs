//! What a check's requests got: the types both the requests (`check`) and the report (`report`) are
//! made of, so neither imports the other.
//!
//! APIs: none.

use serde::Serialize;

/// One request of a check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attempt {
    /// The HTTP status, when a reply came.
    pub status: Option<u16>,
    /// Time to the full (capped) body, or to the failure.
    pub latency_ms: u64,
    /// Did it meet every expectation?
    pub passed: bool,
    /// What came back, in words (secrets redacted).
    pub got: String,
}

/// A check and all its attempts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckResult {
    pub name: String,
    pub method: String,
    /// URL, without userinfo.
    pub url: String,
    /// The expectation, in words.
    pub expected: String,
    /// What the last attempt got.
    pub got: String,
    /// Did it pass in the end?
    pub passed: bool,
    /// Every attempt, in order.
    pub attempts: Vec<Attempt>,
}

/// What became of one step of a write sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepOutcome {
    Passed,
    Failed,
    /// Skipped: an earlier step failed, or (a cleanup step) what it needs was never captured.
    NotRun,
}

/// One step of a write sequence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepResult {
    pub name: String,
    pub method: String,
    /// The path as configured, placeholders unfilled: a captured value is never printed.
    pub path: String,
    /// A cleanup step (runs after a failure too).
    pub cleanup: bool,
    pub outcome: StepOutcome,
    /// The HTTP status of the last attempt, when a reply came.
    pub status: Option<u16>,
    /// The expectation, in words (placeholders unfilled).
    pub expected: String,
    /// What the step got, or why it did not run (secrets redacted).
    pub got: String,
    /// The names this step captured (never their values).
    pub captured: Vec<String>,
    /// Requests sent (more than one only when the connection could not be made).
    pub attempts: u32,
    pub latency_ms: u64,
}

/// A write sequence and its steps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SequenceResult {
    pub name: String,
    /// Every step that ran passed, and no step was left out.
    pub passed: bool,
    /// Cleanup steps configured.
    pub cleanup_steps: u32,
    /// Cleanup steps that ran (passed or failed).
    pub cleanup_ran: u32,
    /// The requests of the cleanup steps that failed, filled (`DELETE /products/4`, secrets redacted):
    /// what the sequence left behind, to delete by hand.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub left_behind: Vec<String>,
    /// This run's `{unique}` value (the created names contain it), when something was left behind.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unique: Option<String>,
    pub steps: Vec<StepResult>,
}

impl SequenceResult {
    /// The first failed step.
    pub fn failed_step(&self) -> Option<&StepResult> {
        self.steps.iter().find(|s| s.outcome == StepOutcome::Failed)
    }

    pub(super) fn compact(&self) -> serde_json::Value {
        let mut v = serde_json::json!({
            "name": self.name,
            "passed": self.passed,
            "steps": self.steps.len(),
            "failed_step": self.failed_step().map(|s| s.name.clone()),
            "cleanup_steps": self.cleanup_steps,
            "cleanup_ran": self.cleanup_ran,
        });
        if !self.left_behind.is_empty() {
            v["left_behind"] = self.left_behind.clone().into();
        }
        v
    }

    /// The failed cleanup in words (`DELETE /products/4`, this run's `{unique}`), if any.
    pub fn left_behind_text(&self) -> Option<String> {
        if self.left_behind.is_empty() {
            return None;
        }
        let mut t = self.left_behind.join(", ");
        if let Some(u) = &self.unique {
            t.push_str(&format!(" (this run's {{unique}} is {u})"));
        }
        Some(t)
    }
}

/// Median (nearest rank, lower) and maximum of some latencies.
pub fn p50_max(latencies: impl IntoIterator<Item = u64>) -> (u64, u64) {
    let mut v: Vec<u64> = latencies.into_iter().collect();
    if v.is_empty() {
        return (0, 0);
    }
    v.sort_unstable();
    (v[(v.len() - 1) / 2], v[v.len() - 1])
}

impl CheckResult {
    /// p50 and max latency over the attempts, in ms.
    pub fn latency(&self) -> (u64, u64) {
        p50_max(self.attempts.iter().map(|a| a.latency_ms))
    }

    pub(super) fn compact(&self) -> serde_json::Value {
        let (p50, max) = self.latency();
        serde_json::json!({
            "name": self.name,
            "url": self.url,
            "expected": self.expected,
            "got": self.got,
            "attempts": self.attempts.len(),
            "p50_ms": p50,
            "max_ms": max,
            "passed": self.passed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        assert_eq!(p50_max([]), (0, 0));
        assert_eq!(p50_max([7]), (7, 7));
        assert_eq!(p50_max([30, 10, 20]), (20, 30));
        assert_eq!(p50_max([40, 10, 20, 30]), (20, 40));
    }
}
