//! Opening one connection to an origin: TCP, an optional proxy tunnel
//! (HTTP `CONNECT` or SOCKS5), then TLS with ALPN for `https://`.

use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use http::{StatusCode, Uri};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::error::{Error, Result};
use crate::proxy::{ProxyConfig, ProxyKind, ProxyUrl, basic_auth};
use crate::socks::{self, SocksTarget};

/// A byte stream a connection can run over.
pub(crate) trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T> Io for T where T: AsyncRead + AsyncWrite + Send + Unpin + 'static {}

/// A boxed byte stream: TCP, a tunnel through a proxy, or TLS over either.
pub(crate) type BoxIo = Box<dyn Io>;

/// `http` or `https`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Scheme {
    Http,
    Https,
}

impl Scheme {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Https => "https",
        }
    }

    fn default_port(self) -> u16 {
        match self {
            Self::Http => 80,
            Self::Https => 443,
        }
    }
}

/// The HTTP version a connection speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Protocol {
    /// HTTP/1.1: one request at a time, keep-alive.
    Http1,
    /// HTTP/2 (ALPN `h2` over TLS, or h2c by prior knowledge).
    Http2,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Http1 => "HTTP/1.1",
            Self::Http2 => "HTTP/2",
        })
    }
}

/// Scheme, host and port of the server a connection goes to: what one pool
/// serves.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct ServerOrigin {
    pub(crate) scheme: Scheme,
    /// Lower case; IPv6 without brackets.
    pub(crate) host: String,
    pub(crate) port: u16,
}

impl ServerOrigin {
    /// The origin of an absolute `http://` or `https://` URI.
    pub(crate) fn from_uri(uri: &Uri) -> Option<Self> {
        let scheme = match uri.scheme_str()? {
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            _ => return None,
        };
        let host = uri
            .host()?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        if host.is_empty() {
            return None;
        }
        let port = uri.port_u16().unwrap_or(scheme.default_port());
        Some(Self { scheme, host, port })
    }

    fn bracketed_host(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        }
    }

    /// `host:port`, as a `CONNECT` target.
    fn host_port(&self) -> String {
        format!("{}:{}", self.bracketed_host(), self.port)
    }

    /// The `Host` header value: the port only when not the default.
    pub(crate) fn host_header(&self) -> String {
        if self.port == self.scheme.default_port() {
            self.bracketed_host()
        } else {
            self.host_port()
        }
    }
}

impl fmt::Display for ServerOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme.as_str(), self.host_port())
    }
}

/// A connected, ready-to-handshake stream.
pub(crate) struct Established {
    pub(crate) io: BoxIo,
    pub(crate) protocol: Protocol,
    pub(crate) via_proxy: bool,
}

/// Opens connections according to the client's TLS and proxy settings.
pub(crate) struct Connector {
    /// For origins: ALPN h2 + http/1.1 (or http/1.1 only).
    pub(crate) tls: Arc<rustls::ClientConfig>,
    /// ALPN http/1.1: for `https://` proxies, and for origin connections
    /// that must speak HTTP/1.1.
    pub(crate) tls_http1: Arc<rustls::ClientConfig>,
    pub(crate) proxy: Option<ProxyConfig>,
    pub(crate) connect_timeout: Duration,
    pub(crate) h2_prior_knowledge: bool,
}

impl fmt::Debug for Connector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connector")
            .field("proxy", &self.proxy)
            .field("connect_timeout", &self.connect_timeout)
            .field("h2_prior_knowledge", &self.h2_prior_knowledge)
            .finish_non_exhaustive()
    }
}

impl Connector {
    /// The protocol a connection to `origin` will speak, when no handshake
    /// decides it: plain `http://` is HTTP/1.1, or h2c by prior knowledge;
    /// `https://` is whatever ALPN settles (`None`), unless h2 is not offered.
    pub(crate) fn protocol_without_handshake(&self, origin: &ServerOrigin) -> Option<Protocol> {
        match origin.scheme {
            Scheme::Http if self.h2_prior_knowledge => Some(Protocol::Http2),
            Scheme::Https if self.tls.alpn_protocols.iter().any(|p| p == b"h2") => None,
            Scheme::Http | Scheme::Https => Some(Protocol::Http1),
        }
    }

    /// TCP, proxy handshake and TLS within the connect timeout; with
    /// `http1_only` the TLS handshake offers HTTP/1.1 alone.
    pub(crate) async fn connect(
        &self,
        origin: &ServerOrigin,
        http1_only: bool,
    ) -> Result<Established> {
        let proxy = self
            .proxy
            .as_ref()
            .and_then(|p| p.proxy_for(origin.scheme.as_str(), &origin.host, origin.port));
        let connecting = self.connect_inner(origin, proxy, http1_only);
        match tokio::time::timeout(self.connect_timeout, connecting).await {
            Ok(result) => result,
            Err(_) => Err(Error::ConnectTimeout {
                origin: origin.to_string(),
                timeout: self.connect_timeout,
            }),
        }
    }

