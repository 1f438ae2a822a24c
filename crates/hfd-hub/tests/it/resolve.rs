//! Resolving files: redirects, CDN URLs, tokens, odd names.

use hfd_hub::{RemoteFile, RepoType, Revision};
use hfd_testkit::{FakeHub, Origin, RepoFixture, Route};
use hfd_types::ByteRange;

use crate::support::{client_with, hub_client, plan_all, repo, serve};

async fn read_all(mut body: hfd_http::Body) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(chunk) = body.next_chunk().await {
        out.extend_from_slice(&chunk.unwrap());
    }
    out
}

#[tokio::test]
async fn token_never_reaches_the_cdn() {
    let hub = FakeHub::builder()
        .repo(
            RepoFixture::synthetic_model("org/gated", 300_000, 4)
                .lfs_file("shards/part 2.bin", 70_000, 9)
                .gated(),
        )
        .token("hf_good")
        .strict_cdn(true)
        .start()
        .await
        .unwrap();
    let client = hub_client(&hub, Some("hf_good"));
    let http = crate::support::http();
    let r = repo("org/gated", RepoType::Model);
    let plan = plan_all(&client, &r).await;
    let mut lfs = 0;
    for file in &plan.files {
        let expected = hub.file_bytes("org/gated", &file.path).unwrap();
        if file.is_lfs() {
            lfs += 1;
            let resolved = client.resolve(&r, &plan.commit, file).await.unwrap();
            assert!(resolved.is_cdn && !resolved.send_token, "{resolved:?}");
            assert!(resolved.url.expose().starts_with(hub.cdn_endpoint()));
            // The signed query never shows in Debug.
            assert!(!format!("{resolved:?}").contains("X-Amz-Signature"));
            let headers = client.download_headers(&resolved);
            assert!(headers.is_empty());
            let range = ByteRange::new(0, file.size).unwrap();
            let response = http
                .get_range(resolved.url.expose(), range, Some(file.size), &headers)
                .await
                .unwrap();
            assert_eq!(read_all(response.body).await, expected, "{}", file.path);
        } else {
            let opened = client.open(&r, &plan.commit, file).await.unwrap();
            assert!(!opened.resolved.is_cdn && opened.resolved.send_token);
            let body = opened.body.expect("regular files are served by the hub");
            assert_eq!(read_all(body).await, expected, "{}", file.path);
        }
    }
    assert_eq!(lfs, 2);
    let log = hub.log();
    assert!(log.count(|e| e.origin == Origin::Cdn) >= 2);
    assert_eq!(log.cdn_requests_with_authorization(), 0);
    // Every hub request carried the token; nothing failed.
    assert_eq!(
        log.count(|e| e.origin == Origin::Hub && !e.has_authorization),
        0
    );
    assert_eq!(log.error_count(), 0);
}

#[tokio::test]
async fn one_request_per_lfs_resolve_and_relative_redirects_followed() {
    let hub = serve(RepoFixture::synthetic_model("org/m", 5000, 2)).await;
    let client = hub_client(&hub, None);
    let r = repo("org/m", RepoType::Model);
    let plan = plan_all(&client, &r).await;
    for file in &plan.files {
        hub.log().clear();
        let resolved = client.resolve(&r, &plan.commit, file).await.unwrap();
        let entries = hub.log().entries();
        assert!(entries.iter().all(|e| e.method == "HEAD"));
        if file.is_lfs() {
            // One HEAD answered by a 302; the CDN is not contacted.
            assert_eq!(entries.len(), 1, "{entries:?}");
            assert_eq!(entries[0].status, 302);
        } else {
            // 307 to /api/resolve-cache/… (query kept), answered 200.
            assert_eq!(entries.len(), 2, "{entries:?}");
            assert_eq!(entries[0].status, 307);
            assert_eq!(entries[1].route, Route::ResolveCache);
            assert_eq!(entries[1].status, 200);
            let location = entries[0].location.clone().unwrap();
            assert_eq!(
                location,
                entries[1].path_and_query(),
                "the redirect target is requested verbatim"
            );
            assert!(resolved.url.expose().contains("/api/resolve-cache/"));
            assert!(!resolved.is_cdn);
        }
    }
}

