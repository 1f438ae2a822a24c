//! The client: configuration, request preparation, range validation.

use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use http::{Request, Response, StatusCode, Uri, header};

use crate::body::Body;
use crate::connect::{Connector, Protocol, ServerOrigin};
use crate::content_range::parse_content_range;
use crate::error::{Error, Result};
use crate::pool::{ConnectionChoice, ConnectionId, Lease, Pool, PoolSettings};
use crate::proxy::ProxyConfig;
use crate::request_body::RequestBody;
use crate::stats::HttpStats;
use crate::tls;
use hfd_types::{ByteRange, MemoryBudget, RedactedUrl};

/// Transport settings. Start from [`HttpConfig::default`] and set fields.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct HttpConfig {
    /// Time allowed to establish a connection (TCP + proxy handshake + TLS).
    /// Default: 10 s.
    pub connect_timeout: Duration,
    /// Time allowed without progress between body frames, and for response
    /// headers unless `header_timeout` is set. Default: 30 s.
    pub stall_timeout: Duration,
    /// Time allowed from sending a request to its response headers.
    /// Default: `None` (use `stall_timeout`).
    pub header_timeout: Option<Duration>,
    /// Speak HTTP/2 without TLS (h2c, prior knowledge) to `http://` URLs.
    /// Default: false (HTTP/1.1).
    pub http2_prior_knowledge: bool,
    /// Offer HTTP/2 via ALPN to `https://` origins. Default: true.
    pub http2: bool,
    /// Over TLS, requests that want a connection of their own
    /// ([`ConnectionChoice::Spread`](crate::ConnectionChoice::Spread): the
    /// ranges of large files) open connections that offer HTTP/1.1 only,
    /// even where the server speaks HTTP/2; others still share HTTP/2
    /// streams. Measured: a quarter less CPU for the same bytes and a
    /// shorter wall time against nginx and the fake hub
    /// (`docs/decisions/0016-http1-for-ranges-over-tls.md`). Default: true.
    pub http1_for_ranges: bool,
    /// Extra PEM files of trusted CA certificates (e.g. `SSL_CERT_FILE`).
    /// Default: none; webpki and native roots are always trusted.
    pub extra_ca_files: Vec<PathBuf>,
    /// `User-Agent` sent with every request. Default: `hfd-rs/<version>`.
    pub user_agent: String,
    /// Most TCP connections open at once to one origin (scheme, host,
    /// port). Default: 16.
    pub max_connections_per_host: NonZeroUsize,
    /// An idle pooled connection older than this is closed. Default: 90 s.
    pub pool_idle_timeout: Duration,
    /// Proxy settings. Default: none (direct connections).
    pub proxy: Option<ProxyConfig>,
    /// Bytes one connection may hold received but not yet read: its HTTP/2
    /// stream and connection windows (fixed, never adaptive) and its
    /// HTTP/1.1 read buffer. The CLI derives it from `--memory-budget`
    /// (`hfd_types::MemoryBudget`). Default: the default budget's share of
    /// 16 connections (1.5 MiB).
    pub receive_window: u32,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            stall_timeout: Duration::from_secs(30),
            header_timeout: None,
            http2_prior_knowledge: false,
            http2: true,
            http1_for_ranges: true,
            extra_ca_files: Vec::new(),
            user_agent: concat!("hfd-rs/", env!("CARGO_PKG_VERSION")).to_owned(),
            max_connections_per_host: NonZeroUsize::new(16).unwrap_or(NonZeroUsize::MIN),
            pool_idle_timeout: Duration::from_secs(90),
            proxy: None,
            receive_window: MemoryBudget::DEFAULT.share(16).receive_window,
        }
    }
}

/// A pooled HTTP client. Cheap to clone; clones share the pool.
///
/// Must be used inside a Tokio runtime (connections run as tasks).
#[derive(Clone, Debug)]
pub struct HttpClient {
    pool: Arc<Pool>,
    config: HttpConfig,
    /// How this handle's requests choose HTTP/2 connections.
    choice: ConnectionChoice,
}

/// A validated `206` answer to a range request.
#[derive(Debug)]
pub struct RangeResponse {
    /// The range the body carries (exactly the one requested, or its part
    /// inside the file when the request ran past the end).
    pub range: ByteRange,
    /// The total size from `Content-Range`, when the server gave one.
    pub total: Option<u64>,
    /// Response headers (for `ETag` checks).
    pub headers: http::HeaderMap,
    /// The body, exactly `range.size()` bytes if the server keeps its word.
    /// [`Body::connection`] tells which connection carries it.
    pub body: Body,
}

