//! Responses that carry file bytes: ranges, HEAD, streaming, and the content faults.

use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt as _;
use http::{HeaderValue, Method, Response, StatusCode, header};
use http_body::Frame;
use http_body_util::{BodyExt as _, StreamBody};

use crate::content::{Blob, CHUNK, Source, fill_seeded};
use crate::fault::FaultKind;
use crate::log::{ConnShared, EntryCell};
use crate::routes::{ResBody, empty, full};

/// A parsed `Range` header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RangeReq {
    /// Half-open `[start, end)` inside the file.
    Satisfiable(u64, u64),
    /// Starts at or past the end of the file.
    Unsatisfiable,
}

/// Parses a single-range `bytes=` header against `size`. Multiple ranges, other units and
/// malformed values return `None` (the range is ignored and the whole file is sent).
pub(crate) fn parse_range(value: &str, size: u64) -> Option<RangeReq> {
    let spec = value.trim().strip_prefix("bytes=")?.trim();
    if spec.contains(',') {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let (a, b) = (a.trim(), b.trim());
    if a.is_empty() {
        let n: u64 = b.parse().ok()?;
        if n == 0 || size == 0 {
            return Some(RangeReq::Unsatisfiable);
        }
        return Some(RangeReq::Satisfiable(size.saturating_sub(n), size));
    }
    let start: u64 = a.parse().ok()?;
    let last: Option<u64> = if b.is_empty() {
        None
    } else {
        Some(b.parse().ok()?)
    };
    if last.is_some_and(|l| l < start) {
        return None;
    }
    if start >= size {
        return Some(RangeReq::Unsatisfiable);
    }
    let end = last.map_or(size, |l| l.saturating_add(1).min(size));
    Some(RangeReq::Satisfiable(start, end))
}

/// Inputs of [`content_response`].
pub(crate) struct ContentRequest<'a> {
    pub(crate) method: &'a Method,
    pub(crate) range: Option<&'a str>,
    pub(crate) blob: &'a Arc<Blob>,
    /// Unquoted ETag to announce.
    pub(crate) etag: &'a str,
    pub(crate) extra_headers: Vec<(&'static str, String)>,
    pub(crate) fault: Option<FaultKind>,
    pub(crate) cell: Arc<EntryCell>,
    pub(crate) conn: Arc<ConnShared>,
}

/// Pause between the last body byte and a reset or early close.
const FAILURE_GRACE: Duration = Duration::from_millis(50);

/// Most bytes an "endless" body sends before giving up.
const ENDLESS_LIMIT: u64 = 4 << 30;

fn error_body(e: io::Error) -> ResBody {
    let stream = futures::stream::once(async move { Err::<Frame<Bytes>, _>(e) });
    StreamBody::new(stream).boxed_unsync()
}

/// The content `[start, start + len)` gzipped, with `Content-Encoding: gzip`.
fn gzip_response(
    builder: http::response::Builder,
    req: &ContentRequest<'_>,
    start: u64,
    len: u64,
) -> Response<ResBody> {
    let builder = builder.header(header::CONTENT_ENCODING, "gzip");
    if req.method == Method::HEAD {
        return builder.body(empty()).expect("valid response");
    }
    let gz = match req.blob.source.read_at(start, len as usize) {
        Ok(raw) => gzip_stored(&raw),
        Err(e) => return builder.body(error_body(e)).expect("valid response"),
    };
    req.cell
        .body_bytes
        .fetch_add(gz.len() as u64, Ordering::SeqCst);
    builder
        .header(header::CONTENT_LENGTH, gz.len())
        .body(full(gz))
        .expect("valid response")
}

/// `data` as a gzip member of stored (uncompressed) deflate blocks.
pub(crate) fn gzip_stored(data: &[u8]) -> Bytes {
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    let mut blocks = data.chunks(0xffff).peekable();
    if blocks.peek().is_none() {
        out.extend_from_slice(&[1, 0, 0, 0xff, 0xff]);
    }
    while let Some(block) = blocks.next() {
        let last = blocks.peek().is_none();
        let n = block.len() as u16;
        out.push(u8::from(last));
        out.extend_from_slice(&n.to_le_bytes());
        out.extend_from_slice(&(!n).to_le_bytes());
        out.extend_from_slice(block);
    }
    out.extend_from_slice(&crc32(data).to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    Bytes::from(out)
}

/// CRC-32 (IEEE, as gzip uses it), bit by bit: only for small test bodies.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    !crc
}

#[derive(Clone, Copy)]
enum Failure {
    Reset,
    Close,
}

pub(crate) fn content_response(req: ContentRequest<'_>) -> Response<ResBody> {
    let size = req.blob.size;
    let fault = req.fault.as_ref();
    let mut range = req.range.and_then(|r| parse_range(r, size));
    if fault == Some(&FaultKind::IgnoreRange) {
        range = None;
    }
    let etag = if fault == Some(&FaultKind::ChangeEtag) {
        crate::content::git_blob_sha1(format!("changed {}", req.etag).as_bytes())
    } else {
        req.etag.to_owned()
    };
    let mut builder = Response::builder()
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::ETAG, format!("\"{etag}\""))
        .header(header::CONTENT_TYPE, "application/octet-stream");
    for (name, value) in &req.extra_headers {
        builder = builder.header(*name, value.as_str());
    }
    let (status, start, len) = match range {
        Some(RangeReq::Unsatisfiable) => {
            return builder
                .status(StatusCode::RANGE_NOT_SATISFIABLE)
                .header(header::CONTENT_RANGE, format!("bytes */{size}"))
                .header(header::CONTENT_LENGTH, "0")
                .body(empty())
                .expect("valid response");
        }
        Some(RangeReq::Satisfiable(start, end)) => {
            let shown = match fault {
                Some(FaultKind::WrongContentRange) => (start + 1, end),
                Some(FaultKind::ContentRangeOutside) => (size, size + (end - start) - 1),
                _ => (start, end - 1),
            };
            builder = builder.header(
                header::CONTENT_RANGE,
                format!("bytes {}-{}/{size}", shown.0, shown.1),
            );
            (StatusCode::PARTIAL_CONTENT, start, end - start)
        }
        None => (StatusCode::OK, 0, size),
    };
    let extra = match fault {
        Some(FaultKind::LongBody { extra }) => *extra,
        Some(FaultKind::EndlessBody) => ENDLESS_LIMIT.saturating_sub(len),
        _ => 0,
    };
    builder = builder.status(status);
    match fault {
        Some(FaultKind::EndlessBody) => {}
        Some(FaultKind::LyingContentLength(n)) => {
            builder = builder.header(header::CONTENT_LENGTH, *n);
        }
        Some(FaultKind::GzipBody) => return gzip_response(builder, &req, start, len),
        _ => builder = builder.header(header::CONTENT_LENGTH, len + extra),
    }
    if req.method == Method::HEAD {
        return builder.body(empty()).expect("valid response");
    }
    let failure = match fault {
        Some(FaultKind::ResetAfterBytes(n)) if *n < len => Some((*n, Failure::Reset)),
        Some(FaultKind::ShortBody { missing }) => {
            Some((len.saturating_sub(*missing), Failure::Close))
        }
        Some(FaultKind::LyingContentLength(n)) if *n > len => Some((len, Failure::Close)),
        _ => None,
    };
    let stall = match fault {
        Some(FaultKind::StallAfterBytes { bytes, duration }) => Some((*bytes, *duration)),
        _ => None,
    };
    let plan = BodyPlan {
        source: req.blob.source.clone(),
        offset: start,
        len,
        extra,
        failure,
        stall,
        corrupt: fault == Some(&FaultKind::CorruptBody),
        sent: 0,
        done: false,
        cell: req.cell,
        conn: req.conn,
    };
    let stream = futures::stream::unfold(plan, |mut plan| async move {
        let item = plan.next_chunk().await?;
        Some((item, plan))
    });
    let body = StreamBody::new(stream.map(|r| r.map(Frame::data)));
    builder.body(body.boxed_unsync()).expect("valid response")
}

