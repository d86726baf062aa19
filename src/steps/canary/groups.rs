//! Which of the service's two target groups is the new revision's, from the listener rules ECS moves
//! traffic with: the test listener rule forwards only to the new revision's group; before the first
//! production step the production rule gives the new group no weight. The mapping holds for the whole
//! service deployment, so it is read once, at the first canary step.
//!
//! APIs: ELBv2 `DescribeRules`.

use serde::Serialize;

use super::error::Error;

/// The target-group ARNs of the new and the old revision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Groups {
    pub new: String,
    pub old: String,
}

pub use crate::steps::signals::metrics::forwards;
use crate::steps::signals::metrics::weight_of;

/// The pure decision: the one group of `pair` the test rule sends traffic to; without a test rule,
/// the one group of `pair` without production weight (before the first step).
pub fn pick(
    test: Option<&[(String, i32)]>,
    production: &[(String, i32)],
    pair: (&str, &str),
) -> Result<Groups, Error> {
    let (a, b) = pair;
    let ambiguous = |why: String| Error::Ambiguous {
        first: a.to_string(),
        second: b.to_string(),
        why,
    };
    let (wa, wb, source) = match test {
        Some(t) => (weight_of(t, a), weight_of(t, b), "test listener rule"),
        None => {
            // Without a test rule the new group is the one production does not reach yet.
            let (pa, pb) = (weight_of(production, a), weight_of(production, b));
            (
                i32::from(pa == 0),
                i32::from(pb == 0),
                "production listener rule",
            )
        }
    };
    match (wa > 0, wb > 0) {
        (true, false) => Ok(Groups {
            new: a.to_string(),
            old: b.to_string(),
        }),
        (false, true) => Ok(Groups {
            new: b.to_string(),
            old: a.to_string(),
        }),
        (true, true) if test.is_some() => Err(ambiguous(format!(
            "the {source} forwards to both (weights {wa} and {wb})"
        ))),
        (true, true) => Err(ambiguous(format!(
            "the {source} gives neither any weight: no traffic reaches the service"
        ))),
        (false, false) if test.is_some() => {
            Err(ambiguous(format!("the {source} forwards to neither")))
        }
        (false, false) => Err(ambiguous(format!(
            "the {source} gives both weight and there is no test listener rule"
        ))),
    }
}

/// Read the rules and [`pick`]. `pair` is the service's `targetGroupArn` and
/// `advancedConfiguration.alternateTargetGroupArn` (in either order).
pub async fn groups(
    elb: &aws_sdk_elasticloadbalancingv2::Client,
    test_rule: Option<&str>,
    production_rule: &str,
    pair: (&str, &str),
) -> Result<Groups, Error> {
    let mut arns = vec![production_rule.to_string()];
    arns.extend(test_rule.map(str::to_string));
    let out = elb
        .describe_rules()
        .set_rule_arns(Some(arns.clone()))
        .send()
        .await
        .map_err(|e| Error::Aws {
            rules: arns.join(", "),
            detail: crate::aws::describe(&e),
        })?;
    let find = |arn: &str| {
        out.rules()
            .iter()
            .find(|r| r.rule_arn() == Some(arn))
            .map(forwards)
            .ok_or_else(|| Error::RuleMissing(arn.to_string()))
    };
    let production = find(production_rule)?;
    let test = test_rule.map(find).transpose()?;
    pick(test.as_deref(), &production, pair)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_elasticloadbalancingv2::types::Rule;
    use aws_sdk_elasticloadbalancingv2::types::{
        Action, ActionTypeEnum, ForwardActionConfig, TargetGroupTuple,
    };

    const BLUE: &str = "arn:aws:elasticloadbalancing:us-east-1:746669238399:targetgroup/stage-backend-blue/73e2d6bc24d8a067";
    const GREEN: &str = "arn:aws:elasticloadbalancing:us-east-1:746669238399:targetgroup/stage-backend-green/1f0c9a2b3d4e5f60";

    fn w(pairs: &[(&str, i32)]) -> Vec<(String, i32)> {
        pairs.iter().map(|(a, w)| (a.to_string(), *w)).collect()
    }

    #[test]
    fn the_test_rule_names_the_new_group() {
        // (test rule, production rule, new group or the error's words)
        type Forwards = Vec<(String, i32)>;
        let cases: [(Option<Forwards>, Forwards, Result<&str, &str>); 7] = [
            (
                Some(w(&[(GREEN, 100)])),
                w(&[(BLUE, 90), (GREEN, 10)]),
                Ok(GREEN),
            ),
            (
                Some(w(&[(BLUE, 100), (GREEN, 0)])),
                w(&[(BLUE, 10), (GREEN, 90)]),
                Ok(BLUE),
            ),
            (
                Some(w(&[(BLUE, 50), (GREEN, 50)])),
                w(&[(BLUE, 100)]),
                Err("forwards to both"),
            ),
            (
                Some(w(&[("other", 100)])),
                w(&[(BLUE, 100)]),
                Err("forwards to neither"),
            ),
            // No test rule: before the first step the new group has no production weight.
            (None, w(&[(BLUE, 100), (GREEN, 0)]), Ok(GREEN)),
            (
                None,
                w(&[(BLUE, 90), (GREEN, 10)]),
                Err("no test listener rule"),
            ),
            (None, w(&[]), Err("gives neither any weight")),
        ];
        for (test, production, want) in cases {
            let got = pick(test.as_deref(), &production, (BLUE, GREEN));
            match (want, got) {
                (Ok(new), Ok(g)) => {
                    assert_eq!(g.new, new);
                    assert_eq!(g.old, if new == BLUE { GREEN } else { BLUE });
                }
                (Err(words), Err(e)) => assert!(e.to_string().contains(words), "{e}"),
                (want, got) => panic!("{test:?} {production:?}: {want:?} != {got:?}"),
            }
        }
    }

    #[test]
    fn forwards_of_a_rule() {
        let tuple = |arn: &str, weight: Option<i32>| {
            TargetGroupTuple::builder()
                .target_group_arn(arn)
                .set_weight(weight)
                .build()
        };
        let weighted = Rule::builder()
            .actions(
                Action::builder()
                    .r#type(ActionTypeEnum::Forward)
                    .forward_config(
                        ForwardActionConfig::builder()
                            .target_groups(tuple(BLUE, Some(90)))
                            .target_groups(tuple(GREEN, None))
                            .build(),
                    )
                    .build(),
            )
            .build();
        assert_eq!(forwards(&weighted), w(&[(BLUE, 90), (GREEN, 1)]));
        let plain = Rule::builder()
            .actions(
                Action::builder()
                    .r#type(ActionTypeEnum::Forward)
                    .target_group_arn(GREEN)
                    .build(),
            )
            .build();
        assert_eq!(forwards(&plain), w(&[(GREEN, 100)]));
    }
}
