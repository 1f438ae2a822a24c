//! Response bodies: file bytes read in bounded chunks, and the request log
//! line written when a body is finished or dropped.

use std::convert::Infallible;
use std::fmt;
use std::fs::File;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt as _, Empty, Full, StreamBody};

/// The body type of every answer.
pub(crate) type ResBody = UnsyncBoxBody<Bytes, io::Error>;

/// Bytes read from disk per chunk: the most a connection holds of a file.
pub(crate) const CHUNK: usize = 256 * 1024;

pub(crate) fn full(bytes: impl Into<Bytes>) -> ResBody {
    Full::new(bytes.into())
        .map_err(|never: Infallible| match never {})
        .boxed_unsync()
}

pub(crate) fn empty() -> ResBody {
    Empty::new()
        .map_err(|never: Infallible| match never {})
        .boxed_unsync()
}

/// `[offset, offset + len)` of `file`, one chunk at a time: the next chunk
/// is read only when the connection has taken the previous one, so memory
/// per response stays at one chunk whatever the file size. A file that
/// turns out shorter than promised ends the body with an error (the client
/// sees a broken transfer, never short content under a full length).
pub(crate) fn file_range(file: File, offset: u64, len: u64) -> ResBody {
    let file = Arc::new(file);
    let stream = futures::stream::unfold((offset, len), move |(pos, left)| {
        let file = Arc::clone(&file);
        async move {
            if left == 0 {
                return None;
            }
            let want = usize::try_from(left).unwrap_or(CHUNK).min(CHUNK);
            let read = tokio::task::spawn_blocking(move || read_chunk(&file, pos, want)).await;
            let chunk = match read {
                Ok(Ok(chunk)) => chunk,
                Ok(Err(e)) => return Some((Err(e), (pos, 0))),
                Err(e) => return Some((Err(io::Error::other(e)), (pos, 0))),
            };
            let n = chunk.len() as u64;
            Some((Ok(Frame::data(chunk)), (pos + n, left - n)))
        }
    });
    StreamBody::new(stream).boxed_unsync()
}

#[cfg(unix)]
pub(crate) fn read_chunk(file: &File, pos: u64, want: usize) -> io::Result<Bytes> {
    use std::os::unix::fs::FileExt as _;
    let mut buf = vec![0u8; want];
    let mut filled = 0;
    while filled < want {
        let n = file.read_at(&mut buf[filled..], pos + filled as u64)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the file is shorter than when the answer started",
            ));
        }
        filled += n;
    }
    Ok(Bytes::from(buf))
}

#[cfg(not(unix))]
pub(crate) fn read_chunk(file: &File, pos: u64, want: usize) -> io::Result<Bytes> {
    use std::os::windows::fs::FileExt as _;
    let mut buf = vec![0u8; want];
    let mut filled = 0;
    while filled < want {
        let n = file.seek_read(&mut buf[filled..], pos + filled as u64)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the file is shorter than when the answer started",
            ));
        }
        filled += n;
    }
    Ok(Bytes::from(buf))
}

/// One request, as the request log shows it.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct RequestRecord {
    /// The client.
    pub peer: SocketAddr,
    /// `GET`, `HEAD`, …
    pub method: String,
    /// The path as received (percent-encoded, without the query).
    pub path: String,
    /// `HTTP/1.1`, `HTTP/2.0`.
    pub version: String,
    /// Status sent.
    pub status: u16,
    /// Body bytes sent.
    pub bytes: u64,
    /// Whether the whole body was sent (false when the client went away).
    pub complete: bool,
    /// From the request to the end of the body.
    pub elapsed: Duration,
}

impl fmt::Display for RequestRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} \"{} {} {}\" {} {}{} {}ms",
            self.peer,
            self.method,
            self.path,
            self.version,
            self.status,
            self.bytes,
            if self.complete { "" } else { " (aborted)" },
            self.elapsed.as_millis()
        )
    }
}

/// Receives one record per request.
pub type RequestLog = Arc<dyn Fn(&RequestRecord) + Send + Sync>;

/// A body that counts what it sends and logs its request when dropped.
pub(crate) struct Logged {
    inner: ResBody,
    record: RequestRecord,
    started: Instant,
    sink: RequestLog,
    finished: bool,
}

impl Logged {
    pub(crate) fn new(
        inner: ResBody,
        record: RequestRecord,
        started: Instant,
        sink: RequestLog,
    ) -> Self {
        Self {
            inner,
            record,
            started,
            sink,
            finished: false,
        }
    }
}

impl Body for Logged {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.record.bytes += data.len() as u64;
                }
            }
            Poll::Ready(None) => self.finished = true,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Logged {
    fn drop(&mut self) {
        self.record.complete = self.finished || self.inner.is_end_stream();
        self.record.elapsed = self.started.elapsed();
        (self.sink)(&self.record);
    }
}
