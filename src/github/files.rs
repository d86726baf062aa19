//! The runner's file commands: step outputs (`GITHUB_OUTPUT`) and the job summary (`GITHUB_STEP_SUMMARY`).
//!
//! Outputs are always written in the heredoc form with a random `ghadelimiter_` delimiter, and a value
//! that contains the delimiter is refused, so a value from outside can never inject a second output.
//! Outside GitHub (no `GITHUB_OUTPUT`), outputs print as `name=value` lines and the summary goes to stdout.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use rand::Rng;

/// The runner drops a step summary over 1 MiB; we cut ours a little below that with a note.
pub const SUMMARY_LIMIT: usize = 1024 * 1024 - 4096;

/// Errors of the file-command layer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The value contains the heredoc delimiter (practically impossible with a random one, but checked).
    #[error("output `{name}` contains the heredoc delimiter; refusing to write it")]
    DelimiterInValue {
        /// Output name.
        name: String,
    },
    /// An output name the runner would misparse.
    #[error("output name `{0}` is not a valid output name")]
    BadName(String),
    /// Could not append to a runner file.
    #[error("failed to write `{path}`: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
}

/// A fresh random delimiter in the toolkit's format.
pub fn new_delimiter() -> String {
    let mut rng = rand::rng();
    let bytes: [u8; 16] = rng.random();
    format!("ghadelimiter_{}", hex::encode(bytes))
}

/// Format one output in the heredoc form.
pub fn format_output(name: &str, value: &str, delimiter: &str) -> Result<String, Error> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(Error::BadName(name.to_string()));
    }
    if value.contains(delimiter) || name.contains(delimiter) {
        return Err(Error::DelimiterInValue {
            name: name.to_string(),
        });
    }
    Ok(format!("{name}<<{delimiter}\n{value}\n{delimiter}\n"))
}

/// Where outputs and the summary go.
#[derive(Debug, Clone, Default)]
pub struct Sinks {
    /// `GITHUB_OUTPUT`, when running under the runner.
    pub output_file: Option<PathBuf>,
    /// `GITHUB_STEP_SUMMARY`, when running under the runner.
    pub summary_file: Option<PathBuf>,
}

impl Sinks {
    /// Take the file paths from the environment; empty values count as unset.
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Self {
        let path = |k: &str| get(k).filter(|v| !v.is_empty()).map(PathBuf::from);
        Sinks {
            output_file: path("GITHUB_OUTPUT"),
            summary_file: path("GITHUB_STEP_SUMMARY"),
        }
    }

    /// Write every output, to the output file or as `name=value` lines on `stdout`.
    pub fn write_outputs(
        &self,
        outputs: &[(String, String)],
        stdout: &mut impl Write,
    ) -> Result<(), Error> {
        self.write_outputs_delimited(outputs, stdout, new_delimiter)
    }

    /// [`Sinks::write_outputs`] with the delimiter source passed in, so a test can pin the exact text.
    fn write_outputs_delimited(
        &self,
        outputs: &[(String, String)],
        stdout: &mut impl Write,
        new_delimiter: impl Fn() -> String,
    ) -> Result<(), Error> {
        match &self.output_file {
            Some(path) => {
                let delimiter = new_delimiter();
                let mut text = String::new();
                for (name, value) in outputs {
                    text.push_str(&format_output(name, value, &delimiter)?);
                }
                append(path, &text)
            }
            None => {
                for (name, value) in outputs {
                    let line = if value.contains('\n') {
                        format_output(name, value, &new_delimiter())?
                    } else {
                        format!("{name}={value}\n")
                    };
                    stdout
                        .write_all(line.as_bytes())
                        .map_err(|source| Error::Io {
                            path: PathBuf::from("<stdout>"),
                            source,
                        })?;
                }
                Ok(())
            }
        }
    }

