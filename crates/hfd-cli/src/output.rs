//! Everything the binary prints: logging setup, error lines, the dry-run
//! plan, the final summary. Data goes to stdout, diagnostics to stderr.

#![expect(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "the binary's output module"
)]

use std::fmt;
use std::sync::{Mutex, OnceLock};

use hfd::{DownloadPlan, DownloadReport, FileAction};
use hfd_types::ByteSize;
use indicatif::MultiProgress;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// Whether stderr lines get colours (decided once by [`init_logging`]).
static COLOUR: OnceLock<bool> = OnceLock::new();

/// How log lines look.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LogStyle {
    pub(crate) verbose: u8,
    pub(crate) quiet: bool,
    /// Colours on stderr (a terminal, or forced).
    pub(crate) colour: bool,
    /// `RUST_LOG` is set: it chooses the filter, and tracing's own format
    /// is used (as at `-vv`).
    pub(crate) rust_log: bool,
}

/// Installs the one tracing subscriber on stderr: plain `hfd-rs: warning:
/// …` lines by default and at `-v`, tracing's format (timestamps, targets)
/// at `-vv` or with `RUST_LOG`.
pub(crate) fn init_logging(style: LogStyle) {
    let _ = COLOUR.set(style.colour);
    // The engine's own lines name files by internal keys (`file#0`); below
    // -vv the progress reporter says the same with the file's path.
    let default = match (style.quiet, style.verbose) {
        (true, _) => "error,hfd_engine=off",
        (false, 0) => "warn,hfd_engine=off",
        (false, 1) => "info,hfd_engine=off",
        (false, 2) => "debug",
        (false, _) => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    if style.verbose >= 2 || style.rust_log {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(LogWriter)
            .with_target(false)
            .with_ansi(style.colour)
            .fmt_fields(EscapedFields::default())
            .try_init();
    } else {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(LogWriter)
            .event_format(PlainLines)
            .try_init();
    }
}

/// The progress bars while they are drawn: log lines go above them instead
/// of being drawn over (or under) a bar.
static BARS: Mutex<Option<MultiProgress>> = Mutex::new(None);

/// Log lines print above `bars` from now on (`None`: straight to stderr).
pub(crate) fn draw_logs_above(bars: Option<MultiProgress>) {
    if let Ok(mut slot) = BARS.lock() {
        *slot = bars;
    }
}

/// One log event's text, written out whole when dropped.
pub(crate) struct LogLine(Vec<u8>);

impl std::io::Write for LogLine {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LogLine {
    fn drop(&mut self) {
        use std::io::Write as _;
        let write = || {
            let _ = std::io::stderr().lock().write_all(&self.0);
        };
        match BARS.lock().ok().and_then(|bars| bars.clone()) {
            Some(bars) => bars.suspend(write),
            None => write(),
        }
    }
}

/// Where the tracing subscriber writes: [`LogLine`]s on stderr.
struct LogWriter;

impl tracing_subscriber::fmt::MakeWriter<'_> for LogWriter {
    type Writer = LogLine;

    fn make_writer(&self) -> LogLine {
        LogLine(Vec::new())
    }
}

/// tracing's own field format (`-vv`), with control and bidi characters
/// escaped: field values may carry server text (a file name), which must
/// not drive the terminal.
#[derive(Default)]
struct EscapedFields(tracing_subscriber::fmt::format::DefaultFields);

impl<'writer> FormatFields<'writer> for EscapedFields {
    fn format_fields<R: tracing_subscriber::field::RecordFields>(
        &self,
        mut writer: Writer<'writer>,
        fields: R,
    ) -> fmt::Result {
        let mut text = String::new();
        self.0.format_fields(Writer::new(&mut text), fields)?;
        writer.write_str(&hfd_types::shown_path(&text))
    }
}

/// `hfd-rs: LEVEL: message (field=value, …)`, one line per event.
struct PlainLines;

impl<S, N> FormatEvent<S, N> for PlainLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let label = match *event.metadata().level() {
            Level::ERROR => Label::Error,
            Level::WARN => Label::Warning,
            Level::INFO => Label::Info,
            _ => Label::Debug,
        };
        let mut fields = FieldText::default();
        event.record(&mut fields);
        let mut line = fields.message;
        if !fields.rest.is_empty() {
            if !line.is_empty() {
                line.push(' ');
            }
            line.push('(');
            line.push_str(&fields.rest.join(", "));
            line.push(')');
        }
        let line = line.replace('\n', " ");
        writeln!(writer, "{}", labelled(label, &hfd_types::shown_path(&line)))
    }
}

