//! The engine: files in flight, connections per file, fallback, finalize.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use hfd_store::{FileIdentity, JournalHeader, PartialFile, RangeSet, SegmentLayout, preflight};
use hfd_types::ContentDigest;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::plan::FilePlan;
use crate::pool::{PoolGate, RateBoard, Slots};
use crate::worker::{Worker, WorkerExit};
use crate::{EngineConfig, Error, FileKey, FileOutcome, RangeSource, Reporter, Result, Summary};

/// One file to download.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct FileJob {
    /// The caller's identity for the file, passed back to the source.
    pub key: FileKey,
    /// Exact size in bytes.
    pub size: u64,
    /// Digest to verify before the file gets its final name.
    pub expected: Option<ContentDigest>,
    /// Unique temporary name to write to (never `<final>.incomplete`).
    pub partial_path: PathBuf,
    /// Name the file gets once complete and verified. Its directory must
    /// exist.
    pub final_path: PathBuf,
    /// The file's identity on the hub. With one, the partial gets a resume
    /// journal (`<partial>.journal`): a matching journal from an earlier run
    /// is resumed (its ranges are never fetched again), and durable ranges
    /// are journaled as the download goes. Without one (tests), no journal
    /// and every run starts from zero.
    pub identity: Option<FileIdentity>,
}

impl FileJob {
    /// A job without an expected digest.
    pub fn new(
        key: FileKey,
        size: u64,
        partial_path: impl Into<PathBuf>,
        final_path: impl Into<PathBuf>,
    ) -> Self {
        Self {
            key,
            size,
            expected: None,
            partial_path: partial_path.into(),
            final_path: final_path.into(),
            identity: None,
        }
    }

    /// Sets the identity, which turns on the resume journal.
    #[must_use]
    pub fn with_identity(mut self, identity: FileIdentity) -> Self {
        self.identity = Some(identity);
        self
    }

    /// Sets the digest to verify.
    #[must_use]
    pub fn with_expected(mut self, digest: ContentDigest) -> Self {
        self.expected = Some(digest);
        self
    }
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) bytes_written: AtomicU64,
    pub(crate) requests: AtomicU64,
    pub(crate) retries: AtomicU64,
    pub(crate) splits: AtomicU64,
    pub(crate) hedges: AtomicU64,
    pub(crate) dropped_slow: AtomicU64,
    pub(crate) long_bodies: AtomicU64,
    pub(crate) bytes_resumed: AtomicU64,
}

pub(crate) struct Shared<S> {
    pub(crate) config: EngineConfig,
    pub(crate) source: Arc<S>,
    pub(crate) reporter: Arc<dyn Reporter>,
    pub(crate) slots: Slots,
    pub(crate) gate: PoolGate,
    pub(crate) rates: RateBoard,
    pub(crate) counters: Counters,
}

/// State of one file shared by its workers.
pub(crate) struct FileCtx {
    pub(crate) key: FileKey,
    pub(crate) size: u64,
    pub(crate) partial: PartialFile,
    pub(crate) plan: Mutex<FilePlan>,
    /// Signalled whenever a lane ends (work may have appeared).
    pub(crate) changed: Notify,
    /// Group-commit trigger of a journaled file.
    pub(crate) journal: Option<Arc<JournalTrigger>>,
    /// Bytes collected before one blocking write.
    pub(crate) write_batch: u64,
}

/// Counts bytes written since the last journal commit and wakes the
/// flusher when they reach the threshold.
#[derive(Debug)]
pub(crate) struct JournalTrigger {
    unjournaled: AtomicU64,
    threshold: u64,
    wake: Notify,
}

impl JournalTrigger {
    fn new(config: &crate::EngineConfig) -> Arc<Self> {
        Arc::new(Self {
            unjournaled: AtomicU64::new(0),
            threshold: config.journal_threshold(),
            wake: Notify::new(),
        })
    }

    /// `bytes` more were written.
    pub(crate) fn written(&self, bytes: u64) {
        let total = self.unjournaled.fetch_add(bytes, Ordering::AcqRel) + bytes;
        if total >= self.threshold {
            self.wake.notify_one();
        }
    }
}

