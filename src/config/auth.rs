//! The credentials part: the role to assume through OIDC, its session name, length and audience, and
//! the GitHub environment its token must come from. No AWS API (the session is opened by
//! `aws::credentials`).

use std::time::Duration;

use super::error::{invalid, Error};
use super::sources::{pick, Sources};
use super::validate::validate_role_arn;

/// How to get AWS credentials.
#[derive(Debug, Clone, PartialEq)]
pub struct Auth {
    /// Role to assume through OIDC (a validated role ARN); `None`: the standard credential chain.
    pub role_to_assume: Option<String>,
    /// `RoleSessionName`, sanitised.
    pub session_name: String,
    /// Session length, 900 s to 12 h.
    pub duration: Duration,
    pub audience: String,
    /// The GitHub environment the OIDC token's `environment` claim must name (fail closed), when the
    /// environments file sets `github-environment`.
    pub github_environment: Option<String>,
}

/// STS accepts `DurationSeconds` in this range (the role's own maximum may be lower).
const SESSION_SECONDS: std::ops::RangeInclusive<u64> = 900..=43200;

/// Build [`Auth`] from `role-to-assume`, `role-session-name`, `role-duration-seconds` and `audience`.
pub(super) fn build(src: &Sources) -> Result<Auth, Error> {
    let inputs = src.inputs;
    let role_to_assume = pick(&inputs.role_to_assume, &src.env.role_to_assume);
    if let Some(arn) = &role_to_assume {
        validate_role_arn(arn)?;
    }
    let raw_session = inputs.role_session_name.clone().unwrap_or_else(|| {
        format!(
            "cloudshop-deploy-{}-{}",
            src.ctx.run_id.as_deref().unwrap_or("local"),
            src.ctx.run_attempt.as_deref().unwrap_or("1")
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
    if !SESSION_SECONDS.contains(&duration_secs) {
        return Err(invalid(
            "role-duration-seconds",
            format!("{duration_secs} is outside 900..=43200 (STS limits); the session is refreshed during long waits anyway"),
        ));
    }
    let github_environment = src.env.github_environment.clone();
    if let Some(name) = &github_environment {
        if name.trim().is_empty() || name.chars().any(char::is_control) {
            return Err(invalid(
                "github-environment",
                "it must name a GitHub environment (for example `production`)",
            ));
        }
        if role_to_assume.is_none() {
            return Err(Error::Unverifiable {
                environment: src.environment.to_string(),
                github_environment: name.clone(),
            });
        }
    }
    Ok(Auth {
        github_environment,
        role_to_assume,
        session_name: crate::aws::credentials::sanitize_session_name(&raw_session),
        duration: Duration::from_secs(duration_secs),
        audience: inputs
            .audience
            .clone()
            .unwrap_or_else(|| "sts.amazonaws.com".into()),
    })
}
