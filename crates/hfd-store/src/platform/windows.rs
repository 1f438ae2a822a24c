//! Windows. Two Win32 calls that std does not wrap (free space and a
//! write-through rename) are the only `unsafe` outside the mmap backend.
//!
//! No-follow opens are a check-then-use: every component below the root is
//! checked with `symlink_metadata` (a symbolic link, a junction or any other
//! reparse point is refused), and the file itself is opened with
//! `FILE_FLAG_OPEN_REPARSE_POINT` and checked again through its handle, so a
//! link swapped in at the last component is never followed. A folder on the
//! way swapped for a junction between the check and the open is the race
//! this cannot exclude (Windows has no `openat`); creating junctions needs
//! write access to that folder of the target.
#![allow(unsafe_code)]

use std::ffi::OsStr;
use std::fs::{File, Metadata, OpenOptions};
use std::io;
use std::os::windows::ffi::OsStrExt;
use std::os::windows::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use windows_sys::Win32::Storage::FileSystem::{
    FILE_ATTRIBUTE_REPARSE_POINT, FILE_FLAG_BACKUP_SEMANTICS, FILE_FLAG_OPEN_REPARSE_POINT,
    GetDiskFreeSpaceExW, MOVEFILE_REPLACE_EXISTING, MOVEFILE_WRITE_THROUGH, MoveFileExW,
};

use super::{FsError, Open};
use crate::target_dir::EntryKind;

/// Extends `file` to `size`. NTFS allocates the clusters of a non-sparse
/// file when its end moves (`SetEndOfFile`) and fails with a disk-full
/// error when it cannot, which is what preallocation is for.
pub(crate) fn allocate(file: &File, size: u64) -> io::Result<()> {
    file.set_len(size)
}

/// Whether `err` says the filesystem cannot preallocate.
pub(crate) fn is_unsupported(err: &io::Error) -> bool {
    err.kind() == io::ErrorKind::Unsupported
}

/// Bytes allocated to a file: its length (NTFS files that hfd-rs creates
/// are never sparse, so every byte up to the end is allocated).
pub(crate) fn allocated_bytes(meta: &Metadata) -> u64 {
    meta.len()
}

