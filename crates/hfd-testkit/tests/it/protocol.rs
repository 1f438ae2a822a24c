//! Protocol shapes: repo info, tree pagination, paths-info, resolve, ranges, errors.

use std::collections::BTreeSet;

use hfd_testkit::{CommitChange, FakeHub, Origin, RepoFixture, Route, Transport};
use serde_json::Value;

use crate::client::{Conn, Proto, at_cdn, at_hub, split_url};
use crate::{GOOD, LIMITED, hub, hub_with};

fn json(body: &[u8]) -> Value {
    serde_json::from_slice(body).expect("JSON body")
}

#[tokio::test]
async fn repo_info_at_revisions_and_siblings() {
    let hub = hub().await;
    let main = hub.commit("org/model", "main").unwrap();
    let pr = hub.commit("org/model", "refs/pr/1").unwrap();
    assert_ne!(main, pr);
    assert_eq!(hub.commit("org/model", "v1.0").unwrap(), main);

    let r = at_hub(&hub, "GET", "/api/models/org/model", &[]).await;
    assert_eq!(r.status, 200);
    let v = json(&r.body);
    assert_eq!(v["id"], "org/model");
    assert_eq!(v["sha"], main.as_str());
    assert_eq!(v["private"], false);
    assert_eq!(v["gated"], false);
    assert!(v["lastModified"].as_str().unwrap().ends_with('Z'));
    let names: BTreeSet<&str> = v["siblings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["rfilename"].as_str().unwrap())
        .collect();
    let expected: BTreeSet<String> = hub.files("org/model").into_iter().map(|f| f.path).collect();
    assert_eq!(names, expected.iter().map(String::as_str).collect());
    assert!(
        v["siblings"][0].get("size").is_none(),
        "no sizes without blobs=true"
    );

    let r = at_hub(
        &hub,
        "GET",
        "/api/models/org/model/revision/refs%2Fpr%2F1?blobs=true",
        &[],
    )
    .await;
    let v = json(&r.body);
    assert_eq!(v["sha"], pr.as_str());
    let siblings = v["siblings"].as_array().unwrap();
    assert!(siblings.iter().any(|s| s["rfilename"] == "PR_1.md"));
    for s in siblings {
        let info = hub
            .files_at("org/model", "refs/pr/1")
            .unwrap()
            .into_iter()
            .find(|f| f.path == s["rfilename"].as_str().unwrap())
            .unwrap();
        assert_eq!(s["size"], info.size);
        assert_eq!(s["blobId"], info.oid.as_str());
        match &info.lfs_sha256 {
            Some(sha) => {
                assert_eq!(s["lfs"]["sha256"], sha.as_str());
                assert_eq!(s["lfs"]["size"], info.size);
                assert!(s["lfs"]["pointerSize"].as_u64().unwrap() > 100);
            }
            None => assert!(s.get("lfs").is_none()),
        }
    }
    // Dataset and space types, legacy ids, gated flag, wrong type.
    let r = at_hub(&hub, "GET", "/api/datasets/org/data/revision/main", &[]).await;
    assert_eq!(r.status, 200);
    let r = at_hub(&hub, "GET", "/api/spaces/org/app", &[]).await;
    assert_eq!(json(&r.body)["sdk"], "gradio");
    let r = at_hub(&hub, "GET", "/api/models/legacy/revision/main", &[]).await;
    assert_eq!(json(&r.body)["id"], "legacy");
    let r = at_hub(&hub, "GET", "/api/models/org/gated", &[]).await;
    assert_eq!(json(&r.body)["gated"], "auto");
    let r = at_hub(&hub, "GET", "/api/datasets/org/model", &[]).await;
    assert_eq!(
        (r.status, r.header("x-error-code")),
        (401, Some("RepoNotFound"))
    );
    // Refs.
    let r = at_hub(&hub, "GET", "/api/models/org/model/refs?include_prs=1", &[]).await;
    let v = json(&r.body);
    assert_eq!(v["branches"][0]["targetCommit"], main.as_str());
    assert_eq!(v["tags"][0]["ref"], "refs/tags/v1.0");
    assert_eq!(v["pullRequests"][0]["ref"], "refs/pr/1");
}

/// Follows `Link: rel="next"` and returns every entry plus the number of pages.
async fn list_tree(hub: &FakeHub, first: &str) -> (Vec<Value>, usize) {
    let mut conn = Conn::open(hub, Origin::Hub, Proto::H1).await;
    let mut url = first.to_owned();
    let mut entries = Vec::new();
    for page in 1..=100 {
        let r = conn.send("GET", &url, &[]).await;
        assert_eq!(r.status, 200, "{url}");
        entries.extend(json(&r.body).as_array().unwrap().iter().cloned());
        match r.header("link") {
            None => return (entries, page),
            Some(link) => {
                let Some((next, _)) = link
                    .strip_prefix('<')
                    .and_then(|l| l.split_once(">; rel=\"next\""))
                else {
                    panic!("bad Link {link}");
                };
                assert!(next.starts_with(hub.endpoint()), "absolute next URL");
                assert!(next.contains("cursor="));
                let (origin, path) = split_url(hub, next);
                assert_eq!(origin, Origin::Hub);
                url = path;
            }
        }
    }
    panic!("pagination did not end within 100 pages");
}

#[tokio::test]
async fn tree_is_paginated_and_matches_fixture() {
    let hub = FakeHub::builder()
        .repo(RepoFixture::synthetic_dataset("org/data", 25, 4))
        .tree_page_size(4)
        .start()
        .await
        .unwrap();
    let sha = hub.commit("org/data", "main").unwrap();
    let (entries, pages) = list_tree(
        &hub,
        &format!("/api/datasets/org/data/tree/{sha}?recursive=true&expand=false"),
    )
    .await;
    let files = hub.files("org/data");
    let file_entries: Vec<&Value> = entries.iter().filter(|e| e["type"] == "file").collect();
    let dirs: BTreeSet<&str> = entries
        .iter()
        .filter(|e| e["type"] == "directory")
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert_eq!(file_entries.len(), files.len());
    assert_eq!(pages, entries.len().div_ceil(4));
    assert!(dirs.contains("data") && dirs.contains("data/train") && dirs.contains("odd names"));
    for f in &files {
        let e = file_entries
            .iter()
            .find(|e| e["path"] == f.path.as_str())
            .unwrap_or_else(|| panic!("{} listed", f.path));
        assert_eq!(e["oid"], f.oid.as_str());
        assert_eq!(e["size"], f.size);
        match &f.lfs_sha256 {
            Some(sha) => {
                assert_eq!(e["lfs"]["oid"], sha.as_str());
                assert_eq!(e["lfs"]["size"], f.size);
            }
            None => assert!(e.get("lfs").is_none()),
        }
    }
    // Regular-file oid is the git blob sha1 of the content.
    let f = files.iter().find(|f| !f.is_lfs()).unwrap();
    assert_eq!(
        f.oid,
        hfd_testkit::git_blob_sha1(&hub.file_bytes("org/data", &f.path).unwrap())
    );

    // Non-recursive root listing: one level, directories included.
    let (root, _) = list_tree(&hub, "/api/datasets/org/data/tree/main").await;
    assert!(
        root.iter()
            .all(|e| !e["path"].as_str().unwrap().contains('/'))
    );
    assert!(
        root.iter()
            .any(|e| e["type"] == "directory" && e["path"] == "data")
    );
    // Sub-path encoded as one segment; `True` spelling accepted.
    let (sub, _) = list_tree(
        &hub,
        "/api/datasets/org/data/tree/main/data%2Ftrain?recursive=True",
    )
    .await;
    assert!(!sub.is_empty());
    assert!(
        sub.iter()
            .all(|e| e["path"].as_str().unwrap().starts_with("data/train/"))
    );
    // expand=true adds lastCommit.
    let r = at_hub(
        &hub,
        "GET",
        "/api/datasets/org/data/tree/main?expand=true",
        &[],
    )
    .await;
    assert_eq!(json(&r.body)[0]["lastCommit"]["id"], sha.as_str());
    // Missing sub-path.
    let r = at_hub(&hub, "GET", "/api/datasets/org/data/tree/main/nope", &[]).await;
    assert_eq!(
        (r.status, r.header("x-error-code")),
        (404, Some("EntryNotFound"))
    );
}

#[tokio::test]
async fn paths_info_returns_existing_paths_only() {
    let hub = hub().await;
    let mut c = Conn::open(&hub, Origin::Hub, Proto::H1).await;
    let r = c
        .send_body(
            "POST",
            "/api/models/org/model/paths-info/main",
            &[("content-type", "application/x-www-form-urlencoded")],
            "paths=config.json&paths=model.safetensors&paths=missing.txt&paths=sub%2Fdir&expand=false",
        )
        .await;
    assert_eq!(r.status, 200);
    let v = json(&r.body);
    let arr = v.as_array().unwrap();
    assert_eq!(arr.len(), 3);
    let lfs = arr
        .iter()
        .find(|e| e["path"] == "model.safetensors")
        .unwrap();
    assert_eq!(
        lfs["lfs"]["oid"],
        hub.file_info("org/model", "model.safetensors")
            .unwrap()
            .lfs_sha256
            .unwrap()
            .as_str()
    );
    assert!(
        arr.iter()
            .any(|e| e["path"] == "sub/dir" && e["type"] == "directory")
    );
}

#[tokio::test]
async fn regular_files_redirect_to_resolve_cache_with_ranges() {
    let hub = hub().await;
    let info = hub.file_info("org/model", "config.json").unwrap();
    let content = hub.file_bytes("org/model", "config.json").unwrap();
    let sha = hub.commit("org/model", "main").unwrap();
    let mut c = Conn::open(&hub, Origin::Hub, Proto::H1).await;
    let r = c
        .send("HEAD", "/org/model/resolve/main/config.json", &[])
        .await;
    assert_eq!(r.status, 307);
    assert_eq!(r.header("x-repo-commit"), Some(sha.as_str()));
    assert!(r.header("x-linked-size").is_none());
    let loc = r.header("location").unwrap().to_owned();
    assert!(
        loc.starts_with(&format!(
            "/api/resolve-cache/models/org/model/{sha}/config.json?"
        )),
        "{loc}"
    );
    assert!(loc.ends_with(&format!("&etag=%22{}%22", info.oid)), "{loc}");
    assert!(r.header("x-request-id").is_some());

    let r = c.send("HEAD", &loc, &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-repo-commit"), Some(sha.as_str()));
    assert_eq!(r.header("etag"), Some(format!("\"{}\"", info.oid).as_str()));
    assert_eq!(
        r.header("content-length"),
        Some(content.len().to_string().as_str())
    );
    assert_eq!(r.header("accept-ranges"), Some("bytes"));
    assert!(r.body.is_empty());

    let r = c.send("GET", &loc, &[("accept-encoding", "gzip")]).await;
    assert_eq!((r.status, &r.body), (200, &content));
    assert!(r.header("content-encoding").is_none(), "always identity");

    let r = c.send("GET", &loc, &[("range", "bytes=2-5")]).await;
    assert_eq!(r.status, 206);
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes 2-5/{}", content.len()).as_str())
    );
    assert_eq!(r.body, content[2..6]);
    let r = c.send("GET", &loc, &[("range", "bytes=-3")]).await;
    assert_eq!(r.body, content[content.len() - 3..]);
    let r = c
        .send(
            "GET",
            &loc,
            &[("range", &format!("bytes={}-", content.len()))],
        )
        .await;
    assert_eq!(r.status, 416);
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes */{}", content.len()).as_str())
    );
    assert_eq!(
        hub.log().distinct_connections(Origin::Hub),
        1,
        "keep-alive reused"
    );
}

