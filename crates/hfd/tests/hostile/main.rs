//! Hostile servers, bad input and leaks (issue #9): `hfd::Downloader`
//! against `hfd-testkit`'s fake hub with its hostile knobs.
//!
//! Each test ends either with byte-identical files or with a clear,
//! correctly classified error; in neither case is a corrupt file left under
//! its final name, a byte written outside the target, or the token or a
//! signed URL query found in logs, files or errors. `NOTES.md` in this
//! folder lists what each hostile case did before its fix.
//!
//! Every log line of every test in this binary goes (at TRACE) into one
//! in-memory buffer that the token tests search. Every loop is bounded.

#![expect(
    clippy::disallowed_methods,
    reason = "the memory test re-runs this binary and reads its environment"
)]

mod answers;
// Planted symbolic links: Unix only (Windows needs a privilege to create them).
#[cfg(unix)]
mod links;
mod listing;
mod memory;
#[cfg(unix)]
mod target;
mod token;

use std::io::Write;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use hfd::hfd_engine::{EngineConfig, NoopReporter, Reporter};
use hfd::hfd_http::{HttpClient, HttpConfig};
use hfd::hfd_hub::{Endpoint, HubClient, HubConfig, RepoId, RepoRef, Revision, Selection, Token};
use hfd::{DownloadPlan, DownloadReport, DownloadRequest, Downloader};
use hfd_testkit::{FakeHub, KIB, RepoFixture, Transport};
use hfd_types::ByteSize;
use tokio_util::sync::CancellationToken;

/// The token every hub here accepts; it must never show up anywhere.
pub(crate) const TOKEN: &str = "hf_hostileSecretToken4711";
/// The repo most tests download.
pub(crate) const REPO: &str = "org/model";
/// The LFS file big enough to be fetched in several ranges.
pub(crate) const BIG: &str = "model.safetensors";

/// Two regular files (one in a folder) and two LFS files.
pub(crate) fn fixture() -> RepoFixture {
    RepoFixture::model(REPO)
        .regular_file("config.json", "{\"model_type\": \"hostile\"}\n")
        .regular_file("sub/notes.txt", "notes\n")
        .lfs_file(BIG, 300 * KIB + 5, 7)
        .lfs_file("small.bin", 20 * KIB, 8)
}

/// A hub serving `fixture`, accepting [`TOKEN`], whose CDN refuses
/// `Authorization` as S3 does.
pub(crate) async fn hub_with(fixture: RepoFixture, transport: Transport) -> FakeHub {
    init_logs();
    FakeHub::builder()
        .repo(fixture)
        .transport(transport)
        .token(TOKEN)
        .strict_cdn(true)
        .start()
        .await
        .expect("fake hub starts")
}

/// [`hub_with`] the default [`fixture`] over HTTP/1.1.
pub(crate) async fn hub() -> FakeHub {
    hub_with(fixture(), Transport::Http1).await
}

/// Knobs of one run. Hub retries are off so a hostile answer fails at once.
#[derive(Clone, Debug)]
pub(crate) struct Opts {
    pub(crate) selection: Selection,
    pub(crate) max_files: usize,
    pub(crate) max_json_bytes: usize,
    pub(crate) max_redirects: u32,
    pub(crate) engine_attempts: u32,
}

impl Default for Opts {
    fn default() -> Self {
        Self {
            selection: Selection::all(),
            max_files: 5_000_000,
            max_json_bytes: 8 << 20,
            max_redirects: 10,
            engine_attempts: 3,
        }
    }
}

fn nz(n: usize) -> NonZeroUsize {
    NonZeroUsize::new(n).expect("non-zero")
}

/// A downloader for `hub` with short timeouts and `opts`.
pub(crate) fn downloader(hub: &FakeHub, opts: &Opts) -> Downloader {
    let mut http = HttpConfig::default();
    http.connect_timeout = Duration::from_secs(5);
    http.stall_timeout = Duration::from_secs(5);
    http.header_timeout = Some(Duration::from_secs(5));
    http.http2_prior_knowledge = hub.transport() == Transport::H2c;
    if let Some(ca) = hub.ca_cert_path() {
        http.extra_ca_files = vec![ca.to_path_buf()];
    }
    let http = HttpClient::new(http).expect("HTTP client");
    let mut config = HubConfig::default();
    config.endpoint = Endpoint::parse(hub.endpoint()).expect("endpoint");
    config.token = Some(Token::new(TOKEN).expect("token"));
    config.retry.max_retries = 0;
    config.max_files = opts.max_files;
    config.max_json_bytes = opts.max_json_bytes;
    config.max_redirects = opts.max_redirects;
    let mut engine = EngineConfig::default();
    engine.connections_per_file = nz(3);
    engine.files_in_flight = nz(2);
    engine.max_connections = nz(8);
    engine.min_split_size = ByteSize::kib(64);
    engine.write_batch = ByteSize::kib(64);
    engine.stall_timeout = Duration::from_secs(3);
    engine.slow_grace = Duration::from_secs(10);
    engine.retry.max_retries = opts.engine_attempts;
    engine.retry.base_delay = Duration::from_millis(10);
    engine.retry.max_delay = Duration::from_millis(50);
    Downloader::new(HubClient::new(config, http.clone()), http, engine)
}

