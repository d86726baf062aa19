//! Raw inputs + the YAML environments file -> one validated [`Config`]. Pure: no I/O but reading the file.
//!
//! Inputs override file values. Every problem is found here, before any AWS call: an unknown key (with
//! its line), an unknown environment, a malformed ARN, a bad duration or number.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::github::Context;
use crate::inputs::Inputs;

/// The default environments file.
pub const DEFAULT_CONFIG: &str = ".github/cloudshop-deploy.yml";

/// A configuration problem, found before anything is changed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The YAML did not parse or had an unknown key.
    #[error("invalid environments file `{path}`: {message}")]
    File {
        /// File path.
        path: String,
        /// serde_yaml's message (it carries the line and column).
        message: String,
    },
    /// A file named by `config` is missing.
    #[error("environments file `{0}` not found")]
    FileMissing(String),
    /// No environment given.
    #[error("input `environment` is required")]
    NoEnvironment,
    /// The environment is not in the file.
    #[error("unknown environment `{name}`{}", known_list(.known))]
    UnknownEnvironment {
        /// Requested name.
        name: String,
        /// Names the file has.
        known: Vec<String>,
    },
    /// A required value is missing.
    #[error("`{key}` is required for environment `{environment}`")]
    Missing {
        /// Key name (kebab-case, as in the inputs and the file).
        key: &'static str,
        /// Environment.
        environment: String,
    },
    /// A value is malformed.
    #[error("invalid `{key}`: {message}")]
    Invalid {
        /// Key name.
        key: &'static str,
        /// What is wrong with it.
        message: String,
    },
}

fn known_list(known: &[String]) -> String {
    if known.is_empty() {
        " (no environments are configured)".to_string()
    } else {
        format!(" (configured: {})", known.join(", "))
    }
}

impl Error {
    /// One line that tells the reader how to fix it.
    pub fn hint(&self) -> String {
        match self {
            Error::File { .. } => "fix the key named above; see the README's environments-file reference for the allowed keys".into(),
            Error::FileMissing(p) => format!("commit `{p}`, or point the `config` input at the environments file (check out the repository before this step)"),
            Error::NoEnvironment => "set `with: environment: stage` (or another environment of the environments file)".into(),
            Error::UnknownEnvironment { .. } => "use one of the configured environments, or add it under `environments:` in the environments file".into(),
            Error::Missing { key, .. } => format!("set `{key}` under the environment in the environments file, or as the `{key}` input"),
            Error::Invalid { key, .. } => format!("fix `{key}` (see the README's input reference)"),
        }
    }
}

fn invalid(key: &'static str, message: impl Into<String>) -> Error {
    Error::Invalid {
        key,
        message: message.into(),
    }
}

// ---------------------------------------------------------------- the file

/// One value or a list (`container: backend` or `container: [backend, worker]`).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(untagged)]
pub enum OneOrMany<T> {
    /// A single value.
    One(T),
    /// A list.
    Many(Vec<T>),
}

impl<T: Clone> OneOrMany<T> {
    /// As a list.
    pub fn to_vec(&self) -> Vec<T> {
        match self {
            OneOrMany::One(v) => vec![v.clone()],
            OneOrMany::Many(v) => v.clone(),
        }
    }
}

/// The environments file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct FileConfig {
    /// Default region for every environment.
    pub region: Option<String>,
    /// Environments by name.
    #[serde(default)]
    pub environments: BTreeMap<String, EnvironmentFile>,
}

/// One environment in the file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
#[allow(missing_docs)]
pub struct EnvironmentFile {
    pub region: Option<String>,
    pub role_to_assume: Option<String>,
    pub cluster: Option<String>,
    pub service: Option<String>,
    pub container: Option<OneOrMany<String>>,
    pub ecr_repository: Option<String>,
    pub api_url: Option<String>,
    pub website_url: Option<String>,
    pub promote_from: Option<String>,
    pub registry_url: Option<String>,
    pub wait_timeout: Option<String>,
    pub rollback_on_failure: Option<bool>,
    pub desired_count: Option<i32>,
    pub frontend: Option<FrontendFile>,
    pub smoke: Option<SmokeFile>,
}

/// `frontend:` of an environment.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
#[allow(missing_docs)]
pub struct FrontendFile {
    pub bucket: Option<String>,
    pub dir: Option<String>,
    pub prefix: Option<String>,
    pub delete: Option<bool>,
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Ordered glob -> Cache-Control rules; the first match wins, before the built-in defaults.
    #[serde(default)]
    pub cache_control: Vec<CacheRule>,
    pub cloudfront_distribution_id: Option<String>,
}

/// A Cache-Control rule.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct CacheRule {
    /// Glob over the path relative to the build folder (`static/**`, `*.html`).
    pub glob: String,
    /// The Cache-Control value.
    pub value: String,
}

