//! Everything that speaks the GitHub Actions runner's language: workflow commands on stdout, the output
//! and summary files, the OIDC token request, the REST API reads of the approval gate, and the run context (`GITHUB_*` variables).

pub mod commands;
pub mod files;
pub mod log;
pub mod oidc;
pub mod rest;

use std::path::PathBuf;

/// The parts of the run context the action uses, read once from the environment.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// `GITHUB_SHA`: the commit the workflow runs for; the default image tag.
    pub sha: Option<String>,
    /// `GITHUB_REPOSITORY` (`owner/name`).
    pub repository: Option<String>,
    /// `GITHUB_RUN_ID`.
    pub run_id: Option<String>,
    /// `GITHUB_RUN_ATTEMPT`.
    pub run_attempt: Option<String>,
    /// `GITHUB_SERVER_URL`.
    pub server_url: Option<String>,
    /// `GITHUB_WORKSPACE`, else the current directory.
    pub workspace: PathBuf,
    /// `GITHUB_ACTIONS=true`.
    pub in_actions: bool,
    /// `GITHUB_API_URL` (GitHub Enterprise Server has its own).
    pub api_url: Option<String>,
    /// Who started the run: `GITHUB_TRIGGERING_ACTOR` (a re-run's actor), else `GITHUB_ACTOR`.
    pub actor: Option<String>,
    /// `ACTIONS_ID_TOKEN_REQUEST_URL`, present only with `permissions: id-token: write`.
    pub id_token_url: Option<String>,
    /// `ACTIONS_ID_TOKEN_REQUEST_TOKEN`; masked as soon as it is read.
    pub id_token_request_token: Option<String>,
}

impl Context {
    /// Read the context through `get` (the process environment in `main`, a map in tests).
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Self {
        let var = |k: &str| get(k).filter(|v| !v.is_empty());
        let request_token = var("ACTIONS_ID_TOKEN_REQUEST_TOKEN");
        if let Some(t) = &request_token {
            commands::mask(t);
        }
        Context {
            sha: var("GITHUB_SHA"),
            repository: var("GITHUB_REPOSITORY"),
            run_id: var("GITHUB_RUN_ID"),
            run_attempt: var("GITHUB_RUN_ATTEMPT"),
            server_url: var("GITHUB_SERVER_URL"),
            workspace: var("GITHUB_WORKSPACE")
                .map(PathBuf::from)
                .or_else(|| std::env::current_dir().ok())
                .unwrap_or_else(|| PathBuf::from(".")),
            api_url: var("GITHUB_API_URL"),
            actor: var("GITHUB_TRIGGERING_ACTOR").or_else(|| var("GITHUB_ACTOR")),
            in_actions: var("GITHUB_ACTIONS").as_deref() == Some("true"),
            id_token_url: var("ACTIONS_ID_TOKEN_REQUEST_URL"),
            id_token_request_token: request_token,
        }
    }
}
