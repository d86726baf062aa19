//! AWS credentials through GitHub OIDC: fetch the job's ID token, `sts:AssumeRoleWithWebIdentity`, mask
//! the three credential parts before they exist anywhere printable, and refresh them before they expire
//! (a deploy that waits longer than the session lives must not fail half-way).
//!
//! APIs: STS `AssumeRoleWithWebIdentity` (unsigned), STS `GetCallerIdentity`.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_credential_types::provider::{error::CredentialsError, future, ProvideCredentials};
use aws_credential_types::Credentials;
use aws_sdk_sts::operation::assume_role_with_web_identity::AssumeRoleWithWebIdentityError;

use crate::github::{commands, oidc};
use crate::retry::{self, Outcome};

/// Errors while getting credentials.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No OIDC token could be had.
    #[error(transparent)]
    Oidc(#[from] oidc::Error),
    /// The role's trust policy did not accept this token.
    #[error(
        "not authorized to assume `{role}` with the GitHub OIDC token (token `sub`: `{subject}`)"
    )]
    AccessDenied {
        /// The role ARN.
        role: String,
        /// The token's `sub` claim.
        subject: String,
    },
    /// Anything else STS said.
    #[error("failed to assume `{role}`: {message}")]
    Sts {
        /// The role ARN.
        role: String,
        /// `<code>: <message>`.
        message: String,
    },
    /// `GetCallerIdentity` failed: the credentials do not work.
    #[error("failed to check the AWS credentials (sts:GetCallerIdentity): {0}")]
    Identity(String),
}

impl crate::error::Diagnose for Error {
    fn hint(&self) -> String {
        match self {
            Error::Oidc(e) => e.hint(),
            Error::AccessDenied { subject, .. } => format!(
                "the role's trust policy must allow `token.actions.githubusercontent.com:sub` = `{subject}` \
                 (and `aud` = the `audience` input); check the `environment:` of the job and the repository name"
            ),
            Error::Sts { .. } => "check `role-to-assume`, `role-duration-seconds` (at most the role's maximum session) and the OIDC provider in IAM".to_string(),
            Error::Identity(_) => "without `role-to-assume`, provide credentials in the environment (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY) or set `role-to-assume`".to_string(),
        }
    }

    fn anchor(&self) -> Option<&'static str> {
        use crate::github::oidc::Error as O;
        match self {
            Error::Oidc(O::NoPermission) => troubleshooting!("id-token-permission-missing"),
            Error::Oidc(O::WrongEnvironment { .. }) => troubleshooting!("wrong-github-environment"),
            Error::Oidc(O::BadUrl { .. } | O::Request { .. }) => {
                troubleshooting!("oidc-token-request-failed")
            }
            Error::AccessDenied { .. } => troubleshooting!("not-authorized-to-assume-the-role"),
            Error::Sts { .. } => troubleshooting!("assume-role-failed"),
            Error::Identity { .. } => troubleshooting!("no-aws-credentials"),
        }
    }
}

/// How to assume the role.
#[derive(Debug, Clone)]
pub struct RoleSettings {
    pub role_arn: String,
    /// `RoleSessionName` (already sanitised).
    pub session_name: String,
    /// Requested session length.
    pub duration: Duration,
    /// Attempts for transient STS failures (the first included; the STS client itself tries once).
    pub attempts: u32,
    /// First retry delay; doubles each attempt (jittered, at most 30 s).
    pub backoff: Duration,
    /// Refresh this long before expiry.
    pub refresh_margin: Duration,
}

/// A credentials provider that assumes a role with a GitHub OIDC token and refreshes it before expiry.
#[derive(Clone, Debug)]
pub struct OidcRoleProvider {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    sts: aws_sdk_sts::Client,
    tokens: oidc::TokenSource,
    settings: RoleSettings,
    cache: tokio::sync::Mutex<Option<Credentials>>,
}

impl OidcRoleProvider {
    /// `sts` must be a client with no credentials (the call is unsigned). Its own retries are turned
    /// off: [`RoleSettings`] bound the attempts, and retries never wrap retries.
    pub fn new(
        sts: aws_sdk_sts::Client,
        tokens: oidc::TokenSource,
        settings: RoleSettings,
    ) -> Self {
        let once = sts
            .config()
            .to_builder()
            .retry_config(aws_sdk_sts::config::retry::RetryConfig::disabled())
            .build();
        OidcRoleProvider {
            inner: Arc::new(Inner {
                sts: aws_sdk_sts::Client::from_conf(once),
                tokens,
                settings,
                cache: tokio::sync::Mutex::new(None),
            }),
        }
    }

