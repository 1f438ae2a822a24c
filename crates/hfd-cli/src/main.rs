//! The `hfd-rs` command-line tool: parses arguments, resolves settings,
//! runs the `hfd` library, renders progress and maps errors to exit codes.

mod args;
mod bench;
mod exit;
mod output;
mod progress;
mod serve;
mod settings;
mod verify;

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::{CommandFactory, Parser};
use tokio_util::sync::CancellationToken;

use hfd::hfd_http::HttpClient;
use hfd::hfd_hub::{HubClient, RepoRef, RepoType, Revision};
use hfd::{Downloader, ErrorKind, FailOver, OutputLayout};

use crate::args::{Cli, Command, DownloadArgs};
use crate::exit::Failure;
use crate::progress::{Mode, Progress};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (verbose, quiet, json) = match &cli.command {
        Some(Command::Download(a)) => (a.verbose, a.quiet, a.json),
        Some(Command::Bench(a)) => (a.verbose, false, a.json),
        Some(Command::Verify(a)) => (a.verbose, false, a.json),
        Some(Command::Serve(a)) => (a.verbose, false, false),
        Some(Command::Completions { .. }) => (0, true, false),
        None => (cli.download.verbose, cli.download.quiet, cli.download.json),
    };
    output::init_logging(output::LogStyle {
        verbose,
        quiet,
        colour: settings::colour_stderr(std::io::stderr().is_terminal()),
        rust_log: settings::rust_log_set(),
    });
    // Connections, files in flight, their claims and kept folders need more
    // descriptors than macOS's default 256.
    hfd::raise_open_file_limit();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            output::error_line(&format!("cannot start the async runtime: {e}"));
            return ExitCode::from(exit::INTERNAL);
        }
    };
    let result = match &cli.command {
        Some(Command::Completions { shell }) => {
            let mut command = Cli::command();
            clap_complete::generate(*shell, &mut command, "hfd-rs", &mut std::io::stdout());
            Ok(())
        }
        Some(Command::Bench(args)) => runtime.block_on(bench::run(args)),
        Some(Command::Verify(args)) => runtime.block_on(verify::run(args)),
        Some(Command::Serve(args)) => runtime.block_on(serve::run(args)),
        Some(Command::Download(args)) => runtime.block_on(download(args)),
        None => runtime.block_on(download(&cli.download)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            if json {
                progress::emit(&serde_json::json!({
                    "event": "error",
                    "message": failure.message,
                    "hint": failure.hint,
                    "exit_code": failure.code,
                }));
            }
            output::error_line(&failure.message);
            if let Some(hint) = &failure.hint {
                output::hint_line(hint);
            }
            ExitCode::from(failure.code)
        }
    }
}

async fn download(args: &DownloadArgs) -> Result<(), Failure> {
    let settings = settings::resolve(args).map_err(Failure::from_anyhow)?;
    if !args.quiet {
        for note in &settings.notes {
            output::note_line(note);
        }
    }
    let http = HttpClient::new(settings.http.clone()).map_err(|e| Failure::from_hfd(e.into()))?;
    // Fail-over (repeated --endpoint) is the library's: it decides which
    // failures move on to the next endpoint; this only reports the move.
    let endpoints = FailOver::new(settings.hubs.clone(), http.clone(), settings.engine.clone())
        .with_rate_limit(settings.limit_rate);
    let transferring = AtomicBool::new(false);
    let result = endpoints
        .run(
            |downloader| download_from(args, &settings, &http, downloader, &transferring),
            |failing| {
                if !args.quiet {
                    output::note_line(&format!(
                        "{} failed ({}); trying {}",
                        failing.failed.endpoint.as_str(),
                        exit::chain(failing.error),
                        failing.next.endpoint.as_str()
                    ));
                }
            },
        )
        .await;
    match result {
        Ok(outcome) => outcome,
        Err(error) => {
            let kind = error.kind();
            let mut failure = Failure::from_hfd(error);
            failure.hint = hint(kind, &settings, &http, transferring.load(Ordering::Relaxed))
                .await
                .or(failure.hint);
            Err(failure)
        }
    }
}

