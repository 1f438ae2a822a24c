//! [`ClaimLock`]: the lock that says "this process downloads this file",
//! held from before the partial is opened until the file is published, so
//! several processes (on one machine or on many, over NFS or Lustre) can
//! share a target and fetch every file once.
//!
//! The primitive is the `platform` seam `try_lock_shared_fs`: on Linux an
//! open-file-description lock (`F_OFD_SETLK`). OFD locks are POSIX
//! byte-range locks, which the NFS client (v3 through NLM, v4 natively)
//! sends to the server and Lustre makes cluster-wide when mounted with
//! `-o flock` (with `localflock` they only cover one node; without either
//! option the call fails and the claim is taken without a lock, as the
//! log says). BSD `flock` is not used on Linux because some old NFS
//! clients and other systems keep it local to one machine; OFD locks also
//! belong to the open file rather than the process, so closing any other
//! descriptor of the file does not silently drop them as classic `F_SETLK`
//! locks would. A holder that dies loses its lock (the kernel releases it;
//! on NFS when its lease expires), so a claim never outlives its process.
//!
//! The lock file stays in place on release (removing it would race a
//! process that just opened it). Callers may keep the claim on the lock
//! file huggingface_hub uses for the same file, and take that lock too
//! through the claim ([`ClaimLock::take_hub_lock`]): one file per
//! download instead of two.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use crate::platform;

/// A held claim; released when dropped.
#[derive(Debug)]
pub struct ClaimLock {
    file: File,
    path: PathBuf,
}

impl ClaimLock {
    /// Takes the claim at `path` (the file is created with mode `0664`, its
    /// folder must exist; a symbolic link there is refused), or `None` when
    /// another process holds it. Blocking (a few syscalls).
    ///
    /// # Errors
    ///
    /// Opening the file fails, or the filesystem refuses locks (the caller
    /// decides whether to go on without one).
    pub fn try_acquire(path: &Path) -> io::Result<Option<Self>> {
        let mut options = OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options
                .mode(0o664)
                .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits().cast_signed());
        }
        let file = options.open(path)?;
        if platform::try_lock_shared_fs(&file)? {
            Ok(Some(Self {
                file,
                path: path.to_path_buf(),
            }))
        } else {
            Ok(None)
        }
    }

    /// Takes the claim at `rel` inside `dir`: its folders are created and
    /// the file opened through the no-follow handle, so a link planted on
    /// the way (`.locks -> /elsewhere`) is refused, never written through.
    /// `None` when another process holds it. Blocking.
    ///
    /// # Errors
    ///
    /// A folder or the file cannot be reached safely or opened, or the
    /// filesystem refuses locks.
    pub fn try_acquire_in(dir: &crate::TargetDir, rel: &Path) -> io::Result<Option<Self>> {
        let to_io = |e: crate::Error| io::Error::other(e.to_string());
        if let Some(parent) = rel.parent().filter(|p| !p.as_os_str().is_empty()) {
            dir.create_dir_all(parent).map_err(to_io)?;
        }
        let file = dir
            .open_file(rel, crate::OpenMode::CreateOrOpen)
            .map_err(to_io)?;
        if platform::try_lock_shared_fs(&file)? {
            Ok(Some(Self {
                file,
                path: dir.display_path(rel),
            }))
        } else {
            Ok(None)
        }
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Also takes, on this claim's own descriptor, the exclusive lock
    /// huggingface_hub takes on the same file (`flock`; on Windows the
    /// claim's `LockFileEx` already is it), so a claim kept on the lock file
    /// huggingface_hub uses can publish under that lock without opening the
    /// file again (another descriptor's lock would conflict with the claim
    /// on NFS, macOS and Windows). Held until the claim is dropped.
    /// `Ok(false)` when another process holds it. Blocking (one call).
    ///
    /// # Errors
    ///
    /// The filesystem refuses the lock.
    pub fn take_hub_lock(&self) -> io::Result<bool> {
        platform::try_lock_claimed(&self.file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_holder_at_a_time_even_within_a_process() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.claim");
        let first = ClaimLock::try_acquire(&path).unwrap().expect("free");
        // OFD locks belong to the open file: a second open conflicts even
        // in the same process, as another process would.
        assert!(ClaimLock::try_acquire(&path).unwrap().is_none());
        drop(first);
        let again = ClaimLock::try_acquire(&path).unwrap();
        assert!(again.is_some(), "released on drop");
        assert!(path.exists(), "the lock file stays");
    }

    /// The claim and huggingface_hub's lock ride on one descriptor: taking
    /// the second never conflicts with the first, another opener is kept
    /// out of both, and both go with the claim.
    #[test]
    fn the_hub_lock_rides_on_the_claim() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.lock");
        let claim = ClaimLock::try_acquire(&path).unwrap().expect("free");
        assert!(claim.take_hub_lock().unwrap(), "no conflict with itself");
        let other = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        assert!(
            matches!(other.try_lock(), Err(std::fs::TryLockError::WouldBlock)),
            "huggingface_hub's lock is held"
        );
        drop(claim);
        assert!(other.try_lock().is_ok(), "released with the claim");
    }

    /// huggingface_hub holding its lock: the claim is still taken (another
    /// lock kind on Linux), but publishing under the hub's lock waits.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_hub_lock_held_elsewhere_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.lock");
        std::fs::write(&path, b"").unwrap();
        let hub = std::fs::File::open(&path).unwrap();
        hub.try_lock().unwrap();
        let claim = ClaimLock::try_acquire(&path).unwrap().expect("free");
        assert!(!claim.take_hub_lock().unwrap(), "held by the other opener");
        drop(hub);
        assert!(claim.take_hub_lock().unwrap());
    }

    #[cfg(unix)]
    #[test]
    fn refuses_a_planted_link() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"keep").unwrap();
        std::os::unix::fs::symlink(&victim, dir.path().join("f.claim")).unwrap();
        assert!(ClaimLock::try_acquire(&dir.path().join("f.claim")).is_err());
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
    }

    /// A child process (the test binary itself, re-run) sees the claim this
    /// process holds, and gets it once this process lets go.
    #[test]
    #[expect(
        clippy::disallowed_methods,
        reason = "the child half of this two-process test learns its role from the environment"
    )]
    fn another_process_sees_the_claim() {
        if let Some(path) = std::env::var_os("HFD_STORE_CLAIM_CHILD") {
            let got = ClaimLock::try_acquire(Path::new(&path)).unwrap().is_some();
            std::process::exit(if got { 0 } else { 3 });
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.claim");
        let child = |path: &Path| {
            std::process::Command::new(std::env::current_exe().unwrap())
                .args([
                    "--exact",
                    "claim_lock::tests::another_process_sees_the_claim",
                ])
                .env("HFD_STORE_CLAIM_CHILD", path)
                .status()
                .unwrap()
                .code()
        };
        let held = ClaimLock::try_acquire(&path).unwrap().expect("free");
        assert_eq!(child(&path), Some(3), "held by this process");
        drop(held);
        assert_eq!(child(&path), Some(0), "free again");
    }
}