    async fn connect_inner(
        &self,
        origin: &ServerOrigin,
        proxy: Option<&ProxyUrl>,
        http1_only: bool,
    ) -> Result<Established> {
        let via = proxy.map(ToString::to_string);
        let connect_error = |source: io::Error| Error::Connect {
            origin: origin.to_string(),
            via: via.clone(),
            source,
        };
        let stream: BoxIo = match proxy {
            None => Box::new(
                tcp_connect(&origin.host, origin.port)
                    .await
                    .map_err(connect_error)?,
            ),
            Some(p) => match p.kind() {
                ProxyKind::Http | ProxyKind::Https => {
                    self.http_tunnel(p, origin).await.map_err(|e| match e {
                        TunnelError::Io(source) => connect_error(source),
                        TunnelError::Proxy(err) => err,
                    })?
                }
                ProxyKind::Socks5 | ProxyKind::Socks5h => {
                    socks_tunnel(p, origin).await.map_err(|e| match e {
                        TunnelError::Io(source) => connect_error(source),
                        TunnelError::Proxy(err) => err,
                    })?
                }
            },
        };
        tracing::trace!(%origin, proxy = via.as_deref(), "transport connected");
        match origin.scheme {
            Scheme::Http => Ok(Established {
                io: stream,
                protocol: if self.h2_prior_knowledge {
                    Protocol::Http2
                } else {
                    Protocol::Http1
                },
                via_proxy: proxy.is_some(),
            }),
            Scheme::Https => {
                let name = ServerName::try_from(origin.host.clone())
                    .map_err(|e| connect_error(io::Error::new(io::ErrorKind::InvalidInput, e)))?;
                let config = if http1_only {
                    &self.tls_http1
                } else {
                    &self.tls
                };
                let tls = TlsConnector::from(Arc::clone(config))
                    .connect(name, stream)
                    .await
                    .map_err(connect_error)?;
                let protocol = if tls.get_ref().1.alpn_protocol() == Some(b"h2") {
                    Protocol::Http2
                } else {
                    Protocol::Http1
                };
                Ok(Established {
                    io: Box::new(tls),
                    protocol,
                    via_proxy: proxy.is_some(),
                })
            }
        }
    }

    /// A `CONNECT` tunnel through an HTTP(S) proxy.
    async fn http_tunnel(
        &self,
        proxy: &ProxyUrl,
        origin: &ServerOrigin,
    ) -> std::result::Result<BoxIo, TunnelError> {
        let tcp = tcp_connect(proxy.host(), proxy.port()).await?;
        let mut stream: BoxIo = if proxy.kind() == ProxyKind::Https {
            let name = ServerName::try_from(proxy.host().to_owned())
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
            Box::new(
                TlsConnector::from(Arc::clone(&self.tls_http1))
                    .connect(name, tcp)
                    .await?,
            )
        } else {
            Box::new(tcp)
        };
        let target = origin.host_port();
        let mut request = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
        if let Some((user, pass)) = proxy.credentials() {
            request.push_str("Proxy-Authorization: ");
            request.push_str(&basic_auth(user, pass));
            request.push_str("\r\n");
        }
        request.push_str("\r\n");
        stream.write_all(request.as_bytes()).await?;
        stream.flush().await?;
        let head = read_response_head(&mut stream).await?;
        let proxy_error = |reason: String, status: Option<StatusCode>, retryable: bool| {
            TunnelError::Proxy(Error::Proxy {
                proxy: proxy.to_string(),
                origin: origin.to_string(),
                reason,
                status,
                retryable,
            })
        };
        let Some(status) = parse_status_line(&head) else {
            return Err(proxy_error(
                "malformed answer to CONNECT".to_owned(),
                None,
                false,
            ));
        };
        if status.is_success() {
            return Ok(stream);
        }
        // 407 per RFC 9110; some proxies (tinyproxy) answer 401.
        let reason = if matches!(status.as_u16(), 401 | 407) {
            if proxy.has_credentials() {
                format!("the proxy rejected the credentials ({status})")
            } else {
                format!("the proxy requires credentials ({status}); put them in the proxy URL")
            }
        } else {
            format!("CONNECT answered {status}")
        };
        let retryable = matches!(status.as_u16(), 502..=504);
        Err(proxy_error(reason, Some(status), retryable))
    }
}

enum TunnelError {
    Io(io::Error),
    Proxy(Error),
}

impl From<io::Error> for TunnelError {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}

