//! The publishing side of a run: a blocking thread that hands each file the
//! engine finishes to the [`Layout`], and the reporter that feeds it.
//!
//! The engine writes each file to a partial name and, once complete and
//! verified, renames it to a *staged* name next to it. Publishing — the move
//! to the final place (local dir) or to `blobs/<etag>` plus the snapshot
//! link (cache), then the metadata — happens on a blocking thread as files
//! finish, under the lock huggingface_hub takes for the same target. When
//! another process holds that lock the file waits (the staged copy stays)
//! until the lock is free, so a file another process is writing is never
//! clobbered. In a layout that shares content (the cache), files with the
//! same etag are one download: one job per blob, every path published with
//! it.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use hfd_engine::{FileJob, FileKey, Reporter};
use hfd_hub::{Commit, RemoteFile};
use hfd_types::{ByteRange, ContentDigest};

use crate::claims::Claims;
use crate::error::{Error, Result};
use crate::fetch_list::FetchList;
use crate::layout::{FetchPolicy, HubLock, JobPaths, Layout, Publish, PublishItem};

/// What [`Publication::start`] needs.
pub(crate) struct PublicationInput {
    pub(crate) layout: Arc<dyn Layout>,
    pub(crate) commit: Commit,
    pub(crate) fetch_policy: FetchPolicy,
    /// Files to fetch; `FileKey(i)` is the `i`-th. Those listed when the
    /// publication starts get their jobs then, later ones through
    /// [`Publication::more`].
    pub(crate) fetch: Arc<FetchList>,
    /// Files of at most this size are fetched in one request without a
    /// journal: nothing of them is ever resumed, so they are published
    /// straight from their partial (no staged name, one rename less per
    /// file of a dataset; a crash before publishing refetches them).
    pub(crate) unjournaled_up_to: u64,
    /// Files found up to date (their links/metadata are refreshed).
    pub(crate) up_to_date: Vec<RemoteFile>,
    /// The complete listing when the run is unfiltered (for
    /// `trees/<commit>.json`).
    pub(crate) listing: Option<crate::layout::TreeRecord>,
}

/// Items whose lock another process holds, with their job key (none for an
/// up-to-date file's refresh), tried again at the end.
type Waiting = Vec<(Option<u64>, PublishItem)>;

/// The publishing side of a run: the reporter the engine calls, and the
/// blocking thread that publishes files as they finish.
pub(crate) struct Publication {
    core: Arc<Core>,
    reporter: Arc<PublishReporter>,
    worker: JoinHandle<Outcome>,
    /// Up-to-date files whose lock was busy when refreshed, and files
    /// another process finished (their links and metadata are refreshed).
    waiting: Arc<Mutex<Waiting>>,
    /// The target folders the jobs write into: their batched renames are
    /// made durable when the run ends.
    targets: Arc<Mutex<Vec<hfd_store::TargetDir>>>,
    /// Etag → key of the job downloading it (layouts that share content).
    by_etag: Arc<Mutex<HashMap<String, u64>>>,
}

/// What the publisher thread needs (it holds no sender, so it ends when the
/// reporter is dropped or [`Publication::finish`] closes the channel).
struct Core {
    layout: Arc<dyn Layout>,
    commit: Commit,
    fetch_policy: FetchPolicy,
    /// Job key → the item published when it is done (shared with the
    /// claims); dropped once published, so a run holds the items of the
    /// files not published yet, not of the whole listing.
    items: Arc<Mutex<HashMap<u64, PublishItem>>>,
    /// The files to fetch, by key.
    fetch: Arc<FetchList>,
    /// Files of at most this size are published from their partial
    /// ([`PublicationInput::unjournaled_up_to`]).
    unjournaled_up_to: u64,
    /// The per-file claims shared with other processes; a job's claim is
    /// released once it is published.
    claims: Arc<Claims>,
}

/// The reporter given to the engine: forwards events and hands finished
/// files to the publisher thread.
struct PublishReporter {
    inner: Arc<dyn Reporter>,
    /// The publication's items: a finished job's is taken out here, with
    /// its followers, under the items' lock (a file of a later page then
    /// either joins it before, or gets its own job).
    items: Arc<Mutex<HashMap<u64, PublishItem>>>,
    /// Job key → other fetch keys sharing its download (cache dedup).
    followers: Mutex<HashMap<u64, Vec<(FileKey, u64)>>>,
    extra_done: AtomicUsize,
    tx: Mutex<Option<mpsc::Sender<(u64, PublishItem)>>>,
}

