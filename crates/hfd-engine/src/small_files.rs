//! How many small files (one request each) are in flight: a window that
//! starts from the measured round trip and grows while it pays, instead of
//! a fixed `-j`.
//!
//! A small file costs round trips, not bandwidth: with `W` files in flight
//! and `T` seconds per file (a round trip or two, plus the bytes), the run
//! completes `W / T` files per second (Little's law). At 50 ms and `-j 4`
//! that is under 80 files/s whatever the link. The window therefore starts
//! at as many files as hide the round trips behind this side's own work
//! ([`SmallFileWindow::start_for`]: `T` = [`ROUND_TRIPS_PER_FILE`] × the
//! round trip the plan's requests measured, divided by
//! [`LOCAL_COST_PER_FILE`]; `-j` at least, so on loopback it is `-j`), and
//! doubles after each epoch (as many completions as the window) whose
//! files/s beat the previous epoch's by [`GAIN`]; once a doubling stops
//! paying (the link, the server or the disk is the limit now: the measured
//! rate no longer follows the window) it stays where it is. Starting at
//! `-j` and doubling, a 50 ms run spent 0.8 s (six epochs) reaching the
//! window it needed (decision 0055).
//!
//! The window never exceeds its cap: [`EngineConfig::small_files_max`], and
//! the memory budget ([`EngineConfig::small_files_memory`]) divided by the
//! mean small file (each holds at most its size in write buffers). Over
//! HTTP/2 the server's `SETTINGS_MAX_CONCURRENT_STREAMS` bounds the streams
//! per connection on top: the h2 client queues a request until a stream is
//! free, so more files in flight wait there, never fail.

use std::time::{Duration, Instant};

use crate::config::EngineConfig;

/// An epoch must beat the previous one's files/s by this factor for the
/// window to double again.
const GAIN: f64 = 1.2;

/// Requests a small file makes one after the other: the resolve, then the
/// hop it redirects to (a regular file's resolve-cache URL, an LFS file's
/// CDN URL).
const ROUND_TRIPS_PER_FILE: u32 = 2;

/// What one small file costs on this side of the link (hash, sync,
/// rename): the reference machine finishes about 2,000 files/s on loopback
/// (issue #16). A window that hides round trips longer than that waits on
/// this side's work, not on the link; one too large for a slower machine
/// only queues files that are already in memory's budget.
const LOCAL_COST_PER_FILE: Duration = Duration::from_micros(500);

/// The adaptive limit on small files in flight.
#[derive(Debug)]
pub(crate) struct SmallFileWindow {
    limit: usize,
    cap: usize,
    growing: bool,
    epoch_start: Option<Instant>,
    epoch_done: usize,
    last_rate: Option<f64>,
}

impl SmallFileWindow {
    /// A window starting at `start` (`-j`) that may grow up to `cap`.
    pub(crate) fn new(start: usize, cap: usize) -> Self {
        let cap = cap.max(start).max(1);
        Self {
            limit: start.clamp(1, cap),
            cap,
            growing: start < cap,
            epoch_start: None,
            epoch_done: 0,
            last_rate: None,
        }
    }

    /// The window a run starts with: enough files in flight that round
    /// trips do not hold the rate below what this side finishes (Little's
    /// law: files in flight = files/s × seconds per file, with files/s =
    /// 1 / [`LOCAL_COST_PER_FILE`] and seconds per file =
    /// [`ROUND_TRIPS_PER_FILE`] round trips), within `cap`, within what the
    /// server takes at once (its `SETTINGS_MAX_CONCURRENT_STREAMS` on each
    /// of the connections the client may open; over HTTP/1.1 one request
    /// per connection), and never below `-j`. Without a measured link:
    /// `-j`.
    pub(crate) fn start_for(config: &EngineConfig, cap: usize) -> usize {
        let jobs = config.files_in_flight.get();
        let Some(link) = config.measured_link else {
            return jobs;
        };
        let per_file = link.round_trip * ROUND_TRIPS_PER_FILE;
        let hiding = per_file.as_nanos().div_ceil(LOCAL_COST_PER_FILE.as_nanos());
        let hiding = usize::try_from(hiding).unwrap_or(usize::MAX);
        let at_once = link
            .streams_per_connection
            .max(1)
            .saturating_mul(link.connections.max(1));
        hiding.min(at_once).min(cap).max(jobs)
    }

    /// The cap for `config` and small files of `mean_size` bytes on average.
    pub(crate) fn cap_for(config: &EngineConfig, mean_size: u64) -> usize {
        let per_file = mean_size.max(16 * 1024);
        let by_memory = usize::try_from(config.small_files_memory.bytes() / per_file)
            .unwrap_or(usize::MAX)
            .max(1);
        config.small_files_max.get().min(by_memory)
    }

    /// Files that may be in flight now.
    pub(crate) fn limit(&self) -> usize {
        self.limit
    }

    /// The most files the window may ever have in flight.
    pub(crate) fn cap(&self) -> usize {
        self.cap
    }

    /// Halves the window and stops its growth (a rate limit).
    pub(crate) fn halve(&mut self) {
        self.limit = (self.limit / 2).max(1);
        self.growing = false;
    }

