//! The hub's header parsers (`RateLimit`, `Retry-After`, `Link`, ETag,
//! request id) on arbitrary header values: never panic, and what they
//! return is consistent.
#![no_main]

use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Up to four header values separated by 0xFF bytes (invalid in values).
    let mut parts = data.split(|&b| b == 0xff);
    let mut headers = HeaderMap::new();
    for name in ["ratelimit", "retry-after", "link", "x-request-id"] {
        if let Some(part) = parts.next()
            && let Ok(value) = HeaderValue::from_bytes(part)
        {
            headers.append(name, value);
        }
    }
    let parsed = hfd_hub::fuzz_bridge::rate_limit(&headers);
    if let Some(rl) = &parsed
        && let Some(bucket) = &rl.bucket
    {
        assert!(!bucket.is_empty() && bucket.chars().count() <= 301);
    }
    let wait = hfd_hub::fuzz_bridge::rate_limit_wait(&headers);
    if let Some(hfd_hub::fuzz_bridge::RateLimit {
        remaining: Some(0),
        reset_secs: Some(t),
        ..
    }) = parsed
    {
        assert_eq!(
            wait,
            Some(std::time::Duration::from_secs(t.saturating_add(1)))
        );
    }
    let _ = hfd_hub::fuzz_bridge::retry_after(&headers);
    if let Some(next) = hfd_hub::fuzz_bridge::link_next(&headers) {
        assert!(!next.contains('>'), "{next:?}");
    }
    if let Some(id) = hfd_hub::fuzz_bridge::request_id(&headers) {
        assert!(!id.chars().any(char::is_control), "{id:?}");
    }
    let text = String::from_utf8_lossy(data);
    let etag = hfd_hub::normalize_etag(&text);
    assert!(etag.len() <= text.len());
    // Wrapping a normalised ETag as a weak one and normalising again is
    // the identity.
    assert_eq!(hfd_hub::normalize_etag(&format!("W/\"{etag}\"")), etag);
});
