//! The environments file as written: serde types that refuse unknown keys (the parser names the line),
//! holding raw strings. Nothing here is validated beyond its YAML type; the builders turn these into
//! the compiled `Config`. No AWS API.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One value or a list (`container: backend` or `container: [backend, worker]`).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(untagged)]
pub enum OneOrMany<T> {
    One(T),
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
    #[serde(default)]
    pub environments: BTreeMap<String, EnvironmentFile>,
}

/// One environment in the file. Keys are the input names; an input overrides its key.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct EnvironmentFile {
    pub region: Option<String>,
    pub role_to_assume: Option<String>,
    /// The GitHub environment the deploy job runs in (default: this environment's name). When set
    /// explicitly, the OIDC token's `environment` claim must equal it.
    pub github_environment: Option<String>,
    pub cluster: Option<String>,
    pub service: Option<String>,
    pub container: Option<OneOrMany<String>>,
    pub ecr_repository: Option<String>,
    /// The default base URL of the smoke tests.
    pub api_url: Option<String>,
    pub website_url: Option<String>,
    /// The environment `promote` copies from.
    pub promote_from: Option<String>,
    pub registry_url: Option<String>,
    pub wait_timeout: Option<String>,
    pub rollback_on_failure: Option<bool>,
    pub desired_count: Option<i32>,
    pub frontend: Option<FrontendFile>,
    pub smoke: Option<SmokeFile>,
    pub diagnosis: Option<DiagnosisFile>,
    /// A one-off task run with the new revision before the service update.
    pub migrate: Option<super::migrate::MigrateFile>,
    /// How the new revision is judged against the old one during a canary or linear traffic shift.
    pub canary: Option<super::canary::CanaryFile>,
    /// What a promotion into this environment requires of the source release.
    pub promote: Option<PromoteFile>,
}

/// `promote:` of the environment promoted into.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct PromoteFile {
    /// The gates the source release must have passed (default: rollout and smoke).
    pub require: Option<Vec<String>>,
    /// Refuse the promotion unless the job's GitHub environment has required reviewers (or the
    /// `approvers` fallback admits who dispatched it).
    pub require_approval: Option<bool>,
    /// GitHub logins that may dispatch a promotion when the environment has no required reviewers.
    pub approvers: Option<Vec<String>>,
    /// Let a listed approver promote a commit they wrote (default false).
    pub allow_self_approval: Option<bool>,
}

/// What a failed rollout shows of the failing tasks.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct DiagnosisFile {
    /// Last log lines read per stopped task (default 50, at most 1000; 0 turns log reading off).
    pub log_lines: Option<u32>,
}

/// `frontend:` of an environment.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct FrontendFile {
    pub bucket: Option<String>,
    /// The build folder, relative to the workspace.
    pub dir: Option<String>,
    pub prefix: Option<String>,
    /// Delete objects that are not in the build (default true).
    pub delete: Option<bool>,
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Ordered glob -> Cache-Control rules; the first match wins, before the built-in defaults.
    #[serde(default)]
    pub cache_control: Vec<CacheRule>,
    pub cloudfront_distribution_id: Option<String>,
    /// `KEY: value` substituted for `__CLOUDSHOP_KEY__` in the build's text files at sync time.
    #[serde(default)]
    pub values: std::collections::BTreeMap<String, String>,
    /// Publish the build as an artifact on deploy and promote from it (default true).
    pub artifact: Option<bool>,
}

/// A Cache-Control rule as written.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct CacheRule {
    /// Glob over the path relative to the build folder (`static/**`, `*.html`).
    pub glob: String,
    pub value: String,
}

