//! Half-open byte ranges.

use std::fmt;

/// Half-open byte range `[start, end)` inside one file; never empty.
///
/// All segment arithmetic uses this form. The inclusive form of an HTTP
/// `Range:` header is produced only by [`ByteRange::to_range_header`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ByteRange {
    start: u64,
    end: u64,
}

impl ByteRange {
    /// A range `[start, end)`, or `None` when it would be empty.
    pub fn new(start: u64, end: u64) -> Option<Self> {
        (start < end).then_some(Self { start, end })
    }

    /// A range of `len` bytes from `start`, or `None` when `len` is 0 or the
    /// end overflows.
    pub fn with_len(start: u64, len: u64) -> Option<Self> {
        Self::new(start, start.checked_add(len)?)
    }

    /// First byte of the range.
    pub fn start(self) -> u64 {
        self.start
    }

    /// One past the last byte of the range.
    pub fn end(self) -> u64 {
        self.end
    }

    /// Number of bytes in the range (never 0).
    pub fn size(self) -> u64 {
        self.end - self.start
    }

    /// Whether `offset` lies inside the range.
    pub fn contains(self, offset: u64) -> bool {
        self.start <= offset && offset < self.end
    }

    /// The part of the range from `offset` on, or `None` if nothing is left.
    pub fn from_offset(self, offset: u64) -> Option<Self> {
        Self::new(offset.max(self.start), self.end)
    }

    /// Splits at `mid`, giving `[start, mid)` and `[mid, end)`; `None` unless
    /// `mid` lies strictly inside.
    pub fn split_at(self, mid: u64) -> Option<(Self, Self)> {
        Some((Self::new(self.start, mid)?, Self::new(mid, self.end)?))
    }

    /// The `Range` request header value. The only place an inclusive end is
    /// produced.
    pub fn to_range_header(self) -> String {
        format!("bytes={}-{}", self.start, self.end - 1)
    }
}

impl fmt::Display for ByteRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}, {})", self.start, self.end)
    }
}

#[cfg(test)]
mod tests {
    use super::ByteRange;

    #[test]
    fn empty_ranges_are_rejected() {
        assert!(ByteRange::new(5, 5).is_none());
        assert!(ByteRange::new(6, 5).is_none());
        assert!(ByteRange::with_len(u64::MAX, 2).is_none());
    }

    #[test]
    fn header_is_inclusive() {
        assert_eq!(ByteRange::new(0, 1).unwrap().to_range_header(), "bytes=0-0");
        assert_eq!(
            ByteRange::new(100, 200).unwrap().to_range_header(),
            "bytes=100-199"
        );
    }

    #[test]
    fn split_and_offsets() {
        let r = ByteRange::new(10, 20).unwrap();
        let (a, b) = r.split_at(15).unwrap();
        assert_eq!((a.start(), a.end(), b.start(), b.end()), (10, 15, 15, 20));
        assert!(r.split_at(10).is_none());
        assert!(r.split_at(20).is_none());
        assert_eq!(r.from_offset(18).unwrap().size(), 2);
        assert!(r.from_offset(20).is_none());
        assert_eq!(r.from_offset(3).unwrap(), r);
        assert!(r.contains(19) && !r.contains(20) && !r.contains(9));
    }
}
