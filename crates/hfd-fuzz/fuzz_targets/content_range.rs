//! `hfd_http::parse_content_range`: never panics; what it accepts is a
//! non-empty range inside the total, and prints back to itself.
#![no_main]

use hfd_http::parse_content_range;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Some(parsed) = parse_content_range(text) else {
        return;
    };
    let (start, end) = (parsed.range.start(), parsed.range.end());
    assert!(start < end, "{text:?}: empty range accepted");
    if let Some(total) = parsed.total {
        assert!(end <= total, "{text:?}: range past the total accepted");
    }
    let total = parsed
        .total
        .map_or_else(|| "*".to_owned(), |t| t.to_string());
    let canonical = format!("bytes {start}-{}/{total}", end - 1);
    assert_eq!(parse_content_range(&canonical), Some(parsed), "{text:?}");
});
