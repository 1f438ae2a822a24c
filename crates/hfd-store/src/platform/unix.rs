//! Unix (Linux and macOS): POSIX calls through rustix. What differs between
//! the two lives in `linux.rs` and `macos.rs`.

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

use super::{FsError, Open, os};
use crate::target_dir::EntryKind;

pub(crate) use super::os::{
    allocate, free_space, is_unsupported, start_writeback, sync_behind, try_lock_shared_fs,
};

/// On the descriptor that holds a claim ([`try_lock_shared_fs`]), also
/// takes huggingface_hub's lock (`flock`, see `super::try_lock`). On the same
/// open file it cannot conflict with the claim: a second `flock` there
/// succeeds (macOS, and Linux when the claim fell back to `flock`), an OFD
/// lock and a `flock` are independent on Linux, and Linux's NFS client,
/// which emulates `flock` with POSIX locks, gives both the same owner.
/// Another descriptor's `flock` would conflict with the claim on NFS and
/// macOS. `Ok(false)` when another process holds it.
pub(crate) fn try_lock_claimed(file: &File) -> io::Result<bool> {
    match file.try_lock() {
        Ok(()) => Ok(true),
        Err(std::fs::TryLockError::WouldBlock) => Ok(false),
        Err(std::fs::TryLockError::Error(e)) => Err(e),
    }
}

/// Bytes the filesystem has allocated to a file (`st_blocks` are 512-byte
/// units on every Unix).
pub(crate) fn allocated_bytes(meta: &std::fs::Metadata) -> u64 {
    meta.blocks().saturating_mul(512)
}

/// An id shared by all paths on one filesystem.
pub(crate) fn device_id(path: &Path) -> io::Result<u64> {
    Ok(std::fs::metadata(path)?.dev())
}

/// Makes the entries of the folder `dir` (creations, renames) durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    os::sync_fd(File::open(dir)?)
}

/// Renames `from` to `to` (replacing it) and syncs the folders involved.
pub(crate) fn rename_durable(from: &Path, to: &Path) -> io::Result<()> {
    std::fs::rename(from, to)?;
    let to_dir = parent_or_dot(to);
    sync_dir(&to_dir)?;
    let from_dir = parent_or_dot(from);
    if from_dir != to_dir {
        sync_dir(&from_dir)?;
    }
    Ok(())
}

fn parent_or_dot(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

pub(crate) fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    file.read_exact_at(buf, offset)
}

pub(crate) fn write_all_at(file: &File, data: &[u8], offset: u64) -> io::Result<()> {
    file.write_all_at(data, offset)
}

/// Writes `parts`, which follow each other from `offset`, with one
/// `pwritev` per 1,024 of them (`IOV_MAX`) unless the kernel writes less:
/// one system call and one take of the file's write lock where a `pwrite`
/// per part took as many as the parts (16 writers of one file queued on that
/// lock, decision 0075).
pub(crate) fn write_all_parts_at(file: &File, parts: &[&[u8]], mut offset: u64) -> io::Result<()> {
    use std::io::IoSlice;
    const IOV_MAX: usize = 1024;
    let mut parts: Vec<&[u8]> = parts.iter().copied().filter(|p| !p.is_empty()).collect();
    let mut first = 0;
    while first < parts.len() {
        let slices: Vec<IoSlice<'_>> = parts[first..parts.len().min(first + IOV_MAX)]
            .iter()
            .map(|part| IoSlice::new(part))
            .collect();
        let mut written = match rustix::io::pwritev(file, &slices, offset) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => n,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        };
        offset += written as u64;
        while written > 0 {
            let part = parts[first];
            if written >= part.len() {
                written -= part.len();
                first += 1;
            } else {
                parts[first] = &part[written..];
                written = 0;
            }
        }
    }
    Ok(())
}

