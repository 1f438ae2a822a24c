//! The single-stream fallback: a source that ignores range requests gets
//! the whole file as one stream from byte 0, on one connection.

use std::sync::{Arc, Mutex};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::connections::{ConnectionsEnd, run_connections};
use crate::error::Result;
use crate::file_ctx::{FileCtx, HashFollower};
use crate::pace::FilePace;
use crate::plan::{FilePlan, Hedging};
use crate::ramp::RampGauge;
use crate::source::RangeSource;
use crate::state::EngineState;
use crate::worker::StreamMode;

/// Downloads `ranged`'s file again as one stream from byte 0 into the same
/// partial (and journal), after its range requests were refused.
pub(crate) async fn single_stream<S: RangeSource>(
    engine: &Arc<EngineState<S>>,
    ranged: &FileCtx,
    work: &CancellationToken,
) -> Result<ConnectionsEnd> {
    tracing::warn!(file = %ranged.key, "source ignores range requests; continuing as one stream from byte 0");
    engine.reporter.on_fallback(ranged.key);
    let whole = Arc::new(FileCtx {
        key: ranged.key,
        size: ranged.size,
        partial: ranged.partial.clone(),
        plan: Mutex::new(FilePlan::new(ranged.size, u64::MAX, 1, Hedging::Off)),
        changed: Notify::new(),
        journal: ranged.journal.clone(),
        write_batch: ranged.write_batch,
        batch_age: ranged.batch_age,
        hash_follower: HashFollower::default(),
        ramp: RampGauge::default(),
        pace: FilePace::default(),
    });
    let end = run_connections(engine, &whole, 1, StreamMode::WholeFile, work).await;
    whole.hash_settled().await;
    end
}
