//! Whole downloads through real proxies started here on loopback:
//! `tinyproxy` (HTTP CONNECT, Debian package `tinyproxy`) and `microsocks`
//! (SOCKS5, package `microsocks`). The proxy's own log is the proof that
//! both the hub and the CDN were reached through it.
//!
//! When a binary is missing the test prints why and passes, unless `CI` is
//! set, where it fails.

use hfd::hfd_http::{ProxyConfig, ProxyUrl};
use hfd_testkit::support::{Microsocks, ProxyProcess, Tinyproxy};
use hfd_testkit::{FakeHub, Transport};

use crate::{
    MODEL, Setup, assert_files_match, assert_request_budget, download, model_hub, model_repo,
};

fn tinyproxy() -> Option<ProxyProcess> {
    Tinyproxy {
        user: "alice",
        pass: "s3cret",
        bind: None,
        max_clients: 100,
    }
    .start()
}

fn microsocks() -> Option<ProxyProcess> {
    Microsocks {
        credentials: Some(("bob", "pw")),
        bind: None,
    }
    .start()
}

async fn download_through(hub: &FakeHub, proxy_url: &str) {
    let proxy = ProxyConfig::all(ProxyUrl::parse(proxy_url).expect("proxy URL"));
    let dir = tempfile::tempdir().expect("tempdir");
    let run = download(hub, &model_repo(), dir.path(), &Setup::fast(), Some(proxy)).await;
    let report = run.result.expect("download through the proxy");
    assert_eq!(report.files_done, hub.files(MODEL).len());
    assert_files_match(hub, MODEL, dir.path());
    assert_request_budget(hub, MODEL);
}

async fn through_tinyproxy(transport: Transport) {
    let Some(proxy) = tinyproxy() else {
        return;
    };
    let hub = model_hub(transport).await;
    download_through(
        &hub,
        &format!("http://alice:s3cret@127.0.0.1:{}", proxy.port),
    )
    .await;
    let log = proxy.stop();
    for addr in [hub.hub_addr(), hub.cdn_addr()] {
        assert!(
            log.contains(&format!("CONNECT 127.0.0.1:{}", addr.port())),
            "no tunnel to {addr} in the proxy log: {log}"
        );
    }
}

async fn through_microsocks(transport: Transport) {
    let Some(proxy) = microsocks() else {
        return;
    };
    let hub = model_hub(transport).await;
    download_through(&hub, &format!("socks5h://bob:pw@127.0.0.1:{}", proxy.port)).await;
    let log = proxy.stop();
    for addr in [hub.hub_addr(), hub.cdn_addr()] {
        assert!(
            log.contains(&format!("connected to 127.0.0.1:{}", addr.port())),
            "no connection to {addr} in the proxy log: {log}"
        );
    }
}

mod tinyproxy_connect {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn http1() {
        super::through_tinyproxy(hfd_testkit::Transport::Http1).await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn tls() {
        super::through_tinyproxy(hfd_testkit::Transport::Tls).await;
    }
}

mod microsocks_socks5h {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn h2c() {
        super::through_microsocks(hfd_testkit::Transport::H2c).await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn tls() {
        super::through_microsocks(hfd_testkit::Transport::Tls).await;
    }
}