/// What to tell the user after a failed download, beyond the error itself.
async fn hint(
    kind: ErrorKind,
    settings: &settings::Settings,
    http: &HttpClient,
    transferring: bool,
) -> Option<String> {
    let resume = "partial downloads are kept; run the same command again to resume";
    match kind {
        ErrorKind::Auth => Some(auth_hint(&settings.tokens)),
        ErrorKind::NotFound => other_repo_type(settings, http).await,
        ErrorKind::Network
            if settings
                .hubs
                .last()
                .is_some_and(|h| h.endpoint.is_official()) =>
        {
            let mut hint = format!(
                "{} did not answer; from mainland China use a mirror: \
                 HF_ENDPOINT=https://hf-mirror.com hfd-rs ...",
                settings
                    .hubs
                    .last()
                    .map_or("the hub", |h| h.endpoint.as_str())
            );
            if transferring {
                hint = format!("{resume}; {hint}");
            }
            Some(hint)
        }
        ErrorKind::Network
        | ErrorKind::RateLimited { .. }
        | ErrorKind::Protocol
        | ErrorKind::Integrity
        | ErrorKind::Disk
            if transferring =>
        {
            let mut hint = resume.to_owned();
            if let ErrorKind::RateLimited { wait: Some(wait) } = kind {
                hint = format!(
                    "the server asks to wait {} s before retrying; {hint}",
                    wait.as_secs()
                );
            }
            Some(hint)
        }
        _ => None,
    }
}

/// The 401/403 hint: what token was (or was not) sent, and how to send one.
fn auth_hint(tokens: &settings::TokenUse) -> String {
    let gated = "for a gated repo, request access on its page first";
    if tokens.given {
        format!("the token given was rejected or lacks access to this repo; {gated}")
    } else if let Some(endpoint) = tokens.withheld_from.first() {
        format!(
            "a saved `hf auth login` token exists but is not sent to {endpoint} (not the official hub); \
             send it with HF_TOKEN=$(cat ~/.cache/huggingface/token) or --token; {gated}"
        )
    } else {
        format!("pass a token with --token (or set HF_TOKEN); {gated}")
    }
}

/// For a repo not found as what was asked: whether it exists as another
/// type (a dataset asked for as a model, say), and the flag that says so.
async fn other_repo_type(settings: &settings::Settings, http: &HttpClient) -> Option<String> {
    let asked = &settings.request.repo;
    let hub = HubClient::new(settings.hubs.first()?.clone(), http.clone());
    let main = Revision::new("main").ok()?;
    for (other, flag) in [
        (RepoType::Model, "--repo-type model"),
        (RepoType::Dataset, "--dataset (or --repo-type dataset)"),
        (RepoType::Space, "--repo-type space"),
    ] {
        if other == asked.repo_type {
            continue;
        }
        let candidate = RepoRef::new(asked.id.clone(), other);
        if hub.pin_revision(&candidate, &main).await.is_ok() {
            return Some(format!(
                "{} is not a {} but a {} here: add {flag}",
                asked.id.as_str(),
                asked.repo_type.as_str(),
                other.as_str()
            ));
        }
    }
    None
}

