//! The load balancer's view of a failed rollout: for each target group of the service, the health of
//! its targets with the reasons (`Target.FailedHealthChecks`, `Target.ResponseCodeMismatch` with the
//! codes, `Target.Timeout`, ...) and the health-check settings in effect (path, port, matcher, interval,
//! thresholds) next to the service's grace period, with the likely fix. A role that may not read it gets
//! a note, never a failure.
//!
//! APIs: ELBv2 `DescribeTargetGroups`, `DescribeTargetHealth`.

use serde::Serialize;

/// One target that is not healthy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Target {
    pub id: String,
    pub port: Option<i32>,
    /// `unhealthy`, `draining`, `initial`, `unused`, `unavailable`.
    pub state: String,
    /// `Target.ResponseCodeMismatch`, ...
    pub reason: Option<String>,
    pub description: Option<String>,
}

/// One target group: its health check and its targets that are not healthy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Group {
    pub name: String,
    /// `GET /health on traffic-port, expects 200, every 30 s, 5 s timeout, healthy after 5, unhealthy after 2`.
    pub health_check: String,
    pub healthy: usize,
    pub not_healthy: Vec<Target>,
}

/// What the load balancer says.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Health {
    pub groups: Vec<Group>,
    /// The service's health-check grace period, seconds.
    pub grace_period: Option<i32>,
    /// Why something could not be read.
    pub note: Option<String>,
}

impl Health {
    /// One line per group for the diagnosis.
    pub fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        for g in &self.groups {
            let mut line = format!(
                "target group `{}`: {} healthy, {} not; health check {}",
                g.name,
                g.healthy,
                g.not_healthy.len(),
                g.health_check
            );
            if let Some(s) = self.grace_period {
                line.push_str(&format!("; service grace period {s} s"));
            }
            out.push(line);
            let mut seen: Vec<String> = Vec::new();
            for t in &g.not_healthy {
                let what = format!(
                    "target {}: {} ({})",
                    t.state,
                    t.reason.as_deref().unwrap_or("no reason"),
                    t.description.as_deref().unwrap_or("")
                );
                if !seen.contains(&what) {
                    seen.push(what);
                }
            }
            out.extend(seen.into_iter().map(|w| format!("  {w}")));
        }
        out.extend(self.note.clone());
        out
    }

    /// The fixes for the reasons seen, each once.
    pub fn hints(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for t in self.groups.iter().flat_map(|g| &g.not_healthy) {
            if let Some(h) = hint_for(t.reason.as_deref().unwrap_or(""), self.grace_period) {
                if !out.contains(&h) {
                    out.push(h);
                }
            }
        }
        out
    }
}

/// The fix for a target health reason.
pub fn hint_for(reason: &str, grace: Option<i32>) -> Option<String> {
    let h = match reason {
        "Target.ResponseCodeMismatch" => {
            "the app answers the health-check path with another status: make `/health` return 200, or fix the target group's matcher and path".to_string()
        }
        "Target.Timeout" => {
            "the health check timed out: allow the ALB's security group to reach the tasks on the container port, and make the app listen on 0.0.0.0".to_string()
        }
        "Target.FailedHealthChecks" => match grace {
            Some(0) | None => "the new tasks failed the health checks: if the app needs time to start, set the service's `health_check_grace_period_seconds`".to_string(),
            Some(_) => "the new tasks failed the health checks: check the app's logs, the health-check path and the container port".to_string(),
        },
        "Elb.InternalError" => "the load balancer reported an internal error; deploy again".to_string(),
        _ => return None,
    };
    Some(h)
}

fn describe_check(tg: &aws_sdk_elasticloadbalancingv2::types::TargetGroup) -> String {
    let protocol = tg
        .health_check_protocol()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "HTTP".into());
    let matcher = tg
        .matcher()
        .and_then(|m| m.http_code().or(m.grpc_code()))
        .unwrap_or("200");
    format!(
        "{protocol} {} on port {}, expects {matcher}, every {} s, {} s timeout, healthy after {}, unhealthy after {}",
        tg.health_check_path().unwrap_or("/"),
        tg.health_check_port().unwrap_or("traffic-port"),
        tg.health_check_interval_seconds().unwrap_or(30),
        tg.health_check_timeout_seconds().unwrap_or(5),
        tg.healthy_threshold_count().unwrap_or(5),
        tg.unhealthy_threshold_count().unwrap_or(2),
    )
}

