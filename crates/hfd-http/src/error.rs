//! Transport errors.

use hfd_types::{ByteRange, RedactedUrl};

/// Result with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// What went wrong with one HTTP exchange.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The URL could not be parsed or uses an unsupported scheme.
    #[error("invalid URL {url}: {reason}")]
    InvalidUrl {
        /// The offending URL.
        url: RedactedUrl,
        /// Why it was rejected.
        reason: String,
    },
    /// Connecting, TLS or the request itself failed before a response.
    #[error("request to {url} failed")]
    Request {
        /// Where the request went.
        url: RedactedUrl,
        /// The transport error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// No response (or no body bytes) within the configured timeout.
    #[error("timed out after {seconds} s waiting for {url}")]
    Timeout {
        /// Where the request went.
        url: RedactedUrl,
        /// The timeout that expired.
        seconds: u64,
    },
    /// Reading the response body failed.
    #[error("reading the body from {url} failed")]
    Body {
        /// Where the body came from.
        url: RedactedUrl,
        /// The transport error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The body was larger than the caller allowed.
    #[error("response body from {url} exceeds the {limit} byte limit")]
    BodyTooLarge {
        /// Where the body came from.
        url: RedactedUrl,
        /// The limit.
        limit: usize,
    },
    /// The server sent a body encoded (`Content-Encoding: gzip` …) although
    /// the request asked for `Accept-Encoding: identity`: the bytes are not
    /// the file's, and are never written.
    #[error("{url} sent a {encoding:?}-encoded body although identity was requested")]
    UnexpectedEncoding {
        /// Where the request went.
        url: RedactedUrl,
        /// The `Content-Encoding` received (sanitised, at most 64 characters).
        encoding: String,
    },
    /// The `Content-Length` of a content answer disagrees with the bytes
    /// asked for (e.g. far larger than the file).
    #[error("{url} announced a {got}-byte body, expected {expected} bytes")]
    BadContentLength {
        /// Where the request went.
        url: RedactedUrl,
        /// The body size the request called for.
        expected: u64,
        /// The `Content-Length` received.
        got: u64,
    },
    /// The body went on past the bytes asked for (an endless or lying body);
    /// what came before the limit was delivered, the rest dropped.
    #[error("the body from {url} runs past the expected {expected} bytes")]
    BodyTooLong {
        /// Where the body came from.
        url: RedactedUrl,
        /// Bytes the body should have had.
        expected: u64,
    },
    /// The response could not be parsed as HTTP (a head larger than the
    /// limit, garbage instead of a status line …); not retried.
    #[error("{url} sent a response that is not valid HTTP or exceeds the header limits")]
    MalformedResponse {
        /// Where the request went.
        url: RedactedUrl,
        /// The parser's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A range request was answered with a status other than 206.
    #[error("server ignored the range request {range} for {url} (status {status})")]
    RangeIgnored {
        /// Where the request went.
        url: RedactedUrl,
        /// The range asked for.
        range: ByteRange,
        /// The status received.
        status: http::StatusCode,
    },
    /// A 206 whose `Content-Range` is missing, malformed or not the one asked for.
    #[error("bad Content-Range {got:?} from {url} for requested {range}")]
    BadContentRange {
        /// Where the request went.
        url: RedactedUrl,
        /// The range asked for.
        range: ByteRange,
        /// The header value received, if any.
        got: Option<String>,
    },
    /// The `Content-Range` total disagrees with the size the caller expected.
    #[error("{url} says the file is {got} bytes, expected {expected}")]
    SizeMismatch {
        /// Where the request went.
        url: RedactedUrl,
        /// Expected total size.
        expected: u64,
        /// Total size in `Content-Range`.
        got: u64,
    },
    /// A non-success status for a range request.
    #[error("{url} answered {status}")]
    Status {
        /// Where the request went.
        url: RedactedUrl,
        /// The status received.
        status: http::StatusCode,
        /// `Retry-After` in seconds, when the server sent an integer.
        retry_after_secs: Option<u64>,
    },
    /// TLS configuration could not be built (bad CA file and the like).
    #[error("TLS setup failed: {reason}")]
    Tls {
        /// What failed.
        reason: String,
    },
    /// A proxy URL (from `--proxy` or the environment) is unusable.
    #[error("invalid proxy URL {proxy}: {reason}")]
    InvalidProxy {
        /// The proxy URL with credentials removed.
        proxy: String,
        /// Why it was rejected.
        reason: String,
    },
    /// Opening a connection (TCP, TLS) to an origin or a proxy failed.
    #[error("cannot connect to {origin}{}", via_text(.via.as_deref()))]
    Connect {
        /// `scheme://host:port` of the target.
        origin: String,
        /// The proxy used, credentials removed.
        via: Option<String>,
        /// The I/O or TLS error.
        #[source]
        source: std::io::Error,
    },
    /// The proxy refused or failed to open a tunnel to the origin.
    #[error("proxy {proxy} could not reach {origin}: {reason}")]
    Proxy {
        /// The proxy, credentials removed.
        proxy: String,
        /// `scheme://host:port` of the target.
        origin: String,
        /// What the proxy said.
        reason: String,
        /// The HTTP status of a refused `CONNECT` (407: bad credentials).
        status: Option<http::StatusCode>,
        /// Whether trying again later may succeed.
        retryable: bool,
    },
    /// Establishing a connection (TCP + proxy handshake + TLS) took longer
    /// than the connect timeout.
    #[error("connecting to {origin} timed out after {timeout:?}")]
    ConnectTimeout {
        /// `scheme://host:port` of the target.
        origin: String,
        /// The timeout that expired.
        timeout: std::time::Duration,
    },
}

fn via_text(via: Option<&str>) -> String {
    via.map(|p| format!(" via proxy {p}")).unwrap_or_default()
}

impl Error {
    /// Whether trying the same request again may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Request { .. }
            | Self::Timeout { .. }
            | Self::Body { .. }
            | Self::Connect { .. }
            | Self::ConnectTimeout { .. } => true,
            Self::Proxy { retryable, .. } => *retryable,
            Self::Status { status, .. } => {
                matches!(status.as_u16(), 408 | 429 | 500 | 502 | 503 | 504)
            }
            _ => false,
        }
    }

    /// The HTTP status, for errors that carry one.
    pub fn status(&self) -> Option<http::StatusCode> {
        match self {
            Self::RangeIgnored { status, .. } | Self::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}
