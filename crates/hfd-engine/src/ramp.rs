//! How many connections a large file runs: a few at first, doubled while
//! each step pays, never above `-x` (decision 0050).
//!
//! [`ConnectionRamp`] is the pure rule (also used by `hfd-rs bench`);
//! [`RampGauge`] is what a file's workers report to it; [`drive`] is the
//! task that measures a file's rate over short windows and asks for more
//! connections or retires the last step's.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// A step pays when each connection it added brings at least this fraction
/// of what a connection brought before it. On a mirror that throttles each
/// connection a step brings about 1.0; on a link capped in total about 0.
const PAY_FRACTION: f64 = 0.5;

/// Longest wait for a step's new connections to receive their first bytes
/// before its window is measured anyway (slots all taken, a slow mirror).
const FIRST_BYTES_WAIT: Duration = Duration::from_secs(5);

/// How often the driver looks whether the new connections stream yet.
const FIRST_BYTES_POLL: Duration = Duration::from_millis(5);

/// How often a window looks whether its step already paid.
const EARLY_CHECK: Duration = Duration::from_millis(10);

/// Longest window, however long the first bytes took.
const MAX_WINDOW: Duration = Duration::from_secs(1);

/// A step is taken back only when it did not pay over this many windows:
/// a step pays early as soon as its rate shows it, but at 20 ms one window
/// is too short to say it did not (connections slow to start on a busy
/// machine settled a file at 4 of 16 on a per-connection throttle until
/// the other file ended, doubling the run's time; decision 0060).
const WINDOWS_TO_TAKE_BACK: u32 = 4;

/// What the ramp asks for after a window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RampStep {
    /// Open this many more connections, then measure again.
    Add(usize),
    /// Measure again at the same count (nothing moved in the window).
    Wait,
    /// The last step did not pay: go back to `to` connections; settled.
    Retire {
        /// The connection count that paid.
        to: usize,
    },
    /// Settled at [`ConnectionRamp::current`].
    Settled,
}

/// The rule: start with `start` connections; after each window, if the
/// last step paid (or this is the first window), double up to `max`.
#[derive(Clone, Debug)]
pub struct ConnectionRamp {
    current: usize,
    max: usize,
    /// The rate before the step being judged, and how many it added.
    before: Option<f64>,
    added: usize,
    settled: bool,
}

impl ConnectionRamp {
    /// A ramp from `start` (at least 1) to at most `max` connections.
    pub fn new(start: usize, max: usize) -> Self {
        let max = max.max(1);
        let current = start.clamp(1, max);
        Self {
            current,
            max,
            before: None,
            added: 0,
            settled: current >= max,
        }
    }

    /// Connections the ramp runs now.
    pub fn current(&self) -> usize {
        self.current
    }

    /// Whether it runs its maximum.
    pub fn at_most(&self) -> bool {
        self.current >= self.max
    }

    /// Whether the count is final.
    pub fn is_settled(&self) -> bool {
        self.settled
    }

    /// Judges the window just measured: `rate` (bytes per second) at
    /// [`Self::current`] connections.
    pub fn judge(&mut self, rate: f64) -> RampStep {
        if self.settled {
            return RampStep::Settled;
        }
        if rate <= 0.0 || !rate.is_finite() {
            // Paused (rate limit) or not streaming yet: nothing to judge.
            return RampStep::Wait;
        }
        if self.pending_step() && !self.pays(rate) {
            let had = self.current - self.added;
            self.current = had;
            self.settled = true;
            return RampStep::Retire { to: had };
        }
        self.before = Some(rate);
        if self.current >= self.max {
            self.settled = true;
            self.added = 0;
            return RampStep::Settled;
        }
        self.added = self.current.min(self.max - self.current);
        self.current += self.added;
        RampStep::Add(self.added)
    }

    /// Whether a step is waiting for its judgement.
    pub fn pending_step(&self) -> bool {
        self.before.is_some() && self.added > 0 && !self.settled
    }

