//! Group commit of a journaled file: [`JournalTrigger`] counts the bytes
//! written since the last journal commit and [`flush_loop`] flushes (which
//! journals the newly durable ranges) on time or on volume.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hfd_store::PartialFile;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::config::EngineConfig;

/// Counts bytes written since the last journal commit and wakes the
/// flusher when they reach the threshold.
#[derive(Debug)]
pub(crate) struct JournalTrigger {
    unjournaled: AtomicU64,
    threshold: u64,
    wake: Notify,
}

impl JournalTrigger {
    pub(crate) fn new(config: &EngineConfig) -> Arc<Self> {
        Arc::new(Self {
            unjournaled: AtomicU64::new(0),
            threshold: config.journal_threshold(),
            wake: Notify::new(),
        })
    }

    /// `bytes` more were written.
    pub(crate) fn written(&self, bytes: u64) {
        let total = self.unjournaled.fetch_add(bytes, Ordering::AcqRel) + bytes;
        if total >= self.threshold {
            self.wake.notify_one();
        }
    }
}

/// Group commit of a journaled file: flushes (which journals the newly
/// durable ranges) every `interval` while bytes were written, and as soon
/// as the trigger's threshold is reached. A failed commit cancels `work`
/// and is returned.
pub(crate) async fn flush_loop(
    partial: PartialFile,
    trigger: Arc<JournalTrigger>,
    interval: Duration,
    stop: CancellationToken,
    work: CancellationToken,
) -> std::result::Result<(), hfd_store::Error> {
    loop {
        tokio::select! {
            biased;
            () = stop.cancelled() => return Ok(()),
            () = trigger.wake.notified() => {}
            () = tokio::time::sleep(interval) => {}
        }
        if trigger.unjournaled.swap(0, Ordering::AcqRel) == 0 {
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
