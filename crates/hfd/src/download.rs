//! The use case: plan a repository download, then run it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use hfd_engine::{
    Engine, EngineConfig, FileIdentity, FileJob, FileKey, FileOutcome, MeasuredLink, Reporter,
};
use hfd_http::HttpClient;
use hfd_hub::{HubClient, RemoteFile, RepoPlan, RepoRef, Revision, Selection};

use crate::classify::{PagedClassifier, classify_all};
use crate::error::{Error, Result};
use crate::layer::Layered;
use crate::layout::{FetchPolicy, FileAction, Layout, OutputLayout};
use crate::limit::RateLimit;
use crate::listing_file::ListingFile;
use crate::meter::{LiveStats, Meter};
use crate::names::NameRules;
use crate::publisher::{Publication, PublicationInput, blocking};
use crate::shard::{self, Shard, ShardShare};
use crate::source::HubSource;

/// What to download and where.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DownloadRequest {
    /// The repository.
    pub repo: RepoRef,
    /// Branch, tag, `refs/pr/N` or commit; pinned once.
    pub revision: Revision,
    /// Which files.
    pub selection: Selection,
    /// Where the files go: a plain folder or the hub cache, with its
    /// options.
    pub layout: OutputLayout,
    /// Whether files already up to date are fetched again (`--force`).
    pub fetch_policy: FetchPolicy,
    /// Only this shard's share of the selected files (`--shard I/N`); the
    /// commit is pinned once for all shards (see [`crate::shard`]).
    pub shard: Option<Shard>,
    /// Which names the target filesystem can store (the host's by default).
    pub names: NameRules,
    /// Whether the listing's progress is kept in the target, so that an
    /// interrupted listing resumes at its last page (decision 0027). On by
    /// default; a dry run turns it off to leave the target alone.
    pub resume_listing: bool,
}

impl DownloadRequest {
    /// Every file of `repo` at `revision` into the plain folder
    /// `local_dir` (set [`Self::layout`] for the hub cache).
    pub fn new(repo: RepoRef, revision: Revision, local_dir: impl Into<PathBuf>) -> Self {
        Self {
            repo,
            revision,
            selection: Selection::all(),
            layout: OutputLayout::LocalDir(local_dir.into()),
            fetch_policy: FetchPolicy::SkipUpToDate,
            shard: None,
            names: NameRules::host(),
            resume_listing: true,
        }
    }
}

/// One file of a plan.
#[derive(Debug, Clone)]
pub struct PlannedFile {
    /// The file as the hub lists it.
    pub remote: RemoteFile,
    /// What the run does with it.
    pub action: FileAction,
    /// Up to date and already recorded at the pinned commit: publication
    /// skips it (a no-op resync of 10^5 files reads each metadata once).
    settled: bool,
}

impl PlannedFile {
    pub(crate) fn new(remote: RemoteFile, action: FileAction, settled: bool) -> Self {
        Self {
            remote,
            action,
            settled,
        }
    }
}

/// A resolved plan: the pinned commit, the selected files and what each
/// needs. Building it costs the revision and listing requests only.
#[derive(Debug, Clone)]
pub struct DownloadPlan {
    /// The revision pinned to its commit. Its `files` hold the listing only
    /// with `--shard` (the whole listing, the shard's files are in
    /// `files`); otherwise `files` below took them over (one copy of 10^5
    /// listed files, not two).
    pub pinned: RepoPlan,
    /// Per-file actions, in listing order.
    pub files: Vec<PlannedFile>,
    /// Where the files appear: the local dir, or the cache's
    /// `snapshots/<commit>` folder.
    pub local_dir: PathBuf,
    /// The layout the files are written in.
    pub layout: Arc<dyn Layout>,
    /// Whether up-to-date files are fetched again (`--force`).
    pub fetch_policy: FetchPolicy,
    /// Whether `files` is the complete, unfiltered listing of the commit
    /// (only then is `trees/<commit>.json` written).
    pub listing_complete: bool,
    /// With `--shard`: this shard's part of the selected files (`files`
    /// holds only those).
    pub shard: Option<ShardShare>,
    /// A plain (unsharded) run: the record of a sharded sync's commit,
    /// removed once this run completes the target at its own commit.
    shard_pin: Option<PathBuf>,
}

