//! Every error case of the issue, against the fake hub and the raw server.

use std::time::Duration;

use hfd_hub::{
    Commit, Error, HubClient, HubErrorKind, MetadataRetry, RemoteFile, RepoRef, RepoType, Revision,
};
use hfd_testkit::{FakeHub, Fault, FaultKind, FaultTarget, RepoFixture};
use hfd_types::ContentDigest;

use crate::raw::{RawAnswer, RawServer};
use crate::support::{client, client_with, hub_client, plan_all, repo};

const SHA1: &str = "b45ef6fec89518d314f546fd6c3025367b721684";
const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

async fn fake_hub() -> FakeHub {
    FakeHub::builder()
        .repo(RepoFixture::synthetic_model("org/m", 1000, 1))
        .repo(RepoFixture::synthetic_model("org/gated", 1000, 2).gated())
        .token("hf_good")
        .token_without_access("hf_limited")
        .start()
        .await
        .unwrap()
}

/// The repo every raw-server test asks for.
fn model() -> RepoRef {
    repo("org/m", RepoType::Model)
}

fn commit() -> Commit {
    Commit::parse(COMMIT).unwrap()
}

/// The error `client` gives when pinning `main` of `org/m`.
async fn pin_err(client: &HubClient) -> Error {
    client
        .pin_revision(&model(), &Revision::default())
        .await
        .unwrap_err()
}

/// The error `client` gives when listing `org/m` at [`COMMIT`].
async fn list_err(client: &HubClient) -> Error {
    client.list_files(&model(), &commit()).await.unwrap_err()
}

fn regular(path: &str) -> RemoteFile {
    RemoteFile {
        path: path.to_owned(),
        size: 1,
        oid: ContentDigest::from_hex(SHA1).unwrap(),
        lfs_sha256: None,
        xet_hash: None,
    }
}

/// One failing `pin_revision` against the fake hub: who asks, for what, and what the error
/// must be and say.
struct PinCase {
    case: &'static str,
    token: Option<&'static str>,
    repo: (&'static str, RepoType),
    revision: &'static str,
    kind: HubErrorKind,
    says: &'static [&'static str],
}

#[tokio::test]
async fn pin_revision_errors_name_their_cause() {
    let hub = fake_hub().await;
    #[rustfmt::skip]
    let cases = [
        PinCase { case: "unknown repo, anonymous", token: None, repo: ("org/nope", RepoType::Model), revision: "main", kind: HubErrorKind::NotFound, says: &["org/nope", "needs a token"] },
        PinCase { case: "unknown repo, with a token", token: Some("hf_good"), repo: ("org/nope", RepoType::Model), revision: "main", kind: HubErrorKind::NotFound, says: &[] },
        PinCase { case: "a dataset id that exists only as a model", token: None, repo: ("org/m", RepoType::Dataset), revision: "main", kind: HubErrorKind::NotFound, says: &["datasets/org/m"] },
        PinCase { case: "invalid token", token: Some("hf_wrong"), repo: ("org/m", RepoType::Model), revision: "main", kind: HubErrorKind::InvalidToken, says: &[] },
        PinCase { case: "unknown revision", token: None, repo: ("org/m", RepoType::Model), revision: "no/such-branch", kind: HubErrorKind::RevisionNotFound, says: &["no/such-branch"] },
    ];
    for c in &cases {
        let (id, repo_type) = c.repo;
        let err = hub_client(&hub, c.token)
            .pin_revision(&repo(id, repo_type), &Revision::new(c.revision).unwrap())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), c.kind, "{}: {err}", c.case);
        for part in c.says {
            assert!(
                err.to_string().contains(part),
                "{}: {part:?} in {err}",
                c.case
            );
        }
        if c.case == "unknown repo, anonymous" {
            assert!(
                err.request_id().is_some(),
                "the fake hub sends X-Request-Id"
            );
        }
        if let Some(token) = c.token {
            let text = format!("{err} {err:?}");
            assert!(!text.contains(token), "{}: token leaked: {text}", c.case);
        }
    }
}

