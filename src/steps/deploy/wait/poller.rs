//! The pacing of the rollout watch, apart from what is polled: [`Poller`] decides when to call next,
//! [`watch`] polls any [`Probe`] on that schedule until it is done or the timeout passes.
//!
//! Polling is adaptive: fast when completion is imminent (the new tasks all run and ECS is waiting for
//! steady state), slower when nothing moves, never above one call per base interval on average (a token
//! bucket), exponential backoff on throttling.
//!
//! APIs: none (the probes call ECS).

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use crate::steps::deploy::error::Error;

/// Tokens the bucket holds at most: how many fast polls a quiet stretch can pay for.
const BUCKET: f64 = 10.0;
/// Quiet polls in a row before the interval doubles (ECS cannot complete a rollout while new tasks
/// are still starting, so a quiet stretch costs no detection time, and it banks tokens for the hot end).
const QUIET_AFTER: u32 = 1;

/// What the last poll showed, which sets the pace of the next one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pace {
    /// Completion is imminent: poll fast (a third of the base interval).
    Hot,
    /// Something moved (tasks starting): poll at 1.5 times the base interval.
    Changed,
    /// Nothing moved: poll at twice the base interval.
    Quiet,
    /// The API throttled (or failed transiently): back off exponentially.
    Throttled,
}

/// The adaptive poll schedule. Pure: the caller passes the clock.
#[derive(Debug, Clone)]
pub struct Poller {
    base: Duration,
    tokens: f64,
    last: Instant,
    quiet: u32,
    throttled: u32,
    /// Calls made so far.
    pub calls: u32,
}

impl Poller {
    /// A schedule around `base` (the configured poll interval), starting at `now`.
    pub fn new(base: Duration, now: Instant) -> Self {
        Poller {
            base: base.max(Duration::from_millis(1)),
            tokens: 1.0,
            last: now,
            quiet: 0,
            throttled: 0,
            calls: 0,
        }
    }

    /// Record a call made at `now` that showed `pace`; return how long to wait before the next call.
    pub fn after_call(&mut self, now: Instant, pace: Pace) -> Duration {
        let base = self.base.as_secs_f64();
        self.tokens = (self.tokens + now.saturating_duration_since(self.last).as_secs_f64() / base)
            .min(BUCKET)
            - 1.0;
        self.last = now;
        self.calls += 1;
        let want = match pace {
            Pace::Hot => {
                self.quiet = 0;
                self.throttled = 0;
                base / 3.0
            }
            Pace::Changed => {
                // Tasks are starting: completion is still at least a health check away.
                self.quiet = 0;
                self.throttled = 0;
                base * 1.5
            }
            Pace::Quiet => {
                self.quiet += 1;
                self.throttled = 0;
                if self.quiet >= QUIET_AFTER {
                    base * 2.0
                } else {
                    base
                }
            }
            Pace::Throttled => {
                self.throttled += 1;
                let cap = (base * 20.0).min(60.0).max(base);
                (base * f64::from(1u32 << self.throttled.min(10))).min(cap)
            }
        };
        // The bucket refills one token per base interval; the next call needs a whole token.
        let budget = (1.0 - self.tokens).max(0.0) * base;
        Duration::from_secs_f64(want.max(budget))
    }
}

/// One poll's result.
#[derive(Debug)]
pub enum Tick<T> {
    /// Not over yet.
    Pending(Pace),
    /// Over (successfully or not: `T` says).
    Done(T),
}

/// Something to poll.
pub trait Probe {
    /// What a finished watch yields.
    type Output;
    /// Poll once.
    fn probe(&mut self) -> impl Future<Output = Result<Tick<Self::Output>, Error>>;
}

/// How a watch ended.
#[derive(Debug)]
pub struct Watched<T> {
    /// `None`: the timeout passed first.
    pub outcome: Option<T>,
    pub calls: u32,
}

