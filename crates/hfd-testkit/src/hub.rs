//! The fake hub: builder, listeners, accept loops and the test-facing handle.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

use crate::content::{Blob, CHUNK};
use crate::error::Error;
use crate::fault::Faults;
use crate::fixture::{CommitChange, FileInfo, RepoFixture};
use crate::log::{ConnShared, Origin, RequestLog};
use crate::net::{MeteredIo, burst_for};
use crate::state::{HubState, RepoState, file_info};

/// How both listeners speak HTTP.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Transport {
    /// Plain HTTP/1.1 only.
    #[default]
    Http1,
    /// Plain TCP serving HTTP/1.1 and HTTP/2 with prior knowledge (h2c) on one port.
    H2c,
    /// TLS with ALPN `h2` and `http/1.1`, certificate for 127.0.0.1 / localhost / ::1 signed
    /// by a CA written to [`FakeHub::ca_cert_path`].
    Tls,
}

/// Chooses the rate limit (bytes per second) of each accepted connection from its listener
/// and its index among that listener's connections (from 0); `None` = unthrottled.
pub type RateChooser = Arc<dyn Fn(Origin, u64) -> Option<u64> + Send + Sync>;

/// Shared by every connection task.
pub(crate) struct Shared {
    pub(crate) state: RwLock<HubState>,
    pub(crate) log: RequestLog,
    pub(crate) faults: Faults,
    pub(crate) tokens_full: Vec<String>,
    pub(crate) tokens_limited: Vec<String>,
    /// The hub's base URL, its path prefix included.
    pub(crate) hub_base: String,
    /// Where the hub is mounted (`/hf`), or empty.
    pub(crate) prefix: String,
    pub(crate) cdn_base: String,
    /// The CDN is named by another host (`cdn_host`): a Xet bridge.
    pub(crate) bridge: bool,
    pub(crate) secret: String,
    pub(crate) tree_page_size: usize,
    pub(crate) latency: Duration,
    pub(crate) strict_cdn: bool,
    pub(crate) request_counter: AtomicU64,
}

/// Configures and starts a [`FakeHub`].
pub struct FakeHubBuilder {
    repos: Vec<RepoFixture>,
    transport: Transport,
    rate: Option<RateChooser>,
    latency: Duration,
    tokens_full: Vec<String>,
    tokens_limited: Vec<String>,
    tree_page_size: usize,
    cdn_url_ttl: Duration,
    strict_cdn: bool,
    hub_port: u16,
    cdn_port: u16,
    prefix: String,
    cdn_host: Option<String>,
    max_conns_per_client: Option<usize>,
}

impl std::fmt::Debug for FakeHubBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeHubBuilder")
            .field("repos", &self.repos.len())
            .field("transport", &self.transport)
            .field("throttled", &self.rate.is_some())
            .field("latency", &self.latency)
            .field("tree_page_size", &self.tree_page_size)
            .finish_non_exhaustive()
    }
}

impl FakeHubBuilder {
    /// Adds a repo.
    #[must_use]
    pub fn repo(mut self, repo: RepoFixture) -> Self {
        self.repos.push(repo);
        self
    }

    /// Sets the transport of both listeners. Default: [`Transport::Http1`].
    #[must_use]
    pub fn transport(mut self, transport: Transport) -> Self {
        self.transport = transport;
        self
    }

    /// Throttles every TCP connection (both listeners) to `bytes_per_sec`, with a token
    /// bucket of a tenth of a second (1 KiB–256 KiB) wrapping the socket.
    #[must_use]
    pub fn rate_per_connection(mut self, bytes_per_sec: u64) -> Self {
        self.rate = Some(Arc::new(move |_, _| Some(bytes_per_sec)));
        self
    }

    /// Chooses each connection's rate, e.g. "one CDN connection in four is slow":
    /// `|origin, i| (origin == Origin::Cdn && i % 4 == 0).then_some(512 * 1024)`.
    #[must_use]
    pub fn rate_chooser(
        mut self,
        chooser: impl Fn(Origin, u64) -> Option<u64> + Send + Sync + 'static,
    ) -> Self {
        self.rate = Some(Arc::new(chooser));
        self
    }

