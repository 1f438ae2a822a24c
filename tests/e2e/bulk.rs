//! Big listings (issue #16): a resync of an unchanged dataset costs the
//! revision and the tree pages, never a request per file.

use hfd_testkit::{FakeHub, RepoFixture, Route};

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
