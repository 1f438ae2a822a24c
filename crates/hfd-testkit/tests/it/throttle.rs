//! Per-connection throttling holds against many small range requests on one connection.

use std::time::Instant;

use hfd_testkit::{FakeHub, KIB, Origin, RepoFixture};

use crate::client::{Conn, Proto, at_hub, split_url};

#[tokio::test]
async fn token_bucket_bounds_a_keep_alive_connection() {
    const RATE: u64 = 32 * KIB;
    let hub = FakeHub::builder()
        .repo(RepoFixture::model("o/m").lfs_file("w.bin", 256 * KIB, 5))
        .rate_per_connection(RATE)
        .start()
        .await
        .unwrap();
    let content = hub.file_bytes("o/m", "w.bin").unwrap();
    let r = at_hub(&hub, "HEAD", "/o/m/resolve/main/w.bin", &[]).await;
    let (_, path) = split_url(&hub, r.header("location").unwrap());

    let started = Instant::now();
    let mut c = Conn::open(&hub, Origin::Cdn, Proto::H1).await;
    // 24 short range requests of 2 KiB on one connection: 48 KiB of bodies plus headers.
    for i in 0..24u64 {
        let (a, b) = (i * 2048, i * 2048 + 2047);
        let r = c
            .send("GET", &path, &[("range", &format!("bytes={a}-{b}"))])
            .await;
        assert_eq!(r.status, 206);
        assert!(r.body == content[a as usize..=b as usize]);
    }
    let elapsed = started.elapsed().as_secs_f64();
    let conns = hub.log().connections();
    let stats = conns.iter().find(|s| s.origin == Origin::Cdn).unwrap();
    assert_eq!(
        hub.log().distinct_connections(Origin::Cdn),
        1,
        "all on one connection"
    );
    assert_eq!(stats.rate_limit, Some(RATE));
    assert!(stats.bytes_written > 48 * KIB);
    // Token-bucket accounting: what was written needed at least (written - burst) / rate
    // seconds. Slow machines only make the elapsed time longer, never shorter.
    let min_secs = (stats.bytes_written - stats.burst) as f64 / RATE as f64;
    assert!(
        elapsed >= min_secs * 0.98,
        "{} bytes in {elapsed:.2}s escaped a {RATE} B/s bucket (burst {})",
        stats.bytes_written,
        stats.burst
    );
    assert!(
        min_secs > 1.0,
        "the test wrote enough to exceed the burst many times"
    );
}

#[tokio::test]
async fn rate_chooser_assigns_rates_per_connection() {
    let hub = FakeHub::builder()
        .repo(RepoFixture::model("o/m").regular_file("a.txt", "x"))
        .rate_chooser(|origin, index| (origin == Origin::Cdn && index % 4 == 0).then_some(1000))
        .start()
        .await
        .unwrap();
    for _ in 0..5 {
        drop(Conn::open(&hub, Origin::Cdn, Proto::H1).await);
    }
    drop(Conn::open(&hub, Origin::Hub, Proto::H1).await);
    // Accept happens asynchronously; wait (bounded) until all six are registered.
    for _ in 0..100 {
        if hub.log().connections().len() == 6 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let conns = hub.log().connections();
    let cdn_rates: Vec<Option<u64>> = {
        let mut c: Vec<_> = conns.iter().filter(|s| s.origin == Origin::Cdn).collect();
        c.sort_by_key(|s| s.index);
        c.iter().map(|s| s.rate_limit).collect()
    };
    assert_eq!(cdn_rates, vec![Some(1000), None, None, None, Some(1000)]);
    assert!(
        conns
            .iter()
            .filter(|s| s.origin == Origin::Hub)
            .all(|s| s.rate_limit.is_none())
    );
}
