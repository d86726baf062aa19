//! The uploads' concurrency, cut when S3 throttles and grown back as requests succeed (AIMD): S3's
//! `SlowDown` (a 503) halves the number of uploads in flight, down to [`FLOOR`]; every `limit`
//! successful uploads add one back, up to the starting maximum. The SDK's standard retry mode retries
//! the throttled request itself; this only keeps the sync from going on at a rate S3 refuses.
//!
//! A burst of throttling replies to requests that were all in flight before a cut counts as one signal
//! (each permit remembers the generation it was taken in; only a reply in the current generation cuts),
//! so 16 replies to 16 concurrent requests halve once, not down to the floor.
//!
//! The signal comes from an interceptor on the uploads' S3 client ([`Limiter::client`]), which sees
//! every attempt, retries included; the generation travels to it in a task-local set around each upload
//! ([`Limiter::run`]), so the S3 calls themselves need no change.

use std::future::Future;
use std::sync::{Arc, Mutex};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::FinalizerInterceptorContextRef;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use tokio::sync::Notify;

/// The fewest uploads in flight, however hard S3 throttles.
pub(super) const FLOOR: usize = 2;

tokio::task_local! {
    /// The generation of the permit the current upload holds.
    static GENERATION: u64;
}

#[derive(Debug)]
struct Inner {
    limit: usize,
    in_flight: usize,
    generation: u64,
    successes: usize,
    cuts: usize,
}

/// A concurrency limit that halves on throttling and recovers additively.
#[derive(Debug)]
pub(super) struct Limiter {
    inner: Mutex<Inner>,
    changed: Notify,
    max: usize,
    floor: usize,
}

impl Limiter {
    /// Start at `max` in flight; never below `floor` (at least 1).
    pub(super) fn new(max: usize, floor: usize) -> Arc<Limiter> {
        let floor = floor.clamp(1, max.max(1));
        Arc::new(Limiter {
            inner: Mutex::new(Inner {
                limit: max.max(floor),
                in_flight: 0,
                generation: 0,
                successes: 0,
                cuts: 0,
            }),
            changed: Notify::new(),
            max: max.max(floor),
            floor,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The current limit.
    pub(super) fn limit(&self) -> usize {
        self.lock().limit
    }

    /// How many times throttling cut the limit.
    pub(super) fn cuts(&self) -> usize {
        self.lock().cuts
    }

    /// Wait for a free slot; the permit frees it when dropped.
    async fn acquire(&self) -> Permit<'_> {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut i = self.lock();
                if i.in_flight < i.limit {
                    i.in_flight += 1;
                    return Permit {
                        limiter: self,
                        generation: i.generation,
                    };
                }
            }
            notified.await;
        }
    }

    /// S3 throttled a request taken in `generation`: halve the limit (not below the floor), once per
    /// generation.
    pub(super) fn throttled(&self, generation: u64) {
        let mut i = self.lock();
        if generation != i.generation {
            return;
        }
        let cut = (i.limit / 2).max(self.floor);
        i.generation += 1;
        i.successes = 0;
        if cut < i.limit {
            tracing::info!(
                from = i.limit,
                to = cut,
                "S3 is throttling the uploads: fewer in flight"
            );
            i.limit = cut;
            i.cuts += 1;
        }
    }

    /// An upload succeeded: after `limit` successes at this limit, one more in flight.
    pub(super) fn succeeded(&self) {
        let grown = {
            let mut i = self.lock();
            i.successes += 1;
            if i.successes >= i.limit && i.limit < self.max {
                i.limit += 1;
                i.successes = 0;
                true
            } else {
                false
            }
        };
        if grown {
            self.changed.notify_waiters();
        }
    }

    /// Run `upload` once a slot is free, with its generation visible to the client's interceptor; a
    /// success counts towards growing the limit.
    pub(super) async fn run<T, E>(
        &self,
        upload: impl Future<Output = Result<T, E>>,
    ) -> Result<T, E> {
        let permit = self.acquire().await;
        let out = GENERATION.scope(permit.generation, upload).await;
        drop(permit);
        if out.is_ok() {
            self.succeeded();
        }
        out
    }

    /// `s3` with an interceptor that reports every throttled attempt (HTTP 503: `SlowDown`) to this
    /// limiter.
    pub(super) fn client(self: &Arc<Self>, s3: &aws_sdk_s3::Client) -> aws_sdk_s3::Client {
        aws_sdk_s3::Client::from_conf(
            s3.config()
                .to_builder()
                .interceptor(Signal(self.clone()))
                .build(),
        )
    }
}

/// A slot in flight.
struct Permit<'a> {
    limiter: &'a Limiter,
    generation: u64,
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        {
            let mut i = self.limiter.lock();
            i.in_flight = i.in_flight.saturating_sub(1);
        }
        self.limiter.changed.notify_waiters();
    }
}

/// The interceptor behind [`Limiter::client`].
#[derive(Debug)]
struct Signal(Arc<Limiter>);

