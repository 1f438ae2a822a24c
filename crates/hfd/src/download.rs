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
use crate::fetch_list::FetchList;
use crate::layer::Layered;
use crate::layout::{FetchPolicy, FileAction, Layout, OutputLayout, TreeRecord};
use crate::limit::RateLimit;
use crate::listing_ahead::ListingAhead;
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
    /// Whether the selection is every file (the listing then is the tree
    /// record, once complete).
    selects_all: bool,
    /// From [`Downloader::plan_ahead`]: the rest of the listing, read while
    /// `files` (its first pages) download; taken by the download.
    ahead: Option<Arc<std::sync::Mutex<Option<ListingAhead>>>>,
    /// The files to fetch, made once from `files` and grown by the rest of
    /// the listing.
    fetch: Arc<std::sync::OnceLock<Arc<FetchList>>>,
}

impl DownloadPlan {
    /// Whether pages of the listing are still to be read: `files` holds
    /// its first pages, and the download reads the rest while they
    /// download (decision 0065). The plan's totals are then those of the
    /// pages read so far.
    pub fn listing_pending(&self) -> bool {
        self.ahead.is_some()
    }

    /// The files the download fetches, `FileKey(i)` the `i`-th: those of
    /// [`Self::to_fetch`], then, while the download reads the rest of a
    /// pending listing, those of each later page
    /// ([`FetchList::is_complete`] says when no more come).
    pub fn fetch_list(&self) -> Arc<FetchList> {
        Arc::clone(self.fetch.get_or_init(|| {
            Arc::new(FetchList::new(
                self.to_fetch().map(|f| f.remote.clone()),
                !self.listing_pending(),
            ))
        }))
    }

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
    /// Selected files found up to date (when the listing was read during
    /// the download, those of every page).
    pub files_up_to_date: usize,
    /// Selected files of the listing, fetched or not.
    pub files_selected: usize,
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
        self.plan_with(request, false).await
    }

    /// [`Self::plan`] that stops reading the listing once a page with
    /// selected files was read while more pages remain: the plan then holds
    /// those first pages ([`DownloadPlan::listing_pending`]), and
    /// [`Self::download`] reads the rest while the first files download
    /// (decision 0065). A listing of one page, and a `--shard` run, are
    /// planned whole as by [`Self::plan`].
    pub async fn plan_ahead(&self, request: &DownloadRequest) -> Result<DownloadPlan> {
        self.plan_with(request, true).await
    }

    async fn plan_with(&self, request: &DownloadRequest, ahead: bool) -> Result<DownloadPlan> {
        let layout = request.layout.open(&request.repo);
        let fetch_policy = request.fetch_policy;
        let (pinned, files, share, rest) = if request.shard.is_some() {
            let (pinned, files, share) = self.plan_shard(request, Arc::clone(&layout)).await?;
            (pinned, files, share, None)
        } else {
            let (pinned, files, rest) =
                self.plan_paged(request, Arc::clone(&layout), ahead).await?;
            (pinned, files, None, rest)
        };
        // With a shard, `pinned.files` holds the whole listing.
        let selected = if request.shard.is_some() {
            pinned.files.len()
        } else {
            files.len()
        };
        let listing_complete =
            rest.is_none() && request.selection.is_all() && selected == pinned.listed_files;
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
            selects_all: request.selection.is_all(),
            ahead: rest.map(|rest| Arc::new(std::sync::Mutex::new(Some(rest)))),
            fetch: Arc::default(),
        })
    }

    /// Pins the revision, then lists it page by page, each page's files
    /// classified against the target while the next page is fetched
    /// (decision 0026). The plan takes the listed files over: its
    /// `pinned.files` stays empty (one copy of 10^5 listed files, not two).
    /// With `ahead`, stops after the first page with selected files when
    /// pages remain, and returns the rest of the listing.
    async fn plan_paged(
        &self,
        request: &DownloadRequest,
        layout: Arc<dyn Layout>,
        ahead: bool,
    ) -> Result<(RepoPlan, Vec<PlannedFile>, Option<ListingAhead>)> {
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
        let classifier = PagedClassifier::new(layout, commit.clone(), request.fetch_policy);
        let mut listing = ListingAhead::new(pages, classifier, request.names);
        // Before anything is downloaded: a name this filesystem cannot store,
        // or two names it would take for one, stops the run on the page that
        // has it (`ListingAhead::take`).
        loop {
            let enough = ahead && listing.files_taken() > 0;
            if listing.is_done() || enough {
                break;
            }
            listing.read_page().await?;
        }
        let files = listing.classified().await?;
        let total_bytes = files.iter().map(|f| f.remote.size).sum();
        let mut pinned = RepoPlan {
            repo: request.repo.clone(),
            revision: request.revision.clone(),
            commit,
            files: Vec::new(),
            listed_files: listing.listed_files(),
            total_bytes,
            requests: 0,
        };
        let rest = if listing.is_done() {
            pinned.listed_files = listing.finish()?;
            None
        } else {
            Some(listing)
        };
        pinned.requests = self.hub.requests_sent() - before;
        Ok((pinned, files, rest))
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
    ///
    /// A plan from [`Self::plan_ahead`] whose listing is pending is read to
    /// its end by its download: download it once.
    pub async fn download(
        &self,
        plan: &DownloadPlan,
        reporter: Arc<dyn Reporter>,
        cancel: CancellationToken,
    ) -> Result<DownloadReport> {
        let ahead = plan.ahead.as_ref().and_then(|rest| {
            rest.lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take()
        });
        // One copy of the files to fetch, shared by the publication, the
        // source and the progress display; it grows while `ahead` is read.
        let files = plan.fetch_list();
        let input = publication_input(plan, &files, self.engine.min_split_size.bytes());
        // With the listing still read (never complete yet, so the
        // publication writes no tree record), the record is kept from the
        // first pages on and written once the listing is complete.
        let tree =
            (ahead.is_some() && plan.selects_all && !plan.layout.has_tree(&plan.pinned.commit))
                .then(|| plan.files.iter().map(|f| &f.remote).collect());
        let (mut publication, jobs, reporter) = Publication::start(input, reporter).await?;
        let min_split = self.engine.min_split_size.bytes();
        let refetch = plan.fetch_policy == FetchPolicy::RefetchAll;
        let jobs = prepared_jobs(jobs, plan, &files, min_split, refetch);
        let sizes: Vec<u64> = plan.to_fetch().map(|f| f.remote.size).collect();
        let engine = self.engine_for(&sizes, ahead.is_some());
        let source = Arc::new(HubSource::new(
            self.hub.clone(),
            self.http.clone(),
            plan.pinned.repo.clone(),
            plan.pinned.commit.clone(),
            Arc::clone(&files),
            min_split,
        ));
        let started = Instant::now();
        let claims = publication.claims();
        let free_space = hfd_engine::FreeSpace::default();
        if engine.preflight && !jobs.is_empty() {
            free_space.check(&jobs).await?;
        }
        let (batches, fed) = tokio::sync::mpsc::channel(1);
        if !jobs.is_empty() {
            // Room for one batch: the channel was made for it.
            let _ = batches.try_send(jobs);
        }
        let preflight = engine.preflight;
        let feeding = async {
            let Some(ahead) = ahead else {
                drop(batches);
                return Fed::default();
            };
            let feeder = Feeder {
                plan,
                publication: &publication,
                files: &files,
                min_split,
                refetch,
                preflight: preflight.then_some(free_space),
            };
            feeder.feed(ahead, batches, tree, &cancel).await
        };
        let running = self.run_engine(engine, Arc::clone(&source), reporter, fed, &claims, &cancel);
        let (rounds, fed) = tokio::join!(running, feeding);
        let rounds = rounds?;
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
        let selected = plan.files.len() + fed.files;
        let up_to_date = plan
            .files
            .iter()
            .filter(|f| f.action == FileAction::UpToDate)
            .count()
            + fed.up_to_date;
        let mut report = DownloadReport {
            files_skipped: up_to_date + done_elsewhere,
            files_up_to_date: up_to_date,
            files_selected: selected,
            bytes_written: summary.bytes_written,
            requests: summary.requests,
            resolves: source.resolves(),
            retries: summary.retries,
            plan_requests: plan.pinned.requests + fed.requests,
            elapsed: started.elapsed(),
            ..DownloadReport::default()
        };
        if let Some(error) = fed.error {
            // The files fetched so far are published (and durable); the run
            // fails as the listing did, and a rerun resumes it (decision
            // 0027) and skips them.
            published?;
            return Err(error);
        }
        report.files_done = engine_outcome(summary, &files, &source, &claims, done_elsewhere)?;
        report.files_done += published?;
        let listing_complete = if plan.listing_pending() {
            plan.selects_all && selected == fed.listed
        } else {
            plan.listing_complete
        };
        let tree = fed.tree.filter(|_| listing_complete);
        complete_target(plan, layout, targets, tree, listing_complete).await?;
        Ok(report)
    }
}

