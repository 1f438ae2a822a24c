//! Where files go in a `--local-dir` target, and the per-file metadata that
//! huggingface_hub reads (docs/hub-protocol.md §10).
//!
//! ```text
//! <dir>/<repo path>                                    finished, verified files
//! <dir>/.cache/huggingface/.gitignore                  "*"
//! <dir>/.cache/huggingface/CACHEDIR.TAG
//! <dir>/.cache/huggingface/download/<path>.metadata    commit\netag\ntimestamp\n
//! <dir>/.cache/huggingface/download/<path>.lock        flock held while publishing
//! <dir>/.cache/huggingface/download/<path>.hfd-<etag>.part      our partial file
//! <dir>/.cache/huggingface/download/<path>.hfd-<etag>.verified  complete, verified, not yet published
//! <dir>/.cache/huggingface/trees/<commit>.json         complete listing (unfiltered runs only)
//! <dir>/.cache/huggingface/hfd-listing                 a listing in progress (decision 0027)
//! ```
//!
//! Our own names (partial, journal, verified) that would exceed 255 bytes
//! are `.hfd-<sha256 of the name, 16 hex><suffix>` instead; so are the
//! metadata and lock names of a file whose name is too long for
//! huggingface_hub's own (`<name>.metadata` over 255 bytes).
//!
//! The partial name ends in `.part`, never `.incomplete`: huggingface_hub up
//! to v1.17 resumes `.incomplete` files by appending, which would adopt a
//! preallocated (not prefix-complete) file as valid data.
//!
//! Publishing a file (rename of the verified file over `<dir>/<path>`, then
//! the metadata) happens only while holding `<path>.lock`, the lock
//! huggingface_hub holds while it writes the same file; a busy lock is
//! reported as [`Publish::Busy`] and the caller waits.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use hfd_hub::{Commit, RemoteFile, Revision};
use hfd_store::{EntryKind, OpenMode, TargetDir};

use super::contract::{FetchPolicy, FileAction, HubLock, JobPaths, Layout, Publish, PublishItem};
use super::fs::{
    CACHEDIR_TAG, JOURNAL_SUFFIX_LEN, cached_created, cached_existing, digest_file, entry_in,
    read_file, repo_rel, safe_join, sibling_name, write_if_missing, write_in_place,
    write_tree_listing,
};
use super::lock::{PublishGuard, TargetLock};
use super::tree_record::TreeRecord;
use crate::error::{Error, Result};

/// A `--local-dir` target folder.
#[derive(Debug, Clone)]
pub struct LocalDir {
    root: PathBuf,
    /// The target, opened once it exists; every file below it is reached
    /// through this handle without following links.
    handle: OnceLock<TargetDir>,
}

/// What the metadata file says about a finished file.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalMetadata {
    /// Commit the file was downloaded at.
    pub commit: String,
    /// Normalised etag (git sha1 or sha256 hex).
    pub etag: String,
    /// Unix time the metadata was written.
    pub timestamp: f64,
}

/// What [`LocalDir::lookup`] found at a file's final name.
enum Lookup {
    /// The file, current by huggingface_hub's rule, and its metadata.
    Current(LocalMetadata),
    /// Nothing (no link on the way either).
    Missing,
    /// Something else: another version, a link, an unreadable name.
    Other,
}

/// `.cache/huggingface`, relative to the target.
fn state_rel() -> PathBuf {
    Path::new(".cache").join("huggingface")
}

/// `.cache/huggingface/download`, relative to the target.
fn download_rel() -> PathBuf {
    state_rel().join("download")
}

