//! One connection of one file: asks the plan for work, streams a request
//! into the store in bounded batches, retries, splits, hedges.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use hfd_store::FileWriter;
use hfd_types::ByteRange;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, TransferError};
use crate::file_ctx::FileCtx;
use crate::pace::Pace;
use crate::plan::{Grant, GrantKind, WorkerId};
use crate::pool::lock;
use crate::progress::RetryEvent;
use crate::retry::{RetryStep, WaitScope};
use crate::source::{RangeSource, SourceError};
use crate::state::EngineState;

/// How often an idle worker asks its file's planner again without being
/// notified of a change.
const IDLE_RECHECK: std::time::Duration = std::time::Duration::from_millis(250);

/// Minimum peers for a median to mean anything.
const SLOW_MIN_PEERS: usize = 2;
/// How often a request compares its rate with the pool (a slow request is
/// dropped at most this long after it could first be judged). A mirror's
/// slow connection sends its first 64 KiB at once, then a few bytes at a
/// time: judged after 50 ms, it crosses the bar at about 60 ms, which
/// 25 ms checks turned into 75 ms (decision 0070).
const SLOW_CHECK_EVERY: Duration = Duration::from_millis(10);
/// A request is judged no sooner than this many times its wait for the
/// response head: on a far link (a 200 ms round trip) a connection in TCP
/// slow start moves little in its first round trips, and judging it after
/// `slow_grace` alone would drop healthy connections in a loop.
const SLOW_GRACE_ROUND_TRIPS: u32 = 4;
/// A request that received this much may be judged before `slow_grace`.
const SLOW_JUDGE_AFTER_BYTES: u64 = 1 << 20;

/// How a worker asks the source for bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StreamMode {
    /// Range requests for the segments the plan hands out.
    Ranges,
    /// One stream of the whole file from byte 0 (the source refused ranges).
    WholeFile,
}

/// Why a worker was started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Joined {
    /// With all of the file's connections at once (no ramp).
    Fixed,
    /// With the file's first connections, before the ramp's steps.
    Start,
    /// By a step of the connection ramp.
    Step,
    /// Because every other connection of the file left with work left.
    LastResort,
}

/// Why a worker stopped.
#[derive(Debug)]
pub(crate) enum WorkerExit {
    /// Nothing left to do.
    Done,
    /// The file or run was cancelled.
    Cancelled,
    /// The source ignores ranges: the file must switch to one stream.
    RangeUnsupported,
    /// A connection added by the ramp was refused (429, 503, reset) before
    /// its first byte: the server caps connections.
    Refused,
    /// The file failed.
    Failed(Error),
}

/// How one request ended.
enum RequestEnd {
    /// The lane is fully claimed (by this request or by another).
    Finished,
    /// Retry after a failure; `wrote` tells whether bytes were written.
    Retry {
        cause: TransferError,
        wrote: bool,
    },
    Stop(WorkerExit),
}

/// Frames collected before one blocking write.
#[derive(Default)]
struct Batch {
    items: Vec<(u64, Bytes)>,
    bytes: u64,
    /// When its first frame arrived.
    since: Option<Instant>,
}

pub(crate) struct Worker<S> {
    pub(crate) engine: Arc<EngineState<S>>,
    pub(crate) file: Arc<FileCtx>,
    pub(crate) id: WorkerId,
    /// Range requests, or one stream from byte 0 (`fetch_whole`).
    pub(crate) mode: StreamMode,
    /// Why it was started: decides whether a refusal before its first byte
    /// ends it instead of being retried.
    pub(crate) joined: Joined,
    /// Whether any body bytes arrived on this worker's requests.
    pub(crate) streamed: bool,
    /// Counted out by the ramp (it asked for fewer connections).
    pub(crate) retired: bool,
    pub(crate) cancel: CancellationToken,
    pub(crate) writer: Option<Box<dyn FileWriter>>,
    /// How large its fresh requests should be.
    pub(crate) pace: Pace,
}

impl<S: RangeSource> Worker<S> {
    /// The slots this file's requests take: a small file (one request) is
    /// already bounded by the small-file window.
    fn slots(&self) -> &crate::pool::ConnectionSlots {
        if self.engine.config.is_small_file(self.file.size) {
            &self.engine.small_slots
        } else {
            &self.engine.slots
        }
    }

    /// Whether a refusal of its first request means "no more connections"
    /// (on a ramping file): always for a ramp step's connection; for a first
    /// connection when the run's other requests stream. Without a ramp, and
    /// for a file's last connection, a refusal is retried as always.
    fn may_be_refused(&self) -> bool {
        match self.joined {
            Joined::Step => true,
            Joined::Start => self.engine.streamed_requests.load(Ordering::Relaxed) > 0,
            Joined::Fixed | Joined::LastResort => false,
        }
    }

