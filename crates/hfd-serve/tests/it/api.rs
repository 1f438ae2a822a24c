//! The hub API shapes and headers, checked request by request.

use std::collections::BTreeSet;

use crate::{MODEL, config, fake_hub, fill_cache, raw, serve};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[expect(
    clippy::too_many_lines,
    reason = "one served cache, every endpoint in turn: a script reads best in one piece"
)]
async fn revision_tree_paths_info_and_resolve_answer_as_the_hub() {
    let hub = fake_hub().await;
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    fill_cache(&hub, &cache).await;
    let mut cfg = config();
    cfg.caches.push(cache);
    cfg.tree_page_size = 2;
    let served = serve(cfg).await;
    let addr = served.addr;
    let commit = hub.commit(MODEL, "main").unwrap();
    let files = hub.files(MODEL);

    // Revision info: sha and siblings; with blobs=true, sizes and hashes.
    let info = raw(
        addr,
        "GET",
        "/api/models/org/model/revision/main?blobs=true",
        &[],
        b"",
    )
    .await;
    assert_eq!(info.status, 200);
    let info = info.json();
    assert_eq!(info["sha"], commit.as_str());
    assert_eq!(info["id"], MODEL);
    let siblings = info["siblings"].as_array().unwrap();
    assert_eq!(siblings.len(), files.len());
    for f in &files {
        let s = siblings
            .iter()
            .find(|s| s["rfilename"] == f.path.as_str())
            .unwrap_or_else(|| panic!("sibling {}", f.path));
        assert_eq!(s["size"], f.size);
        assert_eq!(s["blobId"], f.oid.as_str());
        assert_eq!(s["lfs"]["sha256"].as_str(), f.lfs_sha256.as_deref());
    }
    let plain = raw(addr, "GET", "/api/models/org/model", &[], b"").await;
    assert_eq!(plain.json()["sha"], commit.as_str());
    let by_commit = raw(
        addr,
        "GET",
        &format!("/api/models/org/model/revision/{commit}"),
        &[],
        b"",
    )
    .await;
    assert_eq!(by_commit.json()["sha"], commit.as_str());

    // Recursive tree, two entries a page, followed through Link headers.
    let mut target = "/api/models/org/model/tree/main?recursive=true".to_owned();
    let mut listed = Vec::new();
    for _ in 0..20 {
        let page = raw(addr, "GET", &target, &[], b"").await;
        assert_eq!(page.status, 200);
        listed.extend(page.json().as_array().unwrap().iter().cloned());
        let Some(link) = page.header("link") else {
            break;
        };
        let url = link.trim_start_matches('<').split('>').next().unwrap();
        let prefix = format!("http://{addr}");
        assert!(url.starts_with(&prefix), "absolute next link: {link}");
        assert!(link.ends_with("rel=\"next\""));
        target = url[prefix.len()..].to_owned();
    }
    let listed_files: BTreeSet<(String, u64, String)> = listed
        .iter()
        .filter(|e| e["type"] == "file")
        .map(|e| {
            (
                e["path"].as_str().unwrap().to_owned(),
                e["size"].as_u64().unwrap(),
                e["oid"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expected: BTreeSet<(String, u64, String)> = files
        .iter()
        .map(|f| (f.path.clone(), f.size, f.oid.clone()))
        .collect();
    assert_eq!(listed_files, expected);
    let dirs: Vec<&str> = listed
        .iter()
        .filter(|e| e["type"] == "directory")
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert_eq!(dirs, ["sub", "sub/dir"]);
    let lfs = listed
        .iter()
        .find(|e| e["path"] == "model.safetensors")
        .unwrap();
    assert_eq!(
        lfs["lfs"]["oid"].as_str(),
        hub.file_info(MODEL, "model.safetensors")
            .unwrap()
            .lfs_sha256
            .as_deref()
    );
    let sub = raw(addr, "GET", "/api/models/org/model/tree/main/sub", &[], b"").await;
    assert_eq!(sub.json()[0]["path"], "sub/dir");
    let missing = raw(
        addr,
        "GET",
        "/api/models/org/model/tree/main/nope",
        &[],
        b"",
    )
    .await;
    assert_eq!(
        (missing.status, missing.header("x-error-code")),
        (404, Some("EntryNotFound"))
    );

    // paths-info, form-encoded as huggingface_hub sends it.
    let pi = raw(
        addr,
        "POST",
        "/api/models/org/model/paths-info/main",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        b"paths=config.json&paths=sub&paths=absent&expand=false",
    )
    .await;
    assert_eq!(pi.status, 200);
    let pi = pi.json();
    let kinds: Vec<(&str, &str)> = pi
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["path"].as_str().unwrap(), e["type"].as_str().unwrap()))
        .collect();
    assert_eq!(kinds, [("config.json", "file"), ("sub", "directory")]);

    // resolve: HEAD headers of an LFS file.
    let info = hub.file_info(MODEL, "model.safetensors").unwrap();
    let bytes = hub.file_bytes(MODEL, "model.safetensors").unwrap();
    let size = bytes.len() as u64;
    let head = raw(
        addr,
        "HEAD",
        "/org/model/resolve/main/model.safetensors",
        &[],
        b"",
    )
    .await;
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    let sha = info.lfs_sha256.clone().unwrap();
    assert_eq!(head.header("x-repo-commit"), Some(commit.as_str()));
    assert_eq!(head.header("etag"), Some(format!("\"{sha}\"").as_str()));
    assert_eq!(
        head.header("x-linked-etag"),
        Some(format!("\"{sha}\"").as_str())
    );
    assert_eq!(
        head.header("x-linked-size"),
        Some(size.to_string().as_str())
    );
    assert_eq!(
        head.header("content-length"),
        Some(size.to_string().as_str())
    );
    assert_eq!(head.header("accept-ranges"), Some("bytes"));
    // A regular file: its git id as ETag, no X-Linked-*.
    let cfg_info = hub.file_info(MODEL, "config.json").unwrap();
    let get = raw(
        addr,
        "GET",
        &format!("/org/model/resolve/{commit}/config.json"),
        &[],
        b"",
    )
    .await;
    assert_eq!(get.status, 200);
    assert_eq!(
        get.header("etag"),
        Some(format!("\"{}\"", cfg_info.oid).as_str())
    );
    assert_eq!(get.header("x-linked-etag"), None);
    assert_eq!(get.body, hub.file_bytes(MODEL, "config.json").unwrap());

    // Ranges: exact Content-Range, exact bytes; suffix; unsatisfiable.
    let r = raw(
        addr,
        "GET",
        "/org/model/resolve/main/model.safetensors",
        &[("Range", "bytes=100-199")],
        b"",
    )
    .await;
    assert_eq!(r.status, 206);
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes 100-199/{size}").as_str())
    );
    assert_eq!(r.header("content-length"), Some("100"));
    assert_eq!(r.body, bytes[100..200]);
    let r = raw(
        addr,
        "GET",
        "/org/model/resolve/main/model.safetensors",
        &[("Range", "bytes=-10")],
        b"",
    )
    .await;
    assert_eq!(r.status, 206);
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes {}-{}/{size}", size - 10, size - 1).as_str())
    );
    assert_eq!(r.body, bytes[bytes.len() - 10..]);
    let r = raw(
        addr,
        "GET",
        "/org/model/resolve/main/model.safetensors",
        &[("Range", &format!("bytes={size}-"))],
        b"",
    )
    .await;
    assert_eq!(r.status, 416);
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes */{size}").as_str())
    );
    assert!(r.body.is_empty());
    let r = raw(
        addr,
        "GET",
        "/org/model/resolve/main/model.safetensors",
        &[("Range", "bytes=0-0,5-9")],
        b"",
    )
    .await;
    assert_eq!(
        (r.status, r.body.len() as u64),
        (200, size),
        "several ranges: the whole file"
    );

    // The hub's error codes.
    for (target, status, code) in [
        (
            "/api/models/org/absent/revision/main",
            404,
            Some("RepoNotFound"),
        ),
        (
            "/org/absent/resolve/main/config.json",
            404,
            Some("RepoNotFound"),
        ),
        (
            "/api/models/org/model/revision/nobranch",
            404,
            Some("RevisionNotFound"),
        ),
        (
            "/org/model/resolve/nobranch/config.json",
            404,
            Some("RevisionNotFound"),
        ),
        (
            "/org/model/resolve/main/absent.txt",
            404,
            Some("EntryNotFound"),
        ),
        (
            "/datasets/org/model/resolve/main/config.json",
            404,
            Some("RepoNotFound"),
        ),
        ("/api/whoami-v2", 404, None),
    ] {
        let r = raw(addr, "GET", target, &[], b"").await;
        assert_eq!(
            (r.status, r.header("x-error-code")),
            (status, code),
            "{target}"
        );
        assert!(r.header("x-error-message").is_some(), "{target}");
    }
    let r = raw(addr, "GET", "/org/model/resolve/main/absent.txt", &[], b"").await;
    assert_eq!(r.header("x-repo-commit"), Some(commit.as_str()));

    // The request log: one record per request, with status and body bytes.
    let records = served.records();
    let range_rec = records
        .iter()
        .find(|r| r.status == 206 && r.bytes == 100)
        .expect("the 100-byte range is logged");
    assert_eq!(range_rec.method, "GET");
    assert!(
        range_rec
            .to_string()
            .contains("/org/model/resolve/main/model.safetensors")
    );
    assert!(
        records
            .iter()
            .any(|r| r.method == "HEAD" && r.status == 200 && r.bytes == 0)
    );
}