/// Poll `probe` on the adaptive schedule until it is done or `timeout` passes (a last poll is made at
/// the deadline, so a rollout that completes just in time is not reported as a timeout).
pub async fn watch<P: Probe>(
    probe: &mut P,
    base: Duration,
    timeout: Duration,
) -> Result<Watched<P::Output>, Error> {
    let start = Instant::now();
    let deadline = start + timeout;
    let mut poller = Poller::new(base, start);
    loop {
        let tick = probe.probe().await?;
        let now = Instant::now();
        let pace = match tick {
            Tick::Done(t) => {
                return Ok(Watched {
                    outcome: Some(t),
                    calls: poller.calls + 1,
                })
            }
            Tick::Pending(p) => p,
        };
        let delay = poller.after_call(now, pace);
        if now >= deadline {
            return Ok(Watched {
                outcome: None,
                calls: poller.calls,
            });
        }
        tokio::time::sleep(delay.min(deadline - now)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scripted rollout: ECS reports COMPLETED at `done_at`; all tasks run from `running_at`.
    struct Scripted {
        start: Instant,
        running_at: Duration,
        done_at: Duration,
        calls: u32,
        seen_done: Option<Duration>,
        throttle_first: u32,
    }

    impl Probe for Scripted {
        type Output = Duration;
        async fn probe(&mut self) -> Result<Tick<Duration>, Error> {
            self.calls += 1;
            if self.calls <= self.throttle_first {
                return Ok(Tick::Pending(Pace::Throttled));
            }
            let t = Instant::now() - self.start;
            if t >= self.done_at {
                self.seen_done = Some(t);
                return Ok(Tick::Done(t - self.done_at));
            }
            Ok(Tick::Pending(if t >= self.running_at {
                Pace::Hot
            } else {
                Pace::Quiet
            }))
        }
    }

    fn scripted(running_at: u64, done_at: u64) -> Scripted {
        Scripted {
            start: Instant::now(),
            running_at: Duration::from_secs(running_at),
            done_at: Duration::from_secs(done_at),
            calls: 0,
            seen_done: None,
            throttle_first: 0,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn detects_completion_fast_within_budget() {
        let base = Duration::from_secs(3);
        let mut p = scripted(45, 60);
        let w = watch(&mut p, base, Duration::from_secs(600)).await.unwrap();
        let lag = w.outcome.unwrap();
        assert!(lag <= Duration::from_secs(1), "lag {lag:?}");
        let elapsed = p.seen_done.unwrap().as_secs_f64();
        // Average at most one call per base interval (plus the first, free one).
        assert!(
            f64::from(w.calls) <= elapsed / 3.0 + 1.0,
            "{} calls in {elapsed} s",
            w.calls
        );
    }

    #[tokio::test(start_paused = true)]
    async fn quiet_rollouts_poll_slower_but_notice_within_two_intervals() {
        let base = Duration::from_secs(3);
        // Never "hot": completion comes out of the blue.
        let mut p = scripted(10_000, 120);
        let w = watch(&mut p, base, Duration::from_secs(600)).await.unwrap();
        assert!(w.outcome.unwrap() <= Duration::from_secs(6));
        assert!(w.calls <= 120 / 6 + 3, "{} calls", w.calls);
    }

    #[tokio::test(start_paused = true)]
    async fn times_out_with_a_last_poll_at_the_deadline() {
        let mut p = scripted(10_000, 10_000);
        let start = Instant::now();
        let w = watch(&mut p, Duration::from_secs(3), Duration::from_secs(30))
            .await
            .unwrap();
        assert!(w.outcome.is_none());
        assert_eq!(Instant::now() - start, Duration::from_secs(30));
    }

    #[test]
    fn throttling_backs_off_exponentially_and_recovers() {
        let t0 = Instant::now();
        let mut p = Poller::new(Duration::from_secs(3), t0);
        let mut now = t0;
        let mut delays = Vec::new();
        for _ in 0..6 {
            let d = p.after_call(now, Pace::Throttled);
            delays.push(d.as_secs());
            now += d;
        }
        assert_eq!(delays, [6, 12, 24, 48, 60, 60]);
        // Back to the normal pace after a normal reply.
        assert_eq!(
            p.after_call(now, Pace::Changed),
            Duration::from_millis(4500)
        );
    }

    #[test]
    fn hot_polls_are_paid_for_by_the_bucket() {
        let t0 = Instant::now();
        let mut p = Poller::new(Duration::from_secs(3), t0);
        let mut now = t0;
        // Hot from the start: the bucket is empty, so the pace stays at one call per 3 s.
        for _ in 0..5 {
            let d = p.after_call(now, Pace::Hot);
            assert!(d >= Duration::from_secs(2), "{d:?}");
            now += d;
        }
        // A quiet minute fills it: the next hot polls are 1 s apart.
        now += Duration::from_secs(60);
        let d = p.after_call(now, Pace::Hot);
        assert_eq!(d, Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn throttled_start_still_completes() {
        let mut p = scripted(45, 60);
        p.throttle_first = 4;
        let w = watch(&mut p, Duration::from_secs(3), Duration::from_secs(600))
            .await
            .unwrap();
        assert!(w.outcome.is_some());
    }
}
