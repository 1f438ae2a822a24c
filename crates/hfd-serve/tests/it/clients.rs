//! Third-party clients against `serve`: huggingface_hub's
//! `snapshot_download` / `hf_hub_download` and aria2c's segmented download.
//! Skipped (with a message) when the client is missing, unless `CI` is set.

use std::path::{Path, PathBuf};
use std::time::Duration;

use hfd_serve::UpstreamConfig;
use hfd_testkit::{Fault, FaultKind, FaultTarget};

use crate::{
    DATA, MODEL, assert_files_match, config, engine, fake_hub, fill_cache, http, hub_config, serve,
    tool_available,
};

const PYTHON: &str = r#"
import json, sys
from huggingface_hub import hf_hub_download, snapshot_download
out = {}
out["model"] = snapshot_download("org/model")
out["dataset"] = snapshot_download("org/data", repo_type="dataset")
out["file"] = hf_hub_download("org/model", "model.safetensors", local_dir=sys.argv[2])
out["nested"] = hf_hub_download("org/model", "sub/dir/notes.txt", revision=sys.argv[3])
with open(sys.argv[1], "w") as f:
    json.dump(out, f)
"#;

async fn run(mut cmd: tokio::process::Command) -> std::process::Output {
    cmd.kill_on_drop(true);
    // A guard against a hung client, not a speed assertion.
    tokio::time::timeout(Duration::from_mins(5), cmd.output())
        .await
        .expect("client finished within 5 minutes")
        .expect("client runs")
}

/// Where the served files come from.
enum Source {
    /// A cache hfd-rs filled beforehand.
    Cache,
    /// Pulled from the fake hub on demand, every CDN answer stalling for a
    /// moment: answers follow the pull while its bytes arrive.
    PullThrough,
}

async fn huggingface_hub_round_trip(source: Source) {
    if tool_available("python3", &["-c", "import huggingface_hub"]).is_none() {
        return;
    }
    let hub = fake_hub().await;
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let mut cfg = config();
    match source {
        Source::Cache => {
            fill_cache(&hub, &cache).await;
            cfg.caches.push(cache);
        }
        Source::PullThrough => {
            hub.faults().inject(
                Fault::new(FaultKind::StallAfterBytes {
                    bytes: 256 * 1024,
                    duration: Duration::from_millis(500),
                })
                .on(FaultTarget::Cdn)
                .always(),
            );
            cfg.upstream = Some(UpstreamConfig {
                hubs: vec![hub_config(hub.endpoint(), None)],
                http: http(false, None),
                engine: engine(4),
                server_token: None,
                cache,
            });
        }
    }
    let served = serve(cfg).await;

    let commit = hub.commit(MODEL, "main").unwrap();
    let (out, local, home) = (
        tmp.path().join("out.json"),
        tmp.path().join("local"),
        tmp.path().join("hf-home"),
    );
    let mut cmd = tokio::process::Command::new("python3");
    cmd.arg("-c")
        .arg(PYTHON)
        .arg(&out)
        .arg(&local)
        .arg(&commit)
        .env("HF_ENDPOINT", &served.url)
        .env("HF_HOME", &home)
        .env("HF_HUB_CACHE", home.join("hub"))
        .env_remove("HF_TOKEN")
        .env("HF_HUB_DISABLE_TELEMETRY", "1")
        .env("HF_HUB_DISABLE_XET", "1")
        .env("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost");
    for var in [
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
        "HF_HUB_OFFLINE",
    ] {
        cmd.env_remove(var);
    }
    let output = run(cmd).await;
    assert!(
        output.status.success(),
        "python client failed\nstdout: {}\nstderr: {}\nserve log:\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
        served
            .records()
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    );
    let paths: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    let path = |k: &str| PathBuf::from(paths[k].as_str().unwrap());
    assert_files_match(&hub, MODEL, &path("model"));
    assert_files_match(&hub, DATA, &path("dataset"));
    assert_eq!(
        std::fs::read(path("file")).unwrap(),
        hub.file_bytes(MODEL, "model.safetensors").unwrap()
    );
    assert_eq!(std::fs::read(path("nested")).unwrap(), b"notes\n");
    assert!(
        path("model").ends_with(Path::new(&commit)),
        "snapshot at the served commit"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huggingface_hub_downloads_every_file_from_serve() {
    huggingface_hub_round_trip(Source::Cache).await;
}

/// The reference client through a mirror that pulls each file while
/// answering it (HEAD, then a GET that follows the pull's bytes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huggingface_hub_downloads_through_pull_through_while_files_arrive() {
    huggingface_hub_round_trip(Source::PullThrough).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aria2c_range_downloads_from_serve() {
    if tool_available("aria2c", &["--version"]).is_none() {
        return;
    }
    let hub = fake_hub().await;
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    fill_cache(&hub, &cache).await;
    let mut cfg = config();
    cfg.caches.push(cache);
    let served = serve(cfg).await;

    let out = tmp.path().join("aria");
    let mut cmd = tokio::process::Command::new("aria2c");
    cmd.args([
        "-x",
        "8",
        "-s",
        "8",
        "-k",
        "1M",
        "--min-split-size=1M",
        "--file-allocation=none",
    ])
    .args([
        "--allow-overwrite=true",
        "--auto-file-renaming=false",
        "--console-log-level=warn",
    ])
    .args(["--summary-interval=0", "--no-conf=true", "--max-tries=1"])
    .arg("-d")
    .arg(&out)
    .args(["-o", "model.safetensors"])
    .arg(format!(
        "{}/org/model/resolve/main/model.safetensors",
        served.url
    ))
    .env_remove("http_proxy")
    .env_remove("all_proxy");
    let output = run(cmd).await;
    assert!(
        output.status.success(),
        "aria2c failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        std::fs::read(out.join("model.safetensors")).unwrap(),
        hub.file_bytes(MODEL, "model.safetensors").unwrap()
    );
    let ranges = served
        .records()
        .iter()
        .filter(|r| r.status == 206 && r.path.ends_with("model.safetensors"))
        .count();
    assert!(
        ranges >= 2,
        "aria2c split the file into ranges (saw {ranges} range answers)"
    );
}