/// Runs downloads: `Engine::new(config, source, reporter).run(jobs, cancel)`.
pub struct Engine<S> {
    shared: Arc<Shared<S>>,
}

impl<S> std::fmt::Debug for Engine<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

impl<S: RangeSource> Engine<S> {
    /// Validates `config` and builds an engine.
    pub fn new(config: EngineConfig, source: Arc<S>, reporter: Arc<dyn Reporter>) -> Result<Self> {
        config.validate()?;
        Ok(Self {
            shared: Arc::new(Shared {
                slots: Slots::new(config.max_connections.get()),
                config,
                source,
                reporter,
                gate: PoolGate::default(),
                rates: RateBoard::default(),
                counters: Counters::default(),
            }),
        })
    }

    /// Downloads `jobs`, at most `files_in_flight` at once, and returns what
    /// happened to each. Fails as a whole only for the free-space preflight;
    /// a file's failure is its [`FileOutcome::Failed`].
    ///
    /// Cancel safety: cancel through `cancel`, not by dropping the future.
    /// On cancel, requests stop, claimed bytes are written and flushed,
    /// partials are kept, and the summary reports `cancelled` with
    /// [`FileOutcome::Cancelled`] for unfinished files. Dropping the future
    /// instead detaches running file tasks (they keep running).
    pub async fn run(&self, jobs: Vec<FileJob>, cancel: CancellationToken) -> Result<Summary> {
        if self.shared.config.preflight && !jobs.is_empty() {
            let plan: Vec<(PathBuf, u64)> = jobs
                .iter()
                .map(|j| (j.partial_path.clone(), j.size))
                .collect();
            tokio::task::spawn_blocking(move || {
                // A partial from an earlier run already holds its blocks
                // (reused whether it is resumed or restarted): only the rest
                // is needed, so a nearly done download still fits.
                let needed: Vec<(PathBuf, u64)> = plan
                    .into_iter()
                    .map(|(p, n)| {
                        let held = allocated_bytes(&p).min(n);
                        (p, n - held)
                    })
                    .collect();
                preflight(needed.iter().map(|(p, n)| (p.as_path(), *n)))
            })
            .await
            .map_err(|source| Error::Task { source })?
            .map_err(|source| Error::Preflight {
                source: Box::new(source),
            })?;
        }
        let mut outcomes: Vec<(FileKey, Option<FileOutcome>)> =
            jobs.iter().map(|j| (j.key, None)).collect();
        let mut tasks = JoinSet::new();
        let limit = self.shared.config.files_in_flight.get();
        for (index, job) in jobs.into_iter().enumerate() {
            while tasks.len() >= limit {
                collect(&mut tasks, &mut outcomes).await;
            }
            if cancel.is_cancelled() {
                break;
            }
            let shared = Arc::clone(&self.shared);
            let cancel = cancel.child_token();
            tasks.spawn(async move { (index, run_file(shared, job, cancel).await) });
        }
        while !tasks.is_empty() {
            collect(&mut tasks, &mut outcomes).await;
        }
        let c = &self.shared.counters;
        let cancelled = cancel.is_cancelled();
        Ok(Summary {
            files: outcomes
                .into_iter()
                .map(|(k, o)| (k, o.unwrap_or(FileOutcome::Cancelled)))
                .collect(),
            bytes_written: c.bytes_written.load(Ordering::Relaxed),
            bytes_resumed: c.bytes_resumed.load(Ordering::Relaxed),
            requests: c.requests.load(Ordering::Relaxed),
            retries: c.retries.load(Ordering::Relaxed),
            splits: c.splits.load(Ordering::Relaxed),
            hedges: c.hedges.load(Ordering::Relaxed),
            dropped_slow: c.dropped_slow.load(Ordering::Relaxed),
            cancelled,
        })
    }
}

