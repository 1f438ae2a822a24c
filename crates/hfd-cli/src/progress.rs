//! Progress: engine events in, a display out.
//!
//! - `Terminal`: indicatif bars on stderr — one total bar (bytes, speed,
//!   ETA, files done of total, connections in use) and a bar per active
//!   large file.
//! - `Plain`: off a terminal, one status line on stderr every few seconds.
//! - `Json`: newline-delimited JSON events on stdout (docs/json-events.md).
//! - `Quiet`: nothing.

use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hfd::hfd_engine::{FileKey, Reporter, RetryEvent};
use hfd::{FetchList, LiveStats};
use hfd_types::{ByteSize, ContentDigest};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::output::{Label, labelled};

/// Files at least this large get their own bar on a terminal.
const FILE_BAR_MIN: u64 = 8 << 20;

/// Characters of a file name on its bar: with the bar and byte counts, a
/// line fits 80 columns.
const FILE_NAME_WIDTH: usize = 34;

/// The speed is the bytes received over this long, not since the start.
const SPEED_WINDOW: Duration = Duration::from_secs(5);

/// Nothing received for this long shows as "stalled".
const STALL_AFTER: Duration = Duration::from_secs(3);

/// Recent samples of bytes received, for a speed that follows the network.
#[derive(Debug, Default)]
struct Window {
    samples: VecDeque<(Instant, u64)>,
    /// When the byte count last moved.
    last_change: Option<(Instant, u64)>,
}

impl Window {
    fn push(&mut self, now: Instant, received: u64) {
        match self.last_change {
            Some((_, value)) if value == received => {}
            _ => self.last_change = Some((now, received)),
        }
        self.samples.push_back((now, received));
        // Keep one sample at least SPEED_WINDOW old as the window's start.
        while self.samples.len() > 2
            && self
                .samples
                .get(1)
                .is_some_and(|(t, _)| now.duration_since(*t) >= SPEED_WINDOW)
        {
            self.samples.pop_front();
        }
    }

    fn speed(&self, now: Instant, done: bool) -> Speed {
        if let Some((since, _)) = self.last_change {
            let quiet = now.duration_since(since);
            if !done && quiet >= STALL_AFTER {
                return Speed::Stalled(quiet);
            }
        }
        match (self.samples.front(), self.samples.back()) {
            (Some((t0, b0)), Some((t1, b1)))
                if t1.duration_since(*t0) >= Duration::from_millis(500) =>
            {
                Speed::Rate(b1.saturating_sub(*b0) as f64 / t1.duration_since(*t0).as_secs_f64())
            }
            _ => Speed::Measuring,
        }
    }
}

/// The transfer speed as shown.
#[derive(Debug, Clone, Copy)]
enum Speed {
    /// Not enough samples yet.
    Measuring,
    /// Bytes per second over the window.
    Rate(f64),
    /// Nothing received for this long.
    Stalled(Duration),
}

impl Speed {
    fn rate_text(&self) -> String {
        match self {
            Self::Measuring => "-/s".to_owned(),
            Self::Rate(rate) => format!("{}/s", ByteSize::new(*rate as u64)),
            Self::Stalled(quiet) => format!("stalled {}", duration_text(quiet.as_secs_f64())),
        }
    }
}

/// A retry's reason without the engine's wrapper messages, which say
/// nothing the user can act on.
fn without_wrappers(reason: &str) -> &str {
    let mut rest = reason;
    for wrapper in ["source failure: ", "transient source failure: "] {
        rest = rest.strip_prefix(wrapper).unwrap_or(rest);
    }
    rest
}

/// `42s`, `3m05s`, `2h07m`.
fn duration_text(seconds: f64) -> String {
    let s = seconds.round() as u64;
    if s < 60 {
        format!("{s}s")
    } else if s < 3600 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{}h{:02}m", s / 3600, s % 3600 / 60)
    }
}

