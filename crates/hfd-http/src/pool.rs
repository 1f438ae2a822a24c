//! Connection pools, one per origin (scheme, host, port).
//!
//! Each origin gets at most `max_per_origin` TCP connections (retired ones
//! not counted). HTTP/1.1 connections carry one request at a time and are
//! reused when their response body was read to the end. HTTP/2 connections
//! carry many streams, and a request says how it wants them
//! ([`ConnectionChoice`]): a [`Spread`](ConnectionChoice::Spread) request
//! (a byte range of a large file) goes to an idle connection, or a new one
//! while the cap allows, and shares the least-loaded one only at the cap, so
//! parallel ranges ride distinct sockets; a [`Share`](ConnectionChoice::Share)
//! request (a small file, metadata) becomes one more stream on an open
//! connection while one has room under the server's
//! `SETTINGS_MAX_CONCURRENT_STREAMS`, and a new connection is opened only
//! when all are full.
//!
//! A request holds a [`Lease`] on its connection until its response body
//! ends or is dropped. A lease dropped before the end closes an HTTP/1.1
//! connection (its state is unknown), and only releases a stream on HTTP/2.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant};

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::{TrySendError, http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::sync::Notify;
use tokio::task::AbortHandle;

use crate::connect::{BoxIo, Connector, Protocol, ServerOrigin};
use crate::error::{Error, Result};
use crate::request_body::RequestBody;
use crate::stats::{HttpStats, OriginStats};

/// Identifies one TCP connection for the lifetime of an [`HttpClient`](crate::HttpClient).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionId(u64);

impl ConnectionId {
    /// The number behind the id (unique per client, starting at 1).
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// How a request chooses among its origin's HTTP/2 connections (HTTP/1.1
/// connections carry one request each either way).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ConnectionChoice {
    /// A connection of its own while the cap allows: the ranges of a large
    /// file ride distinct TCP connections (mirrors throttle per connection,
    /// and a slow one can be told apart and retired).
    #[default]
    Spread,
    /// A stream on an open HTTP/2 connection while one has room under the
    /// server's `SETTINGS_MAX_CONCURRENT_STREAMS`; a new connection only
    /// when every one is full. For requests that cost round trips, not
    /// bandwidth: small files, metadata.
    Share,
}

/// Receive shares an HTTP/2 connection opened for shared streams may hold
/// at the connection level (each stream still holds at most one share).
/// Its streams together are the small files in flight, whose bytes the
/// engine bounds by their own budget; with one share for a hundred streams
/// a 50 ms round trip capped the whole dataset at 768 KiB per round trip.
const SHARED_CONNECTION_SHARES: u32 = 8;

/// A run of small files alone already gives each connection the largest
/// share (`MemoryBudget::for_run`); eight of those would buy nothing.
const MAX_SHARED_CONNECTION_WINDOW: u32 = 16 << 20;

/// Streams an HTTP/2 connection is assumed to allow until its server's
/// SETTINGS say otherwise (hyper's default; RFC 9113 §6.5.2 asks servers
/// for at least 100).
const DEFAULT_MAX_STREAMS: usize = 100;

/// How the exchange on a returned lease ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Exchange {
    /// Finished cleanly: an HTTP/1.1 connection may be reused.
    Clean,
    /// Failed or abandoned mid-way: an HTTP/1.1 connection is closed.
    Abandoned,
}

/// Which connection carried a response. Found in the response's
/// extensions and through [`Body::connection`](crate::Body::connection).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnectionInfo {
    /// The connection.
    pub id: ConnectionId,
    /// Its protocol.
    pub protocol: Protocol,
    /// Whether the connection had carried a request before this one.
    pub reused: bool,
    /// Whether it goes through a proxy.
    pub via_proxy: bool,
}

