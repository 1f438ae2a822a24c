//! Pull-through: a repo, revision or file the folders do not hold is asked
//! from the upstream hubs (in order, failing over on network and server
//! errors), with the client's own token, and files are fetched through
//! hfd's [`Downloader`] into the first cache, verified, then served.
//!
//! Access: every answer in this mode first pins the revision upstream with
//! the client's token (private repos), and every file answer first checks
//! that upstream lets that token read the repo's files (gated repos), so a
//! cached gated file is only served to a client upstream would serve it to.
//! Verdicts are remembered for [`ACCESS_TTL`] per (repo, token). The
//! server's own token, when configured, is only used to fetch files of a
//! repo the client was already granted, and never appears in an answer.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::{Method, Response, StatusCode};
use sha2::Digest as _;
use tokio::sync::{OnceCell, watch};
use tokio_util::sync::CancellationToken;

use hfd::hfd_engine::EngineConfig;
use hfd::hfd_http::HttpClient;
use hfd::hfd_hub::{
    self, Commit, HubClient, HubConfig, HubErrorKind, RepoRef, Revision, Selection, Token,
};
use hfd::{CacheRepo, DownloadRequest, Downloader, ErrorKind, OutputLayout};

use crate::answer::{self, HubError};
use crate::arrival::{Arrival, ArrivalReporter};
use crate::body::ResBody;
use crate::listing::{FileEntry, Listing};

/// How long a granted access, a pinned branch and a listing are reused.
pub const ACCESS_TTL: Duration = Duration::from_mins(1);

/// Most remembered pins, listings and verdicts before they are dropped.
const MEMORY_ENTRIES: usize = 4096;

/// Where and how to pull from.
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    /// Hubs in fail-over order; their `token` is ignored (the client's is used).
    pub hubs: Vec<HubConfig>,
    /// Transport shared by every upstream request.
    pub http: HttpClient,
    /// Engine settings of the fetches.
    pub engine: EngineConfig,
    /// The server's own token: used to fetch files of repos the client was
    /// granted when the client sent none; never sent to a client.
    pub server_token: Option<Token>,
    /// Cache root the fetched files go to.
    pub cache: PathBuf,
}

/// An upstream failure, as the client is told.
#[derive(Clone, Debug)]
pub(crate) struct UpErr {
    status: StatusCode,
    code: Option<HubError>,
    message: String,
}

impl UpErr {
    pub(crate) fn answer(&self, method: &Method) -> Response<ResBody> {
        answer::error(method, self.status, self.code, &self.message)
    }

    fn unavailable(what: &str) -> Self {
        Self {
            status: StatusCode::BAD_GATEWAY,
            code: None,
            message: format!("upstream unavailable: {what}"),
        }
    }

    /// Our own words for the upstream's answer: its text may hold anything.
    fn from_hub(e: &hfd_hub::Error, authenticated: bool) -> Self {
        let (status, code, message) = match e.kind() {
            HubErrorKind::NotFound => (
                StatusCode::NOT_FOUND,
                Some(HubError::RepoNotFound),
                "Repository not found",
            ),
            HubErrorKind::Gated => (
                if authenticated {
                    StatusCode::FORBIDDEN
                } else {
                    StatusCode::UNAUTHORIZED
                },
                Some(HubError::GatedRepo),
                "Access to this repository is restricted: upstream does not grant it to this token",
            ),
            HubErrorKind::InvalidToken => (
                StatusCode::UNAUTHORIZED,
                None,
                "Invalid credentials in Authorization header",
            ),
            HubErrorKind::Forbidden => (
                StatusCode::FORBIDDEN,
                None,
                "Upstream refused access with this token",
            ),
            HubErrorKind::RevisionNotFound => (
                StatusCode::NOT_FOUND,
                Some(HubError::RevisionNotFound),
                "Invalid rev id",
            ),
            HubErrorKind::EntryNotFound => (
                StatusCode::NOT_FOUND,
                Some(HubError::EntryNotFound),
                "Entry not found",
            ),
            HubErrorKind::RateLimited { .. } => {
                return Self {
                    status: StatusCode::SERVICE_UNAVAILABLE,
                    code: None,
                    message: "upstream is rate limiting this mirror; retry later".to_owned(),
                };
            }
            _ => return Self::unavailable("it did not answer as a hub"),
        };
        Self {
            status,
            code,
            message: message.to_owned(),
        }
    }

