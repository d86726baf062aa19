//! The integration tests' harness (a dev-only crate, so the compiler sees what nothing uses): the moto
//! AWS emulator (STS, ECR, S3, CloudFront), a local GitHub OIDC token endpoint, a runner for the real
//! binary with temp `GITHUB_OUTPUT`/`GITHUB_STEP_SUMMARY` files and the runner's parser for them, and
//! the redactions for whole-output snapshots. [`app`] is the miniature CloudShop API, [`ecs_sim`] the
//! ECS simulator, [`elb_sim`] the ELBv2 one, [`cw_sim`] the CloudWatch metrics one, [`registry`] a local OCI registry, [`seed`] seeds moto, [`secrets`] checks every run
//! for leaked secret values.
//!
//! One moto serves the whole run when `scripts/test` starts it ([`SHARED_MOTO_ENV`]); each test keeps
//! to its own resource names ([`Moto::name`], [`TestName`]). Every server binds 127.0.0.1 only; every
//! wait loop is bounded.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;

/// The repository root.
fn repo_root() -> PathBuf {
    // This crate lives one level below the repository root.
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    here.parent().map(Path::to_path_buf).unwrap_or(here)
}

/// The IAM actions a policy file in `docs/iam/` grants.
pub fn policy_actions(file: &str) -> std::collections::BTreeSet<String> {
    let path = repo_root().join("docs/iam").join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let v: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut out = std::collections::BTreeSet::new();
    for s in v["Statement"].as_array().expect("Statement") {
        match &s["Action"] {
            serde_json::Value::String(a) => {
                out.insert(a.clone());
            }
            serde_json::Value::Array(a) => {
                out.extend(a.iter().map(|x| x.as_str().expect("action").to_string()));
            }
            other => panic!("{file}: Action {other}"),
        }
    }
    out
}

/// A tool installed by `scripts/setup` into `.venv/bin`.
pub fn venv_bin(name: &str) -> PathBuf {
    let p = repo_root().join(".venv/bin").join(name);
    assert!(p.exists(), "{} is missing: run scripts/setup", p.display());
    p
}