impl DownloadPlan {
    /// Files that will be fetched.
    pub fn to_fetch(&self) -> impl Iterator<Item = &PlannedFile> {
        self.files
            .iter()
            .filter(|f| f.action != FileAction::UpToDate)
    }

    /// Bytes that will be fetched (in the cache, files with the same
    /// content count once: they share one download).
    pub fn bytes_to_fetch(&self) -> u64 {
        let mut seen = std::collections::HashSet::new();
        self.to_fetch()
            .filter(|f| !self.layout.shares_content() || seen.insert(f.remote.etag()))
            .map(|f| f.remote.size)
            .sum()
    }
}

/// What a run did.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct DownloadReport {
    /// Files fetched and verified.
    pub files_done: usize,
    /// Files skipped as up to date.
    pub files_skipped: usize,
    /// Bytes written to disk.
    pub bytes_written: u64,
    /// Range/whole-file requests the engine made.
    pub requests: u64,
    /// Resolve requests (one per fetched file, plus re-resolves).
    pub resolves: u64,
    /// Retries after transient failures.
    pub retries: u64,
    /// Hub requests for the plan (revision + listing pages).
    pub plan_requests: u64,
    /// Wall time of the transfer.
    pub elapsed: Duration,
}

/// Downloads repositories. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Downloader {
    hub: HubClient,
    http: HttpClient,
    engine: EngineConfig,
    rate_limit: Option<u64>,
    live: Arc<LiveStats>,
}

impl Downloader {
    /// A downloader over a shared HTTP client (the hub client should use the
    /// same one, so connections are pooled once).
    pub fn new(hub: HubClient, http: HttpClient, engine: EngineConfig) -> Self {
        Self {
            hub,
            http,
            engine,
            rate_limit: None,
            live: Arc::default(),
        }
    }

    /// Counters a progress display can read while a download runs.
    pub fn live(&self) -> Arc<LiveStats> {
        Arc::clone(&self.live)
    }

    /// Caps the total download rate at `bytes_per_sec` (`--limit-rate`).
    #[must_use]
    pub fn with_rate_limit(mut self, bytes_per_sec: Option<u64>) -> Self {
        self.rate_limit = bytes_per_sec;
        self
    }

    /// The hub client.
    pub fn hub(&self) -> &HubClient {
        &self.hub
    }

    /// Pins the revision, lists and filters the files, and compares them
    /// with what the target (local dir or cache) already holds. Costs the
    /// revision and listing requests only. The only writes: a local file
    /// without metadata whose hash matches the hub's gets its metadata
    /// (see [`LocalDir::classify`](crate::LocalDir::classify)); with a
    /// shard, the sharded sync's commit is recorded in the target when no
    /// shard recorded it yet (see [`crate::shard`]).
    pub async fn plan(&self, request: &DownloadRequest) -> Result<DownloadPlan> {
        let layout = request.layout.open(&request.repo);
        let fetch_policy = request.fetch_policy;
        let (pinned, files, share) = if request.shard.is_some() {
            self.plan_shard(request, Arc::clone(&layout)).await?
        } else {
            let (pinned, files) = self.plan_paged(request, Arc::clone(&layout)).await?;
            (pinned, files, None)
        };
        // With a shard, `pinned.files` holds the whole listing.
        let selected = if request.shard.is_some() {
            pinned.files.len()
        } else {
            files.len()
        };
        let listing_complete = request.selection.is_all() && selected == pinned.listed_files;
        Ok(DownloadPlan {
            local_dir: layout.files_dir(&pinned.commit),
            pinned,
            files,
            layout,
            fetch_policy,
            listing_complete,
            shard: share,
            shard_pin: request
                .shard
                .is_none()
                .then(|| shard::pin_path(&request.layout, &request.repo)),
        })
    }

