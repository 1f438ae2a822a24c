//! The `hfd-rs` command-line tool: parses arguments, resolves settings,
//! runs the `hfd` library, renders progress and maps errors to exit codes.

mod args;
mod exit;
mod output;
mod progress;
mod settings;

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use tokio_util::sync::CancellationToken;

use hfd::hfd_http::HttpClient;
use hfd::hfd_hub::HubClient;
use hfd::{Downloader, FileAction};

use crate::args::{Cli, Command, DownloadArgs};
use crate::exit::Failure;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let args = match cli.command {
        Some(Command::Download(args)) => args,
        None => cli.download,
    };
    output::init_logging(args.verbose, args.quiet);
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
    match runtime.block_on(download(&args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
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
    let hub = HubClient::new(settings.hub.clone(), http.clone());
    let downloader = Downloader::new(hub, http, settings.engine.clone());
    let plan = downloader
        .plan(&settings.request)
        .await
        .map_err(Failure::from_hfd)?;

    if args.dry_run {
        if args.json {
            output::plan_json(&plan);
        } else {
            output::plan_text(&plan);
        }
        return Ok(());
    }

    let fetch: Vec<String> = plan.to_fetch().map(|f| f.remote.path.clone()).collect();
    let progress = Arc::new(progress::Progress::new(fetch, plan.bytes_to_fetch()));
    let cancel = CancellationToken::new();
    let stop_drawing = CancellationToken::new();
    let drawer = (!args.quiet && !args.json)
        .then(|| tokio::spawn(Arc::clone(&progress).draw(stop_drawing.clone())));
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
    stop_drawing.cancel();
    if let Some(drawer) = drawer {
        let _ = drawer.await;
    }
    let report = result.map_err(Failure::from_hfd)?;
    let up_to_date = plan
        .files
        .iter()
        .filter(|f| f.action == FileAction::UpToDate)
        .count();
    if !args.quiet {
        output::summary(&plan, &report, up_to_date);
    }
    Ok(())
}