/// The message and the other fields of one event, as text.
#[derive(Default)]
struct FieldText {
    message: String,
    rest: Vec<String>,
}

impl Visit for FieldText {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            value.clone_into(&mut self.message);
        } else {
            self.rest.push(format!("{}={value}", field.name()));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            self.message = format!("{value:?}");
        } else {
            self.rest.push(format!("{}={value:?}", field.name()));
        }
    }
}

/// The kinds of line the binary writes on stderr.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Label {
    Error,
    Warning,
    Hint,
    Note,
    Info,
    Debug,
}

/// `hfd-rs: LABEL: text`, the label coloured when colours are on.
pub(crate) fn labelled(label: Label, text: &str) -> String {
    let (name, colour) = match label {
        Label::Error => ("error", "1;31"),
        Label::Warning => ("warning", "1;33"),
        Label::Hint => ("hint", "1;36"),
        Label::Note => ("note", "1;34"),
        Label::Info => ("info", "32"),
        Label::Debug => ("debug", "2"),
    };
    if COLOUR.get().copied().unwrap_or(false) {
        format!("hfd-rs: \x1b[{colour}m{name}:\x1b[0m {text}")
    } else {
        format!("hfd-rs: {name}: {text}")
    }
}

pub(crate) fn error_line(message: &str) {
    eprintln!("{}", labelled(Label::Error, message));
}

pub(crate) fn hint_line(message: &str) {
    eprintln!("{}", labelled(Label::Hint, message));
}

pub(crate) fn note_line(message: &str) {
    eprintln!("{}", labelled(Label::Note, message));
}

/// `1 file`, `2 files`: `n` with the word in the right number.
pub(crate) fn count(n: u64, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

fn action_name(action: FileAction) -> &'static str {
    match action {
        FileAction::New => "new",
        FileAction::Changed => "changed",
        FileAction::UpToDate => "unchanged",
    }
}

/// The plan as a table on stdout.
pub(crate) fn plan_text(plan: &DownloadPlan) {
    let pinned = &plan.pinned;
    println!(
        "{} {} @ {} (commit {})",
        pinned.repo.repo_type.as_str(),
        pinned.repo.id.as_str(),
        pinned.revision.as_str(),
        pinned.commit.as_str()
    );
    for file in &plan.files {
        println!(
            "{:<9} {:>10}  {}",
            action_name(file.action),
            ByteSize::new(file.remote.size).to_string(),
            hfd_types::shown_path(&file.remote.path)
        );
    }
    let to_fetch = plan.to_fetch().count();
    println!(
        "{}, {} in total; {} to fetch ({}), {} unchanged; {} hub requests to plan",
        count(plan.files.len() as u64, "file", "files"),
        ByteSize::new(pinned.total_bytes),
        to_fetch,
        ByteSize::new(plan.bytes_to_fetch()),
        plan.files.len() - to_fetch,
        pinned.requests
    );
}