/// Settings of the pool itself.
#[derive(Debug, Clone)]
pub(crate) struct PoolSettings {
    pub(crate) max_per_origin: usize,
    pub(crate) idle_timeout: Duration,
    pub(crate) connect_timeout: Duration,
    /// HTTP/2 keep-alive ping interval and timeout (detects dead sockets).
    pub(crate) h2_keep_alive: Duration,
    /// Bytes one connection may hold received but unread: its HTTP/2 stream
    /// and connection windows, its HTTP/1.1 read buffer. Read when a
    /// connection opens; a run sizes it for the connections it will open
    /// ([`HttpClient::set_receive_window`](crate::HttpClient::set_receive_window)).
    pub(crate) receive_window: Arc<AtomicU32>,
    /// Over TLS, [`Spread`](ConnectionChoice::Spread) requests dial
    /// connections that offer HTTP/1.1 only (`HttpConfig::http1_for_ranges`).
    pub(crate) spread_over_http1: bool,
}

impl PoolSettings {
    fn receive_window(&self) -> u32 {
        self.receive_window.load(Ordering::Relaxed)
    }
}

/// All origins' pools.
pub(crate) struct Pool {
    connector: Connector,
    settings: PoolSettings,
    origins: Mutex<HashMap<ServerOrigin, Arc<OriginPool>>>,
    next_id: AtomicU64,
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("connector", &self.connector)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// Counters of one origin.
#[derive(Debug)]
pub(crate) struct Counters {
    connections_opened: AtomicU64,
    http2_connections_opened: AtomicU64,
    pub(crate) requests_sent: AtomicU64,
    pub(crate) bytes_received: AtomicU64,
    /// Nanoseconds of the fastest response head so far (`u64::MAX`: none).
    fastest_response_ns: AtomicU64,
}

impl Default for Counters {
    fn default() -> Self {
        Self {
            connections_opened: AtomicU64::new(0),
            http2_connections_opened: AtomicU64::new(0),
            requests_sent: AtomicU64::new(0),
            bytes_received: AtomicU64::new(0),
            fastest_response_ns: AtomicU64::new(u64::MAX),
        }
    }
}

impl Counters {
    /// A response head arrived `elapsed` after its request was written.
    pub(crate) fn note_response(&self, elapsed: Duration) {
        let ns = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX - 1);
        self.fastest_response_ns.fetch_min(ns, Ordering::Relaxed);
    }

    fn fastest_response(&self) -> Option<Duration> {
        match self.fastest_response_ns.load(Ordering::Relaxed) {
            u64::MAX => None,
            ns => Some(Duration::from_nanos(ns)),
        }
    }
}

/// The pool of one origin.
pub(crate) struct OriginPool {
    origin: ServerOrigin,
    state: Mutex<OriginState>,
    /// Signalled whenever a connection becomes free, appears or goes away.
    notify: Notify,
    pub(crate) counters: Counters,
}

#[derive(Default)]
struct OriginState {
    slots: Vec<Slot>,
    /// Connections being opened (each reserved by one waiting request).
    connecting: usize,
    /// The protocol the origin's last new connection spoke.
    protocol: Option<Protocol>,
}

struct Slot {
    id: ConnectionId,
    protocol: Protocol,
    via_proxy: bool,
    /// HTTP/1.1: `Some` while idle in the pool, `None` while leased.
    h1: Option<http1::SendRequest<RequestBody>>,
    /// HTTP/2: always `Some`.
    h2: Option<http2::SendRequest<RequestBody>>,
    /// HTTP/2: the connection itself (its task polls it), asked for the
    /// server's current `SETTINGS_MAX_CONCURRENT_STREAMS`.
    h2_conn: Option<SharedH2Connection>,
    in_flight: usize,
    served: u64,
    idle_since: Instant,
    retired: bool,
    task: AbortHandle,
}

impl Slot {
    /// An HTTP/2 connection that takes new streams.
    fn takes_streams(&self) -> bool {
        self.protocol == Protocol::Http2
            && !self.retired
            && self.h2.as_ref().is_some_and(http2::SendRequest::is_ready)
    }

    /// Whether one more stream stays within the server's limit.
    fn has_room(&self) -> bool {
        self.in_flight < self.max_streams()
    }

