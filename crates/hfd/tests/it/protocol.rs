//! Normal runs: the request budget (one resolve per file, one CDN URL per
//! file, no token at the CDN), the HTTP version in use, and HTTP/2 streams
//! multiplexed on few connections for a dataset of small files.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use hfd::hfd_hub::{RepoId, RepoRef};
use hfd_testkit::{FakeHub, Origin, RepoFixture, Transport};

use crate::{
    MODEL, Setup, TOKEN, assert_files_match, assert_request_budget, download, model_hub,
    model_repo, nz, per_transport,
};

const DATASET: &str = "org/data";

fn expected_version(transport: Transport) -> &'static str {
    match transport {
        Transport::Http1 => "HTTP/1.1",
        _ => "HTTP/2.0",
    }
}

/// A plain download: identical files, the request budget, metadata for
/// huggingface_hub, and the HTTP version the transport offers on both the
/// hub and the CDN; over TLS, the ranges of the large file ride HTTP/1.1
/// (decision 0016).
async fn model_download(transport: Transport) {
    let hub = model_hub(transport).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let run = download(&hub, &model_repo(), dir.path(), &Setup::fast(), None).await;
    let report = run.result.expect("download succeeds");
    let files = hub.files(MODEL);
    assert_eq!(report.files_done, files.len());
    assert_eq!(report.resolves, files.len() as u64);
    assert_files_match(&hub, MODEL, dir.path());
    assert_request_budget(&hub, MODEL);
    let entries = hub.log().entries();
    assert!(entries.iter().any(|e| e.origin == Origin::Cdn));
    let large = hub
        .file_info(MODEL, "model.safetensors")
        .and_then(|f| f.lfs_sha256)
        .expect("an LFS file");
    let mut ranges = 0;
    for e in &entries {
        if transport == Transport::Tls && e.range.is_some() {
            // Split files' ranges dial HTTP/1.1; a small file fetched whole
            // shares an h2 connection (or an idle HTTP/1.1 one).
            if e.path.ends_with(&large) {
                ranges += 1;
                assert_eq!(e.version, "HTTP/1.1", "{e:?}");
            }
        } else {
            assert_eq!(e.version, expected_version(transport), "{e:?}");
        }
    }
    assert!(transport != Transport::Tls || ranges > 1, "{ranges} ranges");
    // The hub got the token; the CDN (strict, like S3) never did.
    assert!(
        entries
            .iter()
            .any(|e| e.origin == Origin::Hub && e.has_authorization)
    );
    // The metadata huggingface_hub reads marks every file current.
    let local = hfd::LocalDir::new(dir.path());
    let commit = hub.commit(MODEL, "main").expect("commit");
    for file in &files {
        let meta = local.read_metadata(&file.path).expect("metadata");
        assert_eq!(meta.commit, commit);
        assert_eq!(meta.etag, file.etag());
    }
}

/// A second run is a sync: nothing is fetched, nothing resolved.
async fn second_run_fetches_nothing(transport: Transport) {
    let hub = model_hub(transport).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let first = download(&hub, &model_repo(), dir.path(), &Setup::fast(), None).await;
    first.result.expect("first run");
    hub.log().clear();
    let second = download(&hub, &model_repo(), dir.path(), &Setup::fast(), None).await;
    let report = second.result.expect("second run");
    assert_eq!(report.files_done, 0);
    assert_eq!(report.files_skipped, hub.files(MODEL).len());
    assert_eq!(hub.log().resolve_count(), 0);
    assert_eq!(hub.log().count(|e| e.origin == Origin::Cdn), 0);
    assert_files_match(&hub, MODEL, dir.path());
}

/// A dataset of small files with awkward names over two connections per
/// host: under HTTP/2 many requests are in flight on one connection at the
/// same moment; under HTTP/1.1 never more than one.
async fn dataset_of_small_files(transport: Transport) {
    let hub = FakeHub::builder()
        .repo(RepoFixture::synthetic_dataset(DATASET, 60, 3))
        .transport(transport)
        .token(TOKEN)
        .strict_cdn(true)
        // Keeps every request open a moment, so concurrency is observable.
        .latency(Duration::from_millis(40))
        .start()
        .await
        .expect("fake hub starts");
    let mut setup = Setup::fast();
    setup.engine.files_in_flight = nz(16);
    setup.engine.max_connections = nz(16);
    setup.http.max_connections_per_host = nz(2);
    let repo = RepoRef::dataset(RepoId::new(DATASET).expect("repo id"));
    let dir = tempfile::tempdir().expect("tempdir");

    let finished = AtomicBool::new(false);
    let run = async {
        let run = download(&hub, &repo, dir.path(), &setup, None).await;
        finished.store(true, Ordering::SeqCst);
        run
    };
    // Largest number of requests waiting for their answer on one
    // connection at once, sampled while the download runs.
    let watch = async {
        let mut most = 0usize;
        for _ in 0..4000 {
            if finished.load(Ordering::SeqCst) {
                break;
            }
            let mut pending: HashMap<u64, usize> = HashMap::new();
            for e in hub.log().entries() {
                if e.status == 0 {
                    *pending.entry(e.connection_id).or_insert(0) += 1;
                }
            }
            most = most.max(pending.values().copied().max().unwrap_or(0));
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        most
    };
    let (run, most_pending) = tokio::join!(run, watch);
    let report = run.result.expect("download succeeds");
    let files = hub.files(DATASET);
    assert_eq!(report.files_done, files.len());
    assert_files_match(&hub, DATASET, dir.path());
    assert_request_budget(&hub, DATASET);

    let entries = hub.log().entries();
    for e in &entries {
        assert_eq!(e.version, expected_version(transport), "{e:?}");
    }
    let hub_requests = entries.iter().filter(|e| e.origin == Origin::Hub).count();
    assert!(hub_requests >= files.len(), "{hub_requests}");
    assert!(hub.log().distinct_connections(Origin::Hub) <= 2);
    if transport == Transport::Http1 {
        assert_eq!(most_pending, 1, "HTTP/1.1 carries one request at a time");
    } else {
        assert!(
            most_pending >= 4,
            "HTTP/2 multiplexes many streams per connection (saw at most {most_pending})"
        );
        let stats = run.http.stats();
        let hub_origin = stats
            .origins
            .iter()
            .find(|o| o.origin.contains(&hub.hub_addr().port().to_string()))
            .expect("hub origin stats");
        assert_eq!(
            hub_origin.http2_connections_opened,
            hub_origin.connections_opened
        );
    }
}

per_transport!(
    model_download,
    second_run_fetches_nothing,
    dataset_of_small_files
);