/// A free TCP port on 127.0.0.1.
///
/// For servers started as child processes (moto, docker-registry), which bind the port later. The port is
/// drawn below Linux's ephemeral range (32768-60999): a port the kernel handed out for `:0` and then
/// released could be handed out again to another test's `:0` listener before the child binds it, and
/// the child would then fail while the test talked to a stranger's server.
pub fn free_port() -> u16 {
    use rand::Rng;
    let mut rng = rand::rng();
    for _ in 0..1000 {
        let port = rng.random_range(20_000..32_000);
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in 20000..32000 after 1000 tries");
}

/// Start a server process (stdout discarded, stderr to `log`) and wait (bounded) until it listens on
/// `port`. A process that exits first fails the test with its log, instead of the test talking to
/// whatever else might listen there.
pub(crate) fn spawn_listening(mut cmd: Command, log: &Path, port: u16, within: Duration) -> Child {
    let stderr = std::fs::File::create(log)
        .map(Stdio::from)
        .unwrap_or(Stdio::null());
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap_or_else(|e| panic!("start {cmd:?}: {e}"));
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "{cmd:?} exited ({status}) before listening on {port}:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return child;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("{cmd:?} did not listen on 127.0.0.1:{port} within {within:?}");
}

/// Names a moto that the whole test run shares (`http://127.0.0.1:PORT`); `scripts/test` starts it and
/// stops it. Unset, [`Moto::shared`] starts a moto of the test's own, so `cargo nextest run -E ...` alone
/// still works.
pub const SHARED_MOTO_ENV: &str = "CLOUDSHOP_TEST_MOTO";

/// A moto server (one port serves STS, ECR, ECS, S3, EC2): the run's shared one, or one of this test's
/// own, killed on drop.
pub struct Moto {
    /// `None` for the shared moto, which outlives every test.
    child: Option<Child>,
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
}

impl Moto {
    /// Start an empty moto of this test's own on a free port and wait until it answers.
    pub fn start() -> Moto {
        let port = free_port();
        let log = std::env::temp_dir().join(format!("moto-{port}.log"));
        let mut cmd = Command::new(venv_bin("moto_server"));
        cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
        let child = spawn_listening(cmd, &log, port, Duration::from_secs(60));
        secrets::register_moto(&format!("http://127.0.0.1:{port}"));
        Moto {
            child: Some(child),
            endpoint: format!("http://127.0.0.1:{port}"),
        }
    }

    /// The run's moto when [`SHARED_MOTO_ENV`] names one and nextest runs the test, else [`Moto::start`].
    /// Other tests use the same moto at the same time: name every repository and bucket with
    /// [`Moto::name`] or [`TestName`]. Those names are unique per process, and only nextest gives each
    /// test a process of its own (`cargo test` runs them as threads of one).
    pub fn shared() -> Moto {
        let endpoint = match std::env::var(SHARED_MOTO_ENV) {
            Ok(url) if !url.is_empty() && std::env::var_os("NEXTEST").is_some() => {
                url.trim_end_matches('/').to_string()
            }
            _ => return Moto::start(),
        };
        let port = endpoint
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("{SHARED_MOTO_ENV}={endpoint} is not http://127.0.0.1:PORT"));
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(),
            "{SHARED_MOTO_ENV}={endpoint}: nothing listens there"
        );
        secrets::register_moto(&endpoint);
        Moto {
            child: None,
            endpoint,
        }
    }

    /// `base` made unique to this test (`t1a2b3c4d-base`, still a valid bucket and repository name);
    /// [`SNAPSHOT_FILTERS`] turns the prefix back into `[test]-`.
    pub fn name(&self, base: &str) -> String {
        format!("{}{base}", test_prefix())
    }

    /// An `SdkConfig` for seeding and inspecting moto from the test.
    pub async fn sdk_config(&self) -> aws_types::SdkConfig {
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_types::region::Region::new("us-east-1"))
            .endpoint_url(&self.endpoint)
            .credentials_provider(aws_credential_types::Credentials::new(
                "testing", "testing", None, None, "test",
            ))
            .http_client(cloudshop_deploy::aws::http_client())
            .load()
            .await
    }

    /// An S3 client with path-style addressing (moto needs it on an IP endpoint).
    pub async fn s3(&self) -> aws_sdk_s3::Client {
        let sdk = self.sdk_config().await;
        aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&sdk)
                .force_path_style(true)
                .build(),
        )
    }

    /// Write `lines` (oldest first) to a CloudWatch Logs stream, creating the group and the stream, as
    /// the `awslogs` driver of a task would.
    pub async fn put_log_lines(&self, group: &str, stream: &str, lines: &[&str]) {
        let logs = aws_sdk_cloudwatchlogs::Client::new(&self.sdk_config().await);
        let _ = logs.create_log_group().log_group_name(group).send().await;
        logs.create_log_stream()
            .log_group_name(group)
            .log_stream_name(stream)
            .send()
            .await
            .expect("create log stream");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        let events: Vec<aws_sdk_cloudwatchlogs::types::InputLogEvent> = lines
            .iter()
            .enumerate()
            .map(|(i, l)| {
                aws_sdk_cloudwatchlogs::types::InputLogEvent::builder()
                    .timestamp(now - 1000 + i as i64)
                    .message(*l)
                    .build()
                    .expect("log event")
            })
            .collect();
        logs.put_log_events()
            .log_group_name(group)
            .log_stream_name(stream)
            .set_log_events(Some(events))
            .send()
            .await
            .expect("put log events");
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `t`, 8 random hex digits and `-`: one per process, so one per test under nextest.
fn test_prefix() -> &'static str {
    static PREFIX: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PREFIX.get_or_init(|| format!("t{:08x}-", rand::random::<u32>()))
}

