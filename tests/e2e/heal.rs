//! Heal, don't block (issue #14): bytes that fail their hash never stop a
//! file for good. The binary discards them and fetches the file again from a
//! fresh resolve; `--force` and `verify --repair` start over instead of
//! resuming; nobody needs `rm`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use hfd_testkit::{FakeHub, Fault, FaultKind, FaultTarget, MIB, RepoFixture, Route};

use crate::support::{assert_same_files, bin, clean_env, run};

const REPO: &str = "org/heal";
const BIG: &str = "model.safetensors";

async fn hub(rate: Option<u64>) -> FakeHub {
    let mut builder = FakeHub::builder().repo(
        RepoFixture::model(REPO)
            .regular_file("config.json", "{\"heal\": true}")
            .lfs_file(BIG, 4 * MIB, 14),
    );
    if let Some(rate) = rate {
        builder = builder.rate_per_connection(rate);
    }
    builder.start().await.unwrap()
}

fn big_object(hub: &FakeHub) -> String {
    hub.file_info(REPO, BIG).and_then(|f| f.lfs_sha256).unwrap()
}

/// Resolve requests for `path` in the hub's log.
fn resolves(hub: &FakeHub, path: &str) -> usize {
    hub.log()
        .entries()
        .iter()
        .filter(|e| e.route == Route::Resolve && e.path.ends_with(path))
        .count()
}

fn files_ending(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.to_string_lossy().ends_with(suffix) {
                out.push(path);
            }
        }
    }
    out
}

fn download_args<'a>(hub: &'a FakeHub, dir: &'a str) -> Vec<&'a str> {
    vec![
        REPO,
        "--endpoint",
        hub.endpoint(),
        "--local-dir",
        dir,
        "-x",
        "4",
        "-k",
        "1M",
    ]
}

