//! The approval gate of a promotion: read the job's GitHub environment, report its protection rules,
//! and refuse before any write when the environments file requires an approval the environment does
//! not give. Required reviewers in a private or internal repository need GitHub Enterprise, so on other
//! plans the environment may exist without them and the "approve" step silently does not happen; this
//! gate makes that visible, and `promote.approvers` gives such plans a checked fallback: who dispatched
//! the promotion must be listed, and must not have written the promoted commit.
//!
//! APIs: GitHub REST `GET /repos/{owner}/{repo}/environments/{name}` and
//! `GET /repos/{owner}/{repo}/commits/{sha}` (see [`crate::github::rest`]).

use std::fmt::Write as _;

use serde::Serialize;

use crate::config::Approval;
use crate::github::rest::{self, Api, Environment};
use crate::report::section::{md_code, md_escape, Section};
use crate::steps::release::Settings;

/// Why a promotion is refused.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Approval is required but the gate cannot read the environment.
    #[error("refusing to promote `{sha}`: its approval must be checked (`promote.require-approval` or `promote.approvers`), but {why}")]
    Unreadable { sha: String, why: String },
    /// The environment has no required reviewers (or does not exist) and no fallback admits the actor.
    #[error("refusing to promote `{sha}`: `promote.require-approval` is true but GitHub environment `{environment}` {state}")]
    NoReviewers {
        sha: String,
        environment: String,
        /// "does not exist" or "has no required reviewers".
        state: &'static str,
    },
    /// The fallback: who dispatched is not listed.
    #[error("refusing to promote `{sha}`: {actor} dispatched it and is not in `promote.approvers` ({listed})")]
    NotApprover {
        sha: String,
        actor: String,
        listed: String,
    },
    /// The fallback: who dispatched wrote the commit.
    #[error("refusing to promote `{sha}`: `{actor}` dispatched it and is the commit's author; an approver may not approve their own change")]
    SelfApproval { sha: String, actor: String },
    /// The fallback: the commit's author is unknown, so self-approval cannot be ruled out.
    #[error("refusing to promote `{sha}`: its author is not a GitHub account, so `{actor}` cannot be shown not to be the author")]
    UnknownAuthor { sha: String, actor: String },
    /// A REST read failed while the fallback needed it.
    #[error(transparent)]
    Rest(#[from] rest::Error),
}

/// The fix for a promotion without a real approval.
const FIX: &str = "required reviewers in a private or internal repository need GitHub Enterprise: make the repository public, use GitHub Enterprise, or list who may promote in `promote.approvers` of the environments file";

impl crate::error::Diagnose for Error {
    fn hint(&self) -> String {
        match self {
            Error::Unreadable { .. } => format!("pass `github-token` (default `${{{{ github.token }}}}`) and give the job `permissions: {{ actions: read, deployments: read }}`; {FIX}"),
            Error::NoReviewers { .. } => format!("add required reviewers to the GitHub environment; {FIX}"),
            Error::NotApprover { .. } => "dispatch the promotion as one of `promote.approvers`, or add the login to the list".into(),
            Error::SelfApproval { .. } | Error::UnknownAuthor { .. } => "have another login of `promote.approvers` dispatch the promotion (or set `promote.allow-self-approval: true`)".into(),
            Error::Rest(e) => crate::error::Diagnose::hint(e),
        }
    }

    fn anchor(&self) -> Option<&'static str> {
        match self {
            Error::Rest(_) => None,
            _ => troubleshooting!("promotion-not-approved"),
        }
    }
}

/// How the promotion is approved.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// The environment's required reviewers approved the job before it started.
    Reviewers,
    /// `promote.approvers` admitted who dispatched it.
    Approver,
    /// No approval is required, and none was found.
    NotRequired,
}

/// The approval section of the summary.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ApprovalReport {
    pub github_environment: String,
    /// The environment as read; `None`: it does not exist, or it was not read (`unread` says why).
    pub environment: Option<Environment>,
    pub unread: Option<Unread>,
    pub actor: Option<String>,
    pub commit_author: Option<String>,
    pub verdict: Option<Verdict>,
}

/// Why the environment was not read.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Unread {
    /// No `github-token` or no `GITHUB_REPOSITORY`.
    NoToken,
    /// The read failed (the error's text).
    Failed(String),
}

/// The reason without a token, as Markdown.
const NO_TOKEN: &str =
    "there is no `github-token` (or no `GITHUB_REPOSITORY`) to read the job's GitHub environment with";

