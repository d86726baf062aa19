//! A loopback ELBv2 simulator for the reads a failure diagnosis, the watch and the deploy-time breakdown
//! make (`DescribeTargetGroups`, `DescribeTargetHealth`, `DescribeTargetGroupAttributes`), in the query
//! protocol with XML replies, because moto's target health is always `healthy` for registered IP targets
//! and never shows a failing health check. One target group behind one load balancer, with scripted
//! target states.
//!
//! With [`ElbSim::start_with_rules`] it also answers `DescribeRules` for the production and test listener
//! rules of a progressive ECS service ([`Plan`]): weighted `forward` actions over the two target groups
//! whose weights follow the ECS simulator's service deployment ([`Progress`]), and `DescribeTargetGroups`
//! for either group.

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{header, StatusCode};
use axum::Router;

use crate::ecs_sim::{Plan, Progress};

/// The load balancer the target group is behind.
pub const LOAD_BALANCER: &str =
    "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/stage-alb/50dc6c495c0c9188";

/// A target's scripted health: state, reason, description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetState {
    pub id: String,
    pub state: String,
    pub reason: Option<String>,
    pub description: Option<String>,
}

impl TargetState {
    /// An unhealthy target whose health check got `code` instead of 200.
    pub fn code_mismatch(id: &str, code: u16) -> TargetState {
        TargetState {
            id: id.into(),
            state: "unhealthy".into(),
            reason: Some("Target.ResponseCodeMismatch".into()),
            description: Some(format!("Health checks failed with these codes: [{code}]")),
        }
    }
}

/// The simulator; stops when dropped.
pub struct ElbSim {
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
    /// The one target group's ARN.
    pub target_group_arn: String,
    /// The `Action` of each request.
    pub calls: Arc<Mutex<Vec<String>>>,
    _rt: tokio::runtime::Runtime,
}

impl ElbSim {
    pub fn start(name: &str, targets: Vec<TargetState>) -> ElbSim {
        ElbSim::serve(name, targets, None)
    }

    /// Like [`ElbSim::start`], and the listener rules of the progressive service `progress` models.
    pub fn start_with_rules(name: &str, targets: Vec<TargetState>, progress: Progress) -> ElbSim {
        ElbSim::serve(name, targets, Some(progress))
    }

    fn serve(name: &str, targets: Vec<TargetState>, rules: Option<Progress>) -> ElbSim {
        let arn = format!(
            "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/{name}/0123456789abcdef"
        );
        let calls: Arc<Mutex<Vec<String>>> = Arc::default();
        let (c, tg, n) = (calls.clone(), arn.clone(), name.to_string());
        let app = Router::new().fallback(move |body: Bytes| {
            let (c, tg, n, targets) = (c.clone(), tg.clone(), n.clone(), targets.clone());
            let rules = rules.clone();
            async move {
                let form: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
                let action = form
                    .iter()
                    .find(|(k, _)| k == "Action")
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default();
                c.lock().unwrap().push(action.clone());
                if let Some(reply) = rules.as_ref().and_then(|p| rules_reply(p, &action, &form)) {
                    return reply;
                }
                let body = match action.as_str() {
                    "DescribeTargetGroups" => reply(
                        "DescribeTargetGroups",
                        &format!(
                            "<TargetGroups><member><TargetGroupArn>{tg}</TargetGroupArn>\
                             <TargetGroupName>{n}</TargetGroupName><Protocol>HTTP</Protocol><Port>8000</Port>\
                             <HealthCheckProtocol>HTTP</HealthCheckProtocol><HealthCheckPort>traffic-port</HealthCheckPort>\
                             <HealthCheckPath>/health</HealthCheckPath><HealthCheckIntervalSeconds>30</HealthCheckIntervalSeconds>\
                             <HealthCheckTimeoutSeconds>5</HealthCheckTimeoutSeconds><HealthyThresholdCount>5</HealthyThresholdCount>\
                             <UnhealthyThresholdCount>2</UnhealthyThresholdCount><Matcher><HttpCode>200</HttpCode></Matcher>\
                             <TargetType>ip</TargetType><LoadBalancerArns><member>{LOAD_BALANCER}</member></LoadBalancerArns>\
                             </member></TargetGroups>"
                        ),
                    ),
                    // The defaults of a target group Terraform creates: a 300 s deregistration delay.
                    "DescribeTargetGroupAttributes" => reply(
                        "DescribeTargetGroupAttributes",
                        "<Attributes><member><Key>deregistration_delay.timeout_seconds</Key><Value>300</Value></member>\
                         <member><Key>stickiness.enabled</Key><Value>false</Value></member></Attributes>",
                    ),
                    "DescribeTargetHealth" => {
                        let members: String = targets
                            .iter()
                            .map(|t| {
                                let mut h = format!("<State>{}</State>", t.state);
                                if let Some(r) = &t.reason {
                                    h.push_str(&format!("<Reason>{r}</Reason>"));
                                }
                                if let Some(d) = &t.description {
                                    h.push_str(&format!("<Description>{d}</Description>"));
                                }
                                format!(
                                    "<member><Target><Id>{}</Id><Port>8000</Port></Target>\
                                     <HealthCheckPort>8000</HealthCheckPort><TargetHealth>{h}</TargetHealth></member>",
                                    t.id
                                )
                            })
                            .collect();
                        reply(
                            "DescribeTargetHealth",
                            &format!("<TargetHealthDescriptions>{members}</TargetHealthDescriptions>"),
                        )
                    }
                    _ => {
                        return (
                            StatusCode::BAD_REQUEST,
                            [(header::CONTENT_TYPE, "text/xml")],
                            format!(
                                "<ErrorResponse><Error><Type>Sender</Type><Code>InvalidAction</Code>\
                                 <Message>{action} is not simulated</Message></Error></ErrorResponse>"
                            ),
                        )
                    }
                };
                (StatusCode::OK, [(header::CONTENT_TYPE, "text/xml")], body)
            }
        });
        let (port, rt) = crate::serve_on_own_thread(app);
        ElbSim {
            endpoint: format!("http://127.0.0.1:{port}"),
            target_group_arn: arn,
            calls,
            _rt: rt,
        }
    }
}

