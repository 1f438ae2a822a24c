//! State shared by every connection of a run: connection slots, the global
//! backoff gate and the rate board used to spot slow connections.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::source::SlotId;

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded data is plain bookkeeping; a panic elsewhere must not
    // cascade into every worker.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// `max_connections` numbered slots; a request holds one while it runs.
/// A rate-limited run gives some up for good ([`Self::halve`]).
#[derive(Debug)]
pub(crate) struct ConnectionSlots {
    permits: Arc<Semaphore>,
    free: Arc<Mutex<VecDeque<usize>>>,
    /// Slots the run may use now.
    capacity: AtomicUsize,
    /// Slots given up while held: the next ones returned are dropped.
    owed: Arc<AtomicUsize>,
    /// The slots the run started with.
    initial: usize,
}

/// A held slot; returned on drop (or dropped, when one is owed).
#[derive(Debug)]
pub(crate) struct SlotGuard {
    id: usize,
    free: Arc<Mutex<VecDeque<usize>>>,
    permit: Option<OwnedSemaphorePermit>,
    owed: Arc<AtomicUsize>,
}

impl SlotGuard {
    pub(crate) fn id(&self) -> SlotId {
        SlotId(self.id)
    }
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        let owed = self
            .owed
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok();
        if owed && let Some(permit) = self.permit.take() {
            permit.forget();
        }
        lock(&self.free).push_back(self.id);
    }
}

impl ConnectionSlots {
    pub(crate) fn new(n: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(n)),
            free: Arc::new(Mutex::new((0..n).collect())),
            capacity: AtomicUsize::new(n),
            owed: Arc::default(),
            initial: n,
        }
    }

    /// Whether the server made the run give up slots (a rate limit, a
    /// refused connection): it counts connections, so a request that
    /// closes one mid-body to reopen another risks a refusal.
    pub(crate) fn reduced(&self) -> bool {
        self.capacity.load(Ordering::Relaxed) < self.initial
    }

    /// Gives up half of the slots (rounded down, one kept at least) for the
    /// rest of the run: the server asked to slow down, and the same number
    /// of connections coming back after the pause would hammer it again.
    /// Held slots are given up as their requests end. Returns the slots left.
    pub(crate) fn halve(&self) -> usize {
        let mut shed = 0;
        let left = self
            .capacity
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                shed = n / 2;
                Some(n - n / 2)
            })
            .map_or(1, |n| n - n / 2);
        let forgotten = self.permits.forget_permits(shed);
        self.owed.fetch_add(shed - forgotten, Ordering::Relaxed);
        left
    }

    /// Like [`Self::halve`], but half of the slots in use now, not of the
    /// capacity: for slots whose capacity is a ceiling far above use (small
    /// files, bounded by their window). Returns the slots left.
    pub(crate) fn halve_in_use(&self) -> usize {
        self.shrink_to(self.in_use().div_ceil(2))
    }

    /// Caps the slots at those in use now (one at least) for the rest of
    /// the run: the server refused a connection beyond them. Returns the
    /// slots left.
    pub(crate) fn cap_at_in_use(&self) -> usize {
        self.shrink_to(self.in_use())
    }

    fn in_use(&self) -> usize {
        self.capacity
            .load(Ordering::Relaxed)
            .saturating_sub(self.permits.available_permits())
    }

    /// Gives up slots until `target` (one at least) are left, free ones at
    /// once, held ones as their requests end. Never grows.
    fn shrink_to(&self, target: usize) -> usize {
        let target = target.max(1);
        let mut shed = 0;
        let left = self
            .capacity
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                shed = n.saturating_sub(target);
                Some(n.min(target))
            })
            .map_or(target, |n| n.min(target));
        let forgotten = self.permits.forget_permits(shed);
        self.owed.fetch_add(shed - forgotten, Ordering::Relaxed);
        left
    }

    /// A free slot now, if there is one.
    #[cfg(test)]
    fn try_acquire(&self) -> Option<SlotGuard> {
        let permit = Arc::clone(&self.permits).try_acquire_owned().ok()?;
        let id = lock(&self.free).pop_front()?;
        Some(SlotGuard {
            id,
            free: Arc::clone(&self.free),
            permit: Some(permit),
            owed: Arc::clone(&self.owed),
        })
    }

    /// Waits for a free slot. Cancel safe.
    pub(crate) async fn acquire(&self) -> SlotGuard {
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .expect("the slot semaphore is never closed");
        let id = lock(&self.free)
            .pop_front()
            .expect("a permit guarantees a free slot id");
        SlotGuard {
            id,
            free: Arc::clone(&self.free),
            permit: Some(permit),
            owed: Arc::clone(&self.owed),
        }
    }
}

/// Pauses every new request of the pool until a deadline (429/503).
#[derive(Debug, Default)]
pub(crate) struct PoolGate {
    until: Mutex<Option<Instant>>,
}

