//! Retrying node operations with the configured backoff.

use crate::config::RetryPolicy;
use crate::node::NodeError;
use std::future::Future;
use tokio_util::sync::CancellationToken;

/// Why an operation gave up.
#[derive(Debug, Clone)]
pub struct GaveUp {
    /// The last error.
    pub error: NodeError,
    /// Tries made (1 = no retry).
    pub attempts: u32,
    /// Whether it stopped because of shutdown rather than the error.
    pub cancelled: bool,
}

impl std::fmt::Display for GaveUp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.cancelled {
            write!(f, "interrupted by shutdown while retrying: {}", self.error)
        } else if self.attempts > 1 {
            write!(
                f,
                "{} (gave up after {} attempts)",
                self.error, self.attempts
            )
        } else if self.error.retryable() {
            write!(f, "{}", self.error)
        } else {
            write!(f, "{} (not retried: retrying cannot fix this)", self.error)
        }
    }
}

/// Runs `op` until it succeeds, fails with an error retrying cannot fix, or has been retried
/// `policy.times` times. Waits `policy.delay_for(k)` (or the server's `Retry-After`, if longer)
/// between tries; shutdown cuts a wait short.
///
/// # Errors
/// [`GaveUp`] with the last error.
pub async fn with_retry<T, F, Fut>(
    policy: &RetryPolicy,
    cancel: &CancellationToken,
    what: &str,
    mut op: F,
) -> Result<T, GaveUp>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, NodeError>>,
{
    let mut k = 0u32;
    loop {
        match op().await {
            Ok(v) => return Ok(v),
            Err(error) => {
                let attempts = k + 1;
                if !error.retryable() || k >= policy.times {
                    return Err(GaveUp {
                        error,
                        attempts,
                        cancelled: false,
                    });
                }
                let mut delay = policy.delay_for(k);
                if let Some(ra) = error.retry_after {
                    delay = delay.max(ra);
                }
                tracing::warn!(
                    node = %error.node,
                    cause = %error.message,
                    attempt = attempts,
                    retry_in_ms = delay.as_millis() as u64,
                    "{what} failed; retrying"
                );
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = cancel.cancelled() => {
                        return Err(GaveUp { error, attempts, cancelled: true });
                    }
                }
                k += 1;
            }
        }
    }
}
