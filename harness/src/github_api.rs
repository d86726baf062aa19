//! A loopback server that answers like GitHub's REST API for what the approval gate reads:
//! `GET /repos/{owner}/{repo}/environments/{name}` (404 for an unknown environment) and
//! `GET /repos/{owner}/{repo}/commits/{sha}` (`author` is `null` when no account is set), and what a
//! promotion's summary reads: `GET /repos/{owner}/{repo}/compare/{base}...{head}` over a linear history
//! (404 for a commit not in it, `per_page` bounding the `commits` list), with the reply shapes of
//! GitHub's documentation. A request without `Authorization: Bearer <token>` gets 401,
//! as GitHub's would for a private repository. Every request is recorded.
//!
//! The server is stopped when the handle is dropped.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, Query, State};
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
    /// Commits, oldest first.
    history: Vec<String>,
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
            .route("/repos/{owner}/{repo}/compare/{basehead}", get(compare))
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

    /// A linear history of commits, oldest first, for compare requests.
    pub fn history(&self, shas: &[&str]) {
        self.shared.lock().unwrap().history = shas.iter().map(|s| s.to_string()).collect();
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

async fn compare(
    State(shared): State<Arc<Mutex<Shared>>>,
    Path((owner, repo, basehead)): Path<(String, String, String)>,
    Query(query): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let mut s = shared.lock().unwrap();
    s.seen
        .push(format!("/repos/{owner}/{repo}/compare/{basehead}"));
    if !authorized(&headers) {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"message": "Bad credentials"})),
        )
            .into_response();
    }
    let Some((base, head)) = basehead.split_once("...") else {
        return not_found();
    };
    let at = |sha: &str| s.history.iter().position(|c| c == sha);
    let (Some(b), Some(h)) = (at(base), at(head)) else {
        return not_found();
    };
    let (status, ahead, behind) = match h.cmp(&b) {
        std::cmp::Ordering::Equal => ("identical", 0, 0),
        std::cmp::Ordering::Greater => ("ahead", h - b, 0),
        std::cmp::Ordering::Less => ("behind", 0, b - h),
    };
    let per_page = query
        .get("per_page")
        .and_then(|p| p.parse::<usize>().ok())
        .unwrap_or(250)
        .min(250);
    let commits: Vec<Value> = s.history[b + 1..=h.max(b)]
        .iter()
        .take(per_page)
        .map(|sha| json!({"sha": sha, "commit": {"message": "change"}, "author": null}))
        .collect();
    Json(json!({
        "url": format!("https://api.github.com/repos/{owner}/{repo}/compare/{basehead}"),
        "html_url": format!("https://github.com/{owner}/{repo}/compare/{basehead}"),
        "base_commit": {"sha": base}, "merge_base_commit": {"sha": if h < b { head } else { base }},
        "status": status, "ahead_by": ahead, "behind_by": behind, "total_commits": ahead,
        "commits": commits, "files": []
    }))
    .into_response()
}
