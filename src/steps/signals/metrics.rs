//! The load balancer's view of the service, from CloudWatch: which `TargetGroup` and `LoadBalancer`
//! dimensions its metrics carry (from the service's target group ARNs and their load balancers), and
//! one window's requests, target 5xx answers and p95 response time.
//!
//! A blue/green, linear or canary service has two target groups and its production traffic moves from
//! one to the other with each deployment, so its windows are read where production went: before the
//! deploy from the group the new revision replaced, after it from the group its production listener
//! rule forwards to now.
//!
//! APIs: ELBv2 `DescribeTargetGroups`, `DescribeRules`; CloudWatch `GetMetricData`.

use std::time::{Duration, SystemTime};

use aws_sdk_cloudwatch::types::{Dimension, Metric, MetricDataQuery, MetricStat};
use aws_sdk_elasticloadbalancingv2::types::Rule;
use serde::Serialize;

use super::compare::Metrics;
use super::unreadable::ReadError;

const NAMESPACE: &str = "AWS/ApplicationELB";

/// The dimensions of one target group's metrics: `targetgroup/<name>/<id>` and `app/<name>/<id>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dimensions {
    pub target_group: String,
    pub load_balancer: String,
}

/// The part of an ELBv2 ARN CloudWatch names it by: after `:targetgroup/` -> `targetgroup/...`, after
/// `:loadbalancer/` -> `app/...`.
pub fn dimension_of(arn: &str) -> Option<String> {
    let (_, resource) = arn.rsplit_once(':')?;
    if resource.starts_with("targetgroup/") {
        return Some(resource.to_string());
    }
    let lb = resource.strip_prefix("loadbalancer/")?;
    (lb.starts_with("app/") || lb.starts_with("net/")).then(|| lb.to_string())
}

/// The dimensions of the first of `target_groups` that sits behind a load balancer; `None` when none
/// does (a target group with no listener has no metrics).
pub async fn find(
    elb: &aws_sdk_elasticloadbalancingv2::Client,
    target_groups: &[String],
) -> Result<Option<Dimensions>, ReadError> {
    if target_groups.is_empty() {
        return Ok(None);
    }
    let out = elb
        .describe_target_groups()
        .set_target_group_arns(Some(target_groups.to_vec()))
        .send()
        .await
        .map_err(|e| ReadError::of(&e, "elasticloadbalancing:DescribeTargetGroups"))?;
    Ok(out.target_groups().iter().find_map(|tg| {
        let target_group = dimension_of(tg.target_group_arn()?)?;
        let load_balancer = tg
            .load_balancer_arns()
            .iter()
            .find_map(|a| dimension_of(a))?;
        Some(Dimensions {
            target_group,
            load_balancer,
        })
    }))
}

/// The target group of `pair` that `production_rule` forwards the most production traffic to, and the
/// other one.
pub async fn live_and_other(
    elb: &aws_sdk_elasticloadbalancingv2::Client,
    production_rule: &str,
    pair: (&str, &str),
) -> Result<(String, String), ReadError> {
    let out = elb
        .describe_rules()
        .rule_arns(production_rule)
        .send()
        .await
        .map_err(|e| ReadError::of(&e, "elasticloadbalancing:DescribeRules"))?;
    let forwards = out
        .rules()
        .iter()
        .find(|r| r.rule_arn() == Some(production_rule))
        .map(forwards)
        .ok_or_else(|| {
            ReadError::NotFound(format!("listener rule `{production_rule}` not found"))
        })?;
    live_of(&forwards, pair).ok_or_else(|| {
        ReadError::Other(format!(
            "listener rule `{production_rule}` forwards to neither `{}` nor `{}`",
            pair.0, pair.1
        ))
    })
}

/// The `(target group, weight)` pairs a rule forwards to. A forward without a `ForwardConfig` (one
/// `TargetGroupArn`) takes all; a weight left out counts as 1, as ELBv2 reads it.
pub fn forwards(rule: &Rule) -> Vec<(String, i32)> {
    let mut out = Vec::new();
    for action in rule.actions() {
        match action.forward_config() {
            Some(fc) if !fc.target_groups().is_empty() => {
                for t in fc.target_groups() {
                    if let Some(arn) = t.target_group_arn() {
                        out.push((arn.to_string(), t.weight().unwrap_or(1)));
                    }
                }
            }
            _ => {
                if let Some(arn) = action.target_group_arn() {
                    out.push((arn.to_string(), 100));
                }
            }
        }
    }
    out
}

/// The weight `forwards` gives target group `arn` (0 when it forwards none to it).
pub fn weight_of(forwards: &[(String, i32)], arn: &str) -> i32 {
    forwards
        .iter()
        .filter(|(a, _)| a == arn)
        .map(|(_, w)| *w)
        .sum()
}

/// The pure half of [`live_and_other`]: the group of `pair` with the larger production weight (ties: none).
pub fn live_of(forwards: &[(String, i32)], pair: (&str, &str)) -> Option<(String, String)> {
    let (a, b) = (weight_of(forwards, pair.0), weight_of(forwards, pair.1));
    match a.cmp(&b) {
        std::cmp::Ordering::Greater => Some((pair.0.to_string(), pair.1.to_string())),
        std::cmp::Ordering::Less => Some((pair.1.to_string(), pair.0.to_string())),
        std::cmp::Ordering::Equal => None,
    }
}