/// A SOCKS5 tunnel; `socks5h://` lets the proxy resolve host names.
async fn socks_tunnel(
    proxy: &ProxyUrl,
    origin: &ServerOrigin,
) -> std::result::Result<BoxIo, TunnelError> {
    let resolved;
    let target = match origin.host.parse::<std::net::IpAddr>() {
        Ok(ip) => SocksTarget::Addr((ip, origin.port).into()),
        Err(_) if proxy.kind() == ProxyKind::Socks5h => {
            SocksTarget::Domain(&origin.host, origin.port)
        }
        Err(_) => {
            resolved = tokio::net::lookup_host((origin.host.as_str(), origin.port))
                .await?
                .next()
                .ok_or_else(|| {
                    io::Error::new(io::ErrorKind::NotFound, "host name resolved to no address")
                })?;
            SocksTarget::Addr(resolved)
        }
    };
    let mut tcp = tcp_connect(proxy.host(), proxy.port()).await?;
    socks::handshake(&mut tcp, target, proxy.credentials())
        .await
        .map_err(|e| {
            TunnelError::Proxy(Error::Proxy {
                proxy: proxy.to_string(),
                origin: origin.to_string(),
                reason: e.reason,
                status: None,
                retryable: e.retryable,
            })
        })?;
    Ok(Box::new(tcp))
}

/// Connects to the first address of `host` that accepts.
async fn tcp_connect(host: &str, port: u16) -> io::Result<TcpStream> {
    let mut last = None;
    for addr in tokio::net::lookup_host((host, port)).await? {
        match TcpStream::connect(addr).await {
            Ok(stream) => {
                stream.set_nodelay(true)?;
                return Ok(stream);
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        io::Error::new(io::ErrorKind::NotFound, "host name resolved to no address")
    }))
}

/// Reads a response head up to and including the blank line, byte by byte
/// so that nothing after it (the tunnel's first bytes) is consumed.
async fn read_response_head<S: AsyncRead + Unpin>(stream: &mut S) -> io::Result<Vec<u8>> {
    const LIMIT: usize = 16 * 1024;
    let mut head = Vec::with_capacity(256);
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() >= LIMIT {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "proxy answer to CONNECT is too long",
            ));
        }
        if stream.read(&mut byte).await? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "proxy closed the connection during CONNECT",
            ));
        }
        head.push(byte[0]);
    }
    Ok(head)
}

/// The status of `HTTP/1.x NNN reason`.
fn parse_status_line(head: &[u8]) -> Option<StatusCode> {
    let line_end = head.iter().position(|b| *b == b'\r')?;
    let line = std::str::from_utf8(&head[..line_end]).ok()?;
    let mut parts = line.splitn(3, ' ');
    let version = parts.next()?;
    if !version.starts_with("HTTP/1.") {
        return None;
    }
    let code = parts.next()?;
    if code.len() != 3 {
        return None;
    }
    StatusCode::from_bytes(code.as_bytes()).ok()
}

#[cfg(test)]
mod tests {
    use super::{Scheme, ServerOrigin, parse_status_line, read_response_head};
    use http::{StatusCode, Uri};
    use tokio::io::AsyncReadExt;

    #[test]
    fn origins() {
        let o = ServerOrigin::from_uri(&"https://HF.co/a?b".parse::<Uri>().unwrap()).unwrap();
        assert_eq!(
            (o.scheme, o.host.as_str(), o.port),
            (Scheme::Https, "hf.co", 443)
        );
        assert_eq!(o.host_header(), "hf.co");
        assert_eq!(o.to_string(), "https://hf.co:443");
        let o = ServerOrigin::from_uri(&"http://[::1]:8080/".parse::<Uri>().unwrap()).unwrap();
        assert_eq!(o.host, "::1");
        assert_eq!(o.host_header(), "[::1]:8080");
        assert_eq!(o.host_port(), "[::1]:8080");
        assert!(ServerOrigin::from_uri(&"ftp://h/".parse::<Uri>().unwrap()).is_none());
        assert!(ServerOrigin::from_uri(&"/relative".parse::<Uri>().unwrap()).is_none());
    }

    #[test]
    fn status_lines() {
        assert_eq!(
            parse_status_line(b"HTTP/1.1 200 Connection established\r\n\r\n"),
            Some(StatusCode::OK)
        );
        assert_eq!(
            parse_status_line(b"HTTP/1.0 407 Proxy Authentication Required\r\n\r\n"),
            Some(StatusCode::PROXY_AUTHENTICATION_REQUIRED)
        );
        assert_eq!(
            parse_status_line(b"HTTP/1.1 200\r\n\r\n"),
            Some(StatusCode::OK)
        );
        assert_eq!(parse_status_line(b"SSH-2.0-x\r\n\r\n"), None);
        assert_eq!(parse_status_line(b"HTTP/1.1 2000 x\r\n\r\n"), None);
    }

    #[tokio::test]
    async fn head_reader_stops_at_the_blank_line() {
        let data: &[u8] = b"HTTP/1.1 200 OK\r\nX: y\r\n\r\nTUNNEL";
        let mut reader = data;
        let head = read_response_head(&mut reader).await.unwrap();
        assert!(head.ends_with(b"\r\n\r\n"));
        let mut rest = String::new();
        reader.read_to_string(&mut rest).await.unwrap();
        assert_eq!(rest, "TUNNEL");
        let mut short: &[u8] = b"HTTP/1.1 200 OK\r\n";
        assert!(read_response_head(&mut short).await.is_err());
    }
}
