//! The smoke part: base and website URLs, the CORS origin, the budgets of the checks and the watch, every
//! check compiled (`check`) and the write sequences (`sequence`), so the smoke step runs them without
//! parsing anything again. No AWS API.

use std::time::Duration;

use super::check::{default_checks, CheckSpec};
use super::error::{invalid, Error};
use super::schema::{CorsFile, SmokeFile, TestSampleFile};
use super::sequence::Writes;
use super::sources::Sources;
use super::validate::{parse_bool, parse_duration, validate_url};

/// Smoke tests and the post-deploy watch.
#[derive(Debug, Clone, PartialEq)]
pub struct Smoke {
    /// Run them at all.
    pub enabled: bool,
    /// Base URL of the API (`smoke-url`, else `api-url`).
    pub base_url: Option<url::Url>,
    /// The test listener (`smoke.test-url`): the checks and write sequences run against it at a
    /// `POST_TEST_TRAFFIC_SHIFT` pause, before the new revision takes production traffic.
    pub test_url: Option<url::Url>,
    /// The checks, compiled (defaults filled in when none are configured).
    pub checks: Vec<CheckSpec>,
    /// Origin for the CORS check (`None`: no CORS check).
    pub cors_origin: Option<String>,
    /// The website URL, for the frontend check.
    pub website_url: Option<url::Url>,
    /// Check the website after the frontend sync.
    pub frontend_check: bool,
    /// Overall budget of the checks.
    pub timeout: Duration,
    /// Per-request timeout (never zero).
    pub request_timeout: Duration,
    /// Base delay between retries of a failing check.
    pub retry_interval: Duration,
    /// Keep watching this long after a good deploy (zero: no watch).
    pub watch: Duration,
    /// Interval between watch rounds (never zero when `watch` is set).
    pub watch_interval: Duration,
    /// Consecutive failed rounds that count as sustained (at least 1).
    pub watch_failures: u32,
    /// The write sequences, run after the checks where enabled.
    pub writes: Writes,
    /// The traffic sample on the test listener, after the checks pass at a test-traffic pause.
    pub test_sample: TestSample,
}

/// `smoke.test-sample`: GET requests spread over the read-only checks' paths, none retried; a share of
/// 5xx answers and failed requests above `max_error_share` fails it. A version that fails one request
/// in five passes checks that retry, and fails this.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TestSample {
    /// Requests to send (0: no sample).
    pub requests: u32,
    /// The largest share of bad answers that still passes, in [0, 1).
    pub max_error_share: f64,
}

impl Default for TestSample {
    fn default() -> Self {
        TestSample {
            requests: 100,
            max_error_share: 0.01,
        }
    }
}

/// More requests than this would take minutes at the sample's concurrency: a slip, not a wish.
const MAX_SAMPLE_REQUESTS: u32 = 10_000;

fn test_sample(file: Option<&TestSampleFile>) -> Result<TestSample, Error> {
    let d = TestSample::default();
    let Some(f) = file else {
        return Ok(d);
    };
    let requests = f.requests.unwrap_or(d.requests);
    if requests > MAX_SAMPLE_REQUESTS {
        return Err(invalid(
            "smoke.test-sample.requests",
            format!("{requests} is more than {MAX_SAMPLE_REQUESTS}"),
        ));
    }
    let max_error_share = match f.max_error_share {
        None => d.max_error_share,
        Some(s) if s.is_finite() && (0.0..1.0).contains(&s) => s,
        Some(s) => {
            return Err(invalid(
                "smoke.test-sample.max-error-share",
                format!("{s} is not in [0, 1); write a fraction, e.g. `0.01` for 1%"),
            ))
        }
    };
    Ok(TestSample {
        requests,
        max_error_share,
    })
}

