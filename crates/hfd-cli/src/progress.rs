//! Progress: engine events in, a display out.
//!
//! - `Terminal`: indicatif bars on stderr — one total bar (bytes, speed,
//!   ETA, files done of total, connections in use) and a bar per active
//!   large file.
//! - `Plain`: off a terminal, one status line on stderr every few seconds.
//! - `Json`: newline-delimited JSON events on stdout (docs/json-events.md).
//! - `Quiet`: nothing.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hfd::LiveStats;
use hfd::hfd_engine::{FileKey, Reporter, RetryEvent};
use hfd_types::{ByteSize, ContentDigest};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;
use tokio_util::sync::CancellationToken;

/// Files at least this large get their own bar on a terminal.
const FILE_BAR_MIN: u64 = 8 << 20;

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Terminal,
    Plain,
    Json,
    Quiet,
}

impl Mode {
    pub(crate) fn choose(json: bool, quiet: bool) -> Self {
        if json {
            Self::Json
        } else if quiet {
            Self::Quiet
        } else if std::io::stderr().is_terminal() {
            Self::Terminal
        } else {
            Self::Plain
        }
    }
}

/// One file of the run, as the display knows it.
#[derive(Debug, Clone)]
pub(crate) struct FileLabel {
    pub(crate) path: String,
    pub(crate) size: u64,
}

/// Writes one JSON event line to stdout.
pub(crate) fn emit(event: &serde_json::Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{event}");
    let _ = out.flush();
}

/// Counters shared between the engine's callbacks and the drawing task.
#[derive(Debug)]
pub(crate) struct Progress {
    mode: Mode,
    files: Vec<FileLabel>,
    total_bytes: u64,
    bytes: AtomicU64,
    files_done: AtomicU64,
    retries: AtomicU64,
    started: Instant,
    live: Arc<LiveStats>,
    multi: Option<MultiProgress>,
    total_bar: Option<ProgressBar>,
    file_bars: Mutex<HashMap<FileKey, ProgressBar>>,
}

impl Progress {
    pub(crate) fn new(mode: Mode, files: Vec<FileLabel>, live: Arc<LiveStats>) -> Self {
        let total_bytes = files.iter().map(|f| f.size).sum();
        let (multi, total_bar) = if mode == Mode::Terminal {
            let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(8));
            let bar = multi.add(ProgressBar::new(total_bytes));
            bar.set_style(
                ProgressStyle::with_template(
                    "{bar:30.cyan/blue} {percent:>3}% {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta} {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            (Some(multi), Some(bar))
        } else {
            (None, None)
        };
        let progress = Self {
            mode,
            files,
            total_bytes,
            bytes: AtomicU64::new(0),
            files_done: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            started: Instant::now(),
            live,
            multi,
            total_bar,
            file_bars: Mutex::new(HashMap::new()),
        };
        progress.refresh_message();
        progress
    }

    fn label(&self, key: FileKey) -> Option<&FileLabel> {
        usize::try_from(key.0).ok().and_then(|i| self.files.get(i))
    }

    fn path(&self, key: FileKey) -> &str {
        self.label(key).map_or("?", |l| l.path.as_str())
    }

    fn refresh_message(&self) {
        if let Some(bar) = &self.total_bar {
            bar.set_message(format!(
                "files {}/{} conns {}",
                self.files_done.load(Ordering::Relaxed),
                self.files.len(),
                self.live.active_streams()
            ));
        }
    }

    fn status_line(&self) -> String {
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
            "hfd-rs: {percent:5.1}% {} / {}  {}/s  ETA {eta}  files {}/{}  conns {}  retries {}",
            ByteSize::new(bytes),
            ByteSize::new(self.total_bytes),
            ByteSize::new(speed as u64),
            self.files_done.load(Ordering::Relaxed),
            self.files.len(),
            self.live.active_streams(),
            self.retries.load(Ordering::Relaxed),
        )
    }

