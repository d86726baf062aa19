//! Smoke tests: prove the deployed API answers (`/health`, `/products`, CORS) and check the website
//! after the frontend sync. The post-deploy watch (`steps::watch`) sends the same API checks, one
//! smoke round at a time, through [`Api`].
//!
//! APIs: plain HTTP(S) to the app (reqwest, rustls with embedded roots).
//!
//! - [`run`]: every check concurrently, each retried with jittered backoff until it passes or
//!   `smoke-timeout` is spent. Each attempt is cut off after `smoke.request-timeout`, and no attempt starts
//!   after the budget, so a hung endpoint costs at most the budget plus one request timeout.
//!   Then, where `smoke.write` allows, the write sequences (`sequence`): steps in order, each sent once,
//!   cleanup steps also after a failure.
//! - [`check_frontend`]: the website answers 200 with HTML (same retry rules).
//!
//! Each function writes only its own [`SmokeReport`] and the run's [`Timeline`].
//!
//! A URL's userinfo is never printed, and configured request-header values are masked (`::add-mask::`)
//! before the first request and blanked out of everything the report keeps.

pub(crate) mod check;
mod redact;
mod redirect;
mod report;
mod result;
pub(crate) mod sample_report;
pub mod schedule;
mod sequence;

use tokio::time::Instant;
use url::Url;

pub use check::MAX_REDIRECTS;
pub use redact::{display_url, Redactor};
pub use report::{
    BadRound, OnTestTraffic, SmokeReport, SmokeStatus, WatchReport, WatchStat, WritePlan,
};
pub(crate) use result::p50_max;
pub use result::{Attempt, CheckResult, SequenceResult, StepOutcome, StepResult};
pub use sample_report::TestSampleReport;
pub use sequence::CONNECT_ATTEMPTS;

use crate::config::Smoke;
use crate::github::commands;
use crate::report::section::{Outcome, Timeline};
use check::Check;

/// The path the CORS preflight is sent for: the frontend's first call.
const CORS_PATH: &str = "/products";

/// Errors of the smoke tests.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No URL to test.
    #[error("failed to run smoke tests: no URL to test")]
    NoUrl,
    /// A check cannot be sent (config validation should have caught it).
    #[error("failed to prepare smoke check `{name}`: {message}")]
    Invalid {
        name: String,
        /// What is wrong (names no secret).
        message: String,
    },
    /// The HTTP client could not be built.
    #[error("failed to build the HTTP client for the smoke tests: {0}")]
    Client(String),
    /// Checks failed within the budget.
    #[error("failed to verify `{url}`: {failed} of {total} smoke checks failed: {details}")]
    Checks {
        /// Base URL (no userinfo).
        url: String,
        /// Failed checks.
        failed: usize,
        /// All checks.
        total: usize,
        /// `name: got (n attempts)` per failed check.
        details: String,
        /// The CORS check is the only failure: the origin, for the hint.
        cors_only: Option<String>,
        /// No failed check got any HTTP answer (DNS, connection, timeouts): a reachability problem.
        unreachable: bool,
    },
    /// Too many requests of the traffic sample answered 5xx or failed (none is retried).
    #[error("failed to verify `{url}` on test traffic: {bad} of {requests} requests answered 5xx or failed ({share}%), limit {limit}%")]
    Sample {
        /// Base URL (no userinfo).
        url: String,
        requests: u32,
        bad: u32,
        /// Percentages, as the summary prints them.
        share: String,
        limit: String,
    },
    /// The website did not serve HTML.
    #[error("failed to verify the website `{url}`: got {got} after {attempts} attempts")]
    Website {
        /// Website URL (no userinfo).
        url: String,
        /// The last answer.
        got: String,
        /// Attempts made.
        attempts: usize,
    },
    /// A write sequence failed (its cleanup steps still ran).
    #[error("failed to write through `{url}`: sequence `{sequence}` failed at step `{step}`: got {got}; cleanup: {cleanup}")]
    Sequence {
        /// Base URL (no userinfo).
        url: String,
        sequence: String,
        /// The first failed step's name.
        step: String,
        /// What it got (secrets redacted).
        got: String,
        /// `ran 1 of 1 step` / `none configured`.
        cleanup: String,
    },
}

