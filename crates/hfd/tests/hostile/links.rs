//! Links planted at every name hfd-rs writes inside a target (issue #14):
//! nothing outside the target changes, and the run either completes with
//! the hub's bytes or fails with a clear disk error (exit 8).
//!
//! The names are enumerated from what the code writes, not from a list: a
//! clean reference run is walked (every file, folder and link it left), and
//! the names that live only during a run are derived from the layouts' own
//! path methods (partial, its journal, staged, lock) and from the
//! temporary-name rules of the writers (`<name>.hfd-tmp-<pid>` for every
//! file written atomically, `.hfd-link-<pid>` / `.hfd-copy-<pid>` for
//! snapshot entries; the library runs in this process, so `<pid>` is ours).
//! At each name, in a fresh target, a link is planted to a file outside, to
//! a folder outside, and to a missing name outside (dangling).

use std::collections::BTreeSet;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use hfd::hfd_hub::{RepoId, RepoRef};
use hfd::layout::{CacheRepo, LocalDir, OutputLayout};
use hfd::{ErrorKind, PlannedFile};
use hfd_store::{ContentHasher, journal_path};
use hfd_testkit::FakeHub;

use crate::{Opts, REPO, downloader, hub, request};

/// Which layout a run writes.
#[derive(Clone, Copy, Debug)]
enum Mode {
    LocalDir,
    Cache,
}

/// The three kinds of planted link.
#[derive(Clone, Copy, Debug)]
enum Plant {
    ToFile,
    ToDir,
    Dangling,
}

/// One run into `target` in `mode`: the plan's files (when planning worked)
/// and the result.
async fn run_mode(
    hub: &FakeHub,
    target: &Path,
    mode: Mode,
) -> (Vec<PlannedFile>, hfd::Result<hfd::DownloadReport>) {
    let opts = Opts::default();
    let downloader = downloader(hub, &opts);
    let mut request = request(target, &opts);
    if let Mode::Cache = mode {
        request.layout = OutputLayout::hub_cache(target);
    }
    let plan = match downloader.plan(&request).await {
        Ok(plan) => plan,
        Err(e) => return (Vec::new(), Err(e)),
    };
    let result = downloader
        .download(
            &plan,
            std::sync::Arc::new(hfd::hfd_engine::NoopReporter),
            tokio_util::sync::CancellationToken::new(),
        )
        .await;
    (plan.files.clone(), result)
}

/// Every entry below `dir` (files, folders, links; links not followed),
/// relative, bounded.
fn entries_under(dir: &Path) -> BTreeSet<PathBuf> {
    let mut found = BTreeSet::new();
    let mut stack = vec![dir.to_path_buf()];
    for _ in 0..100_000 {
        let Some(next) = stack.pop() else { break };
        let Ok(entries) = std::fs::read_dir(&next) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(path.clone());
            }
            found.insert(path.strip_prefix(dir).expect("below").to_path_buf());
        }
    }
    found
}

/// A digest of everything below `dir`: names, kinds, link texts and file
/// bytes (links not followed).
fn tree_digest(dir: &Path) -> String {
    let mut hasher = ContentHasher::sha256();
    for rel in entries_under(dir) {
        let path = dir.join(&rel);
        hasher.update(rel.to_string_lossy().as_bytes());
        let meta = std::fs::symlink_metadata(&path).expect("entry");
        if meta.file_type().is_symlink() {
            hasher.update(b"L");
            hasher.update(
                std::fs::read_link(&path)
                    .expect("link")
                    .to_string_lossy()
                    .as_bytes(),
            );
        } else if meta.is_file() {
            hasher.update(b"F");
            hasher.update(&std::fs::read(&path).expect("file"));
        } else {
            hasher.update(b"D");
        }
    }
    hasher.finish().to_hex()
}

/// The names a run in `mode` writes, relative to the target, enumerated as
/// the module docs say.
async fn names_written(hub: &FakeHub, mode: Mode) -> BTreeSet<PathBuf> {
    let reference = tempfile::tempdir().expect("reference");
    let root = reference.path().join("target");
    let (files, result) = run_mode(hub, &root, mode).await;
    result.expect("the reference run completes");
    let left = entries_under(&root);
    let pid = std::process::id();
    let mut names = left.clone();
    for rel in &left {
        let path = root.join(rel);
        let meta = std::fs::symlink_metadata(&path).expect("entry");
        let with = |suffix: String| {
            let mut name = rel.as_os_str().to_os_string();
            name.push(suffix);
            PathBuf::from(name)
        };
        if meta.is_file() {
            names.insert(with(format!(".hfd-tmp-{pid}")));
        }
        if meta.file_type().is_symlink() || rel.starts_with("models--org--model/snapshots") {
            names.insert(with(format!(".hfd-link-{pid}")));
            names.insert(with(format!(".hfd-copy-{pid}")));
        }
    }
    let rel = |p: PathBuf| p.strip_prefix(&root).expect("below the root").to_path_buf();
    for planned in &files {
        let file = &planned.remote;
        let etag = file.etag();
        let (partial, staged, lock) = match mode {
            Mode::LocalDir => {
                let local = LocalDir::new(&root);
                (
                    local.partial_path(&file.path, &etag).expect("partial"),
                    local.staged_path(&file.path, &etag).expect("staged"),
                    local.lock_path(&file.path).expect("lock"),
                )
            }
            Mode::Cache => {
                let repo = RepoRef::model(RepoId::new(REPO).expect("repo id"));
                let cache = CacheRepo::new(&root, &repo);
                (
                    cache.partial_path(&etag),
                    cache.staged_path(&etag),
                    cache.lock_path(&etag),
                )
            }
        };
        names.insert(rel(journal_path(&partial)));
        names.insert(rel(partial));
        names.insert(rel(staged));
        names.insert(rel(lock));
    }
    names
}