/// `smoke:` of an environment.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct SmokeFile {
    /// Run the smoke tests (default true).
    pub enabled: Option<bool>,
    /// Base URL of the API (default: `api-url`).
    pub url: Option<String>,
    /// The load balancer's test listener (blue/green, linear, canary): where the checks go while the
    /// new revision takes only test traffic.
    pub test_url: Option<String>,
    /// Overall budget of the checks (humantime; default 2 min).
    pub timeout: Option<String>,
    /// Per-request timeout (humantime; default 10 s).
    pub request_timeout: Option<String>,
    /// The traffic sample sent to the test listener after the checks pass at a test-traffic pause.
    pub test_sample: Option<TestSampleFile>,
    /// Base delay between retries of a failing check (doubled each attempt, jittered, capped at 30 s).
    pub retry_interval: Option<String>,
    /// `false` turns off the CORS check; a string sets the origin (default: the website URL).
    pub cors: Option<CorsFile>,
    /// Check the website URL after the frontend sync (default true when a website URL is known).
    pub frontend_check: Option<bool>,
    /// Keep watching this long after a good deploy (humantime; default: no watch).
    pub watch: Option<String>,
    /// Interval between watch rounds (humantime; default 15 s).
    pub watch_interval: Option<String>,
    /// Consecutive failed rounds that count as sustained (default 3).
    pub watch_failures: Option<u32>,
    /// What the watch reads besides the checks (metrics, error lines) and their limits.
    pub watch_signals: Option<super::signals::WatchSignalsFile>,
    pub checks: Option<Vec<CheckFile>>,
    /// Run the write sequences (default: true, false for a production environment).
    pub write: Option<bool>,
    /// Named write sequences, run in order after the checks.
    pub sequences: Option<Vec<SequenceFile>>,
}

/// `smoke.test-sample:` as written.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct TestSampleFile {
    /// Requests to send (default 100; 0 turns the sample off).
    pub requests: Option<u32>,
    /// The share of 5xx answers and failed requests that fails it (default 0.01, in [0, 1)).
    pub max_error_share: Option<f64>,
}

/// One write sequence as written: steps run in order; `cleanup` steps run even after a failure.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct SequenceFile {
    pub name: String,
    pub steps: Vec<StepFile>,
}

/// One step of a sequence: a check that may write, send a JSON body and capture values.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct StepFile {
    pub name: Option<String>,
    /// GET (default), HEAD, OPTIONS, POST, PUT, PATCH or DELETE.
    #[serde(default = "default_method")]
    pub method: String,
    /// Path relative to the base URL; `{name}` placeholders are filled (percent-encoded).
    pub path: String,
    /// JSON body (POST, PUT, PATCH); `{name}` placeholders in its strings are filled.
    pub body: Option<serde_json::Value>,
    pub status: Option<OneOrMany<u16>>,
    pub json: Option<JsonExpect>,
    pub body_contains: Option<String>,
    #[serde(default)]
    pub expect_headers: BTreeMap<String, String>,
    pub max_latency: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// `name: $.json.path` values taken from the JSON reply, for later steps' placeholders.
    #[serde(default)]
    pub capture: BTreeMap<String, String>,
    /// Run this step even when an earlier one failed (deleting what the sequence created).
    #[serde(default)]
    pub cleanup: bool,
}

impl StepFile {
    /// The check-shaped part (what a plain check also has).
    pub(super) fn check(&self) -> CheckFile {
        CheckFile {
            name: self.name.clone(),
            method: self.method.clone(),
            path: self.path.clone(),
            status: self.status.clone(),
            json: self.json.clone(),
            body_contains: self.body_contains.clone(),
            expect_headers: self.expect_headers.clone(),
            max_latency: self.max_latency.clone(),
            headers: self.headers.clone(),
        }
    }
}

/// `cors: false` or `cors: https://origin`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum CorsFile {
    Enabled(bool),
    /// The origin to test with.
    Origin(String),
}

/// One HTTP check as written; `CheckSpec` is its compiled form.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct CheckFile {
    /// Display name (default: `METHOD path`).
    pub name: Option<String>,
    /// GET (default), HEAD or OPTIONS.
    #[serde(default = "default_method")]
    pub method: String,
    /// Path relative to the base URL.
    pub path: String,
    /// Accepted status codes (default 200; an empty list: any 2xx).
    pub status: Option<OneOrMany<u16>>,
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