    /// Runs until the file needs nothing more from it. The spawner counted
    /// it in (`RampGauge::joined`); it counts itself out.
    pub(crate) async fn run(mut self) -> WorkerExit {
        let exit = self.work().await;
        if !self.retired {
            self.file.ramp.left();
        }
        exit
    }

    async fn work(&mut self) -> WorkerExit {
        let mut failures = 0u32;
        loop {
            let Some(grant) = self.next_grant().await else {
                return if self.cancel.is_cancelled() {
                    WorkerExit::Cancelled
                } else {
                    WorkerExit::Done
                };
            };
            let counters = &self.engine.counters;
            match grant.kind {
                GrantKind::Split => counters.splits.fetch_add(1, Ordering::Relaxed),
                GrantKind::Hedge => counters.hedges.fetch_add(1, Ordering::Relaxed),
                GrantKind::Fresh => 0,
            };
            tracing::debug!(file = %self.file.key, worker = self.id, range = %grant.range, kind = ?grant.kind, "request");
            let end = self.request(&grant).await;
            let lane_done = lock(&self.file.plan).leave(grant.lane, self.id);
            self.file.changed.notify_waiters();
            if lane_done {
                self.file.follow_hash();
            }
            match end {
                RequestEnd::Finished => failures = 0,
                RequestEnd::Stop(exit) => return exit,
                RequestEnd::Retry {
                    cause: TransferError::Source(SourceError::Retryable { .. }),
                    ..
                } if !self.streamed && self.mode == StreamMode::Ranges && self.may_be_refused() => {
                    // A new connection refused while the run's others stream:
                    // the server caps connections. Not retried: retrying
                    // would make one refusal a storm, and a rate limit would
                    // pause the whole pool.
                    tracing::debug!(file = %self.file.key, worker = self.id, "ramp: connection refused");
                    self.file.ramp.refused();
                    return WorkerExit::Refused;
                }
                RequestEnd::Retry { cause, wrote } => {
                    if wrote {
                        failures = 0;
                    }
                    failures += 1;
                    if let Some(exit) = self.before_retry(&grant, cause, failures).await {
                        return exit;
                    }
                }
            }
        }
    }

    /// Waits for work; `None` when the file needs nothing more from this
    /// worker (or on cancel).
    async fn next_grant(&mut self) -> Option<Grant> {
        loop {
            let notified = self.file.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if !self.retired && self.file.ramp.try_retire() {
                self.retired = true;
                return None;
            }
            {
                let mut plan = lock(&self.file.plan);
                if self.slots().reduced() {
                    plan.no_tail_splits();
                }
                if let Some(grant) =
                    plan.assign(self.id, Instant::now(), self.pace.ask(&self.file.pace))
                {
                    if !plan.has_pending()
                        && let Some(journal) = &self.file.journal
                    {
                        journal.in_tail();
                    }
                    return Some(grant);
                }
                if plan.is_done() {
                    return None;
                }
            }
            tokio::select! {
                () = self.cancel.cancelled() => return None,
                () = notified => {}
                // Look again now and then even without a change: a hedged
                // lane becomes hedgeable again as time passes.
                () = tokio::time::sleep(IDLE_RECHECK) => {}
            }
        }
    }

    /// Counts a failure, reports it and waits; `Some` to stop the worker.
    async fn before_retry(
        &self,
        grant: &Grant,
        cause: TransferError,
        failures: u32,
    ) -> Option<WorkerExit> {
        let (wait, scope) = match self.engine.config.retry.next_step(&cause, failures) {
            RetryStep::GiveUp => {
                return Some(WorkerExit::Failed(Error::RetriesExhausted {
                    key: self.file.key,
                    attempts: failures - 1,
                    last: Box::new(cause),
                }));
            }
            RetryStep::Wait { delay, scope } => (delay, scope),
        };
        if matches!(
            cause,
            TransferError::Slow { .. } | TransferError::Stalled { .. }
        ) {
            self.engine
                .counters
                .dropped_slow
                .fetch_add(1, Ordering::Relaxed);
        }
        if scope == WaitScope::Pool && self.engine.gate.pause(wait) {
            // Told to slow down: fewer connections after the pause too.
            let left = self.engine.slots.halve();
            self.engine.small_slots.halve_in_use();
            self.engine.rate_limits.fetch_add(1, Ordering::Relaxed);
            tracing::info!(
                connections = left,
                ?wait,
                "rate limited: pausing, then fewer connections"
            );
        }
        self.engine.counters.retries.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(file = %self.file.key, worker = self.id, range = %grant.range, attempt = failures, ?wait, error = %cause, "retry");
        self.engine.reporter.on_retry(
            self.file.key,
            &RetryEvent {
                range: (self.mode == StreamMode::Ranges).then_some(grant.range),
                attempt: failures,
                wait,
                cause: &cause,
            },
        );
        tokio::select! {
            () = self.cancel.cancelled() => Some(WorkerExit::Cancelled),
            () = tokio::time::sleep(wait) => None,
        }
    }

