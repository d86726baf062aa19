//! The backend part: the ECS cluster, service and containers, the ECR repository and tags, the rollout
//! budget and the registry override. No AWS API (names are checked against AWS by the steps).

use std::path::PathBuf;
use std::time::Duration;

use super::command::Command;
use super::error::{invalid, Error};
use super::schema::OneOrMany;
use super::sources::{pick, Sources};
use super::validate::{inside_workspace, parse_bool, parse_duration, parse_list, validate_tag};

/// The backend (ECS) part of an environment.
#[derive(Debug, Clone, PartialEq)]
pub struct Backend {
    pub cluster: String,
    pub service: String,
    /// Containers whose image is swapped (empty: the only container of the task definition).
    pub containers: Vec<String>,
    /// ECR repository name (empty for a `rollback` that names none).
    pub repository: String,
    /// Image tag to deploy (default `GITHUB_SHA`); `None` only for `rollback`.
    pub image_tag: Option<String>,
    /// More tags to add to the image.
    pub extra_tags: Vec<String>,
    /// A task-definition JSON file to render instead of the live one (inside the workspace).
    pub task_definition_file: Option<PathBuf>,
    /// New desired count.
    pub desired_count: Option<i32>,
    /// Force a new deployment even when nothing changed.
    pub force_new_deployment: bool,
    /// How long to wait for the rollout (zero: don't wait).
    pub wait_timeout: Duration,
    /// Base poll interval of the rollout watch (never zero).
    pub poll_interval: Duration,
    /// Roll back when the rollout or the smoke tests fail.
    pub rollback_on_failure: bool,
    /// `command: rollback`: the revision (ARN, `family:rev` or number) to go back to.
    pub revision: Option<String>,
    /// Override the registry host for blob traffic (tests, private endpoints).
    pub registry_url: Option<url::Url>,
    /// Last log lines read per stopped task of a failed rollout (0 = none).
    pub diagnosis_log_lines: u32,
}

/// Last log lines shown per stopped task, unless the environments file says otherwise.
const DEFAULT_LOG_LINES: u32 = 50;
/// What `GetLogEvents` returns in one call at most is 10,000; a failure needs far fewer.
const MAX_LOG_LINES: u32 = 1000;

/// Build [`Backend`]; what is required depends on `command` (`rollback` needs no image or repository).
pub(super) fn build(src: &Sources, command: Command) -> Result<Backend, Error> {
    let (inputs, env) = (src.inputs, src.env);
    let cluster = pick(&inputs.cluster, &env.cluster).ok_or_else(|| src.missing("cluster"))?;
    let service = pick(&inputs.service, &env.service).ok_or_else(|| src.missing("service"))?;
    let containers = match &inputs.container {
        Some(v) => parse_list(v),
        None => env
            .container
            .as_ref()
            .map(OneOrMany::to_vec)
            .unwrap_or_default(),
    };
    let image_tag = image_tag(src, command)?;
    let repository = match (command, pick(&inputs.ecr_repository, &env.ecr_repository)) {
        (Command::Rollback, r) => r.unwrap_or_default(),
        (_, Some(r)) => r,
        (_, None) => return Err(src.missing("ecr-repository")),
    };
    let extra_tags = inputs
        .extra_tags
        .as_deref()
        .map(parse_list)
        .unwrap_or_default();
    for t in &extra_tags {
        validate_tag("extra-tags", t)?;
    }
    let task_definition_file = inputs
        .task_definition
        .as_deref()
        .map(|p| inside_workspace("task-definition", &src.ctx.workspace, p))
        .transpose()?;
    let desired_count = desired_count(src)?;
    let (wait_timeout, poll_interval) = rollout_timing(src)?;
    let rollback_on_failure = match &inputs.rollback_on_failure {
        Some(v) => parse_bool("rollback-on-failure", v)?,
        None => env.rollback_on_failure.unwrap_or(true),
    };
    let force_new_deployment = inputs
        .force_new_deployment
        .as_deref()
        .map(|v| parse_bool("force-new-deployment", v))
        .transpose()?
        .unwrap_or(false);
    let registry_url = registry_url(src)?;
    Ok(Backend {
        cluster,
        service,
        containers,
        repository,
        image_tag,
        extra_tags,
        task_definition_file,
        desired_count,
        force_new_deployment,
        wait_timeout,
        poll_interval,
        rollback_on_failure,
        revision: inputs.revision.clone(),
        registry_url,
        diagnosis_log_lines: log_lines(src)?,
    })
}

