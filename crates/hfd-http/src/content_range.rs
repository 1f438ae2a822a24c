//! The one place `Content-Range` is parsed.

use hfd_types::ByteRange;

/// A parsed `Content-Range: bytes a-b/total` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContentRange {
    /// The bytes this response carries, as a half-open range.
    pub range: ByteRange,
    /// The whole file's size, or `None` for `*`.
    pub total: Option<u64>,
}

/// Parses `bytes <first>-<last>/<total|*>`; `None` for anything else
/// (including the unsatisfied form `bytes */total`).
pub fn parse_content_range(value: &str) -> Option<ContentRange> {
    let rest = value.trim().strip_prefix("bytes")?;
    let rest = rest.strip_prefix(' ')?.trim_start();
    let (span, total) = rest.split_once('/')?;
    let (first, last) = span.split_once('-')?;
    let first: u64 = parse_digits(first)?;
    let last: u64 = parse_digits(last)?;
    let total = match total.trim() {
        "*" => None,
        t => Some(parse_digits(t)?),
    };
    let range = ByteRange::new(first, last.checked_add(1)?)?;
    if total.is_some_and(|t| range.end() > t) {
        return None;
    }
    Some(ContentRange { range, total })
}

fn parse_digits(s: &str) -> Option<u64> {
    let s = s.trim();
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::parse_content_range;

    #[test]
    fn edges() {
        let one = parse_content_range("bytes 0-0/1").unwrap();
        assert_eq!(
            (one.range.start(), one.range.end(), one.total),
            (0, 1, Some(1))
        );
        let last = parse_content_range("bytes 99-99/100").unwrap();
        assert_eq!((last.range.start(), last.range.size()), (99, 1));
        let unknown = parse_content_range("bytes 5-9/*").unwrap();
        assert_eq!(unknown.total, None);
        for bad in [
            "bytes */100",
            "bytes 10-5/100",
            "bytes 0-100/100",
            "items 0-1/2",
            "bytes -1-2/3",
            "bytes 0-1/",
            "bytes=0-1/2",
            "bytes 0-18446744073709551615/*",
            "",
        ] {
            assert!(parse_content_range(bad).is_none(), "{bad}");
        }
    }
}
