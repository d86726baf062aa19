//! What the post-deploy watch reads besides its HTTP checks: the target group's 5xx rate and p95
//! response time (CloudWatch metrics of the load balancer) and the error lines in the service's log
//! group, each compared with the same-length window before the deploy. The window before is read once,
//! when the watch starts; every round then reads the window since the deploy and says what regressed past
//! the limits of `smoke.watch-signals` (a bad round, counted by the watch as its own bad rounds are).
//!
//! A signal that cannot be read (the role may not, no target group, no `awslogs` configuration) is a
//! `::warning::` and is left out: the watch goes on with what it has. This step writes only its own
//! [`SignalsReport`].
//!
//! APIs: ELBv2 `DescribeTargetGroups`; CloudWatch `GetMetricData`; CloudWatch Logs `FilterLogEvents`
//! (the service's target groups and task definition come from the deploy's preflight).

pub mod compare;
pub(crate) mod loglines;
pub mod metrics;
mod report;
mod unreadable;

use std::sync::Mutex;
use std::time::{Duration, SystemTime};

pub use report::{Round, SignalsReport};
pub use unreadable::ReadError;

use crate::config::{Config, WatchSignals};
use crate::github::commands;
use crate::steps::deploy::Deployed;
use crate::steps::Clients;
use compare::Metrics;

/// Rounds kept in the report (a day's watch at 15 s would be thousands).
const ROUNDS_KEPT: usize = 120;

/// The longest one read may take: a round must not wait for the SDK's whole retry budget, so a slow
/// CloudWatch costs a note, never a stalled watch.
const READ_LIMIT: Duration = Duration::from_secs(30);

/// `read`, cut off after [`READ_LIMIT`].
pub(crate) async fn bounded<T>(
    read: impl std::future::Future<Output = Result<T, ReadError>>,
) -> Result<T, ReadError> {
    tokio::time::timeout(READ_LIMIT, read)
        .await
        .unwrap_or_else(|_| {
            Err(ReadError::Other(format!(
                "no answer within {} s",
                READ_LIMIT.as_secs()
            )))
        })
}

/// The windows compared: `[t0 - baseline, t0)` before the deploy and `[t0, now)` after, where `t0` is the
/// minute the deploy started in, and the window after runs to the end of the current minute (the load
/// balancer's datapoints are per minute).
pub fn windows(
    deploy_started: SystemTime,
    baseline: Duration,
    now: SystemTime,
) -> ((SystemTime, SystemTime), (SystemTime, SystemTime)) {
    let t0 = metrics::floor_minute(deploy_started);
    let end = metrics::ceil_minute(now).max(t0 + Duration::from_secs(60));
    ((t0 - baseline, t0), (t0, end))
}

/// The signals of one watch (see the module documentation).
pub struct Signals<'a> {
    clients: &'a Clients,
    limits: WatchSignals,
    deploy_started: SystemTime,
    dims: Option<metrics::Dimensions>,
    log_group: Option<String>,
    before: Option<Metrics>,
    before_lines: Option<u64>,
    state: Mutex<SignalsReport>,
}

fn warn(text: &str) {
    tracing::warn!("{text}");
    commands::emit(commands::Level::Warning, Some("cloudshop-deploy"), text);
}