impl LocalDir {
    /// A target at `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            handle: OnceLock::new(),
        }
    }

    /// The target folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The target's handle, `None` while the folder does not exist.
    fn existing(&self) -> Result<Option<TargetDir>> {
        cached_existing(&self.root, &self.handle)
    }

    /// The target's handle, the folder created when missing.
    fn target(&self) -> Result<TargetDir> {
        cached_created(&self.root, &self.handle)
    }

    /// A repo path relative to the target (names checked, no disk access).
    fn final_rel(&self, repo_path: &str) -> Result<PathBuf> {
        repo_rel(&self.root, Path::new(""), repo_path)
    }

    /// `download/<path><suffix>`, relative to the target.
    /// `<path><suffix>` in the state folder, or a short hashed name when
    /// that (plus `reserve` bytes for names derived from it) would pass
    /// `NAME_MAX`: every name the listing allows can be downloaded.
    fn state_file_rel(&self, repo_path: &str, suffix: &str, reserve: usize) -> Result<PathBuf> {
        let path = repo_rel(&self.root, &download_rel(), repo_path)?;
        Ok(sibling_name(&path, suffix, reserve))
    }

    fn partial_rel(&self, repo_path: &str, etag: &str) -> Result<PathBuf> {
        let short: String = etag.chars().take(16).collect();
        self.state_file_rel(repo_path, &format!(".hfd-{short}.part"), JOURNAL_SUFFIX_LEN)
    }

    fn staged_rel(&self, repo_path: &str, etag: &str) -> Result<PathBuf> {
        let short: String = etag.chars().take(16).collect();
        self.state_file_rel(repo_path, &format!(".hfd-{short}.verified"), 0)
    }

    fn metadata_rel(&self, repo_path: &str) -> Result<PathBuf> {
        self.state_file_rel(repo_path, ".metadata", 0)
    }

    fn lock_rel(&self, repo_path: &str) -> Result<PathBuf> {
        self.state_file_rel(repo_path, ".lock", 0)
    }

    /// Final location of a repo path. Fails if the path would leave the
    /// target, including through a symlink that already exists inside it.
    pub fn final_path(&self, repo_path: &str) -> Result<PathBuf> {
        safe_join(&self.root, repo_path)
    }

    /// The partial file for a repo path with a given etag.
    pub fn partial_path(&self, repo_path: &str, etag: &str) -> Result<PathBuf> {
        Ok(self.root.join(self.partial_rel(repo_path, etag)?))
    }

    /// Where the engine puts the complete, verified file before it is
    /// published (renamed over the final path under the lock).
    pub fn staged_path(&self, repo_path: &str, etag: &str) -> Result<PathBuf> {
        Ok(self.root.join(self.staged_rel(repo_path, etag)?))
    }

    /// `download/<path>.lock`, the lock huggingface_hub holds while it writes
    /// `<path>` (its metadata path with `.metadata` replaced by `.lock`).
    pub fn lock_path(&self, repo_path: &str) -> Result<PathBuf> {
        Ok(self.root.join(self.lock_rel(repo_path)?))
    }

    /// Creates the target, `.cache/huggingface/`, its `.gitignore` and
    /// `CACHEDIR.TAG` when missing.
    pub fn prepare(&self) -> Result<()> {
        let target = self.target()?;
        // The state folder holds partials, journals, locks and metadata: a
        // symlink on the way (`.cache -> /elsewhere`) must not carry them
        // outside the target (issue #9); the handle refuses it.
        target.create_dir_all(&download_rel())?;
        let state = state_rel();
        write_if_missing(&target, &state.join(".gitignore"), b"*")?;
        write_if_missing(
            &target,
            &state.join("CACHEDIR.TAG"),
            CACHEDIR_TAG.as_bytes(),
        )?;
        Ok(())
    }

    /// Creates the parent folders of a file's final, partial and staged
    /// paths (refusing links on the way). A link planted at the partial's
    /// or journal's name is removed when opening it fails
    /// (`TargetDir::open_own_file`); one at the staged name is replaced by
    /// the rename to it.
    pub fn prepare_file(&self, repo_path: &str, etag: &str) -> Result<JobPaths> {
        let target = self.target()?;
        let final_rel = self.final_rel(repo_path)?;
        let partial = self.partial_rel(repo_path, etag)?;
        let staged = self.staged_rel(repo_path, etag)?;
        for p in [&final_rel, &partial] {
            if let Some(parent) = p.parent() {
                target.create_dir_all(parent)?;
            }
        }
        Ok(JobPaths {
            partial: self.root.join(partial),
            staged: self.root.join(staged),
            target,
        })
    }

    /// What a run must do with `file`, from what the folder holds.
    pub fn classify(
        &self,
        commit: &Commit,
        file: &RemoteFile,
        fetch: FetchPolicy,
    ) -> Result<FileAction> {
        self.classify_settled(commit, file, fetch)
            .map(|(action, _)| action)
    }

    /// [`classify`](Self::classify), and whether an up-to-date file's
    /// metadata already names `commit` (then [`refresh`](Self::refresh) has
    /// nothing to do).
    pub fn classify_settled(
        &self,
        commit: &Commit,
        file: &RemoteFile,
        fetch: FetchPolicy,
    ) -> Result<(FileAction, bool)> {
        // The common case of a resync first, in one open of the file and
        // one of its metadata, both below the target's handle: the open
        // refuses links and `..` anywhere on the way, so a current file
        // needs none of the path checks below (4 `statx`, an `openat2`, a
        // `newfstatat` and a `close` per file; decision 0025).
        if fetch == FetchPolicy::SkipUpToDate {
            match self.lookup(&file.path, &file.etag(), file.size) {
                Lookup::Current(recorded) => {
                    return Ok((FileAction::UpToDate, recorded.commit == commit.as_str()));
                }
                // Nothing there and no link on the way (the open would have
                // said so): a new file, without another look.
                Lookup::Missing => return Ok((FileAction::New, false)),
                Lookup::Other => {}
            }
        }
        // Fails early, before any byte moves, on a path that would escape
        // the target: `entry` refuses a link on the way, and a link at the
        // name itself is refused here (what `final_path` checks, without
        // its `statx` of every folder by absolute path).
        let exists = match self.entry(&file.path)? {
            Some(EntryKind::Symlink) => return Err(self.unsafe_target(&file.path)),
            kind => kind.is_some(),
        };
        self.classify_unsettled(commit, file, fetch, exists)
            .map(|action| (action, false))
    }

    fn classify_unsettled(
        &self,
        commit: &Commit,
        file: &RemoteFile,
        fetch: FetchPolicy,
        exists: bool,
    ) -> Result<FileAction> {
        if fetch == FetchPolicy::RefetchAll {
            return Ok(if exists {
                FileAction::Changed
            } else {
                FileAction::New
            });
        }
        if exists && self.read_metadata(&file.path).is_none() && self.adopt(commit, file)? {
            return Ok(FileAction::UpToDate);
        }
        Ok(if exists {
            FileAction::Changed
        } else {
            FileAction::New
        })
    }

    fn unsafe_target(&self, repo_path: &str) -> Error {
        Error::UnsafeTarget {
            path: repo_path.to_owned(),
            root: self.root.clone(),
        }
    }

    /// What is at the final name of `repo_path`, not following links.
    fn entry(&self, repo_path: &str) -> Result<Option<EntryKind>> {
        let Some(target) = self.existing()? else {
            return Ok(None);
        };
        entry_in(&target, &self.final_rel(repo_path)?, || {
            self.unsafe_target(repo_path)
        })
    }

    /// A file at its final name without metadata (a run killed between the
    /// rename and the metadata write, or a file copied in by hand) whose
    /// size and content hash equal the hub's is adopted: its metadata is
    /// written and it is not downloaded again (huggingface_hub does the same
    /// for LFS files, docs/hub-protocol.md §10 step 3). Blocking: reads the file.
    fn adopt(&self, commit: &Commit, file: &RemoteFile) -> Result<bool> {
        let Some(target) = self.existing()? else {
            return Ok(false);
        };
        if self.entry(&file.path)? != Some(EntryKind::File { len: file.size }) {
            return Ok(false);
        }
        let expected = file.expected_digest();
        let hashed = digest_file(&target, &self.final_rel(&file.path)?, &expected, file.size);
        if hashed != Some(expected) {
            return Ok(false);
        }
        let Some(_lock) = TargetLock::try_acquire(&target, &self.lock_rel(&file.path)?)? else {
            return Ok(false);
        };
        self.write_metadata(&file.path, commit.as_str(), &file.etag())?;
        Ok(true)
    }

    /// Moves the verified file `staged` to the final path of `file` and
    /// writes its metadata, holding `<path>.lock` (taken here unless `lock`
    /// says the caller holds it). [`Publish::Busy`] (and nothing done) when
    /// another process holds the lock. Blocking.
    pub fn publish(
        &self,
        file: &RemoteFile,
        commit: &Commit,
        staged: &Path,
        lock: HubLock,
    ) -> Result<Publish> {
        let target = self.target()?;
        let Some(_lock) = PublishGuard::acquire(&target, &self.lock_rel(&file.path)?, lock)? else {
            return Ok(Publish::Busy);
        };
        // Checked again now: a symlink may have appeared since the plan
        // (refused on the way by the no-follow folder walk, at the name
        // itself just below). The rename itself never follows one (it would
        // replace a link planted after this check, not write through it).
        let final_rel = self.final_rel(&file.path)?;
        if let Some(parent) = final_rel.parent() {
            target.create_dir_all(parent).map_err(|e| match e {
                hfd_store::Error::Symlink { .. } => self.unsafe_target(&file.path),
                e => e.into(),
            })?;
        }
        if self.entry(&file.path)? == Some(EntryKind::Symlink) {
            return Err(self.unsafe_target(&file.path));
        }
        let staged_rel = staged
            .strip_prefix(&self.root)
            .map_err(|_| Error::UnsafeTarget {
                path: staged.display().to_string(),
                root: self.root.clone(),
            })?;
        // The staged file is synced: its folder's sync is batched.
        target.rename_batched(staged_rel, &final_rel)?;
        self.write_metadata(&file.path, commit.as_str(), &file.etag())?;
        Ok(Publish::Done)
    }

    /// For a file found up to date: rewrites its metadata when it names
    /// another commit, so huggingface_hub, asked for this commit, needs no
    /// request either (its rule 1, docs/hub-protocol.md §10). Skipped when another
    /// process holds the lock. Blocking.
    pub fn refresh(&self, file: &RemoteFile, commit: &Commit) -> Result<()> {
        if self
            .read_metadata(&file.path)
            .is_some_and(|m| m.commit == commit.as_str())
        {
            return Ok(());
        }
        let target = self.target()?;
        let Some(_lock) = TargetLock::try_acquire(&target, &self.lock_rel(&file.path)?)? else {
            return Ok(());
        };
        if self.is_current(&file.path, &file.etag(), file.size) {
            self.write_metadata(&file.path, commit.as_str(), &file.etag())?;
        }
        Ok(())
    }

    /// Writes `trees/<commit>.json` when missing. Only call it with the
    /// complete, unfiltered listing of the commit.
    pub fn write_tree(&self, commit: &Commit, listing: &TreeRecord) -> Result<()> {
        write_tree_listing(&self.target()?, &state_rel(), commit, listing)
    }

    /// Reads the metadata of a repo path, `None` when absent or unreadable
    /// (or reached only through a link).
    pub fn read_metadata(&self, repo_path: &str) -> Option<LocalMetadata> {
        let target = self.existing().ok()??;
        let bytes = read_file(&target, &self.metadata_rel(repo_path).ok()?)?;
        let text = String::from_utf8(bytes).ok()?;
        let mut lines = text.lines().map(str::trim);
        let commit = lines.next()?.to_owned();
        let etag = lines.next()?.to_owned();
        let timestamp = lines.next()?.parse().ok()?;
        Some(LocalMetadata {
            commit,
            etag,
            timestamp,
        })
    }

    /// Whether the file at `repo_path` is already the one with `etag` and
    /// `size`, by the rule huggingface_hub uses (metadata etag matches, and
    /// the metadata is not older than the file). A link is never current.
    pub fn is_current(&self, repo_path: &str, etag: &str, size: u64) -> bool {
        self.current_metadata(repo_path, etag, size).is_some()
    }

    /// The metadata of the file at `repo_path` when it is current (see
    /// [`is_current`](Self::is_current)).
    fn current_metadata(&self, repo_path: &str, etag: &str, size: u64) -> Option<LocalMetadata> {
        match self.lookup(repo_path, etag, size) {
            Lookup::Current(recorded) => Some(recorded),
            Lookup::Missing | Lookup::Other => None,
        }
    }

    /// Whether the file at `repo_path` is current (see
    /// [`is_current`](Self::is_current)), missing (its open found no such
    /// name, so no link on the way either), or anything else.
    fn lookup(&self, repo_path: &str, etag: &str, size: u64) -> Lookup {
        let target = match self.existing() {
            Ok(Some(target)) => target,
            // No target folder yet: nothing in it.
            Ok(None) => return Lookup::Missing,
            Err(_) => return Lookup::Other,
        };
        let Ok(rel) = self.final_rel(repo_path) else {
            return Lookup::Other;
        };
        let file = match target.open_file(&rel, OpenMode::Read) {
            Ok(file) => file,
            Err(hfd_store::Error::Dir { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                return Lookup::Missing;
            }
            Err(_) => return Lookup::Other,
        };
        self.current_of(repo_path, etag, size, &file)
            .map_or(Lookup::Other, Lookup::Current)
    }

    /// The metadata of the open final `file` of `repo_path` when it is
    /// current.
    fn current_of(
        &self,
        repo_path: &str,
        etag: &str,
        size: u64,
        file: &std::fs::File,
    ) -> Option<LocalMetadata> {
        let meta = file.metadata().ok()?;
        if !meta.is_file() || meta.len() != size {
            return None;
        }
        let recorded = self.read_metadata(repo_path)?;
        let mtime = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
            .map_or(0.0, |d| d.as_secs_f64());
        (recorded.etag == etag && mtime - 1.0 <= recorded.timestamp).then_some(recorded)
    }

    /// Writes `<path>.metadata` for a file now in its final place. Call it
    /// after the rename, so the timestamp is not older than the file.
    pub fn write_metadata(&self, repo_path: &str, commit: &str, etag: &str) -> Result<()> {
        let target = self.target()?;
        let rel = self.metadata_rel(repo_path)?;
        if let Some(parent) = rel.parent() {
            target.create_dir_all(parent)?;
        }
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let text = format!("{commit}\n{etag}\n{now}\n");
        // In place, as huggingface_hub writes it: a torn copy (a crash
        // mid-write) has a cut etag or timestamp, which makes the file "not
        // current" (hashed again), never current by mistake; written after
        // the file's own rename, it never names bytes not yet in place.
        write_in_place(&target, &rel, text.as_bytes())
    }
}

