//! The one rollback decision. Every failure of a gate comes here: before the first change there is
//! nothing to undo; after it, what was done is undone newest first (the site, then the service), unless
//! `rollback-on-failure: false`, ECS already went back, or another deployment took the service over.
//! The failure that triggered the rollback stays the headline; every problem of the rollback itself is
//! added beneath it, and none stops the others from being tried.
//!
//! APIs: those of `deploy::rollback` and `frontend::restore`.

use super::list::{Cx, Release, Undo};
use crate::error::{Diagnose, Error};
use crate::report::Report;
use crate::steps::deploy::{self, BackendOutcome, BackendReport};
use crate::steps::frontend;

/// Where in the release a gate failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Before any change to the service (preflight, image, artifact, register, the update itself).
    BeforeService,
    /// The rollout this run started.
    Rollout {
        /// ECS went back by itself: the service needs no rollback of ours.
        ecs_rolled_back: bool,
        /// Leave the service alone (another deployment took over, or ECS's rollback failed).
        hands_off: bool,
    },
    /// After the rollout: the new version is live and failed this check.
    After(&'static str),
    /// The release is final (it passed every check): nothing is undone.
    Final,
}

/// A gate's failure and where it happened.
#[derive(Debug)]
pub struct Failure {
    pub error: Error,
    pub stage: Stage,
}

impl Failure {
    pub fn before_service(error: impl Into<Error>) -> Self {
        Failure {
            error: error.into(),
            stage: Stage::BeforeService,
        }
    }

    pub fn release_final(error: impl Into<Error>) -> Self {
        Failure {
            error: error.into(),
            stage: Stage::Final,
        }
    }

    pub fn after(reason: &'static str, error: impl Into<Error>) -> Self {
        Failure {
            error: error.into(),
            stage: Stage::After(reason),
        }
    }
}

/// What the rollback decided for each thing done, given where the failure happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Nothing was changed, or `rollback-on-failure: false`: leave everything as it is.
    Leave,
    /// Undo what was done, newest first; the service only when `roll_back_service`.
    Undo { roll_back_service: bool },
}

/// The decision, in one place.
pub fn decide(stage: Stage, rollback_on_failure: bool, service_changed: bool) -> Decision {
    match stage {
        Stage::BeforeService | Stage::Final => Decision::Leave,
        _ if !rollback_on_failure => Decision::Leave,
        Stage::Rollout {
            ecs_rolled_back,
            hands_off,
        } => Decision::Undo {
            roll_back_service: service_changed && !ecs_rolled_back && !hands_off,
        },
        Stage::After(_) => Decision::Undo {
            roll_back_service: service_changed,
        },
    }
}

/// Undo after `failure` as [`decide`] says; the error to report: the failure, with the rollback's
/// problems (all of them) beneath it.
pub async fn after(cx: &Cx<'_>, failure: Failure, rel: &mut Release, report: &mut Report) -> Error {
    let Failure { error, stage } = failure;
    let changed = rel.deployed.as_ref().is_some_and(|d| d.changed);
    let decision = decide(stage, cx.cfg.backend.rollback_on_failure, changed);
    let mut problems: Vec<Error> = Vec::new();
    let mut service_back = false;
    if let Decision::Undo { roll_back_service } = decision {
        let _rolling_back = crate::interrupt::rolling_back();
        while let Some(undo) = rel.done.pop() {
            if crate::interrupt::stop_requested() {
                interrupted_before(undo, rel, report);
                continue;
            }
            let undone = match undo {
                Undo::Site => {
                    problems.extend(restore_site(cx, rel, report).await);
                    Ok(())
                }
                Undo::Service if roll_back_service => {
                    let r = roll_back_service_after(cx, stage, &error, rel, report).await;
                    service_back = r.is_ok();
                    r
                }
                Undo::Service => Ok(()),
            };
            if let Err(e) = undone {
                problems.push(e);
            }
        }
    }
    if let Stage::Rollout {
        ecs_rolled_back: false,
        hands_off: false,
    } = stage
    {
        let backend = report.backend.get_or_insert_with(BackendReport::default);
        backend.outcome = BackendOutcome::Failed {
            rolled_back: service_back,
        };
    }
    if problems.is_empty() {
        return error;
    }
    RollbackIncomplete {
        cause: error,
        problems,
    }
    .into()
}

