//! The errors of the canary analysis's one fallible read, which target group is the new revision's,
//! each with the one-line fix the Actions log shows. A judged step never fails: what cannot be read is
//! its "no data" verdict.
//!
//! APIs: none (the calls that fail are in `groups`).

/// Errors of finding the new and the old revision's target groups.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `DescribeRules` failed (after the SDK's retries).
    #[error("failed to describe listener rules `{rules}`: {detail}")]
    Aws {
        /// The rule ARNs asked for, comma-separated.
        rules: String,
        /// `<AWS code>: <message>`.
        detail: String,
    },
    /// The rule is not in the answer.
    #[error("failed to find listener rule `{0}`: `DescribeRules` did not return it")]
    RuleMissing(String),
    /// The rules do not say which group is the new revision's.
    #[error("failed to tell the new revision's target group of `{first}` and `{second}`: {why}")]
    Ambiguous {
        first: String,
        second: String,
        why: String,
    },
}

impl crate::error::Diagnose for Error {
    fn hint(&self) -> String {
        match self {
            Error::Aws { detail, .. } if detail.starts_with("AccessDenied") => {
                "add `elasticloadbalancing:DescribeRules` to the deploy role's policy (see docs/iam)".into()
            }
            Error::Aws { .. } => "retry; if it persists, check the listener rules the service's `loadBalancers[].advancedConfiguration` names".into(),
            Error::RuleMissing(_) => "the service's `advancedConfiguration` names a listener rule that is gone: point it at the current production and test listener rules".into(),
            Error::Ambiguous { .. } => "give the service a test listener rule (`advancedConfiguration.testListenerRule`): it forwards only to the new revision's target group".into(),
        }
    }

    fn anchor(&self) -> Option<&'static str> {
        match self {
            Error::Aws { detail, .. } => crate::error::aws_anchor(detail),
            Error::RuleMissing(_) | Error::Ambiguous { .. } => troubleshooting!("canary-analysis"),
        }
    }
}