fn denied_or(code: Option<&str>, what: &str, detail: String) -> String {
    if matches!(code, Some("AccessDenied" | "AccessDeniedException")) {
        format!("the role may not read the load balancer ({what}); add `elasticloadbalancing:DescribeTargetGroups` and `elasticloadbalancing:DescribeTargetHealth` to see target health")
    } else {
        format!("failed to read the load balancer ({what}): {detail}")
    }
}

/// The health of the service's target groups. Best effort: what cannot be read becomes the note.
pub async fn health(
    elb: &aws_sdk_elasticloadbalancingv2::Client,
    target_groups: &[String],
    grace_period: Option<i32>,
) -> Health {
    let mut out = Health {
        grace_period,
        ..Health::default()
    };
    if target_groups.is_empty() {
        return out;
    }
    let groups = match elb
        .describe_target_groups()
        .set_target_group_arns(Some(target_groups.to_vec()))
        .send()
        .await
    {
        Ok(r) => r.target_groups().to_vec(),
        Err(e) => {
            out.note = Some(denied_or(
                crate::aws::code(&e),
                "DescribeTargetGroups",
                crate::aws::describe(&e),
            ));
            return out;
        }
    };
    for tg in &groups {
        let Some(arn) = tg.target_group_arn() else {
            continue;
        };
        let mut group = Group {
            name: tg.target_group_name().unwrap_or(arn).to_string(),
            health_check: describe_check(tg),
            ..Group::default()
        };
        match elb
            .describe_target_health()
            .target_group_arn(arn)
            .send()
            .await
        {
            Ok(r) => {
                for d in r.target_health_descriptions() {
                    let th = d.target_health();
                    let state = th
                        .and_then(|h| h.state())
                        .map(|s| s.as_str().to_string())
                        .unwrap_or_else(|| "unknown".into());
                    if state == "healthy" {
                        group.healthy += 1;
                        continue;
                    }
                    group.not_healthy.push(Target {
                        id: d
                            .target()
                            .and_then(|t| t.id())
                            .unwrap_or_default()
                            .to_string(),
                        port: d.target().and_then(|t| t.port()),
                        state,
                        reason: th.and_then(|h| h.reason()).map(|r| r.as_str().to_string()),
                        description: th.and_then(|h| h.description()).map(str::to_string),
                    });
                }
            }
            Err(e) => {
                out.note = Some(denied_or(
                    crate::aws::code(&e),
                    "DescribeTargetHealth",
                    crate::aws::describe(&e),
                ));
            }
        }
        out.groups.push(group);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_hints() {
        let h = Health {
            groups: vec![Group {
                name: "stage-backend-tg".into(),
                health_check: "HTTP /health on port traffic-port, expects 200, every 30 s, 5 s timeout, healthy after 5, unhealthy after 2".into(),
                healthy: 1,
                not_healthy: vec![
                    Target {
                        id: "10.0.1.5".into(),
                        port: Some(8000),
                        state: "unhealthy".into(),
                        reason: Some("Target.ResponseCodeMismatch".into()),
                        description: Some("Health checks failed with these codes: [404]".into()),
                    },
                    Target {
                        id: "10.0.2.7".into(),
                        port: Some(8000),
                        state: "unhealthy".into(),
                        reason: Some("Target.ResponseCodeMismatch".into()),
                        description: Some("Health checks failed with these codes: [404]".into()),
                    },
                ],
            }],
            grace_period: Some(0),
            note: None,
        };
        assert_eq!(
            h.lines(),
            vec![
                "target group `stage-backend-tg`: 1 healthy, 2 not; health check HTTP /health on port traffic-port, expects 200, every 30 s, 5 s timeout, healthy after 5, unhealthy after 2; service grace period 0 s".to_string(),
                "  target unhealthy: Target.ResponseCodeMismatch (Health checks failed with these codes: [404])".to_string(),
            ]
        );
        assert_eq!(h.hints().len(), 1);
        assert!(h.hints()[0].contains("make `/health` return 200"));
        for (reason, grace, want) in [
            ("Target.Timeout", None, Some("security group")),
            ("Target.FailedHealthChecks", Some(0), Some("grace_period")),
            (
                "Target.FailedHealthChecks",
                Some(60),
                Some("container port"),
            ),
            ("Target.NotRegistered", None, None),
        ] {
            let got = hint_for(reason, grace);
            match want {
                Some(w) => assert!(
                    got.as_deref().is_some_and(|g| g.contains(w)),
                    "{reason}: {got:?}"
                ),
                None => assert!(got.is_none(), "{reason}"),
            }
        }
    }
}