impl<'a> Signals<'a> {
    /// Take the target group and the log group of what the deploy put live (both read by its preflight),
    /// and read the window before `deploy_started`. Never fails: what cannot be read is a warning and a
    /// note.
    pub async fn start(
        clients: &'a Clients,
        cfg: &Config,
        deployed: &Deployed,
        deploy_started: SystemTime,
    ) -> Signals<'a> {
        let limits = cfg.signals.clone();
        let mut r = SignalsReport {
            enabled: limits.enabled,
            baseline_seconds: limits.baseline.as_secs(),
            error_pattern: limits.error_pattern.clone(),
            limits: report::Limits::of(&limits),
            ..SignalsReport::default()
        };
        let mut s = Signals {
            clients,
            limits,
            deploy_started,
            dims: None,
            log_group: None,
            before: None,
            before_lines: None,
            state: Mutex::default(),
        };
        if !s.limits.enabled {
            r.notes
                .push("turned off (`smoke.watch-signals.enabled: false`)".into());
            s.state = Mutex::new(r);
            return s;
        }
        let (before, _) = windows(deploy_started, s.limits.baseline, s.limits.clock.now());
        let (previous, live) = s.groups_of(deployed, &mut r).await;
        s.read_metrics_before(&previous, &live, &cfg.backend.service, before, &mut r)
            .await;
        match loglines::log_group(&deployed.definition, &cfg.backend.containers) {
            Ok(group) => s.read_lines_before(group, before, &mut r).await,
            Err(why) => r.notes.push(format!(
                "no error-line count: {why} (the watch counts lines in the `awslogs` group)"
            )),
        }
        for n in &r.notes {
            warn(n);
        }
        tracing::info!(
            target_group = r.target_group.as_deref().unwrap_or("-"),
            log_group = r.log_group.as_deref().unwrap_or("-"),
            "watch signals: compared with the {} before the deploy",
            humantime::format_duration(s.limits.baseline)
        );
        s.state = Mutex::new(r);
        s
    }

    /// The target groups production went through before the deploy and goes through now: the service's
    /// one group both times, or for a service with two (blue/green, linear, canary) the group the new
    /// revision replaced and the one its production listener rule forwards to now.
    async fn groups_of(
        &self,
        deployed: &Deployed,
        r: &mut SignalsReport,
    ) -> (Vec<String>, Vec<String>) {
        let same = (
            deployed.target_groups.clone(),
            deployed.target_groups.clone(),
        );
        let Some(rt) = &deployed.routing else {
            return same;
        };
        let pair = (rt.pair.0.as_str(), rt.pair.1.as_str());
        match bounded(metrics::live_and_other(
            &self.clients.elb,
            &rt.production_rule,
            pair,
        ))
        .await
        {
            Ok((live, _)) if !deployed.changed => (vec![live.clone()], vec![live]),
            Ok((live, other)) => (vec![other], vec![live]),
            Err(e) => {
                r.notes
                    .push(e.warning("live target group (read from the service's first)"));
                same
            }
        }
    }

    /// The load balancer's metrics in the window `before` the deploy through the `previous` target
    /// groups, and the dimensions of the `live` ones for the windows after it; what cannot be read is a
    /// note in `r`.
    async fn read_metrics_before(
        &mut self,
        target_groups: &[String],
        live: &[String],
        service: &str,
        before: (SystemTime, SystemTime),
        r: &mut SignalsReport,
    ) {
        if target_groups.is_empty() {
            r.notes.push(format!(
                "no load balancer metrics: service `{service}` has no target group"
            ));
            return;
        }
        match bounded(metrics::find(&self.clients.elb, target_groups)).await {
            Ok(Some(d)) => {
                match bounded(metrics::read(
                    &self.clients.cloudwatch,
                    &d,
                    before.0,
                    before.1,
                ))
                .await
                {
                    Ok(m) => {
                        self.before = Some(m);
                        r.before = Some(m);
                        self.dims = Some(d);
                    }
                    Err(e) => r.notes.push(e.warning("load balancer metrics")),
                }
            }
            Ok(None) => r.notes.push(
                "no load balancer metrics: the service's target group is behind no load balancer"
                    .into(),
            ),
            Err(e) => r.notes.push(e.warning("load balancer metrics")),
        }
        if self.dims.is_some() && live != target_groups {
            self.dims = match bounded(metrics::find(&self.clients.elb, live)).await {
                Ok(Some(d)) => Some(d),
                Ok(None) => {
                    r.notes.push(
                        "no load balancer metrics: the live target group is behind no load balancer"
                            .into(),
                    );
                    None
                }
                Err(e) => {
                    r.notes.push(e.warning("load balancer metrics"));
                    None
                }
            };
        }
        r.target_group = self.dims.as_ref().map(|d| d.target_group.clone());
    }

    /// The error lines of `group` in the window `before` the deploy; what cannot be read is a note in
    /// `r`.
    async fn read_lines_before(
        &mut self,
        group: String,
        before: (SystemTime, SystemTime),
        r: &mut SignalsReport,
    ) {
        let counted = bounded(loglines::count(
            &self.clients.logs,
            &group,
            &self.limits.error_pattern,
            before.0,
            before.1,
        ))
        .await;
        match counted {
            Ok(n) => {
                self.before_lines = Some(n);
                r.before_error_lines = Some(n);
                r.log_group = Some(group.clone());
                self.log_group = Some(group);
            }
            Err(e) => r.notes.push(e.warning("error lines")),
        }
    }

    /// Whether any signal is read at all.
    pub fn active(&self) -> bool {
        self.dims.is_some() || self.log_group.is_some()
    }

    /// Read the window since the deploy; the regressions past the limits (empty: a good round). A read
    /// that fails is a note, not a bad round: the service did nothing wrong.
    pub async fn round(&self) -> Vec<String> {
        if !self.active() {
            return Vec::new();
        }
        let now = self.limits.clock.now();
        let (before, after) = windows(self.deploy_started, self.limits.baseline, now);
        let (m, l) = tokio::join!(self.read_metrics(after), self.read_lines(after.0, now));
        let mut bad = Vec::new();
        let mut round = Round {
            at_seconds: now
                .duration_since(self.deploy_started)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            ..Round::default()
        };
        let mut notes = Vec::new();
        match m {
            Some(Ok(m)) => {
                let before = self.before.unwrap_or_default();
                round.rate_5xx = m.rate_5xx();
                round.p95_ms = m.p95_ms;
                round.requests = Some(m.requests);
                bad.extend(compare::judge_5xx(
                    before.rate_5xx(),
                    m.rate_5xx(),
                    &self.limits,
                ));
                bad.extend(compare::judge_p95(before.p95_ms, m.p95_ms, &self.limits));
            }
            Some(Err(e)) => notes.push(e.warning("load balancer metrics this round")),
            None => {}
        }
        match l {
            Some(Ok(n)) => {
                round.error_lines = Some(n);
                let before_secs = before.1.duration_since(before.0).unwrap_or_default();
                let after_secs = now.duration_since(after.0).unwrap_or_default();
                bad.extend(compare::judge_error_lines(
                    self.before_lines.unwrap_or(0),
                    before_secs.as_secs_f64(),
                    n,
                    after_secs.as_secs_f64(),
                    &self.limits,
                ));
            }
            Some(Err(e)) => notes.push(e.warning("error lines this round")),
            None => {}
        }
        for n in &notes {
            tracing::warn!("{n}");
        }
        round.regressions = bad.clone();
        self.record(round, notes);
        bad
    }

    /// The load balancer's metrics in the window `after` the deploy, when there are any to read.
    async fn read_metrics(
        &self,
        after: (SystemTime, SystemTime),
    ) -> Option<Result<Metrics, ReadError>> {
        let d = self.dims.as_ref()?;
        Some(bounded(metrics::read(&self.clients.cloudwatch, d, after.0, after.1)).await)
    }

    /// The error lines from `since` to `now`, when there is a log group to read.
    async fn read_lines(
        &self,
        since: SystemTime,
        now: SystemTime,
    ) -> Option<Result<u64, ReadError>> {
        let g = self.log_group.as_ref()?;
        Some(
            bounded(loglines::count(
                &self.clients.logs,
                g,
                &self.limits.error_pattern,
                since,
                now,
            ))
            .await,
        )
    }

    /// Number `round` and keep it (the latest [`ROUNDS_KEPT`]), with the notes not kept yet.
    fn record(&self, mut round: Round, notes: Vec<String>) {
        if let Ok(mut r) = self.state.lock() {
            r.round_count += 1;
            round.round = r.round_count;
            if !round.regressions.is_empty() {
                r.bad_rounds += 1;
            }
            r.rounds.push(round);
            if r.rounds.len() > ROUNDS_KEPT {
                r.rounds.remove(0);
            }
            for n in notes {
                if !r.notes.contains(&n) {
                    r.notes.push(n);
                }
            }
        }
    }

    /// The section as the rounds left it.
    pub fn report(&self) -> SignalsReport {
        self.state.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_windows_meet_at_the_minute_of_the_deploy() {
        let at = |s: u64| SystemTime::UNIX_EPOCH + Duration::from_secs(s);
        let ten = Duration::from_secs(600);
        // Deployed at :30 past; now 100 s later.
        let (before, after) = windows(at(1_800_000_030), ten, at(1_800_000_130));
        assert_eq!(before, (at(1_799_999_400), at(1_800_000_000)));
        assert_eq!(after, (at(1_800_000_000), at(1_800_000_180)));
        // Right after the deploy the window after is still a whole minute.
        let (_, after) = windows(at(1_800_000_000), ten, at(1_800_000_000));
        assert_eq!(after, (at(1_800_000_000), at(1_800_000_060)));
    }

    /// A read that never answers costs the round at most [`READ_LIMIT`] (paused clock: no real wait).
    #[tokio::test(start_paused = true)]
    async fn a_hung_read_is_cut_off() {
        let started = tokio::time::Instant::now();
        let r: Result<u64, ReadError> = bounded(std::future::pending()).await;
        assert_eq!(r, Err(ReadError::Other("no answer within 30 s".into())));
        assert_eq!(started.elapsed(), READ_LIMIT);
        assert_eq!(bounded(async { Ok::<_, ReadError>(7) }).await, Ok(7));
    }

    #[test]
    fn read_errors_say_what_to_grant() {
        let w =
            ReadError::Denied("cloudwatch:GetMetricData".into()).warning("load balancer metrics");
        assert_eq!(
            w,
            "the watch goes on without the load balancer metrics: the role may not call `cloudwatch:GetMetricData` (add it to the deploy role's policy, see docs/iam)"
        );
    }
}
