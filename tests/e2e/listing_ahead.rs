//! The listing's later pages are read while the first files download
//! (decision 0065): the first file is asked before the last tree page; a
//! page that fails late leaves the files of the pages before it done and
//! verified; a case collision found on a late page never gets its second
//! file written.

use std::time::Duration;

use hfd_testkit::{FakeHub, Fault, FaultKind, FaultTarget, RepoFixture, Route, tree_cursor};

use crate::support::{assert_same_files, run};

const REPO: &str = "org/ahead";
const FILES: usize = 1_000;
const PAGE: usize = 100;

async fn hub(fixture: RepoFixture) -> FakeHub {
    FakeHub::builder()
        .repo(fixture)
        .tree_page_size(PAGE)
        .start()
        .await
        .unwrap()
}

fn dataset() -> RepoFixture {
    RepoFixture::synthetic_dataset_generated(REPO, FILES, 2048, 7)
}

fn args<'a>(hub: &'a FakeHub, dir: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        REPO,
        "--dataset",
        "--endpoint",
        hub.endpoint(),
        "--local-dir",
        dir,
        "-q",
    ];
    args.extend_from_slice(extra);
    args
}

/// Log sequence numbers of the tree pages asked.
fn tree_page_seqs(hub: &FakeHub) -> Vec<u64> {
    hub.log()
        .entries()
        .iter()
        .filter(|e| e.route == Route::Api && e.path.contains("/tree/"))
        .map(|e| e.seq)
        .collect()
}

/// Regular files under `dir` (the metadata folder left out).
fn files_on_disk(dir: &std::path::Path) -> Vec<String> {
    fn walk(root: &std::path::Path, dir: &std::path::Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            if rel == ".cache" {
                continue;
            }
            if entry.file_type().unwrap().is_dir() {
                walk(root, &path, out);
            } else {
                out.push(rel);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_file_is_asked_before_the_last_tree_page() {
    let hub = hub(dataset()).await;
    // Every page after the first answers late, as behind a long round trip.
    hub.faults().inject(
        Fault::new(FaultKind::Delay(Duration::from_millis(50)))
            .on(FaultTarget::Api)
            .query_contains("cursor=")
            .always(),
    );
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("out");
    let dir_arg = dir.to_str().unwrap();
    let done = run(&args(&hub, dir_arg, &["--json"])).await;
    assert_eq!(done.code, 0, "{}", done.stderr);
    assert_same_files(&hub, REPO, &dir);
    // The totals say what is known: the plan's are the first page's, and
    // the last progress event's the whole listing's.
    let events: Vec<serde_json::Value> = done
        .stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let plan = &events[0];
    assert_eq!(plan["event"], "plan");
    assert_eq!(plan["listing_complete"], false, "{plan}");
    assert!(
        plan["files_total"].as_u64().unwrap() < FILES as u64,
        "{plan}"
    );
    let last = events
        .iter()
        .rev()
        .find(|e| e["event"] == "progress")
        .expect("a progress event");
    assert_eq!(last["listing_complete"], true, "{last}");
    assert_eq!(last["files_total"], FILES, "{last}");
    assert_eq!(last["bytes"], last["total_bytes"], "{last}");
    let summary = events.last().unwrap();
    assert_eq!(summary["event"], "summary");
    assert_eq!(summary["files_done"], FILES, "{summary}");
    let pages = tree_page_seqs(&hub);
    assert!(pages.len() >= FILES / PAGE, "{} tree pages", pages.len());
    let last_page = *pages.iter().max().unwrap();
    let first_file = hub
        .log()
        .entries()
        .iter()
        .filter(|e| e.route == Route::Resolve)
        .map(|e| e.seq)
        .min()
        .expect("files were resolved");
    assert!(
        first_file < last_page,
        "the first file (request {first_file}) waited for the last tree page (request {last_page})"
    );
    assert!(
        !dir.join(".cache/huggingface/hfd-listing").exists(),
        "a completed listing leaves no progress file"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listing_failing_late_keeps_the_files_of_the_pages_before() {
    let hub = hub(dataset()).await;
    // The seventh page fails until the one retry allowed runs out.
    hub.faults().inject(
        Fault::new(FaultKind::Status(503))
            .on(FaultTarget::Api)
            .query_contains(&format!("cursor={}", tree_cursor(6 * PAGE)))
            .times(2),
    );
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("out");
    let dir_arg = dir.to_str().unwrap();
    let retries = ["--retries", "1", "--retry-wait", "0.1"];
    let first = run(&args(&hub, dir_arg, &retries)).await;
    assert_eq!(
        first.code, 5,
        "the listing's failure is the run's (a network failure, exit 5):\n{}",
        first.stderr
    );
    assert_eq!(hub.faults().pending(), 0, "the fault fired twice");
    // What the pages before brought is in place, each file whole and
    // verified (nothing else under a final name).
    let done = files_on_disk(&dir);
    assert!(
        done.len() >= 5 * PAGE / 2,
        "only {} files done before the failing page",
        done.len()
    );
    assert!(done.len() < FILES, "every file done despite the failure");
    for path in &done {
        let expected = hub.file_bytes(REPO, path).expect("a listed file");
        assert!(std::fs::read(dir.join(path)).unwrap() == expected, "{path}");
    }
    // The rerun resumes the listing and fetches only the rest.
    hub.log().clear();
    let again = run(&args(&hub, dir_arg, &retries)).await;
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_same_files(&hub, REPO, &dir);
    let resolves = hub
        .log()
        .entries()
        .iter()
        .filter(|e| e.route == Route::Resolve)
        .count();
    assert_eq!(resolves, FILES - done.len(), "files fetched again");
    assert!(
        tree_page_seqs(&hub).len() < FILES / PAGE,
        "the listing resumed at its last kept page"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_case_collision_on_a_late_page_never_writes_its_second_file() {
    // `README.md` comes first in the listing, `readme.md` after the
    // folders: several pages later.
    let hub = hub(dataset().regular_file("readme.md", "the other readme")).await;
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("out");
    let dir_arg = dir.to_str().unwrap();
    let run = run(&args(&hub, dir_arg, &[])).await;
    assert_eq!(
        run.code, 8,
        "a collision is an unsafe target (exit 8):\n{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("README.md") && run.stderr.contains("readme.md"),
        "{}",
        run.stderr
    );
    let pages = tree_page_seqs(&hub);
    assert!(pages.len() > 2, "the collision was on page {}", pages.len());
    let entries = hub.log().entries();
    assert!(
        !entries
            .iter()
            .any(|e| e.route != Route::Api && e.path.ends_with("/readme.md")),
        "the second file of the pair was asked for"
    );
    let readme = hub.file_bytes(REPO, "README.md").unwrap();
    match std::fs::read(dir.join("README.md")) {
        Ok(bytes) => assert!(bytes == readme, "README.md holds other bytes"),
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::NotFound),
    }
    assert!(!dir.join("readme.md").exists());
    for path in files_on_disk(&dir) {
        let expected = hub.file_bytes(REPO, &path).expect("a listed file");
        assert!(
            std::fs::read(dir.join(&path)).unwrap() == expected,
            "{path}"
        );
    }
}
