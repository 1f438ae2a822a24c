//! hfd-serve against real clients: a cache (or local dir) that hfd-rs wrote
//! from the fake hub is served, then hfd-rs, huggingface_hub and aria2c
//! download from it and every byte is compared with the fixture.

#![expect(
    clippy::disallowed_methods,
    reason = "tests read CI and PATH and wait on child processes"
)]

mod api;
mod clients;
mod pull;
mod read;
// Symbolic links planted in the served folders: Unix only (Windows needs a
// privilege to create them).
#[cfg(unix)]
mod safety;

use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hfd::hfd_engine::{EngineConfig, NoopReporter};
use hfd::hfd_http::{HttpClient, HttpConfig};
use hfd::hfd_hub::{Endpoint, HubClient, HubConfig, RepoId, RepoRef, Revision, Token};
use hfd::{DownloadReport, DownloadRequest, Downloader};
use hfd_serve::{RequestRecord, ServeConfig, Server};
use hfd_testkit::{FakeHub, KIB, MIB, RepoFixture};
use tokio_util::sync::CancellationToken;

pub(crate) const TOKEN: &str = "hf_good_token";
pub(crate) const LIMITED: &str = "hf_limited_token";
pub(crate) const MODEL: &str = "org/model";
pub(crate) const DATA: &str = "org/data";

/// A model with LFS files big enough to be split, regular files (one
/// nested), and a small dataset with awkward names.
pub(crate) fn model_fixture() -> RepoFixture {
    RepoFixture::model(MODEL)
        .regular_file("config.json", "{\"model_type\": \"serve\"}\n")
        .regular_file("sub/dir/notes.txt", "notes\n")
        .seeded_regular_file("tokenizer.json", 300 * KIB + 3, 11)
        .lfs_file("model.safetensors", 3 * MIB + 17, 7)
        .lfs_file("small.bin", 40 * KIB, 8)
}

pub(crate) async fn fake_hub() -> FakeHub {
    FakeHub::builder()
        .repo(model_fixture())
        .repo(RepoFixture::synthetic_dataset(DATA, 12, 3))
        .repo(
            RepoFixture::model("org/gated")
                .gated()
                .regular_file("config.json", "{\"gated\": true}\n")
                .lfs_file("weights.bin", 200 * KIB, 31),
        )
        .token(TOKEN)
        .token_without_access(LIMITED)
        .start()
        .await
        .expect("fake hub starts")
}

pub(crate) fn model() -> RepoRef {
    RepoRef::model(RepoId::new(MODEL).unwrap())
}

pub(crate) fn dataset() -> RepoRef {
    RepoRef::dataset(RepoId::new(DATA).unwrap())
}

/// Many connections per file, small segments: every big file is split.
pub(crate) fn engine(connections: usize) -> EngineConfig {
    let nz = |n| NonZeroUsize::new(n).unwrap();
    let mut engine = EngineConfig::default();
    engine.connections_per_file = nz(connections);
    engine.files_in_flight = nz(4);
    engine.max_connections = nz(connections * 4);
    engine.min_split_size = hfd_types::ByteSize::kib(64);
    engine.stall_timeout = Duration::from_secs(10);
    engine.retry.max_retries = 3;
    engine
}

/// An HTTP client; `h2c` speaks HTTP/2 by prior knowledge, `ca` is trusted.
pub(crate) fn http(h2c: bool, ca: Option<&Path>) -> HttpClient {
    let mut http = HttpConfig::default();
    http.http2_prior_knowledge = h2c;
    http.connect_timeout = Duration::from_secs(5);
    http.stall_timeout = Duration::from_secs(20);
    if let Some(ca) = ca {
        http.extra_ca_files = vec![ca.to_path_buf()];
    }
    HttpClient::new(http).expect("HTTP client")
}

pub(crate) fn hub_config(endpoint: &str, token: Option<&str>) -> HubConfig {
    let mut config = HubConfig::default();
    config.endpoint = Endpoint::parse(endpoint).expect("endpoint");
    config.token = token.map(|t| Token::new(t).unwrap());
    config.retry.max_retries = 2;
    config.retry.base_delay = Duration::from_millis(20);
    config.retry.max_delay = Duration::from_millis(100);
    config
}