    /// HTTP/2: streams the server allows at once (as far as known; the
    /// value the connection started with until its SETTINGS arrive).
    /// HTTP/1.1: one.
    fn max_streams(&self) -> usize {
        self.h2_conn
            .as_ref()
            .map_or(1, |c| lock(c).current_max_send_streams())
    }

    fn is_dead(&self) -> bool {
        match self.protocol {
            Protocol::Http1 => self.h1.as_ref().is_some_and(http1::SendRequest::is_closed),
            Protocol::Http2 => self.h2.as_ref().is_none_or(http2::SendRequest::is_closed),
        }
    }
}

/// An HTTP/2 connection polled by its task and asked by the pool for the
/// server's stream limit (hyper answers that only on the connection; the
/// frames that change it are read by a task of hyper's own, so a copy taken
/// while polling would lag).
type SharedH2Connection =
    Arc<Mutex<Pin<Box<http2::Connection<TokioIo<BoxIo>, RequestBody, TokioExecutor>>>>>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

enum Step {
    /// A connection (HTTP/2 stream slot) ready to use.
    Ready(Lease),
    /// An idle HTTP/1.1 connection; wait for it to be ready first.
    Check(Lease),
    /// Open a new connection (HTTP/2: assuming `initial_streams` until the
    /// server says).
    Dial {
        reservation: Reservation,
        initial_streams: usize,
        /// Offer HTTP/1.1 only in the TLS handshake.
        http1_only: bool,
    },
    /// Wait for a connection to become free.
    Wait,
}

impl Pool {
    /// The time an idle connection gets to show it still takes requests.
    pub(crate) fn ready_timeout(&self) -> Duration {
        self.settings.connect_timeout
    }

    pub(crate) fn new(connector: Connector, settings: PoolSettings) -> Self {
        Self {
            connector,
            settings,
            origins: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
        }
    }

    pub(crate) fn set_receive_window(&self, window: u32) {
        self.settings
            .receive_window
            .store(window, Ordering::Relaxed);
    }

    fn origin_pool(&self, origin: &ServerOrigin) -> Arc<OriginPool> {
        let mut origins = lock(&self.origins);
        Arc::clone(origins.entry(origin.clone()).or_insert_with(|| {
            Arc::new(OriginPool {
                origin: origin.clone(),
                state: Mutex::new(OriginState::default()),
                notify: Notify::new(),
                counters: Counters::default(),
            })
        }))
    }

    /// A connection to `origin` for one request, chosen as `choice` says:
    /// an idle or lightly loaded one, a new one while under the cap, or the
    /// next one to become free.
    ///
    /// Cancel safe: dropping the future gives back anything reserved.
    pub(crate) async fn acquire(
        &self,
        origin: &ServerOrigin,
        choice: ConnectionChoice,
    ) -> Result<Lease> {
        let op = self.origin_pool(origin);
        let known = self.connector.protocol_without_handshake(origin);
        loop {
            let notified = op.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            match op.next_step(&self.settings, choice, known) {
                Step::Ready(lease) => return Ok(lease),
                Step::Check(mut lease) => {
                    if lease.wait_ready(self.settings.connect_timeout).await {
                        return Ok(lease);
                    }
                    tracing::debug!(origin = %op.origin, connection = %lease.info.id,
                        "idle connection no longer usable");
                    lease.discard();
                }
                Step::Dial {
                    reservation,
                    initial_streams,
                    http1_only,
                } => {
                    return self
                        .dial(&op, reservation, initial_streams, choice, http1_only)
                        .await;
                }
                Step::Wait => notified.await,
            }
        }
    }

    /// HTTP/1.1 with its read buffer capped at the receive window when that
    /// is below hyper's own cap (which also bounds a response head, so it is
    /// never raised); 8 KiB is hyper's floor.
    fn http1_builder(&self) -> http1::Builder {
        /// hyper's default `max_buf_size`: 8 KiB + 100 × 4 KiB.
        const HYPER_MAX_BUF: usize = 8192 + 4096 * 100;
        let mut builder = http1::Builder::new();
        let window = usize::try_from(self.settings.receive_window()).unwrap_or(usize::MAX);
        builder.max_buf_size(window.clamp(8192, HYPER_MAX_BUF));
        builder
    }

