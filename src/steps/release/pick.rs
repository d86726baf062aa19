//! Where `command: rollback` goes by default: the newest verified release of this environment other than
//! the one running now (from the markers: its recorded revision), else the revision of the last
//! completed deployment before the current one. Never a revision that failed: a failed release has no
//! marker, and a deployment that failed never completed.
//!
//! APIs: the registry (markers, see `marker`); ECS through [`crate::steps::deploy`]
//! (`DescribeServices`, `DescribeTaskDefinition`, `ListServiceDeployments`, `DescribeServiceRevisions`).

use super::error::Error;
use super::report::verified_by;
use super::settings::{store, Settings, NO_REGISTRY};
use crate::config::Config;
use crate::registry::artifact::Verification;
use crate::report::section::{md_code, md_escape};
use crate::steps::{deploy, image, Clients};

/// The release a `command: rollback` goes back to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice {
    /// The newest verified release other than the running one.
    Verified(Box<Verification>),
    /// No usable marker: the last completed deployment's revision.
    Completed {
        task_definition: String,
        why: String,
    },
}

impl Choice {
    /// The frontend release recorded with the chosen release (its artifact), when its marker names one.
    pub fn frontend(&self) -> Option<crate::steps::frontend::Release> {
        match self {
            Choice::Verified(v) => {
                v.frontend
                    .as_ref()
                    .map(|artifact| crate::steps::frontend::Release {
                        artifact: artifact.clone(),
                        tag: v.sha.clone(),
                    })
            }
            Choice::Completed { .. } => None,
        }
    }

    /// For the summary (Markdown).
    pub fn describe(&self) -> String {
        match self {
            Choice::Verified(v) => format!(
                "{} ({}), the newest verified release: {}",
                md_code(&v.sha),
                md_code(&v.digest),
                verified_by(v)
            ),
            Choice::Completed {
                task_definition,
                why,
            } => format!(
                "{}, the last completed deployment ({})",
                md_code(deploy::short_arn(task_definition)),
                md_escape(why)
            ),
        }
    }
}

/// Where to go back to for `choice`, read-only: the revision recorded (or one to render anew for the
/// digest when ECS no longer has it; the rollback registers it after its preflight), or the completed
/// deployment's. A verified release whose image left the repository is refused.
pub async fn revision_of(
    clients: &Clients,
    cfg: &Config,
    choice: &Choice,
) -> Result<deploy::RollbackTo, Error> {
    match choice {
        Choice::Verified(v) => {
            Ok(deploy::revision_for(clients, cfg, v.task_definition.as_deref(), &v.digest).await?)
        }
        Choice::Completed {
            task_definition, ..
        } => Ok(deploy::RollbackTo::Revision(task_definition.clone())),
    }
}

/// Parse a marker's time; `None` sorts first (oldest).
pub(super) fn time_of(v: &Verification) -> Option<std::time::SystemTime> {
    humantime::parse_rfc3339_weak(&v.verified_at).ok()
}

/// The newest marker that is not the release running now (its digest or its revision).
pub(super) fn newest_other(
    markers: Vec<Verification>,
    running_digests: &[String],
    running_revision: &str,
) -> Option<Verification> {
    markers
        .into_iter()
        .filter(|v| !running_digests.contains(&v.digest))
        .filter(|v| v.task_definition.as_deref() != Some(running_revision))
        .max_by(|a, b| {
            time_of(a)
                .cmp(&time_of(b))
                .then_with(|| a.verified_at.cmp(&b.verified_at))
        })
}

/// The release `command: rollback` goes back to when no `revision` is given. Read-only.
pub async fn pick(clients: &Clients, cfg: &Config, settings: &Settings) -> Result<Choice, Error> {
    let running = deploy::running(clients, cfg).await?;
    let why = match store(clients, cfg, settings, image::Side::Own).await {
        Ok(Some(store)) => match store.list(&cfg.environment).await {
            Ok(markers) => {
                let n = markers.len();
                match newest_other(markers, &running.digests, &running.task_definition) {
                    Some(v) => {
                        tracing::info!(
                            "newest verified release other than the running one: `{}` ({}), verified at {}",
                            v.sha,
                            v.digest,
                            v.verified_at
                        );
                        return Ok(Choice::Verified(Box::new(v)));
                    }
                    None if n == 0 => "no verification marker".to_string(),
                    None => format!("the {n} verified release(s) are the one running now"),
                }
            }
            Err(e) => format!("the markers could not be read: {e}"),
        },
        Ok(None) => NO_REGISTRY.to_string(),
        Err(e) => format!("the markers could not be read: {e}"),
    };
    tracing::warn!(
        "no verified release to roll back to ({why}); looking for the last completed deployment"
    );
    match deploy::last_completed_revision(clients, cfg, &running.task_definition).await? {
        Some(task_definition) => Ok(Choice::Completed {
            task_definition,
            why,
        }),
        None => Err(Error::NoRollbackTarget {
            environment: cfg.environment.clone(),
            reason: format!("{why}, and no completed deployment before the current one"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(sha: &str, digest: char, rev: u32, at: &str) -> Verification {
        Verification {
            environment: "stage".into(),
            digest: format!("sha256:{}", digest.to_string().repeat(64)),
            sha: sha.into(),
            frontend: None,
            task_definition: Some(format!(
                "arn:aws:ecs:us-east-1:746669238399:task-definition/stage-cloudshop-backend:{rev}"
            )),
            run_url: None,
            verified_at: at.into(),
            smoke: "passed".into(),
            gates: Default::default(),
        }
    }

    #[test]
    fn the_newest_verified_release_other_than_the_running_one() {
        let eight = m("sha8", '8', 8, "2026-11-26T10:00:00.000Z");
        let ten = m("sha10", 'a', 10, "2026-11-26T12:00:00.000Z");
        let seven = m("sha7", '7', 7, "2026-11-25T09:00:00.000Z");
        let running = vec![ten.digest.clone()];
        let rev10 = ten.task_definition.clone().unwrap();
        let got = newest_other(
            vec![seven.clone(), ten.clone(), eight.clone()],
            &running,
            &rev10,
        );
        assert_eq!(got, Some(eight.clone()));
        // Running 8 (after a rollback): 10 is the newest other one.
        let rev8 = eight.task_definition.clone().unwrap();
        let got = newest_other(
            vec![seven.clone(), ten.clone(), eight.clone()],
            std::slice::from_ref(&eight.digest),
            &rev8,
        );
        assert_eq!(got, Some(ten.clone()));
        // Only the running one: nothing. One without a revision is still a release (rendered anew).
        assert_eq!(newest_other(vec![ten.clone()], &running, &rev10), None);
        let mut bare = seven.clone();
        bare.task_definition = None;
        assert_eq!(
            newest_other(vec![bare.clone()], &running, &rev10),
            Some(bare)
        );
        // Same revision, other digest (the image was re-pushed): still the running release.
        let mut same_rev = seven;
        same_rev.task_definition = Some(rev10.clone());
        assert_eq!(newest_other(vec![same_rev], &[], &rev10), None);
    }
}
