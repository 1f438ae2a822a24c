//! Progress display: engine events in, one status line out (stderr).
//!
//! On a terminal the line is redrawn in place a few times a second; off a
//! terminal a plain line is printed every few seconds. `--quiet` shows
//! nothing.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hfd::hfd_engine::{FileKey, Reporter, RetryEvent};
use hfd_types::{ByteSize, ContentDigest};
use tokio_util::sync::CancellationToken;

/// Counters shared between the engine's callbacks and the drawing task.
#[derive(Debug)]
pub(crate) struct Progress {
    total_bytes: u64,
    total_files: u64,
    bytes: AtomicU64,
    files_done: AtomicU64,
    retries: AtomicU64,
    started: Instant,
    paths: Vec<String>,
}

impl Progress {
    pub(crate) fn new(paths: Vec<String>, total_bytes: u64) -> Self {
        Self {
            total_bytes,
            total_files: paths.len() as u64,
            bytes: AtomicU64::new(0),
            files_done: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            started: Instant::now(),
            paths,
        }
    }

    fn line(&self) -> String {
        let bytes = self.bytes.load(Ordering::Relaxed);
        let elapsed = self.started.elapsed().as_secs_f64().max(0.001);
        let speed = bytes as f64 / elapsed;
        let eta = if speed > 0.0 && self.total_bytes > bytes {
            format!("{:.0}s", (self.total_bytes - bytes) as f64 / speed)
        } else {
            "-".to_owned()
        };
        let percent = if self.total_bytes == 0 {
            100.0
        } else {
            bytes as f64 * 100.0 / self.total_bytes as f64
        };
        format!(
            "{percent:5.1}% {} / {}  {}/s  ETA {eta}  files {}/{}  retries {}",
            ByteSize::new(bytes),
            ByteSize::new(self.total_bytes),
            ByteSize::new(speed as u64),
            self.files_done.load(Ordering::Relaxed),
            self.total_files,
            self.retries.load(Ordering::Relaxed),
        )
    }

    /// Draws until `stop` is cancelled. Returns when it is.
    pub(crate) async fn draw(self: Arc<Self>, stop: CancellationToken) {
        let tty = std::io::stderr().is_terminal();
        let period = if tty {
            Duration::from_millis(200)
        } else {
            Duration::from_secs(5)
        };
        let mut ticker = tokio::time::interval(period);
        ticker.tick().await;
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                _ = ticker.tick() => {}
            }
            let line = self.line();
            let mut err = std::io::stderr().lock();
            if tty {
                let _ = write!(err, "\r\x1b[2K{line}");
            } else {
                let _ = writeln!(err, "{line}");
            }
            let _ = err.flush();
        }
        if tty {
            let _ = write!(std::io::stderr(), "\r\x1b[2K");
        }
    }
}

impl Reporter for Progress {
    fn on_bytes(&self, _key: FileKey, bytes: u64) {
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    fn on_retry(&self, key: FileKey, event: &RetryEvent<'_>) {
        self.retries.fetch_add(1, Ordering::Relaxed);
        let path = self.path(key);
        tracing::info!(file = path, attempt = event.attempt, wait_ms = event.wait.as_millis() as u64, cause = %event.cause, "retry");
    }

    fn on_file_done(&self, _key: FileKey, _digest: Option<ContentDigest>) {
        self.files_done.fetch_add(1, Ordering::Relaxed);
    }

    fn on_file_failed(&self, key: FileKey, error: &hfd::hfd_engine::Error) {
        tracing::debug!(file = self.path(key), error = %error, "file failed");
    }
}

impl Progress {
    fn path(&self, key: FileKey) -> &str {
        usize::try_from(key.0)
            .ok()
            .and_then(|i| self.paths.get(i))
            .map_or("?", String::as_str)
    }
}
