//! Issue #9 at the binary level: bad command-line input, token hygiene in
//! everything the binary prints (any verbosity, `--json`), an unwritable or
//! full target, and two processes on one target.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use hfd_testkit::{FakeHub, Fault, FaultKind, FaultTarget, KIB, MIB, RepoFixture};

use crate::support::{assert_same_files, bin, clean_env, run, run_with};

const TOKEN: &str = "hf_e2eHostileSecret0815";
const REPO: &str = "org/model";

async fn hub_with_rate(rate: Option<u64>) -> FakeHub {
    let mut builder = FakeHub::builder()
        .repo(
            RepoFixture::model(REPO)
                .regular_file("config.json", "{\"model_type\": \"hostile\"}\n")
                .lfs_file("model.safetensors", 2 * MIB + 3, 1)
                .lfs_file("small.bin", 64 * KIB, 2),
        )
        .token(TOKEN)
        .strict_cdn(true);
    if let Some(rate) = rate {
        builder = builder.rate_per_connection(rate);
    }
    builder.start().await.expect("start fake hub")
}

/// Every regular file under `dir`, read back.
fn all_bytes(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    for _ in 0..10_000 {
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
                let bytes = std::fs::read(entry.path()).expect("read back");
                out.push((entry.path().display().to_string(), bytes));
            }
        }
    }
    out
}

/// The signatures of the presigned CDN URLs the hub handed out.
fn signatures(hub: &FakeHub) -> Vec<String> {
    hub.log()
        .entries()
        .iter()
        .filter_map(|e| e.location.as_deref())
        .filter_map(|l| l.split("X-Amz-Signature=").nth(1))
        .map(|s| s.split('&').next().unwrap_or_default().to_owned())
        .filter(|s| s.len() >= 32)
        .collect()
}

/// One run of the token test: hub, flags, extra environment, exit code.
type Case<'a> = (&'a FakeHub, Vec<&'a str>, Vec<(&'a str, &'a str)>, i32);