/// `smoke:` of an environment.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
#[allow(missing_docs)]
pub struct SmokeFile {
    pub enabled: Option<bool>,
    pub url: Option<String>,
    pub timeout: Option<String>,
    pub request_timeout: Option<String>,
    /// Base delay between retries of a failing check (doubled each attempt, jittered, capped at 30 s).
    pub retry_interval: Option<String>,
    /// `false` turns off the CORS check; a string sets the origin (default: the website URL).
    pub cors: Option<CorsFile>,
    /// Check the website URL after the frontend sync (default true when a website URL is known).
    pub frontend_check: Option<bool>,
    pub watch: Option<String>,
    pub watch_interval: Option<String>,
    pub watch_failures: Option<u32>,
    pub checks: Option<Vec<CheckSpec>>,
}

/// `cors: false` or `cors: https://origin`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum CorsFile {
    /// On/off.
    Enabled(bool),
    /// The origin to test with.
    Origin(String),
}

/// One HTTP check (see the smoke step).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct CheckSpec {
    /// Display name (default: `METHOD path`).
    pub name: Option<String>,
    /// GET (default), HEAD or OPTIONS.
    #[serde(default = "default_method")]
    pub method: String,
    /// Path relative to the base URL.
    pub path: String,
    /// Accepted status codes (default 200).
    pub status: Option<OneOrMany<u16>>,
    /// JSON expectations.
    pub json: Option<JsonExpect>,
    /// The body must contain this text.
    pub body_contains: Option<String>,
    /// Response headers that must be present and contain the given text (`""`: present).
    #[serde(default)]
    pub expect_headers: BTreeMap<String, String>,
    /// Fail an attempt slower than this (humantime).
    pub max_latency: Option<String>,
    /// Request headers. Values are never printed.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

fn default_method() -> String {
    "GET".to_string()
}

/// What a JSON body must look like.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct JsonExpect {
    /// The body is a JSON array.
    #[serde(default)]
    pub array: bool,
    /// The array (or object) is not empty.
    #[serde(default)]
    pub non_empty: bool,
    /// The array holds objects whose `name` field equals each of these.
    #[serde(default)]
    pub contains_names: Vec<String>,
}

// ---------------------------------------------------------------- the validated config

/// What the action was asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Command {
    /// Build output -> environment.
    Deploy,
    /// Copy a tested image from the source environment, then deploy it.
    Promote,
    /// Point the service back at the previous (or a given) revision.
    Rollback,
}

impl Command {
    /// Its input spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Command::Deploy => "deploy",
            Command::Promote => "promote",
            Command::Rollback => "rollback",
        }
    }
}

/// How to get AWS credentials.
#[derive(Debug, Clone, PartialEq)]
pub struct Auth {
    /// Role to assume through OIDC; `None`: the standard credential chain.
    pub role_to_assume: Option<String>,
    /// `RoleSessionName`, sanitised.
    pub session_name: String,
    /// Session length.
    pub duration: Duration,
    /// OIDC audience.
    pub audience: String,
}

/// The backend (ECS) part of an environment.
#[derive(Debug, Clone, PartialEq)]
pub struct Backend {
    /// ECS cluster.
    pub cluster: String,
    /// ECS service.
    pub service: String,
    /// Containers whose image is swapped (empty: the only container of the task definition).
    pub containers: Vec<String>,
    /// ECR repository name.
    pub repository: String,
    /// Image tag to deploy (default `GITHUB_SHA`); `None` only for `rollback`.
    pub image_tag: Option<String>,
    /// More tags to add to the image.
    pub extra_tags: Vec<String>,
    /// A task-definition JSON file to render instead of the live one.
    pub task_definition_file: Option<PathBuf>,
    /// New desired count.
    pub desired_count: Option<i32>,
    /// Force a new deployment even when nothing changed.
    pub force_new_deployment: bool,
    /// How long to wait for the rollout (zero: don't wait).
    pub wait_timeout: Duration,
    /// Base poll interval of the rollout watch.
    pub poll_interval: Duration,
    /// Roll back when the rollout or the smoke tests fail.
    pub rollback_on_failure: bool,
    /// `command: rollback`: the revision (ARN, `family:rev` or number) to go back to.
    pub revision: Option<String>,
    /// Override the registry host for blob traffic (tests, private endpoints).
    pub registry_url: Option<String>,
}

/// Smoke tests and the post-deploy watch.
#[derive(Debug, Clone, PartialEq)]
pub struct Smoke {
    /// Run them at all.
    pub enabled: bool,
    /// Base URL of the API (`smoke-url`, else `api-url`).
    pub base_url: Option<url::Url>,
    /// The checks (defaults filled in when none are configured).
    pub checks: Vec<CheckSpec>,
    /// Origin for the CORS check (`None`: no CORS check).
    pub cors_origin: Option<String>,
    /// The website URL, for the frontend check.
    pub website_url: Option<url::Url>,
    /// Check the website after the frontend sync.
    pub frontend_check: bool,
    /// Overall budget of the checks.
    pub timeout: Duration,
    /// Per-request timeout.
    pub request_timeout: Duration,
    /// Base delay between retries of a failing check.
    pub retry_interval: Duration,
    /// Keep watching this long after a good deploy (zero: no watch).
    pub watch: Duration,
    /// Interval between watch rounds.
    pub watch_interval: Duration,
    /// Consecutive failed rounds that count as sustained.
    pub watch_failures: u32,
}

