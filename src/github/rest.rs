//! GitHub's REST API, read-only: for the approval gate, the job's deployment environment (its
//! protection rules) and the author of a commit; for a promotion's summary, how many commits lie
//! between the live release and the promoted one. At the runner's `GITHUB_API_URL` (so GitHub
//! Enterprise Server works too) with the job's token.
//!
//! A transport failure, a 429 or a 5xx is asked again under [`crate::retry`]; another status is final.
//! A 404 for the environment means the job's environment does not exist: `None`, not an error.
//!
//! APIs: GitHub REST `GET /repos/{owner}/{repo}/environments/{name}`,
//! `GET /repos/{owner}/{repo}/commits/{ref}` and `GET /repos/{owner}/{repo}/compare/{base}...{head}`.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::retry::{Outcome, Policy};

/// Errors of a REST read.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `GITHUB_API_URL` (or the default) does not make a URL.
    #[error("`GITHUB_API_URL` is not a valid URL: {0}")]
    BadUrl(String),
    /// The read failed for good.
    #[error("failed to read `{what}` from the GitHub API after {attempts} attempts: {last}")]
    Request {
        what: String,
        attempts: u32,
        last: String,
        /// The HTTP status, when there was one.
        status: Option<u16>,
    },
}

impl crate::error::Diagnose for Error {
    fn hint(&self) -> String {
        match self {
            Error::Request {
                status: Some(401 | 403),
                ..
            } => "pass the job's token as `github-token` (the default) and give the job `permissions: { actions: read, deployments: read }`".into(),
            _ => "re-run the job; if it persists, check https://www.githubstatus.com".into(),
        }
    }
}

/// A reply is a few KiB; more is not GitHub's.
const MAX_REPLY: usize = 1024 * 1024;

/// Where and as whom to read.
#[derive(Clone)]
pub struct Api {
    pub http: reqwest::Client,
    /// `GITHUB_API_URL`, default `https://api.github.com`.
    pub base: url::Url,
    /// `owner/name`.
    pub repository: String,
    /// The job's token (masked at load time).
    pub token: String,
    pub policy: Policy,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api")
            .field("base", &self.base.as_str())
            .field("repository", &self.repository)
            .finish_non_exhaustive()
    }
}

/// A deployment environment as the API describes it (the fields the gate reads).
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
pub struct Environment {
    pub name: String,
    #[serde(default)]
    pub protection_rules: Vec<Rule>,
    pub deployment_branch_policy: Option<BranchPolicy>,
}

/// One protection rule (`required_reviewers`, `wait_timer`, `branch_policy`, or a custom one).
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
pub struct Rule {
    #[serde(rename = "type")]
    pub kind: String,
    /// Minutes, for `wait_timer`.
    pub wait_timer: Option<u64>,
    pub prevent_self_review: Option<bool>,
    #[serde(default)]
    pub reviewers: Vec<Reviewer>,
}

/// A required reviewer: a user (`login`) or a team (`slug`).
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
pub struct Reviewer {
    #[serde(rename = "type")]
    pub kind: String,
    pub reviewer: Option<ReviewerName>,
}

/// The part of a reviewer the summary names.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
pub struct ReviewerName {
    pub login: Option<String>,
    pub slug: Option<String>,
}

/// Which branches may deploy to the environment.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
pub struct BranchPolicy {
    #[serde(default)]
    pub protected_branches: bool,
    #[serde(default)]
    pub custom_branch_policies: bool,
}

/// How `head` relates to `base` (the fields the promotion summary reads).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
pub struct Comparison {
    /// `ahead`, `behind`, `diverged` or `identical`.
    pub status: String,
    /// Commits in `head` that `base` does not have.
    pub ahead_by: u64,
    /// Commits in `base` that `head` does not have (a promotion that goes back in history).
    pub behind_by: u64,
}

#[derive(Deserialize)]
struct Commit {
    author: Option<Login>,
}

#[derive(Deserialize)]
struct Login {
    login: String,
}

impl Api {
    /// The API of `repository` at `api_url` (default `https://api.github.com`).
    pub fn new(
        api_url: Option<&str>,
        repository: &str,
        token: &str,
        timeout: Duration,
    ) -> Result<Api, Error> {
        let mut base = url::Url::parse(api_url.unwrap_or("https://api.github.com"))
            .map_err(|e| Error::BadUrl(e.to_string()))?;
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let http = crate::aws::reqwest_client(timeout).map_err(|e| Error::Request {
            what: "the HTTP client".into(),
            attempts: 0,
            last: e.to_string(),
            status: None,
        })?;
        Ok(Api {
            http,
            base,
            repository: repository.to_string(),
            token: token.to_string(),
            policy: Policy::new(4, Duration::from_millis(500)),
        })
    }

    /// The run's client: `None` without a token or a repository (`GITHUB_REPOSITORY`) to read.
    pub fn of_run(
        api_url: Option<&str>,
        repository: Option<&str>,
        token: Option<&str>,
    ) -> Result<Option<Api>, Error> {
        let (Some(token), Some(repository)) = (token, repository) else {
            return Ok(None);
        };
        Api::new(api_url, repository, token, Duration::from_secs(30)).map(Some)
    }

