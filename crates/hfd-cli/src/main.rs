//! The `hfd-rs` command-line tool: parses arguments, resolves settings,
//! runs the `hfd` library, renders progress and maps errors to exit codes.

mod args;
mod bench;
mod exit;
mod output;
mod progress;
mod settings;
mod verify;

use std::process::ExitCode;
use std::sync::Arc;

use clap::{CommandFactory, Parser};
use tokio_util::sync::CancellationToken;

use hfd::hfd_http::HttpClient;
use hfd::{Downloader, FailOver, FileAction, OutputLayout};

use crate::args::{Cli, Command, DownloadArgs};
use crate::exit::Failure;
use crate::progress::{FileLabel, Mode, Progress};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (verbose, quiet, json) = match &cli.command {
        Some(Command::Download(a)) => (a.verbose, a.quiet, a.json),
        Some(Command::Bench(a)) => (a.verbose, false, a.json),
        Some(Command::Verify(a)) => (a.verbose, false, a.json),
        Some(Command::Completions { .. }) => (0, true, false),
        None => (cli.download.verbose, cli.download.quiet, cli.download.json),
    };
    output::init_logging(verbose, quiet);
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
    endpoints
        .run(
            |downloader| download_from(args, &settings, &http, downloader),
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
        .await
        .map_err(Failure::from_hfd)
}

/// One download attempt against one endpoint.
async fn download_from(
    args: &DownloadArgs,
    settings: &settings::Settings,
    http: &HttpClient,
    downloader: Downloader,
) -> hfd::Result<()> {
    let plan = downloader.plan(&settings.request).await?;

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
        return Ok(());
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
    let labels: Vec<FileLabel> = plan
        .to_fetch()
        .map(|f| FileLabel {
            path: f.remote.path.clone(),
            size: f.remote.size,
        })
        .collect();
    let progress = Arc::new(Progress::new(mode, labels, downloader.live()));
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
    let result = downloader
        .download(&plan, Arc::clone(&progress) as _, cancel)
        .await;
    interrupt.abort();
    stop_ticker.cancel();
    let _ = ticker.await;
    let report = result?;
    let up_to_date = plan
        .files
        .iter()
        .filter(|f| f.action == FileAction::UpToDate)
        .count();
    let requests = http.stats().requests_sent;
    match mode {
        Mode::Json => output::summary_event(&plan, &report, up_to_date, requests),
        Mode::Quiet => {}
        Mode::Terminal | Mode::Plain => output::summary(&plan, &report, up_to_date, requests),
    }
    Ok(())
}
