//! Several hfd-rs processes on one target: each file is claimed by one of
//! them (a [`ClaimLock`] on the lock file huggingface_hub uses for it),
//! downloaded once, and the others take other files, then wait for it.
//!
//! The engine asks [`Claims`] just before a file starts. A free claim is
//! taken and the target checked again under it: a file another process
//! published since the plan is [`Claim::DoneElsewhere`] (its claim was held
//! until it was published, so a finished file is always visible here). The
//! claim is released once the file is published (see `crate::publisher`),
//! or at the end of the run. A file whose claim is held elsewhere is
//! [`Claim::Busy`]; `crate::download` asks again after its other files and
//! downloads it itself when the holder died (resuming its journal).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use hfd_engine::{Claim, ClaimGate, FileJob};
use hfd_hub::{Commit, RemoteFile};
use hfd_store::ClaimLock;

use crate::layout::{FetchPolicy, FileAction, HubLock, Layout, PublishItem};

/// The claims of one run. A claim's lock path comes from the job asking
/// ([`Claims::path_of`]), its file from the run's publish items: nothing is
/// kept per file but the claims held.
pub(crate) struct Claims {
    layout: Arc<dyn Layout>,
    commit: Commit,
    fetch_policy: FetchPolicy,
    /// Job key → what it publishes (shared with the publisher).
    items: Arc<Mutex<HashMap<u64, PublishItem>>>,
    held: Mutex<HashMap<u64, Option<Arc<ClaimLock>>>>,
    /// Signalled when a claim is released.
    released: Condvar,
    warned: AtomicBool,
}

impl std::fmt::Debug for Claims {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Claims").finish_non_exhaustive()
    }
}

/// Claims held at most before a new file waits for the publisher (see
/// `Claims::wait_for_backlog`): four times the most small files in flight,
/// far below the lowest open-file limit hfd-rs raises (8,192).
const MAX_HELD: usize = 1024;

/// The longest a new file waits for the publisher to catch up.
const BACKLOG_WAIT: Duration = Duration::from_secs(5);

impl Claims {
    pub(crate) fn new(
        layout: Arc<dyn Layout>,
        commit: Commit,
        fetch_policy: FetchPolicy,
        items: Arc<Mutex<HashMap<u64, PublishItem>>>,
    ) -> Self {
        Self {
            layout,
            commit,
            fetch_policy,
            items,
            held: Mutex::default(),
            released: Condvar::new(),
            warned: AtomicBool::new(false),
        }
    }

    /// Where the claim of `job` is kept: the lock file huggingface_hub
    /// holds while it writes the same file ([`Layout::lock_path`]), one
    /// file per download instead of a lock and a claim. On Linux the claim
    /// is an OFD lock, which huggingface_hub's `flock` does not see; it
    /// meets that lock when publishing ([`hub_lock`](Self::hub_lock)).
    pub(crate) fn path_of(&self, job: &FileJob) -> PathBuf {
        self.lock_path(self.file_of(job).as_ref(), job)
    }

    /// The file `job` downloads (the first of its publish item).
    fn file_of(&self, job: &FileJob) -> Option<RemoteFile> {
        self.items
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&job.key.0)
            .and_then(|item| item.files.first().cloned())
    }

    /// The lock file of `file`, or next to `job`'s partial when the layout
    /// names none.
    fn lock_path(&self, file: Option<&RemoteFile>, job: &FileJob) -> PathBuf {
        file.and_then(|file| self.layout.lock_path(file).ok())
            .unwrap_or_else(|| job.partial_path.with_extension("claim"))
    }

    /// For publishing the file `key`: takes huggingface_hub's lock through
    /// the claim this process holds on the same file. [`HubLock::Held`]
    /// once taken, `None` when another process holds it (the file waits),
    /// [`HubLock::Take`] when no claim is held (the layout takes the lock
    /// itself, as for files found up to date). Blocking.
    pub(crate) fn hub_lock(&self, key: u64) -> Option<HubLock> {
        // The map's lock is not held across the `flock` (see `claim`).
        let claim = self
            .held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&key)
            .cloned();
        match claim {
            Some(Some(claim)) => match claim.take_hub_lock() {
                Ok(true) => Some(HubLock::Held),
                Ok(false) => None,
                // The filesystem refuses `flock` (the layout warns and goes
                // on without it).
                Err(_) => Some(HubLock::Take),
            },
            _ => Some(HubLock::Take),
        }
    }

    /// Lets other processes see the file `key` as free again (after it is
    /// published).
    pub(crate) fn release(&self, key: u64) {
        let lock = self
            .held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&key);
        // Closed outside the map's lock.
        drop(lock);
        self.released.notify_all();
    }

    /// Waits, at most [`BACKLOG_WAIT`], while [`MAX_HELD`] claims are
    /// held: files finished and not yet published keep theirs (and an
    /// open file each), and when the publisher falls behind the transfers
    /// (a loaded machine, a slow disk), this holds new files back instead
    /// of opening claims up to the open-file limit. Bounded, so files whose
    /// publication waits for another process never stall the run.
    fn wait_for_backlog(&self) {
        let deadline = Instant::now() + BACKLOG_WAIT;
        let mut held = self
            .held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        while held.len() >= MAX_HELD {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            held = self
                .released
                .wait_timeout(held, left)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
    }

    fn finished_elsewhere(&self, file: &RemoteFile) -> bool {
        // With --force every file is fetched again by whoever claims it.
        self.fetch_policy == FetchPolicy::SkipUpToDate
            && matches!(
                self.layout
                    .classify(&self.commit, file, FetchPolicy::SkipUpToDate),
                Ok(FileAction::UpToDate)
            )
    }
}

impl ClaimGate for Claims {
    fn claim(&self, job: &FileJob) -> Claim {
        let key = job.key;
        let Some(file) = self.file_of(job) else {
            return Claim::Mine;
        };
        let path = &self.lock_path(Some(&file), job);
        let target = &job.target;
        // The map's lock is held for lookups only, never across the claim's
        // file system calls: with a window of 256 small files starting and
        // the publisher releasing, a lock held across them starved the
        // publisher (claims piled up to the open-file limit).
        if self
            .held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains_key(&key.0)
        {
            return Claim::Mine;
        }
        self.wait_for_backlog();
        let inside = target.as_ref().and_then(|t| {
            path.strip_prefix(t.root())
                .ok()
                .map(|rel| (t, rel.to_path_buf()))
        });
        // Through the target's no-follow handle: a link planted at `.locks`
        // or at the claim's name is refused, never written through.
        let acquired = if let Some((target, rel)) = inside {
            ClaimLock::try_acquire_in(target, &rel)
        } else {
            if let Some(parent) = path.parent() {
                // Fails only where the lock below fails too, with the error.
                let _ = std::fs::create_dir_all(parent);
            }
            ClaimLock::try_acquire(path)
        };
        let lock = match acquired {
            Ok(Some(lock)) => Some(lock),
            Ok(None) => return Claim::Busy,
            Err(e) => {
                // A filesystem without locks (Lustre mounted without
                // `flock`): downloads still work, only sharing the target
                // between processes is unsafe.
                if !self.warned.swap(true, Ordering::Relaxed) {
                    tracing::warn!(lock = %path.display(), error = %e, "cannot lock; processes sharing this target may fetch a file twice");
                }
                None
            }
        };
        if self.finished_elsewhere(&file) {
            return Claim::DoneElsewhere;
        }
        self.held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(key.0, lock.map(Arc::new));
        Claim::Mine
    }
}
