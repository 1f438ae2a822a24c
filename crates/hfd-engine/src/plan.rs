//! The segment planner of one file: pure bookkeeping, no I/O.
//!
//! A file is a list of *pending* ranges (nobody fetches them) and *lanes*
//! (ranges being fetched). A lane has a `frontier`: every byte before it is
//! claimed by some request, every byte after it (up to `end`) is not. One or
//! two requests feed a lane: the primary and, in the tail, a hedge. Each
//! request streams its own bytes in order and claims the part past the
//! frontier, so two requests never write the same byte and the faster one
//! simply moves the frontier ahead of the slower one (first finisher wins).
//!
//! A free connection asks [`FilePlan::assign`]:
//! 1. the pending range with the lowest offset (initially the file is cut
//!    into [`PIECES_PER_CONNECTION`] pieces per connection, never smaller
//!    than `min_split`: handed out in order, the
//!    pieces in flight stay close to the hashed prefix, so the hash follows
//!    the download instead of reading most of the file back at its end),
//!    joined with the pieces after it up to the size the connection asks
//!    for ([`Ask`]: on a far link a request costs a round trip without
//!    bytes) and a fair share of what is pending;
//! 2. else the lane with the most unclaimed bytes, split at the midpoint of
//!    its unclaimed part if both halves keep at least `min_split` bytes
//!    (aria2's rule): the lane's end shrinks, the upper half is a new lane;
//! 3. else (the tail, only with hedging on), the lane that would finish last is split at the
//!    midpoint of its unclaimed part below `min_split` (down to
//!    [`TAIL_SPLIT_MIN`] per half) when its request streams at least half
//!    as fast as the fastest lane's and it has more than
//!    [`TAIL_SPLIT_MIN_SECS`] (and twice the connection's wait for a
//!    response) left: a file's connections then end together
//!    instead of idling while a few finish their last full pieces;
//! 4. else, if hedging is on, a duplicate request for the unhedged lane
//!    with the longest expected time to finish, from its frontier (a lane
//!    on a slow connection: splitting it would leave half on that
//!    connection), if it has more than twice that wait left.

use hfd_store::RangeSet;
use hfd_types::ByteRange;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Identifies a lane within one file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct LaneId(u64);

/// Identifies a connection (worker) within one file.
pub(crate) type WorkerId = usize;

/// What the asking connection's requests cost it, as its worker measured
/// them (the default: nothing measured, or a near server).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Ask {
    /// Bytes a fresh range should reach (0: one piece).
    pub(crate) bytes: u64,
    /// Its wait for a response head: a split or a hedge it starts brings
    /// bytes only after that.
    pub(crate) wait: std::time::Duration,
}

/// How a grant came about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum GrantKind {
    /// A pending range.
    Fresh,
    /// The upper half of a split lane.
    Split,
    /// A duplicate of a slow lane's unclaimed bytes.
    Hedge,
}

/// Work handed to a connection: request `range`, claim into `lane`.
#[derive(Clone, Debug)]
pub(crate) struct Grant {
    pub(crate) lane: LaneId,
    pub(crate) range: ByteRange,
    pub(crate) kind: GrantKind,
    /// Cancelled when the request is no longer needed (its lane finished).
    pub(crate) token: CancellationToken,
}

/// What to do with a chunk of a request's body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Claim {
    /// Bytes of the chunk to skip (already claimed by another request).
    pub(crate) skip: u64,
    /// Bytes to write after skipping, at `offset`.
    pub(crate) take: u64,
    /// File offset of the first taken byte.
    pub(crate) offset: u64,
    /// The lane is fully claimed: stop this request.
    pub(crate) lane_done: bool,
}

#[derive(Debug)]
struct Attachment {
    worker: WorkerId,
    since: Instant,
    claimed: u64,
    token: CancellationToken,
}

#[derive(Debug)]
struct Lane {
    id: LaneId,
    frontier: u64,
    end: u64,
    attached: Vec<Attachment>,
}

impl Lane {
    fn unclaimed(&self) -> u64 {
        self.end.saturating_sub(self.frontier)
    }

    /// Bytes per second of the best attached request (0 before its first)
    /// since its first byte, taken to come `wait` seconds after it was
    /// asked (the asking connection's wait: on a far link a rate since the
    /// request would count a round trip without bytes).
    fn rate(&self, now: Instant, wait: f64) -> f64 {
        self.attached
            .iter()
            .map(|a| {
                let secs = (now.duration_since(a.since).as_secs_f64() - wait).max(1e-3);
                a.claimed as f64 / secs
            })
            .fold(0.0, f64::max)
    }

