//! Retries of range transfers: [`TransferRetry`] (the budget and backoff)
//! and [`TransferRetry::next_step`], the one place that decides whether a
//! failed request is retried and how long its connection waits first.
//! Whether an error is retryable at all is [`SourceError::is_retryable`].

use std::time::Duration;

use hfd_types::{Backoff, Jitter};

use crate::error::TransferError;
use crate::source::SourceError;

/// Retry budget and backoff of one connection's range requests.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TransferRetry {
    /// Retries after the first attempt, counting consecutive failures of a
    /// connection without writing a byte; one more failure fails the file.
    /// Default: 5 (as huggingface_hub).
    pub max_retries: u32,
    /// First backoff delay, doubled per retry ("equal jitter": uniform in
    /// `[d/2, d]`). Default: 1 s.
    pub base_delay: Duration,
    /// Cap of the backoff delay. Default: 8 s (as huggingface_hub).
    pub max_delay: Duration,
    /// Longest server-told wait (`Retry-After`, `RateLimit` `t=`) honoured
    /// in one go: a longer window (the Hub's are 300 s) is waited this long,
    /// then asked again, each time counting against `max_retries`.
    /// Default: 60 s.
    pub max_wait: Duration,
}

impl Default for TransferRetry {
    fn default() -> Self {
        Self {
            max_retries: 5,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(8),
            max_wait: Duration::from_mins(1),
        }
    }
}

/// Whether a wait applies to every connection of the pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WaitScope {
    /// Only the connection that failed waits.
    Connection,
    /// The server asked to slow down: every connection pauses.
    Pool,
}

/// What a connection does after a failed request.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum RetryStep {
    /// The budget is spent: the file fails.
    GiveUp,
    /// Wait `delay`, then request again.
    Wait { delay: Duration, scope: WaitScope },
}

impl TransferRetry {
    /// The shared backoff formula with this policy's delays.
    fn backoff_formula(&self) -> Backoff {
        Backoff {
            base: self.base_delay,
            cap: self.max_delay,
            jitter: Jitter::Equal,
        }
    }

    /// The wait before attempt `failures + 1`: `base_delay · 2^(failures-1)`
    /// capped at `max_delay`, then "equal jitter" (uniform in `[d/2, d]`).
    pub fn backoff(&self, failures: u32) -> Duration {
        self.backoff_formula().delay(failures.saturating_sub(1))
    }

    /// What to do after the `failures`-th consecutive failure, `cause`.
    pub(crate) fn next_step(&self, cause: &TransferError, failures: u32) -> RetryStep {
        if failures > self.max_retries {
            return RetryStep::GiveUp;
        }
        let connection = |delay| RetryStep::Wait {
            delay,
            scope: WaitScope::Connection,
        };
        match cause {
            // A fresh URL is fetched at once.
            TransferError::Source(SourceError::UrlExpired { .. }) => connection(Duration::ZERO),
            TransferError::Source(SourceError::Retryable {
                retry_after,
                slow_pool,
                ..
            }) => RetryStep::Wait {
                delay: retry_after
                    .map_or_else(|| self.backoff(failures), |told| told.min(self.max_wait)),
                scope: if *slow_pool {
                    WaitScope::Pool
                } else {
                    WaitScope::Connection
                },
            },
            // A fresh request right away: the range is re-queued for
            // whoever is free first.
            TransferError::Slow { .. } | TransferError::Stalled { .. } => {
                connection(Duration::ZERO)
            }
            _ => connection(self.backoff(failures)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::TransferRetry;
    use std::time::Duration;

    #[test]
    fn a_told_wait_is_honoured_up_to_max_wait_for_the_whole_pool() {
        use super::{RetryStep, WaitScope};
        use crate::error::TransferError;
        use crate::source::SourceError;
        let p = TransferRetry::default();
        let limited = |secs| {
            TransferError::Source(SourceError::rate_limited(
                "429",
                Some(Duration::from_secs(secs)),
            ))
        };
        assert_eq!(
            p.next_step(&limited(7), 1),
            RetryStep::Wait {
                delay: Duration::from_secs(7),
                scope: WaitScope::Pool
            }
        );
        // The Hub's 300 s window: waited in 60 s steps, each a retry.
        assert_eq!(
            p.next_step(&limited(300), 1),
            RetryStep::Wait {
                delay: Duration::from_mins(1),
                scope: WaitScope::Pool
            }
        );
        assert_eq!(
            p.next_step(&limited(300), p.max_retries + 1),
            RetryStep::GiveUp
        );
    }

    #[test]
    fn backoff_doubles_caps_and_jitters() {
        let p = TransferRetry::default();
        for _ in 0..50 {
            let first = p.backoff(1);
            assert!(first >= Duration::from_millis(500) && first <= Duration::from_secs(1));
            let third = p.backoff(3);
            assert!(third >= Duration::from_secs(2) && third <= Duration::from_secs(4));
            let late = p.backoff(30);
            assert!(late >= Duration::from_secs(4) && late <= Duration::from_secs(8));
        }
    }
}