#[tokio::test]
async fn lfs_files_redirect_to_the_cdn() {
    let hub = hub().await;
    let info = hub.file_info("org/model", "model.safetensors").unwrap();
    let content = hub.file_bytes("org/model", "model.safetensors").unwrap();
    let sha256 = info.lfs_sha256.clone().unwrap();
    let r = at_hub(
        &hub,
        "HEAD",
        "/org/model/resolve/main/model.safetensors",
        &[],
    )
    .await;
    assert_eq!(r.status, 302);
    assert_eq!(
        r.header("x-linked-size"),
        Some(info.size.to_string().as_str())
    );
    assert_eq!(
        r.header("x-linked-etag"),
        Some(format!("\"{sha256}\"").as_str())
    );
    assert_eq!(
        r.header("x-repo-commit"),
        Some(hub.commit("org/model", "main").unwrap().as_str())
    );
    let redirect_len: u64 = r.header("content-length").unwrap().parse().unwrap();
    assert!(
        redirect_len > 0 && redirect_len != info.size,
        "redirect body has its own length"
    );
    assert_ne!(
        r.header("etag"),
        r.header("x-linked-etag"),
        "X-Linked-Etag must win"
    );
    let loc = r.header("location").unwrap().to_owned();
    assert!(loc.starts_with(hub.cdn_endpoint()));
    for part in ["X-Amz-Date=", "X-Amz-Expires=3600", "X-Amz-Signature="] {
        assert!(loc.contains(part), "{part} in {loc}");
    }
    let (origin, path) = split_url(&hub, &loc);
    assert_eq!(origin, Origin::Cdn);

    let mut cdn = Conn::open(&hub, Origin::Cdn, Proto::H1).await;
    let r = cdn.send("HEAD", &path, &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-length"),
        Some(info.size.to_string().as_str())
    );
    assert_eq!(r.header("etag"), Some(format!("\"{sha256}\"").as_str()));
    let r = cdn.send("GET", &path, &[]).await;
    assert!(r.body == content, "whole body matches");
    let r = cdn
        .send("GET", &path, &[("range", "bytes=100000-200000")])
        .await;
    assert_eq!(r.status, 206);
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes 100000-200000/{}", info.size).as_str())
    );
    assert!(r.body == content[100_000..=200_000]);

    // A tampered signature is refused.
    let bad = path.replace("X-Amz-Signature=", "X-Amz-Signature=0");
    let r = cdn.send("GET", &bad, &[]).await;
    assert_eq!(r.status, 403);
    assert!(String::from_utf8_lossy(&r.body).contains("SignatureDoesNotMatch"));
    // Authorization sent to the CDN is logged (and tolerated by default).
    let r = cdn
        .send(
            "GET",
            &path,
            &[("authorization", "Bearer hf_good"), ("range", "bytes=0-0")],
        )
        .await;
    assert_eq!(r.status, 206);
    assert_eq!(hub.log().cdn_requests_with_authorization(), 1);
}