    /// Expected seconds to finish at the best attached request's rate.
    fn eta_secs(&self, now: Instant, wait: f64) -> f64 {
        let best_rate = self.rate(now, wait);
        if best_rate > 0.0 {
            self.unclaimed() as f64 / best_rate
        } else {
            f64::INFINITY
        }
    }
}

/// Requests feeding one lane at most: the primary and up to two hedges
/// (a hedge lands on a slow connection too, on a mirror that throttles some
/// connections, so one hedge is not always enough).
const MAX_REQUESTS_PER_LANE: usize = 3;

/// How long a hedged lane's requests run before the lane may be hedged
/// again (at 0.5 s a hedge that landed on a slow connection too held the
/// last lane of a 96 MiB file for a quarter of its ideal time).
const HEDGE_PATIENCE: std::time::Duration = std::time::Duration::from_millis(250);

/// Smallest half a split in the tail leaves (below `min_split`).
pub(crate) const TAIL_SPLIT_MIN: u64 = 64 << 10;

/// A lane is split in the tail only with more than this left at its rate:
/// the new request must arrive well before the old one would have ended
/// (if it does not, its lane is hedged once the lower half is done).
const TAIL_SPLIT_MIN_SECS: f64 = 0.05;

/// In the tail a lane is split only when its request streams at least this
/// fraction of the fastest lane's rate; a slower one is hedged instead.
const TAIL_SPLIT_HEALTHY: f64 = 0.5;

/// Pieces a file is cut into per connection. More pieces keep the bytes in
/// flight closer to the hashed prefix (at most about `connections` pieces
/// ahead of it, an eighth of the file, is left to hash when the last byte
/// arrives) but cost one request, so one round trip, each (a far
/// connection joins pieces: [`FilePlan::take_pending`]).
pub(crate) const PIECES_PER_CONNECTION: u64 = 8;

/// Whether idle connections in the tail split the lane that would finish
/// last below `min_split` or duplicate the slowest lane.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Hedging {
    /// Hedge the lane expected to finish last.
    On,
    /// Never duplicate a request (the single-stream fallback).
    Off,
}

impl From<bool> for Hedging {
    fn from(enabled: bool) -> Self {
        if enabled { Self::On } else { Self::Off }
    }
}

/// The planner of one file.
#[derive(Debug)]
pub(crate) struct FilePlan {
    min_split: u64,
    /// Connections the file may run (a fresh range's fair share divides
    /// the pending bytes among at least this many).
    connections: usize,
    hedging: Hedging,
    /// Whether the tail may split below `min_split` (see [`Self::no_tail_splits`]).
    tail_splits: bool,
    pending: Vec<ByteRange>,
    lanes: Vec<Lane>,
    next_lane: u64,
}

impl FilePlan {
    /// A plan for `size` bytes to be fetched by up to `connections`
    /// connections.
    pub(crate) fn new(size: u64, min_split: u64, connections: usize, hedging: Hedging) -> Self {
        let mut plan = Self {
            min_split: min_split.max(1),
            connections: connections.max(1),
            hedging,
            tail_splits: true,
            pending: Vec::new(),
            lanes: Vec::new(),
            next_lane: 0,
        };
        plan.pending = initial_segments(size, plan.min_split, connections);
        plan
    }

    /// A plan for the bytes of `[0, size)` not in `done` (durable from an
    /// earlier run): those bytes are never handed out. The missing runs are
    /// cut into pieces as a fresh file is ([`pieces`]).
    pub(crate) fn resumed(
        size: u64,
        min_split: u64,
        connections: usize,
        hedging: Hedging,
        done: &RangeSet,
    ) -> Self {
        let mut plan = Self::new(0, min_split, connections, hedging);
        plan.pending = pieces(&done.gaps(size), plan.min_split, connections);
        plan
    }

    /// How many connections are worth starting for `size` bytes.
    pub(crate) fn useful_connections(size: u64, min_split: u64, connections: usize) -> usize {
        if size == 0 {
            return 0;
        }
        let by_size = (size / min_split.max(1)).max(1);
        (connections as u64).min(by_size).max(1) as usize
    }

    /// Whether every byte is claimed and no request is attached.
    pub(crate) fn is_done(&self) -> bool {
        self.pending.is_empty() && self.lanes.is_empty()
    }

    /// Whether pieces wait that no connection took yet (beyond them, more
    /// connections only split or hedge what is in flight).
    pub(crate) fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// No more splits below `min_split` in the tail: a split cuts its
    /// lane's request short, which over HTTP/1.1 closes its connection, and
    /// the next request opens another while the server may still count the
    /// closed one (a mirror capping connections per client refused it).
    pub(crate) fn no_tail_splits(&mut self) {
        self.tail_splits = false;
    }

    /// Bytes not yet claimed.
    #[cfg(test)]
    pub(crate) fn unclaimed(&self) -> u64 {
        self.pending.iter().map(|r| r.size()).sum::<u64>()
            + self.lanes.iter().map(Lane::unclaimed).sum::<u64>()
    }