    fn from_download(e: &hfd::Error, authenticated: bool) -> Self {
        if let hfd::Error::Hub(hub) = e {
            return Self::from_hub(hub, authenticated);
        }
        match e.kind() {
            ErrorKind::Integrity => Self::unavailable("it sent bytes that fail their hash"),
            ErrorKind::Disk => Self {
                status: StatusCode::INSUFFICIENT_STORAGE,
                code: None,
                message: "the mirror cannot store the file".to_owned(),
            },
            ErrorKind::Auth => Self {
                status: StatusCode::FORBIDDEN,
                code: Some(HubError::GatedRepo),
                message: "upstream refused the file to this token".to_owned(),
            },
            ErrorKind::NotFound => Self {
                status: StatusCode::NOT_FOUND,
                code: Some(HubError::EntryNotFound),
                message: "Entry not found".to_owned(),
            },
            _ => Self::unavailable("the download failed"),
        }
    }

    /// Whether the next upstream may answer better.
    fn fail_over(e: &hfd_hub::Error) -> bool {
        matches!(
            e.kind(),
            HubErrorKind::Unreachable
                | HubErrorKind::Server
                | HubErrorKind::Malformed
                | HubErrorKind::RateLimited { .. }
        )
    }
}

/// One file's pull from upstream, shared by every client that asks for it
/// while it runs.
pub(crate) struct Flight {
    /// Its bytes as they land.
    pub(crate) arrival: Arc<Arrival>,
    outcome: watch::Sender<Option<Result<(), UpErr>>>,
}

impl Flight {
    /// Waits for the pull to end.
    pub(crate) async fn outcome(&self) -> Result<(), UpErr> {
        let mut rx = self.outcome.subscribe();
        let ended = rx.wait_for(Option::is_some).await;
        match ended.as_deref() {
            Ok(Some(outcome)) => outcome.clone(),
            _ => Err(UpErr::unavailable("the download task failed")),
        }
    }
}

/// Whether a client may read a repo's files.
pub(crate) enum Access {
    Granted,
    Denied(UpErr),
}

/// Who is asking: a digest of the client's token (tokens are not kept).
type Who = String;

fn who(token: Option<&str>) -> Who {
    token.map_or_else(String::new, |t| {
        hex::encode(sha2::Sha256::digest(t.as_bytes()))
    })
}

struct Timed<T> {
    value: T,
    at: Instant,
}

/// Work in progress per key: callers with the same key share one run.
type Flights<K, T> = Mutex<HashMap<K, Arc<OnceCell<T>>>>;

/// Runs `make` once for every caller that asks for `key` while it runs;
/// all get its outcome. The first caller drives it; if that caller goes
/// away, a waiting one takes over. The next call after it ends starts afresh.
async fn once<K, T, F>(flights: &Flights<K, T>, key: K, make: impl FnOnce() -> F) -> T
where
    K: std::hash::Hash + Eq + Clone,
    T: Clone,
    F: std::future::Future<Output = T>,
{
    let cell = Arc::clone(lock(flights).entry(key.clone()).or_default());
    let out = cell.get_or_init(make).await.clone();
    let mut map = lock(flights);
    if map.get(&key).is_some_and(|c| Arc::ptr_eq(c, &cell)) {
        map.remove(&key);
    }
    out
}

type PinKey = (RepoRef, String, Who);

/// A pinned commit and its listing.
type Pinned = (String, Arc<Listing>);

/// The pull-through state.
pub(crate) struct Upstream {
    config: UpstreamConfig,
    pins: Mutex<HashMap<PinKey, Timed<Pinned>>>,
    granted: Mutex<HashMap<(RepoRef, Who), Instant>>,
    pinning: Flights<PinKey, Result<Pinned, UpErr>>,
    checking: Flights<(RepoRef, Who), Result<(), UpErr>>,
    fetching: Mutex<HashMap<(String, String), Arc<Flight>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn remember<K: std::hash::Hash + Eq, V>(map: &Mutex<HashMap<K, V>>, key: K, value: V) {
    let mut m = lock(map);
    if m.len() >= MEMORY_ENTRIES {
        m.clear();
    }
    m.insert(key, value);
}

impl Upstream {
    pub(crate) fn new(config: UpstreamConfig) -> Self {
        Self {
            config,
            pins: Mutex::default(),
            granted: Mutex::default(),
            pinning: Mutex::default(),
            checking: Mutex::default(),
            fetching: Mutex::default(),
        }
    }

    fn client(&self, hub: &HubConfig, token: Option<&str>) -> HubClient {
        let mut config = hub.clone();
        config.token = token.and_then(|t| Token::new(t).ok());
        HubClient::new(config, self.config.http.clone())
    }

