//! Transfer counters, for tests and the CLI summary.

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
}
