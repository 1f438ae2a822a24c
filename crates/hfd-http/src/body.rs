//! Streamed response bodies.

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use std::time::Duration;

use crate::error::{Error, Result};
use hfd_types::RedactedUrl;

/// A response body read frame by frame, with a stall timeout per frame.
#[derive(Debug)]
pub struct Body {
    inner: Incoming,
    url: RedactedUrl,
    stall_timeout: Duration,
}

impl Body {
    pub(crate) fn new(inner: Incoming, url: RedactedUrl, stall_timeout: Duration) -> Self {
        Self {
            inner,
            url,
            stall_timeout,
        }
    }

    /// The next chunk of data, `None` at the end of the body.
    ///
    /// Cancel safe: dropping the future loses no data already returned.
    pub async fn next_chunk(&mut self) -> Option<Result<Bytes>> {
        loop {
            let frame = match tokio::time::timeout(self.stall_timeout, self.inner.frame()).await {
                Err(_) => {
                    return Some(Err(Error::Timeout {
                        url: self.url.clone(),
                        seconds: self.stall_timeout.as_secs(),
                    }));
                }
                Ok(None) => return None,
                Ok(Some(Err(e))) => {
                    return Some(Err(Error::Body {
                        url: self.url.clone(),
                        source: Box::new(e),
                    }));
                }
                Ok(Some(Ok(frame))) => frame,
            };
            if let Ok(data) = frame.into_data()
                && !data.is_empty()
            {
                return Some(Ok(data));
            }
        }
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
