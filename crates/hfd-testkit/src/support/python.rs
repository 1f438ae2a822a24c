//! Running the real Python client (`huggingface_hub`) against a fake hub.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use crate::FakeHub;

/// `Some(version)` of the installed `huggingface_hub` when python3 can import it; `None`
/// after printing why the test is skipped. Panics when `CI` is set.
pub fn python_client_version() -> Option<String> {
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import huggingface_hub; print(huggingface_hub.__version__)",
        ])
        .output();
    match out {
        Ok(o) if o.status.success() => Some(String::from_utf8_lossy(&o.stdout).trim().to_owned()),
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
                "SKIPPED: python3 with huggingface_hub not available ({})",
                why.lines().last().unwrap_or("")
            );
            None
        }
    }
}

/// `python3 script` with the environment of a clean `huggingface_hub` pointed at `hub`:
/// `HF_HOME` = `hf_home` (cache in `hf_home/hub`), no token, online, symlinks allowed, no
/// telemetry, no Xet, no progress bars, no proxy, and the hub's CA trusted in TLS mode.
/// Callers add arguments and override variables (`HF_TOKEN`, `HF_HUB_OFFLINE`).
pub fn python_command(hub: &FakeHub, script: &Path, hf_home: &Path) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new("python3");
    cmd.arg(script)
        .env("HF_ENDPOINT", hub.endpoint())
        .env("HF_HOME", hf_home)
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
        .env_remove("HF_HUB_OFFLINE")
        .env_remove("HF_HUB_DISABLE_SYMLINKS")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    match hub.ca_cert_path() {
        // httpx (huggingface_hub >= 1.0) reads SSL_CERT_FILE; requests (0.x) reads
        // REQUESTS_CA_BUNDLE.
        Some(ca) => {
            cmd.env("SSL_CERT_FILE", ca)
                .env("REQUESTS_CA_BUNDLE", ca)
                .env_remove("SSL_CERT_DIR");
        }
        None => {
            cmd.env_remove("SSL_CERT_FILE");
        }
    }
    cmd
}

/// Runs `cmd` (bounded by 5 minutes, a guard against a hung client, not a speed
/// assertion), asserts it succeeded, and returns the JSON it wrote to `out_json`.
/// `context` is appended to the failure message (the hub's request log, say).
pub async fn run_python_json(
    mut cmd: tokio::process::Command,
    out_json: &Path,
    context: impl FnOnce() -> String,
) -> serde_json::Value {
    let output = tokio::time::timeout(Duration::from_mins(5), cmd.output())
        .await
        .expect("python finished within 5 minutes")
        .expect("python3 runs");
    assert!(
        output.status.success(),
        "python failed: {}\nstdout: {}\nstderr: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
        context()
    );
    let bytes = std::fs::read(out_json)
        .unwrap_or_else(|e| panic!("python wrote no {}: {e}", out_json.display()));
    serde_json::from_slice(&bytes).expect("python wrote JSON")
}
