//! A small in-test origin server: HTTP/1.1 and h2c on plain TCP (auto
//! detected), or TLS with ALPN, with a few routes for the transport tests.
//! It counts accepted and closed connections, records peers and versions,
//! and can hold requests until N of them are in flight at once (a gate).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use http::{Request, Response, StatusCode, Version, header};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::Notify;

/// Longest any handler waits for anything; keeps every test bounded.
const MAX_WAIT: Duration = Duration::from_secs(10);

/// The byte at `offset` of every test file.
pub(crate) fn byte_at(offset: u64) -> u8 {
    (offset.wrapping_mul(31).wrapping_add(7) % 251) as u8
}

pub(crate) fn content(start: u64, end: u64) -> Vec<u8> {
    (start..end).map(byte_at).collect()
}

#[derive(Default)]
pub(crate) struct ServerState {
    pub(crate) accepted: AtomicUsize,
    pub(crate) closed: AtomicUsize,
    pub(crate) in_flight: AtomicUsize,
    pub(crate) max_in_flight: AtomicUsize,
    pub(crate) peers: Mutex<Vec<SocketAddr>>,
    pub(crate) versions: Mutex<Vec<Version>>,
    changed: Notify,
}

impl ServerState {
    pub(crate) fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    pub(crate) fn closed(&self) -> usize {
        self.closed.load(Ordering::SeqCst)
    }

    pub(crate) fn max_in_flight(&self) -> usize {
        self.max_in_flight.load(Ordering::SeqCst)
    }

    pub(crate) fn peer_ips(&self) -> Vec<std::net::IpAddr> {
        self.peers
            .lock()
            .unwrap()
            .iter()
            .map(SocketAddr::ip)
            .collect()
    }

    pub(crate) fn versions(&self) -> Vec<Version> {
        self.versions.lock().unwrap().clone()
    }

    /// Waits (bounded) until `closed() >= n`.
    pub(crate) async fn wait_closed(&self, n: usize) -> bool {
        let deadline = tokio::time::Instant::now() + MAX_WAIT;
        while self.closed() < n {
            if tokio::time::Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        true
    }

    /// Waits until `n` requests have been inside handlers at once (sticky,
    /// so early finishers cannot close the gate on the others); `false`
    /// after `MAX_WAIT`.
    async fn gate(&self, n: usize) -> bool {
        let deadline = tokio::time::Instant::now() + MAX_WAIT;
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.max_in_flight.load(Ordering::SeqCst) >= n {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return false;
            }
        }
    }
}

pub(crate) enum Tls {
    None,
    /// Serve TLS with this certificate, offering these ALPN protocols.
    With {
        certs: Arc<TestCerts>,
        alpn: Vec<Vec<u8>>,
    },
}

pub(crate) struct TestServer {
    pub(crate) addr: SocketAddr,
    pub(crate) state: Arc<ServerState>,
}

impl TestServer {
    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub(crate) fn https_url(&self, host: &str, path: &str) -> String {
        format!("https://{host}:{}{path}", self.addr.port())
    }

    pub(crate) async fn start(tls: Tls) -> Self {
        Self::start_with(tls, None).await
    }

    /// Like [`Self::start`], announcing `max_streams` as its HTTP/2
    /// `SETTINGS_MAX_CONCURRENT_STREAMS` (hyper's default when `None`).
    pub(crate) async fn start_with(tls: Tls, max_streams: Option<u32>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(ServerState::default());
        let acceptor = match tls {
            Tls::None => None,
            Tls::With { certs, alpn } => {
                let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
                    rustls::crypto::ring::default_provider(),
                ))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(vec![certs.leaf_der.clone()], certs.leaf_key())
                .unwrap();
                config.alpn_protocols = alpn;
                Some(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
            }
        };
        let st = Arc::clone(&state);
        tokio::spawn(async move {
            loop {
                let Ok((tcp, peer)) = listener.accept().await else {
                    return;
                };
                let st = Arc::clone(&st);
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let index = st.accepted.fetch_add(1, Ordering::SeqCst);
                    st.peers.lock().unwrap().push(peer);
                    let service_state = Arc::clone(&st);
                    let service = service_fn(move |req| {
                        let st = Arc::clone(&service_state);
                        async move { Ok::<_, Infallible>(handle(req, &st, index).await) }
                    });
                    let mut builder = auto::Builder::new(TokioExecutor::new());
                    if let Some(n) = max_streams {
                        builder.http2().max_concurrent_streams(n);
                    }
                    match acceptor {
                        None => {
                            let _ = builder.serve_connection(TokioIo::new(tcp), service).await;
                        }
                        Some(acceptor) => {
                            if let Ok(tls) = acceptor.accept(tcp).await {
                                let _ = builder.serve_connection(TokioIo::new(tls), service).await;
                            }
                        }
                    }
                    st.closed.fetch_add(1, Ordering::SeqCst);
                });
            }
        });
        Self { addr, state }
    }
}

type ResponseBody = BoxBody<Bytes, Infallible>;

fn full(status: StatusCode, body: impl Into<Bytes>) -> Response<ResponseBody> {
    let mut r = Response::new(Full::new(body.into()).boxed());
    *r.status_mut() = status;
    r
}

