//! Every fault knob of the fake hub, over HTTP/1.1, h2c and TLS: each run
//! ends with byte-identical files, or with a clear, correctly classified
//! error, no file under its final name and the partial kept.

use std::time::Duration;

use hfd::ErrorKind;
use hfd_testkit::{FakeHub, Fault, FaultKind, FaultTarget, KIB, Route, Transport};

use crate::{
    Events, MODEL, Run, Setup, assert_failed_file, assert_files_match, assert_request_budget,
    download, model_hub, model_repo, per_transport, resolves_per_path,
};

/// Path fragment of a model file's CDN object (its SHA-256), so a CDN
/// fault hits that file and no other.
fn cdn_object(hub: &FakeHub, path: &str) -> String {
    hub.file_info(MODEL, path)
        .and_then(|f| f.lfs_sha256)
        .expect("an LFS file")
}

/// Resolve requests for `path` so far.
fn resolves_of(hub: &FakeHub, path: &str) -> usize {
    resolves_per_path(&hub.log().entries())
        .iter()
        .filter(|(p, _)| p.ends_with(path))
        .map(|(_, n)| *n)
        .sum()
}

/// The multi-range LFS file.
const BIG: &str = "model.safetensors";
/// The regular file big enough to be fetched in ranges from the hub.
const HUB_RANGED: &str = "tokenizer.json";

