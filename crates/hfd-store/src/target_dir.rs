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

use std::collections::HashMap;
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
    root: PathBuf,
    handle: DirHandle,
    /// Folders whose renames are not durable yet ([`TargetDir::rename_batched`]),
    /// shared by every clone and every folder opened from this one.
    batch: Arc<Mutex<SyncBatch>>,
}

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
            root: root.to_path_buf(),
            handle,
            batch: Arc::default(),
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
        self.handle
            .open_path(&names.parts, mode)
            .map_err(|e| self.fs_err(&names, e, "cannot open"))
    }

    /// Creates the folder `rel` and any missing parents below the root
    /// (like `mkdir -p`), refusing links on the way, and returns a handle on
    /// it.
    pub fn create_dir_all(&self, rel: &Path) -> Result<Self> {
        let names = self.names(rel, true)?;
        let handle = self
            .handle
            .walk(&names.parts, true)
            .map_err(|e| self.fs_err(&names, e, "cannot create folder"))?;
        Ok(Self {
            root: self.root.join(rel),
            handle,
            batch: Arc::clone(&self.batch),
        })
    }

    /// A handle on the existing folder `rel` (empty: the root itself).
    pub fn open_dir(&self, rel: &Path) -> Result<Self> {
        let names = self.names(rel, true)?;
        let handle = self
            .handle
            .walk(&names.parts, false)
            .map_err(|e| self.fs_err(&names, e, "cannot open folder"))?;
        Ok(Self {
            root: self.root.join(rel),
            handle,
            batch: Arc::clone(&self.batch),
        })
    }

    /// What is at `rel`, without following it (`None`: nothing). Links in
    /// the folders on the way are refused.
    pub fn entry(&self, rel: &Path) -> Result<Option<EntryKind>> {
        let (dir, names) = self.parent(rel, "cannot inspect")?;
        dir.kind(names.leaf())
            .map_err(|source| self.io_err(rel, "cannot inspect", source))
    }

    /// Renames `from` to `to` (both below the root), replacing `to`, and
    /// makes the rename durable (the folders are synced). A link at `to` is
    /// replaced, never followed; a link at `from` is moved as a link.
    pub fn rename(&self, from: &Path, to: &Path) -> Result<()> {
        let (from_dir, from_names) = self.parent(from, "cannot rename")?;
        let (to_dir, to_names) = self.parent(to, "cannot rename")?;
        let rename_err = |source| Error::Rename {
            from: self.display_path(from),
            to: self.display_path(to),
            source,
        };
        from_dir
            .rename(from_names.leaf(), &to_dir, to_names.leaf())
            .map_err(rename_err)?;
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
        let (from_dir, from_names) = self.parent(from, "cannot rename")?;
        let (to_dir, to_names) = self.parent(to, "cannot rename")?;
        from_dir
            .rename(from_names.leaf(), &to_dir, to_names.leaf())
            .map_err(|source| Error::Rename {
                from: self.display_path(from),
                to: self.display_path(to),
                source,
            })?;
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
        let (dir, names) = self.parent(rel, "cannot remove")?;
        match dir.remove_file(names.leaf()) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(source) => Err(self.io_err(rel, "cannot remove", source)),
        }
    }

    /// Removes the empty folder `rel`.
    pub fn remove_dir(&self, rel: &Path) -> Result<()> {
        let (dir, names) = self.parent(rel, "cannot remove folder")?;
        dir.remove_dir(names.leaf())
            .map_err(|source| self.io_err(rel, "cannot remove folder", source))
    }

    /// Creates the symbolic link `link` (below the root) pointing at
    /// `target` (stored as given, typically relative). On Windows this is a
    /// file link and needs the symlink privilege or developer mode.
    pub fn symlink(&self, target: &Path, link: &Path) -> Result<()> {
        let (dir, names) = self.parent(link, "cannot create link")?;
        dir.symlink(target, names.leaf())
            .map_err(|source| self.io_err(link, "cannot create link", source))
    }

    /// The target of the symbolic link `rel`, read and never followed
    /// (`None`: nothing or no link there). Links in the folders on the way
    /// are refused.
    pub fn read_link(&self, rel: &Path) -> Result<Option<PathBuf>> {
        let (dir, names) = self.parent(rel, "cannot read link")?;
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

    /// The handle on `rel`'s folder (checked) and `rel`'s names.
    fn parent<'a>(&self, rel: &'a Path, action: &'static str) -> Result<(DirHandle, Names<'a>)> {
        let names = self.names(rel, false)?;
        let dir = self
            .handle
            .walk(names.dirs(), false)
            .map_err(|e| self.fs_err(&names, e, action))?;
        Ok((dir, names))
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