    fn new_lane(
        &mut self,
        range: ByteRange,
        worker: WorkerId,
        now: Instant,
        kind: GrantKind,
    ) -> Grant {
        let id = LaneId(self.next_lane);
        self.next_lane += 1;
        let token = CancellationToken::new();
        self.lanes.push(Lane {
            id,
            frontier: range.start(),
            end: range.end(),
            attached: vec![Attachment {
                worker,
                since: now,
                claimed: 0,
                token: token.clone(),
            }],
        });
        Grant {
            lane: id,
            range,
            kind,
            token,
        }
    }

    /// Work for a free connection, or `None` when there is nothing useful
    /// for it to do. A fresh range grows to about `ask.bytes` from the
    /// pieces that follow it; in the tail a lane is split or hedged only if
    /// it has more left than `ask.wait` twice over.
    pub(crate) fn assign(&mut self, worker: WorkerId, now: Instant, ask: Ask) -> Option<Grant> {
        // 1. The pending range with the lowest offset.
        if let Some((i, _)) = self
            .pending
            .iter()
            .enumerate()
            .min_by_key(|(_, r)| r.start())
        {
            let range = self.take_pending(i, ask.bytes);
            return Some(self.new_lane(range, worker, now, GrantKind::Fresh));
        }
        // 2. Split the lane with the most unclaimed bytes at its midpoint.
        let min_split = self.min_split;
        if let Some(lane) = self
            .lanes
            .iter_mut()
            .filter(|l| l.unclaimed() >= 2 * min_split)
            .max_by_key(|l| l.unclaimed())
        {
            let mid = lane.frontier + lane.unclaimed() / 2;
            let upper = ByteRange::new(mid, lane.end).expect("mid lies below end");
            lane.end = mid;
            return Some(self.new_lane(upper, worker, now, GrantKind::Split));
        }
        // The tail (3 and 4): never in the single-stream fallback.
        if self.hedging == Hedging::Off {
            return None;
        }
        // 3. Split the healthy lane that would finish last.
        let wait = ask.wait.as_secs_f64();
        if let Some(grant) = self.tail_split(worker, now, wait) {
            return Some(grant);
        }
        // 4. Hedge the unhedged lane that would finish last.
        let lane = self
            .lanes
            .iter_mut()
            .filter(|l| {
                l.unclaimed() > 0
                    // A hedge's first byte comes a wait after it is asked:
                    // it can only win a lane with more time left than that
                    // (on a far link, hedging every last lane closed as
                    // many connections for nothing).
                    && l.eta_secs(now, wait) > 2.0 * wait
                    // ...and once its requests had the time to show their
                    // rates (a lane just split has none yet).
                    && l.attached.iter().all(|a| now.duration_since(a.since).as_secs_f64() >= 2.0 * wait)
                    && l.attached.len() < MAX_REQUESTS_PER_LANE
                    && l.attached.iter().all(|a| a.worker != worker)
                    // A lane already hedged gets another request only once
                    // its requests have run long enough to show their
                    // rates: when the hedge landed on a slow connection too.
                    && (l.attached.len() == 1
                        || l
                            .attached
                            .iter()
                            .all(|a| now.duration_since(a.since) >= HEDGE_PATIENCE))
            })
            .max_by(|a, b| a.eta_secs(now, wait).total_cmp(&b.eta_secs(now, wait)))?;
        let range = ByteRange::new(lane.frontier, lane.end).expect("unclaimed > 0");
        let token = CancellationToken::new();
        lane.attached.push(Attachment {
            worker,
            since: now,
            claimed: 0,
            token: token.clone(),
        });
        Some(Grant {
            lane: lane.id,
            range,
            kind: GrantKind::Hedge,
            token,
        })
    }

    /// Step 1 of [`Self::assign`]: removes pending piece `i` and, while the
    /// range is below `want` bytes and below its fair share of what is
    /// pending (pending bytes over the file's connections, or over the
    /// requests running with this one if more), the pieces that follow it.
    /// On a far link a request costs a round trip without bytes; the fair
    /// share shrinks as the pieces run out, so the last requests are
    /// single pieces and a file's connections still end together without
    /// cutting requests short.
    fn take_pending(&mut self, i: usize, want: u64) -> ByteRange {
        let pending: u64 = self.pending.iter().map(|r| r.size()).sum();
        let sharers = self.connections.max(self.lanes.len() + 1) as u64;
        let limit = want.min(pending / sharers);
        let mut range = self.pending.swap_remove(i);
        while range.size() < limit {
            let Some(next) = self.pending.iter().position(|r| r.start() == range.end()) else {
                break;
            };
            let next = self.pending.swap_remove(next);
            range = ByteRange::new(range.start(), next.end()).expect("adjacent pieces");
        }
        range
    }

