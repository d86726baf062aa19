//! The post-deploy watch: for `smoke.watch`, every `smoke.watch-interval`, one smoke round (one attempt
//! per API check, no retries), one read of the service through the caller's `probe` and one reading of
//! the caller's `signals`, all at the same time. As many bad rounds in a row as `smoke.watch-failures`
//! is a sustained failure.
//!
//! APIs: plain HTTP(S) to the app (the smoke checks); the ECS service and the signals are read only
//! through the caller's closures (the deploy step's `DescribeServices`/`DescribeTasks`, the signals'
//! CloudWatch reads).
//!
//! [`run`] writes only the watch part of the smoke section and the run's [`Timeline`].

mod rounds;

use std::future::Future;

use serde::Serialize;
use tokio::time::Instant;

use crate::config::Smoke;
use crate::error::Diagnose;
use crate::github::commands;
use crate::report::section::{Outcome, Timeline};
use crate::steps::smoke::{
    self, display_url, Api, Attempt, BadRound, SmokeReport, WatchReport, WatchStat,
};

/// Bad rounds kept in the report.
const BAD_ROUNDS_KEPT: usize = 20;

/// Errors of the post-deploy watch.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The smoke checks could not be prepared (no URL, a bad check, no HTTP client).
    #[error(transparent)]
    Smoke(#[from] smoke::Error),
    /// Enough bad rounds in a row to count as sustained.
    #[error("failed to keep `{url}` healthy after the deploy: {streak} bad watch rounds in a row (round {round} of {rounds}): {seen}")]
    Sustained {
        /// Base URL (no userinfo).
        url: String,
        /// Consecutive bad rounds.
        streak: u32,
        /// Round where it became sustained.
        round: u32,
        /// Rounds planned.
        rounds: u32,
        /// What the bad rounds saw.
        seen: String,
    },
}

impl Diagnose for Error {
    fn hint(&self) -> String {
        match self {
            Error::Smoke(e) => e.hint(),
            Error::Sustained { .. } => "the new version failed after it went live: read the watch table in the job summary and the service's stopped-task reasons (raise `smoke.watch-failures` if the checks are flaky)".into(),
        }
    }

    fn anchor(&self) -> Option<&'static str> {
        match self {
            Error::Smoke(e) => e.anchor(),
            Error::Sustained { .. } => troubleshooting!("smoke-tests-failed"),
        }
    }
}

/// The service as one round reads it (through the caller's probe).
#[derive(Debug, Clone, Serialize)]
pub struct ServiceHealth {
    pub running: i32,
    pub desired: i32,
    /// Tasks of the new revision that stopped since the last read, with their reasons.
    pub new_stopped: Vec<String>,
}

/// The service as a round saw it: a bad sign in words, or `None` when it looks fine. New stopped tasks
/// are bad; so is no task running when some are desired. Fewer running than desired alone is not: ECS
/// replaces tasks and autoscaling adds them, and both take longer than a few rounds.
fn service_problem(h: &ServiceHealth) -> Option<String> {
    let mut bad = Vec::new();
    if h.desired > 0 && h.running == 0 {
        bad.push(format!("{}/{} running", h.running, h.desired));
    }
    if !h.new_stopped.is_empty() {
        bad.push(format!("stopped: {}", h.new_stopped.join(", ")));
    }
    (!bad.is_empty()).then(|| bad.join(", "))
}

/// Keep running smoke rounds, reading the service (through `probe`) and weighing `signals` for
/// `cfg.watch`; `Err` on a sustained failure (`cfg.watch_failures` bad rounds in a row). Each text
/// `signals` returns is a regression that makes its round bad.
pub async fn run<F, Fut, G, GFut>(
    cfg: &Smoke,
    mut probe: F,
    mut signals: G,
    section: &mut SmokeReport,
    timeline: &mut Timeline,
) -> Result<(), Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<ServiceHealth, crate::error::Error>>,
    G: FnMut() -> GFut,
    GFut: Future<Output = Vec<String>>,
{
    let started = Instant::now();
    let _group = commands::group("Post-deploy watch");
    let api = Api::prepare(cfg)?;
    let planned = rounds::planned(cfg.watch, cfg.watch_interval);
    tracing::info!(
        duration = %humantime::format_duration(cfg.watch),
        interval = %humantime::format_duration(cfg.watch_interval),
        rounds = planned,
        "watching the new version"
    );
    let mut tally = Tally::new(cfg, planned, api.checks.len());
    let mut err = None;
    for k in 1..=planned {
        tokio::time::sleep_until(rounds::due(started, k, cfg.watch, cfg.watch_interval)).await;
        let at_seconds = started.elapsed().as_secs();
        let (attempts, health, regressions) =
            tokio::join!(api.round(cfg.request_timeout), probe(), signals());
        let seen = tally.weigh(k, &api, &attempts, &health, &regressions);
        if tally.close(k, at_seconds, seen, cfg.watch_failures) {
            err = Some(Error::Sustained {
                url: display_url(&api.base),
                streak: tally.streak,
                round: k,
                rounds: planned,
                seen: tally.recent.join(" | "),
            });
            break;
        }
    }
    let w = tally.finish(&api);
    tracing::info!(
        rounds = w.rounds,
        bad = w.bad_rounds,
        passed = w.passed,
        "watch finished"
    );
    section
        .base_url
        .get_or_insert_with(|| display_url(&api.base));
    section.watch = Some(w);
    section.settle();
    let outcome = if err.is_some() {
        Outcome::Failed
    } else {
        Outcome::Ok
    };
    timeline.record("watch", started, outcome);
    err.map_or(Ok(()), Err)
}

