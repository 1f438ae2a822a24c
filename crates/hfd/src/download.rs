//! The use case: plan a repository download, then run it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use hfd_engine::{Engine, EngineConfig, FileJob, FileKey, FileOutcome, Reporter};
use hfd_http::HttpClient;
use hfd_hub::{HubClient, RemoteFile, RepoPlan, RepoRef, Revision, Selection};
use hfd_types::ContentDigest;

use crate::error::{Error, Result};
use crate::layout::LocalDir;
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
    /// Target folder.
    pub local_dir: PathBuf,
    /// When set, write the Hugging Face cache layout under this root
    /// instead of a plain folder at `local_dir`. (Not implemented yet: the
    /// plan refuses it.)
    pub cache_dir: Option<PathBuf>,
    /// Fetch files again even when they are up to date.
    pub force: bool,
}

impl DownloadRequest {
    /// Every file of `repo` at `revision` into `local_dir`.
    pub fn new(repo: RepoRef, revision: Revision, local_dir: impl Into<PathBuf>) -> Self {
        Self {
            repo,
            revision,
            selection: Selection::all(),
            local_dir: local_dir.into(),
            cache_dir: None,
            force: false,
        }
    }
}

/// What happens to one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileAction {
    /// Not present locally: fetch.
    New,
    /// Present but with another etag or size (or unknown): fetch again.
    Changed,
    /// Present with the same etag and size: skip.
    UpToDate,
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
    /// The hub side of the plan.
    pub repo: RepoPlan,
    /// Per-file actions, in listing order.
    pub files: Vec<PlannedFile>,
    /// The target.
    pub local_dir: PathBuf,
}

impl DownloadPlan {
    /// Files that will be fetched.
    pub fn to_fetch(&self) -> impl Iterator<Item = &PlannedFile> {
        self.files
            .iter()
            .filter(|f| f.action != FileAction::UpToDate)
    }

    /// Bytes that will be fetched.
    pub fn bytes_to_fetch(&self) -> u64 {
        self.to_fetch().map(|f| f.remote.size).sum()
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
}

impl Downloader {
    /// A downloader over a shared HTTP client (the hub client should use the
    /// same one, so connections are pooled once).
    pub fn new(hub: HubClient, http: HttpClient, engine: EngineConfig) -> Self {
        Self { hub, http, engine }
    }

    /// The hub client.
    pub fn hub(&self) -> &HubClient {
        &self.hub
    }

    /// Pins the revision, lists and filters the files, and compares them
    /// with what `local_dir` already holds.
    pub async fn plan(&self, request: &DownloadRequest) -> Result<DownloadPlan> {
        if let Some(dir) = &request.cache_dir {
            return Err(Error::Unsupported {
                what: format!("the cache layout (--cache / --cache-dir {})", dir.display()),
            });
        }
        let repo = self
            .hub
            .plan(&request.repo, &request.revision, &request.selection)
            .await?;
        let local = LocalDir::new(&request.local_dir);
        let mut files = Vec::with_capacity(repo.files.len());
        for remote in &repo.files {
            // Fails early, before any byte moves, on a path that would
            // escape the target.
            let final_path = local.final_path(&remote.path)?;
            let action = if request.force {
                if final_path.exists() {
                    FileAction::Changed
                } else {
                    FileAction::New
                }
            } else if local.is_current(&remote.path, &remote.etag(), remote.size) {
                FileAction::UpToDate
            } else if final_path.exists() {
                FileAction::Changed
            } else {
                FileAction::New
            };
            files.push(PlannedFile {
                remote: remote.clone(),
                action,
            });
        }
        Ok(DownloadPlan {
            repo,
            files,
            local_dir: request.local_dir.clone(),
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
        let local = LocalDir::new(&plan.local_dir);
        local.prepare()?;
        let fetch: Vec<&PlannedFile> = plan.to_fetch().collect();
        let mut jobs = Vec::with_capacity(fetch.len());
        for (index, file) in fetch.iter().enumerate() {
            let etag = file.remote.etag();
            let (final_path, partial) = local.prepare_file(&file.remote.path, &etag)?;
            let digest: ContentDigest = file.remote.expected_digest();
            jobs.push(
                FileJob::new(FileKey(index as u64), file.remote.size, partial, final_path)
                    .with_expected(digest),
            );
        }
        let files: Vec<RemoteFile> = fetch.iter().map(|f| f.remote.clone()).collect();
        let source = Arc::new(HubSource::new(
            self.hub.clone(),
            self.http.clone(),
            plan.repo.repo.clone(),
            plan.repo.commit.clone(),
            files.clone(),
        ));
        let metadata = Arc::new(MetadataWriter {
            inner: reporter,
            local: local.clone(),
            commit: plan.repo.commit.as_str().to_owned(),
            files,
            failure: std::sync::Mutex::new(None),
        });
        let engine = Engine::new(
            self.engine.clone(),
            Arc::clone(&source),
            Arc::clone(&metadata) as Arc<dyn Reporter>,
        )?;
        let started = Instant::now();
        let summary = engine.run(jobs, cancel).await?;
        if let Some(e) = metadata.failure.lock().expect("metadata lock").take() {
            return Err(e);
        }
        let mut report = DownloadReport {
            files_skipped: plan.files.len() - fetch.len(),
            bytes_written: summary.bytes_written,
            requests: summary.requests,
            resolves: source.resolves(),
            retries: summary.retries,
            plan_requests: plan.repo.requests,
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
        Ok(report)
    }
}

/// Writes each file's metadata as soon as the engine reports it done, so a
/// later interruption does not make a finished file look stale.
struct MetadataWriter {
    inner: Arc<dyn Reporter>,
    local: LocalDir,
    commit: String,
    files: Vec<RemoteFile>,
    failure: std::sync::Mutex<Option<Error>>,
}

impl Reporter for MetadataWriter {
    fn on_file_start(&self, key: FileKey, size: u64) {
        self.inner.on_file_start(key, size);
    }
    fn on_bytes(&self, key: FileKey, bytes: u64) {
        self.inner.on_bytes(key, bytes);
    }
    fn on_retry(&self, key: FileKey, event: &hfd_engine::RetryEvent<'_>) {
        self.inner.on_retry(key, event);
    }
    fn on_fallback(&self, key: FileKey) {
        self.inner.on_fallback(key);
    }
    fn on_file_done(&self, key: FileKey, digest: Option<ContentDigest>) {
        if let Some(file) = self.files.get(usize::try_from(key.0).unwrap_or(usize::MAX))
            && let Err(e) = self
                .local
                .write_metadata(&file.path, &self.commit, &file.etag())
        {
            let mut failure = self.failure.lock().expect("metadata lock");
            failure.get_or_insert(e);
        }
        self.inner.on_file_done(key, digest);
    }
    fn on_file_failed(&self, key: FileKey, error: &hfd_engine::Error) {
        self.inner.on_file_failed(key, error);
    }
    fn on_file_cancelled(&self, key: FileKey) {
        self.inner.on_file_cancelled(key);
    }
}