/// `name` cut to `width` characters in the middle (`model-00…tensors`), so
/// both the folder and the extension stay visible.
fn elide_middle(name: &str, width: usize) -> String {
    let chars: Vec<char> = name.chars().collect();
    if chars.len() <= width || width < 5 {
        return name.to_owned();
    }
    let keep = width - 1;
    let head = keep / 2;
    let tail = keep - head;
    let mut out: String = chars[..head].iter().collect();
    out.push('…');
    out.extend(&chars[chars.len() - tail..]);
    out
}

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
    /// The files to fetch, `FileKey(i)` the `i`-th; it grows while the
    /// listing is read during the download, and says when it is complete:
    /// until then the totals shown are those known so far (`files 3/1000+`).
    files: Arc<FetchList>,
    /// Bytes of the selected files in place (resumed ones included), back
    /// to fewer when a file restarts: what the bar and ETA show.
    bytes: AtomicU64,
    /// The same per file started and not done, so a restart takes back
    /// exactly its file's bytes.
    file_bytes: Mutex<HashMap<FileKey, u64>>,
    /// Bytes received over the network in this run, never taken back: the
    /// speed's measure (resumed bytes were already on disk).
    received: AtomicU64,
    /// Recent (time, bytes received) samples: the speed's moving window.
    window: Mutex<Window>,
    files_done: AtomicU64,
    /// Transfer retries (the engine's events).
    retries: AtomicU64,
    /// Hub request retries (a resolve that answered 503), counted by the
    /// hub clients' retry policies.
    hub_retries: Vec<Arc<AtomicU64>>,
    started: Instant,
    live: Arc<LiveStats>,
    /// The transfer retry budget, shown in retry warnings.
    max_retries: u32,
    multi: Option<MultiProgress>,
    total_bar: Option<ProgressBar>,
    file_bars: Mutex<HashMap<FileKey, ProgressBar>>,
}

