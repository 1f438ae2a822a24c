//! The [`HubClient`] handle: its shared state and request counter, the
//! token policy, and sending one request.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use http::{Method, Request, Response, header};
use tracing::{debug, warn};
use url::Url;

use super::config::HubConfig;
use crate::endpoint::{Endpoint, UrlOrigin};
use crate::error::{Error, Result};
use hfd_http::{Body, ConnectionChoice, HttpClient, RequestBody};
use hfd_types::RedactedUrl;

/// A Hub client. Cheap to clone; clones share the counters and the
/// connection pool.
///
/// Cancel safety: every method is safe to drop mid-way; nothing is cached.
#[derive(Clone, Debug)]
pub struct HubClient {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: HubConfig,
    http: HttpClient,
    requests: AtomicU64,
    /// Whether any request has been answered yet.
    answered: AtomicBool,
}

/// The answer to one request.
pub(super) struct Sent {
    pub(super) response: Response<Body>,
    /// Whether the request carried the token.
    pub(super) authenticated: bool,
}

impl HubClient {
    /// A client for `config.endpoint`, sending requests through `http`'s
    /// pool. Its requests (metadata, resolves, regular files the hub serves
    /// itself) cost round trips, not bandwidth: over HTTP/2 they ride as
    /// streams on open connections ([`ConnectionChoice::Share`]).
    pub fn new(config: HubConfig, http: HttpClient) -> Self {
        Self {
            inner: Arc::new(Inner {
                config,
                http: http.with_connection_choice(ConnectionChoice::Share),
                requests: AtomicU64::new(0),
                answered: AtomicBool::new(false),
            }),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &HubConfig {
        &self.inner.config
    }

    /// The endpoint.
    pub fn endpoint(&self) -> &Endpoint {
        &self.inner.config.endpoint
    }

    /// HTTP requests sent so far by this client and its clones.
    pub fn requests_sent(&self) -> u64 {
        self.inner.requests.load(Ordering::Relaxed)
    }

    /// Whether a request to `url` may carry the token: it is the endpoint's
    /// origin (and [`HubConfig::send_token_to_endpoint`] allows it) or an
    /// official Hub host over https:443. Never a CDN host.
    pub fn sends_token_to(&self, url: &str) -> bool {
        Url::parse(url).is_ok_and(|u| self.token_allowed(&u))
    }

    /// One request, with the token when [`Self::token_allowed`] says so;
    /// on the connection of `after` (a same-origin redirect's body, read to
    /// its end first) when one is given.
    pub(super) async fn send_once(
        &self,
        method: &Method,
        url: &Url,
        after: Option<Body>,
    ) -> Result<Sent> {
        let config = &self.inner.config;
        let shown = RedactedUrl::new(url.as_str());
        let authenticated = self.token_allowed(url);
        let mut builder = Request::builder()
            .method(method.clone())
            .uri(url.as_str())
            .header(header::ACCEPT_ENCODING, "identity");
        if let Some(agent) = &config.user_agent {
            builder = builder.header(header::USER_AGENT, agent.as_str());
        }
        if authenticated && let Some(token) = &config.token {
            builder = builder.header(header::AUTHORIZATION, token.header_value());
        }
        let request = builder
            .body(RequestBody::default())
            .map_err(|e| Error::Malformed {
                url: shown.clone(),
                reason: format!("the URL cannot be requested: {e}"),
            })?;
        self.inner.requests.fetch_add(1, Ordering::Relaxed);
        debug!(method = %method, url = %shown, auth = authenticated, "hub request");
        let response =
            self.answer(request, url, &shown, after)
                .await
                .map_err(|source| match source {
                    // The server answered, but not in HTTP: say so rather
                    // than "cannot reach".
                    hfd_http::Error::MalformedResponse { source, .. } => Error::Malformed {
                        url: shown.clone(),
                        reason: format!(
                            "the response is not valid HTTP or its header exceeds the limits \
                             ({source})"
                        ),
                    },
                    // A plain-HTTP server answering a TLS handshake: retrying
                    // cannot help, the scheme is wrong.
                    source if url.scheme() == "https" && answered_plain_http(&source) => {
                        Error::Malformed {
                            url: shown.clone(),
                            reason: "the server answered the TLS handshake in plain HTTP: \
                                 this port speaks http://, not https://"
                                .to_owned(),
                        }
                    }
                    source => Error::Unreachable {
                        url: shown.clone(),
                        source,
                    },
                })?;
        self.inner.answered.store(true, Ordering::Relaxed);
        // Nothing the server sent may carry the token further (headers here,
        // JSON bodies in `api_get`, error bodies in `error_answer`).
        let (mut parts, body) = response.into_parts();
        self.scrub_headers(&mut parts.headers);
        Ok(Sent {
            response: http::Response::from_parts(parts, body),
            authenticated,
        })
    }

    /// Whether any request of this client has been answered yet. A refused
    /// connection before that is not retried (see [`super::retry`]).
    pub(super) fn has_answered(&self) -> bool {
        self.inner.answered.load(Ordering::Relaxed)
    }

    /// `http.send` bounded by [`HubConfig::answer_timeout`], with the
    /// "waiting for HOST" warning of [`HubConfig::waiting_note_after`].
    async fn answer(
        &self,
        request: Request<RequestBody>,
        url: &Url,
        shown: &RedactedUrl,
        after: Option<Body>,
    ) -> std::result::Result<Response<Body>, hfd_http::Error> {
        let config = &self.inner.config;
        let started = tokio::time::Instant::now();
        let http = &self.inner.http;
        let answer = async move {
            match after {
                Some(previous) => http.send_after(previous, request).await,
                None => http.send(request).await,
            }
        };
        tokio::pin!(answer);
        let far = Duration::from_hours(8760);
        let note_at = started + config.waiting_note_after.unwrap_or(far);
        let give_up_at = started + config.answer_timeout.unwrap_or(far);
        let mut noted = config.waiting_note_after.is_none();
        loop {
            tokio::select! {
                sent = &mut answer => return sent,
                () = tokio::time::sleep_until(note_at), if !noted => {
                    noted = true;
                    let host = url.host_str().unwrap_or("the hub");
                    let waited = note_at.duration_since(started).as_secs();
                    if let Some(limit) = config.answer_timeout {
                        warn!(
                            "waiting for {host}: no answer for {waited} s (giving up after {} s)",
                            limit.as_secs()
                        );
                    } else {
                        warn!("waiting for {host}: no answer for {waited} s");
                    }
                }
                () = tokio::time::sleep_until(give_up_at) => {
                    return Err(hfd_http::Error::Timeout {
                        url: shown.clone(),
                        seconds: give_up_at.duration_since(started).as_secs(),
                    });
                }
            }
        }
    }

    /// Whether a request to `url` carries the token (see
    /// [`Self::sends_token_to`]).
    pub(super) fn token_allowed(&self, url: &Url) -> bool {
        let config = &self.inner.config;
        if config.token.is_none() {
            return false;
        }
        let Some(origin) = UrlOrigin::of(url) else {
            return false;
        };
        let endpoint = &config.endpoint;
        origin.is_official_hub()
            || (origin == *endpoint.origin()
                && (config.send_token_to_endpoint || endpoint.is_official()))
    }

    /// `url` parsed, or [`Error::Malformed`].
    pub(super) fn parse_url(url: &str) -> Result<Url> {
        Url::parse(url).map_err(|e| Error::Malformed {
            url: RedactedUrl::new(url),
            reason: format!("not a valid URL: {e}"),
        })
    }
}

/// Whether `error` is rustls meeting a non-TLS answer (what an `https://`
/// URL on an HTTP port gets).
fn answered_plain_http(error: &hfd_http::Error) -> bool {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = current {
        if e.to_string().contains("InvalidContentType") {
            return true;
        }
        current = e.source();
    }
    false
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::auth::Token;
    use crate::endpoint::Endpoint;

    /// A client for `endpoint` with `token`, sending it to the endpoint
    /// when `to_endpoint` is set.
    pub(in crate::client) fn client(
        endpoint: &str,
        token: Option<&str>,
        to_endpoint: bool,
    ) -> HubClient {
        let config = HubConfig {
            endpoint: Endpoint::parse(endpoint).unwrap(),
            token: token.map(|t| Token::new(t).unwrap()),
            send_token_to_endpoint: to_endpoint,
            ..HubConfig::default()
        };
        HubClient::new(
            config,
            HttpClient::new(hfd_http::HttpConfig::default()).unwrap(),
        )
    }

    #[test]
    fn token_goes_to_hub_hosts_only() {
        let c = client("https://hf-mirror.com", Some("hf_x"), true);
        assert!(c.sends_token_to("https://hf-mirror.com/o/m/resolve/c/x"));
        assert!(c.sends_token_to("https://huggingface.co/o/m/resolve/c/x"));
        assert!(!c.sends_token_to("http://huggingface.co/x"));
        assert!(!c.sends_token_to("https://cdn-lfs.hf.co/x"));
        assert!(!c.sends_token_to("https://hf-mirror.com:8443/x"));
        let c = client("https://hf-mirror.com", Some("hf_x"), false);
        assert!(!c.sends_token_to("https://hf-mirror.com/o/m/resolve/c/x"));
        assert!(c.sends_token_to("https://huggingface.co/o/m/resolve/c/x"));
        let c = client("https://huggingface.co", Some("hf_x"), false);
        assert!(c.sends_token_to("https://huggingface.co/x"));
        let c = client("https://huggingface.co", None, true);
        assert!(!c.sends_token_to("https://huggingface.co/x"));
        let c = client("http://127.0.0.1:9000", Some("hf_x"), true);
        assert!(c.sends_token_to("http://127.0.0.1:9000/x"));
        assert!(!c.sends_token_to("http://127.0.0.1:9001/x"));
    }
}