/// A resource name made unique to this test (`t1a2b3c4d-base`) that can stand in a `const`, for the tests
/// that name one bucket or repository everywhere: it derefs to `str`, formats, and converts into a
/// `String`, always with the test's prefix.
#[derive(Debug, Clone, Copy)]
pub struct TestName(pub &'static str);

impl std::ops::Deref for TestName {
    type Target = str;

    fn deref(&self) -> &str {
        // Each name is built once per process and kept, so it can be lent out as `&'static str`.
        static NAMES: std::sync::OnceLock<Mutex<BTreeMap<&'static str, &'static str>>> =
            std::sync::OnceLock::new();
        let mut names = NAMES
            .get_or_init(Mutex::default)
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        names
            .entry(self.0)
            .or_insert_with(|| Box::leak(format!("{}{}", test_prefix(), self.0).into_boxed_str()))
    }
}

impl std::fmt::Display for TestName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self)
    }
}

impl From<TestName> for String {
    fn from(name: TestName) -> String {
        name.to_string()
    }
}

impl From<&TestName> for String {
    fn from(name: &TestName) -> String {
        name.to_string()
    }
}

/// Serve `app` on 127.0.0.1 (a free port) from a runtime thread of its own, so tests that block on the
/// real binary keep it answering. Returns the port and the runtime (drop it to stop the server).
pub fn serve_on_own_thread(app: axum::Router) -> (u16, tokio::runtime::Runtime) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind 127.0.0.1:0");
    let port = listener.local_addr().expect("addr").port();
    rt.spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (port, rt)
}

/// The names declared under `section` (`inputs` or `outputs`) of action.yml.
pub fn action_yml_keys(section: &str) -> std::collections::BTreeSet<String> {
    let text = std::fs::read_to_string(repo_root().join("action.yml")).expect("read action.yml");
    let v: yaml_serde::Value = yaml_serde::from_str(&text).expect("parse action.yml");
    v[section]
        .as_mapping()
        .expect("a mapping")
        .keys()
        .filter_map(|k| k.as_str().map(str::to_string))
        .collect()
}

/// A JWT-shaped token (unsigned; moto accepts any token) with the given `sub` and, when given, the
/// `environment` claim GitHub adds for a job that names an environment.
pub fn fake_jwt(sub: &str, environment: Option<&str>) -> String {
    let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s.as_bytes());
    let mut claims = serde_json::json!({
        "sub": sub,
        "aud": "sts.amazonaws.com",
        "iss": "https://token.actions.githubusercontent.com",
    });
    if let Some(env) = environment {
        claims["environment"] = serde_json::Value::String(env.to_string());
    }
    format!(
        "{}.{}.{}",
        b64(r#"{"alg":"RS256","typ":"JWT"}"#),
        b64(&claims.to_string()),
        b64("signature-that-nobody-checks")
    )
}

/// One request the OIDC endpoint received.
#[derive(Debug, Clone)]
pub struct OidcRequest {
    /// Path and query.
    pub uri: String,
    /// The `Authorization` header.
    pub authorization: Option<String>,
}

/// A local stand-in for the runner's OIDC token endpoint.
pub struct OidcServer {
    /// Base URL, already with a query (as the runner's is).
    pub request_url: String,
    /// The token it hands out.
    pub token: String,
    /// What it received.
    pub requests: Arc<Mutex<Vec<OidcRequest>>>,
    _rt: tokio::runtime::Runtime,
}

impl OidcServer {
    /// Serve tokens with the given `sub` (and no `environment` claim) on a free port (on its own
    /// runtime thread).
    pub fn start(sub: &str) -> OidcServer {
        Self::with_token(fake_jwt(sub, None))
    }

    /// Serve tokens of a job that runs in GitHub environment `environment`: its `sub` and
    /// `environment` claims say so.
    pub fn in_environment(repo: &str, environment: &str) -> OidcServer {
        Self::with_token(fake_jwt(
            &format!("repo:{repo}:environment:{environment}"),
            Some(environment),
        ))
    }