/// Raises the soft limit of open files towards the hard one, to at most
/// 8,192: a run holds a descriptor per connection, per file in flight (its
/// partial and its claim) and per kept folder, and macOS starts processes
/// at 256. Best effort: a refusal leaves the limit as it was.
pub(crate) fn raise_open_file_limit() {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    const WANTED: u64 = 8192;
    let limit = getrlimit(Resource::Nofile);
    let wanted = limit.maximum.map_or(WANTED, |max| max.min(WANTED));
    if limit.current.is_some_and(|current| current < wanted) {
        let _ = setrlimit(
            Resource::Nofile,
            Rlimit {
                current: Some(wanted),
                maximum: limit.maximum,
            },
        );
    }
}

/// Flags of every folder opened on the way: never follow the last
/// component (intermediate ones are folders this walk opened itself).
const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

/// An open folder; every operation is relative to it and follows no link.
#[derive(Clone, Debug)]
pub(crate) struct DirHandle {
    fd: Arc<OwnedFd>,
}

impl DirHandle {
    /// A handle names the folder it was opened on, wherever that folder is
    /// later: keeping it for later operations follows no link planted since.
    pub(crate) const PINS_FOLDER: bool = true;

    /// Whether the folder has been removed since it was opened (a removed
    /// folder answers "not found" to everything asked through it).
    pub(crate) fn is_removed(&self) -> bool {
        rustix::fs::fstat(&*self.fd).is_ok_and(|stat| stat.st_nlink == 0)
    }

