//! A download target folder that nobody else can redirect: every file and
//! folder inside it is reached relative to a handle opened once, and no
//! symbolic link below that handle is ever followed.
//!
//! Someone who can write into a shared target (a lab's shared `HF_HOME`)
//! could otherwise plant a link at a name hfd-rs is about to write and make
//! the download overwrite any file the downloading user can write. Here a
//! link found on the way (at the name itself or at any folder before it) is
//! refused with [`Error::Symlink`] naming it, never followed; [`TargetDir::rename`]
//! and [`TargetDir::remove_file`] act on a link itself, never on what it
//! points at.
//!
//! How each system enforces it is in the table of the `platform` module
//! (`src/platform/mod.rs`): `openat2` with `RESOLVE_BENEATH |
//! RESOLVE_NO_SYMLINKS` on Linux, `openat` with `O_NOFOLLOW` one component
//! at a time elsewhere on Unix, a reparse-point check then
//! `FILE_FLAG_OPEN_REPARSE_POINT` on Windows.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::platform::{DirHandle, FsError};
use crate::{Error, Result};

/// How [`TargetDir::open_file`] opens a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum OpenMode {
    /// Read only; the file must exist.
    Read,
    /// Read and write; the file must exist.
    ReadWrite,
    /// Read and write, created when missing, never truncated.
    CreateOrOpen,
    /// Read and write, created; fails when anything exists at the name.
    CreateNew,
    /// Read and write, created when missing, truncated to zero.
    Truncate,
}

/// What is at a name inside a [`TargetDir`], as found without following it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EntryKind {
    /// A regular file of `len` bytes.
    File {
        /// Its length.
        len: u64,
    },
    /// A folder.
    Dir,
    /// A symbolic link (on Windows also a junction or other reparse point).
    Symlink,
    /// Anything else (a FIFO, a socket, a device).
    Other,
}

/// A folder opened once; files and folders below it are opened, created,
/// renamed and removed relative to it without following symbolic links.
///
/// Paths given to its methods are relative, made of plain names only (no
/// `..`, no root, no drive); anything else is [`Error::NotBeneath`]. Cheap to
/// clone (shared handle).
#[derive(Clone, Debug)]
pub struct TargetDir {
    /// Shared by clones: every job of a run holds one.
    root: Arc<Path>,
    handle: DirHandle,
    /// Folders whose renames are not durable yet ([`TargetDir::rename_batched`]),
    /// shared by every clone and every folder opened from this one.
    batch: Arc<Mutex<SyncBatch>>,
    /// Folders already opened below the root, shared like `batch`.
    folders: Arc<Mutex<FolderCache>>,
}

/// Handles on folders opened below the root, by display path.
///
/// A dataset's thousands of files share a few folders, and every operation
/// on a file opened its folder again (an `openat2` that resolves the whole
/// path, and a `close`): a fifth of a small file's CPU. A handle kept here
/// still names the folder it was opened on, without following links, so the
/// no-follow guarantee holds; only where a handle is a checked path rather
/// than an open folder (Windows, [`DirHandle::PINS_FOLDER`]) is nothing
/// kept, since a link planted later would be followed there.
#[derive(Debug, Default)]
struct FolderCache {
    /// Ordered by path: the folders below one follow it (see `forget`).
    handles: BTreeMap<PathBuf, DirHandle>,
}

/// Folders kept open at most: file descriptors, next to a run's connections
/// and open partials, under macOS's default limit of 256 per process. A
/// listing comes sorted by path, so the files of a folder arrive together
/// and a few folders are in use at a time.
const FOLDERS_KEPT: usize = 64;

/// Renames since the last folder sync, and the folders they touched.
#[derive(Debug, Default)]
struct SyncBatch {
    /// Folder (display path) → its handle, each synced once per batch.
    folders: HashMap<PathBuf, DirHandle>,
    renames: usize,
    since: Option<Instant>,
}

/// A batch of renames is made durable when it holds this many renames...
const BATCH_RENAMES: usize = 512;
/// ...or its oldest rename is this old: a crash loses at most this much
/// finished work (those files stay under their staged name and are fetched
/// again), never a file's correctness.
const BATCH_AGE: Duration = Duration::from_secs(1);

/// A relative path cut into its plain names.
struct Names<'a> {
    rel: &'a Path,
    parts: Vec<&'a OsStr>,
}