#[derive(Default)]
struct Outcome {
    waiting: Vec<(Option<u64>, PublishItem)>,
    errors: Vec<Error>,
}

impl Publication {
    /// Prepares the target, writes the tree listing, refreshes up-to-date
    /// files, builds one engine job per download of the files listed so far
    /// and starts the publisher. Returns the jobs and the reporter to give
    /// the engine.
    pub(crate) async fn start(
        input: PublicationInput,
        inner: Arc<dyn Reporter>,
    ) -> Result<(Self, Vec<FileJob>, Arc<dyn Reporter>)> {
        let PublicationInput {
            layout,
            commit,
            fetch_policy,
            fetch,
            unjournaled_up_to,
            up_to_date,
            listing,
        } = input;
        let layout = blocking(move || {
            let layout = layout.prepare()?;
            if let Some(listing) = &listing {
                layout.write_tree(&commit, listing)?;
            }
            Ok((layout, commit))
        })
        .await?;
        let (layout, commit) = layout;
        let items = Arc::new(Mutex::new(HashMap::new()));
        let claims = Arc::new(Claims::new(
            Arc::clone(&layout),
            commit.clone(),
            fetch_policy,
            Arc::clone(&items),
        ));
        let core = Arc::new(Core {
            claims,
            layout,
            commit,
            fetch_policy,
            items,
            fetch: Arc::clone(&fetch),
            unjournaled_up_to,
        });
        let (tx, rx) = mpsc::channel::<(u64, PublishItem)>();
        let reporter = Arc::new(PublishReporter {
            inner,
            items: Arc::clone(&core.items),
            followers: Mutex::default(),
            extra_done: AtomicUsize::new(0),
            tx: Mutex::new(Some(tx)),
        });
        let worker = {
            let core = Arc::clone(&core);
            tokio::task::spawn_blocking(move || {
                let mut outcome = Outcome::default();
                for (key, item) in rx {
                    core.publish_into(Some(key), item, &mut outcome);
                }
                outcome
            })
        };
        let engine_reporter = Arc::clone(&reporter) as Arc<dyn Reporter>;
        let publication = Self {
            core,
            reporter,
            worker,
            waiting: Arc::default(),
            targets: Arc::default(),
            by_etag: Arc::default(),
        };
        let jobs = publication.more(0..fetch.len() as u64, up_to_date).await?;
        Ok((publication, jobs, engine_reporter))
    }

    /// The jobs of the files to fetch with `keys` (already in the fetch
    /// list), and the refresh of `up_to_date` files (their links and
    /// metadata at this commit): the next part of a listing that arrives
    /// while the first files download.
    pub(crate) async fn more(
        &self,
        keys: Range<u64>,
        up_to_date: Vec<RemoteFile>,
    ) -> Result<Vec<FileJob>> {
        let core = Arc::clone(&self.core);
        let followers = Arc::clone(&self.reporter);
        let (by_etag, waiting, targets) = (
            Arc::clone(&self.by_etag),
            Arc::clone(&self.waiting),
            Arc::clone(&self.targets),
        );
        blocking(move || {
            let jobs = core.jobs(keys, &followers.followers, &by_etag)?;
            let mut targets = lock(&targets);
            for target in jobs.iter().filter_map(|job| job.target.as_ref()) {
                if !targets.iter().any(|t| t.root() == target.root()) {
                    targets.push(target.clone());
                }
            }
            drop(targets);
            let busy = core.refresh(up_to_date)?;
            lock(&waiting).extend(busy);
            Ok(jobs)
        })
        .await
    }

    /// After the engine: publishes what is left, waiting (cancellably) for
    /// locks other processes hold. Returns how many files beyond the engine's
    /// jobs were completed (paths sharing a download), or the first
    /// publishing error.
    pub(crate) async fn finish(self, cancel: &CancellationToken) -> Result<usize> {
        let targets = self.targets();
        let published = self.publish_rest(cancel).await;
        // Whatever happened, what was published is made durable before the
        // run reports it (one sync per folder, not one per file).
        let synced = sync_batches(targets).await;
        let published = published?;
        synced?;
        Ok(published)
    }

