//! The engine's error type.

use std::path::PathBuf;
use std::time::Duration;

use hfd_types::ByteRange;

use crate::source::{FileKey, SourceError};

/// `Result` with the engine's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a file (or a run) did not complete.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is inconsistent.
    #[error("invalid engine configuration: {reason}")]
    InvalidConfig {
        /// What is wrong.
        reason: &'static str,
    },
    /// The plan does not fit on disk (preflight) or a disk operation failed.
    #[error("{} for {key} ({})", if source.is_integrity() { "integrity check failed" } else { "disk error" }, path.display())]
    Store {
        /// The file.
        key: FileKey,
        /// Its partial (or final) path.
        path: PathBuf,
        /// The store error (full disk, I/O, digest mismatch).
        #[source]
        source: Box<hfd_store::Error>,
    },
    /// The free-space preflight of the whole plan failed.
    #[error("free-space preflight failed")]
    Preflight {
        /// The store's answer (names the filesystem's first file).
        #[source]
        source: Box<hfd_store::Error>,
    },
    /// The source reported an integrity or fatal error for the file.
    #[error("source error for {key}")]
    Source {
        /// The file.
        key: FileKey,
        /// The range being fetched, if any.
        range: Option<ByteRange>,
        /// The source's error.
        #[source]
        source: Box<SourceError>,
    },
    /// A connection failed `attempts` times in a row without progress.
    #[error("{key}: giving up after {attempts} attempts")]
    RetriesExhausted {
        /// The file.
        key: FileKey,
        /// Consecutive failed attempts.
        attempts: u32,
        /// The last failure.
        #[source]
        last: Box<TransferError>,
    },
    /// The file's bytes failed their check on every attempt (a digest
    /// mismatch, or answers that contradict the file); each time its
    /// partial and journal were discarded and it was fetched again from a
    /// fresh resolve. Nothing of it is kept.
    #[error("integrity check failed {attempts} times")]
    Integrity {
        /// The file.
        key: FileKey,
        /// Attempts made (see [`INTEGRITY_ATTEMPTS`](crate::INTEGRITY_ATTEMPTS)).
        attempts: u32,
        /// The last attempt's failure.
        #[source]
        last: Box<Error>,
    },
    /// The run or file was cancelled. Partials are kept and flushed.
    #[error("cancelled")]
    Cancelled,
    /// An engine task panicked (a bug).
    #[error("engine task failed")]
    Task {
        /// The join error.
        #[source]
        source: tokio::task::JoinError,
    },
}

impl Error {
    /// The run or file was cancelled (not a failure).
    pub fn is_cancelled(&self) -> bool {
        matches!(self, Self::Cancelled)
    }

    /// The bytes contradict the expected file: a digest mismatch or a source
    /// integrity error.
    pub fn is_integrity(&self) -> bool {
        match self {
            Self::Integrity { .. } => true,
            Self::Store { source, .. } => source.is_integrity(),
            Self::Source { source, .. } => source.is_integrity(),
            _ => false,
        }
    }

    /// The disk is (or would be) full.
    pub fn is_disk_full(&self) -> bool {
        match self {
            Self::Store { source, .. } | Self::Preflight { source } => source.is_disk_full(),
            _ => false,
        }
    }

    /// Running again later may succeed (transient failures ran out of
    /// attempts).
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::RetriesExhausted { .. })
    }
}

/// One failed attempt of a request, as retried by the engine.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransferError {
    /// The source failed (retryably).
    #[error("source failure")]
    Source(#[source] SourceError),
    /// No bytes arrived for the stall timeout.
    #[error("no bytes for {timeout:?}")]
    Stalled {
        /// The stall timeout.
        timeout: Duration,
    },
    /// The body ended before the requested range did.
    #[error("body ended after {received} of {expected} bytes")]
    ShortBody {
        /// Bytes received.
        received: u64,
        /// Bytes requested.
        expected: u64,
    },
    /// The request ran far below the pool's median rate.
    #[error(
        "{rate_bytes_per_sec:.0} B/s, below {ratio} x the pool median of {median_bytes_per_sec:.0} B/s"
    )]
    Slow {
        /// This request's rate.
        rate_bytes_per_sec: f64,
        /// The median rate of the other requests.
        median_bytes_per_sec: f64,
        /// The configured ratio.
        ratio: f64,
    },
}

/// `error` and its causes on one line (`a: b: c`), for log lines.
pub(crate) fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut current = error.source();
    while let Some(e) = current {
        text.push_str(": ");
        text.push_str(&e.to_string());
        current = e.source();
    }
    text
}
