//! Split routing for Clash users (issue #13 item 4): the mirror direct via
//! `NO_PROXY`, every other host (a CDN or bridge host the mirror redirects
//! to) through `HTTPS_PROXY` or `ALL_PROXY=socks5h://…`, proven with real
//! proxies (tinyproxy, microsocks) whose logs show what went through them.
//! The fake hub serves TLS at `127.0.0.1` and names its CDN `localhost`, so
//! the two are different hosts.

use std::time::Duration;

use hfd_testkit::support::{Microsocks, Tinyproxy, free_port};
use hfd_testkit::{FakeHub, MIB, RepoFixture, Transport};

use crate::support::{Run, assert_same_files, run_with};

const REPO: &str = "org/split";

async fn hub() -> FakeHub {
    FakeHub::builder()
        .repo(
            RepoFixture::model(REPO)
                .regular_file("config.json", "{\"split\": true}\n")
                .lfs_file("model.safetensors", 2 * MIB + 1, 91),
        )
        .transport(Transport::Tls)
        .cdn_host("localhost")
        .start()
        .await
        .expect("fake hub")
}

/// Downloads [`REPO`] with the proxy variables `envs` (and the hub's CA).
async fn download(hub: &FakeHub, envs: &[(&str, &str)]) -> (Run, tempfile::TempDir) {
    let out = tempfile::tempdir().expect("tempdir");
    let dir = out.path().join("m");
    let ca = hub
        .ca_cert_path()
        .expect("TLS hub")
        .to_str()
        .expect("utf-8");
    let mut all = vec![("SSL_CERT_FILE", ca)];
    all.extend_from_slice(envs);
    let run = run_with(
        &[
            REPO,
            "--endpoint",
            hub.endpoint(),
            "--local-dir",
            dir.to_str().expect("utf-8"),
            "--retries",
            "1",
            "--retry-wait",
            "0.2",
        ],
        &all,
        out.path(),
        Duration::from_mins(1),
    )
    .await;
    (run, out)
}

fn cdn(hub: &FakeHub) -> String {
    format!("localhost:{}", hub.cdn_addr().port())
}

fn mirror(hub: &FakeHub) -> String {
    format!("127.0.0.1:{}", hub.hub_addr().port())
}

#[tokio::test(flavor = "multi_thread")]
async fn mirror_direct_and_the_cdn_through_an_http_proxy() {
    let Some(proxy) = (Tinyproxy {
        user: "alice",
        pass: "s3cret",
        bind: None,
        max_clients: 50,
    })
    .start() else {
        return;
    };
    let hub = hub().await;
    let url = format!("http://alice:s3cret@127.0.0.1:{}", proxy.port);
    let (run, out) = download(&hub, &[("HTTPS_PROXY", &url), ("NO_PROXY", "127.0.0.1")]).await;
    run.expect_code(0);
    assert_same_files(&hub, REPO, &out.path().join("m"));
    let log = proxy.stop();
    assert!(log.contains(&format!("CONNECT {}", cdn(&hub))), "{log}");
    assert!(!log.contains(&format!("CONNECT {}", mirror(&hub))), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn mirror_direct_and_the_cdn_through_socks5h() {
    let Some(proxy) = (Microsocks {
        credentials: Some(("bob", "pw")),
        bind: None,
    })
    .start() else {
        return;
    };
    let hub = hub().await;
    let url = format!("socks5h://bob:pw@127.0.0.1:{}", proxy.port);
    // Lower-case names, as Clash's "copy shell command" writes them.
    let (run, out) = download(&hub, &[("all_proxy", &url), ("no_proxy", "127.0.0.1,::1")]).await;
    run.expect_code(0);
    assert_same_files(&hub, REPO, &out.path().join("m"));
    let log = proxy.stop();
    // microsocks logs the client and `connected to HOST:PORT`; socks5h
    // sends the name, so it is the proxy that resolves `localhost`.
    let port = hub.cdn_addr().port().to_string();
    assert!(
        log.lines().any(|l| l.contains(&port)),
        "no tunnel to the CDN: {log}"
    );
    let hub_port = hub.hub_addr().port().to_string();
    assert!(
        !log.lines().any(|l| l.contains(&format!(":{hub_port}"))),
        "{log}"
    );
}

/// The redirect leaves the mirror for a host the proxy cannot be reached
/// for: the error names that host (and the proxy), not just "failed".
#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_redirect_host_is_named() {
    let hub = hub().await;
    let dead = format!("http://127.0.0.1:{}", free_port());
    let (run, _out) = download(&hub, &[("HTTPS_PROXY", &dead), ("NO_PROXY", "127.0.0.1")]).await;
    assert_ne!(run.code, 0, "{}", run.stderr);
    let last = run
        .stderr
        .lines()
        .rfind(|l| l.contains("error:"))
        .unwrap_or_default();
    assert!(
        last.contains(&cdn(&hub)),
        "the error does not name the CDN host: {}",
        run.stderr
    );
    assert!(
        last.contains("proxy"),
        "the error does not say a proxy was used: {}",
        run.stderr
    );
}