    /// Step 3 of [`Self::assign`]: the lane with the longest time left, if
    /// it is fed by one request streaming at least [`TAIL_SPLIT_HEALTHY`]
    /// of the fastest lane's rate, has two halves of [`TAIL_SPLIT_MIN`] and
    /// more time left than [`TAIL_SPLIT_MIN_SECS`] plus twice the asking
    /// connection's `wait` (seconds), loses its upper half. The upper
    /// half's first byte comes a wait after the split; a split that the
    /// old request would have beaten only closes that request's connection.
    fn tail_split(&mut self, worker: WorkerId, now: Instant, wait: f64) -> Option<Grant> {
        if !self.tail_splits {
            return None;
        }
        let fastest = self
            .lanes
            .iter()
            .map(|l| l.rate(now, wait))
            .fold(0.0, f64::max);
        let lane = self
            .lanes
            .iter_mut()
            .filter(|l| {
                let rate = l.rate(now, wait);
                l.attached.len() == 1
                    && l.unclaimed() >= 2 * TAIL_SPLIT_MIN
                    && rate > 0.0
                    && rate >= TAIL_SPLIT_HEALTHY * fastest
                    && l.unclaimed() as f64 / rate > TAIL_SPLIT_MIN_SECS + 2.0 * wait
            })
            .max_by(|a, b| a.eta_secs(now, wait).total_cmp(&b.eta_secs(now, wait)))?;
        let mid = lane.frontier + lane.unclaimed() / 2;
        let upper = ByteRange::new(mid, lane.end).expect("mid lies below end");
        lane.end = mid;
        Some(self.new_lane(upper, worker, now, GrantKind::Split))
    }

    /// A chunk of `len` bytes at file offset `pos` arrived on `worker`'s
    /// request for `lane`: claims the part past the frontier.
    pub(crate) fn claim(&mut self, lane: LaneId, worker: WorkerId, pos: u64, len: u64) -> Claim {
        let Some(lane) = self.lanes.iter_mut().find(|l| l.id == lane) else {
            return Claim {
                skip: len,
                take: 0,
                offset: pos,
                lane_done: true,
            };
        };
        let from = pos.max(lane.frontier);
        let to = (pos + len).min(lane.end);
        let take = to.saturating_sub(from);
        if take > 0 {
            lane.frontier = to;
            if let Some(a) = lane.attached.iter_mut().find(|a| a.worker == worker) {
                a.claimed += take;
            }
        }
        Claim {
            skip: from.saturating_sub(pos).min(len),
            take,
            offset: from,
            lane_done: lane.frontier >= lane.end,
        }
    }

    /// `worker`'s request for `lane` ended. If the lane is fully claimed the
    /// other requests on it are cancelled (a won hedge) and it is removed;
    /// if not and nobody else feeds it, its unclaimed bytes go back to the
    /// pending list (re-queued from the last claimed byte). Returns whether
    /// the lane was fully claimed.
    pub(crate) fn leave(&mut self, lane: LaneId, worker: WorkerId) -> bool {
        let Some(i) = self.lanes.iter().position(|l| l.id == lane) else {
            return true;
        };
        let l = &mut self.lanes[i];
        l.attached.retain(|a| a.worker != worker);
        if l.frontier >= l.end {
            for a in &l.attached {
                a.token.cancel();
            }
            l.attached.clear();
            self.lanes.remove(i);
            return true;
        }
        if l.attached.is_empty() {
            let rest = ByteRange::new(l.frontier, l.end).expect("unclaimed > 0");
            self.lanes.remove(i);
            self.pending.push(rest);
        }
        false
    }
}

/// Cuts `[0, size)` into [`PIECES_PER_CONNECTION`] pieces per connection
/// of at least `min_split` bytes (one piece for a small file).
pub(crate) fn initial_segments(size: u64, min_split: u64, connections: usize) -> Vec<ByteRange> {
    ByteRange::new(0, size).map_or_else(Vec::new, |all| pieces(&[all], min_split, connections))
}

