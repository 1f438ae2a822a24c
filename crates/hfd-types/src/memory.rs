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
        let spare = self.0.bytes().saturating_sub(Self::FIXED.bytes());
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
    fn a_budget_must_cover_the_fixed_part() {
        assert!(MemoryBudget::new(ByteSize::mib(8)).is_none());
        assert!(MemoryBudget::new(ByteSize::mib(17)).is_some());
    }
}
