//! Streamed response bodies.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body::Body as _;
use http_body_util::BodyExt;
use hyper::body::Incoming;

use crate::connect::Protocol;
use crate::error::{Error, Result};
use crate::pool::{ConnectionInfo, Lease, OriginPool};
use hfd_types::RedactedUrl;

/// A response body read frame by frame, with a stall timeout per frame.
///
/// The body holds its connection: an HTTP/1.1 connection goes back to the
/// pool when the body has been read to the end, and is closed if the body is
/// dropped before that. A stall (no frame within the stall timeout) closes
/// an HTTP/1.1 connection and retires an HTTP/2 one.
pub struct Body {
    inner: Incoming,
    url: RedactedUrl,
    stall_timeout: Duration,
    lease: Option<Lease>,
    origin: Arc<OriginPool>,
    info: ConnectionInfo,
    /// Set once the end, an error or a stall was reported.
    done: bool,
    /// Most body bytes accepted ([`Body::expect_len`]).
    limit: Option<u64>,
    /// Keep the connection's lease at the end instead of giving it back
    /// ([`Body::finish_keeping_connection`]).
    keep_lease: bool,
    /// Body bytes handed out so far.
    received: u64,
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Body")
            .field("url", &self.url)
            .field("connection", &self.info)
            .finish_non_exhaustive()
    }
}

impl Body {
    pub(crate) fn new(
        inner: Incoming,
        url: RedactedUrl,
        stall_timeout: Duration,
        lease: Lease,
    ) -> Self {
        let origin = lease.origin_pool();
        let info = lease.info().clone();
        Self {
            inner,
            url,
            stall_timeout,
            lease: Some(lease),
            origin,
            info,
            done: false,
            limit: None,
            keep_lease: false,
            received: 0,
        }
    }

    /// Caps the body at `len` bytes: up to `len` bytes are handed out, and
    /// if the server sends more, the next call fails with
    /// [`Error::BodyTooLong`] and the connection is given up. A body that
    /// never ends therefore costs at most one frame past `len`.
    #[must_use]
    pub fn expect_len(mut self, len: u64) -> Self {
        self.limit = Some(len);
        self
    }

    fn give_up(&mut self) {
        self.done = true;
        if let Some(lease) = self.lease.take() {
            if self.info.protocol == Protocol::Http2 {
                lease.retire_connection();
            }
            lease.discard();
        }
    }

    /// The connection this body arrives on.
    pub fn connection(&self) -> &ConnectionInfo {
        &self.info
    }

    /// The next chunk of data, `None` at the end of the body.
    ///
    /// Cancel safe: dropping the future loses no data already returned.
    /// After an error the body is finished and its connection given up.
    pub async fn next_chunk(&mut self) -> Option<Result<Bytes>> {
        loop {
            if self.done {
                return None;
            }
            let frame = match tokio::time::timeout(self.stall_timeout, self.inner.frame()).await {
                Err(_) => {
                    self.done = true;
                    if let Some(lease) = self.lease.take() {
                        tracing::debug!(url = %self.url, connection = %self.info.id,
                            "body stalled; giving up the connection");
                        if self.info.protocol == Protocol::Http2 {
                            lease.retire_connection();
                        }
                        lease.discard();
                    }
                    return Some(Err(Error::Timeout {
                        url: self.url.clone(),
                        seconds: self.stall_timeout.as_secs(),
                    }));
                }
                Ok(None) => {
                    self.done = true;
                    if !self.keep_lease
                        && let Some(lease) = self.lease.take()
                    {
                        lease.release();
                    }
                    return None;
                }
                Ok(Some(Err(e))) => {
                    self.done = true;
                    if let Some(lease) = self.lease.take() {
                        lease.discard();
                    }
                    return Some(Err(Error::Body {
                        url: self.url.clone(),
                        source: Box::new(e),
                    }));
                }
                Ok(Some(Ok(frame))) => frame,
            };
            if let Ok(mut data) = frame.into_data()
                && !data.is_empty()
            {
                self.origin
                    .counters
                    .bytes_received
                    .fetch_add(data.len() as u64, Ordering::Relaxed);
                if let Some(limit) = self.limit {
                    let room = limit - self.received;
                    if room == 0 {
                        tracing::debug!(url = %self.url, connection = %self.info.id,
                            limit, "body runs past its expected length; giving up the connection");
                        self.give_up();
                        return Some(Err(Error::BodyTooLong {
                            url: self.url.clone(),
                            expected: limit,
                        }));
                    }
                    if data.len() as u64 > room {
                        // Hand out what fits; the next call reports the rest.
                        data.truncate(room as usize);
                    }
                }
                self.received += data.len() as u64;
                return Some(Ok(data));
            }
        }
    }

    /// Reads the body to its end and keeps its connection for the next
    /// request (a redirect's target on the same origin); `None` when the
    /// body fails or runs past `limit` bytes (its connection is then given
    /// up as for any such body).
    pub(crate) async fn finish_keeping_connection(mut self, limit: u64) -> Option<Lease> {
        self.keep_lease = true;
        let mut read = 0;
        while let Some(chunk) = self.next_chunk().await {
            read += chunk.ok()?.len() as u64;
            if read > limit {
                return None;
            }
        }
        self.lease.take()
    }

    /// Reads the whole body, failing once it exceeds `limit` bytes.
    pub async fn collect_limited(mut self, limit: usize) -> Result<Bytes> {
        let mut buf = BytesMut::new();
        while let Some(chunk) = self.next_chunk().await {
            let chunk = chunk?;
            if buf.len() + chunk.len() > limit {
                return Err(Error::BodyTooLarge {
                    url: self.url.clone(),
                    limit,
                });
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(buf.freeze())
    }
}

impl Drop for Body {
    fn drop(&mut self) {
        if let Some(lease) = self.lease.take() {
            if self.inner.is_end_stream() {
                lease.release();
            } else {
                lease.discard();
            }
        }
    }
}
