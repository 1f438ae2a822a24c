//! The tail: one CDN connection in four throttled to 1 % of the others. The
//! file must finish without waiting for the slow connection — measured by
//! the bytes the hub handed to that connection, not by wall time.

use hfd::hfd_hub::{RepoId, RepoRef};
use hfd_testkit::{FakeHub, KIB, MIB, Origin, RepoFixture, Transport};
use hfd_types::ByteSize;

use crate::{Setup, TOKEN, assert_files_match, assert_request_budget, download, per_transport};

const REPO: &str = "org/uneven";
const FILE_SIZE: u64 = 2 * MIB;
const FAST: u64 = 4 * MIB;
const SLOW: u64 = FAST / 100;

/// Four segments of 512 KiB and a split size that forbids splitting them:
/// only hedging (a duplicate request for the slow segment's rest on an
/// idle connection, first finisher wins) can avoid waiting for the slow
/// connection, which would need about 12 s for its segment.
/// A hub serving one `size`-byte file (content `seed`) whose CDN
/// connections numbered `slow(index)` run at `SLOW`, the others at `FAST`.
async fn hub_with_slow_connections(
    transport: Transport,
    size: u64,
    seed: u64,
    slow: fn(u64) -> bool,
) -> FakeHub {
    FakeHub::builder()
        .repo(RepoFixture::model(REPO).lfs_file("weights.bin", size, seed))
        .transport(transport)
        .token(TOKEN)
        .rate_chooser(move |origin, index| match origin {
            Origin::Cdn if slow(index) => Some(SLOW),
            Origin::Cdn => Some(FAST),
            Origin::Hub => None,
        })
        .start()
        .await
        .expect("fake hub starts")
}

/// Four connections on four segments of `size` (none split further), and
/// a stall timeout far beyond the test: a stall is never the rescue.
fn four_segments(size: u64) -> Setup {
    let mut setup = Setup::fast();
    setup.engine.connections_per_file = crate::nz(4);
    setup.engine.min_split_size = ByteSize::new(size / 4);
    setup.engine.stall_timeout = std::time::Duration::from_secs(30);
    setup
}

async fn tail_hedge_does_not_wait_for_a_throttled_connection(transport: Transport) {
    let hub = hub_with_slow_connections(transport, FILE_SIZE, 5, |index| index % 4 == 0).await;
    let mut setup = four_segments(FILE_SIZE);
    // Neither the slow-connection detector nor the stall timeout may be
    // what rescues the file: only the hedge.
    setup.engine.slow_ratio = 0.0;
    setup.engine.hedging = true;
    let repo = RepoRef::model(RepoId::new(REPO).expect("repo id"));
    let dir = tempfile::tempdir().expect("tempdir");
    let run = download(&hub, &repo, dir.path(), &setup, None).await;
    run.result.expect("download succeeds");
    assert_files_match(&hub, REPO, dir.path());
    assert_request_budget(&hub, REPO);

    let connections = hub.log().connections();
    let slow: Vec<_> = connections
        .iter()
        .filter(|c| c.origin == Origin::Cdn && c.rate_limit == Some(SLOW))
        .collect();
    assert!(!slow.is_empty(), "a slow connection carried a request");
    let slow_bytes: u64 = slow.iter().map(|c| c.bytes_written).sum();
    let fast_bytes: u64 = connections
        .iter()
        .filter(|c| c.origin == Origin::Cdn && c.rate_limit == Some(FAST))
        .map(|c| c.bytes_written)
        .sum();
    // Waiting for the slow segment would mean 512 KiB through the slow
    // connection; the hedge leaves it a small fraction of that.
    assert!(
        slow_bytes < 128 * KIB,
        "the slow connection carried {slow_bytes} bytes: the file waited for it"
    );
    assert!(fast_bytes >= FILE_SIZE - slow_bytes, "{fast_bytes}");
    // The hedge asked for the slow segment's rest a second time.
    let cdn_ranges = hub
        .log()
        .count(|e| e.origin == Origin::Cdn && e.range.is_some());
    assert!(cdn_ranges >= 5, "{cdn_ranges} range requests: no hedge");
}

per_transport!(tail_hedge_does_not_wait_for_a_throttled_connection);

/// The first CDN connection is throttled to 1 % of the others and the
/// slow-request judge is on (hedging off, so only the judge can rescue the
/// file). The request on it is dropped as slow, and the retry must not land
/// on the same socket: over HTTP/2 a dropped stream leaves its connection
/// open and idle, the first the pool would pick again, unless the source
/// retires it.
async fn a_request_dropped_as_slow_is_retried_on_another_connection(transport: Transport) {
    const SIZE: u64 = 4 * MIB;
    let hub = hub_with_slow_connections(transport, SIZE, 6, |index| index == 0).await;
    let mut setup = four_segments(SIZE);
    setup.engine.slow_ratio = 0.1;
    setup.engine.slow_grace = std::time::Duration::from_millis(300);
    setup.engine.hedging = false;
    let repo = RepoRef::model(RepoId::new(REPO).expect("repo id"));
    let dir = tempfile::tempdir().expect("tempdir");
    let run = download(&hub, &repo, dir.path(), &setup, None).await;
    let report = run.result.expect("download succeeds");
    assert_files_match(&hub, REPO, dir.path());
    assert!(report.retries >= 1, "the slow request was not dropped");

    let slow: Vec<u64> = hub
        .log()
        .connections()
        .iter()
        .filter(|c| c.origin == Origin::Cdn && c.rate_limit == Some(SLOW))
        .map(|c| c.id)
        .collect();
    assert_eq!(slow.len(), 1);
    let on_slow = hub
        .log()
        .count(|e| e.connection_id == slow[0] && e.range.is_some());
    assert_eq!(
        on_slow, 1,
        "{on_slow} range requests on the slow connection: a retry reused it"
    );
}

per_transport!(a_request_dropped_as_slow_is_retried_on_another_connection);
