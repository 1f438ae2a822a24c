//! Capped exponential backoff with jitter: the one delay formula behind the
//! hub client's metadata retries and the engine's transfer retries. Pure: it
//! computes delays and never sleeps.

use std::time::Duration;

/// Largest doubling exponent; far beyond any cap in use, it only keeps the
/// multiplication small.
const MAX_DOUBLINGS: u32 = 20;

/// How a delay is spread around its un-jittered value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Jitter {
    /// Uniform in `[d/2, d]` ("equal jitter"): never longer than the cap.
    Equal,
    /// Uniform in `[0.75·d, 1.25·d]`: may exceed the cap by a quarter.
    Quarter,
}

/// `base · 2^retry` capped at `cap`, then jittered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// Delay before the first retry (before jitter).
    pub base: Duration,
    /// Largest delay (before jitter).
    pub cap: Duration,
    /// How the delay is spread.
    pub jitter: Jitter,
}

impl Backoff {
    /// The un-jittered delay before retry number `retry` (0 for the first
    /// retry): `base · 2^retry`, at most `cap`.
    pub fn ceiling(&self, retry: u32) -> Duration {
        self.base
            .saturating_mul(1u32 << retry.min(MAX_DOUBLINGS))
            .min(self.cap)
    }

    /// The delay before retry number `retry` (0 for the first retry), with
    /// jitter from the thread-local random generator.
    pub fn delay(&self, retry: u32) -> Duration {
        self.delay_with(retry, &mut rand::rng())
    }

    /// [`Self::delay`] with jitter drawn from `rng`.
    pub fn delay_with(&self, retry: u32, rng: &mut impl rand::Rng) -> Duration {
        let full = self.ceiling(retry);
        match self.jitter {
            Jitter::Equal => {
                let half = full / 2;
                let micros = u64::try_from(half.as_micros()).unwrap_or(u64::MAX);
                half + Duration::from_micros(rng.random_range(0..=micros))
            }
            Jitter::Quarter => full.mul_f64(rng.random_range(0.75..=1.25)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Backoff, Jitter};
    use std::time::Duration;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn doubles_then_caps() {
        let b = Backoff {
            base: SECOND,
            cap: 8 * SECOND,
            jitter: Jitter::Equal,
        };
        let ceilings: Vec<u64> = (0..6).map(|r| b.ceiling(r).as_secs()).collect();
        assert_eq!(ceilings, [1, 2, 4, 8, 8, 8]);
        assert_eq!(b.ceiling(u32::MAX), 8 * SECOND);
    }

    #[test]
    fn jitter_stays_in_its_band() {
        for (jitter, low, high) in [
            (
                Jitter::Equal,
                Duration::from_secs(2),
                Duration::from_secs(4),
            ),
            (
                Jitter::Quarter,
                Duration::from_secs(3),
                Duration::from_secs(5),
            ),
        ] {
            let b = Backoff {
                base: SECOND,
                cap: 8 * SECOND,
                jitter,
            };
            for _ in 0..100 {
                let d = b.delay(2);
                assert!(d >= low && d <= high, "{jitter:?}: {d:?}");
            }
        }
    }
}