    /// Runs one request to its end, always writing what it claimed.
    #[expect(
        clippy::too_many_lines,
        reason = "one streaming loop; its exits share the final write"
    )]
    async fn request(&mut self, grant: &Grant) -> RequestEnd {
        if !self.engine.gate.wait(&self.cancel).await {
            return RequestEnd::Stop(WorkerExit::Cancelled);
        }
        let slot = tokio::select! {
            () = self.cancel.cancelled() => return RequestEnd::Stop(WorkerExit::Cancelled),
            () = grant.token.cancelled() => return RequestEnd::Finished,
            slot = self.slots().acquire() => slot,
        };
        self.engine
            .counters
            .requests
            .fetch_add(1, Ordering::Relaxed);
        let source = &self.engine.source;
        let key = self.file.key;
        let asked_at = Instant::now();
        let opened = tokio::select! {
            () = self.cancel.cancelled() => return RequestEnd::Stop(WorkerExit::Cancelled),
            () = grant.token.cancelled() => return RequestEnd::Finished,
            opened = async {
                if self.mode == StreamMode::WholeFile {
                    source.fetch_whole(key, slot.id()).await
                } else {
                    source.fetch_range(key, grant.range, slot.id()).await
                }
            } => opened,
        };
        let mut stream = match opened {
            Ok(stream) => stream,
            Err(e) => return self.classify(grant, e),
        };
        let opened_at = Instant::now();
        let wait = opened_at.duration_since(asked_at);
        self.pace.head(wait, &self.file.pace);
        let (start, req_end) = if self.mode == StreamMode::WholeFile {
            (0, self.file.size)
        } else {
            (grant.range.start(), grant.range.end())
        };
        let rate_id = self.engine.rates.register();
        let grace = self
            .engine
            .config
            .slow_grace
            .max(SLOW_GRACE_ROUND_TRIPS * wait);
        let mut last_check = opened_at;
        let mut pos = start;
        let mut batch = Batch::default();
        let mut wrote = false;
        let write_batch = self.file.write_batch;
        let stall = self.engine.config.stall_timeout;
        let end = loop {
            let next = tokio::select! {
                biased;
                () = self.cancel.cancelled() => break RequestEnd::Stop(WorkerExit::Cancelled),
                () = grant.token.cancelled() => break RequestEnd::Finished,
                next = tokio::time::timeout(stall, stream.next()) => next,
            };
            let bytes = match next {
                Err(_) => break retry(TransferError::Stalled { timeout: stall }),
                Ok(None) if pos < req_end => {
                    break retry(TransferError::ShortBody {
                        received: pos - start,
                        expected: req_end - start,
                    });
                }
                Ok(None) => break RequestEnd::Finished,
                Ok(Some(Err(e))) => break self.classify(grant, e),
                Ok(Some(Ok(bytes))) => bytes,
            };
            if !self.streamed {
                self.streamed = true;
                self.file.ramp.first_bytes();
                self.engine
                    .streamed_requests
                    .fetch_add(1, Ordering::Relaxed);
            }
            let len = bytes.len() as u64;
            let within = len.min(req_end - pos);
            let claim = lock(&self.file.plan).claim(grant.lane, self.id, pos, within);
            self.file.ramp.received(claim.take);
            let now = Instant::now();
            if claim.take > 0 {
                batch.since.get_or_insert(now);
                let from = claim.skip as usize;
                batch
                    .items
                    .push((claim.offset, bytes.slice(from..from + claim.take as usize)));
                batch.bytes += claim.take;
            }
            pos += within;
            if within < len {
                // Never written: bytes past the requested range.
                tracing::warn!(file = %self.file.key, range = %grant.range, extra = len - within, "body longer than the range requested; extra bytes dropped");
                self.engine
                    .counters
                    .long_bodies
                    .fetch_add(1, Ordering::Relaxed);
            }
            if batch.bytes >= write_batch
                || batch
                    .since
                    .is_some_and(|since| now.duration_since(since) >= self.file.batch_age)
            {
                if let Err(e) = self.write(&mut batch).await {
                    break RequestEnd::Stop(WorkerExit::Failed(e));
                }
                wrote = true;
            }
            if claim.lane_done || within < len {
                break RequestEnd::Finished;
            }
            if self.engine.config.slow_ratio > 0.0
                && now.duration_since(last_check) >= SLOW_CHECK_EVERY
            {
                last_check = now;
                let elapsed = now.duration_since(opened_at).as_secs_f64();
                let rate = (pos - start) as f64 / elapsed;
                let median = self.engine.rates.update(rate_id, rate, SLOW_MIN_PEERS);
                let ratio = self.engine.config.slow_ratio;
                if let Some(median) = median
                    && (now.duration_since(opened_at) >= grace
                        || pos - start >= SLOW_JUDGE_AFTER_BYTES)
                    && rate < ratio * median
                {
                    break retry(TransferError::Slow {
                        rate_bytes_per_sec: rate,
                        median_bytes_per_sec: median,
                        ratio,
                    });
                }
            }
        };
        drop(stream);
        let elapsed = opened_at.elapsed().as_secs_f64();
        let final_rate = (elapsed > 0.0 && pos > start).then(|| (pos - start) as f64 / elapsed);
        tracing::debug!(file = %self.file.key, worker = self.id, range = %grant.range,
            kind = ?grant.kind, received = pos - start, secs = elapsed,
            end = request_end_name(&end), "request ended");
        self.engine.rates.finish(rate_id, final_rate);
        // A rate over less than a round trip (a hedge that lost at once)
        // says nothing.
        if let (RequestEnd::Finished, Some(rate)) = (&end, final_rate)
            && elapsed >= wait.as_secs_f64()
        {
            self.pace.ended(rate, &self.file.pace);
        }
        if let RequestEnd::Retry {
            cause: TransferError::Slow { .. } | TransferError::Stalled { .. },
            ..
        } = &end
        {
            // The retry must not land on the same slow socket.
            self.engine.source.retire_slow(key, slot.id()).await;
        }
        drop(slot);
        // Claimed bytes are always written before the lane is left.
        if batch.bytes > 0 {
            if let Err(e) = self.write(&mut batch).await {
                return RequestEnd::Stop(WorkerExit::Failed(e));
            }
            wrote = true;
        }
        match end {
            RequestEnd::Retry { cause, .. } => RequestEnd::Retry { cause, wrote },
            other => other,
        }
    }

    fn classify(&self, grant: &Grant, error: SourceError) -> RequestEnd {
        match error {
            SourceError::RangeUnsupported { .. } if self.mode == StreamMode::Ranges => {
                RequestEnd::Stop(WorkerExit::RangeUnsupported)
            }
            e if e.is_retryable() => retry(TransferError::Source(e)),
            e => RequestEnd::Stop(WorkerExit::Failed(Error::Source {
                key: self.file.key,
                range: (self.mode == StreamMode::Ranges).then_some(grant.range),
                source: Box::new(e),
            })),
        }
    }

    /// Writes a batch on a blocking thread (copies into a mapped window or
    /// `pwritev`, one per run of adjacent frames; both may block on page
    /// faults or the disk).
    async fn write(&mut self, batch: &mut Batch) -> Result<(), Error> {
        let items = std::mem::take(&mut batch.items);
        let bytes = std::mem::take(&mut batch.bytes);
        let pieces: Vec<ByteRange> = items
            .iter()
            .filter_map(|(offset, data)| ByteRange::with_len(*offset, data.len() as u64))
            .collect();
        batch.since = None;
        let mut writer = self
            .writer
            .take()
            .expect("the writer is only absent during a write");
        let (writer, result) = tokio::task::spawn_blocking(move || {
            let mut result = Ok(());
            // Frames that follow each other go down in one vectored write.
            for run in items.chunk_by(|(a, data), (b, _)| a + data.len() as u64 == *b) {
                let parts: Vec<&[u8]> = run.iter().map(|(_, data)| &data[..]).collect();
                result = writer.write_parts_at(run[0].0, &parts);
                if result.is_err() {
                    break;
                }
            }
            (writer, result)
        })
        .await
        .map_err(|source| Error::Task { source })?;
        self.writer = Some(writer);
        result.map_err(|source| Error::Store {
            key: self.file.key,
            path: self.file.partial.path().to_path_buf(),
            source: Box::new(source),
        })?;
        self.engine
            .counters
            .bytes_written
            .fetch_add(bytes, Ordering::Relaxed);
        if let Some(journal) = &self.file.journal {
            journal.mark();
        }
        for piece in pieces {
            self.engine.reporter.on_written(self.file.key, piece);
        }
        self.engine.reporter.on_bytes(self.file.key, bytes);
        Ok(())
    }
}

/// A short name of how a request ended, for the debug log.
fn request_end_name(end: &RequestEnd) -> &'static str {
    match end {
        RequestEnd::Finished => "finished",
        RequestEnd::Retry {
            cause: TransferError::Slow { .. },
            ..
        } => "slow",
        RequestEnd::Retry { .. } => "retry",
        RequestEnd::Stop(_) => "stop",
    }
}

fn retry(cause: TransferError) -> RequestEnd {
    RequestEnd::Retry {
        cause,
        wrote: false,
    }
}
