//! Library-level end-to-end tests: `hfd::Downloader` against the fake hub of
//! `hfd-testkit` over HTTP/1.1, h2c and TLS (issue #4).
//!
//! Every test uses its own hub and temporary folder, small files and
//! timeouts far shorter than the engine's defaults; every loop is bounded.
//! The request log of the hub is the witness for the request budget (one
//! resolve per file, one CDN URL per file, no token at the CDN), for the
//! HTTP version and for how many bytes each connection carried.

mod faults;
mod hedge;
mod protocol;
mod proxy;

use std::collections::{BTreeMap, BTreeSet};
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hfd::hfd_engine::{EngineConfig, FileKey, Reporter, RetryEvent};
use hfd::hfd_http::{HttpClient, HttpConfig, ProxyConfig};
use hfd::hfd_hub::{Endpoint, HubClient, HubConfig, RepoId, RepoRef, Revision, Token};
use hfd::{DownloadReport, DownloadRequest, Downloader};
use hfd_testkit::{FakeHub, KIB, LogEntry, Origin, RepoFixture, Route, Transport};
use hfd_types::ByteSize;
use tokio_util::sync::CancellationToken;

/// The token every hub in these tests accepts.
pub(crate) const TOKEN: &str = "hf_e2e_token";
/// The model repo most tests download.
pub(crate) const MODEL: &str = "org/model";

/// A model with two LFS files (one split into ranges, one a single
/// request), a regular file big enough to be split into ranges on the hub
/// itself, and two small regular files.
pub(crate) fn model_fixture() -> RepoFixture {
    RepoFixture::model(MODEL)
        .regular_file("config.json", "{\"model_type\": \"e2e\"}\n")
        .regular_file("sub/dir/notes.txt", "notes\n")
        .seeded_regular_file("tokenizer.json", 300 * KIB + 3, 11)
        .lfs_file("model.safetensors", 1024 * KIB + 17, 7)
        .lfs_file("small.bin", 40 * KIB, 8)
}

/// Knobs of one test run.
#[derive(Clone, Debug)]
pub(crate) struct Setup {
    pub(crate) engine: EngineConfig,
    pub(crate) http: HttpConfig,
    pub(crate) hub_retries: u32,
}

impl Setup {
    /// Short timeouts and backoffs; 4 connections per file, 64 KiB splits.
    pub(crate) fn fast() -> Self {
        let mut engine = EngineConfig::default();
        engine.connections_per_file = nz(4);
        engine.files_in_flight = nz(4);
        engine.max_connections = nz(16);
        engine.min_split_size = ByteSize::kib(64);
        engine.write_batch = ByteSize::kib(64);
        engine.stall_timeout = Duration::from_secs(2);
        engine.slow_grace = Duration::from_secs(5);
        engine.retry.max_retries = 5;
        engine.retry.base_delay = Duration::from_millis(20);
        engine.retry.max_delay = Duration::from_millis(200);
        let mut http = HttpConfig::default();
        http.connect_timeout = Duration::from_secs(5);
        http.stall_timeout = Duration::from_secs(5);
        http.header_timeout = Some(Duration::from_secs(5));
        Self {
            engine,
            http,
            hub_retries: 4,
        }
    }
}

pub(crate) fn nz(n: usize) -> NonZeroUsize {
    NonZeroUsize::new(n).expect("non-zero")
}

/// A hub with the model repo, a token, and a CDN that refuses
/// `Authorization` (as S3 does).
pub(crate) async fn model_hub(transport: Transport) -> FakeHub {
    FakeHub::builder()
        .repo(model_fixture())
        .transport(transport)
        .token(TOKEN)
        .strict_cdn(true)
        .start()
        .await
        .expect("fake hub starts")
}

/// Counts the engine's progress events.
#[derive(Debug, Default)]
pub(crate) struct Events {
    pub(crate) retries: AtomicU64,
    pub(crate) fallbacks: AtomicU64,
    pub(crate) done: AtomicU64,
    pub(crate) failed: AtomicU64,
}