    async fn dial(
        &self,
        op: &Arc<OriginPool>,
        reservation: Reservation,
        initial_streams: usize,
        choice: ConnectionChoice,
        http1_only: bool,
    ) -> Result<Lease> {
        let established = self.connector.connect(&op.origin, http1_only).await?;
        let id = ConnectionId(self.next_id.fetch_add(1, Ordering::Relaxed));
        let io = TokioIo::new(established.io);
        let weak = Arc::downgrade(op);
        let handshake_error = |e: hyper::Error| Error::Connect {
            origin: op.origin.to_string(),
            via: None,
            source: io::Error::other(e),
        };
        let timeout = self.settings.connect_timeout;
        let timed_out = || Error::ConnectTimeout {
            origin: op.origin.to_string(),
            timeout,
        };
        let mut h2_conn = None;
        let (h2, sender, task) = match established.protocol {
            Protocol::Http1 => {
                let (sender, conn) =
                    tokio::time::timeout(timeout, self.http1_builder().handshake(io))
                        .await
                        .map_err(|_| timed_out())?
                        .map_err(handshake_error)?;
                let task = tokio::spawn(async move {
                    let result = conn.await;
                    connection_ended(&weak, id, result.err().as_ref());
                });
                (None, LeaseSender::H1(sender), task.abort_handle())
            }
            Protocol::Http2 => {
                let mut builder = http2::Builder::new(TokioExecutor::new());
                // Fixed windows, not hyper's adaptive ones (which grow to
                // 16 MiB per stream): what a connection buffers is bounded
                // by the memory budget, whoever reads slowly.
                let window = self.settings.receive_window();
                let connection_window = match choice {
                    ConnectionChoice::Spread => window,
                    ConnectionChoice::Share => window
                        .saturating_mul(SHARED_CONNECTION_SHARES)
                        .min(MAX_SHARED_CONNECTION_WINDOW.max(window)),
                };
                builder
                    .timer(TokioTimer::new())
                    .initial_stream_window_size(window)
                    .initial_connection_window_size(connection_window)
                    .keep_alive_interval(self.settings.h2_keep_alive)
                    .keep_alive_timeout(self.settings.h2_keep_alive)
                    .keep_alive_while_idle(false)
                    // Until the server's SETTINGS arrive: what its other
                    // connections were told.
                    .initial_max_send_streams(initial_streams);
                let (sender, conn) = tokio::time::timeout(timeout, builder.handshake(io))
                    .await
                    .map_err(|_| timed_out())?
                    .map_err(handshake_error)?;
                let conn: SharedH2Connection = Arc::new(Mutex::new(Box::pin(conn)));
                h2_conn = Some(Arc::clone(&conn));
                let task = tokio::spawn(async move {
                    let result = std::future::poll_fn(|cx| lock(&conn).as_mut().poll(cx)).await;
                    connection_ended(&weak, id, result.err().as_ref());
                });
                (
                    Some(sender.clone()),
                    LeaseSender::H2(sender),
                    task.abort_handle(),
                )
            }
        };
        op.counters
            .connections_opened
            .fetch_add(1, Ordering::Relaxed);
        if established.protocol == Protocol::Http2 {
            op.counters
                .http2_connections_opened
                .fetch_add(1, Ordering::Relaxed);
        }
        tracing::debug!(origin = %op.origin, connection = %id, protocol = %established.protocol,
            via_proxy = established.via_proxy, "connection opened");
        let info = ConnectionInfo {
            id,
            protocol: established.protocol,
            reused: false,
            via_proxy: established.via_proxy,
        };
        let slot = Slot {
            id,
            protocol: established.protocol,
            via_proxy: established.via_proxy,
            h1: None,
            h2,
            h2_conn,
            in_flight: 1,
            served: 1,
            idle_since: Instant::now(),
            retired: false,
            task,
        };
        // A connection that offered HTTP/1.1 only says nothing of what the
        // origin would choose.
        reservation.complete(slot, (!http1_only).then_some(established.protocol));
        Ok(Lease {
            pool: Arc::clone(op),
            info,
            sender: Some(sender),
        })
    }