impl PoolGate {
    /// No request starts before `now + wait` (extends, never shortens).
    /// Returns whether this starts a pause (the pool was not paused): the
    /// other answers of the same burst arrive while it is.
    pub(crate) fn pause(&self, wait: Duration) -> bool {
        let now = Instant::now();
        let deadline = now + wait;
        let mut until = lock(&self.until);
        let starts = until.is_none_or(|u| u <= now);
        if until.is_none_or(|u| u < deadline) {
            *until = Some(deadline);
        }
        starts
    }

    /// Waits until the pool may send requests; `false` if cancelled first.
    pub(crate) async fn wait(&self, cancel: &CancellationToken) -> bool {
        loop {
            let deadline = *lock(&self.until);
            match deadline {
                Some(d) if d > Instant::now() => {
                    tokio::select! {
                        () = cancel.cancelled() => return false,
                        () = tokio::time::sleep_until(d) => {}
                    }
                }
                _ => return !cancel.is_cancelled(),
            }
        }
    }
}

/// Rates of running and recently finished requests, to compare one request
/// with the pool's median. Finished requests count for [`RECENT`] so a
/// request left alone in a file's tail is still judged against the pool.
#[derive(Debug, Default)]
pub(crate) struct RateBoard {
    inner: Mutex<Board>,
}

#[derive(Debug, Default)]
struct Board {
    next_id: u64,
    /// Running requests: id -> (bytes per second, last update).
    running: HashMap<u64, (f64, Instant)>,
    /// Rates of the last requests that ended with bytes, oldest first, and
    /// when they ended: at most [`FINISHED_KEPT`], none older than
    /// [`RECENT`]. (Every finished request kept for 30 s was 4 MiB and an
    /// O(n) scan per update in a dataset of 10^5 small files.)
    finished: VecDeque<(f64, Instant)>,
    /// When rates older than [`RECENT`] were last dropped.
    pruned_at: Option<Instant>,
    /// The median last computed over a large board, and when.
    median: Option<(f64, Instant)>,
    /// Reused for the median (no allocation per update).
    scratch: Vec<f64>,
}

/// How long a finished request's rate stays in the median.
pub(crate) const RECENT: Duration = Duration::from_secs(30);

/// Finished requests' rates kept for the median: far more than one run has
/// connections, so the median is that of the pool's recent requests.
const FINISHED_KEPT: usize = 256;

/// How often rates older than [`RECENT`] are dropped.
const PRUNE_EVERY: Duration = Duration::from_secs(1);

/// From this many peers on, a median computed in the last
/// [`MEDIAN_FRESH`] is reused: one request more or less barely moves it,
/// and a 512 MiB file's board holds up to [`FINISHED_KEPT`] finished
/// requests; sorting them on every update of every request (each checks
/// every 10 ms) cost more CPU than the rest of the slow-request check
/// (decision 0070).
const CACHED_MEDIAN_FROM: usize = 16;

/// How long a large board's median is reused.
const MEDIAN_FRESH: Duration = Duration::from_millis(10);

impl RateBoard {
    pub(crate) fn register(&self) -> u64 {
        let mut board = lock(&self.inner);
        board.next_id += 1;
        board.next_id
    }

    /// Records `rate` for request `id` and returns the median of the other
    /// recent requests, when there are at least `min_peers` of them.
    /// With [`CACHED_MEDIAN_FROM`] peers or more, a median computed less
    /// than [`MEDIAN_FRESH`] ago is returned.
    pub(crate) fn update(&self, id: u64, rate: f64, min_peers: usize) -> Option<f64> {
        let now = Instant::now();
        let mut board = lock(&self.inner);
        let board = &mut *board;
        if board
            .pruned_at
            .is_none_or(|at| now.duration_since(at) >= PRUNE_EVERY)
        {
            let recent = |at: &Instant| now.duration_since(*at) < RECENT;
            board.running.retain(|_, (_, at)| recent(at));
            while board.finished.front().is_some_and(|(_, at)| !recent(at)) {
                board.finished.pop_front();
            }
            board.pruned_at = Some(now);
        }
        board.running.insert(id, (rate, now));
        let peers = board.running.len() - 1 + board.finished.len();
        if peers < min_peers {
            return None;
        }
        let large = peers >= CACHED_MEDIAN_FROM;
        if large
            && let Some((median, at)) = board.median
            && now.duration_since(at) < MEDIAN_FRESH
        {
            return Some(median);
        }
        let others = &mut board.scratch;
        others.clear();
        others.extend(
            (board.running.iter())
                .filter(|(k, _)| **k != id)
                .map(|(_, (rate, _))| *rate)
                .chain(board.finished.iter().map(|(rate, _)| *rate)),
        );
        let mid = others.len() / 2;
        let median = *others.select_nth_unstable_by(mid, f64::total_cmp).1;
        board.median = large.then_some((median, now));
        Some(median)
    }

