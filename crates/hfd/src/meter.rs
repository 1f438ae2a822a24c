//! Live counters of a run that the engine's events do not carry: how many
//! range streams are open right now.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures::StreamExt;
use hfd_engine::{BodyStream, FileKey, RangeSource, SlotId, SourceError};
use hfd_types::ByteRange;

/// Counters a progress display may read at any time.
#[derive(Debug, Default)]
pub struct LiveStats {
    active: AtomicUsize,
}

impl LiveStats {
    /// Body streams (connections in use) open right now.
    pub fn active_streams(&self) -> usize {
        self.active.load(Ordering::Relaxed)
    }
}

/// Decrements the active count when the stream is dropped.
struct ActiveGuard(Arc<LiveStats>);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A [`RangeSource`] that counts its open body streams in [`LiveStats`].
#[derive(Debug)]
pub(crate) struct Metered<S> {
    inner: Arc<S>,
    stats: Arc<LiveStats>,
}

impl<S> Metered<S> {
    pub(crate) fn new(inner: Arc<S>, stats: Arc<LiveStats>) -> Self {
        Self { inner, stats }
    }

    fn count(&self, stream: BodyStream) -> BodyStream {
        self.stats.active.fetch_add(1, Ordering::Relaxed);
        let guard = ActiveGuard(Arc::clone(&self.stats));
        stream
            .map(move |chunk| {
                let _keep = &guard;
                chunk
            })
            .boxed()
    }
}

impl<S: RangeSource> RangeSource for Metered<S> {
    async fn fetch_range(
        &self,
        key: FileKey,
        range: ByteRange,
        slot: SlotId,
    ) -> Result<BodyStream, SourceError> {
        let stream = self.inner.fetch_range(key, range, slot).await?;
        Ok(self.count(stream))
    }

    async fn fetch_whole(&self, key: FileKey, slot: SlotId) -> Result<BodyStream, SourceError> {
        let stream = self.inner.fetch_whole(key, slot).await?;
        Ok(self.count(stream))
    }
}
