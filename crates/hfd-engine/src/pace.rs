//! How long a fresh request should be (decision 0080): each request costs
//! its connection a wait for the response head without bytes, a round trip
//! on a far link, so a request should stream many times that wait.
//!
//! [`FilePace`] is what a file's connections measured together (the link's
//! wait, the latest rate); [`Pace`] is one connection's own view, which
//! turns both into the [`Ask`] its worker hands the plan.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::plan::Ask;

/// A fresh request should stream at least this many times as long as a
/// request waits for its response head (1 MiB pieces at 5 MB/s, 50 ms
/// away, spent a fifth of their time waiting).
const STREAM_PER_WAIT: f64 = 16.0;

/// What a file's connections measured, shared by them: a connection that
/// joins later (a ramp step) asks for long ranges from its first request.
#[derive(Debug)]
pub(crate) struct FilePace {
    /// Shortest wait for a response head in nanoseconds (`u64::MAX`: none
    /// yet), from every request but a connection's first, which also
    /// opened the connection and, for a file's first requests, followed
    /// the redirect.
    wait_nanos: AtomicU64,
    /// Bytes per second (`f64` bits, 0: none yet) of the latest request
    /// that ended with its range.
    rate_bits: AtomicU64,
}

impl Default for FilePace {
    fn default() -> Self {
        Self {
            wait_nanos: AtomicU64::new(u64::MAX),
            rate_bits: AtomicU64::new(0),
        }
    }
}

impl FilePace {
    fn waited(&self, wait: Duration) {
        let nanos = u64::try_from(wait.as_nanos()).unwrap_or(u64::MAX - 1);
        self.wait_nanos.fetch_min(nanos, Ordering::Relaxed);
    }

    fn wait(&self) -> Option<Duration> {
        let nanos = self.wait_nanos.load(Ordering::Relaxed);
        (nanos != u64::MAX).then(|| Duration::from_nanos(nanos))
    }

    fn rate(&self) -> f64 {
        f64::from_bits(self.rate_bits.load(Ordering::Relaxed))
    }
}

/// One connection's view: whether its first response head came yet, and
/// the rate of its own last request that ended with its range (connections
/// of one file differ: a slow one asks for little).
#[derive(Debug, Default)]
pub(crate) struct Pace {
    heads: u32,
    rate: Option<f64>,
}

impl Pace {
    /// A response head came `wait` after the request was sent.
    pub(crate) fn head(&mut self, wait: Duration, file: &FilePace) {
        self.heads += 1;
        if self.heads > 1 {
            file.waited(wait);
        }
    }

    /// A request that ended with its range streamed at `rate`.
    pub(crate) fn ended(&mut self, rate: f64, file: &FilePace) {
        self.rate = Some(rate);
        file.rate_bits.store(rate.to_bits(), Ordering::Relaxed);
    }

    /// What the next request asks the plan for: fresh ranges that stream
    /// [`STREAM_PER_WAIT`] times the file's wait at this connection's rate
    /// (the file's latest before its own; one piece before either).
    pub(crate) fn ask(&self, file: &FilePace) -> Ask {
        let wait = file.wait().unwrap_or_default();
        let rate = self.rate.unwrap_or_else(|| file.rate());
        Ask {
            bytes: (wait.as_secs_f64() * rate * STREAM_PER_WAIT) as u64,
            wait,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{FilePace, Pace};
    use std::time::Duration;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_connections_first_wait_is_not_counted_and_the_file_shares_the_rest() {
        let file = FilePace::default();
        let mut a = Pace::default();
        // Its first head also opened the connection: nothing known yet.
        a.head(150 * MS, &file);
        a.ended(5e6, &file);
        assert_eq!(a.ask(&file).bytes, 0);
        a.head(50 * MS, &file);
        // 50 ms x 5 MB/s x 16.
        assert_eq!(a.ask(&file).bytes, 4_000_000);
        assert_eq!(a.ask(&file).wait, 50 * MS);
        // A connection that joins later asks at the file's wait and rate
        // before it measured its own rate; then at its own (a slow one).
        let mut b = Pace::default();
        assert_eq!(b.ask(&file).bytes, 4_000_000);
        b.head(400 * MS, &file);
        b.ended(5e5, &file);
        assert_eq!(b.ask(&file).bytes, 400_000);
        // The shortest wait wins.
        b.head(40 * MS, &file);
        assert_eq!(a.ask(&file).wait, 40 * MS);
    }
}