impl HttpClient {
    /// Builds a client. Fails only on unusable TLS settings.
    pub fn new(config: HttpConfig) -> Result<Self> {
        let roots = Arc::new(tls::root_store(&config.extra_ca_files)?);
        let alpn: &[&[u8]] = if config.http2 {
            &[b"h2", b"http/1.1"]
        } else {
            &[b"http/1.1"]
        };
        let connector = Connector {
            tls: tls::client_config(Arc::clone(&roots), alpn)?,
            tls_http1: tls::client_config(roots, &[b"http/1.1"])?,
            proxy: config.proxy.clone(),
            connect_timeout: config.connect_timeout,
            h2_prior_knowledge: config.http2_prior_knowledge,
        };
        let settings = PoolSettings {
            max_per_origin: config.max_connections_per_host.get(),
            idle_timeout: config.pool_idle_timeout,
            connect_timeout: config.connect_timeout,
            h2_keep_alive: config.stall_timeout,
            receive_window: Arc::new(AtomicU32::new(config.receive_window)),
            spread_over_http1: config.http1_for_ranges,
        };
        Ok(Self {
            pool: Arc::new(Pool::new(connector, settings)),
            config,
            choice: ConnectionChoice::Spread,
        })
    }

    /// A handle on the same pool whose requests choose HTTP/2 connections
    /// as `choice` says ([`ConnectionChoice::Spread`] for a client from
    /// [`HttpClient::new`]).
    #[must_use]
    pub fn with_connection_choice(mut self, choice: ConnectionChoice) -> Self {
        self.choice = choice;
        self
    }

    /// How this handle's requests choose HTTP/2 connections.
    pub fn connection_choice(&self) -> ConnectionChoice {
        self.choice
    }

    /// The configuration this client was built with.
    pub fn config(&self) -> &HttpConfig {
        &self.config
    }

    /// A snapshot of the counters (connections, requests, bytes).
    pub fn stats(&self) -> HttpStats {
        self.pool.stats()
    }

    /// Sets the receive window (see [`HttpConfig::receive_window`]) of the
    /// connections opened from now on; open ones keep theirs. A download
    /// sets it once it knows how many connections its files can use, so
    /// the memory budget is shared by those, not by the most there could be.
    pub fn set_receive_window(&self, window: u32) {
        self.pool.set_receive_window(window);
    }

    /// Stops using connection `id` for new requests (e.g. because it is much
    /// slower than the others); it closes once its requests in flight are
    /// done, and a new connection may take its place. `false` if no such
    /// connection is open.
    pub fn retire_connection(&self, id: ConnectionId) -> bool {
        self.pool.retire(id)
    }

    /// Sends one request and returns the response without following
    /// redirects. Adds `User-Agent` and `Accept-Encoding: identity` unless set.
    ///
    /// The response's extensions hold a [`ConnectionInfo`](crate::ConnectionInfo).
    /// Waits for a free connection when the origin's cap is reached; the
    /// header timeout runs from the moment the request has a connection.
    ///
    /// Cancel safe: dropping the future abandons the request; an HTTP/1.1
    /// connection it was using is closed, never reused.
    pub async fn send(&self, request: Request<RequestBody>) -> Result<Response<Body>> {
        self.send_on(request, None).await
    }

    /// Like [`HttpClient::send`], on the connection that carried `previous`
    /// once its body is read to the end: a redirect followed to the same
    /// origin goes out at once instead of waiting in the pool behind other
    /// requests for a free connection. A `previous` body that fails or runs
    /// past 64 KiB, or a `request` for another origin, takes any connection.
    pub async fn send_after(
        &self,
        previous: Body,
        request: Request<RequestBody>,
    ) -> Result<Response<Body>> {
        /// More than any redirect's text; a larger body is not read.
        const MAX_READ: u64 = 64 * 1024;
        let kept = previous.finish_keeping_connection(MAX_READ).await;
        self.send_on(request, kept).await
    }

