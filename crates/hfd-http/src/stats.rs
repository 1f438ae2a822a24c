//! Transfer counters, for tests and the CLI summary, and what they tell of
//! the link (its round trip, the streams a connection carries).

use std::time::Duration;

/// Counters of one origin (scheme, host, port).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct OriginStats {
    /// `scheme://host:port` (no credentials, no path).
    pub origin: String,
    /// TCP connections opened so far.
    pub connections_opened: u64,
    /// How many of them speak HTTP/2.
    pub http2_connections_opened: u64,
    /// Connections open right now.
    pub open_connections: usize,
    /// Requests written to a connection.
    pub requests_sent: u64,
    /// Response body bytes received.
    pub bytes_received: u64,
    /// The shortest time from a request written to its response head: the
    /// round trip plus the server's quickest answer (a request queued
    /// behind the server's stream limit only adds to it, so the minimum is
    /// the link's). `None` before the first response.
    pub fastest_response: Option<Duration>,
    /// Requests one open connection carries at once: the largest
    /// `SETTINGS_MAX_CONCURRENT_STREAMS` among the open HTTP/2 connections,
    /// 1 over HTTP/1.1, 0 with no connection open.
    pub streams_per_connection: usize,
}

/// A snapshot of a client's counters, from [`HttpClient::stats`](crate::HttpClient::stats).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct HttpStats {
    /// TCP connections opened, all origins.
    pub connections_opened: u64,
    /// Requests sent, all origins.
    pub requests_sent: u64,
    /// Response body bytes received, all origins.
    pub bytes_received: u64,
    /// Per origin, sorted by origin.
    pub origins: Vec<OriginStats>,
}

impl HttpStats {
    /// The counters of `origin`, written `scheme://host:port` with the port
    /// always present (`https://huggingface.co:443`).
    pub fn origin(&self, origin: &str) -> Option<&OriginStats> {
        self.origins.iter().find(|o| o.origin == origin)
    }

    /// The fastest response of any origin: the round trip to the nearest
    /// server this client talked to. `None` before the first response.
    pub fn fastest_response(&self) -> Option<Duration> {
        self.origins.iter().filter_map(|o| o.fastest_response).min()
    }
}
