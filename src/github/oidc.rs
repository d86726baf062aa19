//! The GitHub OIDC token: `GET $ACTIONS_ID_TOKEN_REQUEST_URL&audience=...` with the request token as a
//! bearer. The JWT is masked the moment it arrives, before it is stored anywhere printable.
//!
//! When the environment names its GitHub environment (`github-environment`), every token's
//! `environment` claim must equal it, or the token is refused before any AWS call: a job without the
//! protected environment (and so without its approval) cannot deploy to it, even if the role's trust
//! policy were too broad. The claim is read, not verified: STS verifies the signature.
//!
//! A transport failure, a 429 or 5xx, or an unreadable reply is asked again under [`crate::retry`]
//! (the source's `attempts` and `backoff`); inside a role assumption's retried attempt, once.
//!
//! APIs: the Actions runtime's OIDC token endpoint.

use std::time::Duration;

use base64::Engine;
use serde::Deserialize;

use super::commands;
use crate::retry::Outcome;

/// Errors of the OIDC token request.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The job has no `permissions: id-token: write`.
    #[error("`role-to-assume` is set but the job cannot request an OIDC token (`ACTIONS_ID_TOKEN_REQUEST_URL` is not set)")]
    NoPermission,
    /// The token endpoint URL is not a URL.
    #[error("`ACTIONS_ID_TOKEN_REQUEST_URL` is not a valid URL: {0}")]
    BadUrl(String),
    /// The token does not come from the GitHub environment the environments file requires.
    #[error("{}, but the environments file requires GitHub environment `{expected}` (`github-environment`)", claim_text(.claim.as_deref()))]
    WrongEnvironment {
        /// `github-environment`.
        expected: String,
        /// The token's `environment` claim (`None`: the job runs in no environment).
        claim: Option<String>,
    },
    /// The endpoint kept failing.
    #[error("failed to get the GitHub OIDC token after {attempts} attempts: {last}")]
    Request {
        /// Attempts made.
        attempts: u32,
        /// The last failure.
        last: String,
    },
}

fn claim_text(claim: Option<&str>) -> String {
    match claim {
        Some(c) => format!(
            "this job runs in GitHub environment `{c}` (the OIDC token's `environment` claim)"
        ),
        None => {
            "this job runs in no GitHub environment (the OIDC token has no `environment` claim)"
                .to_string()
        }
    }
}

impl crate::error::Diagnose for Error {
    fn hint(&self) -> String {
        match self {
            Error::NoPermission => "add `permissions: { id-token: write, contents: read }` to the job (or the workflow) that runs this action".into(),
            Error::WrongEnvironment { expected, .. } => format!("add `environment: {expected}` to the job that runs this action (protect it with required reviewers in the repository's settings)"),
            Error::BadUrl(_) | Error::Request { .. } => "re-run the job; if it persists, check https://www.githubstatus.com".into(),
        }
    }
}

/// A fetched OIDC token (already masked).
#[derive(Clone)]
pub struct IdToken(String);

impl std::fmt::Debug for IdToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IdToken(***)")
    }
}

impl IdToken {
    /// The raw JWT, for the STS call only.
    pub fn secret(&self) -> &str {
        &self.0
    }

    /// The token's `sub` claim (safe to print: it is what the role's trust policy matches).
    pub fn subject(&self) -> Option<String> {
        claim(&self.0, "sub")
    }
}

/// Read a string claim from a JWT's payload without verifying it (for messages only).
pub fn claim(jwt: &str, name: &str) -> Option<String> {
    let payload = jwt.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let value: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    value.get(name)?.as_str().map(str::to_string)
}

/// Build the token URL: the runner's URL already carries a query, so append `&audience=`.
fn token_url(request_url: &str, audience: &str) -> Result<url::Url, Error> {
    let mut url = url::Url::parse(request_url).map_err(|e| Error::BadUrl(e.to_string()))?;
    url.query_pairs_mut().append_pair("audience", audience);
    Ok(url)
}

#[derive(Deserialize)]
struct TokenResponse {
    value: String,
}

/// Where and how to ask for a token.
#[derive(Clone)]
pub struct TokenSource {
    /// `ACTIONS_ID_TOKEN_REQUEST_URL`.
    pub request_url: String,
    /// `ACTIONS_ID_TOKEN_REQUEST_TOKEN` (masked at startup).
    pub request_token: String,
    /// The audience (default `sts.amazonaws.com`).
    pub audience: String,
    /// HTTP client.
    pub http: reqwest::Client,
    /// Attempts before giving up (the first included).
    pub attempts: u32,
    /// First retry delay; doubles each attempt (jittered, at most 30 s).
    pub backoff: Duration,
    /// The `environment` claim every token must carry (`github-environment`); `None`: no check.
    pub required_environment: Option<String>,
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSource")
            .field("audience", &self.audience)
            .field("required_environment", &self.required_environment)
            .finish_non_exhaustive()
    }
}

