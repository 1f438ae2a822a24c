//! [`MemoryBudget`]: the one bound on the bytes a download holds in memory,
//! and how it is shared between connections.

use crate::ByteSize;

/// The memory a download may use for bytes in flight (`--memory-budget`).
/// Each connection gets an equal share of what is left after a fixed part
/// (runtime, TLS state, hashers, listings); a share holds the bytes the
/// server may send before they are read (HTTP/2 windows, the HTTP/1.1 read
/// buffer) and the batch collected before one write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryBudget(ByteSize);

/// How one run shares a [`MemoryBudget`]: between its range connections
/// and the small files it fetches whole.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunShares {
    /// Each range connection's share.
    pub connection: ConnectionShare,
    /// What the small files in flight may hold at once.
    pub small_files: ByteSize,
}

/// One connection's share of a [`MemoryBudget`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionShare {
    /// Bytes received but not yet read that one connection may hold: its
    /// HTTP/2 stream and connection windows, its HTTP/1.1 read buffer.
    pub receive_window: u32,
    /// Bytes a connection collects before one blocking write.
    pub write_batch: u64,
}

impl MemoryBudget {
    /// The default budget: 64 MiB.
    pub const DEFAULT: Self = Self(ByteSize::mib(64));
    /// What the process needs besides connection buffers: code, runtime,
    /// thread stacks, TLS and HTTP/2 state, hashers, the file listing.
    pub const FIXED: ByteSize = ByteSize::mib(16);
    /// The smallest window HTTP/2 starts with (RFC 9113 §6.9.2); a smaller
    /// one would stall any server that sends a full initial window.
    const MIN_WINDOW: u64 = 65_535;
    /// Windows beyond this buy nothing even at 300 ms × 50 MB/s.
    const MAX_WINDOW: u64 = 16 << 20;
    const MIN_BATCH: u64 = 64 << 10;
    /// A connection reads nothing while its batch is written: larger
    /// batches made a TLS download 1.5× slower in wall time on a busy disk
    /// (`docs/decisions/0010-engine-floor.md`).
    const MAX_BATCH: u64 = 256 << 10;

    /// A budget of `size`; `None` when it does not cover the fixed part
    /// plus the smallest share of one connection.
    pub fn new(size: ByteSize) -> Option<Self> {
        (size.bytes() >= Self::minimum(1).bytes()).then_some(Self(size))
    }

    /// The budget's size.
    pub fn size(self) -> ByteSize {
        self.0
    }

    /// The smallest budget that gives `connections` their smallest shares.
    pub fn minimum(connections: usize) -> ByteSize {
        let per = 2 * (Self::MIN_WINDOW + Self::MIN_BATCH);
        ByteSize::new(Self::FIXED.bytes() + per.saturating_mul(connections.max(1) as u64))
    }

    /// Each of `connections`' share: half of it for the receive window, a
    /// quarter for the write batch, a quarter left for what the allocator
    /// and frame slicing add. Clamped to sane limits, so a budget below
    /// [`minimum`](Self::minimum) for this many connections is exceeded.
    pub fn share(self, connections: usize) -> ConnectionShare {
        Self::share_of(self.spare(), connections)
    }

    /// The shares of a run whose range requests can use `connections` TCP
    /// connections at once and whose small files (fetched whole) total
    /// `small_bytes`. Small files take what they total, at most a quarter
    /// (all of it when there are no ranges); the connections share the rest.
    /// A small file's body is no larger than its size, so the bytes small
    /// files hold are bounded by their share whatever the windows; a run of
    /// small files alone keeps large windows, which many streams on one
    /// HTTP/2 connection need behind a long round trip.
    pub fn for_run(self, connections: usize, small_bytes: u64) -> RunShares {
        let spare = self.spare();
        if connections == 0 {
            return RunShares {
                connection: Self::share_of(spare, 1),
                small_files: ByteSize::new(spare),
            };
        }
        let small = small_bytes.min(spare / 4);
        RunShares {
            connection: Self::share_of(spare - small, connections),
            small_files: ByteSize::new(small),
        }
    }

    /// What is left for connections and small files after the fixed part.
    fn spare(self) -> u64 {
        self.0.bytes().saturating_sub(Self::FIXED.bytes())
    }

    fn share_of(spare: u64, connections: usize) -> ConnectionShare {
        let each = spare / connections.max(1) as u64;
        let window = (each / 2).clamp(Self::MIN_WINDOW, Self::MAX_WINDOW);
        ConnectionShare {
            receive_window: u32::try_from(window).unwrap_or(u32::MAX),
            write_batch: (each / 4).clamp(Self::MIN_BATCH, Self::MAX_BATCH),
        }
    }
}

impl Default for MemoryBudget {
    fn default() -> Self {
        Self::DEFAULT
    }
}

#[cfg(test)]
mod tests {
    use super::{ByteSize, MemoryBudget};

    #[test]
    fn shares_fit_the_budget_and_stay_within_limits() {
        let b = MemoryBudget::DEFAULT;
        for connections in [1, 4, 16, 64, 256] {
            let s = b.share(connections);
            let used = MemoryBudget::FIXED.bytes()
                + connections as u64 * (u64::from(s.receive_window) + s.write_batch);
            assert!(used <= b.size().bytes(), "{connections}: {used}");
        }
        // 48 MiB over 64 connections: 768 KiB each.
        let s = b.share(64);
        assert_eq!(s.receive_window, 384 << 10);
        assert_eq!(s.write_batch, 192 << 10);
        // One connection: capped.
        assert_eq!(b.share(1).write_batch, 256 << 10);
        assert_eq!(b.share(1).receive_window, 16 << 20);
        // Very many: floors.
        assert_eq!(b.share(10_000).receive_window, 65_535);
    }

    #[test]
    fn a_run_shares_the_budget_between_range_connections_and_small_files() {
        let b = MemoryBudget::DEFAULT;
        // Two 512 MiB files at -x 64: 128 connections, 100 KiB of small
        // files: the connections get the rest, not a share of 320.
        let run = b.for_run(128, 100 << 10);
        assert_eq!(run.small_files, ByteSize::kib(100));
        let used = MemoryBudget::FIXED.bytes()
            + run.small_files.bytes()
            + 128 * (u64::from(run.connection.receive_window) + run.connection.write_batch);
        assert!(used <= b.size().bytes(), "{used}");
        assert!(run.connection.receive_window > b.share(320).receive_window);
        // Many small files: at most a quarter.
        assert_eq!(b.for_run(16, 1 << 40).small_files, ByteSize::mib(12));
        // Small files alone: all of it, and the largest windows.
        let alone = b.for_run(0, 1 << 40);
        assert_eq!(alone.small_files, ByteSize::mib(48));
        assert_eq!(alone.connection.receive_window, 16 << 20);
    }

    #[test]
    fn a_budget_must_cover_the_fixed_part() {
        assert!(MemoryBudget::new(ByteSize::mib(8)).is_none());
        assert!(MemoryBudget::new(ByteSize::mib(17)).is_some());
    }
}
