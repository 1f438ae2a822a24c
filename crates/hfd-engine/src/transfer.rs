//! One file from open to final name: open (or resume) the partial, start
//! the journal flusher, run the connections (falling back to one stream when
//! the source refuses ranges), flush, verify and rename.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use hfd_store::{JournalHeader, PartialFile, RangeSet, SegmentLayout, TargetDir};
use hfd_types::ContentDigest;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::config::EngineConfig;
use crate::connections::{ConnectionsEnd, run_connections};
use crate::error::{Error, Result};
use crate::fallback::single_stream;
use crate::file_ctx::{FileCtx, HashFollower};
use crate::job::FileJob;
use crate::journal_flush::{Unjournaled, flush_loop};
use crate::pace::FilePace;
use crate::plan::{FilePlan, Hedging};
use crate::ramp::RampGauge;
use crate::source::RangeSource;
use crate::state::EngineState;
use crate::worker::StreamMode;

pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|source| Error::Task { source })
}

/// A file's partial, opened, and the ranges it already holds.
pub(crate) type Opened = (PartialFile, RangeSet);

/// Opens the partial: with an identity through the journal (resuming what
/// it holds), else from zero. Returns the partial and its durable ranges.
/// Blocking: called on the blocking thread that claimed the file, or by
/// [`open_partial`].
pub(crate) fn open_partial_now(config: &EngineConfig, job: &FileJob) -> Result<Opened> {
    let expected = if config.verify { job.expected } else { None };
    let header = job.identity.clone().map(|identity| {
        JournalHeader::new(
            identity,
            SegmentLayout::new(
                config.min_split_size.bytes(),
                u32::try_from(config.connections_per_file.get()).unwrap_or(u32::MAX),
            ),
        )
    });
    let (path, size, store) = (&job.partial_path, job.size, &config.store);
    let opened = (|| {
        // Without a journal the open below starts the partial from zero
        // anyway (holding its lock, removing a stale journal).
        if job.fresh && header.is_some() {
            PartialFile::discard_at(path)?;
        }
        match (&job.target, header) {
            (Some(target), header) => {
                let rel = below(target, path)?;
                PartialFile::open_or_create_in(target, &rel, size, expected, store, header)
                    .map(|(partial, resume)| (partial, resume.ranges))
            }
            (None, Some(header)) => {
                PartialFile::open_or_create(path, size, expected, store, Some(header))
                    .map(|(partial, resume)| (partial, resume.ranges))
            }
            (None, None) => {
                PartialFile::create(path, size, expected, store).map(|p| (p, RangeSet::new()))
            }
        }
    })();
    opened.map_err(|source| Error::Store {
        key: job.key,
        path: job.partial_path.clone(),
        source: Box::new(source),
    })
}

/// [`open_partial_now`] on a blocking thread.
async fn open_partial<S: RangeSource>(
    shared: &Arc<EngineState<S>>,
    job: &FileJob,
) -> Result<Opened> {
    let (shared, job) = (Arc::clone(shared), job.clone());
    blocking(move || open_partial_now(&shared.config, &job)).await?
}

/// `path` relative to `target`'s folder (a job's paths are built below it).
fn below(target: &TargetDir, path: &Path) -> hfd_store::Result<PathBuf> {
    path.strip_prefix(target.root())
        .map(Path::to_path_buf)
        .map_err(|_| hfd_store::Error::NotBeneath {
            path: path.to_path_buf(),
        })
}

