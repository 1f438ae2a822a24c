//! What the user sees: `--json` events, the terminal display, `bench`,
//! `--limit-rate` and shell completions.

use std::collections::BTreeSet;
use std::time::Duration;

use hfd_testkit::{FakeHub, Fault, FaultKind, FaultTarget, MIB, RepoFixture};
use serde_json::Value;

use crate::support::{assert_same_files, bin, in_terminal, run};

async fn hub(rate_per_connection: Option<u64>) -> FakeHub {
    let mut builder = FakeHub::builder().repo(
        RepoFixture::model("org/model")
            .regular_file("config.json", r#"{"a": 1}"#)
            .lfs_file("model.safetensors", 2 * MIB, 5)
            .lfs_file("big.bin", 12 * MIB, 6),
    );
    if let Some(rate) = rate_per_connection {
        builder = builder.rate_per_connection(rate);
    }
    builder.start().await.expect("fake hub")
}

/// Required fields of each event type (docs/json-events.md).
fn required(event: &str) -> &'static [&'static str] {
    match event {
        "plan" => &[
            "repo",
            "repo_type",
            "revision",
            "commit",
            "local_dir",
            "files_total",
            "bytes_total",
            "files_to_fetch",
            "bytes_to_fetch",
            "plan_requests",
        ],
        "file_start" => &["path", "size"],
        "progress" => &[
            "bytes",
            "total_bytes",
            "files_done",
            "files_total",
            "bytes_per_sec",
            "stalled_secs",
            "connections",
            "retries",
            "elapsed_secs",
        ],
        "retry" => &["path", "attempt", "wait_ms", "reason"],
        "fallback" => &["path", "reason"],
        "restart" => &["path", "attempt", "bytes_discarded", "reason"],
        "file_done" => &["path", "size", "hash_algorithm", "hash"],
        "file_failed" => &["path", "error"],
        "summary" => &[
            "local_dir",
            "files_done",
            "files_skipped",
            "bytes",
            "elapsed_secs",
            "bytes_per_sec",
            "requests",
            "resolves",
            "retries",
        ],
        "error" => &["message", "hint", "exit_code"],
        other => panic!("unknown event type {other:?}"),
    }
}

