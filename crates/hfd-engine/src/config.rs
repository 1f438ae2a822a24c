//! Engine settings.

use std::num::NonZeroUsize;
use std::time::Duration;

use hfd_store::StoreConfig;
use hfd_types::ByteSize;

use crate::error::{Error, Result};
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
    /// first MiB, whichever comes first. Default: 0.5 s (at 3 s the
    /// uneven-mirror benchmark reached 78 % of its ideal time; a request
    /// still in TCP slow start is well above a tenth of the median).
    pub slow_grace: Duration,
    /// In the tail (nothing left to split), idle connections duplicate the
    /// slowest in-flight range; the first to finish wins. Default: true.
    pub hedging: bool,
    /// Bytes a connection collects before one blocking write. Bounds the
    /// memory per connection; the CLI derives it from `--memory-budget`.
    /// Default: 256 KiB (the connection reads nothing while its batch is
    /// written; larger batches cost wall time, decision 0010).
    pub write_batch: ByteSize,
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

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            connections_per_file: NonZeroUsize::new(8).expect("8 > 0"),
            files_in_flight: NonZeroUsize::new(4).expect("4 > 0"),
            max_connections: NonZeroUsize::new(16).expect("16 > 0"),
            small_files_max: NonZeroUsize::new(256).expect("256 > 0"),
            small_files_memory: ByteSize::mib(64),
            min_split_size: ByteSize::mib(1),
            retry: TransferRetry::default(),
            stall_timeout: Duration::from_secs(20),
            slow_ratio: 0.1,
            slow_grace: Duration::from_millis(500),
            hedging: true,
            write_batch: ByteSize::kib(256),
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
