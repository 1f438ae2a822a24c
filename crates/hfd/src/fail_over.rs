//! Endpoint fail-over: a download tried on each endpoint in turn (repeated
//! `--endpoint`), moving on while the failure is one another endpoint may
//! not have. Finished files are skipped and partials resume on the next
//! endpoint: the commit pins the content, so the journals still match.
//!
//! This is the one place that decides when to try the next endpoint; the
//! retries within one endpoint are the hub client's and the engine's.

use std::future::Future;

use hfd_engine::EngineConfig;
use hfd_http::HttpClient;
use hfd_hub::{HubClient, HubConfig};

use crate::download::Downloader;
use crate::error::{Error, ErrorKind, Result};

/// Runs a download against a list of endpoints, in order.
#[derive(Debug, Clone)]
pub struct FailOver {
    hubs: Vec<HubConfig>,
    http: HttpClient,
    engine: EngineConfig,
    rate_limit: Option<u64>,
}

/// The attempt on `failed` ended with `error`; the next one is on `next`.
#[derive(Debug)]
#[non_exhaustive]
pub struct FailingOver<'a> {
    /// The endpoint that failed.
    pub failed: &'a HubConfig,
    /// Why.
    pub error: &'a Error,
    /// The endpoint tried next.
    pub next: &'a HubConfig,
}

impl FailOver {
    /// One hub configuration per endpoint, in the order they are tried, over
    /// one shared HTTP client.
    pub fn new(hubs: Vec<HubConfig>, http: HttpClient, engine: EngineConfig) -> Self {
        Self {
            hubs,
            http,
            engine,
            rate_limit: None,
        }
    }

    /// Caps each attempt's download rate (`--limit-rate`).
    #[must_use]
    pub fn with_rate_limit(mut self, bytes_per_sec: Option<u64>) -> Self {
        self.rate_limit = bytes_per_sec;
        self
    }

    /// Calls `attempt` with a [`Downloader`] for each endpoint in turn (it
    /// plans and downloads) until one succeeds, fails in a way another
    /// endpoint would not fix, or the last one fails. Before each move to
    /// the next endpoint, `on_fail_over` hears why. With no endpoint at
    /// all, the hub's default configuration is used.
    pub async fn run<T, F, Fut>(
        &self,
        mut attempt: F,
        mut on_fail_over: impl FnMut(&FailingOver<'_>),
    ) -> Result<T>
    where
        F: FnMut(Downloader) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let default = [HubConfig::default()];
        let hubs = if self.hubs.is_empty() {
            &default[..]
        } else {
            &self.hubs[..]
        };
        let mut hubs = hubs.iter().peekable();
        loop {
            let hub = hubs.next().expect("at least one endpoint");
            let downloader = Downloader::new(
                HubClient::new(hub.clone(), self.http.clone()),
                self.http.clone(),
                self.engine.clone(),
            )
            .with_rate_limit(self.rate_limit);
            match attempt(downloader).await {
                Err(error) if another_endpoint_may_succeed(error.kind()) => match hubs.peek() {
                    Some(next) => on_fail_over(&FailingOver {
                        failed: hub,
                        error: &error,
                        next,
                    }),
                    None => return Err(error),
                },
                other => return other,
            }
        }
    }
}

/// Network failures (after retries), 5xx, rate limits and answers that are
/// not a hub's: a mirror may be down or overloaded where another is not. Not
/// found, auth, integrity and disk failures would be the same elsewhere.
fn another_endpoint_may_succeed(kind: ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::Network | ErrorKind::RateLimited { .. } | ErrorKind::Protocol
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_failures_another_endpoint_may_not_have_fail_over() {
        for kind in [
            ErrorKind::Network,
            ErrorKind::RateLimited { wait: None },
            ErrorKind::Protocol,
        ] {
            assert!(another_endpoint_may_succeed(kind), "{kind:?}");
        }
        for kind in [
            ErrorKind::Usage,
            ErrorKind::NotFound,
            ErrorKind::Auth,
            ErrorKind::Integrity,
            ErrorKind::Disk,
            ErrorKind::Cancelled,
        ] {
            assert!(!another_endpoint_may_succeed(kind), "{kind:?}");
        }
    }
}