/// The frontend (S3) part of an environment.
#[derive(Debug, Clone, PartialEq)]
pub struct Frontend {
    /// The build folder (absolute, inside the workspace).
    pub dir: PathBuf,
    /// The workspace: the build folder, once its links are resolved, must still be inside it.
    pub workspace: PathBuf,
    /// Bucket.
    pub bucket: String,
    /// Key prefix (no leading `/`, ends with `/` when set).
    pub prefix: String,
    /// Delete objects that are not in the build.
    pub delete: bool,
    /// Globs of files not to upload (and not to delete).
    pub exclude: Vec<String>,
    /// Cache-Control rules from the file, before the defaults.
    pub cache_rules: Vec<CacheRule>,
    /// CloudFront distribution to invalidate.
    pub cloudfront_distribution_id: Option<String>,
}

/// Where `promote` takes the image from.
#[derive(Debug, Clone, PartialEq)]
pub struct Promote {
    /// Source environment name.
    pub source_environment: String,
    /// Source repository.
    pub source_repository: String,
    /// Source region.
    pub source_region: String,
    /// Role of the source environment, when it differs (for cross-account reads).
    pub source_role: Option<String>,
}

/// Everything the run needs, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The command.
    pub command: Command,
    /// Environment name.
    pub environment: String,
    /// AWS region.
    pub region: String,
    /// Make no change; print the plan.
    pub dry_run: bool,
    /// Credentials.
    pub auth: Auth,
    /// ECS.
    pub backend: Backend,
    /// Smoke tests.
    pub smoke: Smoke,
    /// S3 frontend, when configured and not turned off.
    pub frontend: Option<Frontend>,
    /// Source of a promotion.
    pub promote: Option<Promote>,
    /// An OCI layout / docker-save tarball to push before deploying.
    pub image_archive: Option<PathBuf>,
}

// ---------------------------------------------------------------- parsing helpers

/// Parse a boolean input (`true/false/yes/no/1/0`).
pub fn parse_bool(key: &'static str, v: &str) -> Result<bool, Error> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "1" | "on" => Ok(true),
        "false" | "no" | "0" | "off" => Ok(false),
        other => Err(invalid(
            key,
            format!("`{other}` is not a boolean (use `true` or `false`)"),
        )),
    }
}

/// Parse a humantime duration; a bare number is seconds; `0` is zero.
pub fn parse_duration(key: &'static str, v: &str) -> Result<Duration, Error> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    humantime::parse_duration(v).map_err(|e| {
        invalid(
            key,
            format!("`{v}` is not a duration ({e}); write e.g. `30m`, `90s`, `1h 30m`"),
        )
    })
}