    /// Pins the revision, then lists it page by page, each page's files
    /// classified against the target while the next page is fetched
    /// (decision 0026). The plan takes the listed files over: its
    /// `pinned.files` stays empty (one copy of 10^5 listed files, not two).
    async fn plan_paged(
        &self,
        request: &DownloadRequest,
        layout: Arc<dyn Layout>,
    ) -> Result<(RepoPlan, Vec<PlannedFile>)> {
        let before = self.hub.requests_sent();
        let commit = self
            .hub
            .pin_revision(&request.repo, &request.revision)
            .await?;
        let mut pages = self
            .hub
            .tree_pages(&request.repo, &commit, &request.selection)?;
        if request.resume_listing
            && let Some((root, rel)) = layout.listing_state()
        {
            let store = Arc::new(ListingFile::new(root, rel));
            pages = blocking(move || Ok(pages.resume_from(store))).await?;
        }
        let mut classifier = PagedClassifier::new(layout, commit.clone(), request.fetch_policy);
        while let Some(page) = pages.next_page().await? {
            // Before anything is downloaded: a name this filesystem cannot
            // store stops the run here, not halfway through.
            request.names.check(page.iter().map(|f| f.path.as_str()))?;
            classifier.push(page);
        }
        let listed_files = pages.finish()?;
        let files = classifier.finish().await?;
        hfd_hub::check_path_collisions(files.iter().map(|f| f.remote.path.as_str()))?;
        let pinned = RepoPlan {
            repo: request.repo.clone(),
            revision: request.revision.clone(),
            commit,
            files: Vec::new(),
            listed_files,
            total_bytes: files.iter().map(|f| f.remote.size).sum(),
            requests: self.hub.requests_sent() - before,
        };
        Ok((pinned, files))
    }

    /// [`Self::plan`] for one shard: the whole listing first (the shards
    /// split it), then this shard's files classified.
    async fn plan_shard(
        &self,
        request: &DownloadRequest,
        layout: Arc<dyn Layout>,
    ) -> Result<(RepoPlan, Vec<PlannedFile>, Option<ShardShare>)> {
        let (pinned, share, shard_files) = self.pin_and_select(request).await?;
        // Before anything is downloaded: a name this filesystem cannot store
        // stops the run here, not halfway through.
        request
            .names
            .check(pinned.files.iter().map(|f| f.path.as_str()))?;
        let (commit, fetch) = (pinned.commit.clone(), request.fetch_policy);
        let remotes = shard_files.unwrap_or_default();
        let files =
            blocking(move || classify_all(layout.as_ref(), &commit, remotes, fetch)).await?;
        Ok((pinned, files, share))
    }

    /// Pins the revision and lists the files; with a shard, pins the commit
    /// the first shard recorded in the target (recording it when this is
    /// the first) and picks the shard's files.
    async fn pin_and_select(
        &self,
        request: &DownloadRequest,
    ) -> Result<(RepoPlan, Option<ShardShare>, Option<Vec<RemoteFile>>)> {
        let Some(shard) = request.shard else {
            let pinned = self
                .hub
                .plan(&request.repo, &request.revision, &request.selection)
                .await?;
            return Ok((pinned, None, None));
        };
        let pin = shard::pin_path(&request.layout, &request.repo);
        // Two rounds at most: a shard that lost the race to record the
        // commit re-plans at the winner's.
        let mut asked = {
            let (pin, revision) = (pin.clone(), request.revision.clone());
            blocking(move || shard::pinned_revision(&pin, &revision)).await?
        };
        for _ in 0..2 {
            let mut pinned = self
                .hub
                .plan(&request.repo, &asked, &request.selection)
                .await?;
            pinned.revision = request.revision.clone();
            let record = shard::PinRecord {
                revision: request.revision.as_str().to_owned(),
                commit: pinned.commit.clone(),
            };
            let recorded = {
                let pin = pin.clone();
                blocking(move || record.record_once(&pin)).await?
            };
            if recorded.commit == pinned.commit {
                let (mine, portion) = shard::select(&pinned.files, shard);
                tracing::info!(shard = %shard, commit = %pinned.commit, files = portion.files, bytes = portion.bytes, "shard pinned");
                return Ok((pinned, Some(portion), Some(mine)));
            }
            asked = {
                let (pin, revision) = (pin.clone(), request.revision.clone());
                blocking(move || shard::pinned_revision(&pin, &revision)).await?
            };
        }
        Err(Error::ShardCommit {
            pin,
            recorded: "another commit".to_owned(),
            asked: request.revision.as_str().to_owned(),
        })
    }