/// Runs a throttled download of `dir` and kills it (SIGKILL) once the big
/// file's journal records some bytes; returns the partial's path.
async fn killed_run(hub: &FakeHub, dir: &Path) -> PathBuf {
    let home = tempfile::tempdir().unwrap();
    let mut cmd = tokio::process::Command::new(bin());
    cmd.args(download_args(hub, dir.to_str().unwrap()))
        .arg("--quiet");
    clean_env(&mut cmd, home.path());
    let mut child = cmd.spawn().unwrap();
    let mut journaled = false;
    for _ in 0..3000 {
        if let Some(journal) = files_ending(dir, ".journal").first()
            && std::fs::read(journal)
                .ok()
                .and_then(|b| hfd_store::decode(&b).ok())
                .is_some_and(|d| !d.ranges.is_empty())
        {
            journaled = true;
            break;
        }
        assert!(child.try_wait().unwrap().is_none(), "finished too early");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(journaled, "no journal record within 30 s");
    child.start_kill().unwrap();
    tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .unwrap()
        .unwrap();
    let parts = files_ending(dir, ".part");
    assert_eq!(parts.len(), 1, "{parts:?}");
    parts.into_iter().next().unwrap()
}

/// Inverts the bytes the journal says are durable: the content changed
/// between the killed run and its resume, under the same ETag.
fn poison(partial: &Path) {
    let journal = hfd_store::journal_path(partial);
    let decoded = hfd_store::decode(&std::fs::read(journal).unwrap()).unwrap();
    let mut bytes = std::fs::read(partial).unwrap();
    for range in &decoded.ranges {
        for b in &mut bytes[range.start() as usize..range.end() as usize] {
            *b = !*b;
        }
    }
    std::fs::write(partial, bytes).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_corrupted_first_answer_heals_without_rm() {
    let hub = hub(None).await;
    // The first answer of each file carries wrong bytes (right length).
    hub.faults().inject(
        Fault::new(FaultKind::CorruptBody)
            .on(FaultTarget::Cdn)
            .path_contains(&big_object(&hub)),
    );
    hub.faults().inject(
        Fault::new(FaultKind::CorruptBody)
            .on(FaultTarget::Hub)
            .path_contains("config.json"),
    );
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("m");
    let dir_text = dir.to_str().unwrap();
    let done = run(&download_args(&hub, dir_text)).await;
    done.expect_code(0);
    assert_eq!(hub.faults().pending(), 0, "both corruptions were served");
    assert_same_files(&hub, REPO, &dir);
    assert_eq!(
        resolves(&hub, BIG),
        2,
        "one fresh resolve after the mismatch"
    );
    assert!(files_ending(&dir, ".part").is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn bytes_that_never_match_exit_7_naming_the_host_and_the_next_run_completes() {
    let hub = hub(None).await;
    hub.faults().inject(
        Fault::new(FaultKind::CorruptBody)
            .on(FaultTarget::Cdn)
            .path_contains(&big_object(&hub))
            .always(),
    );
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("m");
    let dir_text = dir.to_str().unwrap();
    let failed = run(&download_args(&hub, dir_text)).await;
    failed.expect_code(7);
    let cdn_host = hub.cdn_addr().to_string();
    assert!(failed.stderr.contains("integrity"), "{}", failed.stderr);
    assert!(failed.stderr.contains(&cdn_host), "{}", failed.stderr);
    assert!(!failed.stderr.contains("disk error"), "{}", failed.stderr);
    assert_eq!(
        resolves(&hub, BIG),
        hfd::hfd_engine::INTEGRITY_ATTEMPTS as usize
    );
    // Nothing of the bad bytes is kept...
    assert!(files_ending(&dir, ".part").is_empty());
    assert!(files_ending(&dir, ".journal").is_empty());
    // ...so once the server is fixed, a plain rerun completes.
    hub.faults().clear();
    run(&download_args(&hub, dir_text)).await.expect_code(0);
    assert_same_files(&hub, REPO, &dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_resume_against_changed_bytes_under_the_same_etag_heals() {
    let hub = hub(Some(MIB / 2)).await;
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("m");
    let partial = killed_run(&hub, &dir).await;
    poison(&partial);
    hub.log().clear();
    let dir_text = dir.to_str().unwrap();
    run(&download_args(&hub, dir_text)).await.expect_code(0);
    assert_same_files(&hub, REPO, &dir);
    // The resume trusted the journal, the hash failed, the file started over.
    assert_eq!(resolves(&hub, BIG), 2);
    assert!(files_ending(&dir, ".part").is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn force_discards_a_poisoned_partial_instead_of_resuming_it() {
    let hub = hub(Some(MIB / 2)).await;
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("m");
    let partial = killed_run(&hub, &dir).await;
    poison(&partial);
    hub.log().clear();
    let dir_text = dir.to_str().unwrap();
    let mut args = download_args(&hub, dir_text);
    args.push("--force");
    run(&args).await.expect_code(0);
    assert_same_files(&hub, REPO, &dir);
    // Started over at once: no failed attempt, one resolve.
    assert_eq!(resolves(&hub, BIG), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_reports_an_unfinished_file_and_repair_discards_its_poisoned_partial() {
    let hub = hub(Some(MIB / 2)).await;
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("m");
    let dir_text = dir.to_str().unwrap();
    let partial = killed_run(&hub, &dir).await;
    poison(&partial);
    // The big file never finished: not "0 bad".
    let found = run(&["verify", dir_text, "--offline"]).await;
    found.expect_code(7);
    assert!(
        found.stdout.contains(&format!("{BIG}: UNFINISHED")),
        "{}",
        found.stdout
    );
    assert!(!found.stdout.contains(" 0 bad"), "{}", found.stdout);
    hub.log().clear();
    run(&["verify", dir_text, "--endpoint", hub.endpoint(), "--repair"])
        .await
        .expect_code(0);
    assert_same_files(&hub, REPO, &dir);
    // Started over at once (no failed attempt on the poisoned bytes).
    assert_eq!(resolves(&hub, BIG), 1);
    assert!(files_ending(&dir, ".part").is_empty());
}

/// Names of 230 to 255 bytes are valid on ext4 and allowed by the listing:
/// our partials, journals, verified and temporary names (and the metadata
/// of a name too long for huggingface_hub's `<name>.metadata`) stay within
/// 255 bytes, in a plain folder and in the cache.
#[tokio::test(flavor = "multi_thread")]
async fn names_of_up_to_255_bytes_download_in_both_layouts() {
    let long = |n: usize, ext: &str| format!("{}{ext}", "n".repeat(n - ext.len()));
    let (a, b, c) = (long(250, ".bin"), long(255, ".json"), long(232, ".txt"));
    let nested = format!("sub/{a}");
    let hub = FakeHub::builder()
        .repo(
            RepoFixture::model("org/long")
                .lfs_file(&a, 2 * MIB, 3)
                .lfs_file(&nested, MIB + 7, 4)
                .regular_file(&b, "{\"long\": 1}")
                .regular_file(&c, "text"),
        )
        .start()
        .await
        .unwrap();
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("m");
    let dir_text = dir.to_str().unwrap();
    let ep = hub.endpoint();
    let args = ["org/long", "--endpoint", ep, "-x", "4", "-k", "1M"];
    let mut local = args.to_vec();
    local.extend(["--local-dir", dir_text]);
    run(&local).await.expect_code(0);
    assert_same_files(&hub, "org/long", &dir);
    // A rerun finds every file up to date (its metadata was readable).
    hub.log().clear();
    run(&local).await.expect_code(0);
    assert_eq!(hub.log().resolve_count(), 0, "{:#?}", hub.log().entries());

    let cache = out.path().join("hub");
    let mut cached = args.to_vec();
    cached.extend(["--cache-dir", cache.to_str().unwrap()]);
    run(&cached).await.expect_code(0);
    let commit = hub.commit("org/long", "main").unwrap();
    let snapshot = cache.join("models--org--long/snapshots").join(commit);
    assert_same_files(&hub, "org/long", &snapshot);
}
