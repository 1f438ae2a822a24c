//! The served folders, read-only: hub caches (`models--org--name/{blobs,
//! snapshots,refs,trees}`) and `--local-dir` folders (files plus
//! `.cache/huggingface/download/<path>.metadata`).
//!
//! Every path is walked one component at a time without following a
//! symlink, except a cache snapshot entry, which must be a link to a blob of
//! the same repo folder (`../../blobs/<etag>`, checked after resolving it).
//! Nothing outside the served folders can be reached.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use hfd::hfd_hub::{Commit, RepoRef, Revision};
use hfd::verify::SourceRecord;
use hfd::{CacheRepo, LocalDir};

use crate::listing::{FileEntry, Listing, git_blob_sha1_of_file};
use crate::route::safe_repo_path;

/// A file ready to be sent.
#[derive(Clone, Debug)]
pub(crate) struct Located {
    /// Where its bytes are (symlinks resolved, inside a served folder).
    pub(crate) file: PathBuf,
    /// What the hub would say about it.
    pub(crate) entry: FileEntry,
}

/// A `--local-dir` folder and the repo it holds.
#[derive(Clone, Debug)]
pub struct LocalSource {
    /// The repository.
    pub repo: RepoRef,
    /// The folder.
    pub root: PathBuf,
    /// The revision it was downloaded at, when recorded.
    pub revision: Option<String>,
    /// The commit its files come from.
    pub commit: String,
}

/// Why a `--local-dir` folder cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum LocalDirError {
    /// No hfd-rs record and no repo id given.
    #[error(
        "{} records no repository (hfd-rs writes .cache/huggingface/hfd-rs-source.json); pass --local-dir org/name=DIR",
        .0.display()
    )]
    NoRepo(PathBuf),
    /// The repo id given is not valid.
    #[error("{0:?} is not a repository id (org/name, datasets/org/name or spaces/org/name)")]
    BadRepo(String),
    /// No commit can be found for the files.
    #[error("{} has no download metadata naming a commit", .0.display())]
    NoCommit(PathBuf),
    /// The folder is not a folder.
    #[error("{} is not a folder", .0.display())]
    NotADir(PathBuf),
}

impl LocalSource {
    /// Opens `spec`: `DIR`, or `REPO=DIR` where `REPO` is `org/name`,
    /// `datasets/org/name` or `spaces/org/name`.
    pub fn open(spec: &str) -> Result<Self, LocalDirError> {
        let (repo, dir) = match spec.split_once('=') {
            Some((repo, dir)) => (Some(parse_repo(repo)?), PathBuf::from(dir)),
            None => (None, PathBuf::from(spec)),
        };
        if !dir.is_dir() {
            return Err(LocalDirError::NotADir(dir));
        }
        let record = SourceRecord::read(&dir);
        let Some(repo) = repo.or_else(|| record.as_ref().and_then(SourceRecord::repo_ref)) else {
            return Err(LocalDirError::NoRepo(dir));
        };
        let commit = record
            .as_ref()
            .and_then(|r| Commit::parse(&r.commit))
            .map(|c| c.as_str().to_owned())
            .or_else(|| first_metadata_commit(&dir))
            .ok_or_else(|| LocalDirError::NoCommit(dir.clone()))?;
        Ok(Self {
            repo,
            revision: record.map(|r| r.revision),
            commit,
            root: dir,
        })
    }
}

fn parse_repo(text: &str) -> Result<RepoRef, LocalDirError> {
    use hfd::hfd_hub::{RepoId, RepoType};
    let bad = || LocalDirError::BadRepo(text.to_owned());
    let (kind, id) = if let Some(id) = text.strip_prefix("datasets/") {
        (RepoType::Dataset, id)
    } else if let Some(id) = text.strip_prefix("spaces/") {
        (RepoType::Space, id)
    } else {
        (
            RepoType::Model,
            text.strip_prefix("models/").unwrap_or(text),
        )
    };
    Ok(RepoRef::new(RepoId::new(id).map_err(|_| bad())?, kind))
}