    /// Cached credentials while they have more than the refresh margin left, else fresh ones.
    pub async fn credentials(&self) -> Result<Credentials, Error> {
        let mut cache = self.inner.cache.lock().await;
        if let Some(c) = cache.as_ref() {
            let fresh = match c.expiry() {
                Some(exp) => exp
                    .duration_since(SystemTime::now())
                    .map(|left| left > self.inner.settings.refresh_margin)
                    .unwrap_or(false),
                None => true,
            };
            if fresh {
                return Ok(c.clone());
            }
            tracing::info!("refreshing the AWS session before it expires");
        }
        let creds = self.assume().await?;
        *cache = Some(creds.clone());
        Ok(creds)
    }

    /// Assume the role under the settings' `attempts` and `backoff`. An IdP that could not be reached,
    /// throttling, a 5xx or no reply at all is tried again; a token STS calls invalid or expired is
    /// replaced before the next attempt (the replacement is one request: it is part of the attempt);
    /// access denied and any other refusal are final.
    async fn assume(&self) -> Result<Credentials, Error> {
        let s = &self.inner.settings;
        // The first token has its own retries; later ones are fetched inside an attempt.
        let token = std::sync::Mutex::new(Some(self.inner.tokens.fetch().await?));
        let policy = retry::Policy::new(s.attempts, s.backoff).log_retries_at(tracing::Level::WARN);
        retry::run(policy, "AssumeRoleWithWebIdentity", |_| async {
            let held = token.lock().ok().and_then(|t| t.clone());
            let current = match held {
                Some(t) => t,
                None => match self.inner.tokens.fetch().await {
                    Ok(t) => {
                        if let Ok(mut slot) = token.lock() {
                            *slot = Some(t.clone());
                        }
                        t
                    }
                    Err(e @ oidc::Error::Request { .. }) => return Outcome::Transient(e.into()),
                    Err(e) => return Outcome::Final(e.into()),
                },
            };
            match self.assume_once(&current).await {
                Ok(c) => Outcome::Done(c),
                Err(Refused::Stale(e)) => {
                    if let Ok(mut slot) = token.lock() {
                        *slot = None;
                    }
                    Outcome::Transient(e)
                }
                Err(Refused::Transient(e)) => Outcome::Transient(e),
                Err(Refused::Final(e)) => Outcome::Final(e),
            }
        })
        .await
    }

    /// One `AssumeRoleWithWebIdentity` with `token`; the credentials masked before anything else sees
    /// them.
    async fn assume_once(&self, token: &oidc::IdToken) -> Result<Credentials, Refused> {
        let s = &self.inner.settings;
        let sts_error = |message: String| Error::Sts {
            role: s.role_arn.clone(),
            message,
        };
        let result = self
            .inner
            .sts
            .assume_role_with_web_identity()
            .role_arn(&s.role_arn)
            .role_session_name(&s.session_name)
            .web_identity_token(token.secret())
            .duration_seconds(s.duration.as_secs().min(i32::MAX as u64) as i32)
            .send()
            .await;
        let out = match result {
            Ok(out) => out,
            Err(err) => {
                let e = sts_error(crate::aws::describe(&err));
                return Err(match err.as_service_error() {
                    Some(AssumeRoleWithWebIdentityError::IdpCommunicationErrorException(_)) => {
                        Refused::Transient(e)
                    }
                    Some(
                        AssumeRoleWithWebIdentityError::InvalidIdentityTokenException(_)
                        | AssumeRoleWithWebIdentityError::ExpiredTokenException(_),
                    ) => Refused::Stale(e),
                    _ if crate::aws::code(&err) == Some("AccessDenied") => {
                        Refused::Final(Error::AccessDenied {
                            role: s.role_arn.clone(),
                            subject: token.subject().unwrap_or_else(|| "<unreadable>".into()),
                        })
                    }
                    _ if crate::aws::is_throttling(&err)
                        || err.as_service_error().is_none()
                        || err
                            .raw_response()
                            .is_some_and(|r| r.status().is_server_error()) =>
                    {
                        Refused::Transient(e)
                    }
                    _ => Refused::Final(e),
                });
            }
        };
        let c = out
            .credentials
            .ok_or_else(|| Refused::Final(sts_error("the reply carried no credentials".into())))?;
        // Mask before anything else touches them.
        commands::mask(&c.access_key_id);
        commands::mask(&c.secret_access_key);
        commands::mask(&c.session_token);
        let expiry = SystemTime::try_from(c.expiration).ok();
        Ok(Credentials::new(
            c.access_key_id,
            c.secret_access_key,
            Some(c.session_token),
            expiry,
            "cloudshop-deploy-oidc",
        ))
    }
}