    /// Caps the TCP connections one client address may hold open to each
    /// listener, as a mirror's per-IP limit (nginx `limit_conn`) does: a
    /// connection opened beyond the cap gets `429 Too Many Requests` (no
    /// `Retry-After`) to its first request and is closed. Default: none.
    #[must_use]
    pub fn max_connections_per_client(mut self, n: usize) -> Self {
        self.max_conns_per_client = Some(n);
        self
    }

    /// Serves the hub under a path prefix (`/hf`), as a reverse proxy or a
    /// worker that mounts the Hub below a path does: requests outside it are
    /// 404; links name the prefixed URL; redirects keep the Hub's own
    /// absolute paths (`/api/resolve-cache/…`), as such proxies pass them
    /// through. The CDN is not prefixed. Default: none.
    #[must_use]
    pub fn mount_prefix(mut self, prefix: &str) -> Self {
        self.prefix = format!("/{}", prefix.trim_matches('/'));
        self
    }

    /// Names the CDN by `host` (e.g. `localhost`) in LFS redirects instead of
    /// the hub's `127.0.0.1`: a bridge host on another domain, as the Hub's
    /// `cas-bridge.xethub.hf.co` is to `huggingface.co`. The redirect then
    /// also carries `X-Xet-Hash`. `host` must resolve to loopback.
    #[must_use]
    pub fn cdn_host(mut self, host: &str) -> Self {
        self.cdn_host = Some(host.to_owned());
        self
    }

    /// Adds this delay before every response. Default: none.
    #[must_use]
    pub fn latency(mut self, latency: Duration) -> Self {
        self.latency = latency;
        self
    }

    /// Registers a valid token with access to every repo (private and gated included).
    #[must_use]
    pub fn token(mut self, token: &str) -> Self {
        self.tokens_full.push(token.to_owned());
        self
    }

    /// Registers a valid token without access to private or gated repos.
    #[must_use]
    pub fn token_without_access(mut self, token: &str) -> Self {
        self.tokens_limited.push(token.to_owned());
        self
    }

    /// Tree entries per page (without `expand`; with it, at most 50). Default: 1000.
    #[must_use]
    pub fn tree_page_size(mut self, entries: usize) -> Self {
        self.tree_page_size = entries.max(1);
        self
    }

    /// `X-Amz-Expires` of CDN URLs. Default: 3600 s. Changeable at runtime with
    /// [`Faults::set_cdn_url_ttl`].
    #[must_use]
    pub fn cdn_url_ttl(mut self, ttl: Duration) -> Self {
        self.cdn_url_ttl = ttl;
        self
    }

    /// Makes the CDN answer 400 to requests carrying `Authorization`, as S3 does ("Only one
    /// auth mechanism allowed"). Default: off (such requests are only logged).
    #[must_use]
    pub fn strict_cdn(mut self, strict: bool) -> Self {
        self.strict_cdn = strict;
        self
    }

    /// Fixed ports (0 = any free port, the default). For the standalone binary.
    #[must_use]
    pub fn ports(mut self, hub_port: u16, cdn_port: u16) -> Self {
        self.hub_port = hub_port;
        self.cdn_port = cdn_port;
        self
    }

    /// Hashes the fixtures (on a blocking thread), binds both listeners on 127.0.0.1 and
    /// starts serving. Must be called inside a tokio runtime; the hub stops when the
    /// returned handle is dropped.
    pub async fn start(self) -> Result<FakeHub, Error> {
        let repos = self.repos;
        let state = tokio::task::spawn_blocking(move || HubState::build(repos))
            .await
            .map_err(|e| Error::InvalidFixture {
                reason: format!("fixture hashing panicked: {e}"),
            })??;

        let bind = |port: u16, listener: &'static str| async move {
            TcpListener::bind(("127.0.0.1", port))
                .await
                .map_err(|source| Error::Bind { listener, source })
        };
        let hub_listener = bind(self.hub_port, "hub").await?;
        let cdn_listener = bind(self.cdn_port, "cdn").await?;
        let local = |l: &TcpListener, listener| {
            l.local_addr()
                .map_err(|source| Error::Bind { listener, source })
        };
        let hub_addr = local(&hub_listener, "hub")?;
        let cdn_addr = local(&cdn_listener, "cdn")?;

