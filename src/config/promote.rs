//! The promotion part: which environment `promote` copies from, and that environment's repository,
//! region and role, read from the same file. No AWS API.

use super::validate::{validate_region, validate_role_arn};
use super::{environment_entry, invalid, Error, Promote, Sources};

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
    Ok(Promote {
        source_repository: source.ecr_repository.clone().ok_or(Error::Missing {
            key: "ecr-repository",
            environment: source_name.clone(),
        })?,
        source_environment: source_name,
        source_region,
        source_role: source.role_to_assume,
    })
}
