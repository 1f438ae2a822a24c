//! Linux-only calls: `fallocate` and `openat2`.

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
