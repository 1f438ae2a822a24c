//! A minimal raw HTTP client over hyper's connection API: one TCP (+TLS) connection, h1 or
//! h2, full control over reuse, and body errors reported instead of hidden.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;

use hfd_testkit::{FakeHub, Origin};

enum Sender {
    H1(http1::SendRequest<Full<Bytes>>),
    H2(http2::SendRequest<Full<Bytes>>),
}

/// One client connection to one listener of the hub.
pub(crate) struct Conn {
    sender: Sender,
    authority: String,
}

/// A response with its body read to the end (or to the error that ended it).
#[derive(Debug)]
pub(crate) struct Resp {
    pub(crate) status: u16,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Vec<u8>,
    pub(crate) body_error: Option<String>,
    pub(crate) version: http::Version,
}

impl Resp {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Whether the connection should speak HTTP/2 (h2c prior knowledge, or ALPN h2 under TLS).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Proto {
    H1,
    H2,
}

impl Conn {
    pub(crate) async fn open(hub: &FakeHub, origin: Origin, proto: Proto) -> Conn {
        let addr = match origin {
            Origin::Hub => hub.hub_addr(),
            Origin::Cdn => hub.cdn_addr(),
        };
        let tcp = TcpStream::connect(addr)
            .await
            .expect("connect to the fake hub");
        let authority = addr.to_string();
        match hub.ca_cert_pem() {
            Some(pem) => {
                let mut roots = rustls::RootCertStore::empty();
                roots
                    .add(CertificateDer::from_pem_slice(pem.as_bytes()).expect("CA PEM parses"))
                    .expect("CA is a valid trust anchor");
                let provider = Arc::new(rustls::crypto::ring::default_provider());
                let mut config = rustls::ClientConfig::builder_with_provider(provider)
                    .with_safe_default_protocol_versions()
                    .unwrap()
                    .with_root_certificates(roots)
                    .with_no_client_auth();
                config.alpn_protocols = match proto {
                    Proto::H1 => vec![b"http/1.1".to_vec()],
                    Proto::H2 => vec![b"h2".to_vec()],
                };
                let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
                let name = ServerName::try_from("127.0.0.1").unwrap();
                let tls = connector.connect(name, tcp).await.expect("TLS handshake");
                let alpn = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
                assert_eq!(
                    alpn.as_deref(),
                    Some(if proto == Proto::H2 {
                        &b"h2"[..]
                    } else {
                        &b"http/1.1"[..]
                    }),
                    "ALPN negotiated"
                );
                Self::handshake(TokioIo::new(tls), proto, authority).await
            }
            None => Self::handshake(TokioIo::new(tcp), proto, authority).await,
        }
    }

    async fn handshake<I>(io: I, proto: Proto, authority: String) -> Conn
    where
        I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        let sender = match proto {
            Proto::H1 => {
                let (sender, conn) = http1::handshake(io).await.expect("h1 handshake");
                tokio::spawn(async move {
                    let _ = conn.await;
                });
                Sender::H1(sender)
            }
            Proto::H2 => {
                let (sender, conn) = http2::handshake(TokioExecutor::new(), io)
                    .await
                    .expect("h2 handshake");
                tokio::spawn(async move {
                    let _ = conn.await;
                });
                Sender::H2(sender)
            }
        };
        Conn { sender, authority }
    }

    /// Sends a request and returns the response head; the body is left unread.
    pub(crate) async fn start(
        &mut self,
        method: &str,
        path_and_query: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Result<http::Response<Incoming>, hyper::Error> {
        let method: Method = method.parse().unwrap();
        let mut b = Request::builder().method(method);
        match &self.sender {
            Sender::H1(_) => {
                b = b.uri(path_and_query).header("host", &self.authority);
            }
            Sender::H2(_) => {
                b = b.uri(format!("http://{}{path_and_query}", self.authority));
            }
        }
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let req = b.body(Full::new(Bytes::from(body.to_owned()))).unwrap();
        match &mut self.sender {
            Sender::H1(s) => {
                s.ready().await?;
                s.send_request(req).await
            }
            Sender::H2(s) => {
                s.ready().await?;
                s.send_request(req).await
            }
        }
    }

    /// Sends a request and reads the whole body (bounded by a hang guard).
    pub(crate) async fn send(
        &mut self,
        method: &str,
        path_and_query: &str,
        headers: &[(&str, &str)],
    ) -> Resp {
        self.send_body(method, path_and_query, headers, "").await
    }

    pub(crate) async fn send_body(
        &mut self,
        method: &str,
        path_and_query: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Resp {
        let resp = self
            .start(method, path_and_query, headers, body)
            .await
            .expect("response head");
        read_all(resp).await
    }
}

pub(crate) async fn read_all(resp: http::Response<Incoming>) -> Resp {
    let (parts, mut incoming) = resp.into_parts();
    let mut body = Vec::new();
    let mut body_error = None;
    loop {
        match tokio::time::timeout(Duration::from_secs(30), incoming.frame()).await {
            Err(_) => {
                body_error = Some("hang guard: no frame for 30 s".to_owned());
                break;
            }
            Ok(None) => break,
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    body.extend_from_slice(&data);
                }
            }
            Ok(Some(Err(e))) => {
                body_error = Some(e.to_string());
                break;
            }
        }
    }
    Resp {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body,
        body_error,
        version: parts.version,
    }
}

/// Splits an absolute URL into (origin of the hub it points at, path and query).
pub(crate) fn split_url(hub: &FakeHub, url: &str) -> (Origin, String) {
    for (origin, base) in [
        (Origin::Hub, hub.endpoint()),
        (Origin::Cdn, hub.cdn_endpoint()),
    ] {
        if let Some(rest) = url.strip_prefix(base) {
            return (origin, rest.to_owned());
        }
    }
    panic!("{url} points at neither listener");
}

/// One request on a fresh connection.
pub(crate) async fn get(
    hub: &FakeHub,
    origin: Origin,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Resp {
    Conn::open(hub, origin, Proto::H1)
        .await
        .send(method, path, headers)
        .await
}

/// [`get`] on the hub listener.
pub(crate) async fn at_hub(
    hub: &FakeHub,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Resp {
    get(hub, Origin::Hub, method, path, headers).await
}

/// [`get`] on the CDN listener.
pub(crate) async fn at_cdn(
    hub: &FakeHub,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Resp {
    get(hub, Origin::Cdn, method, path, headers).await
}