/// How an `AssumeRoleWithWebIdentity` attempt failed.
enum Refused {
    /// Worth another attempt with the same token.
    Transient(Error),
    /// Worth another attempt with a new token.
    Stale(Error),
    Final(Error),
}

impl ProvideCredentials for OidcRoleProvider {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(async move {
            self.credentials()
                .await
                .map_err(CredentialsError::provider_error)
        })
    }
}

/// `RoleSessionName` rules: 2-64 characters of `[\w+=,.@-]`; anything else becomes `-`.
pub fn sanitize_session_name(raw: &str) -> String {
    let mut s: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_+=,.@-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .take(64)
        .collect();
    while s.len() < 2 {
        s.push('-');
    }
    s
}

/// The account the credentials belong to (`sts:GetCallerIdentity`), also a check that they work.
pub async fn account_id(sts: &aws_sdk_sts::Client) -> Result<String, Error> {
    let out = sts
        .get_caller_identity()
        .send()
        .await
        .map_err(|e| Error::Identity(crate::aws::describe(&e)))?;
    out.account
        .ok_or_else(|| Error::Identity("the reply carried no account".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Diagnose;
    use aws_sdk_sts::operation::assume_role_with_web_identity::AssumeRoleWithWebIdentityOutput;
    use aws_sdk_sts::types::error::{
        IdpCommunicationErrorException, InvalidIdentityTokenException,
    };
    use aws_smithy_mocks::{mock, mock_client, RuleMode};
    use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
    use aws_smithy_runtime_api::http::StatusCode;
    use aws_smithy_types::body::SdkBody;
    use base64::Engine;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn jwt(n: usize) -> String {
        let b = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        format!(
            "{}.{}.sig{n}",
            b("{}"),
            b(&format!(
                r#"{{"sub":"repo:acme/shop:environment:stage","n":{n}}}"#
            ))
        )
    }

    /// A token endpoint on loopback that hands out a new token per request.
    async fn token_server() -> (String, std::sync::Arc<AtomicUsize>) {
        let count = std::sync::Arc::new(AtomicUsize::new(0));
        let c = count.clone();
        let app = axum::Router::new().route(
            "/t",
            axum::routing::get(move || {
                let n = c.fetch_add(1, Ordering::SeqCst) + 1;
                async move { axum::Json(serde_json::json!({ "value": jwt(n) })) }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "http://{}/t?api-version=2.0",
            listener.local_addr().unwrap()
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        (url, count)
    }

    fn creds_output(key: &str, expires_in: Duration) -> AssumeRoleWithWebIdentityOutput {
        let exp = SystemTime::now() + expires_in;
        AssumeRoleWithWebIdentityOutput::builder()
            .credentials(
                aws_sdk_sts::types::Credentials::builder()
                    .access_key_id(key)
                    .secret_access_key("secret")
                    .session_token("session")
                    .expiration(aws_smithy_types::DateTime::from(exp))
                    .build()
                    .unwrap(),
            )
            .build()
    }

    async fn provider(sts: aws_sdk_sts::Client) -> (OidcRoleProvider, std::sync::Arc<AtomicUsize>) {
        let (url, count) = token_server().await;
        let tokens = oidc::TokenSource {
            request_url: url,
            request_token: "req".into(),
            audience: "sts.amazonaws.com".into(),
            http: reqwest::Client::new(),
            attempts: 2,
            backoff: Duration::from_millis(1),
            required_environment: None,
        };
        let settings = RoleSettings {
            role_arn: "arn:aws:iam::123456789012:role/deploy".into(),
            session_name: "s".into(),
            duration: Duration::from_secs(3600),
            attempts: 4,
            backoff: Duration::from_millis(1),
            refresh_margin: Duration::from_secs(300),
        };
        (OidcRoleProvider::new(sts, tokens, settings), count)
    }

    #[tokio::test]
    async fn idp_errors_are_retried_and_bad_tokens_replaced() {
        let rule = mock!(aws_sdk_sts::Client::assume_role_with_web_identity)
            .sequence()
            .error(|| {
                AssumeRoleWithWebIdentityError::IdpCommunicationErrorException(
                    IdpCommunicationErrorException::builder().build(),
                )
            })
            .error(|| {
                AssumeRoleWithWebIdentityError::InvalidIdentityTokenException(
                    InvalidIdentityTokenException::builder().build(),
                )
            })
            .output(|| creds_output("ASIAOK", Duration::from_secs(3600)))
            .build();
        let sts = mock_client!(aws_sdk_sts, RuleMode::Sequential, [&rule]);
        let (p, tokens) = provider(sts).await;
        let c = p.credentials().await.unwrap();
        assert_eq!(c.access_key_id(), "ASIAOK");
        assert_eq!(rule.num_calls(), 3);
        // One token at the start, a new one after InvalidIdentityToken, none after the IdP error.
        assert_eq!(tokens.load(Ordering::SeqCst), 2);
        // Cached while fresh.
        p.credentials().await.unwrap();
        assert_eq!(rule.num_calls(), 3);
    }

    #[tokio::test]
    async fn credentials_are_refreshed_before_they_expire() {
        let rule = mock!(aws_sdk_sts::Client::assume_role_with_web_identity)
            .sequence()
            .output(|| creds_output("ASIAFIRST", Duration::from_secs(200)))
            .output(|| creds_output("ASIASECOND", Duration::from_secs(3600)))
            .build();
        let sts = mock_client!(aws_sdk_sts, RuleMode::Sequential, [&rule]);
        let (p, tokens) = provider(sts).await;
        assert_eq!(p.credentials().await.unwrap().access_key_id(), "ASIAFIRST");
        // 200 s left is inside the 300 s margin: the next call assumes again, with a new token.
        assert_eq!(p.credentials().await.unwrap().access_key_id(), "ASIASECOND");
        assert_eq!(p.credentials().await.unwrap().access_key_id(), "ASIASECOND");
        assert_eq!(rule.num_calls(), 2);
        assert_eq!(tokens.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn access_denied_names_the_sub_claim_not_the_token() {
        let body = r#"<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>Not authorized to perform sts:AssumeRoleWithWebIdentity</Message></Error><RequestId>r</RequestId></ErrorResponse>"#;
        let rule = mock!(aws_sdk_sts::Client::assume_role_with_web_identity).then_http_response(
            move || HttpResponse::new(StatusCode::try_from(403).unwrap(), SdkBody::from(body)),
        );
        let sts = mock_client!(aws_sdk_sts, [&rule]);
        let (p, _) = provider(sts).await;
        let err = p.credentials().await.unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("token `sub`: `repo:acme/shop:environment:stage`"),
            "{msg}"
        );
        assert!(
            msg.contains("arn:aws:iam::123456789012:role/deploy"),
            "{msg}"
        );
        assert!(
            !msg.contains("sig1"),
            "the token itself must not be printed: {msg}"
        );
        assert!(err.hint().contains("trust policy"), "{}", err.hint());
        assert_eq!(rule.num_calls(), 1, "access denied is not retried");
    }

    /// STS answering 500 every time: exactly the settings' attempts reach it (the client's own retries
    /// are off, so they do not multiply), then the error names the role.
    #[tokio::test]
    async fn a_failing_sts_gets_exactly_the_role_attempts() {
        let body = r#"<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Receiver</Type><Code>InternalFailure</Code><Message>boom</Message></Error><RequestId>r</RequestId></ErrorResponse>"#;
        let rule = mock!(aws_sdk_sts::Client::assume_role_with_web_identity)
            .match_requests(|_| true)
            .then_http_response(move || {
                HttpResponse::new(StatusCode::try_from(500).unwrap(), SdkBody::from(body))
            });
        let retrying = aws_sdk_sts::Client::from_conf(
            mock_client!(aws_sdk_sts, RuleMode::MatchAny, [&rule])
                .config()
                .to_builder()
                .retry_config(
                    aws_sdk_sts::config::retry::RetryConfig::standard()
                        .with_max_attempts(3)
                        .with_initial_backoff(Duration::from_millis(1)),
                )
                .build(),
        );
        let (p, tokens) = provider(retrying).await;
        let err = p.credentials().await.unwrap_err();
        assert!(matches!(err, Error::Sts { .. }), "{err}");
        assert!(err.to_string().contains("InternalFailure"), "{err}");
        assert_eq!(
            rule.num_calls(),
            4,
            "the role's 4 attempts, one request each"
        );
        assert_eq!(tokens.load(Ordering::SeqCst), 1, "the token was not stale");
    }

    #[test]
    fn session_names_follow_sts_rules() {
        assert_eq!(
            sanitize_session_name("cloudshop-deploy-123-1"),
            "cloudshop-deploy-123-1"
        );
        assert_eq!(sanitize_session_name("a b/c"), "a-b-c");
        assert_eq!(sanitize_session_name("x"), "x-");
        assert_eq!(sanitize_session_name(""), "--");
        assert_eq!(sanitize_session_name(&"y".repeat(100)).len(), 64);
    }
}