impl Progress {
    pub(crate) fn new(
        mode: Mode,
        files: Arc<FetchList>,
        live: Arc<LiveStats>,
        max_retries: u32,
        hub_retries: Vec<Arc<AtomicU64>>,
    ) -> Self {
        let (multi, total_bar) = if mode == Mode::Terminal {
            let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(8));
            let bar = multi.add(ProgressBar::new(files.bytes()));
            bar.set_style(
                ProgressStyle::with_template(
                    "{wide_bar:.cyan/blue} {percent:>3}% {bytes}/{total_bytes} {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            crate::output::draw_logs_above(Some(multi.clone()));
            (Some(multi), Some(bar))
        } else {
            (None, None)
        };
        let progress = Self {
            mode,
            files,
            bytes: AtomicU64::new(0),
            file_bytes: Mutex::default(),
            received: AtomicU64::new(0),
            window: Mutex::new(Window::default()),
            files_done: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            hub_retries,
            started: Instant::now(),
            live,
            max_retries,
            multi,
            total_bar,
            file_bars: Mutex::new(HashMap::new()),
        };
        progress.refresh_message();
        progress
    }

    /// The file's repo path, exact (for `--json`).
    fn path(&self, key: FileKey) -> String {
        self.files
            .get(key)
            .map_or_else(|| "?".to_owned(), |f| f.path.clone())
    }

    /// The file's repo path for people: control and bidi characters escaped.
    fn shown(&self, key: FileKey) -> String {
        hfd_types::shown_path(&self.path(key)).into_owned()
    }

    /// Bytes of the files to fetch known so far.
    fn total_bytes(&self) -> u64 {
        self.files.bytes()
    }

    /// `1000` once the listing is complete, `1000+` while it is read.
    fn files_total_text(&self) -> String {
        let total = self.files.len();
        if self.files.is_complete() {
            total.to_string()
        } else {
            format!("{total}+")
        }
    }

    /// Retries so far, of transfers and of hub requests.
    fn retries_total(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
            + self
                .hub_retries
                .iter()
                .map(|n| n.load(Ordering::Relaxed))
                .sum::<u64>()
    }

    /// `bytes` more of `key` are in place (received or resumed).
    fn count_in_place(&self, key: FileKey, bytes: u64) {
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        if let Ok(mut counted) = self.file_bytes.lock() {
            *counted.entry(key).or_default() += bytes;
        }
        if let Some(bar) = &self.total_bar {
            bar.inc(bytes);
            if let Ok(bars) = self.file_bars.lock()
                && let Some(file_bar) = bars.get(&key)
            {
                file_bar.inc(bytes);
            }
        }
    }

    fn refresh_message(&self) {
        if let Some(bar) = &self.total_bar {
            let speed = self.speed();
            let retries = self.retries_total();
            bar.set_length(self.total_bytes());
            let mut message = format!(
                "{} files {}/{} conns {}",
                self.rate_and_eta(&speed, " "),
                self.files_done.load(Ordering::Relaxed),
                self.files_total_text(),
                self.live.active_streams()
            );
            if retries > 0 {
                let _ = write!(message, " retries {retries}");
            }
            bar.set_message(message);
        }
    }

    /// Records how many bytes arrived by now; called every tick.
    fn sample(&self) {
        let now = Instant::now();
        let received = self.received.load(Ordering::Relaxed);
        if let Ok(mut window) = self.window.lock() {
            window.push(now, received);
        }
    }

    /// The speed over the last few seconds, or how long nothing arrived.
    fn speed(&self) -> Speed {
        let done = self.bytes.load(Ordering::Relaxed) >= self.total_bytes();
        self.window
            .lock()
            .map_or(Speed::Measuring, |w| w.speed(Instant::now(), done))
    }

    fn eta_text(&self, speed: &Speed) -> String {
        let left = self
            .total_bytes()
            .saturating_sub(self.bytes.load(Ordering::Relaxed));
        match speed {
            Speed::Rate(rate) if *rate > 0.0 => {
                format!("ETA {}", duration_text(left as f64 / rate))
            }
            _ => "ETA -".to_owned(),
        }
    }

    /// `12.5 MiB/s ETA 3s`; once every byte is in while files are still
    /// being checked (the hash of what arrived out of order, then the move
    /// into place), `verifying`: neither a speed nor an ETA means anything.
    fn rate_and_eta(&self, speed: &Speed, gap: &str) -> String {
        let total = self.total_bytes();
        let all_in = self.bytes.load(Ordering::Relaxed) >= total && self.files.is_complete();
        let files_left = self.files_done.load(Ordering::Relaxed) < self.files.len() as u64;
        if all_in && files_left && total > 0 {
            return "verifying".to_owned();
        }
        format!("{}{gap}{}", speed.rate_text(), self.eta_text(speed))
    }

    fn status_line(&self) -> String {
        let bytes = self.bytes.load(Ordering::Relaxed);
        let speed = self.speed();
        let total = self.total_bytes();
        let percent = if total == 0 {
            100.0
        } else {
            bytes as f64 * 100.0 / total as f64
        };
        format!(
            "hfd-rs: {percent:5.1}% {} / {}  {}  files {}/{}  conns {}  retries {}",
            ByteSize::new(bytes),
            ByteSize::new(total),
            self.rate_and_eta(&speed, "  "),
            self.files_done.load(Ordering::Relaxed),
            self.files_total_text(),
            self.live.active_streams(),
            self.retries_total(),
        )
    }

    /// Periodic output until `stop` is cancelled.
    pub(crate) async fn tick(self: Arc<Self>, stop: CancellationToken) {
        // Sampled every tick; a plain status line every fifth (5 s).
        let period = match self.mode {
            Mode::Quiet => return,
            Mode::Terminal => Duration::from_millis(250),
            Mode::Json | Mode::Plain => Duration::from_secs(1),
        };
        let mut ticker = tokio::time::interval(period);
        ticker.tick().await;
        self.sample();
        let mut ticks = 0u64;
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                _ = ticker.tick() => {}
            }
            self.sample();
            ticks += 1;
            match self.mode {
                Mode::Terminal => self.refresh_message(),
                Mode::Plain if ticks.is_multiple_of(5) => {
                    let line = self.status_line();
                    let _ = writeln!(std::io::stderr().lock(), "{line}");
                }
                Mode::Json => self.progress_event(),
                Mode::Plain | Mode::Quiet => {}
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
        let speed = self.speed();
        emit(&json!({
            "event": "progress",
            "bytes": bytes,
            "total_bytes": self.total_bytes(),
            "files_done": self.files_done.load(Ordering::Relaxed),
            "files_total": self.files.len(),
            "listing_complete": self.files.is_complete(),
            "bytes_per_sec": match speed { Speed::Rate(r) => r as u64, _ => 0 },
            "stalled_secs": match speed { Speed::Stalled(d) => Some(d.as_secs()), _ => None },
            "connections": self.live.active_streams(),
            "retries": self.retries_total(),
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
            crate::output::draw_logs_above(None);
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
                            "  {bar:20.green/white} {bytes:>10}/{total_bytes:<10} {msg}",
                        )
                        .unwrap_or_else(|_| ProgressStyle::default_bar())
                        .progress_chars("=> "),
                    );
                    bar.set_message(elide_middle(&self.shown(key), FILE_NAME_WIDTH));
                    bars.insert(key, bar);
                }
            }
            _ => {}
        }
    }

    fn on_bytes(&self, key: FileKey, bytes: u64) {
        self.received.fetch_add(bytes, Ordering::Relaxed);
        self.count_in_place(key, bytes);
    }

    fn on_file_resumed(&self, key: FileKey, bytes: u64) {
        self.count_in_place(key, bytes);
    }

    fn on_file_restart(&self, key: FileKey, attempt: u32, cause: &hfd::hfd_engine::Error) {
        // Its bytes so far failed their check: they no longer count.
        let dropped = self
            .file_bytes
            .lock()
            .map_or(0, |mut counted| counted.remove(&key).unwrap_or(0));
        let _ = self
            .bytes
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
                Some(b.saturating_sub(dropped))
            });
        if let Some(bar) = &self.total_bar {
            bar.set_position(self.bytes.load(Ordering::Relaxed));
            if let Ok(bars) = self.file_bars.lock()
                && let Some(file_bar) = bars.get(&key)
            {
                file_bar.set_position(0);
            }
        }
        let chain = crate::exit::chain(cause);
        let reason = without_wrappers(&chain);
        let line = || {
            labelled(
                Label::Warning,
                &format!(
                    "{}: {reason}; {} discarded, downloading it again (attempt {attempt} of {})",
                    self.shown(key),
                    ByteSize::new(dropped),
                    hfd::hfd_engine::INTEGRITY_ATTEMPTS
                ),
            )
        };
        match (self.mode, &self.multi) {
            (Mode::Terminal, Some(multi)) => {
                let _ = multi.println(line());
            }
            (Mode::Plain, _) => {
                let _ = writeln!(std::io::stderr().lock(), "{}", line());
            }
            (Mode::Json, _) => emit(&json!({
                "event": "restart",
                "path": self.path(key),
                "attempt": attempt,
                "bytes_discarded": dropped,
                "reason": reason,
            })),
            _ => {}
        }
        self.refresh_message();
    }

    fn on_retry(&self, key: FileKey, event: &RetryEvent<'_>) {
        self.retries.fetch_add(1, Ordering::Relaxed);
        let chain = crate::exit::chain(event.cause);
        let reason = without_wrappers(&chain);
        let line = || {
            labelled(
                Label::Warning,
                &format!(
                    "{}: {reason}; retry {} of {} in {:.1} s",
                    self.shown(key),
                    event.attempt,
                    self.max_retries,
                    event.wait.as_secs_f64()
                ),
            )
        };
        match (self.mode, &self.multi) {
            (Mode::Terminal, Some(multi)) => {
                let _ = multi.println(line());
            }
            (Mode::Plain, _) => {
                let _ = writeln!(std::io::stderr().lock(), "{}", line());
            }
            _ => {}
        }
        if self.mode == Mode::Json {
            emit(&json!({
                "event": "retry",
                "path": self.path(key),
                "attempt": event.attempt,
                "wait_ms": event.wait.as_millis() as u64,
                "reason": reason,
            }));
        }
        tracing::debug!(file = self.path(key), attempt = event.attempt, wait_ms = event.wait.as_millis() as u64, reason = %reason, "retry");
    }

    fn on_fallback(&self, key: FileKey) {
        let reason = "the server ignores range requests; fetching the file as one stream";
        match (self.mode, &self.multi) {
            (Mode::Json, _) => {
                emit(&json!({ "event": "fallback", "path": self.path(key), "reason": reason }));
            }
            (Mode::Terminal, Some(multi)) => {
                let _ = multi.println(labelled(
                    Label::Warning,
                    &format!("{}: {reason}", self.shown(key)),
                ));
            }
            (Mode::Plain, _) => {
                let line = labelled(Label::Warning, &format!("{}: {reason}", self.shown(key)));
                let _ = writeln!(std::io::stderr().lock(), "{line}");
            }
            _ => {}
        }
    }

    fn on_file_done(&self, key: FileKey, digest: Option<ContentDigest>) {
        self.files_done.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut counted) = self.file_bytes.lock() {
            counted.remove(&key);
        }
        match self.mode {
            Mode::Json => {
                let file = self.files.get(key);
                emit(&json!({
                    "event": "file_done",
                    "path": file.as_ref().map_or("?", |f| f.path.as_str()),
                    "size": file.as_ref().map_or(0, |f| f.size),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_bytes_in_with_files_unfinished_reads_verifying() {
        let files = Arc::new(FetchList::new(
            [hfd::hfd_hub::RemoteFile {
                path: "a.bin".to_owned(),
                size: 10,
                oid: ContentDigest::GitSha1([1; 20]),
                lfs_sha256: None,
                xet_hash: None,
            }],
            true,
        ));
        let progress = Progress::new(Mode::Plain, files, Arc::default(), 5, Vec::new());
        progress.on_bytes(FileKey(0), 4);
        assert!(!progress.status_line().contains("verifying"));
        progress.on_bytes(FileKey(0), 6);
        let line = progress.status_line();
        assert!(line.contains("verifying"), "{line}");
        assert!(!line.contains("ETA"), "{line}");
        progress.on_file_done(FileKey(0), None);
        assert!(!progress.status_line().contains("verifying"));
    }

    #[test]
    fn names_are_elided_in_the_middle() {
        let name = "sample/10BT/000_00000.parquet-very-long-name.safetensors";
        let short = elide_middle(name, FILE_NAME_WIDTH);
        assert_eq!(short.chars().count(), FILE_NAME_WIDTH);
        assert!(short.starts_with("sample/10BT/"), "{short}");
        assert!(short.ends_with(".safetensors"), "{short}");
        assert_eq!(elide_middle("a.bin", FILE_NAME_WIDTH), "a.bin");
    }

    #[test]
    fn speed_is_a_moving_window_and_a_stall_is_said() {
        let t0 = Instant::now();
        let mut w = Window::default();
        // 100 MB resumed-free start, then 1 MB/s for 10 s.
        for s in 0..=10u64 {
            w.push(t0 + Duration::from_secs(s), s * 1_000_000);
        }
        match w.speed(t0 + Duration::from_secs(10), false) {
            Speed::Rate(r) => assert!((r - 1_000_000.0).abs() < 1.0, "{r}"),
            other => panic!("{other:?}"),
        }
        // Then nothing for 4 s: stalled, not a slowly decaying rate.
        for s in 11..=14u64 {
            w.push(t0 + Duration::from_secs(s), 10_000_000);
        }
        match w.speed(t0 + Duration::from_secs(14), false) {
            Speed::Stalled(d) => assert_eq!(d, Duration::from_secs(4)),
            other => panic!("{other:?}"),
        }
        // Recovery at 2 MB/s shows within the window.
        for s in 15..=20u64 {
            w.push(
                t0 + Duration::from_secs(s),
                10_000_000 + (s - 14) * 2_000_000,
            );
        }
        match w.speed(t0 + Duration::from_secs(20), false) {
            Speed::Rate(r) => assert!((r - 2_000_000.0).abs() < 1.0, "{r}"),
            other => panic!("{other:?}"),
        }
    }
}
