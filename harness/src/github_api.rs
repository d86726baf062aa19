//! A loopback server that answers like GitHub's REST API for what the approval gate reads:
//! `GET /repos/{owner}/{repo}/environments/{name}` (404 for an unknown environment) and
//! `GET /repos/{owner}/{repo}/commits/{sha}` (`author` is `null` when no account is set), with the
//! reply shapes of GitHub's documentation. A request without `Authorization: Bearer <token>` gets 401,
//! as GitHub's would for a private repository. Every request is recorded.
//!
//! The server is stopped when the handle is dropped.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

/// The token the server accepts.
pub const TOKEN: &str = "ghs_loopbacktoken0123456789";

#[derive(Default)]
struct Shared {
    environments: BTreeMap<String, Value>,
    authors: BTreeMap<String, Option<String>>,
    seen: Vec<String>,
}

/// The running server.
pub struct GithubApi {
    /// `http://127.0.0.1:PORT` (what `GITHUB_API_URL` holds).
    pub url: String,
    shared: Arc<Mutex<Shared>>,
    _rt: tokio::runtime::Runtime,
}

impl GithubApi {
    /// Start with no environments and no commits.
    pub fn start() -> GithubApi {
        let shared = Arc::new(Mutex::new(Shared::default()));
        let router = Router::new()
            .route(
                "/repos/{owner}/{repo}/environments/{name}",
                get(environment),
            )
            .route("/repos/{owner}/{repo}/commits/{sha}", get(commit))
            .with_state(shared.clone());
        let (port, rt) = super::serve_on_own_thread(router);
        GithubApi {
            url: format!("http://127.0.0.1:{port}"),
            shared,
            _rt: rt,
        }
    }

    /// An environment whose required reviewers are these users (none: no `required_reviewers` rule),
    /// with a 10-minute wait timer and protected branches only.
    pub fn environment(&self, name: &str, reviewers: &[&str]) {
        let mut rules =
            vec![json!({"id": 1, "node_id": "GA_1", "type": "wait_timer", "wait_timer": 10})];
        if !reviewers.is_empty() {
            let list: Vec<Value> = reviewers
                .iter()
                .map(|l| json!({"type": "User", "reviewer": {"login": l, "id": 7, "type": "User"}}))
                .collect();
            rules.push(json!({"id": 2, "node_id": "GA_2", "type": "required_reviewers", "prevent_self_review": false, "reviewers": list}));
        }
        rules.push(json!({"id": 3, "node_id": "GA_3", "type": "branch_policy"}));
        let env = json!({
            "id": 161088068, "node_id": "MDExOkVudmlyb25tZW50MTYxMDg4MDY4", "name": name,
            "url": format!("https://api.github.com/repos/acme/cloudshop/environments/{name}"),
            "html_url": format!("https://github.com/acme/cloudshop/deployments/activity_log?environments_filter={name}"),
            "created_at": "2026-11-01T12:00:00Z", "updated_at": "2026-11-01T12:00:00Z",
            "protection_rules": rules,
            "deployment_branch_policy": {"protected_branches": true, "custom_branch_policies": false}
        });
        self.shared
            .lock()
            .unwrap()
            .environments
            .insert(name.into(), env);
    }

    /// A commit whose author email belongs to `login` (`None`: to no account).
    pub fn commit(&self, sha: &str, login: Option<&str>) {
        self.shared
            .lock()
            .unwrap()
            .authors
            .insert(sha.into(), login.map(str::to_string));
    }

    /// Paths requested so far, in order.
    pub fn requests(&self) -> Vec<String> {
        self.shared.lock().unwrap().seen.clone()
    }
}

fn authorized(headers: &HeaderMap) -> bool {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == format!("Bearer {TOKEN}"))
}

fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({"message": "Not Found", "documentation_url": "https://docs.github.com/rest", "status": "404"})),
    )
        .into_response()
}

async fn environment(
    State(shared): State<Arc<Mutex<Shared>>>,
    Path((owner, repo, name)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    let mut s = shared.lock().unwrap();
    s.seen
        .push(format!("/repos/{owner}/{repo}/environments/{name}"));
    if !authorized(&headers) {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"message": "Bad credentials"})),
        )
            .into_response();
    }
    match s.environments.get(&name) {
        Some(env) => Json(env.clone()).into_response(),
        None => not_found(),
    }
}

async fn commit(
    State(shared): State<Arc<Mutex<Shared>>>,
    Path((owner, repo, sha)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    let mut s = shared.lock().unwrap();
    s.seen.push(format!("/repos/{owner}/{repo}/commits/{sha}"));
    if !authorized(&headers) {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"message": "Bad credentials"})),
        )
            .into_response();
    }
    match s.authors.get(&sha) {
        Some(author) => Json(json!({
            "sha": sha,
            "commit": {"author": {"name": "Someone", "email": "someone@example.com", "date": "2026-11-01T12:00:00Z"}, "message": "change"},
            "author": author.as_ref().map(|l| json!({"login": l, "id": 9, "type": "User"})),
            "committer": null
        }))
        .into_response(),
        None => (StatusCode::UNPROCESSABLE_ENTITY, Json(json!({"message": format!("No commit found for SHA: {sha}")}))).into_response(),
    }
}
