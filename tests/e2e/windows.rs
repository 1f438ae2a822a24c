//! The Windows build (`x86_64-pc-windows-gnu`, linked by mingw-w64) under
//! wine, against the fake hub running natively on 127.0.0.1: a download
//! interrupted by a kill, resumed from its journal, verified with
//! `verify`, and a repo name Windows cannot store refused before any write.
//!
//! Runs only when `HFD_RS_WINDOWS_EXE` names the built `hfd-rs.exe`
//! (`.ci/windows` builds it and sets it); otherwise it says so and passes.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use hfd_testkit::{FakeHub, LogEntry, MIB, RepoFixture, Route};

fn windows_exe() -> Option<(PathBuf, Option<OsString>)> {
    let exe = std::env::var_os("HFD_RS_WINDOWS_EXE")?;
    Some((PathBuf::from(exe), std::env::var_os("WINEPREFIX")))
}

/// `path` as the Windows program sees it (wine maps `Z:` to `/`).
fn wine_path(path: &Path) -> String {
    format!(
        "Z:{}",
        path.to_str().expect("UTF-8 path").replace('/', "\\")
    )
}

/// `wine hfd-rs.exe args` with only what wine needs: its prefix (never a
/// fresh one per run: creating one takes many seconds), no wine debug
/// output, `USERPROFILE` in `home` (wine replaces it with its prefix's
/// profile folder; other variables reach the program).
fn wine(
    exe: &Path,
    prefix: Option<&OsString>,
    home: &Path,
    args: &[&str],
) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new("wine");
    cmd.arg(exe)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("USERPROFILE", wine_path(home))
        .env("WINEDEBUG", "-all")
        .env("HF_ENDPOINT", "http://127.0.0.1:9")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(prefix) = prefix {
        cmd.env("WINEPREFIX", prefix);
    } else if let Some(home) = home_of_caller() {
        cmd.env("WINEPREFIX", home.join(".wine"));
    }
    cmd
}

fn home_of_caller() -> Option<PathBuf> {
    std::env::var_os("HOME").map(PathBuf::from)
}

async fn finish(cmd: &mut tokio::process::Command, what: &str) -> std::process::Output {
    tokio::time::timeout(Duration::from_mins(3), cmd.output())
        .await
        .unwrap_or_else(|_| panic!("{what}: no exit within 3 minutes"))
        .expect("spawn wine")
}

fn content_bytes(entries: &[LogEntry]) -> u64 {
    entries
        .iter()
        .filter(|e| e.method == "GET")
        .filter(|e| matches!(e.route, Route::Cdn | Route::ResolveCache | Route::Resolve))
        .map(|e| e.body_bytes)
        .sum()
}

