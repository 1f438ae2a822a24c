//! Advisory locks on the lock files huggingface_hub uses (docs/hub-protocol.md §9.3,
//! §10), so hfd-rs and a concurrent `hf download` never publish the same
//! target at the same time.
//!
//! The lock is `flock(LOCK_EX)` on Unix (what Python's `filelock` takes),
//! taken without waiting: a busy lock is reported to the caller, which
//! decides whether to wait. The lock file is created with mode `0664` (as
//! huggingface_hub does, so users sharing a cache can wait on it) and left in
//! place on release, as `filelock` does.

use std::fs::File;
use std::path::Path;

use hfd_store::{OpenMode, TargetDir};

use super::contract::HubLock;
use crate::error::Result;

/// A held lock; released when dropped.
#[derive(Debug)]
pub(crate) struct TargetLock {
    // Held for its flock: closing the file releases it.
    _file: File,
}

/// huggingface_hub's lock for the length of a publication: taken here, or
/// held by the caller already ([`HubLock::Held`]).
#[derive(Debug)]
pub(crate) struct PublishGuard {
    _taken: Option<TargetLock>,
}

impl PublishGuard {
    /// Takes the lock at `rel` unless the caller holds it; `None` when
    /// another process holds it. Blocking.
    pub(crate) fn acquire(target: &TargetDir, rel: &Path, lock: HubLock) -> Result<Option<Self>> {
        match lock {
            HubLock::Held => Ok(Some(Self { _taken: None })),
            HubLock::Take => Ok(TargetLock::try_acquire(target, rel)?.map(|taken| Self {
                _taken: Some(taken),
            })),
        }
    }
}

impl TargetLock {
    /// Takes the lock at `rel` inside `target` (creating the file and its
    /// folders, following no link: a link planted at the lock's name is
    /// removed and replaced), or `None` when another process holds it.
    /// Blocking (a few syscalls).
    pub(crate) fn try_acquire(target: &TargetDir, rel: &Path) -> Result<Option<Self>> {
        if let Some(parent) = rel.parent() {
            target.create_dir_all(parent)?;
        }
        let file = target.open_own_file(rel, OpenMode::CreateOrOpen)?;
        group_writable(&file);
        match file.try_lock() {
            Ok(()) => Ok(Some(Self { _file: file })),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => {
                // Some network filesystems refuse flock. Correctness must not
                // depend on the lock (docs/hub-protocol.md §9.3), so go on without it.
                let path = target.display_path(rel);
                tracing::warn!(lock = %path.display(), error = %e, "cannot lock; continuing without the lock");
                Ok(Some(Self { _file: file }))
            }
        }
    }
}

/// Gives the lock file huggingface_hub's mode `0664` at most (it is created
/// `0666` minus the umask): users sharing a cache can wait on it, others
/// cannot write it. Best effort: a lock file of another user stays as is.
#[cfg(unix)]
fn group_writable(file: &File) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = file.metadata() {
        let mode = meta.permissions().mode() & 0o7777;
        if mode & !0o664 != 0 {
            let _ = file.set_permissions(std::fs::Permissions::from_mode(mode & 0o664));
        }
    }
}

#[cfg(not(unix))]
fn group_writable(_file: &File) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_holder_is_refused_until_release() {
        let dir = tempfile::tempdir().unwrap();
        let target = TargetDir::open(dir.path()).unwrap();
        let rel = Path::new("a/b/x.lock");
        let first = TargetLock::try_acquire(&target, rel)
            .unwrap()
            .expect("free lock");
        // flock locks belong to the open file description, so a second open
        // in the same process conflicts like another process would.
        assert!(TargetLock::try_acquire(&target, rel).unwrap().is_none());
        drop(first);
        assert!(TargetLock::try_acquire(&target, rel).unwrap().is_some());
        assert!(
            dir.path().join(rel).exists(),
            "the lock file stays in place"
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_planted_link_at_the_lock_is_replaced_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let victim = outside.path().join("victim");
        std::fs::write(&victim, b"keep").unwrap();
        std::os::unix::fs::symlink(&victim, dir.path().join("x.lock")).unwrap();
        let target = TargetDir::open(dir.path()).unwrap();
        let lock = TargetLock::try_acquire(&target, Path::new("x.lock")).unwrap();
        assert!(lock.is_some());
        assert!(
            std::fs::symlink_metadata(dir.path().join("x.lock"))
                .unwrap()
                .is_file()
        );
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
        // A linked folder on the way is refused.
        std::os::unix::fs::symlink(outside.path(), dir.path().join("d")).unwrap();
        let err = TargetLock::try_acquire(&target, Path::new("d/y.lock")).unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");
        assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 1);
    }

    #[cfg(unix)]
    #[test]
    fn lock_file_is_group_writable() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.lock");
        let target = TargetDir::open(dir.path()).unwrap();
        drop(TargetLock::try_acquire(&target, Path::new("x.lock")).unwrap());
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        // umask may clear bits, never add them.
        assert_eq!(mode & !0o664, 0, "mode {mode:o}");
    }
}