#[tokio::test]
async fn odd_file_names_round_trip() {
    let hub = serve(RepoFixture::synthetic_dataset("org/odd", 8, 21)).await;
    let client = hub_client(&hub, None);
    let r = repo("org/odd", RepoType::Dataset);
    let plan = plan_all(&client, &r).await;
    let names: Vec<&str> = plan.files.iter().map(|f| f.path.as_str()).collect();
    for odd in [
        "odd names/my file+1#?.txt",
        "a b+#.bin",
        "données/ü.txt",
        "100%/深い/文件.json",
    ] {
        assert!(names.contains(&odd), "{odd} missing from {names:?}");
    }
    for file in &plan.files {
        let opened = client.open(&r, &plan.commit, file).await.unwrap();
        let bytes = if let Some(body) = opened.body {
            read_all(body).await
        } else {
            let response = crate::support::http()
                .get_range(
                    opened.resolved.url.expose(),
                    ByteRange::new(0, file.size).unwrap(),
                    Some(file.size),
                    &client.download_headers(&opened.resolved),
                )
                .await
                .unwrap();
            read_all(response.body).await
        };
        assert_eq!(
            bytes,
            hub.file_bytes("org/odd", &file.path).unwrap(),
            "{}",
            file.path
        );
    }
    let resolves: Vec<String> = hub
        .log()
        .entries()
        .into_iter()
        .filter(|e| e.route == Route::Resolve)
        .map(|e| e.path)
        .collect();
    assert!(
        resolves
            .iter()
            .any(|p| p.ends_with("/odd%20names/my%20file%2B1%23%3F.txt"))
    );
    assert!(resolves.iter().any(|p| p.ends_with("/a%20b%2B%23.bin")));
    assert!(
        resolves
            .iter()
            .any(|p| p.ends_with("/donn%C3%A9es/%C3%BC.txt"))
    );
    assert_eq!(hub.log().error_count(), 0);
}

#[tokio::test]
async fn private_repo_files_are_served_directly_with_the_token() {
    let hub = FakeHub::builder()
        .repo(
            RepoFixture::model("org/private")
                .regular_file("config.json", "{\"a\": 1}\n")
                .lfs_bytes("w.bin", vec![3u8; 4000])
                .private(),
        )
        .token("hf_good")
        .start()
        .await
        .unwrap();
    let r = repo("org/private", RepoType::Model);
    let client = hub_client(&hub, Some("hf_good"));
    let plan = plan_all(&client, &r).await;
    let config: &RemoteFile = plan.files.iter().find(|f| f.path == "config.json").unwrap();
    let resolved = client.resolve(&r, &plan.commit, config).await.unwrap();
    assert_eq!(
        resolved.url.expose(),
        hub.resolve_url("org/private", plan.commit.as_str(), "config.json")
            .unwrap()
    );
    assert!(resolved.send_token && !resolved.is_cdn);
    assert!(
        client
            .download_headers(&resolved)
            .contains_key("authorization")
    );
    // Without a token the repo is hidden.
    let anonymous = hub_client(&hub, None);
    let err = anonymous
        .pin_revision(&r, &Revision::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), hfd_hub::HubErrorKind::NotFound);
}

#[tokio::test]
async fn token_withheld_from_a_mirror_when_not_allowed() {
    let hub = FakeHub::builder()
        .repo(RepoFixture::synthetic_model("org/m", 1000, 1))
        .token("hf_good")
        .start()
        .await
        .unwrap();
    let client = client_with(hub.endpoint(), Some("hf_good"), |c| {
        c.send_token_to_endpoint = false;
    });
    let r = repo("org/m", RepoType::Model);
    let plan = plan_all(&client, &r).await;
    for f in &plan.files {
        client.resolve(&r, &plan.commit, f).await.unwrap();
    }
    assert!(hub.log().entries().len() > 3);
    assert_eq!(hub.log().count(|e| e.has_authorization), 0);
}