    /// Stops giving new requests to connection `id`; it closes once its
    /// requests in flight are done. `false` if no such connection is open.
    pub(crate) fn retire(&self, id: ConnectionId) -> bool {
        let origins: Vec<_> = lock(&self.origins).values().cloned().collect();
        origins.iter().any(|op| op.retire(id))
    }

    pub(crate) fn stats(&self) -> HttpStats {
        let origins: Vec<_> = lock(&self.origins).values().cloned().collect();
        let mut stats = HttpStats::default();
        for op in origins {
            let (open_connections, streams_per_connection) = {
                let slots = &lock(&op.state).slots;
                let streams = slots.iter().map(Slot::max_streams).max();
                (slots.len(), streams.unwrap_or(0))
            };
            let c = &op.counters;
            let origin = OriginStats {
                origin: op.origin.to_string(),
                connections_opened: c.connections_opened.load(Ordering::Relaxed),
                http2_connections_opened: c.http2_connections_opened.load(Ordering::Relaxed),
                open_connections,
                requests_sent: c.requests_sent.load(Ordering::Relaxed),
                bytes_received: c.bytes_received.load(Ordering::Relaxed),
                fastest_response: c.fastest_response(),
                streams_per_connection,
            };
            stats.connections_opened += origin.connections_opened;
            stats.requests_sent += origin.requests_sent;
            stats.bytes_received += origin.bytes_received;
            stats.origins.push(origin);
        }
        stats.origins.sort_by(|a, b| a.origin.cmp(&b.origin));
        stats
    }
}

/// Called by a connection's task when the connection is over.
fn connection_ended(pool: &Weak<OriginPool>, id: ConnectionId, error: Option<&hyper::Error>) {
    let Some(op) = pool.upgrade() else { return };
    tracing::debug!(origin = %op.origin, connection = %id, error = error.map(tracing::field::display),
        "connection closed");
    {
        let mut state = lock(&op.state);
        state.slots.retain(|s| s.id != id || s.in_flight > 0);
    }
    op.notify.notify_waiters();
}

