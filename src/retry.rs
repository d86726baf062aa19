//! The one retry policy of the binary: a [`Policy`] (attempts, base delay, longest delay, jitter) that
//! each call site names with its own bound, and [`run`], which tries an operation until it succeeds, the
//! caller calls its failure final, or the bound is reached. Delays grow exponentially from the base, with
//! equal jitter, and never pass the policy's longest delay, a server-given retry-after included.
//!
//! Retries never nest: an operation retried by [`run`] that itself calls [`run`] (in the same tokio task)
//! gets exactly one attempt of the inner operation, and the outer one decides whether the whole is tried
//! again. Otherwise the bounds multiply (five sessions inside five uploads make 25 requests for one blob),
//! and so do the waits. A task spawned from inside an operation is not inside it: it retries on its own.
//!
//! The AWS SDK clients have their own retry mode (`aws::CallLimits`); this module is for everything the
//! binary sends itself (the registry, the OIDC token endpoint) and for decisions the SDK cannot make
//! (a web-identity token to replace before the next `AssumeRoleWithWebIdentity`).
//!
//! APIs: none.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use rand::Rng;
use tracing::Level;

/// The longest wait between two attempts unless a policy says otherwise.
pub const MAX_DELAY: Duration = Duration::from_secs(30);

tokio::task_local! {
    /// Set while an operation retried by [`run`] is being polled: a [`run`] inside it tries once.
    static RETRYING: ();
}

/// How often and how patiently an operation is tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Attempts, the first included (0 counts as 1).
    pub attempts: u32,
    /// The delay after the first failed attempt; it doubles after each further one.
    pub base: Duration,
    /// No delay is longer than this, a server-given retry-after included.
    pub max: Duration,
    /// Equal jitter: each delay is drawn from `[d/2, d]` rather than exactly `d`, so clients that failed
    /// together do not come back together.
    pub jitter: bool,
    /// The level of the log line of each retry: `DEBUG` unless the caller says a retry is news (a blob
    /// copy and the role warn, a write sequence's step informs).
    pub log: Level,
}

impl Policy {
    /// `attempts` tries, `base` doubling up to [`MAX_DELAY`], jittered, retries logged at debug level.
    pub const fn new(attempts: u32, base: Duration) -> Policy {
        Policy {
            attempts,
            base,
            max: MAX_DELAY,
            jitter: true,
            log: Level::DEBUG,
        }
    }

    /// The same policy with `max` as the longest delay.
    pub const fn max_delay(self, max: Duration) -> Policy {
        Policy { max, ..self }
    }

    /// The same policy with exact delays (tests and schedules that need them predictable).
    pub const fn without_jitter(self) -> Policy {
        Policy {
            jitter: false,
            ..self
        }
    }

    /// The same policy, its retries logged at `log`.
    pub const fn log_retries_at(self, log: Level) -> Policy {
        Policy { log, ..self }
    }

    /// The delay bound after `failed` failed attempts (1-based): `base * 2^(failed-1)`, at most `max`.
    pub fn ceiling(&self, failed: u32) -> Duration {
        let exp = self
            .base
            .saturating_mul(1u32 << failed.max(1).saturating_sub(1).min(20));
        exp.min(self.max)
    }

    /// The delay after `failed` failed attempts: [`Policy::ceiling`], jittered into its upper half.
    pub fn delay(&self, failed: u32) -> Duration {
        let ceiling = self.ceiling(failed);
        let micros = u64::try_from(ceiling.as_micros()).unwrap_or(u64::MAX);
        if !self.jitter || micros < 2 {
            return ceiling;
        }
        Duration::from_micros(rand::rng().random_range(micros / 2..=micros))
    }
}

/// What one attempt came to, as the caller classifies it.
#[derive(Debug)]
pub enum Outcome<T, E> {
    /// It worked.
    Done(T),
    /// Worth another attempt (a dropped connection, throttling, a 5xx); the error is the caller's when
    /// no attempt is left.
    Transient(E),
    /// Worth another attempt, but not before the server's delay (still at most the policy's `max`).
    TransientAfter(E, Duration),
    /// Asking again will not help (a 4xx, a refusal, bytes that are not what they should be).
    Final(E),
}

impl<T, E> Outcome<T, E> {
    /// A plain result, its error classified by `transient`.
    pub fn classify(result: Result<T, E>, transient: impl FnOnce(&E) -> bool) -> Self {
        match result {
            Ok(t) => Outcome::Done(t),
            Err(e) if transient(&e) => Outcome::Transient(e),
            Err(e) => Outcome::Final(e),
        }
    }
}

/// Is an operation retried by [`run`] being polled in this task (so a [`run`] here would try once)?
pub fn nested() -> bool {
    RETRYING.try_with(|_| ()).is_ok()
}

