//! Where files go in a `--local-dir` target, and the per-file metadata that
//! huggingface_hub reads (docs/hub-protocol.md §10); plus the path-safety and atomic-write
//! helpers the cache layout ([`crate::CacheRepo`]) shares.
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
//! ```
//!
//! The partial name ends in `.part`, never `.incomplete`: huggingface_hub up
//! to v1.17 resumes `.incomplete` files by appending, which would adopt a
//! preallocated (not prefix-complete) file as valid data.
//!
//! Publishing a file (rename of the verified file over `<dir>/<path>`, then
//! the metadata) happens only while holding `<path>.lock`, the lock
//! huggingface_hub holds while it writes the same file; a busy lock is
//! reported as [`Publish::Busy`] and the caller waits.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Component, Path, PathBuf};
use std::time::SystemTime;

use hfd_hub::{Commit, RemoteFile};
use hfd_store::ContentHasher;

use crate::download::FileAction;
use crate::error::{Error, Result};
use crate::lock::TargetLock;

pub(crate) const CACHEDIR_TAG: &str = "Signature: 8a477f597d28d172789f06886806bc55\n\
# This file is a cache directory tag created by hfd-rs.\n\
# For information about cache directory tags see https://bford.info/cachedir/\n";

/// A `--local-dir` target folder.
#[derive(Debug, Clone)]
pub struct LocalDir {
    root: PathBuf,
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

impl LocalDir {
    /// A target at `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The target folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn state_dir(&self) -> PathBuf {
        self.root.join(".cache").join("huggingface")
    }

    /// Final location of a repo path. Fails if the path would leave the
    /// target, including through a symlink that already exists inside it.
    pub fn final_path(&self, repo_path: &str) -> Result<PathBuf> {
        safe_join(&self.root, repo_path)
    }

    /// The partial file for a repo path with a given etag.
    pub fn partial_path(&self, repo_path: &str, etag: &str) -> Result<PathBuf> {
        let short: String = etag.chars().take(16).collect();
        let path = safe_join(&self.state_dir().join("download"), repo_path)?;
        Ok(append_to_name(&path, &format!(".hfd-{short}.part")))
    }

    /// Where the engine puts the complete, verified file before it is
    /// published (renamed over the final path under the lock).
    pub fn staged_path(&self, repo_path: &str, etag: &str) -> Result<PathBuf> {
        let short: String = etag.chars().take(16).collect();
        let path = safe_join(&self.state_dir().join("download"), repo_path)?;
        Ok(append_to_name(&path, &format!(".hfd-{short}.verified")))
    }

    fn metadata_path(&self, repo_path: &str) -> Result<PathBuf> {
        let path = safe_join(&self.state_dir().join("download"), repo_path)?;
        Ok(append_to_name(&path, ".metadata"))
    }

    /// `download/<path>.lock`, the lock huggingface_hub holds while it writes
    /// `<path>` (its metadata path with `.metadata` replaced by `.lock`).
    pub fn lock_path(&self, repo_path: &str) -> Result<PathBuf> {
        let path = safe_join(&self.state_dir().join("download"), repo_path)?;
        Ok(append_to_name(&path, ".lock"))
    }

    /// Creates the target, `.cache/huggingface/`, its `.gitignore` and
    /// `CACHEDIR.TAG` when missing.
    pub fn prepare(&self) -> Result<()> {
        let state = self.state_dir();
        // The state folder holds partials, journals, locks and metadata: a
        // symlink on the way (`.cache -> /elsewhere`) must not carry them
        // outside the target (issue #9).
        for sub in [".cache/huggingface/download", ".cache/huggingface/trees"] {
            safe_join(&self.root, sub)?;
        }
        create_dir_all(&state.join("download"))?;
        write_if_missing(&state.join(".gitignore"), b"*")?;
        write_if_missing(&state.join("CACHEDIR.TAG"), CACHEDIR_TAG.as_bytes())?;
        Ok(())
    }

    /// Creates the parent folders of a file's final, partial and staged
    /// paths; returns `(partial, staged)`.
    pub fn prepare_file(&self, repo_path: &str, etag: &str) -> Result<(PathBuf, PathBuf)> {
        let final_path = self.final_path(repo_path)?;
        let partial = self.partial_path(repo_path, etag)?;
        let staged = self.staged_path(repo_path, etag)?;
        for p in [&final_path, &partial] {
            if let Some(parent) = p.parent() {
                create_dir_all(parent)?;
            }
        }
        // Creating the folders may not have introduced a symlink, but an
        // attacker racing us could; check again now that they exist.
        self.final_path(repo_path)?;
        Ok((partial, staged))
    }

