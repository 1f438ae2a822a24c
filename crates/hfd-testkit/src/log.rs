//! The request log and per-connection statistics.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Which listener answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Origin {
    /// The hub API / resolve listener ([`crate::FakeHub::endpoint`]).
    Hub,
    /// The CDN listener LFS redirects point at ([`crate::FakeHub::cdn_endpoint`]).
    Cdn,
}

/// What kind of endpoint a request hit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Route {
    /// `/api/...` JSON endpoints (repo info, tree, paths-info, refs, whoami).
    Api,
    /// `/{prefix}{repo}/resolve/{rev}/{path}`.
    Resolve,
    /// `/api/resolve-cache/...`, where public regular files are served.
    ResolveCache,
    /// A presigned CDN URL.
    Cdn,
    /// Anything else (answered 404).
    Other,
}

/// One answered request, as recorded by the fake hub.
#[derive(Clone, Debug)]
pub struct LogEntry {
    /// Order of arrival, from 0.
    pub seq: u64,
    /// Listener that answered.
    pub origin: Origin,
    /// Endpoint class.
    pub route: Route,
    /// Id of the TCP connection (unique across both listeners).
    pub connection_id: u64,
    /// `GET`, `HEAD`, `POST`, ...
    pub method: String,
    /// Request path as sent (still percent-encoded).
    pub path: String,
    /// Raw query string, if any.
    pub query: Option<String>,
    /// `HTTP/1.1` or `HTTP/2.0`.
    pub version: String,
    /// Response status.
    pub status: u16,
    /// The `Range` request header, if any.
    pub range: Option<String>,
    /// Whether the request carried an `Authorization` header.
    pub has_authorization: bool,
    /// The `Location` response header, if any.
    pub location: Option<String>,
    /// Name of the fault that fired on this request, if any.
    pub fault: Option<&'static str>,
    /// Body bytes handed to the connection so far.
    pub body_bytes: u64,
}

impl LogEntry {
    /// Path and query as sent.
    pub fn path_and_query(&self) -> String {
        match &self.query {
            Some(q) => format!("{}?{q}", self.path),
            None => self.path.clone(),
        }
    }
}

#[derive(Debug)]
pub(crate) struct EntryCell {
    pub(crate) entry: Mutex<LogEntry>,
    pub(crate) body_bytes: AtomicU64,
}

/// Statistics of one accepted TCP connection.
#[derive(Clone, Debug)]
pub struct ConnectionStats {
    /// Connection id (matches [`LogEntry::connection_id`]).
    pub id: u64,
    /// Listener that accepted it.
    pub origin: Origin,
    /// Index among connections of that listener, from 0.
    pub index: u64,
    /// Rate limit in bytes per second, if throttled.
    pub rate_limit: Option<u64>,
    /// Token-bucket capacity in bytes (how far writes may run ahead of the rate).
    pub burst: u64,
    /// When it was accepted (the token bucket starts full at this instant).
    pub opened_at: Instant,
    /// Bytes written to the socket (headers, bodies and TLS records).
    pub bytes_written: u64,
    /// Bytes read from the socket.
    pub bytes_read: u64,
    /// Whether the connection is closed.
    pub closed: bool,
    /// Whether a fault reset it.
    pub reset: bool,
}

#[derive(Debug)]
pub(crate) struct ConnShared {
    pub(crate) id: u64,
    pub(crate) origin: Origin,
    pub(crate) index: u64,
    pub(crate) rate_limit: Option<u64>,
    pub(crate) burst: u64,
    pub(crate) opened_at: Instant,
    pub(crate) bytes_written: AtomicU64,
    pub(crate) bytes_read: AtomicU64,
    pub(crate) closed: AtomicBool,
    pub(crate) kill: AtomicBool,
    pub(crate) kill_notify: tokio::sync::Notify,
    /// Opened while its client already had the listener's connection cap
    /// (`FakeHubBuilder::max_connections_per_client`): every request on it
    /// is answered 429 and the connection closed.
    pub(crate) over_cap: bool,
}