#[tokio::test]
async fn strict_cdn_rejects_authorization() {
    let hub = FakeHub::builder()
        .repo(RepoFixture::model("o/m").lfs_file("w.bin", 1000, 1))
        .strict_cdn(true)
        .start()
        .await
        .unwrap();
    let r = at_hub(&hub, "HEAD", "/o/m/resolve/main/w.bin", &[]).await;
    let (_, path) = split_url(&hub, r.header("location").unwrap());
    let r = at_cdn(&hub, "GET", &path, &[("authorization", "Bearer x")]).await;
    assert_eq!(r.status, 400);
    let r = at_cdn(&hub, "GET", &path, &[]).await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn awkward_paths_and_revisions_are_decoded() {
    let hub = hub().await;
    for (encoded, path) in [
        (
            "odd%20names/my%20file%2B1%23%3F.txt",
            "odd names/my file+1#?.txt",
        ),
        ("a%20b%2B%23.bin", "a b+#.bin"),
        ("donn%C3%A9es/%C3%BC.txt", "données/ü.txt"),
        (
            "100%25/%E6%B7%B1%E3%81%84/%E6%96%87%E4%BB%B6.json",
            "100%/深い/文件.json",
        ),
    ] {
        let mut c = Conn::open(&hub, Origin::Hub, Proto::H1).await;
        let r = c
            .send(
                "GET",
                &format!("/datasets/org/data/resolve/main/{encoded}"),
                &[],
            )
            .await;
        assert_eq!(r.status, 307, "{path}");
        let r = c.send("GET", r.header("location").unwrap(), &[]).await;
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.body, hub.file_bytes("org/data", path).unwrap(), "{path}");
    }
    // refs/pr/1 encoded as one segment reaches the PR commit.
    let r = at_hub(
        &hub,
        "HEAD",
        "/org/model/resolve/refs%2Fpr%2F1/PR_1.md",
        &[],
    )
    .await;
    assert_eq!(r.status, 307);
    assert_eq!(
        r.header("x-repo-commit"),
        Some(hub.commit("org/model", "refs/pr/1").unwrap().as_str())
    );
    // Space resolve prefix.
    let r = at_hub(&hub, "HEAD", "/spaces/org/app/resolve/main/app.py", &[]).await;
    assert_eq!(r.status, 307);
    // Legacy single-segment id.
    let r = at_hub(&hub, "HEAD", "/legacy/resolve/main/README.md", &[]).await;
    assert_eq!(r.status, 307);
}

