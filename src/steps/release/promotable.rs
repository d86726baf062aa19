//! What a promotion without an `image-tag` ships: the newest release verified on the source environment,
//! unless the target already runs it ("nothing to promote"). Read-only; the summary line names the
//! target's live release, the promoted one, how many commits lie between them and the compare link.
//! The count is best effort: a promotion never fails because GitHub could not count.
//!
//! APIs: the registry (markers of both environments, see `marker`); ECS `DescribeServices`,
//! `DescribeTaskDefinition` (what the target runs, through [`crate::steps::deploy`]); GitHub REST
//! `GET /repos/{owner}/{repo}/compare/{base}...{head}` (through [`crate::github::rest`]).

use super::error::Error;
use super::pick::time_of;
use super::settings::{store, Settings, NO_REGISTRY};
use crate::config::Config;
use crate::github::rest::Comparison;
use crate::registry::artifact::Verification;
use crate::report::section::{md_code, md_escape};
use crate::steps::{deploy, image, Clients};

/// The release a promotion without `image-tag` ships, or why there is none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Promotable {
    /// The newest verified source release; the target runs something else.
    Ship(Box<Verification>),
    /// The newest verified source release is already what the target runs.
    NothingNew(Box<Verification>),
}

/// The newest marker, and whether the target runs its digest.
pub(super) fn newest(markers: Vec<Verification>, running: &[String]) -> Option<Promotable> {
    let v = markers.into_iter().max_by(|a, b| {
        time_of(a)
            .cmp(&time_of(b))
            .then_with(|| a.verified_at.cmp(&b.verified_at))
    })?;
    Some(if running.contains(&v.digest) {
        Promotable::NothingNew(Box::new(v))
    } else {
        Promotable::Ship(Box::new(v))
    })
}

/// The release to promote when `image-tag` is empty: read the source's markers and what the target
/// runs. An error when the source has no verified release (nothing can be promoted safely).
pub async fn promotable(
    clients: &Clients,
    cfg: &Config,
    settings: &Settings,
) -> Result<Promotable, Error> {
    let source_env = cfg
        .promote
        .as_ref()
        .map(|p| p.source_environment.clone())
        .unwrap_or_default();
    let no_release = |reason: String| Error::NothingVerified {
        source_env: source_env.clone(),
        reason,
    };
    let markers = match store(clients, cfg, settings, image::Side::Source).await? {
        Some(s) => s
            .list(&source_env)
            .await
            .map_err(|e| no_release(format!("its markers could not be read: {e}")))?,
        None => return Err(no_release(NO_REGISTRY.into())),
    };
    let running = deploy::running(clients, cfg).await?;
    newest(markers, &running.digests).ok_or_else(|| no_release("no verification marker".into()))
}

/// The SHA of the target's live release: its marker whose digest the service runs. Read-only; `None`
/// when the target has no such marker (or none can be read).
pub async fn live_sha(clients: &Clients, cfg: &Config, settings: &Settings) -> Option<String> {
    let running = deploy::running(clients, cfg).await.ok()?;
    let store = store(clients, cfg, settings, image::Side::Own)
        .await
        .ok()??;
    let markers = store.list(&cfg.environment).await.ok()?;
    markers
        .into_iter()
        .filter(|v| running.digests.contains(&v.digest))
        .max_by(|a, b| time_of(a).cmp(&time_of(b)))
        .map(|v| v.sha)
}

/// The commits between the live release and the promoted one, as GitHub counts them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Commits {
    Counted(Comparison),
    /// Why the count is unknown (no token, the read failed, a commit GitHub does not know).
    Unknown(String),
}

/// Ask GitHub how `promoted` compares with `live`, with the job's `github-token`. Never an error: a
/// count that cannot be read says why instead.
pub async fn commits_between(
    cfg: &Config,
    settings: &Settings,
    live: &str,
    promoted: &str,
) -> Commits {
    let Some(approval) = cfg.promote.as_ref().map(|p| &p.approval) else {
        return Commits::Unknown("not a promotion".into());
    };
    let api = match crate::github::rest::Api::of_run(
        settings.api_url.as_deref(),
        settings.repository.as_deref(),
        approval.token.as_ref().map(|t| t.0.as_str()),
    ) {
        Ok(Some(api)) => api,
        Ok(None) => return Commits::Unknown("no `github-token` to ask GitHub with".into()),
        Err(e) => return Commits::Unknown(e.to_string()),
    };
    match api.compare(live, promoted).await {
        Ok(Some(c)) => Commits::Counted(c),
        Ok(None) => Commits::Unknown("GitHub does not know one of the commits".into()),
        Err(e) => {
            tracing::warn!(
                "the commits between `{live}` and `{promoted}` could not be counted: {e}"
            );
            Commits::Unknown(e.to_string())
        }
    }
}

/// The summary line of a promotion of commit `promoted`: the target's live release, the commits
/// between them and the compare link ([`explain`]). Read-only and best effort: what cannot be read
/// is said in the line, never an error.
pub async fn explanation(
    clients: &Clients,
    cfg: &Config,
    settings: &Settings,
    promoted: &str,
) -> String {
    let live = live_sha(clients, cfg, settings).await;
    let commits = match live.as_deref() {
        Some(live) if live != promoted => {
            Some(commits_between(cfg, settings, live, promoted).await)
        }
        _ => None,
    };
    explain(
        live.as_deref(),
        promoted,
        commits.as_ref(),
        settings.repo_url.as_deref(),
    )
}