        let (scheme, tls) = if self.transport == Transport::Tls {
            let material = crate::tls::generate()?;
            let dir = tempfile::Builder::new()
                .prefix("hfd-testkit-")
                .tempdir()
                .map_err(|e| Error::Tls {
                    source: Box::new(e),
                })?;
            let path = dir.path().join("fakehub-ca.pem");
            std::fs::write(&path, &material.ca_pem).map_err(|e| Error::Tls {
                source: Box::new(e),
            })?;
            ("https", Some((material, dir, path)))
        } else {
            ("http", None)
        };

        let secret: [u8; 16] = rand::random();
        let shared = Arc::new(Shared {
            state: RwLock::new(state),
            log: RequestLog::default(),
            faults: Faults::new(self.cdn_url_ttl),
            tokens_full: self.tokens_full,
            tokens_limited: self.tokens_limited,
            hub_base: format!("{scheme}://{hub_addr}{}", self.prefix),
            prefix: self.prefix,
            cdn_base: match &self.cdn_host {
                Some(host) => format!("{scheme}://{host}:{}", cdn_addr.port()),
                None => format!("{scheme}://{cdn_addr}"),
            },
            bridge: self.cdn_host.is_some(),
            secret: hex::encode(secret),
            tree_page_size: self.tree_page_size,
            latency: self.latency,
            strict_cdn: self.strict_cdn,
            request_counter: AtomicU64::new(0),
        });
        let acceptor = tls
            .as_ref()
            .map(|(m, _, _)| tokio_rustls::TlsAcceptor::from(m.config.clone()));
        let conn_ids = Arc::new(AtomicU64::new(0));
        let serve = |listener, origin| {
            tokio::spawn(accept_loop(AcceptLoop {
                listener,
                origin,
                shared: shared.clone(),
                acceptor: acceptor.clone(),
                http1_only: self.transport == Transport::Http1,
                rate: self.rate.clone(),
                conn_ids: conn_ids.clone(),
                max_per_client: self.max_conns_per_client,
            }))
        };
        let tasks = vec![
            serve(hub_listener, Origin::Hub),
            serve(cdn_listener, Origin::Cdn),
        ];
        let (ca_pem, ca_dir, ca_path) = match tls {
            Some((m, dir, path)) => (Some(m.ca_pem), Some(dir), Some(path)),
            None => (None, None, None),
        };
        tracing::info!(endpoint = %shared.hub_base, cdn = %shared.cdn_base, "fake hub started");
        Ok(FakeHub {
            shared,
            hub_addr,
            cdn_addr,
            transport: self.transport,
            ca_pem,
            ca_path,
            _ca_dir: ca_dir,
            tasks,
        })
    }
}

struct AcceptLoop {
    listener: TcpListener,
    origin: Origin,
    shared: Arc<Shared>,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    http1_only: bool,
    rate: Option<RateChooser>,
    conn_ids: Arc<AtomicU64>,
    max_per_client: Option<usize>,
}