fn code(r: &crate::client::Resp) -> (u16, Option<&str>) {
    (r.status, r.header("x-error-code"))
}

const GOOD_AUTH: &str = "Bearer hf_good";
const LIMITED_AUTH: &str = "Bearer hf_limited";

/// One hub request and the status and `X-Error-Code` it must get.
struct Expect {
    case: &'static str,
    method: &'static str,
    path: &'static str,
    authorization: Option<&'static str>,
    answer: (u16, Option<&'static str>),
}

/// Sends every case on its own connection; a failure names its case.
async fn expect_answers(hub: &FakeHub, cases: &[Expect]) {
    for c in cases {
        let auth = c.authorization.map(|a| [("authorization", a)]);
        let headers: &[(&str, &str)] = auth.as_ref().map_or(&[], |h| h.as_slice());
        let r = at_hub(hub, c.method, c.path, headers).await;
        assert_eq!(code(&r), c.answer, "{}: {} {}", c.case, c.method, c.path);
    }
}

const fn expect(
    case: &'static str,
    method: &'static str,
    path: &'static str,
    authorization: Option<&'static str>,
    answer: (u16, Option<&'static str>),
) -> Expect {
    Expect {
        case,
        method,
        path,
        authorization,
        answer,
    }
}

#[tokio::test]
async fn error_codes_match_the_hub() {
    let hub = hub().await;
    let (good, limited) = (Some(GOOD_AUTH), Some(LIMITED_AUTH));
    let not_found = Some("RepoNotFound");
    let gated = Some("GatedRepo");
    let resolve_gated = "/org/gated/resolve/main/w.bin";
    #[rustfmt::skip]
    let cases = [
        // Unknown repo: 401 anonymous, 404 with a token.
        expect("unknown, anonymous", "GET", "/api/models/org/missing", None, (401, not_found)),
        expect("unknown, token", "HEAD", "/org/missing/resolve/main/x", good, (404, not_found)),
        // Private: hidden without the right token.
        expect("private, anonymous", "HEAD", "/org/private/resolve/main/config.json", None, (401, not_found)),
        expect("private, limited", "GET", "/api/models/org/private/tree/main", limited, (404, not_found)),
        // Gated: listing is public, files need access.
        expect("gated listing", "GET", "/api/models/org/gated/tree/main", None, (200, None)),
        expect("gated file, anonymous", "HEAD", resolve_gated, None, (401, gated)),
        expect("gated file, limited", "HEAD", resolve_gated, limited, (403, gated)),
        expect("gated file, good", "HEAD", resolve_gated, good, (302, None)),
    ];
    expect_answers(&hub, &cases).await;
    // Private with the right token: served directly (case A).
    let good = [("authorization", GOOD_AUTH)];
    let r = at_hub(&hub, "GET", "/org/private/resolve/main/config.json", &good).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.body,
        hub.file_bytes("org/private", "config.json").unwrap()
    );
    assert_eq!(
        r.header("x-repo-commit"),
        Some(hub.commit("org/private", "main").unwrap().as_str())
    );
    let r = at_hub(&hub, "GET", "/api/models/org/private", &good).await;
    assert_eq!(json(&r.body)["private"], true);
    assert_eq!(hub.log().count(|e| e.has_authorization), 6);
}

#[tokio::test]
async fn revision_entry_and_token_errors() {
    let hub = hub().await;
    let revision = Some("RevisionNotFound");
    #[rustfmt::skip]
    let cases = [
        expect("resolve, unknown revision", "HEAD", "/org/model/resolve/nope/config.json", None, (404, revision)),
        expect("revision info, unknown revision", "GET", "/api/models/org/model/revision/nope", None, (404, revision)),
        expect("whoami, anonymous", "GET", "/api/whoami-v2", None, (401, None)),
    ];
    expect_answers(&hub, &cases).await;
    let r = at_hub(&hub, "HEAD", "/org/model/resolve/main/missing.txt", &[]).await;
    assert_eq!(code(&r), (404, Some("EntryNotFound")));
    assert_eq!(
        r.header("x-repo-commit"),
        Some(hub.commit("org/model", "main").unwrap().as_str())
    );
    // Invalid token, on any hub route.
    let bad = [("authorization", "Bearer hf_nope")];
    let r = at_hub(&hub, "GET", "/api/models/org/model", &bad).await;
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("x-error-message"),
        Some("Invalid credentials in Authorization header")
    );
    // whoami-v2.
    let r = at_hub(
        &hub,
        "GET",
        "/api/whoami-v2",
        &[("authorization", GOOD_AUTH)],
    )
    .await;
    assert_eq!(json(&r.body)["name"], "fake-user");
    // Every answer carried a request id and was logged with its status.
    assert!(hub.log().entries().iter().all(|e| e.status != 0));
    assert_eq!(hub.log().count(|e| e.has_authorization), 2);
}

