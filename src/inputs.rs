//! The action's inputs, read once from `INPUT_*` variables.
//!
//! The runner sends `INPUT_` + the name upper-cased with hyphens kept (`INPUT_IMAGE-TAG`); people running
//! the binary by hand tend to write `INPUT_IMAGE_TAG`. Both spellings are accepted (the runner's wins), and
//! `""` means unset, since the runner sets every declared input, to `""` when it has no default.

use serde::{Deserialize, Serialize};

/// Raw input strings, one field per input of `action.yml` (snake_case of its kebab-case name);
/// validation happens in `config`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub struct Inputs {
    pub command: Option<String>,
    pub environment: Option<String>,
    pub config: Option<String>,
    pub aws_region: Option<String>,
    pub role_to_assume: Option<String>,
    pub role_session_name: Option<String>,
    pub role_duration_seconds: Option<String>,
    pub audience: Option<String>,
    pub dry_run: Option<String>,
    // backend
    pub image_tag: Option<String>,
    pub extra_tags: Option<String>,
    pub cluster: Option<String>,
    pub service: Option<String>,
    pub container: Option<String>,
    pub ecr_repository: Option<String>,
    pub task_definition: Option<String>,
    pub desired_count: Option<String>,
    pub force_new_deployment: Option<String>,
    pub wait_timeout: Option<String>,
    pub poll_interval: Option<String>,
    pub rollback_on_failure: Option<String>,
    pub revision: Option<String>,
    // smoke tests
    pub smoke_tests: Option<String>,
    pub smoke_url: Option<String>,
    pub smoke_timeout: Option<String>,
    pub website_url: Option<String>,
    pub watch: Option<String>,
    // frontend
    pub frontend: Option<String>,
    pub frontend_dir: Option<String>,
    pub frontend_bucket: Option<String>,
    pub frontend_prefix: Option<String>,
    pub frontend_delete: Option<String>,
    pub frontend_exclude: Option<String>,
    pub cloudfront_distribution_id: Option<String>,
    // promotion
    pub source_environment: Option<String>,
    pub image_archive: Option<String>,
    pub registry_url: Option<String>,
    pub allow_unverified: Option<String>,
    /// The job's token for GitHub's REST API (the approval gate); masked as soon as it is read.
    pub github_token: Option<String>,
}

/// An input value envy could not read into [`Inputs`].
#[derive(Debug, thiserror::Error)]
#[error("failed to read the action inputs: {0}")]
pub struct Error(String);

impl crate::error::Diagnose for Error {
    fn hint(&self) -> String {
        "check the `with:` block of the step".into()
    }

    fn anchor(&self) -> Option<&'static str> {
        troubleshooting!("missing-or-invalid-setting")
    }
}

impl Inputs {
    /// Every input name this version understands (kebab-case), from the struct itself.
    pub fn names() -> Vec<String> {
        match serde_json::to_value(Inputs::default()) {
            Ok(serde_json::Value::Object(map)) => map.keys().cloned().collect(),
            _ => Vec::new(),
        }
    }

    /// `INPUT_*` names in `vars` that this version does not know (a typo in `with:`, or an input of a
    /// newer version), normalised to kebab-case.
    pub fn unknown<I, K, V>(vars: I) -> Vec<String>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let known = Self::names();
        let mut unknown: Vec<String> = vars
            .into_iter()
            .filter_map(|(k, _)| {
                k.as_ref()
                    .strip_prefix("INPUT_")
                    .map(|n| n.to_ascii_lowercase().replace(['_', ' '], "-"))
            })
            .filter(|n| !known.contains(n))
            .collect();
        unknown.sort();
        unknown.dedup();
        unknown
    }

    /// Read inputs from `(name, value)` pairs (the process environment in `main`).
    pub fn from_env<I, K, V>(vars: I) -> Result<Self, Error>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let mut runner_spelling = Vec::new();
        let mut other_spelling = Vec::new();
        for (k, v) in vars {
            let (k, v) = (k.as_ref(), v.as_ref());
            let Some(name) = k.strip_prefix("INPUT_") else {
                continue;
            };
            let value = v.trim();
            if value.is_empty() {
                continue;
            }
            let normalized = name.to_ascii_lowercase().replace(['_', ' '], "-");
            if name.contains('_') {
                other_spelling.push((normalized, value.to_string()));
            } else {
                runner_spelling.push((normalized, value.to_string()));
            }
        }
        // The runner's spelling wins: insert it last.
        let merged: std::collections::BTreeMap<String, String> =
            other_spelling.into_iter().chain(runner_spelling).collect();
        envy::from_iter(merged).map_err(|e| Error(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_spellings_and_empty_means_unset() {
        let inputs = Inputs::from_env([
            ("INPUT_IMAGE-TAG", "abc"),
            ("INPUT_AWS_REGION", "eu-west-1"),
            ("INPUT_ENVIRONMENT", ""),
            ("INPUT_DRY-RUN", "  true "),
            ("PATH", "/bin"),
        ])
        .unwrap();
        assert_eq!(inputs.image_tag.as_deref(), Some("abc"));
        assert_eq!(inputs.aws_region.as_deref(), Some("eu-west-1"));
        assert_eq!(inputs.environment, None);
        assert_eq!(inputs.dry_run.as_deref(), Some("true"));
    }

    #[test]
    fn unknown_inputs_are_named() {
        assert!(Inputs::names().contains(&"image-tag".to_string()));
        assert_eq!(
            Inputs::unknown([
                ("INPUT_IMAGE-TAG", "x"),
                ("INPUT_IMAGE_TAGS", "y"),
                ("HOME", "/")
            ]),
            vec!["image-tags".to_string()]
        );
    }

    #[test]
    fn runner_spelling_wins() {
        let inputs =
            Inputs::from_env([("INPUT_IMAGE-TAG", "runner"), ("INPUT_IMAGE_TAG", "manual")])
                .unwrap();
        assert_eq!(inputs.image_tag.as_deref(), Some("runner"));
        let inputs =
            Inputs::from_env([("INPUT_IMAGE_TAG", "manual"), ("INPUT_IMAGE-TAG", "runner")])
                .unwrap();
        assert_eq!(inputs.image_tag.as_deref(), Some("runner"));
    }
}
