//! The connections of one file: spawns its workers (a few at first, more as
//! its connection ramp asks), stops them all on the first failure or on a
//! range refusal, and says how they ended.

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use crate::file_ctx::FileCtx;
use crate::pace::Pace;
use crate::pool::lock;
use crate::ramp::{ConnectionRamp, drive};
use crate::source::RangeSource;
use crate::state::EngineState;
use crate::worker::{Joined, StreamMode, Worker, WorkerExit};

/// How a file's connections ended without an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConnectionsEnd {
    /// No work is left (or every connection was cancelled).
    Finished,
    /// The source refused ranges: the file switches to one stream.
    RangeUnsupported,
}

/// Runs up to `n` connections (workers) on `file` until none has work:
/// all at once, or, with the connection ramp on, a few first and more
/// while each step pays.
pub(crate) async fn run_connections<S: RangeSource>(
    engine: &Arc<EngineState<S>>,
    file: &Arc<FileCtx>,
    n: usize,
    mode: StreamMode,
    cancel: &CancellationToken,
) -> Result<ConnectionsEnd> {
    let phase = cancel.child_token();
    let config = &engine.config;
    let ramp = (mode == StreamMode::Ranges && config.connection_ramp)
        .then(|| ConnectionRamp::new(config.ramp_start.get(), n))
        .filter(|ramp| !ramp.is_settled());
    let (more_tx, mut more_rx) = mpsc::unbounded_channel();
    let ramp_done = phase.child_token();
    let _stop_ramp = ramp_done.clone().drop_guard();
    let mut started = 0;
    let mut set = JoinSet::new();
    let mut spawn = |set: &mut JoinSet<WorkerExit>, count: usize, joined: Joined| {
        for id in started..started + count {
            let worker = Worker {
                engine: Arc::clone(engine),
                file: Arc::clone(file),
                id,
                mode,
                joined,
                streamed: false,
                retired: false,
                cancel: phase.clone(),
                writer: Some(file.partial.writer()),
                pace: Pace::default(),
            };
            file.ramp.joined();
            set.spawn(worker.run());
        }
        started += count;
    };
    if let Some(ramp) = ramp {
        spawn(&mut set, ramp.current(), Joined::Start);
        tokio::spawn(keep_ramping(
            ramp,
            Arc::clone(engine),
            Arc::clone(file),
            more_tx,
            ramp_done.clone(),
        ));
    } else {
        drop(more_tx);
        spawn(&mut set, n, Joined::Fixed);
    }
    let mut failure = None;
    let mut range_unsupported = false;
    loop {
        let joined = tokio::select! {
            Some(count) = more_rx.recv() => {
                spawn(&mut set, count, Joined::Step);
                continue;
            }
            joined = set.join_next() => joined,
        };
        let Some(joined) = joined else {
            if failure.is_none()
                && !range_unsupported
                && !phase.is_cancelled()
                && !lock(&file.plan).is_done()
            {
                // Every connection left (refused, retired) with work left:
                // one more, which retries like any other.
                spawn(&mut set, 1, Joined::LastResort);
                continue;
            }
            break;
        };
        let exit = joined.unwrap_or_else(|source| WorkerExit::Failed(Error::Task { source }));
        match exit {
            WorkerExit::Done | WorkerExit::Cancelled => {}
            WorkerExit::Refused => {
                // The server caps connections: no file of the run goes
                // beyond those open now.
                let left = engine.slots.cap_at_in_use();
                tracing::info!(file = %file.key, connections = left, "a connection was refused: capping the run's connections");
            }
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
    if mode == StreamMode::Ranges && n > 1 {
        // Its connections are free for the files still ramping.
        engine.file_ended.notify_waiters();
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

/// Drives `file`'s ramp until it settles with the file's work handed out.
/// A settled ramp below its maximum starts again from its count when
/// another file's connections end (their capacity is free), or after
/// [`REPROBE_AFTER`], doubled each time the count did not grow: a step
/// judged while the link or the CPU was busy elsewhere is not final. `more`
/// asks for connections.
async fn keep_ramping<S: RangeSource>(
    mut ramp: ConnectionRamp,
    engine: Arc<EngineState<S>>,
    file: Arc<FileCtx>,
    more: mpsc::UnboundedSender<usize>,
    stop: CancellationToken,
) {
    let window = engine.config.ramp_window;
    let has_work = || lock(&file.plan).has_pending();
    let mut reprobe = REPROBE_AFTER;
    let mut settled_at = 0;
    loop {
        // Created before the drive: a file ending during it counts.
        let freed = engine.file_ended.notified();
        drive(&mut ramp, &file.ramp, window, has_work, &more, &stop).await;
        tracing::info!(file = %file.key, connections = ramp.current(), "connection count settled");
        if stop.is_cancelled() || !has_work() || ramp.at_most() {
            return;
        }
        if ramp.current() > settled_at {
            reprobe = REPROBE_AFTER;
        } else {
            reprobe *= 2;
        }
        settled_at = ramp.current();
        tokio::select! {
            () = stop.cancelled() => return,
            () = freed => {}
            () = tokio::time::sleep(reprobe) => {}
        }
        ramp.resume();
    }
}

/// How long a ramp that settled below its maximum waits before it tries
/// one more step (doubled while the count does not grow).
const REPROBE_AFTER: std::time::Duration = std::time::Duration::from_secs(2);
