//! The connections of one file: spawns its workers, stops them all on the
//! first failure or on a range refusal, and says how they ended.

use std::sync::Arc;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use crate::file_ctx::FileCtx;
use crate::source::RangeSource;
use crate::state::EngineState;
use crate::worker::{StreamMode, Worker, WorkerExit};

/// How a file's connections ended without an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConnectionsEnd {
    /// No work is left (or every connection was cancelled).
    Finished,
    /// The source refused ranges: the file switches to one stream.
    RangeUnsupported,
}

/// Runs `n` connections (workers) on `file` until none has work.
pub(crate) async fn run_connections<S: RangeSource>(
    engine: &Arc<EngineState<S>>,
    file: &Arc<FileCtx>,
    n: usize,
    mode: StreamMode,
    cancel: &CancellationToken,
) -> Result<ConnectionsEnd> {
    let phase = cancel.child_token();
    let mut set = JoinSet::new();
    for id in 0..n {
        let worker = Worker {
            engine: Arc::clone(engine),
            file: Arc::clone(file),
            id,
            mode,
            cancel: phase.clone(),
            writer: Some(file.partial.writer()),
        };
        set.spawn(worker.run());
    }
    let mut failure = None;
    let mut range_unsupported = false;
    while let Some(joined) = set.join_next().await {
        let exit = joined.unwrap_or_else(|source| WorkerExit::Failed(Error::Task { source }));
        match exit {
            WorkerExit::Done | WorkerExit::Cancelled => {}
            WorkerExit::RangeUnsupported => {
                range_unsupported = true;
                phase.cancel();
            }
            WorkerExit::Failed(e) => {
                if failure.is_none() {
                    failure = Some(e);
                }
                phase.cancel();
            }
        }
    }
    if let Some(e) = failure {
        return Err(e);
    }
    if cancel.is_cancelled() {
        return Err(Error::Cancelled);
    }
    Ok(if range_unsupported {
        ConnectionsEnd::RangeUnsupported
    } else {
        ConnectionsEnd::Finished
    })
}