impl crate::error::Diagnose for Error {
    fn hint(&self) -> String {
        match self {
            Error::NoUrl => "set `api-url` for the environment, `smoke.url`, or the `smoke-url` input (or `smoke-tests: false`)".into(),
            Error::Invalid { .. } => "fix the check under `smoke.checks` in the environments file".into(),
            Error::Client(_) => "this is a bug in cloudshop-deploy; please report it with the log".into(),
            Error::Checks { cors_only: Some(origin), .. } => format!(
                "the API does not allow the website origin `{origin}`: add it to the backend's CORS allowed origins (FastAPI `CORSMiddleware(allow_origins=[...])`), or set `smoke.cors` to the right origin or `false`"
            ),
            Error::Checks { unreachable: true, url, .. } => format!(
                "nothing answered at `{url}`: check the URL (`api-url`, `smoke.url` or `smoke-url`), the load balancer's listener and security group, and that the runner can reach it (an internal load balancer needs a self-hosted runner in its network)"
            ),
            Error::Checks { .. } => "the new version does not answer as expected: the job summary lists every attempt; read the service's logs (or fix `smoke.checks` if a check is wrong, or raise `smoke-timeout` if it starts slowly)".into(),
            Error::Sample { .. } => "the new version fails some requests, which checks that retry do not show: read the service's logs for the failing requests (or raise `smoke.test-sample.max-error-share` if this share is expected)".into(),
            Error::Website { .. } => "check the bucket's static website hosting (index document) and that `index.html` was uploaded with `Content-Type: text/html`".into(),
            Error::Sequence { .. } => "the new version answers reads but not this write: look for a database user without INSERT/UPDATE/DELETE rights, a migration that did not run, or a full disk in the service's logs; the summary lists each step (fix the sequence under `smoke.sequences` if a step is wrong)".into(),
        }
    }

    fn anchor(&self) -> Option<&'static str> {
        match self {
            Error::Client(_) => None,
            Error::Sequence { .. } => troubleshooting!("write-sequence-failed"),
            _ => troubleshooting!("smoke-tests-failed"),
        }
    }
}

/// Mask every secret the smoke config holds (before anything could print it) and return the redactor
/// for the texts the report keeps.
fn protect(cfg: &Smoke) -> Redactor {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    protect_to(cfg, &mut out)
}

/// [`protect`], writing the `::add-mask::` commands to `out`.
fn protect_to(cfg: &Smoke, out: &mut impl std::io::Write) -> Redactor {
    let mut r = Redactor::default();
    for url in cfg.base_url.iter().chain(cfg.website_url.iter()) {
        r.add_userinfo(url);
    }
    for c in all_specs(cfg) {
        // Config accepted only visible ASCII values, so each has a text form. A write step's value with
        // a `{name}` placeholder is masked as written here, and filled when its step is sent.
        for v in c.headers.values().filter_map(|v| v.to_str().ok()) {
            r.add(v);
        }
    }
    for s in r.secrets() {
        // A failed write means stdout is gone: nothing can print the secret either.
        let _ = commands::write_mask(out, s);
    }
    r
}

/// Every configured check: the read-only ones and the steps of the write sequences.
fn all_specs(cfg: &Smoke) -> impl Iterator<Item = &crate::config::CheckSpec> {
    cfg.checks.iter().chain(
        cfg.writes
            .sequences
            .iter()
            .flat_map(|s| s.steps.iter().map(|st| &st.check)),
    )
}

/// The client of the smoke tests: rustls (webpki roots), at most [`MAX_REDIRECTS`] redirects (never from
/// https to http, never to a link-local or metadata address, none to another origin when a check sends
/// configured headers), a connect timeout. The per-request bound is
/// applied around each whole exchange (see `check::attempt`).
fn client(cfg: &Smoke) -> Result<reqwest::Client, Error> {
    reqwest::Client::builder()
        .user_agent(format!("{} (smoke test)", crate::aws::USER_AGENT))
        .redirect(check::redirect_policy(
            all_specs(cfg).any(|c| !c.headers.is_empty()),
        ))
        .connect_timeout(cfg.request_timeout)
        .build()
        .map_err(|e| Error::Client(e.to_string()))
}

/// The API checks of `cfg` against `base`, the CORS preflight last when an origin is known.
fn api_checks(cfg: &Smoke, base: &Url) -> Result<Vec<Check>, Error> {
    let mut checks = Vec::new();
    for spec in &cfg.checks {
        let c = Check::api(base, spec).map_err(|message| Error::Invalid {
            name: spec.name.clone().unwrap_or_else(|| spec.path.clone()),
            message,
        })?;
        checks.push(c);
    }
    if let Some(origin) = &cfg.cors_origin {
        checks.push(
            Check::cors(base, CORS_PATH, origin).map_err(|message| Error::Invalid {
                name: "cors".into(),
                message,
            })?,
        );
    }
    Ok(checks)
}

/// The API checks ready to send: the base URL, the compiled checks (the CORS preflight last), the
/// client, and the redactor of every secret the config holds (already masked in the log).
pub(crate) struct Api {
    pub(crate) base: Url,
    pub(crate) checks: Vec<Check>,
    pub(crate) client: reqwest::Client,
    pub(crate) redact: Redactor,
}

