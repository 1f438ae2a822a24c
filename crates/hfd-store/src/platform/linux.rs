//! Linux-only calls: `fallocate`, `openat2`, OFD locks and `sync_file_range`.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use rustix::fs::{FallocateFlags, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

/// Reserves the blocks of `[0, size)` (and extends the file to `size`).
pub(crate) fn allocate(file: &File, size: u64) -> io::Result<()> {
    rustix::fs::fallocate(file, FallocateFlags::empty(), 0, size)?;
    Ok(())
}

/// Bytes available to an unprivileged user on the filesystem of `path`.
pub(crate) fn free_space(path: &Path) -> io::Result<u64> {
    let stat = rustix::fs::statvfs(path)?;
    Ok(stat.f_bavail.saturating_mul(stat.f_frsize))
}

/// Makes a folder's entries durable.
pub(crate) fn sync_fd(fd: impl AsFd) -> io::Result<()> {
    Ok(rustix::fs::fsync(fd)?)
}

/// Whether `err` says the filesystem cannot preallocate.
pub(crate) fn is_unsupported(err: &io::Error) -> bool {
    err.kind() == io::ErrorKind::Unsupported
        || err.raw_os_error() == Some(Errno::OPNOTSUPP.raw_os_error())
        || err.raw_os_error() == Some(Errno::NOSYS.raw_os_error())
}

/// Opens `path` beneath `dir` in one call, the kernel refusing any link
/// and any escape (`RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`). `None` when
/// the kernel has no `openat2` (before 5.6, or filtered by a sandbox); an
/// error otherwise, which the caller redoes step by step to name its cause.
pub(crate) fn open_beneath(
    dir: impl AsFd,
    path: &Path,
    flags: OFlags,
    mode: Mode,
) -> Option<rustix::io::Result<OwnedFd>> {
    let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
    match rustix::fs::openat2(dir, path, flags, mode, resolve) {
        Err(Errno::NOSYS | Errno::PERM) => None,
        result => Some(result),
    }
}

/// Takes an exclusive open-file-description lock (`F_OFD_SETLK`, Linux
/// 3.15+) on the whole of `file`, without waiting. OFD locks are POSIX
/// byte-range locks, so the NFS client sends them to the server (NLM or
/// NFSv4 `LOCK`) and Lustre makes them cluster-wide on `flock`-mounted
/// filesystems; unlike classic `F_SETLK` locks they belong to the open
/// file, so closing another descriptor of the same file does not drop them.
/// `Ok(false)` when another holder has it; `EINVAL` (an older kernel) is
/// answered with `flock`, which Linux's NFS client also maps to a POSIX
/// lock.
#[allow(
    unsafe_code,
    reason = "fcntl(F_OFD_SETLK) has no safe wrapper in rustix"
)]
pub(crate) fn try_lock_shared_fs(file: &File) -> io::Result<bool> {
    use std::os::fd::AsRawFd;
    // SAFETY: `flock` is a plain C struct for which all-zero is valid; the
    // fields set below describe a write lock over the whole file.
    let mut lock: libc::flock = unsafe { std::mem::zeroed() };
    lock.l_type = libc::F_WRLCK as libc::c_short;
    lock.l_whence = libc::SEEK_SET as libc::c_short;
    lock.l_start = 0;
    lock.l_len = 0;
    lock.l_pid = 0; // must be 0 for OFD locks
    // SAFETY: the descriptor is open for the lifetime of `file`, and `lock`
    // is a valid `struct flock` that outlives the call.
    let rc = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_SETLK, &raw const lock) };
    if rc == 0 {
        return Ok(true);
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::EAGAIN | libc::EACCES) => Ok(false),
        Some(libc::EINVAL) => match file.try_lock() {
            Ok(()) => Ok(true),
            Err(std::fs::TryLockError::WouldBlock) => Ok(false),
            Err(std::fs::TryLockError::Error(e)) => Err(e),
        },
        _ => Err(err),
    }
}

/// Starts writeback of `[offset, offset + len)` without waiting for it
/// (`sync_file_range(SYNC_FILE_RANGE_WRITE)`), so the journal's next
/// `fdatasync` finds little left to write instead of a burst of dirty pages.
/// A hint: failures are ignored, the `fdatasync` stays the durability point.
#[allow(
    unsafe_code,
    reason = "sync_file_range has no safe wrapper in rustix or std"
)]
pub(crate) fn start_writeback(file: &File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    let (Ok(offset), Ok(len)) = (
        libc::off64_t::try_from(offset),
        libc::off64_t::try_from(len),
    ) else {
        return;
    };
    // SAFETY: the descriptor is open for the lifetime of `file`; the call
    // takes plain integers and touches no memory of ours.
    let _ = unsafe {
        libc::sync_file_range(file.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE)
    };
}

/// Makes the bytes written to `file` durable (`fdatasync`) while it is
/// still being written: the next sync then waits only for what came since.
pub(crate) fn sync_behind(file: &File) -> io::Result<()> {
    file.sync_data()
}
