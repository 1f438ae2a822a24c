//! [`FileCtx`]: the state of one file in flight, shared by its connections.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hfd_store::PartialFile;
use tokio::sync::Notify;

use crate::journal_flush::Unjournaled;
use crate::pace::FilePace;
use crate::plan::FilePlan;
use crate::ramp::RampGauge;
use crate::source::FileKey;

/// State of one file shared by its workers.
pub(crate) struct FileCtx {
    pub(crate) key: FileKey,
    pub(crate) size: u64,
    pub(crate) partial: PartialFile,
    pub(crate) plan: Mutex<FilePlan>,
    /// Signalled whenever a lane ends (work may have appeared).
    pub(crate) changed: Notify,
    /// Marks a journaled file as having bytes to commit.
    pub(crate) journal: Option<Arc<Unjournaled>>,
    /// Bytes collected before one blocking write.
    pub(crate) write_batch: u64,
    /// A batch is written once its first frame is this old, however small:
    /// bounds the received bytes a `kill -9` loses on a slow connection.
    pub(crate) batch_age: Duration,
    /// Hashes bytes written out of order as lanes end.
    pub(crate) hash_follower: HashFollower,
    /// What the connections tell the file's connection ramp.
    pub(crate) ramp: RampGauge,
    /// What the connections measured of the link: how long a fresh
    /// request should be.
    pub(crate) pace: FilePace,
}

/// Runs `advance_hash` of a file on a blocking thread, one pass at a time,
/// without making the connection that asked wait: a connection that ended
/// a lane goes on with its next request while the bytes it completed are
/// hashed. A request made during a pass makes it go once more.
#[derive(Debug, Default)]
pub(crate) struct HashFollower {
    running: AtomicBool,
    again: AtomicBool,
    /// Passes not known to have ended, awaited before the file is
    /// finalized or discarded.
    passes: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl FileCtx {
    /// Extends the file's hash over the bytes now contiguous with its
    /// hashed prefix, in the background. Errors surface again at finalize,
    /// which also waits for a pass still running.
    pub(crate) fn follow_hash(self: &Arc<Self>) {
        let follower = &self.hash_follower;
        // Bytes written in order were hashed as they were written: no pass
        // (and no hand-off to a blocking thread) for them. A pass running
        // now sees whatever was written before this check.
        if !follower.running.load(Ordering::SeqCst) && !self.partial.hash_is_behind() {
            return;
        }
        follower.again.store(true, Ordering::SeqCst);
        if follower.running.swap(true, Ordering::SeqCst) {
            return;
        }
        let file = Arc::clone(self);
        let pass = tokio::task::spawn_blocking(move || {
            let follower = &file.hash_follower;
            loop {
                follower.again.store(false, Ordering::SeqCst);
                let started = std::time::Instant::now();
                let hashed_to = file.partial.advance_hash();
                tracing::trace!(file = %file.key, hashed_to = hashed_to.unwrap_or(0),
                    secs = started.elapsed().as_secs_f64(), "hash pass");
                follower.running.store(false, Ordering::SeqCst);
                if !follower.again.load(Ordering::SeqCst)
                    || follower.running.swap(true, Ordering::SeqCst)
                {
                    break;
                }
            }
        });
        let mut passes = crate::pool::lock(&follower.passes);
        passes.retain(|p| !p.is_finished());
        passes.push(pass);
    }

    /// Waits for the hash pass still running, if any. Called once no
    /// connection of the file runs (no new pass can start).
    pub(crate) async fn hash_settled(&self) {
        let passes = std::mem::take(&mut *crate::pool::lock(&self.hash_follower.passes));
        for pass in passes {
            let _ = pass.await;
        }
    }
}
