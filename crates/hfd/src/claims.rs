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
use std::sync::{Arc, Mutex};

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
    items: Arc<HashMap<u64, PublishItem>>,
    held: Mutex<HashMap<u64, Option<ClaimLock>>>,
    warned: AtomicBool,
}

impl std::fmt::Debug for Claims {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Claims").finish_non_exhaustive()
    }
}

impl Claims {
    pub(crate) fn new(
        layout: Arc<dyn Layout>,
        commit: Commit,
        fetch_policy: FetchPolicy,
        items: Arc<HashMap<u64, PublishItem>>,
    ) -> Self {
        Self {
            layout,
            commit,
            fetch_policy,
            items,
            held: Mutex::default(),
            warned: AtomicBool::new(false),
        }
    }

    /// Where the claim of `job` is kept: the lock file huggingface_hub
    /// holds while it writes the same file ([`Layout::lock_path`]), one
    /// file per download instead of a lock and a claim. On Linux the claim
    /// is an OFD lock, which huggingface_hub's `flock` does not see; it
    /// meets that lock when publishing ([`hub_lock`](Self::hub_lock)).
    pub(crate) fn path_of(&self, job: &FileJob) -> PathBuf {
        self.items
            .get(&job.key.0)
            .and_then(|item| item.files.first())
            .and_then(|file| self.layout.lock_path(file).ok())
            .unwrap_or_else(|| job.partial_path.with_extension("claim"))
    }

    /// For publishing the file `key`: takes huggingface_hub's lock through
    /// the claim this process holds on the same file. [`HubLock::Held`]
    /// once taken, `None` when another process holds it (the file waits),
    /// [`HubLock::Take`] when no claim is held (the layout takes the lock
    /// itself, as for files found up to date). Blocking.
    pub(crate) fn hub_lock(&self, key: u64) -> Option<HubLock> {
        let held = self
            .held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match held.get(&key) {
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
        self.held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&key);
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
        let Some(file) = self.items.get(&key.0).and_then(|item| item.files.first()) else {
            return Claim::Mine;
        };
        let (path, target) = (&self.path_of(job), &job.target);
        let held = self
            .held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if held.contains_key(&key.0) {
            return Claim::Mine;
        }
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
        drop(held);
        if self.finished_elsewhere(file) {
            return Claim::DoneElsewhere;
        }
        self.held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(key.0, lock);
        Claim::Mine
    }
}