    /// Opens the root folder. Links in `path` itself are followed: the
    /// caller chose it.
    pub(crate) fn open_root(path: &Path) -> io::Result<Self> {
        let fd = rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Self { fd: Arc::new(fd) })
    }

    /// Opens the folder `dirs` below this one, one component at a time,
    /// creating missing ones when `create`.
    pub(crate) fn walk(&self, dirs: &[&OsStr], create: bool) -> Result<Self, FsError> {
        // Folders usually exist already (every file of a dataset after the
        // first in its folder): one call, and the walk only when that fails.
        if dirs.len() > 1 {
            match os::open_beneath(&self.fd, &join(dirs), DIR_FLAGS, Mode::empty()) {
                Some(Ok(fd)) => return Ok(Self { fd: Arc::new(fd) }),
                // Missing, not a link (that is `ELOOP`): nothing to name.
                Some(Err(Errno::NOENT)) if !create => {
                    return Err(FsError::Io(Errno::NOENT.into()));
                }
                _ => {}
            }
        }
        let mut current = self.clone();
        for (i, name) in dirs.iter().enumerate() {
            current = current.child_dir(name, create).map_err(|e| match e {
                FsError::Link(_) => FsError::Link(i),
                FsError::Io(e) => FsError::Io(e),
            })?;
        }
        Ok(current)
    }

    fn child_dir(&self, name: &OsStr, create: bool) -> Result<Self, FsError> {
        let mut made = false;
        loop {
            match rustix::fs::openat(&*self.fd, name, DIR_FLAGS, Mode::empty()) {
                Ok(fd) => return Ok(Self { fd: Arc::new(fd) }),
                Err(Errno::NOENT) if create && !made => {
                    match rustix::fs::mkdirat(&*self.fd, name, Mode::from_raw_mode(0o777)) {
                        Ok(()) | Err(Errno::EXIST) => made = true,
                        Err(e) => return Err(FsError::Io(e.into())),
                    }
                }
                Err(e) => return Err(self.refusal(name, e)),
            }
        }
    }

    /// Names a failure caused by a link at `name` as such.
    fn refusal(&self, name: &OsStr, err: Errno) -> FsError {
        if matches!(
            err,
            Errno::LOOP | Errno::NOTDIR | Errno::MLINK | Errno::EXIST
        ) && self.kind(name).ok().flatten() == Some(EntryKind::Symlink)
        {
            return FsError::Link(0);
        }
        FsError::Io(err.into())
    }

    /// Opens the file `path` (components) below this folder without
    /// following a link anywhere on the way; only regular files are opened.
    pub(crate) fn open_path(&self, path: &[&OsStr], how: Open) -> Result<File, FsError> {
        // One call where the kernel resolves the whole path beneath us (Linux
        // openat2); anything unusual is redone step by step, which also
        // names the link that stopped us.
        match os::open_beneath(&self.fd, &join(path), open_flags(how), file_mode(how)) {
            Some(Ok(fd)) => return regular(fd, how),
            // Missing (a link is `ELOOP`): the steps would only say it again.
            Some(Err(Errno::NOENT)) => return Err(FsError::Io(Errno::NOENT.into())),
            _ => {}
        }
        self.open_stepwise(path, how)
    }

    /// [`open_path`](Self::open_path) one component at a time with
    /// `openat(O_NOFOLLOW)`: what macOS always does.
    fn open_stepwise(&self, path: &[&OsStr], how: Open) -> Result<File, FsError> {
        let Some((leaf, dirs)) = path.split_last() else {
            return Err(FsError::Io(io::ErrorKind::InvalidInput.into()));
        };
        let mut dir = self.clone();
        for (i, name) in dirs.iter().enumerate() {
            dir = dir.child_dir(name, false).map_err(|e| match e {
                FsError::Link(_) => FsError::Link(i),
                FsError::Io(e) => FsError::Io(e),
            })?;
        }
        match rustix::fs::openat(&*dir.fd, *leaf, open_flags(how), file_mode(how)) {
            Ok(fd) => regular(fd, how),
            Err(e) => Err(match dir.refusal(leaf, e) {
                FsError::Link(_) => FsError::Link(dirs.len()),
                FsError::Io(e) => FsError::Io(e),
            }),
        }
    }

    /// Renames `from` in this folder to `to` in `to_dir`. A link at `to` is
    /// replaced, not followed.
    pub(crate) fn rename(&self, from: &OsStr, to_dir: &Self, to: &OsStr) -> io::Result<()> {
        rustix::fs::renameat(&*self.fd, from, &*to_dir.fd, to)?;
        Ok(())
    }

    /// Removes the file (or link: the link itself) `name`.
    pub(crate) fn remove_file(&self, name: &OsStr) -> io::Result<()> {
        rustix::fs::unlinkat(&*self.fd, name, AtFlags::empty())?;
        Ok(())
    }

    /// Removes the empty folder `name`.
    pub(crate) fn remove_dir(&self, name: &OsStr) -> io::Result<()> {
        rustix::fs::unlinkat(&*self.fd, name, AtFlags::REMOVEDIR)?;
        Ok(())
    }

    /// Creates the link `name` pointing at `target`.
    pub(crate) fn symlink(&self, target: &Path, name: &OsStr) -> io::Result<()> {
        rustix::fs::symlinkat(target, &*self.fd, name)?;
        Ok(())
    }

    /// The target of the link `name` (read, never followed).
    pub(crate) fn read_link(&self, name: &OsStr) -> io::Result<PathBuf> {
        use std::os::unix::ffi::OsStringExt;
        let target = rustix::fs::readlinkat(&*self.fd, name, Vec::new())?;
        Ok(PathBuf::from(std::ffi::OsString::from_vec(
            target.into_bytes(),
        )))
    }

    /// What `name` is, without following it; `None` when nothing is there.
    pub(crate) fn kind(&self, name: &OsStr) -> io::Result<Option<EntryKind>> {
        match rustix::fs::statat(&*self.fd, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(stat) => Ok(Some(match FileType::from_raw_mode(stat.st_mode) {
                FileType::RegularFile => EntryKind::File {
                    len: stat.st_size.try_into().unwrap_or(0),
                },
                FileType::Directory => EntryKind::Dir,
                FileType::Symlink => EntryKind::Symlink,
                _ => EntryKind::Other,
            })),
            Err(Errno::NOENT) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Makes this folder's entries durable.
    pub(crate) fn sync(&self) -> io::Result<()> {
        os::sync_fd(&*self.fd)
    }
}

fn join(parts: &[&OsStr]) -> PathBuf {
    parts.iter().collect()
}

/// The new file's permissions; none unless the open may create (`openat2`
/// refuses a mode without `O_CREAT` with `EINVAL`, which sent every read-only
/// open down the slow step-by-step path).
fn file_mode(how: Open) -> Mode {
    match how {
        Open::Read | Open::ReadWrite => Mode::empty(),
        Open::CreateOrOpen | Open::CreateNew | Open::Truncate => Mode::from_raw_mode(0o666),
    }
}

fn open_flags(how: Open) -> OFlags {
    // NONBLOCK: a planted FIFO must not hang the open (ignored for regular
    // files, and anything else is refused just after).
    let base = OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK;
    base | match how {
        Open::Read => OFlags::RDONLY,
        Open::ReadWrite => OFlags::RDWR,
        Open::CreateOrOpen => OFlags::RDWR | OFlags::CREATE,
        Open::CreateNew => OFlags::RDWR | OFlags::CREATE | OFlags::EXCL,
        Open::Truncate => OFlags::RDWR | OFlags::CREATE | OFlags::TRUNC,
    }
}

/// Accepts `fd` only when it is a regular file, and makes it blocking again
/// when it may be written (reads of a regular file never see `O_NONBLOCK`:
/// the two `fcntl` calls per file are saved where they add nothing, the
/// two reads per file of a 10^5-file resync).
fn regular(fd: OwnedFd, how: Open) -> Result<File, FsError> {
    let stat = rustix::fs::fstat(&fd).map_err(io::Error::from)?;
    if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
        return Err(FsError::Io(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        )));
    }
    if how == Open::Read {
        return Ok(File::from(fd));
    }
    let flags = rustix::fs::fcntl_getfl(&fd).map_err(io::Error::from)?;
    rustix::fs::fcntl_setfl(&fd, flags - OFlags::NONBLOCK).map_err(io::Error::from)?;
    Ok(File::from(fd))
}

