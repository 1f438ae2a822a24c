//! Pull-through: misses fetched from the upstream once, however many
//! clients ask; gated repos only for tokens the upstream accepts.

use std::collections::BTreeMap;

use hfd_serve::UpstreamConfig;
use hfd_testkit::{FakeHub, Origin, Route};
use percent_encoding::percent_decode_str;

use crate::{
    Dest, LIMITED, MODEL, TOKEN, assert_files_match, config, download, engine, fake_hub, http,
    hub_config, model, raw, serve,
};

fn upstream(hub: &FakeHub, cache: &std::path::Path, server_token: Option<&str>) -> UpstreamConfig {
    UpstreamConfig {
        hubs: vec![hub_config(hub.endpoint(), None)],
        http: http(false, None),
        engine: engine(4),
        server_token: server_token.map(|t| hfd::hfd_hub::Token::new(t).unwrap()),
        cache: cache.to_path_buf(),
    }
}

/// Content bytes the fake hub sent per file of `repo` (CDN bodies for LFS
/// files, resolve bodies for regular ones).
fn content_bytes(hub: &FakeHub, repo: &str) -> BTreeMap<String, u64> {
    let files = hub.files(repo);
    let mut out = BTreeMap::new();
    for e in hub.log().entries() {
        if e.method != "GET" || !matches!(e.status, 200 | 206) {
            continue;
        }
        let file = match (e.origin, e.route) {
            (Origin::Cdn, _) => files
                .iter()
                .find(|f| f.lfs_sha256.as_deref().is_some_and(|s| e.path.ends_with(s))),
            (_, Route::ResolveCache | Route::Resolve) => {
                let path = percent_decode_str(&e.path).decode_utf8_lossy().into_owned();
                files
                    .iter()
                    .find(|f| path.ends_with(&format!("/{}", f.path)))
            }
            _ => None,
        };
        if let Some(f) = file {
            *out.entry(f.path.clone()).or_default() += e.body_bytes;
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_concurrent_clients_pull_each_file_from_upstream_once() {
    let hub = fake_hub().await;
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let mut cfg = config();
    cfg.upstream = Some(upstream(&hub, &cache, None));
    let served = serve(cfg).await;

    let clients = (0..3).map(|i| {
        let (url, dir) = (served.url.clone(), tmp.path().join(format!("client-{i}")));
        tokio::spawn(async move {
            download(&url, &http(false, None), &model(), Dest::Dir(&dir), 8, None)
                .await
                .map(|_| dir)
        })
    });
    let dirs: Vec<_> = futures::future::join_all(clients).await;
    for dir in dirs {
        let dir = dir.unwrap().expect("client downloads through serve");
        assert_files_match(&hub, MODEL, &dir);
    }
    // Each file was downloaded from upstream exactly once: one resolve per
    // file by the mirror's downloader, plus one for the file the access
    // check probes (the smallest), and at least its size in content bytes
    // (more only when the engine hedged a slow range).
    let entries = hub.log().entries();
    let sent = content_bytes(&hub, MODEL);
    let files = hub.files(MODEL);
    let probe = files.iter().min_by_key(|f| f.size).unwrap().path.clone();
    for f in files {
        let resolves = entries
            .iter()
            .filter(|e| {
                e.route == Route::Resolve
                    && percent_decode_str(&e.path)
                        .decode_utf8_lossy()
                        .ends_with(&format!(
                            "/resolve/{}/{}",
                            hub.commit(MODEL, "main").unwrap(),
                            f.path
                        ))
            })
            .count();
        let expected = if f.path == probe { 2 } else { 1 };
        assert_eq!(
            resolves, expected,
            "{} resolved {resolves} times upstream",
            f.path
        );
        let bytes = sent.get(&f.path).copied().unwrap_or(0);
        assert!(
            bytes >= f.size,
            "{}: {bytes} content bytes from upstream",
            f.path
        );
        assert!(
            bytes < 2 * f.size,
            "{}: {bytes} content bytes: downloaded twice?",
            f.path
        );
    }
    // ... and is now in the cache, verified, where a plain serve finds it.
    let mut cfg = config();
    cfg.caches.push(cache);
    let offline = serve(cfg).await;
    let dir = tmp.path().join("offline");
    download(
        &offline.url,
        &http(false, None),
        &model(),
        Dest::Dir(&dir),
        8,
        None,
    )
    .await
    .unwrap();
    assert_files_match(&hub, MODEL, &dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gated_files_only_for_tokens_upstream_accepts() {
    let hub = fake_hub().await;
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let mut cfg = config();
    // The server's own token has access; it must not open the repo to others.
    cfg.upstream = Some(upstream(&hub, &cache, Some(TOKEN)));
    let served = serve(cfg).await;
    let target = "/org/gated/resolve/main/weights.bin";
    let want = hub.file_bytes("org/gated", "weights.bin").unwrap();
    let bearer = |t: &str| format!("Bearer {t}");

    let anonymous = raw(served.addr, "GET", target, &[], b"").await;
    assert_eq!(
        (anonymous.status, anonymous.header("x-error-code")),
        (401, Some("GatedRepo"))
    );
    let limited = raw(
        served.addr,
        "GET",
        target,
        &[("Authorization", &bearer(LIMITED))],
        b"",
    )
    .await;
    assert_eq!(
        (limited.status, limited.header("x-error-code")),
        (403, Some("GatedRepo"))
    );

    let granted = raw(
        served.addr,
        "GET",
        target,
        &[("Authorization", &bearer(TOKEN))],
        b"",
    )
    .await;
    assert_eq!(granted.status, 200);
    assert!(granted.body == want);

    // Now cached: still refused to the others.
    for auth in [None, Some(LIMITED)] {
        let header = auth.map(bearer);
        let extra: Vec<(&str, &str)> = header
            .iter()
            .map(|h| ("Authorization", h.as_str()))
            .collect();
        let again = raw(served.addr, "GET", target, &extra, b"").await;
        assert!(
            matches!(again.status, 401 | 403),
            "cached gated file refused to {auth:?}"
        );
        assert_ne!(again.body, want);
    }
    // The server's token never reaches a client.
    for r in [&anonymous, &limited, &granted] {
        assert!(!String::from_utf8_lossy(&r.body).contains(TOKEN) || r.body == want);
        assert!(r.headers.iter().all(|(_, v)| !v.contains(TOKEN)));
    }
    // Revision info and listings work as upstream answers them.
    let info = raw(
        served.addr,
        "GET",
        "/api/models/org/gated/revision/main",
        &[],
        b"",
    )
    .await;
    assert_eq!(info.status, 200);
    let missing = raw(
        served.addr,
        "GET",
        "/api/models/org/absent/revision/main",
        &[],
        b"",
    )
    .await;
    assert_eq!(
        (missing.status, missing.header("x-error-code")),
        (404, Some("RepoNotFound"))
    );
}