    /// The target folders, to make later batched renames durable with
    /// [`sync_batches`].
    pub(crate) fn targets(&self) -> Vec<hfd_store::TargetDir> {
        lock(&self.targets).clone()
    }

    async fn publish_rest(self, cancel: &CancellationToken) -> Result<usize> {
        drop(self.reporter.tx.lock().expect("sender lock").take());
        let mut outcome = match self.worker.await {
            Ok(outcome) => outcome,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        };
        outcome
            .waiting
            .extend(std::mem::take(&mut *lock(&self.waiting)));
        let started = Instant::now();
        let mut next_note = Duration::from_secs(10);
        while !outcome.waiting.is_empty() && outcome.errors.is_empty() {
            let core = Arc::clone(&self.core);
            let items = std::mem::take(&mut outcome.waiting);
            let round = blocking(move || {
                let mut round = Outcome::default();
                for (key, item) in items {
                    core.publish_into(key, item, &mut round);
                }
                Ok(round)
            })
            .await?;
            outcome.waiting = round.waiting;
            outcome.errors.extend(round.errors);
            if outcome.waiting.is_empty() {
                break;
            }
            if started.elapsed() >= next_note {
                tracing::warn!(
                    files = outcome.waiting.len(),
                    waited_s = started.elapsed().as_secs(),
                    "waiting for another process to finish writing the same files"
                );
                next_note += Duration::from_secs(10);
            }
            tokio::select! {
                () = cancel.cancelled() => return Err(Error::Cancelled),
                () = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
        }
        match outcome.errors.into_iter().next() {
            Some(e) => Err(e),
            None => Ok(self.reporter.extra_done.load(Ordering::Relaxed)),
        }
    }

    /// The claims the engine asks before each file.
    pub(crate) fn claims(&self) -> Arc<Claims> {
        Arc::clone(&self.core.claims)
    }

    /// Records that another process finished the job `key`: its paths are
    /// refreshed like up-to-date files (metadata at this commit, cache
    /// links) and the display sees it done. Returns how many paths it
    /// covers.
    pub(crate) fn done_elsewhere(&mut self, key: u64) -> usize {
        let Some(item) = lock(&self.core.items).remove(&key) else {
            return 0;
        };
        let digest = item.files.first().map(RemoteFile::expected_digest);
        let mut keys = vec![(FileKey(key), item.files.first().map_or(0, |f| f.size))];
        keys.extend(
            lock(&self.reporter.followers)
                .get(&key)
                .into_iter()
                .flatten()
                .copied(),
        );
        for &(k, size) in &keys {
            self.reporter.inner.on_file_start(k, size);
            self.reporter.inner.on_file_done(k, digest);
        }
        lock(&self.waiting).push((
            None,
            PublishItem {
                files: item.files,
                staged: None,
            },
        ));
        keys.len()
    }

    /// The layout as used (the cache may have turned symlinks off).
    pub(crate) fn layout(&self) -> Arc<dyn Layout> {
        Arc::clone(&self.core.layout)
    }
}

impl Core {
    fn publish_into(&self, key: Option<u64>, item: PublishItem, outcome: &mut Outcome) {
        // An up-to-date refresh never replaces the file.
        let fetch = if item.staged.is_some() {
            self.fetch_policy
        } else {
            FetchPolicy::SkipUpToDate
        };
        // A download's claim sits on huggingface_hub's lock file: the lock
        // is taken through it (another descriptor would meet the claim).
        let lock = match key {
            Some(key) => self.claims.hub_lock(key),
            None => Some(HubLock::Take),
        };
        let Some(lock) = lock else {
            tracing::info!(file = %item.files.first().map_or("", |f| f.path.as_str()), "another process holds the lock; waiting");
            outcome.waiting.push((key, item));
            return;
        };
        match self.layout.publish(&self.commit, &item, fetch, lock) {
            Ok(Publish::Done) => {
                if let Some(key) = key {
                    self.claims.release(key);
                    self.fetch.forget(FileKey(key));
                }
            }
            Ok(Publish::Busy) => {
                tracing::info!(file = %item.files.first().map_or("", |f| f.path.as_str()), "another process holds the lock; waiting");
                outcome.waiting.push((key, item));
            }
            Err(e) => outcome.errors.push(e),
        }
    }
}

impl Reporter for PublishReporter {
    fn on_file_start(&self, key: FileKey, size: u64) {
        self.inner.on_file_start(key, size);
    }
    fn on_bytes(&self, key: FileKey, bytes: u64) {
        self.inner.on_bytes(key, bytes);
    }
    fn on_written(&self, key: FileKey, range: ByteRange) {
        self.inner.on_written(key, range);
    }
    fn on_file_resumed(&self, key: FileKey, bytes: u64) {
        self.inner.on_file_resumed(key, bytes);
    }
    fn on_retry(&self, key: FileKey, event: &hfd_engine::RetryEvent<'_>) {
        self.inner.on_retry(key, event);
    }
    fn on_file_restart(&self, key: FileKey, attempt: u32, cause: &hfd_engine::Error) {
        self.inner.on_file_restart(key, attempt, cause);
    }
    fn on_fallback(&self, key: FileKey) {
        self.inner.on_fallback(key);
    }
    fn on_file_done(&self, key: FileKey, digest: Option<ContentDigest>) {
        let (item, followers) = {
            let mut items = lock(&self.items);
            let followers = lock(&self.followers).remove(&key.0);
            (items.remove(&key.0), followers)
        };
        // Reported before it is handed to the publisher, which forgets the
        // file once published.
        self.inner.on_file_done(key, digest);
        if let Some(followers) = followers {
            self.extra_done
                .fetch_add(followers.len(), Ordering::Relaxed);
            for (follower, size) in followers {
                self.inner.on_file_start(follower, size);
                self.inner.on_file_done(follower, digest);
            }
        }
        if let Some(item) = item
            && let Some(tx) = self.tx.lock().expect("sender lock").as_ref()
        {
            // Fails only once the publisher is gone (run over); nothing to do.
            let _ = tx.send((key.0, item));
        }
    }
    fn on_file_failed(&self, key: FileKey, error: &hfd_engine::Error) {
        self.inner.on_file_failed(key, error);
    }
    fn on_file_cancelled(&self, key: FileKey) {
        self.inner.on_file_cancelled(key);
    }
}

impl Core {
    /// One engine job per download of the fetch list's `keys`; in a layout
    /// that shares content, a file whose etag a job not yet published
    /// downloads follows that job instead (one of a later batch whose
    /// leader is already published gets its own job, which its claim finds
    /// done: it is only linked).
    fn jobs(
        &self,
        keys: Range<u64>,
        followers: &Mutex<HashMap<u64, Vec<(FileKey, u64)>>>,
        by_etag: &Mutex<HashMap<String, u64>>,
    ) -> Result<Vec<FileJob>> {
        let mut jobs = Vec::new();
        let mut by_etag = lock(by_etag);
        for key in keys {
            let Some(file) = self.fetch.get(FileKey(key)) else {
                continue;
            };
            let file = RemoteFile::clone(&file);
            if self.layout.shares_content()
                && let Some(&leader) = by_etag.get(&file.etag())
            {
                let mut items = lock(&self.items);
                if let Some(item) = items.get_mut(&leader) {
                    lock(followers)
                        .entry(leader)
                        .or_default()
                        .push((FileKey(key), file.size));
                    item.files.push(file);
                    continue;
                }
            }
            let JobPaths {
                target,
                partial,
                staged,
            } = self.layout.job_paths(&file)?;
            let staged = if file.size <= self.unjournaled_up_to {
                partial.clone()
            } else {
                staged
            };
            let digest: ContentDigest = file.expected_digest();
            jobs.push(
                FileJob::new(FileKey(key), file.size, partial, &staged)
                    .with_expected(digest)
                    .with_target(target),
            );
            if self.layout.shares_content() {
                by_etag.insert(file.etag(), key);
            }
            lock(&self.items).insert(
                key,
                PublishItem {
                    files: vec![file],
                    staged: Some(staged),
                },
            );
        }
        Ok(jobs)
    }

