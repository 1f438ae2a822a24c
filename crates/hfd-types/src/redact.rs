//! URLs that are safe to print.

use std::fmt;

/// A URL whose query string (signatures, tokens) and userinfo never reach
/// `Display` or `Debug`.
///
/// CDN URLs are presigned: the query is a credential. Every error message and
/// log line that names a URL holds one of these, never the raw string.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RedactedUrl(String);

impl RedactedUrl {
    /// Wraps a URL string.
    pub fn new(url: impl Into<String>) -> Self {
        Self(url.into())
    }

    /// The full URL, query included. Only for sending requests.
    pub fn expose(&self) -> &str {
        &self.0
    }

    fn redacted(&self) -> String {
        let url = self.0.as_str();
        // Drop userinfo (`scheme://user:pass@host`).
        let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(authority_end);
        let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        let tail = match tail.split_once('?') {
            Some((path, _)) => format!("{path}?<redacted>"),
            None => tail.to_owned(),
        };
        if scheme.is_empty() {
            format!("{host}{tail}")
        } else {
            format!("{scheme}://{host}{tail}")
        }
    }
}

impl fmt::Display for RedactedUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Debug for RedactedUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RedactedUrl({})", self.redacted())
    }
}

impl From<&str> for RedactedUrl {
    fn from(s: &str) -> Self {
        Self::new(s)
    }
}

impl From<String> for RedactedUrl {
    fn from(s: String) -> Self {
        Self::new(s)
    }
}

#[cfg(test)]
mod tests {
    use super::RedactedUrl;

    #[test]
    fn hides_query_and_userinfo() {
        let u = RedactedUrl::new("https://u:secret@cdn.example/a/b?X-Amz-Signature=abc&x=1");
        assert_eq!(u.to_string(), "https://cdn.example/a/b?<redacted>");
        assert!(!format!("{u:?}").contains("secret"));
        assert!(!format!("{u:?}").contains("abc"));
        assert_eq!(RedactedUrl::new("http://h/p").to_string(), "http://h/p");
    }
}
