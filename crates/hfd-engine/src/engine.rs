//! [`Engine`]: runs file jobs, at most `files_in_flight` at once, after the
//! free-space preflight, and collects one outcome per file.

use std::collections::{HashMap, HashSet, VecDeque};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use hfd_store::preflight;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::claim::Claim;
use crate::claim::ClaimGate;
use crate::config::EngineConfig;
use crate::error::{Error, Result};
use crate::job::FileJob;
use crate::outcomes::{Outcomes, Ran};
use crate::pool::{ConnectionSlots, PoolGate, RateBoard};
use crate::progress::{FileOutcome, Reporter, Summary};
use crate::small_files::SmallFileWindow;
use crate::source::{FileKey, RangeSource};
use crate::state::{Counters, EngineState};
use crate::transfer::{Opened, open_partial_now, transfer};

/// Attempts per file and run when its bytes fail their check (a digest
/// mismatch, or answers that contradict the file). Each failed attempt
/// discards the partial and journal and starts the file over from a fresh
/// resolve; a glitching CDN or a mirror that served an error page once
/// heals, one that keeps sending wrong bytes fails after this many full
/// downloads of the file (bounded cost) with [`Error::Integrity`].
pub const INTEGRITY_ATTEMPTS: u32 = 3;

/// Runs downloads: `Engine::new(config, source, reporter).run(jobs, cancel)`.
pub struct Engine<S> {
    shared: Arc<EngineState<S>>,
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
            shared: Arc::new(EngineState {
                slots: ConnectionSlots::new(config.max_connections.get()),
                small_slots: ConnectionSlots::new(config.small_files_max.get()),
                rate_limits: AtomicUsize::new(0),
                config,
                source,
                reporter,
                gate: PoolGate::default(),
                rates: RateBoard::default(),
                streamed_requests: std::sync::atomic::AtomicU64::new(0),
                file_ended: tokio::sync::Notify::new(),
                counters: Counters::default(),
                claims: None,
            }),
        })
    }

    /// Asks `claims` before each file starts whether this process downloads
    /// it (several processes sharing one target).
    #[must_use]
    pub fn with_claims(mut self, claims: Arc<dyn ClaimGate>) -> Self {
        match Arc::get_mut(&mut self.shared) {
            Some(shared) => shared.claims = Some(claims),
            None => unreachable!("the engine's state is shared only while it runs"),
        }
        self
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
            check_free_space(&jobs).await?;
        }
        let (feed, batches) = tokio::sync::mpsc::channel(1);
        if !jobs.is_empty() {
            // Room for one batch: the channel was made for it.
            let _ = feed.try_send(jobs);
        }
        drop(feed);
        self.run_fed(batches, cancel).await
    }

    /// Downloads the jobs of `batches` as they come, in the order given,
    /// until the sender is dropped (decision 0065). The next batch is taken
    /// only while fewer jobs wait than the small-file window's cap (the
    /// most files that may ever be in flight at once, see
    /// `SmallFileWindow::cap_for` in `small_files.rs`): with a channel of one batch, that
    /// blocks the sender and bounds the jobs held in memory, however long
    /// the listing. No free-space preflight here: the sender checks each
    /// batch ([`check_free_space`]). The mean small file, which caps the
    /// window, is that of the first batch. A file's outcome is reported
    /// under its key (a done file is only counted, [`Summary::done`]);
    /// files never received are not in the summary.
    ///
    /// Cancel safety: as [`Self::run`]; jobs received and not started are
    /// [`FileOutcome::Cancelled`].
    pub async fn run_fed(
        &self,
        mut batches: tokio::sync::mpsc::Receiver<Vec<FileJob>>,
        cancel: CancellationToken,
    ) -> Result<Summary> {
        let mut outcomes = Outcomes::default();
        let mut tasks = JoinSet::new();
        let config = &self.shared.config;
        let limit = config.files_in_flight.get();
        // Small files (one request each) and the others are admitted
        // separately, each queue in the given order: a large file waiting
        // for a slot does not hold back the small ones behind it.
        let mut queues = Queues::default();
        let mut window: Option<SmallFileWindow> = None;
        let mut feed_open = true;
        let (mut small_running, mut large_running) = (0_usize, 0_usize);
        let mut running = Running::new();
        let mut rate_limits_seen = 0;
        loop {
            if cancel.is_cancelled() {
                break;
            }
            // Batches already sent, while the queues want more.
            while feed_open && queues.wants_more(window.as_ref(), limit) {
                match batches.try_recv() {
                    Ok(batch) => queues.push(config, batch, &mut outcomes, &mut window),
                    Err(tokio::sync::mpsc::error::TryRecvError::Empty) => break,
                    Err(tokio::sync::mpsc::error::TryRecvError::Disconnected) => {
                        feed_open = false;
                    }
                }
            }
            // Told to slow down: fewer small files in flight, for good.
            let rate_limits = self.shared.rate_limits.load(Ordering::Relaxed);
            while rate_limits_seen < rate_limits {
                if let Some(window) = window.as_mut() {
                    window.halve();
                }
                rate_limits_seen += 1;
            }
            let small_limit = window.as_ref().map_or(0, SmallFileWindow::limit);
            let next = if !queues.small.is_empty() && small_running < small_limit {
                small_running += 1;
                if let Some(window) = window.as_mut() {
                    window.on_start(std::time::Instant::now());
                }
                queues
                    .small
                    .pop_front()
                    .map(|(index, job)| (index, job, true))
            } else if !queues.large.is_empty() && large_running < limit {
                large_running += 1;
                queues
                    .large
                    .pop_front()
                    .map(|(index, job)| (index, job, false))
            } else {
                None
            };
            if let Some((index, job, is_small)) = next {
                let shared = Arc::clone(&self.shared);
                let cancel = cancel.child_token();
                let key = job.key;
                let task = tasks.spawn(run_file(shared, job, cancel));
                running.insert(task.id(), (index, key, is_small));
                continue;
            }
            if tasks.is_empty() && !feed_open {
                break;
            }
            let take_batch = feed_open && queues.wants_more(window.as_ref(), limit);
            let finished = tokio::select! {
                finished = collect(&mut tasks, &mut outcomes, &mut running), if !tasks.is_empty() => finished,
                batch = batches.recv(), if take_batch => {
                    match batch {
                        Some(batch) => queues.push(config, batch, &mut outcomes, &mut window),
                        None => feed_open = false,
                    }
                    None
                }
                () = cancel.cancelled() => None,
            };
            match finished {
                Some(true) => {
                    small_running -= 1;
                    if let Some(window) = window.as_mut() {
                        let before = window.limit();
                        window.on_done(std::time::Instant::now());
                        if window.limit() != before {
                            tracing::debug!(
                                from = before,
                                to = window.limit(),
                                "small files in flight"
                            );
                        }
                    }
                }
                Some(false) => large_running -= 1,
                None => {}
            }
        }
        while !tasks.is_empty() {
            collect(&mut tasks, &mut outcomes, &mut running).await;
        }
        // Jobs received and never started.
        for (index, job) in queues.small.drain(..).chain(queues.large.drain(..)) {
            outcomes.record(index, job.key, Ran::Outcome(FileOutcome::Cancelled));
        }
        Ok(self.summary(outcomes, cancel.is_cancelled()))
    }

    /// The outcome of each file not done, how many are, and the run's
    /// counters.
    fn summary(&self, outcomes: Outcomes, cancelled: bool) -> Summary {
        let (files, done, busy) = outcomes.finish();
        let c = &self.shared.counters;
        Summary {
            files,
            done,
            busy,
            bytes_written: c.bytes_written.load(Ordering::Relaxed),
            bytes_resumed: c.bytes_resumed.load(Ordering::Relaxed),
            requests: c.requests.load(Ordering::Relaxed),
            retries: c.retries.load(Ordering::Relaxed),
            splits: c.splits.load(Ordering::Relaxed),
            hedges: c.hedges.load(Ordering::Relaxed),
            dropped_slow: c.dropped_slow.load(Ordering::Relaxed),
            cancelled,
        }
    }
}

