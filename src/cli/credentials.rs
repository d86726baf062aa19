//! Credentials for a run from the command line. The base is the standard AWS chain (environment keys,
//! `--profile` or `AWS_PROFILE` in the shared config and credentials files, a container or instance
//! role); with `role-to-assume`, those base credentials assume the role through STS `AssumeRole`, and the
//! SDK assumes it again before the session ends. There is no OIDC outside Actions. IAM Identity Center
//! (SSO) profiles are not read directly: `aws configure export-credentials` puts their keys in the
//! environment (see `docs/cli.md`), which keeps the SSO clients out of the binary.
//!
//! APIs: STS `AssumeRole` (signed with the base credentials).

use aws_config::BehaviorVersion;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_types::region::Region;

use crate::config::Config;

/// The role could not be assumed from the base credentials.
#[derive(Debug, thiserror::Error)]
#[error("failed to assume `{role}` with sts:AssumeRole from {base}: {message}")]
pub struct Error {
    role: String,
    /// Where the base credentials came from, for the reader.
    base: String,
    message: String,
}

impl crate::error::Diagnose for Error {
    fn hint(&self) -> String {
        "pass the break-glass role with `--role-to-assume` (the environments file's role trusts only \
         GitHub's OIDC tokens); its trust policy must name your principal, signed in with MFA (docs/cli.md)"
            .into()
    }

    fn anchor(&self) -> Option<&'static str> {
        troubleshooting!("assume-role-failed")
    }
}

/// The credentials the run's clients sign with: `None` for the standard chain as it is; the profile's
/// chain for `--profile`; the assumed role's session with `role-to-assume`. The role is assumed once
/// here, so a trust-policy problem is the run's first error, before anything else is read.
pub async fn provider(
    cfg: &Config,
    profile: Option<&str>,
) -> Result<Option<SharedCredentialsProvider>, Error> {
    if profile.is_none() && cfg.auth.role_to_assume.is_none() {
        return Ok(None);
    }
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(cfg.region.clone()))
        .http_client(crate::aws::http_client());
    if let Some(p) = profile {
        loader = loader.profile_name(p);
    }
    let base = loader.load().await;
    let Some(role) = &cfg.auth.role_to_assume else {
        return Ok(profile.and_then(|_| base.credentials_provider()));
    };
    let provider = aws_config::sts::AssumeRoleProvider::builder(role.clone())
        .session_name(cfg.auth.session_name.clone())
        .session_length(cfg.auth.duration)
        .configure(&base)
        .build()
        .await;
    if let Err(e) = provider.provide_credentials().await {
        return Err(Error {
            role: role.clone(),
            base: match profile {
                Some(p) => format!("profile `{p}`"),
                None => "the standard credential chain".into(),
            },
            message: DisplayErrorContext(&e).to_string(),
        });
    }
    tracing::info!(role = %role, session = %cfg.auth.session_name, "assumed role with sts:AssumeRole");
    Ok(Some(SharedCredentialsProvider::new(provider)))
}