    /// The environment `name`, `None` when it does not exist (404).
    pub async fn environment(&self, name: &str) -> Result<Option<Environment>, Error> {
        let path = format!("repos/{}/environments/{}", self.repository, encode(name));
        self.get_json(&path, &format!("environment `{name}`")).await
    }

    /// The GitHub login the commit's author email belongs to, `None` when it belongs to no account.
    pub async fn commit_author(&self, sha: &str) -> Result<Option<String>, Error> {
        let path = format!("repos/{}/commits/{}", self.repository, encode(sha));
        let commit: Option<Commit> = self.get_json(&path, &format!("commit `{sha}`")).await?;
        let Some(commit) = commit else {
            return Err(Error::Request {
                what: format!("commit `{sha}`"),
                attempts: 1,
                last: "HTTP 404 Not Found".into(),
                status: Some(404),
            });
        };
        Ok(commit.author.map(|a| a.login))
    }

    /// How commit `head` compares with commit `base`; `None` when either is unknown (404). One commit
    /// per page: the counts come with the first page, the commit list is not needed.
    pub async fn compare(&self, base: &str, head: &str) -> Result<Option<Comparison>, Error> {
        let path = format!(
            "repos/{}/compare/{}...{}?per_page=1",
            self.repository,
            encode(base),
            encode(head)
        );
        self.get_json(&path, &format!("compare `{base}...{head}`"))
            .await
    }

    /// `GET base/path` as JSON; `None` on a 404.
    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        what: &str,
    ) -> Result<Option<T>, Error> {
        let url = self
            .base
            .join(path)
            .map_err(|e| Error::BadUrl(e.to_string()))?;
        crate::retry::run(self.policy, "a GitHub API read", |attempt| {
            let url = url.clone();
            async move {
                let failed = |last, status| Error::Request {
                    what: what.to_string(),
                    attempts: attempt,
                    last,
                    status,
                };
                match self.get_once(url).await {
                    Ok(v) => Outcome::Done(v),
                    Err((last, status, true)) => Outcome::Transient(failed(last, status)),
                    Err((last, status, false)) => Outcome::Final(failed(last, status)),
                }
            }
        })
        .await
    }

    /// One request: the value, or (what went wrong, the status, whether asking again may help).
    async fn get_once<T: serde::de::DeserializeOwned>(
        &self,
        url: url::Url,
    ) -> Result<Option<T>, (String, Option<u16>, bool)> {
        let response = self
            .http
            .get(url)
            .bearer_auth(&self.token)
            .header("Accept", "application/vnd.github+json")
            .header("X-GitHub-Api-Version", "2022-11-28")
            .header("User-Agent", "cloudshop-deploy")
            .send()
            .await
            .map_err(|e| (e.to_string(), None, true))?;
        let status = response.status();
        if status.as_u16() == 404 {
            return Ok(None);
        }
        if !status.is_success() {
            let retryable = status.is_server_error() || status.as_u16() == 429;
            return Err((format!("HTTP {status}"), Some(status.as_u16()), retryable));
        }
        let bytes = super::oidc::read_capped(response, MAX_REPLY)
            .await
            .map_err(|e| (format!("unreadable reply: {e}"), None, true))?
            .ok_or_else(|| {
                (
                    format!("the reply is larger than {MAX_REPLY} bytes"),
                    None,
                    false,
                )
            })?;
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| (format!("unreadable reply: {e}"), None, false))
    }
}

/// A path segment with everything but unreserved characters percent-encoded (environment names may
/// hold spaces).
fn encode(segment: &str) -> String {
    let mut out = String::new();
    for b in segment.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_names_are_one_path_segment() {
        assert_eq!(encode("prod"), "prod");
        assert_eq!(encode("prod eu/1"), "prod%20eu%2F1");
    }

    #[test]
    fn githubs_environment_reply_reads() {
        let text = r#"{"id":1,"name":"prod","protection_rules":[
            {"id":3,"type":"wait_timer","wait_timer":30},
            {"id":4,"type":"required_reviewers","prevent_self_review":true,"reviewers":[
                {"type":"User","reviewer":{"login":"octocat","id":1}},
                {"type":"Team","reviewer":{"slug":"ops","name":"Ops"}}]},
            {"id":5,"type":"branch_policy"}],
            "deployment_branch_policy":{"protected_branches":false,"custom_branch_policies":true}}"#;
        let env: Environment = serde_json::from_str(text).unwrap();
        assert_eq!(env.protection_rules.len(), 3);
        assert_eq!(env.protection_rules[0].wait_timer, Some(30));
        let r = &env.protection_rules[1].reviewers;
        assert_eq!(
            r[0].reviewer.as_ref().unwrap().login.as_deref(),
            Some("octocat")
        );
        assert_eq!(r[1].reviewer.as_ref().unwrap().slug.as_deref(), Some("ops"));
        assert!(env.deployment_branch_policy.unwrap().custom_branch_policies);
    }

    #[test]
    fn githubs_compare_reply_reads() {
        let text = r#"{"url":"u","status":"diverged","ahead_by":5,"behind_by":2,"total_commits":5,
            "commits":[{"sha":"a"}],"files":[]}"#;
        let c: Comparison = serde_json::from_str(text).unwrap();
        assert_eq!(
            (c.status.as_str(), c.ahead_by, c.behind_by),
            ("diverged", 5, 2)
        );
    }
}
