//! Output layouts and incremental sync (issue #6), judged by the real
//! huggingface_hub where it matters: the `--cache` layout must be accepted
//! offline by `snapshot_download`, `hf_hub_download`, `try_to_load_from_cache`
//! and `scan_cache_dir`; after hfd-rs filled a `--local-dir`, huggingface_hub's
//! own local-dir download must transfer no file bytes. The fake hub's request
//! log is the witness for what each run asked.
//!
//! The Python checks are skipped (with a message) when python3 or
//! huggingface_hub is missing, unless `CI` is set; then they fail.

mod cache;
mod local_dir;

use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hfd::hfd_engine::{EngineConfig, NoopReporter};
use hfd::hfd_http::{HttpClient, HttpConfig};
use hfd::hfd_hub::{Endpoint, HubClient, HubConfig, RepoId, RepoRef, Revision};
use hfd::{DownloadPlan, DownloadReport, DownloadRequest, Downloader, FileAction};
use hfd_testkit::support::{python_client_version, python_command, run_python_json};
use hfd_testkit::{FakeHub, LogEntry, Origin, RepoFixture, Route};
use tokio_util::sync::CancellationToken;

pub(crate) const CHECK_CACHE: &str = include_str!("check_cache.py");
pub(crate) const HF_LOCAL_DIR: &str = include_str!("hf_local_dir.py");

pub(crate) async fn start_hub(repos: Vec<RepoFixture>) -> FakeHub {
    let mut builder = FakeHub::builder();
    for repo in repos {
        builder = builder.repo(repo);
    }
    builder.start().await.expect("fake hub starts")
}

pub(crate) fn downloader(hub: &FakeHub) -> Downloader {
    let http = HttpClient::new(HttpConfig::default()).expect("http client");
    let mut config = HubConfig::default();
    config.endpoint = Endpoint::parse(hub.endpoint()).expect("endpoint");
    let client = HubClient::new(config, http.clone());
    let mut engine = EngineConfig::default();
    engine.files_in_flight = NonZeroUsize::new(16).unwrap();
    engine.max_connections = NonZeroUsize::new(32).unwrap();
    Downloader::new(client, http, engine)
}

pub(crate) fn model(id: &str) -> RepoRef {
    RepoRef::model(RepoId::new(id).unwrap())
}

pub(crate) fn dataset(id: &str) -> RepoRef {
    RepoRef::dataset(RepoId::new(id).unwrap())
}

/// A request into a local dir.
pub(crate) fn local_request(repo: RepoRef, dir: &Path) -> DownloadRequest {
    DownloadRequest::new(repo, Revision::new("main").unwrap(), dir)
}

/// A request into the hub cache at `root`.
pub(crate) fn cache_request(repo: RepoRef, root: &Path) -> DownloadRequest {
    let mut request = DownloadRequest::new(repo, Revision::new("main").unwrap(), root);
    request.layout = hfd::OutputLayout::hub_cache(root);
    request
}

/// Plans and runs `request`.
pub(crate) async fn run(
    downloader: &Downloader,
    request: &DownloadRequest,
) -> (DownloadPlan, DownloadReport) {
    let plan = downloader.plan(request).await.expect("plan");
    let report = downloader
        .download(&plan, Arc::new(NoopReporter), CancellationToken::new())
        .await
        .expect("download");
    (plan, report)
}

pub(crate) fn count_actions(plan: &DownloadPlan, action: FileAction) -> usize {
    plan.files.iter().filter(|f| f.action == action).count()
}

/// Requests that moved file bytes or asked for a file's location:
/// resolves (any method) and CDN requests.
pub(crate) fn file_requests(entries: &[LogEntry]) -> Vec<&LogEntry> {
    entries
        .iter()
        .filter(|e| {
            e.origin == Origin::Cdn || matches!(e.route, Route::Resolve | Route::ResolveCache)
        })
        .collect()
}

pub(crate) fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .expect("utf-8 path")
        .into_owned()
}

/// The repo path a resolve request asked for (`None` for other requests).
pub(crate) fn resolved_path(entry: &LogEntry, commit: &str) -> Option<String> {
    let marker = format!("/resolve/{commit}/");
    let at = entry.path.find(&marker)?;
    Some(percent_decode(&entry.path[at + marker.len()..]))
}

/// `true` when python3 with huggingface_hub can run; `false` = skip (with a
/// message). Panics when `CI` is set and the client is missing.
pub(crate) fn python_available() -> bool {
    python_client_version().is_some()
}

/// Runs a Python script with the environment of a clean huggingface_hub
/// pointed at the fake hub and at `hf_home`; returns the JSON it wrote to
/// its first argument.
pub(crate) async fn run_python(
    hub: &FakeHub,
    work: &Path,
    script: &str,
    args: &[&std::ffi::OsStr],
    offline: bool,
) -> serde_json::Value {
    let script_path = work.join("script.py");
    std::fs::write(&script_path, script).unwrap();
    let out_json = work.join("out.json");
    let _ = std::fs::remove_file(&out_json);
    let mut cmd = python_command(hub, &script_path, &work.join("hf-home"));
    cmd.arg(&out_json).args(args);
    if offline {
        cmd.env("HF_HUB_OFFLINE", "1");
    }
    run_python_json(cmd, &out_json, String::new).await
}

pub(crate) fn path_of(v: &serde_json::Value) -> PathBuf {
    PathBuf::from(v.as_str().unwrap_or_else(|| panic!("a path, got {v}")))
}