/// A list input: comma- or newline-separated, blanks dropped.
pub fn parse_list(v: &str) -> Vec<String> {
    v.split([',', '\n'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// Validate an IAM role ARN: `arn:<partition>:iam::<12 digits>:role/<path/name>`.
pub fn validate_role_arn(arn: &str) -> Result<(), Error> {
    let bad = |why: &str| {
        invalid("role-to-assume", format!("`{arn}` is not an IAM role ARN ({why}); expected `arn:aws:iam::123456789012:role/NAME`"))
    };
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    if parts.len() != 6 || parts[0] != "arn" {
        return Err(bad(
            "it must have six `:`-separated parts starting with `arn`",
        ));
    }
    if !matches!(
        parts[1],
        "aws" | "aws-cn" | "aws-us-gov" | "aws-iso" | "aws-iso-b"
    ) {
        return Err(bad("unknown partition"));
    }
    if parts[2] != "iam" || !parts[3].is_empty() {
        return Err(bad("the service must be `iam` with an empty region"));
    }
    if parts[4].len() != 12 || !parts[4].chars().all(|c| c.is_ascii_digit()) {
        return Err(bad("the account must be 12 digits"));
    }
    let Some(name) = parts[5].strip_prefix("role/") else {
        return Err(bad("the resource must start with `role/`"));
    };
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-/".contains(c))
    {
        return Err(bad("the role name has characters IAM does not allow"));
    }
    Ok(())
}

fn validate_region(region: &str) -> Result<(), Error> {
    let ok = region.len() >= 4
        && region.len() <= 32
        && region
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && region.contains('-')
        && !region.starts_with('-');
    if ok {
        Ok(())
    } else {
        Err(invalid(
            "aws-region",
            format!("`{region}` is not an AWS region (e.g. `us-east-1`)"),
        ))
    }
}

fn validate_url(key: &'static str, v: &str) -> Result<url::Url, Error> {
    let url = url::Url::parse(v.trim()).map_err(|e| invalid(key, format!("not a URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid(key, "the URL must start with http:// or https://"));
    }
    Ok(url)
}

/// ECR tag rules: 1-128 of `[A-Za-z0-9_.-]`, not starting with `.` or `-`.
pub fn validate_tag(key: &'static str, tag: &str) -> Result<(), Error> {
    let ok = !tag.is_empty()
        && tag.len() <= 128
        && tag
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
        && !tag.starts_with(['.', '-']);
    if ok {
        Ok(())
    } else {
        Err(invalid(
            key,
            format!("`{tag}` is not a valid image tag (1-128 of letters, digits, `_`, `.`, `-`)"),
        ))
    }
}

/// Resolve `dir` against the workspace and refuse anything that leaves it (lexically; symlinks are checked
/// again when the folder is walked).
pub fn inside_workspace(key: &'static str, workspace: &Path, dir: &str) -> Result<PathBuf, Error> {
    let candidate = Path::new(dir);
    let joined = if candidate.is_absolute() {
        candidate.to_path_buf()
    } else {
        workspace.join(candidate)
    };
    let mut normal = PathBuf::new();
    for comp in joined.components() {
        match comp {
            Component::ParentDir => {
                if !normal.pop() {
                    return Err(invalid(key, format!("`{dir}` leaves the filesystem root")));
                }
            }
            Component::CurDir => {}
            other => normal.push(other.as_os_str()),
        }
    }
    let mut ws = PathBuf::new();
    for comp in workspace.components() {
        match comp {
            Component::CurDir => {}
            other => ws.push(other.as_os_str()),
        }
    }
    if !normal.starts_with(&ws) {
        return Err(invalid(
            key,
            format!("`{dir}` is outside the workspace `{}`", workspace.display()),
        ));
    }
    Ok(normal)
}

/// The checks used when an environment configures none.
pub fn default_checks() -> Vec<CheckSpec> {
    vec![
        CheckSpec {
            name: Some("health".into()),
            method: "GET".into(),
            path: "/health".into(),
            status: Some(OneOrMany::One(200)),
            json: None,
            body_contains: None,
            expect_headers: BTreeMap::new(),
            max_latency: None,
            headers: BTreeMap::new(),
        },
        CheckSpec {
            name: Some("products".into()),
            method: "GET".into(),
            path: "/products".into(),
            status: Some(OneOrMany::One(200)),
            json: Some(JsonExpect {
                array: true,
                ..JsonExpect::default()
            }),
            body_contains: None,
            expect_headers: BTreeMap::new(),
            max_latency: None,
            headers: BTreeMap::new(),
        },
    ]
}

/// Check what the smoke step would otherwise only find after the deploy: the path, header names and
/// values, and expectations a `HEAD` reply can never meet. A bad check must cost no change in AWS.
pub fn validate_check(c: &CheckSpec) -> Result<(), Error> {
    use reqwest::header::{HeaderName, HeaderValue};
    let key = "smoke.checks";
    if !c.path.starts_with('/') {
        return Err(invalid(
            key,
            format!("path `{}` must start with `/`", c.path),
        ));
    }
    if c.path
        .chars()
        .any(|ch| ch.is_whitespace() || ch.is_control())
    {
        return Err(invalid(
            key,
            format!(
                "path `{}` contains a space or a control character",
                c.path.escape_debug()
            ),
        ));
    }
    for (name, value) in &c.headers {
        HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
            invalid(
                key,
                format!("`{name}` of `{}` is not a header name", c.path),
            )
        })?;
        // The value is a secret as far as we know: never echo it.
        HeaderValue::from_str(value).map_err(|_| {
            invalid(
                key,
                format!(
                    "the value of header `{name}` of `{}` is not a valid header value",
                    c.path
                ),
            )
        })?;
    }
    for name in c.expect_headers.keys() {
        HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
            invalid(
                key,
                format!("`{name}` of `{}` is not a header name", c.path),
            )
        })?;
    }
    if c.method.eq_ignore_ascii_case("HEAD") && (c.json.is_some() || c.body_contains.is_some()) {
        return Err(invalid(
            key,
            format!(
                "`HEAD {}` has no body: drop `json`/`body-contains` or use GET",
                c.path
            ),
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------- building the config

/// Read and parse the environments file. A missing default file is an empty config; a missing file named
/// by the `config` input is an error.
pub fn load_file(inputs: &Inputs, workspace: &Path) -> Result<(FileConfig, String), Error> {
    let (name, explicit) = match &inputs.config {
        Some(p) => (p.clone(), true),
        None => (DEFAULT_CONFIG.to_string(), false),
    };
    let path = if Path::new(&name).is_absolute() {
        PathBuf::from(&name)
    } else {
        workspace.join(&name)
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok((parse_file(&name, &text)?, name)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => {
            Ok((FileConfig::default(), name))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Error::FileMissing(name)),
        Err(e) => Err(Error::File {
            path: name,
            message: e.to_string(),
        }),
    }
}

/// Parse environments-file text.
pub fn parse_file(name: &str, text: &str) -> Result<FileConfig, Error> {
    if text.trim().is_empty() {
        return Ok(FileConfig::default());
    }
    serde_yaml::from_str(text).map_err(|e| Error::File {
        path: name.to_string(),
        message: e.to_string(),
    })
}

/// Build the validated config from inputs, the file and the run context.
pub fn build(inputs: &Inputs, file: &FileConfig, ctx: &Context) -> Result<Config, Error> {
    let command = match inputs
        .command
        .as_deref()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("deploy") => Command::Deploy,
        Some("promote") => Command::Promote,
        Some("rollback") => Command::Rollback,
        Some(other) => {
            return Err(invalid(
                "command",
                format!("`{other}` is not a command (use `deploy`, `promote` or `rollback`)"),
            ))
        }
    };
    let environment = inputs.environment.clone().ok_or(Error::NoEnvironment)?;
    let env = match file.environments.get(&environment) {
        Some(e) => e.clone(),
        // Without a file, inputs alone may describe the environment.
        None if file.environments.is_empty() => EnvironmentFile::default(),
        None => {
            return Err(Error::UnknownEnvironment {
                name: environment,
                known: file.environments.keys().cloned().collect(),
            })
        }
    };
    let missing = |key: &'static str| Error::Missing {
        key,
        environment: environment.clone(),
    };
    let pick = |input: &Option<String>, file_value: &Option<String>| {
        input.clone().or_else(|| file_value.clone())
    };

    let region = inputs
        .aws_region
        .clone()
        .or_else(|| env.region.clone())
        .or_else(|| file.region.clone())
        .ok_or_else(|| missing("aws-region"))?;
    validate_region(&region)?;

    let dry_run = inputs
        .dry_run
        .as_deref()
        .map(|v| parse_bool("dry-run", v))
        .transpose()?
        .unwrap_or(false);

    // Credentials.
    let role_to_assume = pick(&inputs.role_to_assume, &env.role_to_assume);
    if let Some(arn) = &role_to_assume {
        validate_role_arn(arn)?;
    }
    let raw_session = inputs.role_session_name.clone().unwrap_or_else(|| {
        format!(
            "cloudshop-deploy-{}-{}",
            ctx.run_id.as_deref().unwrap_or("local"),
            ctx.run_attempt.as_deref().unwrap_or("1")
        )
    });
    let duration_secs = match &inputs.role_duration_seconds {
        Some(v) => v.trim().parse::<u64>().map_err(|_| {
            invalid(
                "role-duration-seconds",
                format!("`{v}` is not a whole number of seconds"),
            )
        })?,
        None => 3600,
    };
    if !(900..=43200).contains(&duration_secs) {
        return Err(invalid(
            "role-duration-seconds",
            format!("{duration_secs} is outside 900..=43200 (STS limits); the session is refreshed during long waits anyway"),
        ));
    }
    let auth = Auth {
        role_to_assume,
        session_name: crate::aws::credentials::sanitize_session_name(&raw_session),
        duration: Duration::from_secs(duration_secs),
        audience: inputs
            .audience
            .clone()
            .unwrap_or_else(|| "sts.amazonaws.com".into()),
    };

    // Backend.
    let cluster = pick(&inputs.cluster, &env.cluster).ok_or_else(|| missing("cluster"))?;
    let service = pick(&inputs.service, &env.service).ok_or_else(|| missing("service"))?;
    let containers = match &inputs.container {
        Some(v) => parse_list(v),
        None => env
            .container
            .as_ref()
            .map(OneOrMany::to_vec)
            .unwrap_or_default(),
    };
    let repository = pick(&inputs.ecr_repository, &env.ecr_repository);
    let image_tag = match command {
        Command::Rollback => inputs.image_tag.clone(),
        Command::Promote => Some(inputs.image_tag.clone().ok_or_else(|| {
            invalid("image-tag", "`command: promote` needs the `image-tag` to promote (the git SHA tag tested on the source environment)")
        })?),
        Command::Deploy => Some(
            inputs
                .image_tag
                .clone()
                .or_else(|| ctx.sha.clone())
                .ok_or_else(|| invalid("image-tag", "no `image-tag` input and no `GITHUB_SHA` to default to"))?,
        ),
    };
    if let Some(tag) = &image_tag {
        validate_tag("image-tag", tag)?;
    }
    let repository = match (command, repository) {
        (Command::Rollback, r) => r.unwrap_or_default(),
        (_, Some(r)) => r,
        (_, None) => return Err(missing("ecr-repository")),
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
        .map(|p| inside_workspace("task-definition", &ctx.workspace, p))
        .transpose()?;
    let desired_count = match &inputs.desired_count {
        Some(v) => Some(
            v.trim()
                .parse::<i32>()
                .ok()
                .filter(|n| *n >= 0)
                .ok_or_else(|| {
                    invalid("desired-count", format!("`{v}` is not a whole number >= 0"))
                })?,
        ),
        None => env.desired_count,
    };
    let wait_timeout = match inputs
        .wait_timeout
        .as_deref()
        .or(env.wait_timeout.as_deref())
    {
        Some(v) => parse_duration("wait-timeout", v)?,
        None => Duration::from_secs(30 * 60),
    };
    let poll_interval = match &inputs.poll_interval {
        Some(v) => parse_duration("poll-interval", v)?,
        None => Duration::from_secs(3),
    };
    if poll_interval.is_zero() {
        return Err(invalid("poll-interval", "must be greater than zero"));
    }
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
    let registry_url = inputs
        .registry_url
        .clone()
        .or_else(|| env.registry_url.clone());
    let backend = Backend {
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
    };

    // Smoke tests.
    let smoke_file = env.smoke.clone().unwrap_or_default();
    let smoke_enabled = match &inputs.smoke_tests {
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
    let website_url = inputs
        .website_url
        .clone()
        .or_else(|| env.website_url.clone())
        .map(|u| validate_url("website-url", &u))
        .transpose()?;
    let cors_origin = match &smoke_file.cors {
        Some(CorsFile::Enabled(false)) => None,
        // An origin is scheme://host[:port]: a path or a stray character is the user's slip, and
        // finding it now beats a failed check (and a rollback) after the deploy.
        Some(CorsFile::Origin(o)) => Some(
            validate_url("smoke.cors", o)?
                .origin()
                .ascii_serialization(),
        ),
        _ => website_url
            .as_ref()
            .map(|u| u.origin().ascii_serialization()),
    };
    let checks = smoke_file.checks.clone().unwrap_or_else(default_checks);
    for c in &checks {
        if !matches!(
            c.method.to_ascii_uppercase().as_str(),
            "GET" | "HEAD" | "OPTIONS"
        ) {
            return Err(invalid(
                "smoke.checks",
                format!(
                    "method `{}` of `{}` is not GET, HEAD or OPTIONS",
                    c.method, c.path
                ),
            ));
        }
        if let Some(l) = &c.max_latency {
            parse_duration("smoke.checks.max-latency", l)?;
        }
        validate_check(c)?;
    }
    let dur = |key: &'static str,
               input: &Option<String>,
               file_value: &Option<String>,
               default: u64|
     -> Result<Duration, Error> {
        match input.as_deref().or(file_value.as_deref()) {
            Some(v) => parse_duration(key, v),
            None => Ok(Duration::from_secs(default)),
        }
    };
    let smoke = Smoke {
        enabled: smoke_enabled,
        base_url,
        checks,
        cors_origin,
        frontend_check: smoke_file.frontend_check.unwrap_or(true),
        website_url,
        timeout: dur(
            "smoke-timeout",
            &inputs.smoke_timeout,
            &smoke_file.timeout,
            120,
        )?,
        request_timeout: dur(
            "smoke.request-timeout",
            &None,
            &smoke_file.request_timeout,
            10,
        )?,
        retry_interval: dur("smoke.retry-interval", &None, &smoke_file.retry_interval, 1)?,
        watch: dur("watch", &inputs.watch, &smoke_file.watch, 0)?,
        watch_interval: dur(
            "smoke.watch-interval",
            &None,
            &smoke_file.watch_interval,
            15,
        )?,
        watch_failures: smoke_file.watch_failures.unwrap_or(3).max(1),
    };
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

    // Frontend.
    let frontend_file = env.frontend.clone().unwrap_or_default();
    let frontend_on = inputs
        .frontend
        .as_deref()
        .map(|v| parse_bool("frontend", v))
        .transpose()?;
    let bucket = pick(&inputs.frontend_bucket, &frontend_file.bucket);
    let dir = pick(&inputs.frontend_dir, &frontend_file.dir);
    let frontend = match (frontend_on, bucket, dir) {
        (Some(false), _, _) => None,
        (_, None, None) if frontend_on.is_none() => None,
        (_, None, _) => return Err(missing("frontend-bucket")),
        (_, Some(_), None) => return Err(missing("frontend-dir")),
        (_, Some(bucket), Some(dir)) => {
            let prefix = pick(&inputs.frontend_prefix, &frontend_file.prefix)
                .map(|p| p.trim_matches('/').to_string())
                .filter(|p| !p.is_empty())
                .map(|p| format!("{p}/"))
                .unwrap_or_default();
            let mut exclude = frontend_file.exclude.clone();
            if let Some(v) = &inputs.frontend_exclude {
                exclude.extend(parse_list(v));
            }
            for g in exclude
                .iter()
                .chain(frontend_file.cache_control.iter().map(|r| &r.glob))
            {
                globset::Glob::new(g)
                    .map_err(|e| invalid("frontend glob", format!("`{g}`: {e}")))?;
            }
            Some(Frontend {
                dir: inside_workspace("frontend-dir", &ctx.workspace, &dir)?,
                workspace: ctx.workspace.clone(),
                bucket,
                prefix,
                delete: match &inputs.frontend_delete {
                    Some(v) => parse_bool("frontend-delete", v)?,
                    None => frontend_file.delete.unwrap_or(true),
                },
                exclude,
                cache_rules: frontend_file.cache_control.clone(),
                cloudfront_distribution_id: pick(
                    &inputs.cloudfront_distribution_id,
                    &frontend_file.cloudfront_distribution_id,
                ),
            })
        }
    };

    // Promotion source.
    let promote = if command == Command::Promote {
        let source_name = inputs
            .source_environment
            .clone()
            .or_else(|| env.promote_from.clone())
            .ok_or_else(|| missing("source-environment"))?;
        if source_name == environment {
            return Err(invalid(
                "source-environment",
                "the source and target environments are the same",
            ));
        }
        let source = match file.environments.get(&source_name) {
            Some(s) => s.clone(),
            None if file.environments.is_empty() => EnvironmentFile::default(),
            None => {
                return Err(Error::UnknownEnvironment {
                    name: source_name,
                    known: file.environments.keys().cloned().collect(),
                })
            }
        };
        let source_region = source
            .region
            .clone()
            .or_else(|| file.region.clone())
            .unwrap_or_else(|| region.clone());
        validate_region(&source_region)?;
        if let Some(arn) = &source.role_to_assume {
            validate_role_arn(arn)?;
        }
        Some(Promote {
            source_repository: source.ecr_repository.clone().ok_or(Error::Missing {
                key: "ecr-repository",
                environment: source_name.clone(),
            })?,
            source_environment: source_name,
            source_region,
            source_role: source.role_to_assume.clone(),
        })
    } else {
        None
    };

    let image_archive = inputs
        .image_archive
        .as_deref()
        .map(|p| inside_workspace("image-archive", &ctx.workspace, p))
        .transpose()?;

    Ok(Config {
        command,
        environment,
        region,
        dry_run,
        auth,
        backend,
        smoke,
        frontend,
        promote,
        image_archive,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"
region: us-east-1
environments:
  stage:
    role-to-assume: arn:aws:iam::746669238399:role/cloudshop-deploy-stage
    cluster: stage-cluster
    service: stage-backend-blue
    container: backend
    ecr-repository: stage-cloudshop-backend
    api-url: http://stage-alb-458962299.us-east-1.elb.amazonaws.com
    website-url: http://stage-cloudshop-frontend-746669238399.s3-website-us-east-1.amazonaws.com
    frontend: { bucket: stage-cloudshop-frontend-746669238399, dir: frontend/build }
  prod:
    promote-from: stage
    role-to-assume: arn:aws:iam::746669238399:role/cloudshop-deploy-prod
    cluster: prod-cluster
    service: prod-backend
    ecr-repository: prod-cloudshop-backend
"#;

    fn ctx() -> Context {
        Context {
            sha: Some("0123456789abcdef0123456789abcdef01234567".into()),
            run_id: Some("42".into()),
            run_attempt: Some("2".into()),
            workspace: PathBuf::from("/github/workspace"),
            ..Context::default()
        }
    }

    fn inputs(pairs: &[(&str, &str)]) -> Inputs {
        Inputs::from_env(
            pairs
                .iter()
                .map(|(k, v)| (format!("INPUT_{k}"), v.to_string())),
        )
        .unwrap()
    }

    fn build_sample(pairs: &[(&str, &str)]) -> Result<Config, Error> {
        build(
            &inputs(pairs),
            &parse_file("f.yml", SAMPLE).unwrap(),
            &ctx(),
        )
    }

    #[test]
    fn stage_from_file_with_defaults() {
        let c = build_sample(&[("ENVIRONMENT", "stage")]).unwrap();
        assert_eq!(c.command, Command::Deploy);
        assert_eq!(c.region, "us-east-1");
        assert_eq!(c.backend.cluster, "stage-cluster");
        assert_eq!(c.backend.containers, vec!["backend"]);
        assert_eq!(
            c.backend.image_tag.as_deref(),
            Some("0123456789abcdef0123456789abcdef01234567")
        );
        assert_eq!(c.backend.wait_timeout, Duration::from_secs(1800));
        assert!(c.backend.rollback_on_failure);
        assert_eq!(c.auth.session_name, "cloudshop-deploy-42-2");
        assert_eq!(c.auth.duration, Duration::from_secs(3600));
        assert_eq!(c.auth.audience, "sts.amazonaws.com");
        let f = c.frontend.unwrap();
        assert_eq!(f.dir, PathBuf::from("/github/workspace/frontend/build"));
        assert!(f.delete);
        assert_eq!(c.smoke.checks.len(), 2);
        assert_eq!(
            c.smoke.cors_origin.as_deref(),
            Some("http://stage-cloudshop-frontend-746669238399.s3-website-us-east-1.amazonaws.com")
        );
        assert_eq!(c.smoke.timeout, Duration::from_secs(120));
    }

    #[test]
    fn inputs_override_the_file() {
        let c = build_sample(&[
            ("ENVIRONMENT", "stage"),
            ("CLUSTER", "other"),
            ("WAIT-TIMEOUT", "1h 5m"),
            ("AWS-REGION", "eu-west-1"),
            ("EXTRA-TAGS", "latest, stage\nv1"),
            ("FRONTEND", "false"),
        ])
        .unwrap();
        assert_eq!(c.backend.cluster, "other");
        assert_eq!(c.region, "eu-west-1");
        assert_eq!(c.backend.wait_timeout, Duration::from_secs(3900));
        assert_eq!(c.backend.extra_tags, vec!["latest", "stage", "v1"]);
        assert!(c.frontend.is_none());
    }

    #[test]
    fn promote_takes_the_source_from_the_file() {
        let c = build_sample(&[
            ("ENVIRONMENT", "prod"),
            ("COMMAND", "promote"),
            ("IMAGE-TAG", "abc1234"),
        ])
        .unwrap();
        let p = c.promote.unwrap();
        assert_eq!(p.source_environment, "stage");
        assert_eq!(p.source_repository, "stage-cloudshop-backend");
        let err = build_sample(&[("ENVIRONMENT", "prod"), ("COMMAND", "promote")]).unwrap_err();
        assert!(err.to_string().contains("image-tag"), "{err}");
    }

    #[test]
    fn errors_name_the_problem() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[], "input `environment` is required"),
            (
                &[("ENVIRONMENT", "qa")],
                "unknown environment `qa` (configured: prod, stage)",
            ),
            (
                &[
                    ("ENVIRONMENT", "stage"),
                    ("ROLE-TO-ASSUME", "arn:aws:iam::123:role/x"),
                ],
                "invalid `role-to-assume`",
            ),
            (
                &[("ENVIRONMENT", "stage"), ("WAIT-TIMEOUT", "soon")],
                "invalid `wait-timeout`: `soon` is not a duration",
            ),
            (
                &[("ENVIRONMENT", "stage"), ("ROLE-DURATION-SECONDS", "60")],
                "outside 900..=43200",
            ),
            (
                &[("ENVIRONMENT", "stage"), ("DRY-RUN", "maybe")],
                "invalid `dry-run`",
            ),
            (
                &[("ENVIRONMENT", "stage"), ("COMMAND", "destroy")],
                "`destroy` is not a command",
            ),
            (
                &[("ENVIRONMENT", "stage"), ("IMAGE-TAG", "a b")],
                "not a valid image tag",
            ),
            (
                &[("ENVIRONMENT", "stage"), ("FRONTEND-DIR", "../../etc")],
                "outside the workspace",
            ),
            (
                &[("ENVIRONMENT", "stage"), ("AWS-REGION", "Mars")],
                "not an AWS region",
            ),
        ];
        for (pairs, want) in cases {
            let err = build_sample(pairs).unwrap_err().to_string();
            assert!(err.contains(want), "{pairs:?}: `{err}` lacks `{want}`");
        }
    }

    #[test]
    fn unknown_key_has_a_line_number() {
        let err = parse_file(
            "f.yml",
            "region: us-east-1\nenvironments:\n  stage:\n    clustr: x\n",
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("unknown field `clustr`"), "{msg}");
        assert!(msg.contains("line 4"), "{msg}");
    }

    #[test]
    fn role_arns() {
        assert!(validate_role_arn("arn:aws:iam::746669238399:role/cloudshop-deploy-stage").is_ok());
        assert!(validate_role_arn("arn:aws:iam::746669238399:role/path/to/r").is_ok());
        for bad in [
            "",
            "arn:aws:iam::74666923839:role/x",
            "arn:aws:s3:::bucket",
            "arn:aws:iam::746669238399:user/x",
            "arn:aws:iam::746669238399:role/",
        ] {
            assert!(validate_role_arn(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn smoke_checks_are_validated_before_anything_runs() {
        let with_checks = |checks: &str| {
            let yaml = format!(
                "region: us-east-1\nenvironments:\n  stage:\n    cluster: c\n    service: s\n    ecr-repository: r\n    api-url: http://api.example\n    smoke:\n      checks:\n{checks}"
            );
            build(
                &inputs(&[("ENVIRONMENT", "stage")]),
                &parse_file("f.yml", &yaml).unwrap(),
                &ctx(),
            )
        };
        let ok =
            with_checks("        - { path: /health, headers: { X-Api-Key: s3cr3t } }\n").unwrap();
        assert_eq!(ok.smoke.checks.len(), 1);
        assert_eq!(ok.smoke.retry_interval, Duration::from_secs(1));
        for (checks, want) in [
            ("        - { path: health }\n", "must start with `/`"),
            ("        - { path: /a b }\n", "space"),
            (
                "        - { path: /h, headers: { \"bad name\": x } }\n",
                "not a header name",
            ),
            (
                "        - { path: /h, headers: { X-Key: \"s3cr3t\\n\" } }\n",
                "not a valid header value",
            ),
            (
                "        - { path: /h, method: HEAD, body-contains: ok }\n",
                "has no body",
            ),
            (
                "        - { path: /h, method: POST }\n",
                "is not GET, HEAD or OPTIONS",
            ),
        ] {
            let err = with_checks(checks).unwrap_err().to_string();
            assert!(err.contains(want), "{checks}: `{err}` lacks `{want}`");
            assert!(!err.contains("s3cr3t"), "a header value was echoed: {err}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("k", "0").unwrap(), Duration::ZERO);
        assert_eq!(parse_duration("k", "90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("k", "2m").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("k", "-1s").is_err());
    }
}
