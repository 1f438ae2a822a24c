//! Advisory locks on the lock files huggingface_hub uses (docs/hub-protocol.md §9.3,
//! §10), so hfd-rs and a concurrent `hf download` never publish the same
//! target at the same time.
//!
//! The lock is `flock(LOCK_EX)` on Unix (what Python's `filelock` takes),
//! taken without waiting: a busy lock is reported to the caller, which
//! decides whether to wait. The lock file is created with mode `0664` (as
//! huggingface_hub does, so users sharing a cache can wait on it) and left in
//! place on release, as `filelock` does.

use std::fs::{File, OpenOptions};
use std::path::Path;

use crate::error::{Error, Result};

/// A held lock; released when dropped.
#[derive(Debug)]
pub(crate) struct TargetLock {
    // Held for its flock: closing the file releases it.
    _file: File,
}

impl TargetLock {
    /// Takes the lock at `path` (creating the file and its folders), or
    /// `None` when another process holds it. Blocking (a few syscalls).
    pub(crate) fn try_acquire(path: &Path) -> Result<Option<Self>> {
        let io = |action, source| Error::Io {
            action,
            path: path.to_path_buf(),
            source,
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| io("cannot create folder", e))?;
        }
        let mut options = OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o664);
        let file = options
            .open(path)
            .map_err(|e| io("cannot open lock file", e))?;
        match file.try_lock() {
            Ok(()) => Ok(Some(Self { _file: file })),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => {
                // Some network filesystems refuse flock. Correctness must not
                // depend on the lock (docs/hub-protocol.md §9.3), so go on without it.
                tracing::warn!(lock = %path.display(), error = %e, "cannot lock; continuing without the lock");
                Ok(Some(Self { _file: file }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_holder_is_refused_until_release() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/x.lock");
        let first = TargetLock::try_acquire(&path).unwrap().expect("free lock");
        // flock locks belong to the open file description, so a second open
        // in the same process conflicts like another process would.
        assert!(TargetLock::try_acquire(&path).unwrap().is_none());
        drop(first);
        assert!(TargetLock::try_acquire(&path).unwrap().is_some());
        assert!(path.exists(), "the lock file stays in place");
    }

    #[cfg(unix)]
    #[test]
    fn lock_file_is_group_writable() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.lock");
        drop(TargetLock::try_acquire(&path).unwrap());
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        // umask may clear bits, never add them.
        assert_eq!(mode & !0o664, 0, "mode {mode:o}");
    }
}