struct BodyPlan {
    source: Source,
    offset: u64,
    len: u64,
    extra: u64,
    failure: Option<(u64, Failure)>,
    stall: Option<(u64, Duration)>,
    /// Invert every content byte ([`FaultKind::CorruptBody`]).
    corrupt: bool,
    sent: u64,
    done: bool,
    cell: Arc<EntryCell>,
    conn: Arc<ConnShared>,
}

impl BodyPlan {
    async fn next_chunk(&mut self) -> Option<io::Result<Bytes>> {
        if self.done {
            return None;
        }
        if let Some((at, duration)) = self.stall
            && self.sent >= at
        {
            self.stall = None;
            tokio::time::sleep(duration).await;
        }
        if let Some((at, kind)) = self.failure
            && self.sent >= at
        {
            self.done = true;
            // Returning Pending first lets the connection flush what was sent, and gives the
            // client time to read it, before the error tears the connection down (an RST
            // would otherwise discard unread bytes).
            tokio::time::sleep(FAILURE_GRACE).await;
            let msg = match kind {
                Failure::Reset => {
                    self.conn.kill();
                    "fault: connection reset"
                }
                Failure::Close => "fault: body cut short",
            };
            return Some(Err(io::Error::new(io::ErrorKind::ConnectionAborted, msg)));
        }
        let total = self.len + self.extra;
        if self.sent >= total {
            self.done = true;
            return None;
        }
        let mut n = (total - self.sent).min(CHUNK as u64);
        if let Some((at, _)) = self.stall {
            n = n.min(at - self.sent);
        }
        if let Some((at, _)) = self.failure {
            n = n.min(at - self.sent);
        }
        let chunk = if self.sent < self.len {
            let n = n.min(self.len - self.sent) as usize;
            match self.source.read_at(self.offset + self.sent, n) {
                Ok(b) if b.len() == n && self.corrupt => b.iter().map(|x| !x).collect(),
                Ok(b) if b.len() == n => b,
                Ok(_) => {
                    self.done = true;
                    return Some(Err(io::Error::other("content shorter than announced")));
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        } else {
            let mut buf = vec![0u8; n as usize];
            fill_seeded(0xBAD_B0D1, self.sent, &mut buf);
            Bytes::from(buf)
        };
        self.sent += chunk.len() as u64;
        self.cell
            .body_bytes
            .fetch_add(chunk.len() as u64, Ordering::SeqCst);
        Some(Ok(chunk))
    }
}

/// A small in-memory body plus its length, counted in the log entry.
pub(crate) fn counted_full(cell: &EntryCell, bytes: impl Into<Bytes>) -> ResBody {
    let bytes = bytes.into();
    cell.body_bytes
        .fetch_add(bytes.len() as u64, Ordering::SeqCst);
    full(bytes)
}

pub(crate) fn header_value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| {
        let ascii: String = s
            .chars()
            .map(|c| {
                if c.is_ascii() && !c.is_ascii_control() {
                    c
                } else {
                    '?'
                }
            })
            .collect();
        HeaderValue::from_str(&ascii).expect("printable ASCII is a valid header value")
    })
}