/// Has the environment a `required_reviewers` rule with at least one reviewer?
fn has_reviewers(env: &Environment) -> bool {
    env.protection_rules
        .iter()
        .any(|r| r.kind == "required_reviewers" && !r.reviewers.is_empty())
}

/// The REST client of the run, when there is a token and a repository to read.
fn api(approval: &Approval, settings: &Settings) -> Result<Option<Api>, rest::Error> {
    Api::of_run(
        settings.api_url.as_deref(),
        settings.repository.as_deref(),
        approval.token.as_ref().map(|t| t.0.as_str()),
    )
}

/// Check the approval of promoting commit `sha`; record what was read into `section`.
pub async fn check(
    approval: &Approval,
    settings: &Settings,
    sha: &str,
    section: &mut ApprovalReport,
) -> Result<Verdict, Error> {
    section.github_environment = approval.github_environment.clone();
    section.actor = settings.actor.clone();
    let unreadable = |why: String| Error::Unreadable {
        sha: sha.to_string(),
        why,
    };
    let Some(api) = api(approval, settings)? else {
        section.unread = Some(Unread::NoToken);
        if approval.require || !approval.approvers.is_empty() {
            return Err(unreadable(NO_TOKEN.to_string()));
        }
        section.verdict = Some(Verdict::NotRequired);
        return Ok(Verdict::NotRequired);
    };
    let env = match api.environment(&approval.github_environment).await {
        Ok(env) => env,
        Err(e) if approval.require || !approval.approvers.is_empty() => {
            section.unread = Some(Unread::Failed(e.to_string()));
            return Err(unreadable(e.to_string()));
        }
        Err(e) => {
            tracing::warn!("the approval gate could not read the GitHub environment: {e}");
            section.unread = Some(Unread::Failed(e.to_string()));
            section.verdict = Some(Verdict::NotRequired);
            return Ok(Verdict::NotRequired);
        }
    };
    section.environment = env.clone();
    let verdict = match env.as_ref().filter(|e| has_reviewers(e)) {
        Some(_) => Verdict::Reviewers,
        None if !approval.approvers.is_empty() => {
            fallback(&api, approval, settings, sha, section).await?
        }
        None if approval.require => {
            return Err(Error::NoReviewers {
                sha: sha.to_string(),
                environment: approval.github_environment.clone(),
                state: if env.is_none() {
                    "does not exist"
                } else {
                    "has no required reviewers"
                },
            })
        }
        None => Verdict::NotRequired,
    };
    section.verdict = Some(verdict.clone());
    Ok(verdict)
}

