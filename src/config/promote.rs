//! The promotion part: which environment `promote` copies from, and that environment's repository,
//! region and role, read from the same file. No AWS API.

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
    Ok(Promote {
        allow_unverified,
        require,
        source_repository: source.ecr_repository.clone().ok_or(Error::Missing {
            key: "ecr-repository",
            environment: source_name.clone(),
        })?,
        source_environment: source_name,
        source_region,
        source_role: source.role_to_assume,
    })
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