async fn accept_loop(cfg: AcceptLoop) {
    // Dropping the JoinSet (when this task is aborted) aborts every connection task.
    let mut connections = JoinSet::new();
    let mut index = 0u64;
    // Connections open per client address, for `max_per_client`.
    let open: Arc<std::sync::Mutex<HashMap<IpAddr, usize>>> = Arc::default();
    loop {
        let accepted = tokio::select! {
            accepted = cfg.listener.accept() => accepted,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let (stream, peer) = match accepted {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "fake hub accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let rate = cfg.rate.as_ref().and_then(|f| f(cfg.origin, index));
        let held = OpenSlot::take(&open, peer.ip());
        let over_cap = cfg.max_per_client.is_some_and(|cap| held.count > cap);
        let conn = Arc::new(ConnShared {
            id: cfg.conn_ids.fetch_add(1, Ordering::SeqCst),
            origin: cfg.origin,
            index,
            rate_limit: rate,
            burst: rate.map_or(0, burst_for),
            opened_at: Instant::now(),
            bytes_written: AtomicU64::new(0),
            bytes_read: AtomicU64::new(0),
            closed: std::sync::atomic::AtomicBool::new(false),
            kill: std::sync::atomic::AtomicBool::new(false),
            kill_notify: tokio::sync::Notify::new(),
            over_cap,
        });
        index += 1;
        cfg.shared.log.add_connection(conn.clone());
        let io = MeteredIo::new(stream, conn.clone());
        let shared = cfg.shared.clone();
        let acceptor = cfg.acceptor.clone();
        let http1_only = cfg.http1_only;
        connections.spawn(async move {
            let _held = held;
            let mut builder = auto::Builder::new(TokioExecutor::new());
            if http1_only {
                builder = builder.http1_only();
            }
            let svc_conn = conn.clone();
            let service =
                service_fn(move |req| crate::routes::handle(shared.clone(), svc_conn.clone(), req));
            let served = async {
                match acceptor {
                    Some(acceptor) => match acceptor.accept(io).await {
                        Ok(tls) => builder
                            .serve_connection(TokioIo::new(tls), service)
                            .await
                            .map_err(|e| e.to_string()),
                        Err(e) => Err(e.to_string()),
                    },
                    None => builder
                        .serve_connection(TokioIo::new(io), service)
                        .await
                        .map_err(|e| e.to_string()),
                }
            };
            tokio::select! {
                res = served => {
                    if let Err(e) = res {
                        tracing::debug!(conn = conn.id, error = %e, "fake hub connection ended");
                    }
                }
                () = conn.kill_notify.notified() => {
                    tracing::debug!(conn = conn.id, "fake hub connection reset by fault");
                }
            }
        });
    }
}

/// One open connection of a client address, counted until dropped.
struct OpenSlot {
    open: Arc<std::sync::Mutex<HashMap<IpAddr, usize>>>,
    ip: IpAddr,
    /// Connections of this address open with this one.
    count: usize,
}

impl OpenSlot {
    fn take(open: &Arc<std::sync::Mutex<HashMap<IpAddr, usize>>>, ip: IpAddr) -> Self {
        let mut map = crate::log::lock(open);
        let count = map.entry(ip).or_default();
        *count += 1;
        Self {
            open: Arc::clone(open),
            ip,
            count: *count,
        }
    }
}

impl Drop for OpenSlot {
    fn drop(&mut self) {
        let mut map = crate::log::lock(&self.open);
        if let Some(count) = map.get_mut(&self.ip) {
            *count = count.saturating_sub(1);
        }
    }
}

/// A running fake Hugging Face Hub: an API/resolve listener and a CDN listener on
/// 127.0.0.1. Dropping it stops both and closes every connection.
pub struct FakeHub {
    shared: Arc<Shared>,
    hub_addr: SocketAddr,
    cdn_addr: SocketAddr,
    transport: Transport,
    ca_pem: Option<String>,
    ca_path: Option<std::path::PathBuf>,
    _ca_dir: Option<tempfile::TempDir>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for FakeHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeHub")
            .field("endpoint", &self.shared.hub_base)
            .field("cdn", &self.shared.cdn_base)
            .field("transport", &self.transport)
            .finish_non_exhaustive()
    }
}

impl Drop for FakeHub {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl FakeHub {
    /// A builder with no repos, HTTP/1.1, no throttling, no tokens, 1000 tree entries per page.
    pub fn builder() -> FakeHubBuilder {
        FakeHubBuilder {
            repos: Vec::new(),
            transport: Transport::Http1,
            rate: None,
            latency: Duration::ZERO,
            tokens_full: Vec::new(),
            tokens_limited: Vec::new(),
            tree_page_size: 1000,
            cdn_url_ttl: Duration::from_hours(1),
            strict_cdn: false,
            hub_port: 0,
            prefix: String::new(),
            cdn_host: None,
            cdn_port: 0,
            max_conns_per_client: None,
        }
    }

    /// The value for `HF_ENDPOINT`: `http://127.0.0.1:PORT` (`https://` under TLS).
    pub fn endpoint(&self) -> &str {
        &self.shared.hub_base
    }

    /// Origin of the CDN listener LFS redirects point at.
    pub fn cdn_endpoint(&self) -> &str {
        &self.shared.cdn_base
    }

    /// Address of the hub listener.
    pub fn hub_addr(&self) -> SocketAddr {
        self.hub_addr
    }

    /// Address of the CDN listener.
    pub fn cdn_addr(&self) -> SocketAddr {
        self.cdn_addr
    }

    /// The transport both listeners use.
    pub fn transport(&self) -> Transport {
        self.transport
    }

    /// PEM file of the CA that signed the server certificate (TLS only). Lives as long as
    /// the hub.
    pub fn ca_cert_path(&self) -> Option<&Path> {
        self.ca_path.as_deref()
    }

    /// The CA certificate in PEM form (TLS only).
    pub fn ca_cert_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    /// The request log and connection statistics.
    pub fn log(&self) -> &RequestLog {
        &self.shared.log
    }

    /// The runtime fault knobs.
    pub fn faults(&self) -> &Faults {
        &self.shared.faults
    }

    fn repo_state(&self, repo_id: &str) -> Option<Arc<RepoState>> {
        self.shared
            .state
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .repos
            .get(repo_id)
            .cloned()
    }

    /// Commit sha a revision (branch, tag, `refs/pr/N`, sha) currently points to.
    pub fn commit(&self, repo_id: &str, revision: &str) -> Option<String> {
        self.repo_state(repo_id)?
            .resolve(revision)
            .map(|c| c.sha.clone())
    }

    /// Every file at `revision`, in path order.
    pub fn files_at(&self, repo_id: &str, revision: &str) -> Option<Vec<FileInfo>> {
        let repo = self.repo_state(repo_id)?;
        repo.resolve(revision).map(|c| RepoState::file_infos(c))
    }

    /// Every file on `main`, in path order (empty for an unknown repo).
    pub fn files(&self, repo_id: &str) -> Vec<FileInfo> {
        self.files_at(repo_id, "main").unwrap_or_default()
    }

    /// Metadata of one file on `main`.
    pub fn file_info(&self, repo_id: &str, path: &str) -> Option<FileInfo> {
        let repo = self.repo_state(repo_id)?;
        repo.main().files.get(path).map(|b| file_info(path, b))
    }

    fn blob_at(&self, repo_id: &str, revision: &str, path: &str) -> Option<Arc<Blob>> {
        self.repo_state(repo_id)?
            .resolve(revision)?
            .files
            .get(path)
            .cloned()
    }

    /// The whole content of a file on `main`, in memory (use [`FakeHub::file_reader`] for big
    /// files).
    pub fn file_bytes(&self, repo_id: &str, path: &str) -> Option<Vec<u8>> {
        self.file_bytes_at(repo_id, "main", path)
    }

    /// The whole content of a file at a revision.
    pub fn file_bytes_at(&self, repo_id: &str, revision: &str, path: &str) -> Option<Vec<u8>> {
        let blob = self.blob_at(repo_id, revision, path)?;
        let mut out = Vec::with_capacity(blob.size as usize);
        let mut reader = FileReader { blob, pos: 0 };
        std::io::Read::read_to_end(&mut reader, &mut out).ok()?;
        Some(out)
    }

    /// A streaming reader over a file on `main` (for comparing big files chunk by chunk).
    pub fn file_reader(&self, repo_id: &str, path: &str) -> Option<FileReader> {
        Some(FileReader {
            blob: self.blob_at(repo_id, "main", path)?,
            pos: 0,
        })
    }

    /// Pushes a new commit on `main` of `repo_id` (tags and `refs/pr/1` keep their commits);
    /// returns the new commit sha. Hashes new content on the calling thread.
    pub fn push_commit(&self, repo_id: &str, change: CommitChange) -> Result<String, Error> {
        self.shared
            .state
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push_commit(repo_id, change)
    }

    /// Resolve URL of a file: `{endpoint}/{prefix}{repo}/resolve/{enc_rev}/{enc_path}`.
    pub fn resolve_url(&self, repo_id: &str, revision: &str, path: &str) -> Option<String> {
        let repo = self.repo_state(repo_id)?;
        Some(format!(
            "{}/{}{}/resolve/{}/{}",
            self.shared.hub_base,
            repo.repo_type.resolve_prefix(),
            repo.id,
            crate::routes::encode_component(revision),
            crate::routes::encode_path(path)
        ))
    }
}

/// Reads a fixture file's content sequentially without loading it whole.
#[derive(Debug)]
pub struct FileReader {
    blob: Arc<Blob>,
    pos: u64,
}

impl FileReader {
    /// Total size in bytes.
    pub fn len(&self) -> u64 {
        self.blob.size
    }

    /// Whether the file is empty.
    pub fn is_empty(&self) -> bool {
        self.blob.size == 0
    }
}

impl std::io::Read for FileReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(CHUNK);
        let chunk = self.blob.source.read_at(self.pos, n)?;
        buf[..chunk.len()].copy_from_slice(&chunk);
        self.pos += chunk.len() as u64;
        Ok(chunk.len())
    }
}