/// The plan as one JSON document on stdout.
pub(crate) fn plan_json(plan: &DownloadPlan) {
    let pinned = &plan.pinned;
    let files: Vec<serde_json::Value> = plan
        .files
        .iter()
        .map(|f| {
            serde_json::json!({
                "path": f.remote.path,
                "size": f.remote.size,
                "lfs": f.remote.is_lfs(),
                "etag": f.remote.etag(),
                "action": action_name(f.action),
            })
        })
        .collect();
    // With --shard: this shard's part of the selection.
    let shard = plan.shard.map(|share| {
        serde_json::json!({
            "index": share.shard.index(),
            "count": share.shard.count(),
            "files": share.files,
            "bytes": share.bytes,
            "total_files": share.total_files,
            "total_bytes": share.total_bytes,
        })
    });
    let doc = serde_json::json!({
        "shard": shard,
        "repo": pinned.repo.id.as_str(),
        "repo_type": pinned.repo.repo_type.as_str(),
        "revision": pinned.revision.as_str(),
        "commit": pinned.commit.as_str(),
        "local_dir": plan.local_dir.display().to_string(),
        "count": plan.files.len(),
        "total_bytes": pinned.total_bytes,
        "fetch_count": plan.to_fetch().count(),
        "fetch_bytes": plan.bytes_to_fetch(),
        "requests": pinned.requests,
        // The `plan` event's names for the same figures (docs/json-events.md).
        "files_total": plan.files.len(),
        "bytes_total": pinned.total_bytes,
        "files_to_fetch": plan.to_fetch().count(),
        "bytes_to_fetch": plan.bytes_to_fetch(),
        "plan_requests": pinned.requests,
        "files": files,
    });
    println!("{doc}");
}

/// The `plan` event of `--json` (docs/json-events.md).
pub(crate) fn plan_event(plan: &DownloadPlan) {
    let pinned = &plan.pinned;
    crate::progress::emit(&serde_json::json!({
        "event": "plan",
        "repo": pinned.repo.id.as_str(),
        "repo_type": pinned.repo.repo_type.as_str(),
        "revision": pinned.revision.as_str(),
        "commit": pinned.commit.as_str(),
        "local_dir": plan.local_dir.display().to_string(),
        "files_total": plan.files.len(),
        "bytes_total": pinned.total_bytes,
        "files_to_fetch": plan.to_fetch().count(),
        "bytes_to_fetch": plan.bytes_to_fetch(),
        "plan_requests": pinned.requests,
        "listing_complete": !plan.listing_pending(),
    }));
}

/// The `summary` event of `--json`.
pub(crate) fn summary_event(
    plan: &DownloadPlan,
    report: &DownloadReport,
    up_to_date: usize,
    requests: u64,
) {
    let secs = report.elapsed.as_secs_f64();
    crate::progress::emit(&serde_json::json!({
        "event": "summary",
        "local_dir": plan.local_dir.display().to_string(),
        "files_done": report.files_done,
        "files_skipped": up_to_date,
        "bytes": report.bytes_written,
        "elapsed_secs": secs,
        "bytes_per_sec": if secs > 0.0 { (report.bytes_written as f64 / secs) as u64 } else { 0 },
        "requests": requests,
        "resolves": report.resolves,
        "retries": report.retries,
    }));
}

/// The final summary on stderr.
pub(crate) fn summary(
    plan: &DownloadPlan,
    report: &DownloadReport,
    up_to_date: usize,
    requests: u64,
) {
    let secs = report.elapsed.as_secs_f64();
    let speed = if secs > 0.0 {
        ByteSize::new((report.bytes_written as f64 / secs) as u64).to_string()
    } else {
        "-".to_owned()
    };
    eprintln!(
        "hfd-rs: {} ({}) downloaded to {} in {secs:.1} s, {speed}/s; {} up to date; {} ({}), {}",
        count(report.files_done as u64, "file", "files"),
        ByteSize::new(report.bytes_written),
        plan.local_dir.display(),
        up_to_date,
        count(requests, "request", "requests"),
        count(report.resolves, "resolve", "resolves"),
        count(report.retries, "retry", "retries"),
    );
}
