//! A [`RangeSource`] wrapper that acts on every body stream of the source
//! it wraps: the rate limit and the live counters are layers.

use std::sync::Arc;

use hfd_engine::{BodyStream, FileKey, RangeSource, SlotId, SourceError};
use hfd_types::ByteRange;

/// Something done to each body stream (throttle it, count it, ...).
pub(crate) trait BodyLayer: Send + Sync + 'static {
    /// What the layer keeps from a request's start (before its answer)
    /// until its body ends, or until the request fails.
    type Ticket: Send + 'static;

    /// A request is about to be sent.
    fn begin(&self) -> Self::Ticket;

    /// The stream to hand to the engine instead of `stream`.
    fn wrap(&self, ticket: Self::Ticket, stream: BodyStream) -> BodyStream;
}

/// `inner`, with `layer` applied to every body it returns.
#[derive(Debug)]
pub(crate) struct Layered<S, L> {
    inner: Arc<S>,
    layer: L,
}

impl<S, L> Layered<S, L> {
    pub(crate) fn new(inner: Arc<S>, layer: L) -> Self {
        Self { inner, layer }
    }
}

impl<S: RangeSource, L: BodyLayer> RangeSource for Layered<S, L> {
    async fn fetch_range(
        &self,
        key: FileKey,
        range: ByteRange,
        slot: SlotId,
    ) -> Result<BodyStream, SourceError> {
        let ticket = self.layer.begin();
        let stream = self.inner.fetch_range(key, range, slot).await?;
        Ok(self.layer.wrap(ticket, stream))
    }

    async fn fetch_whole(&self, key: FileKey, slot: SlotId) -> Result<BodyStream, SourceError> {
        let ticket = self.layer.begin();
        let stream = self.inner.fetch_whole(key, slot).await?;
        Ok(self.layer.wrap(ticket, stream))
    }

    async fn retire_slow(&self, key: FileKey, slot: SlotId) {
        self.inner.retire_slow(key, slot).await;
    }

    async fn reset_file(&self, key: FileKey) {
        self.inner.reset_file(key).await;
    }

    async fn finish_file(&self, key: FileKey) {
        self.inner.finish_file(key).await;
    }
}