/// The commit of the first metadata file found (bounded walk).
fn first_metadata_commit(dir: &Path) -> Option<String> {
    let mut stack = vec![dir.join(".cache").join("huggingface").join("download")];
    let mut visited = 0;
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).ok()?.flatten() {
            visited += 1;
            if visited > 100_000 {
                return None;
            }
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            let path = entry.path();
            if kind.is_dir() {
                stack.push(path);
            } else if kind.is_file() && path.extension().is_some_and(|e| e == "metadata") {
                let text = fs::read_to_string(&path).ok()?;
                if let Some(c) = text.lines().next().and_then(Commit::parse) {
                    return Some(c.as_str().to_owned());
                }
            }
        }
    }
    None
}

/// Where a repository is served from.
#[derive(Clone, Debug)]
pub(crate) enum Store {
    /// A repo folder of a hub cache.
    Cache {
        /// `<root>/models--org--name`.
        dir: PathBuf,
    },
    /// A `--local-dir` folder.
    Local(LocalSource),
}

/// Git ids of files no metadata names, computed once per (path, size, mtime).
#[derive(Debug, Default)]
pub(crate) struct HashMemo(Mutex<HashMap<PathBuf, (u64, SystemTime, String)>>);

impl HashMemo {
    fn git_id(&self, path: &Path) -> Option<(u64, String)> {
        let meta = fs::metadata(path).ok()?;
        let mtime = meta.modified().ok()?;
        if let Some((size, when, id)) = self.lock().get(path)
            && *size == meta.len()
            && *when == mtime
        {
            return Some((*size, id.clone()));
        }
        let (size, id) = git_blob_sha1_of_file(path).ok()?;
        self.lock()
            .insert(path.to_path_buf(), (size, mtime, id.clone()));
        Some((size, id))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PathBuf, (u64, SystemTime, String)>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The served folders.
#[derive(Debug)]
pub(crate) struct Catalog {
    caches: Vec<PathBuf>,
    locals: Vec<LocalSource>,
    memo: HashMemo,
}

/// One `trees/<commit>.json` entry.
#[derive(Debug, Clone)]
struct TreeEntry {
    size: u64,
    blob_id: String,
    lfs_sha256: Option<String>,
}

impl TreeEntry {
    fn to_entry(&self, path: &str) -> FileEntry {
        FileEntry {
            path: path.to_owned(),
            size: self.size,
            oid: self.blob_id.clone(),
            lfs_sha256: self.lfs_sha256.clone(),
        }
    }
}

/// Reads a `trees/<commit>.json` listing (what hfd-rs writes after an
/// unfiltered download); `None` when absent or unreadable.
fn read_tree_json(folder: &Path, commit: &str) -> Option<BTreeMap<String, TreeEntry>> {
    let path = folder.join("trees").join(format!("{commit}.json"));
    let meta = fs::symlink_metadata(&path).ok()?;
    if !meta.is_file() || meta.len() > 256 << 20 {
        return None;
    }
    let doc: serde_json::Value = serde_json::from_slice(&fs::read(&path).ok()?).ok()?;
    let files = doc.get("files")?.as_object()?;
    let hex = |v: Option<&serde_json::Value>, len: usize| {
        v.and_then(serde_json::Value::as_str)
            .filter(|s| s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit()))
            .map(str::to_ascii_lowercase)
    };
    let mut out = BTreeMap::new();
    for (path, e) in files {
        let (Some(size), Some(blob_id)) = (
            e.get("size").and_then(serde_json::Value::as_u64),
            hex(e.get("blob_id"), 40),
        ) else {
            continue;
        };
        out.insert(
            path.clone(),
            TreeEntry {
                size,
                blob_id,
                lfs_sha256: hex(e.get("lfs_sha256"), 64),
            },
        );
    }
    Some(out)
}

/// Whether a name is one a repo path may have and not one of our own
/// temporary names.
fn servable_name(name: &str) -> bool {
    !name.contains(".hfd-link-") && !name.contains(".hfd-tmp-")
}

/// Joins `rel` under `root` walking each folder without following symlinks;
/// returns the final path (which may itself be a symlink).
fn walk_to(root: &Path, rel: &str) -> Option<PathBuf> {
    if !safe_repo_path(rel) {
        return None;
    }
    let mut out = root.to_path_buf();
    let mut segs = rel.split('/').peekable();
    while let Some(seg) = segs.next() {
        out.push(seg);
        if segs.peek().is_some() {
            let meta = fs::symlink_metadata(&out).ok()?;
            if !meta.is_dir() {
                return None;
            }
        }
    }
    Some(out)
}

/// Every entry below `root` that is not a folder (symlinked folders are not
/// entered), as repo paths. `skip_top` names a top-level folder to leave out.
fn walk_files(root: &Path, skip_top: Option<&str>) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    let mut stack = vec![(String::new(), root.to_path_buf())];
    while let Some((prefix, dir)) = stack.pop() {
        let Ok(read) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in read.flatten() {
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if prefix.is_empty() && Some(name.as_str()) == skip_top {
                continue;
            }
            if !servable_name(&name) {
                continue;
            }
            let rel = if prefix.is_empty() {
                name
            } else {
                format!("{prefix}/{name}")
            };
            if !safe_repo_path(&rel) {
                continue;
            }
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                stack.push((rel, entry.path()));
            } else {
                out.push((rel, entry.path()));
            }
        }
    }
    out
}