    /// Sends `request` on `kept` when it goes to the request's origin and
    /// still takes requests, else on a connection from the pool.
    async fn send_on(
        &self,
        mut request: Request<RequestBody>,
        mut kept: Option<Lease>,
    ) -> Result<Response<Body>> {
        let url = RedactedUrl::new(request.uri().to_string());
        let Some(origin) = ServerOrigin::from_uri(request.uri()) else {
            return Err(Error::InvalidUrl {
                url,
                reason: "only absolute http:// and https:// URLs are supported".into(),
            });
        };
        let headers = request.headers_mut();
        if !headers.contains_key(header::USER_AGENT)
            && let Ok(v) = header::HeaderValue::from_str(&self.config.user_agent)
        {
            headers.insert(header::USER_AGENT, v);
        }
        headers
            .entry(header::ACCEPT_ENCODING)
            .or_insert(header::HeaderValue::from_static("identity"));
        let absolute = request.uri().clone();
        let header_timeout = self
            .config
            .header_timeout
            .unwrap_or(self.config.stall_timeout);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut lease = match kept.take() {
                Some(mut lease) if lease.serves(&origin) => {
                    if lease.wait_ready(self.pool.ready_timeout()).await {
                        lease.reuse();
                        lease
                    } else {
                        lease.discard();
                        self.pool.acquire(&origin, self.choice).await?
                    }
                }
                Some(lease) => {
                    lease.release();
                    self.pool.acquire(&origin, self.choice).await?
                }
                None => self.pool.acquire(&origin, self.choice).await?,
            };
            let info = lease.info().clone();
            prepare(&mut request, &absolute, &origin, info.protocol);
            tracing::trace!(url = %url, connection = %info.id, protocol = %info.protocol,
                reused = info.reused, "sending request");
            let written = std::time::Instant::now();
            let sent = tokio::time::timeout(header_timeout, lease.send(request)).await;
            match sent {
                Err(_) => {
                    count_request(&lease);
                    if info.protocol == Protocol::Http2 {
                        lease.retire_connection();
                    }
                    return Err(Error::Timeout {
                        url,
                        seconds: header_timeout.as_secs(),
                    });
                }
                Ok(Ok(mut response)) => {
                    count_request(&lease);
                    lease
                        .origin_pool()
                        .counters
                        .note_response(written.elapsed());
                    response.extensions_mut().insert(info);
                    let stall = self.config.stall_timeout;
                    return Ok(response.map(|b| Body::new(b, url, stall, lease)));
                }
                Ok(Err(mut e)) => {
                    // A request that never reached the connection (it was
                    // closing) is safe to try on another one.
                    if attempt < 3
                        && let Some(unsent) = e.take_message()
                    {
                        tracing::debug!(url = %url, connection = %info.id,
                            "connection closed before the request was sent; retrying");
                        lease.discard();
                        request = unsent;
                        continue;
                    }
                    count_request(&lease);
                    let error = e.into_error();
                    if error.is_parse() || error.is_parse_too_large() {
                        return Err(Error::MalformedResponse {
                            url,
                            source: Box::new(error),
                        });
                    }
                    return Err(Error::Request {
                        url,
                        source: Box::new(error),
                    });
                }
            }
        }
    }

    /// GETs `range` of `url` and validates the answer before returning it:
    /// the status must be 206, `Content-Range` must name the requested range
    /// (or its part inside the file), and its total must equal
    /// `expected_total` when given.
    pub async fn get_range(
        &self,
        url: &str,
        range: ByteRange,
        expected_total: Option<u64>,
        extra_headers: &http::HeaderMap,
    ) -> Result<RangeResponse> {
        let redacted = RedactedUrl::new(url);
        let mut builder = Request::get(url).header(header::RANGE, range.to_range_header());
        for (k, v) in extra_headers {
            builder = builder.header(k, v);
        }
        let request = builder
            .body(RequestBody::default())
            .map_err(|e| Error::InvalidUrl {
                url: redacted.clone(),
                reason: e.to_string(),
            })?;
        let response = self.send(request).await?;
        let status = response.status();
        if status == StatusCode::OK {
            return Err(Error::RangeIgnored {
                url: redacted,
                range,
                status,
            });
        }
        if status != StatusCode::PARTIAL_CONTENT {
            return Err(Error::Status {
                url: redacted,
                status,
                retry_after_secs: retry_after_secs(response.headers()),
            });
        }
        let raw = response
            .headers()
            .get(header::CONTENT_RANGE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let parsed = raw.as_deref().and_then(parse_content_range);
        let Some(parsed) = parsed else {
            return Err(Error::BadContentRange {
                url: redacted,
                range,
                got: raw,
            });
        };
        let clipped_end = parsed.total.map_or(range.end(), |t| range.end().min(t));
        if parsed.range.start() != range.start() || parsed.range.end() != clipped_end {
            return Err(Error::BadContentRange {
                url: redacted,
                range,
                got: raw,
            });
        }
        if let (Some(expected), Some(got)) = (expected_total, parsed.total)
            && expected != got
        {
            return Err(Error::SizeMismatch {
                url: redacted,
                expected,
                got,
            });
        }
        check_content_headers(response.headers(), &redacted, parsed.range.size())?;
        let (parts, body) = response.into_parts();
        Ok(RangeResponse {
            range: parsed.range,
            total: parsed.total,
            headers: parts.headers,
            body: body.expect_len(parsed.range.size()),
        })
    }

    /// GETs the whole of `url` when its size is known and validates the
    /// answer before returning it: the status must be 200, the body not
    /// encoded, and `Content-Length` (when given) equal to `size`. The body
    /// yields at most `size` bytes and then fails with
    /// [`Error::BodyTooLong`] if the server keeps sending.
    pub async fn get_whole(
        &self,
        url: &str,
        size: u64,
        extra_headers: &http::HeaderMap,
    ) -> Result<(http::HeaderMap, Body)> {
        let redacted = RedactedUrl::new(url);
        let mut builder = Request::get(url);
        for (k, v) in extra_headers {
            builder = builder.header(k, v);
        }
        let request = builder
            .body(RequestBody::default())
            .map_err(|e| Error::InvalidUrl {
                url: redacted.clone(),
                reason: e.to_string(),
            })?;
        let response = self.send(request).await?;
        let status = response.status();
        if status != StatusCode::OK {
            return Err(Error::Status {
                url: redacted,
                status,
                retry_after_secs: retry_after_secs(response.headers()),
            });
        }
        check_content_headers(response.headers(), &redacted, size)?;
        let (parts, body) = response.into_parts();
        Ok((parts.headers, body.expect_len(size)))
    }
}

