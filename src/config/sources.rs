//! What every part's builder reads: the inputs, the file, the chosen environment's entry and the run
//! context, with the input-over-file rule. A leaf for the builders. No AWS API.

use super::error::Error;
use super::schema::{EnvironmentFile, FileConfig};
use crate::github::Context;
use crate::inputs::Inputs;

/// What every part's builder reads.
pub(super) struct Sources<'a> {
    pub(super) inputs: &'a Inputs,
    pub(super) file: &'a FileConfig,
    /// The chosen environment's entry (empty when the file has no environments).
    pub(super) env: &'a EnvironmentFile,
    pub(super) environment: &'a str,
    pub(super) ctx: &'a Context,
}

impl Sources<'_> {
    pub(super) fn missing(&self, key: &'static str) -> Error {
        Error::Missing {
            key,
            environment: self.environment.to_string(),
        }
    }
}

/// The input if set, else the file's value.
pub(super) fn pick(input: &Option<String>, file_value: &Option<String>) -> Option<String> {
    input.clone().or_else(|| file_value.clone())
}

/// The file's entry for `name`. Without environments in the file, inputs alone may describe one.
pub(super) fn environment_entry(file: &FileConfig, name: &str) -> Result<EnvironmentFile, Error> {
    match file.environments.get(name) {
        Some(e) => Ok(e.clone()),
        None if file.environments.is_empty() => Ok(EnvironmentFile::default()),
        None => Err(Error::UnknownEnvironment {
            name: name.to_string(),
            known: file.environments.keys().cloned().collect(),
        }),
    }
}