/// `path` as a NUL-terminated UTF-16 string for a Win32 call, absolute and
/// verbatim (`\\?\C:\…`, `\\?\UNC\server\share\…`), so paths longer than
/// `MAX_PATH` (260 characters) work, as they do in std's own calls.
fn wide(path: &Path) -> io::Result<Vec<u16>> {
    let absolute = std::path::absolute(path)?;
    let text: Vec<u16> = absolute.as_os_str().encode_wide().collect();
    let starts = |prefix: &str| {
        let prefix: Vec<u16> = prefix.encode_utf16().collect();
        text.starts_with(&prefix)
    };
    let mut out: Vec<u16> = Vec::with_capacity(text.len() + 8);
    if starts(r"\\?\") || starts(r"\\.\") {
        out.extend(&text);
    } else if let Some(share) = text.strip_prefix(&[u16::from(b'\\'); 2][..]) {
        out.extend(r"\\?\UNC\".encode_utf16());
        out.extend(share);
    } else {
        out.extend(r"\\?\".encode_utf16());
        out.extend(&text);
    }
    out.push(0);
    Ok(out)
}

/// Bytes available to the calling user on the volume of `path` (a folder).
pub(crate) fn free_space(path: &Path) -> io::Result<u64> {
    let dir = if path.is_dir() {
        path.to_path_buf()
    } else {
        path.parent().unwrap_or(Path::new(".")).to_path_buf()
    };
    let name = wide(&dir)?;
    let mut available = 0u64;
    // SAFETY: `name` is a NUL-terminated UTF-16 string that outlives the
    // call; the out pointer is a valid u64, the two optional ones are null.
    let ok = unsafe {
        GetDiskFreeSpaceExW(
            name.as_ptr(),
            &raw mut available,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        )
    };
    if ok == 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(available)
}

/// The serial number of the volume holding `path`.
pub(crate) fn device_id(path: &Path) -> io::Result<u64> {
    // BACKUP_SEMANTICS lets the same call open a folder.
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(FILE_FLAG_BACKUP_SEMANTICS)
        .open(path)?;
    Ok(winapi_util::file::information(&file)?.volume_serial_number())
}

/// Renames `from` to `to`, replacing it, and returns once the rename is on
/// disk (`MOVEFILE_WRITE_THROUGH`).
pub(crate) fn rename_durable(from: &Path, to: &Path) -> io::Result<()> {
    let (from, to) = (wide(from)?, wide(to)?);
    // SAFETY: both are NUL-terminated UTF-16 strings that outlive the call.
    let ok = unsafe {
        MoveFileExW(
            from.as_ptr(),
            to.as_ptr(),
            MOVEFILE_REPLACE_EXISTING | MOVEFILE_WRITE_THROUGH,
        )
    };
    if ok == 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Windows has no per-process limit of open handles to raise.
pub(crate) fn raise_open_file_limit() {}

/// On the handle that holds a claim ([`try_lock_shared_fs`]: `LockFileEx`
/// over the whole file), huggingface_hub's lock is already held: the claim's
/// lock is the same one, and taking it again would fail.
#[expect(
    clippy::unnecessary_wraps,
    reason = "the seam's signature: taking the lock can fail on Unix"
)]
pub(crate) fn try_lock_claimed(_file: &File) -> io::Result<bool> {
    Ok(true)
}

/// Early writeback is a Linux hint; NTFS's lazy writer flushes on its own
/// and `FlushFileBuffers` has no asynchronous form.
pub(crate) fn start_writeback(_file: &File, _offset: u64, _len: u64) {}

/// Syncing behind the writers is measured on Linux only; here a file's
/// `FlushFileBuffers` also flushes the drive's whole write cache, too dear
/// to repeat behind the writers.
#[expect(
    clippy::unnecessary_wraps,
    reason = "the signature of the Linux call, which can fail"
)]
pub(crate) fn sync_behind(_file: &File) -> io::Result<()> {
    Ok(())
}