    /// Serve this token.
    pub fn with_token(token: String) -> OidcServer {
        secrets::register(secrets::SecretKind::OidcToken, &token);
        use axum::{extract::OriginalUri, http::HeaderMap, routing::get, Json, Router};
        let requests: Arc<Mutex<Vec<OidcRequest>>> = Arc::default();
        let (t, r) = (token.clone(), requests.clone());
        let app = Router::new().route(
            "/token",
            get(move |OriginalUri(uri): OriginalUri, headers: HeaderMap| {
                let (t, r) = (t.clone(), r.clone());
                async move {
                    r.lock().unwrap().push(OidcRequest {
                        uri: uri.to_string(),
                        authorization: headers
                            .get("authorization")
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_string),
                    });
                    Json(serde_json::json!({ "count": 1, "value": t }))
                }
            }),
        );
        let (port, rt) = serve_on_own_thread(app);
        OidcServer {
            request_url: format!("http://127.0.0.1:{port}/token?api-version=2.0"),
            token,
            requests,
            _rt: rt,
        }
    }
}

/// What a run of the binary left behind.
#[derive(Debug)]
pub struct RunResult {
    /// Exit code.
    pub code: i32,
    /// stdout.
    pub stdout: String,
    /// stderr.
    pub stderr: String,
    /// Parsed `GITHUB_OUTPUT`.
    pub outputs: BTreeMap<String, String>,
    /// Raw `GITHUB_OUTPUT` text.
    pub outputs_raw: String,
    /// `GITHUB_STEP_SUMMARY` text.
    pub summary: String,
}

impl RunResult {
    /// An output, or a panic naming what was there.
    pub fn output(&self, name: &str) -> &str {
        self.outputs.get(name).unwrap_or_else(|| {
            panic!(
                "no output `{name}`; outputs: {:?}\nstdout:\n{}\nstderr:\n{}",
                self.outputs, self.stdout, self.stderr
            )
        })
    }

    /// The `::error` lines on stdout.
    pub fn error_lines(&self) -> Vec<&str> {
        self.stdout
            .lines()
            .filter(|l| l.starts_with("::error"))
            .collect()
    }

    /// Everything printable the run left (for secret greps).
    pub fn everything(&self) -> String {
        format!(
            "{}\n{}\n{}\n{}",
            self.stdout, self.stderr, self.outputs_raw, self.summary
        )
    }

    /// The outputs (by name, multi-line values indented) and the job summary as one text: what a reader
    /// of the run sees, for a whole-output snapshot with [`SNAPSHOT_FILTERS`].
    pub fn snapshot(&self) -> String {
        let mut text = String::from("--- outputs\n");
        for (name, value) in &self.outputs {
            if value.contains('\n') {
                text.push_str(&format!("{name}:\n"));
                for line in value.lines() {
                    text.push_str(&format!("    {line}\n"));
                }
            } else {
                text.push_str(&format!("{name}: {value}\n"));
            }
        }
        text.push_str("--- summary\n");
        text.push_str(&sort_changed_objects(&self.summary));
        text
    }

    /// Dump for assertion messages.
    pub fn dump(&self) -> String {
        format!(
            "exit {}\n--- stdout\n{}\n--- stderr\n{}\n--- outputs\n{}\n--- summary\n{}",
            self.code, self.stdout, self.stderr, self.outputs_raw, self.summary
        )
    }
}

/// The rows of each "changed objects" table in `summary`, sorted: uploads run concurrently and the table
/// lists them as they finish, so their order differs from run to run. (That `index.html` goes last is
/// checked by the frontend tests, from the requests themselves.)
fn sort_changed_objects(summary: &str) -> String {
    let mut out = String::new();
    let mut lines = summary.split_inclusive('\n').peekable();
    while let Some(line) = lines.next() {
        out.push_str(line);
        if !line.contains("changed objects</summary>") {
            continue;
        }
        // Up to and including the table's separator row, as they are.
        for line in lines.by_ref() {
            out.push_str(line);
            if line.starts_with("|---") {
                break;
            }
        }
        let mut rows = Vec::new();
        while let Some(row) = lines.next_if(|l| l.starts_with('|')) {
            rows.push(row);
        }
        rows.sort_unstable();
        rows.into_iter().for_each(|row| out.push_str(row));
    }
    out
}