async fn collect(
    tasks: &mut JoinSet<(usize, FileOutcome)>,
    outcomes: &mut [(FileKey, Option<FileOutcome>)],
) {
    match tasks.join_next().await {
        Some(Ok((index, outcome))) => outcomes[index].1 = Some(outcome),
        Some(Err(source)) => {
            // A file task panicked: report it on the first file without an
            // outcome that is not running any more (best effort).
            tracing::error!(error = %source, "file task failed");
            if let Some(slot) = outcomes.iter_mut().find(|(_, o)| o.is_none()) {
                slot.1 = Some(FileOutcome::Failed(Error::Task { source }));
            }
        }
        None => {}
    }
}

async fn run_file<S: RangeSource>(
    shared: Arc<Shared<S>>,
    job: FileJob,
    cancel: CancellationToken,
) -> FileOutcome {
    let key = job.key;
    let reporter = Arc::clone(&shared.reporter);
    let outcome = match transfer(&shared, job, &cancel).await {
        Ok(digest) => {
            reporter.on_file_done(key, digest);
            FileOutcome::Done { digest }
        }
        Err(Error::Cancelled) => {
            reporter.on_file_cancelled(key);
            FileOutcome::Cancelled
        }
        Err(e) => {
            tracing::error!(file = %key, error = %e, "file failed");
            reporter.on_file_failed(key, &e);
            FileOutcome::Failed(e)
        }
    };
    tracing::info!(file = %key, outcome = ?outcome_name(&outcome), "file finished");
    outcome
}

fn outcome_name(o: &FileOutcome) -> &'static str {
    match o {
        FileOutcome::Done { .. } => "done",
        FileOutcome::Failed(_) => "failed",
        FileOutcome::Cancelled => "cancelled",
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|source| Error::Task { source })
}

/// Blocks held on disk by `path` (0 when it does not exist).
fn allocated_bytes(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).map_or(0, |m| m.blocks().saturating_mul(512))
}

/// Opens the partial: with an identity through the journal (resuming what
/// it holds), else from zero. Returns the partial and its durable ranges.
async fn open_partial(
    config: &crate::EngineConfig,
    job: &FileJob,
    expected: Option<ContentDigest>,
    connections: usize,
) -> Result<std::result::Result<(PartialFile, RangeSet), hfd_store::Error>> {
    let (path, size, store) = (job.partial_path.clone(), job.size, config.store.clone());
    let header = job.identity.clone().map(|identity| {
        JournalHeader::new(
            identity,
            SegmentLayout::new(
                config.min_split_size.bytes(),
                u32::try_from(connections).unwrap_or(u32::MAX),
            ),
        )
    });
    blocking(move || match header {
        Some(header) => PartialFile::open_or_create(&path, size, expected, &store, Some(header))
            .map(|(partial, resume)| (partial, resume.ranges)),
        None => PartialFile::create(&path, size, expected, &store).map(|p| (p, RangeSet::new())),
    })
    .await
}