fn query_param(req: &Request<Incoming>, key: &str) -> Option<String> {
    req.uri().query()?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == key).then(|| v.to_owned())
    })
}

/// Parses `bytes=a-b` (inclusive) into a half-open `(start, end)`.
fn requested_range(req: &Request<Incoming>, size: u64) -> Option<(u64, u64)> {
    let v = req.headers().get(header::RANGE)?.to_str().ok()?;
    let (a, b) = v.strip_prefix("bytes=")?.split_once('-')?;
    let start: u64 = a.parse().ok()?;
    let end = if b.is_empty() {
        size
    } else {
        (b.parse::<u64>().ok()? + 1).min(size)
    };
    (start < end).then_some((start, end))
}

struct InFlight<'a>(&'a ServerState);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.0.changed.notify_waiters();
    }
}

/// Routes:
/// - `/data/<size>`: a file of `size` bytes, honouring `Range`;
/// - `/ignore-range/<size>`: the whole file with `200` whatever the range;
/// - `/bad-range/<size>`: `206` with a `Content-Range` one byte off;
/// - `/wrong-total/<size>`: `206` with a total one byte larger;
/// - `/unavailable`: `503` with `Retry-After: 7`;
/// - `/close`: `200` and `Connection: close`;
/// - `/stall`: headers and 16 bytes, then nothing;
/// - `/hang`: never answers (within `MAX_WAIT`).
///
/// Query `gate=N`: hold the request until N are in flight.
async fn handle(req: Request<Incoming>, st: &ServerState, conn: usize) -> Response<ResponseBody> {
    st.versions.lock().unwrap().push(req.version());
    let now = st.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    st.max_in_flight.fetch_max(now, Ordering::SeqCst);
    st.changed.notify_waiters();
    let _guard = InFlight(st);
    if let Some(n) = query_param(&req, "gate").and_then(|v| v.parse().ok())
        && !st.gate(n).await
    {
        return full(StatusCode::INTERNAL_SERVER_ERROR, "gate timed out");
    }
    // A server that answers late: the response head waits `delay_ms`.
    if let Some(ms) = query_param(&req, "delay_ms").and_then(|v| v.parse().ok()) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let path = req.uri().path().to_owned();
    let mut parts = path.trim_start_matches('/').splitn(2, '/');
    let route = parts.next().unwrap_or("");
    let size: u64 = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    let mut response = match route {
        "data" | "bad-range" | "wrong-total" => match requested_range(&req, size) {
            None => full(StatusCode::OK, content(0, size)),
            Some((start, end)) => {
                let mut r = full(StatusCode::PARTIAL_CONTENT, content(start, end));
                let (first, total) = match route {
                    "bad-range" => (start + 1, size),
                    "wrong-total" => (start, size + 1),
                    _ => (start, size),
                };
                let value = format!("bytes {first}-{}/{total}", end - 1);
                r.headers_mut()
                    .insert(header::CONTENT_RANGE, value.parse().unwrap());
                r
            }
        },
        "ignore-range" => full(StatusCode::OK, content(0, size)),
        "unavailable" => {
            let mut r = full(StatusCode::SERVICE_UNAVAILABLE, "busy");
            r.headers_mut()
                .insert(header::RETRY_AFTER, "7".parse().unwrap());
            r
        }
        "close" => {
            let mut r = full(StatusCode::OK, "bye");
            r.headers_mut()
                .insert(header::CONNECTION, "close".parse().unwrap());
            r
        }
        "stall" => {
            let first = futures::stream::once(async {
                Ok::<_, Infallible>(Frame::data(Bytes::from(vec![1u8; 16])))
            });
            let never = futures::stream::once(async {
                tokio::time::sleep(MAX_WAIT).await;
                Ok::<_, Infallible>(Frame::data(Bytes::from_static(b"late")))
            });
            let mut r = Response::new(BodyExt::boxed(StreamBody::new(first.chain(never))));
            r.headers_mut()
                .insert(header::CONTENT_LENGTH, "20".parse().unwrap());
            r
        }
        "hang" => {
            tokio::time::sleep(MAX_WAIT).await;
            full(StatusCode::OK, "too late")
        }
        _ => full(StatusCode::NOT_FOUND, "no such route"),
    };
    response
        .headers_mut()
        .insert("x-conn", conn.to_string().parse().unwrap());
    response
}

/// A CA and a leaf certificate for `localhost` and `127.0.0.1`.
pub(crate) struct TestCerts {
    pub(crate) leaf_der: rustls_pki_types::CertificateDer<'static>,
    leaf_key_der: Vec<u8>,
    pub(crate) ca_file: PathBuf,
    _dir: tempfile::TempDir,
}

impl TestCerts {
    pub(crate) fn new() -> Arc<Self> {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "hfd-http test CA");
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let leaf =
            rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
                .unwrap()
                .signed_by(&leaf_key, &ca, &ca_key)
                .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, ca.pem()).unwrap();
        Arc::new(Self {
            leaf_der: leaf.der().clone(),
            leaf_key_der: leaf_key.serialize_der(),
            ca_file,
            _dir: dir,
        })
    }

    pub(crate) fn leaf_key(&self) -> rustls_pki_types::PrivateKeyDer<'static> {
        rustls_pki_types::PrivateKeyDer::Pkcs8(self.leaf_key_der.clone().into())
    }
}