/// After every file is in place: the tree record (`tree`, when the listing
/// was read during the download), the layout's last writes, made durable;
/// a complete listing drops a sharded sync's commit record.
async fn complete_target(
    plan: &DownloadPlan,
    layout: Arc<dyn Layout>,
    targets: Vec<hfd_store::TargetDir>,
    tree: Option<TreeRecord>,
    listing_complete: bool,
) -> Result<()> {
    let (revision, commit) = (plan.pinned.revision.clone(), plan.pinned.commit.clone());
    blocking(move || {
        if let Some(tree) = &tree {
            layout.write_tree(&commit, tree)?;
        }
        layout.finish(&revision, &commit)
    })
    .await?;
    // The layout's last writes (the cache's ref) are batched renames too.
    crate::publisher::sync_batches(targets).await?;
    if let Some(pin) = &plan.shard_pin
        && listing_complete
    {
        // The whole repo is in place at this run's commit: a later
        // sharded sync pins afresh.
        let _ = std::fs::remove_file(pin);
    }
    Ok(())
}

/// The files the engine finished; the run's error when a file failed (or
/// stayed busy elsewhere) or the run was cancelled.
fn engine_outcome(
    summary: hfd_engine::Summary,
    files: &FetchList,
    source: &HubSource,
    claims: &crate::claims::Claims,
    done_elsewhere: usize,
) -> Result<usize> {
    let mut failed: Vec<(FileKey, hfd_engine::Error)> = Vec::new();
    let mut cancelled = summary.cancelled;
    let done = summary.done;
    for (key, outcome) in summary.files {
        match outcome {
            FileOutcome::Busy => failed.push((key, still_busy(key, &summary.busy, claims))),
            FileOutcome::Failed(e) => failed.push((key, e)),
            FileOutcome::Cancelled => cancelled = true,
            _ => {}
        }
    }
    if let Some((key, first)) = failed.into_iter().next() {
        let total = files.len();
        let failed_count = total.saturating_sub(done + done_elsewhere);
        let path = files.get(key).map(|f| f.path.clone()).unwrap_or_default();
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
    Ok(done)
}

/// What the rest of a listing brought, read during the download.
#[derive(Default)]
struct Fed {
    /// Selected files of the pages read during the download.
    files: usize,
    /// Those found up to date.
    up_to_date: usize,
    /// Files the whole listing holds (before the selection), once complete.
    listed: usize,
    /// Hub requests made for those pages.
    requests: u64,
    /// The whole listing, for the tree record, when one is written.
    tree: Option<TreeRecord>,
    /// Why the listing stopped before its end (the download still finishes
    /// and publishes the files of the pages before).
    error: Option<Error>,
}

/// Reads the rest of a listing and hands each classified chunk's downloads
/// to the engine (decision 0065).
struct Feeder<'a> {
    plan: &'a DownloadPlan,
    publication: &'a Publication,
    files: &'a FetchList,
    min_split: u64,
    refetch: bool,
    /// The free-space check of each batch, unless preflight is off.
    preflight: Option<hfd_engine::FreeSpace>,
}