/// Runs with `faults` (built once the hub is known) and asserts a
/// complete, byte-identical result in which every fault fired.
async fn survives(
    transport: Transport,
    setup: &Setup,
    faults: impl FnOnce(&FakeHub) -> Vec<Fault>,
) -> (FakeHub, tempfile::TempDir, Run) {
    let hub = model_hub(transport).await;
    let faults = faults(&hub);
    for fault in &faults {
        hub.faults().inject(fault.clone());
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let run = download(&hub, &model_repo(), dir.path(), setup, None).await;
    if let Err(e) = &run.result {
        panic!(
            "download failed: {e}: {e:?}; faults fired: {:?}",
            hub.log().faults_fired()
        );
    }
    assert_files_match(&hub, MODEL, dir.path());
    assert_eq!(
        hub.faults().pending(),
        0,
        "every fault fired: {:?}",
        hub.log().faults_fired()
    );
    assert_eq!(hub.log().cdn_requests_with_authorization(), 0);
    (hub, dir, run)
}

async fn fails(
    transport: Transport,
    setup: &Setup,
    faults: impl FnOnce(&FakeHub) -> Vec<Fault>,
) -> (FakeHub, tempfile::TempDir, Run) {
    let hub = model_hub(transport).await;
    for fault in faults(&hub) {
        hub.faults().inject(fault);
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let run = download(&hub, &model_repo(), dir.path(), setup, None).await;
    (hub, dir, run)
}

fn fired(hub: &FakeHub, name: &str) -> usize {
    hub.log()
        .faults_fired()
        .iter()
        .filter(|f| **f == name)
        .count()
}

// ---------------------------------------------------------------------------
// Faults the download survives.

async fn reset_after_bytes(transport: Transport) {
    let (hub, _dir, _run) = survives(transport, &Setup::fast(), |hub| {
        vec![
            Fault::new(FaultKind::ResetAfterBytes(100 * KIB))
                .on(FaultTarget::Cdn)
                .path_contains(&cdn_object(hub, BIG))
                .times(2),
            Fault::new(FaultKind::ResetAfterBytes(20 * KIB))
                .on(FaultTarget::ResolveCache)
                .path_contains(HUB_RANGED)
                .ranged_only(),
        ]
    })
    .await;
    assert_eq!(fired(&hub, "reset"), 3);
    assert_request_budget(&hub, MODEL);
}

async fn stall_after_bytes(transport: Transport) {
    let mut setup = Setup::fast();
    setup.engine.stall_timeout = Duration::from_millis(500);
    let (hub, _dir, _run) = survives(transport, &setup, |hub| {
        vec![
            Fault::new(FaultKind::StallAfterBytes {
                bytes: 64 * KIB,
                duration: Duration::from_secs(4),
            })
            .on(FaultTarget::Cdn)
            .path_contains(&cdn_object(hub, BIG)),
            Fault::new(FaultKind::StallAfterBytes {
                bytes: 10 * KIB,
                duration: Duration::from_secs(4),
            })
            .on(FaultTarget::ResolveCache)
            .path_contains(HUB_RANGED)
            .ranged_only(),
        ]
    })
    .await;
    assert_eq!(fired(&hub, "stall"), 2);
    assert_request_budget(&hub, MODEL);
}

async fn server_errors(transport: Transport) {
    let (hub, _dir, _run) = survives(transport, &Setup::fast(), |hub| {
        let big = cdn_object(hub, BIG);
        vec![
            Fault::new(FaultKind::Status(500))
                .on(FaultTarget::Cdn)
                .path_contains(&big),
            Fault::new(FaultKind::Status(502))
                .on(FaultTarget::Cdn)
                .path_contains(&big),
            Fault::new(FaultKind::Status(503))
                .on(FaultTarget::Cdn)
                .path_contains(&big),
            Fault::new(FaultKind::Status(502))
                .on(FaultTarget::ResolveCache)
                .path_contains(HUB_RANGED)
                .ranged_only(),
        ]
    })
    .await;
    assert_eq!(fired(&hub, "status"), 4);
    assert_request_budget(&hub, MODEL);
}

/// A 5xx on the resolve request itself is retried by the hub client: that
/// file costs two resolves, every other file one.
async fn server_error_on_resolve(transport: Transport) {
    let (hub, _dir, _run) = survives(transport, &Setup::fast(), |_| {
        vec![
            Fault::new(FaultKind::Status(500))
                .on(FaultTarget::Resolve)
                .path_contains(BIG),
        ]
    })
    .await;
    let resolves = resolves_per_path(&hub.log().entries());
    assert_eq!(resolves.len(), hub.files(MODEL).len());
    for (path, n) in &resolves {
        let want = if path.ends_with(BIG) { 2 } else { 1 };
        assert_eq!(*n, want, "{path}: {resolves:?}");
    }
}

/// 429 with `Retry-After: 1` / `RateLimit: ...;r=0;t=1` on the CDN and on a
/// resolve: both are waited out (the engine pauses the whole pool).
async fn rate_limited(transport: Transport) {
    let (hub, _dir, run) = survives(transport, &Setup::fast(), |hub| {
        vec![
            Fault::new(FaultKind::RateLimited {
                retry_after_secs: 1,
            })
            .on(FaultTarget::Cdn)
            .path_contains(&cdn_object(hub, BIG)),
            Fault::new(FaultKind::RateLimited {
                retry_after_secs: 1,
            })
            .on(FaultTarget::Resolve)
            .path_contains("small.bin"),
        ]
    })
    .await;
    assert_eq!(fired(&hub, "rate-limited"), 2);
    let report = run.result.as_ref().expect("ok");
    // A lower bound only: the server's wait was honoured, not skipped.
    assert!(report.elapsed >= Duration::from_secs(1), "{report:?}");
    let resolves = resolves_per_path(&hub.log().entries());
    for (path, n) in &resolves {
        let want = if path.ends_with("small.bin") { 2 } else { 1 };
        assert_eq!(*n, want, "{path}: {resolves:?}");
    }
}

/// A 200 to a range request is never written at the range's offset: the
/// file falls back to one stream from byte 0.
async fn ignore_range(transport: Transport) {
    let (hub, _dir, run) = survives(transport, &Setup::fast(), |hub| {
        vec![
            Fault::new(FaultKind::IgnoreRange)
                .on(FaultTarget::Cdn)
                .path_contains(&cdn_object(hub, BIG)),
            Fault::new(FaultKind::IgnoreRange)
                .on(FaultTarget::ResolveCache)
                .path_contains(HUB_RANGED),
        ]
    })
    .await;
    assert_eq!(fired(&hub, "ignore-range"), 2);
    assert_eq!(Events::get(&run.events.fallbacks), 2);
    // The fallback is one GET without a Range header per file.
    let whole_cdn = hub
        .log()
        .count(|e| e.route == Route::Cdn && e.range.is_none());
    assert_eq!(whole_cdn, 1);
    assert_request_budget(&hub, MODEL);
}

async fn short_body(transport: Transport) {
    let (hub, _dir, _run) = survives(transport, &Setup::fast(), |hub| {
        vec![
            Fault::new(FaultKind::ShortBody { missing: 10 * KIB })
                .on(FaultTarget::Cdn)
                .path_contains(&cdn_object(hub, BIG))
                .times(2),
            Fault::new(FaultKind::ShortBody { missing: 1000 })
                .on(FaultTarget::ResolveCache)
                .path_contains(HUB_RANGED)
                .ranged_only(),
        ]
    })
    .await;
    assert_eq!(fired(&hub, "short-body"), 3);
    assert_request_budget(&hub, MODEL);
}

/// A 403 from the CDN: one shared re-resolve, then the download completes.
/// The file costs exactly two resolves, every other file one.
async fn expired_url(transport: Transport) {
    let (hub, _dir, _run) = survives(transport, &Setup::fast(), |hub| {
        vec![
            Fault::new(FaultKind::ExpiredUrl)
                .on(FaultTarget::Cdn)
                .path_contains(&cdn_object(hub, BIG)),
        ]
    })
    .await;
    assert_eq!(fired(&hub, "expired-url"), 1);
    let entries = hub.log().entries();
    let resolves = resolves_per_path(&entries);
    assert_eq!(resolves.len(), hub.files(MODEL).len());
    for (path, n) in &resolves {
        let want = if path.ends_with(BIG) { 2 } else { 1 };
        assert_eq!(*n, want, "{path}: {resolves:?}");
    }
    let urls = crate::cdn_urls_per_object(&entries);
    let big = cdn_object(&hub, BIG);
    for (object, queries) in &urls {
        // Re-signed within the same second, the new URL may equal the old.
        let most = if object.ends_with(&big) { 2 } else { 1 };
        assert!(queries.len() <= most, "{object}: {queries:?}");
    }
}

/// Slow answers: a short delay is just waited for; one longer than the
/// header timeout is abandoned and retried.
async fn delay(transport: Transport) {
    let mut setup = Setup::fast();
    setup.http.header_timeout = Some(Duration::from_secs(1));
    let (hub, _dir, _run) = survives(transport, &setup, |hub| {
        vec![
            Fault::new(FaultKind::Delay(Duration::from_millis(200)))
                .on(FaultTarget::Any)
                .times(3),
            Fault::new(FaultKind::Delay(Duration::from_secs(3)))
                .on(FaultTarget::Cdn)
                .path_contains(&cdn_object(hub, BIG)),
        ]
    })
    .await;
    assert_eq!(fired(&hub, "delay"), 4);
    assert_request_budget(&hub, MODEL);
}

per_transport!(
    reset_after_bytes,
    stall_after_bytes,
    server_errors,
    server_error_on_resolve,
    rate_limited,
    ignore_range,
    short_body,
    expired_url,
    delay,
    wrong_content_range,
    change_etag,
    corrupt_body,
);

// ---------------------------------------------------------------------------
// Faults that must end in a clear error, with no file under its final name.

/// A `Content-Range` other than the one asked for contradicts the file: the
/// file starts over from a fresh resolve and completes.
async fn wrong_content_range(transport: Transport) {
    let (hub, _dir, _run) = survives(transport, &Setup::fast(), |hub| {
        vec![
            Fault::new(FaultKind::WrongContentRange)
                .on(FaultTarget::Cdn)
                .path_contains(&cdn_object(hub, BIG)),
        ]
    })
    .await;
    assert_eq!(fired(&hub, "wrong-content-range"), 1);
    assert_eq!(resolves_of(&hub, BIG), 2, "one fresh resolve");
}

/// An ETag that changes between the ranges of one file: nothing after the
/// change is accepted, the file starts over from a fresh resolve.
async fn change_etag(transport: Transport) {
    let (hub, _dir, _run) = survives(transport, &Setup::fast(), |hub| {
        vec![
            Fault::new(FaultKind::ChangeEtag)
                .on(FaultTarget::Cdn)
                .path_contains(&cdn_object(hub, BIG)),
        ]
    })
    .await;
    assert_eq!(fired(&hub, "change-etag"), 1);
    assert_eq!(resolves_of(&hub, BIG), 2, "one fresh resolve");
}

/// Wrong bytes with the right headers (a glitching CDN): only the hash can
/// tell; the partial is discarded and the file fetched again from a fresh
/// resolve on a new connection, with no help from the user.
async fn corrupt_body(transport: Transport) {
    let (hub, _dir, _run) = survives(transport, &Setup::fast(), |hub| {
        vec![
            Fault::new(FaultKind::CorruptBody)
                .on(FaultTarget::Cdn)
                .path_contains(&cdn_object(hub, BIG)),
        ]
    })
    .await;
    assert_eq!(fired(&hub, "corrupt-body"), 1);
    assert_eq!(resolves_of(&hub, BIG), 2, "one fresh resolve");
}

/// A body longer than the range (its `Content-Length` covering the extra
/// bytes) contradicts the `Content-Range`: refused before any byte is
/// written, as a bad server answer.
async fn long_body(transport: Transport) {
    let (hub, dir, run) = fails(transport, &Setup::fast(), |hub| {
        vec![
            Fault::new(FaultKind::LongBody { extra: 5000 })
                .on(FaultTarget::Cdn)
                .path_contains(&cdn_object(hub, BIG)),
        ]
    })
    .await;
    assert_eq!(fired(&hub, "long-body"), 1);
    assert_failed_file(&hub, &run, dir.path(), BIG, ErrorKind::Protocol);
}

per_transport!(long_body);

/// Persistent failures end, after the bounded retries, in an error of the
/// right class.
mod persistent {
    use super::*;

    /// Wrong bytes on every answer: the file is tried
    /// `hfd_engine::INTEGRITY_ATTEMPTS` times, each from a fresh resolve,
    /// then fails as an integrity error naming the host that served them;
    /// nothing of the bad bytes is kept.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bytes_that_never_match_are_an_integrity_error_naming_the_host() {
        let (hub, dir, run) = fails(Transport::Http1, &Setup::fast(), |hub| {
            vec![
                Fault::new(FaultKind::CorruptBody)
                    .on(FaultTarget::Cdn)
                    .path_contains(&cdn_object(hub, BIG))
                    .always(),
            ]
        })
        .await;
        assert_failed_file(&hub, &run, dir.path(), BIG, ErrorKind::Integrity);
        let attempts = hfd::hfd_engine::INTEGRITY_ATTEMPTS as usize;
        assert_eq!(resolves_of(&hub, BIG), attempts);
        let text = run.result.as_ref().unwrap_err().to_string();
        assert!(text.contains("integrity"), "{text}");
        assert!(!text.contains("disk error"), "{text}");
        let cdn_host = hub.cdn_addr().to_string();
        assert!(text.contains(&cdn_host), "names {cdn_host}: {text}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_content_range_that_is_always_wrong_is_an_integrity_error() {
        let (hub, dir, run) = fails(Transport::H2c, &Setup::fast(), |hub| {
            vec![
                Fault::new(FaultKind::WrongContentRange)
                    .on(FaultTarget::Cdn)
                    .path_contains(&cdn_object(hub, BIG))
                    .always(),
            ]
        })
        .await;
        assert_failed_file(&hub, &run, dir.path(), BIG, ErrorKind::Integrity);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn resets_before_any_byte_are_a_network_error() {
        let (hub, dir, run) = fails(Transport::Http1, &Setup::fast(), |hub| {
            vec![
                Fault::new(FaultKind::ResetAfterBytes(0))
                    .on(FaultTarget::Cdn)
                    .path_contains(&cdn_object(hub, BIG))
                    .always(),
            ]
        })
        .await;
        assert_failed_file(&hub, &run, dir.path(), BIG, ErrorKind::Network);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn server_error_on_every_range_is_a_network_error() {
        let (hub, dir, run) = fails(Transport::H2c, &Setup::fast(), |hub| {
            vec![
                Fault::new(FaultKind::Status(500))
                    .on(FaultTarget::Cdn)
                    .path_contains(&cdn_object(hub, BIG))
                    .always(),
            ]
        })
        .await;
        assert_failed_file(&hub, &run, dir.path(), BIG, ErrorKind::Network);
        let text = format!("{:#?}", run.result.as_ref().err());
        assert!(text.contains("500"), "{text}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn endless_rate_limit_is_a_rate_limited_error() {
        let mut setup = Setup::fast();
        setup.engine.retry.max_retries = 2;
        let (hub, dir, run) = fails(Transport::Tls, &setup, |hub| {
            vec![
                Fault::new(FaultKind::RateLimited {
                    retry_after_secs: 1,
                })
                .on(FaultTarget::Cdn)
                .path_contains(&cdn_object(hub, BIG))
                .always(),
            ]
        })
        .await;
        assert_failed_file(
            &hub,
            &run,
            dir.path(),
            BIG,
            ErrorKind::RateLimited {
                wait: Some(Duration::from_secs(1)),
            },
        );
    }

    /// A CDN that refuses even the freshly resolved URL: exactly one
    /// re-resolve, then bounded retries and a clear error.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn url_refused_after_re_resolve_is_an_error_after_one_re_resolve() {
        let (hub, dir, run) = fails(Transport::Http1, &Setup::fast(), |hub| {
            vec![
                Fault::new(FaultKind::ExpiredUrl)
                    .on(FaultTarget::Cdn)
                    .path_contains(&cdn_object(hub, BIG))
                    .always(),
            ]
        })
        .await;
        assert_failed_file(&hub, &run, dir.path(), BIG, ErrorKind::Network);
        let resolves = resolves_per_path(&hub.log().entries());
        for (path, n) in &resolves {
            let want = if path.ends_with(BIG) { 2 } else { 1 };
            assert_eq!(*n, want, "{path}: {resolves:?}");
        }
        let text = format!("{:#?}", run.result.as_ref().err());
        assert!(text.contains("403"), "{text}");
    }

    /// The resolve keeps failing: the hub client's bounded retries end in a
    /// server error for that file only.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn resolve_failing_for_good_fails_that_file_only() {
        let mut setup = Setup::fast();
        setup.hub_retries = 1;
        let (hub, dir, run) = fails(Transport::Http1, &setup, |_| {
            vec![
                Fault::new(FaultKind::Status(500))
                    .on(FaultTarget::Resolve)
                    .path_contains(BIG)
                    .always(),
            ]
        })
        .await;
        let err = run.result.as_ref().expect_err("fails");
        assert!(
            matches!(err.kind(), ErrorKind::Network | ErrorKind::Protocol),
            "{err:?}"
        );
        assert!(!dir.path().join(BIG).exists());
        for file in hub.files(MODEL) {
            if file.path != BIG {
                let got = std::fs::read(dir.path().join(&file.path)).expect("others complete");
                assert!(got == hub.file_bytes(MODEL, &file.path).expect("fixture"));
            }
        }
    }
}

/// A 429 on one file's range pauses every connection of the pool for the
/// server's `Retry-After`, not just the one that got it: no other file's
/// request arrives at the CDN during the pause, and they all resume after.
/// (Arrival times are sampled from the request log while the run goes; the
/// window checked starts well after the 429 so requests already past the
/// gate when it closed do not count.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_pauses_the_whole_pool() {
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicBool, Ordering};
    use tokio::time::Instant;

    const REPO: &str = "org/many";
    let mut fixture = hfd_testkit::RepoFixture::model(REPO);
    for i in 0..12u64 {
        fixture = fixture.lfs_file(&format!("w{i:02}.bin"), 8 * KIB, 100 + i);
    }
    let hub = FakeHub::builder()
        .repo(fixture)
        .token(crate::TOKEN)
        .start()
        .await
        .expect("fake hub starts");
    let first = hub
        .file_info(REPO, "w00.bin")
        .and_then(|f| f.lfs_sha256)
        .expect("LFS");
    hub.faults().inject(
        Fault::new(FaultKind::RateLimited {
            retry_after_secs: 2,
        })
        .on(FaultTarget::Cdn)
        .path_contains(&first),
    );
    let mut setup = Setup::fast();
    setup.engine.files_in_flight = crate::nz(2);
    let repo = hfd::hfd_hub::RepoRef::model(hfd::hfd_hub::RepoId::new(REPO).expect("id"));
    let dir = tempfile::tempdir().expect("tempdir");
    let finished = AtomicBool::new(false);
    let run = async {
        let run = download(&hub, &repo, dir.path(), &setup, None).await;
        finished.store(true, Ordering::SeqCst);
        run
    };
    let watch = async {
        let mut seen: HashMap<u64, Instant> = HashMap::new();
        for _ in 0..2000 {
            let done = finished.load(Ordering::SeqCst);
            let now = Instant::now();
            for e in hub.log().entries() {
                seen.entry(e.seq).or_insert(now);
            }
            if done {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        seen
    };
    let (run, seen) = tokio::join!(run, watch);
    run.result.expect("download succeeds");
    assert_files_match(&hub, REPO, dir.path());
    let entries = hub.log().entries();
    let limited = entries
        .iter()
        .find(|e| e.status == 429)
        .expect("the 429 was sent");
    let t0 = seen[&limited.seq];
    let others: Vec<Duration> = entries
        .iter()
        .filter(|e| {
            e.route == Route::Cdn && e.seq > limited.seq && !e.path.contains(first.as_str())
        })
        .map(|e| seen[&e.seq].duration_since(t0))
        .collect();
    assert!(
        others.iter().any(|d| *d >= Duration::from_millis(1500)),
        "the other files were fetched after the pause: {others:?}"
    );
    assert!(
        !others
            .iter()
            .any(|d| *d > Duration::from_millis(300) && *d < Duration::from_millis(1500)),
        "no other request during the pause: {others:?}"
    );
}
