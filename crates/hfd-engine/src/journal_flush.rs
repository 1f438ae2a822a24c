//! Group commit of a journaled file by time: [`flush_loop`] flushes (which
//! journals the newly durable ranges) once per interval while bytes were
//! written, however fast they arrive. Between commits it starts the
//! writeback of what was written (`PartialFile::start_writeback`) every
//! [`WRITEBACK_EVERY`] in which bytes were written, every
//! [`TAIL_WRITEBACK_EVERY`] once the file's last pieces are handed out,
//! also while a commit runs, and it makes the written bytes durable without
//! journaling them (`PartialFile::sync_behind`) every [`SYNC_BEHIND_EVERY`]
//! ([`TAIL_SYNC_BEHIND_EVERY`] in the tail). All of it runs off the
//! writers' path, so each commit's `fdatasync`, and the last one after the
//! file's last byte, finds little left to do, whether dirty pages or a
//! disk's write cache are what it waits for.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use hfd_store::PartialFile;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Whether bytes were written since the last journal commit, since the
/// last writeback was started and since the last sync; whether the file is
/// in its tail.
#[derive(Debug, Default)]
pub(crate) struct Unjournaled {
    uncommitted: AtomicBool,
    not_written_back: AtomicBool,
    not_synced: AtomicBool,
    tail: AtomicBool,
}

impl Unjournaled {
    /// Bytes were written.
    pub(crate) fn mark(&self) {
        self.uncommitted.store(true, Ordering::Release);
        self.not_written_back.store(true, Ordering::Release);
        self.not_synced.store(true, Ordering::Release);
    }

    /// Every piece of the file is handed out: its last byte is near, and
    /// what is dirty then is what its last `fdatasync` waits for.
    pub(crate) fn in_tail(&self) {
        self.tail.store(true, Ordering::Relaxed);
    }

    fn take_uncommitted(&self) -> bool {
        self.uncommitted.swap(false, Ordering::AcqRel)
    }

    fn take_not_written_back(&self) -> bool {
        self.not_written_back.swap(false, Ordering::AcqRel)
    }

    fn take_not_synced(&self) -> bool {
        self.not_synced.swap(false, Ordering::AcqRel)
    }

    fn is_tail(&self) -> bool {
        self.tail.load(Ordering::Relaxed)
    }
}

/// How often the writeback of a file's newly written pages is started
/// (a tick in which nothing was written costs nothing), also while a
/// commit's `fdatasync` runs: with none during a commit (60-80 ms on a
/// shared disk) 10-18 MB were dirty at times (decision 0070).
const WRITEBACK_EVERY: Duration = Duration::from_millis(50);

/// The same in a file's tail: what is dirty when the last byte arrives is
/// what the final `fdatasync` waits for (0.02-0.12 s of a 1.3 s download
/// at 50 ms, 0.005-0.04 s at 10 ms, decision 0070). Not all along: 10 ms
/// of 16 lanes makes 50 KiB writes to the disk, and more CPU per byte.
const TAIL_WRITEBACK_EVERY: Duration = Duration::from_millis(10);

/// How often the bytes written since the last sync are made durable between
/// commits. Written back is not enough: a disk with a volatile write cache
/// makes a sync pay for every byte since the previous one (1 ms per MiB
/// here, 0.2 s for the last sync of two 96 MiB files written back all
/// along, decision 0075).
const SYNC_BEHIND_EVERY: Duration = Duration::from_millis(100);

/// The same in a file's tail, where the last sync is near.
const TAIL_SYNC_BEHIND_EVERY: Duration = Duration::from_millis(20);

/// What the committer does to a file: a trait so that its cadence is
/// tested without a disk.
pub(crate) trait Committed: Clone + Send + Sync + 'static {
    /// Starts the writeback of dirty pages without waiting (a hint).
    fn start_writeback(&self);
    /// Makes the written bytes durable without journaling them.
    fn sync_behind(&self) -> std::result::Result<(), hfd_store::Error>;
    /// Makes the written bytes durable and journals them.
    fn commit(&self) -> std::result::Result<(), hfd_store::Error>;
    /// The error of a commit that could not run (its task panicked).
    fn lost_commit(&self, why: String) -> hfd_store::Error;
}

impl Committed for PartialFile {
    fn start_writeback(&self) {
        PartialFile::start_writeback(self);
    }

    fn sync_behind(&self) -> std::result::Result<(), hfd_store::Error> {
        PartialFile::sync_behind(self)
    }

    fn commit(&self) -> std::result::Result<(), hfd_store::Error> {
        self.flush().map(drop)
    }

    fn lost_commit(&self, why: String) -> hfd_store::Error {
        hfd_store::Error::Flush {
            path: self.path().to_path_buf(),
            source: std::io::Error::other(why),
        }
    }
}