#[cfg(test)]
mod tests {
    use std::ffi::OsStr;

    use super::{DirHandle, FsError, Open};

    /// The step-by-step path (the only one on macOS; on Linux the fallback
    /// when `openat2` is missing) opens, creates and refuses like the fast
    /// path.
    #[test]
    fn stepwise_open_creates_inside_and_refuses_links() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tmp.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("victim"), b"keep").unwrap();
        let root_path = tmp.path().join("root");
        std::fs::create_dir_all(root_path.join("a/b")).unwrap();
        std::os::unix::fs::symlink(&outside, root_path.join("a/link")).unwrap();
        std::os::unix::fs::symlink(outside.join("victim"), root_path.join("a/b/f")).unwrap();
        let root = DirHandle::open_root(&root_path).unwrap();
        let names = |p: &'static str| p.split('/').map(OsStr::new).collect::<Vec<_>>();

        std::io::Write::write_all(
            &mut root
                .open_stepwise(&names("a/b/new"), Open::CreateNew)
                .unwrap(),
            b"x",
        )
        .unwrap();
        assert_eq!(std::fs::read(root_path.join("a/b/new")).unwrap(), b"x");
        let err = root
            .open_stepwise(&names("a/link/victim"), Open::Truncate)
            .unwrap_err();
        assert!(matches!(err, FsError::Link(1)), "{err:?}");
        let err = root
            .open_stepwise(&names("a/b/f"), Open::CreateOrOpen)
            .unwrap_err();
        assert!(matches!(err, FsError::Link(2)), "{err:?}");
        let err = root.open_stepwise(&names("a/b"), Open::Read).unwrap_err();
        assert!(
            matches!(err, FsError::Io(_)),
            "a folder is not a file: {err:?}"
        );
        assert_eq!(std::fs::read(outside.join("victim")).unwrap(), b"keep");
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 1);
    }
}
