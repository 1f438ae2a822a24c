//! Datasets (issue #16): a resync of an unchanged dataset costs the revision
//! and the tree pages, never a request per file; a first download rides
//! small files as HTTP/2 streams on few connections and follows a regular
//! file's redirect on the connection that asked; an interrupted listing
//! resumes at its last page (decision 0027).

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use hfd_testkit::{
    FakeHub, Fault, FaultKind, FaultTarget, Origin, RepoFixture, Route, Transport, tree_cursor,
};

use crate::support::{assert_same_files, run, run_with};

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

/// Distinct TCP connections of `origin` in the fake hub's log.
fn connections(entries: &[hfd_testkit::LogEntry], origin: Origin) -> usize {
    entries
        .iter()
        .filter(|e| e.origin == origin)
        .map(|e| e.connection_id)
        .collect::<HashSet<_>>()
        .len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dataset_over_tls_rides_streams_on_few_connections() {
    const SMALL: usize = 400;
    let hub = download_dataset_over_tls(SMALL, 5, Duration::ZERO).await;
    let entries = hub.log().entries();
    assert!(entries.iter().all(|e| e.version == "HTTP/2.0"));
    // Every file costs two requests (regular: resolve + its redirect; LFS:
    // resolve + CDN), the listing a few more.
    assert!(entries.len() >= 2 * SMALL, "{} requests", entries.len());
    // Small files are streams on shared connections: the fake hub allows
    // 200 streams per connection, more than the window ever holds, so one
    // connection per listener does (a spare one at most, opened while
    // another's streams were still counted). Before, every request in
    // flight opened its own, up to the cap of 32 per host.
    let (hub_connections, cdn_connections) = (
        connections(&entries, Origin::Hub),
        connections(&entries, Origin::Cdn),
    );
    assert!(
        hub_connections <= 2,
        "{hub_connections} connections to the hub"
    );
    assert!(
        cdn_connections <= 2,
        "{cdn_connections} connections to the CDN"
    );
}

/// Files whose first request (the resolve) reached `hub` before any file's
/// second one (its redirect or CDN hop): the small-file window the run
/// started with (the next file can start only once one has finished).
fn started_at_once(hub: &FakeHub) -> usize {
    let entries = hub.log().entries();
    let first_second_hop = entries
        .iter()
        .filter(|e| matches!(e.route, Route::ResolveCache | Route::Cdn))
        .map(|e| e.seq)
        .min()
        .unwrap_or(u64::MAX);
    entries
        .iter()
        .filter(|e| e.route == Route::Resolve && e.seq < first_second_hop)
        .count()
}

/// A default run (`-j 4`) of `files` small files (content `seed`) over TLS
/// (HTTP/2) from a hub that answers every request `latency` late, checked
/// byte for byte; the hub, for its request log.
async fn download_dataset_over_tls(files: usize, seed: u64, latency: Duration) -> FakeHub {
    let hub = FakeHub::builder()
        .repo(RepoFixture::synthetic_dataset_generated(
            REPO, files, 4096, seed,
        ))
        .transport(Transport::Tls)
        .latency(latency)
        .start()
        .await
        .unwrap();
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("out");
    let ca = hub.ca_cert_path().unwrap().to_str().unwrap();
    let run = run_with(
        &[
            REPO,
            "--dataset",
            "--endpoint",
            hub.endpoint(),
            "--local-dir",
            dir.to_str().unwrap(),
            "-q",
        ],
        &[("SSL_CERT_FILE", ca)],
        work.path(),
        Duration::from_mins(1),
    )
    .await;
    run.expect_code(0);
    assert_same_files(&hub, REPO, &dir);
    hub
}

/// The files a default run over TLS started at once, `latency` away.
async fn window_at_start(files: usize, latency: Duration) -> usize {
    started_at_once(&download_dataset_over_tls(files, 7, latency).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_small_file_window_starts_from_the_measured_round_trip() {
    // 300 ms per request: the plan's requests measure it, and the window
    // starts where round trips stop limiting the rate (two round trips
    // per file / 0.5 ms per file, within the fake hub's 200 streams), so
    // every file starts at once. Started at `-j` (4) and doubled per epoch,
    // as before, the 4 first files would finish before the fifth started.
    // (At 100 ms a heavily loaded machine took longer than one round trip
    // to claim and open 120 files: 18 started before the first second hop.)
    const FILES: usize = 120;
    let far = window_at_start(FILES, Duration::from_millis(300)).await;
    assert!(far >= FILES / 2, "{far} files started at once, 300 ms away");
    // Loopback: round trips are not what limits the rate; `-j` it is (the
    // plan's fastest answer would have to take 16 ms to start 64, which a
    // loaded CI machine's debug build does not).
    let near = window_at_start(FILES, Duration::ZERO).await;
    assert!(near < 64, "{near} files started at once on loopback");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_regular_files_redirect_is_followed_on_the_connection_that_asked() {
    const SMALL: usize = 300;
    let hub = FakeHub::builder()
        .repo(RepoFixture::synthetic_dataset_generated(
            REPO, SMALL, 4096, 6,
        ))
        .start()
        .await
        .unwrap();
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("out");
    let args = [
        REPO,
        "--dataset",
        "--endpoint",
        hub.endpoint(),
        "--local-dir",
        dir.to_str().unwrap(),
        "-q",
    ];
    run(&args).await.expect_code(0);
    assert_same_files(&hub, REPO, &dir);
    let entries = hub.log().entries();
    // Where each redirect was asked for, by its target.
    let asked_on: HashMap<String, u64> = entries
        .iter()
        .filter(|e| e.route == Route::Resolve && e.status == 307)
        .filter_map(|e| Some((e.location.clone()?, e.connection_id)))
        .collect();
    let followed: Vec<_> = entries
        .iter()
        .filter(|e| e.route == Route::ResolveCache)
        .collect();
    assert!(
        followed.len() >= SMALL / 2,
        "{} redirects followed",
        followed.len()
    );
    // Over HTTP/1.1 with many files in flight, a redirect sent back to the
    // pool lands on whichever connection is free first (or waits for one
    // behind other files' first requests); kept, it goes out on the
    // connection that just read the 307.
    for entry in followed {
        let asked = asked_on.get(&entry.path_and_query());
        assert_eq!(
            asked,
            Some(&entry.connection_id),
            "{} followed on another connection",
            entry.path
        );
    }
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
