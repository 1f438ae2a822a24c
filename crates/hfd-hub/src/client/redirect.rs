//! The redirect policy (which hops are followed, docs/hub-protocol.md §4.3) and
//! following a chain of redirects to its [`Answer`].

use http::{HeaderMap, Method, Response, StatusCode, header};
use tracing::debug;
use url::Url;

use super::hub_client::{HubClient, Sent};
use crate::endpoint::{Endpoint, UrlOrigin};
use crate::error::{Error, Result};
use hfd_http::Body;
use hfd_types::RedactedUrl;

/// One answer at the end of a redirect chain.
pub(super) struct Answer {
    /// The URL that gave `response`.
    pub(super) url: Url,
    pub(super) response: Response<Body>,
    /// Whether the request that got `response` carried the token.
    pub(super) authenticated: bool,
    /// For a redirect we stopped at: its target.
    pub(super) location: Option<Url>,
}

/// What [`HubClient::follow`] does at a redirect the policy does not follow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ForeignRedirect {
    /// Fail with [`Error::OffHubRedirect`] (JSON API requests).
    Refuse,
    /// Return the answer with its `location` (resolves: a CDN hop).
    Return,
}

impl HubClient {
    /// Sends `method` to `start`, following redirects the policy allows;
    /// `foreign` says what happens at one it must not follow.
    pub(super) async fn follow(
        &self,
        method: &Method,
        start: Url,
        foreign: ForeignRedirect,
    ) -> Result<Answer> {
        let max = self.config().max_redirects;
        let first = RedactedUrl::new(start.as_str());
        let mut url = start;
        // A same-origin redirect's body: its connection carries the next hop.
        let mut previous = None;
        for _ in 0..=max {
            let Sent {
                response,
                authenticated,
            } = self.send_once(method, &url, previous.take()).await?;
            let status = response.status();
            if !status.is_redirection() || status == StatusCode::NOT_MODIFIED {
                return Ok(Answer {
                    url,
                    response,
                    authenticated,
                    location: None,
                });
            }
            let target = self
                .endpoint()
                .keep_prefix(redirect_target(&url, response.headers())?);
            if may_follow(self.endpoint(), &url, &target) {
                debug!(
                    from = %RedactedUrl::new(url.as_str()),
                    to = %RedactedUrl::new(target.as_str()),
                    status = status.as_u16(),
                    "following redirect"
                );
                if UrlOrigin::of(&url) == UrlOrigin::of(&target) {
                    // The Hub's regular files: `resolve` → `resolve-cache` on
                    // the same host. The next hop goes out on this
                    // connection, not back through the pool.
                    previous = Some(response.into_body());
                } else {
                    drain(response).await;
                }
                url = target;
                continue;
            }
            if url.scheme() == "https" && target.scheme() != "https" {
                return Err(Error::InsecureRedirect {
                    from: RedactedUrl::new(url.as_str()),
                    to: RedactedUrl::new(target.as_str()),
                });
            }
            if foreign == ForeignRedirect::Refuse {
                return Err(Error::OffHubRedirect {
                    from: RedactedUrl::new(url.as_str()),
                    to: RedactedUrl::new(target.as_str()),
                });
            }
            return Ok(Answer {
                url,
                response,
                authenticated,
                location: Some(target),
            });
        }
        Err(Error::TooManyRedirects {
            url: first,
            hops: max,
        })
    }
}

/// Reads a small redirect body so the connection can be reused; drops it
/// unread when it is large or of unknown size.
async fn drain(response: Response<Body>) {
    let small = response
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|n| n <= 64 * 1024);
    if small {
        let _ = response.into_body().collect_limited(64 * 1024).await;
    }
}