impl Intercept for Signal {
    fn name(&self) -> &'static str {
        "UploadThrottleSignal"
    }

    fn read_after_attempt(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let throttled = context
            .response()
            .is_some_and(|r| r.status().as_u16() == 503);
        if throttled {
            if let Ok(generation) = GENERATION.try_with(|g| *g) {
                self.0.throttled(generation);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[test]
    fn throttling_halves_down_to_the_floor_once_per_generation() {
        let l = Limiter::new(16, FLOOR);
        assert_eq!(l.limit(), 16);
        // Sixteen replies to requests of one generation: one cut.
        for _ in 0..16 {
            l.throttled(0);
        }
        assert_eq!(l.limit(), 8);
        l.throttled(1);
        assert_eq!(l.limit(), 4);
        l.throttled(2);
        assert_eq!(l.limit(), 2);
        l.throttled(3);
        l.throttled(4);
        assert_eq!(l.limit(), FLOOR, "never below the floor");
        assert_eq!(l.cuts(), 3);
    }

    #[test]
    fn successes_grow_the_limit_back_one_at_a_time() {
        let l = Limiter::new(8, FLOOR);
        l.throttled(0);
        l.throttled(1);
        assert_eq!(l.limit(), 2);
        // Two successes at 2 -> 3; three at 3 -> 4; ...
        l.succeeded();
        assert_eq!(l.limit(), 2);
        l.succeeded();
        assert_eq!(l.limit(), 3);
        for _ in 0..3 {
            l.succeeded();
        }
        assert_eq!(l.limit(), 4);
        for _ in 0..100 {
            l.succeeded();
        }
        assert_eq!(l.limit(), 8, "never above the maximum");
        // A success resets nothing about generations: a late reply of an old one still does not cut.
        l.throttled(0);
        assert_eq!(l.limit(), 8);
    }

    /// Uploads through [`Limiter::run`] (paused clock): never more in flight than the limit, a
    /// throttled reply inside an upload cuts the limit for those still waiting, and every upload runs.
    #[tokio::test(start_paused = true)]
    async fn uploads_in_flight_follow_the_limit() {
        use futures::StreamExt;
        let l = Limiter::new(8, FLOOR);
        let in_flight = Arc::new(AtomicUsize::new(0));
        let over = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let low = Arc::new(AtomicUsize::new(usize::MAX));
        let done = futures::stream::iter(0..40)
            .map(|i| {
                let (l, in_flight, peak, over, low) = (
                    l.clone(),
                    in_flight.clone(),
                    peak.clone(),
                    over.clone(),
                    low.clone(),
                );
                async move {
                    l.clone()
                        .run(async move {
                            let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                            peak.fetch_max(now, Ordering::SeqCst);
                            low.fetch_min(l.limit(), Ordering::SeqCst);
                            // An upload starts only while fewer than the limit are in flight.
                            if now > l.limit() {
                                over.fetch_add(1, Ordering::SeqCst);
                            }
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            // The 5th upload is throttled, as the interceptor would report it.
                            if i == 4 {
                                l.throttled(GENERATION.with(|g| *g));
                            }
                            in_flight.fetch_sub(1, Ordering::SeqCst);
                            Ok::<_, ()>(i)
                        })
                        .await
                }
            })
            .buffer_unordered(16)
            .collect::<Vec<_>>()
            .await;
        assert_eq!(done.len(), 40);
        assert!(done.iter().all(Result::is_ok));
        assert_eq!(peak.load(Ordering::SeqCst), 8);
        assert_eq!(l.cuts(), 1);
        assert_eq!(over.load(Ordering::SeqCst), 0, "started above the limit");
        // Cut to 4, then grown by the successes of the uploads already in flight.
        let low = low.load(Ordering::SeqCst);
        assert!(
            (4..8).contains(&low),
            "later uploads ran under the cut limit: {low}"
        );
    }

    /// The interceptor on a real client: a loopback S3 that answers `SlowDown` (503) to the first
    /// attempts cuts the limit; the SDK's retry then succeeds.
    #[tokio::test]
    async fn a_slowdown_reply_cuts_the_limit_through_the_client() {
        use axum::{http::StatusCode, routing::put, Router};
        let hits = Arc::new(AtomicUsize::new(0));
        let h = hits.clone();
        let app = Router::new().route(
            "/{bucket}/{key}",
            put(move || {
                let h = h.clone();
                async move {
                    if h.fetch_add(1, Ordering::SeqCst) == 0 {
                        (
                            StatusCode::SERVICE_UNAVAILABLE,
                            "<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>",
                        )
                    } else {
                        (StatusCode::OK, "")
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let conf = aws_sdk_s3::Config::builder()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .region(aws_sdk_s3::config::Region::new("us-east-1"))
            .endpoint_url(format!("http://{addr}"))
            .force_path_style(true)
            .http_client(crate::aws::http_client())
            .credentials_provider(aws_sdk_s3::config::Credentials::new(
                "AKIDTEST", "secret", None, None, "test",
            ))
            .retry_config(
                aws_sdk_s3::config::retry::RetryConfig::standard()
                    .with_max_attempts(3)
                    .with_initial_backoff(Duration::from_millis(1)),
            )
            .build();
        let base = aws_sdk_s3::Client::from_conf(conf);
        let l = Limiter::new(16, FLOOR);
        let s3 = l.client(&base);
        l.run(
            s3.put_object()
                .bucket("b")
                .key("k")
                .body(aws_sdk_s3::primitives::ByteStream::from_static(b"x"))
                .send(),
        )
        .await
        .unwrap();
        assert_eq!(
            hits.load(Ordering::SeqCst),
            2,
            "throttled once, retried once"
        );
        assert_eq!(l.limit(), 8);
        assert_eq!(l.cuts(), 1);
        // Outside `run` (no generation), a client reply cuts nothing.
        hits.store(0, Ordering::SeqCst);
        s3.put_object()
            .bucket("b")
            .key("k")
            .body(aws_sdk_s3::primitives::ByteStream::from_static(b"x"))
            .send()
            .await
            .unwrap();
        assert_eq!(l.limit(), 8);
    }
}