    /// Runs `op` against each hub in turn while the failure is one another
    /// hub may not have.
    async fn each_hub<T, F, Fut>(&self, token: Option<&str>, op: F) -> Result<T, UpErr>
    where
        F: Fn(HubClient) -> Fut,
        Fut: std::future::Future<Output = Result<T, hfd_hub::Error>>,
    {
        let mut last = UpErr::unavailable("no upstream configured");
        for hub in &self.config.hubs {
            match op(self.client(hub, token)).await {
                Ok(v) => return Ok(v),
                Err(e) if UpErr::fail_over(&e) => {
                    tracing::warn!(upstream = %hub.endpoint, error = %e, "upstream failed; trying the next");
                    last = UpErr::from_hub(&e, token.is_some());
                }
                Err(e) => return Err(UpErr::from_hub(&e, token.is_some())),
            }
        }
        Err(last)
    }

    /// Pins `revision` and lists the commit upstream, as the client (its
    /// token) sees them; remembered for [`ACCESS_TTL`] per token.
    pub(crate) async fn pin_and_list(
        &self,
        repo: &RepoRef,
        revision: &Revision,
        token: Option<&str>,
    ) -> Result<(String, Arc<Listing>), UpErr> {
        let key = (repo.clone(), revision.as_str().to_owned(), who(token));
        if let Some(t) = lock(&self.pins)
            .get(&key)
            .filter(|t| t.at.elapsed() < ACCESS_TTL)
        {
            return Ok(t.value.clone());
        }
        let pinned = once(&self.pinning, key.clone(), || async {
            let commit = self
                .each_hub(token, |hub| async move {
                    hub.pin_revision(repo, revision).await
                })
                .await?;
            let files = self
                .each_hub(token, |hub| {
                    let commit = commit.clone();
                    async move { hub.list_files(repo, &commit).await }
                })
                .await?;
            let listing = Listing {
                commit: commit.as_str().to_owned(),
                files: files
                    .into_iter()
                    .map(|f| FileEntry {
                        path: f.path,
                        size: f.size,
                        oid: f.oid.to_hex(),
                        lfs_sha256: f.lfs_sha256.map(|d| d.to_hex()),
                    })
                    .collect(),
            }
            .sorted();
            let pinned = (commit.as_str().to_owned(), Arc::new(listing));
            // Remembered before the flight ends: a request arriving between
            // the end of the flight and a later `remember` would pin again.
            remember(
                &self.pins,
                key.clone(),
                Timed {
                    value: pinned.clone(),
                    at: Instant::now(),
                },
            );
            Ok(pinned)
        })
        .await?;
        Ok(pinned)
    }

    /// Whether upstream lets `token` read the files of `repo` (gated repos
    /// refuse the resolve of any file to tokens without access): one HEAD
    /// of the smallest file, remembered for [`ACCESS_TTL`].
    pub(crate) async fn check_files(
        &self,
        repo: &RepoRef,
        listing: &Listing,
        token: Option<&str>,
    ) -> Access {
        let key = (repo.clone(), who(token));
        if lock(&self.granted)
            .get(&key)
            .is_some_and(|at| at.elapsed() < ACCESS_TTL)
        {
            return Access::Granted;
        }
        let Some(probe) = listing.files.iter().min_by_key(|f| f.size) else {
            return Access::Granted;
        };
        let (Some(commit), Some(remote)) = (Commit::parse(&listing.commit), remote_file(probe))
        else {
            return Access::Denied(UpErr::unavailable("bad listing"));
        };
        let checked = once(&self.checking, key.clone(), || async {
            let checked = self
                .each_hub(token, |hub| {
                    let (commit, remote) = (commit.clone(), remote.clone());
                    async move { hub.resolve(repo, &commit, &remote).await.map(|_| ()) }
                })
                .await;
            // Remembered before the flight ends (see `pin_and_list`): a client
            // arriving in between would check, and resolve, again.
            if checked.is_ok() {
                remember(&self.granted, key.clone(), Instant::now());
            }
            checked
        })
        .await;
        match checked {
            Ok(()) => Access::Granted,
            Err(e) => Access::Denied(e),
        }
    }