    /// What a run must do with `file`, from what the folder holds.
    pub fn classify(&self, commit: &Commit, file: &RemoteFile, force: bool) -> Result<FileAction> {
        // Fails early, before any byte moves, on a path that would escape
        // the target.
        let final_path = self.final_path(&file.path)?;
        let exists = fs::symlink_metadata(&final_path).is_ok();
        if force {
            return Ok(if exists {
                FileAction::Changed
            } else {
                FileAction::New
            });
        }
        if self.is_current(&file.path, &file.etag(), file.size) {
            return Ok(FileAction::UpToDate);
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

    /// A file at its final name without metadata (a run killed between the
    /// rename and the metadata write, or a file copied in by hand) whose
    /// size and content hash equal the hub's is adopted: its metadata is
    /// written and it is not downloaded again (huggingface_hub does the same
    /// for LFS files, docs/hub-protocol.md §10 step 3). Blocking: reads the file.
    fn adopt(&self, commit: &Commit, file: &RemoteFile) -> Result<bool> {
        let path = self.final_path(&file.path)?;
        let Ok(meta) = fs::symlink_metadata(&path) else {
            return Ok(false);
        };
        if !meta.is_file() || meta.len() != file.size {
            return Ok(false);
        }
        let expected = file.expected_digest();
        let hashed = ContentHasher::file_digest_like(&expected, &path, file.size);
        if hashed.ok() != Some(expected) {
            return Ok(false);
        }
        let Some(_lock) = TargetLock::try_acquire(&self.lock_path(&file.path)?)? else {
            return Ok(false);
        };
        self.write_metadata(&file.path, commit.as_str(), &file.etag())?;
        Ok(true)
    }

    /// Moves the verified file `staged` to the final path of `file` and
    /// writes its metadata, holding `<path>.lock`. [`Publish::Busy`] (and
    /// nothing done) when another process holds the lock. Blocking.
    pub fn publish(&self, file: &RemoteFile, commit: &Commit, staged: &Path) -> Result<Publish> {
        let Some(_lock) = TargetLock::try_acquire(&self.lock_path(&file.path)?)? else {
            return Ok(Publish::Busy);
        };
        // Checked again now: a symlink may have appeared since the plan.
        let final_path = self.final_path(&file.path)?;
        rename(staged, &final_path)?;
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
        let Some(_lock) = TargetLock::try_acquire(&self.lock_path(&file.path)?)? else {
            return Ok(());
        };
        if self.is_current(&file.path, &file.etag(), file.size) {
            self.write_metadata(&file.path, commit.as_str(), &file.etag())?;
        }
        Ok(())
    }

    /// Writes `trees/<commit>.json` when missing. Only call it with the
    /// complete, unfiltered listing of the commit.
    pub fn write_tree(&self, commit: &Commit, listing: &[RemoteFile]) -> Result<()> {
        write_tree_listing(&self.state_dir(), commit, listing)
    }

    /// Reads the metadata of a repo path, `None` when absent or unreadable.
    pub fn read_metadata(&self, repo_path: &str) -> Option<LocalMetadata> {
        let text = fs::read_to_string(self.metadata_path(repo_path).ok()?).ok()?;
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
    /// the metadata is not older than the file).
    pub fn is_current(&self, repo_path: &str, etag: &str, size: u64) -> bool {
        let Ok(path) = self.final_path(repo_path) else {
            return false;
        };
        let Ok(meta) = fs::symlink_metadata(&path) else {
            return false;
        };
        if !meta.is_file() || meta.len() != size {
            return false;
        }
        let Some(recorded) = self.read_metadata(repo_path) else {
            return false;
        };
        let mtime = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
            .map_or(0.0, |d| d.as_secs_f64());
        recorded.etag == etag && mtime - 1.0 <= recorded.timestamp
    }

    /// Writes `<path>.metadata` for a file now in its final place. Call it
    /// after the rename, so the timestamp is not older than the file.
    pub fn write_metadata(&self, repo_path: &str, commit: &str, etag: &str) -> Result<()> {
        let path = self.metadata_path(repo_path)?;
        if let Some(parent) = path.parent() {
            create_dir_all(parent)?;
        }
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let text = format!("{commit}\n{etag}\n{now}\n");
        write_atomic(&path, text.as_bytes())
    }
}

/// Outcome of publishing one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Publish {
    /// In place.
    Done,
    /// Another process holds the file's lock; nothing was done.
    Busy,
}

/// Writes `<folder>/trees/<commit>.json` (docs/hub-protocol.md §9.2) unless it exists:
/// `format_version` 1, files sorted by path.
pub(crate) fn write_tree_listing(
    folder: &Path,
    commit: &Commit,
    listing: &[RemoteFile],
) -> Result<()> {
    let path = folder.join("trees").join(format!("{commit}.json"));
    if path.exists() {
        return Ok(());
    }
    let mut files = BTreeMap::new();
    for file in listing {
        let mut entry = serde_json::Map::new();
        entry.insert("size".into(), file.size.into());
        entry.insert("blob_id".into(), file.oid.to_hex().into());
        if let Some(sha) = &file.lfs_sha256 {
            entry.insert("lfs_sha256".into(), sha.to_hex().into());
            entry.insert("lfs_size".into(), file.size.into());
        }
        if let Some(xet) = &file.xet_hash {
            entry.insert("xet_hash".into(), xet.clone().into());
        }
        files.insert(file.path.as_str(), serde_json::Value::Object(entry));
    }
    let doc = serde_json::json!({ "format_version": 1, "files": files });
    let text = serde_json::to_vec_pretty(&doc).map_err(|e| Error::Io {
        action: "cannot encode",
        path: path.clone(),
        source: e.into(),
    })?;
    if let Some(parent) = path.parent() {
        create_dir_all(parent)?;
    }
    write_atomic(&path, &text)
}

/// Writes `content` to `path` through a temporary file in the same folder
/// and a rename, so readers see the old or the new content, never a part.
pub(crate) fn write_atomic(path: &Path, content: &[u8]) -> Result<()> {
    let tmp = append_to_name(path, &format!(".hfd-tmp-{}", std::process::id()));
    let io = |action, source| Error::Io {
        action,
        path: path.to_path_buf(),
        source,
    };
    let mut file = fs::File::create(&tmp).map_err(|e| io("cannot create", e))?;
    file.write_all(content).map_err(|e| io("cannot write", e))?;
    drop(file);
    fs::rename(&tmp, path).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        io("cannot rename into", e)
    })
}

