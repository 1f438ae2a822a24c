//! Answers that lie: each gets a clear, correctly classified error (or, where
//! the bytes that matter are right, a correct file), and nothing corrupt is
//! kept under its final name.

use hfd::ErrorKind;
use hfd_testkit::{FakeHub, Fault, FaultKind, FaultTarget, Origin, Route, Transport};

use crate::{
    BIG, Opts, assert_all_files, assert_no_corrupt_file, error_text, fixture, hub, hub_with,
    sandbox,
};

/// Path fragment of the big file's CDN object, so a fault hits it alone.
fn big_object(hub: &FakeHub) -> String {
    hub.file_info(crate::REPO, BIG)
        .and_then(|f| f.lfs_sha256)
        .expect("an LFS file")
}

/// Runs with `fault` and returns the error, asserting no corrupt file is
/// kept, `what` is not under its final name, and the error is `kind`.
async fn refused(hub: &FakeHub, fault: Fault, what: &str, kind: ErrorKind) -> String {
    hub.faults().inject(fault);
    let (_parent, target) = sandbox();
    let run = crate::run(hub, &target, &Opts::default()).await;
    let err = run.error();
    assert_eq!(err.kind(), kind, "{err:?}");
    assert!(
        !target.join(what).exists(),
        "{what} is under its final name after a hostile answer"
    );
    assert_no_corrupt_file(hub, &target);
    hub.faults().clear();
    error_text(err)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_length_far_larger_than_the_file_is_refused() {
    let hub = hub().await;
    // CDN range answers of the big file.
    let fault = Fault::new(FaultKind::LyingContentLength(1 << 40))
        .on(FaultTarget::Cdn)
        .path_contains(&big_object(&hub))
        .always();
    let text = refused(&hub, fault, BIG, ErrorKind::Protocol).await;
    assert!(
        text.contains("announced a 1099511627776-byte body"),
        "{text}"
    );
    // A regular file the hub serves whole (200 from resolve-cache).
    let fault = Fault::new(FaultKind::LyingContentLength(1 << 40))
        .on(FaultTarget::ResolveCache)
        .path_contains("config.json")
        .always();
    let text = refused(&hub, fault, "config.json", ErrorKind::Integrity).await;
    assert!(text.contains("1099511627776"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endless_bodies_cost_no_more_than_the_file() {
    for target_kind in [FaultTarget::Cdn, FaultTarget::ResolveCache] {
        let hub = hub().await;
        hub.faults()
            .inject(Fault::new(FaultKind::EndlessBody).on(target_kind).always());
        let (_parent, target) = sandbox();
        let run = crate::run(&hub, &target, &Opts::default()).await;
        // The bytes that matter are right and verified; the rest is dropped
        // with its connection.
        if let Err(e) = &run.result {
            panic!("{target_kind:?}: {e}: {e:?}");
        }
        assert_all_files(&hub, &target);
        let served = hub.log().bytes_served(Origin::Cdn) + hub.log().bytes_served(Origin::Hub);
        assert!(
            served < 1 << 30,
            "{target_kind:?}: the client kept reading an endless body ({served} bytes)"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_listing_is_cut_at_the_json_limit() {
    let hub = hub().await;
    hub.faults().inject(
        Fault::new(FaultKind::EndlessJson)
            .on(FaultTarget::Api)
            .always(),
    );
    // The revision is pinned by its own API call first: let it through.
    let commit = hub.commit(crate::REPO, "main").expect("commit");
    let (parent, target) = sandbox();
    let opts = Opts {
        max_json_bytes: 1 << 20,
        ..Opts::default()
    };
    let downloader = crate::downloader(&hub, &opts);
    let mut request = crate::request(&target, &opts);
    request.revision = hfd::hfd_hub::Revision::new(&commit).expect("commit");
    let err = downloader
        .plan(&request)
        .await
        .expect_err("endless listing");
    assert_eq!(err.kind(), ErrorKind::Protocol, "{err:?}");
    assert!(
        err.to_string().contains("larger than 1048576 bytes"),
        "{err}"
    );
    assert!(!target.exists());
    crate::assert_nothing_outside(parent.path());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gzip_body_despite_identity_is_refused() {
    let hub = hub().await;
    let fault = Fault::new(FaultKind::GzipBody)
        .on(FaultTarget::Cdn)
        .path_contains(&big_object(&hub))
        .always();
    let text = refused(&hub, fault, BIG, ErrorKind::Protocol).await;
    assert!(text.contains("\"gzip\"-encoded body"), "{text}");
    let fault = Fault::new(FaultKind::GzipBody)
        .on(FaultTarget::ResolveCache)
        .path_contains("config.json")
        .always();
    let text = refused(&hub, fault, "config.json", ErrorKind::Protocol).await;
    assert!(text.contains("Content-Encoding \"gzip\""), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_content_range_outside_the_file_is_refused() {
    let hub = hub().await;
    let fault = Fault::new(FaultKind::ContentRangeOutside)
        .on(FaultTarget::Cdn)
        .path_contains(&big_object(&hub))
        .always();
    let text = refused(&hub, fault, BIG, ErrorKind::Integrity).await;
    assert!(text.contains("bad Content-Range"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirect_loops_and_long_chains_stop() {
    let hub = hub().await;
    let text = refused(
        &hub,
        Fault::new(FaultKind::RedirectLoop)
            .on(FaultTarget::Resolve)
            .path_contains("config.json")
            .always(),
        "config.json",
        ErrorKind::Protocol,
    )
    .await;
    assert!(text.contains("too many redirects"), "{text}");
    // Bounded: at most max_redirects + 1 requests per resolve attempt.
    let looped = hub
        .log()
        .count(|e| e.route == Route::Resolve && e.path.ends_with("config.json"));
    assert!(looped <= 11 * 3, "{looped} requests for a redirect loop");

    // A chain within the limit is followed.
    let hub = hub_with(fixture(), Transport::Http1).await;
    hub.faults().inject(
        Fault::new(FaultKind::RedirectChain(8))
            .on(FaultTarget::Resolve)
            .always(),
    );
    let (_parent, target) = sandbox();
    let run = crate::run(&hub, &target, &Opts::default()).await;
    if let Err(e) = &run.result {
        panic!("8 hops: {e}");
    }
    assert_all_files(&hub, &target);

    // One past the limit is not.
    let hub = hub_with(fixture(), Transport::Http1).await;
    let text = refused(
        &hub,
        Fault::new(FaultKind::RedirectChain(11))
            .on(FaultTarget::Resolve)
            .always(),
        "config.json",
        ErrorKind::Protocol,
    )
    .await;
    assert!(text.contains("too many redirects (10)"), "{text}");
    // The listing API too.
    let hub = hub_with(fixture(), Transport::Http1).await;
    let text = refused(
        &hub,
        Fault::new(FaultKind::RedirectLoop)
            .on(FaultTarget::Api)
            .always(),
        "config.json",
        ErrorKind::Protocol,
    )
    .await;
    assert!(text.contains("too many redirects"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_to_http_redirect_is_refused() {
    let hub = hub_with(fixture(), Transport::Tls).await;
    hub.faults().inject(
        Fault::new(FaultKind::DowngradeRedirect)
            .on(FaultTarget::Resolve)
            .always(),
    );
    let (_parent, target) = sandbox();
    let run = crate::run(&hub, &target, &Opts::default()).await;
    let err = run.error();
    assert_eq!(err.kind(), ErrorKind::Protocol, "{err:?}");
    let text = error_text(err);
    assert!(text.contains("insecure http://"), "{text}");
    assert!(!text.contains("X-Amz-Signature="), "{text}");
    assert_eq!(
        hub.log().count(|e| e.origin == Origin::Cdn),
        0,
        "nothing is asked from the downgraded URL"
    );
    assert!(!target.join(BIG).exists() && !target.join("config.json").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_header_is_an_error_not_an_allocation() {
    for transport in [Transport::Http1, Transport::H2c] {
        let hub = hub_with(fixture(), transport).await;
        hub.faults().inject(
            Fault::new(FaultKind::HugeHeader(4 << 20))
                .on(FaultTarget::Api)
                .always(),
        );
        let (parent, target) = sandbox();
        let run = crate::run(&hub, &target, &Opts::default()).await;
        let err = run.error();
        assert!(
            matches!(err.kind(), ErrorKind::Protocol | ErrorKind::Network),
            "{transport:?}: {err:?}"
        );
        assert!(!target.exists());
        crate::assert_nothing_outside(parent.path());
        if transport == Transport::Http1 {
            assert_eq!(err.kind(), ErrorKind::Protocol, "{err:?}");
            assert!(
                error_text(err).contains("not valid HTTP or its header exceeds"),
                "{err}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deeply_nested_json_bomb_is_malformed() {
    let hub = hub().await;
    let commit = hub.commit(crate::REPO, "main").expect("commit");
    for bomb in [
        format!("{}{}", "[".repeat(200_000), "]".repeat(200_000)),
        format!("[{}1{}]", r#"{"a":"#.repeat(100_000), "}".repeat(100_000)),
        "[".repeat(1 << 20),
        format!("[{}]", vec!["{}"; 100_000].join(",")),
    ] {
        hub.faults()
            .inject(Fault::new(FaultKind::JsonBody(bomb)).on(FaultTarget::Api));
        let (_parent, target) = sandbox();
        let opts = Opts::default();
        let downloader = crate::downloader(&hub, &opts);
        let mut request = crate::request(&target, &opts);
        request.revision = hfd::hfd_hub::Revision::new(&commit).expect("commit");
        let err = downloader.plan(&request).await.expect_err("a bomb");
        assert_eq!(err.kind(), ErrorKind::Protocol, "{err:?}");
        assert!(err.to_string().contains("malformed answer"), "{err}");
    }
}