/// Commits a journaled file every `interval` while bytes were written;
/// between commits syncs it every [`SYNC_BEHIND_EVERY`] (in the tail
/// [`TAIL_SYNC_BEHIND_EVERY`]) and starts writeback every
/// [`WRITEBACK_EVERY`] (in the tail [`TAIL_WRITEBACK_EVERY`]), each only
/// after bytes were written; one sync or commit runs at a time, writeback
/// goes on meanwhile. A failed commit or sync cancels `work` and is
/// returned. The last commit, when the file ends, fails or is cancelled, is
/// the caller's (a commit or sync still running is awaited first).
pub(crate) async fn flush_loop<F: Committed>(
    file: F,
    unjournaled: Arc<Unjournaled>,
    interval: Duration,
    stop: CancellationToken,
    work: CancellationToken,
) -> std::result::Result<(), hfd_store::Error> {
    let mut last_commit = Instant::now();
    let mut last_sync = last_commit;
    let mut last_writeback = last_commit;
    // The commit or sync running on a blocking thread.
    let mut syncing: Option<JoinHandle<std::result::Result<(), hfd_store::Error>>> = None;
    loop {
        tokio::select! {
            biased;
            () = stop.cancelled() => break,
            () = tokio::time::sleep(TAIL_WRITEBACK_EVERY) => {}
        }
        if syncing.as_ref().is_some_and(JoinHandle::is_finished) {
            let done = syncing.take().expect("checked above");
            if let Err(e) = committed(&file, done).await {
                work.cancel();
                return Err(e);
            }
        }
        let tail = unjournaled.is_tail();
        if syncing.is_none() {
            let commit_due = last_commit.elapsed() >= interval && unjournaled.take_uncommitted();
            let sync_every = if tail {
                TAIL_SYNC_BEHIND_EVERY
            } else {
                SYNC_BEHIND_EVERY
            };
            if commit_due || (last_sync.elapsed() >= sync_every && unjournaled.take_not_synced()) {
                // The `fdatasync` writes back what is dirty now; the ticks
                // go on meanwhile for what is written during it.
                last_sync = Instant::now();
                last_writeback = last_sync;
                unjournaled.take_not_written_back();
                unjournaled.take_not_synced();
                let f = file.clone();
                syncing = Some(if commit_due {
                    last_commit = last_sync;
                    tokio::task::spawn_blocking(move || f.commit())
                } else {
                    tokio::task::spawn_blocking(move || f.sync_behind())
                });
                continue;
            }
        }
        let due = if tail {
            TAIL_WRITEBACK_EVERY
        } else {
            WRITEBACK_EVERY
        };
        if last_writeback.elapsed() >= due && unjournaled.take_not_written_back() {
            last_writeback = Instant::now();
            let f = file.clone();
            let _ = tokio::task::spawn_blocking(move || f.start_writeback()).await;
        }
    }
    match syncing {
        Some(running) => committed(&file, running)
            .await
            .inspect_err(|_| work.cancel()),
        None => Ok(()),
    }
}

/// The result of a commit or sync task, logged when it failed.
async fn committed<F: Committed>(
    file: &F,
    task: JoinHandle<std::result::Result<(), hfd_store::Error>>,
) -> std::result::Result<(), hfd_store::Error> {
    let result = task
        .await
        .unwrap_or_else(|join| Err(file.lost_commit(join.to_string())));
    if let Err(e) = &result {
        tracing::error!(error = %e, "journal commit or sync failed");
    }
    result
}

#[cfg(test)]
mod tests {
    use super::{Committed, Unjournaled, flush_loop};
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::{Arc, Condvar, Mutex};
    use std::time::Duration;
    use tokio_util::sync::CancellationToken;

    /// Counts writebacks, syncs and commits; a commit blocks until released.
    #[derive(Clone, Default)]
    struct Fake {
        writebacks: Arc<AtomicUsize>,
        syncs: Arc<AtomicUsize>,
        commits: Arc<AtomicUsize>,
        committing: Arc<AtomicBool>,
        writebacks_during_commit: Arc<AtomicUsize>,
        release: Arc<(Mutex<bool>, Condvar)>,
    }

    impl Committed for Fake {
        fn start_writeback(&self) {
            self.writebacks.fetch_add(1, Ordering::SeqCst);
            if self.committing.load(Ordering::SeqCst) {
                self.writebacks_during_commit.fetch_add(1, Ordering::SeqCst);
            }
        }

        fn sync_behind(&self) -> Result<(), hfd_store::Error> {
            self.syncs.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }

