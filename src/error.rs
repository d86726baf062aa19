//! The run's error type: any module error that can explain itself through [`Diagnose`] (its message
//! plus one hint line with the fix). A leaf every module's error enum implements; no AWS API.

/// An error the action can explain: its message plus one hint line with the fix.
pub trait Diagnose: std::error::Error + Send + Sync + 'static {
    /// One line telling the reader how to fix it.
    fn hint(&self) -> String;

    /// The anchor of its section in `docs/troubleshooting.md`, when it has one.
    fn anchor(&self) -> Option<&'static str> {
        None
    }
}

/// The run's error: any module error that can explain itself.
#[derive(Debug)]
pub struct Error(Box<dyn Diagnose>);

impl Error {
    /// The fix, in one line.
    pub fn hint(&self) -> String {
        self.0.hint()
    }

    /// The hint, ending with a link to its section of `docs/troubleshooting.md`: on github.com
    /// (`base` is `{GITHUB_SERVER_URL}/{GITHUB_ACTION_REPOSITORY}/blob/{GITHUB_ACTION_REF}/`) or, without
    /// those variables, the path in the action's repository.
    pub fn hint_with_link(&self, base: Option<&str>) -> String {
        let hint = self.0.hint();
        match self.0.anchor() {
            Some(anchor) => format!(
                "{hint}; see {}docs/troubleshooting.md#{anchor}",
                base.unwrap_or("")
            ),
            None => hint,
        }
    }
}

/// The section for a failed AWS call, from its `<AWS code>: <message>` detail.
pub(crate) fn aws_anchor(detail: &str) -> Option<&'static str> {
    if detail.starts_with("AccessDenied") {
        troubleshooting!("access-denied-on-an-aws-operation")
    } else if detail.contains("Throttl") {
        troubleshooting!("ecs-throttling")
    } else {
        None
    }
}

/// The base of links into the action's repository at the running version, from the variables the
/// runner sets for a `uses:` action; `None` when any is missing.
pub fn docs_base(get: impl Fn(&str) -> Option<String>) -> Option<String> {
    let server = get("GITHUB_SERVER_URL").filter(|v| !v.is_empty())?;
    let repo = get("GITHUB_ACTION_REPOSITORY").filter(|v| !v.is_empty())?;
    let reference = get("GITHUB_ACTION_REF").filter(|v| !v.is_empty())?;
    Some(format!(
        "{}/{repo}/blob/{reference}/",
        server.trim_end_matches('/')
    ))
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl<E: Diagnose> From<E> for Error {
    fn from(e: E) -> Self {
        Error(Box::new(e))
    }
}

#[cfg(test)]
mod link_tests {
    use super::*;
    use crate::config;

    #[test]
    fn links_end_the_hint_and_follow_the_running_version() {
        let e = Error::from(config::Error::NoEnvironment);
        assert!(e
            .hint_with_link(None)
            .ends_with("; see docs/troubleshooting.md#unknown-environment"));
        let vars = |k: &str| {
            Some(
                match k {
                    "GITHUB_SERVER_URL" => "https://github.com/",
                    "GITHUB_ACTION_REPOSITORY" => "o/a",
                    _ => "v1.2.0",
                }
                .to_string(),
            )
        };
        let base = docs_base(vars);
        assert_eq!(base.as_deref(), Some("https://github.com/o/a/blob/v1.2.0/"));
        assert!(e.hint_with_link(base.as_deref()).ends_with(
            "; see https://github.com/o/a/blob/v1.2.0/docs/troubleshooting.md#unknown-environment"
        ));
        assert_eq!(docs_base(|_| None), None);
        assert_eq!(
            aws_anchor("AccessDeniedException: no"),
            Some("access-denied-on-an-aws-operation")
        );
        assert_eq!(
            aws_anchor("ThrottlingException: slow"),
            Some("ecs-throttling")
        );
        assert_eq!(aws_anchor("InvalidParameterException: x"), None);
    }
}