    /// A request ended; its final rate (when it moved bytes) stays in the
    /// median for [`RECENT`].
    pub(crate) fn finish(&self, id: u64, rate: Option<f64>) {
        let mut board = lock(&self.inner);
        board.running.remove(&id);
        if let Some(rate) = rate.filter(|r| *r > 0.0) {
            if board.finished.len() == FINISHED_KEPT {
                board.finished.pop_front();
            }
            board.finished.push_back((rate, Instant::now()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{ConnectionSlots, PoolGate, RateBoard};
    use std::time::Duration;
    use tokio_util::sync::CancellationToken;

    #[tokio::test(start_paused = true)]
    async fn gate_holds_everyone_until_deadline() {
        let gate = PoolGate::default();
        gate.pause(Duration::from_secs(5));
        gate.pause(Duration::from_secs(1)); // never shortens
        let t0 = tokio::time::Instant::now();
        assert!(gate.wait(&CancellationToken::new()).await);
        assert!(t0.elapsed() >= Duration::from_secs(5));
        let cancel = CancellationToken::new();
        gate.pause(Duration::from_secs(5));
        cancel.cancel();
        assert!(!gate.wait(&cancel).await);
    }

    #[tokio::test]
    async fn slots_are_unique_and_returned() {
        let slots = ConnectionSlots::new(2);
        let a = slots.acquire().await;
        let b = slots.acquire().await;
        assert_ne!(a.id(), b.id());
        let id = a.id();
        drop(a);
        drop(b);
        // Returned slots go to the back: the oldest free slot comes first.
        assert_eq!(slots.acquire().await.id(), id);
    }

    #[tokio::test]
    async fn capping_at_the_slots_in_use_keeps_them_and_no_more() {
        let slots = ConnectionSlots::new(8);
        let held: Vec<_> = [(); 3].iter().map(|()| slots.try_acquire()).collect();
        assert!(held.iter().all(Option::is_some));
        assert_eq!(slots.cap_at_in_use(), 3);
        assert!(slots.try_acquire().is_none(), "no fourth slot");
        drop(held);
        let again: Vec<_> = [(); 4].iter().map(|()| slots.try_acquire()).collect();
        assert_eq!(again.iter().filter(|s| s.is_some()).count(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn median_of_peers() {
        let board = RateBoard::default();
        assert_eq!(board.update(1, 10.0, 2), None);
        assert_eq!(board.update(2, 20.0, 2), None);
        assert_eq!(board.update(3, 30.0, 2), Some(20.0));
        // A finished request without bytes leaves the median...
        board.finish(2, None);
        assert_eq!(board.update(3, 30.0, 2), None);
        // ...one with bytes stays in it.
        board.finish(2, Some(20.0));
        assert_eq!(board.update(3, 30.0, 2), Some(20.0));
        // Old rates expire.
        tokio::time::sleep(super::RECENT).await;
        assert_eq!(board.update(3, 30.0, 2), None);
    }

    #[tokio::test(start_paused = true)]
    async fn finished_rates_kept_are_bounded() {
        let board = RateBoard::default();
        for id in 0..10_000 {
            board.finish(id, Some(1.0 + id as f64));
        }
        let board = super::lock(&board.inner);
        assert_eq!(board.finished.len(), super::FINISHED_KEPT);
        let newest = board.finished.back().unwrap().0;
        assert!((newest - 10_000.0).abs() < 0.5, "the newest kept: {newest}");
        assert!(board.running.is_empty());
    }

    /// A large board's median is computed once per `MEDIAN_FRESH`, not on
    /// every update (each running request updates every 10 ms).
    #[tokio::test(start_paused = true)]
    async fn a_large_boards_median_is_reused_for_a_moment() {
        let board = RateBoard::default();
        for id in 0..super::CACHED_MEDIAN_FROM as u64 {
            board.update(id, 10.0, 2);
        }
        assert_eq!(board.update(100, 10.0, 2), Some(10.0));
        // Enough new fast rates to move an exact median: within the moment
        // the median stays, after it the new rates count.
        for id in 200..240 {
            assert_eq!(board.update(id, 50.0, 2), Some(10.0));
        }
        tokio::time::sleep(super::MEDIAN_FRESH).await;
        assert_eq!(board.update(300, 50.0, 2), Some(50.0));
        // A small board is exact on every update.
        let small = RateBoard::default();
        small.update(1, 10.0, 2);
        small.update(2, 20.0, 2);
        assert_eq!(small.update(3, 30.0, 2), Some(20.0));
        assert_eq!(small.update(4, 40.0, 2), Some(20.0));
        assert_eq!(small.update(5, 50.0, 2), Some(30.0));
    }
}
