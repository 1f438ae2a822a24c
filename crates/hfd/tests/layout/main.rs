//! Output layouts and incremental sync (issue #6), judged by the real
//! huggingface_hub where it matters: the `--cache` layout must be accepted
//! offline by `snapshot_download`, `hf_hub_download`, `try_to_load_from_cache`
//! and `scan_cache_dir`; after hfd-rs filled a `--local-dir`, huggingface_hub's
//! own local-dir download must transfer no file bytes. The fake hub's request
//! log is the witness for what each run asked.
//!
//! The Python checks are skipped (with a message) when python3 or
//! huggingface_hub is missing, unless `CI` is set; then they fail.

#![expect(
    clippy::disallowed_methods,
    reason = "tests read CI and poll child processes"
)]

mod cache;
mod local_dir;

use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use hfd::hfd_engine::{EngineConfig, NoopReporter};
use hfd::hfd_http::{HttpClient, HttpConfig};
use hfd::hfd_hub::{Endpoint, HubClient, HubConfig, RepoId, RepoRef, Revision};
use hfd::{DownloadPlan, DownloadReport, DownloadRequest, Downloader, FileAction};
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
    let out = std::process::Command::new("python3")
        .args(["-c", "import huggingface_hub"])
        .output();
    match out {
        Ok(o) if o.status.success() => true,
        other => {
            let why = match other {
                Ok(o) => String::from_utf8_lossy(&o.stderr).into_owned(),
                Err(e) => e.to_string(),
            };
            assert!(
                std::env::var_os("CI").is_none(),
                "CI is set but python3 with huggingface_hub is not usable: {why}"
            );
            eprintln!(
                "SKIPPED real-library check: python3 with huggingface_hub not available ({})",
                why.lines().last().unwrap_or("")
            );
            false
        }
    }
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
    let hf_home = work.join("hf-home");
    let mut cmd = tokio::process::Command::new("python3");
    cmd.arg(&script_path)
        .arg(&out_json)
        .args(args)
        .env("HF_ENDPOINT", hub.endpoint())
        .env("HF_HOME", &hf_home)
        .env("HF_HUB_CACHE", hf_home.join("hub"))
        .env("HF_HUB_DISABLE_TELEMETRY", "1")
        .env("HF_HUB_DISABLE_XET", "1")
        .env("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        .env("HF_HUB_ETAG_TIMEOUT", "30")
        .env("HF_HUB_DOWNLOAD_TIMEOUT", "30")
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost")
        .env_remove("HTTP_PROXY")
        .env_remove("HTTPS_PROXY")
        .env_remove("ALL_PROXY")
        .env_remove("http_proxy")
        .env_remove("https_proxy")
        .env_remove("all_proxy")
        .env_remove("HF_TOKEN")
        .env_remove("HF_HUB_DISABLE_SYMLINKS")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if offline {
        cmd.env("HF_HUB_OFFLINE", "1");
    } else {
        cmd.env_remove("HF_HUB_OFFLINE");
    }
    // A guard against a hung client, not a speed assertion.
    let output = tokio::time::timeout(Duration::from_mins(5), cmd.output())
        .await
        .expect("python finished within 5 minutes")
        .expect("python3 runs");
    assert!(
        output.status.success(),
        "python failed: {}\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    serde_json::from_slice(&std::fs::read(&out_json).unwrap()).unwrap()
}

pub(crate) fn path_of(v: &serde_json::Value) -> PathBuf {
    PathBuf::from(v.as_str().unwrap_or_else(|| panic!("a path, got {v}")))
}
