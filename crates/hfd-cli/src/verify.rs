//! `hfd-rs verify DIR [--repair]`, `hfd-rs verify --cache-dir C REPO_ID
//! [--revision R]` and `hfd-rs verify C/models--org--name/snapshots/COMMIT`.

#![expect(clippy::print_stdout, reason = "the report is the command's output")]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use hfd::hfd_engine::NoopReporter;
use hfd::hfd_http::HttpClient;
use hfd::hfd_hub::{Commit, HubClient, RepoId, RepoRef, RepoType, Revision, Selection};
use hfd::verify::cache::verify_cache_snapshot;
use hfd::verify::{FileCheck, SourceRecord, VerifyReport, verify_local_dir};
use hfd::{CacheRepo, DownloadRequest, Downloader, OutputLayout};
use hfd_types::{ByteSize, shown_path};
use tokio_util::sync::CancellationToken;

use crate::args::VerifyArgs;
use crate::exit::{self, Failure};
use crate::output;

/// What is checked: a `--local-dir` folder or one snapshot of a hub cache.
enum Subject {
    LocalDir(PathBuf),
    Cache {
        root: PathBuf,
        repo: RepoRef,
        commit: Commit,
    },
}

impl Subject {
    /// The folder named in messages.
    fn folder(&self) -> PathBuf {
        match self {
            Self::LocalDir(dir) => dir.clone(),
            Self::Cache { root, repo, commit } => CacheRepo::new(root, repo).snapshot_dir(commit),
        }
    }
}

/// A path as people should see it (control characters escaped).
fn shown(path: &Path) -> String {
    shown_path(&path.display().to_string()).into_owned()
}

fn usage(message: String, hint: Option<String>) -> Failure {
    Failure {
        message,
        hint,
        code: exit::USAGE,
    }
}

fn no_such_folder(path: &Path) -> Failure {
    usage(format!("no such folder: {}", shown(path)), None)
}

/// Decides what `args` name: with --cache-dir the repository's snapshot at
/// --revision (read from `refs/`); a snapshot folder given directly
/// (`<cache>/<type>s--<id>/snapshots/<commit>`); else a local-dir folder.
fn subject(args: &VerifyArgs, repo: Option<&RepoRef>) -> Result<Subject, Failure> {
    if let Some(root) = &args.cache_dir {
        let repo = repo.expect("settings take the repository from the argument with --cache-dir");
        let cache = CacheRepo::new(root, repo);
        if !cache.dir().is_dir() {
            return Err(no_such_folder(cache.dir()));
        }
        let revision = args.revision.as_deref().unwrap_or("main");
        let commit = Commit::parse(revision)
            .filter(|c| c.as_str() == revision)
            .or_else(|| {
                let revision = Revision::new(revision).ok()?;
                Commit::parse(&cache.read_ref(&revision)?)
            })
            .ok_or_else(|| {
                usage(
                    format!(
                        "no snapshot of revision {revision} in {} (no refs/{revision})",
                        shown(cache.dir())
                    ),
                    Some(
                        "pass the commit with --revision, or the snapshot folder itself".to_owned(),
                    ),
                )
            })?;
        if !cache.snapshot_dir(&commit).is_dir() {
            return Err(no_such_folder(&cache.snapshot_dir(&commit)));
        }
        return Ok(Subject::Cache {
            root: root.clone(),
            repo: repo.clone(),
            commit,
        });
    }
    if !args.dir.is_dir() {
        return Err(no_such_folder(&args.dir));
    }
    Ok(snapshot_folder(&args.dir).unwrap_or_else(|| Subject::LocalDir(args.dir.clone())))
}

/// `<root>/<type>s--<org>--<name>/snapshots/<commit>`, as huggingface_hub
/// names it, parsed back.
fn snapshot_folder(dir: &Path) -> Option<Subject> {
    let dir = std::fs::canonicalize(dir).ok()?;
    let commit = Commit::parse(dir.file_name()?.to_str()?)?;
    let snapshots = dir.parent()?;
    if snapshots.file_name()? != "snapshots" {
        return None;
    }
    let folder = snapshots.parent()?;
    let (kind, id) = folder.file_name()?.to_str()?.split_once("s--")?;
    let repo = RepoRef::new(
        RepoId::new(&id.replace("--", "/")).ok()?,
        kind.parse::<RepoType>().ok()?,
    );
    if CacheRepo::folder_name(&repo) != folder.file_name()?.to_str()? {
        return None;
    }
    Some(Subject::Cache {
        root: folder.parent()?.to_path_buf(),
        repo,
        commit,
    })
}

async fn check(
    subject: &Subject,
    online: Option<&HubClient>,
    repo: Option<RepoRef>,
) -> Result<VerifyReport, Failure> {
    match subject {
        Subject::LocalDir(dir) => verify_local_dir(dir, online, repo).await,
        Subject::Cache { root, repo, commit } => {
            verify_cache_snapshot(&CacheRepo::new(root, repo), repo, commit, online).await
        }
    }
    .map_err(Failure::from_hfd)
}

pub(crate) async fn run(args: &VerifyArgs) -> Result<(), Failure> {
    let settings = crate::settings::resolve_verify(args).map_err(Failure::from_anyhow)?;
    let subject = subject(args, settings.repo.as_ref())?;
    let folder = subject.folder();
    let http = HttpClient::new(settings.http.clone()).map_err(|e| Failure::from_hfd(e.into()))?;
    let hub = HubClient::new(settings.hub.clone(), http.clone());
    let repo = match &subject {
        Subject::Cache { repo, .. } => Some(repo.clone()),
        Subject::LocalDir(dir) => settings
            .repo
            .clone()
            .or_else(|| SourceRecord::read(dir).and_then(|r| r.repo_ref())),
    };
    let online = (!args.offline).then_some(&hub);
    let report = check(&subject, online, repo.clone()).await?;
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
                    shown(&folder)
                ),
                hint: Some(format!(
                    "run `hfd-rs verify --repair {}` to download them again",
                    std::env::args().skip(2).collect::<Vec<_>>().join(" ")
                )),
                code: exit::INTEGRITY,
            })
        };
    }

    // Repair: the bad files again, at the commit they were checked against.
    let (Some(repo), Some(commit)) = (repo, report.commit.clone()) else {
        return Err(usage(
            format!(
                "cannot repair {}: the repository is unknown",
                shown(&folder)
            ),
            Some("pass --repo REPO_ID (and --dataset for a dataset)".to_owned()),
        ));
    };
    if !args.json {
        output::note_line(&format!(
            "repairing {} file(s) from {} at {commit}",
            bad.len(),
            repo.id.as_str()
        ));
    }
    let revision = Revision::new(&commit).map_err(|e| Failure::from_hfd(e.into()))?;
    let mut request = match &subject {
        Subject::LocalDir(dir) => DownloadRequest::new(repo.clone(), revision, dir),
        Subject::Cache { root, .. } => {
            let mut request = DownloadRequest::new(repo.clone(), revision, root);
            request.layout = OutputLayout::hub_cache(root);
            request
        }
    };
    request.selection = Selection::all().paths(bad.iter().map(String::as_str));
    request.fetch_policy = hfd::FetchPolicy::RefetchAll;
    let downloader = Downloader::new(hub.clone(), http, settings.engine.clone());
    let plan = downloader.plan(&request).await.map_err(Failure::from_hfd)?;
    downloader
        .download(&plan, Arc::new(NoopReporter), CancellationToken::new())
        .await
        .map_err(Failure::from_hfd)?;
    let after = check(&subject, Some(&hub), Some(repo)).await?;
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