impl Catalog {
    pub(crate) fn new(caches: Vec<PathBuf>, locals: Vec<LocalSource>) -> Self {
        Self {
            caches,
            locals,
            memo: HashMemo::default(),
        }
    }

    /// Where `repo` is served from: a `--local-dir` naming it, else the
    /// first cache holding its folder.
    pub(crate) fn find(&self, repo: &RepoRef) -> Option<Store> {
        if let Some(local) = self.locals.iter().find(|l| &l.repo == repo) {
            return Some(Store::Local(local.clone()));
        }
        let folder = CacheRepo::folder_name(repo);
        self.caches.iter().find_map(|root| {
            let dir = root.join(&folder);
            fs::symlink_metadata(&dir)
                .is_ok_and(|m| m.is_dir())
                .then_some(Store::Cache { dir })
        })
    }

    /// The commit `revision` names in `store`, when it holds that commit.
    pub(crate) fn resolve_revision(store: &Store, revision: &Revision) -> Option<String> {
        match store {
            Store::Cache { dir } => {
                let commit = if let Some(c) = revision.as_commit() {
                    c.as_str().to_owned()
                } else {
                    let path = walk_to(&dir.join("refs"), revision.as_str())?;
                    let meta = fs::symlink_metadata(&path).ok()?;
                    if !meta.is_file() || meta.len() > 100 {
                        return None;
                    }
                    let text = fs::read_to_string(&path).ok()?;
                    Commit::parse(text.trim())?.as_str().to_owned()
                };
                let snapshot = dir.join("snapshots").join(&commit);
                fs::symlink_metadata(snapshot)
                    .is_ok_and(|m| m.is_dir())
                    .then_some(commit)
            }
            Store::Local(local) => {
                let asked = revision.as_str();
                let named = local.revision.as_deref().unwrap_or("main");
                (asked == local.commit || asked == named).then(|| local.commit.clone())
            }
        }
    }

    /// Every servable file of `store` at `commit` (blocking).
    pub(crate) fn listing(&self, store: &Store, commit: &str) -> Listing {
        let files = match store {
            Store::Cache { dir } => {
                let snapshot = dir.join("snapshots").join(commit);
                let tree = read_tree_json(dir, commit);
                walk_files(&snapshot, None)
                    .into_iter()
                    .filter_map(|(rel, path)| {
                        self.locate_cache(dir, &path, &rel, tree.as_ref())
                            .map(|l| l.entry)
                    })
                    .collect()
            }
            Store::Local(local) => {
                let tree = read_tree_json(&local.root.join(".cache").join("huggingface"), commit);
                walk_files(&local.root, Some(".cache"))
                    .into_iter()
                    .filter_map(|(rel, path)| {
                        self.locate_local(local, &path, &rel, tree.as_ref())
                            .map(|l| l.entry)
                    })
                    .collect()
            }
        };
        Listing {
            commit: commit.to_owned(),
            files,
        }
        .sorted()
    }