impl Layout for LocalDir {
    fn files_dir(&self, _commit: &Commit) -> PathBuf {
        self.root.clone()
    }

    fn shares_content(&self) -> bool {
        // Every path is its own file with its own metadata.
        false
    }

    fn classify(
        &self,
        commit: &Commit,
        file: &RemoteFile,
        fetch: FetchPolicy,
    ) -> Result<FileAction> {
        LocalDir::classify(self, commit, file, fetch)
    }

    fn classify_settled(
        &self,
        commit: &Commit,
        file: &RemoteFile,
        fetch: FetchPolicy,
    ) -> Result<(FileAction, bool)> {
        LocalDir::classify_settled(self, commit, file, fetch)
    }

    fn prepare(&self) -> Result<Arc<dyn Layout>> {
        LocalDir::prepare(self)?;
        Ok(Arc::new(self.clone()))
    }

    fn write_tree(&self, commit: &Commit, listing: &TreeRecord) -> Result<()> {
        LocalDir::write_tree(self, commit, listing)
    }

    fn has_tree(&self, commit: &Commit) -> bool {
        let rel = state_rel().join("trees").join(format!("{commit}.json"));
        matches!(
            self.existing().map(|t| t.map(|t| t.entry(&rel))),
            Ok(Some(Ok(Some(EntryKind::File { .. }))))
        )
    }

