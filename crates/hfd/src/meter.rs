//! Live counters of a run that the engine's events do not carry: how many
//! requests for file bytes are in flight right now, from the moment one is
//! sent (so a small file waiting out a 300 ms round trip counts) until its
//! body ends.

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
    /// Requests for file bytes in flight right now, waiting for their
    /// answer or receiving their body (connections in use).
    pub fn active_streams(&self) -> usize {
        self.active.load(Ordering::Relaxed)
    }
}

/// Decrements the active count when the stream is dropped.
pub(crate) struct ActiveGuard(Arc<LiveStats>);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The layer that counts requests in flight in [`LiveStats`].
#[derive(Debug)]
pub(crate) struct Meter(pub(crate) Arc<LiveStats>);

impl BodyLayer for Meter {
    type Ticket = ActiveGuard;

    fn begin(&self) -> ActiveGuard {
        self.0.active.fetch_add(1, Ordering::Relaxed);
        ActiveGuard(Arc::clone(&self.0))
    }

    fn wrap(&self, guard: ActiveGuard, stream: BodyStream) -> BodyStream {
        stream
            .map(move |chunk| {
                let _keep = &guard;
                chunk
            })
            .boxed()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use futures::StreamExt;
    use hfd_engine::{BodyStream, FileKey, RangeSource, SlotId, SourceError};
    use hfd_types::ByteRange;
    use tokio::sync::Notify;

    use super::{LiveStats, Meter};
    use crate::layer::Layered;

    /// Answers after `answer` is notified with one empty body.
    struct SlowAnswer {
        answer: Notify,
    }

    impl RangeSource for SlowAnswer {
        async fn fetch_range(
            &self,
            _: FileKey,
            _: ByteRange,
            _: SlotId,
        ) -> Result<BodyStream, SourceError> {
            self.answer.notified().await;
            Ok(futures::stream::empty().boxed())
        }

        async fn fetch_whole(&self, _: FileKey, _: SlotId) -> Result<BodyStream, SourceError> {
            self.answer.notified().await;
            Err(SourceError::fatal("refused"))
        }
    }

    #[tokio::test]
    async fn a_request_counts_while_it_waits_for_its_answer() {
        let live = Arc::new(LiveStats::default());
        let source = Arc::new(SlowAnswer {
            answer: Notify::new(),
        });
        let metered = Arc::new(Layered::new(Arc::clone(&source), Meter(Arc::clone(&live))));
        let waiting = tokio::spawn({
            let metered = Arc::clone(&metered);
            async move {
                metered
                    .fetch_range(FileKey(0), ByteRange::new(0, 1).unwrap(), SlotId(0))
                    .await
            }
        });
        // Bounded: the request is counted before it is sent.
        for _ in 0..1000 {
            if live.active_streams() == 1 {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert_eq!(live.active_streams(), 1, "no answer yet, yet in flight");
        source.answer.notify_one();
        let body = waiting.await.unwrap().unwrap();
        assert_eq!(live.active_streams(), 1, "the body is open");
        drop(body);
        assert_eq!(live.active_streams(), 0);

        // A request that fails stops counting.
        let failing = tokio::spawn({
            let metered = Arc::clone(&metered);
            async move { metered.fetch_whole(FileKey(0), SlotId(0)).await.is_err() }
        });
        for _ in 0..1000 {
            if live.active_streams() == 1 {
                break;
            }
            tokio::task::yield_now().await;
        }
        source.answer.notify_one();
        assert!(failing.await.unwrap());
        assert_eq!(live.active_streams(), 0);
    }
}
