//! `--limit-rate`: one token bucket shared by every body stream of a run.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::Mutex;
use tokio::time::Instant;

use hfd_engine::BodyStream;

use crate::layer::BodyLayer;

/// A token bucket: `rate` bytes per second, bursts up to `burst` bytes.
#[derive(Debug)]
pub(crate) struct Bucket {
    rate: f64,
    burst: f64,
    state: Mutex<(f64, Instant)>,
}

impl Bucket {
    pub(crate) fn new(bytes_per_sec: u64) -> Self {
        let rate = bytes_per_sec.max(1) as f64;
        // A quarter second of burst keeps the rate smooth at any speed.
        let burst = (rate / 4.0).max(16.0 * 1024.0);
        Self {
            rate,
            burst,
            state: Mutex::new((burst, Instant::now())),
        }
    }

    /// Waits until `bytes` may pass. Chunks larger than the burst pass once
    /// the bucket is full and leave it in debt, so the long-run rate holds.
    pub(crate) async fn take(&self, bytes: u64) {
        let wait = {
            let mut state = self.state.lock().await;
            let now = Instant::now();
            let (tokens, last) = *state;
            let tokens = (tokens + now.duration_since(last).as_secs_f64() * self.rate)
                .min(self.burst)
                - bytes as f64;
            *state = (tokens, now);
            if tokens >= 0.0 {
                Duration::ZERO
            } else {
                Duration::from_secs_f64(-tokens / self.rate)
            }
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

/// The `--limit-rate` layer: every body shares one [`Bucket`].
#[derive(Debug)]
pub(crate) struct RateLimit(Arc<Bucket>);

impl RateLimit {
    pub(crate) fn new(bytes_per_sec: u64) -> Self {
        Self(Arc::new(Bucket::new(bytes_per_sec)))
    }
}

impl BodyLayer for RateLimit {
    type Ticket = ();

    fn begin(&self) {}

    fn wrap(&self, (): (), stream: BodyStream) -> BodyStream {
        let bucket = Arc::clone(&self.0);
        stream
            .then(move |chunk| {
                let bucket = Arc::clone(&bucket);
                async move {
                    if let Ok(bytes) = &chunk {
                        bucket.take(bytes.len() as u64).await;
                    }
                    chunk
                }
            })
            .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::Bucket;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn bucket_holds_the_rate() {
        let bucket = Bucket::new(1_000_000);
        let start = tokio::time::Instant::now();
        // 4 MB at 1 MB/s with a 250 kB burst: at least 3.75 s of (paused) time.
        for _ in 0..64 {
            bucket.take(62_500).await;
        }
        let elapsed = start.elapsed();
        assert!(elapsed >= Duration::from_millis(3_700), "{elapsed:?}");
        assert!(elapsed <= Duration::from_millis(4_100), "{elapsed:?}");
    }
}
