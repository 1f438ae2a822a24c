//! Percent-encoding of the URLs the hub writes and decoding of the ones it is sent.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

/// Encodes everything but unreserved characters and `/` (file paths in resolve URLs).
pub(super) const PATH_SET: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');
/// Encodes everything but unreserved characters (revisions, query values).
pub(super) const COMPONENT_SET: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

pub(crate) fn encode_path(s: &str) -> String {
    utf8_percent_encode(s, PATH_SET).to_string()
}

pub(crate) fn encode_component(s: &str) -> String {
    utf8_percent_encode(s, COMPONENT_SET).to_string()
}

pub(super) fn decode_segments(path: &str) -> Option<Vec<String>> {
    path.split('/')
        .skip(1)
        .map(|s| {
            percent_decode_str(s)
                .decode_utf8()
                .ok()
                .map(std::borrow::Cow::into_owned)
        })
        .collect()
}

pub(super) fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    query
        .unwrap_or("")
        .split('&')
        .filter(|s| !s.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (form_decode(k), form_decode(v))
        })
        .collect()
}

pub(super) fn form_decode(s: &str) -> String {
    percent_decode_str(&s.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned()
}

pub(super) fn is_true(v: &str) -> bool {
    v.eq_ignore_ascii_case("true") || v == "1"
}
