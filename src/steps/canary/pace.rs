//! The pacing of one step's judgement: judge at once over the minutes since the step began; while there
//! is not enough traffic, judge again every `canary.interval` over the grown window, until the step's
//! time budget (the pause's expiry less a margin, or the bake's end) would run out; then
//! `canary.on-no-data` decides. Bounded in time and in reads; sleeps go through tokio's clock, so a
//! test runs it on a paused one. No AWS API (the reads are the caller's `judge`).

use std::future::Future;
use std::time::{Duration, SystemTime};

use super::judge::{Decision, StepVerdict};
use crate::clock::Clock;
use crate::config::Canary;
use crate::steps::signals::metrics::{ceil_minute, floor_minute};

/// The minutes judged: both revisions are read over the same window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub from: SystemTime,
    pub to: SystemTime,
}

impl Window {
    /// The window on whole minutes (the load balancer's datapoints are per minute), at least one.
    pub fn whole_minutes(&self) -> (SystemTime, SystemTime) {
        let from = floor_minute(self.from);
        (
            from,
            ceil_minute(self.to).max(from + Duration::from_secs(60)),
        )
    }
}

/// Judge the step that began at `since` until it is decided (see the module documentation): the last
/// verdict, the decision, and how many times it was judged. `judge` reads and judges one window.
pub async fn until_decided<F, Fut>(
    cfg: &Canary,
    clock: &Clock,
    since: SystemTime,
    budget: Duration,
    mut judge: F,
) -> (StepVerdict, Decision, u32)
where
    F: FnMut(Window) -> Fut,
    Fut: Future<Output = StepVerdict>,
{
    let started = tokio::time::Instant::now();
    let mut reads = 0u32;
    loop {
        let step = judge(Window {
            from: since,
            to: clock.now(),
        })
        .await;
        reads += 1;
        // Another interval must fit in the budget, or this read was the step's last.
        let last = started.elapsed() + cfg.interval > budget;
        let decision = step.verdict.decision(cfg, last);
        if decision != Decision::Wait {
            return (step, decision, reads);
        }
        tracing::info!(
            "canary step: {}; judged again in {}",
            step.why,
            humantime::format_duration(cfg.interval)
        );
        tokio::time::sleep(cfg.interval).await;
    }
}

#[cfg(test)]
mod tests {
    use super::super::judge::{Side, Verdict};
    use super::*;
    use crate::config::OnNoData;

    fn step(verdict: Verdict) -> StepVerdict {
        StepVerdict {
            verdict,
            weight: 10.0,
            from_epoch: 0,
            to_epoch: 60,
            new: Side::default(),
            old: Side::default(),
            why: "why".into(),
            notes: Vec::new(),
        }
    }

    /// Runs `verdicts` in order (the last repeats): the decision, the reads, the virtual time taken.
    async fn run(
        cfg: &Canary,
        budget: Duration,
        verdicts: Vec<Verdict>,
    ) -> (Decision, u32, Duration) {
        let started = tokio::time::Instant::now();
        let mut n = 0usize;
        let since = SystemTime::now();
        let (s, d, reads) = until_decided(cfg, &Clock::System, since, budget, |w| {
            assert_eq!(w.from, since);
            let v = verdicts[n.min(verdicts.len() - 1)].clone();
            n += 1;
            async move { step(v) }
        })
        .await;
        assert_eq!(s.why, "why");
        (d, reads, started.elapsed())
    }

    #[tokio::test(start_paused = true)]
    async fn too_little_traffic_waits_an_interval_at_a_time_within_the_budget() {
        let cfg = Canary::default();
        let few = Verdict::NotEnoughTraffic { new: 10, old: 90 };
        let min = Duration::from_secs(60);
        // Judged at once: a pass or a regression decides without a wait.
        assert_eq!(
            run(&cfg, 10 * min, vec![Verdict::Pass]).await,
            (Decision::Continue, 1, Duration::ZERO)
        );
        assert_eq!(
            run(
                &cfg,
                10 * min,
                vec![Verdict::Regression(vec!["5xx".into()])]
            )
            .await,
            (Decision::Rollback, 1, Duration::ZERO)
        );
        // Two short windows, then enough traffic: three reads, two intervals.
        assert_eq!(
            run(
                &cfg,
                10 * min,
                vec![few.clone(), few.clone(), Verdict::Pass]
            )
            .await,
            (Decision::Continue, 3, 2 * min)
        );
        // Never enough within 3.5 minutes: reads at 0, 1, 2 and 3 minutes, then `on-no-data`.
        assert_eq!(
            run(&cfg, min * 7 / 2, vec![few.clone()]).await,
            (Decision::Rollback, 4, 3 * min)
        );
        let go_on = Canary {
            on_no_data: OnNoData::Continue,
            ..Canary::default()
        };
        assert_eq!(
            run(&go_on, min / 2, vec![few]).await,
            (Decision::Continue, 1, Duration::ZERO)
        );
        // Metrics that cannot be read decide at once.
        assert_eq!(
            run(&cfg, 10 * min, vec![Verdict::NoData("denied".into())]).await,
            (Decision::Rollback, 1, Duration::ZERO)
        );
    }

    #[test]
    fn the_window_is_read_on_whole_minutes() {
        let at = |s: u64| SystemTime::UNIX_EPOCH + Duration::from_secs(s);
        let w = Window {
            from: at(1_800_000_030),
            to: at(1_800_000_100),
        };
        assert_eq!(w.whole_minutes(), (at(1_800_000_000), at(1_800_000_120)));
        let instant = Window {
            from: at(1_800_000_000),
            to: at(1_800_000_000),
        };
        assert_eq!(
            instant.whole_minutes(),
            (at(1_800_000_000), at(1_800_000_060))
        );
    }
}
