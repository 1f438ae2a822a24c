//! Token hygiene: the token goes to the hub only, and neither it nor a
//! signed URL query shows up in logs (TRACE), files, errors or `Debug`
//! output. Asserted by searching every byte written and logged.

use std::fmt::Write as _;

use hfd::ErrorKind;
use hfd_testkit::{FakeHub, Fault, FaultKind, FaultTarget, Origin, Transport};

use crate::{
    Opts, TOKEN, assert_all_files, error_text, files_under, fixture, hub_with, logs, run, sandbox,
};

/// The signatures of every CDN URL the hub handed out (the secret part of
/// a presigned URL).
fn signatures(hub: &FakeHub) -> Vec<String> {
    let mut found: Vec<String> = hub
        .log()
        .entries()
        .iter()
        .filter_map(|e| e.location.as_deref())
        .filter_map(|l| l.split("X-Amz-Signature=").nth(1))
        .map(|s| s.split('&').next().unwrap_or_default().to_owned())
        .filter(|s| s.len() >= 32)
        .collect();
    found.sort();
    found.dedup();
    found
}

/// Asserts none of `secrets` is in `haystack`.
#[track_caller]
fn assert_clean(what: &str, haystack: &[u8], secrets: &[String]) {
    for secret in secrets {
        assert!(
            !haystack
                .windows(secret.len())
                .any(|w| w == secret.as_bytes()),
            "{what} contains a secret ({} bytes searched)",
            haystack.len()
        );
    }
}

