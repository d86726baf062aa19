//! The failing container's own output, in the failure: where a stopped task's log lines are (the task
//! definition's `awslogs` configuration: group, region, stream prefix -> `prefix/container/task-id`),
//! their last lines (masked, trimmed), and the known causes they show, each with its fix. FireLens or no
//! logging is reported as "no logs configured" with the fix; a role that may not read the logs gets a
//! note, never a failure.
//!
//! APIs: CloudWatch Logs `GetLogEvents`.

use std::sync::OnceLock;

use serde::Serialize;
use serde_json::Value;

/// How long a shown log line may be.
pub const MAX_LINE_CHARS: usize = 300;

/// Where a container's log lines go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Logging {
    /// The `awslogs` driver: readable with CloudWatch Logs.
    Awslogs {
        group: String,
        region: Option<String>,
        stream_prefix: Option<String>,
    },
    /// Another driver (`awsfirelens`, `splunk`, ...): the action cannot read it.
    Other { driver: String },
    /// No `logConfiguration` at all.
    None,
}

impl Logging {
    /// What to tell the reader when the lines cannot be shown.
    pub fn missing_note(&self, container: &str) -> Option<String> {
        match self {
            Logging::Awslogs {
                stream_prefix: None,
                ..
            } => Some(format!(
                "no logs configured for `{container}` that can be found: set `awslogs-stream-prefix` in \
                 its `logConfiguration` (Fargate names streams `prefix/container/task-id`)"
            )),
            Logging::Awslogs { .. } => None,
            Logging::Other { driver } => Some(format!(
                "no logs configured for `{container}` that the action can read (log driver `{driver}`): \
                 read them where that driver sends them, or use `awslogs`"
            )),
            Logging::None => Some(format!(
                "no logs configured for `{container}`: add a `logConfiguration` with the `awslogs` \
                 driver (group `/ecs/<env>/<service>`, `awslogs-stream-prefix`) to see why it stopped"
            )),
        }
    }

    /// The log stream of one task's container, when it can be known.
    pub fn stream(&self, container: &str, task_id: &str) -> Option<(String, String)> {
        match self {
            Logging::Awslogs {
                group,
                stream_prefix: Some(prefix),
                ..
            } => Some((group.clone(), format!("{prefix}/{container}/{task_id}"))),
            _ => None,
        }
    }
}

