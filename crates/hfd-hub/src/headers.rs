//! Parsing the Hub's response headers: ETags, `Link`, rate limits, request
//! ids and error texts.

use std::time::Duration;

use http::HeaderMap;

/// Longest server-supplied text (error message, request id) kept in errors.
const MAX_SERVER_TEXT: usize = 300;

/// Strips a leading `W/` and surrounding `"` from an ETag (docs/hub-protocol.md §4.4).
pub fn normalize_etag(raw: &str) -> String {
    let raw = raw.trim();
    let raw = raw.strip_prefix("W/").unwrap_or(raw);
    let raw = raw.strip_prefix('"').unwrap_or(raw);
    raw.strip_suffix('"').unwrap_or(raw).to_owned()
}

#[cfg_attr(
    not(fuzzing),
    expect(
        unreachable_pub,
        reason = "public for `fuzz_bridge`, built only when fuzzing"
    )
)]
/// The URL of the first `Link` entry whose `rel` includes `next`, across all
/// `Link` header values (RFC 8288). The URL may be relative.
pub fn link_next(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(http::header::LINK)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| find_rel(v, "next"))
}

/// Finds the target of the link with relation `rel` in one `Link` value.
pub(crate) fn find_rel(value: &str, rel: &str) -> Option<String> {
    let mut rest = value;
    loop {
        let start = rest.find('<')?;
        let after = &rest[start + 1..];
        let end = after.find('>')?;
        let target = &after[..end];
        let mut params = &after[end + 1..];
        // Params run until a comma outside quotes.
        let mut in_quotes = false;
        let mut stop = params.len();
        for (i, c) in params.char_indices() {
            match c {
                '"' => in_quotes = !in_quotes,
                ',' if !in_quotes => {
                    stop = i;
                    break;
                }
                _ => {}
            }
        }
        let next_rest = &params[stop..];
        params = &params[..stop];
        for param in params.split(';') {
            let Some((key, val)) = param.split_once('=') else {
                continue;
            };
            if key.trim().eq_ignore_ascii_case("rel") {
                let val = val.trim().trim_matches('"');
                if val
                    .split_ascii_whitespace()
                    .any(|r| r.eq_ignore_ascii_case(rel))
                {
                    return Some(target.trim().to_owned());
                }
            }
        }
        rest = next_rest;
    }
}

#[cfg_attr(
    not(fuzzing),
    expect(
        unreachable_pub,
        reason = "public for `fuzz_bridge`, built only when fuzzing"
    )
)]
/// A parsed `RateLimit: "<bucket>";r=<remaining>;t=<seconds>` header
/// (IETF ratelimit-headers draft, as the Hub sends it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RateLimit {
    /// Bucket name (`api`, `resolvers`, `pages`).
    pub bucket: Option<String>,
    /// Requests left in the window.
    pub remaining: Option<u64>,
    /// Seconds until the window resets.
    pub reset_secs: Option<u64>,
}

#[cfg_attr(
    not(fuzzing),
    expect(
        unreachable_pub,
        reason = "public for `fuzz_bridge`, built only when fuzzing"
    )
)]
/// Parses the `RateLimit` header, if present and readable.
pub fn rate_limit(headers: &HeaderMap) -> Option<RateLimit> {
    let value = headers.get("ratelimit")?.to_str().ok()?;
    let mut parsed = RateLimit {
        bucket: None,
        remaining: None,
        reset_secs: None,
    };
    for (i, item) in value.split(';').enumerate() {
        let item = item.trim();
        match item.split_once('=') {
            Some((key, val)) => {
                let val = val.trim().trim_matches('"').parse().ok();
                match key.trim() {
                    "r" => parsed.remaining = val,
                    "t" => parsed.reset_secs = val,
                    _ => {}
                }
            }
            None if i == 0 => {
                // Sanitised before the emptiness check: `" "` is no bucket
                // name (found by the rate_limit fuzz target).
                let bucket = sanitize(item.trim_matches('"'));
                if !bucket.is_empty() {
                    parsed.bucket = Some(bucket);
                }
            }
            None => {}
        }
    }
    Some(parsed)
}

#[cfg_attr(
    not(fuzzing),
    expect(
        unreachable_pub,
        reason = "public for `fuzz_bridge`, built only when fuzzing"
    )
)]
/// `Retry-After` as an integer number of seconds (the HTTP-date form is
/// ignored, as the reference client does).
pub fn retry_after(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

#[cfg_attr(
    not(fuzzing),
    expect(
        unreachable_pub,
        reason = "public for `fuzz_bridge`, built only when fuzzing"
    )
)]
/// How long to wait before retrying a rate-limited (or overloaded) request:
/// `t + 1` s when `RateLimit` shows `r=0`, else `Retry-After`, else `None`
/// (docs/hub-protocol.md §8).
pub fn rate_limit_wait(headers: &HeaderMap) -> Option<Duration> {
    if let Some(RateLimit {
        remaining: Some(0),
        reset_secs: Some(t),
        ..
    }) = rate_limit(headers)
    {
        return Some(Duration::from_secs(t.saturating_add(1)));
    }
    retry_after(headers).map(Duration::from_secs)
}

#[cfg_attr(
    not(fuzzing),
    expect(
        unreachable_pub,
        reason = "public for `fuzz_bridge`, built only when fuzzing"
    )
)]
/// The request id: `X-Request-Id`, else `X-Amzn-Trace-Id`, else `X-Amz-Cf-Id`.
pub fn request_id(headers: &HeaderMap) -> Option<String> {
    ["x-request-id", "x-amzn-trace-id", "x-amz-cf-id"]
        .iter()
        .find_map(|name| headers.get(*name)?.to_str().ok())
        .map(sanitize)
        .filter(|s| !s.is_empty())
}