impl OriginPool {
    /// What a request with `choice` does now; `known` is the protocol the
    /// origin speaks when that is known before any handshake.
    fn next_step(
        self: &Arc<Self>,
        settings: &PoolSettings,
        choice: ConnectionChoice,
        known: Option<Protocol>,
    ) -> Step {
        let mut state = lock(&self.state);
        let now = Instant::now();
        state.slots.retain(|s| {
            let expired =
                s.in_flight == 0 && now.duration_since(s.idle_since) > settings.idle_timeout;
            let drop = s.is_dead() || expired;
            if drop {
                s.task.abort();
            }
            !drop
        });
        let live = state.slots.iter().filter(|s| !s.retired).count() + state.connecting;
        if choice == ConnectionChoice::Share {
            // The busiest connection with room: streams gather on as few
            // connections as the server's limit allows.
            let roomy = state
                .slots
                .iter()
                .enumerate()
                .filter(|(_, s)| s.takes_streams() && s.has_room())
                .max_by_key(|(_, s)| s.in_flight)
                .map(|(i, _)| i);
            if let Some(i) = roomy {
                return Step::Ready(self.stream_on(&mut state.slots[i]));
            }
            // A connection on its way to an origin that speaks (or may
            // speak) HTTP/2 brings room for many streams: wait for it
            // instead of opening one per request.
            let may_be_h2 = state.protocol.or(known) != Some(Protocol::Http1);
            if state.connecting > 0 && may_be_h2 {
                return Step::Wait;
            }
        }
        let least_loaded = state
            .slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.takes_streams())
            .min_by_key(|(_, s)| s.in_flight)
            .map(|(i, s)| (i, s.in_flight));
        // Over TLS a range of a large file rides HTTP/1.1 (decision 0016):
        // it takes an HTTP/2 stream only at the cap.
        let http1_only =
            choice == ConnectionChoice::Spread && settings.spread_over_http1 && known.is_none();
        if let Some((i, load)) = least_loaded
            && ((load == 0 && !http1_only) || live >= settings.max_per_origin)
        {
            return Step::Ready(self.stream_on(&mut state.slots[i]));
        }
        if let Some(slot) = state.slots.iter_mut().find(|s| {
            s.protocol == Protocol::Http1 && !s.retired && s.in_flight == 0 && s.h1.is_some()
        }) {
            slot.in_flight = 1;
            let info = slot.info();
            slot.served += 1;
            let sender = slot.h1.take().map(LeaseSender::H1);
            return Step::Check(Lease {
                pool: Arc::clone(self),
                info,
                sender,
            });
        }
        if live < settings.max_per_origin {
            state.connecting += 1;
            // A new HTTP/2 connection starts with the limit its siblings
            // were given (learnt within a round trip either way).
            let initial_streams = state
                .slots
                .iter()
                .filter(|s| s.protocol == Protocol::Http2)
                .map(Slot::max_streams)
                .min()
                .unwrap_or(DEFAULT_MAX_STREAMS)
                .max(1);
            return Step::Dial {
                reservation: Reservation {
                    pool: Arc::clone(self),
                    done: false,
                },
                initial_streams,
                http1_only,
            };
        }
        Step::Wait
    }

    /// One more stream on the HTTP/2 connection `slot`.
    fn stream_on(self: &Arc<Self>, slot: &mut Slot) -> Lease {
        slot.in_flight += 1;
        let info = slot.info();
        slot.served += 1;
        let sender = slot.h2.clone().map(LeaseSender::H2);
        Lease {
            pool: Arc::clone(self),
            info,
            sender,
        }
    }

    fn retire(&self, id: ConnectionId) -> bool {
        let found = {
            let mut state = lock(&self.state);
            let Some(i) = state.slots.iter().position(|s| s.id == id) else {
                return false;
            };
            state.slots[i].retired = true;
            if state.slots[i].in_flight == 0 {
                let slot = state.slots.swap_remove(i);
                slot.task.abort();
            }
            true
        };
        tracing::debug!(origin = %self.origin, connection = %id, "connection retired");
        self.notify.notify_waiters();
        found
    }

    /// Gives a lease back; `exchange` says how its HTTP/1.1 exchange ended.
    fn finish(&self, id: ConnectionId, sender: LeaseSender, exchange: Exchange) {
        {
            let mut state = lock(&self.state);
            if let Some(i) = state.slots.iter().position(|s| s.id == id) {
                let slot = &mut state.slots[i];
                slot.in_flight = slot.in_flight.saturating_sub(1);
                let keep = match sender {
                    LeaseSender::H1(sender) => {
                        let keep =
                            exchange == Exchange::Clean && !slot.retired && !sender.is_closed();
                        if keep {
                            slot.h1 = Some(sender);
                        }
                        keep
                    }
                    LeaseSender::H2(_) => !(slot.retired && slot.in_flight == 0),
                };
                if keep {
                    if slot.in_flight == 0 {
                        slot.idle_since = Instant::now();
                    }
                } else {
                    let slot = state.slots.swap_remove(i);
                    slot.task.abort();
                    tracing::debug!(origin = %self.origin, connection = %id, "connection closed by the client");
                }
            }
        }
        self.notify.notify_waiters();
    }
}

impl Slot {
    fn info(&self) -> ConnectionInfo {
        ConnectionInfo {
            id: self.id,
            protocol: self.protocol,
            reused: self.served > 0,
            via_proxy: self.via_proxy,
        }
    }
}

