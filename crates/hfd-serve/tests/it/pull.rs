//! Pull-through: misses fetched from the upstream once, however many
//! clients ask; gated repos only for tokens the upstream accepts.

use std::collections::BTreeMap;

use hfd_serve::UpstreamConfig;
use hfd_testkit::{FakeHub, Fault, FaultKind, FaultTarget, Origin, Route};
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

/// Sends a GET for `target` and reads the header block and the first body
/// bytes; the rest is left in the stream.
async fn start_get(
    addr: std::net::SocketAddr,
    target: &str,
) -> (tokio::net::TcpStream, String, Vec<u8>) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    // Bounded: the answer starts within 30 s or the test fails.
    let split = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        loop {
            let n = stream.read(&mut chunk).await.unwrap();
            assert!(n > 0, "the server closed before the first body bytes");
            buf.extend_from_slice(&chunk[..n]);
            if let Some(split) = buf.windows(4).position(|w| w == b"\r\n\r\n")
                && buf.len() > split + 4
            {
                return split;
            }
        }
    })
    .await
    .expect("first body bytes within 30 s");
    let head = String::from_utf8_lossy(&buf[..split]).into_owned();
    let body = buf[split + 4..].to_vec();
    (stream, head, body)
}

/// Reads the rest of an answer (bounded by 60 s).
async fn finish_get(stream: &mut tokio::net::TcpStream, body: &mut Vec<u8>) {
    use tokio::io::AsyncReadExt as _;
    tokio::time::timeout(std::time::Duration::from_mins(1), async {
        // A broken answer ends with a reset or a close, both end the read.
        let _ = stream.read_to_end(body).await;
    })
    .await
    .expect("answer ends within 60 s");
}

/// A fake hub and a serve that pulls from it into an empty cache.
async fn pulling_mirror() -> (
    FakeHub,
    tempfile::TempDir,
    std::path::PathBuf,
    crate::Served,
) {
    let hub = fake_hub().await;
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let mut cfg = config();
    cfg.upstream = Some(upstream(&hub, &cache, None));
    let served = serve(cfg).await;
    (hub, tmp, cache, served)
}

/// A big file is answered while the mirror still pulls it: the client has
/// its first bytes while every upstream connection is stalled (so the
/// file cannot be in the cache yet), and then gets all of it, verified.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_pulled_file_is_served_while_its_bytes_arrive() {
    let (hub, _tmp, cache, served) = pulling_mirror().await;
    let file = hub.file_info(MODEL, "model.safetensors").unwrap();
    let want = hub.file_bytes(MODEL, "model.safetensors").unwrap();
    // Every CDN answer for it stops for 3 s after its first 512 KiB.
    hub.faults().inject(
        Fault::new(FaultKind::StallAfterBytes {
            bytes: 512 * 1024,
            duration: std::time::Duration::from_secs(3),
        })
        .on(FaultTarget::Cdn)
        .path_contains(file.etag())
        .always(),
    );

    let (mut stream, head, mut body) =
        start_get(served.addr, "/org/model/resolve/main/model.safetensors").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains(&format!("content-length: {}", want.len())),
        "{head}"
    );
    let blob = cache.join("models--org--model/blobs").join(file.etag());
    assert!(
        !blob.exists(),
        "the first bytes came before the file was in the cache"
    );
    assert!(body.len() < want.len());
    finish_get(&mut stream, &mut body).await;
    assert!(body == want, "the streamed answer is the file");
    assert!(blob.exists(), "the pull completed into the cache");
}

/// A pull whose bytes fail their hash restarts from zero; an answer that
/// was following it breaks off short, never ends complete with bytes that
/// are not the file's. The next request gets the verified file.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_answer_following_a_pull_that_fails_its_hash_breaks_off() {
    let (hub, _tmp, _cache, served) = pulling_mirror().await;
    let file = hub.file_info(MODEL, "model.safetensors").unwrap();
    let want = hub.file_bytes(MODEL, "model.safetensors").unwrap();
    // The first CDN answer for it carries wrong bytes.
    hub.faults().inject(
        Fault::new(FaultKind::CorruptBody)
            .on(FaultTarget::Cdn)
            .path_contains(file.etag())
            .times(1),
    );
    let (mut stream, head, mut body) =
        start_get(served.addr, "/org/model/resolve/main/model.safetensors").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    finish_get(&mut stream, &mut body).await;
    assert!(
        body.len() < want.len(),
        "an answer that followed the bad attempt is cut short ({} of {} bytes)",
        body.len(),
        want.len()
    );

    let again = raw(
        served.addr,
        "GET",
        "/org/model/resolve/main/model.safetensors",
        &[],
        b"",
    )
    .await;
    assert_eq!(again.status, 200);
    assert!(again.body == want, "the healed file is served whole");
}
