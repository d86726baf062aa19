//! The suite-wide secret check: every run of the real binary ([`crate::Running::finish`]) is searched
//! for the known values of the secrets it could have seen, never for their masked form, so a missing
//! `::add-mask::` is caught as well as a printed secret.
//!
//! Known values, collected from the wire: every OIDC JWT an [`crate::OidcServer`] hands out and every
//! `ACTIONS_ID_TOKEN_REQUEST_TOKEN` set on an [`crate::Action`] (process-global); for a run against
//! moto, the credentials moto's STS handed out (its `/moto-api/data.json` lists each assumed role's
//! access key id, secret key and session token) and the ECR authorization token and its password
//! (moto's `GetAuthorizationToken` is deterministic per account: `AWS:{account}-auth-token`).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine;

/// What a known secret is, named in the check's panic (the value never is).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SecretKind {
    /// The JWT the OIDC endpoint hands out.
    OidcToken,
    /// `ACTIONS_ID_TOKEN_REQUEST_TOKEN`.
    RequestToken,
    /// An STS access key id.
    AccessKeyId,
    /// An STS secret access key.
    SecretAccessKey,
    /// An STS session token.
    SessionToken,
    /// The ECR authorization token (base64 of `AWS:password`).
    EcrToken,
    /// The password inside the ECR authorization token.
    EcrPassword,
}

/// Values shorter than this are not searched for (a test's request token `t` is in every word).
pub const MIN_SECRET_LEN: usize = 8;

static KNOWN: Mutex<Vec<(SecretKind, String)>> = Mutex::new(Vec::new());

/// Remember `value` as a secret for the check of every later run in this process.
pub fn register(kind: SecretKind, value: &str) {
    if value.len() < MIN_SECRET_LEN {
        return;
    }
    let mut known = KNOWN.lock().unwrap_or_else(|e| e.into_inner());
    if !known.iter().any(|(_, v)| v == value) {
        known.push((kind, value.to_string()));
    }
}