impl Feeder<'_> {
    /// Feeds `batches` until the listing ends, fails, the run is cancelled
    /// or the engine stops taking batches; the sender waits while the
    /// engine has enough queued, so the listing goes at the download's pace
    /// and the jobs held stay bounded.
    async fn feed(
        &self,
        mut ahead: ListingAhead,
        batches: tokio::sync::mpsc::Sender<Vec<FileJob>>,
        mut tree: Option<TreeRecord>,
        cancel: &CancellationToken,
    ) -> Fed {
        let mut fed = Fed::default();
        let requests_before = ahead.requests_sent();
        let error = loop {
            let chunk = tokio::select! {
                chunk = ahead.next_chunk() => chunk,
                () = cancel.cancelled() => break Some(Error::Cancelled),
            };
            let chunk = match chunk {
                Ok(Some(chunk)) => chunk,
                Ok(None) => break None,
                Err(e) => break Some(e),
            };
            fed.files += chunk.len();
            if let Some(tree) = tree.as_mut() {
                tree.extend(chunk.iter().map(|f| &f.remote));
            }
            let mut to_fetch = Vec::new();
            let mut refresh = Vec::new();
            for file in chunk {
                if file.action == FileAction::UpToDate {
                    fed.up_to_date += 1;
                    if !file.settled {
                        refresh.push(file.remote);
                    }
                } else {
                    to_fetch.push(file.remote);
                }
            }
            let count = to_fetch.len() as u64;
            let first = self.files.extend(to_fetch);
            let jobs = match self.publication.more(first..first + count, refresh).await {
                Ok(jobs) => jobs,
                Err(e) => break Some(e),
            };
            let jobs = prepared_jobs(jobs, self.plan, self.files, self.min_split, self.refetch);
            if jobs.is_empty() {
                continue;
            }
            // Each batch against the space left now: the files before it
            // took theirs as they were written.
            if let Some(free_space) = &self.preflight
                && let Err(e) = free_space.check(&jobs).await
            {
                break Some(e.into());
            }
            if batches.send(jobs).await.is_err() {
                // The engine stopped (cancelled): nothing more to give it.
                break None;
            }
        };
        fed.requests = ahead.requests_sent() - requests_before;
        drop(batches);
        fed.error = match error {
            Some(e) => Some(e),
            None if cancel.is_cancelled() => Some(Error::Cancelled),
            None => match ahead.finish() {
                Ok(listed) => {
                    fed.listed = listed;
                    fed.tree = tree;
                    self.files.close();
                    None
                }
                Err(e) => Some(e),
            },
        };
        fed
    }
}

