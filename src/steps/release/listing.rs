//! `command: releases`: for the run's environment and then every other environment of the
//! environments file, what runs now (and, with a frontend bucket, the site release its sync state
//! records) and the verified releases, newest first, read from the markers; a `promote-from` source
//! outside the file is listed by its markers. Read-only. Outputs: `releases` (one line of JSON); the
//! summary gets one table per environment.
//!
//! A run has one identity (a GitHub OIDC token names one environment, so it assumes one role): the
//! other environments are read with the run's credentials, in their own regions. What they deny is
//! reported for that environment, not as the run's failure; only the run's own environment must read.
//!
//! APIs: the registry (markers, see `marker`); ECS `DescribeServices`, `DescribeTaskDefinition` (through
//! [`crate::steps::deploy`]); S3 `GetObject` (the sync state); ECR `DescribeRepositories`, `GetAuthorizationToken`.

use std::fmt::Write as _;

use serde::Serialize;

use super::error::Error;
use super::pick::time_of;
use super::settings::{store, Settings, NO_REGISTRY};
use crate::config::Config;
use crate::registry::artifact::Verification;
use crate::report::section::{md_code, md_escape, Section};
use crate::steps::{deploy, image, Clients};

/// What an environment's service runs now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Live {
    /// The service's task-definition revision (ARN).
    pub task_definition: String,
    /// The digests its containers run (`sha256:...`).
    pub digests: Vec<String>,
    /// The SHA of the verified release with one of those digests, when a marker names it.
    pub sha: Option<String>,
    /// The frontend artifact digest the bucket serves, from the sync state (with a frontend bucket).
    pub frontend: Option<String>,
    /// The SHA that frontend release was built with.
    pub frontend_sha: Option<String>,
    /// Why the sync state could not be read.
    pub frontend_problem: Option<String>,
}

/// One environment: what runs (read for the named environment only) and its verified releases.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct EnvReleases {
    pub environment: String,
    pub running: Option<Live>,
    /// Newest first.
    pub verified: Vec<Verification>,
    /// Why the markers could not be read (then `verified` is empty).
    pub problem: Option<String>,
    /// Why what runs could not be read (another environment than the run's: its service, its region,
    /// the run's credentials may not reach it); then `running` is empty.
    pub running_problem: Option<String>,
}

/// The section of `command: releases`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReleasesReport {
    pub environments: Vec<EnvReleases>,
}

/// Newest first; an unparsable time sorts last.
pub(super) fn newest_first(mut markers: Vec<Verification>) -> Vec<Verification> {
    markers.sort_by(|a, b| {
        time_of(b)
            .cmp(&time_of(a))
            .then_with(|| b.verified_at.cmp(&a.verified_at))
    });
    markers
}

/// The markers of `environment` in the repository of `side`, newest first, or why they could not be read.
async fn markers(
    clients: &Clients,
    cfg: &Config,
    settings: &Settings,
    side: image::Side,
    environment: &str,
) -> Result<Vec<Verification>, String> {
    match store(clients, cfg, settings, side).await {
        Ok(Some(s)) => s
            .list(environment)
            .await
            .map(newest_first)
            .map_err(|e| e.to_string()),
        Ok(None) => Err(NO_REGISTRY.into()),
        Err(e) => Err(e.to_string()),
    }
}