/// Try `op` (given the attempt number, from 1) under `policy`: until it is done, its failure is final,
/// or `policy.attempts` attempts have failed; the last error is returned. Between attempts it sleeps
/// [`Policy::delay`] (or the server's retry-after when longer, capped at `policy.max`). Inside another
/// retried operation it tries exactly once (see the module's documentation). `what` names the operation
/// in the log.
pub async fn run<T, E, F, Fut>(policy: Policy, what: &str, mut op: F) -> Result<T, E>
where
    E: fmt::Display,
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Outcome<T, E>>,
{
    if nested() {
        return match op(1).await {
            Outcome::Done(t) => Ok(t),
            Outcome::Transient(e) | Outcome::TransientAfter(e, _) | Outcome::Final(e) => Err(e),
        };
    }
    let attempts = policy.attempts.max(1);
    let mut attempt = 1;
    loop {
        let (error, after) = match RETRYING.scope((), op(attempt)).await {
            Outcome::Done(t) => return Ok(t),
            Outcome::Final(e) => return Err(e),
            Outcome::Transient(e) => (e, None),
            Outcome::TransientAfter(e, d) => (e, Some(d)),
        };
        if attempt >= attempts {
            return Err(error);
        }
        let delay = match after {
            Some(d) => d.max(policy.delay(attempt)).min(policy.max),
            None => policy.delay(attempt),
        };
        match policy.log {
            Level::WARN | Level::ERROR => {
                tracing::warn!(
                    attempt,
                    attempts,
                    ?delay,
                    "{what} failed; retrying: {error}"
                )
            }
            Level::INFO => tracing::info!(
                attempt,
                attempts,
                ?delay,
                "{what} failed; retrying: {error}"
            ),
            _ => tracing::debug!(
                attempt,
                attempts,
                ?delay,
                "{what} failed; retrying: {error}"
            ),
        }
        tokio::time::sleep(delay).await;
        attempt += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use tokio::time::Instant;

    #[derive(Debug, PartialEq)]
    struct Failed(u32);

    impl fmt::Display for Failed {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "attempt {} failed", self.0)
        }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// An operation that always fails transiently gets exactly `attempts` tries, then its last error.
    #[tokio::test(start_paused = true)]
    async fn a_failing_operation_gets_exactly_its_bound() {
        for bound in [0, 1, 2, 5, 8] {
            let calls = Cell::new(0);
            let got: Result<(), Failed> = run(Policy::new(bound, ms(100)), "op", |n| {
                calls.set(calls.get() + 1);
                async move { Outcome::Transient(Failed(n)) }
            })
            .await;
            let expected = bound.max(1);
            assert_eq!(calls.get(), expected, "bound {bound}");
            assert_eq!(got, Err(Failed(expected)), "the last error is returned");
        }
    }

    /// A success ends the retries at once.
    #[tokio::test(start_paused = true)]
    async fn a_success_stops_the_retries() {
        let calls = Cell::new(0);
        let got = run(Policy::new(5, ms(100)), "op", |n| {
            calls.set(calls.get() + 1);
            async move {
                if n < 3 {
                    Outcome::Transient(Failed(n))
                } else {
                    Outcome::Done(n)
                }
            }
        })
        .await;
        assert_eq!(got, Ok(3));
        assert_eq!(calls.get(), 3);
    }

    /// A final failure is not tried again, and costs no wait.
    #[tokio::test(start_paused = true)]
    async fn a_final_failure_is_not_retried() {
        let calls = Cell::new(0);
        let start = Instant::now();
        let got: Result<(), Failed> = run(Policy::new(5, ms(100)), "op", |n| {
            calls.set(calls.get() + 1);
            async move { Outcome::Final(Failed(n)) }
        })
        .await;
        assert_eq!(got, Err(Failed(1)));
        assert_eq!(calls.get(), 1);
        assert_eq!(start.elapsed(), Duration::ZERO);
    }

    /// The waits between attempts, measured on the paused clock: each within `[ceiling/2, ceiling]`,
    /// the ceilings doubling from the base and stopping at the policy's longest delay.
    #[tokio::test(start_paused = true)]
    async fn delays_grow_from_the_base_and_stay_under_the_longest() {
        let policy = Policy::new(9, ms(100)).max_delay(ms(2_000));
        let starts = std::cell::RefCell::new(Vec::new());
        let _: Result<(), Failed> = run(policy, "op", |n| {
            starts.borrow_mut().push(Instant::now());
            async move { Outcome::Transient(Failed(n)) }
        })
        .await;
        let starts = starts.into_inner();
        assert_eq!(starts.len(), 9);
        let waits: Vec<Duration> = starts.windows(2).map(|w| w[1] - w[0]).collect();
        let ceilings = [100, 200, 400, 800, 1_600, 2_000, 2_000, 2_000];
        for (i, (wait, ceiling)) in waits.iter().zip(ceilings).enumerate() {
            assert!(
                *wait >= ms(ceiling / 2) && *wait <= ms(ceiling),
                "wait {} was {wait:?}, expected within [{}, {ceiling}] ms",
                i + 1,
                ceiling / 2
            );
        }
        // Growth: the late waits (ceiling 2 s) are longer than the first ones (ceiling 0.1 s, 0.2 s).
        assert!(waits[5..].iter().all(|w| *w > waits[0] && *w > waits[1]));
        // Without jitter, exactly the ceilings.
        let exact = policy.without_jitter();
        assert_eq!(
            (1..=8).map(|n| exact.delay(n)).collect::<Vec<_>>(),
            ceilings.map(ms).to_vec()
        );
        // A huge attempt number neither overflows nor passes the default cap.
        assert_eq!(Policy::new(1, ms(500)).ceiling(u32::MAX), MAX_DELAY);
    }

    /// A server-given retry-after is honoured when longer than the backoff, and capped by the policy.
    #[tokio::test(start_paused = true)]
    async fn a_retry_after_is_honoured_up_to_the_longest_delay() {
        let policy = Policy::new(3, ms(10)).max_delay(ms(5_000));
        let start = Instant::now();
        let got: Result<(), Failed> = run(policy, "op", |n| async move {
            Outcome::TransientAfter(Failed(n), Duration::from_secs(if n == 1 { 2 } else { 60 }))
        })
        .await;
        assert_eq!(got, Err(Failed(3)));
        // 2 s after the first attempt, then 60 s asked for but 5 s granted.
        assert_eq!(start.elapsed(), ms(7_000));
    }

    /// Retries never nest: the inner operation makes one attempt per outer attempt, and the outer one
    /// retries the whole, so an always-failing inner call costs the outer bound, not the product.
    #[tokio::test(start_paused = true)]
    async fn an_inner_retry_makes_one_attempt_and_the_outer_retries_the_whole() {
        let (outer_calls, inner_calls) = (Cell::new(0), Cell::new(0));
        let inner = || {
            run(Policy::new(5, ms(100)), "inner", |n| {
                inner_calls.set(inner_calls.get() + 1);
                async move { Outcome::<(), _>::Transient(Failed(n)) }
            })
        };
        assert!(!nested());
        let got: Result<(), Failed> = run(Policy::new(3, ms(100)), "outer", |_| {
            outer_calls.set(outer_calls.get() + 1);
            async {
                assert!(nested());
                match inner().await {
                    Ok(()) => Outcome::Done(()),
                    Err(e) => Outcome::Transient(e),
                }
            }
        })
        .await;
        assert_eq!(outer_calls.get(), 3);
        assert_eq!(inner_calls.get(), 3, "one inner attempt per outer attempt");
        // The inner error of the last outer attempt (each inner run saw only its attempt 1).
        assert_eq!(got, Err(Failed(1)));
        assert!(!nested(), "the flag ends with the operation");
        // Outside any retried operation the same inner call retries to its own bound.
        inner_calls.set(0);
        assert!(inner().await.is_err());
        assert_eq!(inner_calls.get(), 5);
    }

    /// The flag belongs to the operation's future, not to whatever else the task polls: a sibling
    /// future joined with a retried one keeps its own retries.
    #[tokio::test(start_paused = true)]
    async fn a_sibling_future_keeps_its_own_retries() {
        let sibling_calls = Cell::new(0);
        let outer = run(Policy::new(2, ms(100)), "outer", |n| async move {
            tokio::time::sleep(ms(10)).await;
            Outcome::<(), _>::Transient(Failed(n))
        });
        let sibling = run(Policy::new(4, ms(1)), "sibling", |n| {
            sibling_calls.set(sibling_calls.get() + 1);
            async move { Outcome::<(), _>::Transient(Failed(n)) }
        });
        let (a, b) = tokio::join!(outer, sibling);
        assert!(a.is_err() && b.is_err());
        assert_eq!(sibling_calls.get(), 4);
    }

    /// The jitter bound the binary has always had (it was `aws::jittered`): from a 500 ms base, every
    /// delay within `[ceiling/2, ceiling]`, the ceiling doubling up to 30 s.
    #[test]
    fn jitter_stays_in_bounds() {
        let policy = Policy::new(15, ms(500));
        for attempt in 1..15 {
            let d = policy.delay(attempt);
            assert!(d <= Duration::from_secs(30));
            let full = ms(500)
                .saturating_mul(1 << (attempt - 1).min(10))
                .min(Duration::from_secs(30));
            assert!(d >= full / 2, "{d:?} < {:?}", full / 2);
        }
    }

    #[test]
    fn classify_sorts_errors_by_the_callers_rule() {
        let transient = |e: &u32| *e >= 500;
        assert!(matches!(
            Outcome::classify(Ok::<u8, u32>(1), transient),
            Outcome::Done(1)
        ));
        assert!(matches!(
            Outcome::classify(Err::<u8, u32>(503), transient),
            Outcome::Transient(503)
        ));
        assert!(matches!(
            Outcome::classify(Err::<u8, u32>(404), transient),
            Outcome::Final(404)
        ));
    }
}