    fn listing_state(&self) -> Option<(PathBuf, PathBuf)> {
        Some((self.root.clone(), state_rel().join("hfd-listing")))
    }

    fn job_paths(&self, file: &RemoteFile) -> Result<JobPaths> {
        self.prepare_file(&file.path, &file.etag())
    }

    fn lock_path(&self, file: &RemoteFile) -> Result<PathBuf> {
        LocalDir::lock_path(self, &file.path)
    }

    fn publish(
        &self,
        commit: &Commit,
        item: &PublishItem,
        _fetch: FetchPolicy,
        lock: HubLock,
    ) -> Result<Publish> {
        // A local-dir item is always one path.
        let Some(file) = item.files.first() else {
            return Ok(Publish::Done);
        };
        match &item.staged {
            Some(staged) => LocalDir::publish(self, file, commit, staged, lock),
            None => self.refresh(file, commit).map(|()| Publish::Done),
        }
    }

    fn finish(&self, _revision: &Revision, _commit: &Commit) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn metadata_round_trip_and_currency() {
        let dir = tempfile::tempdir().unwrap();
        let local = LocalDir::new(dir.path());
        local.prepare().unwrap();
        assert_eq!(
            fs::read(dir.path().join(".cache/huggingface/.gitignore")).unwrap(),
            b"*"
        );
        let etag = "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391";
        let JobPaths {
            partial, staged, ..
        } = local.prepare_file("sub/f.txt", etag).unwrap();
        assert!(partial.to_string_lossy().ends_with(".part"));
        assert!(staged.to_string_lossy().ends_with(".verified"));
        assert!(staged.parent().unwrap().is_dir());
        let final_path = local.final_path("sub/f.txt").unwrap();
        fs::write(&final_path, b"").unwrap();
        assert!(!local.is_current("sub/f.txt", etag, 0));
        local
            .write_metadata("sub/f.txt", &"a".repeat(40), etag)
            .unwrap();
        let text = fs::read_to_string(
            dir.path()
                .join(".cache/huggingface/download/sub/f.txt.metadata"),
        )
        .unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(text.ends_with('\n'));
        assert!(local.is_current("sub/f.txt", etag, 0));
        assert!(!local.is_current("sub/f.txt", etag, 1));
        assert!(!local.is_current("sub/f.txt", &"b".repeat(40), 0));
    }
}