fn reply(action: &str, result: &str) -> String {
    format!(
        "<{action}Response xmlns=\"http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/\">\
         <{action}Result>{result}</{action}Result>\
         <ResponseMetadata><RequestId>sim</RequestId></ResponseMetadata></{action}Response>"
    )
}

type Reply = (StatusCode, [(header::HeaderName, &'static str); 1], String);

fn members(form: &[(String, String)], list: &str) -> Vec<String> {
    let prefix = format!("{list}.member.");
    form.iter()
        .filter(|(k, _)| k.starts_with(&prefix))
        .map(|(_, v)| v.clone())
        .collect()
}

fn xml_error(code: &str, message: &str) -> Reply {
    (
        StatusCode::BAD_REQUEST,
        [(header::CONTENT_TYPE, "text/xml")],
        format!(
            "<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code>\
             <Message>{message}</Message></Error><RequestId>sim</RequestId></ErrorResponse>"
        ),
    )
}

/// `DescribeRules` and `DescribeTargetGroups` of a progressive service's load balancing; `None` for
/// the other actions.
fn rules_reply(progress: &Progress, action: &str, form: &[(String, String)]) -> Option<Reply> {
    let plan = progress.plan();
    let ok = |body: String| (StatusCode::OK, [(header::CONTENT_TYPE, "text/xml")], body);
    match action {
        "DescribeRules" => {
            let wanted = members(form, "RuleArns");
            let weights = progress.weights();
            let mut out = String::new();
            for arn in &wanted {
                let (split, priority) = if *arn == plan.production_rule {
                    (&weights.production, 1)
                } else if *arn == plan.test_rule {
                    (&weights.test, 2)
                } else {
                    return Some(xml_error(
                        "RuleNotFound",
                        &format!("One or more rules not found: {arn}"),
                    ));
                };
                out.push_str(&rule_xml(arn, priority, split, &plan));
            }
            Some(ok(reply("DescribeRules", &format!("<Rules>{out}</Rules>"))))
        }
        "DescribeTargetGroups" => {
            let wanted = members(form, "TargetGroupArns");
            let groups = [&plan.production_group, &plan.alternate_group];
            if wanted.is_empty() || !wanted.iter().all(|w| groups.contains(&w)) {
                return None;
            }
            let out: String = wanted.iter().map(|g| group_xml(g)).collect();
            Some(ok(reply(
                "DescribeTargetGroups",
                &format!("<TargetGroups>{out}</TargetGroups>"),
            )))
        }
        _ => None,
    }
}

fn rule_xml(arn: &str, priority: u32, split: &[(String, f64)], plan: &Plan) -> String {
    let groups: String = split
        .iter()
        .map(|(g, w)| {
            format!(
                "<member><TargetGroupArn>{g}</TargetGroupArn><Weight>{}</Weight></member>",
                w.round() as i64
            )
        })
        .collect();
    // The test listener rule matches a header the test traffic carries; the production rule all paths.
    let condition = if arn == plan.test_rule {
        "<member><Field>http-header</Field><HttpHeaderConfig><HttpHeaderName>X-Test-Traffic</HttpHeaderName>\
         <Values><member>1</member></Values></HttpHeaderConfig></member>"
    } else {
        "<member><Field>path-pattern</Field><Values><member>/*</member></Values>\
         <PathPatternConfig><Values><member>/*</member></Values></PathPatternConfig></member>"
    };
    format!(
        "<member><RuleArn>{arn}</RuleArn><Priority>{priority}</Priority><IsDefault>false</IsDefault>\
         <Conditions>{condition}</Conditions><Actions><member><Type>forward</Type><Order>1</Order>\
         <ForwardConfig><TargetGroups>{groups}</TargetGroups>\
         <TargetGroupStickinessConfig><Enabled>false</Enabled></TargetGroupStickinessConfig></ForwardConfig>\
         </member></Actions></member>"
    )
}

fn group_xml(arn: &str) -> String {
    let name = arn.split('/').nth(1).unwrap_or("tg");
    format!(
        "<member><TargetGroupArn>{arn}</TargetGroupArn><TargetGroupName>{name}</TargetGroupName>\
         <Protocol>HTTP</Protocol><Port>8000</Port><HealthCheckProtocol>HTTP</HealthCheckProtocol>\
         <HealthCheckPort>traffic-port</HealthCheckPort><HealthCheckPath>/health</HealthCheckPath>\
         <TargetType>ip</TargetType><LoadBalancerArns><member>{LOAD_BALANCER}</member></LoadBalancerArns>\
         </member>"
    )
}
