//! Credentials out of log lines before they are shown: the values the run knows are secret (the task
//! definition's secret-named environment values, smoke-test header values) and anything shaped like a
//! credential (URL userinfo, access key ids, `password=...`, bearer tokens, JWTs), plus terminal escapes.
//! Pure; no AWS API.

use std::sync::OnceLock;

use serde_json::Value;

/// How long a shown log line may be, in characters; longer lines end with `…`.
pub const MAX_LINE_CHARS: usize = 300;

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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
}