    /// Whether `rate`, measured over part of a window, already shows the
    /// pending step paying (false without one: a first window runs whole).
    pub fn pays_early(&self, rate: f64) -> bool {
        self.pending_step() && self.pays(rate)
    }

    /// Whether `rate` after the pending step pays for it (true without one).
    pub fn pays(&self, rate: f64) -> bool {
        let Some(before) = self.before.filter(|_| self.pending_step()) else {
            return true;
        };
        let had = self.current - self.added;
        let per_connection = before / had as f64;
        rate - before >= PAY_FRACTION * per_connection * self.added as f64
    }

    /// `refused` of the last step's connections were refused by the server
    /// (a connection cap): settle at the connections that were accepted.
    pub fn refused(&mut self, refused: usize) {
        self.current = self.current.saturating_sub(refused).max(1);
        self.settled = true;
    }

    /// Ramps again from the current count (capacity was freed: another
    /// file of the run ended). No effect on a ramp at its maximum.
    pub fn resume(&mut self) {
        if self.current < self.max {
            self.settled = false;
            self.before = None;
            self.added = 0;
        }
    }

    /// Stops ramping at the current count (no work left to share).
    pub fn settle(&mut self) {
        self.settled = true;
    }
}

/// What a file's workers (or `hfd-rs bench`'s) tell its ramp.
#[derive(Debug)]
pub struct RampGauge {
    /// Bytes claimed by the file's requests.
    received: AtomicU64,
    /// Workers that received their first bytes.
    streaming: AtomicUsize,
    /// Connections refused before their first byte, not yet judged.
    refused: AtomicUsize,
    /// Connections refused before their first byte, ever.
    refused_total: AtomicUsize,
    /// Connections running (started and not yet left).
    live: AtomicUsize,
    /// Connections started, ever.
    spawned: AtomicUsize,
    /// Connections beyond this many stop at their next request.
    target: AtomicUsize,
}

impl Default for RampGauge {
    fn default() -> Self {
        Self {
            received: AtomicU64::new(0),
            streaming: AtomicUsize::new(0),
            refused: AtomicUsize::new(0),
            refused_total: AtomicUsize::new(0),
            live: AtomicUsize::new(0),
            spawned: AtomicUsize::new(0),
            target: AtomicUsize::new(usize::MAX),
        }
    }
}

impl RampGauge {
    /// `bytes` more arrived.
    pub fn received(&self, bytes: u64) {
        self.received.fetch_add(bytes, Ordering::Relaxed);
    }

    /// A connection received its first bytes.
    pub fn first_bytes(&self) {
        self.streaming.fetch_add(1, Ordering::Relaxed);
    }

    /// A connection was refused before its first byte.
    pub fn refused(&self) {
        self.refused.fetch_add(1, Ordering::Relaxed);
        self.refused_total.fetch_add(1, Ordering::Relaxed);
    }

    /// A connection starts.
    pub fn joined(&self) {
        self.live.fetch_add(1, Ordering::Relaxed);
        self.spawned.fetch_add(1, Ordering::Relaxed);
    }

    /// A connection ends (not by [`Self::try_retire`]).
    pub fn left(&self) {
        self.live.fetch_sub(1, Ordering::Relaxed);
    }

    /// Whether the calling connection is beyond the count the ramp settled
    /// on: if so it is counted out and must stop.
    pub fn try_retire(&self) -> bool {
        let target = self.target.load(Ordering::Relaxed);
        self.live
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n > target).then(|| n - 1)
            })
            .is_ok()
    }

    /// Waits until `workers` streamed or were refused (at most
    /// [`FIRST_BYTES_WAIT`]): a step's window starts once its connections
    /// are past their handshakes and first round trips. Returns how long
    /// that took.
    async fn until_streaming(&self, workers: usize, cancel: &CancellationToken) -> Duration {
        let since = Instant::now();
        let deadline = since + FIRST_BYTES_WAIT;
        while self.streaming.load(Ordering::Relaxed) + self.refused_total.load(Ordering::Relaxed)
            < workers
            && Instant::now() < deadline
        {
            tokio::select! {
                () = cancel.cancelled() => break,
                () = tokio::time::sleep(FIRST_BYTES_POLL) => {}
            }
        }
        since.elapsed()
    }
}

