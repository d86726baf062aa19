//! The pacing of the rollout watch, apart from what is polled: `Poller` decides when to call next,
//! [`watch`] polls any [`Probe`] on that schedule until it is done or the timeout passes.
//!
//! Two bounds hold whatever the rollout shows: the time between the starts of two calls never exceeds
//! the base interval (so completion is noticed at most one base interval late, even when nothing
//! announces it), and the calls average at most one per base interval (a token bucket). Within them,
//! a poll is faster when completion is imminent (the new tasks all run and ECS is waiting for steady
//! state) and tokens are banked; only throttling slows the pace down, exponentially.
//!
//! APIs: none (the probes call ECS).

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use crate::steps::deploy::error::Error;
/// The error a [`Probe`] may end a watch with, by a name other steps that poll can use.
pub use crate::steps::deploy::error::Error as PollError;

/// Tokens the bucket holds at most: how many fast polls a backoff can pay for. Only a throttling
/// backoff (or a late answer) banks tokens: any other pace polls at least once per base interval, which
/// spends as fast as the bucket refills.
const BUCKET: f64 = 10.0;

/// What the last poll showed, which sets the pace of the next one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pace {
    /// Completion is imminent: poll fast (a third of the base interval) while banked tokens pay for
    /// it, else at the base interval.
    Hot,
    /// Something moved (tasks starting): poll at the base interval.
    Changed,
    /// Nothing moved: poll at the base interval (completion may come without a warning).
    Quiet,
    /// The API throttled (or failed transiently): back off exponentially.
    Throttled,
}