/// Transfers one file; `Ok` with its digest once it has its final name.
async fn transfer<S: RangeSource>(
    shared: &Arc<Shared<S>>,
    job: FileJob,
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
    let expected = if config.verify { job.expected } else { None };
    let min_split = config.min_split_size.bytes();
    let per_file = config.connections_per_file.get();
    let (partial, done) = open_partial(config, &job, expected, per_file)
        .await?
        .map_err(store_err(&job.partial_path))?;
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
    let trigger = job.identity.as_ref().map(|_| JournalTrigger::new(config));
    let write_batch = if trigger.is_some() {
        config.journaled_write_batch()
    } else {
        config.write_batch.bytes()
    };
    let file = Arc::new(FileCtx {
        key: job.key,
        size: job.size,
        partial: partial.clone(),
        plan: Mutex::new(FilePlan::resumed(
            job.size,
            min_split,
            connections,
            config.hedging,
            &done,
        )),
        changed: Notify::new(),
        journal: trigger.clone(),
        write_batch,
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
    let mut exit = run_workers(shared, &file, connections, false, &work).await;
    if matches!(exit, Ok(true)) {
        tracing::warn!(file = %job.key, "source ignores range requests; continuing as one stream from byte 0");
        shared.reporter.on_fallback(job.key);
        let whole = Arc::new(FileCtx {
            key: job.key,
            size: job.size,
            partial: partial.clone(),
            plan: Mutex::new(FilePlan::new(job.size, u64::MAX, 1, false)),
            changed: Notify::new(),
            journal: file.journal.clone(),
            write_batch,
        });
        exit = run_workers(shared, &whole, 1, true, &work).await;
    }
    stop_flusher.cancel();
    let commit_result = match committer {
        Some(handle) => handle.await.map_err(|source| Error::Task { source })?,
        None => Ok(()),
    };
    // Whatever happened (done, cancelled, failed), what was written is made
    // durable and, with a journal, recorded: a rerun resumes from here.
    let last_flush = {
        let partial = partial.clone();
        blocking(move || partial.flush()).await?
    };
    let last_flush = last_flush.map_err(store_err(&job.partial_path));
    commit_result.map_err(store_err(&job.partial_path))?;
    exit?;
    last_flush?;
    if cancel.is_cancelled() {
        return Err(Error::Cancelled);
    }
    let final_path = job.final_path.clone();
    let finalized = blocking(move || partial.finalize(&final_path))
        .await?
        .map_err(store_err(&job.partial_path))?;
    Ok(finalized.digest)
}

/// Group commit of a journaled file: flushes (which journals the newly
/// durable ranges) every `interval` while bytes were written, and as soon
/// as the trigger's threshold is reached. A failed commit cancels `work`
/// and is returned.
async fn flush_loop(
    partial: PartialFile,
    trigger: Arc<JournalTrigger>,
    interval: std::time::Duration,
    stop: CancellationToken,
    work: CancellationToken,
) -> std::result::Result<(), hfd_store::Error> {
    loop {
        tokio::select! {
            biased;
            () = stop.cancelled() => return Ok(()),
            () = trigger.wake.notified() => {}
            () = tokio::time::sleep(interval) => {}
        }
        if trigger.unjournaled.swap(0, Ordering::AcqRel) == 0 {
            continue;
        }
        let p = partial.clone();
        let result = tokio::task::spawn_blocking(move || p.flush())
            .await
            .unwrap_or_else(|join| {
                Err(hfd_store::Error::Flush {
                    path: partial.path().to_path_buf(),
                    source: std::io::Error::other(join.to_string()),
                })
            });
        if let Err(e) = result {
            tracing::error!(file = %partial.path().display(), error = %e, "journal commit failed");
            work.cancel();
            return Err(e);
        }
    }
}

/// Runs `n` workers on `file` until none has work. `Ok(true)` when the
/// source refused ranges (the caller switches to one stream).
async fn run_workers<S: RangeSource>(
    shared: &Arc<Shared<S>>,
    file: &Arc<FileCtx>,
    n: usize,
    whole: bool,
    cancel: &CancellationToken,
) -> Result<bool> {
    let phase = cancel.child_token();
    let mut set = JoinSet::new();
    for id in 0..n {
        let worker = Worker {
            shared: Arc::clone(shared),
            file: Arc::clone(file),
            id,
            whole,
            cancel: phase.clone(),
            writer: Some(file.partial.writer()),
        };
        set.spawn(worker.run());
    }
    let mut failure = None;
    let mut range_unsupported = false;
    while let Some(joined) = set.join_next().await {
        let exit = joined.unwrap_or_else(|source| WorkerExit::Failed(Error::Task { source }));
        match exit {
            WorkerExit::Done | WorkerExit::Cancelled => {}
            WorkerExit::RangeUnsupported => {
                range_unsupported = true;
                phase.cancel();
            }
            WorkerExit::Failed(e) => {
                if failure.is_none() {
                    failure = Some(e);
                }
                phase.cancel();
            }
        }
    }
    if let Some(e) = failure {
        return Err(e);
    }
    if cancel.is_cancelled() {
        return Err(Error::Cancelled);
    }
    Ok(range_unsupported)
}
