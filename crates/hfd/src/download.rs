//! The use case: plan a repository download, then run it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use hfd_engine::{Engine, EngineConfig, FileIdentity, FileJob, FileKey, FileOutcome, Reporter};
use hfd_http::HttpClient;
use hfd_hub::{HubClient, RemoteFile, RepoPlan, RepoRef, Revision, Selection};

use crate::error::{Error, Result};
use crate::layer::Layered;
use crate::layout::{FetchPolicy, FileAction, Layout, OutputLayout};
use crate::limit::RateLimit;
use crate::meter::{LiveStats, Meter};
use crate::names::NameRules;
use crate::publisher::{Publication, PublicationInput, blocking};
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
    /// Which names the target filesystem can store (the host's by default).
    pub names: NameRules,
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
            names: NameRules::host(),
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
}

/// A resolved plan: the pinned commit, the selected files and what each
/// needs. Building it costs the revision and listing requests only.
#[derive(Debug, Clone)]
pub struct DownloadPlan {
    /// The revision pinned to its commit, and the listed files (what the
    /// hub answered).
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
    /// revision and listing requests only. The only write: a local file
    /// without metadata whose hash matches the hub's gets its metadata
    /// (see [`LocalDir::classify`](crate::LocalDir::classify)).
    pub async fn plan(&self, request: &DownloadRequest) -> Result<DownloadPlan> {
        let pinned = self
            .hub
            .plan(&request.repo, &request.revision, &request.selection)
            .await?;
        // Before anything touches the target: a name this filesystem
        // cannot store stops the run here, not halfway through.
        request
            .names
            .check(pinned.files.iter().map(|f| f.path.as_str()))?;
        let layout = request.layout.open(&request.repo);
        let fetch_policy = request.fetch_policy;
        let (files, pinned, layout) = blocking(move || {
            let files = pinned
                .files
                .iter()
                .map(|remote| {
                    // Fails early, before any byte moves, on a path that
                    // would escape the target.
                    let action = layout.classify(&pinned.commit, remote, fetch_policy)?;
                    Ok(PlannedFile {
                        remote: remote.clone(),
                        action,
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            Ok((files, pinned, layout))
        })
        .await?;
        let listing_complete =
            request.selection.is_all() && pinned.files.len() == pinned.listed_files;
        Ok(DownloadPlan {
            local_dir: layout.files_dir(&pinned.commit),
            pinned,
            files,
            layout,
            fetch_policy,
            listing_complete,
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
        let files: Vec<RemoteFile> = fetch.iter().map(|f| f.remote.clone()).collect();
        let (publication, jobs, reporter) = Publication::start(
            PublicationInput {
                layout: Arc::clone(&plan.layout),
                commit: plan.pinned.commit.clone(),
                fetch_policy: plan.fetch_policy,
                fetch: files.clone(),
                up_to_date: plan
                    .files
                    .iter()
                    .filter(|f| f.action == FileAction::UpToDate)
                    .map(|f| f.remote.clone())
                    .collect(),
                listing: plan.listing_complete.then(|| plan.pinned.files.clone()),
            },
            reporter,
        )
        .await?;
        // A file fetched in one request has nothing to resume from: a journal
        // would only add a file and its syncs (measured: 6 syncs per small
        // file). Only files the engine may split get one.
        let jobs = with_identities(jobs, plan, &files, self.engine.min_split_size.bytes());
        let source = Arc::new(HubSource::new(
            self.hub.clone(),
            self.http.clone(),
            plan.pinned.repo.clone(),
            plan.pinned.commit.clone(),
            files,
        ));
        let started = Instant::now();
        let metered = Arc::new(Layered::new(
            Arc::clone(&source),
            Meter(Arc::clone(&self.live)),
        ));
        let summary = match self.rate_limit {
            Some(rate) => {
                let limited = Arc::new(Layered::new(metered, RateLimit::new(rate)));
                Engine::new(self.engine.clone(), limited, reporter)?
                    .run(jobs, cancel.clone())
                    .await?
            }
            None => {
                Engine::new(self.engine.clone(), metered, reporter)?
                    .run(jobs, cancel.clone())
                    .await?
            }
        };
        // Publishes what the engine finished (waiting for locks other
        // processes hold); reported after the engine's own failures.
        let layout = publication.layout();
        let published = publication.finish(&cancel).await;
        let mut report = DownloadReport {
            files_skipped: plan.files.len() - fetch.len(),
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
                FileOutcome::Done { .. } => report.files_done += 1,
                FileOutcome::Failed(e) => failed.push((key, e)),
                FileOutcome::Cancelled => cancelled = true,
                _ => {}
            }
        }
        if let Some((key, first)) = failed.into_iter().next() {
            let total = fetch.len();
            let failed_count = total - report.files_done;
            let path = fetch
                .get(usize::try_from(key.0).unwrap_or(usize::MAX))
                .map(|f| f.remote.path.clone())
                .unwrap_or_default();
            return Err(Error::Files {
                failed: failed_count,
                total,
                path,
                reason: crate::error::describe(&first),
                first: Box::new(first),
            });
        }
        if cancelled {
            return Err(Error::Cancelled);
        }
        report.files_done += published?;
        let (revision, commit) = (plan.pinned.revision.clone(), plan.pinned.commit.clone());
        blocking(move || layout.finish(&revision, &commit)).await?;
        Ok(report)
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
