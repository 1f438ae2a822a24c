//! Whole downloads through real proxies started here on loopback:
//! `tinyproxy` (HTTP CONNECT, Debian package `tinyproxy`) and `microsocks`
//! (SOCKS5, package `microsocks`). The proxy's own log is the proof that
//! both the hub and the CDN were reached through it.
//!
//! When a binary is missing the test prints why and passes, unless `CI` is
//! set, where it fails.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use hfd::hfd_http::{ProxyConfig, ProxyUrl};
use hfd_testkit::{FakeHub, Transport};

use crate::{
    MODEL, Setup, assert_files_match, assert_request_budget, download, model_hub, model_repo,
};

fn find_binary(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/bin", "/sbin", "/bin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// The binary, or `None` after printing why the test is skipped; panics in CI.
fn require(name: &str, package: &str) -> Option<PathBuf> {
    let found = find_binary(name);
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{name} is required in CI: install the Debian package `{package}`"
        );
        eprintln!(
            "SKIPPED: `{name}` not found; install the Debian package `{package}` to run this test"
        );
    }
    found
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// A proxy process, killed when dropped.
struct ProxyProcess {
    child: Child,
    port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl ProxyProcess {
    fn spawn(mut command: Command, port: u16, log: PathBuf, dir: tempfile::TempDir) -> Self {
        let out = std::fs::File::create(dir.path().join("stdout.log")).expect("log file");
        let child = command
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log file"))
            .stderr(out)
            .spawn()
            .expect("proxy starts");
        let mut proxy = Self {
            child,
            port,
            log,
            _dir: dir,
        };
        proxy.wait_listening();
        proxy
    }

    /// Bounded wait until the port accepts connections.
    fn wait_listening(&mut self) {
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            if let Some(status) = self.child.try_wait().expect("wait") {
                panic!("proxy exited early ({status}): {}", self.log_text());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("proxy did not start listening on {}", self.port);
    }

    /// Stops the proxy and returns its log (read after exit, so complete).
    fn stop(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.log_text()
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for ProxyProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tinyproxy() -> Option<ProxyProcess> {
    let bin = require("tinyproxy", "tinyproxy")?;
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let log = dir.path().join("tinyproxy.log");
    let conf = dir.path().join("tinyproxy.conf");
    let pid = dir.path().join("tinyproxy.pid");
    std::fs::write(
        &conf,
        format!(
            "Port {port}\nListen 127.0.0.1\nTimeout 30\nMaxClients 100\n\
             LogFile \"{}\"\nPidFile \"{}\"\nLogLevel Connect\nBasicAuth alice s3cret\n",
            log.display(),
            pid.display()
        ),
    )
    .expect("config");
    let mut command = Command::new(bin);
    command.arg("-d").arg("-c").arg(&conf);
    Some(ProxyProcess::spawn(command, port, log, dir))
}

fn microsocks() -> Option<ProxyProcess> {
    let bin = require("microsocks", "microsocks")?;
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let mut command = Command::new(bin);
    command.args([
        "-i",
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "-u",
        "bob",
        "-P",
        "pw",
    ]);
    let log = dir.path().join("stdout.log");
    Some(ProxyProcess::spawn(command, port, log, dir))
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