impl<'a> Names<'a> {
    fn dirs(&self) -> &[&'a OsStr] {
        &self.parts[..self.parts.len().saturating_sub(1)]
    }

    fn leaf(&self) -> &'a OsStr {
        self.parts[self.parts.len() - 1]
    }
}

impl TargetDir {
    /// Opens the existing folder `root`. Links in `root` itself are followed
    /// (the user chose it); nothing below it will be.
    /// An empty `root` is the current folder.
    pub fn open(root: &Path) -> Result<Self> {
        let at = if root.as_os_str().is_empty() {
            Path::new(".")
        } else {
            root
        };
        let handle = DirHandle::open_root(at).map_err(|source| Error::Dir {
            path: root.to_path_buf(),
            action: "cannot open folder",
            source,
        })?;
        Ok(Self {
            root: Arc::from(root),
            handle,
            batch: Arc::default(),
            folders: Arc::default(),
        })
    }

    /// Creates `root` (and its parents) when missing, then [`open`](Self::open)s it.
    pub fn create(root: &Path) -> Result<Self> {
        std::fs::create_dir_all(root).map_err(|source| Error::Dir {
            path: root.to_path_buf(),
            action: "cannot create folder",
            source,
        })?;
        Self::open(root)
    }

    /// The folder's path, as given (for messages).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `rel` below the root, for messages.
    pub fn display_path(&self, rel: &Path) -> PathBuf {
        self.root.join(rel)
    }

    /// Opens (or creates, per `mode`) the regular file `rel`. A link at
    /// `rel` or at any folder on the way is refused with [`Error::Symlink`];
    /// anything but a regular file is refused too.
    pub fn open_file(&self, rel: &Path, mode: OpenMode) -> Result<File> {
        let names = self.names(rel, false)?;
        self.in_folder(&names, |dir| dir.open_path(&[names.leaf()], mode))
            .map_err(|e| self.fs_err(&names, e, "cannot open"))
    }

    /// [`open_file`](Self::open_file) for a name hfd-rs owns (a partial,
    /// a journal, a lock): a link or special file planted at `rel` itself is
    /// removed, never followed, and the open tried once more, so a planted
    /// name heals instead of failing every run. A link on the way is still
    /// refused. Looked at only when the open fails: nothing is checked
    /// ahead of each file of a dataset.
    pub fn open_own_file(&self, rel: &Path, mode: OpenMode) -> Result<File> {
        match self.open_file(rel, mode) {
            Err(first) => {
                if !self.clear_planted(rel)? {
                    return Err(first);
                }
                self.open_file(rel, mode)
            }
            opened => opened,
        }
    }