    /// Starts fetching `file` of `repo` at `commit` into the cache, once
    /// however many clients ask at the same time: the first call starts the
    /// download in its own task (a client going away does not cancel it);
    /// every call gets the same [`Flight`], to follow the bytes as they land
    /// or to wait for the outcome.
    pub(crate) fn fetch(
        self: &Arc<Self>,
        repo: &RepoRef,
        revision: &Revision,
        commit: &str,
        file: &FileEntry,
        token: Option<&str>,
    ) -> Arc<Flight> {
        let cache = CacheRepo::new(&self.config.cache, repo);
        let key = (CacheRepo::folder_name(repo), file.etag().to_owned());
        let mut flights = lock(&self.fetching);
        if let Some(flight) = flights.get(&key) {
            return Arc::clone(flight);
        }
        let etag = file.etag();
        let flight = Arc::new(Flight {
            arrival: Arrival::new(
                cache.partial_path(etag),
                cache.staged_path(etag),
                cache.blob_path(etag),
                Commit::parse(commit).and_then(|c| cache.snapshot_path(&c, &file.path).ok()),
            ),
            outcome: watch::Sender::new(None),
        });
        flights.insert(key.clone(), Arc::clone(&flight));
        drop(flights);

        let token = token.map(str::to_owned).or_else(|| {
            self.config
                .server_token
                .as_ref()
                .map(|t| t.expose().to_owned())
        });
        let this = Arc::clone(self);
        let (repo, revision, commit, path) = (
            repo.clone(),
            revision.clone(),
            commit.to_owned(),
            file.path.clone(),
        );
        let running = Arc::clone(&flight);
        tokio::spawn(async move {
            let reporter = Arc::new(ArrivalReporter(Arc::clone(&running.arrival)));
            let outcome = this
                .download(&repo, &commit, &path, token.as_deref(), reporter)
                .await;
            if outcome.is_ok() {
                this.write_branches(&repo, &revision, &commit).await;
            }
            running.arrival.finish(outcome.is_ok());
            running.outcome.send_replace(Some(outcome));
            let mut flights = lock(&this.fetching);
            if flights.get(&key).is_some_and(|f| Arc::ptr_eq(f, &running)) {
                flights.remove(&key);
            }
        });
        flight
    }

    /// Records the branches that pinned `commit` here, so a later run
    /// without upstream finds them.
    async fn write_branches(&self, repo: &RepoRef, revision: &Revision, commit: &str) {
        let mut branches: Vec<Revision> = lock(&self.pins)
            .iter()
            .filter(|((r, _, _), t)| r == repo && t.value.0 == commit)
            .filter_map(|((_, rev, _), _)| Revision::new(rev).ok())
            .chain(std::iter::once(revision.clone()))
            .filter(|r| r.as_commit().is_none())
            .collect();
        branches.dedup();
        if let Some(commit) = Commit::parse(commit) {
            let cache = CacheRepo::new(&self.config.cache, repo);
            let _ = tokio::task::spawn_blocking(move || {
                for branch in &branches {
                    if let Err(e) = cache.write_ref(branch, &commit) {
                        tracing::warn!(error = %e, "cannot write a ref");
                    }
                }
            })
            .await;
        }
    }

    async fn download(
        &self,
        repo: &RepoRef,
        commit: &str,
        path: &str,
        token: Option<&str>,
        reporter: Arc<ArrivalReporter>,
    ) -> Result<(), UpErr> {
        let revision = Revision::new(commit).map_err(|_| UpErr::unavailable("bad commit"))?;
        let mut last = UpErr::unavailable("no upstream configured");
        for hub in &self.config.hubs {
            let client = self.client(hub, token);
            let downloader =
                Downloader::new(client, self.config.http.clone(), self.config.engine.clone());
            let mut request =
                DownloadRequest::new(repo.clone(), revision.clone(), &self.config.cache);
            request.layout = OutputLayout::hub_cache(&self.config.cache);
            request.selection = Selection::all().paths([path]);
            let outcome = async {
                let plan = downloader.plan(&request).await?;
                downloader
                    .download(
                        &plan,
                        Arc::clone(&reporter) as Arc<dyn hfd::hfd_engine::Reporter>,
                        CancellationToken::new(),
                    )
                    .await
            }
            .await;
            match outcome {
                Ok(report) => {
                    tracing::info!(%repo, path, files = report.files_done, bytes = report.bytes_written, "pulled from upstream");
                    return Ok(());
                }
                Err(e)
                    if matches!(e.kind(), ErrorKind::Network | ErrorKind::RateLimited { .. }) =>
                {
                    tracing::warn!(upstream = %hub.endpoint, error = %e, "pull failed; trying the next upstream");
                    last = UpErr::from_download(&e, token.is_some());
                }
                Err(e) => {
                    tracing::warn!(upstream = %hub.endpoint, error = %e, "pull failed");
                    return Err(UpErr::from_download(&e, token.is_some()));
                }
            }
        }
        Err(last)
    }
}

/// The listing entry as hfd-hub's type (its ids came from a hub listing).
fn remote_file(f: &FileEntry) -> Option<hfd_hub::RemoteFile> {
    use hfd_types::ContentDigest;
    Some(hfd_hub::RemoteFile {
        path: f.path.clone(),
        size: f.size,
        oid: ContentDigest::from_hex(&f.oid).ok()?,
        lfs_sha256: match &f.lfs_sha256 {
            Some(sha) => Some(ContentDigest::from_hex(sha).ok()?),
            None => None,
        },
        xet_hash: None,
    })
}
