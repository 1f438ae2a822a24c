//! The hfd-rs transfer engine: turns "fetch these files of these sizes from
//! this source into these paths" into bounded, cancellable, scheduled work.
//!
//! Main types:
//!
//! - [`RangeSource`]: what the engine consumes (byte ranges or a whole file
//!   as a stream of [`bytes::Bytes`]), with a [`SourceError`] that tells the
//!   engine what to do next (retry, slow the pool, fall back to one stream,
//!   abort the file). The HTTP adapter lives in the `hfd` crate.
//! - [`Engine`] with [`EngineConfig`]: `Engine::new(config, source,
//!   reporter)?.run(jobs, cancel).await` downloads [`FileJob`]s and returns a
//!   [`Summary`] with a [`FileOutcome`] per file.
//! - [`Reporter`]: progress events (file start, bytes written, retries,
//!   fallback, done with digest, failed, cancelled).
//!
//! How many connections: a large file starts with
//! [`EngineConfig::ramp_start`] of its `connections_per_file` and doubles
//! them while each step makes it faster ([`ConnectionRamp`]); a step that
//! does not pay is taken back, and a connection refused before its first
//! byte caps the run at the connections it has (decision 0050).
//!
//! How a file is scheduled: it is cut into eight pieces per connection of at
//! least `min_split_size`; a free connection takes the pending piece with the
//! lowest offset, so the hash follows the download, else splits the in-flight
//! segment with the most bytes left at its midpoint (never below
//! `min_split_size`), else — the tail — hedges the segment expected to finish
//! last: it requests the same bytes from the segment's frontier and the first
//! request to get there wins (the other is cancelled). Requests that stall
//! (`stall_timeout`) or run far below the pool's median (`slow_ratio`) are
//! dropped, their range re-queued from the last byte received and their
//! connection retired (`RangeSource::retire_slow`). Bodies are
//! counted against the range requested: a short body re-queues the rest, a
//! long one is cut at the range end. A rate-limited answer (`slow_pool`)
//! pauses every connection. Frames are collected per connection up to
//! `write_batch` bytes and written on a blocking thread through
//! `hfd-store`, which hashes the contiguous prefix as it fills; a file is
//! flushed, verified and renamed to its final name only when complete.
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use hfd_engine::*;
//! # async fn demo<S: RangeSource>(source: Arc<S>) -> Result<(), Error> {
//! let engine = Engine::new(EngineConfig::default(), source, Arc::new(NoopReporter))?;
//! let jobs = vec![FileJob::new(FileKey(0), 1 << 20, "out/.tmp-0", "out/model.bin")];
//! let summary = engine.run(jobs, tokio_util::sync::CancellationToken::new()).await?;
//! assert!(summary.is_success());
//! # Ok(()) }
//! ```
//!
//! Cancellation: a `CancellationToken` tree (run → file → connection).
//! Cancelling stops new requests, writes what was already claimed, flushes,
//! keeps partials and reports [`FileOutcome::Cancelled`] — not a failure.
//!
//! Healing: a file whose bytes fail their check (digest mismatch, or a
//! source answer that contradicts the file) loses its partial and journal,
//! the source forgets its URL and connections ([`RangeSource::reset_file`]),
//! and the file is fetched again from zero, up to [`INTEGRITY_ATTEMPTS`]
//! attempts per run; then it fails with [`Error::Integrity`] and nothing of
//! it is kept, so the next run starts clean too.
//!
//! Resume: a [`FileJob`] with a [`FileIdentity`] gets a journal (kept by
//! `hfd-store`). A matching journal from an earlier run is resumed: its
//! ranges are never requested again ([`Reporter::on_file_resumed`],
//! [`Summary::bytes_resumed`]). While the file downloads, a committer task
//! flushes and journals it every [`EngineConfig::journal_interval`] while
//! bytes arrive (group commit by time, writeback started as batches are
//! written), and always when the file ends, fails or is cancelled.
//!
//! What this crate does not do: HTTP, URLs, repo ids, retries of metadata
//! requests, choosing file names, the journal's byte format (`hfd-store`).

#![warn(missing_docs)]

mod claim;
mod config;
mod connections;
mod engine;
mod error;
mod fallback;
mod file_ctx;
mod job;
mod journal_flush;
mod outcomes;
mod pace;
mod plan;
mod pool;
mod progress;
mod ramp;
mod retry;
mod small_files;
mod source;
mod state;
mod transfer;
mod worker;

pub use claim::{Claim, ClaimGate};
pub use config::{EngineConfig, MeasuredLink};
pub use engine::{Engine, FreeSpace, INTEGRITY_ATTEMPTS, check_free_space};
pub use error::{Error, Result, TransferError};
pub use hfd_store::FileIdentity;
pub use job::FileJob;
pub use progress::{FileOutcome, NoopReporter, Reporter, RetryEvent, Summary};
pub use ramp::{ConnectionRamp, RampGauge, RampStep, drive as drive_ramp};
pub use retry::TransferRetry;
pub use source::{BodyStream, BoxError, FileKey, RangeSource, SlotId, SourceError};
