//! What a migration will run, decided in the preflight: the service's network copied, the container
//! chosen and checked against the task definition, the essential containers whose exits decide. A leaf
//! of the step. No AWS API.

use std::time::Duration;

use aws_sdk_ecs::types::{CapacityProviderStrategyItem, LaunchType, NetworkConfiguration};
use serde_json::Value;

use super::error::Error;
use crate::steps::masking::Masker;
use crate::steps::task_logs::Logging;

/// Log lines kept for the summary and the error.
pub(super) const LAST_LINES: usize = 30;
/// `startedBy` of every migration task: how to find them in the console.
pub const STARTED_BY: &str = "cloudshop-deploy";

/// `family:revision` of a task-definition ARN.
pub(super) fn short(arn: &str) -> &str {
    arn.rsplit_once('/').map(|(_, s)| s).unwrap_or(arn)
}

/// Where the live service runs its tasks, read in the preflight: a migration task runs the same way.
#[derive(Debug, Clone, Default)]
pub struct ServiceNetwork {
    pub network: Option<NetworkConfiguration>,
    pub launch_type: Option<LaunchType>,
    pub capacity_provider_strategy: Vec<CapacityProviderStrategyItem>,
    pub platform_version: Option<String>,
}

impl ServiceNetwork {
    /// Copied from a `DescribeServices` answer.
    pub fn of(svc: &aws_sdk_ecs::types::Service) -> Self {
        ServiceNetwork {
            network: svc.network_configuration().cloned(),
            launch_type: svc.launch_type().cloned(),
            capacity_provider_strategy: svc.capacity_provider_strategy().to_vec(),
            platform_version: svc.platform_version().map(str::to_string),
        }
    }

    /// One readable item per setting, for the plan and the summary.
    pub(super) fn describe(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(vpc) = self.network.as_ref().and_then(|n| n.awsvpc_configuration()) {
            out.push(format!("subnets {}", vpc.subnets().join(" ")));
            if !vpc.security_groups().is_empty() {
                out.push(format!(
                    "security groups {}",
                    vpc.security_groups().join(" ")
                ));
            }
            if let Some(ip) = vpc.assign_public_ip() {
                out.push(format!("public IP {}", ip.as_str()));
            }
        }
        if !self.capacity_provider_strategy.is_empty() {
            let cps: Vec<String> = self
                .capacity_provider_strategy
                .iter()
                .map(|c| format!("{} (weight {})", c.capacity_provider(), c.weight()))
                .collect();
            out.push(format!("capacity providers {}", cps.join(" ")));
        } else if let Some(lt) = &self.launch_type {
            out.push(format!("launch type {}", lt.as_str()));
        }
        out
    }
}

/// What the migration will run, checked in the preflight. Nothing has started when this exists.
#[derive(Debug, Clone)]
pub struct MigratePlan {
    pub(super) cluster: String,
    pub(super) container: String,
    pub(super) command: Vec<String>,
    pub(super) timeout: Duration,
    pub(super) poll_interval: Duration,
    pub(super) service: ServiceNetwork,
    /// Containers whose exit code decides (`essential` is true unless set false).
    pub(super) essential: Vec<String>,
    pub(super) logging: Logging,
    pub(super) masker: Masker,
    /// `cloudshop-deploy:run` and `cloudshop-deploy:sha` tag values.
    pub(super) run_tag: String,
    pub(super) sha_tag: String,
}

fn names(definition: &Value) -> Vec<&str> {
    definition
        .get("containerDefinitions")
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .filter_map(|c| c.get("name").and_then(Value::as_str))
                .collect()
        })
        .unwrap_or_default()
}

/// The container that runs the command: `migrate.container`, else the first deployed one; it must be
/// in the definition.
pub(super) fn container(
    definition: &Value,
    asked: Option<&str>,
    deployed: &[String],
) -> Result<String, Error> {
    let names = names(definition);
    let container = match (asked, deployed) {
        (Some(c), _) => c.to_string(),
        (None, [first, ..]) => first.clone(),
        (None, []) => names.first().map(|s| s.to_string()).unwrap_or_default(),
    };
    if !names.contains(&container.as_str()) {
        return Err(Error::ContainerNotFound {
            name: container,
            task_definition: definition
                .get("family")
                .and_then(Value::as_str)
                .unwrap_or("?")
                .to_string(),
            available: names.iter().map(|s| s.to_string()).collect(),
        });
    }
    Ok(container)
}

/// The containers whose exit decides: `essential` is true unless set false.
pub(super) fn essential(definition: &Value) -> Vec<String> {
    definition
        .get("containerDefinitions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|c| c.get("essential").and_then(Value::as_bool) != Some(false))
        .filter_map(|c| c.get("name").and_then(Value::as_str).map(str::to_string))
        .collect()
}
