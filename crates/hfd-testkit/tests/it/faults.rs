//! Every fault knob fires where it should, once per `times`, and is logged.

use std::time::Duration;

use futures::StreamExt as _;
use hfd_testkit::{FakeHub, Fault, FaultKind, FaultTarget, Origin};
use http_body_util::BodyExt as _;

use crate::client::{Conn, Proto, at_cdn, at_hub, get, read_all, split_url};
use crate::hub;

/// CDN path of `org/model`'s `model.safetensors` (fresh signature).
async fn cdn_path(hub: &FakeHub, file: &str) -> String {
    let r = get(
        hub,
        Origin::Hub,
        "HEAD",
        &format!("/org/model/resolve/main/{file}"),
        &[],
    )
    .await;
    assert_eq!(r.status, 302);
    split_url(hub, r.header("location").unwrap()).1
}

fn lfs(hub: &FakeHub) -> Vec<u8> {
    hub.file_bytes("org/model", "model.safetensors").unwrap()
}

#[tokio::test]
async fn reset_after_bytes_resets_the_connection_once() {
    let hub = hub().await;
    let path = cdn_path(&hub, "model.safetensors").await;
    hub.faults()
        .inject(Fault::new(FaultKind::ResetAfterBytes(100_000)).on(FaultTarget::Cdn));
    let mut c = Conn::open(&hub, Origin::Cdn, Proto::H1).await;
    let r = c.send("GET", &path, &[]).await;
    assert_eq!(r.status, 200);
    assert!(r.body_error.is_some(), "body ends in an error");
    // An RST may discard bytes the client had not read yet: at most the first 100 000.
    assert!(!r.body.is_empty() && r.body.len() <= 100_000);
    assert!(r.body == lfs(&hub)[..r.body.len()]);
    let entry = hub.log().entries().into_iter().last().unwrap();
    assert_eq!(entry.fault, Some("reset"));
    assert_eq!(
        entry.body_bytes, 100_000,
        "server sent exactly the bytes before the reset"
    );
    let stats = hub.log().connection(entry.connection_id).unwrap();
    assert!(stats.reset);
    // The connection is gone; a new one gets the whole file (the fault was used up).
    assert!(c.start("GET", &path, &[], "").await.is_err());
    let r = at_cdn(&hub, "GET", &path, &[]).await;
    assert!(r.body_error.is_none() && r.body == lfs(&hub));
    assert_eq!(hub.faults().pending(), 0);
}

