//! The promotion part: which environment `promote` copies from, and that environment's repository,
//! region and role, read from the same file; and the approval a promotion needs (`promote.*` of the
//! target environment). No AWS API.

use super::error::{invalid, Error};
use super::sources::{environment_entry, Sources};
use super::validate::{parse_bool, validate_region, validate_role_arn};

/// Where `promote` takes the image from.
#[derive(Debug, Clone, PartialEq)]
pub struct Promote {
    pub source_environment: String,
    pub source_repository: String,
    /// A validated region name.
    pub source_region: String,
    /// Role of the source environment (a validated role ARN), when it differs (for cross-account reads).
    pub source_role: Option<String>,
    /// `allow-unverified`: promote a digest the source environment has not verified (with a warning).
    pub allow_unverified: bool,
    /// `promote.require`: the gates the source release must have passed there.
    pub require: Vec<String>,
    pub approval: Approval,
}

/// The approval a promotion needs, checked against the job's GitHub environment before any write.
#[derive(Debug, Clone, PartialEq)]
pub struct Approval {
    /// The GitHub environment the job runs in: `github-environment`, else the environment's name.
    pub github_environment: String,
    /// `promote.require-approval`: no required reviewers (and no `approvers` match) refuses.
    pub require: bool,
    /// `promote.approvers`: valid GitHub logins, as written.
    pub approvers: Vec<String>,
    /// `promote.allow-self-approval`.
    pub allow_self_approval: bool,
    /// The `github-token` input (masked at load time).
    pub token: Option<Token>,
}

/// A GitHub token: never printed, also not by `Debug`.
#[derive(Clone, PartialEq)]
pub struct Token(pub String);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(***)")
    }
}

/// Build [`Promote`] for `command: promote`: the source is `source-environment`, else `promote-from`.
pub(super) fn build(src: &Sources, region: &str) -> Result<Promote, Error> {
    let source_name = src
        .inputs
        .source_environment
        .clone()
        .or_else(|| src.env.promote_from.clone())
        .ok_or_else(|| src.missing("source-environment"))?;
    if source_name == src.environment {
        return Err(invalid(
            "source-environment",
            "the source and target environments are the same",
        ));
    }
    let source = environment_entry(src.file, &source_name)?;
    let source_region = source
        .region
        .clone()
        .or_else(|| src.file.region.clone())
        .unwrap_or_else(|| region.to_string());
    validate_region(&source_region)?;
    if let Some(arn) = &source.role_to_assume {
        validate_role_arn(arn)?;
    }
    let allow_unverified = src
        .inputs
        .allow_unverified
        .as_deref()
        .map(|v| parse_bool("allow-unverified", v))
        .transpose()?
        .unwrap_or(false);
    let require = required_gates(src)?;
    let approval = approval(src)?;
    Ok(Promote {
        allow_unverified,
        require,
        approval,
        source_repository: source.ecr_repository.clone().ok_or(Error::Missing {
            key: "ecr-repository",
            environment: source_name.clone(),
        })?,
        source_environment: source_name,
        source_region,
        source_role: source.role_to_assume,
    })
}

/// `promote.require-approval`, `approvers` and `allow-self-approval` of the target environment; a
/// login GitHub could not have is refused here, before any call.
fn approval(src: &Sources) -> Result<Approval, Error> {
    let file = src.env.promote.clone().unwrap_or_default();
    let approvers = file.approvers.unwrap_or_default();
    if let Some(bad) = approvers.iter().find(|l| !is_github_login(l)) {
        return Err(invalid(
            "promote.approvers",
            format!("`{bad}` is not a GitHub login (1-39 letters, digits or single hyphens, not starting or ending with a hyphen)"),
        ));
    }
    Ok(Approval {
        github_environment: src
            .env
            .github_environment
            .clone()
            .unwrap_or_else(|| src.environment.to_string()),
        require: file.require_approval.unwrap_or(false),
        approvers,
        allow_self_approval: file.allow_self_approval.unwrap_or(false),
        token: src.inputs.github_token.clone().map(Token),
    })
}

/// GitHub's rule for user names: 1-39 ASCII letters, digits or hyphens, no leading, trailing or double
/// hyphen.
pub fn is_github_login(s: &str) -> bool {
    (1..=39).contains(&s.len())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
        && !s.contains("--")
}

/// `promote.require` of the target environment, checked against the gates a marker records.
fn required_gates(src: &Sources) -> Result<Vec<String>, Error> {
    use crate::registry::artifact::{DEFAULT_REQUIRED, RECORDED_GATES as known};
    let Some(list) = src.env.promote.as_ref().and_then(|p| p.require.clone()) else {
        return Ok(DEFAULT_REQUIRED.iter().map(|s| s.to_string()).collect());
    };
    for g in &list {
        if !known.contains(&g.as_str()) {
            return Err(invalid(
                "promote.require",
                format!(
                    "`{g}` is not a gate a release records (one of: {})",
                    known.join(", ")
                ),
            ));
        }
    }
    Ok(list)
}

#[cfg(test)]
mod tests {
    use super::is_github_login;

    #[test]
    fn github_logins_follow_githubs_rule() {
        for ok in ["a", "octo-cat", "A1", &"x".repeat(39)] {
            assert!(is_github_login(ok), "{ok}");
        }
        for bad in [
            "",
            "-a",
            "a-",
            "a--b",
            "a_b",
            "a.b",
            "a b",
            "@a",
            &"x".repeat(40),
            "ä",
        ] {
            assert!(!is_github_login(bad), "{bad}");
        }
    }
}
