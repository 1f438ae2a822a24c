//! Engine settings.

use std::num::NonZeroUsize;
use std::time::Duration;

use hfd_store::StoreConfig;
use hfd_types::{ByteSize, MemoryBudget};

use crate::error::{Error, Result};
use crate::plan::FilePlan;
use crate::retry::TransferRetry;

/// Engine settings. Start from `Default` and set fields.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct EngineConfig {
    /// Connections per file (`-x/--threads`). Default: 8.
    pub connections_per_file: NonZeroUsize,
    /// Files downloaded at once (`-j/--jobs`). Default: 4.
    pub files_in_flight: NonZeroUsize,
    /// Connections across all files (global per-host cap). Default: 16.
    pub max_connections: NonZeroUsize,
    /// Small files (up to `min_split_size`, one request each) in flight at
    /// most; their window starts at `files_in_flight` and grows while the
    /// measured files/s follows it (see `small_files.rs`). Their requests
    /// do not count against `max_connections`: over HTTP/2 they are streams.
    /// Default: 256.
    pub small_files_max: NonZeroUsize,
    /// Memory small files in flight may hold in write buffers: the window
    /// stays under this divided by the mean small file. Default: 64 MiB.
    pub small_files_memory: ByteSize,
    /// The link to the server as measured before the run (by the plan's
    /// requests): the small-file window starts from its round trip instead
    /// of at `files_in_flight` (see `small_files.rs`). Default: none.
    pub measured_link: Option<MeasuredLink>,
    /// Smallest segment the scheduler creates by splitting
    /// (`-k/--min-split-size`); files up to this size are one request.
    /// Default: 1 MiB (hfd.sh's `-k 1M`).
    pub min_split_size: ByteSize,
    /// Retries of range requests.
    pub retry: TransferRetry,
    /// A request that sends nothing for this long is dropped and its range
    /// re-queued. Default: 20 s.
    pub stall_timeout: Duration,
    /// A request whose rate stays below this fraction of the pool's median
    /// is dropped and its range re-queued. `0.0` disables. Default: 0.1.
    pub slow_ratio: f64,
    /// A request is judged slow once it ran this long or received its
    /// first MiB, whichever comes first, and never before four times its
    /// own wait for the response head (a far link's slow start).
    /// Default: 50 ms (at 0.5 s a slow connection held the lowest piece
    /// of a 96 MiB file, so the hash, for most of the download, decision
    /// 0060; each slow connection's time until judged is lost, one new
    /// connection in four on the uneven mirror: at 0.1 s that was 5-6 times
    /// 0.1 s of one of a file's 16 connections, decision 0070).
    pub slow_grace: Duration,
    /// In the tail (nothing left to split), idle connections duplicate the
    /// slowest in-flight range; the first to finish wins. Default: true.
    pub hedging: bool,
    /// A large file starts with `ramp_start` connections and doubles them
    /// while each step pays (its rate over `ramp_window` grows by at least
    /// half a connection's share per added connection), up to
    /// `connections_per_file`; a step that does not pay is taken back, and
    /// a refused connection caps the run at the connections it has
    /// (decision 0050). `false`: every file starts `connections_per_file`
    /// connections at once (`--fixed-connections`). Default: true.
    pub connection_ramp: bool,
    /// Connections a large file starts with when `connection_ramp` is on.
    /// Default: 4.
    pub ramp_start: NonZeroUsize,
    /// How long the ramp measures a file's rate before and after a step at
    /// least (longer when the step's first bytes took longer: twice that,
    /// up to 1 s); a step that pays over half its window goes on at once.
    /// Default: 20 ms (on a far link the first bytes take longer, and the
    /// window with them; on a near one the ramp's windows at fewer
    /// connections are what it costs: 50 ms windows cost 0.07 s of a
    /// 96 MiB file's 1.2 s, decision 0060).
    pub ramp_window: Duration,
    /// Bytes a connection collects before one blocking write. Bounds the
    /// memory per connection; the CLI derives it from `--memory-budget`.
    /// Default: 256 KiB (the connection reads nothing while its batch is
    /// written; larger batches cost wall time, decision 0010).
    pub write_batch: ByteSize,
    /// The one memory budget (`--memory-budget`). When set, a run over
    /// known files derives `write_batch`, `small_files_memory` and the
    /// connections' receive window from it ([`share_budget`](Self::share_budget)),
    /// sharing it by the connections those files can use. Default: none
    /// (the fields as set).
    pub memory_budget: Option<MemoryBudget>,
    /// A file with a journal (see `FileJob::identity`) is flushed and its
    /// newly durable ranges journaled once per interval while bytes arrive
    /// (group commit by time, however fast the link), and when it ends,
    /// fails or is cancelled. A `kill -9` loses at most about
    /// `1.25 × journal_interval` plus one commit's duration of each
    /// connection's transfer (`docs/journal-format.md`). Default: 1 s.
    pub journal_interval: Duration,
    /// Check free space of the whole plan before starting. Default: true.
    pub preflight: bool,
    /// Verify each file's digest (when the job has one). Default: true.
    pub verify: bool,
    /// Store settings (backend, window size).
    pub store: StoreConfig,
}

