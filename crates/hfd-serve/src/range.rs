//! The `Range` request header, as a file server answers it (RFC 9110 §14).

/// What to send for a request on a file of `size` bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RangeAnswer {
    /// No usable range: the whole file, 200.
    Full,
    /// Half-open `[start, end)`, 206 with `Content-Range: bytes start-(end-1)/size`.
    Partial { start: u64, end: u64 },
    /// 416 with `Content-Range: bytes */size`.
    Unsatisfiable,
}

/// Answers a `Range` header against `size`. A header that is not one
/// well-formed `bytes=` range (other units, several ranges, garbage) is
/// ignored, as RFC 9110 allows: the whole file is sent.
pub(crate) fn answer(header: Option<&str>, size: u64) -> RangeAnswer {
    let Some(spec) = header
        .map(str::trim)
        .and_then(|h| h.strip_prefix("bytes="))
        .map(str::trim)
    else {
        return RangeAnswer::Full;
    };
    if spec.contains(',') {
        return RangeAnswer::Full;
    }
    let Some((first, last)) = spec.split_once('-') else {
        return RangeAnswer::Full;
    };
    let (first, last) = (first.trim(), last.trim());
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if first.is_empty() {
        // Suffix range: the last N bytes.
        if !digits(last) {
            return RangeAnswer::Full;
        }
        let Ok(n) = last.parse::<u64>() else {
            // More digits than u64 holds: longer than any file.
            return if size == 0 {
                RangeAnswer::Unsatisfiable
            } else {
                RangeAnswer::Partial {
                    start: 0,
                    end: size,
                }
            };
        };
        if n == 0 || size == 0 {
            return RangeAnswer::Unsatisfiable;
        }
        return RangeAnswer::Partial {
            start: size.saturating_sub(n),
            end: size,
        };
    }
    if !digits(first) || !(last.is_empty() || digits(last)) {
        return RangeAnswer::Full;
    }
    let Ok(start) = first.parse::<u64>() else {
        return RangeAnswer::Unsatisfiable;
    };
    let end = if last.is_empty() {
        size
    } else {
        // An overlong last position means "to the end".
        let last = last.parse::<u64>().unwrap_or(u64::MAX);
        if last < start {
            return RangeAnswer::Full;
        }
        last.saturating_add(1).min(size)
    };
    if start >= size {
        return RangeAnswer::Unsatisfiable;
    }
    RangeAnswer::Partial { start, end }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_ranges() {
        let p = |start, end| RangeAnswer::Partial { start, end };
        assert_eq!(answer(Some("bytes=0-0"), 10), p(0, 1));
        assert_eq!(answer(Some("bytes=2-5"), 10), p(2, 6));
        assert_eq!(answer(Some("bytes=2-"), 10), p(2, 10));
        assert_eq!(answer(Some("bytes=2-100"), 10), p(2, 10));
        assert_eq!(answer(Some("bytes=-3"), 10), p(7, 10));
        assert_eq!(answer(Some("bytes=-30"), 10), p(0, 10));
        assert_eq!(answer(Some(" bytes = 1 - 2 "), 10), RangeAnswer::Full);
        assert_eq!(answer(Some("bytes=1 - 2"), 10), p(1, 3));
        assert_eq!(
            answer(Some("bytes=9-99999999999999999999999"), 10),
            p(9, 10)
        );
    }

    #[test]
    fn unsatisfiable_and_ignored() {
        assert_eq!(answer(Some("bytes=10-"), 10), RangeAnswer::Unsatisfiable);
        assert_eq!(answer(Some("bytes=10-20"), 10), RangeAnswer::Unsatisfiable);
        assert_eq!(answer(Some("bytes=-0"), 10), RangeAnswer::Unsatisfiable);
        assert_eq!(answer(Some("bytes=0-"), 0), RangeAnswer::Unsatisfiable);
        assert_eq!(answer(Some("bytes=-5"), 0), RangeAnswer::Unsatisfiable);
        assert_eq!(answer(None, 10), RangeAnswer::Full);
        assert_eq!(answer(Some("items=0-1"), 10), RangeAnswer::Full);
        assert_eq!(answer(Some("bytes=0-1,3-4"), 10), RangeAnswer::Full);
        assert_eq!(answer(Some("bytes=5-2"), 10), RangeAnswer::Full);
        assert_eq!(answer(Some("bytes=a-2"), 10), RangeAnswer::Full);
        assert_eq!(answer(Some("bytes=-"), 10), RangeAnswer::Full);
        assert_eq!(answer(Some("bytes=+1-2"), 10), RangeAnswer::Full);
    }
}
