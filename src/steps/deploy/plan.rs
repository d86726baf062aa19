//! The preflight's pure part: the definition the new revision gets (image swapped into the chosen
//! containers) and the plan lines a dry run and the log show.
//!
//! APIs: none.

use serde_json::Value;

use super::error::Error;
use super::report::short;
use super::task_def;
use crate::config::Config;

/// The definition stripped of read-only keys, with the image swapped into the chosen containers (also
/// returned: the deployed containers).
pub(super) fn render(
    cfg: &Config,
    source: &Value,
    live_arn: &str,
    uri: &str,
) -> Result<(Value, Vec<String>), Error> {
    let containers =
        task_def::choose_containers(source, &cfg.backend.containers).map_err(|e| match e {
            task_def::SwapError::Unknown { name, available } => Error::ContainerNotFound {
                name,
                task_definition: short(live_arn).to_string(),
                available,
            },
            task_def::SwapError::Ambiguous(available) => Error::AmbiguousContainer {
                task_definition: short(live_arn).to_string(),
                available,
            },
        })?;
    let mut rendered = task_def::strip(source);
    task_def::swap_images(&mut rendered, &containers, uri);
    Ok((rendered, containers))
}

/// What the plan lines say.
pub(super) struct PlanFacts<'a> {
    pub(super) rendered: &'a Value,
    pub(super) live_arn: &'a str,
    pub(super) changes: &'a [task_def::Change],
    pub(super) register: bool,
    pub(super) update: bool,
    /// The service's desired count, when the run changes it.
    pub(super) desired_from: Option<i32>,
    pub(super) digest: &'a str,
}

/// The plan, one line per change: the new revision and its differences, the service update.
pub(super) fn plan_lines(cfg: &Config, f: &PlanFacts<'_>) -> Vec<String> {
    let b = &cfg.backend;
    let mut plan: Vec<String> = Vec::new();
    if f.register {
        plan.push(format!(
            "register a new revision of `{}` from `{}`:",
            task_def::family(f.rendered).unwrap_or("?"),
            if b.task_definition_file.is_some() {
                "the task-definition file"
            } else {
                short(f.live_arn)
            }
        ));
        plan.extend(f.changes.iter().map(ToString::to_string));
    }
    if !f.update {
        plan.push(format!(
            "no change: `{}` already runs {}",
            short(f.live_arn),
            f.digest
        ));
        return plan;
    }
    let mut what = vec![format!(
        "taskDefinition: {}",
        if f.register {
            "the new revision".to_string()
        } else {
            short(f.live_arn).to_string()
        }
    )];
    if let (Some(from), Some(d)) = (f.desired_from, b.desired_count) {
        what.push(format!("desiredCount: {from} -> {d}"));
    }
    if b.force_new_deployment {
        what.push("forceNewDeployment: true".into());
    }
    plan.push(format!(
        "update service `{}` in `{}` ({})",
        b.service,
        b.cluster,
        what.join(", ")
    ));
    plan
}
