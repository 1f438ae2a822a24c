//! `hfd-rs verify DIR [--repair]`.

#![expect(clippy::print_stdout, reason = "the report is the command's output")]

use std::sync::Arc;

use hfd::hfd_engine::NoopReporter;
use hfd::hfd_http::HttpClient;
use hfd::hfd_hub::{HubClient, Revision, Selection};
use hfd::verify::{FileCheck, SourceRecord, VerifyReport, verify_local_dir};
use hfd::{DownloadRequest, Downloader};
use hfd_types::ByteSize;
use tokio_util::sync::CancellationToken;

use crate::args::VerifyArgs;
use crate::exit::{self, Failure};
use crate::output;

pub(crate) async fn run(args: &VerifyArgs) -> Result<(), Failure> {
    if !args.dir.is_dir() {
        return Err(Failure {
            message: format!("no such folder: {}", args.dir.display()),
            hint: None,
            code: exit::USAGE,
        });
    }
    let settings = crate::settings::resolve_verify(args).map_err(Failure::from_anyhow)?;
    let http = HttpClient::new(settings.http.clone()).map_err(|e| Failure::from_hfd(e.into()))?;
    let hub = HubClient::new(settings.hub.clone(), http.clone());
    let repo = settings
        .repo
        .clone()
        .or_else(|| SourceRecord::read(&args.dir).and_then(|r| r.repo_ref()));
    let online = (!args.offline).then_some(&hub);
    let report = verify_local_dir(&args.dir, online, repo.clone())
        .await
        .map_err(Failure::from_hfd)?;
    let bad = report.bad_paths();
    if !args.repair || bad.is_empty() {
        print_report(&report, args.json);
        return if bad.is_empty() {
            Ok(())
        } else {
            Err(Failure {
                message: format!(
                    "{} of {} files in {} do not match the hub",
                    bad.len(),
                    report.files.len(),
                    args.dir.display()
                ),
                hint: Some("run `hfd-rs verify --repair DIR` to download them again".to_owned()),
                code: exit::INTEGRITY,
            })
        };
    }

    // Repair: the bad files again, at the commit they were checked against.
    let (Some(repo), Some(commit)) = (repo, report.commit.clone()) else {
        return Err(Failure {
            message: format!(
                "cannot repair {}: the repository is unknown",
                args.dir.display()
            ),
            hint: Some("pass --repo REPO_ID (and --dataset for a dataset)".to_owned()),
            code: exit::USAGE,
        });
    };
    if !args.json {
        output::note_line(&format!(
            "repairing {} file(s) from {} at {commit}",
            bad.len(),
            repo.id.as_str()
        ));
    }
    let revision = Revision::new(&commit).map_err(|e| Failure::from_hfd(e.into()))?;
    let mut request = DownloadRequest::new(repo, revision, &args.dir);
    request.selection = Selection::all().paths(bad.iter().map(String::as_str));
    request.fetch_policy = hfd::FetchPolicy::RefetchAll;
    let downloader = Downloader::new(hub.clone(), http, settings.engine.clone());
    let plan = downloader.plan(&request).await.map_err(Failure::from_hfd)?;
    downloader
        .download(&plan, Arc::new(NoopReporter), CancellationToken::new())
        .await
        .map_err(Failure::from_hfd)?;
    let after = verify_local_dir(&args.dir, Some(&hub), None)
        .await
        .map_err(Failure::from_hfd)?;
    print_report(&after, args.json);
    let still_bad = after.bad_paths();
    if still_bad.is_empty() {
        Ok(())
    } else {
        Err(Failure {
            message: format!(
                "{} file(s) still do not match after repair",
                still_bad.len()
            ),
            hint: None,
            code: exit::INTEGRITY,
        })
    }
}

fn describe(check: &FileCheck) -> String {
    match check {
        FileCheck::Ok => "ok".to_owned(),
        FileCheck::Mismatch { expected, actual } => format!(
            "MISMATCH: {} should be {}, is {}",
            expected.algorithm(),
            expected.to_hex(),
            actual.to_hex()
        ),
        FileCheck::WrongSize { expected, actual } => {
            format!("WRONG SIZE: should be {expected} bytes, is {actual}")
        }
        FileCheck::Missing => "MISSING".to_owned(),
        FileCheck::Unfinished => "UNFINISHED (download started, never completed)".to_owned(),
        FileCheck::NotInRepo => "not in the repository at this commit (not checked)".to_owned(),
        FileCheck::Unverifiable => "no hash to check against (not checked)".to_owned(),
    }
}

fn print_report(report: &VerifyReport, json: bool) {
    if json {
        let files: Vec<serde_json::Value> = report
            .files
            .iter()
            .map(|(path, check)| {
                serde_json::json!({ "path": path, "ok": matches!(check, FileCheck::Ok), "bad": check.is_bad(), "detail": describe(check) })
            })
            .collect();
        println!(
            "{}",
            serde_json::json!({
                "commit": report.commit,
                "checked_against_hub": report.checked_against_hub,
                "bytes_hashed": report.bytes_hashed,
                "bad": report.bad_paths(),
                "files": files,
            })
        );
        return;
    }
    for (path, check) in &report.files {
        if !matches!(check, FileCheck::Ok) {
            println!("{path}: {}", describe(check));
        }
    }
    let source = if report.checked_against_hub {
        "the hub's listing"
    } else {
        "the local metadata"
    };
    println!(
        "{} files checked against {source} ({} hashed), {} bad",
        report.files.len(),
        ByteSize::new(report.bytes_hashed),
        report.bad_paths().len()
    );
}
