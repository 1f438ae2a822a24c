//! A throttled mirror far away (decision 0080): every range request costs
//! its connection a round trip without bytes, so a connection that
//! measured its wait asks for longer ranges than the 1 MiB pieces a file
//! is cut into, and the file takes fewer requests than it has pieces.

use std::time::Duration;

use hfd_testkit::{FakeHub, MIB, Origin, RepoFixture};

use crate::support::download_checked;

const REPO: &str = "org/far";

/// Range requests the CDN answered for a download of a 24 MiB file (24
/// pieces of 1 MiB for 4 connections) from a hub that answers `latency`
/// late and sends 4 MiB/s per connection.
async fn range_requests(latency: Duration) -> usize {
    let hub = FakeHub::builder()
        .repo(RepoFixture::model(REPO).lfs_file("model.safetensors", 24 * MIB, 160))
        .rate_per_connection(4 * MIB)
        .latency(latency)
        .start()
        .await
        .expect("start fake hub");
    download_checked(&hub, REPO, &["-x", "4", "--fixed-connections", "-q"]).await;
    hub.log()
        .count(|e| e.origin == Origin::Cdn && e.range.is_some())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_far_throttled_mirror_gets_fewer_longer_range_requests() {
    // 40 ms per answer: after two single pieces, each connection asks for
    // 40 ms x 4 MiB/s x 16 = 2.5 MiB (within a fair share of what is
    // left). One request per piece would be 24.
    let far = range_requests(Duration::from_millis(40)).await;
    assert!(far <= 18, "{far} range requests 40 ms away (24 pieces)");
}