    /// Runs a plan: fetches every file that is not up to date, verifies it,
    /// gives it its final name and writes its metadata. `reporter` sees
    /// engine events keyed by the index into `plan.to_fetch()`.
    ///
    /// Cancel safety: cancel through `cancel`, not by dropping the future,
    /// so partials are flushed; then the result is [`Error::Cancelled`].
    pub async fn download(
        &self,
        plan: &DownloadPlan,
        reporter: Arc<dyn Reporter>,
        cancel: CancellationToken,
    ) -> Result<DownloadReport> {
        let fetch: Vec<&PlannedFile> = plan.to_fetch().collect();
        // One copy of the files to fetch, shared by the publication and
        // the source.
        let files: Arc<[RemoteFile]> = fetch.iter().map(|f| f.remote.clone()).collect();
        let (mut publication, jobs, reporter) = Publication::start(
            publication_input(plan, &files, self.engine.min_split_size.bytes()),
            reporter,
        )
        .await?;
        // A file fetched in one request has nothing to resume from: a journal
        // would only add a file and its syncs (measured: 6 syncs per small
        // file). Only files the engine may split get one.
        let mut jobs = with_identities(jobs, plan, &files, self.engine.min_split_size.bytes());
        let engine = self.engine_for(&files);
        if plan.fetch_policy == FetchPolicy::RefetchAll {
            // `--force` and repairs start over: a partial left by an earlier
            // run may hold the very bytes that made the file bad.
            jobs = jobs.into_iter().map(FileJob::fresh).collect();
        }
        let source = Arc::new(HubSource::new(
            self.hub.clone(),
            self.http.clone(),
            plan.pinned.repo.clone(),
            plan.pinned.commit.clone(),
            files,
            self.engine.min_split_size.bytes(),
        ));
        let started = Instant::now();
        let claims = publication.claims();
        let rounds = self
            .run_engine(
                engine,
                Arc::clone(&source),
                reporter,
                jobs,
                &claims,
                &cancel,
            )
            .await?;
        let summary = rounds.summary;
        let mut done_elsewhere = 0;
        for key in rounds.done_elsewhere {
            done_elsewhere += publication.done_elsewhere(key);
        }
        // Publishes what the engine finished (waiting for locks other
        // processes hold); reported after the engine's own failures.
        let layout = publication.layout();
        let targets = publication.targets();
        let published = publication.finish(&cancel).await;
        let mut report = DownloadReport {
            files_skipped: plan.files.len() - fetch.len() + done_elsewhere,
            bytes_written: summary.bytes_written,
            requests: summary.requests,
            resolves: source.resolves(),
            retries: summary.retries,
            plan_requests: plan.pinned.requests,
            elapsed: started.elapsed(),
            ..DownloadReport::default()
        };
        let mut failed: Vec<(FileKey, hfd_engine::Error)> = Vec::new();
        let mut cancelled = summary.cancelled;
        for (key, outcome) in summary.files {
            match outcome {
                FileOutcome::Busy => failed.push((key, still_busy(key, &summary.busy, &claims))),
                FileOutcome::Done { .. } => report.files_done += 1,
                FileOutcome::Failed(e) => failed.push((key, e)),
                FileOutcome::Cancelled => cancelled = true,
                _ => {}
            }
        }
        if let Some((key, first)) = failed.into_iter().next() {
            let total = fetch.len();
            let failed_count = total.saturating_sub(report.files_done + done_elsewhere);
            let path = fetch
                .get(usize::try_from(key.0).unwrap_or(usize::MAX))
                .map(|f| f.remote.path.clone())
                .unwrap_or_default();
            return Err(Error::Files {
                failed: failed_count,
                total,
                path,
                reason: crate::error::describe_failure(&first, &source.bad_hosts(key)),
                first: Box::new(first),
            });
        }
        if cancelled {
            return Err(Error::Cancelled);
        }
        report.files_done += published?;
        let (revision, commit) = (plan.pinned.revision.clone(), plan.pinned.commit.clone());
        blocking(move || layout.finish(&revision, &commit)).await?;
        // The layout's last writes (the cache's ref) are batched renames too.
        crate::publisher::sync_batches(targets).await?;
        if let Some(pin) = &plan.shard_pin
            && plan.listing_complete
        {
            // The whole repo is in place at this run's commit: a later
            // sharded sync pins afresh.
            let _ = std::fs::remove_file(pin);
        }
        Ok(report)
    }
}

