//! Several hfd-rs processes on one target: each file is claimed by one of
//! them (a [`ClaimLock`] next to its partial), downloaded once, and the
//! others take other files, then wait for it.
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

use crate::layout::{FetchPolicy, FileAction, Layout, PublishItem};

/// The claims of one run. A claim's lock path and folder come from the
/// job asking ([`claim_path`] of its partial), its file from the run's
/// publish items: nothing is kept per file but the claims held.
pub(crate) struct Claims {
    layout: Arc<dyn Layout>,
    commit: Commit,
    fetch_policy: FetchPolicy,
    /// Job key → what it publishes (shared with the publisher).
    items: Arc<Mutex<HashMap<u64, PublishItem>>>,
    held: Mutex<HashMap<u64, Option<ClaimLock>>>,
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

/// The claim lock of a job: its partial path with the extension `claim`
/// (same folder, same length class as the partial's own name).
pub(crate) fn claim_path(partial: &std::path::Path) -> PathBuf {
    // In the hub cache `blobs/` holds only finished blobs (huggingface_hub
    // and `hf cache` read it): a blob's claim sits with huggingface_hub's own
    // locks, `<root>/.locks/<repo folder>/<etag>.hfd.claim`.
    if let Some(name) = partial.file_name().and_then(|n| n.to_str())
        && name.ends_with(".hfd.part")
        && let Some(blobs) = partial.parent()
        && blobs.file_name() == Some(std::ffi::OsStr::new("blobs"))
        && let Some(repo_dir) = blobs.parent()
        && let (Some(root), Some(folder)) = (repo_dir.parent(), repo_dir.file_name())
    {
        return root
            .join(".locks")
            .join(folder)
            .join(name)
            .with_extension("claim");
    }
    partial.with_extension("claim")
}

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
        let file = self
            .items
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&key.0)
            .and_then(|item| item.files.first().cloned());
        let Some(file) = file else {
            return Claim::Mine;
        };
        let (path, target) = (&claim_path(&job.partial_path), &job.target);
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
            .insert(key.0, lock);
        Claim::Mine
    }
}