/// A header as trimmed text, if present and visible ASCII.
pub(crate) fn text(headers: &HeaderMap, name: &str) -> Option<String> {
    let value = headers.get(name)?.to_str().ok()?.trim();
    (!value.is_empty()).then(|| sanitize(value))
}

/// A header parsed as a decimal `u64`.
pub(crate) fn number(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

/// Server-supplied text made safe to show: control characters dropped,
/// length capped.
pub(crate) fn sanitize(text: &str) -> String {
    let mut out: String = text
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_SERVER_TEXT)
        .collect();
    if text.chars().count() > MAX_SERVER_TEXT {
        out.push('…');
    }
    out.trim().to_owned()
}

/// The error text of a Hub error body: `{"error": "…"}`, `{"error": […]}`
/// or `{"error": …, "error_description": …}`.
pub(crate) fn body_error_message(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let error = value.get("error")?;
    let mut text = match error {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Array(items) => items
            .iter()
            .filter_map(|i| i.as_str())
            .collect::<Vec<_>>()
            .join("; "),
        _ => return None,
    };
    if let Some(desc) = value.get("error_description").and_then(|d| d.as_str()) {
        text.push_str(": ");
        text.push_str(desc);
    }
    let text = sanitize(&text);
    (!text.is_empty()).then_some(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn etags_are_normalized() {
        assert_eq!(normalize_etag("W/\"abc\""), "abc");
        assert_eq!(normalize_etag("\"abc\""), "abc");
        assert_eq!(normalize_etag("abc"), "abc");
        assert_eq!(normalize_etag(" \"a-10\" "), "a-10");
    }

    #[test]
    fn link_next_is_found_among_other_rels() {
        let h = headers(&[(
            "link",
            r#"<https://hub/api/models/o/m/tree/c?recursive=true&cursor=abc,def>; rel="next""#,
        )]);
        assert_eq!(
            link_next(&h).unwrap(),
            "https://hub/api/models/o/m/tree/c?recursive=true&cursor=abc,def"
        );
        let h = headers(&[(
            "link",
            r#"<https://e/api/x/xet-read-token/c>; rel="xet-auth", <https://cas/v1/r>; rel="xet-reconstruction-info""#,
        )]);
        assert_eq!(link_next(&h), None);
        assert_eq!(
            find_rel(
                r#"<https://e/a>; rel="xet-auth", <https://cas/v1/r>; rel="xet-reconstruction-info""#,
                "xet-reconstruction-info"
            )
            .unwrap(),
            "https://cas/v1/r"
        );
        let h = headers(&[
            ("link", r#"<https://a/prev>; rel="prev""#),
            ("link", r#"<https://a/p2>; title="a, b"; rel="last next""#),
        ]);
        assert_eq!(link_next(&h).unwrap(), "https://a/p2");
        let h = headers(&[("link", "</relative?cursor=1>; rel=next")]);
        assert_eq!(link_next(&h).unwrap(), "/relative?cursor=1");
        assert_eq!(link_next(&headers(&[("link", "garbage")])), None);
        assert_eq!(link_next(&HeaderMap::new()), None);
    }

    #[test]
    fn rate_limit_waits_t_plus_one_when_exhausted() {
        let h = headers(&[("ratelimit", r#""resolvers";r=0;t=5"#)]);
        let rl = rate_limit(&h).unwrap();
        assert_eq!(rl.bucket.as_deref(), Some("resolvers"));
        assert_eq!((rl.remaining, rl.reset_secs), (Some(0), Some(5)));
        assert_eq!(rate_limit_wait(&h), Some(Duration::from_secs(6)));
        // Not exhausted: Retry-After decides.
        let h = headers(&[("ratelimit", r#""api";r=10;t=100"#), ("retry-after", "7")]);
        assert_eq!(rate_limit_wait(&h), Some(Duration::from_secs(7)));
        // A blank bucket name is none (a fuzz finding).
        let h = headers(&[("ratelimit", "\"\"\" \"\"")]);
        assert_eq!(rate_limit(&h).unwrap().bucket, None);
        let h = headers(&[("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT")]);
        assert_eq!(rate_limit_wait(&h), None);
        assert_eq!(rate_limit_wait(&HeaderMap::new()), None);
    }

    #[test]
    fn request_id_precedence() {
        let h = headers(&[("x-amz-cf-id", "cf"), ("x-request-id", "Root=1")]);
        assert_eq!(request_id(&h).unwrap(), "Root=1");
        let h = headers(&[("x-amz-cf-id", "cf")]);
        assert_eq!(request_id(&h).unwrap(), "cf");
        assert_eq!(request_id(&HeaderMap::new()), None);
    }

    #[test]
    fn error_bodies() {
        assert_eq!(
            body_error_message(br#"{"error":"Repository not found"}"#).unwrap(),
            "Repository not found"
        );
        assert_eq!(
            body_error_message(br#"{"error":["a","b"]}"#).unwrap(),
            "a; b"
        );
        assert_eq!(
            body_error_message(br#"{"error":"x","error_description":"y"}"#).unwrap(),
            "x: y"
        );
        assert_eq!(body_error_message(b"<html>"), None);
        let long = format!(r#"{{"error":"{}\n"}}"#, "a".repeat(1000));
        let msg = body_error_message(long.as_bytes()).unwrap();
        assert!(msg.chars().count() <= 301 && !msg.contains('\n'));
    }
}