    /// Periodic output until `stop` is cancelled.
    pub(crate) async fn tick(self: Arc<Self>, stop: CancellationToken) {
        let period = match self.mode {
            Mode::Quiet => return,
            Mode::Terminal => Duration::from_millis(250),
            Mode::Json => Duration::from_secs(1),
            Mode::Plain => Duration::from_secs(5),
        };
        let mut ticker = tokio::time::interval(period);
        ticker.tick().await;
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                _ = ticker.tick() => {}
            }
            match self.mode {
                Mode::Terminal => self.refresh_message(),
                Mode::Plain => {
                    let line = self.status_line();
                    let _ = writeln!(std::io::stderr().lock(), "{line}");
                }
                Mode::Json => self.progress_event(),
                Mode::Quiet => {}
            }
        }
        // The final state, so even a run shorter than one tick reports it.
        if self.mode == Mode::Json {
            self.progress_event();
        }
        self.finish();
    }

    fn progress_event(&self) {
        let bytes = self.bytes.load(Ordering::Relaxed);
        let elapsed = self.started.elapsed().as_secs_f64();
        emit(&json!({
            "event": "progress",
            "bytes": bytes,
            "total_bytes": self.total_bytes,
            "files_done": self.files_done.load(Ordering::Relaxed),
            "files_total": self.files.len(),
            "bytes_per_sec": if elapsed > 0.0 { (bytes as f64 / elapsed) as u64 } else { 0 },
            "connections": self.live.active_streams(),
            "elapsed_secs": elapsed,
        }));
    }

    /// Clears the bars so the summary prints on a clean line.
    fn finish(&self) {
        if let Ok(mut bars) = self.file_bars.lock() {
            for (_, bar) in bars.drain() {
                bar.finish_and_clear();
            }
        }
        if let Some(bar) = &self.total_bar {
            bar.finish_and_clear();
        }
        if let Some(multi) = &self.multi {
            let _ = multi.clear();
        }
    }
}

impl Reporter for Progress {
    fn on_file_start(&self, key: FileKey, size: u64) {
        match self.mode {
            Mode::Json => emit(&json!({
                "event": "file_start", "path": self.path(key), "size": size,
            })),
            Mode::Terminal if size >= FILE_BAR_MIN => {
                if let (Some(multi), Ok(mut bars)) = (&self.multi, self.file_bars.lock()) {
                    let bar = multi.add(ProgressBar::new(size));
                    bar.set_style(
                        ProgressStyle::with_template(
                            "  {bar:30.green/white} {bytes:>10}/{total_bytes:<10} {wide_msg}",
                        )
                        .unwrap_or_else(|_| ProgressStyle::default_bar())
                        .progress_chars("=> "),
                    );
                    bar.set_message(hfd_types::shown_path(self.path(key)).into_owned());
                    bars.insert(key, bar);
                }
            }
            _ => {}
        }
    }

    fn on_bytes(&self, key: FileKey, bytes: u64) {
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        if let Some(bar) = &self.total_bar {
            bar.inc(bytes);
            if let Ok(bars) = self.file_bars.lock()
                && let Some(file_bar) = bars.get(&key)
            {
                file_bar.inc(bytes);
            }
        }
    }

    fn on_retry(&self, key: FileKey, event: &RetryEvent<'_>) {
        self.retries.fetch_add(1, Ordering::Relaxed);
        let reason = crate::exit::chain(event.cause);
        if self.mode == Mode::Json {
            emit(&json!({
                "event": "retry",
                "path": self.path(key),
                "attempt": event.attempt,
                "wait_ms": event.wait.as_millis() as u64,
                "reason": reason,
            }));
        }
        tracing::info!(file = self.path(key), attempt = event.attempt, wait_ms = event.wait.as_millis() as u64, reason = %reason, "retry");
    }

    fn on_fallback(&self, key: FileKey) {
        if self.mode == Mode::Json {
            emit(&json!({ "event": "fallback", "path": self.path(key),
                "reason": "the server ignores range requests; fetching the file as one stream" }));
        }
    }

    fn on_file_done(&self, key: FileKey, digest: Option<ContentDigest>) {
        self.files_done.fetch_add(1, Ordering::Relaxed);
        match self.mode {
            Mode::Json => {
                let label = self.label(key);
                emit(&json!({
                    "event": "file_done",
                    "path": self.path(key),
                    "size": label.map_or(0, |l| l.size),
                    "hash_algorithm": digest.map(|d| d.algorithm()),
                    "hash": digest.map(|d| d.to_hex()),
                }));
            }
            Mode::Terminal => {
                if let Ok(mut bars) = self.file_bars.lock()
                    && let Some(bar) = bars.remove(&key)
                {
                    bar.finish_and_clear();
                    if let Some(multi) = &self.multi {
                        multi.remove(&bar);
                    }
                }
                self.refresh_message();
            }
            _ => {}
        }
    }

    fn on_file_failed(&self, key: FileKey, error: &hfd::hfd_engine::Error) {
        if self.mode == Mode::Json {
            emit(&json!({
                "event": "file_failed", "path": self.path(key), "error": error.to_string(),
            }));
        }
        tracing::debug!(file = self.path(key), error = %error, "file failed");
    }
}