/// Read what the run's environment runs and the verified releases of it, of every `others`
/// environment (built from the environments file) and of a source outside the file. Makes no change;
/// only a failure to read the run's own environment fails the run.
pub async fn releases(
    clients: &Clients,
    cfg: &Config,
    others: &[(String, Result<Config, crate::config::Error>)],
    settings: &Settings,
) -> Result<ReleasesReport, Error> {
    let mut out = ReleasesReport::default();
    let running = deploy::running(clients, cfg).await?;
    out.environments
        .push(listed(clients, cfg, settings, Ok(running)).await);
    for (name, built) in others {
        let entry = match built {
            Ok(other) => {
                let clients = clients.in_region(&other.region);
                let running = deploy::running(&clients, other)
                    .await
                    .map_err(|e| e.to_string());
                listed(&clients, other, settings, running).await
            }
            Err(e) => EnvReleases {
                running_problem: Some(format!("its entry in the environments file: {e}")),
                ..env_releases(name, None, Ok(Vec::new()))
            },
        };
        out.environments.push(entry);
    }
    if let Some(p) = &cfg.promote {
        let source = &p.source_environment;
        if !out.environments.iter().any(|e| &e.environment == source) {
            let found = markers(clients, cfg, settings, image::Side::Source, source).await;
            out.environments.push(env_releases(source, None, found));
        }
    }
    Ok(out)
}

/// One environment: what it runs (`running`, already read) and its own verified releases.
async fn listed(
    clients: &Clients,
    cfg: &Config,
    settings: &Settings,
    running: Result<deploy::Running, String>,
) -> EnvReleases {
    let own = markers(clients, cfg, settings, image::Side::Own, &cfg.environment).await;
    let running = match running {
        Ok(r) => r,
        Err(e) => {
            return EnvReleases {
                running_problem: Some(e),
                ..env_releases(&cfg.environment, None, own)
            }
        }
    };
    let sha = own.as_ref().ok().and_then(|m| {
        m.iter()
            .find(|v| running.digests.contains(&v.digest))
            .map(|v| v.sha.clone())
    });
    let (site, frontend_problem) = match &cfg.frontend {
        Some(f) => match crate::steps::frontend::artifact::live_release(clients, f).await {
            Ok(r) => (r, None),
            Err(e) => (None, Some(e.to_string())),
        },
        None => (None, None),
    };
    env_releases(
        &cfg.environment,
        Some(Live {
            task_definition: running.task_definition,
            digests: running.digests,
            sha,
            frontend: site.as_ref().map(|r| r.artifact.clone()),
            frontend_sha: site.map(|r| r.tag),
            frontend_problem,
        }),
        own,
    )
}

fn env_releases(
    environment: &str,
    running: Option<Live>,
    found: Result<Vec<Verification>, String>,
) -> EnvReleases {
    let (verified, problem) = match found {
        Ok(v) => (v, None),
        Err(e) => (Vec::new(), Some(e)),
    };
    EnvReleases {
        environment: environment.to_string(),
        running,
        verified,
        problem,
        running_problem: None,
    }
}

impl Section for ReleasesReport {
    fn outputs(&self, out: &mut Vec<(String, String)>) {
        // Serializing plain strings and vectors cannot fail; an empty list would still be valid JSON.
        let json = serde_json::to_string(&self.environments).unwrap_or_else(|_| "[]".into());
        out.push(("releases".into(), json));
    }