/// `promote.approvers`: the actor is listed and, unless self-approval is allowed, not the author.
async fn fallback(
    api: &Api,
    approval: &Approval,
    settings: &Settings,
    sha: &str,
    section: &mut ApprovalReport,
) -> Result<Verdict, Error> {
    let actor = settings.actor.clone().unwrap_or_default();
    let listed = |login: &str| {
        approval
            .approvers
            .iter()
            .any(|a| a.eq_ignore_ascii_case(login))
    };
    if actor.is_empty() || !listed(&actor) {
        return Err(Error::NotApprover {
            sha: sha.to_string(),
            actor: if actor.is_empty() {
                "an unknown actor (no `GITHUB_TRIGGERING_ACTOR` or `GITHUB_ACTOR`)".into()
            } else {
                format!("`{actor}`")
            },
            listed: approval
                .approvers
                .iter()
                .map(|a| format!("`{a}`"))
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    if approval.allow_self_approval {
        return Ok(Verdict::Approver);
    }
    let author = api.commit_author(sha).await?;
    section.commit_author = author.clone();
    match author {
        Some(a) if a.eq_ignore_ascii_case(&actor) => Err(Error::SelfApproval {
            sha: sha.to_string(),
            actor,
        }),
        Some(_) => Ok(Verdict::Approver),
        None => Err(Error::UnknownAuthor {
            sha: sha.to_string(),
            actor,
        }),
    }
}

impl ApprovalReport {
    /// The protection rules, one line each.
    fn rules(&self, md: &mut String) {
        let Some(env) = &self.environment else {
            let state = match &self.unread {
                Some(Unread::NoToken) => format!("not read: {NO_TOKEN}"),
                Some(Unread::Failed(why)) => format!("not read: {}", md_escape(why)),
                None => "does not exist".into(),
            };
            let _ = writeln!(md, "| rules | {state} |");
            return;
        };
        let mut reviewers = Vec::new();
        let mut wait = None;
        for rule in &env.protection_rules {
            match rule.kind.as_str() {
                "required_reviewers" => {
                    for r in rule.reviewers.iter().filter_map(|r| r.reviewer.as_ref()) {
                        match (&r.login, &r.slug) {
                            (Some(login), _) => reviewers.push(md_code(login)),
                            (None, Some(slug)) => reviewers.push(format!("team {}", md_code(slug))),
                            (None, None) => {}
                        }
                    }
                }
                "wait_timer" => wait = rule.wait_timer,
                _ => {}
            }
        }
        let reviewers = if reviewers.is_empty() {
            "none".to_string()
        } else {
            reviewers.join(", ")
        };
        let _ = writeln!(md, "| required reviewers | {reviewers} |");
        let wait = wait.map_or("none".to_string(), |m| format!("{m} min"));
        let _ = writeln!(md, "| wait timer | {wait} |");
        let branches = match &env.deployment_branch_policy {
            None => "any branch",
            Some(p) if p.protected_branches => "protected branches",
            Some(p) if p.custom_branch_policies => "selected branches and tags",
            Some(_) => "any branch",
        };
        let _ = writeln!(md, "| branch policy | {branches} |");
    }
}

impl Section for ApprovalReport {
    fn outputs(&self, _out: &mut Vec<(String, String)>) {}

    fn summary(&self, md: &mut String) {
        let _ = writeln!(md, "### Approval\n\n| | |\n|---|---|");
        let _ = writeln!(
            md,
            "| GitHub environment | {} |",
            md_code(&self.github_environment)
        );
        self.rules(md);
        if let Some(actor) = &self.actor {
            let _ = writeln!(md, "| dispatched by | {} |", md_code(actor));
        }
        if let Some(author) = &self.commit_author {
            let _ = writeln!(md, "| commit author | {} |", md_code(author));
        }
        let verdict = match &self.verdict {
            Some(Verdict::Reviewers) => "approved by the environment's required reviewers",
            Some(Verdict::Approver) => "dispatched by a listed approver (`promote.approvers`)",
            Some(Verdict::NotRequired) => "not required (`promote.require-approval: false`)",
            None => "**refused**",
        };
        let _ = writeln!(md, "| approval | {verdict} |\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::github::rest::{Reviewer, ReviewerName, Rule};

    fn env(rules: Vec<Rule>) -> Environment {
        Environment {
            name: "prod".into(),
            protection_rules: rules,
            deployment_branch_policy: None,
        }
    }

    fn approval(require: bool, approvers: &[&str]) -> Approval {
        Approval {
            github_environment: "production".into(),
            require,
            approvers: approvers.iter().map(|s| s.to_string()).collect(),
            allow_self_approval: false,
            token: None,
        }
    }

    #[tokio::test]
    async fn without_a_token_a_required_approval_fails_closed() {
        let settings = Settings {
            repository: Some("acme/cloudshop".into()),
            actor: Some("bob".into()),
            ..Settings::default()
        };
        for (require, approvers) in [(true, &[][..]), (false, &["bob"][..])] {
            let mut section = ApprovalReport::default();
            let err = check(
                &approval(require, approvers),
                &settings,
                "abc",
                &mut section,
            )
            .await
            .unwrap_err();
            assert!(matches!(err, Error::Unreadable { .. }), "{err}");
            assert!(err.to_string().contains("`github-token`"), "{err}");
            assert_eq!(section.unread, Some(Unread::NoToken));
            assert_eq!(section.verdict, None);
        }
        let mut section = ApprovalReport::default();
        let verdict = check(&approval(false, &[]), &settings, "abc", &mut section)
            .await
            .unwrap();
        assert_eq!(verdict, Verdict::NotRequired);
        let mut md = String::new();
        section.summary(&mut md);
        assert!(
            md.contains("| rules | not read: there is no `github-token`"),
            "{md}"
        );
        assert!(md.contains("| approval | not required"), "{md}");
    }

    #[test]
    fn only_a_reviewers_rule_with_a_reviewer_counts() {
        assert!(!has_reviewers(&env(vec![])));
        let wait = Rule {
            kind: "wait_timer".into(),
            wait_timer: Some(5),
            ..Rule::default()
        };
        assert!(!has_reviewers(&env(vec![wait.clone()])));
        let mut reviewers = Rule {
            kind: "required_reviewers".into(),
            ..Rule::default()
        };
        assert!(!has_reviewers(&env(vec![wait.clone(), reviewers.clone()])));
        reviewers.reviewers.push(Reviewer {
            kind: "Team".into(),
            reviewer: Some(ReviewerName {
                login: None,
                slug: Some("ops".into()),
            }),
        });
        assert!(has_reviewers(&env(vec![wait, reviewers])));
    }
}