pub(crate) fn read_exact_at(file: &File, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
    while !buf.is_empty() {
        match file.seek_read(buf, offset) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

pub(crate) fn write_all_at(file: &File, mut data: &[u8], mut offset: u64) -> io::Result<()> {
    while !data.is_empty() {
        match file.seek_write(data, offset) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                data = &data[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Writes `parts`, which follow each other from `offset`, one after the
/// other (Windows has no positioned vectored write for ordinary handles).
pub(crate) fn write_all_parts_at(file: &File, parts: &[&[u8]], mut offset: u64) -> io::Result<()> {
    for part in parts {
        write_all_at(file, part, offset)?;
        offset += part.len() as u64;
    }
    Ok(())
}

fn is_link(meta: &Metadata) -> bool {
    meta.file_type().is_symlink() || meta.file_attributes() & FILE_ATTRIBUTE_REPARSE_POINT != 0
}

/// A checked folder, kept as its verbatim (`\\?\`) path so that paths
/// longer than 260 characters work.
#[derive(Clone, Debug)]
pub(crate) struct DirHandle {
    path: PathBuf,
}

impl DirHandle {
    /// A handle is a checked path: a link planted at one of its folders
    /// after the check would be followed, so handles are not kept for later
    /// operations (every operation checks its path again).
    pub(crate) const PINS_FOLDER: bool = false;

    /// Never asked: handles are not kept (see [`Self::PINS_FOLDER`]).
    #[allow(
        clippy::unused_self,
        reason = "the same seam as on Unix, where it asks the folder"
    )]
    pub(crate) fn is_removed(&self) -> bool {
        false
    }

    /// Opens the root folder (links in `path` itself are followed: the
    /// caller chose it).
    pub(crate) fn open_root(path: &Path) -> io::Result<Self> {
        let path = std::fs::canonicalize(path)?;
        if !std::fs::metadata(&path)?.is_dir() {
            return Err(io::ErrorKind::NotADirectory.into());
        }
        Ok(Self { path })
    }

    /// Checks (and with `create` makes) the folders `dirs` below this one.
    pub(crate) fn walk(&self, dirs: &[&OsStr], create: bool) -> Result<Self, FsError> {
        let mut path = self.path.clone();
        for (i, name) in dirs.iter().enumerate() {
            path.push(name);
            let meta = match std::fs::symlink_metadata(&path) {
                Err(e) if e.kind() == io::ErrorKind::NotFound && create => {
                    match std::fs::create_dir(&path) {
                        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e.into()),
                        _ => std::fs::symlink_metadata(&path)?,
                    }
                }
                other => other?,
            };
            if is_link(&meta) {
                return Err(FsError::Link(i));
            }
            if !meta.is_dir() {
                return Err(FsError::Io(io::ErrorKind::NotADirectory.into()));
            }
        }
        Ok(Self { path })
    }

    /// Opens the regular file `path` below this folder, following no link.
    pub(crate) fn open_path(&self, path: &[&OsStr], how: Open) -> Result<File, FsError> {
        let Some((leaf, dirs)) = path.split_last() else {
            return Err(FsError::Io(io::ErrorKind::InvalidInput.into()));
        };
        let dir = self.walk(dirs, false)?;
        let full = dir.path.join(leaf);
        if matches!(dir.kind(leaf)?, Some(EntryKind::Symlink)) {
            return Err(FsError::Link(dirs.len()));
        }
        let mut options = OpenOptions::new();
        options.custom_flags(FILE_FLAG_OPEN_REPARSE_POINT);
        match how {
            Open::Read => options.read(true),
            Open::ReadWrite => options.read(true).write(true),
            Open::CreateOrOpen => options.read(true).write(true).create(true),
            Open::CreateNew => options.read(true).write(true).create_new(true),
            Open::Truncate => options.read(true).write(true).create(true).truncate(true),
        };
        let file = options.open(&full)?;
        let meta = file.metadata()?;
        if is_link(&meta) {
            return Err(FsError::Link(dirs.len()));
        }
        if !meta.is_file() {
            return Err(FsError::Io(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a regular file",
            )));
        }
        Ok(file)
    }

    /// Renames `from` here to `to` in `to_dir`, replacing it (a link at
    /// `to` is replaced, not followed), writing through.
    pub(crate) fn rename(&self, from: &OsStr, to_dir: &Self, to: &OsStr) -> io::Result<()> {
        rename_durable(&self.path.join(from), &to_dir.path.join(to))
    }

    /// Removes the file (or the link itself) `name`.
    pub(crate) fn remove_file(&self, name: &OsStr) -> io::Result<()> {
        let path = self.path.join(name);
        match std::fs::symlink_metadata(&path) {
            // A link to a folder is removed as a folder.
            Ok(meta) if is_link(&meta) && meta.is_dir() => std::fs::remove_dir(path),
            _ => std::fs::remove_file(path),
        }
    }

    /// Removes the empty folder `name`.
    pub(crate) fn remove_dir(&self, name: &OsStr) -> io::Result<()> {
        std::fs::remove_dir(self.path.join(name))
    }

    /// Creates the file link `name` pointing at `target`.
    pub(crate) fn symlink(&self, target: &Path, name: &OsStr) -> io::Result<()> {
        std::os::windows::fs::symlink_file(target, self.path.join(name))
    }

    /// The target of the link `name` (read, never followed).
    pub(crate) fn read_link(&self, name: &OsStr) -> io::Result<PathBuf> {
        std::fs::read_link(self.path.join(name))
    }

    /// What `name` is, without following it; `None` when nothing is there.
    pub(crate) fn kind(&self, name: &OsStr) -> io::Result<Option<EntryKind>> {
        match std::fs::symlink_metadata(self.path.join(name)) {
            Ok(meta) if is_link(&meta) => Ok(Some(EntryKind::Symlink)),
            Ok(meta) if meta.is_dir() => Ok(Some(EntryKind::Dir)),
            Ok(meta) if meta.is_file() => Ok(Some(EntryKind::File { len: meta.len() })),
            Ok(_) => Ok(Some(EntryKind::Other)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Nothing to do: Windows cannot flush a folder, NTFS keeps its
    /// metadata in a journal, and renames write through (`rename_durable`).
    #[expect(
        clippy::unused_self,
        clippy::unnecessary_wraps,
        reason = "same seam as on Unix"
    )]
    pub(crate) fn sync(&self) -> io::Result<()> {
        Ok(())
    }
}

/// Takes an exclusive `LockFileEx` lock over the whole file without
/// waiting; SMB servers enforce it for every client. `Ok(false)` when
/// another holder has it.
pub(crate) fn try_lock_shared_fs(file: &File) -> io::Result<bool> {
    match file.try_lock() {
        Ok(()) => Ok(true),
        Err(std::fs::TryLockError::WouldBlock) => Ok(false),
        Err(std::fs::TryLockError::Error(e)) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A folder whose path is longer than `MAX_PATH` (260 characters).
    fn deep(root: &Path) -> PathBuf {
        let mut dir = root.to_path_buf();
        while dir.as_os_str().len() < 320 {
            dir.push("a-folder-name-of-forty-characters-each-x");
        }
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn win32_calls_take_paths_longer_than_max_path() {
        let root = tempfile::tempdir().unwrap();
        let dir = deep(root.path());
        let (from, to) = (dir.join("partial"), dir.join("final.bin"));
        std::fs::write(&from, b"bytes").unwrap();
        rename_durable(&from, &to).unwrap();
        assert_eq!(std::fs::read(&to).unwrap(), b"bytes");
        assert!(!from.exists());
        assert!(free_space(&dir).unwrap() > 0);
        assert!(device_id(&dir).is_ok());
    }

    #[test]
    fn wide_paths_are_verbatim() {
        let text = |p: &str| String::from_utf16(&wide(Path::new(p)).unwrap()).unwrap();
        assert_eq!(text(r"C:\x\..\y/z"), "\\\\?\\C:\\y\\z\0");
        assert_eq!(text(r"\\srv\share\f"), "\\\\?\\UNC\\srv\\share\\f\0");
        assert_eq!(text(r"\\?\C:\f"), "\\\\?\\C:\\f\0");
    }

    /// huggingface_hub's lock on Windows is `msvcrt.locking(fd, LK_NBLCK,
    /// 1)`: `LockFile` on the first byte. Ours (`LockFileEx` on the whole
    /// file) and theirs must exclude each other, both ways.
    #[test]
    fn our_lock_and_huggingface_hubs_exclude_each_other() {
        use std::os::windows::io::AsRawHandle;
        use windows_sys::Win32::Storage::FileSystem::{LockFile, UnlockFile};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.lock");
        let open = || {
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .unwrap()
        };
        let python_lock = |file: &File| {
            // SAFETY: a valid open handle; one byte at offset 0.
            unsafe { LockFile(file.as_raw_handle(), 0, 0, 1, 0) != 0 }
        };
        let python_unlock = |file: &File| {
            // SAFETY: as above; the byte was locked through this handle.
            unsafe { UnlockFile(file.as_raw_handle(), 0, 0, 1, 0) != 0 }
        };

        let theirs = open();
        assert!(python_lock(&theirs));
        let ours = open();
        assert!(matches!(
            super::super::try_lock(&ours),
            Err(std::fs::TryLockError::WouldBlock)
        ));
        assert!(python_unlock(&theirs));
        super::super::try_lock(&ours).unwrap();
        assert!(
            !python_lock(&theirs),
            "their lock must fail while we hold ours"
        );
        drop(ours);
        assert!(python_lock(&theirs));
    }
}