#[tokio::test]
async fn h2c_and_tls_serve_http2_and_http1() {
    for transport in [Transport::H2c, Transport::Tls] {
        let hub = hub_with(transport).await;
        if transport == Transport::Tls {
            assert!(hub.endpoint().starts_with("https://127.0.0.1:"));
            assert!(hub.ca_cert_path().unwrap().exists());
        }
        let content = hub.file_bytes("org/model", "model.safetensors").unwrap();
        let mut hubc = Conn::open(&hub, Origin::Hub, Proto::H2).await;
        let r = hubc
            .send("HEAD", "/org/model/resolve/main/model.safetensors", &[])
            .await;
        assert_eq!(r.status, 302);
        let (_, path) = split_url(&hub, r.header("location").unwrap());
        let mut cdn = Conn::open(&hub, Origin::Cdn, Proto::H2).await;
        let r = cdn.send("GET", &path, &[("range", "bytes=10-99")]).await;
        assert_eq!((r.status, r.version), (206, http::Version::HTTP_2));
        assert!(r.body == content[10..100]);
        let mut h1 = Conn::open(&hub, Origin::Cdn, Proto::H1).await;
        let r = h1.send("GET", &path, &[]).await;
        assert_eq!((r.status, r.version), (200, http::Version::HTTP_11));
        assert!(r.body == content);
        let versions: BTreeSet<String> =
            hub.log().entries().into_iter().map(|e| e.version).collect();
        assert!(
            versions.contains("HTTP/2.0") && versions.contains("HTTP/1.1"),
            "{transport:?}: {versions:?}"
        );
    }
}

