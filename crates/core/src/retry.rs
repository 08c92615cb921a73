//! Retrying with backoff, in one place for every caller — sync reads and writes, the
//! primary's look-ups, scripts' writes to the primary and alert delivery: the policy
//! ([`RetryPolicy`], from `sync.retry_*` or the alert settings), what may be retried
//! ([`Retryable`]) and the loop ([`with_retry`], or [`Retrier`] where the caller drives the
//! loop itself, as the engine's streaming reader does).

use serde::Deserialize;
use std::future::Future;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How retry delays grow.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Backoff {
    /// `retry_delay · 2^k`: 5, 10, 20 s.
    #[default]
    Exponential,
    /// `retry_delay · (k+1)`: 5, 10, 15 s.
    Linear,
}

/// How failed operations are retried.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Retries after the first try.
    pub times: u32,
    /// Base delay.
    pub delay: Duration,
    /// Growth of the delay.
    pub backoff: Backoff,
    /// Longest single wait.
    pub max_delay: Duration,
}

impl RetryPolicy {
    /// Delay before retry number `k` (0-based): `delay·2^k` or `delay·(k+1)`, at most
    /// `max_delay`.
    pub fn delay_for(&self, k: u32) -> Duration {
        let d = match self.backoff {
            Backoff::Exponential => self.delay.saturating_mul(1u32 << k.min(20)),
            Backoff::Linear => self.delay.saturating_mul(k.saturating_add(1)),
        };
        d.min(self.max_delay)
    }
}

/// An error that knows whether trying again can help.
pub trait Retryable: std::fmt::Display {
    /// Whether a later try can succeed.
    fn retryable(&self) -> bool;
    /// How long the other side asked us to wait, if it did.
    fn retry_after(&self) -> Option<Duration> {
        None
    }
}

/// Why an operation gave up.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", describe(self))]
pub struct GaveUp<E: Retryable> {
    /// The last error.
    pub error: E,
    /// Tries made (1 = no retry).
    pub attempts: u32,
    /// Whether it stopped because of shutdown rather than the error.
    pub cancelled: bool,
}

fn describe<E: Retryable>(g: &GaveUp<E>) -> String {
    if g.cancelled {
        format!("interrupted by shutdown while retrying: {}", g.error)
    } else if g.attempts > 1 {
        format!("{} (gave up after {} attempts)", g.error, g.attempts)
    } else if g.error.retryable() {
        g.error.to_string()
    } else {
        format!("{} (not retried: retrying cannot fix this)", g.error)
    }
}

/// The state of one retry loop: how many tries failed so far.
pub struct Retrier<'a> {
    policy: &'a RetryPolicy,
    cancel: &'a CancellationToken,
    what: &'a str,
    failures: u32,
}

impl<'a> Retrier<'a> {
    /// A loop for `what` (named in the log) under `policy`, cut short by `cancel`.
    pub fn new(policy: &'a RetryPolicy, cancel: &'a CancellationToken, what: &'a str) -> Self {
        Retrier {
            policy,
            cancel,
            what,
            failures: 0,
        }
    }

    /// Forgets earlier failures (after a success, for loops that go on).
    pub fn succeeded(&mut self) {
        self.failures = 0;
    }

    /// After a failure: gives up when retrying cannot help or the retries are spent;
    /// otherwise waits `delay_for(k)` (or the server's `Retry-After`, if longer) and returns
    /// so the caller tries again. Shutdown cuts the wait short and gives up.
    ///
    /// # Errors
    /// [`GaveUp`] with `error`.
    pub async fn failed<E: Retryable>(&mut self, error: E) -> Result<(), GaveUp<E>> {
        let attempts = self.failures + 1;
        if !error.retryable() || self.failures >= self.policy.times {
            return Err(GaveUp {
                error,
                attempts,
                cancelled: false,
            });
        }
        let mut delay = self.policy.delay_for(self.failures);
        if let Some(ra) = error.retry_after() {
            delay = delay.max(ra);
        }
        tracing::warn!(
            cause = %error,
            attempt = attempts,
            retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            "{} failed; retrying",
            self.what
        );
        self.failures += 1;
        tokio::select! {
            _ = tokio::time::sleep(delay) => Ok(()),
            _ = self.cancel.cancelled() => Err(GaveUp { error, attempts, cancelled: true }),
        }
    }
}