    fn summary(&self, md: &mut String) {
        for e in &self.environments {
            let _ = writeln!(md, "### Releases of {}\n", md_code(&e.environment));
            if let Some(r) = &e.running {
                let site = match (&r.frontend, &r.frontend_sha, &r.frontend_problem) {
                    (Some(d), Some(s), _) => {
                        format!("; the site serves {} ({})", md_code(s), md_code(d))
                    }
                    (_, _, Some(p)) => format!("; the site's sync state: {}", md_escape(p)),
                    _ => String::new(),
                };
                let _ = writeln!(
                    md,
                    "Runs {} ({}){}{site}.\n",
                    md_code(deploy::short_arn(&r.task_definition)),
                    md_escape(&r.digests.join(", ")),
                    r.sha
                        .as_deref()
                        .map(|s| format!(", release {}", md_code(s)))
                        .unwrap_or_default()
                );
            }
            if let Some(p) = &e.running_problem {
                let _ = writeln!(md, "⚠️ what runs could not be read: {}\n", md_escape(p));
            }
            if let Some(p) = &e.problem {
                let _ = writeln!(md, "⚠️ the markers could not be read: {}\n", md_escape(p));
                continue;
            }
            if e.verified.is_empty() {
                let _ = writeln!(md, "No verified release.\n");
                continue;
            }
            let _ = writeln!(
                md,
                "| SHA | digest | frontend | verified at | gates passed | run |\n|---|---|---|---|---|---|"
            );
            for v in &e.verified {
                let passed: Vec<&str> = v
                    .gates
                    .iter()
                    .filter(|(_, s)| s.as_str() == "passed")
                    .map(|(g, _)| g.as_str())
                    .collect();
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {} | {} | {} |",
                    md_code(&v.sha),
                    md_code(&v.digest),
                    v.frontend
                        .as_deref()
                        .map(md_code)
                        .unwrap_or_else(|| "-".into()),
                    md_escape(&v.verified_at),
                    md_escape(&passed.join(", ")),
                    v.run_url
                        .as_deref()
                        .map(md_escape)
                        .unwrap_or_else(|| "-".into())
                );
            }
            md.push('\n');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(sha: &str, at: &str) -> Verification {
        Verification {
            environment: "stage".into(),
            digest: format!("sha256:{sha}"),
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
    fn releases_are_listed_newest_first() {
        let got = newest_first(vec![
            m("b", "2026-11-26T09:00:00.000Z"),
            m("bad", "yesterday"),
            m("c", "2026-11-27T09:00:00.000Z"),
            m("a", "2026-11-25T09:00:00.000Z"),
        ]);
        let shas: Vec<&str> = got.iter().map(|v| v.sha.as_str()).collect();
        assert_eq!(shas, ["c", "b", "a", "bad"]);
    }

    #[test]
    fn the_summary_shows_what_runs_and_a_table_of_releases_per_environment() {
        let mut v = m("a1", "2026-11-25T09:00:00.000Z");
        v.gates.insert("smoke".into(), "passed".into());
        v.gates.insert("watch".into(), "skipped".into());
        v.run_url = Some("https://github.com/acme/cloudshop/actions/runs/1".into());
        let r = ReleasesReport {
            environments: vec![
                EnvReleases {
                    environment: "prod".into(),
                    running: Some(Live {
                        task_definition: "arn:aws:ecs:us-east-1:1:task-definition/prod-backend:7"
                            .into(),
                        digests: vec!["sha256:a1".into()],
                        sha: Some("a1".into()),
                        frontend: None,
                        frontend_sha: None,
                        frontend_problem: None,
                    }),
                    verified: vec![v],
                    problem: None,
                    running_problem: None,
                },
                EnvReleases {
                    environment: "stage".into(),
                    running: None,
                    verified: Vec::new(),
                    problem: Some("no registry".into()),
                    running_problem: Some("AccessDeniedException".into()),
                },
            ],
        };
        let mut md = String::new();
        r.summary(&mut md);
        assert_eq!(
            md,
            "### Releases of `prod`\n\n\
             Runs `prod-backend:7` (sha256:a1), release `a1`.\n\n\
             | SHA | digest | frontend | verified at | gates passed | run |\n|---|---|---|---|---|---|\n\
             | `a1` | `sha256:a1` | - | 2026-11-25T09:00:00.000Z | smoke | https://github.com/acme/cloudshop/actions/runs/1 |\n\n\
             ### Releases of `stage`\n\n\
             ⚠️ what runs could not be read: AccessDeniedException\n\n\
             ⚠️ the markers could not be read: no registry\n\n"
        );
        let mut out = Vec::new();
        r.outputs(&mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].0, "releases");
        assert!(!out[0].1.contains('\n'));
        let back: serde_json::Value = serde_json::from_str(&out[0].1).unwrap();
        assert_eq!(
            back[0]["running"]["task-definition"],
            "arn:aws:ecs:us-east-1:1:task-definition/prod-backend:7"
        );
        assert_eq!(back[0]["verified"][0]["sha"], "a1");
    }
}