/// `fs::rename` with the error naming the destination.
pub(crate) fn rename(from: &Path, to: &Path) -> Result<()> {
    fs::rename(from, to).map_err(|source| Error::Io {
        action: "cannot move a finished file to",
        path: to.to_path_buf(),
        source,
    })
}

/// Joins a `/`-separated repo path under `root`, refusing anything that
/// could land outside: absolute paths, `..`, `.`, empty segments, and
/// existing symlinks along the way.
pub(crate) fn safe_join(root: &Path, repo_path: &str) -> Result<PathBuf> {
    safe_join_with(root, repo_path, false)
}

/// [`safe_join`], except that the last segment may itself be a symlink
/// (a cache snapshot entry, which we replace, never follow).
pub(crate) fn safe_join_entry(root: &Path, repo_path: &str) -> Result<PathBuf> {
    safe_join_with(root, repo_path, true)
}

fn safe_join_with(root: &Path, repo_path: &str, last_may_be_link: bool) -> Result<PathBuf> {
    let unsafe_target = || Error::UnsafeTarget {
        path: repo_path.to_owned(),
        root: root.to_path_buf(),
    };
    if repo_path.is_empty() || repo_path.contains(['\\', '\0']) {
        return Err(unsafe_target());
    }
    let mut out = root.to_path_buf();
    let mut segments = repo_path.split('/').peekable();
    while let Some(segment) = segments.next() {
        let mut components = Path::new(segment).components();
        match (components.next(), components.next()) {
            (Some(Component::Normal(_)), None) => {}
            _ => return Err(unsafe_target()),
        }
        out.push(segment);
        let is_last = segments.peek().is_none();
        if !(is_last && last_may_be_link)
            && fs::symlink_metadata(&out).is_ok_and(|m| m.file_type().is_symlink())
        {
            return Err(unsafe_target());
        }
    }
    Ok(out)
}

pub(crate) fn append_to_name(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    path.with_file_name(name)
}

pub(crate) fn create_dir_all(path: &Path) -> Result<()> {
    fs::create_dir_all(path).map_err(|source| Error::Io {
        action: "cannot create folder",
        path: path.to_path_buf(),
        source,
    })
}

pub(crate) fn write_if_missing(path: &Path, content: &[u8]) -> Result<()> {
    if path.exists() {
        return Ok(());
    }
    fs::write(path, content).map_err(|source| Error::Io {
        action: "cannot write",
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_join_refuses_escapes() {
        let dir = tempfile::tempdir().unwrap();
        for bad in [
            "../x",
            "/etc/passwd",
            "a/../../x",
            "a//b",
            "./a",
            "a\\b",
            "",
            "a/\0",
        ] {
            assert!(safe_join(dir.path(), bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            safe_join(dir.path(), "a/b c#+ü.bin").unwrap(),
            dir.path().join("a").join("b c#+ü.bin")
        );
    }

    #[test]
    fn safe_join_refuses_existing_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("link")).unwrap();
        assert!(safe_join(dir.path(), "link/x").is_err());
        assert!(safe_join(dir.path(), "link").is_err());
    }

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
        let (partial, staged) = local.prepare_file("sub/f.txt", etag).unwrap();
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