/// Runs `op` until it succeeds, fails with an error retrying cannot fix, or has been retried
/// `policy.times` times (see [`Retrier::failed`]).
///
/// # Errors
/// [`GaveUp`] with the last error.
pub async fn with_retry<T, E, F, Fut>(
    policy: &RetryPolicy,
    cancel: &CancellationToken,
    what: &str,
    mut op: F,
) -> Result<T, GaveUp<E>>
where
    E: Retryable,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut retrier = Retrier::new(policy, cancel, what);
    loop {
        match op().await {
            Ok(v) => return Ok(v),
            Err(e) => retrier.failed(e).await?,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[derive(Debug)]
    struct Flaky(bool);

    impl std::fmt::Display for Flaky {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(if self.0 { "busy" } else { "refused" })
        }
    }

    impl Retryable for Flaky {
        fn retryable(&self) -> bool {
            self.0
        }
    }

    fn policy(backoff: Backoff) -> RetryPolicy {
        RetryPolicy {
            times: 3,
            delay: Duration::from_secs(5),
            backoff,
            max_delay: Duration::MAX,
        }
    }

    #[test]
    fn retry_delays_follow_the_seed_and_stop_at_the_cap() {
        let d: Vec<u64> = (0..3)
            .map(|k| policy(Backoff::Exponential).delay_for(k).as_secs())
            .collect();
        assert_eq!(d, [5, 10, 20]);
        let d: Vec<u64> = (0..3)
            .map(|k| policy(Backoff::Linear).delay_for(k).as_secs())
            .collect();
        assert_eq!(d, [5, 10, 15]);
        let capped = RetryPolicy {
            max_delay: Duration::from_secs(8),
            ..policy(Backoff::Exponential)
        };
        assert_eq!(capped.delay_for(2), Duration::from_secs(8));
    }

    #[tokio::test(start_paused = true)]
    async fn waits_the_backoff_between_tries_and_gives_up_after_the_last() {
        let tries = AtomicU32::new(0);
        let start = tokio::time::Instant::now();
        let out: Result<(), _> = with_retry(
            &policy(Backoff::Exponential),
            &CancellationToken::new(),
            "test",
            || async {
                tries.fetch_add(1, Ordering::SeqCst);
                Err(Flaky(true))
            },
        )
        .await;
        let gave_up = out.expect_err("always fails");
        assert_eq!((gave_up.attempts, tries.load(Ordering::SeqCst)), (4, 4));
        assert_eq!(start.elapsed(), Duration::from_secs(5 + 10 + 20));
        assert_eq!(gave_up.to_string(), "busy (gave up after 4 attempts)");
    }

    #[tokio::test(start_paused = true)]
    async fn an_error_retrying_cannot_fix_fails_at_once() {
        let start = tokio::time::Instant::now();
        let out: Result<(), _> = with_retry(
            &policy(Backoff::Exponential),
            &CancellationToken::new(),
            "test",
            || async { Err(Flaky(false)) },
        )
        .await;
        let gave_up = out.expect_err("fails");
        assert_eq!(gave_up.attempts, 1);
        assert_eq!(start.elapsed(), Duration::ZERO);
        assert!(gave_up.to_string().contains("not retried"), "{gave_up}");
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_cuts_a_wait_short() {
        let cancel = CancellationToken::new();
        let c = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            c.cancel();
        });
        let start = tokio::time::Instant::now();
        let out: Result<(), _> = with_retry(&policy(Backoff::Linear), &cancel, "test", || async {
            Err(Flaky(true))
        })
        .await;
        assert!(out.expect_err("cancelled").cancelled);
        assert_eq!(start.elapsed(), Duration::from_secs(1));
    }
}
