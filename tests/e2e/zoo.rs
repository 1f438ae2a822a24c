//! The mirror zoo: one fake-hub knob per quirk observed on a real mirror,
//! and an end-to-end download through each that must complete with every
//! byte verified (docs/mirrors.md lists them).

use hfd_testkit::{FakeHub, Fault, FaultKind, FaultTarget, MIB, RepoFixture, Route};

use crate::support::{assert_same_files, download_checked, run};

const REPO: &str = "org/model";

async fn hub_with(faults: impl IntoIterator<Item = Fault>) -> FakeHub {
    let hub = FakeHub::builder()
        .repo(
            RepoFixture::model(REPO)
                .regular_file("config.json", "{\"model_type\": \"zoo\"}\n")
                .regular_file("nested/dir/vocab.txt", hfd_testkit::seeded_bytes(3, 9_000))
                .lfs_file("model.safetensors", 2 * MIB + 5, 51)
                .lfs_file("onnx/model.onnx", 300_000, 52),
        )
        .tree_page_size(2)
        .start()
        .await
        .expect("start fake hub");
    for fault in faults {
        hub.faults().inject(fault);
    }
    hub
}

/// Downloads [`REPO`] from `hub` and checks every byte.
async fn downloads_verified(hub: &FakeHub) {
    let out = tempfile::tempdir().expect("tempdir");
    let dir = out.path().join("m");
    let run = run(&[
        REPO,
        "--endpoint",
        hub.endpoint(),
        "--local-dir",
        dir.to_str().expect("utf-8"),
        "-x",
        "4",
    ])
    .await;
    run.expect_code(0);
    assert_same_files(hub, REPO, &dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn no_x_repo_commit_and_no_etag_on_resolve() {
    let hub = hub_with([Fault::new(FaultKind::DropHeaders(vec![
        "x-repo-commit".into(),
        "etag".into(),
        "x-linked-etag".into(),
    ]))
    .on(FaultTarget::Resolve)
    .always()])
    .await;
    downloads_verified(&hub).await;
    assert!(
        hub.log()
            .entries()
            .iter()
            .any(|e| e.fault == Some("drop-headers")),
        "the knob never fired"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn weak_etags() {
    let hub = hub_with([Fault::new(FaultKind::WeakEtag).always()]).await;
    downloads_verified(&hub).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn upper_case_hashes_in_etags() {
    let hub = hub_with([Fault::new(FaultKind::UppercaseEtag).always()]).await;
    downloads_verified(&hub).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn next_page_link_to_the_hub_stays_on_the_mirror() {
    let hub = hub_with([Fault::new(FaultKind::HubNextLink)
        .on(FaultTarget::Api)
        .always()])
    .await;
    downloads_verified(&hub).await;
    let pages = hub
        .log()
        .entries()
        .iter()
        .filter(|e| e.path.contains("/tree/"))
        .count();
    assert!(pages >= 3, "pagination was not exercised: {pages} pages");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_html_page_instead_of_the_file_is_never_kept() {
    let hub = hub_with([Fault::new(FaultKind::HtmlPage)
        .on(FaultTarget::Cdn)
        .times(1)])
    .await;
    downloads_verified(&hub).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn whole_body_for_small_range_requests() {
    let hub = hub_with([Fault::new(FaultKind::IgnoreRange)
        .on(FaultTarget::Cdn)
        .always()])
    .await;
    downloads_verified(&hub).await;
}

/// LFS `302` to a bridge host on another name (`localhost` for the hub's
/// `127.0.0.1`, as `cas-bridge.xethub.hf.co` is to `huggingface.co`), with
/// `X-Xet-Hash`/`X-Linked-*` on the redirect and no `ETag` or
/// `Last-Modified` on the bridge's own answers: the download completes and
/// the token never reaches the bridge (a strict bridge answers 400 to one).
#[tokio::test(flavor = "multi_thread")]
async fn lfs_redirect_to_a_bridge_host_on_another_name() {
    let hub = FakeHub::builder()
        .repo(
            RepoFixture::model(REPO)
                .regular_file("config.json", "{\"model_type\": \"bridge\"}\n")
                .lfs_file("model.safetensors", 2 * MIB + 5, 71)
                .lfs_file("onnx/model.onnx", 300_000, 72)
                .gated(),
        )
        .token("hf_bridge_token")
        .cdn_host("localhost")
        .strict_cdn(true)
        .start()
        .await
        .expect("start fake hub");
    hub.faults().inject(
        Fault::new(FaultKind::DropHeaders(vec![
            "etag".into(),
            "last-modified".into(),
        ]))
        .on(FaultTarget::Cdn)
        .always(),
    );
    assert!(
        hub.cdn_endpoint().starts_with("http://localhost:"),
        "{}",
        hub.cdn_endpoint()
    );
    let out = tempfile::tempdir().expect("tempdir");
    let dir = out.path().join("m");
    run(&[
        REPO,
        "--endpoint",
        hub.endpoint(),
        "--token",
        "hf_bridge_token",
        "--local-dir",
        dir.to_str().expect("utf-8"),
        "-x",
        "4",
    ])
    .await
    .expect_code(0);
    assert_same_files(&hub, REPO, &dir);
    let entries = hub.log().entries();
    let bridge: Vec<_> = entries.iter().filter(|e| e.route == Route::Cdn).collect();
    assert!(
        !bridge.is_empty(),
        "nothing came from the bridge: {entries:#?}"
    );
    assert!(bridge.iter().all(|e| !e.has_authorization), "{bridge:#?}");
    assert!(
        bridge.iter().any(|e| e.fault == Some("drop-headers")),
        "the bridge answered with its ETag: {bridge:#?}"
    );
    // The hub itself was asked with the token (the repo is gated).
    assert!(
        entries
            .iter()
            .any(|e| e.route == Route::Resolve && e.has_authorization),
        "{entries:#?}"
    );
}

/// `429` with `Retry-After`/`RateLimit` on range requests: the run waits
/// the told window (2 s here; the engine caps a longer one, see
/// `hfd-engine`'s `rate_limit_halves_the_connections_and_caps_the_wait`),
/// continues with fewer connections and completes.
#[tokio::test(flavor = "multi_thread")]
async fn rate_limited_range_requests_wait_the_window_and_complete() {
    let hub = FakeHub::builder()
        .repo(RepoFixture::model(REPO).lfs_file("model.safetensors", 12 * MIB, 81))
        .rate_per_connection(8 * MIB)
        .start()
        .await
        .expect("start fake hub");
    hub.faults().inject(
        Fault::new(FaultKind::RateLimited {
            retry_after_secs: 2,
        })
        .on(FaultTarget::Cdn)
        .times(3),
    );
    let done = download_checked(&hub, REPO, &["-x", "8", "--json"]).await;
    assert_eq!(hub.faults().pending(), 0, "the 429s were served");
    let waits: Vec<u64> = done
        .json_events()
        .filter(|e| e["event"] == "retry")
        .map(|e| e["wait_ms"].as_u64().unwrap())
        .collect();
    assert_eq!(waits.len(), 3, "{}", done.stdout);
    assert!(
        waits.iter().all(|&w| w == 2000),
        "the told window: {waits:?}"
    );
}