/// One download attempt against one endpoint. The inner result is a
/// failure found in the plan (a selection matching nothing), which no other
/// endpoint would change.
async fn download_from(
    args: &DownloadArgs,
    settings: &settings::Settings,
    http: &HttpClient,
    downloader: Downloader,
    transferring: &AtomicBool,
) -> hfd::Result<Result<(), Failure>> {
    // A real run reads the listing's later pages while the first files
    // download (decision 0065); a dry run shows the whole plan.
    let plan = if args.dry_run {
        downloader.plan(&settings.request).await?
    } else {
        downloader.plan_ahead(&settings.request).await?
    };
    if plan.files.is_empty() && (!args.include.is_empty() || !args.files.is_empty()) {
        return Ok(Err(nothing_selected(args, plan.pinned.listed_files)));
    }

    if args.dry_run {
        if let (Some(share), false) = (&plan.shard, args.json) {
            println!(
                "shard {}: {} of {} files, {} of {} bytes ({:.1} %)",
                share.shard,
                share.files,
                share.total_files,
                share.bytes,
                share.total_bytes,
                100.0 * share.bytes as f64 / share.total_bytes.max(1) as f64
            );
        }
        if args.json {
            output::plan_json(&plan);
        } else {
            output::plan_text(&plan);
        }
        return Ok(Ok(()));
    }

    if let OutputLayout::LocalDir(local_dir) = &settings.request.layout {
        // Lets `hfd-rs verify --repair DIR` know what to fetch again.
        let record = hfd::verify::SourceRecord {
            repo: plan.pinned.repo.id.as_str().to_owned(),
            repo_type: plan.pinned.repo.repo_type.as_str().to_owned(),
            revision: plan.pinned.revision.as_str().to_owned(),
            commit: plan.pinned.commit.as_str().to_owned(),
        };
        record.write(local_dir)?;
    }
    let mode = Mode::choose(args.json, args.quiet);
    if mode == Mode::Json {
        output::plan_event(&plan);
    }
    let progress = Arc::new(Progress::new(
        mode,
        plan.fetch_list(),
        downloader.live(),
        settings.engine.retry.max_retries,
        settings
            .hubs
            .iter()
            .map(|h| Arc::clone(&h.retry.retries_made))
            .collect(),
    ));
    let cancel = CancellationToken::new();
    let stop_ticker = CancellationToken::new();
    let ticker = tokio::spawn(Arc::clone(&progress).tick(stop_ticker.clone()));
    let interrupt = {
        let cancel = cancel.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                cancel.cancel();
            }
        })
    };
    transferring.store(
        plan.listing_pending() || plan.to_fetch().next().is_some(),
        Ordering::Relaxed,
    );
    let result = downloader
        .download(&plan, Arc::clone(&progress) as _, cancel)
        .await;
    interrupt.abort();
    stop_ticker.cancel();
    let _ = ticker.await;
    let report = result?;
    let up_to_date = report.files_up_to_date;
    let requests = http.stats().requests_sent;
    match mode {
        Mode::Json => output::summary_event(&plan, &report, up_to_date, requests),
        Mode::Quiet => {}
        Mode::Terminal | Mode::Plain => output::summary(&plan, &report, up_to_date, requests),
    }
    Ok(Ok(()))
}

/// `--include` (or the FILES) matched nothing: said, with what was asked
/// and what the repo has, rather than a run that downloads nothing.
fn nothing_selected(args: &DownloadArgs, listed: usize) -> Failure {
    let mut asked: Vec<String> = args.include.iter().map(|p| format!("{p:?}")).collect();
    asked.extend(args.files.iter().map(|f| format!("{f:?}")));
    let excluded = if args.exclude.is_empty() {
        String::new()
    } else {
        " (after --exclude)".to_owned()
    };
    let hint = args
        .include
        .iter()
        .any(|p| !p.contains(['*', '?', '[']))
        .then(|| {
            "--include takes several values: a repo file or id typed after it is read as a \
             pattern; put FILES before --include, or end the patterns with --"
                .to_owned()
        });
    Failure {
        message: format!(
            "nothing matches {}{excluded}: the repository has {}",
            asked.join(", "),
            output::count(listed as u64, "file", "files")
        ),
        hint: hint.or_else(|| Some("see the files with: hfd-rs REPO --dry-run".to_owned())),
        code: exit::USAGE,
    }
}