#[track_caller]
fn assert_clean(what: &str, haystack: &[u8], secrets: &[String]) {
    for secret in secrets {
        assert!(
            !haystack
                .windows(secret.len())
                .any(|w| w == secret.as_bytes()),
            "{what} contains a secret:\n{}",
            String::from_utf8_lossy(haystack)
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_is_a_usage_error_with_one_clear_line() {
    let home = tempfile::tempdir().expect("home");
    let target = home.path().join("target");
    let target_text = target.to_str().expect("utf-8 path");
    let cases: &[&[&str]] = &[
        &["a/b/c"],
        &["../etc"],
        &["org/-bad-"],
        &["has space/x"],
        &["org/model", "--revision", ".."],
        &["org/model", "--revision", "a\nb"],
        &["org/model", "-k", "10X"],
        &["org/model", "-k", "99999999999999T"],
        &["org/model", "--endpoint", "ftp://hub.example"],
        &["org/model", "--endpoint", "not a url"],
        &["org/model", "--endpoint", "http://"],
        &["org/model", "--proxy", "gopher://127.0.0.1:1"],
        &["org/model", "--proxy", "http://[::1"],
        &["org/model", "-x", "0"],
        &["org/model", "-j", "0"],
        &["org/model", "--repo-type", "bucket"],
        &["org/model", "--token", "hf_bad token"],
        &["org/model", "--token", "hf_bad\u{7}token"],
    ];
    for args in cases {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--local-dir", target_text]);
        let out = run_with(&all, &[], home.path(), Duration::from_secs(30)).await;
        assert_eq!(
            out.code, 2,
            "{args:?}: exit {}\n{}\n{}",
            out.code, out.stdout, out.stderr
        );
        assert!(!out.stderr.contains("panicked"), "{args:?}: {}", out.stderr);
        let lines: Vec<&str> = out
            .stderr
            .lines()
            .filter(|l| !l.trim().is_empty())
            .collect();
        assert!(
            !lines.is_empty() && lines.len() <= 6,
            "{args:?}: one clear message, not a wall of text:\n{}",
            out.stderr
        );
        assert!(!target.exists(), "{args:?}: the target was created");
        assert!(!out.stderr.contains("hf_bad"), "{args:?}: token echoed");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn odd_globs_are_patterns_not_crashes() {
    let hub = hub_with_rate(None).await;
    let out = run(&[
        REPO,
        "--endpoint",
        hub.endpoint(),
        "--dry-run",
        "--include",
        "[",
        "[!",
        "***",
        "\\",
        "[z-a]",
    ])
    .await;
    out.expect_code(0);
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_token_is_in_no_output_at_any_verbosity() {
    let hub = hub_with_rate(None).await;
    let failing = hub_with_rate(None).await;
    failing.faults().inject(
        Fault::new(FaultKind::Status(500))
            .on(FaultTarget::Cdn)
            .always(),
    );
    let home = tempfile::tempdir().expect("home");
    let mut outputs: Vec<(String, Vec<u8>)> = Vec::new();
    let runs: Vec<Case<'_>> = vec![
        (&hub, vec!["-vv"], vec![], 0),
        (&hub, vec!["--json", "--force"], vec![], 0),
        (&hub, vec!["--dry-run", "--json", "-vv"], vec![], 0),
        (&hub, vec!["--force"], vec![("RUST_LOG", "trace")], 0),
        (&failing, vec!["-vv"], vec![], 5),
        (&failing, vec!["--json"], vec![("RUST_LOG", "trace")], 5),
    ];
    for (i, (hub, flags, extra_env, code)) in runs.into_iter().enumerate() {
        let target = home.path().join(format!("target-{}", usize::from(i >= 4)));
        let target_text = target.to_str().expect("utf-8").to_owned();
        let mut args = vec![
            REPO,
            "--endpoint",
            hub.endpoint(),
            "--local-dir",
            &target_text,
        ];
        args.extend(flags.iter().copied());
        let mut env = vec![("HF_TOKEN", TOKEN)];
        env.extend(extra_env);
        let out = run_with(&args, &env, home.path(), Duration::from_mins(2)).await;
        assert_eq!(
            out.code, code,
            "{flags:?}: exit {}\n{}\n{}",
            out.code, out.stdout, out.stderr
        );
        if i == 3 {
            assert!(
                out.stderr.contains("TRACE") || out.stderr.contains("trace"),
                "RUST_LOG=trace logs something"
            );
        }
        outputs.push((format!("stdout of {flags:?}"), out.stdout.into_bytes()));
        outputs.push((format!("stderr of {flags:?}"), out.stderr.into_bytes()));
    }
    assert!(
        hub.log().count(|e| e.has_authorization) > 0,
        "the hub got the token"
    );
    assert_eq!(hub.log().cdn_requests_with_authorization(), 0);
    assert_eq!(failing.log().cdn_requests_with_authorization(), 0);
    let mut secrets = vec![TOKEN.to_owned()];
    secrets.extend(signatures(&hub));
    secrets.extend(signatures(&failing));
    assert!(secrets.len() > 2, "signed URLs were handed out");
    for (what, bytes) in &outputs {
        assert_clean(what, bytes, &secrets);
    }
    let written = all_bytes(home.path());
    assert!(!written.is_empty());
    for (path, bytes) in &written {
        assert_clean(path, bytes, &secrets);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_target_under_a_file_is_a_disk_error() {
    let hub = hub_with_rate(None).await;
    let home = tempfile::tempdir().expect("home");
    let blocker = home.path().join("blocker");
    std::fs::write(&blocker, b"a file, not a folder").expect("write");
    let target = blocker.join("target");
    let out = run(&[
        REPO,
        "--endpoint",
        hub.endpoint(),
        "--local-dir",
        target.to_str().expect("utf-8"),
    ])
    .await;
    out.expect_code(8);
    assert!(
        out.stderr.contains("blocker"),
        "names the path: {}",
        out.stderr
    );
    assert_eq!(
        std::fs::read(&blocker).expect("kept"),
        b"a file, not a folder"
    );
}

/// Runs the binary under `sh` with a file-size limit (`ulimit -f`, SIGXFSZ
/// ignored so writes fail with EFBIG): a disk that fills up.
async fn run_with_file_limit(args: &[&str], home: &Path, blocks: u32) -> (i32, String) {
    let mut script = format!("trap '' XFSZ; ulimit -f {blocks}; exec \"$0\"");
    for i in 1..=args.len() {
        let _ = write!(script, " \"${i}\"");
    }
    let mut cmd = tokio::process::Command::new("sh");
    cmd.arg("-c").arg(script).arg(bin()).args(args);
    let child = clean_env(&mut cmd, home).spawn().expect("spawn sh");
    let out = tokio::time::timeout(Duration::from_mins(2), child.wait_with_output())
        .await
        .expect("finishes")
        .expect("wait");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_target_is_a_disk_error_and_the_next_run_completes() {
    let hub = hub_with_rate(None).await;
    let home = tempfile::tempdir().expect("home");
    let target = home.path().join("target");
    let target_text = target.to_str().expect("utf-8");
    let args = [
        REPO,
        "--endpoint",
        hub.endpoint(),
        "--local-dir",
        target_text,
    ];
    // 512 blocks: 256 KiB (dash) or 512 KiB (bash), below the 2 MiB file.
    let (code, stderr) = run_with_file_limit(&args, home.path(), 512).await;
    assert_eq!(code, 8, "a full disk is exit 8:\n{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        !target.join("model.safetensors").exists(),
        "no file under its final name after a full disk"
    );
    run(&args).await.expect_code(0);
    assert_same_files(&hub, REPO, &target);
}

#[tokio::test(flavor = "multi_thread")]
async fn two_processes_on_one_target_leave_the_files_intact() {
    // 4 connections × 1 MiB/s: the first run takes about a second.
    let hub = hub_with_rate(Some(MIB)).await;
    let home = tempfile::tempdir().expect("home");
    let target = home.path().join("target");
    let target_text = target.to_str().expect("utf-8").to_owned();
    let args = vec![
        REPO.to_owned(),
        "--endpoint".to_owned(),
        hub.endpoint().to_owned(),
        "--local-dir".to_owned(),
        target_text,
        "-x".to_owned(),
        "4".to_owned(),
    ];
    let spawn = |args: Vec<String>| {
        let home = home.path().to_path_buf();
        tokio::spawn(async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            run_with(&args, &[], &home, Duration::from_mins(2)).await
        })
    };
    let first = spawn(args.clone());
    // Let the first one start transferring (bounded wait on its progress).
    for _ in 0..100 {
        if hub.log().range_request_count() > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let second = spawn(args);
    let first = first.await.expect("first run");
    let second = second.await.expect("second run");
    for (name, out) in [("first", &first), ("second", &second)] {
        assert!(!out.stderr.contains("panicked"), "{name}: {}", out.stderr);
        assert!(
            out.code == 0
                || out.stderr.contains("in use by another download")
                || out.stderr.to_lowercase().contains("lock"),
            "{name}: exit {} without a clear reason:\n{}",
            out.code,
            out.stderr
        );
    }
    assert!(
        first.code == 0 || second.code == 0,
        "one of the two runs completes:\n{}\n{}",
        first.stderr,
        second.stderr
    );
    assert_same_files(&hub, REPO, &target);
}

/// A listed path with a bidirectional override (issue #14): shown to a
/// person as `\u{202e}` (dry-run list, error line), kept exact in `--json`.
#[tokio::test(flavor = "multi_thread")]
async fn bidi_characters_in_paths_are_escaped_for_people_and_exact_in_json() {
    let evil = "evil\u{202e}txt.exe";
    let hub = FakeHub::builder()
        .repo(RepoFixture::model(REPO).regular_file(evil, "boo\n"))
        .start()
        .await
        .expect("start fake hub");
    let home = tempfile::tempdir().expect("home");
    let target = home.path().join("target");
    let target_text = target.to_str().expect("utf-8");
    let base = [
        REPO,
        "--endpoint",
        hub.endpoint(),
        "--local-dir",
        target_text,
    ];
    let mut args = base.to_vec();
    args.push("--dry-run");
    let out = run(&args).await;
    out.expect_code(0);
    assert!(
        out.stdout.contains("evil\\u{202e}txt.exe"),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains('\u{202e}'), "raw override shown");
    args.push("--json");
    let out = run(&args).await;
    out.expect_code(0);
    let exact = out.json_events().any(|v| v.to_string().contains(evil));
    assert!(exact, "--json keeps the exact path: {}", out.stdout);
    // A failing download names the file in its error line, escaped.
    hub.faults().inject(
        Fault::new(FaultKind::Status(404))
            .on(FaultTarget::Resolve)
            .always(),
    );
    let out = run(&base).await;
    assert_ne!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("evil\\u{202e}txt.exe"),
        "{}",
        out.stderr
    );
    assert!(
        !out.stderr.contains('\u{202e}'),
        "raw override shown: {}",
        out.stderr
    );
}

/// A hub echoing the token in `X-Repo-Commit` of every resolve (issue #14):
/// the binary prints it nowhere, plain, `--json` or `-vv`.
#[tokio::test(flavor = "multi_thread")]
async fn a_token_echoed_in_a_normal_answer_is_in_no_output() {
    let hub = hub_with_rate(None).await;
    hub.faults().inject(
        Fault::new(FaultKind::EchoTokenIn(hfd_testkit::EchoChannel::Header(
            "x-repo-commit",
        )))
        .on(FaultTarget::Resolve)
        .always(),
    );
    let home = tempfile::tempdir().expect("home");
    for flags in [vec![], vec!["--json"], vec!["-vv"]] {
        let target = home.path().join("target");
        let target_text = target.to_str().expect("utf-8").to_owned();
        let mut args = vec![
            REPO,
            "--endpoint",
            hub.endpoint(),
            "--local-dir",
            &target_text,
        ];
        args.extend(flags.iter().copied());
        let out = run_with(
            &args,
            &[("HF_TOKEN", TOKEN)],
            home.path(),
            Duration::from_mins(2),
        )
        .await;
        assert!(!out.stdout.contains(TOKEN), "{flags:?}: token on stdout");
        assert!(!out.stderr.contains(TOKEN), "{flags:?}: token on stderr");
    }
    assert!(hub.log().count(|e| e.fault == Some("echo-token")) > 0);
}

/// The same name in log lines, plain, `-v` and `-vv` (tracing's format):
/// escaped wherever it is shown, never raw.
#[tokio::test(flavor = "multi_thread")]
async fn bidi_characters_in_paths_are_escaped_in_log_lines() {
    let evil = "evil\u{202e}txt.exe";
    let hub = FakeHub::builder()
        .repo(RepoFixture::model(REPO).regular_file(evil, "boo\n"))
        .start()
        .await
        .expect("start fake hub");
    let home = tempfile::tempdir().expect("home");
    for (i, verbosity) in [None, Some("-v"), Some("-vv")].into_iter().enumerate() {
        // One failed transfer, retried: a warning that names the file.
        hub.faults().inject(
            Fault::new(FaultKind::ResetAfterBytes(1))
                .on(FaultTarget::Resolve)
                .path_contains("evil"),
        );
        let target = home.path().join(format!("t{i}"));
        let mut args = vec![
            REPO,
            "--endpoint",
            hub.endpoint(),
            "--local-dir",
            target.to_str().expect("utf-8"),
            "--retry-wait",
            "0.1",
        ];
        args.extend(verbosity);
        let out = run(&args).await;
        out.expect_code(0);
        assert!(
            !out.stderr.contains('\u{202e}'),
            "{verbosity:?}: raw override shown: {}",
            out.stderr
        );
        if verbosity == Some("-vv") {
            assert!(
                out.stderr.contains("evil\\u{202e}txt.exe"),
                "{verbosity:?}: {}",
                out.stderr
            );
        }
    }
}