/// Plants `plant` at `name` below `target`, pointing into `outside`.
fn plant(target: &Path, name: &Path, plant: Plant, outside: &Path) {
    let at = target.join(name);
    std::fs::create_dir_all(at.parent().expect("parent")).expect("folders");
    let _ = std::fs::remove_file(&at);
    let to = match plant {
        Plant::ToFile => outside.join("victim"),
        Plant::ToDir => outside.join("folder"),
        Plant::Dangling => outside.join("absent"),
    };
    symlink(to, &at).expect("symlink");
}

/// Asserts every file of the repo is in `files_dir` with the hub's bytes.
#[track_caller]
fn assert_complete(hub: &FakeHub, files_dir: &Path, what: &str) {
    for file in hub.files(REPO) {
        let got = std::fs::read(files_dir.join(&file.path))
            .unwrap_or_else(|e| panic!("{what}: {} missing: {e}", file.path));
        let want = hub.file_bytes(REPO, &file.path).expect("fixture bytes");
        assert!(got == want, "{what}: {} differs", file.path);
    }
}

async fn planted_links_change_nothing_outside(mode: Mode) {
    let hub = hub().await;
    let names = names_written(&hub, mode).await;
    assert!(names.len() > 20, "{mode:?}: too few names: {names:?}");
    let outside = tempfile::tempdir().expect("outside");
    std::fs::write(outside.path().join("victim"), b"precious").expect("victim");
    std::fs::create_dir(outside.path().join("folder")).expect("folder");
    std::fs::write(outside.path().join("folder/kept"), b"kept").expect("kept");
    let before = tree_digest(outside.path());
    let (mut completed, mut refused) = (0, 0);
    for name in &names {
        for kind in [Plant::ToFile, Plant::ToDir, Plant::Dangling] {
            let what = format!("{mode:?} {kind:?} at {}", name.display());
            let sandbox = tempfile::tempdir().expect("sandbox");
            let target = sandbox.path().join("target");
            plant(&target, name, kind, outside.path());
            let (_, result) = run_mode(&hub, &target, mode).await;
            assert_eq!(
                tree_digest(outside.path()),
                before,
                "{what}: outside changed"
            );
            // A link at a name only hfd-rs writes (partial, journal, staged
            // name, lock) heals: it is replaced and the run completes.
            let own = name.to_string_lossy();
            if [".part", ".journal", ".verified", ".lock"]
                .iter()
                .any(|suffix| own.ends_with(suffix))
            {
                assert!(result.is_ok(), "{what}: not healed: {result:?}");
            }
            match result {
                Ok(_) => {
                    completed += 1;
                    let files_dir = match mode {
                        Mode::LocalDir => target.clone(),
                        Mode::Cache => {
                            let commit = std::fs::read_to_string(
                                target.join("models--org--model/refs/main"),
                            )
                            .unwrap_or_else(|e| panic!("{what}: no ref: {e}"));
                            target.join("models--org--model/snapshots").join(commit)
                        }
                    };
                    assert_complete(&hub, &files_dir, &what);
                }
                Err(e) => {
                    refused += 1;
                    assert_eq!(e.kind(), ErrorKind::Disk, "{what}: {e}");
                    let text = e.to_string();
                    assert!(!text.contains('\n'), "{what}: one line: {text}");
                    assert!(
                        text.contains("symbolic link") || text.contains("outside"),
                        "{what}: says why: {text}"
                    );
                }
            }
        }
    }
    // Both outcomes occur: our own files are replaced, folders and the
    // user's files refused.
    assert!(completed > 0 && refused > 0, "{completed} / {refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planted_links_in_a_local_dir_change_nothing_outside() {
    planted_links_change_nothing_outside(Mode::LocalDir).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planted_links_in_the_cache_change_nothing_outside() {
    planted_links_change_nothing_outside(Mode::Cache).await;
}