    /// Append the job summary (cut to the runner's limit) to the summary file, or print it.
    pub fn write_summary(&self, markdown: &str, stdout: &mut impl Write) -> Result<(), Error> {
        let text = cap_summary(markdown);
        match &self.summary_file {
            Some(path) => append(path, &text),
            None => stdout
                .write_all(text.as_bytes())
                .map_err(|source| Error::Io {
                    path: PathBuf::from("<stdout>"),
                    source,
                }),
        }
    }
}

fn cap_summary(markdown: &str) -> String {
    if markdown.len() <= SUMMARY_LIMIT {
        let mut s = markdown.to_string();
        if !s.ends_with('\n') {
            s.push('\n');
        }
        return s;
    }
    let mut cut = SUMMARY_LIMIT;
    while !markdown.is_char_boundary(cut) {
        cut -= 1;
    }
    format!(
        "{}\n\n_(summary cut at {} KiB: the runner drops summaries over 1 MiB)_\n",
        &markdown[..cut],
        SUMMARY_LIMIT / 1024
    )
}

fn append(path: &Path, text: &str) -> Result<(), Error> {
    let io_err = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(io_err)?;
    file.write_all(text.as_bytes()).map_err(io_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_file_text_is_exact() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out");
        let sinks = Sinks {
            output_file: Some(path.clone()),
            summary_file: None,
        };
        let outputs = [
            ("status".to_string(), "deployed".to_string()),
            ("smoke-report".to_string(), "line 1\nline 2".to_string()),
            ("empty".to_string(), String::new()),
        ];
        let fixed = || "ghadelimiter_FIXED".to_string();
        sinks
            .write_outputs_delimited(&outputs, &mut io::sink(), fixed)
            .unwrap();
        // A second write appends with its own delimiter, as two steps' writes would.
        sinks
            .write_outputs_delimited(&outputs[..1], &mut io::sink(), fixed)
            .unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "status<<ghadelimiter_FIXED\n\
             deployed\n\
             ghadelimiter_FIXED\n\
             smoke-report<<ghadelimiter_FIXED\n\
             line 1\n\
             line 2\n\
             ghadelimiter_FIXED\n\
             empty<<ghadelimiter_FIXED\n\
             \n\
             ghadelimiter_FIXED\n\
             status<<ghadelimiter_FIXED\n\
             deployed\n\
             ghadelimiter_FIXED\n"
        );
    }

    #[test]
    fn output_file_uses_a_fresh_random_delimiter() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out");
        let sinks = Sinks {
            output_file: Some(path.clone()),
            summary_file: None,
        };
        sinks
            .write_outputs(&[("status".into(), "deployed".into())], &mut io::sink())
            .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let delimiter = text
            .strip_prefix("status<<")
            .and_then(|rest| rest.split_once('\n'))
            .map(|(d, _)| d)
            .unwrap();
        assert!(delimiter.starts_with("ghadelimiter_"), "{text}");
        assert_eq!(
            text,
            format!("status<<{delimiter}\ndeployed\n{delimiter}\n")
        );
    }

    #[test]
    fn value_with_the_delimiter_is_refused() {
        let err = format_output("a", "x ghadelimiter_1 y", "ghadelimiter_1").unwrap_err();
        assert!(matches!(err, Error::DelimiterInValue { .. }));
        assert!(format_output("a=b", "x", "d").is_err());
    }

    #[test]
    fn delimiters_are_random() {
        assert_ne!(new_delimiter(), new_delimiter());
        assert!(new_delimiter().starts_with("ghadelimiter_"));
    }

    #[test]
    fn outside_github_prints_lines() {
        let mut buf = Vec::new();
        Sinks::default()
            .write_outputs(&[("status".into(), "deployed".into())], &mut buf)
            .unwrap();
        assert_eq!(String::from_utf8(buf).unwrap(), "status=deployed\n");
    }

    #[test]
    fn summary_is_capped() {
        let big = "x".repeat(SUMMARY_LIMIT + 10);
        let capped = cap_summary(&big);
        assert!(capped.len() < 1024 * 1024);
        assert!(capped.contains("summary cut"));
    }
}
