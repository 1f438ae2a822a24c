//! Live counters of a run that the engine's events do not carry: how many
//! range streams are open right now.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures::StreamExt;
use hfd_engine::BodyStream;

use crate::layer::BodyLayer;

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

/// The layer that counts open body streams in [`LiveStats`].
#[derive(Debug)]
pub(crate) struct Meter(pub(crate) Arc<LiveStats>);

impl BodyLayer for Meter {
    fn wrap(&self, stream: BodyStream) -> BodyStream {
        self.0.active.fetch_add(1, Ordering::Relaxed);
        let guard = ActiveGuard(Arc::clone(&self.0));
        stream
            .map(move |chunk| {
                let _keep = &guard;
                chunk
            })
            .boxed()
    }
}