    /// The file at `rel` of `store` at `commit` (blocking).
    pub(crate) fn open(&self, store: &Store, commit: &str, rel: &str) -> Option<Located> {
        match store {
            Store::Cache { dir } => {
                let path = walk_to(&dir.join("snapshots").join(commit), rel)?;
                let tree = read_tree_json(dir, commit);
                self.locate_cache(dir, &path, rel, tree.as_ref())
            }
            Store::Local(local) => {
                if rel == ".cache" || rel.starts_with(".cache/") {
                    return None;
                }
                let path = walk_to(&local.root, rel)?;
                let tree = read_tree_json(&local.root.join(".cache").join("huggingface"), commit);
                self.locate_local(local, &path, rel, tree.as_ref())
            }
        }
    }

    /// A snapshot entry: a symlink into this repo's `blobs/` named by the
    /// etag, or a copy (caches written without symlinks).
    fn locate_cache(
        &self,
        dir: &Path,
        link: &Path,
        rel: &str,
        tree: Option<&BTreeMap<String, TreeEntry>>,
    ) -> Option<Located> {
        let meta = fs::symlink_metadata(link).ok()?;
        if meta.file_type().is_symlink() {
            let target = fs::read_link(link).ok()?;
            let etag = target.file_name()?.to_str()?.to_ascii_lowercase();
            let resolved = fs::canonicalize(link).ok()?;
            let blobs = fs::canonicalize(dir.join("blobs")).ok()?;
            // The link must land on a blob of this very repo folder, named by
            // the etag the link names.
            if resolved.parent() != Some(blobs.as_path()) || resolved.file_name()?.to_str()? != etag
            {
                return None;
            }
            let blob = fs::metadata(&resolved).ok()?;
            if !blob.is_file() {
                return None;
            }
            let entry = match tree.and_then(|t| t.get(rel)) {
                Some(t) if t.size == blob.len() && t.to_entry(rel).etag() == etag => {
                    t.to_entry(rel)
                }
                _ => FileEntry::from_etag(rel.to_owned(), blob.len(), &etag)?,
            };
            Some(Located {
                file: resolved,
                entry,
            })
        } else if meta.is_file() {
            let entry = match tree.and_then(|t| t.get(rel)) {
                Some(t) if t.size == meta.len() => t.to_entry(rel),
                _ => {
                    let (size, id) = self.memo.git_id(link)?;
                    FileEntry::from_etag(rel.to_owned(), size, &id)?
                }
            };
            Some(Located {
                file: link.to_path_buf(),
                entry,
            })
        } else {
            None
        }
    }

    /// A plain file of a local dir: its metadata's etag when current (the
    /// rule huggingface_hub uses), else its git id, hashed.
    fn locate_local(
        &self,
        local: &LocalSource,
        path: &Path,
        rel: &str,
        tree: Option<&BTreeMap<String, TreeEntry>>,
    ) -> Option<Located> {
        let meta = fs::symlink_metadata(path).ok()?;
        if !meta.is_file() {
            return None;
        }
        let dir = LocalDir::new(&local.root);
        let recorded = dir
            .read_metadata(rel)
            .filter(|m| dir.is_current(rel, &m.etag, meta.len()));
        let entry = if let Some(m) = recorded {
            match tree.and_then(|t| t.get(rel)) {
                Some(t) if t.size == meta.len() && t.to_entry(rel).etag() == m.etag => {
                    t.to_entry(rel)
                }
                _ => FileEntry::from_etag(rel.to_owned(), meta.len(), &m.etag)?,
            }
        } else {
            let (size, id) = self.memo.git_id(path)?;
            FileEntry::from_etag(rel.to_owned(), size, &id)?
        };
        Some(Located {
            file: path.to_path_buf(),
            entry,
        })
    }
}