/// Bytes the journals under `dir` hold as durable (bounded walk).
fn journaled_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    for _ in 0..10_000 {
        let Some(d) = stack.pop() else { break };
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for path in entries.flatten().map(|e| e.path()) {
            if path.is_dir() {
                stack.push(path);
            } else if path.to_string_lossy().ends_with(".journal")
                && let Some(decoded) = std::fs::read(&path)
                    .ok()
                    .and_then(|b| hfd_store::decode(&b).ok())
            {
                let mut set = hfd_store::RangeSet::new();
                for r in decoded.ranges {
                    set.insert(r);
                }
                total += set.total();
            }
        }
    }
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[expect(clippy::too_many_lines, reason = "one scenario: kill, resume, verify")]
async fn the_windows_build_downloads_resumes_and_verifies_under_wine() {
    let Some((exe, prefix)) = windows_exe() else {
        eprintln!("HFD_RS_WINDOWS_EXE is not set: skipping the wine run (.ci/windows runs it)");
        return;
    };
    let repo = "org/windows";
    let hub = FakeHub::builder()
        .repo(
            RepoFixture::model(repo)
                .regular_file("config.json", "{\"model_type\": \"fake\"}\n")
                .regular_file("deep/er/notes.txt", "notes\n")
                .lfs_file("model.safetensors", 24 * MIB, 21),
        )
        .rate_per_connection(MIB)
        .start()
        .await
        .unwrap();
    let total: u64 = hub.files(repo).iter().map(|f| f.size).sum();
    let work = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let dir = work.path().join("out");
    let args_owned = [
        repo.to_owned(),
        "--local-dir".into(),
        wine_path(&dir),
        "--endpoint".into(),
        hub.endpoint().to_owned(),
        "-x".into(),
        "4".into(),
        "-k".into(),
        MIB.to_string(),
        "--quiet".into(),
    ];
    let args: Vec<&str> = args_owned.iter().map(String::as_str).collect();

    // First run: killed once its journal holds 4 MiB.
    let mut child = wine(&exe, prefix.as_ref(), home.path(), &args)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_mins(2);
    while journaled_bytes(&dir) < 4 * MIB {
        assert!(
            Instant::now() < deadline,
            "no journal progress within 2 minutes"
        );
        if let Some(status) = child.try_wait().unwrap() {
            let out = child.wait_with_output().await.unwrap();
            panic!(
                "the run exited ({status}) before it could be killed\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.start_kill().unwrap();
    tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("killed child exits")
        .unwrap();
    // Let wineserver drop the dead process's handles (and its lock).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let journaled = journaled_bytes(&dir);
    assert!(
        journaled >= 4 * MIB,
        "journal lost after the kill: {journaled}"
    );

    // Second run: resumes from the journal and finishes.
    let served_before = content_bytes(&hub.log().entries());
    let out = finish(
        &mut wine(&exe, prefix.as_ref(), home.path(), &args),
        "resumed run",
    )
    .await;
    assert!(
        out.status.success(),
        "resumed run failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let resumed = content_bytes(&hub.log().entries()) - served_before;
    // At most one segment per connection is fetched twice.
    assert!(
        resumed + journaled <= total + 4 * MIB,
        "the resumed run fetched {resumed} bytes of {total}, {journaled} were journaled"
    );
    for file in hub.files(repo) {
        let want = hub.file_bytes(repo, &file.path).unwrap();
        let got = std::fs::read(dir.join(&file.path))
            .unwrap_or_else(|e| panic!("{} missing: {e}", file.path));
        assert!(got == want, "{} differs from the hub's bytes", file.path);
    }

    // `verify` under wine: clean, then a flipped byte is found.
    let verify_args = ["verify", &wine_path(&dir), "--endpoint", hub.endpoint()];
    let out = finish(
        &mut wine(&exe, prefix.as_ref(), home.path(), &verify_args),
        "verify",
    )
    .await;
    assert!(
        out.status.success(),
        "verify: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let model = dir.join("model.safetensors");
    let mut bytes = std::fs::read(&model).unwrap();
    bytes[MIB as usize + 7] ^= 0xff;
    std::fs::write(&model, bytes).unwrap();
    let out = finish(
        &mut wine(&exe, prefix.as_ref(), home.path(), &verify_args),
        "verify after corruption",
    )
    .await;
    assert_eq!(
        out.status.code(),
        Some(7),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("model.safetensors: MISMATCH"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_windows_build_refuses_a_name_windows_cannot_store() {
    let Some((exe, prefix)) = windows_exe() else {
        eprintln!("HFD_RS_WINDOWS_EXE is not set: skipping the wine run (.ci/windows runs it)");
        return;
    };
    let repo = "org/devices";
    let hub = FakeHub::builder()
        .repo(
            RepoFixture::model(repo)
                .regular_file("config.json", "{}\n")
                .regular_file("data/aux.json", "{}\n"),
        )
        .start()
        .await
        .unwrap();
    let work = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let dir = work.path().join("out");
    let args = [
        repo,
        "--local-dir",
        &wine_path(&dir),
        "--endpoint",
        hub.endpoint(),
    ];
    let out = finish(&mut wine(&exe, prefix.as_ref(), home.path(), &args), "run").await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(8), "{stderr}");
    assert!(
        stderr.contains("\"data/aux.json\"") && stderr.contains("AUX is a reserved"),
        "{stderr}"
    );
    assert!(!dir.exists(), "nothing is written before the refusal");
    assert_eq!(hub.log().resolve_count(), 0);
}

/// `--cache` from the Windows build, into the cache below `HF_HOME`:
/// where symlinks do not work (wine's
/// `CreateSymbolicLinkW` returns success without making a link, a Windows
/// user without Developer Mode gets an error), snapshot entries are copies
/// of the blobs, as huggingface_hub makes them; a second run finds
/// everything up to date, and the real huggingface_hub reads the cache
/// offline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_windows_build_fills_the_hub_cache_without_symlinks_under_wine() {
    let Some((exe, prefix)) = windows_exe() else {
        eprintln!("HFD_RS_WINDOWS_EXE is not set: skipping the wine run (.ci/windows runs it)");
        return;
    };
    let repo = "org/cached";
    let hub = FakeHub::builder()
        .repo(
            RepoFixture::model(repo)
                .regular_file("config.json", "{\"model_type\": \"fake\"}\n")
                // Same bytes, same blob: one entry gets the blob, one a copy.
                .regular_file("deep/er/config.json", "{\"model_type\": \"fake\"}\n")
                .lfs_file("model.safetensors", 3 * MIB, 22),
        )
        .start()
        .await
        .unwrap();
    let commit = hub.commit(repo, "main").unwrap();
    let work = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    // `--cache` alone: `%HF_HOME%\hub` (wine sets `USERPROFILE` itself, to
    // its prefix's profile, so the default below it is left to the unit
    // tests of settings.rs).
    let hf_home = work.path().join("hf");
    let cache = hf_home.join("hub");
    let args = [repo, "--cache", "--endpoint", hub.endpoint()];
    let cached = |what| {
        let mut cmd = wine(&exe, prefix.as_ref(), home.path(), &args);
        cmd.env("HF_HOME", wine_path(&hf_home));
        (cmd, what)
    };
    // Not --quiet: the warning says which kind of entries were made.
    let (mut cmd, what) = cached("run");
    let out = finish(&mut cmd, what).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "run failed ({}): {stderr}",
        out.status
    );
    let copies = stderr.contains("symlinks are not supported here");
    let folder = cache.join("models--org--cached");
    let snapshot = folder.join("snapshots").join(&commit);
    for file in hub.files(repo) {
        let entry = snapshot.join(&file.path);
        let kind = std::fs::symlink_metadata(&entry)
            .unwrap_or_else(|e| panic!("{} missing: {e}", file.path))
            .file_type();
        if copies {
            assert!(kind.is_file(), "{} is not a copy: {kind:?}", file.path);
        } else {
            assert!(kind.is_symlink(), "{} is not a link: {kind:?}", file.path);
        }
        let want = hub.file_bytes(repo, &file.path).unwrap();
        assert!(
            std::fs::read(&entry).unwrap() == want,
            "{} differs from the hub's bytes",
            file.path
        );
    }
    assert_eq!(
        std::fs::read_to_string(folder.join("refs/main")).unwrap(),
        commit
    );

    // Again: every file is up to date, no content byte is fetched.
    let served_before = content_bytes(&hub.log().entries());
    let (mut cmd, what) = cached("second run");
    let out = finish(&mut cmd, what).await;
    assert!(
        out.status.success(),
        "second run failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(content_bytes(&hub.log().entries()), served_before);

    // huggingface_hub finds every file in the cache without the network.
    if hfd_testkit::support::python_client_version().is_none() {
        return;
    }
    let script = work.path().join("read_cache.py");
    let result = work.path().join("read_cache.json");
    std::fs::write(
        &script,
        "import json, sys\n\
         from huggingface_hub import hf_hub_download\n\
         repo, out, names = sys.argv[1], sys.argv[2], sys.argv[3:]\n\
         found = {n: open(hf_hub_download(repo, n, local_files_only=True), 'rb').read().hex() for n in names}\n\
         json.dump(found, open(out, 'w'))\n",
    )
    .unwrap();
    let mut cmd = hfd_testkit::support::python_command(&hub, &script, &hf_home);
    cmd.arg(repo).arg(&result).env("HF_HUB_OFFLINE", "1");
    for file in hub.files(repo) {
        cmd.arg(&file.path);
    }
    let found = hfd_testkit::support::run_python_json(cmd, &result, String::new).await;
    for file in hub.files(repo) {
        let want = hub.file_bytes(repo, &file.path).unwrap();
        let got = found[&file.path].as_str().unwrap_or_default();
        assert!(
            got.len() == want.len() * 2 && got == hex(&want),
            "huggingface_hub read other bytes for {}",
            file.path
        );
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}