    /// Removes a link or special file at `rel` (a warning says so); whether
    /// there was one. Nothing happens to a regular file, a folder or a
    /// missing name.
    pub fn clear_planted(&self, rel: &Path) -> Result<bool> {
        match self.entry(rel) {
            Ok(Some(EntryKind::Symlink | EntryKind::Other)) => {
                tracing::warn!(
                    path = %self.display_path(rel).display(),
                    "found a symbolic link (or special file) where hfd-rs keeps its own file; removing it, not following it"
                );
                self.remove_file(rel)?;
                Ok(true)
            }
            Ok(_) => Ok(false),
            // The folder is missing: nothing planted.
            Err(Error::Dir { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Creates the folder `rel` and any missing parents below the root
    /// (like `mkdir -p`), refusing links on the way, and returns a handle on
    /// it.
    pub fn create_dir_all(&self, rel: &Path) -> Result<Self> {
        let names = self.names(rel, true)?;
        let handle = self
            .folder(&names.parts, true)
            .map_err(|e| self.fs_err(&names, e, "cannot create folder"))?;
        Ok(self.below(rel, handle))
    }

    /// A handle on the existing folder `rel` (empty: the root itself).
    pub fn open_dir(&self, rel: &Path) -> Result<Self> {
        let names = self.names(rel, true)?;
        let handle = self
            .folder(&names.parts, false)
            .map_err(|e| self.fs_err(&names, e, "cannot open folder"))?;
        Ok(self.below(rel, handle))
    }

    /// The folder `rel` (opened as `handle`) as a target of its own, sharing
    /// this one's rename batch and folder handles.
    fn below(&self, rel: &Path, handle: DirHandle) -> Self {
        Self {
            root: Arc::from(self.root.join(rel)),
            handle,
            batch: Arc::clone(&self.batch),
            folders: Arc::clone(&self.folders),
        }
    }

    /// What is at `rel`, without following it (`None`: nothing). Links in
    /// the folders on the way are refused.
    pub fn entry(&self, rel: &Path) -> Result<Option<EntryKind>> {
        let names = self.names(rel, false)?;
        let dirs = names.dirs();
        let folder = |dirs| {
            self.folder(dirs, false)
                .map_err(|e| self.fs_err(&names, e, "cannot inspect"))
        };
        let dir = folder(dirs)?;
        match dir.kind(names.leaf()) {
            // "Nothing" from a kept folder removed since is asked again of
            // the folder now at that path.
            Ok(None) if !dirs.is_empty() && dir.is_removed() => {
                self.forget(dirs);
                folder(dirs)?.kind(names.leaf())
            }
            other => other,
        }
        .map_err(|source| self.io_err(rel, "cannot inspect", source))
    }

    /// Renames `from` to `to` (both below the root), replacing `to`, and
    /// makes the rename durable (the folders are synced). A link at `to` is
    /// replaced, never followed; a link at `from` is moved as a link.
    pub fn rename(&self, from: &Path, to: &Path) -> Result<()> {
        let (from_dir, from_names, to_dir, to_names) = self.rename_entry(from, to)?;
        let rename_err = |source| Error::Rename {
            from: self.display_path(from),
            to: self.display_path(to),
            source,
        };
        to_dir.sync().map_err(rename_err)?;
        if from_names.dirs() != to_names.dirs() {
            from_dir.sync().map_err(rename_err)?;
        }
        Ok(())
    }

    /// Renames `from` to `to` like [`rename`](Self::rename), but leaves
    /// the folders' sync to the batch: they are synced once for many renames
    /// (when 512 renames or a second have gathered, and by
    /// [`sync_batch`](Self::sync_batch)). For files whose data is already
    /// durable: after a crash the rename is either there, naming complete
    /// bytes, or not, leaving the file under its old name.
    pub fn rename_batched(&self, from: &Path, to: &Path) -> Result<()> {
        let (from_dir, from_names, to_dir, to_names) = self.rename_entry(from, to)?;
        let due = {
            let mut batch = self.batch.lock().unwrap_or_else(PoisonError::into_inner);
            let to_key = self.root.join(to_names.dirs().iter().collect::<PathBuf>());
            batch.folders.entry(to_key).or_insert(to_dir);
            if from_names.dirs() != to_names.dirs() {
                let from_key = self
                    .root
                    .join(from_names.dirs().iter().collect::<PathBuf>());
                batch.folders.entry(from_key).or_insert(from_dir);
            }
            batch.renames += 1;
            let since = *batch.since.get_or_insert_with(Instant::now);
            batch.renames >= BATCH_RENAMES || since.elapsed() >= BATCH_AGE
        };
        if due {
            self.sync_batch()?;
        }
        Ok(())
    }

    /// The rename itself, shared by [`rename`](Self::rename) and
    /// [`rename_batched`](Self::rename_batched): returns both folders and
    /// names, for their syncs.
    fn rename_entry<'a>(
        &self,
        from: &'a Path,
        to: &'a Path,
    ) -> Result<(DirHandle, Names<'a>, DirHandle, Names<'a>)> {
        let (from_names, to_names) = (self.names(from, false)?, self.names(to, false)?);
        let mut fresh = false;
        loop {
            let from_dir = self
                .folder(from_names.dirs(), false)
                .map_err(|e| self.fs_err(&from_names, e, "cannot rename"))?;
            let to_dir = self
                .folder(to_names.dirs(), false)
                .map_err(|e| self.fs_err(&to_names, e, "cannot rename"))?;
            match from_dir.rename(from_names.leaf(), &to_dir, to_names.leaf()) {
                Ok(()) => {
                    // What was moved may be a folder with kept handles.
                    self.forget(from_names.parts.as_slice());
                    return Ok((from_dir, from_names, to_dir, to_names));
                }
                Err(e)
                    if e.kind() == io::ErrorKind::NotFound
                        && !fresh
                        && (from_dir.is_removed() || to_dir.is_removed()) =>
                {
                    self.forget(from_names.dirs());
                    self.forget(to_names.dirs());
                    fresh = true;
                }
                Err(source) => {
                    return Err(Error::Rename {
                        from: self.display_path(from),
                        to: self.display_path(to),
                        source,
                    });
                }
            }
        }
    }

    /// Makes every [`rename_batched`](Self::rename_batched) so far durable:
    /// one sync per folder they touched. Call it before reporting a run done.
    pub fn sync_batch(&self) -> Result<()> {
        let folders = {
            let mut batch = self.batch.lock().unwrap_or_else(PoisonError::into_inner);
            batch.renames = 0;
            batch.since = None;
            std::mem::take(&mut batch.folders)
        };
        for (path, dir) in folders {
            dir.sync().map_err(|source| Error::Dir {
                path,
                action: "cannot sync folder",
                source,
            })?;
        }
        Ok(())
    }

    /// Removes the file `rel` (a link there is removed itself). Returns
    /// whether something was removed (`false`: nothing was there).
    pub fn remove_file(&self, rel: &Path) -> Result<bool> {
        let names = self.names(rel, false)?;
        match self.in_folder(&names, |dir| {
            dir.remove_file(names.leaf()).map_err(FsError::Io)
        }) {
            Ok(()) => Ok(true),
            Err(FsError::Io(e)) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(self.fs_err(&names, e, "cannot remove")),
        }
    }

    /// Removes the empty folder `rel`.
    pub fn remove_dir(&self, rel: &Path) -> Result<()> {
        let names = self.names(rel, false)?;
        // Its kept handle (and those below it) must not outlive it.
        self.forget(&names.parts);
        self.in_folder(&names, |dir| {
            dir.remove_dir(names.leaf()).map_err(FsError::Io)
        })
        .map_err(|e| self.fs_err(&names, e, "cannot remove folder"))
    }

    /// Creates the symbolic link `link` (below the root) pointing at
    /// `target` (stored as given, typically relative). On Windows this is a
    /// file link and needs the symlink privilege or developer mode.
    pub fn symlink(&self, target: &Path, link: &Path) -> Result<()> {
        let names = self.names(link, false)?;
        self.in_folder(&names, |dir| {
            dir.symlink(target, names.leaf()).map_err(FsError::Io)
        })
        .map_err(|e| self.fs_err(&names, e, "cannot create link"))
    }

    /// The target of the symbolic link `rel`, read and never followed
    /// (`None`: nothing or no link there). Links in the folders on the way
    /// are refused.
    pub fn read_link(&self, rel: &Path) -> Result<Option<PathBuf>> {
        let names = self.names(rel, false)?;
        let dir = self
            .folder(names.dirs(), false)
            .map_err(|e| self.fs_err(&names, e, "cannot read link"))?;
        match dir.kind(names.leaf()) {
            Ok(Some(EntryKind::Symlink)) => {}
            Ok(_) => return Ok(None),
            Err(source) => return Err(self.io_err(rel, "cannot read link", source)),
        }
        match dir.read_link(names.leaf()) {
            Ok(target) => Ok(Some(target)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(self.io_err(rel, "cannot read link", source)),
        }
    }

    /// Makes the entries of the folder `rel` (empty: the root) durable.
    pub fn sync_dir(&self, rel: &Path) -> Result<()> {
        self.open_dir(rel)?
            .handle
            .sync()
            .map_err(|source| self.io_err(rel, "cannot sync folder", source))
    }

    /// The handle on the folder `dirs` below the root (the root itself
    /// when empty), opened without following links (and created when
    /// `create`), kept for the next operation in it.
    fn folder(&self, dirs: &[&OsStr], create: bool) -> std::result::Result<DirHandle, FsError> {
        if dirs.is_empty() {
            return Ok(self.handle.clone());
        }
        if !DirHandle::PINS_FOLDER {
            return self.handle.walk(dirs, create);
        }
        let key = self.root.join(dirs.iter().collect::<PathBuf>());
        if let Some(handle) = self.kept().handles.get(&key) {
            return Ok(handle.clone());
        }
        let handle = self.handle.walk(dirs, create)?;
        let mut kept = self.kept();
        if kept.handles.len() >= FOLDERS_KEPT {
            // The first by path: in a sorted listing, the longest done.
            kept.handles.pop_first();
        }
        kept.handles.insert(key, handle.clone());
        Ok(handle)
    }

    /// Runs `op` in the folder of `names`' leaf. A kept folder removed since
    /// it was opened (a `rm -r` during the run) answers "not found" to
    /// everything: then the folder now at that path is opened and `op` runs
    /// once more. A link `op` meets is named by its index in `names`.
    fn in_folder<T>(
        &self,
        names: &Names<'_>,
        op: impl Fn(&DirHandle) -> std::result::Result<T, FsError>,
    ) -> std::result::Result<T, FsError> {
        let dirs = names.dirs();
        let at_leaf = |e| match e {
            FsError::Link(i) => FsError::Link(i + dirs.len()),
            e @ FsError::Io(_) => e,
        };
        let dir = self.folder(dirs, false)?;
        match op(&dir) {
            Err(FsError::Io(e))
                if e.kind() == io::ErrorKind::NotFound && !dirs.is_empty() && dir.is_removed() =>
            {
                self.forget(dirs);
                op(&self.folder(dirs, false)?).map_err(at_leaf)
            }
            other => other.map_err(at_leaf),
        }
    }

    /// Drops the kept handles of the folder `dirs` and of everything below it.
    fn forget(&self, dirs: &[&OsStr]) {
        if dirs.is_empty() || !DirHandle::PINS_FOLDER {
            return;
        }
        let key = self.root.join(dirs.iter().collect::<PathBuf>());
        let mut kept = self.kept();
        // Paths order by component, so `key` and everything below it are
        // one run starting at `key` (usually empty: a file was renamed).
        let below: Vec<PathBuf> = kept
            .handles
            .range(key.clone()..)
            .map(|(path, _)| path)
            .take_while(|path| path.starts_with(&key))
            .cloned()
            .collect();
        for path in below {
            kept.handles.remove(&path);
        }
    }

    fn kept(&self) -> std::sync::MutexGuard<'_, FolderCache> {
        self.folders.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Cuts `rel` into plain names; refuses anything that could leave the
    /// root. `allow_empty`: the root itself is meant.
    fn names<'a>(&self, rel: &'a Path, allow_empty: bool) -> Result<Names<'a>> {
        let mut parts = Vec::new();
        for component in rel.components() {
            match component {
                Component::Normal(name) => parts.push(name),
                Component::CurDir => {}
                Component::ParentDir | Component::RootDir | Component::Prefix(_) => {
                    return Err(Error::NotBeneath {
                        path: self.display_path(rel),
                    });
                }
            }
        }
        if parts.is_empty() && !allow_empty {
            return Err(Error::NotBeneath {
                path: self.display_path(rel),
            });
        }
        Ok(Names { rel, parts })
    }

    fn fs_err(&self, names: &Names<'_>, err: FsError, action: &'static str) -> Error {
        match err {
            FsError::Link(i) => {
                let at: PathBuf = names.parts.iter().take(i + 1).collect();
                Error::Symlink {
                    path: self.display_path(&at),
                }
            }
            FsError::Io(source) => self.io_err(names.rel, action, source),
        }
    }

    fn io_err(&self, rel: &Path, action: &'static str, source: io::Error) -> Error {
        Error::Dir {
            path: self.display_path(rel),
            action,
            source,
        }
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn forget_drops_a_folder_and_those_below_it_only() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = TargetDir::open(tmp.path()).unwrap();
        for rel in ["a", "a/b", "a/b/c", "a/b0", "a/c", "b"] {
            dir.create_dir_all(Path::new(rel)).unwrap();
            drop(
                dir.open_file(&Path::new(rel).join("f"), OpenMode::CreateNew)
                    .unwrap(),
            );
        }
        let kept = |dir: &TargetDir| -> Vec<PathBuf> {
            dir.kept()
                .handles
                .keys()
                .map(|p| p.strip_prefix(tmp.path()).unwrap().to_path_buf())
                .collect()
        };
        assert_eq!(
            kept(&dir),
            ["a", "a/b", "a/b/c", "a/b0", "a/c", "b"].map(PathBuf::from)
        );
        dir.forget(&[OsStr::new("a"), OsStr::new("b")]);
        assert_eq!(kept(&dir), ["a", "a/b0", "a/c", "b"].map(PathBuf::from));
    }
}
