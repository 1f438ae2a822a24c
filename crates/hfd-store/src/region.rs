//! Sets of byte ranges: what is written, what is durable, what is in flight.

use hfd_types::ByteRange;

/// A set of bytes kept as sorted, disjoint, non-adjacent half-open ranges.
///
/// Inserting merges overlapping and touching ranges, so `ranges()` is always
/// the shortest description of the set.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RangeSet {
    ranges: Vec<ByteRange>,
}

impl RangeSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `range`, merging it with neighbours it overlaps or touches.
    pub fn insert(&mut self, range: ByteRange) {
        // First range whose end reaches `range.start` (touching counts).
        let first = self.ranges.partition_point(|r| r.end() < range.start());
        // One past the last range whose start is at or before `range.end`.
        let last = self.ranges.partition_point(|r| r.start() <= range.end());
        if first == last {
            self.ranges.insert(first, range);
            return;
        }
        let start = range.start().min(self.ranges[first].start());
        let end = range.end().max(self.ranges[last - 1].end());
        let merged = ByteRange::new(start, end).expect("merge of non-empty ranges is non-empty");
        self.ranges.splice(first..last, [merged]);
    }

    /// The ranges, sorted and disjoint.
    pub fn ranges(&self) -> &[ByteRange] {
        &self.ranges
    }

    /// Total bytes in the set.
    pub fn total(&self) -> u64 {
        self.ranges.iter().map(|r| r.size()).sum()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Whether every byte of `range` is in the set.
    pub fn contains_range(&self, range: ByteRange) -> bool {
        let i = self.ranges.partition_point(|r| r.end() <= range.start());
        self.ranges
            .get(i)
            .is_some_and(|r| r.start() <= range.start() && range.end() <= r.end())
    }

    /// Whether any byte of `range` is in the set.
    pub fn overlaps(&self, range: ByteRange) -> bool {
        let i = self.ranges.partition_point(|r| r.end() <= range.start());
        self.ranges.get(i).is_some_and(|r| r.start() < range.end())
    }

    /// If `offset` is in the set, the end of the run that contains it.
    pub fn run_end_from(&self, offset: u64) -> Option<u64> {
        let i = self.ranges.partition_point(|r| r.end() <= offset);
        self.ranges
            .get(i)
            .filter(|r| r.start() <= offset)
            .map(|r| r.end())
    }

    /// The bytes of `[0, size)` not in the set.
    pub fn gaps(&self, size: u64) -> Vec<ByteRange> {
        let mut out = Vec::new();
        let mut cursor = 0;
        for r in &self.ranges {
            if r.start() >= size {
                break;
            }
            out.extend(ByteRange::new(cursor, r.start()));
            cursor = r.end();
        }
        out.extend(ByteRange::new(cursor, size));
        out
    }

    /// Removes everything, returning the old set.
    #[must_use = "the old set is returned, not dropped silently"]
    pub fn take(&mut self) -> Self {
        std::mem::take(self)
    }
}

#[cfg(test)]
mod tests {
    use super::{ByteRange, RangeSet};

    fn r(a: u64, b: u64) -> ByteRange {
        ByteRange::new(a, b).unwrap()
    }

    #[test]
    fn merges_overlapping_and_touching() {
        let mut s = RangeSet::new();
        s.insert(r(10, 20));
        s.insert(r(30, 40));
        assert_eq!(s.ranges(), &[r(10, 20), r(30, 40)]);
        s.insert(r(20, 25));
        assert_eq!(s.ranges(), &[r(10, 25), r(30, 40)]);
        s.insert(r(0, 5));
        s.insert(r(24, 31));
        assert_eq!(s.ranges(), &[r(0, 5), r(10, 40)]);
        s.insert(r(2, 100));
        assert_eq!(s.ranges(), &[r(0, 100)]);
        assert_eq!(s.total(), 100);
    }

    #[test]
    fn queries() {
        let mut s = RangeSet::new();
        s.insert(r(10, 20));
        s.insert(r(30, 40));
        assert!(s.contains_range(r(10, 20)));
        assert!(s.contains_range(r(12, 13)));
        assert!(!s.contains_range(r(15, 31)));
        assert!(s.overlaps(r(19, 21)));
        assert!(!s.overlaps(r(20, 30)));
        assert!(s.overlaps(r(0, 11)));
        assert_eq!(s.run_end_from(10), Some(20));
        assert_eq!(s.run_end_from(19), Some(20));
        assert_eq!(s.run_end_from(20), None);
        assert_eq!(s.run_end_from(5), None);
        assert_eq!(s.gaps(50), vec![r(0, 10), r(20, 30), r(40, 50)]);
        assert_eq!(s.gaps(35), vec![r(0, 10), r(20, 30)]);
        assert!(RangeSet::new().gaps(0).is_empty());
    }
}
