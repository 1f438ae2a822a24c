//! Server text scrubbed of secrets before anything reads it.
//!
//! A hostile (or careless) server may echo the `Authorization` header, or a
//! presigned URL, in any text it controls: a header value (`ETag`,
//! `X-Repo-Commit`, `Location`, `Link`, `X-Error-Message`), a field of the
//! revision JSON, a listed path, an error body. Every answer's headers and
//! every JSON API body are scrubbed of the token here, as they arrive, so no
//! message, log line, event or file name built from them can carry it; the
//! text of error answers is also scrubbed of signed query parameters.

use bytes::Bytes;
use http::{HeaderMap, HeaderValue};

use super::hub_client::HubClient;

/// What replaces a secret.
const MASK: &[u8] = b"hf_***";

/// Query parameters whose value is a credential in a presigned URL (S3,
/// CloudFront, Azure, GCS).
const SIGNED_PARAMS: [&[u8]; 8] = [
    b"X-Amz-Signature=",
    b"X-Amz-Credential=",
    b"X-Amz-Security-Token=",
    b"Signature=",
    b"Key-Pair-Id=",
    b"Policy=",
    b"sig=",
    b"X-Goog-Signature=",
];

impl HubClient {
    /// The token's bytes, when there is a token.
    fn secret(&self) -> Option<&[u8]> {
        self.config()
            .token
            .as_ref()
            .map(|t| t.expose().as_bytes())
            .filter(|s| !s.is_empty())
    }

    /// Replaces the token in every header value.
    pub(super) fn scrub_headers(&self, headers: &mut HeaderMap) {
        let Some(secret) = self.secret() else { return };
        for value in headers.values_mut() {
            if contains(value.as_bytes(), secret) {
                let clean = scrub(value.as_bytes(), secret);
                *value = HeaderValue::from_bytes(&clean)
                    .unwrap_or_else(|_| HeaderValue::from_static("hf_***"));
            }
        }
    }

    /// `body` without the token.
    pub(super) fn scrub_body(&self, body: Bytes) -> Bytes {
        match self.secret() {
            Some(secret) if contains(&body, secret) => scrub(&body, secret).into(),
            _ => body,
        }
    }

    /// `text` without the token (for strings parsed from JSON, where the
    /// server may have escaped the token's characters).
    pub(super) fn scrub_text(&self, text: &str) -> String {
        match self.secret() {
            Some(secret) if contains(text.as_bytes(), secret) => {
                String::from_utf8_lossy(&scrub(text.as_bytes(), secret)).into_owned()
            }
            _ => text.to_owned(),
        }
    }
}

fn contains(text: &[u8], secret: &[u8]) -> bool {
    !secret.is_empty() && text.windows(secret.len()).any(|w| w == secret)
}

/// `text` with every occurrence of `secret` replaced by `hf_***`.
pub(super) fn scrub(text: &[u8], secret: &[u8]) -> Vec<u8> {
    if secret.is_empty() {
        return text.to_vec();
    }
    let mut out = Vec::with_capacity(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        if rest.starts_with(secret) {
            out.extend_from_slice(MASK);
            rest = &rest[secret.len()..];
        } else {
            out.push(rest[0]);
            rest = &rest[1..];
        }
    }
    out
}

/// `text` with the value of every signed query parameter replaced by
/// `<redacted>` (up to the next `&`, quote, space or end). Only for text
/// shown to the user: a `Location` to follow keeps its signature.
pub(super) fn scrub_signed(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        let at = &text[i..];
        let starts_param = i == 0 || matches!(text[i - 1], b'?' | b'&' | b' ' | b'"' | b'\'');
        if let Some(param) = SIGNED_PARAMS
            .iter()
            .find(|p| starts_param && at.len() >= p.len() && at[..p.len()].eq_ignore_ascii_case(p))
        {
            out.extend_from_slice(&at[..param.len()]);
            out.extend_from_slice(b"<redacted>");
            i += param.len();
            while i < text.len() && !matches!(text[i], b'&' | b'"' | b'\'' | b' ' | b'<' | b'>') {
                i += 1;
            }
        } else {
            out.push(text[i]);
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrub_removes_every_copy_of_the_secret() {
        assert_eq!(
            scrub(b"bad token Bearer hf_x1 and hf_x1.", b"hf_x1"),
            b"bad token Bearer hf_*** and hf_***."
        );
        assert_eq!(scrub(b"hf_", b"hf_x1"), b"hf_");
        assert_eq!(scrub(b"abc", b""), b"abc");
    }

    #[test]
    fn signed_parameters_are_redacted_in_text() {
        assert_eq!(
            scrub_signed(b"see https://cdn/x?X-Amz-Signature=abc123&a=1 \"sig=zz\""),
            b"see https://cdn/x?X-Amz-Signature=<redacted>&a=1 \"sig=<redacted>\"".as_slice()
        );
        assert_eq!(scrub_signed(b"design=ok"), b"design=ok".as_slice());
    }
}
