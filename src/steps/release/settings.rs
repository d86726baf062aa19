//! What a run knows about itself that a marker records (the run URL), and
//! the marker store of an environment's repository, or none when no registry can be addressed.
//!
//! APIs: ECR `DescribeRepositories`, `GetAuthorizationToken` (through [`crate::steps::image`]).

use std::collections::BTreeMap;

use super::error::Error;
use super::marker::Store;
use crate::config::Config;
use crate::github::Context;
use crate::steps::{image, Clients};

/// What a run knows about itself that a marker records, and whether a registry can be addressed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settings {
    /// `GITHUB_SERVER_URL/GITHUB_REPOSITORY/actions/runs/GITHUB_RUN_ID`.
    pub run_url: Option<String>,
    /// `GITHUB_SERVER_URL/GITHUB_REPOSITORY`, for compare links between releases.
    pub repo_url: Option<String>,
    /// The ECR endpoint is overridden (an emulator or a private endpoint).
    pub ecr_overridden: bool,
    /// `GITHUB_API_URL`, for the approval gate's reads.
    pub api_url: Option<String>,
    /// `GITHUB_REPOSITORY` (`owner/name`).
    pub repository: Option<String>,
    /// Who dispatched the run (`GITHUB_TRIGGERING_ACTOR`, else `GITHUB_ACTOR`).
    pub actor: Option<String>,
}

impl Settings {
    /// From the run context and the process environment.
    pub fn new(ctx: &Context, env: &BTreeMap<String, String>) -> Settings {
        let repo_url = match (&ctx.server_url, &ctx.repository) {
            (Some(s), Some(r)) => Some(format!("{}/{r}", s.trim_end_matches('/'))),
            _ => None,
        };
        let run_url = match (&repo_url, &ctx.run_id) {
            (Some(base), Some(id)) => Some(format!("{base}/actions/runs/{id}")),
            _ => None,
        };
        Settings {
            run_url,
            repo_url,
            ecr_overridden: ["AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_ECR"]
                .iter()
                .any(|k| env.get(*k).is_some_and(|v| !v.is_empty())),
            api_url: ctx.api_url.clone(),
            repository: ctx.repository.clone(),
            actor: ctx.actor.clone(),
        }
    }

    /// Can the run address the repository's registry?
    pub(super) fn registry_known(&self, cfg: &Config) -> bool {
        cfg.backend.registry_url.is_some() || !self.ecr_overridden
    }
}

pub(super) const NO_REGISTRY: &str =
    "the ECR endpoint is overridden and no `registry-url` names its registry";

/// The marker store of an environment's repository; `None` when no registry can be addressed.
pub async fn store(
    clients: &Clients,
    cfg: &Config,
    settings: &Settings,
    side: image::Side,
) -> Result<Option<Store>, Error> {
    if !settings.registry_known(cfg) {
        return Ok(None);
    }
    let (registry, repo) = image::repository_registry(clients, cfg, side).await?;
    Ok(Some(Store { registry, repo }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_run_url_comes_from_the_context_and_emulators_are_noticed() {
        let vars: BTreeMap<String, String> = [
            ("GITHUB_SERVER_URL", "https://github.com/"),
            ("GITHUB_REPOSITORY", "acme/cloudshop"),
            ("GITHUB_RUN_ID", "1234"),
            ("AWS_ENDPOINT_URL_ECR", "http://127.0.0.1:5000"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let ctx = Context::from_env(|k| vars.get(k).cloned());
        let s = Settings::new(&ctx, &vars);
        assert_eq!(
            s.run_url.as_deref(),
            Some("https://github.com/acme/cloudshop/actions/runs/1234")
        );
        assert_eq!(
            s.repo_url.as_deref(),
            Some("https://github.com/acme/cloudshop")
        );
        assert!(s.ecr_overridden);
        let none = Settings::new(&Context::from_env(|_| None), &BTreeMap::new());
        assert_eq!(none.run_url, None);
        assert!(!none.ecr_overridden);
    }
}
