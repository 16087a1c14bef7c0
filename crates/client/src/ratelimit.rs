//! Client-side rate limiting: client-go's `flowcontrol.NewTokenBucketRateLimiter(qps,
//! burst)` (what `rest.Config.QPS`/`Burst`, i.e. `--kube-api-qps`/`--kube-api-burst`,
//! configure) as a tower layer in front of kube-rs's HTTP stack.
//!
//! The bucket starts full (`burst` tokens) and refills at `qps` tokens per second; a
//! request takes one token, waiting for it when the bucket is empty. kube-rs drives its
//! stack through a single `tower::buffer::Buffer` worker, which calls `poll_ready`
//! before every `call`, so the wait lives in `poll_ready` and the token is taken in
//! `call`. Every request counts, watches included, as in client-go.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::{Instant, Sleep};
use tower::{Layer, Service};

/// The bucket's arithmetic, separate from the service for testing.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    qps: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket of `burst` tokens refilled at `qps` per second.
    pub fn new(qps: f64, burst: u32) -> TokenBucket {
        let burst = f64::from(burst.max(1));
        TokenBucket {
            qps,
            burst,
            tokens: burst,
            last: Instant::now(),
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.qps).min(self.burst);
        self.last = now;
    }

    /// How long until a token is available (zero: now).
    pub fn wait(&mut self, now: Instant) -> Duration {
        self.refill(now);
        if self.tokens >= 1.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((1.0 - self.tokens) / self.qps)
        }
    }

    /// Takes one token (after [`TokenBucket::wait`] returned zero).
    pub fn take(&mut self) {
        self.tokens -= 1.0;
    }
}

/// The tower layer: `ClientBuilder::try_from(config)?.with_layer(&TokenBucketLayer::new(qps, burst))`.
#[derive(Debug, Clone)]
pub struct TokenBucketLayer {
    qps: f64,
    burst: u32,
}

impl TokenBucketLayer {
    /// `qps` must be positive.
    pub fn new(qps: f64, burst: u32) -> TokenBucketLayer {
        TokenBucketLayer { qps, burst }
    }
}

impl<S> Layer<S> for TokenBucketLayer {
    type Service = TokenBucketService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TokenBucketService {
            inner,
            bucket: TokenBucket::new(self.qps, self.burst),
            sleep: None,
        }
    }
}

/// The service [`TokenBucketLayer`] wraps around kube-rs's stack.
pub struct TokenBucketService<S> {
    inner: S,
    bucket: TokenBucket,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl<S> std::fmt::Debug for TokenBucketService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenBucketService")
            .field("bucket", &self.bucket)
            .finish_non_exhaustive()
    }
}

impl<S, R> Service<R> for TokenBucketService<S>
where
    S: Service<R>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        loop {
            if let Some(sleep) = self.sleep.as_mut() {
                if sleep.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                self.sleep = None;
            }
            let wait = self.bucket.wait(Instant::now());
            if wait.is_zero() {
                break;
            }
            self.sleep = Some(Box::pin(tokio::time::sleep(wait)));
        }
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: R) -> Self::Future {
        self.bucket.take();
        self.inner.call(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;
    use tower::ServiceExt as _;

    #[test]
    fn bucket_starts_full_and_refills_at_qps() {
        let start = Instant::now();
        let mut b = TokenBucket::new(10.0, 3);
        for _ in 0..3 {
            assert_eq!(b.wait(start), Duration::ZERO);
            b.take();
        }
        let w = b.wait(start);
        assert!((w.as_secs_f64() - 0.1).abs() < 1e-6, "{w:?}");
        assert_eq!(b.wait(start + Duration::from_millis(100)), Duration::ZERO);
        // Never more than burst after a long idle time.
        let mut b = TokenBucket::new(10.0, 2);
        let _ = b.wait(start + Duration::from_secs(100));
        b.take();
        b.take();
        assert!(b.wait(start + Duration::from_secs(100)) > Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn service_waits_for_tokens() {
        let svc = tower::service_fn(|x: u32| async move { Ok::<_, Infallible>(x) });
        let mut svc = TokenBucketLayer::new(2.0, 2).layer(svc);
        let start = Instant::now();
        for i in 0..6u32 {
            let got = svc.ready().await.unwrap().call(i).await.unwrap();
            assert_eq!(got, i);
        }
        // 2 free, then 4 more at 2/s = 2s.
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(1990) && took < Duration::from_millis(2100),
            "{took:?}"
        );
    }
}