#[tokio::test]
async fn push_commit_moves_main_only() {
    let hub = hub().await;
    let old = hub.commit("org/model", "main").unwrap();
    let new = hub
        .push_commit(
            "org/model",
            CommitChange::new("Update")
                .regular_file("config.json", "{\"a\": 2}\n")
                .lfs_file("new.bin", 5000, 77)
                .delete("b.bin"),
        )
        .unwrap();
    assert_ne!(old, new);
    assert_eq!(hub.commit("org/model", "main").unwrap(), new);
    assert_eq!(hub.commit("org/model", "v1.0").unwrap(), old, "tags stay");
    assert_eq!(
        hub.file_bytes("org/model", "config.json").unwrap(),
        b"{\"a\": 2}\n"
    );
    assert!(hub.file_info("org/model", "b.bin").is_none());
    // Served: the new commit at main, the old one still by sha.
    let r = at_hub(&hub, "GET", "/api/models/org/model", &[]).await;
    assert_eq!(json(&r.body)["sha"], new.as_str());
    let r = at_hub(
        &hub,
        "HEAD",
        &format!("/org/model/resolve/{old}/b.bin"),
        &[],
    )
    .await;
    assert_eq!(r.status, 302);
    let r = at_hub(&hub, "HEAD", "/org/model/resolve/main/b.bin", &[]).await;
    assert_eq!(code(&r), (404, Some("EntryNotFound")));
    let r = at_hub(&hub, "HEAD", "/org/model/resolve/main/new.bin", &[]).await;
    let (_, path) = split_url(&hub, r.header("location").unwrap());
    let r = at_cdn(&hub, "GET", &path, &[]).await;
    assert_eq!(r.body, hub.file_bytes("org/model", "new.bin").unwrap());
    assert!(hub.push_commit("org/none", CommitChange::new("x")).is_err());
}

