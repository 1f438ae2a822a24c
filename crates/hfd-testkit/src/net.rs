//! The accepted socket: byte counters, a per-connection token bucket, and the
//! reset switch used by the `ResetAfterBytes` fault.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Sleep;

use crate::log::ConnShared;

/// Token-bucket capacity for a rate: a tenth of a second of traffic, between 1 KiB and
/// 256 KiB.
pub(crate) fn burst_for(rate: u64) -> u64 {
    (rate / 10).clamp(1024, 256 * 1024)
}

#[derive(Debug)]
struct Bucket {
    rate: u64,
    burst: u64,
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + dt * self.rate as f64).min(self.burst as f64);
        self.last = now;
    }
}

/// A TCP stream that counts bytes, throttles writes to a token bucket and can be reset.
///
/// The bucket wraps the connection, not a request, so any number of small responses on
/// one connection share one budget: at any instant `bytes_written <= burst + rate * t`
/// where `t` is the time since accept.
#[derive(Debug)]
pub(crate) struct MeteredIo {
    stream: TcpStream,
    bucket: Option<Bucket>,
    sleep: Option<Pin<Box<Sleep>>>,
    conn: Arc<ConnShared>,
}

impl MeteredIo {
    pub(crate) fn new(stream: TcpStream, conn: Arc<ConnShared>) -> Self {
        let bucket = conn.rate_limit.map(|rate| Bucket {
            rate: rate.max(1),
            burst: conn.burst,
            tokens: conn.burst as f64,
            last: conn.opened_at,
        });
        Self {
            stream,
            bucket,
            sleep: None,
            conn,
        }
    }

    fn check_kill(&self) -> io::Result<()> {
        if self.conn.kill.load(Ordering::SeqCst) {
            let _ = self.stream.set_zero_linger();
            Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "fault: connection reset",
            ))
        } else {
            Ok(())
        }
    }
}

impl Drop for MeteredIo {
    fn drop(&mut self) {
        if self.conn.kill.load(Ordering::SeqCst) {
            // SO_LINGER 0 turns the close into a TCP RST.
            let _ = self.stream.set_zero_linger();
        }
        self.conn.closed.store(true, Ordering::SeqCst);
    }
}

impl AsyncRead for MeteredIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.check_kill()?;
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.stream).poll_read(cx, buf))?;
        let n = buf.filled().len() - before;
        this.conn.bytes_read.fetch_add(n as u64, Ordering::SeqCst);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for MeteredIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.check_kill()?;
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let mut allowed = buf.len();
        if let Some(bucket) = &mut this.bucket {
            loop {
                if let Some(sleep) = &mut this.sleep {
                    ready!(sleep.as_mut().poll(cx));
                    this.sleep = None;
                }
                bucket.refill(Instant::now());
                // Half a bucket at most: waiting for a full bucket would lose
                // the refill past its capacity to the timer's lateness (a
                // 10 MiB/s connection delivered 9.4).
                let want = buf.len().min((bucket.burst as usize / 2).max(1)) as f64;
                if bucket.tokens >= want {
                    break;
                }
                let delay_secs = (want - bucket.tokens) / bucket.rate as f64;
                let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(delay_secs);
                this.sleep = Some(Box::pin(tokio::time::sleep_until(deadline)));
            }
            allowed = buf.len().min(bucket.tokens as usize);
        }
        let n = ready!(Pin::new(&mut this.stream).poll_write(cx, &buf[..allowed]))?;
        if let Some(bucket) = &mut this.bucket {
            bucket.tokens -= n as f64;
        }
        this.conn
            .bytes_written
            .fetch_add(n as u64, Ordering::SeqCst);
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.check_kill()?;
        Pin::new(&mut this.stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}
