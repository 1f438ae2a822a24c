//! Everything that differs between operating systems, behind small named
//! seams. The rest of the crate calls these functions and never tests
//! `cfg(...)` itself.
//!
//! | seam | Linux | macOS | Windows |
//! |---|---|---|---|
//! | [`allocate`] | `fallocate` | `F_PREALLOCATE` + `ftruncate`, skipped for a file that has its blocks | `set_len` (NTFS allocates non-sparse files) |
//! | [`allocated_bytes`] | `st_blocks * 512` | same | the length (files hfd-rs makes are never sparse) |
//! | [`free_space`] | `statvfs` | `statfs` (64-bit block counts) | `GetDiskFreeSpaceExW` |
//! | [`device_id`] | `st_dev` | same | volume serial number |
//! | [`try_lock`] | `flock` | same | `LockFileEx` |
//! | [`try_lock_shared_fs`] (claims shared across machines) | OFD lock `F_OFD_SETLK` (NFS, Lustre), `flock` on old kernels | `flock` | `LockFileEx` |
//! | [`try_lock_claimed`] (huggingface_hub's lock on a claimed lock file) | `flock` on the claim's own descriptor | same | nothing (the claim's lock is it) |
//! | `sync_dir` | `fsync` on the folder | `F_FULLFSYNC` on the folder (`fsync` where unsupported) | nothing (NTFS journals metadata) |
//! | [`rename_durable`] | `rename` + `fsync` of the folders | same | `MoveFileExW` with `WRITE_THROUGH` |
//! | [`DirHandle`] (no-follow opens) | `openat2(RESOLVE_BENEATH \| RESOLVE_NO_SYMLINKS)`, else `openat(O_NOFOLLOW)` per component | `openat(O_NOFOLLOW)` per component | reparse-point check of each component, then open with `FILE_FLAG_OPEN_REPARSE_POINT` |
//! | [`read_exact_at`], [`write_all_at`] | `pread`/`pwrite` | same | `seek_read`/`seek_write` loops |
//! | [`write_all_parts_at`] (a write batch) | `pwritev` | same | a `seek_write` loop per part |
//! | [`start_writeback`] (a hint before the journal's `fdatasync`) | `sync_file_range(SYNC_FILE_RANGE_WRITE)` | nothing | nothing |
//! | [`sync_behind`] (durable between journal commits) | `fdatasync` | nothing | nothing |
//! | [`raise_open_file_limit`] | soft `RLIMIT_NOFILE` up to the hard limit, at most 8,192 | same (starts at 256) | nothing (no such limit) |

use std::fs::{File, TryLockError};
use std::io;

#[cfg(target_os = "linux")]
#[path = "linux.rs"]
mod os;
#[cfg(all(unix, not(target_os = "linux")))]
#[path = "macos.rs"]
mod os;
#[cfg(unix)]
mod unix;
#[cfg(unix)]
use unix as imp;
#[cfg(windows)]
mod windows;
#[cfg(windows)]
use windows as imp;

pub(crate) use crate::target_dir::OpenMode as Open;
pub(crate) use imp::{
    DirHandle, allocate, allocated_bytes, device_id, free_space, is_unsupported,
    raise_open_file_limit, read_exact_at, rename_durable, start_writeback, sync_behind,
    try_lock_claimed, try_lock_shared_fs, write_all_at, write_all_parts_at,
};

/// Why a no-follow operation failed.
#[derive(Debug)]
pub(crate) enum FsError {
    /// A symbolic link (or on Windows any reparse point, e.g. a junction)
    /// sits at the component with this index of the path; it was not
    /// followed.
    Link(usize),
    /// Any other failure.
    Io(io::Error),
}

impl From<io::Error> for FsError {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}

/// Takes the exclusive, non-blocking lock that marks a file as ours.
///
/// std's `File::try_lock` is `flock(LOCK_EX | LOCK_NB)` on Unix and
/// `LockFileEx(LOCKFILE_EXCLUSIVE_LOCK | LOCKFILE_FAIL_IMMEDIATELY)` over the
/// whole file on Windows. Both are what huggingface_hub's lock (the Python
/// `filelock` package) takes: `fcntl.flock` on Unix; on Windows
/// `msvcrt.locking(LK_NBLCK)` on the first byte, i.e. `LockFile` on a range
/// that our whole-file range overlaps, so either side sees the other's lock.
/// Windows locks are mandatory for other handles, so the store reads and
/// writes a locked file only through the handle that holds the lock.
pub(crate) fn try_lock(file: &File) -> Result<(), TryLockError> {
    file.try_lock()
}