#[tokio::test]
async fn gated_repo_anonymous_and_without_access() {
    let hub = fake_hub().await;
    let r = repo("org/gated", RepoType::Model);
    let owner = hub_client(&hub, Some("hf_good"));
    let plan = plan_all(&owner, &r).await;
    let file = &plan.files[0];
    owner.resolve(&r, &plan.commit, file).await.unwrap();

    let err = hub_client(&hub, None)
        .resolve(&r, &plan.commit, file)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), HubErrorKind::Gated);
    let text = err.to_string();
    assert!(text.contains("request access"), "{text}");
    assert!(text.contains("--token"), "{text}");
    assert!(text.contains("huggingface.co/org/gated"), "{text}");

    let err = hub_client(&hub, Some("hf_limited"))
        .resolve(&r, &plan.commit, file)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), HubErrorKind::Gated);
    assert!(err.to_string().contains("not been granted"), "{err}");
}

#[tokio::test]
async fn entry_not_found() {
    let hub = fake_hub().await;
    let client = hub_client(&hub, None);
    let r = repo("org/m", RepoType::Model);
    let commit = client.pin_revision(&r, &Revision::default()).await.unwrap();
    let err = client
        .resolve(&r, &commit, &regular("missing dir/nope.bin"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), HubErrorKind::EntryNotFound);
    assert!(err.to_string().contains("missing dir/nope.bin"), "{err}");
}

#[tokio::test]
async fn rate_limited_reports_the_wait() {
    let hub = fake_hub().await;
    hub.faults().inject(
        Fault::new(FaultKind::RateLimited {
            retry_after_secs: 5,
        })
        .on(FaultTarget::Api),
    );
    let err = pin_err(&hub_client(&hub, None)).await;
    assert_eq!(
        err.kind(),
        HubErrorKind::RateLimited {
            wait: Some(Duration::from_secs(6))
        }
    );
    assert!(err.to_string().contains("retry in 6 s"), "{err}");
    // With retries on but a wait above max_wait, it gives up at once.
    hub.faults().inject(
        Fault::new(FaultKind::RateLimited {
            retry_after_secs: 120,
        })
        .on(FaultTarget::Api),
    );
    let before = hub.log().entries().len();
    let patient = client_with(hub.endpoint(), None, |c| {
        let mut retry = MetadataRetry::default();
        retry.max_wait = Duration::from_secs(30);
        c.retry = retry;
    });
    let err = pin_err(&patient).await;
    assert!(matches!(err.kind(), HubErrorKind::RateLimited { .. }));
    assert_eq!(hub.log().entries().len(), before + 1);
}

#[tokio::test]
async fn server_errors_are_retried() {
    let hub = fake_hub().await;
    hub.faults().inject(
        Fault::new(FaultKind::Status(503))
            .on(FaultTarget::Api)
            .times(2),
    );
    let client = client_with(hub.endpoint(), None, |c| {
        let mut retry = MetadataRetry::default();
        retry.base_delay = Duration::from_millis(10);
        retry.max_delay = Duration::from_millis(20);
        c.retry = retry;
    });
    let r = repo("org/m", RepoType::Model);
    let commit = client.pin_revision(&r, &Revision::default()).await.unwrap();
    assert_eq!(commit.as_str(), hub.commit("org/m", "main").unwrap());
    assert_eq!(hub.log().faults_fired().len(), 2);
    assert_eq!(client.requests_sent(), 3);
    // Without retries the 503 is a server error.
    hub.faults()
        .inject(Fault::new(FaultKind::Status(503)).on(FaultTarget::Api));
    let err = hub_client(&hub, None)
        .list_files(&r, &commit)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), HubErrorKind::Server);
    assert!(err.is_retryable());
}

#[tokio::test]
async fn unreachable_endpoint() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let err = pin_err(&client(&format!("http://{addr}"), Some("hf_secret"))).await;
    assert_eq!(err.kind(), HubErrorKind::Unreachable);
    assert!(err.to_string().contains(&addr.to_string()), "{err}");
    assert!(!format!("{err:?}").contains("hf_secret"));
}