/// Build [`Smoke`] from the `smoke-*`, `website-url` and `watch` inputs and the `smoke:` section.
pub(super) fn build(src: &Sources) -> Result<Smoke, Error> {
    let (inputs, env) = (src.inputs, src.env);
    let smoke_file = env.smoke.clone().unwrap_or_default();
    let enabled = match &inputs.smoke_tests {
        Some(v) => parse_bool("smoke-tests", v)?,
        None => smoke_file.enabled.unwrap_or(true),
    };
    let base_url = inputs
        .smoke_url
        .clone()
        .or_else(|| smoke_file.url.clone())
        .or_else(|| env.api_url.clone())
        .map(|u| validate_url("smoke-url", &u))
        .transpose()?;
    let test_url = smoke_file
        .test_url
        .as_deref()
        .map(|u| validate_url("smoke.test-url", u))
        .transpose()?;
    let website_url = inputs
        .website_url
        .clone()
        .or_else(|| env.website_url.clone())
        .map(|u| validate_url("website-url", &u))
        .transpose()?;
    let cors_origin = cors_origin(&smoke_file, website_url.as_ref())?;
    let checks = match smoke_file.checks.clone() {
        Some(files) => files
            .into_iter()
            .map(CheckSpec::try_from)
            .collect::<Result<Vec<_>, _>>()?,
        None => default_checks(),
    };
    let smoke = Smoke {
        enabled,
        base_url,
        test_url,
        checks,
        cors_origin,
        frontend_check: smoke_file.frontend_check.unwrap_or(true),
        website_url,
        timeout: duration(
            "smoke-timeout",
            &inputs.smoke_timeout,
            &smoke_file.timeout,
            120,
        )?,
        request_timeout: duration(
            "smoke.request-timeout",
            &None,
            &smoke_file.request_timeout,
            10,
        )?,
        retry_interval: duration("smoke.retry-interval", &None, &smoke_file.retry_interval, 1)?,
        watch: duration("watch", &inputs.watch, &smoke_file.watch, 0)?,
        watch_interval: duration(
            "smoke.watch-interval",
            &None,
            &smoke_file.watch_interval,
            15,
        )?,
        watch_failures: smoke_file.watch_failures.unwrap_or(3).max(1),
        writes: super::sequence::build(
            &smoke_file,
            src.environment,
            env.github_environment.as_deref(),
            src.ctx.run_id.as_deref(),
            src.ctx.run_attempt.as_deref(),
        )?,
        test_sample: test_sample(smoke_file.test_sample.as_ref())?,
    };
    check_intervals(&smoke)?;
    Ok(smoke)
}

/// The origin of the CORS check: as configured, none for `cors: false`, else the website's.
fn cors_origin(file: &SmokeFile, website_url: Option<&url::Url>) -> Result<Option<String>, Error> {
    Ok(match &file.cors {
        Some(CorsFile::Enabled(false)) => None,
        // An origin is scheme://host[:port]: a path or a stray character is the user's slip, and
        // finding it now beats a failed check (and a rollback) after the deploy.
        Some(CorsFile::Origin(o)) => Some(
            validate_url("smoke.cors", o)?
                .origin()
                .ascii_serialization(),
        ),
        _ => website_url.map(|u| u.origin().ascii_serialization()),
    })
}

/// A duration from the input, else the file's value, else `default` seconds.
fn duration(
    key: &'static str,
    input: &Option<String>,
    file_value: &Option<String>,
    default: u64,
) -> Result<Duration, Error> {
    match input.as_deref().or(file_value.as_deref()) {
        Some(v) => parse_duration(key, v),
        None => Ok(Duration::from_secs(default)),
    }
}

/// Zero intervals would spin: a watch needs rounds apart, and every request needs a timeout.
fn check_intervals(smoke: &Smoke) -> Result<(), Error> {
    if !smoke.watch.is_zero() && smoke.watch_interval.is_zero() {
        return Err(invalid(
            "smoke.watch-interval",
            "must be greater than zero when `watch` is set",
        ));
    }
    if smoke.request_timeout.is_zero() {
        return Err(invalid(
            "smoke.request-timeout",
            "must be greater than zero",
        ));
    }
    Ok(())
}