/// Runs `ramp` for one file (or a bench): after each `window` of streaming, asks
/// `spawn` for more workers or retires the last step's, until it settles
/// (or `stop`: the file's connections ended). `has_work` says whether the
/// file still has unassigned pieces (a step in the tail only splits lanes).
pub async fn drive(
    ramp: &mut ConnectionRamp,
    gauge: &RampGauge,
    window: Duration,
    has_work: impl Fn() -> bool,
    spawn: &mpsc::UnboundedSender<usize>,
    stop: &CancellationToken,
) {
    gauge.target.store(usize::MAX, Ordering::Relaxed);
    // Every connection started so far (the first ones, or all of an
    // earlier round's) must stream before the first window.
    let mut started = gauge.spawned.load(Ordering::Relaxed);
    let mut waited = gauge.until_streaming(started, stop).await;
    while !ramp.is_settled() && !stop.is_cancelled() {
        // Long enough for a few round trips (the first bytes took about
        // two), or the rate of a far link is judged on its slow start. A
        // first window only measures the rate before the first step: half
        // as long (on a far link the first connections ran alone for twice
        // their own start, 0.4 s 50 ms away).
        let rounds = if ramp.pending_step() { 2 } else { 1 };
        let window = (rounds * waited).clamp(window, MAX_WINDOW);
        let (from, at) = (gauge.received.load(Ordering::Relaxed), Instant::now());
        let rate = || {
            let secs = at.elapsed().as_secs_f64();
            (gauge.received.load(Ordering::Relaxed) - from) as f64 / secs
        };
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                () = tokio::time::sleep(EARLY_CHECK) => {}
            }
            let elapsed = at.elapsed();
            // A step that already paid over half its window goes on at
            // once: on a mirror that throttles each connection, the
            // ramp's cost is its windows at fewer connections. One that
            // did not is measured longer before it is taken back.
            if (elapsed >= window / 2 && ramp.pays_early(rate()))
                || (elapsed >= window
                    && (!ramp.pending_step() || elapsed >= WINDOWS_TO_TAKE_BACK * window))
            {
                break;
            }
        }
        if stop.is_cancelled() {
            break;
        }
        let refused = gauge.refused.swap(0, Ordering::Relaxed);
        if refused > 0 {
            ramp.refused(refused);
            gauge.target.store(ramp.current(), Ordering::Relaxed);
            break;
        }
        if !has_work() {
            ramp.settle();
            break;
        }
        let rate = rate();
        match ramp.judge(rate) {
            RampStep::Add(k) => {
                tracing::debug!(connections = ramp.current(), rate, "ramp: step");
                if spawn.send(k).is_err() {
                    break;
                }
                started += k;
                waited = gauge.until_streaming(started, stop).await;
            }
            RampStep::Retire { to } => {
                tracing::debug!(connections = to, rate, "ramp: the step did not pay");
                gauge.target.store(to, Ordering::Relaxed);
            }
            RampStep::Wait | RampStep::Settled => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{ConnectionRamp, RampGauge, RampStep, drive};
    use std::sync::Arc;
    use std::time::Duration;
    use tokio::sync::mpsc;
    use tokio::time::Instant;
    use tokio_util::sync::CancellationToken;

    /// A per-connection throttle (5 bytes per connection per µs) whose new
    /// connections stream their first bytes at once but then nothing for
    /// `slow_start`: the ramp's final count.
    async fn ramp_on_throttle_with_slow_start(slow_start: Duration) -> usize {
        let gauge = Arc::new(RampGauge::default());
        for _ in 0..4 {
            gauge.joined();
            gauge.first_bytes();
        }
        let (more, mut asked) = mpsc::unbounded_channel::<usize>();
        let link = tokio::spawn({
            let gauge = Arc::clone(&gauge);
            async move {
                let mut since = vec![Instant::now(); 4];
                loop {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    while let Ok(k) = asked.try_recv() {
                        for _ in 0..k {
                            gauge.joined();
                            gauge.first_bytes();
                            since.push(Instant::now() + slow_start);
                        }
                    }
                    let now = Instant::now();
                    let streaming = since.iter().filter(|s| **s <= now).count() as u64;
                    gauge.received(streaming * 5_000);
                }
            }
        });
        let mut ramp = ConnectionRamp::new(4, 16);
        let stop = CancellationToken::new();
        drive(
            &mut ramp,
            &gauge,
            Duration::from_millis(20),
            || true,
            &more,
            &stop,
        )
        .await;
        link.abort();
        ramp.current()
    }

    #[tokio::test(start_paused = true)]
    async fn a_step_slow_to_start_is_not_taken_back_after_one_short_window() {
        assert_eq!(ramp_on_throttle_with_slow_start(Duration::ZERO).await, 16);
        // 30 ms without bytes from the step's connections: nothing gained
        // over the first 20 ms window, their share after 60 ms.
        assert_eq!(
            ramp_on_throttle_with_slow_start(Duration::from_millis(30)).await,
            16
        );
    }

    #[test]
    fn doubles_while_each_connection_adds_its_share() {
        let mut ramp = ConnectionRamp::new(2, 16);
        assert_eq!(ramp.judge(10.0), RampStep::Add(2));
        assert_eq!(ramp.judge(20.0), RampStep::Add(4));
        assert_eq!(ramp.judge(39.0), RampStep::Add(8));
        assert_eq!(ramp.judge(80.0), RampStep::Settled);
        assert_eq!(ramp.current(), 16);
    }

    #[test]
    fn a_step_that_does_not_pay_is_taken_back() {
        // A link capped at 50: two connections fill it, four add nothing.
        let mut ramp = ConnectionRamp::new(2, 16);
        assert_eq!(ramp.judge(50.0), RampStep::Add(2));
        assert_eq!(ramp.judge(52.0), RampStep::Retire { to: 2 });
        assert!(ramp.is_settled());
        assert_eq!(ramp.judge(100.0), RampStep::Settled);
        // Half a connection's share per added connection is the threshold.
        let mut ramp = ConnectionRamp::new(4, 16);
        assert_eq!(ramp.judge(40.0), RampStep::Add(4));
        assert_eq!(ramp.judge(59.0), RampStep::Retire { to: 4 });
        let mut ramp = ConnectionRamp::new(4, 16);
        assert_eq!(ramp.judge(40.0), RampStep::Add(4));
        assert_eq!(ramp.judge(61.0), RampStep::Add(8));
    }

    #[test]
    fn never_above_the_maximum_and_waits_out_empty_windows() {
        let mut ramp = ConnectionRamp::new(4, 6);
        assert_eq!(ramp.judge(0.0), RampStep::Wait);
        assert_eq!(ramp.judge(40.0), RampStep::Add(2));
        assert_eq!(ramp.judge(60.0), RampStep::Settled);
        assert_eq!(ramp.current(), 6);
        let ramp = ConnectionRamp::new(8, 4);
        assert!(ramp.is_settled());
        assert_eq!(ramp.current(), 4);
    }

    #[test]
    fn refused_connections_settle_the_count() {
        let mut ramp = ConnectionRamp::new(4, 16);
        assert_eq!(ramp.judge(40.0), RampStep::Add(4));
        ramp.refused(3);
        assert!(ramp.is_settled());
        assert_eq!(ramp.current(), 5);
    }
}