/// The logging of `container` in a task definition (the raw `DescribeTaskDefinition` JSON or the SDK's
/// task definition turned into JSON).
pub fn logging_of(task_definition: &Value, container: &str) -> Logging {
    let Some(def) = task_definition
        .get("containerDefinitions")
        .and_then(Value::as_array)
        .and_then(|cs| {
            cs.iter()
                .find(|c| c.get("name").and_then(Value::as_str) == Some(container))
        })
    else {
        return Logging::None;
    };
    let Some(conf) = def.get("logConfiguration") else {
        return Logging::None;
    };
    let driver = conf
        .get("logDriver")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if driver != "awslogs" {
        return Logging::Other { driver };
    }
    let opt = |k: &str| {
        conf.get("options")
            .and_then(|o| o.get(k))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    match opt("awslogs-group") {
        Some(group) => Logging::Awslogs {
            group,
            region: opt("awslogs-region"),
            stream_prefix: opt("awslogs-stream-prefix"),
        },
        None => Logging::None,
    }
}

/// The task id of a task ARN (`arn:...:task/cluster/ID` or the old `arn:...:task/ID`).
pub fn task_id(task_arn: &str) -> &str {
    task_arn.rsplit('/').next().unwrap_or(task_arn)
}

fn patterns() -> &'static [(regex_lite::Regex, &'static str)] {
    static P: OnceLock<Vec<(regex_lite::Regex, &'static str)>> = OnceLock::new();
    P.get_or_init(|| {
        let table: [(&str, &str); 7] = [
            // Userinfo in a URL: postgresql://user:password@host
            (r"://[^/\s:@]+:[^/\s@]+@", "://***@"),
            (r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b", "***"),
            (
                r"(?i)\b(aws_secret_access_key|aws_session_token|secret|token|api[_-]?key|password|passwd|pwd)(\s*[=:]\s*)([^\s,;&]+)",
                "$1$2***",
            ),
            (r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}", "$1 ***"),
            (
                r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}",
                "***",
            ),
            // Terminal colours and other escapes.
            (r"\x1b\[[0-9;]*[A-Za-z]", ""),
            (r"[\x00-\x08\x0b-\x1f\x7f]", " "),
        ];
        table
            .iter()
            .filter_map(|(re, with)| regex_lite::Regex::new(re).ok().map(|r| (r, *with)))
            .collect()
    })
}

/// Hides credentials in log lines: the values it was given (task-definition secrets' and environment
/// values with secret names, smoke-test header values) and anything shaped like a credential.
#[derive(Debug, Clone, Default)]
pub struct Masker {
    secrets: Vec<String>,
}

impl Masker {
    /// Values shorter than 4 characters are not masked: they would blank half of every line.
    pub fn new(secrets: impl IntoIterator<Item = String>) -> Self {
        let mut secrets: Vec<String> = secrets.into_iter().filter(|s| s.len() >= 4).collect();
        // Longest first, so a secret that contains another is replaced whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        Masker { secrets }
    }

    /// One line, masked and trimmed to [`MAX_LINE_CHARS`], on one line.
    pub fn line(&self, raw: &str) -> String {
        let mut s = raw.replace(['\r', '\n'], " ");
        for secret in &self.secrets {
            s = s.replace(secret.as_str(), "***");
        }
        for (re, with) in patterns() {
            s = re.replace_all(&s, *with).into_owned();
        }
        let s = s.trim_end();
        if s.chars().count() > MAX_LINE_CHARS {
            let cut: String = s.chars().take(MAX_LINE_CHARS).collect();
            format!("{cut}…")
        } else {
            s.to_string()
        }
    }
}

/// The values of the task definition's `environment` entries whose names say they are secret
/// (`DB_PASSWORD`, `API_TOKEN`, `DATABASE_URL`, ...), to mask in log lines. Values from `secrets` never
/// appear in the definition; only their ARNs do.
pub fn secret_values(task_definition: &Value) -> Vec<String> {
    const NAMES: [&str; 8] = [
        "PASS",
        "SECRET",
        "TOKEN",
        "KEY",
        "DSN",
        "CREDENTIAL",
        "DATABASE_URL",
        "AUTH",
    ];
    task_definition
        .get("containerDefinitions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| c.get("environment").and_then(Value::as_array))
        .flatten()
        .filter(|e| {
            e.get("name")
                .and_then(Value::as_str)
                .is_some_and(|n| NAMES.iter().any(|k| n.to_ascii_uppercase().contains(k)))
        })
        .filter_map(|e| e.get("value").and_then(Value::as_str).map(str::to_string))
        .collect()
}

/// A cause recognised in a task's log lines or exit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Cause {
    pub what: &'static str,
    pub fix: &'static str,
}

/// The table of known causes: any of the (lowercase) needles in a line -> the cause.
const KNOWN: &[(&[&str], Cause)] = &[
    (
        &["password authentication failed", "access denied for user"],
        Cause {
            what: "the database refused the app's credentials",
            fix: "check the DB password the task gets (task definition `secrets` from Secrets Manager/SSM) against the RDS user",
        },
    ),
    (
        &[
            "could not connect to server",
            "connection refused",
            "connection timed out",
            "timeout expired",
            "could not translate host name",
            "name or service not known",
        ],
        Cause {
            what: "the app cannot reach its database",
            fix: "check the security group ECS -> RDS (PostgreSQL port 5432 from the tasks' security group), the DB host in `DATABASE_URL`, and that the instance is available",
        },
    ),
    (
        &["relation \"", "undefinedtable", "no such table"],
        Cause {
            what: "the database schema is missing a table: a migration did not run",
            fix: "run the migrations (e.g. `alembic upgrade head`) before the new version takes traffic",
        },
    ),
    (
        &[
            "read-only transaction",
            "permission denied for table",
            "permission denied for relation",
            "permission denied for schema",
        ],
        Cause {
            what: "the database user may not write",
            fix: "grant the app's DB user INSERT/UPDATE/DELETE on its tables, or point it at the writer endpoint",
        },
    ),
    (
        &["no space left on device"],
        Cause {
            what: "a disk is full",
            fix: "free space on the database (RDS storage) or raise the task's ephemeral storage",
        },
    ),
    (
        &["exec format error"],
        Cause {
            what: "the image was built for another CPU architecture",
            fix: "build the image for linux/amd64 (`docker buildx build --platform linux/amd64`), or set the task definition's `runtimePlatform.cpuArchitecture` to match",
        },
    ),
    (
        &["modulenotfounderror", "importerror", "no module named"],
        Cause {
            what: "the image lacks a Python module the app imports",
            fix: "add the package to requirements.txt and rebuild the image",
        },
    ),
    (
        &[
            "keyerror: '",
            "environment variable",
            "field required",
            "missing required",
        ],
        Cause {
            what: "a setting the app needs is missing",
            fix: "add the variable to the container's `environment` or `secrets` in the task definition",
        },
    ),
    (
        &["address already in use"],
        Cause {
            what: "the app's port is taken inside the task",
            fix: "run one server per container, on the port of the container's `portMappings`",
        },
    ),
    (
        &["outofmemory", "out of memory", "memoryerror", "oomkilled"],
        Cause {
            what: "the container ran out of memory",
            fix: "raise the task's or container's memory in the task definition, or find the leak",
        },
    ),
];

/// The exit code the kernel's OOM killer leaves (128 + SIGKILL).
const OOM_EXIT: i32 = 137;

/// The causes shown by a task's log lines and its container exit code, each once, in table order.
pub fn known_causes(lines: &[String], exit_code: Option<i32>) -> Vec<Cause> {
    let lower: Vec<String> = lines.iter().map(|l| l.to_lowercase()).collect();
    let mut out: Vec<Cause> = KNOWN
        .iter()
        .filter(|(needles, _)| lower.iter().any(|l| needles.iter().any(|n| l.contains(n))))
        .map(|(_, c)| *c)
        .collect();
    if exit_code == Some(OOM_EXIT) {
        let oom = KNOWN
            .iter()
            .map(|(_, c)| *c)
            .find(|c| c.what == "the container ran out of memory");
        if let Some(c) = oom {
            if !out.contains(&c) {
                out.push(c);
            }
        }
    }
    out
}

/// The port the app says it listens on (`Uvicorn running on http://0.0.0.0:8000`,
/// `Listening at: http://0.0.0.0:8000`), from its log lines.
pub fn listening_port(lines: &[String]) -> Option<u16> {
    static RE: OnceLock<Option<regex_lite::Regex>> = OnceLock::new();
    let re = RE
        .get_or_init(|| {
            regex_lite::Regex::new(
                r"(?i)(?:running on|listening (?:at|on)):?\s+https?://[^\s:/]+:(\d{1,5})",
            )
            .ok()
        })
        .as_ref()?;
    lines
        .iter()
        .rev()
        .find_map(|l| re.captures(l).and_then(|c| c.get(1)?.as_str().parse().ok()))
}

/// A port mismatch between what the app listens on and what the load balancer checks.
pub fn port_mismatch(listening: Option<u16>, checked: Option<u16>) -> Option<Cause> {
    match (listening, checked) {
        (Some(l), Some(c)) if l != c => Some(Cause {
            what: "the app listens on another port than the load balancer checks",
            fix: "make the container's `portMappings.containerPort`, the target group's port and the app's listen port the same",
        }),
        _ => None,
    }
}

/// Why the last lines of a task could not be read, or that there were none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TaskLogs {
    pub task_id: String,
    pub container: String,
    /// `group` and `stream`, when known.
    pub stream: Option<(String, String)>,
    /// The last lines, oldest first, masked.
    pub lines: Vec<String>,
    /// Why there are no lines (no logs configured, access denied, stream gone).
    pub note: Option<String>,
    pub causes: Vec<Cause>,
}