/// What a caller measured of the link before a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MeasuredLink {
    /// The shortest time from a request written to its response head.
    pub round_trip: Duration,
    /// Requests one connection carries at once: the server's
    /// `SETTINGS_MAX_CONCURRENT_STREAMS` over HTTP/2, 1 over HTTP/1.1.
    pub streams_per_connection: usize,
    /// Connections the client may open to the server.
    pub connections: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            connections_per_file: NonZeroUsize::new(8).expect("8 > 0"),
            files_in_flight: NonZeroUsize::new(4).expect("4 > 0"),
            max_connections: NonZeroUsize::new(16).expect("16 > 0"),
            small_files_max: NonZeroUsize::new(256).expect("256 > 0"),
            small_files_memory: ByteSize::mib(64),
            measured_link: None,
            min_split_size: ByteSize::mib(1),
            retry: TransferRetry::default(),
            stall_timeout: Duration::from_secs(20),
            slow_ratio: 0.1,
            slow_grace: Duration::from_millis(50),
            hedging: true,
            connection_ramp: true,
            ramp_start: NonZeroUsize::new(4).expect("4 > 0"),
            ramp_window: Duration::from_millis(20),
            write_batch: ByteSize::kib(256),
            memory_budget: None,
            journal_interval: Duration::from_secs(1),
            preflight: true,
            verify: true,
            store: StoreConfig::default(),
        }
    }
}

impl EngineConfig {
    /// Whether a file of `size` bytes is small: fetched in one request,
    /// admitted by the small-file window and its own request slots.
    pub(crate) fn is_small_file(&self, size: u64) -> bool {
        size <= self.min_split_size.bytes()
    }

    /// Range requests files of `sizes` can have in flight at once: the
    /// `files_in_flight` largest files, each with the connections the
    /// engine starts for it (`FilePlan::useful_connections` in `plan.rs`),
    /// `max_connections` in all. Small files are not counted (one request
    /// each, bounded by `small_files_memory`).
    pub fn range_requests_at_once(&self, sizes: &[u64]) -> usize {
        let split = self.min_split_size.bytes();
        let per_file = self.connections_per_file.get();
        let mut large: Vec<usize> = sizes
            .iter()
            .filter(|&&size| !self.is_small_file(size))
            .map(|&size| FilePlan::useful_connections(size, split, per_file))
            .collect();
        let first = self.files_in_flight.get().min(large.len());
        if first < large.len() {
            large.select_nth_unstable_by(first, |a, b| b.cmp(a));
        }
        large[..first]
            .iter()
            .sum::<usize>()
            .min(self.max_connections.get())
    }

    /// Shares [`memory_budget`](Self::memory_budget), if set, for a run over
    /// files of `sizes` whose range requests ride at most `tcp_cap` TCP
    /// connections: sets `write_batch` and `small_files_memory` and returns
    /// the receive window for the connections the run opens.
    pub fn share_budget(&mut self, sizes: &[u64], tcp_cap: usize) -> Option<u32> {
        let small_bytes = sizes
            .iter()
            .filter(|&&size| self.is_small_file(size))
            .fold(0u64, |sum, &size| sum.saturating_add(size));
        self.share_budget_with(sizes, small_bytes, tcp_cap)
    }

    /// [`share_budget`](Self::share_budget) for a run whose listing is still
    /// read while it downloads (files of `sizes` known so far): later pages
    /// may bring `-j` files of any size and any number of small ones, so the
    /// budget is shared as if they were among them, and holds whatever
    /// comes.
    pub fn share_budget_growing(&mut self, sizes: &[u64], tcp_cap: usize) -> Option<u32> {
        let mut sizes = sizes.to_vec();
        sizes.extend(std::iter::repeat_n(u64::MAX, self.files_in_flight.get()));
        self.share_budget_with(&sizes, u64::MAX, tcp_cap)
    }

    fn share_budget_with(
        &mut self,
        sizes: &[u64],
        small_bytes: u64,
        tcp_cap: usize,
    ) -> Option<u32> {
        let budget = self.memory_budget?;
        let connections = self.range_requests_at_once(sizes).min(tcp_cap);
        let run = budget.for_run(connections, small_bytes);
        self.write_batch = ByteSize::new(run.connection.write_batch);
        self.small_files_memory = run.small_files.max(self.min_split_size);
        Some(run.connection.receive_window)
    }

    /// Age at which a connection writes its batch however small it is: a
    /// quarter of the journal interval, so received bytes wait at most that
    /// long before they are written and can be journaled.
    pub(crate) fn batch_age(&self) -> Duration {
        self.journal_interval / 4
    }

