//! A loopback ELBv2 simulator for the reads a failure diagnosis, the watch and the deploy-time breakdown
//! make (`DescribeTargetGroups`, `DescribeTargetHealth`, `DescribeTargetGroupAttributes`), in the query
//! protocol with XML replies, because moto's target health is always `healthy` for registered IP targets
//! and never shows a failing health check. One target group behind one load balancer, with scripted
//! target states.

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{header, StatusCode};
use axum::Router;

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
        let arn = format!(
            "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/{name}/0123456789abcdef"
        );
        let calls: Arc<Mutex<Vec<String>>> = Arc::default();
        let (c, tg, n) = (calls.clone(), arn.clone(), name.to_string());
        let app = Router::new().fallback(move |body: Bytes| {
            let (c, tg, n, targets) = (c.clone(), tg.clone(), n.clone(), targets.clone());
            async move {
                let form = String::from_utf8_lossy(&body).to_string();
                let action = form
                    .split('&')
                    .find_map(|kv| kv.strip_prefix("Action="))
                    .unwrap_or("")
                    .to_string();
                c.lock().unwrap().push(action.clone());
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