/// Read the last `limit` lines of one stream, oldest first, masked.
pub async fn tail(
    logs: &aws_sdk_cloudwatchlogs::Client,
    group: &str,
    stream: &str,
    limit: i32,
    masker: &Masker,
) -> Result<Vec<String>, String> {
    let out = logs
        .get_log_events()
        .log_group_name(group)
        .log_stream_name(stream)
        .start_from_head(false)
        .limit(limit.clamp(1, 10_000))
        .send()
        .await
        .map_err(|e| {
            let code = crate::aws::code(&e).unwrap_or("").to_string();
            match code.as_str() {
                "AccessDeniedException" => format!(
                    "the role may not read `{group}` (add `logs:GetLogEvents` on it to see the app's lines)"
                ),
                "ResourceNotFoundException" => {
                    format!("no log stream `{stream}` in `{group}`: the container never started")
                }
                _ => format!(
                    "failed to read `{group}`: {}",
                    crate::aws::describe(&e)
                ),
            }
        })?;
    Ok(out
        .events()
        .iter()
        .filter_map(|e| e.message())
        .map(|m| masker.line(m))
        .filter(|l| !l.is_empty())
        .collect())
}

/// The last lines of one stopped task's container, with the causes they show.
pub async fn task_logs(
    logs: &aws_sdk_cloudwatchlogs::Client,
    logging: &Logging,
    container: &str,
    task_arn: &str,
    exit_code: Option<i32>,
    limit: i32,
    masker: &Masker,
) -> TaskLogs {
    let id = task_id(task_arn).to_string();
    let stream = logging.stream(container, &id);
    let (lines, note) = match (&stream, logging.missing_note(container)) {
        (Some((group, name)), _) => match tail(logs, group, name, limit, masker).await {
            Ok(lines) if lines.is_empty() => (lines, Some(format!("`{group}/{name}` is empty"))),
            Ok(lines) => (lines, None),
            Err(note) => (Vec::new(), Some(note)),
        },
        (None, note) => (Vec::new(), note),
    };
    let causes = known_causes(&lines, exit_code);
    TaskLogs {
        task_id: id,
        container: container.to_string(),
        stream,
        lines,
        note,
        causes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn logging_from_the_task_definition() {
        let td = json!({"containerDefinitions": [
            {"name": "backend", "logConfiguration": {"logDriver": "awslogs", "options": {
                "awslogs-group": "/ecs/stage/backend-blue", "awslogs-region": "us-east-1",
                "awslogs-stream-prefix": "ecs"}}},
            {"name": "router", "logConfiguration": {"logDriver": "awsfirelens"}},
            {"name": "sidecar"}
        ]});
        let backend = logging_of(&td, "backend");
        assert_eq!(
            backend.stream("backend", "0a1b2c"),
            Some((
                "/ecs/stage/backend-blue".to_string(),
                "ecs/backend/0a1b2c".to_string()
            ))
        );
        assert_eq!(backend.missing_note("backend"), None);
        let router = logging_of(&td, "router");
        assert_eq!(
            router,
            Logging::Other {
                driver: "awsfirelens".into()
            }
        );
        assert!(router
            .missing_note("router")
            .unwrap()
            .starts_with("no logs configured for `router`"));
        assert_eq!(logging_of(&td, "sidecar"), Logging::None);
        assert_eq!(logging_of(&td, "absent"), Logging::None);
        assert!(logging_of(&td, "sidecar")
            .missing_note("sidecar")
            .unwrap()
            .contains("awslogs"));
        assert_eq!(
            task_id("arn:aws:ecs:us-east-1:746669238399:task/stage-cluster/0a1b2c3d"),
            "0a1b2c3d"
        );
    }

    #[test]
    fn secret_environment_values_are_collected() {
        let td = json!({"containerDefinitions": [{"name": "backend", "environment": [
            {"name": "ENV", "value": "stage"},
            {"name": "DB_PASSWORD", "value": "s3cr3t-db-pass"},
            {"name": "DATABASE_URL", "value": "postgresql://u:p@db/shop"},
            {"name": "sentry_dsn", "value": "https://k@sentry/1"}
        ]}]});
        assert_eq!(
            secret_values(&td),
            vec![
                "s3cr3t-db-pass",
                "postgresql://u:p@db/shop",
                "https://k@sentry/1"
            ]
        );
    }

    #[test]
    fn masking_table() {
        let m = Masker::new(["s3cr3t-db-pass".to_string(), "ab".to_string()]);
        let cases = [
            (
                "sqlalchemy.exc.OperationalError: could not connect to server: postgresql://cloudshop:hunter22@db.internal:5432/shop",
                "sqlalchemy.exc.OperationalError: could not connect to server: postgresql://***@db.internal:5432/shop",
            ),
            ("using key AKIAIOSFODNN7EXAMPLE now", "using key *** now"),
            ("PASSWORD=s3cr3t-db-pass", "PASSWORD=***"),
            ("db pass is s3cr3t-db-pass.", "db pass is ***."),
            ("password: hunter2 retrying", "password: *** retrying"),
            ("Authorization: Bearer abcdefghijkl.mnop", "Authorization: Bearer ***"),
            (
                "token eyJhbGciOi.eyJzdWIiOiJyZXBv.c2lnbmF0dXJl end",
                "token *** end",
            ),
            ("\x1b[31mERROR\x1b[0m boom\r\n::error::x", "ERROR boom  ::error::x"),
            ("ab stays (too short to mask)", "ab stays (too short to mask)"),
        ];
        for (raw, want) in cases {
            assert_eq!(m.line(raw), want, "{raw}");
        }
        let long = "x".repeat(MAX_LINE_CHARS + 50);
        assert_eq!(m.line(&long).chars().count(), MAX_LINE_CHARS + 1);
    }

    #[test]
    fn known_causes_table() {
        let cases: [(&[&str], Option<i32>, &[&str]); 8] = [
            (
                &["sqlalchemy.exc.OperationalError: (psycopg2.OperationalError) could not connect to server: Connection refused"],
                Some(1),
                &["the app cannot reach its database"],
            ),
            (
                &["FATAL:  password authentication failed for user \"cloudshop\""],
                Some(1),
                &["the database refused the app's credentials"],
            ),
            (
                &["psycopg2.errors.UndefinedTable: relation \"products\" does not exist"],
                None,
                &["the database schema is missing a table: a migration did not run"],
            ),
            (
                &["exec /usr/local/bin/uvicorn: exec format error"],
                Some(1),
                &["the image was built for another CPU architecture"],
            ),
            (&["Killed"], Some(137), &["the container ran out of memory"]),
            (
                &["KeyError: 'DATABASE_URL'"],
                Some(1),
                &["a setting the app needs is missing"],
            ),
            (
                &["ERROR: cannot execute INSERT in a read-only transaction"],
                None,
                &["the database user may not write"],
            ),
            (&["INFO: all good"], Some(0), &[]),
        ];
        for (lines, exit, want) in cases {
            let lines: Vec<String> = lines.iter().map(|s| s.to_string()).collect();
            let got: Vec<&str> = known_causes(&lines, exit).iter().map(|c| c.what).collect();
            assert_eq!(got, want, "{lines:?}");
        }
    }

    #[test]
    fn listening_port_and_mismatch() {
        let lines = vec![
            "INFO:     Started server process [1]".to_string(),
            "INFO:     Uvicorn running on http://0.0.0.0:8000 (Press CTRL+C to quit)".to_string(),
        ];
        assert_eq!(listening_port(&lines), Some(8000));
        assert_eq!(
            listening_port(&["[INFO] Listening at: http://0.0.0.0:8080 (7)".to_string()]),
            Some(8080)
        );
        assert_eq!(listening_port(&["nothing".to_string()]), None);
        assert!(port_mismatch(Some(8000), Some(80)).is_some());
        assert!(port_mismatch(Some(80), Some(80)).is_none());
        assert!(port_mismatch(None, Some(80)).is_none());
    }
}