impl Downloader {
    /// The engine settings for a run over `files`: the memory budget is
    /// shared by the connections these files can use, not by the most the
    /// flags allow (`-x 64 -j 5` is 320); connections opened from now on
    /// get the run's receive window.
    fn engine_for(&self, files: &[RemoteFile]) -> EngineConfig {
        let mut engine = self.engine.clone();
        let sizes: Vec<u64> = files.iter().map(|f| f.size).collect();
        let tcp_cap = self.http.config().max_connections_per_host.get();
        if let Some(window) = engine.share_budget(&sizes, tcp_cap) {
            self.http.set_receive_window(window);
        }
        // The plan's requests measured the link: the small-file window
        // starts from its round trip (decision 0055).
        let stats = self.http.stats();
        engine.measured_link = stats.fastest_response().map(|round_trip| MeasuredLink {
            round_trip,
            streams_per_connection: stats
                .origins
                .iter()
                .map(|o| o.streams_per_connection)
                .max()
                .unwrap_or(1)
                .max(1),
            connections: tcp_cap,
        });
        engine
    }

    /// Runs the engine over the metered (and rate-limited) source, sharing
    /// the target with other processes through `claims`.
    async fn run_engine(
        &self,
        config: EngineConfig,
        source: Arc<HubSource>,
        reporter: Arc<dyn Reporter>,
        jobs: Vec<FileJob>,
        claims: &Arc<crate::claims::Claims>,
        cancel: &CancellationToken,
    ) -> Result<Rounds> {
        let metered = Arc::new(Layered::new(source, Meter(Arc::clone(&self.live))));
        if let Some(rate) = self.rate_limit {
            let limited = Arc::new(Layered::new(metered, RateLimit::new(rate)));
            let engine =
                Engine::new(config, limited, reporter)?.with_claims(Arc::clone(claims) as _);
            run_shared(&engine, jobs, claims, cancel).await
        } else {
            let engine =
                Engine::new(config, metered, reporter)?.with_claims(Arc::clone(claims) as _);
            run_shared(&engine, jobs, claims, cancel).await
        }
    }
}

/// Gives each job its resume identity (issue #5): content id and size decide
/// whether a journal from an earlier run is resumed; repo, commit and path
/// are recorded for people reading it. Job keys index `files`.
fn with_identities(
    jobs: Vec<FileJob>,
    plan: &DownloadPlan,
    files: &[RemoteFile],
    min_split: u64,
) -> Vec<FileJob> {
    jobs.into_iter()
        .map(|job| {
            let Some(file) = files.get(usize::try_from(job.key.0).unwrap_or(usize::MAX)) else {
                return job;
            };
            if file.size <= min_split {
                return job;
            }
            job.with_identity(FileIdentity::new(
                plan.pinned.repo.to_string(),
                plan.pinned.commit.as_str(),
                file.path.clone(),
                file.size,
                file.etag(),
            ))
        })
        .collect()
}