    /// Refreshes `up_to_date` files; returns those whose lock another
    /// process holds, to try again at the end.
    fn refresh(&self, up_to_date: Vec<RemoteFile>) -> Result<Waiting> {
        let mut waiting = Vec::new();
        for file in up_to_date {
            let item = PublishItem {
                files: vec![file],
                staged: None,
            };
            match self.layout.publish(
                &self.commit,
                &item,
                FetchPolicy::SkipUpToDate,
                HubLock::Take,
            )? {
                Publish::Done => {}
                Publish::Busy => waiting.push((None, item)),
            }
        }
        Ok(waiting)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Syncs the folders of every batched rename in `targets`.
pub(crate) async fn sync_batches(targets: Vec<hfd_store::TargetDir>) -> Result<()> {
    blocking(move || {
        for target in &targets {
            target.sync_batch()?;
        }
        Ok(())
    })
    .await
}

pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::{CacheRepo, LocalDir};
    use hfd_hub::{RepoId, RepoRef};

    fn file(path: &str, id: u8, size: u64) -> RemoteFile {
        RemoteFile {
            path: path.to_owned(),
            size,
            oid: ContentDigest::GitSha1([id; 20]),
            lfs_sha256: None,
            xet_hash: None,
        }
    }

    /// A publication of `fetch` into `layout`, started; its jobs.
    async fn started(
        layout: Arc<dyn Layout>,
        fetch: impl IntoIterator<Item = RemoteFile>,
        unjournaled_up_to: u64,
    ) -> (Publication, Vec<FileJob>) {
        let input = PublicationInput {
            layout,
            commit: Commit::parse(&"a".repeat(40)).unwrap(),
            fetch_policy: FetchPolicy::SkipUpToDate,
            fetch: Arc::new(FetchList::new(fetch, true)),
            unjournaled_up_to,
            up_to_date: Vec::new(),
            listing: None,
        };
        let (publication, jobs, _reporter) =
            Publication::start(input, Arc::new(hfd_engine::NoopReporter))
                .await
                .unwrap();
        (publication, jobs)
    }

    #[tokio::test]
    async fn cache_downloads_shared_content_once() {
        let dir = tempfile::tempdir().unwrap();
        let cache = CacheRepo::new(dir.path(), &RepoRef::model(RepoId::new("o/m").unwrap()));
        let files = [file("x", 1, 3), file("y/x", 1, 3), file("z", 2, 3)];
        let (publication, jobs) = started(Arc::new(cache.clone()), files, 0).await;
        let keys: Vec<u64> = jobs.iter().map(|j| j.key.0).collect();
        assert_eq!(keys, [0, 2], "one job per distinct etag");
        assert!(jobs.iter().all(|j| j.final_path.starts_with(cache.dir())));
        assert_eq!(
            publication.finish(&CancellationToken::new()).await.unwrap(),
            0
        );
    }

    #[tokio::test]
    async fn local_dir_downloads_every_path() {
        let dir = tempfile::tempdir().unwrap();
        let files = [file("x", 1, 3), file("y/x", 1, 3)];
        let (publication, jobs) = started(Arc::new(LocalDir::new(dir.path())), files, 0).await;
        assert_eq!(jobs.len(), 2);
        assert!(dir.path().join(".cache/huggingface/CACHEDIR.TAG").is_file());
        publication.finish(&CancellationToken::new()).await.unwrap();
    }

    /// A file fetched without a journal is published from its partial (no
    /// staged name, one rename less); a larger one keeps its staged name.
    #[tokio::test]
    async fn unjournaled_files_are_published_from_their_partial() {
        let dir = tempfile::tempdir().unwrap();
        let files = [file("small", 1, 3), file("large", 2, 4)];
        let (publication, jobs) = started(Arc::new(LocalDir::new(dir.path())), files, 3).await;
        assert_eq!(jobs[0].final_path, jobs[0].partial_path, "small");
        assert_ne!(jobs[1].final_path, jobs[1].partial_path, "large");
        assert!(jobs[1].final_path.to_string_lossy().ends_with(".verified"));
        publication.finish(&CancellationToken::new()).await.unwrap();
    }
}