#[tokio::test]
async fn reset_over_http2_kills_the_tcp_connection() {
    let hub = crate::hub_with(hfd_testkit::Transport::H2c).await;
    let path = cdn_path(&hub, "model.safetensors").await;
    hub.faults()
        .inject(Fault::new(FaultKind::ResetAfterBytes(5000)).on(FaultTarget::Cdn));
    let mut c = Conn::open(&hub, Origin::Cdn, Proto::H2).await;
    let r = c.send("GET", &path, &[]).await;
    assert!(r.body_error.is_some());
    assert!(r.body.len() <= 5000);
    let mut closed = false;
    for _ in 0..50 {
        if c.start("GET", &path, &[], "").await.is_err() {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        closed,
        "the whole HTTP/2 connection was reset, not just the stream"
    );
}

#[tokio::test]
async fn stall_pauses_mid_body_then_continues() {
    let hub = hub().await;
    let path = cdn_path(&hub, "model.safetensors").await;
    hub.faults().inject(
        Fault::new(FaultKind::StallAfterBytes {
            bytes: 50_000,
            duration: Duration::from_millis(600),
        })
        .on(FaultTarget::Cdn),
    );
    let mut c = Conn::open(&hub, Origin::Cdn, Proto::H1).await;
    let resp = c.start("GET", &path, &[], "").await.unwrap();
    let mut body = resp.into_body();
    let mut got = Vec::new();
    while got.len() < 50_000 {
        let frame = body.frame().await.unwrap().unwrap();
        got.extend_from_slice(&frame.into_data().unwrap());
    }
    assert_eq!(got.len(), 50_000, "the stall point is a frame boundary");
    // The server sleeps 600 ms; nothing may arrive in the first 100 ms of it.
    let early = tokio::time::timeout(Duration::from_millis(100), body.frame()).await;
    assert!(early.is_err(), "body stalled");
    while let Some(frame) = body.frame().await {
        got.extend_from_slice(&frame.unwrap().into_data().unwrap());
    }
    assert!(got == lfs(&hub));
    assert_eq!(hub.log().faults_fired(), vec!["stall"]);
}

#[tokio::test]
async fn status_and_rate_limit_faults_replace_answers_n_times() {
    let hub = hub().await;
    hub.faults().inject(
        Fault::new(FaultKind::Status(503))
            .on(FaultTarget::Resolve)
            .times(2),
    );
    for expected in [503, 503, 307] {
        let r = at_hub(&hub, "HEAD", "/org/model/resolve/main/config.json", &[]).await;
        assert_eq!(r.status, expected);
    }
    // API requests were never targeted.
    hub.faults().inject(
        Fault::new(FaultKind::RateLimited {
            retry_after_secs: 5,
        })
        .on(FaultTarget::Hub)
        .path_contains("/b.bin"),
    );
    let r = at_hub(&hub, "HEAD", "/org/model/resolve/main/config.json", &[]).await;
    assert_eq!(r.status, 307, "path filter skips other files");
    let r = at_hub(&hub, "HEAD", "/org/model/resolve/main/b.bin", &[]).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("5"));
    assert_eq!(r.header("ratelimit"), Some("\"resolvers\";r=0;t=5"));
    let r = at_hub(&hub, "HEAD", "/org/model/resolve/main/b.bin", &[]).await;
    assert_eq!(r.status, 302);
    assert_eq!(
        hub.log().faults_fired(),
        vec!["status", "status", "rate-limited"]
    );
    // `always` keeps firing until cleared.
    hub.faults().inject(
        Fault::new(FaultKind::Status(500))
            .on(FaultTarget::Api)
            .always(),
    );
    for _ in 0..3 {
        assert_eq!(
            at_hub(&hub, "GET", "/api/models/org/model", &[])
                .await
                .status,
            500
        );
    }
    hub.faults().clear();
    assert_eq!(
        at_hub(&hub, "GET", "/api/models/org/model", &[])
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn range_faults_ignore_or_misreport_the_range() {
    let hub = hub().await;
    let content = lfs(&hub);
    let size = content.len();
    let path = cdn_path(&hub, "model.safetensors").await;
    let range = [("range", "bytes=1000-1999")];
    // Not consumed by a request without Range.
    hub.faults()
        .inject(Fault::new(FaultKind::IgnoreRange).on(FaultTarget::Cdn));
    let r = at_cdn(&hub, "GET", &path, &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(hub.faults().pending(), 1);
    let r = at_cdn(&hub, "GET", &path, &range).await;
    assert_eq!(r.status, 200);
    assert!(r.header("content-range").is_none());
    assert!(r.body == content, "whole body from byte 0");

    hub.faults()
        .inject(Fault::new(FaultKind::WrongContentRange));
    let r = at_cdn(&hub, "GET", &path, &range).await;
    assert_eq!(r.status, 206);
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes 1001-2000/{size}").as_str())
    );
    assert!(
        r.body == content[1000..2000],
        "bytes are the requested ones"
    );

    // Works on resolve-cache too.
    let cfg = at_hub(&hub, "HEAD", "/org/model/resolve/main/config.json", &[]).await;
    let loc = cfg.header("location").unwrap().to_owned();
    hub.faults()
        .inject(Fault::new(FaultKind::IgnoreRange).on(FaultTarget::ResolveCache));
    let r = at_hub(&hub, "GET", &loc, &[("range", "bytes=1-2")]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, hub.file_bytes("org/model", "config.json").unwrap());
}

#[tokio::test]
async fn short_and_long_bodies() {
    let hub = hub().await;
    let content = lfs(&hub);
    let path = cdn_path(&hub, "model.safetensors").await;
    hub.faults()
        .inject(Fault::new(FaultKind::ShortBody { missing: 10 }).on(FaultTarget::Cdn));
    let r = at_cdn(&hub, "GET", &path, &[("range", "bytes=0-9999")]).await;
    assert_eq!(r.status, 206);
    assert_eq!(r.header("content-length"), Some("10000"));
    assert_eq!(r.body.len(), 9990);
    assert!(r.body_error.is_some(), "early close is visible");

    hub.faults()
        .inject(Fault::new(FaultKind::LongBody { extra: 7 }).on(FaultTarget::Cdn));
    let r = at_cdn(&hub, "GET", &path, &[("range", "bytes=0-9999")]).await;
    assert_eq!(r.status, 206);
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes 0-9999/{}", content.len()).as_str())
    );
    assert_eq!(r.body.len(), 10_007);
    assert!(r.body[..10_000] == content[..10_000]);
    assert_eq!(hub.log().faults_fired(), vec!["short-body", "long-body"]);
}

#[tokio::test]
async fn etag_change_and_expired_urls() {
    let hub = hub().await;
    let sha = hub
        .file_info("org/model", "model.safetensors")
        .unwrap()
        .lfs_sha256
        .unwrap();
    let path = cdn_path(&hub, "model.safetensors").await;
    hub.faults()
        .inject(Fault::new(FaultKind::ChangeEtag).on(FaultTarget::Cdn));
    let r = at_cdn(&hub, "GET", &path, &[("range", "bytes=0-0")]).await;
    assert_ne!(r.header("etag"), Some(format!("\"{sha}\"").as_str()));
    let r = at_cdn(&hub, "GET", &path, &[("range", "bytes=0-0")]).await;
    assert_eq!(r.header("etag"), Some(format!("\"{sha}\"").as_str()));

    // An injected expiry answers 403 once.
    hub.faults()
        .inject(Fault::new(FaultKind::ExpiredUrl).on(FaultTarget::Any));
    let r = at_hub(&hub, "GET", "/api/models/org/model", &[]).await;
    assert_eq!(r.status, 200, "ExpiredUrl never fires on the hub");
    let r = at_cdn(&hub, "GET", &path, &[]).await;
    assert_eq!(r.status, 403);
    assert!(String::from_utf8_lossy(&r.body).contains("Request has expired"));
    assert_eq!(at_cdn(&hub, "HEAD", &path, &[]).await.status, 200);

    // A zero TTL signs URLs that are already expired; restoring it heals new URLs only.
    hub.faults().set_cdn_url_ttl(Duration::ZERO);
    let expired = cdn_path(&hub, "model.safetensors").await;
    assert!(expired.contains("X-Amz-Expires=0"));
    assert_eq!(at_cdn(&hub, "GET", &expired, &[]).await.status, 403);
    hub.faults().set_cdn_url_ttl(Duration::from_hours(1));
    assert_eq!(at_cdn(&hub, "GET", &expired, &[]).await.status, 403);
    let fresh = cdn_path(&hub, "model.safetensors").await;
    assert_eq!(at_cdn(&hub, "GET", &fresh, &[]).await.status, 200);
}

#[tokio::test]
async fn delay_fault_and_concurrent_streams_on_h2() {
    let hub = crate::hub_with(hfd_testkit::Transport::H2c).await;
    let path = cdn_path(&hub, "model.safetensors").await;
    let content = lfs(&hub);
    hub.faults()
        .inject(Fault::new(FaultKind::Delay(Duration::from_millis(50))).on(FaultTarget::Cdn));
    let mut c = Conn::open(&hub, Origin::Cdn, Proto::H2).await;
    let mut pending = Vec::new();
    for i in 0..8u64 {
        let range = format!("bytes={}-{}", i * 1000, i * 1000 + 999);
        let resp = c.start("GET", &path, &[("range", &range)], "").await;
        pending.push(resp);
    }
    let bodies = futures::stream::iter(pending)
        .then(|r| async move { read_all(r.unwrap()).await })
        .collect::<Vec<_>>()
        .await;
    for (i, r) in bodies.iter().enumerate() {
        assert_eq!(r.status, 206);
        assert!(r.body == content[i * 1000..i * 1000 + 1000]);
    }
    assert_eq!(hub.log().distinct_connections(Origin::Cdn), 1);
    assert_eq!(hub.log().faults_fired(), vec!["delay"]);
}