#[tokio::test]
async fn malformed_answers() {
    let server = RawServer::start(|_, _, target| {
        if target.contains("/revision/") {
            RawAnswer::new("200 OK", "<html>captive portal</html>")
        } else if target.contains("/tree/") {
            RawAnswer::new("200 OK", r#"{"not": "an array"}"#)
        } else {
            RawAnswer::new("404 Not Found", "")
        }
    })
    .await;
    let c = client(&server.base, None);
    let r = repo("org/m", RepoType::Model);
    let err = c.pin_revision(&r, &Revision::default()).await.unwrap_err();
    assert_eq!(err.kind(), HubErrorKind::Malformed);
    let err = c.list_files(&r, &commit()).await.unwrap_err();
    assert_eq!(err.kind(), HubErrorKind::Malformed);
    // A revision answer with a bad sha.
    let server = RawServer::start(|_, _, _| RawAnswer::new("200 OK", r#"{"sha": "abc"}"#)).await;
    let err = client(&server.base, None)
        .pin_revision(&r, &Revision::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), HubErrorKind::Malformed);
    assert!(err.to_string().contains("40-hex"), "{err}");
}

#[tokio::test]
async fn oversized_json_is_refused() {
    let server =
        RawServer::start(|_, _, _| RawAnswer::new("200 OK", format!("[{}]", " ".repeat(5000))))
            .await;
    let c = client_with(&server.base, None, |c| c.max_json_bytes = 1024);
    let err = list_err(&c).await;
    assert_eq!(err.kind(), HubErrorKind::Malformed);
    assert!(err.to_string().contains("1024"), "{err}");
}

#[tokio::test]
async fn a_resolve_answer_without_hub_headers_is_a_quirk_not_an_error() {
    // Olah answers a resolve GET with neither X-Repo-Commit nor ETag, chunked:
    // the pinned commit is in the URL and the listing's hash is the identity.
    let server = RawServer::start(|_, _, _| RawAnswer::new("200 OK", "h")).await;
    let resolved = client(&server.base, None)
        .resolve(
            &repo("org/m", RepoType::Model),
            &Commit::parse(COMMIT).unwrap(),
            &regular("a.txt"),
        )
        .await
        .unwrap();
    assert_eq!(resolved.etag, SHA1);
    assert_eq!(resolved.size, 1);
    // A header that contradicts the listing is still an error.
    let server = RawServer::start(|_, _, _| RawAnswer::new("200 OK", "hello")).await;
    let err = client(&server.base, None)
        .resolve(&model(), &commit(), &regular("a.txt"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Changed { what: "size", .. }), "{err}");
}

#[tokio::test]
async fn hostile_listing_paths_are_refused() {
    for hostile in [
        "../../.bashrc",
        "/etc/passwd",
        "a/../../b",
        "a\\\\..\\\\b",
        "./x",
    ] {
        let body = format!(
            r#"[{{"type":"file","oid":"{SHA1}","size":1,"path":"ok.txt"}},
                {{"type":"file","oid":"{SHA1}","size":1,"path":"{hostile}"}}]"#
        );
        let server = RawServer::start(move |_, _, _| RawAnswer::new("200 OK", body.clone())).await;
        let err = list_err(&client(&server.base, None)).await;
        assert_eq!(err.kind(), HubErrorKind::UnsafePath, "{hostile}: {err}");
        // Display shows the path in Debug form (backslashes escaped).
        assert!(err.to_string().contains(hostile), "{err}");
    }
}

#[tokio::test]
async fn repeated_page_is_an_incomplete_listing() {
    // Like Olah: the cursor is ignored and page 1 comes back every time.
    let server = RawServer::start(|base, _, target| {
        let next = format!(
            "{base}/api/models/org/m/tree/{COMMIT}?recursive=true&cursor=x{}",
            target.len()
        );
        RawAnswer::new(
            "200 OK",
            format!(r#"[{{"type":"file","oid":"{SHA1}","size":1,"path":"a.txt"}}]"#),
        )
        .header("link", format!("<{next}>; rel=\"next\""))
    })
    .await;
    let err = list_err(&client(&server.base, None)).await;
    assert!(matches!(err, Error::IncompleteListing { .. }), "{err}");
    assert!(err.to_string().contains("repeats"), "{err}");
    assert_eq!(server.requests().len(), 2);
}

#[tokio::test]
async fn next_link_to_a_foreign_host_is_refused() {
    let server = RawServer::start(|_, _, _| {
        RawAnswer::new(
            "200 OK",
            format!(r#"[{{"type":"file","oid":"{SHA1}","size":1,"path":"a"}}]"#),
        )
        .header("link", "<http://127.0.0.1:1/steal?cursor=1>; rel=\"next\"")
    })
    .await;
    let err = list_err(&client(&server.base, Some("hf_secret"))).await;
    assert!(matches!(err, Error::IncompleteListing { .. }), "{err}");
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn redirect_loop_and_off_hub_api_redirect() {
    let looping = RawServer::start(|_, _, target| {
        RawAnswer::new("307 Temporary Redirect", "").header("location", format!("{target}x"))
    })
    .await;
    let err = pin_err(&client(&looping.base, None)).await;
    assert!(
        matches!(err, Error::TooManyRedirects { hops: 10, .. }),
        "{err}"
    );
    assert_eq!(looping.requests().len(), 11);

    let elsewhere = RawServer::start(|_, _, _| {
        RawAnswer::new("302 Found", "").header("location", "http://127.0.0.1:1/api/x")
    })
    .await;
    let err = pin_err(&client(&elsewhere.base, Some("hf_secret"))).await;
    assert!(matches!(err, Error::OffHubRedirect { .. }), "{err}");
}

#[tokio::test]
async fn cross_host_redirect_stops_and_drops_the_token() {
    // A "CDN" that would record an Authorization header.
    let cdn = RawServer::start(|_, _, _| RawAnswer::new("200 OK", "x")).await;
    let cdn_base = cdn.base.clone();
    let hub = RawServer::start(move |_, _, target| {
        if target.contains("/resolve/") {
            // Relative hop first (query of the target kept), then the CDN.
            RawAnswer::new("307 Temporary Redirect", "")
                .header(
                    "location",
                    "/api/resolve-cache/models/org/m/c/a.txt?etag=%22x%22",
                )
                .header("content-length-ignored", "1")
        } else {
            RawAnswer::new("302 Found", "0123456789")
                .header(
                    "location",
                    format!("{cdn_base}/blob?X-Amz-Signature=s3cr3t"),
                )
                .header("x-repo-commit", COMMIT)
                .header("x-linked-etag", format!("\"{SHA1}\""))
                .header("x-linked-size", "1")
        }
    })
    .await;
    let c = client(&hub.base, Some("hf_secret"));
    let resolved = c
        .resolve(&model(), &commit(), &regular("a.txt"))
        .await
        .unwrap();
    assert!(resolved.is_cdn && !resolved.send_token);
    assert_eq!(resolved.size, 1);
    assert_eq!(
        resolved.url.expose(),
        format!("{}/blob?X-Amz-Signature=s3cr3t", cdn.base)
    );
    assert!(!resolved.url.to_string().contains("s3cr3t"));
    assert!(c.download_headers(&resolved).is_empty());
    let seen = hub.requests();
    assert_eq!(
        seen,
        [
            format!("HEAD /org/m/resolve/{COMMIT}/a.txt [auth]"),
            "HEAD /api/resolve-cache/models/org/m/c/a.txt?etag=%22x%22 [auth]".to_owned(),
        ]
    );
    assert!(
        cdn.requests().is_empty(),
        "the CDN is never asked by resolve"
    );
}

#[tokio::test]
async fn a_refused_first_connection_is_not_retried() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://127.0.0.1:{}", closed.local_addr().unwrap().port());
    drop(closed);
    let c = client_with(&endpoint, None, |c| {
        c.retry = MetadataRetry::default();
        c.retry.base_delay = Duration::from_millis(1);
    });
    let err = c
        .pin_revision(
            &repo("org/m", RepoType::Model),
            &Revision::new("main").unwrap(),
        )
        .await
        .unwrap_err();
    assert!(err.is_refused(), "{err}");
    assert_eq!(c.requests_sent(), 1, "retried: {err}");
}
