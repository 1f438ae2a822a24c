//! Datasets (issue #16): a resync of an unchanged dataset costs the revision
//! and the tree pages, never a request per file; a first download rides
//! small files as HTTP/2 streams on few connections and follows a regular
//! file's redirect on the connection that asked.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use hfd_testkit::{FakeHub, Origin, RepoFixture, Route, Transport};

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
    let hub = FakeHub::builder()
        .repo(RepoFixture::synthetic_dataset_generated(
            REPO, SMALL, 4096, 5,
        ))
        .transport(Transport::Tls)
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