/// Transfers one file; `Ok` with its digest once it has its final name.
#[expect(
    clippy::too_many_lines,
    reason = "one file's steps in order; the ramp's gauge tipped it over"
)]
pub(crate) async fn transfer<S: RangeSource>(
    shared: &Arc<EngineState<S>>,
    job: FileJob,
    opened: Option<Result<Opened>>,
    cancel: &CancellationToken,
) -> Result<Option<ContentDigest>> {
    let config = &shared.config;
    shared.reporter.on_file_start(job.key, job.size);
    let store_err = |path: &PathBuf| {
        let path = path.clone();
        move |source| Error::Store {
            key: job.key,
            path,
            source: Box::new(source),
        }
    };
    let min_split = config.min_split_size.bytes();
    let per_file = config.connections_per_file.get();
    // Opened already when the file was claimed (one blocking hand-off for
    // both), else here.
    let (partial, done) = match opened {
        Some(opened) => opened?,
        None => open_partial(shared, &job).await?,
    };
    if !done.is_empty() {
        let bytes = done.total();
        shared
            .counters
            .bytes_resumed
            .fetch_add(bytes, Ordering::Relaxed);
        tracing::info!(file = %job.key, resumed_bytes = bytes, size = job.size, "resuming");
        shared.reporter.on_file_resumed(job.key, bytes);
    }
    let missing = job.size - done.total();
    let connections = FilePlan::useful_connections(missing, min_split, per_file);
    let trigger = job
        .identity
        .as_ref()
        .map(|_| Arc::new(Unjournaled::default()));
    let file = Arc::new(FileCtx {
        key: job.key,
        size: job.size,
        partial: partial.clone(),
        plan: Mutex::new(FilePlan::resumed(
            job.size,
            min_split,
            connections,
            Hedging::from(config.hedging),
            &done,
        )),
        changed: Notify::new(),
        journal: trigger.clone(),
        write_batch: config.write_batch.bytes(),
        batch_age: config.batch_age(),
        hash_follower: HashFollower::default(),
        ramp: RampGauge::default(),
        pace: FilePace::default(),
    });
    // Workers run under `work`: cancelled by the caller, or by the flusher
    // when a journal commit fails.
    let work = cancel.child_token();
    let stop_flusher = CancellationToken::new();
    let committer = trigger.map(|trigger| {
        tokio::spawn(flush_loop(
            partial.clone(),
            trigger,
            config.journal_interval,
            stop_flusher.clone(),
            work.clone(),
        ))
    });
    let mut exit = run_connections(shared, &file, connections, StreamMode::Ranges, &work).await;
    if matches!(exit, Ok(ConnectionsEnd::RangeUnsupported)) {
        exit = single_stream(shared, &file, &work).await;
    }
    tracing::debug!(file = %job.key, "connections done");
    // No pass over the partial outlives the file's transfer.
    file.hash_settled().await;
    stop_flusher.cancel();
    let commit_result = match committer {
        Some(handle) => handle.await.map_err(|source| Error::Task { source })?,
        None => Ok(()),
    };
    // Whatever happened (done, cancelled, failed), what was written is made
    // durable and, with a journal, recorded: a rerun resumes from here.
    // Without a journal (small files) nothing is ever resumed, and the
    // finalize below syncs the whole file once: one sync per file, not two.
    let last_flush = if job.identity.is_some() {
        let partial = partial.clone();
        blocking(move || partial.flush()).await?
    } else {
        Ok(hfd_store::Flushed::default())
    };
    let last_flush = last_flush.map_err(store_err(&job.partial_path));
    commit_result.map_err(store_err(&job.partial_path))?;
    if let Err(e) = exit {
        return Err(discard_if_poisoned(e, &partial, &job).await);
    }
    last_flush?;
    if cancel.is_cancelled() {
        return Err(Error::Cancelled);
    }
    let final_path = job.final_path.clone();
    let finalizing = partial.clone();
    let target = job.target.clone();
    // A small file synced by its last write and published from its partial
    // finalizes without I/O: no hand-off to a blocking thread for it.
    let in_memory = target.as_ref().and_then(|t| below(t, &final_path).ok());
    let finalized = match in_memory {
        Some(rel) if partial.finalizes_in_memory(&rel) => finalizing.finalize_in(&rel),
        _ => {
            blocking(move || match target {
                Some(target) => finalizing.finalize_in(&below(&target, &final_path)?),
                None => finalizing.finalize(&final_path),
            })
            .await?
        }
    };
    match finalized {
        Ok(finalized) => Ok(finalized.digest),
        Err(source) => {
            let e = store_err(&job.partial_path)(source);
            Err(discard_if_poisoned(e, &partial, &job).await)
        }
    }
}

/// After an integrity failure the partial's bytes cannot be trusted (which
/// ones are wrong is unknown): the partial and its journal are removed, so
/// neither a retry nor a later run resumes them. Returns `error`, or the
/// disk error that prevented the removal (then the file is not retried).
async fn discard_if_poisoned(error: Error, partial: &PartialFile, job: &FileJob) -> Error {
    if !error.is_integrity() {
        return error;
    }
    let partial = partial.clone();
    match blocking(move || partial.discard()).await {
        Ok(Ok(())) => error,
        Ok(Err(source)) => {
            tracing::error!(file = %job.key, error = %crate::error::chain(&error),
                "bytes failed their integrity check, and the partial cannot be removed");
            Error::Store {
                key: job.key,
                path: job.partial_path.clone(),
                source: Box::new(source),
            }
        }
        Err(task) => task,
    }
}
