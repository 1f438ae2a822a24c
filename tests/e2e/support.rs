//! Running the binary in a clean environment and checking its output.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

/// Path of the binary under test.
pub(crate) fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_hfd-rs"))
}

/// What one run of the binary did.
#[derive(Debug)]
pub(crate) struct Run {
    pub(crate) code: i32,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Run {
    /// Panics with the whole output unless the exit code is `code`.
    #[track_caller]
    pub(crate) fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code, code,
            "exit code {} (want {code})\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        );
        self
    }

    /// The `--json` events on stdout (lines that are not JSON skipped).
    pub(crate) fn json_events(&self) -> impl Iterator<Item = serde_json::Value> + '_ {
        self.stdout
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
    }
}

/// Runs `hfd-rs args` with a clean environment: no HF_* variables, no
/// proxy variables, HOME in `home` (so no saved token is found), `HF_ENDPOINT`
/// at a closed loopback port, plus `envs`.
/// Bounded by `timeout`.
pub(crate) async fn run_with(
    args: &[&str],
    envs: &[(&str, &str)],
    home: &Path,
    timeout: Duration,
) -> Run {
    let mut cmd = tokio::process::Command::new(bin());
    clean_env(cmd.args(args), home);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let child = cmd.spawn().expect("spawn hfd-rs");
    let output = tokio::time::timeout(timeout, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("hfd-rs {args:?} did not finish within {timeout:?}"))
        .expect("wait for hfd-rs");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Gives `cmd` the clean environment of every run: only `PATH`, `HOME` = `home` (so no
/// saved token is found) and `HF_ENDPOINT` at a closed loopback port; no stdin, piped output,
/// killed when dropped.
pub(crate) fn clean_env<'a>(
    cmd: &'a mut tokio::process::Command,
    home: &Path,
) -> &'a mut tokio::process::Command {
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        // Never the real hub: a test that forgets --endpoint fails fast
        // against a closed loopback port instead.
        .env("HF_ENDPOINT", "http://127.0.0.1:9")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
}

/// [`run_with`] with a fresh home and a 60 s bound.
pub(crate) async fn run(args: &[&str]) -> Run {
    let home = tempfile::tempdir().expect("tempdir");
    run_with(args, &[], home.path(), Duration::from_mins(1)).await
}

/// Asserts that every file of `repo` at its main revision is under `dir`
/// with the fake hub's exact bytes.
#[track_caller]
pub(crate) fn assert_same_files(hub: &hfd_testkit::FakeHub, repo: &str, dir: &Path) {
    let files = hub.files(repo);
    assert!(!files.is_empty(), "{repo} has no files");
    for file in files {
        let expected = hub.file_bytes(repo, &file.path).expect("fixture bytes");
        let got = std::fs::read(dir.join(&file.path))
            .unwrap_or_else(|e| panic!("{} missing: {e}", file.path));
        assert!(
            got == expected,
            "{} differs from the hub's bytes",
            file.path
        );
    }
}

/// Downloads `repo` from `hub` into a new folder with the `extra` flags,
/// expects exit 0 and every file with the hub's bytes; the run, for its
/// output.
pub(crate) async fn download_checked(
    hub: &hfd_testkit::FakeHub,
    repo: &str,
    extra: &[&str],
) -> Run {
    let out = tempfile::tempdir().expect("tempdir");
    let dir = out.path().join("m");
    let mut args = vec![
        repo,
        "--endpoint",
        hub.endpoint(),
        "--local-dir",
        dir.to_str().expect("utf-8"),
    ];
    args.extend_from_slice(extra);
    let done = run(&args).await;
    done.expect_code(0);
    assert_same_files(hub, repo, &dir);
    done
}

/// Runs `command` in a pseudo-terminal (script(1)); what it drew.
pub(crate) async fn in_terminal(command: &str, envs: &[(&str, &str)]) -> String {
    let mut cmd = tokio::process::Command::new("script");
    cmd.args(["-qfec", command, "/dev/null"])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("TERM", "xterm-256color")
        .env("HF_ENDPOINT", "http://127.0.0.1:9")
        .kill_on_drop(true);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let output = tokio::time::timeout(Duration::from_mins(1), cmd.output())
        .await
        .expect("finishes")
        .expect("script(1) runs");
    String::from_utf8_lossy(&output.stdout).into_owned()
}
