//! The pooled client.
//!
//! First version: hyper-util's pooled client over an HTTPS-or-HTTP connector
//! (ALPN h2 + http/1.1 over TLS, HTTP/1.1 or h2c by prior knowledge over TCP).

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::body::Body;
use crate::content_range::parse_content_range;
use crate::error::{Error, Result};
use hfd_types::{ByteRange, RedactedUrl};

/// Body type of outgoing requests.
pub type RequestBody = Full<Bytes>;

/// Transport settings. Start from [`HttpConfig::default`] and set fields.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct HttpConfig {
    /// Time allowed to establish a connection (TCP + TLS). Default: 10 s.
    pub connect_timeout: Duration,
    /// Time allowed without progress: for response headers, and between body
    /// frames. Default: 30 s.
    pub stall_timeout: Duration,
    /// Speak HTTP/2 without TLS (h2c, prior knowledge) to `http://` URLs.
    /// Default: false (HTTP/1.1).
    pub http2_prior_knowledge: bool,
    /// Extra PEM files of trusted CA certificates (e.g. `SSL_CERT_FILE`).
    /// Default: none; webpki and native roots are always trusted.
    pub extra_ca_files: Vec<PathBuf>,
    /// `User-Agent` sent with every request. Default: `hfd-rs/<version>`.
    pub user_agent: String,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            stall_timeout: Duration::from_secs(30),
            http2_prior_knowledge: false,
            extra_ca_files: Vec::new(),
            user_agent: concat!("hfd-rs/", env!("CARGO_PKG_VERSION")).to_owned(),
        }
    }
}

/// A pooled HTTP client. Cheap to clone; clones share the pool.
#[derive(Clone, Debug)]
pub struct HttpClient {
    inner: Client<hyper_rustls::HttpsConnector<HttpConnector>, RequestBody>,
    config: HttpConfig,
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
    pub body: Body,
}

impl HttpClient {
    /// Builds a client. Fails only on unusable TLS settings.
    pub fn new(config: HttpConfig) -> Result<Self> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        let native = rustls_native_certs::load_native_certs();
        for cert in native.certs {
            let _ = roots.add(cert);
        }
        for path in &config.extra_ca_files {
            let pem = std::fs::read(path).map_err(|e| Error::Tls {
                reason: format!("cannot read CA file {}: {e}", path.display()),
            })?;
            let mut added = 0;
            for cert in rustls_pki_types::pem::PemObject::pem_slice_iter(&pem) {
                let cert: rustls_pki_types::CertificateDer<'static> =
                    cert.map_err(|e| Error::Tls {
                        reason: format!("bad PEM in {}: {e}", path.display()),
                    })?;
                roots.add(cert).map_err(|e| Error::Tls {
                    reason: format!("bad certificate in {}: {e}", path.display()),
                })?;
                added += 1;
            }
            if added == 0 {
                return Err(Error::Tls {
                    reason: format!("no certificate found in {}", path.display()),
                });
            }
        }
        let tls = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(config.connect_timeout));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_all_versions()
            .wrap_connector(http);
        let mut builder = Client::builder(TokioExecutor::new());
        builder.pool_idle_timeout(Duration::from_secs(90));
        if config.http2_prior_knowledge {
            builder.http2_only(true);
        }
        let inner = builder.build(connector);
        Ok(Self { inner, config })
    }

    /// The configuration this client was built with.
    pub fn config(&self) -> &HttpConfig {
        &self.config
    }

    /// Sends one request and returns the response without following
    /// redirects. Adds `User-Agent` and `Accept-Encoding: identity` unless set.
    pub async fn send(&self, mut request: Request<RequestBody>) -> Result<Response<Body>> {
        let url = RedactedUrl::new(request.uri().to_string());
        match request.uri().scheme_str() {
            Some("http" | "https") => {}
            _ => {
                return Err(Error::InvalidUrl {
                    url,
                    reason: "only http:// and https:// URLs are supported".into(),
                });
            }
        }
        let headers = request.headers_mut();
        if !headers.contains_key(header::USER_AGENT)
            && let Ok(v) = header::HeaderValue::from_str(&self.config.user_agent)
        {
            headers.insert(header::USER_AGENT, v);
        }
        headers
            .entry(header::ACCEPT_ENCODING)
            .or_insert(header::HeaderValue::from_static("identity"));
        let timeout = self.config.stall_timeout;
        let response = match tokio::time::timeout(timeout, self.inner.request(request)).await {
            Err(_) => {
                return Err(Error::Timeout {
                    url,
                    seconds: timeout.as_secs(),
                });
            }
            Ok(Err(e)) => {
                return Err(Error::Request {
                    url,
                    source: Box::new(e),
                });
            }
            Ok(Ok(r)) => r,
        };
        Ok(response.map(|b| Body::new(b, url, timeout)))
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
            let retry_after_secs = response
                .headers()
                .get(header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse().ok());
            return Err(Error::Status {
                url: redacted,
                status,
                retry_after_secs,
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
        let (parts, body) = response.into_parts();
        Ok(RangeResponse {
            range: parsed.range,
            total: parsed.total,
            headers: parts.headers,
            body,
        })
    }
}
