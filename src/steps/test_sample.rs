//! The traffic sample on the test listener: after the checks pass at a `POST_TEST_TRAFFIC_SHIFT` pause,
//! `smoke.test-sample.requests` GET requests spread over the read-only checks' paths, a few at a time,
//! none retried. Checks retry until they pass, so a version failing one request in five passes them;
//! the share of 5xx answers and failed requests here is what catches it before production.
//!
//! APIs: plain HTTP(S) to the test listener (the smoke tests' client and redaction).

use futures::StreamExt;
use tokio::time::Instant;

use crate::config::Smoke;
use crate::steps::smoke::check::{self, Check, Kind};
use crate::steps::smoke::sample_report::percent;
pub use crate::steps::smoke::TestSampleReport;
use crate::steps::smoke::{deadline_after, display_url, Api, Error};

/// Requests in flight at once: enough to finish a hundred in seconds, few enough that the sample is
/// not a load test of one new task.
const CONCURRENCY: usize = 4;

/// Bad answers the report keeps as examples.
const EXAMPLES: usize = 5;

/// The error of a failed sample.
fn failure(report: &TestSampleReport, url: String) -> Error {
    Error::Sample {
        url,
        requests: report.requests,
        bad: report.bad,
        share: percent(report.share()),
        limit: percent(report.max_error_share),
    }
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
    let deadline = deadline_after(Instant::now(), cfg.timeout);
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
    let err = (!report.passed).then(|| failure(&report, display_url(&api.base)));
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