impl ConnShared {
    /// Asks for the connection to be torn down with a TCP reset.
    pub(crate) fn kill(&self) {
        self.kill.store(true, Ordering::SeqCst);
        self.kill_notify.notify_one();
    }

    fn stats(&self) -> ConnectionStats {
        ConnectionStats {
            id: self.id,
            origin: self.origin,
            index: self.index,
            rate_limit: self.rate_limit,
            burst: self.burst,
            opened_at: self.opened_at,
            bytes_written: self.bytes_written.load(Ordering::SeqCst),
            bytes_read: self.bytes_read.load(Ordering::SeqCst),
            closed: self.closed.load(Ordering::SeqCst),
            reset: self.kill.load(Ordering::SeqCst),
        }
    }
}

/// Everything the fake hub answered, in order, plus connection statistics.
///
/// Cloned entries are snapshots; [`LogEntry::body_bytes`] reflects the moment of the call.
#[derive(Debug, Default)]
pub struct RequestLog {
    entries: Mutex<Vec<Arc<EntryCell>>>,
    connections: Mutex<Vec<Arc<ConnShared>>>,
    seq: AtomicU64,
}

impl RequestLog {
    pub(crate) fn record(&self, mut entry: LogEntry) -> Arc<EntryCell> {
        entry.seq = self.seq.fetch_add(1, Ordering::SeqCst);
        let cell = Arc::new(EntryCell {
            entry: Mutex::new(entry),
            body_bytes: AtomicU64::new(0),
        });
        lock(&self.entries).push(cell.clone());
        cell
    }

    pub(crate) fn add_connection(&self, conn: Arc<ConnShared>) {
        lock(&self.connections).push(conn);
    }

    /// Snapshot of every entry so far.
    pub fn entries(&self) -> Vec<LogEntry> {
        lock(&self.entries)
            .iter()
            .map(|c| {
                let mut e = lock(&c.entry).clone();
                e.body_bytes = c.body_bytes.load(Ordering::SeqCst);
                e
            })
            .collect()
    }

    /// Forgets all entries (connection statistics are kept).
    pub fn clear(&self) {
        lock(&self.entries).clear();
    }

    /// Number of entries matching `pred`.
    pub fn count(&self, pred: impl Fn(&LogEntry) -> bool) -> usize {
        self.entries().iter().filter(|e| pred(e)).count()
    }

    /// Requests to `/resolve/` (any method).
    pub fn resolve_count(&self) -> usize {
        self.count(|e| e.route == Route::Resolve)
    }

    /// Requests carrying a `Range` header.
    pub fn range_request_count(&self) -> usize {
        self.count(|e| e.range.is_some())
    }

    /// Answers with status >= 400.
    pub fn error_count(&self) -> usize {
        self.count(|e| e.status >= 400)
    }

    /// CDN requests that carried an `Authorization` header (should be 0).
    pub fn cdn_requests_with_authorization(&self) -> usize {
        self.count(|e| e.origin == Origin::Cdn && e.has_authorization)
    }

    /// Distinct TCP connections that sent at least one request to `origin`.
    pub fn distinct_connections(&self, origin: Origin) -> usize {
        let mut ids: Vec<u64> = self
            .entries()
            .iter()
            .filter(|e| e.origin == origin)
            .map(|e| e.connection_id)
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids.len()
    }

    /// Body bytes served by `origin` (all entries).
    pub fn bytes_served(&self, origin: Origin) -> u64 {
        self.entries()
            .iter()
            .filter(|e| e.origin == origin)
            .map(|e| e.body_bytes)
            .sum()
    }

    /// Names of the faults that fired, in order.
    pub fn faults_fired(&self) -> Vec<&'static str> {
        self.entries().iter().filter_map(|e| e.fault).collect()
    }

    /// Statistics of every accepted connection, in accept order.
    pub fn connections(&self) -> Vec<ConnectionStats> {
        lock(&self.connections).iter().map(|c| c.stats()).collect()
    }

    /// Statistics of one connection.
    pub fn connection(&self, id: u64) -> Option<ConnectionStats> {
        lock(&self.connections)
            .iter()
            .find(|c| c.id == id)
            .map(|c| c.stats())
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