impl Api {
    /// Mask the secrets first, then compile the checks and build the client.
    pub(crate) fn prepare(cfg: &Smoke) -> Result<Api, Error> {
        let redact = protect(cfg);
        let base = cfg.base_url.clone().ok_or(Error::NoUrl)?;
        let checks = api_checks(cfg, &base)?;
        let client = client(cfg)?;
        Ok(Api {
            base,
            checks,
            client,
            redact,
        })
    }

    /// A smoke round: one attempt per check (no retries), all at the same time, in check order.
    pub(crate) async fn round(&self, request_timeout: std::time::Duration) -> Vec<Attempt> {
        futures::future::join_all(
            self.checks
                .iter()
                .map(|c| check::attempt(&self.client, c, request_timeout, &self.redact)),
        )
        .await
    }
}

/// The phase outcome of a step that found `err`.
fn outcome(err: &Option<Error>) -> Outcome {
    if err.is_some() {
        Outcome::Failed
    } else {
        Outcome::Ok
    }
}

fn log_result(r: &CheckResult) {
    let (p50, max) = r.latency();
    if r.passed {
        tracing::info!(check = %r.name, url = %r.url, got = %r.got, attempts = r.attempts.len(), p50_ms = p50, max_ms = max, "check passed");
    } else {
        tracing::warn!(check = %r.name, url = %r.url, expected = %r.expected, got = %r.got, attempts = r.attempts.len(), "check failed");
    }
}

/// Mark the smoke tests as skipped, with the reason (`smoke-tests: false`, or no URL).
pub fn skip(cfg: &Smoke, section: &mut SmokeReport) {
    let reason = if !cfg.enabled {
        "turned off (`smoke-tests: false`)"
    } else {
        "no URL to test (set `api-url`, `smoke.url` or `smoke-url`)"
    };
    tracing::info!("smoke tests skipped: {reason}");
    *section = SmokeReport::skipped(reason);
}

/// A dry run's smoke section: skipped, with the write sequences a deploy would run (or skip).
pub fn dry_run(cfg: &Smoke) -> SmokeReport {
    SmokeReport {
        planned_writes: WritePlan::of(cfg),
        ..SmokeReport::skipped("dry run")
    }
}

/// Run the API checks (and the CORS check) within `cfg.timeout`; `Err` when any failed.
pub async fn run(
    cfg: &Smoke,
    section: &mut SmokeReport,
    timeline: &mut Timeline,
) -> Result<(), Error> {
    let started = Instant::now();
    let _group = commands::group("Smoke tests");
    let Api {
        base,
        checks,
        client,
        redact,
    } = Api::prepare(cfg)?;
    let base = &base;
    let deadline = deadline_after(started, cfg.timeout);
    tracing::info!(
        url = %display_url(base),
        checks = checks.len(),
        budget = %humantime::format_duration(cfg.timeout),
        "running smoke tests"
    );
    let results = futures::future::join_all(checks.iter().map(|c| {
        check::until_pass(
            &client,
            c,
            deadline,
            cfg.request_timeout,
            cfg.retry_interval,
            &redact,
        )
    }))
    .await;
    results.iter().for_each(log_result);

    let failed: Vec<&CheckResult> = results.iter().filter(|r| !r.passed).collect();
    let err = (!failed.is_empty()).then(|| Error::Checks {
        url: display_url(base),
        failed: failed.len(),
        total: results.len(),
        details: failed
            .iter()
            .map(|r| format!("{} got {} ({} attempts)", r.name, r.got, r.attempts.len()))
            .collect::<Vec<_>>()
            .join("; "),
        cors_only: match (failed.as_slice(), &cfg.cors_origin) {
            ([only], Some(origin)) if only.name == "cors" && only.method == "OPTIONS" => {
                Some(origin.clone())
            }
            _ => None,
        },
        unreachable: failed
            .iter()
            .all(|r| r.attempts.iter().all(|a| a.status.is_none())),
    });
    section.base_url = Some(display_url(base));
    section.checks = results;
    section.settle();
    timeline.record("smoke tests", started, outcome(&err));
    if let Some(e) = err {
        if !cfg.writes.sequences.is_empty() {
            section.sequences_skipped = Some("the checks failed".into());
        }
        return Err(e);
    }
    writes(cfg, base, &client, redact, section, timeline).await
}