/// Redactions (insta `filters`) for [`RunResult::snapshot`]: what differs from run to run (loopback
/// ports, temp paths, clock times, durations, digests, random names) becomes a fixed placeholder, so a
/// snapshot changes only when what the user sees changes.
pub const SNAPSHOT_FILTERS: &[(&str, &str)] = &[
    (r"127\.0\.0\.1:\d+", "127.0.0.1:[port]"),
    (r"/tmp/\.tmp[A-Za-z0-9]+", "[tmp]"),
    (r"sha256:[0-9a-f]{64}", "sha256:[digest]"),
    (r"\bt[0-9a-f]{8}-", "[test]-"),
    (r"\b\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z", "[time]"),
    (r"\b\d+(\.\d+)?\s?(ms|µs|ns|s)\b", "[duration]"),
    (
        r#""(duration_ms|elapsed_ms|latency_ms|p50_ms|p95_ms|max_ms)":\s*\d+"#,
        r#""$1": [ms]"#,
    ),
    (r"(duration-seconds: )\d+", "${1}[seconds]"),
    // The Mermaid timeline's offsets are seconds since the start.
    (
        r"(?m)^(  [a-z ]+ : (?:crit, )?)\d+, \d+$",
        "${1}[start], [end]",
    ),
    // How often a failing check was tried depends on the clock: the count and the rows of tries.
    (r#""attempts":\d+"#, r#""attempts": [n]"#),
    (r"\(\d+ attempts\)", "([n] attempts)"),
    // The same inside Markdown text, where the summary escapes the parentheses.
    (r"\\\(\d+ attempts\\\)", r"\([n] attempts\)"),
    (
        r"\| \d+ \| \[duration\] \| \[duration\] \|",
        "| [n] | [duration] | [duration] |",
    ),
    (
        r"(?m)(^\| \d+ \| \d{3} \| \[duration\] \| [^\n]*\n)+",
        "| [tries] |\n",
    ),
];

/// Parse a `GITHUB_OUTPUT` file the way the runner does (heredoc and `name=value` forms); a later value
/// of a name replaces an earlier one, as in the runner.
pub fn parse_outputs(text: &str) -> BTreeMap<String, String> {
    parse_outputs_in_order(text).into_iter().collect()
}

/// Every output of a `GITHUB_OUTPUT` file in the order written, repeats included.
pub fn parse_outputs_in_order(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if let Some((name, delim)) = line.split_once("<<") {
            let mut value = Vec::new();
            for l in lines.by_ref() {
                if l == delim {
                    break;
                }
                value.push(l);
            }
            out.push((name.to_string(), value.join("\n")));
        } else if let Some((k, v)) = line.split_once('=') {
            out.push((k.to_string(), v.to_string()));
        }
    }
    out
}

/// A run of the real binary in a temp workspace, as the runner would start it.
pub struct Action {
    /// The workspace (`GITHUB_WORKSPACE`).
    pub workspace: tempfile::TempDir,
    files: tempfile::TempDir,
    env: BTreeMap<String, String>,
}

impl Default for Action {
    fn default() -> Self {
        Self::new()
    }
}

