//! Progress events and the run summary.

use std::time::Duration;

use hfd_types::{ByteRange, ContentDigest};

use crate::error::{Error, TransferError};
use crate::source::FileKey;

/// A retry the engine is about to make.
#[derive(Debug)]
#[non_exhaustive]
pub struct RetryEvent<'a> {
    /// The range that will be re-requested (from its last written byte), if
    /// it was a range request.
    pub range: Option<ByteRange>,
    /// Consecutive failures of this connection so far.
    pub attempt: u32,
    /// Wait before the next request.
    pub wait: Duration,
    /// What failed.
    pub cause: &'a TransferError,
}

/// Receives progress from the engine. The CLI renders it. Calls come from
/// engine tasks: keep them cheap and non-blocking. Every method has a no-op
/// default.
pub trait Reporter: Send + Sync {
    /// A file's transfer started.
    fn on_file_start(&self, key: FileKey, size: u64) {
        let _ = (key, size);
    }
    /// `bytes` more bytes of `key` are written (batched, not per frame).
    fn on_bytes(&self, key: FileKey, bytes: u64) {
        let _ = (key, bytes);
    }
    /// `range` of `key` was written to its partial file in this run (not
    /// yet durable nor verified). Called once per written piece, before the
    /// `on_bytes` that counts it; lets a reader follow the bytes as they
    /// land (`hfd-rs serve` streams a file while it is pulled).
    fn on_written(&self, key: FileKey, range: ByteRange) {
        let _ = (key, range);
    }
    /// `bytes` of `key` were already durable from an earlier run (its
    /// journal) and will not be fetched. Called once, after
    /// `on_file_start`. Default: counts them as written (`on_bytes`), so
    /// progress reaches the file size.
    fn on_file_resumed(&self, key: FileKey, bytes: u64) {
        self.on_bytes(key, bytes);
    }
    /// A request failed and will be retried.
    fn on_retry(&self, key: FileKey, event: &RetryEvent<'_>) {
        let _ = (key, event);
    }
    /// The file's bytes failed their check (`cause`); its partial and
    /// journal were discarded and attempt `attempt` (from 2) starts from
    /// zero on a fresh resolve. Bytes reported for it so far no longer
    /// count.
    fn on_file_restart(&self, key: FileKey, attempt: u32, cause: &Error) {
        let _ = (key, attempt, cause);
    }
    /// The source ignored ranges; the file continues as one stream.
    fn on_fallback(&self, key: FileKey) {
        let _ = key;
    }
    /// The file is complete, verified and under its final name.
    fn on_file_done(&self, key: FileKey, digest: Option<ContentDigest>) {
        let _ = (key, digest);
    }
    /// The file failed. Its partial is kept for a later resume, except
    /// when its bytes failed their check (then it was discarded).
    fn on_file_failed(&self, key: FileKey, error: &Error) {
        let _ = (key, error);
    }
    /// The file was cancelled; its partial is kept and flushed.
    fn on_file_cancelled(&self, key: FileKey) {
        let _ = key;
    }
}

/// A reporter that ignores everything.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoopReporter;

impl Reporter for NoopReporter {}

/// How one file ended.
#[derive(Debug)]
#[non_exhaustive]
pub enum FileOutcome {
    /// Complete, verified (when a digest was given) and renamed.
    Done {
        /// The verified digest.
        digest: Option<ContentDigest>,
    },
    /// Failed; the partial is kept.
    Failed(Error),
    /// Cancelled (or never started because the run was cancelled).
    Cancelled,
    /// Not started: the [`ClaimGate`](crate::ClaimGate) said another
    /// process is downloading it.
    Busy,
    /// Not started: the [`ClaimGate`](crate::ClaimGate) said another
    /// process already finished it.
    DoneElsewhere,
}

/// Totals of a run.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct Summary {
    /// The outcome of each job that did not end [`FileOutcome::Done`], in
    /// job order; a done file is only counted in [`Self::done`] (a run of
    /// 10^5 files keeps no slot per file).
    pub files: Vec<(FileKey, FileOutcome)>,
    /// Files that ended [`FileOutcome::Done`].
    pub done: usize,
    /// The jobs of the [`FileOutcome::Busy`] files (another process held
    /// their claim), to run again later: the caller keeps no copy of every
    /// job for the few that may come back.
    pub busy: Vec<crate::FileJob>,
    /// Bytes written to disk.
    pub bytes_written: u64,
    /// Bytes not fetched because a journal showed them durable already.
    pub bytes_resumed: u64,
    /// Requests sent to the source.
    pub requests: u64,
    /// Retries (failed attempts followed by a new request).
    pub retries: u64,
    /// Ranges split at their midpoint to feed an idle connection.
    pub splits: u64,
    /// Tail hedges started (duplicate requests of a slow range).
    pub hedges: u64,
    /// Requests dropped as stalled or too slow.
    pub dropped_slow: u64,
    /// The run was cancelled.
    pub cancelled: bool,
}

impl Summary {
    /// Whether every file is done.
    pub fn is_success(&self) -> bool {
        self.files.is_empty()
    }

    /// The failed files.
    pub fn failures(&self) -> impl Iterator<Item = (FileKey, &Error)> {
        self.files.iter().filter_map(|(k, o)| match o {
            FileOutcome::Failed(e) => Some((*k, e)),
            _ => None,
        })
    }
}
