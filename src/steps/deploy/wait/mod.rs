//! The rollout watch: poll until the deployment this run created is PRIMARY and COMPLETED, fail fast on
//! FAILED or on a circuit-breaker rollback, stream each new service event once, and on failure say why.
//!
//! - [`poller`]: the adaptive pacing and the generic watch loop over any [`Probe`].
//! - [`probe`]: what is polled, one probe type per deployment strategy, and the verdicts.
//! - [`diagnosis`]: the stopped tasks of a failed revision and the likely fixes.
//!
//! APIs: ECS `DescribeServices`, `ListServiceDeployments`, `DescribeServiceDeployments` (see
//! [`probe`]), `ListTasks`, `DescribeTasks` (see [`diagnosis`]).

pub mod diagnosis;
pub mod poller;
pub mod probe;

use std::collections::HashSet;
use std::time::Duration;

pub use diagnosis::{diagnose, Diagnosis};
pub use poller::{watch, Pace, Probe, Tick, Watched};
pub use probe::{Strategy, Target, Verdict};

use probe::{BlueGreenProbe, RollingProbe, Rollout};

use super::error::Error;

/// What a rollout watch saw, also when it failed.
#[derive(Debug)]
pub struct Watch {
    /// How it ended; `outcome: None` when the timeout passed first.
    pub result: Result<Watched<Verdict>, Error>,
    /// The service events printed, in order.
    pub events: Vec<String>,
    /// The service deployment watched (blue/green, linear, canary), once found.
    pub service_deployment_arn: Option<String>,
}

/// Watch the rollout to `target`, with the probe for its strategy, picked once here. Events with ids in
/// `seen` (those before the update) are not printed again.
pub async fn rollout(
    ecs: &aws_sdk_ecs::Client,
    target: Target,
    seen: HashSet<String>,
    base: Duration,
    timeout: Duration,
) -> Watch {
    match target.strategy {
        Strategy::ServiceDeployments => {
            observe(BlueGreenProbe::new(ecs, target, seen), base, timeout).await
        }
        Strategy::Rolling | Strategy::RollingWithRollback => {
            observe(RollingProbe::new(ecs, target, seen), base, timeout).await
        }
    }
}

async fn observe<P: Rollout>(mut probe: P, base: Duration, timeout: Duration) -> Watch {
    let result = watch(&mut probe, base, timeout).await;
    Watch {
        result,
        events: probe.take_events(),
        service_deployment_arn: probe.service_deployment_arn().map(str::to_string),
    }
}
