//! Retries of metadata requests: [`MetadataRetry`] (budget, backoff, the
//! longest server-requested wait) and [`retrying`], the one place that
//! decides whether a failed Hub request is tried again and when. Which
//! errors are retryable at all is [`Error::is_retryable`].

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hfd_types::{Backoff, Jitter};
use tracing::warn;

use crate::error::{Error, Result};

/// Bounded retries of idempotent Hub requests (revision info, tree pages,
/// resolves) on transport errors, 408, 429 and 5xx.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct MetadataRetry {
    /// Retries after the first attempt. Default: 4.
    pub max_retries: u32,
    /// First backoff delay, doubled per retry (±25 % jitter). Default: 1 s.
    pub base_delay: Duration,
    /// Cap of the backoff delay. Default: 8 s.
    pub max_delay: Duration,
    /// Longest server-requested wait (`RateLimit`, `Retry-After`) honoured by
    /// sleeping; a longer one is returned as [`Error::RateLimited`] at once.
    /// Default: 60 s.
    pub max_wait: Duration,
    /// Retries made so far under this policy, by every client holding a
    /// clone of it: a progress display counts them with the transfers'.
    pub retries_made: Arc<AtomicU64>,
}

impl Default for MetadataRetry {
    fn default() -> Self {
        Self {
            max_retries: 4,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(8),
            max_wait: Duration::from_mins(1),
            retries_made: Arc::default(),
        }
    }
}

impl MetadataRetry {
    /// No retries: every failure is returned at once.
    pub fn none() -> Self {
        Self {
            max_retries: 0,
            ..Self::default()
        }
    }

    /// What to do after `error`, when `retries` retries were made already;
    /// `answered`: whether the client ever got an answer.
    fn next_step(&self, error: &Error, retries: u32, answered: bool) -> RetryStep {
        if !error.is_retryable() || retries >= self.max_retries {
            return RetryStep::GiveUp;
        }
        // An endpoint that refuses the very first connection is down or
        // mistyped, not busy: backing off (about 15 s) would only delay the
        // fail-over to the next `--endpoint`, or the error.
        if error.is_refused() && !answered {
            return RetryStep::GiveUp;
        }
        match error.retry_after() {
            Some(wait) if wait > self.max_wait => RetryStep::GiveUp,
            Some(wait) => RetryStep::Wait(wait),
            None => RetryStep::Wait(backoff(self, retries)),
        }
    }
}

/// What a client does after a failed request.
enum RetryStep {
    /// Return the error.
    GiveUp,
    /// Sleep this long, then try again.
    Wait(Duration),
}

/// Runs `op` until it succeeds, fails for good, or `policy`'s retries run
/// out. `answered` tells whether the client has had any answer yet.
pub(super) async fn retrying<T, F, Fut>(
    policy: &MetadataRetry,
    answered: impl Fn() -> bool,
    mut op: F,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let mut attempt = 0u32;
    loop {
        let error = match op().await {
            Ok(value) => return Ok(value),
            Err(e) => e,
        };
        let delay = match policy.next_step(&error, attempt, answered()) {
            RetryStep::GiveUp => return Err(error),
            RetryStep::Wait(delay) => delay,
        };
        attempt += 1;
        policy.retries_made.fetch_add(1, Ordering::Relaxed);
        warn!(
            "{error}; retry {attempt} of {} in {:.1} s",
            policy.max_retries,
            delay.as_secs_f64()
        );
        tokio::time::sleep(delay).await;
    }
}

/// Capped exponential backoff with ±25 % jitter (the shared formula).
fn backoff(policy: &MetadataRetry, attempt: u32) -> Duration {
    Backoff {
        base: policy.base_delay,
        cap: policy.max_delay,
        jitter: Jitter::Quarter,
    }
    .delay(attempt)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let p = MetadataRetry::default();
        let d0 = backoff(&p, 0);
        assert!(d0 >= Duration::from_millis(750) && d0 <= Duration::from_millis(1250));
        let d5 = backoff(&p, 5);
        assert!(d5 >= Duration::from_secs(6) && d5 <= Duration::from_secs(10));
        let d40 = backoff(&p, 40);
        assert!(d40 <= Duration::from_secs(10));
    }
}