/// Cuts each of `gaps` into equal pieces of about the same size, chosen
/// from their total: [`PIECES_PER_CONNECTION`] per connection, none below
/// `min_split` (a gap shorter than that stays whole).
pub(crate) fn pieces(gaps: &[ByteRange], min_split: u64, connections: usize) -> Vec<ByteRange> {
    let total: u64 = gaps.iter().map(|g| g.size()).sum();
    let count = (connections as u64)
        .max(1)
        .saturating_mul(PIECES_PER_CONNECTION);
    let piece = (total / count).max(min_split.max(1));
    gaps.iter()
        .flat_map(|gap| {
            let parts = (gap.size() / piece).max(1);
            (0..parts).filter_map(move |i| {
                ByteRange::new(
                    gap.start() + gap.size() * i / parts,
                    gap.start() + gap.size() * (i + 1) / parts,
                )
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::{Ask, FilePlan, GrantKind, Hedging, initial_segments};
    use hfd_store::RangeSet;
    use hfd_types::ByteRange;
    use std::time::Duration;
    use tokio::time::Instant;

    /// A connection that measured nothing yet (or a near one).
    const NEAR: Ask = Ask {
        bytes: 0,
        wait: Duration::ZERO,
    };

    /// A far connection that wants fresh ranges of `bytes`.
    fn far(bytes: u64) -> Ask {
        Ask {
            bytes,
            wait: Duration::from_millis(50),
        }
    }

    fn r(a: u64, b: u64) -> ByteRange {
        ByteRange::new(a, b).unwrap()
    }

    #[test]
    fn initial_split_cuts_pieces_per_connection_never_below_min_size() {
        // 1000 bytes, 4 connections: 8 pieces each (32 of 31-32 bytes).
        let cut = initial_segments(1000, 10, 4);
        assert_eq!(cut.len(), 32);
        assert_eq!((cut[0], cut[31]), (r(0, 31), r(968, 1000)));
        // 100 bytes with min 10: ten pieces, not 32 below the minimum.
        assert_eq!(initial_segments(100, 10, 4).len(), 10);
        // 25 bytes with min 10: 2 parts (3 would be below the minimum).
        assert_eq!(initial_segments(25, 10, 8), vec![r(0, 12), r(12, 25)]);
        // Small files are one request.
        assert_eq!(initial_segments(7, 10, 8), vec![r(0, 7)]);
        assert!(initial_segments(0, 10, 8).is_empty());
        assert_eq!(FilePlan::useful_connections(0, 10, 8), 0);
        assert_eq!(FilePlan::useful_connections(1, 10, 8), 1);
    }

    #[test]
    fn pieces_go_out_lowest_first() {
        let now = Instant::now();
        let mut plan = FilePlan::new(100, 10, 2, Hedging::Off);
        assert_eq!(plan.pending.len(), 10);
        assert_eq!(plan.assign(0, now, NEAR).unwrap().range, r(0, 10));
        assert_eq!(plan.assign(1, now, NEAR).unwrap().range, r(10, 20));
        // A failed request's rest is re-queued and is the lowest again.
        let lane = plan.assign(3, now, NEAR).unwrap();
        assert_eq!(lane.range, r(20, 30));
        plan.claim(lane.lane, 3, 20, 4);
        assert!(!plan.leave(lane.lane, 3));
        assert_eq!(plan.assign(3, now, NEAR).unwrap().range, r(24, 30));
        assert_eq!(plan.assign(4, now, NEAR).unwrap().range, r(30, 40));
    }

    #[test]
    fn a_far_connection_takes_adjacent_pieces_up_to_its_fair_share() {
        let now = Instant::now();
        // 20 pieces of 10 bytes for 3 connections.
        let mut plan = FilePlan::new(200, 10, 3, Hedging::Off);
        assert_eq!(plan.pending.len(), 20);
        // Unmeasured: one piece each.
        assert_eq!(plan.assign(0, now, NEAR).unwrap().range, r(0, 10));
        assert_eq!(plan.assign(1, now, NEAR).unwrap().range, r(10, 20));
        // Wants 45: five pieces (it stops once it has 45 or more), within
        // the fair share of 180 pending over 3 requests.
        let big = plan.assign(0, now, far(45)).unwrap();
        assert_eq!((big.range, big.kind), (r(20, 70), GrantKind::Fresh));
        // 130 pending over 4 requests: at most 32 (four pieces, the
        // fourth crossing the limit), however much it wants.
        assert_eq!(plan.assign(2, now, far(1 << 20)).unwrap().range, r(70, 110));
        assert_eq!(plan.assign(3, now, NEAR).unwrap().range, r(110, 120));
        // 80 pending over 6 requests: 13 at most, so two pieces.
        assert_eq!(
            plan.assign(4, now, far(1 << 20)).unwrap().range,
            r(120, 140)
        );
        // Near the end the share is below a piece: single pieces.
        for _ in 0..6 {
            let g = plan.assign(5, now, far(1 << 20)).unwrap();
            assert_eq!(g.range.size(), 10);
        }
        assert!(!plan.has_pending());

        // A file ramping up shares with the connections it may run, not
        // only with those running: 200 bytes over 4 is 50.
        let mut plan = FilePlan::new(200, 10, 4, Hedging::Off);
        assert_eq!(plan.assign(0, now, far(1 << 20)).unwrap().range, r(0, 50));

        // Bytes already durable end the growth: [40, 50) is not joined
        // with [60, 70).
        let mut done = RangeSet::new();
        done.insert(r(0, 40));
        done.insert(r(50, 60));
        let mut plan = FilePlan::resumed(100, 10, 1, Hedging::Off, &done);
        assert_eq!(plan.assign(0, now, far(1 << 20)).unwrap().range, r(40, 50));
        assert_eq!(plan.assign(0, now, far(1 << 20)).unwrap().range, r(60, 80));
    }

    #[test]
    fn free_connection_takes_pending_then_splits_largest_lane() {
        let now = Instant::now();
        let mut plan = FilePlan::new(100, 50, 2, Hedging::Off);
        let a = plan.assign(0, now, NEAR).unwrap();
        assert_eq!((a.range, a.kind), (r(0, 50), GrantKind::Fresh));
        let b = plan.assign(1, now, NEAR).unwrap();
        assert_eq!(b.range, r(50, 100));
        plan.min_split = 10;
        // Worker 0 claims 10 bytes; lane b claims 30: the largest unclaimed
        // run is a's [10, 50), split at its midpoint 30.
        assert_eq!(plan.claim(a.lane, 0, 0, 10).take, 10);
        assert_eq!(plan.claim(b.lane, 1, 50, 30).take, 30);
        let c = plan.assign(2, now, NEAR).unwrap();
        assert_eq!((c.range, c.kind), (r(30, 50), GrantKind::Split));
        // Worker 0's lane now ends at 30: a chunk crossing it is cut.
        let claim = plan.claim(a.lane, 0, 10, 40);
        assert_eq!((claim.take, claim.lane_done), (20, true));
        assert!(plan.leave(a.lane, 0));
        assert_eq!(plan.unclaimed(), 20 + 20);
    }

    #[test]
    fn never_splits_below_min_split() {
        let now = Instant::now();
        let mut plan = FilePlan::new(39, 20, 4, Hedging::Off);
        // 39 bytes, min 20: one request only.
        let a = plan.assign(0, now, NEAR).unwrap();
        assert_eq!(a.range, r(0, 39));
        assert!(plan.assign(1, now, NEAR).is_none());
        let mut plan = FilePlan::new(40, 40, 1, Hedging::Off);
        plan.min_split = 20;
        let a = plan.assign(0, now, NEAR).unwrap();
        let b = plan.assign(1, now, NEAR).unwrap();
        assert_eq!((a.range, b.range), (r(0, 40), r(20, 40)));
        assert!(plan.assign(2, now, NEAR).is_none());
    }

    #[test]
    fn a_hedge_that_is_slow_too_gets_another_after_a_quarter_second() {
        let t0 = Instant::now();
        let mut plan = FilePlan::new(40, 20, 2, Hedging::On);
        let slow = plan.assign(0, t0, NEAR).unwrap();
        let fast = plan.assign(1, t0, NEAR).unwrap();
        plan.claim(slow.lane, 0, 0, 2);
        assert!(plan.claim(fast.lane, 1, 20, 20).lane_done);
        assert!(plan.leave(fast.lane, 1));
        let t1 = t0 + Duration::from_secs(1);
        let h1 = plan.assign(1, t1, NEAR).unwrap();
        assert_eq!((h1.kind, h1.lane), (GrantKind::Hedge, slow.lane));
        // Not again before the hedge has shown its rate.
        assert!(plan.assign(2, t1, NEAR).is_none());
        // The hedge is slow too (one byte in a quarter second): a second hedge.
        assert_eq!(plan.claim(slow.lane, 1, 2, 1).take, 1);
        assert!(
            plan.assign(2, t1 + Duration::from_millis(200), NEAR)
                .is_none()
        );
        let t2 = t1 + Duration::from_millis(250);
        let h2 = plan.assign(2, t2, NEAR).unwrap();
        assert_eq!(
            (h2.kind, h2.lane, h2.range),
            (GrantKind::Hedge, slow.lane, r(3, 20))
        );
        // Three requests feed the lane: no fourth, however long it takes.
        assert!(plan.assign(3, t2 + Duration::from_secs(5), NEAR).is_none());
    }

    #[test]
    fn tail_hedges_the_slowest_lane_and_first_finisher_wins() {
        let t0 = Instant::now();
        let mut plan = FilePlan::new(40, 20, 2, Hedging::On);
        plan.min_split = 10;
        let slow = plan.assign(0, t0, NEAR).unwrap();
        let fast = plan.assign(1, t0, NEAR).unwrap();
        plan.claim(slow.lane, 0, 0, 2);
        plan.claim(fast.lane, 1, 20, 15);
        let t1 = t0 + Duration::from_secs(1);
        // Unclaimed: slow 18, fast 5: nothing splits (min 10 per half).
        // Worker 2 hedges the lane expected to finish last (slow).
        let hedge = plan.assign(2, t1, NEAR).unwrap();
        assert_eq!(
            (hedge.kind, hedge.lane, hedge.range),
            (GrantKind::Hedge, slow.lane, r(2, 20))
        );
        // The fast lane is still hedgeable; the slow one is not twice.
        let h2 = plan.assign(3, t1, NEAR).unwrap();
        assert_eq!(h2.lane, fast.lane);
        assert!(plan.assign(4, t1, NEAR).is_none());
        // The hedge streams from 2 and overtakes the primary.
        assert_eq!(plan.claim(slow.lane, 2, 2, 10).take, 10);
        // The primary's next chunk [2, 4) is already claimed: skipped.
        let c = plan.claim(slow.lane, 0, 2, 2);
        assert_eq!((c.skip, c.take), (2, 0));
        // A chunk straddling the frontier is cut.
        let c = plan.claim(slow.lane, 0, 4, 10);
        assert_eq!((c.skip, c.take, c.offset), (8, 2, 12));
        let c = plan.claim(slow.lane, 2, 12, 8);
        assert_eq!((c.skip, c.take, c.offset, c.lane_done), (2, 6, 14, true));
        // The winner leaves: the loser's request is cancelled.
        assert!(!slow.token.is_cancelled());
        assert!(plan.leave(slow.lane, 2));
        assert!(slow.token.is_cancelled());
        assert!(plan.leave(slow.lane, 0));
    }

    #[test]
    fn tail_splits_a_healthy_lane_below_min_split_and_hedges_a_slow_one() {
        const KIB: u64 = 1 << 10;
        const MIB: u64 = 1 << 20;
        let t0 = Instant::now();
        // Three 1 MiB pieces (min_split 1 MiB), three connections.
        let mut plan = FilePlan::new(3 * MIB, MIB, 1, Hedging::On);
        let fast = plan.assign(0, t0, NEAR).unwrap();
        let half = plan.assign(1, t0, NEAR).unwrap();
        let slow = plan.assign(2, t0, NEAR).unwrap();
        let t1 = t0 + Duration::from_millis(100);
        // After 0.1 s: `fast` at 5 MiB/s (0.1 s left), `half` at 2.5 MiB/s
        // (0.3 s left), `slow` at 1 % of `fast` (a slow connection).
        plan.claim(fast.lane, 0, 0, 512 * KIB);
        plan.claim(half.lane, 1, MIB, 256 * KIB);
        plan.claim(slow.lane, 2, 2 * MIB, 5 * KIB);
        // Nothing pending, nothing splittable at 1 MiB: `half`, the healthy
        // lane that would finish last, loses the upper half of its rest.
        let g = plan.assign(3, t1, NEAR).unwrap();
        let mid = MIB + 256 * KIB + 384 * KIB;
        assert_eq!(
            (g.kind, g.range),
            (GrantKind::Split, r(mid, 2 * MIB)),
            "{g:?}"
        );
        // Next: `fast` has 0.1 s left at its rate, `half` 0.15 s (the upper
        // half has not streamed yet): `half` again, into 2 x 192 KiB.
        let g = plan.assign(4, t1, NEAR).unwrap();
        assert_eq!(g.kind, GrantKind::Split);
        assert_eq!(g.range, r(MIB + 256 * KIB + 192 * KIB, mid));
        // `fast` (0.1 s left): split too.
        let g = plan.assign(5, t1, NEAR).unwrap();
        assert_eq!((g.kind, g.range), (GrantKind::Split, r(768 * KIB, MIB)));
        // `half` (192 KiB, 0.075 s left) once more, into 96 KiB halves; then
        // no lane has more than 0.05 s left at its rate: hedges only. The
        // slow lane is never split (half of it would stay on the slow
        // connection).
        let g = plan.assign(6, t1, NEAR).unwrap();
        assert_eq!((g.kind, g.range.size()), (GrantKind::Split, 96 * KIB));
        for w in 7..12 {
            let next = plan.assign(w, t1, NEAR);
            assert!(
                next.as_ref().is_none_or(|n| n.kind == GrantKind::Hedge),
                "{next:?}"
            );
        }
        let slow_lane = plan.lanes.iter().find(|l| l.id == slow.lane).unwrap();
        assert_eq!(slow_lane.end, 3 * MIB);
    }

    #[test]
    fn a_far_connection_splits_or_hedges_only_lanes_with_two_waits_left() {
        const KIB: u64 = 1 << 10;
        const MIB: u64 = 1 << 20;
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_millis(100);
        // Two 1 MiB lanes: `a` at 5 MiB/s with 0.1 s left, `b` at 5 MiB/s
        // too, or at 1 % of that (a slow connection).
        let lanes = |b_claims: u64| {
            let mut plan = FilePlan::new(2 * MIB, MIB, 1, Hedging::On);
            let a = plan.assign(0, t0, NEAR).unwrap();
            let b = plan.assign(1, t0, NEAR).unwrap();
            plan.claim(a.lane, 0, 0, 512 * KIB);
            plan.claim(b.lane, 1, MIB, b_claims);
            (plan, b)
        };
        // 50 ms away a split's upper half or a hedge would start streaming
        // half-way through what is left: neither. A near connection splits.
        let (mut plan, _) = lanes(512 * KIB);
        assert!(plan.assign(2, t1, far(0)).is_none());
        assert_eq!(plan.assign(2, t1, NEAR).unwrap().kind, GrantKind::Split);
        // The slow lane, with seconds left, is hedged from far away, once
        // its request ran for two waits (before, its rate is unknown).
        let (mut plan, b) = lanes(5 * KIB);
        assert!(
            plan.assign(2, t0 + Duration::from_millis(60), far(0))
                .is_none()
        );
        let g = plan.assign(2, t1, far(0)).unwrap();
        assert_eq!((g.kind, g.lane), (GrantKind::Hedge, b.lane));
    }

    #[test]
    fn no_tail_splits_once_the_server_counts_connections() {
        const MIB: u64 = 1 << 20;
        let t0 = Instant::now();
        let mut plan = FilePlan::new(2 * MIB, MIB, 1, Hedging::On);
        let first = plan.assign(0, t0, NEAR).unwrap();
        let second = plan.assign(1, t0, NEAR).unwrap();
        plan.claim(first.lane, 0, 0, MIB / 4);
        plan.claim(second.lane, 1, MIB, MIB / 4);
        plan.no_tail_splits();
        let g = plan
            .assign(2, t0 + Duration::from_millis(100), NEAR)
            .unwrap();
        assert_eq!(g.kind, GrantKind::Hedge);
    }

    #[test]
    fn failed_request_requeues_from_last_claimed_byte() {
        let now = Instant::now();
        let mut plan = FilePlan::new(100, 100, 1, Hedging::On);
        let a = plan.assign(0, now, NEAR).unwrap();
        plan.claim(a.lane, 0, 0, 37);
        assert!(!plan.leave(a.lane, 0));
        let b = plan.assign(0, now, NEAR).unwrap();
        assert_eq!((b.range, b.kind), (r(37, 100), GrantKind::Fresh));
        plan.claim(b.lane, 0, 37, 63);
        assert!(plan.leave(b.lane, 0));
        assert!(plan.is_done());
    }

    #[test]
    fn hedged_lane_survives_one_failed_request() {
        let now = Instant::now();
        let mut plan = FilePlan::new(10, 10, 1, Hedging::On);
        let a = plan.assign(0, now, NEAR).unwrap();
        let h = plan.assign(1, now, NEAR).unwrap();
        assert_eq!(h.kind, GrantKind::Hedge);
        plan.claim(a.lane, 0, 0, 4);
        // The hedge fails: the primary keeps the lane, nothing is re-queued.
        assert!(!plan.leave(a.lane, 1));
        assert!(
            plan.assign(2, now, NEAR)
                .is_some_and(|g| g.kind == GrantKind::Hedge)
        );
    }

    #[test]
    fn resumed_plan_never_hands_out_done_bytes() {
        let now = Instant::now();
        let mut done = RangeSet::new();
        done.insert(r(0, 40));
        done.insert(r(50, 60));
        // Missing: [40, 50) and [60, 100); three connections, min 10: the
        // 40-byte run is cut into four pieces.
        let mut plan = FilePlan::resumed(100, 10, 3, Hedging::On, &done);
        assert_eq!(plan.unclaimed(), 50);
        let mut granted = Vec::new();
        for w in 0..5 {
            let g = plan.assign(w, now, NEAR).unwrap();
            assert_eq!(g.kind, GrantKind::Fresh);
            granted.push(g.range);
        }
        assert_eq!(
            granted,
            vec![r(40, 50), r(60, 70), r(70, 80), r(80, 90), r(90, 100)]
        );
        for g in &granted {
            assert!(!done.overlaps(*g), "{g} was already durable");
        }
        // Everything done: nothing to do.
        let mut all = RangeSet::new();
        all.insert(r(0, 100));
        assert!(FilePlan::resumed(100, 10, 4, Hedging::On, &all).is_done());
        // Nothing done: the same cut as a fresh plan.
        let fresh = FilePlan::resumed(100, 10, 4, Hedging::Off, &RangeSet::new());
        assert_eq!(fresh.pending, initial_segments(100, 10, 4));
    }
}
