//! What the engine consumes: a source of byte ranges.

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use futures::stream::BoxStream;
use hfd_types::ByteRange;

/// Opaque identity of a file, chosen by the caller (an index into its plan).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileKey(pub u64);

impl std::fmt::Display for FileKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "file#{}", self.0)
    }
}

/// Index of the global connection slot a request runs on, in
/// `0..max_connections`. A source may use it to pin requests to one of N
/// connections; the engine never runs two requests on one slot at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SlotId(pub usize);

/// A boxed error from a source implementation.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A response body: chunks in order. The engine counts them against the
/// range it asked for; a well-behaved source yields exactly that many bytes.
pub type BodyStream = BoxStream<'static, Result<Bytes, SourceError>>;

/// A source of file bytes (the HTTP adapter in `hfd`, or an in-memory one
/// in tests).
///
/// Both methods may be called concurrently for the same file. Cancel safety:
/// the engine drops the returned future or stream when it no longer needs
/// the bytes (a split, a won hedge, cancellation); implementations must
/// tolerate that at any await point.
pub trait RangeSource: Send + Sync + 'static {
    /// Starts fetching `range` of `key`. The stream yields the bytes of
    /// `range` in order.
    fn fetch_range(
        &self,
        key: FileKey,
        range: ByteRange,
        slot: SlotId,
    ) -> impl Future<Output = Result<BodyStream, SourceError>> + Send;

    /// Starts fetching the whole file from byte 0. Used after
    /// [`SourceError::RangeUnsupported`].
    fn fetch_whole(
        &self,
        key: FileKey,
        slot: SlotId,
    ) -> impl Future<Output = Result<BodyStream, SourceError>> + Send;

    /// The request of `key` on `slot` was dropped for being far slower
    /// than its peers (or for stalling): the connection that carried it
    /// should carry no further request. Over HTTP/1.1 the dropped request
    /// already closed it; over HTTP/2 a dropped stream leaves its
    /// connection open, and the retry would land on the same slow socket.
    /// Called after the request's stream was dropped. Default: nothing.
    fn retire_slow(&self, key: FileKey, slot: SlotId) -> impl Future<Output = ()> + Send {
        let _ = (key, slot);
        async {}
    }

    /// The bytes of `key` failed their check (a digest mismatch, or an
    /// answer that contradicts the file): forget what the source holds for
    /// it (its resolved URL, the connections that served it), so the next
    /// request starts from a fresh resolve. Called after every failed
    /// attempt, before the engine fetches the file again or gives up.
    /// Default: nothing to forget.
    fn reset_file(&self, key: FileKey) -> impl Future<Output = ()> + Send {
        let _ = key;
        async {}
    }

    /// `key` is done (complete, verified, under its final name): nothing
    /// more will be asked for it in this run, so what the source holds for
    /// it (its resolved URL) can go. Keeps the source's memory bounded by
    /// the files in flight, not by the listing. Default: nothing to forget.
    fn finish_file(&self, key: FileKey) -> impl Future<Output = ()> + Send {
        let _ = key;
        async {}
    }
}

/// Why a source request failed, classified by what the engine does next.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// A transient failure (connection reset, 5xx, 429, timeout). The engine
    /// backs off and re-requests from the last byte written.
    #[error("transient source failure")]
    Retryable {
        /// Server-given wait (`Retry-After`, `RateLimit` `t`), used instead
        /// of the computed backoff when present.
        retry_after: Option<Duration>,
        /// The server is rate limiting (429/503): pause every request of the
        /// pool, not just this one.
        slow_pool: bool,
        /// The underlying error.
        #[source]
        source: BoxError,
    },
    /// The source does not honour range requests (e.g. `200` to a `Range`
    /// request). The engine falls back to one stream from byte 0.
    #[error("source ignores range requests")]
    RangeUnsupported {
        /// The underlying error.
        #[source]
        source: BoxError,
    },
    /// The URL expired. The source refreshes it itself (single-flight); the
    /// engine retries right away.
    #[error("source URL expired")]
    UrlExpired {
        /// The underlying error.
        #[source]
        source: BoxError,
    },
    /// The source's answer contradicts the file (wrong `Content-Range`,
    /// changed ETag, size mismatch). Like a digest mismatch: the file's
    /// partial is discarded and the file fetched again from a fresh
    /// resolve, a bounded number of times.
    #[error("source sent inconsistent data")]
    Integrity {
        /// The underlying error.
        #[source]
        source: BoxError,
    },
    /// Anything else that retrying will not fix (404, auth).
    #[error("source failed")]
    Fatal {
        /// The underlying error.
        #[source]
        source: BoxError,
    },
}

impl SourceError {
    /// A transient failure with the computed backoff.
    pub fn retryable(source: impl Into<BoxError>) -> Self {
        Self::Retryable {
            retry_after: None,
            slow_pool: false,
            source: source.into(),
        }
    }

    /// A rate limit (429/503) that pauses the whole pool for `retry_after`
    /// (or the computed backoff when `None`).
    pub fn rate_limited(source: impl Into<BoxError>, retry_after: Option<Duration>) -> Self {
        Self::Retryable {
            retry_after,
            slow_pool: true,
            source: source.into(),
        }
    }

    /// See [`SourceError::RangeUnsupported`].
    pub fn range_unsupported(source: impl Into<BoxError>) -> Self {
        Self::RangeUnsupported {
            source: source.into(),
        }
    }

    /// See [`SourceError::UrlExpired`].
    pub fn url_expired(source: impl Into<BoxError>) -> Self {
        Self::UrlExpired {
            source: source.into(),
        }
    }

    /// See [`SourceError::Integrity`].
    pub fn integrity(source: impl Into<BoxError>) -> Self {
        Self::Integrity {
            source: source.into(),
        }
    }

    /// See [`SourceError::Fatal`].
    pub fn fatal(source: impl Into<BoxError>) -> Self {
        Self::Fatal {
            source: source.into(),
        }
    }

    /// Whether the engine retries after this error.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Retryable { .. } | Self::UrlExpired { .. })
    }

    /// Whether the answer contradicted the file.
    pub fn is_integrity(&self) -> bool {
        matches!(self, Self::Integrity { .. })
    }
}
