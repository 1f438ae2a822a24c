//! A listing with a million entries: streamed page by page, only the
//! selected files kept, the `max_files` cap enforced; peak memory measured
//! in a child process that runs nothing else.

use hfd::ErrorKind;
use hfd::hfd_hub::{HubConfig, Revision, Selection};
use hfd_testkit::{FakeHub, Transport};

use crate::{Opts, REPO, downloader, hub_with, request, sandbox};

const ENTRIES: u64 = 1_000_000;
const CHILD_ENV: &str = "HFD_HOSTILE_MEMORY_CHILD";

/// Peak resident set size of this process, in bytes (Linux `VmHWM`).
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .expect("VmHWM")
        * 1024
}

async fn huge_hub() -> FakeHub {
    init_huge(hub_with(crate::fixture(), Transport::Http1).await)
}

fn init_huge(hub: FakeHub) -> FakeHub {
    hub.faults().set_synthetic_tree_entries(ENTRIES);
    hub
}

/// Plans against a hub listing [`ENTRIES`] files, selecting ten of them.
async fn plan_huge(hub: &FakeHub, max_files: usize) -> hfd::Result<hfd::DownloadPlan> {
    let (_parent, target) = sandbox();
    let opts = Opts {
        selection: Selection::all().include(["huge/00000000?.bin"]),
        max_files,
        ..Opts::default()
    };
    let commit = hub.commit(REPO, "main").expect("commit");
    let mut request = request(&target, &opts);
    request.revision = Revision::new(&commit).expect("commit");
    downloader(hub, &opts).plan(&request).await
}

/// The measured part; run alone in a child process by [`peak_memory`].
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by memory::listing_a_million_entries_keeps_memory_bounded in a child process"]
async fn child_listing() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    let hub = huge_hub().await;
    let before = peak_rss();
    let plan = plan_huge(&hub, HubConfig::default().max_files)
        .await
        .expect("plan");
    let after = peak_rss();
    assert_eq!(plan.files.len(), 10);
    assert_eq!(plan.pinned.listed_files as u64, ENTRIES);
    let grown = after.saturating_sub(before);
    println!("HFD_PEAK_GROWTH={grown}");
    // Keeping every listed file (the old behaviour) costs over 200 MiB
    // here; the streamed listing keeps 8 bytes per path plus one page.
    assert!(
        grown < 96 << 20,
        "peak RSS grew by {} MiB while listing",
        grown >> 20
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_a_million_entries_keeps_memory_bounded() {
    let exe = std::env::current_exe().expect("test binary");
    let output = tokio::time::timeout(
        std::time::Duration::from_mins(10),
        tokio::process::Command::new(exe)
            .args([
                "memory::child_listing",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, "1")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the child finishes within 10 minutes")
    .expect("run the child");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("HFD_PEAK_GROWTH="),
        "child failed:\n{stdout}\n{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_max_files_cap_stops_a_huge_listing() {
    let hub = huge_hub().await;
    let err = plan_huge(&hub, 200_000).await.expect_err("over the cap");
    assert!(err.to_string().contains("more than 200000 files"), "{err}");
    assert_eq!(err.kind(), ErrorKind::Usage, "{err:?}");
    // It stopped at the cap: about 200 of the 1,000 pages were asked for.
    let pages = hub.log().count(|e| e.path.contains("/tree/"));
    assert!(pages <= 201, "{pages} pages fetched");
}