impl Action {
    /// A clean environment: no AWS credentials, no endpoint, IMDS off.
    pub fn new() -> Action {
        let workspace = tempfile::tempdir().expect("tempdir");
        let files = tempfile::tempdir().expect("tempdir");
        let mut env = BTreeMap::new();
        env.insert("PATH".into(), std::env::var("PATH").unwrap_or_default());
        env.insert("AWS_EC2_METADATA_DISABLED".into(), "true".into());
        env.insert("AWS_CONFIG_FILE".into(), "/nonexistent".into());
        env.insert("AWS_SHARED_CREDENTIALS_FILE".into(), "/nonexistent".into());
        env.insert("GITHUB_ACTIONS".into(), "true".into());
        env.insert(
            "GITHUB_WORKSPACE".into(),
            workspace.path().display().to_string(),
        );
        env.insert(
            "GITHUB_OUTPUT".into(),
            files.path().join("output").display().to_string(),
        );
        env.insert(
            "GITHUB_STEP_SUMMARY".into(),
            files.path().join("summary").display().to_string(),
        );
        env.insert(
            "GITHUB_SHA".into(),
            "0123456789abcdef0123456789abcdef01234567".into(),
        );
        env.insert("GITHUB_REPOSITORY".into(), "acme/cloudshop".into());
        env.insert("GITHUB_RUN_ID".into(), "4242".into());
        env.insert("GITHUB_RUN_ATTEMPT".into(), "1".into());
        Action {
            workspace,
            files,
            env,
        }
    }

    /// Point every AWS client at moto with its static test credentials.
    pub fn with_moto(mut self, moto: &Moto) -> Self {
        self.env
            .insert("AWS_ENDPOINT_URL".into(), moto.endpoint.clone());
        self.env
            .insert("AWS_ACCESS_KEY_ID".into(), "testing".into());
        self.env
            .insert("AWS_SECRET_ACCESS_KEY".into(), "testing".into());
        self
    }

    /// Set an input, spelled as the runner spells it (`INPUT_IMAGE-TAG`).
    pub fn input(mut self, name: &str, value: &str) -> Self {
        self.env.insert(
            format!("INPUT_{}", name.to_ascii_uppercase()),
            value.to_string(),
        );
        self
    }

    /// Set any environment variable.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        if key == "ACTIONS_ID_TOKEN_REQUEST_TOKEN" {
            secrets::register(secrets::SecretKind::RequestToken, value);
        }
        self.env.insert(key.to_string(), value.to_string());
        self
    }

    /// Remove an environment variable.
    pub fn without(mut self, key: &str) -> Self {
        self.env.remove(key);
        self
    }

    /// Write a file into the workspace.
    pub fn file(self, rel: &str, contents: &str) -> Self {
        let p = self.workspace.path().join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(p, contents).expect("write");
        self
    }

    /// The workspace path.
    pub fn workspace_path(&self) -> &Path {
        self.workspace.path()
    }

    /// Run the binary to completion (it is killed after `limit`).
    pub fn run(&self) -> RunResult {
        self.run_within(Duration::from_secs(300))
    }

    /// Run with a time limit.
    pub fn run_within(&self, limit: Duration) -> RunResult {
        let mut running = self.start();
        if !running.wait_within(limit) {
            let res = running.finish();
            panic!(
                "cloudshop-deploy ran longer than {limit:?}\nstdout:\n{}\nstderr:\n{}",
                res.stdout, res.stderr
            );
        }
        running.finish()
    }

    /// Start the binary and return at once.
    pub fn start(&self) -> Running {
        self.start_under(&[])
    }

    /// Start the binary as the last argument of `wrapper` (e.g. `["unshare", "-fp", "--mount-proc"]`),
    /// and return at once.
    pub fn start_under(&self, wrapper: &[&str]) -> Running {
        let output = self.files.path().join("output");
        let summary = self.files.path().join("summary");
        let _ = std::fs::remove_file(&output);
        let _ = std::fs::remove_file(&summary);
        // `CLOUDSHOP_DEPLOY_BIN` lets programs outside the test harness (the demo) name the binary.
        let bin = std::env::var_os("CLOUDSHOP_DEPLOY_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| assert_cmd::cargo::cargo_bin("cloudshop-deploy"));
        let mut cmd = match wrapper.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(bin);
                c
            }
            None => Command::new(bin),
        };
        let sts_recorder = secrets::sts_recorder_for(&self.env);
        let mut env = self.env.clone();
        if let Some(proxy) = &sts_recorder {
            env.insert("AWS_ENDPOINT_URL".into(), proxy.endpoint.clone());
        }
        cmd.env_clear()
            .envs(&env)
            .current_dir(self.workspace.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn cloudshop-deploy");
        // Drain the pipes on threads so a chatty run never blocks on a full pipe.
        let mut so = child.stdout.take().expect("stdout");
        let mut se = child.stderr.take().expect("stderr");
        let t_out = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = std::io::Read::read_to_string(&mut so, &mut s);
            s
        });
        let t_err = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = std::io::Read::read_to_string(&mut se, &mut s);
            s
        });
        Running {
            child,
            status: None,
            t_out,
            t_err,
            output,
            summary,
            env,
            sts_recorder,
        }
    }
}