        fn commit(&self) -> Result<(), hfd_store::Error> {
            self.committing.store(true, Ordering::SeqCst);
            self.commits.fetch_add(1, Ordering::SeqCst);
            let (released, wake) = &*self.release;
            let mut released = released.lock().unwrap();
            // Bounded: a test that never releases fails, it does not hang.
            for _ in 0..100 {
                if *released {
                    break;
                }
                released = wake
                    .wait_timeout(released, Duration::from_millis(100))
                    .unwrap()
                    .0;
            }
            self.committing.store(false, Ordering::SeqCst);
            Ok(())
        }

        fn lost_commit(&self, why: String) -> hfd_store::Error {
            hfd_store::Error::Flush {
                path: "fake".into(),
                source: std::io::Error::other(why),
            }
        }
    }

    /// A commit's `fdatasync` can take tens of milliseconds on a busy disk:
    /// writeback of what is written meanwhile must go on, or the bytes of
    /// that time are all left to the next (or the final) sync. No writeback
    /// is started in a tick without writes.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn writeback_goes_on_while_a_commit_runs_and_only_after_writes() {
        let fake = Fake::default();
        let marks = Arc::new(Unjournaled::default());
        let stop = CancellationToken::new();
        let interval = Duration::from_millis(30);
        let looping = tokio::spawn(flush_loop(
            fake.clone(),
            Arc::clone(&marks),
            interval,
            stop.clone(),
            CancellationToken::new(),
        ));
        // Nothing written: no writeback, no sync, no commit.
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(fake.writebacks.load(Ordering::SeqCst), 0);
        assert_eq!(fake.syncs.load(Ordering::SeqCst), 0);
        assert_eq!(fake.commits.load(Ordering::SeqCst), 0);
        // Writes while the first commit is held: writebacks go on.
        for _ in 0..500 {
            marks.mark();
            if fake.writebacks_during_commit.load(Ordering::SeqCst) >= 3 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let during = fake.writebacks_during_commit.load(Ordering::SeqCst);
        let commits_while_held = fake.commits.load(Ordering::SeqCst);
        {
            let (released, wake) = &*fake.release;
            *released.lock().unwrap() = true;
            wake.notify_all();
        }
        stop.cancel();
        looping.await.unwrap().unwrap();
        assert_eq!(commits_while_held, 1, "one commit at a time");
        assert!(
            during >= 3,
            "{during} writebacks started while a commit ran"
        );
    }

    /// Writebacks started and syncs run while bytes are written every 5 ms
    /// for 400 ms.
    async fn pushes_in(fake: &Fake, marks: &Unjournaled) -> (usize, usize) {
        let before = (
            fake.writebacks.load(Ordering::SeqCst),
            fake.syncs.load(Ordering::SeqCst),
        );
        for _ in 0..80 {
            marks.mark();
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        (
            fake.writebacks.load(Ordering::SeqCst) - before.0,
            fake.syncs.load(Ordering::SeqCst) - before.1,
        )
    }

    /// Written bytes are synced every 100 ms between commits (a sync pays
    /// for every byte since the previous one, however long ago they were
    /// written back), every 20 ms once the file's last pieces are handed
    /// out (the last sync is near); writeback is started between syncs,
    /// more often in the tail too, and a sync also writes back.
    #[tokio::test(start_paused = true)]
    async fn bytes_are_synced_between_commits_and_more_often_in_the_tail() {
        let fake = Fake::default();
        let marks = Arc::new(Unjournaled::default());
        let stop = CancellationToken::new();
        let looping = tokio::spawn(flush_loop(
            fake.clone(),
            Arc::clone(&marks),
            Duration::from_hours(1),
            stop.clone(),
            CancellationToken::new(),
        ));
        let (writebacks, syncs) = pushes_in(&fake, &marks).await;
        marks.in_tail();
        let (tail_writebacks, tail_syncs) = pushes_in(&fake, &marks).await;
        // Nothing written after the last bytes are pushed: nothing more.
        let pushes = || fake.writebacks.load(Ordering::SeqCst) + fake.syncs.load(Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(50)).await;
        let settled = pushes();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let idle = pushes() - settled;
        stop.cancel();
        looping.await.unwrap().unwrap();
        assert_eq!(fake.commits.load(Ordering::SeqCst), 0);
        assert!(
            (3..=4).contains(&syncs),
            "{syncs} syncs in 400 ms before the tail"
        );
        assert!(
            (3..=5).contains(&writebacks),
            "{writebacks} writebacks in 400 ms before the tail"
        );
        assert!(
            (15..=20).contains(&tail_syncs),
            "{tail_syncs} syncs in 400 ms in the tail"
        );
        assert!(
            tail_writebacks >= 15,
            "{tail_writebacks} writebacks in 400 ms in the tail"
        );
        assert_eq!(idle, 0, "no writeback or sync without writes");
    }
}
