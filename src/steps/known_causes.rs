//! The known causes of a failed task, each with its fix: a table of what its log lines say (database
//! refused or unreachable, missing migration, wrong CPU architecture, missing module or setting, out of
//! memory, ...), its exit code, and a port the app listens on that the load balancer does not check.
//! Pure; no AWS API.

use std::sync::OnceLock;

use serde::Serialize;

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

#[cfg(test)]
mod tests {
    use super::*;

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