/// The tag to deploy: a deploy defaults to `GITHUB_SHA`; a rollback needs none, nor does a promotion.
fn image_tag(src: &Sources, command: Command) -> Result<Option<String>, Error> {
    let inputs = src.inputs;
    let image_tag = match command {
        // A promotion without one ships the newest release verified on the source (picked at run time).
        Command::Rollback | Command::Promote => inputs.image_tag.clone(),
        Command::Releases => None,
        Command::Deploy => Some(
            inputs
                .image_tag
                .clone()
                .or_else(|| src.ctx.sha.clone())
                .ok_or_else(|| {
                    invalid(
                        "image-tag",
                        "no `image-tag` input and no `GITHUB_SHA` to default to",
                    )
                })?,
        ),
    };
    if let Some(tag) = &image_tag {
        validate_tag("image-tag", tag)?;
    }
    Ok(image_tag)
}

/// The new desired count: a whole number >= 0, from the input or the environment.
fn desired_count(src: &Sources) -> Result<Option<i32>, Error> {
    Ok(match &src.inputs.desired_count {
        Some(v) => Some(
            v.trim()
                .parse::<i32>()
                .ok()
                .filter(|n| *n >= 0)
                .ok_or_else(|| {
                    invalid("desired-count", format!("`{v}` is not a whole number >= 0"))
                })?,
        ),
        None => src.env.desired_count,
    })
}

/// The rollout's budget (default 30 minutes) and base poll interval (default 3 s, never zero).
fn rollout_timing(src: &Sources) -> Result<(Duration, Duration), Error> {
    let wait_timeout = match src
        .inputs
        .wait_timeout
        .as_deref()
        .or(src.env.wait_timeout.as_deref())
    {
        Some(v) => parse_duration("wait-timeout", v)?,
        None => Duration::from_secs(30 * 60),
    };
    let poll_interval = match &src.inputs.poll_interval {
        Some(v) => parse_duration("poll-interval", v)?,
        None => Duration::from_secs(3),
    };
    if poll_interval.is_zero() {
        return Err(invalid("poll-interval", "must be greater than zero"));
    }
    Ok((wait_timeout, poll_interval))
}

/// The registry override, from the workflow only.
fn registry_url(src: &Sources) -> Result<Option<url::Url>, Error> {
    // The ECR token goes wherever this points, so only the workflow itself may set it (a changed
    // environments file, or one read from a pull request, must not redirect the credentials).
    if src.env.registry_url.is_some() {
        return Err(invalid(
            "registry-url",
            "it cannot be set in the environments file; set the `registry-url` input in the workflow instead",
        ));
    }
    src.inputs
        .registry_url
        .as_deref()
        .map(parse_registry_url)
        .transpose()
}

/// Log lines read per stopped task of a failed rollout, at most [`MAX_LOG_LINES`].
fn log_lines(src: &Sources) -> Result<u32, Error> {
    match src.env.diagnosis.as_ref().and_then(|d| d.log_lines) {
        Some(n) if n > MAX_LOG_LINES => Err(invalid(
            "diagnosis.log-lines",
            format!("{n} is more than {MAX_LOG_LINES}"),
        )),
        Some(n) => Ok(n),
        None => Ok(DEFAULT_LOG_LINES),
    }
}

/// A registry base URL: `https://`, or `http://` to a loopback host only (a local test registry), without
/// credentials, query or fragment: the ECR token must never travel in clear over a network.
pub(crate) fn parse_registry_url(raw: &str) -> Result<url::Url, Error> {
    let raw = raw.trim();
    let url = url::Url::parse(raw)
        .map_err(|e| invalid("registry-url", format!("`{raw}` is not a URL ({e})")))?;
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(&url) => {}
        "http" => {
            return Err(invalid(
                "registry-url",
                format!("`{raw}` uses plain http; use `https://` (plain http is allowed only for loopback hosts)"),
            ))
        }
        other => {
            return Err(invalid(
                "registry-url",
                format!("`{raw}` has scheme `{other}`; use `https://`"),
            ))
        }
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(
            "registry-url",
            "must not contain credentials; the action authenticates with ECR itself",
        ));
    }
    if url.query().is_some() || url.fragment().is_some() || url.host().is_none() {
        return Err(invalid(
            "registry-url",
            format!("`{raw}` must be a base URL (scheme, host and port only)"),
        ));
    }
    Ok(url)
}

/// `localhost`, 127.0.0.0/8 or `::1`.
pub(crate) fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}