/// Is `tag` a full commit SHA (what a compare link can name)?
pub fn is_commit_sha(tag: &str) -> bool {
    tag.len() == 40 && tag.bytes().all(|b| b.is_ascii_hexdigit())
}

/// "3 new commits", or with a diverged history also how many of the live release's are not included;
/// Markdown.
fn count(commits: &Commits) -> String {
    let plural = |n: u64| if n == 1 { "commit" } else { "commits" };
    match commits {
        Commits::Counted(c) if c.behind_by == 0 => {
            format!("{} new {}", c.ahead_by, plural(c.ahead_by))
        }
        Commits::Counted(c) => format!(
            "{} new {}, {} of the live release's not included ({})",
            c.ahead_by,
            plural(c.ahead_by),
            c.behind_by,
            md_escape(&c.status)
        ),
        Commits::Unknown(why) => format!("commits between them unknown: {}", md_escape(why)),
    }
}

/// The summary's line: the target's live SHA, the promoted SHA, the commits between them and the
/// compare link (`<server>/<repository>/compare/<live>...<promoted>`), Markdown.
pub fn explain(
    live: Option<&str>,
    promoted: &str,
    commits: Option<&Commits>,
    repo_url: Option<&str>,
) -> String {
    let Some(live) = live else {
        return format!("{} (the live release has no marker)", md_code(promoted));
    };
    let mut line = format!("{} -> {}", md_code(live), md_code(promoted));
    if let Some(c) = commits {
        line.push_str(&format!(", {}", count(c)));
    }
    if let Some(base) = repo_url.filter(|_| live != promoted) {
        line.push_str(&format!(" ([compare]({base}/compare/{live}...{promoted}))"));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(sha: &str, digest: char, at: &str) -> Verification {
        Verification {
            environment: "stage".into(),
            digest: format!("sha256:{}", digest.to_string().repeat(64)),
            sha: sha.into(),
            frontend: None,
            task_definition: None,
            run_url: None,
            verified_at: at.into(),
            smoke: "passed".into(),
            gates: Default::default(),
        }
    }

    #[test]
    fn the_newest_verified_release_unless_the_target_runs_it() {
        let old = m("old", '1', "2026-11-25T09:00:00.000Z");
        let new = m("new", '2', "2026-11-26T09:00:00.000Z");
        let both = || vec![new.clone(), old.clone()];
        assert_eq!(
            newest(both(), std::slice::from_ref(&old.digest)),
            Some(Promotable::Ship(Box::new(new.clone())))
        );
        assert_eq!(
            newest(both(), &[]),
            Some(Promotable::Ship(Box::new(new.clone())))
        );
        // Prod already runs the newest: nothing new, even though an older one is not running.
        assert_eq!(
            newest(both(), std::slice::from_ref(&new.digest)),
            Some(Promotable::NothingNew(Box::new(new.clone())))
        );
        assert_eq!(newest(Vec::new(), &[]), None);
    }

    #[test]
    fn only_a_full_sha_names_a_commit() {
        assert!(is_commit_sha(&"a1".repeat(20)));
        assert!(!is_commit_sha("a1b2c3d"));
        assert!(!is_commit_sha("stage-latest"));
        assert!(!is_commit_sha(&"g".repeat(40)));
    }

    #[test]
    fn the_explanation_links_the_commits_between_prod_and_the_promoted_release() {
        let base = Some("https://github.com/acme/cloudshop");
        assert_eq!(
            explain(Some("a1"), "b2", None, base),
            "`a1` -> `b2` ([compare](https://github.com/acme/cloudshop/compare/a1...b2))"
        );
        assert_eq!(explain(Some("a1"), "b2", None, None), "`a1` -> `b2`");
        assert_eq!(
            explain(None, "b2", None, base),
            "`b2` (the live release has no marker)"
        );
        let counted = |status: &str, ahead, behind| {
            Commits::Counted(Comparison {
                status: status.into(),
                ahead_by: ahead,
                behind_by: behind,
            })
        };
        assert_eq!(
            explain(Some("a1"), "b2", Some(&counted("ahead", 3, 0)), base),
            "`a1` -> `b2`, 3 new commits ([compare](https://github.com/acme/cloudshop/compare/a1...b2))"
        );
        assert_eq!(
            explain(Some("a1"), "b2", Some(&counted("ahead", 1, 0)), None),
            "`a1` -> `b2`, 1 new commit"
        );
        assert_eq!(
            explain(Some("a1"), "b2", Some(&counted("diverged", 4, 2)), None),
            "`a1` -> `b2`, 4 new commits, 2 of the live release's not included (diverged)"
        );
        assert_eq!(
            explain(
                Some("a1"),
                "b2",
                Some(&Commits::Unknown("HTTP 500".into())),
                None
            ),
            "`a1` -> `b2`, commits between them unknown: HTTP 500"
        );
    }
}