/// What the rounds so far add up to: the report being filled, each check's latencies and failed
/// requests (in check order), the current streak of bad rounds and what they saw.
struct Tally {
    report: WatchReport,
    latencies: Vec<Vec<u64>>,
    failures: Vec<u32>,
    streak: u32,
    recent: Vec<String>,
}

impl Tally {
    fn new(cfg: &Smoke, planned: u32, checks: usize) -> Tally {
        Tally {
            report: WatchReport {
                duration_seconds: cfg.watch.as_secs(),
                interval_seconds: cfg.watch_interval.as_secs(),
                failures_allowed: cfg.watch_failures,
                rounds_planned: planned,
                passed: true,
                ..WatchReport::default()
            },
            latencies: vec![Vec::new(); checks],
            failures: vec![0; checks],
            streak: 0,
            recent: Vec::new(),
        }
    }

    /// Count round `k`'s requests and service read; return what went wrong in it, in words (failed
    /// checks, a service problem, the signals' regressions), secrets redacted. A service that could
    /// not be read is logged, not counted as bad.
    fn weigh(
        &mut self,
        k: u32,
        api: &Api,
        attempts: &[Attempt],
        health: &Result<ServiceHealth, crate::error::Error>,
        regressions: &[String],
    ) -> Vec<String> {
        self.report.rounds = k;
        let mut seen = Vec::new();
        for (i, (c, a)) in api.checks.iter().zip(attempts).enumerate() {
            self.latencies[i].push(a.latency_ms);
            if !a.passed {
                self.failures[i] += 1;
                seen.push(format!("{}: {}", c.name, a.got));
            }
        }
        match health {
            Ok(h) => {
                self.report.service = Some(format!("{}/{} running", h.running, h.desired));
                if let Some(p) = service_problem(h) {
                    seen.push(format!("service: {}", api.redact.apply(&p)));
                }
            }
            Err(e) => {
                self.report.probe_errors += 1;
                tracing::warn!(round = k, "could not read the service: {e}");
            }
        }
        seen.extend(regressions.iter().map(|r| api.redact.apply(r)));
        seen
    }

    /// Count round `k` (`at_seconds` into the watch) as bad when it `seen` anything, good otherwise;
    /// `true` when the bad rounds in a row reached `limit` (the report then says it failed).
    fn close(&mut self, k: u32, at_seconds: u64, seen: Vec<String>, limit: u32) -> bool {
        let w = &mut self.report;
        let bad = !seen.is_empty();
        let sustained;
        (self.streak, sustained) = rounds::next_streak(self.streak, bad, limit);
        w.max_consecutive = w.max_consecutive.max(self.streak);
        if bad {
            let seen = seen.join("; ");
            tracing::warn!(round = k, streak = self.streak, "bad round: {seen}");
            w.bad_rounds += 1;
            w.bad.push(BadRound {
                round: k,
                at_seconds,
                seen: seen.clone(),
            });
            if w.bad.len() > BAD_ROUNDS_KEPT {
                w.bad.remove(0);
            }
            self.recent.push(format!("round {k}: {seen}"));
        } else {
            self.recent.clear();
            tracing::debug!(round = k, "good round");
        }
        if sustained {
            w.passed = false;
        }
        sustained
    }

    /// The report, with each check's figures over the rounds that ran.
    fn finish(self, api: &Api) -> WatchReport {
        let mut w = self.report;
        w.checks = api
            .checks
            .iter()
            .zip(self.latencies.iter().zip(&self.failures))
            .map(|(c, (latencies, &failed))| {
                let (p50, max) = smoke::p50_max(latencies.iter().copied());
                WatchStat {
                    name: c.name.clone(),
                    requests: u32::try_from(latencies.len()).unwrap_or(u32::MAX),
                    failed,
                    p50_ms: p50,
                    max_ms: max,
                }
            })
            .collect();
        w
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_problems() {
        let h = |running, desired, stopped: &[&str]| ServiceHealth {
            running,
            desired,
            new_stopped: stopped.iter().map(|s| s.to_string()).collect(),
        };
        assert_eq!(service_problem(&h(2, 2, &[])), None);
        assert_eq!(service_problem(&h(1, 2, &[])), None);
        assert_eq!(service_problem(&h(0, 0, &[])), None);
        assert_eq!(
            service_problem(&h(0, 2, &[])).as_deref(),
            Some("0/2 running")
        );
        assert_eq!(
            service_problem(&h(1, 2, &["Essential container in task exited"])).as_deref(),
            Some("stopped: Essential container in task exited")
        );
    }
}