/// The process-global secrets registered so far.
pub fn registered() -> Vec<(SecretKind, String)> {
    KNOWN.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// The ECR token and password moto's `GetAuthorizationToken` returns for `account`.
pub fn moto_ecr_secrets(account: &str) -> Vec<(SecretKind, String)> {
    let password = format!("{account}-auth-token");
    let token = base64::engine::general_purpose::STANDARD.encode(format!("AWS:{password}"));
    vec![
        (SecretKind::EcrToken, token),
        (SecretKind::EcrPassword, password),
    ]
}

/// The secrets of a run with environment `env`: the registered ones, plus, when it points at an AWS
/// endpoint, moto's ECR token for the default account and each account named in a role ARN, and, when
/// it uses OIDC, every credential moto's STS handed out so far.
pub fn for_run(env: &BTreeMap<String, String>) -> Vec<(SecretKind, String)> {
    let mut out = registered();
    let Some(endpoint) = env.get("AWS_ENDPOINT_URL") else {
        return out;
    };
    let mut accounts = vec!["123456789012".to_string()];
    for value in env.values() {
        for part in value.split("arn:aws:iam::").skip(1) {
            let account: String = part.chars().take_while(char::is_ascii_digit).collect();
            if account.len() == 12 && !accounts.contains(&account) {
                accounts.push(account);
            }
        }
    }
    if env.contains_key("ACTIONS_ID_TOKEN_REQUEST_URL") {
        let roles = assumed_roles(endpoint);
        out.extend(sts_credentials_of(&roles));
        for role in &roles {
            if let Some(account) = role.get("account_id").and_then(|v| v.as_str()) {
                if !accounts.iter().any(|a| a == account) {
                    accounts.push(account.to_string());
                }
            }
        }
    }
    for account in &accounts {
        out.extend(moto_ecr_secrets(account));
    }
    out.retain(|(_, v)| v.len() >= MIN_SECRET_LEN);
    out
}

/// `GET /moto-api/data.json` from `endpoint` (`http://127.0.0.1:PORT`), on a plain socket so it works
/// inside and outside a tokio runtime; `None` when it cannot be read (an endpoint that is not moto).
fn moto_data(endpoint: &str) -> Option<serde_json::Value> {
    let hostport = endpoint.strip_prefix("http://")?.trim_end_matches('/');
    let mut stream = std::net::TcpStream::connect(hostport).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .ok()?;
    write!(
        stream,
        "GET /moto-api/data.json HTTP/1.0\r\nHost: {hostport}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n")?;
    if !head.starts_with("HTTP/1.") || !head.contains(" 200 ") {
        return None;
    }
    serde_json::from_str(body).ok()
}

fn assumed_roles(endpoint: &str) -> Vec<serde_json::Value> {
    moto_data(endpoint)
        .and_then(|d| d.get("sts")?.get("AssumedRole")?.as_array().cloned())
        .unwrap_or_default()
}

/// Every credential moto's STS handed out (`AssumeRole*`), all accounts.
pub fn moto_sts_credentials(endpoint: &str) -> Vec<(SecretKind, String)> {
    sts_credentials_of(&assumed_roles(endpoint))
}

fn sts_credentials_of(roles: &[serde_json::Value]) -> Vec<(SecretKind, String)> {
    let mut out = Vec::new();
    for role in roles {
        for (field, kind) in [
            ("access_key_id", SecretKind::AccessKeyId),
            ("secret_access_key", SecretKind::SecretAccessKey),
            ("session_token", SecretKind::SessionToken),
        ] {
            if let Some(v) = role.get(field).and_then(|v| v.as_str()) {
                out.push((kind, v.to_string()));
            }
        }
    }
    out
}

/// The kinds of `secrets` found in `texts` (`(where, text)`), as `kind in where`, outside a line that is
/// exactly `::add-mask::VALUE` for that value.
pub fn leaks(secrets: &[(SecretKind, String)], texts: &[(&str, &str)]) -> Vec<String> {
    let mut found = Vec::new();
    for (kind, value) in secrets {
        let mask_line = format!("::add-mask::{value}");
        for (place, text) in texts {
            let leaked = text
                .lines()
                .any(|line| line.trim_end() != mask_line && line.contains(value.as_str()));
            let entry = format!("{kind:?} in {place}");
            if leaked && !found.contains(&entry) {
                found.push(entry);
            }
        }
    }
    found
}

/// Panic naming each kind of secret found in `res` (never the value).
pub fn assert_no_leak(secrets: &[(SecretKind, String)], res: &crate::RunResult) {
    let found = leaks(
        secrets,
        &[
            ("stdout", &res.stdout),
            ("stderr", &res.stderr),
            ("outputs", &res.outputs_raw),
            ("summary", &res.summary),
        ],
    );
    assert!(
        found.is_empty(),
        "a secret leaked from the run (values not shown): {}",
        found.join(", ")
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(stdout: &str, summary: &str) -> crate::RunResult {
        crate::RunResult {
            code: 0,
            stdout: stdout.into(),
            stderr: String::new(),
            outputs: BTreeMap::new(),
            outputs_raw: String::new(),
            summary: summary.into(),
        }
    }

    #[test]
    fn a_value_inside_its_own_mask_line_is_not_a_leak() {
        let secrets = moto_ecr_secrets("123456789012");
        let token = &secrets[0].1;
        let password = &secrets[1].1;
        let res = run(
            &format!("::add-mask::{token}\n::add-mask::{password}\nlogged in\n"),
            "deployed",
        );
        assert_no_leak(&secrets, &res);
    }

    #[test]
    #[should_panic(expected = "EcrPassword in stdout")]
    fn a_printed_secret_without_a_mask_is_a_leak() {
        let secrets = moto_ecr_secrets("123456789012");
        let password = &secrets[1].1;
        // The mask is missing: the value is searched for, not `***`.
        let res = run(&format!("docker login -p {password}\n"), "");
        assert_no_leak(&secrets, &res);
    }

    #[test]
    fn the_check_names_the_kind_and_place_never_the_value() {
        let secrets = vec![(SecretKind::SessionToken, "FQoGZXIvYXdzEXAMPLE".to_string())];
        let res = run("", "| token | FQoGZXIvYXdzEXAMPLE |");
        let msg = std::panic::catch_unwind(|| assert_no_leak(&secrets, &res))
            .err()
            .and_then(|e| e.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        assert!(msg.contains("SessionToken in summary"), "{msg}");
        assert!(!msg.contains("FQoGZXIvYXdzEXAMPLE"), "{msg}");
    }

    #[test]
    fn a_mask_line_of_another_value_does_not_excuse_a_leak() {
        let secrets = vec![(
            SecretKind::OidcToken,
            "eyJhbGciOiJSUzI1NiJ9.x.y".to_string(),
        )];
        let res = run("::add-mask::other\n::debug::eyJhbGciOiJSUzI1NiJ9.x.y\n", "");
        assert_eq!(
            leaks(&secrets, &[("stdout", &res.stdout)]),
            ["OidcToken in stdout"]
        );
    }

    #[test]
    fn short_values_are_not_registered() {
        register(SecretKind::RequestToken, "t");
        assert!(!registered().iter().any(|(_, v)| v == "t"));
    }
}