/// What [`run_shared`] did: the engine's summary (each job's last outcome,
/// totals over every round) and the jobs another process finished.
struct Rounds {
    summary: hfd_engine::Summary,
    done_elsewhere: Vec<u64>,
}

/// How often a file claimed by another process is looked at again.
const CLAIM_POLL: Duration = Duration::from_millis(250);
/// How often the wait for other processes is reported.
const WAIT_NOTE: Duration = Duration::from_secs(10);
/// How long files claimed by another process may show no sign of progress
/// (their partial and claim unchanged, none of them finished) before the
/// run gives up on them.
const WAIT_STALL: Duration = Duration::from_mins(30);

/// Size and modification time of a busy file's partial (or claim file):
/// the holder's sign of progress.
type ProgressMark = Option<(u64, std::time::SystemTime)>;

/// The error of a file another process still held when the run ended:
/// the claim it waited on (its job is in `busy`).
fn still_busy(key: FileKey, busy: &[FileJob], claims: &crate::claims::Claims) -> hfd_engine::Error {
    let claim = busy
        .iter()
        .find(|job| job.key == key)
        .map(|job| claims.path_of(job))
        .unwrap_or_default();
    hfd_engine::Error::Store {
        key,
        path: claim.clone(),
        source: Box::new(hfd_store::Error::Locked { path: claim }),
    }
}

/// Asks again for the claims of the `busy` files' jobs; with each answer,
/// the holder's [`ProgressMark`] (its partial's length and time, else its
/// claim's).
async fn ask_again(
    claims: &Arc<crate::claims::Claims>,
    busy: &[u64],
    jobs: &std::collections::HashMap<u64, FileJob>,
) -> Result<Vec<(u64, hfd_engine::Claim, ProgressMark)>> {
    use hfd_engine::ClaimGate;
    let claims = Arc::clone(claims);
    let busy: Vec<FileJob> = busy.iter().filter_map(|k| jobs.get(k).cloned()).collect();
    blocking(move || {
        Ok(busy
            .into_iter()
            .map(|job| {
                let claim = claims.claim(&job);
                let meta = std::fs::metadata(&job.partial_path)
                    .or_else(|_| std::fs::metadata(claims.path_of(&job)))
                    .ok();
                let mark = meta.and_then(|meta| Some((meta.len(), meta.modified().ok()?)));
                (job.key.0, claim, mark)
            })
            .collect())
    })
    .await
}

