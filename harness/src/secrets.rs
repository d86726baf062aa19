//! The suite-wide secret check: every run of the real binary ([`crate::Running::finish`]) is searched
//! for the known values of the secrets it could have seen, never for their masked form, so a missing
//! `::add-mask::` is caught as well as a printed secret.
//!
//! Known values, collected from the wire: every OIDC JWT an [`crate::OidcServer`] hands out and every
//! `ACTIONS_ID_TOKEN_REQUEST_TOKEN` set on an [`crate::Action`] (process-global); for an OIDC run
//! against a moto, the credentials STS handed out, read from its replies by a recording proxy the run
//! is routed through (they are random per call); for a run against any AWS endpoint, the ECR
//! authorization token and its password (moto's `GetAuthorizationToken` is deterministic per account:
//! `AWS:{account}-auth-token`).

use std::collections::BTreeMap;
use std::sync::Mutex;

use base64::Engine;

use crate::faults::{FaultPlan, FaultProxy};

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

/// Endpoints of the motos this process uses ([`crate::Moto`] registers each).
static MOTOS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Remember `endpoint` as a moto: OIDC runs against it go through a recording proxy
/// ([`sts_recorder_for`]).
pub fn register_moto(endpoint: &str) {
    let mut motos = MOTOS.lock().unwrap_or_else(|e| e.into_inner());
    if !motos.iter().any(|m| m == endpoint) {
        motos.push(endpoint.to_string());
    }
}

/// For a run that uses OIDC against a moto directly, a recording proxy in front of that moto: STS's
/// replies (the credentials, random per call) are only known from the wire. The caller points the
/// run's `AWS_ENDPOINT_URL` at it.
pub fn sts_recorder_for(env: &BTreeMap<String, String>) -> Option<FaultProxy> {
    let endpoint = env.get("AWS_ENDPOINT_URL")?;
    env.get("ACTIONS_ID_TOKEN_REQUEST_URL")?;
    let is_moto = MOTOS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .any(|m| m == endpoint);
    is_moto.then(|| {
        FaultProxy::start(
            endpoint,
            FaultPlan {
                record_bodies: true,
                ..FaultPlan::none()
            },
        )
    })
}

/// The three credential parts in every STS reply `proxy` recorded.
pub fn sts_credentials_recorded(proxy: &FaultProxy) -> Vec<(SecretKind, String)> {
    proxy
        .calls()
        .into_iter()
        .filter(|c| c.op.starts_with("sts:AssumeRole"))
        .filter_map(|c| c.response)
        .flat_map(|body| sts_reply_credentials(&String::from_utf8_lossy(&body)))
        .collect()
}

/// The credential parts in an STS `AssumeRole*` XML reply.
pub fn sts_reply_credentials(xml: &str) -> Vec<(SecretKind, String)> {
    let value = |tag: &str| {
        let start = xml.find(&format!("<{tag}>"))? + tag.len() + 2;
        let end = xml[start..].find(&format!("</{tag}>"))? + start;
        Some(xml[start..end].to_string())
    };
    [
        ("AccessKeyId", SecretKind::AccessKeyId),
        ("SecretAccessKey", SecretKind::SecretAccessKey),
        ("SessionToken", SecretKind::SessionToken),
    ]
    .into_iter()
    .filter_map(|(tag, kind)| value(tag).map(|v| (kind, v)))
    .collect()
}

/// The secrets of a run with environment `env`: the registered ones, the STS credentials `recorded`,
/// and, when it points at an AWS endpoint, moto's ECR token for the default account and each account
/// named in a role ARN.
pub fn for_run(
    env: &BTreeMap<String, String>,
    recorded: Vec<(SecretKind, String)>,
) -> Vec<(SecretKind, String)> {
    let mut out = registered();
    out.extend(recorded);
    if env.contains_key("AWS_ENDPOINT_URL") {
        let mut accounts = vec!["123456789012".to_string()];
        for value in env.values() {
            for part in value.split("arn:aws:iam::").skip(1) {
                let account: String = part.chars().take_while(char::is_ascii_digit).collect();
                if account.len() == 12 && !accounts.contains(&account) {
                    accounts.push(account);
                }
            }
        }
        for account in &accounts {
            out.extend(moto_ecr_secrets(account));
        }
    }
    out.retain(|(_, v)| v.len() >= MIN_SECRET_LEN);
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
