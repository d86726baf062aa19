//! What the traffic sample on the test listener found, and its summary line: a leaf the report and the
//! sample both use.
//!
//! APIs: none.

use std::fmt::Write as _;

use serde::Serialize;

use crate::config::Smoke;
use crate::report::section::{md_code, md_escape};

/// What the sample found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TestSampleReport {
    /// Requests planned (`smoke.test-sample.requests`); 0: the sample is off.
    pub requests: u32,
    /// Answered 5xx, failed (connection, timeout), or not sent within the budget.
    pub bad: u32,
    /// Of `bad`, not sent because `smoke-timeout` was spent.
    pub unsent: u32,
    /// The largest share of bad answers that passes.
    pub max_error_share: f64,
    pub passed: bool,
    /// The paths the requests were spread over.
    pub paths: Vec<String>,
    /// The first bad answers: `GET /path: got ...` (secrets redacted).
    pub examples: Vec<String>,
}

impl TestSampleReport {
    /// The share of bad answers among the planned requests.
    pub fn share(&self) -> f64 {
        if self.requests == 0 {
            0.0
        } else {
            f64::from(self.bad) / f64::from(self.requests)
        }
    }

    /// The report of a sample turned off.
    pub(crate) fn off(cfg: &Smoke) -> TestSampleReport {
        TestSampleReport {
            requests: 0,
            bad: 0,
            unsent: 0,
            max_error_share: cfg.test_sample.max_error_share,
            passed: true,
            paths: Vec::new(),
            examples: Vec::new(),
        }
    }

    /// The summary's lines: the figures, and the first bad answers.
    pub fn summary(&self, md: &mut String) {
        if self.requests == 0 {
            md.push_str("No traffic sample on test traffic (`smoke.test-sample.requests: 0`).\n\n");
            return;
        }
        let paths: Vec<String> = self.paths.iter().map(|p| md_code(p)).collect();
        let _ = writeln!(
            md,
            "{} {} requests on test traffic: {} answered 5xx or failed ({}%), limit {}%{} (GET {}).\n",
            if self.passed { "✅" } else { "❌" },
            self.requests,
            self.bad,
            percent(self.share()),
            percent(self.max_error_share),
            match self.unsent {
                0 => String::new(),
                n => format!("; {n} not sent within `smoke-timeout`"),
            },
            paths.join(", ")
        );
        for e in &self.examples {
            let _ = writeln!(md, "- {}", md_escape(e));
        }
        if !self.examples.is_empty() {
            md.push('\n');
        }
    }
}

/// A share as a percentage with at most one decimal.
pub(crate) fn percent(share: f64) -> String {
    let p = (share * 1000.0).round() / 10.0;
    format!("{p}")
}