/// The absolute target of a redirect, resolved against `current` (RFC 3986:
/// the target's query is kept, the base query is not).
pub(crate) fn redirect_target(current: &Url, response_headers: &HeaderMap) -> Result<Url> {
    let malformed = |reason: String| Error::Malformed {
        url: RedactedUrl::new(current.as_str()),
        reason,
    };
    let location = response_headers
        .get(header::LOCATION)
        .ok_or_else(|| malformed("a redirect without a Location header".to_owned()))?
        .to_str()
        .map_err(|_| malformed("a Location header that is not ASCII".to_owned()))?;
    current
        .join(location.trim())
        .map_err(|e| malformed(format!("an unreadable Location header: {e}")))
}

/// The redirect policy of docs/hub-protocol.md §4.3: never https→http; same origin
/// (scheme, host, port) is followed; otherwise only https Hub hosts.
pub(crate) fn may_follow(endpoint: &Endpoint, from: &Url, to: &Url) -> bool {
    let (Some(from_origin), Some(to_origin)) = (UrlOrigin::of(from), UrlOrigin::of(to)) else {
        return false;
    };
    if from_origin.is_https() && !to_origin.is_https() {
        return false;
    }
    if from_origin == to_origin {
        return true;
    }
    to_origin.is_https() && endpoint.is_hub_url(to)
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
    fn redirect_targets_resolve_per_rfc3986() {
        // Appendix B 3: the target's query is kept, the base's dropped.
        let base = Url::parse("https://huggingface.co/o/m/resolve/c/a.txt?base=1").unwrap();
        let t = redirect_target(
            &base,
            &headers(&[(
                "location",
                "/api/resolve-cache/models/o/m/c/a.txt?etag=%22x%22",
            )]),
        )
        .unwrap();
        assert_eq!(
            t.as_str(),
            "https://huggingface.co/api/resolve-cache/models/o/m/c/a.txt?etag=%22x%22"
        );
        let t = redirect_target(&base, &headers(&[("location", "../other")])).unwrap();
        assert_eq!(t.as_str(), "https://huggingface.co/o/m/resolve/other");
        assert!(redirect_target(&base, &HeaderMap::new()).is_err());
    }

    #[test]
    fn redirect_policy() {
        let mirror = Endpoint::parse("https://hf-mirror.com").unwrap();
        let u = |s: &str| Url::parse(s).unwrap();
        let from = u("https://hf-mirror.com/o/m/resolve/c/x");
        // Same origin: followed.
        assert!(may_follow(
            &mirror,
            &from,
            &u("https://hf-mirror.com/api/resolve-cache/x")
        ));
        // Mirror → official Hub over https: followed (hf-mirror's 308).
        assert!(may_follow(
            &mirror,
            &from,
            &u("https://huggingface.co/o/m/resolve/c/x")
        ));
        // CDN: stop.
        assert!(!may_follow(
            &mirror,
            &from,
            &u("https://cdn-lfs.hf-mirror.com/x?sig=1")
        ));
        assert!(!may_follow(
            &mirror,
            &from,
            &u("https://cas-bridge.xethub.hf.co/x")
        ));
        // Downgrade and other port: stop.
        assert!(!may_follow(&mirror, &from, &u("http://hf-mirror.com/x")));
        assert!(!may_follow(&mirror, &from, &u("http://huggingface.co/x")));
        assert!(!may_follow(
            &mirror,
            &from,
            &u("https://hf-mirror.com:8443/x")
        ));
        assert!(!may_follow(
            &mirror,
            &from,
            &u("https://huggingface.co:444/x")
        ));
        // A plain-http local endpoint follows its own origin only.
        let local = Endpoint::parse("http://127.0.0.1:9000").unwrap();
        let from = u("http://127.0.0.1:9000/o/m/resolve/c/x");
        assert!(may_follow(
            &local,
            &from,
            &u("http://127.0.0.1:9000/api/resolve-cache/x")
        ));
        assert!(!may_follow(
            &local,
            &from,
            &u("http://127.0.0.1:9001/cdn/x")
        ));
        assert!(!may_follow(&local, &from, &u("http://localhost:9000/x")));
    }
}
