//! hfd-rs downloads from `serve` with many connections per file, over
//! HTTP/1.1, h2c and TLS, from a cache and from a local dir it wrote.

use hfd::verify::SourceRecord;
use hfd_serve::LocalSource;

use crate::{
    DATA, Dest, MODEL, assert_files_match, config, dataset, download, fake_hub, fill_cache, http,
    model, raw, serve, tls_files,
};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Wire {
    Http1,
    H2c,
    Tls,
}

async fn cache_round_trip(wire: Wire) {
    let hub = fake_hub().await;
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    fill_cache(&hub, &cache).await;

    let mut cfg = config();
    cfg.caches.push(cache);
    // Small tree pages: the client follows `Link` pagination on every wire.
    cfg.tree_page_size = 3;
    let ca = if wire == Wire::Tls {
        let (ca, cert, key) = tls_files(tmp.path());
        cfg.tls = Some((cert, key));
        Some(ca)
    } else {
        None
    };
    let served = serve(cfg).await;
    let url = served.url.replace(
        "127.0.0.1",
        if wire == Wire::Tls {
            "localhost"
        } else {
            "127.0.0.1"
        },
    );
    let client = http(wire == Wire::H2c, ca.as_deref());
    for (repo, id) in [(model(), MODEL), (dataset(), DATA)] {
        let out = tmp.path().join(format!("out-{}", id.replace('/', "-")));
        let report = download(&url, &client, &repo, Dest::Dir(&out), 8, None)
            .await
            .unwrap_or_else(|e| panic!("download of {id} from serve: {e}"));
        assert_eq!(report.files_done, hub.files(id).len());
        assert_files_match(&hub, id, &out);
    }

    let records = served.records();
    let big = "/org/model/resolve/";
    let ranges = records
        .iter()
        .filter(|r| {
            r.status == 206 && r.path.starts_with(big) && r.path.ends_with("model.safetensors")
        })
        .count();
    assert!(
        ranges >= 8,
        "model.safetensors came in {ranges} range requests; expected it split over many connections"
    );
    let pages = records
        .iter()
        .filter(|r| r.path.starts_with("/api/models/org/model/tree/"))
        .count();
    assert!(pages >= 3, "the model's listing took {pages} pages");
    let want_version = if wire == Wire::Http1 {
        "HTTP/1.1"
    } else {
        "HTTP/2.0"
    };
    // Over TLS the ranges of large files ride HTTP/1.1 (decision 0016); the
    // rest shares h2 connections (or idle HTTP/1.1 ones).
    let large_range = |r: &&crate::RequestRecord| {
        r.status == 206 && r.path.starts_with(big) && r.path.ends_with("model.safetensors")
    };
    if wire == Wire::Tls {
        assert!(
            records
                .iter()
                .filter(large_range)
                .all(|r| r.version == "HTTP/1.1"),
            "every range of the large file over HTTP/1.1"
        );
    } else {
        assert!(
            records.iter().all(|r| r.version == want_version),
            "every request over {want_version}"
        );
    }
    assert!(
        records
            .iter()
            .filter(|r| r.path.contains("/tree/"))
            .all(|r| r.version == want_version),
        "listing pages over {want_version}"
    );
    // (Answers may be aborted: the engine drops and hedges slow connections.)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hfd_downloads_a_served_cache_over_http1() {
    cache_round_trip(Wire::Http1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hfd_downloads_a_served_cache_over_h2c() {
    cache_round_trip(Wire::H2c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hfd_downloads_a_served_cache_over_tls() {
    cache_round_trip(Wire::Tls).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hfd_downloads_a_served_local_dir() {
    let hub = fake_hub().await;
    let tmp = tempfile::tempdir().unwrap();
    let local = tmp.path().join("local");
    let report = download(
        hub.endpoint(),
        &http(false, None),
        &model(),
        Dest::Dir(&local),
        4,
        None,
    )
    .await
    .unwrap();
    // What the CLI records after a --local-dir download.
    let commit = hub.commit(MODEL, "main").unwrap();
    SourceRecord {
        repo: MODEL.to_owned(),
        repo_type: "model".to_owned(),
        revision: "main".to_owned(),
        commit: commit.clone(),
    }
    .write(&local)
    .unwrap();
    assert_eq!(report.files_done, hub.files(MODEL).len());

    let mut cfg = config();
    cfg.local_dirs
        .push(LocalSource::open(local.to_str().unwrap()).unwrap());
    let served = serve(cfg).await;
    let out = tmp.path().join("out");
    download(
        &served.url,
        &http(false, None),
        &model(),
        Dest::Dir(&out),
        8,
        None,
    )
    .await
    .unwrap();
    assert_files_match(&hub, MODEL, &out);

    // `REPO=DIR` serves a folder without a record, at its metadata's commit.
    std::fs::remove_file(local.join(".cache/huggingface/hfd-rs-source.json")).unwrap();
    assert!(LocalSource::open(local.to_str().unwrap()).is_err());
    let named = LocalSource::open(&format!("{MODEL}={}", local.display())).unwrap();
    assert_eq!(named.commit, commit);
    let mut cfg = config();
    cfg.local_dirs.push(named);
    let served = serve(cfg).await;
    let out = tmp.path().join("out2");
    download(
        &served.url,
        &http(false, None),
        &model(),
        Dest::Dir(&out),
        8,
        None,
    )
    .await
    .unwrap();
    assert_files_match(&hub, MODEL, &out);
}

/// Hundreds of clients at once, each with its own connection and range:
/// every one gets exactly its bytes (no connection refused, starved or
/// answered with another's range).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_hundred_concurrent_connections_each_get_their_range() {
    const CLIENTS: u64 = 300;
    let hub = fake_hub().await;
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    fill_cache(&hub, &cache).await;
    let mut cfg = config();
    cfg.caches.push(cache);
    let served = serve(cfg).await;
    let want = std::sync::Arc::new(hub.file_bytes(MODEL, "model.safetensors").unwrap());
    let part = want.len() as u64 / CLIENTS;
    let clients = (0..CLIENTS).map(|i| {
        let (addr, want) = (served.addr, std::sync::Arc::clone(&want));
        tokio::spawn(async move {
            let (start, end) = (i * part, (i + 1) * part - 1);
            let range = format!("bytes={start}-{end}");
            let got = raw(
                addr,
                "GET",
                "/org/model/resolve/main/model.safetensors",
                &[("Range", &range)],
                b"",
            )
            .await;
            assert_eq!(got.status, 206, "client {i}");
            #[allow(clippy::cast_possible_truncation)]
            let expected = &want[start as usize..=end as usize];
            assert!(got.body == expected, "client {i} got its range");
        })
    });
    for joined in futures::future::join_all(clients).await {
        joined.expect("client task");
    }
}