/// Runs `jobs` through `engine` sharing the target with other processes:
/// files another process has claimed are skipped at first; once the rest
/// is done, they are asked for again until each is finished elsewhere or
/// free (its holder ended), then downloaded here (resuming the holder's
/// journal). The wait ends on cancel, or after [`WAIT_STALL`] without
/// progress (those files are then reported busy).
async fn run_shared<S: hfd_engine::RangeSource>(
    engine: &Engine<S>,
    jobs: Vec<FileJob>,
    claims: &Arc<crate::claims::Claims>,
    cancel: &CancellationToken,
) -> Result<Rounds> {
    use hfd_engine::Claim;
    let mut summary = engine.run(jobs, cancel.clone()).await?;
    // The jobs of files another process holds, for when they come free.
    let mut busy_jobs: std::collections::HashMap<u64, FileJob> = std::mem::take(&mut summary.busy)
        .into_iter()
        .map(|j| (j.key.0, j))
        .collect();
    let started = Instant::now();
    let mut next_note = WAIT_NOTE;
    let mut last_progress = Instant::now();
    let mut seen: std::collections::HashMap<u64, ProgressMark> = std::collections::HashMap::new();
    loop {
        let busy: Vec<u64> = summary
            .files
            .iter()
            .filter(|(_, o)| matches!(o, FileOutcome::Busy))
            .map(|(k, _)| k.0)
            .collect();
        if busy.is_empty() || cancel.is_cancelled() {
            break;
        }
        let asked = ask_again(claims, &busy, &busy_jobs).await?;
        let mut rerun = Vec::new();
        for (key, claim, mark) in asked {
            match claim {
                Claim::Mine => rerun.push(key),
                Claim::DoneElsewhere => {}
                Claim::Busy => {
                    if seen.insert(key, mark) != Some(mark) {
                        last_progress = Instant::now();
                    }
                    continue;
                }
            }
            last_progress = Instant::now();
            if let Some(slot) = summary.files.iter_mut().find(|(k, _)| k.0 == key) {
                slot.1 = if claim == Claim::DoneElsewhere {
                    FileOutcome::DoneElsewhere
                } else {
                    FileOutcome::Cancelled
                };
            }
        }
        if !rerun.is_empty() {
            tracing::info!(
                files = rerun.len(),
                "files another process left are free; downloading them here"
            );
            let jobs: Vec<FileJob> = rerun.iter().filter_map(|k| busy_jobs.remove(k)).collect();
            let mut round = engine.run(jobs, cancel.clone()).await?;
            busy_jobs.extend(round.busy.drain(..).map(|j| (j.key.0, j)));
            for (key, outcome) in round.files {
                if let Some(slot) = summary.files.iter_mut().find(|(k, _)| *k == key) {
                    slot.1 = outcome;
                }
            }
            summary.bytes_written += round.bytes_written;
            summary.bytes_resumed += round.bytes_resumed;
            summary.requests += round.requests;
            summary.retries += round.retries;
            summary.cancelled |= round.cancelled;
            continue;
        }
        let still = summary
            .files
            .iter()
            .filter(|(_, o)| matches!(o, FileOutcome::Busy))
            .count();
        if still == 0 || last_progress.elapsed() >= WAIT_STALL {
            break;
        }
        if started.elapsed() >= next_note {
            tracing::warn!(
                files = still,
                waited_s = started.elapsed().as_secs(),
                "waiting for another process downloading the same files"
            );
            next_note += WAIT_NOTE;
        }
        tokio::select! {
            () = cancel.cancelled() => {}
            () = tokio::time::sleep(CLAIM_POLL) => {}
        }
    }
    if cancel.is_cancelled() {
        summary.cancelled = true;
    }
    // The jobs of files still busy elsewhere, for their errors.
    summary.busy = busy_jobs.into_values().collect();
    let done_elsewhere = summary
        .files
        .iter()
        .filter(|(_, o)| matches!(o, FileOutcome::DoneElsewhere))
        .map(|(k, _)| k.0)
        .collect();
    Ok(Rounds {
        summary,
        done_elsewhere,
    })
}

/// What the publisher needs to know of a plan.
fn publication_input(
    plan: &DownloadPlan,
    files: &Arc<[RemoteFile]>,
    min_split: u64,
) -> PublicationInput {
    PublicationInput {
        // The same bound as `with_identities`: these files get no journal.
        unjournaled_up_to: min_split,
        layout: Arc::clone(&plan.layout),
        commit: plan.pinned.commit.clone(),
        fetch_policy: plan.fetch_policy,
        fetch: Arc::clone(files),
        up_to_date: plan
            .files
            .iter()
            .filter(|f| f.action == FileAction::UpToDate && !f.settled)
            .map(|f| f.remote.clone())
            .collect(),
        // Cloned only when the layout has no record of it yet (a resync
        // of 10^5 files would copy them all for nothing).
        listing: (plan.listing_complete && !plan.layout.has_tree(&plan.pinned.commit)).then(|| {
            if plan.pinned.files.is_empty() {
                plan.files.iter().map(|f| f.remote.clone()).collect()
            } else {
                plan.pinned.files.clone()
            }
        }),
    }
}