/// The request for the repo's main revision into `dir`.
pub(crate) fn request(dir: &Path, opts: &Opts) -> DownloadRequest {
    let repo = RepoRef::model(RepoId::new(REPO).expect("repo id"));
    let mut request = DownloadRequest::new(repo, Revision::new("main").expect("revision"), dir);
    request.selection = opts.selection.clone();
    request
}

/// What one run produced: the plan (when planning worked) and the result.
#[derive(Debug)]
pub(crate) struct Run {
    pub(crate) plan: Option<DownloadPlan>,
    pub(crate) result: hfd::Result<DownloadReport>,
}

impl Run {
    /// The error, or a panic naming the unexpected success.
    #[track_caller]
    pub(crate) fn error(&self) -> &hfd::Error {
        match &self.result {
            Ok(report) => panic!("expected an error, the run succeeded: {report:?}"),
            Err(e) => e,
        }
    }
}

/// Plans and downloads into `dir` with `opts`.
pub(crate) async fn run(hub: &FakeHub, dir: &Path, opts: &Opts) -> Run {
    let downloader = downloader(hub, opts);
    let request = request(dir, opts);
    let plan = match downloader.plan(&request).await {
        Ok(plan) => plan,
        Err(e) => {
            return Run {
                plan: None,
                result: Err(e),
            };
        }
    };
    let result = downloader
        .download(
            &plan,
            Arc::new(NoopReporter) as Arc<dyn Reporter>,
            CancellationToken::new(),
        )
        .await;
    Run {
        plan: Some(plan),
        result,
    }
}

/// Every regular file under `dir` (symlinks not followed), bounded.
pub(crate) fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    for _ in 0..100_000 {
        let Some(next) = stack.pop() else { break };
        let Ok(entries) = std::fs::read_dir(&next) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                stack.push(entry.path());
            } else if kind.is_file() {
                found.push(entry.path());
            }
        }
    }
    found.sort();
    found
}

/// Asserts every file of the repo that exists under its final name in `dir`
/// has the hub's exact bytes: nothing corrupt is ever kept as complete.
#[track_caller]
pub(crate) fn assert_no_corrupt_file(hub: &FakeHub, dir: &Path) {
    for file in hub.files(REPO) {
        let path = dir.join(&file.path);
        if let Ok(got) = std::fs::read(&path) {
            let want = hub.file_bytes(REPO, &file.path).expect("fixture bytes");
            assert!(
                got == want,
                "{} is under its final name but differs from the hub's bytes",
                file.path
            );
        }
    }
}

/// Asserts every file of the repo is in `dir` with the hub's bytes.
#[track_caller]
pub(crate) fn assert_all_files(hub: &FakeHub, dir: &Path) {
    for file in hub.files(REPO) {
        let got = std::fs::read(dir.join(&file.path))
            .unwrap_or_else(|e| panic!("{} missing: {e}", file.path));
        let want = hub.file_bytes(REPO, &file.path).expect("fixture bytes");
        assert!(got == want, "{} differs", file.path);
    }
}

/// The error and its whole cause chain, Display and Debug, as one text.
pub(crate) fn error_text(e: &hfd::Error) -> String {
    let mut text = format!("{e} / {e:?}");
    let mut source = std::error::Error::source(e);
    for _ in 0..32 {
        let Some(cause) = source else { break };
        text.push_str(" / ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Every log line written so far by any test of this binary.
pub(crate) fn logs() -> String {
    let buffer = LOGS.get_or_init(Default::default);
    String::from_utf8_lossy(
        &buffer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    )
    .into_owned()
}

static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();

#[derive(Clone)]
struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Sends every event of every crate, at TRACE, to the shared buffer.
pub(crate) fn init_logs() {
    let buffer = Arc::clone(LOGS.get_or_init(Default::default));
    let _ = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || LogWriter(Arc::clone(&buffer)))
        .try_init();
}

/// A tempdir holding `target/` (not created) and nothing else, so a write
/// outside the target shows up as a second entry.
pub(crate) fn sandbox() -> (tempfile::TempDir, PathBuf) {
    let parent = tempfile::tempdir().expect("tempdir");
    let target = parent.path().join("target");
    (parent, target)
}

/// Asserts `parent` holds nothing but `target` (or nothing at all).
#[track_caller]
pub(crate) fn assert_nothing_outside(parent: &Path) {
    let names: Vec<String> = std::fs::read_dir(parent)
        .expect("read parent")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "target")
        .collect();
    assert!(names.is_empty(), "written outside the target: {names:?}");
}