/// Where a download goes.
pub(crate) enum Dest<'a> {
    Dir(&'a Path),
    Cache(&'a Path),
}

/// Every file of `repo` at `main` from `endpoint`.
pub(crate) async fn download(
    endpoint: &str,
    http: &HttpClient,
    repo: &RepoRef,
    into: Dest<'_>,
    connections: usize,
    token: Option<&str>,
) -> hfd::Result<DownloadReport> {
    let hub = HubClient::new(hub_config(endpoint, token), http.clone());
    let downloader = Downloader::new(hub, http.clone(), engine(connections));
    let revision = Revision::new("main").unwrap();
    let request = match into {
        Dest::Dir(dir) => DownloadRequest::new(repo.clone(), revision, dir),
        Dest::Cache(root) => {
            let mut r = DownloadRequest::new(repo.clone(), revision, root);
            r.layout = hfd::OutputLayout::hub_cache(root);
            r
        }
    };
    let plan = downloader.plan(&request).await?;
    downloader
        .download(&plan, Arc::new(NoopReporter), CancellationToken::new())
        .await
}

/// Fills a hub cache at `root` with the model and the dataset.
pub(crate) async fn fill_cache(hub: &FakeHub, root: &Path) {
    let http = http(false, None);
    for repo in [model(), dataset()] {
        download(hub.endpoint(), &http, &repo, Dest::Cache(root), 4, None)
            .await
            .expect("cache filled from the fake hub");
    }
}

/// A running server and what it logged.
pub(crate) struct Served {
    pub(crate) url: String,
    pub(crate) addr: std::net::SocketAddr,
    pub(crate) log: Arc<Mutex<Vec<RequestRecord>>>,
    shutdown: CancellationToken,
}

impl Drop for Served {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl Served {
    pub(crate) fn records(&self) -> Vec<RequestRecord> {
        self.log.lock().unwrap().clone()
    }
}

pub(crate) fn config() -> ServeConfig {
    ServeConfig::new("127.0.0.1:0".parse().unwrap())
}

pub(crate) async fn serve(mut config: ServeConfig) -> Served {
    let log: Arc<Mutex<Vec<RequestRecord>>> = Arc::default();
    let sink = Arc::clone(&log);
    config.log = Some(Arc::new(move |r: &RequestRecord| {
        sink.lock().unwrap().push(r.clone());
    }));
    let server = Server::bind(config).await.expect("server binds");
    let url = server.url();
    let addr = server.local_addr();
    let shutdown = CancellationToken::new();
    tokio::spawn(server.run(shutdown.clone()));
    Served {
        url,
        addr,
        log,
        shutdown,
    }
}

/// Every file of `repo_id` is below `dir`, byte for byte, and nothing else
/// (outside `.cache`).
pub(crate) fn assert_files_match(hub: &FakeHub, repo_id: &str, dir: &Path) {
    let expected: Vec<String> = hub.files(repo_id).into_iter().map(|f| f.path).collect();
    assert!(!expected.is_empty());
    let mut found = walk(dir);
    found.sort();
    let mut sorted = expected.clone();
    sorted.sort();
    assert_eq!(found, sorted, "files below {}", dir.display());
    for path in &expected {
        let want = hub.file_bytes(repo_id, path).unwrap();
        let got = std::fs::read(dir.join(path)).unwrap();
        assert!(
            got == want,
            "{repo_id}:{path} differs ({} bytes, want {})",
            got.len(),
            want.len()
        );
    }
}

/// Regular files below `dir` (following symlinks), skipping `.cache`.
pub(crate) fn walk(dir: &Path) -> Vec<String> {
    fn go(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.file_name().is_some_and(|n| n == ".cache") {
                continue;
            }
            if path.is_dir() {
                go(root, &path, out);
            } else {
                let rel = path.strip_prefix(root).unwrap();
                out.push(
                    rel.components()
                        .map(|c| c.as_os_str().to_string_lossy().into_owned())
                        .collect::<Vec<_>>()
                        .join("/"),
                );
            }
        }
    }
    let mut out = Vec::new();
    go(dir, dir, &mut out);
    out
}

/// One raw HTTP/1.1 exchange (the request is sent as written, so paths
/// reach the server without any client-side normalisation).
pub(crate) struct Raw {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl Raw {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }
}

pub(crate) async fn raw(
    addr: std::net::SocketAddr,
    method: &str,
    target: &str,
    extra: &[(&str, &str)],
    body: &[u8],
) -> Raw {
    use std::fmt::Write as _;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut req = format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in extra {
        let _ = write!(req, "{k}: {v}\r\n");
    }
    if !body.is_empty() || method == "POST" {
        let _ = write!(req, "Content-Length: {}\r\n", body.len());
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut buf))
        .await
        .expect("answer within 30 s")
        .unwrap();
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a header block");
    let head = String::from_utf8_lossy(&buf[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Raw {
        status,
        headers,
        body: buf[split + 4..].to_vec(),
    }
}

/// `Some(())` when `program` runs; `None` = skip, except under CI.
pub(crate) fn tool_available(program: &str, args: &[&str]) -> Option<()> {
    let out = std::process::Command::new(program).args(args).output();
    match out {
        Ok(o) if o.status.success() => Some(()),
        other => {
            let why = match other {
                Ok(o) => String::from_utf8_lossy(&o.stderr).into_owned(),
                Err(e) => e.to_string(),
            };
            assert!(
                std::env::var_os("CI").is_none(),
                "CI is set but {program} is not usable: {why}"
            );
            eprintln!(
                "SKIPPED: {program} not available ({})",
                why.lines().last().unwrap_or("")
            );
            None
        }
    }
}

/// A throwaway CA and a leaf for 127.0.0.1, written as PEM files in `dir`:
/// (ca, cert chain, key).
pub(crate) fn tls_files(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair, SanType};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::default();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut leaf = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    leaf.subject_alt_names
        .push(SanType::IpAddress([127, 0, 0, 1].into()));
    let cert = leaf.signed_by(&key, &ca_cert, &ca_key).unwrap();
    let (ca_path, cert_path, key_path) = (
        dir.join("ca.pem"),
        dir.join("cert.pem"),
        dir.join("key.pem"),
    );
    std::fs::write(&ca_path, ca_cert.pem()).unwrap();
    std::fs::write(&cert_path, format!("{}{}", cert.pem(), ca_cert.pem())).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    (ca_path, cert_path, key_path)
}