/// The jobs received and not started, small and other, each in the order
/// given, with their index into the run's outcomes (a job's paths are
/// freed when it starts).
#[derive(Default)]
struct Queues {
    small: VecDeque<(usize, FileJob)>,
    large: VecDeque<(usize, FileJob)>,
}

impl Queues {
    /// Whether another batch is taken: fewer jobs wait than the most small
    /// files the window may ever have in flight (`-j` before the first
    /// batch), so the next ones are at hand when files finish, and no more.
    fn wants_more(&self, window: Option<&SmallFileWindow>, files_in_flight: usize) -> bool {
        let enough = window.map_or(files_in_flight, SmallFileWindow::cap);
        self.small.len() + self.large.len() < enough.max(files_in_flight)
    }

    /// Queues `batch`; the first batch sizes the small-file window.
    fn push(
        &mut self,
        config: &EngineConfig,
        batch: Vec<FileJob>,
        outcomes: &mut Outcomes,
        window: &mut Option<SmallFileWindow>,
    ) {
        if window.is_none() {
            let (count, bytes) = batch
                .iter()
                .filter(|j| config.is_small_file(j.size))
                .fold((0_u64, 0_u64), |(n, b), j| (n + 1, b + j.size));
            let cap = SmallFileWindow::cap_for(config, bytes / count.max(1));
            let started = SmallFileWindow::new(SmallFileWindow::start_for(config, cap), cap);
            tracing::debug!(start = started.limit(), cap, link = ?config.measured_link, "small files in flight");
            *window = Some(started);
        }
        for job in batch {
            let index = outcomes.receive();
            if config.is_small_file(job.size) {
                self.small.push_back((index, job));
            } else {
                self.large.push_back((index, job));
            }
        }
    }
}