    /// A small file started (the first one starts the first epoch).
    pub(crate) fn on_start(&mut self, now: Instant) {
        self.epoch_start.get_or_insert(now);
    }

    /// A small file finished at `now`; at the end of an epoch the window
    /// doubles if the epoch's files/s paid for the last doubling.
    pub(crate) fn on_done(&mut self, now: Instant) {
        if !self.growing {
            return;
        }
        self.epoch_done += 1;
        if self.epoch_done < self.limit {
            return;
        }
        let Some(start) = self.epoch_start else {
            return;
        };
        let secs = now.duration_since(start).as_secs_f64().max(1e-6);
        #[expect(
            clippy::cast_precision_loss,
            reason = "a count of files, far below 2^52"
        )]
        let rate = self.epoch_done as f64 / secs;
        match self.last_rate {
            Some(last) if rate < last * GAIN => self.growing = false,
            _ => {
                self.limit = (self.limit * 2).min(self.cap);
                self.growing = self.limit < self.cap;
            }
        }
        self.last_rate = Some(rate);
        self.epoch_start = Some(now);
        self.epoch_done = 0;
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::SmallFileWindow;

    /// Runs one epoch of `window.limit()` completions spread over `secs`.
    fn epoch(w: &mut SmallFileWindow, t: &mut Instant, secs: f64) {
        let n = w.limit();
        let step = Duration::from_secs_f64(secs / n as f64);
        for _ in 0..n {
            *t += step;
            w.on_done(*t);
        }
    }

    #[test]
    fn grows_while_the_rate_follows_the_window_and_stops_when_it_does_not() {
        let mut t = Instant::now();
        let mut w = SmallFileWindow::new(4, 256);
        w.on_start(t);
        // A long round trip: each epoch takes the same time whatever the
        // window, so files/s doubles with it.
        for expected in [8, 16, 32, 64] {
            epoch(&mut w, &mut t, 0.1);
            assert_eq!(w.limit(), expected);
        }
        // The link is full: twice the files take twice the time, so the
        // last doubling did not pay and the window stays.
        epoch(&mut w, &mut t, 0.2);
        assert_eq!(w.limit(), 64, "no gain: stays");
        epoch(&mut w, &mut t, 0.05);
        assert_eq!(w.limit(), 64, "growth ended for the run");
    }

    #[test]
    fn never_passes_its_cap_nor_starts_below_one() {
        let mut t = Instant::now();
        let mut w = SmallFileWindow::new(4, 10);
        w.on_start(t);
        for _ in 0..5 {
            epoch(&mut w, &mut t, 0.1);
        }
        assert_eq!(w.limit(), 10);
        assert_eq!(SmallFileWindow::new(0, 0).limit(), 1);
        assert_eq!(
            SmallFileWindow::new(8, 4).limit(),
            8,
            "-j above the cap wins"
        );
    }

    /// `config` after a plan that measured `rtt_ms` with `streams` per
    /// connection and `connections` allowed.
    fn measured(rtt_ms: u64, streams: usize, connections: usize) -> crate::EngineConfig {
        crate::EngineConfig {
            measured_link: Some(crate::MeasuredLink {
                round_trip: Duration::from_millis(rtt_ms),
                streams_per_connection: streams,
                connections,
            }),
            ..crate::EngineConfig::default()
        }
    }

    #[test]
    fn starts_from_the_round_trip_within_what_the_server_takes_and_the_cap() {
        let jobs = crate::EngineConfig::default().files_in_flight.get();
        let start = SmallFileWindow::start_for;
        // Nothing measured, or loopback: `-j`.
        assert_eq!(start(&crate::EngineConfig::default(), 256), jobs);
        assert_eq!(start(&measured(0, 128, 32), 256), jobs);
        // 10 ms: two round trips hide behind 40 files of 0.5 ms each.
        assert_eq!(start(&measured(10, 128, 32), 256), 40);
        // 50 ms: 200, on two connections of 128 streams.
        assert_eq!(start(&measured(50, 128, 32), 256), 200);
        // ...but not past the streams of the connections allowed.
        assert_eq!(start(&measured(50, 128, 1), 256), 128);
        // HTTP/1.1: one request per connection.
        assert_eq!(start(&measured(50, 1, 32), 256), 32);
        // The memory budget's cap.
        assert_eq!(start(&measured(300, 128, 32), 64), 64);
        // `-j` above it all wins.
        let mut many_jobs = measured(50, 1, 16);
        many_jobs.files_in_flight = std::num::NonZeroUsize::new(32).unwrap();
        assert_eq!(start(&many_jobs, 256), 32);
    }

    #[test]
    fn cap_follows_the_memory_budget() {
        let config = crate::EngineConfig::default();
        // 64 MiB / 1 MiB files.
        assert_eq!(SmallFileWindow::cap_for(&config, 1 << 20), 64);
        // Tiny files count as 16 KiB each; the count cap applies.
        assert_eq!(
            SmallFileWindow::cap_for(&config, 100),
            config.small_files_max.get()
        );
    }
}