impl Reporter for Events {
    fn on_retry(&self, _key: FileKey, _event: &RetryEvent<'_>) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }
    fn on_fallback(&self, _key: FileKey) {
        self.fallbacks.fetch_add(1, Ordering::Relaxed);
    }
    fn on_file_done(&self, _key: FileKey, _digest: Option<hfd_types::ContentDigest>) {
        self.done.fetch_add(1, Ordering::Relaxed);
    }
    fn on_file_failed(&self, _key: FileKey, _error: &hfd::hfd_engine::Error) {
        self.failed.fetch_add(1, Ordering::Relaxed);
    }
}

impl Events {
    pub(crate) fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// One download run against a hub.
pub(crate) struct Run {
    pub(crate) result: hfd::Result<DownloadReport>,
    pub(crate) events: Arc<Events>,
    pub(crate) http: HttpClient,
}

/// The HTTP client for `hub` with `setup`'s settings (the hub's CA trusted,
/// h2c by prior knowledge for [`Transport::H2c`]).
pub(crate) fn http_client(hub: &FakeHub, setup: &Setup, proxy: Option<ProxyConfig>) -> HttpClient {
    let mut http = setup.http.clone();
    http.http2_prior_knowledge = hub.transport() == Transport::H2c;
    if let Some(ca) = hub.ca_cert_path() {
        http.extra_ca_files = vec![ca.to_path_buf()];
    }
    http.proxy = proxy;
    HttpClient::new(http).expect("HTTP client")
}

/// Downloads every file of `repo` (a model or dataset id in `hub`) on
/// `main` into `dir`.
pub(crate) async fn download(
    hub: &FakeHub,
    repo: &RepoRef,
    dir: &Path,
    setup: &Setup,
    proxy: Option<ProxyConfig>,
) -> Run {
    let http = http_client(hub, setup, proxy);
    let mut config = HubConfig::default();
    config.endpoint = Endpoint::parse(hub.endpoint()).expect("endpoint");
    config.token = Some(Token::new(TOKEN).expect("token"));
    config.retry.max_retries = setup.hub_retries;
    config.retry.base_delay = Duration::from_millis(20);
    config.retry.max_delay = Duration::from_millis(200);
    config.retry.max_wait = Duration::from_secs(5);
    let hub_client = HubClient::new(config, http.clone());
    let downloader = Downloader::new(hub_client, http.clone(), setup.engine.clone());
    let request = DownloadRequest::new(repo.clone(), Revision::new("main").expect("rev"), dir);
    let events = Arc::new(Events::default());
    let result = async {
        let plan = downloader.plan(&request).await?;
        downloader
            .download(
                &plan,
                Arc::clone(&events) as Arc<dyn Reporter>,
                CancellationToken::new(),
            )
            .await
    }
    .await;
    Run {
        result,
        events,
        http,
    }
}

pub(crate) fn model_repo() -> RepoRef {
    RepoRef::model(RepoId::new(MODEL).expect("repo id"))
}

/// Every file of `repo_id` is in `dir`, byte for byte; no partial is left.
pub(crate) fn assert_files_match(hub: &FakeHub, repo_id: &str, dir: &Path) {
    let files = hub.files(repo_id);
    assert!(!files.is_empty());
    for file in &files {
        let got = std::fs::read(dir.join(&file.path))
            .unwrap_or_else(|e| panic!("{} missing: {e}", file.path));
        let want = hub.file_bytes(repo_id, &file.path).expect("fixture bytes");
        assert!(
            got == want,
            "{} differs from the hub's content ({} vs {} bytes)",
            file.path,
            got.len(),
            want.len()
        );
    }
    assert_eq!(partials(dir), Vec::<PathBuf>::new(), "partials left over");
}

/// Partial files (`*.part`) under `dir`.
pub(crate) fn partials(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    // Bounded: a test folder holds a few dozen entries.
    for _ in 0..10_000 {
        let Some(next) = stack.pop() else { break };
        let Ok(entries) = std::fs::read_dir(&next) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "part") {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

/// Resolve requests per distinct resolve path.
pub(crate) fn resolves_per_path(entries: &[LogEntry]) -> BTreeMap<String, usize> {
    let mut map = BTreeMap::new();
    for e in entries.iter().filter(|e| e.route == Route::Resolve) {
        *map.entry(e.path.clone()).or_insert(0) += 1;
    }
    map
}

/// Distinct signed URLs (queries) used at the CDN, per object path.
pub(crate) fn cdn_urls_per_object(entries: &[LogEntry]) -> BTreeMap<String, BTreeSet<String>> {
    let mut map: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for e in entries.iter().filter(|e| e.origin == Origin::Cdn) {
        map.entry(e.path.clone())
            .or_default()
            .insert(e.query.clone().unwrap_or_default());
    }
    map
}

/// The request-budget invariants of a normal run: exactly one resolve per
/// file, one signed URL for every range of an LFS file, no token at the
/// CDN, and every LFS file fetched from the CDN.
pub(crate) fn assert_request_budget(hub: &FakeHub, repo_id: &str) {
    let entries = hub.log().entries();
    let files = hub.files(repo_id);
    let resolves = resolves_per_path(&entries);
    assert_eq!(
        resolves.len(),
        files.len(),
        "one resolve path per file: {resolves:?}"
    );
    assert!(
        resolves.values().all(|&n| n == 1),
        "exactly one resolve per file: {resolves:?}"
    );
    let lfs = files.iter().filter(|f| f.is_lfs()).count();
    let urls = cdn_urls_per_object(&entries);
    assert_eq!(urls.len(), lfs, "every LFS file comes from the CDN");
    assert!(
        urls.values().all(|q| q.len() == 1),
        "all ranges of a file use one CDN URL: {urls:?}"
    );
    assert_eq!(hub.log().cdn_requests_with_authorization(), 0);
}

/// Asserts the run failed with `kind`, that `failed_path` has no file under
/// its final name but keeps its partial, and that every other file is
/// complete.
pub(crate) fn assert_failed_file(
    hub: &FakeHub,
    run: &Run,
    dir: &Path,
    failed_path: &str,
    kind: hfd::ErrorKind,
) {
    let err = match &run.result {
        Ok(report) => panic!("expected a {kind:?} error, got {report:?}"),
        Err(e) => e,
    };
    assert_eq!(err.kind(), kind, "{err:?}");
    let text = format!("{err} / {err:?}");
    assert!(!text.contains(TOKEN), "token in the error: {text}");
    assert!(
        !text.contains("X-Amz-Signature="),
        "signed URL in the error: {text}"
    );
    match err {
        hfd::Error::Files { failed, path, .. } => {
            assert_eq!(*failed, 1, "{err:?}");
            assert_eq!(path, failed_path, "{err:?}");
        }
        other => panic!("expected a per-file failure, got {other:?}"),
    }
    assert!(
        !dir.join(failed_path).exists(),
        "no file under its final name after a failure"
    );
    let parts = partials(dir);
    // A file that failed for want of bytes keeps them for the next run; one
    // whose bytes failed their check keeps nothing (the next run must not
    // resume them).
    let kept = usize::from(kind != hfd::ErrorKind::Integrity);
    assert_eq!(
        parts.len(),
        kept,
        "partials after a {kind:?} failure: {parts:?}"
    );
    for file in hub.files(MODEL) {
        if file.path != failed_path {
            let got = std::fs::read(dir.join(&file.path)).expect("other files complete");
            assert!(got == hub.file_bytes(MODEL, &file.path).expect("fixture"));
        }
    }
}

/// Generates one `#[tokio::test]` per transport for an async function
/// taking a [`Transport`].
#[macro_export]
macro_rules! per_transport {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn http1() {
                    super::$name(hfd_testkit::Transport::Http1).await;
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn h2c() {
                    super::$name(hfd_testkit::Transport::H2c).await;
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn tls() {
                    super::$name(hfd_testkit::Transport::Tls).await;
                }
            }
        )*
    };
}