impl TokenSource {
    /// Fetch a new token, retrying transient failures (see `fetch_any`); inside another retried
    /// operation (a role assumption that needs a new token), one attempt.
    pub async fn fetch(&self) -> Result<IdToken, Error> {
        let token = self.fetch_any().await?;
        if let Some(expected) = &self.required_environment {
            let claim = claim(token.secret(), "environment");
            if claim.as_deref() != Some(expected.as_str()) {
                return Err(Error::WrongEnvironment {
                    expected: expected.clone(),
                    claim,
                });
            }
        }
        Ok(token)
    }

    /// Any token the endpoint gives, under the source's `attempts` and `backoff`: a transport failure,
    /// a 429 or 5xx, or an unreadable reply is asked again; another 4xx or an oversized reply is final.
    async fn fetch_any(&self) -> Result<IdToken, Error> {
        let url = token_url(&self.request_url, &self.audience)?;
        let policy = crate::retry::Policy::new(self.attempts, self.backoff);
        crate::retry::run(policy, "the OIDC token request", |attempt| {
            let url = url.clone();
            async move {
                let failed = |last| Error::Request {
                    attempts: attempt,
                    last,
                };
                match self.fetch_once(url).await {
                    Ok(token) => Outcome::Done(token),
                    Err((last, true)) => Outcome::Transient(failed(last)),
                    Err((last, false)) => Outcome::Final(failed(last)),
                }
            }
        })
        .await
    }

    async fn fetch_once(&self, url: url::Url) -> Result<IdToken, (String, bool)> {
        let response = self
            .http
            .get(url)
            .header("Authorization", format!("bearer {}", self.request_token))
            .header("Accept", "application/json; api-version=2.0")
            .send()
            .await
            .map_err(|e| (e.to_string(), true))?;
        let status = response.status();
        if !status.is_success() {
            // 4xx other than 429 will not get better by asking again.
            let retryable = status.is_server_error() || status.as_u16() == 429;
            return Err((format!("HTTP {status}"), retryable));
        }
        let bytes = read_capped(response, MAX_TOKEN_RESPONSE)
            .await
            .map_err(|e| (format!("unreadable token response: {e}"), true))?
            .ok_or_else(|| {
                (
                    format!("the token response is larger than {MAX_TOKEN_RESPONSE} bytes"),
                    false,
                )
            })?;
        let body: TokenResponse = serde_json::from_slice(&bytes)
            .map_err(|e| (format!("unreadable token response: {e}"), true))?;
        if body.value.is_empty() {
            return Err(("empty token in response".into(), true));
        }
        commands::mask(&body.value);
        Ok(IdToken(body.value))
    }
}

/// A token response is a JWT of a few KiB; more is not GitHub's.
const MAX_TOKEN_RESPONSE: usize = 64 * 1024;

/// Read a body of at most `cap` bytes piece by piece (a missing `Content-Length` cannot make it read
/// more); `None` when it is larger.
pub(crate) async fn read_capped(
    mut response: reqwest::Response,
    cap: usize,
) -> Result<Option<Vec<u8>>, reqwest::Error> {
    if response.content_length().is_some_and(|l| l > cap as u64) {
        return Ok(None);
    }
    let mut out = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if out.len() + chunk.len() > cap {
            return Ok(None);
        }
        out.extend_from_slice(&chunk);
    }
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A token endpoint that streams forever (no `Content-Length`): one clear error, no retry, no hang.
    #[tokio::test]
    async fn an_endless_token_response_is_refused_at_its_bound() {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new().fallback(|| async {
            let chunk = bytes::Bytes::from(vec![b' '; 16 * 1024]);
            let body = futures::stream::repeat_with(move || Ok::<_, std::io::Error>(chunk.clone()));
            axum::body::Body::from_stream(body)
        });
        tokio::spawn(async move { axum::serve(listener, app).await });
        let source = TokenSource {
            request_url: format!("http://{addr}/token"),
            request_token: "request-token".into(),
            audience: "sts.amazonaws.com".into(),
            http: reqwest::Client::new(),
            attempts: 3,
            backoff: Duration::from_millis(1),
            required_environment: None,
        };
        let err = source.fetch().await.unwrap_err().to_string();
        assert!(err.contains("larger than 65536 bytes"), "{err}");
        assert!(err.contains("after 1 attempts"), "{err}");
    }

    #[test]
    fn audience_is_appended_and_encoded() {
        let url = token_url(
            "https://t.example/x?api-version=2.0",
            "sts.amazonaws.com/a b",
        )
        .unwrap();
        assert_eq!(
            url.as_str(),
            "https://t.example/x?api-version=2.0&audience=sts.amazonaws.com%2Fa+b"
        );
    }

    #[test]
    fn reads_sub_claim() {
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(br#"{"sub":"repo:o/r:environment:prod","aud":"sts"}"#);
        let jwt = format!("e30.{payload}.sig");
        assert_eq!(
            claim(&jwt, "sub").as_deref(),
            Some("repo:o/r:environment:prod")
        );
        assert_eq!(claim("garbage", "sub"), None);
        assert_eq!(format!("{:?}", IdToken(jwt)), "IdToken(***)");
    }
}
