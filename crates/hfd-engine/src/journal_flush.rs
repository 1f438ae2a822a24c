//! Group commit of a journaled file by time: [`flush_loop`] flushes (which
//! journals the newly durable ranges) once per interval while bytes were
//! written, however fast they arrive. Between commits it starts the
//! writeback of what was written (`PartialFile::start_writeback`) four times
//! per interval, off the writers' path, so each commit's `fdatasync` finds
//! little left to do even when the kernel's dirty-page limits are reached.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use hfd_store::PartialFile;
use tokio_util::sync::CancellationToken;

/// Whether bytes were written since the last journal commit.
#[derive(Debug, Default)]
pub(crate) struct Unjournaled(AtomicBool);

impl Unjournaled {
    /// Bytes were written.
    pub(crate) fn mark(&self) {
        self.0.store(true, Ordering::Release);
    }

    fn take(&self) -> bool {
        self.0.swap(false, Ordering::AcqRel)
    }
}

/// Writeback starts per commit interval.
const WRITEBACKS_PER_COMMIT: u32 = 4;

/// Commits a journaled file every `interval` while bytes were written, and
/// starts writeback in between. A failed commit cancels `work` and is
/// returned. The last commit, when the file ends, fails or is cancelled, is
/// the caller's.
pub(crate) async fn flush_loop(
    partial: PartialFile,
    unjournaled: Arc<Unjournaled>,
    interval: Duration,
    stop: CancellationToken,
    work: CancellationToken,
) -> std::result::Result<(), hfd_store::Error> {
    let mut tick = 0u32;
    loop {
        tokio::select! {
            biased;
            () = stop.cancelled() => return Ok(()),
            () = tokio::time::sleep(interval / WRITEBACKS_PER_COMMIT) => {}
        }
        tick = (tick + 1) % WRITEBACKS_PER_COMMIT;
        if tick != 0 {
            let p = partial.clone();
            let _ = tokio::task::spawn_blocking(move || p.start_writeback()).await;
            continue;
        }
        if !unjournaled.take() {
            continue;
        }
        let p = partial.clone();
        let result = tokio::task::spawn_blocking(move || p.flush())
            .await
            .unwrap_or_else(|join| {
                Err(hfd_store::Error::Flush {
                    path: partial.path().to_path_buf(),
                    source: std::io::Error::other(join.to_string()),
                })
            });
        if let Err(e) = result {
            tracing::error!(file = %partial.path().display(), error = %e, "journal commit failed");
            work.cancel();
            return Err(e);
        }
    }
}
