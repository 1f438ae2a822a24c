//! The command line in the hands of its users: failing fast and saying what
//! to do, log lines for people, `hf download` lines, selection mistakes,
//! withheld logins, bench past a dead endpoint, verify's missing folder.

use std::path::Path;
use std::time::Duration;

use hfd_testkit::{FakeHub, Fault, FaultKind, FaultTarget, MIB, RepoFixture};

use crate::support::{Run, assert_same_files, bin, in_terminal, run, run_with};

async fn hub() -> FakeHub {
    FakeHub::builder()
        .repo(
            RepoFixture::model("org/model")
                .regular_file("config.json", r#"{"model_type": "test"}"#)
                .lfs_file("model.safetensors", 2 * MIB, 1),
        )
        .repo(RepoFixture::synthetic_dataset("org/data", 6, 3))
        .repo(
            RepoFixture::model("org/gated")
                .gated()
                .regular_file("a.txt", "a"),
        )
        .token("hf_good")
        .start()
        .await
        .expect("start fake hub")
}

/// `hfd-rs args` with a fresh home, bounded by 60 s.
async fn run_env(args: &[&str], envs: &[(&str, &str)]) -> Run {
    let home = tempfile::tempdir().unwrap();
    run_with(args, envs, home.path(), Duration::from_mins(1)).await
}

/// A loopback server that accepts connections and never answers (what the
/// official hub looks like from behind the Great Firewall).
async fn silent_server() -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        // Bounded: a test opens a handful of connections.
        for _ in 0..64 {
            match listener.accept().await {
                Ok((socket, _)) => held.push(socket),
                Err(_) => break,
            }
        }
        std::future::pending::<()>().await;
    });
    (url, task)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_silent_endpoint_fails_fast_with_a_waiting_line() {
    let (url, task) = silent_server().await;
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("m");
    let run = run(&[
        "org/model",
        "--endpoint",
        &url,
        "--timeout",
        "6",
        "--retries",
        "0",
        "--local-dir",
        dir.to_str().unwrap(),
    ])
    .await;
    run.expect_code(5);
    assert!(
        run.stderr
            .contains("hfd-rs: warning: waiting for 127.0.0.1: no answer for 5 s"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("timed out after 6 s"), "{}", run.stderr);
    assert!(!dir.exists(), "a failed plan created the folder");
    task.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_official_hub_unreachable_suggests_a_mirror() {
    // The official hub through a proxy port nothing listens on: no packet
    // leaves the machine, and the hub counts as unreachable.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let proxy = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let run = run_env(
        &["gpt2", "--dry-run", "--proxy", &proxy, "--retries", "0"],
        &[("HF_ENDPOINT", "https://huggingface.co")],
    )
    .await;
    run.expect_code(5);
    assert!(
        run.stderr.contains("HF_ENDPOINT=https://hf-mirror.com"),
        "{}",
        run.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bare_host_is_https_and_https_on_an_http_port_is_explained_at_once() {
    let hub = hub().await;
    let bare = hub.endpoint().trim_start_matches("http://").to_owned();
    let run = run_env(&["org/model", "--dry-run"], &[("HF_ENDPOINT", &bare)]).await;
    run.expect_code(9);
    assert!(
        run.stderr
            .contains(&format!("has no scheme; using https://{bare}")),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("this port speaks http://, not https://"),
        "{}",
        run.stderr
    );
    // Said at once: no retries of a handshake that cannot succeed.
    assert!(!run.stderr.contains("retry"), "{}", run.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn retries_are_a_flag_and_the_failure_names_the_file_and_how_to_resume() {
    let hub = hub().await;
    hub.faults().inject(
        Fault::new(FaultKind::Status(500))
            .on(FaultTarget::Cdn)
            .always(),
    );
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("m");
    let run = run(&[
        "org/model",
        "--endpoint",
        hub.endpoint(),
        "--local-dir",
        dir.to_str().unwrap(),
        "-x",
        "1",
        "--retries",
        "2",
        "--retry-wait",
        "0.2",
    ])
    .await;
    run.expect_code(5);
    let warnings: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("hfd-rs: warning: model.safetensors: "))
        .collect();
    assert!(
        warnings.iter().any(|l| l.contains("retry 1 of 2 in ")),
        "{}",
        run.stderr
    );
    assert!(
        !warnings.iter().any(|l| l.contains("retry 3 of")),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .lines()
            .any(|l| l.starts_with("hfd-rs: error: ") && l.contains("model.safetensors: ")),
        "{}",
        run.stderr
    );
    assert!(
        !run.stderr.contains("transient source failure"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("file#"), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("hfd-rs: hint: partial downloads are kept; run the same command again"),
        "{}",
        run.stderr
    );
    // Pipes get no colours and no tracing timestamps.
    assert!(!run.stderr.contains('\u{1b}'), "{:?}", run.stderr);

    // The same command resumes once the network is back.
    hub.faults().clear();
    let again = crate::support::run(&[
        "org/model",
        "--endpoint",
        hub.endpoint(),
        "--local-dir",
        dir.to_str().unwrap(),
    ])
    .await;
    again.expect_code(0);
    assert_same_files(&hub, "org/model", &dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn hf_download_lines_work_unchanged() {
    let hub = hub().await;
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("d");
    let cache = out.path().join("cache");
    let args = [
        "download",
        "org/data",
        "--repo-type",
        "dataset",
        "--local-dir",
        dir.to_str().unwrap(),
        "--cache-dir",
        cache.to_str().unwrap(),
        "--revision",
        "main",
        "--include",
        "*.md",
        "data/*",
        "--exclude",
        "*00003*",
        "--token",
        "hf_good",
        "--max-workers",
        "2",
        "--force-download",
        "--resume-download",
        "--local-dir-use-symlinks",
        "False",
        "--endpoint",
        hub.endpoint(),
    ];
    let run = run(&args).await;
    run.expect_code(0);
    for note in [
        "hfd-rs: note: --resume-download is not needed",
        "hfd-rs: note: --local-dir-use-symlinks ignored",
        "--cache-dir",
    ] {
        assert!(run.stderr.contains(note), "{note:?}: {}", run.stderr);
    }
    let files = hub.files("org/data");
    let wanted = files
        .iter()
        .filter(|f| {
            (Path::new(&f.path).extension().is_some_and(|e| e == "md")
                || f.path.starts_with("data/"))
                && !f.path.contains("00003")
        })
        .count();
    let got = files.iter().filter(|f| dir.join(&f.path).is_file()).count();
    assert_eq!(got, wanted, "{}", run.stderr);
    assert!(!cache.exists(), "files went to --local-dir, not the cache");

    // --quiet: nothing but errors.
    let mut quiet = args.to_vec();
    quiet.push("--quiet");
    let run = crate::support::run(&quiet).await;
    run.expect_code(0);
    assert_eq!(run.stderr, "", "--quiet printed");

    // A typo gets the right suggestion.
    let run = crate::support::run(&["download", "org/data", "--max-worker", "2"]).await;
    run.expect_code(2);
    assert!(run.stderr.contains("--max-workers"), "{}", run.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn selection_mistakes_are_said() {
    let hub = hub().await;
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("nothing");
    let run = run(&[
        "org/model",
        "--include",
        "*.gguf",
        "--endpoint",
        hub.endpoint(),
        "--local-dir",
        dir.to_str().unwrap(),
    ])
    .await;
    run.expect_code(2);
    assert!(
        run.stderr
            .contains("nothing matches \"*.gguf\": the repository has 2 files"),
        "{}",
        run.stderr
    );
    assert!(!dir.exists(), "a selection of nothing created the folder");

    // A file name typed after --include is a pattern too.
    let run = crate::support::run(&[
        "org/model",
        "--include",
        "*.gguf",
        "config.jsn",
        "--endpoint",
        hub.endpoint(),
        "--local-dir",
        dir.to_str().unwrap(),
    ])
    .await;
    run.expect_code(2);
    assert!(
        run.stderr.contains("end the patterns with --"),
        "{}",
        run.stderr
    );

    // The repo id swallowed by --include.
    let run = crate::support::run(&["--include", "*.json", "org/model"]).await;
    run.expect_code(2);
    assert!(
        run.stderr
            .contains("\"org/model\" was read as an --include/--exclude pattern"),
        "{}",
        run.stderr
    );

    // A dataset asked for as a model.
    let run = crate::support::run(&[
        "org/data",
        "--endpoint",
        hub.endpoint(),
        "--local-dir",
        dir.to_str().unwrap(),
    ])
    .await;
    run.expect_code(3);
    assert!(
        run.stderr
            .contains("org/data is not a model but a dataset here: add --dataset"),
        "{}",
        run.stderr
    );
}

fn save_login(home: &Path, token: &str) {
    let dir = home.join(".cache").join("huggingface");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("token"), token).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_withheld_saved_login_is_named() {
    let hub = hub().await;
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("g");
    let home = tempfile::tempdir().unwrap();
    save_login(home.path(), "hf_good");
    let args = [
        "org/gated",
        "--endpoint",
        hub.endpoint(),
        "--local-dir",
        dir.to_str().unwrap(),
    ];
    let run = run_with(&args, &[], home.path(), Duration::from_mins(1)).await;
    run.expect_code(4);
    assert!(
        run.stderr
            .contains("a saved `hf auth login` token exists but is not sent to"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("HF_TOKEN="), "{}", run.stderr);
    assert!(!run.stderr.contains("hf_good"), "{}", run.stderr);

    // A token was given: no "pass a token" advice.
    let mut with_token = args.to_vec();
    with_token.extend(["--token", "hf_bad"]);
    let run = run_with(&with_token, &[], home.path(), Duration::from_mins(1)).await;
    run.expect_code(4);
    assert!(!run.stderr.contains("pass a token"), "{}", run.stderr);
    assert!(run.stderr.contains("the token given"), "{}", run.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn bench_measures_past_a_dead_endpoint() {
    let hub = hub().await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let run = run(&[
        "bench",
        "org/model",
        "--endpoint",
        &dead,
        "--endpoint",
        hub.endpoint(),
        "-x",
        "1",
        "--duration",
        "0.5",
        "--retries",
        "0",
    ])
    .await;
    run.expect_code(0);
    assert!(
        run.stdout
            .lines()
            .any(|l| l.starts_with(dead.as_str()) && l.contains("failed")),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains(&format!("fastest: {} with -x 1", hub.endpoint())),
        "{}",
        run.stdout
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_says_no_such_folder() {
    let run = run(&["verify", "/nonexistent/hfd-rs-test"]).await;
    run.expect_code(2);
    assert!(
        run.stderr
            .contains("hfd-rs: error: no such folder: /nonexistent/hfd-rs-test"),
        "{}",
        run.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn dry_run_counts_and_sizes_read_well() {
    let hub = hub().await;
    let run = run(&[
        "org/model",
        "model.safetensors",
        "--dry-run",
        "--endpoint",
        hub.endpoint(),
    ])
    .await;
    run.expect_code(0);
    assert!(
        run.stdout.contains("2.00 MiB  model.safetensors"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("1 file, 2.00 MiB in total"),
        "{}",
        run.stdout
    );

    // The dry-run document uses the `plan` event's field names.
    let run = crate::support::run(&[
        "org/model",
        "--dry-run",
        "--json",
        "--endpoint",
        hub.endpoint(),
    ])
    .await;
    run.expect_code(0);
    let doc: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    for (field, value) in [
        ("files_total", 2),
        ("files_to_fetch", 2),
        ("bytes_to_fetch", 2 * MIB + 22),
        ("bytes_total", 2 * MIB + 22),
    ] {
        assert_eq!(doc[field], value, "{field}: {doc}");
    }
    assert!(doc["plan_requests"].as_u64().is_some(), "{doc}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stall_is_shown_as_such() {
    let hub = hub().await;
    hub.faults().inject(
        Fault::new(FaultKind::StallAfterBytes {
            bytes: 256 * 1024,
            duration: Duration::from_secs(9),
        })
        .on(FaultTarget::Cdn)
        .times(1),
    );
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("m");
    let run = run(&[
        "org/model",
        "--endpoint",
        hub.endpoint(),
        "--local-dir",
        dir.to_str().unwrap(),
        "-x",
        "1",
    ])
    .await;
    run.expect_code(0);
    // The plain status line every 5 s: the stall is said, not a decaying
    // average speed.
    assert!(
        run.stderr
            .lines()
            .any(|l| l.starts_with("hfd-rs: ") && l.contains("stalled ")),
        "{}",
        run.stderr
    );
    assert_same_files(&hub, "org/model", &dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn colours_only_on_a_terminal_honouring_no_color_term_and_clicolor_force() {
    let hub = hub().await;
    let home = tempfile::tempdir().unwrap();
    let command = format!(
        "{} org/missing --endpoint {} --local-dir {}",
        bin().display(),
        hub.endpoint(),
        home.path().join("x").display()
    );
    let red = "\u{1b}[1;31merror:";
    let home_env = ("HOME", home.path().to_str().unwrap());
    let screen = in_terminal(&command, &[home_env]).await;
    assert!(screen.contains(red), "{screen:?}");
    let screen = in_terminal(&command, &[home_env, ("NO_COLOR", "1")]).await;
    assert!(screen.contains("hfd-rs: error: "), "{screen:?}");
    assert!(!screen.contains('\u{1b}'), "{screen:?}");
    let screen = in_terminal(&command, &[home_env, ("TERM", "dumb")]).await;
    assert!(!screen.contains('\u{1b}'), "{screen:?}");

    // A pipe: plain, unless forced.
    let args = ["org/missing", "--endpoint", hub.endpoint()];
    let run = run_env(&args, &[]).await;
    assert!(run.stderr.contains("hfd-rs: error: "), "{}", run.stderr);
    assert!(!run.stderr.contains('\u{1b}'), "{:?}", run.stderr);
    let run = run_env(&args, &[("CLICOLOR_FORCE", "1")]).await;
    assert!(run.stderr.contains(red), "{:?}", run.stderr);
}