/// A signal stopped the rollback before it undid `undo`: say what was left as it was.
fn interrupted_before(undo: Undo, rel: &Release, report: &mut Report) {
    let note = match undo {
        Undo::Service => {
            let revision = rel
                .deployed
                .as_ref()
                .map_or("?", |d| deploy::short_arn(&d.task_definition));
            format!(
                "rollback interrupted before `UpdateService`: the service still runs `{revision}`; \
                 finish it with `command: rollback`"
            )
        }
        Undo::Site => {
            "rollback interrupted before the site was restored: the bucket still holds the \
                       new release; finish it with `command: rollback`"
                .to_string()
        }
    };
    report.rollback_interrupted.push(note);
}

/// Put the previous site back; every object it could not restore is a problem of its own.
async fn restore_site(cx: &Cx<'_>, rel: &mut Release, report: &mut Report) -> Vec<Error> {
    let (Some(f), Some(synced)) = (&cx.cfg.frontend, rel.synced.take()) else {
        return Vec::new();
    };
    let sr = report.frontend.get_or_insert_with(Default::default);
    match frontend::restore(cx.clients, f, synced, sr, &mut report.phases).await {
        Ok(()) => Vec::new(),
        Err(frontend::Error::Restore { errors, .. }) if !errors.is_empty() => {
            errors.into_iter().map(Error::from).collect()
        }
        Err(e) => vec![e.into()],
    }
}

async fn roll_back_service_after(
    cx: &Cx<'_>,
    stage: Stage,
    cause: &Error,
    rel: &Release,
    report: &mut Report,
) -> Result<(), Error> {
    let (Some(deployed), Some(prepared)) = (&rel.deployed, &rel.prepared) else {
        return Ok(());
    };
    let backend = report.backend.get_or_insert_with(BackendReport::default);
    let timeline = &mut report.phases;
    let done = match stage {
        Stage::After(reason) => {
            deploy::rollback(cx.clients, cx.cfg, deployed, reason, backend, timeline).await
        }
        _ => {
            let cause = cause.to_string();
            deploy::roll_back_rollout(
                cx.clients, cx.cfg, prepared, deployed, &cause, backend, timeline,
            )
            .await
        }
    };
    done.map_err(Error::from)
}

/// A failure whose rollback did not finish: the failure first, then what the rollback could not do.
#[derive(Debug, thiserror::Error)]
#[error("{cause}; the rollback after it did not finish: {}", list(.problems))]
pub struct RollbackIncomplete {
    pub cause: Error,
    pub problems: Vec<Error>,
}

fn list(problems: &[Error]) -> String {
    problems
        .iter()
        .enumerate()
        .map(|(i, p)| format!("({}) {p}", i + 1))
        .collect::<Vec<_>>()
        .join("; ")
}

impl Diagnose for RollbackIncomplete {
    fn hint(&self) -> String {
        format!(
            "{}; then finish the rollback: check the service and the bucket, and run `command: rollback`",
            self.cause.hint()
        )
    }

    fn anchor(&self) -> Option<&'static str> {
        troubleshooting!("rollback-failed")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_decision_for_every_stage() {
        use Decision::*;
        let rollout = |ecs_rolled_back, hands_off| Stage::Rollout {
            ecs_rolled_back,
            hands_off,
        };
        let cases = [
            (Stage::BeforeService, true, true, Leave),
            (
                rollout(false, false),
                true,
                true,
                Undo {
                    roll_back_service: true,
                },
            ),
            // A watch error or a timeout with nothing changed (a forced redeploy of the same revision).
            (
                rollout(false, false),
                true,
                false,
                Undo {
                    roll_back_service: false,
                },
            ),
            (
                rollout(true, false),
                true,
                true,
                Undo {
                    roll_back_service: false,
                },
            ),
            (
                rollout(false, true),
                true,
                true,
                Undo {
                    roll_back_service: false,
                },
            ),
            (rollout(false, false), false, true, Leave),
            (
                Stage::After("smoke"),
                true,
                true,
                Undo {
                    roll_back_service: true,
                },
            ),
            (Stage::After("smoke"), false, true, Leave),
            (Stage::Final, true, true, Leave),
        ];
        for (stage, on, changed, want) in cases {
            assert_eq!(
                decide(stage, on, changed),
                want,
                "{stage:?} on={on} changed={changed}"
            );
        }
    }

    #[test]
    fn the_cause_stays_the_headline_and_every_problem_is_listed() {
        let cause = Error::from(crate::config::Error::NoEnvironment);
        let cause_text = cause.to_string();
        let e = RollbackIncomplete {
            cause,
            problems: vec![
                Error::from(crate::config::Error::NoEnvironment),
                Error::from(crate::config::Error::NoEnvironment),
            ],
        };
        let text = e.to_string();
        assert!(text.starts_with(&cause_text), "{text}");
        assert!(text.contains("(1) ") && text.contains("(2) "), "{text}");
    }
}