async fn token_never_leaks(transport: Transport) {
    let hub = hub_with(fixture(), transport).await;
    // Some trouble on the way, so error and retry paths log too: an expired
    // CDN URL (re-resolve) and a reset.
    hub.faults()
        .inject(Fault::new(FaultKind::ExpiredUrl).on(FaultTarget::Cdn));
    hub.faults().inject(
        Fault::new(FaultKind::ResetAfterBytes(10_000))
            .on(FaultTarget::Cdn)
            .ranged_only(),
    );
    let (parent, target) = sandbox();
    let opts = Opts::default();
    let run1 = run(&hub, &target, &opts).await;
    if let Err(e) = &run1.result {
        panic!("{transport:?}: {e}: {e:?}");
    }
    assert_all_files(&hub, &target);

    // A failing run: every CDN answer is a 500 with the file kept partial.
    let failing_hub = hub_with(fixture(), transport).await;
    failing_hub.faults().inject(
        Fault::new(FaultKind::Status(500))
            .on(FaultTarget::Cdn)
            .always(),
    );
    let (_failing_parent, failing_target) = sandbox();
    let run2 = run(&failing_hub, &failing_target, &opts).await;
    let err = run2.error();

    let mut secrets = vec![TOKEN.to_owned()];
    secrets.extend(signatures(&hub));
    secrets.extend(signatures(&failing_hub));
    assert!(
        secrets.len() >= 3,
        "the CDN handed out signed URLs: {secrets:?}"
    );

    // The token went to the hub only, never to the CDN.
    assert_eq!(hub.log().cdn_requests_with_authorization(), 0);
    assert_eq!(failing_hub.log().cdn_requests_with_authorization(), 0);
    assert!(
        hub.log()
            .count(|e| e.origin == Origin::Hub && e.has_authorization)
            > 0,
        "the hub did get the token"
    );

    // Every byte written under both targets (files, metadata, partials,
    // journals, locks, listings).
    let mut written = 0;
    for dir in [&target, &failing_target] {
        for file in files_under(dir) {
            let bytes = std::fs::read(&file).expect("read back");
            written += bytes.len();
            assert_clean(&file.display().to_string(), &bytes, &secrets);
        }
    }
    assert!(written > 0);
    crate::assert_nothing_outside(parent.path());

    // Errors, reports and plans, Display and Debug.
    assert_clean("the error", error_text(err).as_bytes(), &secrets);
    assert_clean(
        "the report and plan",
        format!("{:?} {:?} {:?}", run1.result, run1.plan, run2.plan).as_bytes(),
        &secrets,
    );
    let downloader = crate::downloader(&hub, &opts);
    assert_clean(
        "the downloader's Debug",
        format!("{downloader:?} {:?}", downloader.hub()).as_bytes(),
        &secrets,
    );

    // Logs at TRACE, from every crate, of every test so far.
    let logs = logs();
    assert!(
        logs.contains("hub request") && logs.contains("resolved"),
        "the log capture works ({} bytes)",
        logs.len()
    );
    assert_clean("the logs", logs.as_bytes(), &secrets);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_never_leaks_http1() {
    token_never_leaks(Transport::Http1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_never_leaks_tls() {
    token_never_leaks(Transport::Tls).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_does_not_follow_a_redirect_to_another_host() {
    let hub = hub_with(fixture(), Transport::Http1).await;
    // The listing API redirects to another origin (the CDN's port).
    let elsewhere = format!("{}/api/elsewhere", hub.cdn_endpoint());
    hub.faults()
        .inject(Fault::new(FaultKind::RedirectTo(elsewhere.clone())).on(FaultTarget::Api));
    let (_parent, target) = sandbox();
    let run = crate::run(&hub, &target, &Opts::default()).await;
    let err = run.error();
    assert_eq!(err.kind(), ErrorKind::Protocol, "{err:?}");
    assert!(error_text(err).contains("not a Hub host"), "{err}");
    assert_eq!(hub.log().cdn_requests_with_authorization(), 0);

    // A resolve redirected to another host: the download URL there gets no
    // token (the answer has no hub headers, so it is refused as not a hub).
    hub.faults().clear();
    hub.faults().inject(
        Fault::new(FaultKind::RedirectTo(elsewhere))
            .on(FaultTarget::Resolve)
            .always(),
    );
    let run = crate::run(&hub, &target, &Opts::default()).await;
    assert!(run.result.is_err());
    assert_eq!(hub.log().cdn_requests_with_authorization(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_echoing_the_token_does_not_get_it_into_the_error() {
    for target in [FaultTarget::Api, FaultTarget::Resolve] {
        let hub = hub_with(fixture(), Transport::Http1).await;
        hub.faults()
            .inject(Fault::new(FaultKind::EchoAuthorization).on(target).always());
        let (_parent, dir) = sandbox();
        let run = crate::run(&hub, &dir, &Opts::default()).await;
        let err = run.error();
        let text = error_text(err);
        assert!(
            hub.log().count(|e| e.fault == Some("echo-authorization")) > 0,
            "{target:?}: the fault fired"
        );
        assert!(
            text.contains("hf_***"),
            "{target:?}: the echo is shown scrubbed: {text}"
        );
        assert_clean("the error", text.as_bytes(), &[TOKEN.to_owned()]);
    }
}

/// Everything a run showed or wrote: its error (Display, Debug, causes),
/// report and plan, every file name and byte under the target.
fn everything(run: &crate::Run, dir: &std::path::Path) -> Vec<u8> {
    let mut out = Vec::new();
    if let Err(e) = &run.result {
        out.extend_from_slice(error_text(e).as_bytes());
    }
    out.extend_from_slice(format!("{:?} {:?}", run.result, run.plan).as_bytes());
    for file in files_under(dir) {
        out.extend_from_slice(file.display().to_string().as_bytes());
        out.extend_from_slice(&std::fs::read(&file).unwrap_or_default());
    }
    out
}

/// A server echoing the token through every text channel it controls in a
/// normal answer (issue #14): headers of the resolve (`X-Repo-Commit`,
/// `ETag`, `X-Linked-Etag`, `X-Linked-Size`), the `Location` of the CDN
/// redirect, a `Link` to the next listing page, the revision JSON and a
/// listed path. The token is in no error, report, plan, file, file name or
/// log line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_echoing_the_token_in_normal_answers_never_gets_it_shown() {
    use hfd_testkit::EchoChannel;
    let secrets = [TOKEN.to_owned()];
    let faults = [
        (FaultTarget::Resolve, EchoChannel::Header("x-repo-commit")),
        (FaultTarget::Resolve, EchoChannel::Header("etag")),
        (FaultTarget::Resolve, EchoChannel::Header("x-linked-etag")),
        (FaultTarget::Resolve, EchoChannel::Header("x-linked-size")),
        (FaultTarget::Resolve, EchoChannel::Location),
        (FaultTarget::Api, EchoChannel::NextLink),
        (FaultTarget::Api, EchoChannel::Header("x-error-message")),
    ];
    for (on, channel) in faults {
        let hub = hub_with(fixture(), Transport::Http1).await;
        hub.faults()
            .inject(Fault::new(FaultKind::EchoTokenIn(channel)).on(on).always());
        let (_parent, dir) = sandbox();
        let run = run(&hub, &dir, &Opts::default()).await;
        assert!(
            hub.log().count(|e| e.fault == Some("echo-token")) > 0,
            "{channel:?}: the fault fired"
        );
        assert_clean(&format!("{channel:?}"), &everything(&run, &dir), &secrets);
    }

    // The revision JSON's `sha` and a listed path spell the token (the
    // path also with JSON escapes, which a byte scrub of the body misses).
    let mut escaped = String::new();
    for c in TOKEN.chars() {
        write!(escaped, "\\u{:04x}", c as u32).expect("write to a String");
    }
    let bodies = [
        format!("{{\"sha\": \"{TOKEN}\"}}"),
        format!("{{\"sha\": \"{escaped}\"}}"),
    ];
    for body in bodies {
        let hub = hub_with(fixture(), Transport::Http1).await;
        hub.faults()
            .inject(Fault::new(FaultKind::JsonBody(body.clone())).on(FaultTarget::Api));
        let (_parent, dir) = sandbox();
        let run = run(&hub, &dir, &Opts::default()).await;
        assert!(run.result.is_err(), "{body}: a token is no commit");
        assert_clean(&body, &everything(&run, &dir), &secrets);
    }
    for path in [format!("leak-{TOKEN}.txt"), format!("leak-{escaped}.txt")] {
        let hub = hub_with(fixture(), Transport::Http1).await;
        hub.faults().set_extra_tree_entries([format!(
            "{{\"type\":\"file\",\"oid\":\"{}\",\"size\":3,\"path\":\"{path}\"}}",
            "ab".repeat(20)
        )]);
        let (_parent, dir) = sandbox();
        let run = run(&hub, &dir, &Opts::default()).await;
        assert!(run.result.is_err(), "{path}: not on the hub");
        assert_clean(&path, &everything(&run, &dir), &secrets);
    }
    assert_clean("the logs", logs().as_bytes(), &secrets);
}