/// A connection slot being opened; given back if the opening fails or is
/// cancelled.
struct Reservation {
    pool: Arc<OriginPool>,
    done: bool,
}

impl Reservation {
    fn complete(mut self, slot: Slot, protocol: Option<Protocol>) {
        {
            let mut state = lock(&self.pool.state);
            state.connecting -= 1;
            state.protocol = protocol.or(state.protocol);
            state.slots.push(slot);
        }
        self.done = true;
        self.pool.notify.notify_waiters();
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.done {
            lock(&self.pool.state).connecting -= 1;
            self.pool.notify.notify_waiters();
        }
    }
}

enum LeaseSender {
    H1(http1::SendRequest<RequestBody>),
    H2(http2::SendRequest<RequestBody>),
}

/// The right to send one request on one connection, held until the
/// response body is done.
pub(crate) struct Lease {
    pool: Arc<OriginPool>,
    info: ConnectionInfo,
    /// `None` once given back.
    sender: Option<LeaseSender>,
}

impl fmt::Debug for Lease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lease")
            .field("origin", &self.pool.origin)
            .field("connection", &self.info)
            .finish_non_exhaustive()
    }
}

impl Lease {
    pub(crate) fn info(&self) -> &ConnectionInfo {
        &self.info
    }

    pub(crate) fn origin_pool(&self) -> Arc<OriginPool> {
        Arc::clone(&self.pool)
    }

    /// Whether this lease's connection goes to `origin`.
    pub(crate) fn serves(&self, origin: &ServerOrigin) -> bool {
        self.pool.origin == *origin
    }

    /// Waits until the connection takes a request (an HTTP/1.1 connection
    /// kept from an exchange that just ended); `false` if it never will
    /// within `timeout`.
    pub(crate) async fn wait_ready(&mut self, timeout: Duration) -> bool {
        matches!(
            tokio::time::timeout(timeout, self.ready()).await,
            Ok(Ok(()))
        )
    }

    /// Counts the next request on this lease's connection (a lease kept
    /// from an exchange that ended carries one more).
    pub(crate) fn reuse(&mut self) {
        self.info.reused = true;
        let mut state = lock(&self.pool.state);
        if let Some(slot) = state.slots.iter_mut().find(|s| s.id == self.info.id) {
            slot.served += 1;
        }
    }

    async fn ready(&mut self) -> hyper::Result<()> {
        match self.sender.as_mut() {
            Some(LeaseSender::H1(s)) => s.ready().await,
            Some(LeaseSender::H2(s)) => s.ready().await,
            None => Ok(()),
        }
    }

    /// Sends the request; on failure the request comes back inside the
    /// error if it was never written to the connection.
    pub(crate) async fn send(
        &mut self,
        request: Request<RequestBody>,
    ) -> std::result::Result<Response<Incoming>, TrySendError<Request<RequestBody>>> {
        match self
            .sender
            .as_mut()
            .expect("lease used after it was given back")
        {
            LeaseSender::H1(s) => s.try_send_request(request).await,
            LeaseSender::H2(s) => s.try_send_request(request).await,
        }
    }

    /// Gives the connection back for reuse.
    pub(crate) fn release(mut self) {
        if let Some(sender) = self.sender.take() {
            self.pool.finish(self.info.id, sender, Exchange::Clean);
        }
    }

    /// Gives the connection back after a failed or abandoned exchange: an
    /// HTTP/1.1 connection is closed, an HTTP/2 stream released.
    pub(crate) fn discard(mut self) {
        self.discard_in_place();
    }

    fn discard_in_place(&mut self) {
        if let Some(sender) = self.sender.take() {
            self.pool.finish(self.info.id, sender, Exchange::Abandoned);
        }
    }

    /// Marks the connection as not to be used for new requests.
    pub(crate) fn retire_connection(&self) {
        self.pool.retire(self.info.id);
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.discard_in_place();
    }
}

impl fmt::Debug for OriginPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OriginPool")
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}