/// The adaptive poll schedule. Pure: the caller passes the clock.
#[derive(Debug, Clone)]
struct Poller {
    base: Duration,
    tokens: f64,
    last: Instant,
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
            throttled: 0,
            calls: 0,
        }
    }

    /// Record a call started at `now` that showed `pace`; return how long after `now` the next call
    /// starts.
    ///
    /// Unless throttled, that is at most the base interval; it is also never sooner than the bucket
    /// allows, and since calls start no sooner than this returns, the bucket never goes into debt, so
    /// the two bounds never conflict.
    fn after_call(&mut self, now: Instant, pace: Pace) -> Duration {
        let base = self.base.as_secs_f64();
        self.tokens = (self.tokens + now.saturating_duration_since(self.last).as_secs_f64() / base)
            .min(BUCKET)
            - 1.0;
        self.last = now;
        self.calls += 1;
        // The bucket refills one token per base interval; the next call needs a whole token.
        let budget = (1.0 - self.tokens).max(0.0) * base;
        let secs = match pace {
            Pace::Throttled => {
                self.throttled += 1;
                let cap = (base * 20.0).min(60.0).max(base);
                (base * f64::from(1u32 << self.throttled.min(10)))
                    .min(cap)
                    .max(budget)
            }
            Pace::Hot | Pace::Changed | Pace::Quiet => {
                self.throttled = 0;
                let want = if pace == Pace::Hot { base / 3.0 } else { base };
                want.max(budget).min(base)
            }
        };
        Duration::from_secs_f64(secs)
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

/// `start + d`, or a century later when that overflows the clock (config caps durations; this is the
/// backstop).
pub fn deadline_after(start: Instant, d: Duration) -> Instant {
    start
        .checked_add(d)
        .unwrap_or_else(|| start + Duration::from_secs(100 * 365 * 24 * 3600))
}

/// Poll `probe` on the adaptive schedule until it is done or `timeout` passes (a last poll is made at
/// the deadline, so a rollout that completes just in time is not reported as a timeout).
pub async fn poll<P: Probe>(
    probe: &mut P,
    base: Duration,
    timeout: Duration,
) -> Result<Watched<P::Output>, Error> {
    let start = Instant::now();
    let deadline = deadline_after(start, timeout);
    let mut poller = Poller::new(base, start);
    loop {
        // A call that is accepted and never answered must not outlive the deadline; the last poll, made
        // on it, still gets one base interval to answer.
        let started = Instant::now();
        let bound = deadline.saturating_duration_since(started).max(base);
        let tick = tokio::time::timeout(bound, probe.probe()).await;
        let now = Instant::now();
        let pace = match tick {
            Ok(Ok(Tick::Done(t))) => {
                return Ok(Watched {
                    outcome: Some(t),
                    calls: poller.calls + 1,
                })
            }
            Ok(Ok(Tick::Pending(p))) => p,
            Ok(Err(e)) => return Err(e),
            Err(_elapsed) => {
                tracing::warn!(
                    waited = %humantime::format_duration(bound),
                    "a poll got no answer in time"
                );
                Pace::Throttled
            }
        };
        // Paced from the call's start, so a slow answer does not stretch the interval.
        let next = deadline_after(started, poller.after_call(started, pace));
        if now >= deadline {
            return Ok(Watched {
                outcome: None,
                calls: poller.calls,
            });
        }
        tokio::time::sleep_until(next.min(deadline)).await;
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
        let w = poll(&mut p, base, Duration::from_secs(600)).await.unwrap();
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
    async fn without_a_progress_signal_notices_within_one_interval_within_budget() {
        let base = Duration::from_secs(3);
        // The new tasks reach RUNNING only at the very end (never "hot" before completion): nothing
        // announces it. Completion at 30-70 s in 0.1 s steps, so every phase against the polls is seen.
        for tenths in 300..=700u64 {
            let done = Duration::from_millis(tenths * 100);
            let mut p = scripted(0, 0);
            p.running_at = done;
            p.done_at = done;
            let w = poll(&mut p, base, Duration::from_secs(600)).await.unwrap();
            let lag = w.outcome.unwrap();
            assert!(lag <= base, "completion at {done:?} noticed {lag:?} late");
            let elapsed = p.seen_done.unwrap().as_secs_f64();
            assert!(
                f64::from(w.calls) <= elapsed / base.as_secs_f64() + 1.0,
                "completion at {done:?}: {} calls in {elapsed} s",
                w.calls
            );
        }
    }

    #[test]
    fn unthrottled_polls_are_never_further_apart_than_the_base_interval() {
        let base = Duration::from_secs(3);
        let t0 = Instant::now();
        let mut p = Poller::new(base, t0);
        let mut now = t0;
        let paces = [Pace::Quiet, Pace::Changed, Pace::Hot];
        for i in 0..300 {
            let d = p.after_call(now, paces[(i * 7 + i / 5) % 3]);
            assert!(d <= base, "call {i}: {d:?}");
            now += d;
        }
        // And the average holds: the first call is free.
        let elapsed = (now - t0).as_secs_f64();
        assert!(f64::from(p.calls) <= elapsed / 3.0 + 1.0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_answer_does_not_stretch_the_interval() {
        /// Answers after 2 s; completion at 40 s is never announced.
        struct Slow {
            start: Instant,
            starts: Vec<Instant>,
        }
        impl Probe for Slow {
            type Output = ();
            async fn probe(&mut self) -> Result<Tick<()>, Error> {
                let t = Instant::now();
                self.starts.push(t);
                tokio::time::sleep(Duration::from_secs(2)).await;
                if t - self.start >= Duration::from_secs(40) {
                    return Ok(Tick::Done(()));
                }
                Ok(Tick::Pending(Pace::Quiet))
            }
        }
        let mut p = Slow {
            start: Instant::now(),
            starts: Vec::new(),
        };
        poll(&mut p, Duration::from_secs(3), Duration::from_secs(600))
            .await
            .unwrap();
        for w in p.starts.windows(2) {
            assert!(w[1] - w[0] <= Duration::from_secs(3), "{:?}", w[1] - w[0]);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn times_out_with_a_last_poll_at_the_deadline() {
        let mut p = scripted(10_000, 10_000);
        let start = Instant::now();
        let w = poll(&mut p, Duration::from_secs(3), Duration::from_secs(30))
            .await
            .unwrap();
        assert!(w.outcome.is_none());
        assert_eq!(Instant::now() - start, Duration::from_secs(30));
    }

    /// A `DescribeServices` that is accepted and never answered.
    struct Hung;

    impl Probe for Hung {
        type Output = ();
        async fn probe(&mut self) -> Result<Tick<()>, Error> {
            std::future::pending().await
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_hung_probe_ends_at_the_deadline() {
        let start = Instant::now();
        let w = tokio::time::timeout(
            Duration::from_secs(3600),
            poll(&mut Hung, Duration::from_secs(3), Duration::from_secs(30)),
        )
        .await
        .expect("the watch outlived its timeout")
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
        assert_eq!(p.after_call(now, Pace::Changed), Duration::from_secs(3));
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
        // A minute without calls (a throttling backoff) fills it: the next hot polls are 1 s apart.
        now += Duration::from_secs(60);
        let d = p.after_call(now, Pace::Hot);
        assert_eq!(d, Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn throttled_start_still_completes() {
        let mut p = scripted(45, 60);
        p.throttle_first = 4;
        let w = poll(&mut p, Duration::from_secs(3), Duration::from_secs(600))
            .await
            .unwrap();
        assert!(w.outcome.is_some());
    }
}