fn retry_after_secs(headers: &http::HeaderMap) -> Option<u64> {
    headers
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

/// A content answer must be unencoded and, when it says its length, carry
/// exactly `expected` bytes.
pub(crate) fn check_content_headers(
    headers: &http::HeaderMap,
    url: &RedactedUrl,
    expected: u64,
) -> Result<()> {
    if let Some(encoding) = headers.get(header::CONTENT_ENCODING) {
        let text = String::from_utf8_lossy(encoding.as_bytes());
        if !text.trim().eq_ignore_ascii_case("identity") {
            return Err(Error::UnexpectedEncoding {
                url: url.clone(),
                encoding: text.chars().filter(|c| !c.is_control()).take(64).collect(),
            });
        }
    }
    let mut lengths = headers.get_all(header::CONTENT_LENGTH).iter();
    if let Some(first) = lengths.next() {
        let got = first
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(u64::MAX);
        if got != expected || lengths.next().is_some() {
            return Err(Error::BadContentLength {
                url: url.clone(),
                expected,
                got,
            });
        }
    }
    Ok(())
}

fn count_request(lease: &crate::pool::Lease) {
    lease
        .origin_pool()
        .counters
        .requests_sent
        .fetch_add(1, Ordering::Relaxed);
}

/// HTTP/1.1 wants an origin-form target and a `Host` header; HTTP/2 wants
/// the absolute URI (for `:scheme` and `:authority`).
fn prepare(
    request: &mut Request<RequestBody>,
    absolute: &Uri,
    origin: &ServerOrigin,
    protocol: Protocol,
) {
    match protocol {
        Protocol::Http1 => {
            let target = absolute
                .path_and_query()
                .map_or_else(|| Uri::from_static("/"), |pq| Uri::from(pq.clone()));
            *request.uri_mut() = target;
            if !request.headers().contains_key(header::HOST)
                && let Ok(v) = header::HeaderValue::from_str(&origin.host_header())
            {
                request.headers_mut().insert(header::HOST, v);
            }
        }
        Protocol::Http2 => *request.uri_mut() = absolute.clone(),
    }
}