#[cfg(test)]
mod tests {
    use super::{RangeReq, parse_range};

    #[test]
    fn gzip_member_is_well_formed() {
        assert_eq!(super::crc32(b"123456789"), 0xCBF4_3926);
        let gz = super::gzip_stored(b"hello");
        assert_eq!(&gz[..3], &[0x1f, 0x8b, 8]);
        assert_eq!(&gz[10..15], &[1, 5, 0, 0xfa, 0xff]);
        assert_eq!(&gz[15..20], b"hello");
        assert_eq!(gz.len(), 10 + 5 + 5 + 8);
        assert_eq!(super::gzip_stored(b"").len(), 10 + 5 + 8);
    }

    #[test]
    fn range_parsing_edges() {
        use RangeReq::{Satisfiable as S, Unsatisfiable as U};
        assert_eq!(parse_range("bytes=0-0", 10), Some(S(0, 1)));
        assert_eq!(parse_range("bytes=9-9", 10), Some(S(9, 10)));
        assert_eq!(parse_range("bytes=5-", 10), Some(S(5, 10)));
        assert_eq!(parse_range("bytes=5-100", 10), Some(S(5, 10)));
        assert_eq!(parse_range("bytes=-3", 10), Some(S(7, 10)));
        assert_eq!(parse_range("bytes=-30", 10), Some(S(0, 10)));
        assert_eq!(parse_range("bytes=10-", 10), Some(U));
        assert_eq!(parse_range("bytes=0-0", 0), Some(U));
        assert_eq!(parse_range("bytes=3-2", 10), None);
        assert_eq!(parse_range("bytes=0-1,3-4", 10), None);
        assert_eq!(parse_range("items=0-1", 10), None);
        assert_eq!(parse_range("bytes=x-1", 10), None);
    }
}