/// The free-space preflight of `jobs`, a whole run (for a run fed as its
/// listing arrives, [`FreeSpace`] per batch).
///
/// # Errors
///
/// [`Error::Preflight`] when they do not fit.
pub async fn check_free_space(jobs: &[FileJob]) -> Result<()> {
    FreeSpace::default().check(jobs).await
}

/// The free-space preflight of a run fed batch by batch
/// ([`Engine::run_fed`]): each batch against the space left when it is
/// checked. The partials an earlier run left are looked for once per folder
/// for the whole run, not once per batch (a folder of 10^4 files read 40
/// times over).
#[derive(Clone, Default)]
pub struct FreeSpace {
    partials: Arc<std::sync::Mutex<PartialsOnDisk>>,
}

impl std::fmt::Debug for FreeSpace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FreeSpace").finish_non_exhaustive()
    }
}

impl FreeSpace {
    /// Checks that `jobs` fit.
    ///
    /// # Errors
    ///
    /// [`Error::Preflight`] when they do not fit.
    pub async fn check(&self, jobs: &[FileJob]) -> Result<()> {
        let plan: Vec<(PathBuf, u64)> = jobs
            .iter()
            .map(|j| (j.partial_path.clone(), j.size))
            .collect();
        let partials = Arc::clone(&self.partials);
        tokio::task::spawn_blocking(move || {
            // A partial from an earlier run already holds its blocks
            // (reused whether it is resumed or restarted): only the rest
            // is needed, so a nearly done download still fits.
            let mut partials = partials
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let needed: Vec<(PathBuf, u64)> = plan
                .into_iter()
                .map(|(p, n)| {
                    let held = partials.allocated_bytes(&p).min(n);
                    (p, n - held)
                })
                .collect();
            drop(partials);
            preflight(needed.iter().map(|(p, n)| (p.as_path(), *n)))
        })
        .await
        .map_err(|source| Error::Task { source })?
        .map_err(|source| Error::Preflight {
            source: Box::new(source),
        })
    }
}

/// The file tasks running: each one's job index and key, and whether it is
/// a small file.
type Running = HashMap<tokio::task::Id, (usize, FileKey, bool)>;

/// Waits for one file task and records its outcome; returns whether it was
/// a small file (`None` when none was running).
async fn collect(
    tasks: &mut JoinSet<Ran>,
    outcomes: &mut Outcomes,
    running: &mut Running,
) -> Option<bool> {
    let (id, ran) = match tasks.join_next_with_id().await? {
        Ok((id, ran)) => (id, ran),
        Err(source) => {
            tracing::error!(error = %source, "file task failed");
            let id = source.id();
            (
                id,
                Ran::Outcome(FileOutcome::Failed(Error::Task { source })),
            )
        }
    };
    let (index, key, is_small) = running
        .remove(&id)
        .expect("every file task is entered when spawned");
    outcomes.record(index, key, ran);
    Some(is_small)
}