fn parse_events(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .map(|line| {
            let v: Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
            let event = v["event"]
                .as_str()
                .expect("every line has an event")
                .to_owned();
            for field in required(&event) {
                assert!(v.get(*field).is_some(), "{event} lacks {field}: {line}");
            }
            v
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn json_events_follow_the_schema() {
    let hub = hub(Some(8 * MIB)).await;
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("m");
    let run = run(&[
        "org/model",
        "--endpoint",
        hub.endpoint(),
        "--local-dir",
        dir.to_str().unwrap(),
        "--json",
    ])
    .await;
    run.expect_code(0);
    assert_same_files(&hub, "org/model", &dir);
    let events = parse_events(&run.stdout);
    assert_eq!(events.first().unwrap()["event"], "plan");
    assert_eq!(events.last().unwrap()["event"], "summary");
    let done: BTreeSet<&str> = events
        .iter()
        .filter(|e| e["event"] == "file_done")
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    let started: BTreeSet<&str> = events
        .iter()
        .filter(|e| e["event"] == "file_start")
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    let all: BTreeSet<String> = hub.files("org/model").into_iter().map(|f| f.path).collect();
    let all: BTreeSet<&str> = all.iter().map(String::as_str).collect();
    assert_eq!(done, all);
    assert_eq!(started, all);
    for e in events.iter().filter(|e| e["event"] == "file_done") {
        let info = hub
            .file_info("org/model", e["path"].as_str().unwrap())
            .unwrap();
        assert_eq!(e["hash"].as_str().unwrap(), info.etag());
    }
    let summary = events.last().unwrap();
    assert_eq!(summary["files_done"], 3);
    assert_eq!(summary["resolves"], 3);
    // At least the final progress event, which must agree with the summary.
    let last_progress = events
        .iter()
        .rev()
        .find(|e| e["event"] == "progress")
        .expect("a progress event");
    assert_eq!(last_progress["bytes"], last_progress["total_bytes"]);
    assert_eq!(last_progress["files_done"], 3);

    // A failure ends the stream with an error event carrying the exit code.
    let failed =
        crate::support::run(&["org/missing", "--endpoint", hub.endpoint(), "--json"]).await;
    failed.expect_code(3);
    let events = parse_events(&failed.stdout);
    let last = events.last().unwrap();
    assert_eq!(last["event"], "error");
    assert_eq!(last["exit_code"], 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn progress_renders_in_a_terminal_and_finishes_cleanly() {
    let hub = hub(Some(6 * MIB)).await;
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("m");
    // `script` runs the command in a pseudo-terminal and copies what it
    // draws to our pipe.
    let command = format!(
        "{} org/model --endpoint {} --local-dir {} -x 2",
        bin().display(),
        hub.endpoint(),
        dir.display()
    );
    let output = tokio::time::timeout(
        Duration::from_mins(1),
        tokio::process::Command::new("script")
            .args(["-qfec", &command, "/dev/null"])
            .env("TERM", "xterm-256color")
            .env("COLUMNS", "120")
            .env("HF_ENDPOINT", "http://127.0.0.1:9")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("finishes")
    .expect("script(1) runs");
    let screen = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{screen}");
    assert_same_files(&hub, "org/model", &dir);
    assert!(screen.contains('\u{1b}'), "no terminal drawing: {screen:?}");
    assert!(screen.contains("files "), "no total bar: {screen:?}");
    assert!(
        screen.contains("big.bin"),
        "no per-file bar for the large file: {screen:?}"
    );
    let last_line = screen
        .rsplit(['\n', '\r'])
        .find(|l| !l.trim().is_empty() && !l.trim().starts_with('\u{1b}'))
        .unwrap_or_default();
    assert!(
        screen.contains("hfd-rs: 3 files"),
        "no summary: {screen:?} (last line {last_line:?})"
    );
    assert!(!screen.contains("panicked"), "{screen}");
}

#[tokio::test(flavor = "multi_thread")]
async fn bench_throughput_rises_with_connections() {
    let hub = hub(Some(MIB)).await;
    let run = run(&[
        "bench",
        "org/model",
        "big.bin",
        "--endpoint",
        hub.endpoint(),
        "-x",
        "1,8",
        "--duration",
        "2",
        "--json",
    ])
    .await;
    run.expect_code(0);
    let doc: Value = serde_json::from_str(run.stdout.trim()).unwrap();
    let rows = doc["results"].as_array().unwrap();
    assert_eq!(rows.len(), 3, "1, 8 and the ramp up to 8: {doc}");
    let fixed = |n: u64| {
        rows.iter()
            .find(|r| r["connections"] == n && r["ramp_settled"].is_null())
            .and_then(|r| r["bytes_per_sec"].as_f64())
            .unwrap()
    };
    // Each connection is throttled to 1 MiB/s: eight should give well over
    // twice one (ideally eight times).
    assert!(fixed(8) > 2.0 * fixed(1), "{doc}");
    assert_eq!(doc["recommended"]["connections"], 8, "{doc}");
    // The ramp (from 4) finds that every step pays on such a mirror.
    let ramp = rows.iter().find(|r| !r["ramp_settled"].is_null()).unwrap();
    assert_eq!(ramp["ramp_settled"], 8, "{doc}");
    for row in rows {
        assert_eq!(row["errors"], 0, "{doc}");
        assert_eq!(row["file"], "big.bin");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn limit_rate_caps_total_bandwidth() {
    let hub = hub(None).await;
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("m");
    let run = run(&[
        "org/model",
        "model.safetensors",
        "--endpoint",
        hub.endpoint(),
        "--local-dir",
        dir.to_str().unwrap(),
        "--limit-rate",
        "1M",
        "-x",
        "8",
        "--json",
    ])
    .await;
    run.expect_code(0);
    let summary = parse_events(&run.stdout).pop().unwrap();
    // 2 MiB at 1 MiB/s with a quarter-second burst cannot take less than
    // 1.75 s, however many connections; unthrottled it takes milliseconds.
    let secs = summary["elapsed_secs"].as_f64().unwrap();
    assert!(secs >= 1.7, "--limit-rate ignored: {secs} s");
}

#[tokio::test(flavor = "multi_thread")]
async fn completions_are_generated() {
    let run = run(&["completions", "bash"]).await;
    run.expect_code(0);
    assert!(run.stdout.contains("complete"), "{}", run.stdout);
    assert!(run.stdout.contains("--include"));
}

/// `(x, y)` of every `x UNIT/y UNIT` byte pair drawn (indicatif's
/// `{bytes}/{total_bytes}`), in bytes.
fn byte_pairs(screen: &str) -> Vec<(f64, f64)> {
    fn amount(number: &str, unit: &str) -> Option<f64> {
        let scale = match unit {
            "B" => 1.0,
            "KiB" => 1024.0,
            "MiB" => 1024.0 * 1024.0,
            "GiB" => 1024.0 * 1024.0 * 1024.0,
            _ => return None,
        };
        Some(number.parse::<f64>().ok()? * scale)
    }
    let words: Vec<&str> = screen.split([' ', '\r', '\n']).collect();
    let mut pairs = Vec::new();
    for w in words.windows(3) {
        // ["12.00", "MiB/14.00", "MiB"]
        let Some((unit, total)) = w[1].split_once('/') else {
            continue;
        };
        let last = w[2].trim_end_matches(|c: char| !c.is_ascii_alphabetic());
        let first = w[0]
            .rsplit(|c: char| !(c.is_ascii_digit() || c == '.'))
            .next();
        if let (Some(x), Some(y)) = (first.and_then(|n| amount(n, unit)), amount(total, last)) {
            pairs.push((x, y));
        }
    }
    pairs
}

/// Small files waiting out a round trip count as connections in use, and
/// a retry shows in the terminal view (a warning line and the bar's count).
#[tokio::test(flavor = "multi_thread")]
async fn conns_counts_small_files_and_retries_show_in_a_terminal() {
    let mut repo = RepoFixture::model("org/small");
    for i in 0..24 {
        repo = repo.regular_file(&format!("f{i:02}.txt"), format!("file {i}"));
    }
    let hub = FakeHub::builder()
        .repo(repo)
        .latency(Duration::from_millis(300))
        .start()
        .await
        .unwrap();
    hub.faults().inject(
        Fault::new(FaultKind::Status(503))
            .on(FaultTarget::Resolve)
            .path_contains("f05.txt"),
    );
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("m");
    let command = format!(
        "{} org/small --endpoint {} --local-dir {} -j 4 --retry-wait 0.2",
        bin().display(),
        hub.endpoint(),
        dir.display()
    );
    let home = out.path().to_str().unwrap();
    let screen = in_terminal(&command, &[("HOME", home), ("COLUMNS", "120")]).await;
    assert_same_files(&hub, "org/small", &dir);
    let conns: Vec<u32> = screen
        .split("conns ")
        .skip(1)
        .filter_map(|rest| {
            rest.split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        })
        .collect();
    assert!(
        conns.iter().any(|&n| n >= 1),
        "conns never counted a small file in flight: {conns:?}\n{screen}"
    );
    // Small files in flight start at `-j` and grow while files/s follows
    // (docs/decisions/0020-small-file-durability-and-window.md): never more
    // than one request per file of the repo.
    assert!(conns.iter().all(|&n| n <= 24), "{conns:?}");
    assert!(
        screen.contains("f05.txt answered 503") && screen.contains("retry 1 of "),
        "no retry line: {screen}"
    );
    assert!(
        screen.contains("retries 1"),
        "no retry count on the bar: {screen}"
    );
}

/// A file whose bytes fail their check starts again from zero: the bars
/// take its bytes back (never more done than the total), the terminal says
/// so, and `--json` has a `restart` event.
#[tokio::test(flavor = "multi_thread")]
async fn a_restarted_file_is_not_counted_twice() {
    let hub = FakeHub::builder()
        .repo(
            RepoFixture::model("org/heal")
                .regular_file("config.json", "{}")
                .lfs_file("big.bin", 12 * MIB, 21),
        )
        .rate_per_connection(6 * MIB)
        .start()
        .await
        .unwrap();
    let object = hub
        .file_info("org/heal", "big.bin")
        .and_then(|f| f.lfs_sha256)
        .unwrap();
    let corrupt_once = || {
        Fault::new(FaultKind::CorruptBody)
            .on(FaultTarget::Cdn)
            .path_contains(&object)
    };
    hub.faults().inject(corrupt_once());
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("m");
    let command = format!(
        "{} org/heal --endpoint {} --local-dir {} -x 1",
        bin().display(),
        hub.endpoint(),
        dir.display()
    );
    let home = out.path().to_str().unwrap();
    let screen = in_terminal(&command, &[("HOME", home), ("COLUMNS", "120")]).await;
    assert_same_files(&hub, "org/heal", &dir);
    assert!(
        screen.contains("big.bin: ") && screen.contains("downloading it again (attempt 2 of 3)"),
        "no restart line: {screen}"
    );
    let pairs = byte_pairs(&screen);
    assert!(!pairs.is_empty(), "no byte counts drawn: {screen}");
    for (done, total) in pairs {
        assert!(done <= total, "{done} of {total} bytes drawn:\n{screen}");
    }

    // The same through --json.
    hub.faults().inject(corrupt_once());
    let again = out.path().join("j");
    let run = run(&[
        "org/heal",
        "--endpoint",
        hub.endpoint(),
        "--local-dir",
        again.to_str().unwrap(),
        "-x",
        "1",
        "--json",
    ])
    .await;
    run.expect_code(0);
    let events = parse_events(&run.stdout);
    let restart = events
        .iter()
        .find(|e| e["event"] == "restart")
        .expect("a restart event");
    assert_eq!(restart["path"], "big.bin");
    assert_eq!(restart["attempt"], 2);
    assert!(
        restart["bytes_discarded"].as_u64().unwrap() > 0,
        "{restart}"
    );
    for e in events.iter().filter(|e| e["event"] == "progress") {
        assert!(e["bytes"].as_u64() <= e["total_bytes"].as_u64(), "{e}");
    }
    let last = events
        .iter()
        .rev()
        .find(|e| e["event"] == "progress")
        .unwrap();
    assert_eq!(last["bytes"], last["total_bytes"]);
}
