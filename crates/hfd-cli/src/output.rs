//! Everything the binary prints: logging setup, error lines, the dry-run
//! plan, the final summary. Data goes to stdout, diagnostics to stderr.

#![expect(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "the binary's output module"
)]

use hfd::{DownloadPlan, DownloadReport, FileAction};
use hfd_types::ByteSize;
use tracing_subscriber::EnvFilter;

/// Installs the one tracing subscriber: stderr, `RUST_LOG` if set, else a
/// level from `-v` flags.
pub(crate) fn init_logging(verbose: u8, quiet: bool) {
    let default = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, 2) => "debug",
        (false, _) => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

pub(crate) fn error_line(message: &str) {
    eprintln!("hfd-rs: error: {message}");
}

pub(crate) fn hint_line(message: &str) {
    eprintln!("hfd-rs: hint: {message}");
}

pub(crate) fn note_line(message: &str) {
    eprintln!("hfd-rs: note: {message}");
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
            "{:<9} {:>12}  {}",
            action_name(file.action),
            file.remote.size,
            file.remote.path
        );
    }
    let to_fetch = plan.to_fetch().count();
    println!(
        "{} files, {} in total; {} to fetch ({}), {} unchanged; {} hub requests to plan",
        plan.files.len(),
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
        "hfd-rs: {} files ({}) downloaded to {} in {secs:.1} s, {speed}/s; {} up to date; {} requests ({} resolves), {} retries",
        report.files_done,
        ByteSize::new(report.bytes_written),
        plan.local_dir.display(),
        up_to_date,
        requests,
        report.resolves,
        report.retries,
    );
}