/// A started run of the binary (see [`Action::start`]).
pub struct Running {
    child: Child,
    status: Option<std::process::ExitStatus>,
    t_out: std::thread::JoinHandle<String>,
    t_err: std::thread::JoinHandle<String>,
    output: PathBuf,
    summary: PathBuf,
    /// The run's environment: which secrets it could have seen ([`secrets::for_run`]).
    env: BTreeMap<String, String>,
    /// The recording proxy an OIDC run against moto goes through ([`secrets::sts_recorder_for`]).
    sts_recorder: Option<faults::FaultProxy>,
}

impl Running {
    /// The process started (the wrapper, when there is one).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The first child of the process started: the binary under a wrapper that forks (`unshare -f`).
    pub fn child_pid(&self) -> Option<u32> {
        let parent = self.child.id();
        let entries = std::fs::read_dir("/proc").ok()?;
        entries.flatten().find_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            // `pid (comm) state ppid ...`: comm may hold spaces, so split after the last `)`.
            let ppid: u32 = stat
                .rsplit_once(')')?
                .1
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()?;
            (ppid == parent).then_some(pid)
        })
    }

    /// Whether it has exited.
    pub fn exited(&mut self) -> bool {
        if self.status.is_none() {
            self.status = self.child.try_wait().expect("wait");
        }
        self.status.is_some()
    }

    /// Wait up to `limit` for it to exit (polling every 20 ms); whether it did.
    pub fn wait_within(&mut self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while !self.exited() {
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        true
    }

    /// Wait (bounded: 60 s) until `ready` says the run got to `what`, send SIGTERM to the action, and
    /// give it 5 s to exit, as the runner does before it kills a cancelled job's container. Panics when
    /// the run ends before it got there, or does not exit in time.
    pub fn sigterm_when(mut self, what: &str, ready: impl Fn() -> bool) -> RunResult {
        let mut tries = 0;
        while !ready() {
            assert!(
                !self.exited() && tries < 3000,
                "the run never got to {what}\n{}",
                self.finish().dump()
            );
            tries += 1;
            std::thread::sleep(Duration::from_millis(20));
        }
        let sent = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("kill");
        assert!(sent.success());
        let exited = self.wait_within(Duration::from_secs(5));
        let res = self.finish();
        assert!(exited, "still running 5 s after SIGTERM\n{}", res.dump());
        res
    }

    /// Collect what it printed and wrote; a run still going is killed first. Panics when a known
    /// secret value ([`secrets`]) shows up outside its own `::add-mask::` line.
    pub fn finish(mut self) -> RunResult {
        if !self.exited() {
            let _ = self.child.kill();
            self.status = self.child.wait().ok();
        }
        let stdout = self.t_out.join().unwrap_or_default();
        let stderr = self.t_err.join().unwrap_or_default();
        let outputs_raw = std::fs::read_to_string(&self.output).unwrap_or_default();
        let res = RunResult {
            code: self.status.and_then(|s| s.code()).unwrap_or(-1),
            stdout,
            stderr,
            outputs: parse_outputs(&outputs_raw),
            outputs_raw,
            summary: std::fs::read_to_string(&self.summary).unwrap_or_default(),
        };
        // Every run in the suite: no known secret value in anything it printed or wrote.
        let recorded = self
            .sts_recorder
            .as_ref()
            .map(secrets::sts_credentials_recorded)
            .unwrap_or_default();
        secrets::assert_no_leak(&secrets::for_run(&self.env, recorded), &res);
        res
    }
}

