//! The store's error type.

use std::io;
use std::path::PathBuf;

use hfd_types::{ByteRange, ByteSize, ContentDigest};

/// `Result` with the store's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while putting bytes on disk.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The partial file could not be created or opened.
    #[error("cannot create {}", path.display())]
    Create {
        /// The partial file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Another process (or another `PartialFile`) holds the lock on the file.
    #[error("{} is in use by another download", path.display())]
    Locked {
        /// The partial file.
        path: PathBuf,
    },
    /// Not enough free space for the file (or for the whole plan).
    #[error(
        "not enough disk space for {}: {needed} needed, {available} available",
        path.display()
    )]
    DiskFull {
        /// The file (or, for a plan, the first file on that filesystem).
        path: PathBuf,
        /// Bytes the file or plan needs.
        needed: ByteSize,
        /// Bytes free for unprivileged users on that filesystem.
        available: ByteSize,
    },
    /// Free space could not be queried.
    #[error("cannot query free space at {}", path.display())]
    FreeSpace {
        /// The path whose filesystem was queried.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Reserving blocks for the file failed for a reason other than space.
    #[error("cannot preallocate {size} for {}", path.display())]
    Preallocate {
        /// The partial file.
        path: PathBuf,
        /// The size asked for.
        size: ByteSize,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Mapping a window of the file failed.
    #[error("cannot map {range} of {}", path.display())]
    Map {
        /// The partial file.
        path: PathBuf,
        /// The window.
        range: ByteRange,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A positioned write failed.
    #[error("cannot write {range} to {}", path.display())]
    Write {
        /// The partial file.
        path: PathBuf,
        /// The bytes being written.
        range: ByteRange,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Reading back bytes for the hash failed.
    #[error("cannot read {range} of {}", path.display())]
    Read {
        /// The partial file.
        path: PathBuf,
        /// The bytes being read.
        range: ByteRange,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A write reached past the end of the file.
    #[error("write {range} is outside {} (size {size})", path.display())]
    OutOfBounds {
        /// The partial file.
        path: PathBuf,
        /// The rejected write.
        range: ByteRange,
        /// The file size.
        size: u64,
    },
    /// Two writers tried to write the same bytes at once (a caller bug; the
    /// write was refused before touching memory).
    #[error("write {range} to {} overlaps a write in progress", path.display())]
    OverlappingWrite {
        /// The partial file.
        path: PathBuf,
        /// The rejected write.
        range: ByteRange,
    },
    /// `fdatasync`/`fsync` failed.
    #[error("cannot flush {}", path.display())]
    Flush {
        /// The file being flushed.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Finalize was asked for a file that still has holes.
    #[error("{} is incomplete: {missing} bytes missing", path.display())]
    Incomplete {
        /// The partial file.
        path: PathBuf,
        /// Bytes not written yet.
        missing: u64,
    },
    /// The content hash differs from the expected one. The partial is kept.
    #[error("{} failed verification: expected {expected:?}, got {actual:?}", path.display())]
    DigestMismatch {
        /// The partial file (kept on disk).
        path: PathBuf,
        /// What the hub announced.
        expected: ContentDigest,
        /// What the bytes hash to.
        actual: ContentDigest,
    },
    /// Reading, writing or syncing the resume journal failed.
    #[error("{action} journal {}", path.display())]
    Journal {
        /// The journal file.
        path: PathBuf,
        /// What was being done ("cannot append to", ...).
        action: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The journal header given for a file disagrees with the file size.
    #[error("journal identity for {} says {identity_size} bytes, the file has {size}", path.display())]
    IdentityMismatch {
        /// The partial file.
        path: PathBuf,
        /// Size in the identity.
        identity_size: u64,
        /// Size asked for.
        size: u64,
    },
    /// The atomic rename failed.
    #[error("cannot rename {} to {}", from.display(), to.display())]
    Rename {
        /// The partial file.
        from: PathBuf,
        /// The final name.
        to: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A symbolic link (or on Windows a junction) sits where the store
    /// expected its own file or folder inside a target; it was not followed.
    #[error("{} is a symbolic link; refusing to follow it inside the target", path.display())]
    Symlink {
        /// The link.
        path: PathBuf,
    },
    /// A path given relative to a target folder could leave it (`..`, an
    /// absolute path, a drive) or is empty.
    #[error("{} is not a path below the target folder", path.display())]
    NotBeneath {
        /// The path, joined to the target folder.
        path: PathBuf,
    },
    /// An operation on a file or folder inside a target folder failed.
    #[error("{action} {}", path.display())]
    Dir {
        /// The file or folder.
        path: PathBuf,
        /// What was being done ("cannot open", ...).
        action: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

impl Error {
    /// The disk (or the plan's filesystem) lacks space.
    pub fn is_disk_full(&self) -> bool {
        match self {
            Self::DiskFull { .. } => true,
            Self::Write { source, .. }
            | Self::Flush { source, .. }
            | Self::Journal { source, .. }
            | Self::Create { source, .. }
            | Self::Dir { source, .. } => source.kind() == io::ErrorKind::StorageFull,
            _ => false,
        }
    }

    /// The bytes do not match the expected digest.
    pub fn is_integrity(&self) -> bool {
        matches!(self, Self::DigestMismatch { .. })
    }

    /// Whether trying again could help. Disk errors are never retried by the
    /// store; only a refused overlapping write may succeed later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::OverlappingWrite { .. })
    }
}