/// The engine jobs of the files to fetch: each gets its resume identity,
/// and with `--force` (`refetch`) starts over.
fn prepared_jobs(
    jobs: Vec<FileJob>,
    plan: &DownloadPlan,
    files: &FetchList,
    min_split: u64,
    refetch: bool,
) -> Vec<FileJob> {
    let jobs = with_identities(jobs, plan, files, min_split);
    if refetch {
        // `--force` and repairs start over: a partial left by an earlier
        // run may hold the very bytes that made the file bad.
        jobs.into_iter().map(FileJob::fresh).collect()
    } else {
        jobs
    }
}

impl Downloader {
    /// The engine settings for a run over files of `sizes`: the memory
    /// budget is shared by the connections these files can use, not by the
    /// most the flags allow (`-x 64 -j 5` is 320); connections opened from
    /// now on get the run's receive window. With `more_to_come` (the rest
    /// of the listing is read during the download, decision 0065), the
    /// budget also holds what later pages may bring
    /// ([`EngineConfig::share_budget_growing`]).
    fn engine_for(&self, sizes: &[u64], more_to_come: bool) -> EngineConfig {
        let mut engine = self.engine.clone();
        let tcp_cap = self.http.config().max_connections_per_host.get();
        let window = if more_to_come {
            engine.share_budget_growing(sizes, tcp_cap)
        } else {
            engine.share_budget(sizes, tcp_cap)
        };
        if let Some(window) = window {
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
        jobs: tokio::sync::mpsc::Receiver<Vec<FileJob>>,
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
    files: &FetchList,
    min_split: u64,
) -> Vec<FileJob> {
    jobs.into_iter()
        .map(|job| {
            let Some(file) = files.get(job.key) else {
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

/// Adds to `summary` a round that ran the files `ran` again: a file done in
/// it leaves the list of files not done, the others take their new outcome.
fn add_round(
    summary: &mut hfd_engine::Summary,
    round: hfd_engine::Summary,
    ran: &std::collections::HashSet<u64>,
) {
    let mut not_done: std::collections::HashMap<u64, FileOutcome> =
        round.files.into_iter().map(|(k, o)| (k.0, o)).collect();
    summary.files.retain_mut(|(key, outcome)| {
        if !ran.contains(&key.0) {
            return true;
        }
        match not_done.remove(&key.0) {
            Some(again) => {
                *outcome = again;
                true
            }
            None => false,
        }
    });
    summary.done += round.done;
    summary.bytes_written += round.bytes_written;
    summary.bytes_resumed += round.bytes_resumed;
    summary.requests += round.requests;
    summary.retries += round.retries;
    summary.cancelled |= round.cancelled;
}

/// Runs `jobs` through `engine` sharing the target with other processes:
/// files another process has claimed are skipped at first; once the rest
/// is done, they are asked for again until each is finished elsewhere or
/// free (its holder ended), then downloaded here (resuming the holder's
/// journal). The wait ends on cancel, or after [`WAIT_STALL`] without
/// progress (those files are then reported busy).
async fn run_shared<S: hfd_engine::RangeSource>(
    engine: &Engine<S>,
    jobs: tokio::sync::mpsc::Receiver<Vec<FileJob>>,
    claims: &Arc<crate::claims::Claims>,
    cancel: &CancellationToken,
) -> Result<Rounds> {
    use hfd_engine::Claim;
    let mut summary = engine.run_fed(jobs, cancel.clone()).await?;
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
        let position: std::collections::HashMap<u64, usize> = (summary.files.iter().enumerate())
            .map(|(at, (k, _))| (k.0, at))
            .collect();
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
            if let Some(&at) = position.get(&key) {
                summary.files[at].1 = if claim == Claim::DoneElsewhere {
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
            let ran: std::collections::HashSet<u64> = jobs.iter().map(|j| j.key.0).collect();
            let mut round = engine.run(jobs, cancel.clone()).await?;
            busy_jobs.extend(round.busy.drain(..).map(|j| (j.key.0, j)));
            add_round(&mut summary, round, &ran);
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
    files: &Arc<FetchList>,
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
                plan.files.iter().map(|f| &f.remote).collect()
            } else {
                plan.pinned.files.iter().collect()
            }
        }),
    }
}