/// `t` floored to a whole minute since the epoch (CloudWatch's load balancer datapoints start on minutes).
pub fn floor_minute(t: SystemTime) -> SystemTime {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs - secs % 60)
}

/// `t` rounded up to a whole minute since the epoch.
pub fn ceil_minute(t: SystemTime) -> SystemTime {
    let floor = floor_minute(t);
    if floor == t {
        t
    } else {
        floor + Duration::from_secs(60)
    }
}

/// One window's metrics, `[start, end)`, both on whole minutes, as one datapoint per metric.
pub async fn read(
    cloudwatch: &aws_sdk_cloudwatch::Client,
    dims: &Dimensions,
    start: SystemTime,
    end: SystemTime,
) -> Result<Metrics, ReadError> {
    let span = end.duration_since(start).unwrap_or_default().as_secs();
    // A period is a multiple of 60 s; the window is read as one datapoint.
    let period = i32::try_from(span.div_ceil(60).max(1) * 60).unwrap_or(i32::MAX);
    let metric = |name: &str| {
        Metric::builder()
            .namespace(NAMESPACE)
            .metric_name(name)
            .dimensions(
                Dimension::builder()
                    .name("TargetGroup")
                    .value(&dims.target_group)
                    .build(),
            )
            .dimensions(
                Dimension::builder()
                    .name("LoadBalancer")
                    .value(&dims.load_balancer)
                    .build(),
            )
            .build()
    };
    let query = |id: &str, name: &str, stat: &str| {
        MetricDataQuery::builder()
            .id(id)
            .metric_stat(
                MetricStat::builder()
                    .metric(metric(name))
                    .period(period)
                    .stat(stat)
                    .build(),
            )
            .return_data(true)
            .build()
    };
    let out = cloudwatch
        .get_metric_data()
        .start_time(start.into())
        .end_time(end.into())
        .metric_data_queries(query("requests", "RequestCount", "Sum"))
        .metric_data_queries(query("errors", "HTTPCode_Target_5XX_Count", "Sum"))
        .metric_data_queries(query("p95", "TargetResponseTime", "p95"))
        .send()
        .await
        .map_err(|e| ReadError::of(&e, "cloudwatch:GetMetricData"))?;
    let mut m = Metrics::default();
    for r in out.metric_data_results() {
        let values = r.values();
        match r.id() {
            Some("requests") => m.requests = values.iter().sum(),
            Some("errors") => m.errors_5xx = values.iter().sum(),
            // Seconds; the slowest datapoint should the window come back split.
            Some("p95") => {
                m.p95_ms = values
                    .iter()
                    .copied()
                    .filter(|v| v.is_finite())
                    .reduce(f64::max)
                    .map(|s| s * 1000.0)
            }
            _ => {}
        }
    }
    if m.requests <= 0.0 {
        m.p95_ms = None;
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_live_group_is_the_one_with_more_production_weight() {
        let f = |v: &[(&str, i32)]| -> Vec<(String, i32)> {
            v.iter().map(|(a, w)| (a.to_string(), *w)).collect()
        };
        let pair = ("blue", "green");
        let live = |v: &[(&str, i32)]| live_of(&f(v), pair);
        assert_eq!(
            live(&[("green", 100), ("blue", 0)]),
            Some(("green".into(), "blue".into()))
        );
        assert_eq!(
            live(&[("blue", 100)]),
            Some(("blue".into(), "green".into()))
        );
        assert_eq!(
            live(&[("blue", 90), ("green", 10)]),
            Some(("blue".into(), "green".into()))
        );
        assert_eq!(live(&[("blue", 50), ("green", 50)]), None);
        assert_eq!(live(&[("other", 100)]), None);
    }

    #[test]
    fn dimensions_from_arns() {
        let cases = [
            (
                "arn:aws:elasticloadbalancing:us-east-1:746669238399:targetgroup/stage-backend-blue/73e2d6bc24d8a067",
                Some("targetgroup/stage-backend-blue/73e2d6bc24d8a067"),
            ),
            (
                "arn:aws:elasticloadbalancing:us-east-1:746669238399:loadbalancer/app/stage-alb/50dc6c495c0c9188",
                Some("app/stage-alb/50dc6c495c0c9188"),
            ),
            (
                "arn:aws:elasticloadbalancing:us-east-1:746669238399:loadbalancer/net/stage-nlb/50dc6c495c0c9188",
                Some("net/stage-nlb/50dc6c495c0c9188"),
            ),
            (
                "arn:aws:elasticloadbalancing:us-east-1:746669238399:listener/app/stage-alb/50dc/f2f7",
                None,
            ),
            ("not an arn", None),
        ];
        for (arn, want) in cases {
            assert_eq!(dimension_of(arn).as_deref(), want, "{arn}");
        }
    }

    #[test]
    fn minutes() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_030);
        assert_eq!(
            floor_minute(t),
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
        );
        assert_eq!(
            ceil_minute(t),
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_060)
        );
        let on = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_060);
        assert_eq!(ceil_minute(on), on);
    }
}