#[tokio::test]
async fn folder_on_disk_is_served_as_a_repo() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("sub")).unwrap();
    std::fs::write(dir.path().join("config.json"), b"{}\n").unwrap();
    std::fs::write(
        dir.path().join("sub/w.safetensors"),
        hfd_testkit::seeded_bytes(3, 70_000),
    )
    .unwrap();
    let hub = FakeHub::builder()
        .repo(RepoFixture::from_dir("local/repo", dir.path()))
        .start()
        .await
        .unwrap();
    let files = hub.files("local/repo");
    assert_eq!(files.len(), 2);
    assert!(
        files
            .iter()
            .find(|f| f.path == "sub/w.safetensors")
            .unwrap()
            .is_lfs()
    );
    assert!(
        !files
            .iter()
            .find(|f| f.path == "config.json")
            .unwrap()
            .is_lfs()
    );
    let r = at_hub(
        &hub,
        "HEAD",
        "/local/repo/resolve/main/sub/w.safetensors",
        &[],
    )
    .await;
    let (_, path) = split_url(&hub, r.header("location").unwrap());
    let r = at_cdn(&hub, "GET", &path, &[("range", "bytes=65530-65545")]).await;
    assert_eq!(r.body, hfd_testkit::seeded_bytes(3, 70_000)[65_530..65_546]);
    assert_eq!(hub.log().count(|e| e.route == Route::Cdn), 1);
    let _ = LIMITED;
    let _ = GOOD;
}