/// A catch-all HTTP server that records every request and answers 500: point `AWS_ENDPOINT_URL` at it to
/// prove a run made no AWS call at all.
pub struct RecordingServer {
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
    /// `METHOD path` of each request.
    pub requests: Arc<Mutex<Vec<String>>>,
    _rt: tokio::runtime::Runtime,
}

impl RecordingServer {
    /// Start it on a free port.
    pub fn start() -> RecordingServer {
        use axum::{extract::Request, http::StatusCode, Router};
        let requests: Arc<Mutex<Vec<String>>> = Arc::default();
        let r = requests.clone();
        let app = Router::new().fallback(move |req: Request| {
            let r = r.clone();
            async move {
                let target = req
                    .headers()
                    .get("x-amz-target")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                r.lock()
                    .unwrap()
                    .push(format!("{} {} {}", req.method(), req.uri(), target));
                (StatusCode::INTERNAL_SERVER_ERROR, "recording server")
            }
        });
        let (port, rt) = serve_on_own_thread(app);
        RecordingServer {
            endpoint: format!("http://127.0.0.1:{port}"),
            requests,
            _rt: rt,
        }
    }

    /// How many requests arrived.
    pub fn count(&self) -> usize {
        self.requests.lock().unwrap().len()
    }
}
pub mod alb;
pub mod app;
pub mod cw_sim;
pub mod ecs_sim;
pub mod elb_sim;
pub mod faults;
pub mod github_api;
pub mod pipeline;
pub mod registry;
pub mod rss;
pub mod secrets;
pub mod seed;

#[cfg(test)]
mod tests {
    use super::*;
    use cloudshop_deploy::github::files::Sinks;

    #[test]
    fn hostile_value_cannot_add_an_output() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out");
        let sinks = Sinks {
            output_file: Some(path.clone()),
            summary_file: None,
        };
        let hostile = "v1\nghadelimiter_0000\ninjected=yes\ninjected<<EOF\nx\nEOF";
        sinks
            .write_outputs(
                &[
                    ("tag".into(), hostile.into()),
                    ("status".into(), "deployed".into()),
                ],
                &mut std::io::sink(),
            )
            .unwrap();
        let parsed = parse_outputs_in_order(&std::fs::read_to_string(&path).unwrap());
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed[0], ("tag".to_string(), hostile.to_string()));
        assert_eq!(parsed[1], ("status".to_string(), "deployed".to_string()));
    }

    #[test]
    fn changed_objects_are_sorted_and_nothing_else_moves() {
        let summary = "| b | 2 |\n| a | 1 |\n<details><summary>2 changed objects</summary>\n\n| object | bytes |\n|---|---:|\n| `z.js` | 2 |\n| `a.js` | 1 |\n\n</details>\n";
        assert_eq!(
            sort_changed_objects(summary),
            "| b | 2 |\n| a | 1 |\n<details><summary>2 changed objects</summary>\n\n| object | bytes |\n|---|---:|\n| `a.js` | 1 |\n| `z.js` | 2 |\n\n</details>\n"
        );
    }

    #[test]
    fn parses_both_forms() {
        let parsed = parse_outputs_in_order("a=1\nb<<D\nx\ny\nD\nc=\n");
        assert_eq!(
            parsed,
            [("a", "1"), ("b", "x\ny"), ("c", "")].map(|(k, v)| (k.to_string(), v.to_string()))
        );
    }
}