    /// Checks the settings once, before a run.
    pub fn validate(&self) -> Result<()> {
        let invalid = |reason| Err(Error::InvalidConfig { reason });
        if self.min_split_size.bytes() == 0 {
            return invalid("min_split_size must be at least 1 byte");
        }
        if self.write_batch.bytes() == 0 {
            return invalid("write_batch must be at least 1 byte");
        }
        if !(0.0..1.0).contains(&self.slow_ratio) {
            return invalid("slow_ratio must be in [0, 1)");
        }
        if self.stall_timeout.is_zero() {
            return invalid("stall_timeout must be positive");
        }
        if self.ramp_window.is_zero() {
            return invalid("ramp_window must be positive");
        }
        if self.journal_interval.is_zero() {
            return invalid("journal_interval must be positive");
        }
        if self.retry.max_retries == 0 {
            return invalid("retry.max_retries must be at least 1");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::EngineConfig;

    #[test]
    fn batches_are_written_within_a_quarter_journal_interval() {
        let c = EngineConfig {
            journal_interval: std::time::Duration::from_millis(200),
            ..EngineConfig::default()
        };
        assert_eq!(c.batch_age(), std::time::Duration::from_millis(50));
    }

    #[test]
    fn range_requests_count_the_largest_files_in_flight_and_their_segments() {
        use std::num::NonZeroUsize;
        let mib = 1u64 << 20;
        let c = EngineConfig {
            connections_per_file: NonZeroUsize::new(64).unwrap(),
            files_in_flight: NonZeroUsize::new(5).unwrap(),
            max_connections: NonZeroUsize::new(320).unwrap(),
            ..EngineConfig::default()
        };
        // Two 512 MiB files and small ones: 128 ranges, not 64 × 5.
        assert_eq!(
            c.range_requests_at_once(&[512 * mib, 512 * mib, 10, 2000]),
            128
        );
        // A 3.5 MiB file gets 3 connections (segments of at least 1 MiB).
        assert_eq!(c.range_requests_at_once(&[7 * mib / 2, 512 * mib]), 67);
        // Twenty shards: only five at once, and never beyond the cap.
        assert_eq!(c.range_requests_at_once(&[mib << 10; 20]), 320);
        let capped = EngineConfig {
            max_connections: NonZeroUsize::new(100).unwrap(),
            ..c.clone()
        };
        assert_eq!(capped.range_requests_at_once(&[mib << 10; 20]), 100);
        // Small files only: none.
        assert_eq!(c.range_requests_at_once(&[1, mib]), 0);
    }

    #[test]
    fn the_budget_is_shared_by_the_connections_a_run_can_use() {
        use hfd_types::{ByteSize, MemoryBudget};
        use std::num::NonZeroUsize;
        let mib = 1u64 << 20;
        let mut c = EngineConfig {
            connections_per_file: NonZeroUsize::new(64).unwrap(),
            files_in_flight: NonZeroUsize::new(5).unwrap(),
            max_connections: NonZeroUsize::new(320).unwrap(),
            ..EngineConfig::default()
        };
        assert_eq!(
            c.share_budget(&[512 * mib], 320),
            None,
            "no budget, no change"
        );
        c.memory_budget = Some(MemoryBudget::DEFAULT);
        let sizes = [512 * mib, 512 * mib, 4096];
        let window = c.share_budget(&sizes, 320).unwrap();
        let run = MemoryBudget::DEFAULT.for_run(128, 4096);
        assert_eq!(window, run.connection.receive_window);
        assert_eq!(c.write_batch.bytes(), run.connection.write_batch);
        assert!(window > MemoryBudget::DEFAULT.share(320).receive_window);
        // Fewer TCP connections (--max-connections): larger shares.
        let fewer = c.share_budget(&sizes, 16).unwrap();
        assert_eq!(
            fewer,
            MemoryBudget::DEFAULT
                .for_run(16, 4096)
                .connection
                .receive_window
        );
        // The small files' memory is at least one small file.
        assert_eq!(c.small_files_memory, ByteSize::mib(1));
    }

    #[test]
    fn a_growing_listing_shares_the_budget_as_if_the_largest_run_were_coming() {
        use hfd_types::MemoryBudget;
        use std::num::NonZeroUsize;
        let mut c = EngineConfig {
            connections_per_file: NonZeroUsize::new(16).unwrap(),
            files_in_flight: NonZeroUsize::new(5).unwrap(),
            max_connections: NonZeroUsize::new(320).unwrap(),
            memory_budget: Some(MemoryBudget::DEFAULT),
            ..EngineConfig::default()
        };
        // Only small files known so far: `-j` large files and unbounded
        // small ones may still come.
        let window = c.share_budget_growing(&[4096, 4096], 320).unwrap();
        let run = MemoryBudget::DEFAULT.for_run(80, u64::MAX);
        assert_eq!(window, run.connection.receive_window);
        assert_eq!(c.write_batch.bytes(), run.connection.write_batch);
    }

    #[test]
    fn validation_rejects_nonsense() {
        assert!(EngineConfig::default().validate().is_ok());
        let c = EngineConfig {
            slow_ratio: 1.5,
            ..EngineConfig::default()
        };
        assert!(c.validate().is_err());
        let c = EngineConfig {
            min_split_size: hfd_types::ByteSize::new(0),
            ..EngineConfig::default()
        };
        assert!(c.validate().is_err());
    }
}
