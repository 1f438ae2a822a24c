//! [`EngineState`]: the configuration, source, reporter, connection pool
//! and counters shared by every file and connection of one engine.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize};

use crate::claim::ClaimGate;
use crate::config::EngineConfig;
use crate::pool::{ConnectionSlots, PoolGate, RateBoard};
use crate::progress::Reporter;

/// Totals reported in the [`Summary`](crate::Summary).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) bytes_written: AtomicU64,
    pub(crate) requests: AtomicU64,
    pub(crate) retries: AtomicU64,
    pub(crate) splits: AtomicU64,
    pub(crate) hedges: AtomicU64,
    pub(crate) dropped_slow: AtomicU64,
    pub(crate) long_bodies: AtomicU64,
    pub(crate) bytes_resumed: AtomicU64,
}

/// What every file task and connection of one engine shares.
pub(crate) struct EngineState<S> {
    pub(crate) config: EngineConfig,
    pub(crate) source: Arc<S>,
    pub(crate) reporter: Arc<dyn Reporter>,
    pub(crate) slots: ConnectionSlots,
    /// Request slots of small files (one request each), apart from
    /// `slots`: the small-file window bounds them.
    pub(crate) small_slots: ConnectionSlots,
    /// Rate limits that halved the slots so far; the small-file window
    /// halves as many times.
    pub(crate) rate_limits: AtomicUsize,
    pub(crate) gate: PoolGate,
    pub(crate) rates: RateBoard,
    /// Range requests of the run that received bytes so far: a first
    /// request refused while others stream means a connection cap.
    pub(crate) streamed_requests: AtomicU64,
    /// Signalled when a large file's connections end: settled ramps of the
    /// other files try again.
    pub(crate) file_ended: tokio::sync::Notify,
    pub(crate) counters: Counters,
    /// Asked before each file starts, when set.
    pub(crate) claims: Option<Arc<dyn ClaimGate>>,
}
