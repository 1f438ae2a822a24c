//! Big listings (issue #16): a resync of an unchanged dataset costs the
//! revision and the tree pages, never a request per file; an interrupted
//! listing resumes at its last page (decision 0027).

use hfd_testkit::{FakeHub, Fault, FaultKind, FaultTarget, RepoFixture, Route, tree_cursor};

use crate::support::{assert_same_files, run};

const REPO: &str = "org/bulk";
const FILES: usize = 3_000;
const PAGE: usize = 500;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn noop_resync_of_thousands_of_files_asks_only_for_the_listing() {
    let hub = FakeHub::builder()
        .repo(RepoFixture::synthetic_dataset_generated(
            REPO, FILES, 2048, 16,
        ))
        .tree_page_size(PAGE)
        .start()
        .await
        .unwrap();
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("out");
    let dir_arg = dir.to_str().unwrap();
    let args = [
        REPO,
        "--dataset",
        "--endpoint",
        hub.endpoint(),
        "--local-dir",
        dir_arg,
        "-q",
    ];
    let first = run(&args).await;
    assert_eq!(first.code, 0, "first run:\n{}", first.stderr);
    assert_same_files(&hub, REPO, &dir);

    hub.log().clear();
    let again = run(&args).await;
    assert_eq!(again.code, 0, "resync:\n{}", again.stderr);
    let entries = hub.log().entries();
    let per_file: Vec<_> = entries.iter().filter(|e| e.route != Route::Api).collect();
    assert!(
        per_file.is_empty(),
        "file requests on a no-op resync: {per_file:#?}"
    );
    // The revision, then the pages of files and their folders.
    let pages = entries.iter().filter(|e| e.path.contains("/tree/")).count();
    assert_eq!(entries.len(), 1 + pages, "{entries:#?}");
    assert!(
        pages >= FILES / PAGE,
        "{pages} tree pages for {FILES} files"
    );
    assert!(
        pages <= FILES / PAGE + 2,
        "{pages} tree pages for {FILES} files"
    );
    assert_same_files(&hub, REPO, &dir);
}

/// A dataset of 1,000 files listed 100 entries a page, whose page at
/// `offset` fails until the client's retries run out; the first run's exit
/// code, its target and the endpoint's arguments.
async fn interrupted_listing(offset: usize) -> (FakeHub, tempfile::TempDir, Vec<String>) {
    const FILES: usize = 1_000;
    let hub = FakeHub::builder()
        .repo(RepoFixture::synthetic_dataset_generated(
            REPO, FILES, 2048, 16,
        ))
        .tree_page_size(100)
        .start()
        .await
        .unwrap();
    // Two answers: the first try and the one retry `--retries 1` allows.
    hub.faults().inject(
        Fault::new(FaultKind::Status(503))
            .on(FaultTarget::Api)
            .query_contains(&format!("cursor={}", tree_cursor(offset)))
            .times(2),
    );
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("out");
    let args: Vec<String> = [
        REPO,
        "--dataset",
        "--endpoint",
        hub.endpoint(),
        "--local-dir",
        dir.to_str().unwrap(),
        "-q",
        "--retries",
        "1",
        "--retry-wait",
        "0.1",
    ]
    .map(str::to_owned)
    .to_vec();
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    let first = run(&words).await;
    assert_eq!(
        first.code, 5,
        "a listing page failing after its retries is a network failure (exit 5):\n{}",
        first.stderr
    );
    assert_eq!(hub.faults().pending(), 0, "the fault fired twice");
    assert!(
        dir.join(".cache/huggingface/hfd-listing").is_file(),
        "the listing's progress is kept"
    );
    (hub, work, args)
}

/// Tree pages asked since the log was last cleared.
fn tree_pages(hub: &FakeHub) -> usize {
    hub.log()
        .entries()
        .iter()
        .filter(|e| e.path.contains("/tree/"))
        .count()
}

/// Runs `args` again, checks that it completed the target and dropped the
/// listing's progress, and returns the tree pages it asked for and the
/// number of pages of the whole listing.
async fn rerun(hub: &FakeHub, work: &tempfile::TempDir, args: &[String]) -> (usize, usize) {
    hub.log().clear();
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    let again = run(&words).await;
    assert_eq!(again.code, 0, "rerun:\n{}", again.stderr);
    let asked = tree_pages(hub);
    let dir = work.path().join("out");
    assert_same_files(hub, REPO, &dir);
    assert!(
        !dir.join(".cache/huggingface/hfd-listing").exists(),
        "a completed listing leaves no progress file"
    );
    // The whole listing, for the count: a no-op resync lists every page.
    hub.log().clear();
    assert_eq!(run(&words).await.code, 0);
    let all = tree_pages(hub);
    assert!(all > 6, "{all} pages");
    (asked, all)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_listing_resumes_at_its_last_page() {
    // The sixth page (entries 500..600) fails: five pages are kept.
    let (hub, work, args) = interrupted_listing(500).await;
    let (asked, all) = rerun(&hub, &work, &args).await;
    assert_eq!(asked, all - 5, "the rerun asks only the pages not kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_listing_progress_keeps_only_its_valid_prefix() {
    let (hub, work, args) = interrupted_listing(500).await;
    // One byte of the third page's line flipped (a crash that left junk).
    let state = work.path().join("out/.cache/huggingface/hfd-listing");
    let mut bytes = std::fs::read(&state).unwrap();
    let lines: Vec<usize> = bytes
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'\n')
        .map(|(i, _)| i)
        .collect();
    assert_eq!(lines.len(), 6, "a header and five pages");
    bytes[lines[2] + 100] ^= 0x20;
    std::fs::write(&state, &bytes).unwrap();
    let (asked, all) = rerun(&hub, &work, &args).await;
    assert_eq!(asked, all - 2, "pages 1 and 2 were taken up");

    // Another commit's progress (or garbage) is ignored: the whole listing.
    std::fs::write(&state, b"hfd-listing 1 datasets/org/other 0000\n").unwrap();
    hub.log().clear();
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    assert_eq!(run(&words).await.code, 0);
    assert!(tree_pages(&hub) > 6);
    assert!(!state.exists());
}