async fn run_file<S: RangeSource>(
    shared: Arc<EngineState<S>>,
    job: FileJob,
    cancel: CancellationToken,
) -> Ran {
    let key = job.key;
    // A claimed file's partial is opened on the same blocking thread.
    let (job, opened) = if let Some(claims) = shared.claims.clone() {
        let state = Arc::clone(&shared);
        let claimed = tokio::task::spawn_blocking(move || {
            let claim = claims.claim(&job);
            let opened = (claim == Claim::Mine).then(|| open_partial_now(&state.config, &job));
            (claim, job, opened)
        });
        match claimed.await {
            Ok((Claim::Mine, job, opened)) => (job, opened),
            Ok((Claim::Busy, job, _)) => return Ran::Busy(Box::new(job)),
            Ok((Claim::DoneElsewhere, _, _)) => {
                return Ran::Outcome(FileOutcome::DoneElsewhere);
            }
            Err(source) => return Ran::Outcome(FileOutcome::Failed(Error::Task { source })),
        }
    } else {
        (job, None)
    };
    let reporter = Arc::clone(&shared.reporter);
    let outcome = match heal_loop(&shared, job, opened, &cancel).await {
        Ok(digest) => {
            shared.source.finish_file(key).await;
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
    Ran::Outcome(outcome)
}

/// Transfers a file, starting it over (partial discarded, fresh resolve)
/// while its bytes fail their check, at most [`INTEGRITY_ATTEMPTS`] times.
async fn heal_loop<S: RangeSource>(
    shared: &Arc<EngineState<S>>,
    mut job: FileJob,
    mut opened: Option<Result<Opened>>,
    cancel: &CancellationToken,
) -> Result<Option<hfd_types::ContentDigest>> {
    let key = job.key;
    let mut attempt = 1;
    loop {
        let error = match transfer(shared, job.clone(), opened.take(), cancel).await {
            Err(e) if e.is_integrity() => e,
            other => return other,
        };
        shared.source.reset_file(key).await;
        if attempt >= INTEGRITY_ATTEMPTS || cancel.is_cancelled() {
            return Err(Error::Integrity {
                key,
                attempts: attempt,
                last: Box::new(error),
            });
        }
        attempt += 1;
        tracing::warn!(file = %key, attempt, max = INTEGRITY_ATTEMPTS, error = %crate::error::chain(&error),
            "bytes failed their integrity check; partial discarded, fetching the file again from a fresh resolve");
        shared.reporter.on_file_restart(key, attempt, &error);
        // Already discarded by the failed attempt; also drops anything a
        // concurrent process may have left in between.
        job.fresh = true;
    }
}

fn outcome_name(o: &FileOutcome) -> &'static str {
    match o {
        FileOutcome::Done { .. } => "done",
        FileOutcome::Failed(_) => "failed",
        FileOutcome::Cancelled => "cancelled",
        FileOutcome::Busy => "busy",
        FileOutcome::DoneElsewhere => "done elsewhere",
    }
}

/// Which partials exist, read once per folder: a first run of a dataset
/// has none, and one `getdents` per folder replaces a failing `statx` per
/// file.
#[derive(Default)]
struct PartialsOnDisk {
    /// Folder → names in it (`None`: unreadable, every file is asked).
    names: HashMap<PathBuf, Option<HashSet<OsString>>>,
}

impl PartialsOnDisk {
    /// Bytes held on disk by `path` (0 when it does not exist).
    fn allocated_bytes(&mut self, path: &Path) -> u64 {
        let (Some(folder), Some(name)) = (path.parent(), path.file_name()) else {
            return stat_allocated(path);
        };
        let names =
            self.names.entry(folder.to_path_buf()).or_insert_with(|| {
                match std::fs::read_dir(folder) {
                    Ok(entries) => {
                        Some(entries.filter_map(|e| Some(e.ok()?.file_name())).collect())
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some(HashSet::new()),
                    Err(_) => None,
                }
            });
        match names {
            Some(names) if !names.contains(name) => 0,
            _ => stat_allocated(path),
        }
    }
}

fn stat_allocated(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| hfd_store::allocated_bytes(&m))
}