/// The write sequences after passing checks, where `smoke.write` allows; `Err` for the first failed one.
async fn writes(
    cfg: &Smoke,
    base: &Url,
    client: &reqwest::Client,
    mut redact: Redactor,
    section: &mut SmokeReport,
    timeline: &mut Timeline,
) -> Result<(), Error> {
    if cfg.writes.sequences.is_empty() {
        return Ok(());
    }
    if !cfg.writes.enabled {
        let why = cfg.writes.disabled_reason.clone().unwrap_or_default();
        tracing::info!("write sequences skipped: {why}");
        section.sequences_skipped = Some(why);
        return Ok(());
    }
    let started = Instant::now();
    let results = sequence::run_all(cfg, base, client, &mut redact).await;
    let err = results.iter().find(|r| !r.passed).map(|r| {
        let step = r.failed_step().or(r.steps.first());
        Error::Sequence {
            url: display_url(base),
            sequence: r.name.clone(),
            step: step.map(|s| s.name.clone()).unwrap_or_default(),
            got: step.map(|s| s.got.clone()).unwrap_or_default(),
            cleanup: match (r.cleanup_steps, r.left_behind_text()) {
                (0, _) => "none configured".into(),
                (n, left) => format!(
                    "ran {} of {n} step{}{}",
                    r.cleanup_ran,
                    if n == 1 { "" } else { "s" },
                    left.map_or(String::new(), |l| format!(
                        ", and it FAILED: left behind: {l}"
                    ))
                ),
            },
        }
    });
    section.sequences = results;
    section.settle();
    timeline.record("write sequences", started, outcome(&err));
    err.map_or(Ok(()), Err)
}

/// After the frontend sync: the website URL answers 200 HTML (retried within `cfg.timeout`).
pub async fn check_frontend(
    cfg: &Smoke,
    section: &mut SmokeReport,
    timeline: &mut Timeline,
) -> Result<(), Error> {
    let started = Instant::now();
    let _group = commands::group("Website check");
    let redact = protect(cfg);
    let Some(url) = cfg.website_url.as_ref() else {
        return Ok(());
    };
    let check = Check::website(url);
    let client = client(cfg)?;
    let result = check::until_pass(
        &client,
        &check,
        deadline_after(started, cfg.timeout),
        cfg.request_timeout,
        cfg.retry_interval,
        &redact,
    )
    .await;
    log_result(&result);
    let err = (!result.passed).then(|| Error::Website {
        url: result.url.clone(),
        got: result.got.clone(),
        attempts: result.attempts.len(),
    });
    section.website = Some(result);
    section.settle();
    timeline.record("website check", started, outcome(&err));
    err.map_or(Ok(()), Err)
}

/// `started + timeout`; config caps the timeout at a day, and a clock that cannot add it waits a day.
pub(crate) fn deadline_after(started: Instant, timeout: std::time::Duration) -> Instant {
    started
        .checked_add(timeout)
        .unwrap_or_else(|| started + std::time::Duration::from_secs(24 * 3600))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_masked_before_use() {
        let mut checks = crate::config::default_checks();
        checks[0].headers.insert(
            "x-api-key",
            reqwest::header::HeaderValue::from_static("hdr-s3cr3t"),
        );
        let mut step = crate::config::default_checks().remove(1);
        step.headers.insert(
            "x-step-key",
            reqwest::header::HeaderValue::from_static("step-s3cr3t"),
        );
        let cfg = Smoke {
            enabled: true,
            base_url: Some(Url::parse("https://smoke-user:pa%24s@api.example.com").unwrap()),
            test_url: None,
            checks,
            cors_origin: None,
            website_url: None,
            frontend_check: false,
            timeout: std::time::Duration::from_secs(1),
            request_timeout: std::time::Duration::from_secs(1),
            retry_interval: std::time::Duration::from_secs(1),
            watch: std::time::Duration::ZERO,
            watch_interval: std::time::Duration::from_secs(1),
            watch_failures: 3,
            writes: crate::config::Writes {
                sequences: vec![crate::config::Sequence {
                    name: "product-crud".into(),
                    steps: vec![crate::config::Step {
                        check: step,
                        body: None,
                        capture: Vec::new(),
                        cleanup: false,
                    }],
                }],
                ..Default::default()
            },
            test_sample: Default::default(),
        };
        let mut out = Vec::new();
        let r = protect_to(&cfg, &mut out);
        let out = String::from_utf8(out).unwrap();
        for s in ["hdr-s3cr3t", "pa$s", "pa%24s", "smoke-user", "step-s3cr3t"] {
            let line = format!("::add-mask::{}\n", commands::escape_data(s));
            assert!(out.contains(&line), "{s} not masked:\n{out}");
        }
        assert_eq!(r.apply("x pa$s hdr-s3cr3t"), "x *** ***");
    }
}
