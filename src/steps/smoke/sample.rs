//! The traffic sample on the test listener: after the checks pass at a `POST_TEST_TRAFFIC_SHIFT` pause,
//! `smoke.test-sample.requests` GET requests spread over the read-only checks' paths, a few at a time,
//! none retried. Checks retry until they pass, so a version failing one request in five passes them;
//! the share of 5xx answers and failed requests here is what catches it before production.
//!
//! APIs: plain HTTP(S) to the test listener (the smoke tests' client and redaction).

use std::fmt::Write as _;

use futures::StreamExt;
use serde::Serialize;
use tokio::time::Instant;

use super::check::{self, Check, Kind};
use super::{display_url, Api, Error};
use crate::config::Smoke;
use crate::report::section::{md_code, md_escape};

/// Requests in flight at once: enough to finish a hundred in seconds, few enough that the sample is
/// not a load test of one new task.
const CONCURRENCY: usize = 4;

/// Bad answers the report keeps as examples.
const EXAMPLES: usize = 5;

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
    fn off(cfg: &Smoke) -> TestSampleReport {
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

    /// The error of a failed sample.
    fn error(&self, url: String) -> Error {
        Error::Sample {
            url,
            requests: self.requests,
            bad: self.bad,
            share: percent(self.share()),
            limit: percent(self.max_error_share),
        }
    }
}

/// A share as a percentage with at most one decimal.
fn percent(share: f64) -> String {
    let p = (share * 1000.0).round() / 10.0;
    format!("{p}")
}

/// The GET checks of the API (never a write sequence, never the CORS preflight).
fn targets(api: &Api) -> Vec<&Check> {
    api.checks
        .iter()
        .filter(|c| c.kind == Kind::Api && c.method == reqwest::Method::GET)
        .collect()
}

/// Send the sample to `cfg.base_url` (the test listener); `Err` when the share of bad answers is above
/// the limit. The report is returned either way, so the summary shows the figures.
pub async fn run(cfg: &Smoke) -> (TestSampleReport, Result<(), Error>) {
    let n = cfg.test_sample.requests;
    if n == 0 {
        tracing::info!("traffic sample on test traffic skipped: `smoke.test-sample.requests: 0`");
        return (TestSampleReport::off(cfg), Ok(()));
    }
    let api = match Api::prepare(cfg) {
        Ok(a) => a,
        Err(e) => return (TestSampleReport::off(cfg), Err(e)),
    };
    let checks = targets(&api);
    if checks.is_empty() {
        // Nothing read-only to sample: the checks alone judged the version.
        return (TestSampleReport::off(cfg), Ok(()));
    }
    let deadline = super::deadline_after(Instant::now(), cfg.timeout);
    let answers: Vec<Option<(usize, check::Exchange)>> =
        futures::stream::iter((0..n as usize).map(|i| {
            let k = i % checks.len();
            let c = checks[k];
            let api = &api;
            async move {
                if Instant::now() >= deadline {
                    return None;
                }
                let e = check::exchange(&api.client, c, cfg.request_timeout, &api.redact).await;
                Some((k, e))
            }
        }))
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let mut report = TestSampleReport {
        requests: n,
        bad: 0,
        unsent: 0,
        max_error_share: cfg.test_sample.max_error_share,
        passed: true,
        paths: checks.iter().map(|c| c.url.path().to_string()).collect(),
        examples: Vec::new(),
    };
    for a in &answers {
        match a {
            None => {
                report.unsent += 1;
                report.bad += 1;
            }
            Some((_, e)) if e.attempt.status.is_some_and(|s| s < 500) => {}
            Some((i, e)) => {
                report.bad += 1;
                if report.examples.len() < EXAMPLES {
                    let c = checks[*i];
                    report
                        .examples
                        .push(format!("GET {}: got {}", c.display_url, e.attempt.got));
                }
            }
        }
    }
    report.passed = report.share() <= report.max_error_share;
    tracing::info!(
        requests = n,
        bad = report.bad,
        unsent = report.unsent,
        share = report.share(),
        limit = report.max_error_share,
        "traffic sample on test traffic"
    );
    let err = (!report.passed).then(|| report.error(display_url(&api.base)));
    (report, err.map_or(Ok(()), Err))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(requests: u32, bad: u32, passed: bool) -> TestSampleReport {
        TestSampleReport {
            requests,
            bad,
            unsent: 0,
            max_error_share: 0.01,
            passed,
            paths: vec!["/health".into(), "/products".into()],
            examples: if bad > 0 {
                vec!["GET http://127.0.0.1:PORT/products: got 500".into()]
            } else {
                Vec::new()
            },
        }
    }

    #[test]
    fn the_summary_line_gives_the_figures_and_the_limit() {
        let mut md = String::new();
        report(100, 19, false).summary(&mut md);
        report(100, 0, true).summary(&mut md);
        report(0, 0, true).summary(&mut md);
        insta::assert_snapshot!(md);
    }

    #[test]
    fn percentages_keep_one_decimal() {
        assert_eq!(percent(0.19), "19");
        assert_eq!(percent(0.01), "1");
        assert_eq!(percent(1.0 / 3.0), "33.3");
        assert_eq!(percent(0.0), "0");
    }
}
