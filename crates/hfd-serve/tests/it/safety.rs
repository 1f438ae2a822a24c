//! Nothing outside the served folders is reachable: traversal in any
//! encoding, symlinks out of the cache or into another repo, and writes.

use std::os::unix::fs::symlink;
use std::path::Path;

use hfd_serve::LocalSource;

use crate::{Dest, MODEL, config, download, fake_hub, fill_cache, http, model, raw, serve};

const SECRET: &[u8] = b"TOP-SECRET-BYTES-never-served";

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

async fn assert_refused(addr: std::net::SocketAddr, target: &str) {
    for method in ["GET", "HEAD"] {
        let r = raw(addr, method, target, &[], b"").await;
        assert!(
            r.status == 400 || r.status == 404,
            "{method} {target} answered {}",
            r.status
        );
        assert!(!contains(&r.body, SECRET), "{target} leaked the secret");
        assert!(
            r.headers
                .iter()
                .all(|(_, v)| !contains(v.as_bytes(), SECRET)),
            "{target} leaked in a header"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[expect(
    clippy::too_many_lines,
    reason = "the hostile cache is built in place, then every attack is listed"
)]
async fn traversal_and_symlink_escapes_never_leak_a_byte() {
    let hub = fake_hub().await;
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    fill_cache(&hub, &cache).await;
    let secret = tmp.path().join("secret.txt");
    std::fs::write(&secret, SECRET).unwrap();
    std::fs::create_dir(tmp.path().join("outside")).unwrap();
    std::fs::write(tmp.path().join("outside/secret.txt"), SECRET).unwrap();

    let commit = hub.commit(MODEL, "main").unwrap();
    let repo_dir = cache.join("models--org--model");
    let snap = repo_dir.join("snapshots").join(&commit);
    // Symlinks a hostile cache could hold.
    symlink(&secret, snap.join("abs-link.txt")).unwrap();
    symlink("../../../../secret.txt", snap.join("rel-link.txt")).unwrap();
    symlink(tmp.path().join("outside"), snap.join("dir-link")).unwrap();
    let fake_etag = "f".repeat(64);
    symlink(&secret, repo_dir.join("blobs").join(&fake_etag)).unwrap();
    symlink(
        format!("../../blobs/{fake_etag}"),
        snap.join("blob-link.bin"),
    )
    .unwrap();
    // A blob of another repo folder (named by its etag) is not this repo's.
    let other = cache.join("models--org--other/blobs");
    std::fs::create_dir_all(&other).unwrap();
    let other_etag = "e".repeat(40);
    std::fs::write(other.join(&other_etag), SECRET).unwrap();
    symlink(
        format!("../../../models--org--other/blobs/{other_etag}"),
        snap.join("cross-repo.txt"),
    )
    .unwrap();
    // A ref pointing outside.
    std::fs::write(tmp.path().join("evil-ref"), &commit).unwrap();
    symlink(tmp.path().join("evil-ref"), repo_dir.join("refs/evil")).unwrap();

    let mut cfg = config();
    cfg.caches.push(cache.clone());
    let served = serve(cfg).await;
    let addr = served.addr;

    for target in [
        "/org/model/resolve/main/../../../../secret.txt",
        "/org/model/resolve/main/..%2F..%2F..%2F..%2Fsecret.txt",
        "/org/model/resolve/main/%2e%2e/%2e%2e/%2e%2e/%2e%2e/secret.txt",
        "/org/model/resolve/main/%2E%2E%2F%2E%2E%2F%2E%2E%2F%2E%2E%2Fsecret.txt",
        "/org/model/resolve/main/..%5C..%5C..%5C..%5Csecret.txt",
        "/org/model/resolve/main/%2Fetc%2Fpasswd",
        "/org/model/resolve/main//etc/passwd",
        &format!("/org/model/resolve/main/{}", secret.display()),
        "/org/model/resolve/main/%252e%252e/secret.txt",
        "/org/model/resolve/main/secret.txt%00.json",
        "/org/model/resolve/..%2F..%2F..%2F..%2Fsecret.txt/config.json",
        "/org/model/resolve/../../../../secret.txt/config.json",
        "/org/..%2F..%2Fsecret.txt/resolve/main/config.json",
        "/../../secret.txt",
        "/%2e%2e/%2e%2e/secret.txt",
        "/models--org--model/blobs/ffff",
        "/api/models/org/model/tree/main/..%2F..%2F..",
        "/api/models/org/model/tree/..%2F..%2F..%2Fsecret.txt",
        "/api/models/org/model/revision/..%2F..%2F..%2F..%2Fevil-ref",
        "/org/model/resolve/main/abs-link.txt",
        "/org/model/resolve/main/rel-link.txt",
        "/org/model/resolve/main/dir-link/secret.txt",
        "/org/model/resolve/main/blob-link.bin",
        "/org/model/resolve/main/cross-repo.txt",
        "/org/model/resolve/evil/config.json",
        "/org/other/resolve/main/config.json",
    ] {
        assert_refused(addr, target).await;
    }

    // The listing leaves the escaping entries out too.
    let tree = raw(
        addr,
        "GET",
        "/api/models/org/model/tree/main?recursive=true",
        &[],
        b"",
    )
    .await;
    let paths: Vec<String> = tree
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap().to_owned())
        .collect();
    for bad in [
        "abs-link.txt",
        "rel-link.txt",
        "dir-link",
        "dir-link/secret.txt",
        "blob-link.bin",
        "cross-repo.txt",
    ] {
        assert!(!paths.iter().any(|p| p == bad), "{bad} listed: {paths:?}");
    }
    // ... and the real files are still served.
    let ok = raw(addr, "GET", "/org/model/resolve/main/config.json", &[], b"").await;
    assert_eq!(ok.status, 200);

    // Read-only: no method writes.
    for method in ["PUT", "DELETE", "POST", "PATCH"] {
        let r = raw(
            addr,
            method,
            "/org/model/resolve/main/config.json",
            &[],
            b"x",
        )
        .await;
        assert_eq!(r.status, 405, "{method}");
    }
    assert!(
        served
            .records()
            .iter()
            .all(|r| !(r.status == 200 && r.bytes == SECRET.len() as u64))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_dir_serves_no_symlink_and_no_state_file() {
    let hub = fake_hub().await;
    let tmp = tempfile::tempdir().unwrap();
    let local = tmp.path().join("local");
    download(
        hub.endpoint(),
        &http(false, None),
        &model(),
        Dest::Dir(&local),
        4,
        None,
    )
    .await
    .unwrap();
    let secret = tmp.path().join("secret.txt");
    std::fs::write(&secret, SECRET).unwrap();
    symlink(&secret, local.join("link.txt")).unwrap();
    symlink(tmp.path(), local.join("up")).unwrap();
    let mut cfg = config();
    cfg.local_dirs
        .push(LocalSource::open(&format!("{MODEL}={}", local.display())).unwrap());
    let served = serve(cfg).await;
    for target in [
        "/org/model/resolve/main/link.txt",
        "/org/model/resolve/main/up/secret.txt",
        "/org/model/resolve/main/.cache/huggingface/download/config.json.metadata",
        "/org/model/resolve/main/.cache%2Fhuggingface%2Fdownload%2Fconfig.json.metadata",
        "/org/model/resolve/main/../secret.txt",
    ] {
        assert_refused(served.addr, target).await;
    }
    let ok = raw(
        served.addr,
        "GET",
        "/org/model/resolve/main/config.json",
        &[],
        b"",
    )
    .await;
    assert_eq!(ok.status, 200);
    assert!(Path::new(&local).join("config.json").exists());
}
