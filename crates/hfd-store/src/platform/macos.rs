//! macOS (and other non-Linux Unix) versions of the Linux-only calls.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use rustix::fs::{FallocateFlags, Mode, OFlags};
use rustix::io::Errno;

/// Reserves the blocks of `[0, size)` and sets the length to `size`:
/// rustix does `fcntl(F_PREALLOCATE, F_ALLOCATEALL)` then `ftruncate` here.
///
/// `F_PREALLOCATE` (in rustix's `F_PEOFPOSMODE`) reserves `size` bytes
/// *past the physical end of the file*, not up to `size`: asked again for
/// a resumed partial that already holds its blocks, it would reserve as
/// much again and fail on a disk with less free. A file that has its
/// blocks is only given its length.
pub(crate) fn allocate(file: &File, size: u64) -> io::Result<()> {
    if file.metadata()?.blocks().saturating_mul(512) >= size {
        return file.set_len(size);
    }
    rustix::fs::fallocate(file, FallocateFlags::empty(), 0, size)?;
    Ok(())
}

/// Bytes available to an unprivileged user on the filesystem of `path`.
/// `statfs`, not `statvfs`: Darwin's `statvfs` counts blocks in 32 bits
/// (`fsblkcnt_t` is `unsigned int`), `statfs` in 64.
pub(crate) fn free_space(path: &Path) -> io::Result<u64> {
    let stat = rustix::fs::statfs(path)?;
    Ok(stat.f_bavail.saturating_mul(u64::from(stat.f_bsize)))
}

/// Makes a folder's entries durable: `F_FULLFSYNC`, because `fsync` on
/// macOS leaves them in the drive's cache (std's `sync_all` and
/// `sync_data` already use `F_FULLFSYNC`). Filesystems without it
/// (network shares) get `fsync`.
pub(crate) fn sync_fd(fd: impl AsFd) -> io::Result<()> {
    match rustix::fs::fcntl_fullfsync(&fd) {
        Ok(()) => Ok(()),
        Err(_) => Ok(rustix::fs::fsync(fd)?),
    }
}

/// Whether `err` says the filesystem cannot preallocate (macOS has both
/// `ENOTSUP` and `EOPNOTSUPP`, with different numbers).
pub(crate) fn is_unsupported(err: &io::Error) -> bool {
    err.kind() == io::ErrorKind::Unsupported
        || err.raw_os_error() == Some(Errno::OPNOTSUPP.raw_os_error())
        || err.raw_os_error() == Some(Errno::NOTSUP.raw_os_error())
        || err.raw_os_error() == Some(Errno::NOSYS.raw_os_error())
        || err.raw_os_error() == Some(Errno::INVAL.raw_os_error())
}

/// No `openat2` here: the caller always walks component by component with
/// `openat(O_NOFOLLOW)`.
pub(crate) fn open_beneath(
    _dir: impl AsFd,
    _path: &Path,
    _flags: OFlags,
    _mode: Mode,
) -> Option<rustix::io::Result<OwnedFd>> {
    None
}

/// Takes an exclusive `flock` on `file` without waiting (macOS has no OFD
/// locks; its NFS client forwards `flock` to the server as an advisory
/// lock). `Ok(false)` when another holder has it.
pub(crate) fn try_lock_shared_fs(file: &File) -> io::Result<bool> {
    match file.try_lock() {
        Ok(()) => Ok(true),
        Err(std::fs::TryLockError::WouldBlock) => Ok(false),
        Err(std::fs::TryLockError::Error(e)) => Err(e),
    }
}

/// Early writeback is a Linux hint; macOS writes back on its own schedule
/// and `F_FULLFSYNC`-free `fsync` stays cheap there.
pub(crate) fn start_writeback(_file: &File, _offset: u64, _len: u64) {}

/// Syncing behind the writers is measured on Linux only; here a file's
/// `fdatasync` is `F_FULLFSYNC` there (a whole-drive flush), too
/// dear to repeat behind the writers.
#[expect(
    clippy::unnecessary_wraps,
    reason = "the signature of the Linux call, which can fail"
)]
pub(crate) fn sync_behind(_file: &File) -> io::Result<()> {
    Ok(())
}
